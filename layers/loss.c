/* loss.c — regression and binary losses with Caffe's semantics:
 * EuclideanLoss, sum((a - b)^2) / (2 N) with gradients to both bottoms, and
 * SigmoidCrossEntropyLoss, the cross-entropy of sigmoid(x) against targets
 * in [0, 1] computed stably, with loss_param ignore_label and normalization
 * (default BATCH_SIZE, as in Caffe for this layer). Both have a GPU path
 * whose loss and backward scale stay on the device. */
#include <stdlib.h>

#include "../kernels/kernels.h"
#include "layer.h"
#include "loss_gpu.h"

/* The loss layers' common check: the first dimensions agree. */
static cnn_status check_first_dim(const cnn_layer *l)
{
    const cnn_tensor *a = l->bottom[0], *b = l->bottom[1];
    char as[64], bs[64];
    if (cnn_tensor_dim(a, 0) != cnn_tensor_dim(b, 0))
        return cnn_layer_error(l, CNN_ERR_SHAPE, "bottoms %s and %s differ in the first "
                                                 "dimension",
                               cnn_tensor_shape_str(a, as, sizeof as),
                               cnn_tensor_shape_str(b, bs, sizeof bs));
    return CNN_OK;
}

/* ---- EuclideanLoss ---------------------------------------------------------- */

typedef struct {
    cnn_tensor *diff; /* (bottom[0] shape) a - b */
} euclid_priv;

static void euclid_destroy(cnn_layer *l)
{
    euclid_priv *e = l->priv;
    if (e) cnn_tensor_free(e->diff);
    free(e);
    l->priv = NULL;
}

static cnn_status euclid_setup(cnn_layer *l, cnn_cfg *cfg)
{
    cnn_status st = CNN_OK;
    cnn_cfg *p = NULL;
    CNN_TRY(cnn_layer_alloc_priv(l, sizeof(euclid_priv)));
    euclid_priv *e = l->priv;
    /* Caffe accepts loss_param here and ignores it. */
    CNN_TRY(cnn_cfg_message(cfg, "loss_param", &p));
    if (p) cnn_cfg_mark_used(p);
    if (!(e->diff = cnn_tensor_create(NULL)))
        return cnn_layer_error(l, CNN_ERR_MEMORY, "out of memory");
fail:
    return st;
}

static cnn_status euclid_reshape(cnn_layer *l)
{
    cnn_status st = CNN_OK;
    euclid_priv *e = l->priv;
    const cnn_tensor *a = l->bottom[0], *b = l->bottom[1];
    char as[64], bs[64];
    CNN_TRY(check_first_dim(l));
    if (a->count != b->count)
        return cnn_layer_error(l, CNN_ERR_SHAPE, "inputs %s and %s must have the same count",
                               cnn_tensor_shape_str(a, as, sizeof as),
                               cnn_tensor_shape_str(b, bs, sizeof bs));
    CNN_TRY(cnn_tensor_reshape(l->top[0], 0, NULL));
    CNN_TRY(cnn_tensor_reshape_like(e->diff, a));
    if (l->cuda) CNN_TRY(cnn_tensor_attach(e->diff, l->cuda));
fail:
    return st;
}

/* Caffe's num(): the first dimension, at least 1 here to avoid 0/0. */
static float batch_num(const cnn_tensor *t)
{
    int n = cnn_tensor_dim(t, 0);
    return n > 0 ? (float)n : 1.f;
}

static cnn_status euclid_forward(cnn_layer *l)
{
    euclid_priv *e = l->priv;
    const cnn_tensor *a = l->bottom[0], *b = l->bottom[1];
    cnn_k_copy(a->count, a->data, e->diff->data);
    cnn_k_axpy(a->count, -1.f, b->data, e->diff->data);
    float dot = cnn_k_dot(a->count, e->diff->data, e->diff->data);
    l->top[0]->data[0] = dot / batch_num(a) / 2.f;
    return CNN_OK;
}

static cnn_status euclid_backward(cnn_layer *l)
{
    const euclid_priv *e = l->priv;
    for (int i = 0; i < 2; i++) {
        if (!l->propagate_down[i]) continue;
        cnn_tensor *x = l->bottom[i];
        float alpha = (i == 0 ? 1.f : -1.f) * l->top[0]->grad[0] / batch_num(x);
        cnn_k_copy(x->count, e->diff->data, x->grad);
        cnn_k_scale(x->count, alpha, x->grad);
    }
    return CNN_OK;
}

static cnn_status euclid_forward_gpu(cnn_layer *l)
{
    cnn_status st = CNN_OK;
    euclid_priv *e = l->priv;
    cnn_tensor *a = l->bottom[0];
    const float *da, *db;
    float *diff, *loss;
    CNN_TRY(cnn_gpu_read(a, &da));
    CNN_TRY(cnn_gpu_read(l->bottom[1], &db));
    CNN_TRY(cnn_gpu_write(e->diff, &diff));
    CNN_TRY(cnn_gpu_write(l->top[0], &loss));
    CNN_TRY(cnn_cuda_euclidean_forward(l->cuda, a->count, cnn_tensor_dim(a, 0), da, db, diff,
                                       loss));
fail:
    return st;
}

static cnn_status euclid_backward_gpu(cnn_layer *l)
{
    cnn_status st = CNN_OK;
    euclid_priv *e = l->priv;
    const float *diff, *dloss;
    float *dx;
    CNN_TRY(cnn_gpu_read(e->diff, &diff));
    CNN_TRY(cnn_gpu_read_grad(l->top[0], &dloss));
    for (int i = 0; i < 2; i++) {
        if (!l->propagate_down[i]) continue;
        cnn_tensor *x = l->bottom[i];
        CNN_TRY(cnn_gpu_write_grad(x, &dx));
        CNN_TRY(cnn_cuda_euclidean_backward(l->cuda, x->count, cnn_tensor_dim(x, 0),
                                            i == 0 ? 1.f : -1.f, dloss, diff, dx));
    }
fail:
    return st;
}

static double euclid_flops(const cnn_layer *l) { return 3.0 * (double)l->bottom[0]->count; }

const cnn_layer_type cnn_layer_EuclideanLoss = {
    .name = "EuclideanLoss",
    .min_bottoms = 2,
    .max_bottoms = 2,
    .min_tops = 1,
    .max_tops = 1,
    .is_loss = true,
    .setup = euclid_setup,
    .reshape = euclid_reshape,
    .forward = euclid_forward,
    .backward = euclid_backward,
    .destroy = euclid_destroy,
    .flops = euclid_flops,
    .forward_gpu = euclid_forward_gpu,
    .backward_gpu = euclid_backward_gpu,
};

/* ---- SigmoidCrossEntropyLoss ---------------------------------------------- */

enum { NORM_FULL, NORM_VALID, NORM_BATCH_SIZE, NORM_NONE };
static const char *const norm_names[] = {"FULL", "VALID", "BATCH_SIZE", "NONE", NULL};

typedef struct {
    bool has_ignore;
    int ignore;
    int norm;         /* NORM_* */
    float normalizer; /* of the last forward */
    cnn_loss_dev dev; /* GPU: the loss's device scalars */
} sce_priv;

static void sce_destroy(cnn_layer *l)
{
    sce_priv *s = l->priv;
    if (s) cnn_loss_dev_free(&s->dev);
    free(s);
    l->priv = NULL;
}

static cnn_status sce_setup(cnn_layer *l, cnn_cfg *cfg)
{
    cnn_status st = CNN_OK;
    cnn_cfg *p = NULL;
    CNN_TRY(cnn_layer_alloc_priv(l, sizeof(sce_priv)));
    sce_priv *s = l->priv;
    s->norm = NORM_BATCH_SIZE;
    CNN_TRY(cnn_cfg_message(cfg, "loss_param", &p));
    if (p) {
        s->has_ignore = cnn_cfg_count(p, "ignore_label") > 0;
        CNN_TRY(cnn_cfg_int(p, "ignore_label", 0, &s->ignore));
        bool normalize = true;
        CNN_TRY(cnn_cfg_bool(p, "normalize", true, &normalize));
        if (cnn_cfg_count(p, "normalization") > 0)
            CNN_TRY(cnn_cfg_enum(p, "normalization", norm_names, NORM_VALID, &s->norm));
        else if (cnn_cfg_count(p, "normalize") > 0)
            s->norm = normalize ? NORM_VALID : NORM_BATCH_SIZE;
    }
fail:
    return st;
}

static cnn_status sce_reshape(cnn_layer *l)
{
    cnn_status st = CNN_OK;
    const cnn_tensor *a = l->bottom[0], *b = l->bottom[1];
    char as[64], bs[64];
    CNN_TRY(check_first_dim(l));
    if (a->count != b->count)
        return cnn_layer_error(l, CNN_ERR_SHAPE, "inputs %s and targets %s must have the same "
                                                 "count",
                               cnn_tensor_shape_str(a, as, sizeof as),
                               cnn_tensor_shape_str(b, bs, sizeof bs));
    CNN_TRY(cnn_tensor_reshape(l->top[0], 0, NULL));
    CNN_TRY(cnn_loss_dev_alloc(l, &((sce_priv *)l->priv)->dev));
fail:
    return st;
}

static cnn_status sce_forward(cnn_layer *l)
{
    sce_priv *s = l->priv;
    const cnn_tensor *x = l->bottom[0];
    double loss = 0, n = 1;
    long valid = 0;
    cnn_k_sigmoid_xent_forward(x->count, x->data, l->bottom[1]->data, s->has_ignore,
                               s->ignore, &loss, &valid);
    int outer = cnn_tensor_dim(x, 0);
    switch (s->norm) {
    case NORM_FULL: n = (double)x->count; break;
    case NORM_VALID: n = (double)valid; break;
    case NORM_BATCH_SIZE: n = outer; break;
    default: n = 1; break;
    }
    s->normalizer = (float)(n < 1 ? 1 : n);
    l->top[0]->data[0] = (float)(loss / s->normalizer);
    return CNN_OK;
}

static cnn_status sce_backward(cnn_layer *l)
{
    const sce_priv *s = l->priv;
    /* Targets have no gradient (Caffe refuses to propagate to them). */
    if (l->propagate_down[1] && l->bottom[1] != l->bottom[0])
        cnn_k_set(l->bottom[1]->count, 0.f, l->bottom[1]->grad);
    if (!l->propagate_down[0]) return CNN_OK;
    const cnn_tensor *x = l->bottom[0];
    float scale = l->top[0]->grad[0] / s->normalizer;
    cnn_k_sigmoid_xent_backward(x->count, x->data, l->bottom[1]->data, s->has_ignore,
                                s->ignore, scale, l->bottom[0]->grad);
    return CNN_OK;
}

static cnn_status sce_forward_gpu(cnn_layer *l)
{
    cnn_status st = CNN_OK;
    sce_priv *s = l->priv;
    const cnn_tensor *x = l->bottom[0];
    const float *xd, *t;
    float *loss, norm = 1;
    CNN_TRY(cnn_gpu_read(l->bottom[0], &xd));
    CNN_TRY(cnn_gpu_read(l->bottom[1], &t));
    CNN_TRY(cnn_cuda_sigmoid_xent_forward(l->cuda, x->count, xd, t, s->has_ignore, s->ignore,
                                          s->dev.f + CNN_LOSS_SUM));
    switch (s->norm) {
    case NORM_FULL: norm = (float)x->count; break;
    case NORM_VALID: norm = 0; break; /* the device's count of valid targets */
    case NORM_BATCH_SIZE: norm = (float)cnn_tensor_dim(x, 0); break;
    default: norm = 1; break;
    }
    if (s->norm != NORM_VALID && norm < 1) norm = 1;
    if (norm > 0) s->normalizer = norm;
    CNN_TRY(cnn_gpu_write(l->top[0], &loss));
    CNN_TRY(cnn_loss_dev_normalize(&s->dev, norm, loss));
fail:
    return st;
}

static cnn_status sce_backward_gpu(cnn_layer *l)
{
    cnn_status st = CNN_OK;
    sce_priv *s = l->priv;
    const cnn_tensor *x = l->bottom[0];
    const float *xd, *t, *dtop, *scale;
    float *dx;
    if (l->propagate_down[1] && l->bottom[1] != l->bottom[0]) {
        CNN_TRY(cnn_gpu_write_grad(l->bottom[1], &dx));
        CNN_TRY(cnn_cuda_set(l->cuda, l->bottom[1]->count, 0.f, dx));
    }
    if (!l->propagate_down[0]) return CNN_OK;
    CNN_TRY(cnn_gpu_read(l->bottom[0], &xd));
    CNN_TRY(cnn_gpu_read(l->bottom[1], &t));
    CNN_TRY(cnn_gpu_read_grad(l->top[0], &dtop));
    CNN_TRY(cnn_loss_dev_scale(&s->dev, dtop, &scale));
    CNN_TRY(cnn_gpu_write_grad(l->bottom[0], &dx));
    CNN_TRY(cnn_cuda_sigmoid_xent_backward(l->cuda, x->count, xd, t, s->has_ignore,
                                           s->ignore, 1.f, scale, dx));
fail:
    return st;
}

static double sce_flops(const cnn_layer *l) { return 6.0 * (double)l->bottom[0]->count; }

const cnn_layer_type cnn_layer_SigmoidCrossEntropyLoss = {
    .name = "SigmoidCrossEntropyLoss",
    .min_bottoms = 2,
    .max_bottoms = 2,
    .min_tops = 1,
    .max_tops = 1,
    .is_loss = true,
    .setup = sce_setup,
    .reshape = sce_reshape,
    .forward = sce_forward,
    .backward = sce_backward,
    .destroy = sce_destroy,
    .flops = sce_flops,
    .forward_gpu = sce_forward_gpu,
    .backward_gpu = sce_backward_gpu,
};
