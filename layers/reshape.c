/* reshape.c — the Flatten and Reshape layers: the same values under a new
 * shape. Flatten merges axes [axis, end_axis] (flatten_param); Reshape
 * follows Caffe's reshape_param { shape { dim } axis num_axes }, where dim 0
 * copies the bottom's dimension and one dim -1 is inferred. Our tensors do
 * not share storage, so forward copies the data and backward the gradient,
 * on the device too (each tensor has its own device mirror). */
#include <string.h>

#include "../core/gpu.h"
#include "layer.h"

typedef struct {
    /* Flatten */
    int axis, end_axis;
    /* Reshape */
    int ndim;                /* dims in reshape_param.shape */
    int dim[CNN_MAX_DIMS];   /* (ndim) as written: 0 copy, -1 infer */
    int num_axes;            /* -1: to the end */
} reshape_priv;

static cnn_status copy_forward(cnn_layer *l)
{
    memcpy(l->top[0]->data, l->bottom[0]->data, l->bottom[0]->count * sizeof(float));
    return CNN_OK;
}

static cnn_status copy_backward(cnn_layer *l)
{
    if (l->propagate_down[0])
        memcpy(l->bottom[0]->grad, l->top[0]->grad, l->bottom[0]->count * sizeof(float));
    return CNN_OK;
}

static cnn_status copy_forward_gpu(cnn_layer *l)
{
    cnn_status st = CNN_OK;
    const float *x;
    float *y;
    CNN_TRY(cnn_gpu_read(l->bottom[0], &x));
    CNN_TRY(cnn_gpu_write(l->top[0], &y));
    CNN_TRY(cnn_cuda_copy(l->cuda, l->bottom[0]->count, x, y));
fail:
    return st;
}

static cnn_status copy_backward_gpu(cnn_layer *l)
{
    cnn_status st = CNN_OK;
    const float *dy;
    float *dx;
    if (!l->propagate_down[0]) return CNN_OK;
    CNN_TRY(cnn_gpu_read_grad(l->top[0], &dy));
    CNN_TRY(cnn_gpu_write_grad(l->bottom[0], &dx));
    CNN_TRY(cnn_cuda_copy(l->cuda, l->bottom[0]->count, dy, dx));
fail:
    return st;
}

static cnn_status not_in_place(cnn_layer *l)
{
    if (l->top[0] == l->bottom[0])
        return cnn_layer_error(l, CNN_ERR_CONFIG, "%s cannot run in place (top and bottom "
                               "must differ)", l->type->name);
    return CNN_OK;
}

/* ---- Flatten ------------------------------------------------------------ */

static cnn_status flatten_setup(cnn_layer *l, cnn_cfg *cfg)
{
    cnn_status st = CNN_OK;
    cnn_cfg *p = NULL;
    CNN_TRY(cnn_layer_alloc_priv(l, sizeof(reshape_priv)));
    reshape_priv *r = l->priv;
    CNN_TRY(cnn_cfg_message(cfg, "flatten_param", &p));
    CNN_TRY(cnn_cfg_int(p, "axis", 1, &r->axis));
    CNN_TRY(cnn_cfg_int(p, "end_axis", -1, &r->end_axis));
fail:
    return st;
}

static cnn_status flatten_reshape(cnn_layer *l)
{
    cnn_status st = CNN_OK;
    reshape_priv *r = l->priv;
    const cnn_tensor *b = l->bottom[0];
    CNN_TRY(not_in_place(l));
    int start = cnn_tensor_axis(b, r->axis), end = cnn_tensor_axis(b, r->end_axis);
    if (start < 0 || end < 0 || end < start)
        return cnn_layer_error(l, CNN_ERR_SHAPE, "axis %d .. end_axis %d is not a range of "
                               "axes of the %d-d bottom", r->axis, r->end_axis, b->ndim);
    int shape[CNN_MAX_DIMS], nd = 0;
    for (int d = 0; d < start; d++) shape[nd++] = b->shape[d];
    size_t merged = cnn_tensor_count_range(b, start, end + 1);
    if (merged > 0x7fffffff)
        return cnn_layer_error(l, CNN_ERR_SHAPE, "flattened dimension %zu is too large",
                               merged);
    shape[nd++] = (int)merged;
    for (int d = end + 1; d < b->ndim; d++) shape[nd++] = b->shape[d];
    CNN_TRY(cnn_tensor_reshape(l->top[0], nd, shape));
fail:
    return st;
}

const cnn_layer_type cnn_layer_Flatten = {
    .name = "Flatten",
    .min_bottoms = 1,
    .max_bottoms = 1,
    .min_tops = 1,
    .max_tops = 1,
    .setup = flatten_setup,
    .reshape = flatten_reshape,
    .forward = copy_forward,
    .backward = copy_backward,
    .forward_gpu = copy_forward_gpu,
    .backward_gpu = copy_backward_gpu,
};

/* ---- Reshape ------------------------------------------------------------ */

static cnn_status reshape_setup(cnn_layer *l, cnn_cfg *cfg)
{
    cnn_status st = CNN_OK;
    cnn_cfg *p = NULL, *shape = NULL;
    CNN_TRY(cnn_layer_alloc_priv(l, sizeof(reshape_priv)));
    reshape_priv *r = l->priv;
    CNN_TRY(cnn_cfg_message(cfg, "reshape_param", &p));
    CNN_TRY(cnn_cfg_int(p, "axis", 0, &r->axis));
    CNN_TRY(cnn_cfg_int(p, "num_axes", -1, &r->num_axes));
    if (r->num_axes < -1)
        return cnn_cfg_error(cnn_cfg_get(p, "num_axes"), CNN_ERR_CONFIG,
                             "num_axes must be -1 (to the end) or >= 0, not %d", r->num_axes);
    CNN_TRY(cnn_cfg_message(p, "shape", &shape));
    if (!shape)
        return cnn_layer_error(l, CNN_ERR_CONFIG, "reshape_param { shape { dim … } } missing");
    r->ndim = cnn_cfg_count(shape, "dim");
    if (r->ndim > CNN_MAX_DIMS)
        return cnn_cfg_error(shape, CNN_ERR_CONFIG, "shape has %d dims (at most %d)", r->ndim,
                             CNN_MAX_DIMS);
    int inferred = -1;
    for (int d = 0; d < r->ndim; d++) {
        cnn_cfg *f = cnn_cfg_nth(shape, "dim", d);
        CNN_TRY(cnn_cfg_as_int(f, &r->dim[d]));
        if (r->dim[d] < -1)
            return cnn_cfg_error(f, CNN_ERR_CONFIG, "dim %d is invalid (use 0 to copy, -1 to "
                                 "infer, or a positive size)", r->dim[d]);
        if (r->dim[d] == -1) {
            if (inferred >= 0)
                return cnn_cfg_error(f, CNN_ERR_CONFIG, "shape has more than one -1 dim "
                                     "(dims %d and %d); only one can be inferred", inferred, d);
            inferred = d;
        }
    }
fail:
    return st;
}

static cnn_status reshape_reshape(cnn_layer *l)
{
    cnn_status st = CNN_OK;
    reshape_priv *r = l->priv;
    const cnn_tensor *b = l->bottom[0];
    CNN_TRY(not_in_place(l));
    int start = r->axis >= 0 ? r->axis : b->ndim + r->axis + 1;
    if (start < 0 || start > b->ndim)
        return cnn_layer_error(l, CNN_ERR_SHAPE, "axis %d is out of range for the %d-d bottom",
                               r->axis, b->ndim);
    int end = r->num_axes == -1 ? b->ndim : start + r->num_axes;
    if (end > b->ndim)
        return cnn_layer_error(l, CNN_ERR_SHAPE, "axis %d + num_axes %d run past the %d-d "
                               "bottom", r->axis, r->num_axes, b->ndim);
    int nd = b->ndim - (end - start) + r->ndim;
    if (nd > CNN_MAX_DIMS)
        return cnn_layer_error(l, CNN_ERR_SHAPE, "top would have %d dims (at most %d)", nd,
                               CNN_MAX_DIMS);
    int shape[CNN_MAX_DIMS], at = 0, inferred = -1;
    for (int d = 0; d < start; d++) shape[at++] = b->shape[d];
    /* Everything but the inferred dim: the kept axes, copies and constants. */
    size_t known = cnn_tensor_count_range(b, 0, start) * cnn_tensor_count_range(b, end, b->ndim);
    for (int d = 0; d < r->ndim; d++, at++) {
        int v = r->dim[d];
        if (v == 0) {
            if (start + d >= b->ndim)
                return cnn_layer_error(l, CNN_ERR_SHAPE, "dim %d is 0 (copy) but the bottom "
                                       "has no axis %d", d, start + d);
            v = b->shape[start + d];
        } else if (v == -1) {
            inferred = at;
            continue;
        }
        shape[at] = v;
        known *= (size_t)v;
    }
    for (int d = end; d < b->ndim; d++) shape[at++] = b->shape[d];
    char bs[96];
    if (inferred >= 0) {
        if (known == 0 || b->count % known)
            return cnn_layer_error(l, CNN_ERR_SHAPE, "cannot infer the -1 dim: the bottom's "
                                   "%zu values (%s) are not a multiple of %zu", b->count,
                                   cnn_tensor_shape_str(b, bs, sizeof bs), known);
        size_t v = b->count / known;
        if (v > 0x7fffffff)
            return cnn_layer_error(l, CNN_ERR_SHAPE, "inferred dim %zu is too large", v);
        shape[inferred] = (int)v;
        known *= v;
    }
    if (known != b->count)
        return cnn_layer_error(l, CNN_ERR_SHAPE, "new shape holds %zu values but the bottom "
                               "(%s) has %zu", known, cnn_tensor_shape_str(b, bs, sizeof bs),
                               b->count);
    CNN_TRY(cnn_tensor_reshape(l->top[0], nd, shape));
fail:
    return st;
}

const cnn_layer_type cnn_layer_Reshape = {
    .name = "Reshape",
    .min_bottoms = 1,
    .max_bottoms = 1,
    .min_tops = 1,
    .max_tops = 1,
    .setup = reshape_setup,
    .reshape = reshape_reshape,
    .forward = copy_forward,
    .backward = copy_backward,
    .forward_gpu = copy_forward_gpu,
    .backward_gpu = copy_backward_gpu,
};
