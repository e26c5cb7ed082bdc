/* adversarial.h — adversarial examples against a trained classifier: the
 * fast gradient sign method of Goodfellow et al. (x' = clip(x + eps *
 * sign(d loss / dx))), an iterative targeted variant that walks towards a
 * chosen class inside an eps-ball, and the pieces a robustness report needs.
 * The loss is the softmax cross-entropy of the pre-softmax class scores, so
 * deploy models ending in Softmax and train/test models ending in
 * SoftmaxWithLoss are attacked the same way. Everything is in input units
 * (after transform_param); callers convert pixel units with the scale. */
#ifndef CNN_ADVERSARIAL_H
#define CNN_ADVERSARIAL_H

#include "cnn.h"

/* d/d scores of sum_s -log softmax(scores[s])[labels[s]] = p - onehot, for n
 * rows of k scores; rows with a negative label get zero. */
void cnn_adv_loss_grad(const float *scores, int n, int k, const int *labels, float *grad);

/* Runs the net forward from the current input and writes sign(d loss / dx)
 * (-1, 0 or 1, the input's count) for the loss towards labels (one per
 * sample; a negative label means the sample's predicted class). */
cnn_status cnn_adv_loss_sign(cnn_net *n, const char *input, const char *scores,
                             const int *labels, float *sign);

/* out = clip(x + eps * dir, lo[c], hi[c]) for (n, c, plane) values; lo/hi
 * per channel (NULL: no clipping). out may be x. */
void cnn_adv_step(const float *x, const float *dir, float eps, int n, int c, size_t plane,
                  const float *lo, const float *hi, float *out);

/* FGSM on the current input: replaces it by clip(x + eps * sign(d loss(labels)
 * / dx)) and runs the net forward on the result. eps in input units. */
cnn_status cnn_adv_fgsm(cnn_net *n, const char *input, const char *scores, const int *labels,
                        float eps, const float *lo, const float *hi);

typedef struct cnn_adv_iter_opts {
    float eps;        /* L-infinity radius around the starting input, input units */
    float alpha;      /* step per iteration, input units */
    int iterations;   /* at most this many steps */
    bool stop_early;  /* a sample stops moving once it is classified as its target */
} cnn_adv_iter_opts;

/* Targeted iterative attack on the current input x0: x <- clip(x - alpha *
 * sign(d loss(targets) / dx)) into [x0 - eps, x0 + eps] and [lo, hi], leaving
 * the input at the result with the net run forward on it. *steps (may be
 * NULL) gets the number of steps taken. */
cnn_status cnn_adv_targeted(cnn_net *n, const char *input, const char *scores,
                            const int *targets, const cnn_adv_iter_opts *o, const float *lo,
                            const float *hi, int *steps);

#endif
