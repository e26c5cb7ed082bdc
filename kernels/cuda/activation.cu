/* activation.cu — point-wise activations (ReLU with negative slope, PReLU,
 * sigmoid, tanh, ELU), the PReLU slope gradient, and dropout: the Philox
 * mask of kernels/philox.h (the same bits as kernels/cpu/philox.c) and its
 * product. Own kernels: cuDNN has no leaky ReLU or PReLU, and these fuse
 * trivially. Backward kernels may write dx over dy. */
#include <string.h>

#include "../philox.h"
#include "common.cuh"

__global__ void relu_fwd_kernel(size_t n, float slope, const float *x, float *y)
{
    CNN_GRID_STRIDE(i, n) y[i] = x[i] > 0 ? x[i] : slope * x[i];
}

__global__ void relu_bwd_kernel(size_t n, float slope, const float *x, const float *dy,
                                float *dx)
{
    CNN_GRID_STRIDE(i, n) dx[i] = dy[i] * (x[i] > 0 ? 1.f : slope);
}

__global__ void prelu_fwd_kernel(size_t total, int c, size_t dim, const float *slope,
                                 bool shared, const float *x, float *y)
{
    CNN_GRID_STRIDE(i, total)
    {
        float a = slope[shared ? 0 : (int)(i / dim % c)];
        y[i] = x[i] > 0 ? x[i] : a * x[i];
    }
}

__global__ void prelu_bwd_kernel(size_t total, int c, size_t dim, const float *slope,
                                 bool shared, const float *x, const float *dy, float *dx)
{
    CNN_GRID_STRIDE(i, total)
    {
        float a = slope[shared ? 0 : (int)(i / dim % c)];
        dx[i] = dy[i] * (x[i] > 0 ? 1.f : a);
    }
}

/* Block b takes channels b, b + gridDim.x, ...: the sum of dy*x where x <= 0
 * of each goes to dslope[ch], or (shared) their total to partial[b]. */
__global__ void prelu_slope_kernel(int n, int c, size_t dim, bool shared, const float *x,
                                   const float *dy, double *partial, float *dslope)
{
    size_t m = (size_t)n * dim;
    double total = 0;
    for (int ch = blockIdx.x; ch < c; ch += gridDim.x) {
        double acc = 0;
        for (size_t j = threadIdx.x; j < m; j += blockDim.x) {
            size_t i = ((j / dim) * (size_t)c + ch) * dim + j % dim;
            if (x[i] <= 0) acc += (double)dy[i] * x[i];
        }
        double s = cnn_block_sum(acc);
        if (shared)
            total += s;
        else if (threadIdx.x == 0)
            dslope[ch] += (float)s;
    }
    if (shared && threadIdx.x == 0) partial[blockIdx.x] = total;
}

/* dslope[0] += the sum of partial[0..parts), in order. */
__global__ void prelu_slope_add_kernel(int parts, const double *partial, float *dslope)
{
    double s = 0;
    for (int b = 0; b < parts; b++) s += partial[b];
    dslope[0] += (float)s;
}

__global__ void sigmoid_fwd_kernel(size_t n, const float *x, float *y)
{
    CNN_GRID_STRIDE(i, n) y[i] = 0.5f * tanhf(0.5f * x[i]) + 0.5f;
}

__global__ void sigmoid_bwd_kernel(size_t n, const float *y, const float *dy, float *dx)
{
    CNN_GRID_STRIDE(i, n) dx[i] = dy[i] * y[i] * (1.f - y[i]);
}

__global__ void tanh_fwd_kernel(size_t n, const float *x, float *y)
{
    CNN_GRID_STRIDE(i, n) y[i] = tanhf(x[i]);
}

__global__ void tanh_bwd_kernel(size_t n, const float *y, const float *dy, float *dx)
{
    CNN_GRID_STRIDE(i, n) dx[i] = dy[i] * (1.f - y[i] * y[i]);
}

__global__ void elu_fwd_kernel(size_t n, float alpha, const float *x, float *y)
{
    CNN_GRID_STRIDE(i, n) y[i] = x[i] > 0 ? x[i] : alpha * expm1f(x[i]);
}

__global__ void elu_bwd_kernel(size_t n, float alpha, const float *x, const float *y,
                               const float *dy, float *dx)
{
    CNN_GRID_STRIDE(i, n) dx[i] = dy[i] * (x[i] > 0 ? 1.f : alpha + y[i]);
}

/* One Philox block (four values) per thread; the seed from device memory
 * when seed_at is set. */
__global__ void philox_kernel(size_t n, uint64_t seed, const float *seed_at, uint64_t offset,
                              bool as_mask, float p_keep, float keep_scale, float *out)
{
    if (seed_at) memcpy(&seed, seed_at, sizeof seed);
    CNN_GRID_STRIDE(b, (n + 3) / 4)
    {
        cnn_philox4 r = cnn_philox_block(seed, offset, b);
        for (size_t j = 0; j < 4 && 4 * b + j < n; j++) {
            float u = cnn_philox_to_unit(r.v[j]);
            out[4 * b + j] = as_mask ? (u < p_keep ? keep_scale : 0.f) : u;
        }
    }
}

__global__ void mul_kernel(size_t n, const float *x, const float *m, float *y)
{
    CNN_GRID_STRIDE(i, n) y[i] = x[i] * m[i];
}

/* ---- host side ---------------------------------------------------------- */

extern "C" cnn_status cnn_cuda_relu_forward(cnn_cuda_ctx *ctx, size_t n, float slope,
                                            const float *x, float *y)
{
    if (n) CNN_LAUNCH(ctx, relu_fwd_kernel, cnn_blocks(n), n, slope, x, y);
    return CNN_OK;
}

extern "C" cnn_status cnn_cuda_relu_backward(cnn_cuda_ctx *ctx, size_t n, float slope,
                                             const float *x, const float *dy, float *dx)
{
    if (n) CNN_LAUNCH(ctx, relu_bwd_kernel, cnn_blocks(n), n, slope, x, dy, dx);
    return CNN_OK;
}

extern "C" cnn_status cnn_cuda_prelu_forward(cnn_cuda_ctx *ctx, int n, int c, size_t dim,
                                             const float *slope, bool shared, const float *x,
                                             float *y)
{
    size_t t = (size_t)n * c * dim;
    if (t) CNN_LAUNCH(ctx, prelu_fwd_kernel, cnn_blocks(t), t, c, dim, slope, shared, x, y);
    return CNN_OK;
}

extern "C" cnn_status cnn_cuda_prelu_backward(cnn_cuda_ctx *ctx, int n, int c, size_t dim,
                                              const float *slope, bool shared, const float *x,
                                              const float *dy, float *dx)
{
    size_t t = (size_t)n * c * dim;
    if (t)
        CNN_LAUNCH(ctx, prelu_bwd_kernel, cnn_blocks(t), t, c, dim, slope, shared, x, dy, dx);
    return CNN_OK;
}

extern "C" cnn_status cnn_cuda_prelu_slope_grad(cnn_cuda_ctx *ctx, int n, int c, size_t dim,
                                                bool shared, const float *x, const float *dy,
                                                float *dslope)
{
    if (c <= 0) return CNN_OK;
    unsigned g = c < CNN_PARTIALS ? (unsigned)c : CNN_PARTIALS;
    CNN_LAUNCH(ctx, prelu_slope_kernel, g, n, c, dim, shared, x, dy, ctx->partial, dslope);
    if (shared) CNN_LAUNCH_SCALAR(ctx, prelu_slope_add_kernel, (int)g, ctx->partial, dslope);
    return CNN_OK;
}

extern "C" cnn_status cnn_cuda_sigmoid_forward(cnn_cuda_ctx *ctx, size_t n, const float *x,
                                               float *y)
{
    if (n) CNN_LAUNCH(ctx, sigmoid_fwd_kernel, cnn_blocks(n), n, x, y);
    return CNN_OK;
}

extern "C" cnn_status cnn_cuda_sigmoid_backward(cnn_cuda_ctx *ctx, size_t n, const float *y,
                                                const float *dy, float *dx)
{
    if (n) CNN_LAUNCH(ctx, sigmoid_bwd_kernel, cnn_blocks(n), n, y, dy, dx);
    return CNN_OK;
}

extern "C" cnn_status cnn_cuda_tanh_forward(cnn_cuda_ctx *ctx, size_t n, const float *x,
                                            float *y)
{
    if (n) CNN_LAUNCH(ctx, tanh_fwd_kernel, cnn_blocks(n), n, x, y);
    return CNN_OK;
}

extern "C" cnn_status cnn_cuda_tanh_backward(cnn_cuda_ctx *ctx, size_t n, const float *y,
                                             const float *dy, float *dx)
{
    if (n) CNN_LAUNCH(ctx, tanh_bwd_kernel, cnn_blocks(n), n, y, dy, dx);
    return CNN_OK;
}

extern "C" cnn_status cnn_cuda_elu_forward(cnn_cuda_ctx *ctx, size_t n, float alpha,
                                           const float *x, float *y)
{
    if (n) CNN_LAUNCH(ctx, elu_fwd_kernel, cnn_blocks(n), n, alpha, x, y);
    return CNN_OK;
}

extern "C" cnn_status cnn_cuda_elu_backward(cnn_cuda_ctx *ctx, size_t n, float alpha,
                                            const float *x, const float *y, const float *dy,
                                            float *dx)
{
    if (n) CNN_LAUNCH(ctx, elu_bwd_kernel, cnn_blocks(n), n, alpha, x, y, dy, dx);
    return CNN_OK;
}

extern "C" cnn_status cnn_cuda_dropout_mask(cnn_cuda_ctx *ctx, size_t n, const float *seed,
                                            uint64_t offset, float p_keep, float keep_scale,
                                            float *mask)
{
    if (n)
        CNN_LAUNCH(ctx, philox_kernel, cnn_blocks((n + 3) / 4), n, (uint64_t)0, seed, offset,
                   true, p_keep, keep_scale, mask);
    return CNN_OK;
}

extern "C" cnn_status cnn_cuda_philox_uniform(cnn_cuda_ctx *ctx, size_t n, uint64_t seed,
                                              uint64_t offset, float *u)
{
    if (n)
        CNN_LAUNCH(ctx, philox_kernel, cnn_blocks((n + 3) / 4), n, seed, (const float *)NULL,
                   offset, false, 0.f, 0.f, u);
    return CNN_OK;
}

extern "C" cnn_status cnn_cuda_dropout_apply(cnn_cuda_ctx *ctx, size_t n, const float *x,
                                             const float *mask, float *y)
{
    if (n) CNN_LAUNCH(ctx, mul_kernel, cnn_blocks(n), n, x, mask, y);
    return CNN_OK;
}
