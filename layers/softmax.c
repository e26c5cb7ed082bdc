/* softmax.c — Caffe's Softmax layer (softmax_param axis, default 1) and
 * SoftmaxWithLoss: the softmax followed by the multinomial logistic loss of
 * integer labels, loss_param ignore_label and normalization (FULL, VALID,
 * BATCH_SIZE, NONE; default VALID; the legacy `normalize: false` means
 * BATCH_SIZE). An optional second top receives the probabilities. Both
 * have a GPU path; the loss, its normaliser and the backward scale (top
 * gradient, i.e. loss_weight, over the normaliser) stay on the device. */
#include <stdlib.h>

#include "../kernels/kernels.h"
#include "layer.h"
#include "loss_gpu.h"

static const char *const engine_names[] = {"DEFAULT", "CAFFE", "CUDNN", NULL};

enum { NORM_FULL, NORM_VALID, NORM_BATCH_SIZE, NORM_NONE };
static const char *const norm_names[] = {"FULL", "VALID", "BATCH_SIZE", "NONE", NULL};

/* Reads softmax_param (axis, engine) into *axis. */
static cnn_status read_softmax_param(cnn_cfg *cfg, int *axis)
{
    cnn_status st = CNN_OK;
    cnn_cfg *p = NULL;
    int engine = 0;
    *axis = 1;
    CNN_TRY(cnn_cfg_message(cfg, "softmax_param", &p));
    if (p) {
        CNN_TRY(cnn_cfg_int(p, "axis", 1, axis));
        CNN_TRY(cnn_cfg_enum(p, "engine", engine_names, 0, &engine));
    }
fail:
    return st;
}

/* Views x as (outer, c, inner) around `axis`; errors name the layer. */
static cnn_status split_axis(const cnn_layer *l, const cnn_tensor *x, int axis, int *outer,
                             int *c, int *inner)
{
    char buf[64];
    int a = cnn_tensor_axis(x, axis);
    if (a < 0)
        return cnn_layer_error(l, CNN_ERR_SHAPE, "axis %d out of range for bottom %s", axis,
                               cnn_tensor_shape_str(x, buf, sizeof buf));
    *outer = (int)cnn_tensor_count_range(x, 0, a);
    *c = x->shape[a];
    *inner = (int)cnn_tensor_count_range(x, a + 1, x->ndim);
    return CNN_OK;
}

/* ---- Softmax ------------------------------------------------------------- */

typedef struct {
    int axis;
    int outer, c, inner;
} softmax_priv;

static cnn_status softmax_setup(cnn_layer *l, cnn_cfg *cfg)
{
    cnn_status st = CNN_OK;
    CNN_TRY(cnn_layer_alloc_priv(l, sizeof(softmax_priv)));
    softmax_priv *s = l->priv;
    CNN_TRY(read_softmax_param(cfg, &s->axis));
fail:
    return st;
}

static cnn_status softmax_reshape(cnn_layer *l)
{
    cnn_status st = CNN_OK;
    softmax_priv *s = l->priv;
    CNN_TRY(split_axis(l, l->bottom[0], s->axis, &s->outer, &s->c, &s->inner));
    CNN_TRY(cnn_tensor_reshape_like(l->top[0], l->bottom[0]));
fail:
    return st;
}

static cnn_status softmax_forward(cnn_layer *l)
{
    const softmax_priv *s = l->priv;
    cnn_k_softmax_forward(s->outer, s->c, s->inner, l->bottom[0]->data, l->top[0]->data);
    return CNN_OK;
}

static cnn_status softmax_backward(cnn_layer *l)
{
    const softmax_priv *s = l->priv;
    if (l->propagate_down[0])
        cnn_k_softmax_backward(s->outer, s->c, s->inner, l->top[0]->data, l->top[0]->grad,
                               l->bottom[0]->grad);
    return CNN_OK;
}

static cnn_status softmax_forward_gpu(cnn_layer *l)
{
    cnn_status st = CNN_OK;
    const softmax_priv *s = l->priv;
    const float *x;
    float *y;
    CNN_TRY(cnn_layer_gpu_io(l, false, &x, &y));
    CNN_TRY(cnn_cuda_softmax_forward(l->cuda, s->outer, s->c, s->inner, x, y));
fail:
    return st;
}

static cnn_status softmax_backward_gpu(cnn_layer *l)
{
    cnn_status st = CNN_OK;
    const softmax_priv *s = l->priv;
    const float *y, *dy;
    float *dx;
    if (!l->propagate_down[0]) return CNN_OK;
    CNN_TRY(cnn_gpu_read(l->top[0], &y));
    CNN_TRY(cnn_layer_gpu_io(l, true, &dy, &dx));
    CNN_TRY(cnn_cuda_softmax_backward(l->cuda, s->outer, s->c, s->inner, y, dy, dx));
fail:
    return st;
}

static double softmax_flops(const cnn_layer *l) { return 4.0 * (double)l->bottom[0]->count; }

const cnn_layer_type cnn_layer_Softmax = {
    .name = "Softmax",
    .min_bottoms = 1,
    .max_bottoms = 1,
    .min_tops = 1,
    .max_tops = 1,
    .setup = softmax_setup,
    .reshape = softmax_reshape,
    .forward = softmax_forward,
    .backward = softmax_backward,
    .flops = softmax_flops,
    .forward_gpu = softmax_forward_gpu,
    .backward_gpu = softmax_backward_gpu,
};

/* ---- SoftmaxWithLoss --------------------------------------------------- */

typedef struct {
    int axis;
    bool has_ignore;
    int ignore;
    int norm;          /* NORM_* */
    int outer, c, inner;
    float normalizer;  /* of the last forward */
    cnn_tensor *prob;  /* (bottom[0] shape) softmax output */
    cnn_loss_dev dev;  /* GPU: the loss's device scalars */
} swl_priv;

static void swl_destroy(cnn_layer *l)
{
    swl_priv *s = l->priv;
    if (s) {
        cnn_tensor_free(s->prob);
        cnn_loss_dev_free(&s->dev);
    }
    free(s);
    l->priv = NULL;
}

static cnn_status swl_setup(cnn_layer *l, cnn_cfg *cfg)
{
    cnn_status st = CNN_OK;
    cnn_cfg *p = NULL;
    CNN_TRY(cnn_layer_alloc_priv(l, sizeof(swl_priv)));
    swl_priv *s = l->priv;
    s->norm = NORM_VALID;
    CNN_TRY(read_softmax_param(cfg, &s->axis));
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
    if (!(s->prob = cnn_tensor_create(NULL)))
        return cnn_layer_error(l, CNN_ERR_MEMORY, "out of memory");
fail:
    return st;
}

static cnn_status swl_reshape(cnn_layer *l)
{
    cnn_status st = CNN_OK;
    swl_priv *s = l->priv;
    const cnn_tensor *x = l->bottom[0], *label = l->bottom[1];
    char xs[64], ls[64];
    CNN_TRY(split_axis(l, x, s->axis, &s->outer, &s->c, &s->inner));
    if (x->ndim && label->ndim && x->shape[0] != label->shape[0])
        return cnn_layer_error(l, CNN_ERR_SHAPE, "data %s and label %s differ in the first "
                                                 "dimension",
                               cnn_tensor_shape_str(x, xs, sizeof xs),
                               cnn_tensor_shape_str(label, ls, sizeof ls));
    if ((size_t)s->outer * (size_t)s->inner != label->count)
        return cnn_layer_error(l, CNN_ERR_SHAPE, "%zu labels for predictions %s (softmax over "
                                                 "axis %d needs %zu)",
                               label->count, cnn_tensor_shape_str(x, xs, sizeof xs), s->axis,
                               (size_t)s->outer * (size_t)s->inner);
    CNN_TRY(cnn_tensor_reshape(l->top[0], 0, NULL));
    if (l->n_top > 1) CNN_TRY(cnn_tensor_reshape_like(l->top[1], x));
    CNN_TRY(cnn_tensor_reshape_like(s->prob, x));
    if (l->cuda) {
        CNN_TRY(cnn_tensor_attach(s->prob, l->cuda));
        CNN_TRY(cnn_loss_dev_alloc(l, &s->dev));
    }
fail:
    return st;
}

static float normalizer(int mode, int outer, int inner, long valid)
{
    double n = 1;
    switch (mode) {
    case NORM_FULL: n = (double)outer * inner; break;
    case NORM_VALID: n = (double)valid; break;
    case NORM_BATCH_SIZE: n = outer; break;
    default: n = 1; break;
    }
    return (float)(n < 1 ? 1 : n);
}

static cnn_status swl_forward(cnn_layer *l)
{
    swl_priv *s = l->priv;
    const float *label = l->bottom[1]->data;
    double loss = 0;
    long valid = 0;
    cnn_k_softmax_forward(s->outer, s->c, s->inner, l->bottom[0]->data, s->prob->data);
    long bad = cnn_k_softmax_loss_forward(s->outer, s->c, s->inner, s->prob->data, label,
                                          s->has_ignore, s->ignore, &loss, &valid);
    if (bad >= 0)
        return cnn_layer_error(l, CNN_ERR_ARG, "label %g at position %ld is outside [0, %d)",
                               label[bad], bad, s->c);
    s->normalizer = normalizer(s->norm, s->outer, s->inner, valid);
    l->top[0]->data[0] = (float)(loss / s->normalizer);
    if (l->n_top > 1) cnn_k_copy(s->prob->count, s->prob->data, l->top[1]->data);
    return CNN_OK;
}

static cnn_status swl_backward(cnn_layer *l)
{
    const swl_priv *s = l->priv;
    /* Labels have no gradient (Caffe refuses to propagate to them). */
    if (l->propagate_down[1] && l->bottom[1] != l->bottom[0])
        cnn_k_set(l->bottom[1]->count, 0.f, l->bottom[1]->grad);
    if (!l->propagate_down[0]) return CNN_OK;
    float scale = l->top[0]->grad[0] / s->normalizer;
    cnn_k_softmax_loss_backward(s->outer, s->c, s->inner, s->prob->data, l->bottom[1]->data,
                                s->has_ignore, s->ignore, scale, l->bottom[0]->grad);
    return CNN_OK;
}

static cnn_status swl_forward_gpu(cnn_layer *l)
{
    cnn_status st = CNN_OK;
    swl_priv *s = l->priv;
    cnn_cuda_ctx *ctx = l->cuda;
    const float *x, *label;
    float *prob, *loss, *y1;
    CNN_TRY(cnn_gpu_read(l->bottom[0], &x));
    CNN_TRY(cnn_gpu_read(l->bottom[1], &label));
    CNN_TRY(cnn_gpu_write(s->prob, &prob));
    CNN_TRY(cnn_gpu_write(l->top[0], &loss));
    /* VALID's normaliser is the device's count of valid labels. */
    float norm = s->norm == NORM_VALID ? 0.f : normalizer(s->norm, s->outer, s->inner, 0);
    if (norm > 0) s->normalizer = norm;
    if (cnn_cuda_softmax_loss_fits(s->outer, s->c, s->inner)) {
        /* Small (LeNet's batch): one launch instead of about ten. It
         * writes the SUM, COUNT and DEN slots in that order. */
        _Static_assert(CNN_LOSS_SUM == 0 && CNN_LOSS_COUNT == 1 && CNN_LOSS_DEN == 2,
                       "cnn_cuda_softmax_loss_fused's out[] layout");
        CNN_TRY(cnn_cuda_softmax_loss_fused(ctx, s->outer, s->c, s->inner, x, label,
                                            s->has_ignore, s->ignore, norm, prob, s->dev.f,
                                            s->dev.bad, s->dev.first_bad, loss));
        CNN_TRY(cnn_loss_dev_check_latched(l, &s->dev, l->bottom[1], s->c));
    } else {
        CNN_TRY(cnn_cuda_softmax_forward(ctx, s->outer, s->c, s->inner, x, prob));
        CNN_TRY(cnn_cuda_softmax_loss_forward(ctx, s->outer, s->c, s->inner, prob, label,
                                              s->has_ignore, s->ignore,
                                              s->dev.f + CNN_LOSS_SUM, s->dev.bad));
        CNN_TRY(cnn_loss_dev_check(l, &s->dev, l->bottom[1], s->c));
        CNN_TRY(cnn_loss_dev_normalize(&s->dev, norm, loss));
    }
    if (l->n_top > 1) {
        CNN_TRY(cnn_gpu_write(l->top[1], &y1));
        CNN_TRY(cnn_cuda_copy(ctx, s->prob->count, prob, y1));
    }
fail:
    return st;
}

static cnn_status swl_backward_gpu(cnn_layer *l)
{
    cnn_status st = CNN_OK;
    swl_priv *s = l->priv;
    const float *prob, *label, *dtop, *scale;
    float *dx;
    if (l->propagate_down[1] && l->bottom[1] != l->bottom[0]) {
        CNN_TRY(cnn_gpu_write_grad(l->bottom[1], &dx));
        CNN_TRY(cnn_cuda_set(l->cuda, l->bottom[1]->count, 0.f, dx));
    }
    if (!l->propagate_down[0]) return CNN_OK;
    CNN_TRY(cnn_gpu_read(s->prob, &prob));
    CNN_TRY(cnn_gpu_read(l->bottom[1], &label));
    CNN_TRY(cnn_gpu_read_grad(l->top[0], &dtop));
    CNN_TRY(cnn_loss_dev_scale(&s->dev, dtop, &scale));
    CNN_TRY(cnn_gpu_write_grad(l->bottom[0], &dx));
    CNN_TRY(cnn_cuda_softmax_loss_backward(l->cuda, s->outer, s->c, s->inner, prob, label,
                                           s->has_ignore, s->ignore, 1.f, scale, dx));
fail:
    return st;
}

static cnn_status swl_check_gpu(cnn_layer *l)
{
    swl_priv *s = l->priv;
    return cnn_loss_dev_report(l, &s->dev, s->c);
}

static double swl_flops(const cnn_layer *l) { return 5.0 * (double)l->bottom[0]->count; }

const cnn_layer_type cnn_layer_SoftmaxWithLoss = {
    .name = "SoftmaxWithLoss",
    .min_bottoms = 2,
    .max_bottoms = 2,
    .min_tops = 1,
    .max_tops = 2,
    .is_loss = true,
    .setup = swl_setup,
    .reshape = swl_reshape,
    .forward = swl_forward,
    .backward = swl_backward,
    .destroy = swl_destroy,
    .flops = swl_flops,
    .forward_gpu = swl_forward_gpu,
    .backward_gpu = swl_backward_gpu,
    .check_gpu = swl_check_gpu,
};
