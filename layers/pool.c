/* pool.c — the Pooling layer, Caffe's semantics: MAX and AVE pooling over
 * (N, C, H, W), ceil (default) or floor output rounding with Caffe's
 * clipping of the last window when padded, global pooling, and for MAX an
 * optional second top holding the argmax mask. The GPU path runs the same
 * rules (kernels/cuda/pool.cu) with the argmax in a device buffer. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/gpu.h"
#include "../kernels/kernels.h"
#include "layer.h"

enum { POOL_MAX, POOL_AVE, POOL_STOCHASTIC };
enum { ROUND_CEIL, ROUND_FLOOR };

typedef struct {
    int method, round_mode;
    bool global;
    int kh, kw, sh, sw, ph, pw;
    cnn_k_pool_geom g; /* set by reshape */
    int *argmax;       /* (N, C, oh, ow) for MAX */
    size_t argmax_cap;
    cnn_cuda_ctx *cuda; /* GPU: the context dev_argmax lives on */
    int *dev_argmax;    /* GPU: (N, C, oh, ow) for MAX */
    size_t dev_argmax_cap;
} pool_priv;

static void pool_destroy(cnn_layer *l)
{
    pool_priv *pp = l->priv;
    if (pp) {
        free(pp->argmax);
        cnn_cuda_free(pp->cuda, pp->dev_argmax);
    }
    free(l->priv);
    l->priv = NULL;
}

/* Reads Caffe's scalar `key` or its `key_h`/`key_w` pair: *has tells
 * whether any was given, *both whether both halves were. */
static cnn_status read_hw(cnn_cfg *p, const char *key, const char *key_h, const char *key_w,
                          int def, int *vh, int *vw, bool *has, bool *has_pair, bool *has_one)
{
    cnn_status st = CNN_OK;
    int v = def;
    bool h = cnn_cfg_count(p, key_h) > 0, w = cnn_cfg_count(p, key_w) > 0;
    *has = cnn_cfg_count(p, key) > 0;
    *has_pair = h && w;
    *has_one = h || w;
    CNN_TRY(cnn_cfg_int(p, key, def, &v));
    CNN_TRY(cnn_cfg_int(p, key_h, v, vh));
    CNN_TRY(cnn_cfg_int(p, key_w, v, vw));
fail:
    return st;
}

/* Prefixes the layer's name to an error from the config getters (errors
 * made with cnn_layer_error already carry it). */
static cnn_status named(const cnn_layer *l, cnn_status st)
{
    if (st == CNN_OK || !strncmp(cnn_error_message(), "layer '", 7)) return st;
    return cnn_layer_error(l, st, "%s", cnn_error_message());
}

static cnn_status pool_setup(cnn_layer *l, cnn_cfg *cfg)
{
    static const char *const methods[] = {"MAX", "AVE", "STOCHASTIC", NULL};
    static const char *const engines[] = {"DEFAULT", "CAFFE", "CUDNN", NULL};
    static const char *const rounds[] = {"CEIL", "FLOOR", NULL};
    cnn_status st = CNN_OK;
    cnn_cfg *p = NULL;
    int engine = 0;
    bool hk, hk2, hk1, hp, hp2, hp1, hs, hs2, hs1;
    CNN_TRY(cnn_layer_alloc_priv(l, sizeof(pool_priv)));
    pool_priv *pp = l->priv;
    CNN_TRY(cnn_cfg_message(cfg, "pooling_param", &p));
    if (!p)
        return cnn_layer_error(l, CNN_ERR_CONFIG, "pooling_param { pool kernel_size … } missing");
    CNN_TRY(cnn_cfg_enum(p, "pool", methods, POOL_MAX, &pp->method));
    CNN_TRY(cnn_cfg_enum(p, "engine", engines, 0, &engine));
    CNN_TRY(cnn_cfg_enum(p, "round_mode", rounds, ROUND_CEIL, &pp->round_mode));
    CNN_TRY(cnn_cfg_bool(p, "global_pooling", false, &pp->global));
    CNN_TRY(read_hw(p, "kernel_size", "kernel_h", "kernel_w", 0, &pp->kh, &pp->kw, &hk, &hk2,
                    &hk1));
    CNN_TRY(read_hw(p, "pad", "pad_h", "pad_w", 0, &pp->ph, &pp->pw, &hp, &hp2, &hp1));
    CNN_TRY(read_hw(p, "stride", "stride_h", "stride_w", 1, &pp->sh, &pp->sw, &hs, &hs2, &hs1));
    if (pp->method == POOL_STOCHASTIC)
        return cnn_layer_error(l, CNN_ERR_UNSUPPORTED,
                               "pool: STOCHASTIC is not supported (use MAX or AVE)");
    if (l->n_top > 1 && pp->method != POOL_MAX)
        return cnn_layer_error(l, CNN_ERR_CONFIG, "only MAX pooling has a second (mask) top");
    if (pp->global) {
        if (hk || hk1)
            return cnn_layer_error(l, CNN_ERR_CONFIG,
                                   "with global_pooling the kernel size cannot be given");
    } else {
        if (hk && hk1)
            return cnn_layer_error(l, CNN_ERR_CONFIG,
                                   "give kernel_size or kernel_h and kernel_w, not both");
        if (!hk && !hk2)
            return cnn_layer_error(l, CNN_ERR_CONFIG,
                                   "kernel_size (or both kernel_h and kernel_w) is required");
    }
    if ((hp && hp1) || (hp1 && !hp2))
        return cnn_layer_error(l, CNN_ERR_CONFIG, "give pad, or both pad_h and pad_w");
    if ((hs && hs1) || (hs1 && !hs2))
        return cnn_layer_error(l, CNN_ERR_CONFIG, "give stride, or both stride_h and stride_w");
    if (pp->ph < 0 || pp->pw < 0 || pp->kh < 0 || pp->kw < 0 || pp->sh < 0 || pp->sw < 0)
        return cnn_layer_error(l, CNN_ERR_CONFIG, "kernel, pad and stride must not be negative");
    if (!pp->global && (pp->kh == 0 || pp->kw == 0))
        return cnn_layer_error(l, CNN_ERR_CONFIG, "kernel size must be nonzero");
    if (pp->sh == 0 || pp->sw == 0)
        return cnn_layer_error(l, CNN_ERR_CONFIG, "stride must be nonzero");
    if (pp->global && (pp->ph || pp->pw || pp->sh != 1 || pp->sw != 1))
        return cnn_layer_error(l, CNN_ERR_CONFIG,
                               "with global_pooling only pad 0 and stride 1 are allowed");
    if (!pp->global && (pp->ph >= pp->kh || pp->pw >= pp->kw))
        return cnn_layer_error(l, CNN_ERR_CONFIG, "pad %dx%d must be smaller than the kernel "
                               "%dx%d", pp->ph, pp->pw, pp->kh, pp->kw);
fail:
    return named(l, st);
}

/* Caffe's pooled extent: rounded (h + 2 pad - k) / s + 1, then the last
 * window dropped when padding makes it start outside the image. */
static int pooled(int in, int k, int pad, int stride, int round_mode)
{
    double q = (double)(in + 2 * pad - k) / stride;
    int out = (int)(round_mode == ROUND_CEIL ? ceil(q) : floor(q)) + 1;
    if (pad > 0 && (out - 1) * stride >= in + pad) out--;
    return out;
}

static cnn_status pool_reshape(cnn_layer *l)
{
    pool_priv *pp = l->priv;
    cnn_status st = CNN_OK;
    const cnn_tensor *b = l->bottom[0];
    char s[64];
    if (b->ndim != 4)
        return cnn_layer_error(l, CNN_ERR_SHAPE, "needs a 4-d input (N, C, H, W), got %s",
                               cnn_tensor_shape_str(b, s, sizeof s));
    int n = b->shape[0], c = b->shape[1], h = b->shape[2], w = b->shape[3];
    int kh = pp->global ? h : pp->kh, kw = pp->global ? w : pp->kw;
    if (kh > h + 2 * pp->ph || kw > w + 2 * pp->pw || kh <= 0 || kw <= 0)
        return cnn_layer_error(l, CNN_ERR_SHAPE, "kernel %dx%d does not fit the padded input "
                               "%dx%d", kh, kw, h + 2 * pp->ph, w + 2 * pp->pw);
    pp->g = (cnn_k_pool_geom){
        .planes = n * c, .h = h, .w = w, .kh = kh, .kw = kw,
        .sh = pp->sh, .sw = pp->sw, .ph = pp->ph, .pw = pp->pw,
        .oh = pooled(h, kh, pp->ph, pp->sh, pp->round_mode),
        .ow = pooled(w, kw, pp->pw, pp->sw, pp->round_mode),
    };
    for (int t = 0; t < l->n_top; t++)
        CNN_TRY(cnn_tensor_reshape4(l->top[t], n, c, pp->g.oh, pp->g.ow));
    size_t need = l->top[0]->count;
    if (pp->method == POOL_MAX && need > pp->argmax_cap) {
        int *a = malloc(need * sizeof(int));
        if (!a) return cnn_layer_error(l, CNN_ERR_MEMORY, "cannot allocate the argmax buffer");
        free(pp->argmax);
        pp->argmax = a;
        pp->argmax_cap = need;
    }
    if (l->cuda && pp->method == POOL_MAX && need > pp->dev_argmax_cap) {
        void *a = NULL;
        if ((st = cnn_cuda_malloc(l->cuda, need * sizeof(int), &a)) != CNN_OK)
            return named(l, st);
        cnn_cuda_free(pp->cuda, pp->dev_argmax);
        pp->cuda = l->cuda;
        pp->dev_argmax = a;
        pp->dev_argmax_cap = need;
    }
fail:
    return st;
}

static cnn_status pool_forward(cnn_layer *l)
{
    pool_priv *pp = l->priv;
    if (pp->method == POOL_MAX)
        cnn_k_maxpool_fwd(&pp->g, l->bottom[0]->data, l->top[0]->data, pp->argmax,
                          l->n_top > 1 ? l->top[1]->data : NULL);
    else
        cnn_k_avepool_fwd(&pp->g, l->bottom[0]->data, l->top[0]->data);
    return CNN_OK;
}

static cnn_status pool_backward(cnn_layer *l)
{
    pool_priv *pp = l->priv;
    if (!l->propagate_down[0]) return CNN_OK;
    if (pp->method == POOL_MAX)
        cnn_k_maxpool_bwd(&pp->g, l->top[0]->grad, pp->argmax, l->bottom[0]->grad);
    else
        cnn_k_avepool_bwd(&pp->g, l->top[0]->grad, l->bottom[0]->grad);
    return CNN_OK;
}

static cnn_status pool_forward_gpu(cnn_layer *l)
{
    pool_priv *pp = l->priv;
    cnn_status st = CNN_OK;
    const float *x;
    float *y, *mask = NULL;
    CNN_TRY(cnn_gpu_read(l->bottom[0], &x));
    CNN_TRY(cnn_gpu_write(l->top[0], &y));
    if (pp->method == POOL_MAX) {
        if (l->n_top > 1) CNN_TRY(cnn_gpu_write(l->top[1], &mask));
        CNN_TRY(cnn_cuda_maxpool_fwd(l->cuda, &pp->g, x, y, pp->dev_argmax, mask));
    } else {
        CNN_TRY(cnn_cuda_avepool_fwd(l->cuda, &pp->g, x, y));
    }
fail:
    return st;
}

static cnn_status pool_backward_gpu(cnn_layer *l)
{
    pool_priv *pp = l->priv;
    cnn_status st = CNN_OK;
    const float *dy;
    float *dx;
    if (!l->propagate_down[0]) return CNN_OK;
    CNN_TRY(cnn_gpu_read_grad(l->top[0], &dy));
    CNN_TRY(cnn_gpu_write_grad(l->bottom[0], &dx));
    if (pp->method == POOL_MAX)
        CNN_TRY(cnn_cuda_maxpool_bwd(l->cuda, &pp->g, dy, pp->dev_argmax, dx));
    else
        CNN_TRY(cnn_cuda_avepool_bwd(l->cuda, &pp->g, dy, dx));
fail:
    return st;
}

static double pool_flops(const cnn_layer *l)
{
    const pool_priv *pp = l->priv;
    return (double)pp->g.planes * pp->g.oh * pp->g.ow * pp->g.kh * pp->g.kw;
}

const cnn_layer_type cnn_layer_Pooling = {
    .name = "Pooling",
    .min_bottoms = 1,
    .max_bottoms = 1,
    .min_tops = 1,
    .max_tops = 2,
    .setup = pool_setup,
    .reshape = pool_reshape,
    .forward = pool_forward,
    .backward = pool_backward,
    .destroy = pool_destroy,
    .flops = pool_flops,
    .forward_gpu = pool_forward_gpu,
    .backward_gpu = pool_backward_gpu,
};
