/* copy.c — the Copy layer: moves a blob from one logical device to another.
 * The net inserts one wherever a layer reads a blob that lives on another
 * device (named "<blob>_to_dev<K>", K the destination); it runs on the
 * destination device. Forward copies the activations, backward copies the
 * gradient back to the source blob (when several consumers share a copy, a
 * Split after it has already summed their gradients). On the CPU both are
 * memcpy; the GPU path will use peer copies on the destination's stream. */
#include <string.h>

#include "layer.h"

static cnn_status copy_reshape(cnn_layer *l)
{
    if (l->top[0] == l->bottom[0])
        return cnn_layer_error(l, CNN_ERR_CONFIG, "cannot run in place (top == bottom)");
    return cnn_tensor_reshape_like(l->top[0], l->bottom[0]);
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

const cnn_layer_type cnn_layer_Copy = {
    .name = "Copy",
    .min_bottoms = 1,
    .max_bottoms = 1,
    .min_tops = 1,
    .max_tops = 1,
    .reshape = copy_reshape,
    .forward = copy_forward,
    .backward = copy_backward,
};
