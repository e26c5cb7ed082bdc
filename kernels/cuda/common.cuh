/* common.cuh — what the .cu files of kernels/cuda share: the context's
 * layout, launch geometry, and deterministic block reductions. Internal to
 * kernels/cuda/. */
#ifndef CNN_CUDA_COMMON_CUH
#define CNN_CUDA_COMMON_CUH

#include "../cuda_ops.h"
#include "cuda_check.h"

/* Returns from the calling function when a cnn_status expression fails. */
#define CNN_TRY_CUDA(expr)                                                               \
    do {                                                                                 \
        cnn_status s_ = (expr);                                                          \
        if (s_ != CNN_OK) return s_;                                                     \
    } while (0)

/* Conv algorithm choices cached per shape (conv.cu). */
struct cnn_conv_cache_entry;

struct cnn_cuda_ctx {
    int device;
    cudaStream_t stream;
    cublasHandle_t blas;
    void *blas_ws;    /* cuBLAS's workspace (cublasSetWorkspace) */
    cudnnHandle_t dnn;
    void *ws;         /* cuDNN workspace, ws_size bytes */
    size_t ws_size;
    size_t ws_limit;  /* budget for algorithm choice */
    bool deterministic, tf32, sync_debug;
    double *partial;  /* CNN_PARTIALS doubles for two-pass reductions */
    struct cnn_conv_cache_entry *cache;
    int n_cache, cap_cache;
};

/* Threads per block of the element-wise and reduction kernels. */
#define CNN_THREADS 256
/* Blocks of the first pass of a whole-array reduction (and its partials). */
#define CNN_PARTIALS 1024

/* Blocks for a grid-stride loop over n items. */
static inline unsigned cnn_blocks(size_t n)
{
    size_t b = (n + CNN_THREADS - 1) / CNN_THREADS;
    if (b < 1) b = 1;
    return b > 65535u * 8 ? 65535u * 8 : (unsigned)b;
}

#define CNN_GRID_STRIDE(i, n)                                                            \
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n);              \
         i += (size_t)blockDim.x * gridDim.x)

/* Sum of v over the block (blockDim.x == CNN_THREADS), in a fixed order;
 * the result is valid in thread 0. */
__device__ __forceinline__ double cnn_block_sum(double v)
{
    __shared__ double sh[CNN_THREADS];
    sh[threadIdx.x] = v;
    __syncthreads();
    for (int s = CNN_THREADS / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) sh[threadIdx.x] += sh[threadIdx.x + s];
        __syncthreads();
    }
    double r = sh[0];
    __syncthreads(); /* sh may be reused by a second call */
    return r;
}

/* kernel<<<grid, block, 0, stream>>>(...); the host compiler of
 * tests/hostcuda, which runs these files on the CPU, has no <<< >>>. */
#ifdef CNN_HOSTCUDA
#define CNN_KERNEL_CALL(kernel, grid, block, stream, ...)                                \
    cnn_hc_launch(#kernel, kernel, (grid), (block), 0, (stream), __VA_ARGS__)
#else
#define CNN_KERNEL_CALL(kernel, grid, block, stream, ...)                                \
    kernel<<<(grid), (block), 0, (stream)>>>(__VA_ARGS__)
#endif

/* Launch configuration ending in the checks of cuda_check.h. */
#define CNN_LAUNCH(ctx, kernel, grid, ...)                                               \
    do {                                                                                 \
        CNN_KERNEL_CALL(kernel, grid, CNN_THREADS, (ctx)->stream, __VA_ARGS__);          \
        CNN_LAUNCHED(ctx, kernel);                                                       \
    } while (0)

/* The same for a kernel that updates one scalar: a single thread. */
#define CNN_LAUNCH_SCALAR(ctx, kernel, ...)                                               \
    do {                                                                                 \
        CNN_KERNEL_CALL(kernel, 1, 1, (ctx)->stream, __VA_ARGS__);                       \
        CNN_LAUNCHED(ctx, kernel);                                                       \
    } while (0)

/* A whole-array deterministic sum: term(i) for i < n summed in double by
 * CNN_PARTIALS blocks, then by one block into *out as a float times scale. */
cnn_status cnn_cuda_finish_sum(cnn_cuda_ctx *ctx, int parts, float scale, float *out);

template <class F> __global__ void cnn_partial_sum_kernel(size_t n, F term, double *partial)
{
    double acc = 0;
    CNN_GRID_STRIDE(i, n) acc += term(i);
    double s = cnn_block_sum(acc);
    if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

template <class F>
static cnn_status cnn_cuda_sum(cnn_cuda_ctx *ctx, size_t n, F term, float scale, float *out)
{
    unsigned g = cnn_blocks(n);
    if (g > CNN_PARTIALS) g = CNN_PARTIALS;
    CNN_LAUNCH(ctx, cnn_partial_sum_kernel<F>, g, n, term, ctx->partial);
    return cnn_cuda_finish_sum(ctx, (int)g, scale, out);
}

#endif
