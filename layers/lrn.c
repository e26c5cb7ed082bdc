/* lrn.c — the LRN (local response normalisation) layer, Caffe's semantics:
 * ACROSS_CHANNELS (AlexNet) and WITHIN_CHANNEL, computed directly by the
 * kernels in kernels/cpu/lrn.c; the scale is kept for the backward pass.
 * The GPU path (kernels/cuda/lrn.cu) keeps it in a device buffer. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "../core/gpu.h"
#include "../kernels/kernels.h"
#include "layer.h"

typedef struct {
    cnn_k_lrn_desc d; /* shape part set by reshape */
    float *scale;     /* (N, C, H, W) */
    size_t scale_cap;
    float *ws;        /* kernel workspace for `threads` threads */
    size_t ws_cap;
    int threads;
    cnn_cuda_ctx *cuda; /* GPU: the context dev_scale lives on */
    float *dev_scale;   /* GPU: (N, C, H, W) */
    size_t dev_scale_cap;
} lrn_priv;

static void lrn_destroy(cnn_layer *l)
{
    lrn_priv *lp = l->priv;
    if (lp) {
        free(lp->scale);
        free(lp->ws);
        cnn_cuda_free(lp->cuda, lp->dev_scale);
    }
    free(l->priv);
    l->priv = NULL;
}

/* Prefixes the layer's name to an error from the config getters (errors
 * made with cnn_layer_error already carry it). */
static cnn_status named(const cnn_layer *l, cnn_status st)
{
    if (st == CNN_OK || !strncmp(cnn_error_message(), "layer '", 7)) return st;
    return cnn_layer_error(l, st, "%s", cnn_error_message());
}

static cnn_status lrn_setup(cnn_layer *l, cnn_cfg *cfg)
{
    static const char *const regions[] = {"ACROSS_CHANNELS", "WITHIN_CHANNEL", NULL};
    static const char *const engines[] = {"DEFAULT", "CAFFE", "CUDNN", NULL};
    cnn_status st = CNN_OK;
    cnn_cfg *p = NULL;
    int region = 0, engine = 0;
    CNN_TRY(cnn_layer_alloc_priv(l, sizeof(lrn_priv)));
    lrn_priv *lp = l->priv;
    CNN_TRY(cnn_cfg_message(cfg, "lrn_param", &p));
    CNN_TRY(cnn_cfg_int(p, "local_size", 5, &lp->d.size));
    CNN_TRY(cnn_cfg_float(p, "alpha", 1.f, &lp->d.alpha));
    CNN_TRY(cnn_cfg_float(p, "beta", 0.75f, &lp->d.beta));
    CNN_TRY(cnn_cfg_float(p, "k", 1.f, &lp->d.k));
    CNN_TRY(cnn_cfg_enum(p, "norm_region", regions, 0, &region));
    CNN_TRY(cnn_cfg_enum(p, "engine", engines, 0, &engine));
    lp->d.within = region == 1;
    if (lp->d.size <= 0 || lp->d.size % 2 == 0)
        return cnn_layer_error(l, CNN_ERR_CONFIG, "local_size must be odd and positive (got %d)",
                               lp->d.size);
fail:
    return named(l, st);
}

/* Grows *buf to hold n floats. */
static cnn_status grow(cnn_layer *l, float **buf, size_t *cap, size_t n)
{
    if (n <= *cap) return CNN_OK;
    float *b = malloc((n ? n : 1) * sizeof(float));
    if (!b) return cnn_layer_error(l, CNN_ERR_MEMORY, "cannot allocate %zu floats", n);
    free(*buf);
    *buf = b;
    *cap = n;
    return CNN_OK;
}

static cnn_status lrn_reshape(cnn_layer *l)
{
    lrn_priv *lp = l->priv;
    cnn_status st = CNN_OK;
    const cnn_tensor *b = l->bottom[0];
    char s[64];
    if (b->ndim != 4)
        return cnn_layer_error(l, CNN_ERR_SHAPE, "needs a 4-d input (N, C, H, W), got %s",
                               cnn_tensor_shape_str(b, s, sizeof s));
    if (l->top[0] == l->bottom[0])
        return cnn_layer_error(l, CNN_ERR_CONFIG, "cannot run in place (top == bottom)");
    lp->d.n = b->shape[0];
    lp->d.c = b->shape[1];
    lp->d.h = b->shape[2];
    lp->d.w = b->shape[3];
    lp->threads = omp_get_max_threads();
    CNN_TRY(cnn_tensor_reshape_like(l->top[0], b));
    CNN_TRY(grow(l, &lp->scale, &lp->scale_cap, b->count));
    CNN_TRY(grow(l, &lp->ws, &lp->ws_cap, cnn_k_lrn_ws_floats(&lp->d, lp->threads)));
    if (l->cuda && b->count > lp->dev_scale_cap) {
        void *buf = NULL;
        if ((st = cnn_cuda_malloc(l->cuda, b->count * sizeof(float), &buf)) != CNN_OK)
            return named(l, st);
        cnn_cuda_free(lp->cuda, lp->dev_scale);
        lp->cuda = l->cuda;
        lp->dev_scale = buf;
        lp->dev_scale_cap = b->count;
    }
fail:
    return st;
}

static cnn_status lrn_forward(cnn_layer *l)
{
    lrn_priv *lp = l->priv;
    cnn_k_lrn_fwd(&lp->d, l->bottom[0]->data, lp->scale, l->top[0]->data, lp->ws, lp->threads);
    return CNN_OK;
}

static cnn_status lrn_backward(cnn_layer *l)
{
    lrn_priv *lp = l->priv;
    if (!l->propagate_down[0]) return CNN_OK;
    cnn_k_lrn_bwd(&lp->d, l->bottom[0]->data, lp->scale, l->top[0]->grad, l->bottom[0]->grad,
                  lp->ws, lp->threads);
    return CNN_OK;
}

static cnn_status lrn_forward_gpu(cnn_layer *l)
{
    lrn_priv *lp = l->priv;
    cnn_status st = CNN_OK;
    const float *x;
    float *y;
    CNN_TRY(cnn_gpu_read(l->bottom[0], &x));
    CNN_TRY(cnn_gpu_write(l->top[0], &y));
    CNN_TRY(cnn_cuda_lrn_fwd(l->cuda, &lp->d, x, lp->dev_scale, y));
fail:
    return st;
}

/* Not in place (reshape refuses it), so dx never aliases dy. */
static cnn_status lrn_backward_gpu(cnn_layer *l)
{
    lrn_priv *lp = l->priv;
    cnn_status st = CNN_OK;
    const float *x, *dy;
    float *dx;
    if (!l->propagate_down[0]) return CNN_OK;
    CNN_TRY(cnn_gpu_read(l->bottom[0], &x));
    CNN_TRY(cnn_gpu_read_grad(l->top[0], &dy));
    CNN_TRY(cnn_gpu_write_grad(l->bottom[0], &dx));
    CNN_TRY(cnn_cuda_lrn_bwd(l->cuda, &lp->d, x, lp->dev_scale, dy, dx));
fail:
    return st;
}

static double lrn_flops(const cnn_layer *l)
{
    const lrn_priv *lp = l->priv;
    double count = (double)lp->d.n * lp->d.c * lp->d.h * lp->d.w;
    double window = lp->d.within ? 2.0 * lp->d.size : lp->d.size;
    return count * (2 * window + 6);
}

const cnn_layer_type cnn_layer_LRN = {
    .name = "LRN",
    .min_bottoms = 1,
    .max_bottoms = 1,
    .min_tops = 1,
    .max_tops = 1,
    .setup = lrn_setup,
    .reshape = lrn_reshape,
    .forward = lrn_forward,
    .backward = lrn_backward,
    .destroy = lrn_destroy,
    .flops = lrn_flops,
    .forward_gpu = lrn_forward_gpu,
    .backward_gpu = lrn_backward_gpu,
};
