/* copy.c — the Copy layer: moves a blob from one logical device to another.
 * The net inserts one wherever a layer reads a blob that lives on another
 * device (named "<blob>_to_dev<K>", K the destination); it runs on the
 * destination device. Forward copies the activations, backward copies the
 * gradient back to the source blob (when several consumers share a copy, a
 * Split after it has already summed their gradients). On the CPU both are
 * memcpy. On GPUs forward is a peer copy on the destination's stream after
 * an event recorded on the source's (so it follows the producer), backward
 * the reverse on the source's stream; neither waits on the host. */
#include <stdlib.h>
#include <string.h>

#include "../core/gpu.h"
#include "layer.h"

typedef struct {
    cnn_cuda_ctx *src;                /* the bottom's context */
    cnn_cuda_event *src_ev, *dst_ev; /* recorded on src's and on l->cuda's stream */
} copy_priv;

static void copy_destroy(cnn_layer *l)
{
    copy_priv *p = l->priv;
    if (p) {
        cnn_cuda_event_free(p->src_ev);
        cnn_cuda_event_free(p->dst_ev);
    }
    free(p);
    l->priv = NULL;
}

/* The events of the GPU path, made at the first reshape. */
static cnn_status plan_gpu(cnn_layer *l)
{
    cnn_status st = CNN_OK;
    cnn_cuda_ctx *src = cnn_tensor_ctx(l->bottom[0]);
    if (!src) {
        l->cuda = NULL; /* a bottom with no mirror: the CPU path */
        return CNN_OK;
    }
    if (l->priv) return CNN_OK;
    CNN_TRY(cnn_layer_alloc_priv(l, sizeof(copy_priv)));
    copy_priv *p = l->priv;
    p->src = src;
    CNN_TRY(cnn_cuda_event_create(src, false, &p->src_ev));
    CNN_TRY(cnn_cuda_event_create(l->cuda, false, &p->dst_ev));
fail:
    return st;
}

static cnn_status copy_reshape(cnn_layer *l)
{
    cnn_status st = CNN_OK;
    if (l->top[0] == l->bottom[0])
        return cnn_layer_error(l, CNN_ERR_CONFIG, "cannot run in place (top == bottom)");
    if (l->cuda) CNN_TRY(plan_gpu(l));
    CNN_TRY(cnn_tensor_reshape_like(l->top[0], l->bottom[0]));
fail:
    return st;
}

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
    copy_priv *p = l->priv;
    const float *x = NULL;
    float *y = NULL;
    CNN_TRY(cnn_gpu_read(l->bottom[0], &x));
    CNN_TRY(cnn_gpu_write(l->top[0], &y));
    CNN_TRY(cnn_cuda_event_record(p->src, p->src_ev));
    CNN_TRY(cnn_cuda_wait_event(l->cuda, p->src_ev));
    CNN_TRY(cnn_cuda_copy_peer(l->cuda, y, p->src, x, l->bottom[0]->count * sizeof(float)));
fail:
    return st;
}

static cnn_status copy_backward_gpu(cnn_layer *l)
{
    cnn_status st = CNN_OK;
    copy_priv *p = l->priv;
    const float *dy = NULL;
    float *dx = NULL;
    if (!l->propagate_down[0]) return CNN_OK;
    CNN_TRY(cnn_gpu_read_grad(l->top[0], &dy));
    CNN_TRY(cnn_gpu_write_grad(l->bottom[0], &dx));
    CNN_TRY(cnn_cuda_event_record(l->cuda, p->dst_ev));
    CNN_TRY(cnn_cuda_wait_event(p->src, p->dst_ev));
    CNN_TRY(cnn_cuda_copy_peer(p->src, dx, l->cuda, dy, l->bottom[0]->count * sizeof(float)));
fail:
    return st;
}

const cnn_layer_type cnn_layer_Copy = {
    .name = "Copy",
    .min_bottoms = 1,
    .max_bottoms = 1,
    .min_tops = 1,
    .max_tops = 1,
    .reshape = copy_reshape,
    .forward = copy_forward,
    .backward = copy_backward,
    .destroy = copy_destroy,
    .forward_gpu = copy_forward_gpu,
    .backward_gpu = copy_backward_gpu,
};
