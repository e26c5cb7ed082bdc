/* concat.c — the Concat layer: joins its bottoms along one axis
 * (concat_param { axis: 1 }, or Caffe's legacy concat_dim). All other
 * dimensions must agree. The GPU path does the same strided copies on the
 * device. */
#include <string.h>

#include "../core/gpu.h"
#include "layer.h"

typedef struct {
    int axis; /* as written; may be negative until reshape */
} concat_priv;

static cnn_status concat_setup(cnn_layer *l, cnn_cfg *cfg)
{
    cnn_status st = CNN_OK;
    cnn_cfg *p = NULL;
    CNN_TRY(cnn_layer_alloc_priv(l, sizeof(concat_priv)));
    concat_priv *c = l->priv;
    CNN_TRY(cnn_cfg_message(cfg, "concat_param", &p));
    unsigned dim = 1;
    CNN_TRY(cnn_cfg_int(p, "axis", 1, &c->axis));
    CNN_TRY(cnn_cfg_uint(p, "concat_dim", 1, &dim));
    if (cnn_cfg_count(p, "concat_dim")) {
        if (cnn_cfg_count(p, "axis"))
            return cnn_layer_error(l, CNN_ERR_CONFIG,
                                   "give either axis or concat_dim in concat_param, not both");
        if (dim > CNN_MAX_DIMS)
            return cnn_layer_error(l, CNN_ERR_CONFIG, "concat_dim %u is out of range", dim);
        c->axis = (int)dim;
    }
fail:
    return st;
}

static cnn_status concat_reshape(cnn_layer *l)
{
    concat_priv *c = l->priv;
    const cnn_tensor *b0 = l->bottom[0];
    int axis = cnn_tensor_axis(b0, c->axis);
    if (axis < 0)
        return cnn_layer_error(l, CNN_ERR_SHAPE, "axis %d is out of range for a %d-d bottom",
                               c->axis, b0->ndim);
    int shape[CNN_MAX_DIMS];
    memcpy(shape, b0->shape, sizeof shape);
    for (int i = 1; i < l->n_bottom; i++) {
        const cnn_tensor *b = l->bottom[i];
        bool fits = b->ndim == b0->ndim;
        for (int d = 0; fits && d < b0->ndim; d++) fits = d == axis || b->shape[d] == b0->shape[d];
        if (!fits) {
            char s0[96], s1[96];
            return cnn_layer_error(l, CNN_ERR_SHAPE,
                                   "bottom %d is %s but bottom 0 is %s; all dimensions "
                                   "except axis %d must agree", i,
                                   cnn_tensor_shape_str(b, s1, sizeof s1),
                                   cnn_tensor_shape_str(b0, s0, sizeof s0), axis);
        }
        shape[axis] += b->shape[axis];
    }
    for (int i = 0; i < l->n_bottom; i++)
        if (l->bottom[i] == l->top[0])
            return cnn_layer_error(l, CNN_ERR_CONFIG, "Concat cannot run in place");
    return cnn_tensor_reshape(l->top[0], b0->ndim, shape);
}

/* The top as `outer` rows of top_chunk floats; bottom i fills `inner`
 * times its extent along the axis of each row. */
typedef struct {
    int axis;
    size_t outer, inner, top_chunk;
} concat_geom;

static concat_geom geom(const cnn_layer *l)
{
    const concat_priv *c = l->priv;
    const cnn_tensor *top = l->top[0];
    concat_geom g = {.axis = cnn_tensor_axis(top, c->axis)};
    g.outer = cnn_tensor_count_range(top, 0, g.axis);
    g.inner = cnn_tensor_count_range(top, g.axis + 1, top->ndim);
    g.top_chunk = (size_t)top->shape[g.axis] * g.inner;
    return g;
}

/* Copies between the bottoms and the top: to the top when `fwd`, else the
 * top's gradient back into the bottoms' gradients. */
static void concat_copy(cnn_layer *l, bool fwd)
{
    cnn_tensor *top = l->top[0];
    concat_geom g = geom(l);
    size_t outer = g.outer, top_chunk = g.top_chunk, at = 0;
    for (int i = 0; i < l->n_bottom; i++) {
        cnn_tensor *b = l->bottom[i];
        size_t chunk = (size_t)b->shape[g.axis] * g.inner;
        if (fwd || l->propagate_down[i]) {
#pragma omp parallel for if (outer * chunk > 65536)
            for (size_t o = 0; o < outer; o++) {
                if (fwd)
                    memcpy(top->data + o * top_chunk + at, b->data + o * chunk,
                           chunk * sizeof(float));
                else
                    memcpy(b->grad + o * chunk, top->grad + o * top_chunk + at,
                           chunk * sizeof(float));
            }
        }
        at += chunk;
    }
}

static cnn_status concat_forward(cnn_layer *l)
{
    concat_copy(l, true);
    return CNN_OK;
}

static cnn_status concat_backward(cnn_layer *l)
{
    concat_copy(l, false);
    return CNN_OK;
}

/* concat_copy on the device: bottoms' data into the top's (fwd), or the
 * top's grad back into the bottoms' grads that need it. */
static cnn_status concat_copy_gpu(cnn_layer *l, bool fwd)
{
    cnn_status st = CNN_OK;
    cnn_tensor *top = l->top[0];
    concat_geom g = geom(l);
    size_t at = 0;
    const float *src;
    float *y = NULL, *x;
    if (fwd) {
        CNN_TRY(cnn_gpu_write(top, &y));
    } else {
        CNN_TRY(cnn_gpu_read_grad(top, &src));
        y = (float *)src; /* only read (!to_y) */
    }
    for (int i = 0; i < l->n_bottom; i++) {
        cnn_tensor *b = l->bottom[i];
        size_t chunk = (size_t)b->shape[g.axis] * g.inner;
        if (fwd) {
            CNN_TRY(cnn_gpu_read(b, &src));
            x = (float *)src; /* only read (to_y) */
        } else if (l->propagate_down[i]) {
            CNN_TRY(cnn_gpu_write_grad(b, &x));
        } else {
            at += chunk;
            continue;
        }
        CNN_TRY(cnn_cuda_concat_copy(l->cuda, g.outer, chunk, g.top_chunk, at, fwd, x, y));
        at += chunk;
    }
fail:
    return st;
}

static cnn_status concat_forward_gpu(cnn_layer *l) { return concat_copy_gpu(l, true); }

static cnn_status concat_backward_gpu(cnn_layer *l) { return concat_copy_gpu(l, false); }

const cnn_layer_type cnn_layer_Concat = {
    .name = "Concat",
    .min_bottoms = 1,
    .max_bottoms = -1,
    .min_tops = 1,
    .max_tops = 1,
    .setup = concat_setup,
    .reshape = concat_reshape,
    .forward = concat_forward,
    .backward = concat_backward,
    .forward_gpu = concat_forward_gpu,
    .backward_gpu = concat_backward_gpu,
};
