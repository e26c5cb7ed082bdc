/* loss_gpu.h — device-side bookkeeping shared by the GPU paths of the loss
 * and metric layers (SoftmaxWithLoss, SigmoidCrossEntropyLoss, Accuracy):
 * the op's scalar results, the normaliser and the divisions stay on the
 * device, so a training step needs no host synchronisation. Internal to
 * layers/. */
#ifndef CNN_LOSS_GPU_H
#define CNN_LOSS_GPU_H

#include "../core/gpu.h"
#include "layer.h"

/* Slots of cnn_loss_dev.f (device floats). */
enum {
    CNN_LOSS_SUM,   /* the op's sum (loss, or correct predictions) */
    CNN_LOSS_COUNT, /* the op's count of valid labels */
    CNN_LOSS_DEN,   /* the normaliser of the last forward (used as max(DEN, 1)) */
    CNN_LOSS_SCALE, /* backward: top gradient / normaliser */
    CNN_LOSS_SLOTS
};

typedef struct cnn_loss_dev {
    cnn_cuda_ctx *ctx; /* where f and bad live; NULL until allocated */
    float *f;          /* (CNN_LOSS_SLOTS) device scalars */
    int *bad;          /* device: first bad label's index, -1 when none */
    int *first_bad;    /* device: bad latched over passes until reported */
} cnn_loss_dev;

/* Allocates d on l->cuda (once; no-op when l->cuda is NULL). Call at reshape. */
cnn_status cnn_loss_dev_alloc(cnn_layer *l, cnn_loss_dev *d);
void cnn_loss_dev_free(cnn_loss_dev *d);

/* Sets the normaliser: host_norm when > 0, else the valid count on the
 * device (at least 1). Then *out (device) = sum / normaliser. */
cnn_status cnn_loss_dev_normalize(cnn_loss_dev *d, float host_norm, float *out);
/* The backward scale, top gradient dtop[0] / normaliser, in the SCALE slot;
 * returns that slot's device address in *scale. */
cnn_status cnn_loss_dev_scale(cnn_loss_dev *d, const float *dtop, const float **scale);

/* After an op wrote d->bad: latches it into d->first_bad (no host wait).
 * In the debug mode (CNN_CUDA_SYNC=1) it also waits for the stream and
 * reports a bad label at once, with its value, as the CPU path does. */
cnn_status cnn_loss_dev_check(cnn_layer *l, cnn_loss_dev *d, cnn_tensor *label, int c);
/* The same after an op that latched d->bad itself: only the debug mode's
 * immediate report. */
cnn_status cnn_loss_dev_check_latched(cnn_layer *l, cnn_loss_dev *d, cnn_tensor *label, int c);
/* A layer's check_gpu: reads the latched index back (a host wait), resets
 * it, and reports a bad label of the passes since the last call. */
cnn_status cnn_loss_dev_report(cnn_layer *l, cnn_loss_dev *d, int c);

#endif
