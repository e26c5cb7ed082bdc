/* blas.cu — BLAS-like ops on the device: products through cuBLAS (row-major
 * arrays seen as their column-major transposes), element-wise kernels, and
 * deterministic double-accumulated dot and asum. */
#include "common.cuh"

/* C = alpha op(A) op(B) + beta C, row-major: cuBLAS computes the
 * column-major C^T = op(B)^T op(A)^T with the operands swapped. */
extern "C" cnn_status cnn_cuda_gemm(cnn_cuda_ctx *ctx, bool ta, bool tb, int m, int n, int k,
                                    float alpha, const float *a, const float *b, float beta,
                                    float *c)
{
    if (m <= 0 || n <= 0) return CNN_OK;
    if (k <= 0) return beta == 0.f ? cnn_cuda_set(ctx, (size_t)m * n, 0.f, c)
                                   : cnn_cuda_scale(ctx, (size_t)m * n, beta, c);
    int lda = ta ? m : k, ldb = tb ? k : n;
    CNN_CUBLAS(cublasSgemm(ctx->blas, tb ? CUBLAS_OP_T : CUBLAS_OP_N,
                           ta ? CUBLAS_OP_T : CUBLAS_OP_N, n, m, k, &alpha, b, ldb, a, lda,
                           &beta, c, n));
    CNN_SYNC_IF_DEBUG(ctx);
    return CNN_OK;
}

/* y = alpha op(A) x + beta y with A m x n row-major, i.e. n x m column-major. */
extern "C" cnn_status cnn_cuda_gemv(cnn_cuda_ctx *ctx, bool ta, int m, int n, float alpha,
                                    const float *a, const float *x, float beta, float *y)
{
    if (m <= 0 || n <= 0) {
        size_t ny = (size_t)(ta ? n : m);
        if (ny == 0 || (ta ? n : m) < 0) return CNN_OK;
        return beta == 0.f ? cnn_cuda_set(ctx, ny, 0.f, y) : cnn_cuda_scale(ctx, ny, beta, y);
    }
    CNN_CUBLAS(cublasSgemv(ctx->blas, ta ? CUBLAS_OP_N : CUBLAS_OP_T, n, m, &alpha, a, n, x, 1,
                           &beta, y, 1));
    CNN_SYNC_IF_DEBUG(ctx);
    return CNN_OK;
}

__global__ void axpy_kernel(size_t n, float alpha, const float *x, float *y)
{
    CNN_GRID_STRIDE(i, n) y[i] += alpha * x[i];
}

__global__ void scale_kernel(size_t n, float alpha, float *x)
{
    CNN_GRID_STRIDE(i, n) x[i] *= alpha;
}

__global__ void set_kernel(size_t n, float v, float *x)
{
    CNN_GRID_STRIDE(i, n) x[i] = v;
}

__global__ void add_kernel(size_t n, const float *a, const float *b, float *y)
{
    CNN_GRID_STRIDE(i, n) y[i] = a[i] + b[i];
}

extern "C" cnn_status cnn_cuda_axpy(cnn_cuda_ctx *ctx, size_t n, float alpha, const float *x,
                                    float *y)
{
    if (n) CNN_LAUNCH(ctx, axpy_kernel, cnn_blocks(n), n, alpha, x, y);
    return CNN_OK;
}

extern "C" cnn_status cnn_cuda_scale(cnn_cuda_ctx *ctx, size_t n, float alpha, float *x)
{
    if (n) CNN_LAUNCH(ctx, scale_kernel, cnn_blocks(n), n, alpha, x);
    return CNN_OK;
}

extern "C" cnn_status cnn_cuda_set(cnn_cuda_ctx *ctx, size_t n, float value, float *x)
{
    if (n == 0) return CNN_OK;
    if (value == 0.f && !signbit(value)) {
        CNN_CUDA(cudaMemsetAsync(x, 0, n * sizeof(float), ctx->stream));
        CNN_SYNC_IF_DEBUG(ctx);
        return CNN_OK;
    }
    CNN_LAUNCH(ctx, set_kernel, cnn_blocks(n), n, value, x);
    return CNN_OK;
}

extern "C" cnn_status cnn_cuda_copy(cnn_cuda_ctx *ctx, size_t n, const float *x, float *y)
{
    return cnn_cuda_copy_bytes(ctx, y, x, n * sizeof(float));
}

extern "C" cnn_status cnn_cuda_add(cnn_cuda_ctx *ctx, size_t n, const float *a, const float *b,
                                   float *y)
{
    if (n) CNN_LAUNCH(ctx, add_kernel, cnn_blocks(n), n, a, b, y);
    return CNN_OK;
}

__global__ void div_kernel(size_t n, const float *num, const float *den, float lo, float *out)
{
    CNN_GRID_STRIDE(i, n) out[i] = __fdiv_rn(num[i], fmaxf(den[i], lo));
}

extern "C" cnn_status cnn_cuda_div(cnn_cuda_ctx *ctx, size_t n, const float *num,
                                   const float *den, float lo, float *out)
{
    if (n) CNN_LAUNCH(ctx, div_kernel, cnn_blocks(n), n, num, den, lo, out);
    return CNN_OK;
}

struct dot_term {
    const float *x, *y;
    __device__ double operator()(size_t i) const { return (double)x[i] * y[i]; }
};

struct asum_term {
    const float *x;
    __device__ double operator()(size_t i) const { return fabs((double)x[i]); }
};

extern "C" cnn_status cnn_cuda_dot(cnn_cuda_ctx *ctx, size_t n, const float *x, const float *y,
                                   float *out)
{
    return cnn_cuda_sum(ctx, n, dot_term{x, y}, 1.f, out);
}

extern "C" cnn_status cnn_cuda_asum(cnn_cuda_ctx *ctx, size_t n, const float *x, float *out)
{
    return cnn_cuda_sum(ctx, n, asum_term{x}, 1.f, out);
}
