/* batchnorm.c — Caffe's BatchNorm layer: normalises each channel of
 * (N, C, ...) to zero mean and unit variance, without scale or shift (a
 * Scale layer follows for those). Three parameter blobs hold the running
 * statistics, never learned: the mean sum (C), the variance sum (C) and
 * their weight (1); the statistics are blob0/blob2 and blob1/blob2.
 * batch_norm_param: use_global_stats (default: true in TEST, false in TRAIN),
 * moving_average_fraction (0.999), eps (1e-5). The GPU path keeps the
 * saved output and the statistics in device buffers allocated at reshape
 * and updates the moving sums on the device (cnn_cuda_bn_running). */
#include <math.h>
#include <stdlib.h>

#include "../core/gpu.h"
#include "../kernels/kernels.h"
#include "layer.h"

typedef struct {
    bool global;        /* normalise with the stored statistics */
    float fraction;     /* moving_average_fraction */
    float eps;
    int n, c;           /* batch, channels */
    size_t s;           /* values per (n, c) */
    cnn_tensor *xnorm;  /* (bottom shape) the output, for the batch backward */
    cnn_tensor *mean;   /* (C) statistics used by the last forward */
    cnn_tensor *inv_std; /* (C) 1 / sqrt(var + eps) of the last forward */
    cnn_cuda_ctx *cuda;  /* GPU: the context of the device buffers */
    float *dev_xnorm;    /* GPU: xnorm's device buffer, dev_xnorm_cap floats */
    float *dev_stats;    /* GPU: (2, C): mean, then var / inv_std */
    size_t dev_xnorm_cap, dev_stats_cap;
} bn_priv;

static void bn_destroy(cnn_layer *l)
{
    bn_priv *b = l->priv;
    if (b) {
        cnn_tensor_free(b->xnorm);
        cnn_tensor_free(b->mean);
        cnn_tensor_free(b->inv_std);
        cnn_cuda_free(b->cuda, b->dev_xnorm);
        cnn_cuda_free(b->cuda, b->dev_stats);
    }
    free(b);
    l->priv = NULL;
}

static cnn_status bn_setup(cnn_layer *l, cnn_cfg *cfg)
{
    cnn_status st = CNN_OK;
    cnn_cfg *p = NULL;
    CNN_TRY(cnn_layer_alloc_priv(l, sizeof(bn_priv)));
    bn_priv *b = l->priv;
    b->global = l->phase == CNN_TEST;
    b->fraction = 0.999f;
    b->eps = 1e-5f;
    CNN_TRY(cnn_cfg_message(cfg, "batch_norm_param", &p));
    if (p) {
        CNN_TRY(cnn_cfg_bool(p, "use_global_stats", b->global, &b->global));
        CNN_TRY(cnn_cfg_float(p, "moving_average_fraction", 0.999f, &b->fraction));
        CNN_TRY(cnn_cfg_float(p, "eps", 1e-5f, &b->eps));
    }
    if (!(b->eps > 0))
        return cnn_layer_error(l, CNN_ERR_CONFIG, "eps must be positive, got %g", b->eps);
    /* The statistics are parameters only so that they are saved; as in
     * Caffe, the solver must never update them. */
    for (int i = 0; i < 3; i++) l->spec[i].lr_mult = l->spec[i].decay_mult = 0;
    l->n_spec = 3;
    b->xnorm = cnn_tensor_create(NULL);
    b->mean = cnn_tensor_create(NULL);
    b->inv_std = cnn_tensor_create(NULL);
    if (!b->xnorm || !b->mean || !b->inv_std)
        return cnn_layer_error(l, CNN_ERR_MEMORY, "out of memory");
fail:
    return st;
}

/* Grows the device buffer *buf (on l->cuda) to hold n floats. */
static cnn_status dev_grow(cnn_layer *l, float **buf, size_t *cap, size_t n)
{
    bn_priv *b = l->priv;
    void *p = NULL;
    if (n <= *cap) return CNN_OK;
    cnn_status st = cnn_cuda_malloc(l->cuda, n * sizeof(float), &p);
    if (st != CNN_OK) return cnn_layer_error(l, st, "%s", cnn_error_message());
    cnn_cuda_free(b->cuda, *buf);
    b->cuda = l->cuda;
    *buf = p;
    *cap = n;
    return CNN_OK;
}

static cnn_status bn_reshape(cnn_layer *l)
{
    cnn_status st = CNN_OK;
    bn_priv *b = l->priv;
    const cnn_tensor *x = l->bottom[0];
    if (x->ndim < 1) return cnn_layer_error(l, CNN_ERR_SHAPE, "bottom has no axes");
    b->n = x->shape[0];
    b->c = x->ndim > 1 ? x->shape[1] : 1;
    b->s = cnn_tensor_count_range(x, 2, x->ndim);
    const cnn_filler zero = {.type = CNN_FILL_CONSTANT, .value = 0};
    int c = b->c, one = 1;
    CNN_TRY(cnn_layer_param(l, 0, 1, &c, &zero, NULL));
    CNN_TRY(cnn_layer_param(l, 1, 1, &c, &zero, NULL));
    CNN_TRY(cnn_layer_param(l, 2, 1, &one, &zero, NULL));
    CNN_TRY(cnn_tensor_reshape_like(l->top[0], x));
    CNN_TRY(cnn_tensor_reshape_like(b->xnorm, x));
    CNN_TRY(cnn_tensor_reshape(b->mean, 1, &c));
    CNN_TRY(cnn_tensor_reshape(b->inv_std, 1, &c));
    if (l->cuda) {
        if (!b->global) CNN_TRY(dev_grow(l, &b->dev_xnorm, &b->dev_xnorm_cap, x->count));
        CNN_TRY(dev_grow(l, &b->dev_stats, &b->dev_stats_cap, 2 * (size_t)c));
    }
fail:
    return st;
}

static cnn_status bn_forward(cnn_layer *l)
{
    bn_priv *b = l->priv;
    const cnn_tensor *x = l->bottom[0];
    float *mean = b->mean->data, *var = b->inv_std->data;
    float *sum_mean = l->param[0]->data, *sum_var = l->param[1]->data;
    float *weight = l->param[2]->data;
    if (b->global) {
        float sf = weight[0] == 0 ? 0.f : 1.f / weight[0];
        for (int i = 0; i < b->c; i++) {
            mean[i] = sf * sum_mean[i];
            var[i] = sf * sum_var[i];
        }
    } else {
        cnn_k_bn_stats(b->n, b->c, b->s, x->data, mean, var);
        /* Moving sums, with the unbiased m/(m-1) variance like Caffe. */
        size_t m = x->count / (size_t)(b->c ? b->c : 1);
        float corr = m > 1 ? (float)m / (float)(m - 1) : 1.f;
        weight[0] = weight[0] * b->fraction + 1.f;
        for (int i = 0; i < b->c; i++) {
            sum_mean[i] = b->fraction * sum_mean[i] + mean[i];
            sum_var[i] = b->fraction * sum_var[i] + corr * var[i];
        }
    }
    for (int i = 0; i < b->c; i++) var[i] = 1.f / sqrtf(var[i] + b->eps);
    cnn_k_bn_normalize(b->n, b->c, b->s, x->data, mean, var, l->top[0]->data);
    /* Kept because a later in-place layer may overwrite the top. */
    if (!b->global) cnn_k_copy(x->count, l->top[0]->data, b->xnorm->data);
    return CNN_OK;
}

static cnn_status bn_backward(cnn_layer *l)
{
    const bn_priv *b = l->priv;
    if (!l->propagate_down[0]) return CNN_OK;
    /* Both kernels read dy before writing dx at each index, so in place is fine. */
    if (b->global)
        cnn_k_bcast_scale(b->n, b->c, b->s, l->top[0]->grad, b->inv_std->data, NULL,
                          l->bottom[0]->grad);
    else
        cnn_k_bn_backward(b->n, b->c, b->s, b->xnorm->data, l->top[0]->grad,
                          b->inv_std->data, l->bottom[0]->grad);
    return CNN_OK;
}

static cnn_status bn_forward_gpu(cnn_layer *l)
{
    bn_priv *b = l->priv;
    cnn_status st = CNN_OK;
    cnn_tensor *x = l->bottom[0];
    const float *xd, *sum_mean, *sum_var, *weight;
    float *y, *mean = b->dev_stats, *var = b->dev_stats + b->c;
    CNN_TRY(cnn_gpu_read(x, &xd));
    if (b->global) {
        /* Only read: bn_running writes the sums in TRAIN alone. */
        CNN_TRY(cnn_gpu_read(l->param[0], &sum_mean));
        CNN_TRY(cnn_gpu_read(l->param[1], &sum_var));
        CNN_TRY(cnn_gpu_read(l->param[2], &weight));
        CNN_TRY(cnn_cuda_bn_running(l->cuda, b->c, true, b->fraction, 1.f, b->eps, mean, var,
                                    (float *)sum_mean, (float *)sum_var, (float *)weight));
    } else {
        float *sm, *sv, *wt;
        size_t m = x->count / (size_t)(b->c ? b->c : 1);
        float corr = m > 1 ? (float)m / (float)(m - 1) : 1.f;
        CNN_TRY(cnn_gpu_modify(l->param[0], &sm));
        CNN_TRY(cnn_gpu_modify(l->param[1], &sv));
        CNN_TRY(cnn_gpu_modify(l->param[2], &wt));
        CNN_TRY(cnn_cuda_bn_stats(l->cuda, b->n, b->c, b->s, xd, mean, var));
        CNN_TRY(cnn_cuda_bn_running(l->cuda, b->c, false, b->fraction, corr, b->eps, mean, var,
                                    sm, sv, wt));
    }
    CNN_TRY(cnn_gpu_write(l->top[0], &y));
    CNN_TRY(cnn_cuda_bn_normalize(l->cuda, b->n, b->c, b->s, xd, mean, var, y));
    if (!b->global) CNN_TRY(cnn_cuda_copy(l->cuda, x->count, y, b->dev_xnorm));
fail:
    return st;
}

static cnn_status bn_backward_gpu(cnn_layer *l)
{
    const bn_priv *b = l->priv;
    cnn_status st = CNN_OK;
    const float *dy, *inv_std = b->dev_stats + b->c;
    float *dx;
    if (!l->propagate_down[0]) return CNN_OK;
    CNN_TRY(cnn_gpu_read_grad(l->top[0], &dy));
    CNN_TRY(cnn_gpu_write_grad(l->bottom[0], &dx));
    if (b->global)
        CNN_TRY(cnn_cuda_bcast_scale(l->cuda, b->n, b->c, b->s, dy, inv_std, NULL, dx));
    else
        CNN_TRY(cnn_cuda_bn_backward(l->cuda, b->n, b->c, b->s, b->dev_xnorm, dy, inv_std, dx));
fail:
    return st;
}

static double bn_flops(const cnn_layer *l) { return 4.0 * (double)l->bottom[0]->count; }

const cnn_layer_type cnn_layer_BatchNorm = {
    .name = "BatchNorm",
    .min_bottoms = 1,
    .max_bottoms = 1,
    .min_tops = 1,
    .max_tops = 1,
    .setup = bn_setup,
    .reshape = bn_reshape,
    .forward = bn_forward,
    .backward = bn_backward,
    .destroy = bn_destroy,
    .flops = bn_flops,
    .forward_gpu = bn_forward_gpu,
    .backward_gpu = bn_backward_gpu,
};
