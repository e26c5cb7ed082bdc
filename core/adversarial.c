/* adversarial.c — FGSM and the iterative targeted attack on top of
 * cnn_input_gradient (see adversarial.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "adversarial.h"
#include "vis.h"

static cnn_status oom(void) { return CNN_ERROR(CNN_ERR_MEMORY, "out of memory"); }

void cnn_adv_loss_grad(const float *scores, int n, int k, const int *labels, float *grad)
{
    cnn_vis_softmax(scores, n, k, grad);
    for (int r = 0; r < n; r++) {
        float *g = grad + (size_t)r * k;
        if (labels[r] < 0 || labels[r] >= k)
            memset(g, 0, (size_t)k * sizeof *g);
        else
            g[labels[r]] -= 1.f;
    }
}

/* Input and score blobs with one score row per input sample. */
static cnn_status blobs(cnn_net *n, const char *input, const char *scores, cnn_tensor **in,
                        cnn_tensor **sc)
{
    if (!(*in = cnn_net_blob(n, input)))
        return CNN_ERROR(CNN_ERR_ARG, "the model has no blob '%s'", input);
    if (!(*sc = cnn_net_blob(n, scores)))
        return CNN_ERROR(CNN_ERR_ARG, "the model has no blob '%s'", scores);
    if ((*in)->ndim != 4) return CNN_ERROR(CNN_ERR_SHAPE, "input '%s' is not 4-D", input);
    return CNN_OK;
}

/* After a forward pass: k, and the score rows checked against the input N. */
static cnn_status score_rows(const cnn_tensor *in, const cnn_tensor *sc, int *k)
{
    int N = in->shape[0];
    if (sc->ndim < 1 || sc->shape[0] != N || sc->count % (size_t)N)
        return CNN_ERROR(CNN_ERR_SHAPE, "score blob '%s' does not have one row per input",
                         sc->name);
    *k = (int)(sc->count / (size_t)N);
    return CNN_OK;
}

/* Forward, then the loss gradient towards `labels` (negative: predicted)
 * left in in->grad. */
static cnn_status loss_gradient(cnn_net *n, cnn_tensor *in, cnn_tensor *sc, const int *labels)
{
    cnn_status st = CNN_OK;
    int *lab = NULL, k = 0;
    float *g = NULL;
    CNN_TRY(cnn_vis_forward_from(n, in));
    CNN_TRY(score_rows(in, sc, &k));
    int N = in->shape[0];
    lab = malloc((size_t)N * sizeof *lab);
    g = malloc(sc->count * sizeof *g);
    if (!lab || !g) {
        st = oom();
        goto fail;
    }
    for (int s = 0; s < N; s++) {
        lab[s] = labels[s] >= 0 ? labels[s] : cnn_vis_argmax(sc->data + (size_t)s * k, k);
        if (lab[s] >= k) {
            st = CNN_ERROR(CNN_ERR_ARG, "label %d is outside the %d classes of '%s'", lab[s], k,
                           sc->name);
            goto fail;
        }
    }
    cnn_adv_loss_grad(sc->data, N, k, lab, g);
    CNN_TRY(cnn_input_gradient(n, sc->name, g, in->name, NULL));
fail:
    free(lab);
    free(g);
    return st;
}

cnn_status cnn_adv_loss_sign(cnn_net *n, const char *input, const char *scores,
                             const int *labels, float *sign)
{
    cnn_status st = CNN_OK;
    cnn_tensor *in = NULL, *sc = NULL;
    CNN_TRY(blobs(n, input, scores, &in, &sc));
    CNN_TRY(loss_gradient(n, in, sc, labels));
    for (size_t i = 0; i < in->count; i++)
        sign[i] = in->grad[i] > 0 ? 1.f : in->grad[i] < 0 ? -1.f : 0.f;
fail:
    return st;
}

void cnn_adv_step(const float *x, const float *dir, float eps, int n, int c, size_t plane,
                  const float *lo, const float *hi, float *out)
{
    for (int s = 0; s < n; s++)
        for (int ch = 0; ch < c; ch++) {
            size_t o = ((size_t)s * c + ch) * plane;
            for (size_t p = 0; p < plane; p++) {
                float v = x[o + p] + eps * dir[o + p];
                if (lo && v < lo[ch]) v = lo[ch];
                if (hi && v > hi[ch]) v = hi[ch];
                out[o + p] = v;
            }
        }
}

cnn_status cnn_adv_fgsm(cnn_net *n, const char *input, const char *scores, const int *labels,
                        float eps, const float *lo, const float *hi)
{
    cnn_status st = CNN_OK;
    cnn_tensor *in = NULL, *sc = NULL;
    float *sign = NULL;
    CNN_TRY(blobs(n, input, scores, &in, &sc));
    if (!isfinite(eps) || eps < 0) return CNN_ERROR(CNN_ERR_ARG, "epsilon must be >= 0");
    if (!(sign = malloc(in->count * sizeof *sign))) return oom();
    CNN_TRY(cnn_adv_loss_sign(n, input, scores, labels, sign));
    cnn_adv_step(in->data, sign, eps, in->shape[0], in->shape[1],
                 (size_t)in->shape[2] * in->shape[3], lo, hi, in->data);
    CNN_TRY(cnn_vis_forward_from(n, in));
fail:
    free(sign);
    return st;
}

cnn_status cnn_adv_targeted(cnn_net *n, const char *input, const char *scores,
                            const int *targets, const cnn_adv_iter_opts *o, const float *lo,
                            const float *hi, int *steps)
{
    cnn_status st = CNN_OK;
    cnn_tensor *in = NULL, *sc = NULL;
    int k = 0, it = 0;
    float *x0 = NULL;
    int *active = NULL;
    CNN_TRY(blobs(n, input, scores, &in, &sc));
    if (!isfinite(o->eps) || o->eps < 0 || !isfinite(o->alpha) || o->alpha <= 0 ||
        o->iterations < 0)
        return CNN_ERROR(CNN_ERR_ARG, "targeted attack: want eps >= 0, alpha > 0, "
                                      "iterations >= 0");
    int N = in->shape[0], C = in->shape[1];
    size_t plane = (size_t)in->shape[2] * in->shape[3], sample = (size_t)C * plane;
    x0 = malloc(in->count * sizeof *x0);
    active = malloc((size_t)N * sizeof *active);
    if (!x0 || !active) {
        st = oom();
        goto fail;
    }
    for (int s = 0; s < N; s++)
        if (targets[s] < 0) {
            st = CNN_ERROR(CNN_ERR_ARG, "sample %d has no target class", s);
            goto fail;
        }
    memcpy(x0, in->data, in->count * sizeof *x0);
    for (;; it++) {
        CNN_TRY(loss_gradient(n, in, sc, targets)); /* forward on the current x */
        CNN_TRY(score_rows(in, sc, &k));
        int moving = 0;
        for (int s = 0; s < N; s++) {
            if (targets[s] >= k) {
                st = CNN_ERROR(CNN_ERR_ARG, "target %d is outside the %d classes", targets[s],
                               k);
                goto fail;
            }
            active[s] = !(o->stop_early &&
                          cnn_vis_argmax(sc->data + (size_t)s * k, k) == targets[s]);
            moving += active[s];
        }
        if (it == o->iterations || moving == 0) break;
        for (int s = 0; s < N; s++) {
            if (!active[s]) continue;
            for (int c = 0; c < C; c++) {
                size_t off = (size_t)s * sample + (size_t)c * plane;
                float *x = in->data + off;
                const float *g = in->grad + off, *b = x0 + off;
                for (size_t p = 0; p < plane; p++) {
                    float v = x[p] - o->alpha * (g[p] > 0 ? 1.f : g[p] < 0 ? -1.f : 0.f);
                    v = v < b[p] - o->eps ? b[p] - o->eps : v > b[p] + o->eps ? b[p] + o->eps
                                                                              : v;
                    if (lo && v < lo[c]) v = lo[c];
                    if (hi && v > hi[c]) v = hi[c];
                    x[p] = v;
                }
            }
        }
    }
    if (steps) *steps = it;
fail:
    free(x0);
    free(active);
    return st;
}
