/* batchnorm.cu — batch normalisation over (n, c, s) as kernels/cpu/batchnorm.c
 * computes it (per-channel statistics in double, biased variance; the
 * backward from the normalised output), the BatchNorm layer's moving sums,
 * and the per-slice scale and bias of kernels/cpu/scale.c. Per-channel
 * reductions use one block per channel, in a fixed order. */
#include <limits.h>

#include "common.cuh"

/* Sum over the (outer, inner) values of slice d of (outer, dim, inner) of
 * f(index), in double, valid in thread 0. */
template <class F>
__device__ __forceinline__ double slice_sum(int outer, int dim, size_t inner, int d, F f)
{
    size_t m = (size_t)outer * inner;
    double acc = 0;
    for (size_t j = threadIdx.x; j < m; j += blockDim.x)
        acc += f(((j / inner) * (size_t)dim + d) * inner + j % inner);
    return cnn_block_sum(acc);
}

struct val_of {
    const float *x;
    __device__ double operator()(size_t i) const { return x[i]; }
};

struct dev_of {
    const float *x;
    double mu;
    __device__ double operator()(size_t i) const { return ((double)x[i] - mu) * ((double)x[i] - mu); }
};

struct prod_of {
    const float *a, *b;
    __device__ double operator()(size_t i) const { return (double)a[i] * b[i]; }
};

__global__ void bn_stats_kernel(int n, int c, size_t s, const float *x, float *mean, float *var)
{
    __shared__ double mu;
    int ch = blockIdx.x;
    double m = (double)n * (double)s;
    double sum = slice_sum(n, c, s, ch, val_of{x});
    if (threadIdx.x == 0) mu = m > 0 ? sum / m : 0;
    __syncthreads();
    double sq = slice_sum(n, c, s, ch, dev_of{x, mu});
    if (threadIdx.x == 0) {
        mean[ch] = (float)mu;
        var[ch] = m > 0 ? (float)(sq / m) : 0.f;
    }
}

__global__ void bn_norm_kernel(size_t total, int c, size_t s, const float *x, const float *mean,
                               const float *inv_std, float *y)
{
    CNN_GRID_STRIDE(i, total)
    {
        int ch = (int)(i / s % c);
        y[i] = (x[i] - mean[ch]) * inv_std[ch];
    }
}

__global__ void bn_bwd_kernel(int n, int c, size_t s, const float *xn, const float *dy,
                              const float *inv_std, float *dx)
{
    __shared__ float mean_dy, mean_dyx;
    int ch = blockIdx.x;
    double m = (double)n * (double)s;
    double sdy = slice_sum(n, c, s, ch, val_of{dy});
    double sdyx = slice_sum(n, c, s, ch, prod_of{dy, xn});
    if (threadIdx.x == 0) {
        mean_dy = m > 0 ? (float)(sdy / m) : 0.f;
        mean_dyx = m > 0 ? (float)(sdyx / m) : 0.f;
    }
    __syncthreads();
    float is = inv_std[ch], a = mean_dy, b = mean_dyx;
    size_t total = (size_t)n * s;
    for (size_t j = threadIdx.x; j < total; j += blockDim.x) {
        size_t i = ((j / s) * (size_t)c + ch) * s + j % s;
        dx[i] = (dy[i] - a - b * xn[i]) * is;
    }
}

/* The BatchNorm layer's statistics bookkeeping (see cuda_ops.h). */
__global__ void bn_running_kernel(int c, bool use_global, float fraction, float corr, float eps,
                                  float *mean, float *var, float *sum_mean, float *sum_var,
                                  float *weight)
{
    float w = weight[0];
    CNN_GRID_STRIDE(i, (size_t)c)
    {
        if (use_global) {
            float sf = w == 0 ? 0.f : 1.f / w;
            mean[i] = sf * sum_mean[i];
            var[i] = sf * sum_var[i];
        } else {
            /* Unfused, as the CPU rounds them: the sums persist in snapshots. */
            sum_mean[i] = __fadd_rn(__fmul_rn(fraction, sum_mean[i]), mean[i]);
            sum_var[i] = __fadd_rn(__fmul_rn(fraction, sum_var[i]), __fmul_rn(corr, var[i]));
        }
        var[i] = 1.f / sqrtf(var[i] + eps);
    }
}

__global__ void bn_weight_kernel(float fraction, float *weight)
{
    weight[0] = __fadd_rn(__fmul_rn(weight[0], fraction), 1.f);
}

__global__ void bcast_scale_kernel(size_t total, int dim, size_t inner, const float *x,
                                   const float *s, const float *b, float *y)
{
    CNN_GRID_STRIDE(i, total)
    {
        int d = (int)(i / inner % dim);
        y[i] = x[i] * s[d] + (b ? b[d] : 0.f);
    }
}

/* I: the index type, 32-bit where the array allows (cheaper division). */
template <class I>
__global__ void add_bias_kernel(I total, I dim, I inner, const float *b, float *y)
{
    for (I i = (I)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (I)blockDim.x * gridDim.x)
        y[i] += b[i / inner % dim];
}

__global__ void scale_grad_kernel(int outer, int dim, size_t inner, const float *x,
                                  const float *dy, bool accumulate, float *ds)
{
    double sum = slice_sum(outer, dim, inner, blockIdx.x, prod_of{dy, x});
    if (threadIdx.x == 0) ds[blockIdx.x] = (accumulate ? ds[blockIdx.x] : 0.f) + (float)sum;
}

__global__ void bias_grad_kernel(int outer, int dim, size_t inner, const float *dy,
                                 bool accumulate, float *db)
{
    double sum = slice_sum(outer, dim, inner, blockIdx.x, val_of{dy});
    if (threadIdx.x == 0) db[blockIdx.x] = (accumulate ? db[blockIdx.x] : 0.f) + (float)sum;
}

/* ---- host side ---------------------------------------------------------- */

extern "C" cnn_status cnn_cuda_bn_stats(cnn_cuda_ctx *ctx, int n, int c, size_t s,
                                        const float *x, float *mean, float *var)
{
    if (c > 0) CNN_LAUNCH(ctx, bn_stats_kernel, (unsigned)c, n, c, s, x, mean, var);
    return CNN_OK;
}

extern "C" cnn_status cnn_cuda_bn_normalize(cnn_cuda_ctx *ctx, int n, int c, size_t s,
                                            const float *x, const float *mean,
                                            const float *inv_std, float *y)
{
    size_t t = (size_t)n * c * s;
    if (t) CNN_LAUNCH(ctx, bn_norm_kernel, cnn_blocks(t), t, c, s, x, mean, inv_std, y);
    return CNN_OK;
}

extern "C" cnn_status cnn_cuda_bn_backward(cnn_cuda_ctx *ctx, int n, int c, size_t s,
                                           const float *xn, const float *dy,
                                           const float *inv_std, float *dx)
{
    if (c > 0) CNN_LAUNCH(ctx, bn_bwd_kernel, (unsigned)c, n, c, s, xn, dy, inv_std, dx);
    return CNN_OK;
}

extern "C" cnn_status cnn_cuda_bn_running(cnn_cuda_ctx *ctx, int c, bool use_global,
                                          float fraction, float corr, float eps, float *mean,
                                          float *var, float *sum_mean, float *sum_var,
                                          float *weight)
{
    if (c <= 0) return CNN_OK;
    /* One block, so weight[0] is read before bn_weight_kernel changes it. */
    CNN_LAUNCH(ctx, bn_running_kernel, 1, c, use_global, fraction, corr, eps, mean, var,
               sum_mean, sum_var, weight);
    if (!use_global) CNN_LAUNCH_SCALAR(ctx, bn_weight_kernel, fraction, weight);
    return CNN_OK;
}

extern "C" cnn_status cnn_cuda_bcast_scale(cnn_cuda_ctx *ctx, int outer, int dim, size_t inner,
                                           const float *x, const float *s, const float *b,
                                           float *y)
{
    size_t t = (size_t)outer * dim * inner;
    if (t) CNN_LAUNCH(ctx, bcast_scale_kernel, cnn_blocks(t), t, dim, inner, x, s, b, y);
    return CNN_OK;
}

extern "C" cnn_status cnn_cuda_add_bias(cnn_cuda_ctx *ctx, int outer, int dim, size_t inner,
                                        const float *b, float *y)
{
    size_t t = (size_t)outer * dim * inner;
    if (t && t <= UINT_MAX)
        CNN_LAUNCH(ctx, add_bias_kernel<unsigned>, cnn_blocks(t), (unsigned)t, (unsigned)dim,
                   (unsigned)inner, b, y);
    else if (t)
        CNN_LAUNCH(ctx, add_bias_kernel<size_t>, cnn_blocks(t), t, (size_t)dim, inner, b, y);
    return CNN_OK;
}

extern "C" cnn_status cnn_cuda_bcast_scale_grad(cnn_cuda_ctx *ctx, int outer, int dim,
                                                size_t inner, const float *x, const float *dy,
                                                bool accumulate, float *ds)
{
    if (dim > 0)
        CNN_LAUNCH(ctx, scale_grad_kernel, (unsigned)dim, outer, dim, inner, x, dy, accumulate,
                   ds);
    return CNN_OK;
}

extern "C" cnn_status cnn_cuda_bcast_bias_grad(cnn_cuda_ctx *ctx, int outer, int dim,
                                               size_t inner, const float *dy, bool accumulate,
                                               float *db)
{
    if (dim > 0)
        CNN_LAUNCH(ctx, bias_grad_kernel, (unsigned)dim, outer, dim, inner, dy, accumulate, db);
    return CNN_OK;
}
