/* split.c — the Split layer (one bottom copied to N tops; the net inserts
 * one wherever a blob feeds several layers, so gradients from all consumers
 * are summed) and the Silence layer (consumes bottoms, produces nothing).
 * Both have a GPU path doing the same on device copies. */
#include <string.h>

#include "../core/gpu.h"
#include "kernels/kernels.h"
#include "layer.h"

/* ---- Split -------------------------------------------------------------- */

static cnn_status split_reshape(cnn_layer *l)
{
    cnn_status st = CNN_OK;
    for (int t = 0; t < l->n_top; t++)
        if (l->top[t] != l->bottom[0]) CNN_TRY(cnn_tensor_reshape_like(l->top[t], l->bottom[0]));
fail:
    return st;
}

static cnn_status split_forward(cnn_layer *l)
{
    const cnn_tensor *b = l->bottom[0];
    for (int t = 0; t < l->n_top; t++)
        if (l->top[t] != b) memcpy(l->top[t]->data, b->data, b->count * sizeof(float));
    return CNN_OK;
}

static cnn_status split_backward(cnn_layer *l)
{
    if (!l->propagate_down[0]) return CNN_OK;
    cnn_tensor *b = l->bottom[0];
    /* A top that is the bottom already holds its share of the gradient. */
    int first = -1;
    for (int t = 0; t < l->n_top && first < 0; t++)
        if (l->top[t] == b) first = t;
    if (first < 0) {
        first = 0;
        memcpy(b->grad, l->top[0]->grad, b->count * sizeof(float));
    }
    for (int t = 0; t < l->n_top; t++)
        if (t != first && l->top[t] != b) cnn_k_axpy(b->count, 1.f, l->top[t]->grad, b->grad);
    return CNN_OK;
}

static cnn_status split_forward_gpu(cnn_layer *l)
{
    cnn_status st = CNN_OK;
    cnn_tensor *b = l->bottom[0];
    const float *x;
    float *y;
    CNN_TRY(cnn_gpu_read(b, &x));
    for (int t = 0; t < l->n_top; t++) {
        if (l->top[t] == b) continue;
        CNN_TRY(cnn_gpu_write(l->top[t], &y));
        CNN_TRY(cnn_cuda_copy(l->cuda, b->count, x, y));
    }
fail:
    return st;
}

/* The CPU's sum, in its order: the first gradient (the bottom's own when a
 * top is the bottom), then the other tops' in order, folded left in groups
 * of at most CNN_CUDA_ELT_MAX_BOTTOMS (the running sum first in each). */
static cnn_status split_backward_gpu(cnn_layer *l)
{
    cnn_status st = CNN_OK;
    cnn_tensor *b = l->bottom[0];
    const float *dys[CNN_CUDA_ELT_MAX_BOTTOMS];
    float *dx;
    int first = -1, k = 0;
    if (!l->propagate_down[0]) return CNN_OK;
    for (int t = 0; t < l->n_top && first < 0; t++)
        if (l->top[t] == b) first = t;
    if (first < 0) {
        first = 0;
        CNN_TRY(cnn_gpu_read_grad(l->top[0], &dys[k++]));
        CNN_TRY(cnn_gpu_write_grad(b, &dx));
    } else {
        CNN_TRY(cnn_gpu_modify_grad(b, &dx));
        dys[k++] = dx;
    }
    for (int t = 0; t < l->n_top; t++) {
        if (t == first || l->top[t] == b) continue;
        if (k == CNN_CUDA_ELT_MAX_BOTTOMS) {
            CNN_TRY(cnn_cuda_split_accumulate(l->cuda, k, dys, b->count, dx));
            dys[0] = dx;
            k = 1;
        }
        CNN_TRY(cnn_gpu_read_grad(l->top[t], &dys[k++]));
    }
    CNN_TRY(cnn_cuda_split_accumulate(l->cuda, k, dys, b->count, dx));
fail:
    return st;
}

const cnn_layer_type cnn_layer_Split = {
    .name = "Split",
    .min_bottoms = 1,
    .max_bottoms = 1,
    .min_tops = 1,
    .max_tops = -1,
    .reshape = split_reshape,
    .forward = split_forward,
    .backward = split_backward,
    .forward_gpu = split_forward_gpu,
    .backward_gpu = split_backward_gpu,
};

/* ---- Silence ------------------------------------------------------------ */

static cnn_status silence_reshape(cnn_layer *l) { return CNN_OK; }

static cnn_status silence_forward(cnn_layer *l) { return CNN_OK; }

static cnn_status silence_backward(cnn_layer *l)
{
    for (int i = 0; i < l->n_bottom; i++)
        if (l->propagate_down[i])
            memset(l->bottom[i]->grad, 0, l->bottom[i]->count * sizeof(float));
    return CNN_OK;
}

static cnn_status silence_backward_gpu(cnn_layer *l)
{
    cnn_status st = CNN_OK;
    float *dx;
    for (int i = 0; i < l->n_bottom; i++) {
        if (!l->propagate_down[i]) continue;
        CNN_TRY(cnn_gpu_write_grad(l->bottom[i], &dx));
        CNN_TRY(cnn_cuda_set(l->cuda, l->bottom[i]->count, 0.f, dx));
    }
fail:
    return st;
}

const cnn_layer_type cnn_layer_Silence = {
    .name = "Silence",
    .min_bottoms = 1,
    .max_bottoms = -1,
    .min_tops = 0,
    .max_tops = 0,
    .reshape = silence_reshape,
    .forward = silence_forward,
    .backward = silence_backward,
    .forward_gpu = silence_forward,
    .backward_gpu = silence_backward_gpu,
};
