/* accuracy.c — Caffe's Accuracy layer: the fraction of (non-ignored)
 * labels whose score is among the top_k of their row, ties counted as
 * misses like Caffe. accuracy_param: top_k (1), axis (1), ignore_label.
 * An optional second top (C) gets the accuracy per class. No backward.
 * The GPU path leaves the results on the device (no host sync). */
#include <stdlib.h>

#include "../kernels/kernels.h"
#include "layer.h"
#include "loss_gpu.h"

typedef struct {
    int top_k, axis;
    bool has_ignore;
    int ignore;
    int outer, c, inner;
    float *totals; /* (c) labels seen per class, for the second top */
    int n_totals;
    cnn_loss_dev dev;  /* GPU: correct and valid counts, the quotient */
    float *dev_class;  /* GPU, second top: (2, dev_cap) hits, totals */
    int dev_cap;
} accuracy_priv;

static void accuracy_destroy(cnn_layer *l)
{
    accuracy_priv *a = l->priv;
    if (a) {
        free(a->totals);
        if (a->dev.ctx) cnn_cuda_free(a->dev.ctx, a->dev_class);
        cnn_loss_dev_free(&a->dev);
    }
    free(a);
    l->priv = NULL;
}

static cnn_status accuracy_setup(cnn_layer *l, cnn_cfg *cfg)
{
    cnn_status st = CNN_OK;
    cnn_cfg *p = NULL;
    CNN_TRY(cnn_layer_alloc_priv(l, sizeof(accuracy_priv)));
    accuracy_priv *a = l->priv;
    a->top_k = 1;
    a->axis = 1;
    CNN_TRY(cnn_cfg_message(cfg, "accuracy_param", &p));
    if (p) {
        CNN_TRY(cnn_cfg_int(p, "top_k", 1, &a->top_k));
        CNN_TRY(cnn_cfg_int(p, "axis", 1, &a->axis));
        a->has_ignore = cnn_cfg_count(p, "ignore_label") > 0;
        CNN_TRY(cnn_cfg_int(p, "ignore_label", 0, &a->ignore));
    }
    if (a->top_k < 1)
        return cnn_layer_error(l, CNN_ERR_CONFIG, "top_k must be at least 1, got %d", a->top_k);
fail:
    return st;
}

/* Device scratch: the loss layers' scalars and, for the per-class top,
 * room for the per-class tallies. */
static cnn_status reshape_gpu(cnn_layer *l)
{
    cnn_status st = CNN_OK;
    accuracy_priv *a = l->priv;
    void *p = NULL;
    CNN_TRY(cnn_loss_dev_alloc(l, &a->dev));
    if (l->n_top < 2 || a->dev_cap >= a->c) return CNN_OK;
    cnn_cuda_free(a->dev.ctx, a->dev_class);
    a->dev_class = NULL;
    a->dev_cap = 0;
    CNN_TRY(cnn_cuda_malloc(a->dev.ctx, 2 * (size_t)a->c * sizeof(float), &p));
    a->dev_class = p;
    a->dev_cap = a->c;
fail:
    return st;
}

static cnn_status accuracy_reshape(cnn_layer *l)
{
    cnn_status st = CNN_OK;
    accuracy_priv *a = l->priv;
    const cnn_tensor *x = l->bottom[0], *label = l->bottom[1];
    char xs[64];
    int axis = cnn_tensor_axis(x, a->axis);
    if (axis < 0)
        return cnn_layer_error(l, CNN_ERR_SHAPE, "axis %d out of range for bottom %s", a->axis,
                               cnn_tensor_shape_str(x, xs, sizeof xs));
    a->outer = (int)cnn_tensor_count_range(x, 0, axis);
    a->c = x->shape[axis];
    a->inner = (int)cnn_tensor_count_range(x, axis + 1, x->ndim);
    if (a->top_k > a->c)
        return cnn_layer_error(l, CNN_ERR_CONFIG, "top_k %d exceeds the %d classes", a->top_k,
                               a->c);
    if ((size_t)a->outer * (size_t)a->inner != label->count)
        return cnn_layer_error(l, CNN_ERR_SHAPE, "%zu labels for predictions %s (axis %d "
                                                 "needs %zu)",
                               label->count, cnn_tensor_shape_str(x, xs, sizeof xs), a->axis,
                               (size_t)a->outer * (size_t)a->inner);
    CNN_TRY(cnn_tensor_reshape(l->top[0], 0, NULL));
    if (l->n_top > 1) {
        CNN_TRY(cnn_tensor_reshape(l->top[1], 1, &a->c));
        if (a->n_totals < a->c) {
            float *t = realloc(a->totals, (size_t)a->c * sizeof *t);
            if (!t) return cnn_layer_error(l, CNN_ERR_MEMORY, "out of memory");
            a->totals = t;
            a->n_totals = a->c;
        }
    }
    if (l->cuda) CNN_TRY(reshape_gpu(l));
fail:
    return st;
}

static cnn_status accuracy_forward(cnn_layer *l)
{
    const accuracy_priv *a = l->priv;
    const float *label = l->bottom[1]->data;
    float *hits = l->n_top > 1 ? l->top[1]->data : NULL;
    float *totals = l->n_top > 1 ? a->totals : NULL;
    long correct = 0, count = 0;
    long bad = cnn_k_accuracy(a->outer, a->c, a->inner, l->bottom[0]->data, label, a->top_k,
                              a->has_ignore, a->ignore, &correct, &count, hits, totals);
    if (bad >= 0)
        return cnn_layer_error(l, CNN_ERR_ARG, "label %g at position %ld is outside [0, %d)",
                               label[bad], bad, a->c);
    l->top[0]->data[0] = count ? (float)((double)correct / (double)count) : 0.f;
    if (hits)
        for (int k = 0; k < a->c; k++) hits[k] = totals[k] > 0 ? hits[k] / totals[k] : 0.f;
    return CNN_OK;
}

static cnn_status accuracy_forward_gpu(cnn_layer *l)
{
    cnn_status st = CNN_OK;
    accuracy_priv *a = l->priv;
    cnn_cuda_ctx *ctx = l->cuda;
    size_t c = (size_t)a->c;
    const float *x, *label;
    float *acc, *per_class = NULL, *hits = NULL, *totals = NULL;
    CNN_TRY(cnn_gpu_read(l->bottom[0], &x));
    CNN_TRY(cnn_gpu_read(l->bottom[1], &label));
    if (l->n_top > 1) {
        hits = a->dev_class;
        totals = hits + a->dev_cap;
    }
    CNN_TRY(cnn_cuda_accuracy(ctx, a->outer, a->c, a->inner, x, label, a->top_k, a->has_ignore,
                              a->ignore, a->dev.f + CNN_LOSS_SUM, hits, totals, a->dev.bad));
    CNN_TRY(cnn_loss_dev_check(l, &a->dev, l->bottom[1], a->c));
    /* correct / max(count, 1): 0 when nothing counted, as on the CPU. */
    CNN_TRY(cnn_gpu_write(l->top[0], &acc));
    CNN_TRY(cnn_loss_dev_normalize(&a->dev, 0.f, acc));
    if (hits) {
        CNN_TRY(cnn_gpu_write(l->top[1], &per_class));
        CNN_TRY(cnn_cuda_div(ctx, c, hits, totals, 1.f, per_class)); /* 0 / 0 -> 0 */
    }
fail:
    return st;
}

static cnn_status accuracy_check_gpu(cnn_layer *l)
{
    accuracy_priv *a = l->priv;
    return cnn_loss_dev_report(l, &a->dev, a->c);
}

static double accuracy_flops(const cnn_layer *l) { return (double)l->bottom[0]->count; }

const cnn_layer_type cnn_layer_Accuracy = {
    .name = "Accuracy",
    .min_bottoms = 2,
    .max_bottoms = 2,
    .min_tops = 1,
    .max_tops = 2,
    .setup = accuracy_setup,
    .reshape = accuracy_reshape,
    .forward = accuracy_forward,
    .backward = NULL,
    .destroy = accuracy_destroy,
    .flops = accuracy_flops,
    .forward_gpu = accuracy_forward_gpu,
    .check_gpu = accuracy_check_gpu,
};
