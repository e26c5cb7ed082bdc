/* dropout.c — Caffe's Dropout layer. In TRAIN each value is kept with
 * probability 1 - dropout_ratio and scaled by 1 / (1 - dropout_ratio) (or,
 * with scale_train false, left unscaled and the TEST output scaled by
 * 1 - dropout_ratio instead); in TEST it is the identity. Each TRAIN
 * forward takes one seed from the net's generator and draws the mask from
 * the counter-based Philox stream of that seed (kernels/philox.h), on the
 * host or on the device: the same seed gives the same mask, bit for bit, on
 * the CPU and the GPU, and the GPU draws it without a host round trip: the
 * seed goes up through a small fed tensor and the kernel reads it from
 * device memory, so a CUDA graph replays a fresh seed each step
 * (pass_begin_gpu). The mask is kept for the backward pass. Runs in place. */
#include <stdlib.h>
#include <string.h>

#include "../core/gpu.h"
#include "../kernels/kernels.h"
#include "layer.h"

typedef struct {
    float ratio;       /* dropout_ratio: probability of dropping a value */
    bool scale_train;  /* scale kept values in TRAIN (else scale in TEST) */
    cnn_tensor *mask;  /* (bottom shape) 0 or the keep scale, per value */
    cnn_tensor *seed;  /* GPU: the pass's seed, a uint64_t's 8 bytes in 2 floats */
    bool seed_drawn;   /* GPU: seed holds this pass's draw, not yet used */
} dropout_priv;

#define SEED_FLOATS ((int)(sizeof(uint64_t) / sizeof(float)))

static void dropout_destroy(cnn_layer *l)
{
    dropout_priv *d = l->priv;
    if (d) {
        cnn_tensor_free(d->mask);
        cnn_tensor_free(d->seed);
    }
    free(d);
    l->priv = NULL;
}

static cnn_status dropout_setup(cnn_layer *l, cnn_cfg *cfg)
{
    cnn_status st = CNN_OK;
    cnn_cfg *p = NULL;
    CNN_TRY(cnn_layer_alloc_priv(l, sizeof(dropout_priv)));
    dropout_priv *d = l->priv;
    d->ratio = 0.5f;
    d->scale_train = true;
    CNN_TRY(cnn_cfg_message(cfg, "dropout_param", &p));
    if (p) {
        CNN_TRY(cnn_cfg_float(p, "dropout_ratio", 0.5f, &d->ratio));
        CNN_TRY(cnn_cfg_bool(p, "scale_train", true, &d->scale_train));
    }
    if (!(d->ratio >= 0.f && d->ratio < 1.f))
        return cnn_layer_error(l, CNN_ERR_CONFIG, "dropout_ratio must be in [0, 1), got %g",
                               d->ratio);
    if (!(d->mask = cnn_tensor_create(NULL)) || !(d->seed = cnn_tensor_create(NULL)))
        return cnn_layer_error(l, CNN_ERR_MEMORY, "out of memory");
fail:
    return st;
}

static cnn_status dropout_reshape(cnn_layer *l)
{
    cnn_status st = CNN_OK;
    dropout_priv *d = l->priv;
    CNN_TRY(cnn_tensor_reshape_like(l->top[0], l->bottom[0]));
    if (l->phase == CNN_TRAIN) {
        CNN_TRY(cnn_tensor_reshape_like(d->mask, l->bottom[0]));
        if (l->cuda) {
            CNN_TRY(cnn_tensor_attach(d->mask, l->cuda));
            CNN_TRY(cnn_tensor_reshape(d->seed, 1, (const int[]){SEED_FLOATS}));
            CNN_TRY(cnn_tensor_attach(d->seed, l->cuda));
            CNN_TRY(cnn_layer_feed(l, d->seed));
        }
    }
fail:
    return st;
}

/* The factor every value is multiplied by in TEST. */
static float test_scale(const dropout_priv *d) { return d->scale_train ? 1.f : 1.f - d->ratio; }

/* The scale of kept values in TRAIN. */
static float keep_scale(const dropout_priv *d)
{
    return d->scale_train ? 1.f / (1.f - d->ratio) : 1.f;
}

static cnn_status dropout_forward(cnn_layer *l)
{
    dropout_priv *d = l->priv;
    const cnn_tensor *x = l->bottom[0];
    cnn_tensor *y = l->top[0];
    if (l->phase == CNN_TRAIN) {
        cnn_k_dropout_mask(x->count, cnn_rng_next(l->rng), 0, 1.f - d->ratio, keep_scale(d),
                           d->mask->data);
        cnn_k_dropout_apply(x->count, x->data, d->mask->data, y->data);
    } else if (test_scale(d) != 1.f) {
        if (y != x) cnn_k_copy(x->count, x->data, y->data);
        cnn_k_scale(y->count, test_scale(d), y->data);
    } else if (y != x) {
        cnn_k_copy(x->count, x->data, y->data);
    }
    return CNN_OK;
}

static cnn_status dropout_backward(cnn_layer *l)
{
    const dropout_priv *d = l->priv;
    cnn_tensor *x = l->bottom[0], *y = l->top[0];
    if (!l->propagate_down[0]) return CNN_OK;
    if (l->phase == CNN_TRAIN) {
        cnn_k_dropout_apply(x->count, y->grad, d->mask->data, x->grad);
    } else {
        if (y != x) cnn_k_copy(x->count, y->grad, x->grad);
        if (test_scale(d) != 1.f) cnn_k_scale(x->count, test_scale(d), x->grad);
    }
    return CNN_OK;
}

/* TEST (or TEST-like backward): out = in * test_scale, skipped in place
 * when the scale is 1. */
static cnn_status gpu_test_pass(cnn_layer *l, bool grad)
{
    cnn_status st = CNN_OK;
    const dropout_priv *d = l->priv;
    size_t n = l->bottom[0]->count;
    const float *in;
    float *out;
    if (l->top[0] == l->bottom[0] && test_scale(d) == 1.f) return CNN_OK;
    CNN_TRY(cnn_layer_gpu_io(l, grad, &in, &out));
    if (out != in) CNN_TRY(cnn_cuda_copy(l->cuda, n, in, out));
    if (test_scale(d) != 1.f) CNN_TRY(cnn_cuda_scale(l->cuda, n, test_scale(d), out));
fail:
    return st;
}

/* Draws this pass's seed and queues its upload (before a CUDA graph step,
 * or from the forward pass itself). */
static cnn_status dropout_pass_begin_gpu(cnn_layer *l)
{
    dropout_priv *d = l->priv;
    uint64_t seed = cnn_rng_next(l->rng);
    memcpy(d->seed->data, &seed, sizeof seed);
    cnn_host_wrote_data(d->seed);
    d->seed_drawn = true;
    return cnn_gpu_device_only(d->seed);
}

static cnn_status dropout_forward_gpu(cnn_layer *l)
{
    cnn_status st = CNN_OK;
    dropout_priv *d = l->priv;
    size_t n = l->bottom[0]->count;
    const float *x, *seed;
    float *y, *m;
    if (l->phase != CNN_TRAIN) return gpu_test_pass(l, false);
    if (!d->seed_drawn) CNN_TRY(dropout_pass_begin_gpu(l));
    d->seed_drawn = false;
    CNN_TRY(cnn_gpu_read(d->seed, &seed));
    CNN_TRY(cnn_gpu_write(d->mask, &m));
    CNN_TRY(cnn_cuda_dropout_mask(l->cuda, n, seed, 0, 1.f - d->ratio, keep_scale(d), m));
    CNN_TRY(cnn_layer_gpu_io(l, false, &x, &y));
    CNN_TRY(cnn_cuda_dropout_apply(l->cuda, n, x, m, y));
fail:
    return st;
}

static cnn_status dropout_backward_gpu(cnn_layer *l)
{
    cnn_status st = CNN_OK;
    dropout_priv *d = l->priv;
    const float *dy, *m;
    float *dx;
    if (!l->propagate_down[0]) return CNN_OK;
    if (l->phase != CNN_TRAIN) return gpu_test_pass(l, true);
    CNN_TRY(cnn_gpu_read(d->mask, &m));
    CNN_TRY(cnn_layer_gpu_io(l, true, &dy, &dx));
    CNN_TRY(cnn_cuda_dropout_apply(l->cuda, l->bottom[0]->count, dy, m, dx));
fail:
    return st;
}

static double dropout_flops(const cnn_layer *l) { return (double)l->bottom[0]->count; }

const cnn_layer_type cnn_layer_Dropout = {
    .name = "Dropout",
    .min_bottoms = 1,
    .max_bottoms = 1,
    .min_tops = 1,
    .max_tops = 1,
    .setup = dropout_setup,
    .reshape = dropout_reshape,
    .forward = dropout_forward,
    .backward = dropout_backward,
    .destroy = dropout_destroy,
    .flops = dropout_flops,
    .forward_gpu = dropout_forward_gpu,
    .backward_gpu = dropout_backward_gpu,
    .pass_begin_gpu = dropout_pass_begin_gpu,
};
