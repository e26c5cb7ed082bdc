/* inner_product.c — the InnerProduct (fully connected) layer, Caffe's
 * semantics: the bottom is flattened from `axis` on into (M, K), and
 * top (M, N) = bottom * W^T + b, one GEMM for the whole batch. Weights are
 * (N, K), or (K, N) with `transpose: true`. The GPU path is the same GEMMs
 * through cuBLAS, the bias added and summed by the broadcast kernels. */
#include <string.h>

#include "../core/gpu.h"
#include "../kernels/kernels.h"
#include "layer.h"

typedef struct {
    int num_output, axis;
    bool bias_term, transpose;
    cnn_filler weight_filler, bias_filler;
    int m, k; /* rows (product of dims before axis) and inputs per row */
} ip_priv;

/* Prefixes the layer's name to an error from the config getters (errors
 * made with cnn_layer_error already carry it). */
static cnn_status named(const cnn_layer *l, cnn_status st)
{
    if (st == CNN_OK || !strncmp(cnn_error_message(), "layer '", 7)) return st;
    return cnn_layer_error(l, st, "%s", cnn_error_message());
}

static cnn_status ip_setup(cnn_layer *l, cnn_cfg *cfg)
{
    cnn_status st = CNN_OK;
    cnn_cfg *p = NULL;
    CNN_TRY(cnn_layer_alloc_priv(l, sizeof(ip_priv)));
    ip_priv *ip = l->priv;
    CNN_TRY(cnn_cfg_message(cfg, "inner_product_param", &p));
    if (!p)
        return cnn_layer_error(l, CNN_ERR_CONFIG,
                               "inner_product_param { num_output … } missing");
    CNN_TRY(cnn_cfg_int(p, "num_output", 0, &ip->num_output));
    CNN_TRY(cnn_cfg_bool(p, "bias_term", true, &ip->bias_term));
    CNN_TRY(cnn_cfg_int(p, "axis", 1, &ip->axis));
    CNN_TRY(cnn_cfg_bool(p, "transpose", false, &ip->transpose));
    CNN_TRY(cnn_filler_parse(p, "weight_filler", 0.f, &ip->weight_filler));
    CNN_TRY(cnn_filler_parse(p, "bias_filler", 0.f, &ip->bias_filler));
    if (ip->num_output <= 0)
        return cnn_layer_error(l, CNN_ERR_CONFIG, "num_output must be given and positive");
fail:
    return named(l, st);
}

static cnn_status ip_reshape(cnn_layer *l)
{
    ip_priv *ip = l->priv;
    cnn_status st = CNN_OK;
    const cnn_tensor *b = l->bottom[0];
    char s[64];
    int axis = cnn_tensor_axis(b, ip->axis);
    if (axis < 0)
        return cnn_layer_error(l, CNN_ERR_CONFIG, "axis %d is out of range for input %s",
                               ip->axis, cnn_tensor_shape_str(b, s, sizeof s));
    size_t m = cnn_tensor_count_range(b, 0, axis), k = cnn_tensor_count_range(b, axis, b->ndim);
    if (m > 0x7fffffff || k > 0x7fffffff)
        return cnn_layer_error(l, CNN_ERR_SHAPE, "input %s is too large",
                               cnn_tensor_shape_str(b, s, sizeof s));
    ip->m = (int)m;
    ip->k = (int)k;
    int wshape[2] = {ip->num_output, ip->k};
    if (ip->transpose) {
        wshape[0] = ip->k;
        wshape[1] = ip->num_output;
    }
    st = cnn_layer_param(l, 0, 2, wshape, &ip->weight_filler, NULL);
    if (st == CNN_ERR_SHAPE)
        return cnn_layer_error(l, st, "input %s gives %d inputs per row, which does not fit "
                               "the weights", cnn_tensor_shape_str(b, s, sizeof s), ip->k);
    CNN_TRY(st);
    if (ip->bias_term) CNN_TRY(cnn_layer_param(l, 1, 1, &ip->num_output, &ip->bias_filler, NULL));
    int tshape[CNN_MAX_DIMS];
    for (int i = 0; i < axis; i++) tshape[i] = b->shape[i];
    tshape[axis] = ip->num_output;
    CNN_TRY(cnn_tensor_reshape(l->top[0], axis + 1, tshape));
fail:
    return st;
}

static cnn_status ip_forward(cnn_layer *l)
{
    ip_priv *ip = l->priv;
    const float *x = l->bottom[0]->data, *w = l->param[0]->data;
    float *y = l->top[0]->data;
    int n = ip->num_output;
    float beta = 0.f;
    if (ip->bias_term) {
        const float *b = l->param[1]->data;
        for (int i = 0; i < ip->m; i++)
            for (int j = 0; j < n; j++) y[(size_t)i * n + j] = b[j];
        beta = 1.f;
    }
    cnn_k_gemm(false, !ip->transpose, ip->m, n, ip->k, 1.f, x, w, beta, y);
    return CNN_OK;
}

static cnn_status ip_backward(cnn_layer *l)
{
    ip_priv *ip = l->priv;
    const float *x = l->bottom[0]->data, *w = l->param[0]->data, *dy = l->top[0]->grad;
    int n = ip->num_output;
    if (l->spec[0].lr_mult != 0.f) {
        if (ip->transpose) /* dW (K, N) += x^T dy */
            cnn_k_gemm(true, false, ip->k, n, ip->m, 1.f, x, dy, 1.f, l->param[0]->grad);
        else /* dW (N, K) += dy^T x */
            cnn_k_gemm(true, false, n, ip->k, ip->m, 1.f, dy, x, 1.f, l->param[0]->grad);
    }
    if (ip->bias_term && l->spec[1].lr_mult != 0.f) {
        float *db = l->param[1]->grad;
        for (int i = 0; i < ip->m; i++)
            for (int j = 0; j < n; j++) db[j] += dy[(size_t)i * n + j];
    }
    if (l->propagate_down[0]) /* dx (M, K) = dy W, or dy W^T when W is (K, N) */
        cnn_k_gemm(false, ip->transpose, ip->m, ip->k, n, 1.f, dy, w, 0.f,
                   l->bottom[0]->grad);
    return CNN_OK;
}

static cnn_status ip_forward_gpu(cnn_layer *l)
{
    ip_priv *ip = l->priv;
    cnn_status st = CNN_OK;
    const float *x, *w, *b;
    float *y;
    int n = ip->num_output;
    if (ip->m == 0) return CNN_OK;
    CNN_TRY(cnn_gpu_read(l->bottom[0], &x));
    CNN_TRY(cnn_gpu_read(l->param[0], &w));
    CNN_TRY(cnn_gpu_write(l->top[0], &y));
    CNN_TRY(cnn_cuda_gemm(l->cuda, false, !ip->transpose, ip->m, n, ip->k, 1.f, x, w, 0.f, y));
    if (ip->bias_term) {
        CNN_TRY(cnn_gpu_read(l->param[1], &b));
        CNN_TRY(cnn_cuda_add_bias(l->cuda, ip->m, n, 1, b, y));
    }
fail:
    return st;
}

static cnn_status ip_backward_gpu(cnn_layer *l)
{
    ip_priv *ip = l->priv;
    cnn_status st = CNN_OK;
    const float *x, *w, *dy;
    float *dw, *db, *dx;
    bool acc;
    int n = ip->num_output;
    if (ip->m == 0) return CNN_OK;
    CNN_TRY(cnn_gpu_read_grad(l->top[0], &dy));
    if (l->spec[0].lr_mult != 0.f) {
        CNN_TRY(cnn_gpu_read(l->bottom[0], &x));
        CNN_TRY(cnn_gpu_accumulate_grad(l->param[0], &dw, &acc));
        float beta = acc ? 1.f : 0.f;
        if (ip->transpose)
            CNN_TRY(cnn_cuda_gemm(l->cuda, true, false, ip->k, n, ip->m, 1.f, x, dy, beta, dw));
        else
            CNN_TRY(cnn_cuda_gemm(l->cuda, true, false, n, ip->k, ip->m, 1.f, dy, x, beta, dw));
    }
    if (ip->bias_term && l->spec[1].lr_mult != 0.f) {
        CNN_TRY(cnn_gpu_accumulate_grad(l->param[1], &db, &acc));
        CNN_TRY(cnn_cuda_bcast_bias_grad(l->cuda, ip->m, n, 1, dy, acc, db));
    }
    if (l->propagate_down[0]) {
        CNN_TRY(cnn_gpu_read(l->param[0], &w));
        CNN_TRY(cnn_gpu_write_grad(l->bottom[0], &dx));
        CNN_TRY(cnn_cuda_gemm(l->cuda, false, ip->transpose, ip->m, ip->k, n, 1.f, dy, w, 0.f,
                              dx));
    }
fail:
    return st;
}

static double ip_flops(const cnn_layer *l)
{
    const ip_priv *ip = l->priv;
    double outs = (double)ip->m * ip->num_output;
    return 2 * outs * ip->k + (ip->bias_term ? outs : 0);
}

const cnn_layer_type cnn_layer_InnerProduct = {
    .name = "InnerProduct",
    .min_bottoms = 1,
    .max_bottoms = 1,
    .min_tops = 1,
    .max_tops = 1,
    .setup = ip_setup,
    .reshape = ip_reshape,
    .forward = ip_forward,
    .backward = ip_backward,
    .flops = ip_flops,
    .forward_gpu = ip_forward_gpu,
    .backward_gpu = ip_backward_gpu,
};
