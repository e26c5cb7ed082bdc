/* eltwise.c — the Eltwise layer: element-wise PROD, SUM (with optional
 * per-bottom coefficients) or MAX of two or more same-shaped bottoms
 * (eltwise_param { operation coeff stable_prod_grad }). The GPU path
 * covers up to CNN_CUDA_ELT_MAX_BOTTOMS bottoms (more run on the CPU), with
 * MAX's argmax kept in device memory. */
#include <stdlib.h>
#include <string.h>

#include "../core/gpu.h"
#include "layer.h"

enum { OP_PROD = 0, OP_SUM = 1, OP_MAX = 2 }; /* Caffe's enum order */
static const char *const op_names[] = {"PROD", "SUM", "MAX", NULL};

#define MAX_COEFFS 64

typedef struct {
    int op;
    bool stable_prod_grad;
    float coeff[MAX_COEFFS]; /* (n_bottom) for SUM; all 1 when not given */
    int *argmax;             /* (top count) MAX: which bottom won */
    size_t argmax_cap;
    cnn_cuda_ctx *ctx;       /* GPU: where dev_argmax lives */
    int *dev_argmax;         /* GPU: (top count) the device's argmax */
    size_t dev_argmax_cap;
} eltwise_priv;

static cnn_status eltwise_setup(cnn_layer *l, cnn_cfg *cfg)
{
    cnn_status st = CNN_OK;
    cnn_cfg *p = NULL;
    CNN_TRY(cnn_layer_alloc_priv(l, sizeof(eltwise_priv)));
    eltwise_priv *e = l->priv;
    CNN_TRY(cnn_cfg_message(cfg, "eltwise_param", &p));
    CNN_TRY(cnn_cfg_enum(p, "operation", op_names, OP_SUM, &e->op));
    CNN_TRY(cnn_cfg_bool(p, "stable_prod_grad", true, &e->stable_prod_grad));
    int nc = cnn_cfg_count(p, "coeff");
    for (int i = 0; i < MAX_COEFFS; i++) e->coeff[i] = 1.f;
    for (int i = 0; i < nc; i++) {
        float v = 1.f;
        CNN_TRY(cnn_cfg_as_float(cnn_cfg_nth(p, "coeff", i), &v));
        if (i < MAX_COEFFS) e->coeff[i] = v;
    }
    if (nc && nc != l->n_bottom)
        return cnn_layer_error(l, CNN_ERR_CONFIG, "%d coeff values for %d bottoms (give one "
                               "per bottom)", nc, l->n_bottom);
    if (nc && e->op != OP_SUM)
        return cnn_layer_error(l, CNN_ERR_CONFIG, "coeff is only allowed with operation SUM");
    if (l->n_bottom > MAX_COEFFS)
        return cnn_layer_error(l, CNN_ERR_CONFIG, "%d bottoms (at most %d)", l->n_bottom,
                               MAX_COEFFS);
fail:
    return st;
}

/* GPU planning: bottoms beyond what one device op takes run on the CPU;
 * MAX gets its device argmax. */
static cnn_status reshape_gpu(cnn_layer *l)
{
    eltwise_priv *e = l->priv;
    size_t n = l->bottom[0]->count;
    void *p = NULL;
    if (l->n_bottom > CNN_CUDA_ELT_MAX_BOTTOMS) {
        l->cuda = NULL;
        return CNN_OK;
    }
    if (e->op != OP_MAX || n <= e->dev_argmax_cap) return CNN_OK;
    if (e->ctx) cnn_cuda_free(e->ctx, e->dev_argmax);
    e->dev_argmax = NULL;
    e->dev_argmax_cap = 0;
    e->ctx = l->cuda;
    cnn_status st = cnn_cuda_malloc(e->ctx, n * sizeof(int), &p);
    if (st != CNN_OK) return st;
    e->dev_argmax = p;
    e->dev_argmax_cap = n;
    return CNN_OK;
}

static cnn_status eltwise_reshape(cnn_layer *l)
{
    eltwise_priv *e = l->priv;
    const cnn_tensor *b0 = l->bottom[0];
    for (int i = 0; i < l->n_bottom; i++) {
        if (l->bottom[i] == l->top[0])
            return cnn_layer_error(l, CNN_ERR_CONFIG, "Eltwise cannot run in place");
        if (!cnn_tensor_same_shape(l->bottom[i], b0)) {
            char s0[96], s1[96];
            return cnn_layer_error(l, CNN_ERR_SHAPE, "bottom %d is %s but bottom 0 is %s", i,
                                   cnn_tensor_shape_str(l->bottom[i], s1, sizeof s1),
                                   cnn_tensor_shape_str(b0, s0, sizeof s0));
        }
    }
    if (e->op == OP_MAX && b0->count > e->argmax_cap) {
        int *a = realloc(e->argmax, b0->count * sizeof(int));
        if (!a)
            return cnn_layer_error(l, CNN_ERR_MEMORY, "cannot allocate %zu argmax entries",
                                   b0->count);
        e->argmax = a;
        e->argmax_cap = b0->count;
    }
    if (l->cuda) {
        cnn_status st = reshape_gpu(l);
        if (st != CNN_OK) return st;
    }
    return cnn_tensor_reshape_like(l->top[0], b0);
}

static cnn_status eltwise_forward(cnn_layer *l)
{
    eltwise_priv *e = l->priv;
    float *y = l->top[0]->data;
    size_t n = l->top[0]->count;
    int nb = l->n_bottom;
    cnn_tensor **b = l->bottom;
    switch (e->op) {
    case OP_PROD:
#pragma omp parallel for if (n > 65536)
        for (size_t i = 0; i < n; i++) {
            float v = b[0]->data[i];
            for (int k = 1; k < nb; k++) v *= b[k]->data[i];
            y[i] = v;
        }
        break;
    case OP_SUM:
#pragma omp parallel for if (n > 65536)
        for (size_t i = 0; i < n; i++) {
            float v = e->coeff[0] * b[0]->data[i];
            for (int k = 1; k < nb; k++) v += e->coeff[k] * b[k]->data[i];
            y[i] = v;
        }
        break;
    default: /* MAX: the first bottom wins ties */
#pragma omp parallel for if (n > 65536)
        for (size_t i = 0; i < n; i++) {
            float v = b[0]->data[i];
            int arg = 0;
            for (int k = 1; k < nb; k++)
                if (b[k]->data[i] > v) {
                    v = b[k]->data[i];
                    arg = k;
                }
            y[i] = v;
            e->argmax[i] = arg;
        }
        break;
    }
    return CNN_OK;
}

static cnn_status eltwise_backward(cnn_layer *l)
{
    eltwise_priv *e = l->priv;
    const float *dy = l->top[0]->grad, *y = l->top[0]->data;
    size_t n = l->top[0]->count;
    int nb = l->n_bottom;
    cnn_tensor **b = l->bottom;
    for (int k = 0; k < nb; k++) {
        if (!l->propagate_down[k]) continue;
        float *dx = b[k]->grad;
        const float *x = b[k]->data;
        switch (e->op) {
        case OP_PROD:
            if (e->stable_prod_grad) {
                /* Product of the other bottoms: exact even where x is 0. */
#pragma omp parallel for if (n > 65536)
                for (size_t i = 0; i < n; i++) {
                    float v = dy[i];
                    for (int j = 0; j < nb; j++)
                        if (j != k) v *= b[j]->data[i];
                    dx[i] = v;
                }
            } else {
#pragma omp parallel for if (n > 65536)
                for (size_t i = 0; i < n; i++) dx[i] = dy[i] * y[i] / x[i];
            }
            break;
        case OP_SUM: {
            float c = e->coeff[k];
#pragma omp parallel for if (n > 65536)
            for (size_t i = 0; i < n; i++) dx[i] = c * dy[i];
            break;
        }
        default:
#pragma omp parallel for if (n > 65536)
            for (size_t i = 0; i < n; i++) dx[i] = e->argmax[i] == k ? dy[i] : 0.f;
            break;
        }
    }
    return CNN_OK;
}

static const cnn_cuda_elt_op gpu_ops[] = {CNN_CUDA_ELT_PROD, CNN_CUDA_ELT_SUM, CNN_CUDA_ELT_MAX};

/* Device pointers to every bottom's data. */
static cnn_status read_bottoms(cnn_layer *l, const float **xs)
{
    cnn_status st = CNN_OK;
    for (int k = 0; k < l->n_bottom; k++) CNN_TRY(cnn_gpu_read(l->bottom[k], &xs[k]));
fail:
    return st;
}

static cnn_status eltwise_forward_gpu(cnn_layer *l)
{
    cnn_status st = CNN_OK;
    eltwise_priv *e = l->priv;
    const float *xs[CNN_CUDA_ELT_MAX_BOTTOMS];
    float *y;
    CNN_TRY(read_bottoms(l, xs));
    CNN_TRY(cnn_gpu_write(l->top[0], &y));
    CNN_TRY(cnn_cuda_eltwise_forward(l->cuda, gpu_ops[e->op], l->n_bottom, xs, e->coeff,
                                     l->top[0]->count, y, e->dev_argmax));
fail:
    return st;
}

static cnn_status eltwise_backward_gpu(cnn_layer *l)
{
    cnn_status st = CNN_OK;
    eltwise_priv *e = l->priv;
    const float *xs[CNN_CUDA_ELT_MAX_BOTTOMS], *y = NULL, *dy;
    float *dx;
    CNN_TRY(read_bottoms(l, xs));
    CNN_TRY(cnn_gpu_read_grad(l->top[0], &dy));
    if (e->op == OP_PROD && !e->stable_prod_grad) CNN_TRY(cnn_gpu_read(l->top[0], &y));
    for (int k = 0; k < l->n_bottom; k++) {
        if (!l->propagate_down[k]) continue;
        CNN_TRY(cnn_gpu_write_grad(l->bottom[k], &dx));
        CNN_TRY(cnn_cuda_eltwise_backward(l->cuda, gpu_ops[e->op], l->n_bottom, xs, e->coeff,
                                          l->top[0]->count, y, dy, e->dev_argmax, k,
                                          e->stable_prod_grad, dx));
    }
fail:
    return st;
}

static void eltwise_destroy(cnn_layer *l)
{
    eltwise_priv *e = l->priv;
    if (e) {
        free(e->argmax);
        if (e->ctx) cnn_cuda_free(e->ctx, e->dev_argmax);
    }
    free(l->priv);
    l->priv = NULL;
}

static double eltwise_flops(const cnn_layer *l)
{
    const eltwise_priv *e = l->priv;
    double n = (double)l->top[0]->count, nb = l->n_bottom;
    return e->op == OP_SUM ? 2 * n * nb : n * (nb - 1);
}

const cnn_layer_type cnn_layer_Eltwise = {
    .name = "Eltwise",
    .min_bottoms = 2,
    .max_bottoms = -1,
    .min_tops = 1,
    .max_tops = 1,
    .setup = eltwise_setup,
    .reshape = eltwise_reshape,
    .forward = eltwise_forward,
    .backward = eltwise_backward,
    .destroy = eltwise_destroy,
    .flops = eltwise_flops,
    .forward_gpu = eltwise_forward_gpu,
    .backward_gpu = eltwise_backward_gpu,
};
