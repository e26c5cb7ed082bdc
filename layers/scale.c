/* scale.c — Caffe's Scale layer: y = x * s (+ b), s broadcast over the
 * axes of x it does not cover. With one bottom s is a learned parameter of
 * shape x.shape[axis, axis + num_axes) (num_axes -1: to the end); with two
 * bottoms s is bottom[1], whose shape must match x's from `axis`.
 * scale_param: axis (1), num_axes (1), filler (constant 1), bias_term
 * (false), bias_filler (constant 0). Parameters: the scale (one bottom),
 * then the bias when bias_term. Runs in place. The GPU path uses the
 * broadcast kernels of kernels/cuda/batchnorm.cu, the saved input in a
 * device buffer allocated at reshape. */
#include <stdlib.h>

#include "../core/gpu.h"
#include "../kernels/kernels.h"
#include "layer.h"

typedef struct {
    int axis, num_axes;
    bool bias;
    cnn_filler filler, bias_filler;
    int outer, dim;    /* x viewed as (outer, dim, inner), dim = scale count */
    size_t inner;
    cnn_tensor *saved; /* (bottom shape) the input, kept when running in place */
    cnn_cuda_ctx *cuda; /* GPU: the context dev_saved lives on */
    float *dev_saved;   /* GPU: saved's device buffer, dev_saved_cap floats */
    size_t dev_saved_cap;
} scale_priv;

static void scale_destroy(cnn_layer *l)
{
    scale_priv *s = l->priv;
    if (s) {
        cnn_tensor_free(s->saved);
        cnn_cuda_free(s->cuda, s->dev_saved);
    }
    free(s);
    l->priv = NULL;
}

static cnn_status scale_setup(cnn_layer *l, cnn_cfg *cfg)
{
    cnn_status st = CNN_OK;
    cnn_cfg *p = NULL;
    CNN_TRY(cnn_layer_alloc_priv(l, sizeof(scale_priv)));
    scale_priv *s = l->priv;
    s->axis = 1;
    s->num_axes = 1;
    CNN_TRY(cnn_cfg_message(cfg, "scale_param", &p));
    if (p) {
        CNN_TRY(cnn_cfg_int(p, "axis", 1, &s->axis));
        CNN_TRY(cnn_cfg_int(p, "num_axes", 1, &s->num_axes));
        CNN_TRY(cnn_cfg_bool(p, "bias_term", false, &s->bias));
    }
    CNN_TRY(cnn_filler_parse(p, "filler", 1.f, &s->filler));
    CNN_TRY(cnn_filler_parse(p, "bias_filler", 0.f, &s->bias_filler));
    if (s->num_axes < -1)
        return cnn_layer_error(l, CNN_ERR_CONFIG, "num_axes must be non-negative, or -1 to "
                                                  "extend to the end of bottom[0]; got %d",
                               s->num_axes);
fail:
    return st;
}

static cnn_status scale_reshape(cnn_layer *l)
{
    cnn_status st = CNN_OK;
    scale_priv *s = l->priv;
    const cnn_tensor *x = l->bottom[0];
    char xs[64], ss[64];
    int axis = cnn_tensor_axis(x, s->axis);
    int snd, sshape[CNN_MAX_DIMS];
    if (l->n_bottom == 1) {
        if (axis < 0)
            return cnn_layer_error(l, CNN_ERR_SHAPE, "axis %d out of range for bottom %s",
                                   s->axis, cnn_tensor_shape_str(x, xs, sizeof xs));
        snd = s->num_axes == -1 ? x->ndim - axis : s->num_axes;
        if (axis + snd > x->ndim)
            return cnn_layer_error(l, CNN_ERR_SHAPE, "axis %d + num_axes %d exceed the %d "
                                                     "axes of bottom %s", axis, snd, x->ndim,
                                   cnn_tensor_shape_str(x, xs, sizeof xs));
        for (int i = 0; i < snd; i++) sshape[i] = x->shape[axis + i];
        CNN_TRY(cnn_layer_param(l, 0, snd, sshape, &s->filler, NULL));
    } else {
        const cnn_tensor *sc = l->bottom[1];
        snd = sc->ndim;
        for (int i = 0; i < snd; i++) sshape[i] = sc->shape[i];
        /* A scalar scale works with any axis; Caffe uses 0. */
        if (snd == 0) axis = 0;
        if (axis < 0 || axis + snd > x->ndim)
            return cnn_layer_error(l, CNN_ERR_SHAPE, "scale %s does not fit bottom %s at "
                                                     "axis %d",
                                   cnn_tensor_shape_str(sc, ss, sizeof ss),
                                   cnn_tensor_shape_str(x, xs, sizeof xs), s->axis);
        for (int i = 0; i < snd; i++)
            if (x->shape[axis + i] != sc->shape[i])
                return cnn_layer_error(l, CNN_ERR_SHAPE, "scale %s does not match bottom %s "
                                                         "from axis %d",
                                       cnn_tensor_shape_str(sc, ss, sizeof ss),
                                       cnn_tensor_shape_str(x, xs, sizeof xs), axis);
    }
    if (snd == 0) axis = 0;
    if (s->bias) CNN_TRY(cnn_layer_param(l, l->n_bottom == 1 ? 1 : 0, snd, sshape,
                                         &s->bias_filler, NULL));
    s->outer = (int)cnn_tensor_count_range(x, 0, axis);
    s->dim = (int)cnn_tensor_count_range(x, axis, axis + snd);
    s->inner = cnn_tensor_count_range(x, axis + snd, x->ndim);
    CNN_TRY(cnn_tensor_reshape_like(l->top[0], x));
    if (l->top[0] == l->bottom[0]) {
        if (!s->saved && !(s->saved = cnn_tensor_create(NULL)))
            return cnn_layer_error(l, CNN_ERR_MEMORY, "out of memory");
        CNN_TRY(cnn_tensor_reshape_like(s->saved, x));
        if (l->cuda && x->count > s->dev_saved_cap) {
            void *buf = NULL;
            if ((st = cnn_cuda_malloc(l->cuda, x->count * sizeof(float), &buf)) != CNN_OK)
                return cnn_layer_error(l, st, "%s", cnn_error_message());
            cnn_cuda_free(s->cuda, s->dev_saved);
            s->cuda = l->cuda;
            s->dev_saved = buf;
            s->dev_saved_cap = x->count;
        }
    }
fail:
    return st;
}

static cnn_status scale_forward(cnn_layer *l)
{
    const scale_priv *s = l->priv;
    const cnn_tensor *x = l->bottom[0];
    const float *sc = l->n_bottom == 1 ? l->param[0]->data : l->bottom[1]->data;
    const float *b = s->bias ? l->param[l->n_bottom == 1 ? 1 : 0]->data : NULL;
    if (l->top[0] == l->bottom[0]) cnn_k_copy(x->count, x->data, s->saved->data);
    cnn_k_bcast_scale(s->outer, s->dim, s->inner, x->data, sc, b, l->top[0]->data);
    return CNN_OK;
}

static cnn_status scale_backward(cnn_layer *l)
{
    const scale_priv *s = l->priv;
    const float *dy = l->top[0]->grad;
    const float *x = l->top[0] == l->bottom[0] ? s->saved->data : l->bottom[0]->data;
    /* Scale and bias gradients first: in place, dx overwrites dy. */
    if (s->bias)
        cnn_k_bcast_bias_grad(s->outer, s->dim, s->inner, dy,
                              l->param[l->n_bottom == 1 ? 1 : 0]->grad);
    if (l->n_bottom == 1)
        cnn_k_bcast_scale_grad(s->outer, s->dim, s->inner, x, dy, true, l->param[0]->grad);
    else if (l->propagate_down[1])
        cnn_k_bcast_scale_grad(s->outer, s->dim, s->inner, x, dy, false, l->bottom[1]->grad);
    if (l->propagate_down[0]) {
        const float *sc = l->n_bottom == 1 ? l->param[0]->data : l->bottom[1]->data;
        cnn_k_bcast_scale(s->outer, s->dim, s->inner, dy, sc, NULL, l->bottom[0]->grad);
    }
    return CNN_OK;
}

static cnn_status scale_forward_gpu(cnn_layer *l)
{
    const scale_priv *s = l->priv;
    cnn_status st = CNN_OK;
    cnn_tensor *x = l->bottom[0];
    const float *xd, *sc, *b = NULL;
    float *y;
    CNN_TRY(cnn_gpu_read(l->n_bottom == 1 ? l->param[0] : l->bottom[1], &sc));
    if (s->bias) CNN_TRY(cnn_gpu_read(l->param[l->n_bottom == 1 ? 1 : 0], &b));
    CNN_TRY(cnn_gpu_read(x, &xd));
    if (l->top[0] == x) CNN_TRY(cnn_cuda_copy(l->cuda, x->count, xd, s->dev_saved));
    CNN_TRY(cnn_gpu_write(l->top[0], &y));
    CNN_TRY(cnn_cuda_bcast_scale(l->cuda, s->outer, s->dim, s->inner, xd, sc, b, y));
fail:
    return st;
}

static cnn_status scale_backward_gpu(cnn_layer *l)
{
    const scale_priv *s = l->priv;
    cnn_status st = CNN_OK;
    const float *dy, *x, *sc;
    float *g;
    bool acc;
    CNN_TRY(cnn_gpu_read_grad(l->top[0], &dy));
    if (l->top[0] == l->bottom[0])
        x = s->dev_saved;
    else
        CNN_TRY(cnn_gpu_read(l->bottom[0], &x));
    /* Scale and bias gradients first: in place, dx overwrites dy. */
    if (s->bias) {
        CNN_TRY(cnn_gpu_accumulate_grad(l->param[l->n_bottom == 1 ? 1 : 0], &g, &acc));
        CNN_TRY(cnn_cuda_bcast_bias_grad(l->cuda, s->outer, s->dim, s->inner, dy, acc, g));
    }
    if (l->n_bottom == 1) {
        CNN_TRY(cnn_gpu_accumulate_grad(l->param[0], &g, &acc));
        CNN_TRY(cnn_cuda_bcast_scale_grad(l->cuda, s->outer, s->dim, s->inner, x, dy, acc, g));
    } else if (l->propagate_down[1]) {
        CNN_TRY(cnn_gpu_write_grad(l->bottom[1], &g));
        CNN_TRY(cnn_cuda_bcast_scale_grad(l->cuda, s->outer, s->dim, s->inner, x, dy, false, g));
    }
    if (l->propagate_down[0]) {
        CNN_TRY(cnn_gpu_read(l->n_bottom == 1 ? l->param[0] : l->bottom[1], &sc));
        CNN_TRY(cnn_gpu_write_grad(l->bottom[0], &g));
        CNN_TRY(cnn_cuda_bcast_scale(l->cuda, s->outer, s->dim, s->inner, dy, sc, NULL, g));
    }
fail:
    return st;
}

static double scale_flops(const cnn_layer *l) { return 2.0 * (double)l->bottom[0]->count; }

const cnn_layer_type cnn_layer_Scale = {
    .name = "Scale",
    .min_bottoms = 1,
    .max_bottoms = 2,
    .min_tops = 1,
    .max_tops = 1,
    .setup = scale_setup,
    .reshape = scale_reshape,
    .forward = scale_forward,
    .backward = scale_backward,
    .destroy = scale_destroy,
    .flops = scale_flops,
    .forward_gpu = scale_forward_gpu,
    .backward_gpu = scale_backward_gpu,
};
