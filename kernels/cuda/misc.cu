/* misc.cu — the structural layers' device work: Concat's strided copies
 * (one cudaMemcpy2DAsync each), Eltwise (PROD, SUM with coefficients, MAX
 * with argmax) forward and backward, and Split's gradient sum, with the
 * semantics of layers/concat.c, eltwise.c and split.c. */
#include "common.cuh"

extern "C" cnn_status cnn_cuda_concat_copy(cnn_cuda_ctx *ctx, size_t outer, size_t chunk,
                                           size_t y_chunk, size_t at, bool to_y, float *x,
                                           float *y)
{
    if (!outer || !chunk) return CNN_OK;
    if (at + chunk > y_chunk)
        return CNN_ERROR(CNN_ERR_ARG, "concat: columns [%zu, %zu) outside %zu", at, at + chunk,
                         y_chunk);
    size_t w = chunk * sizeof(float), xp = w, yp = y_chunk * sizeof(float);
    if (to_y)
        CNN_CUDA(cudaMemcpy2DAsync(y + at, yp, x, xp, w, outer, cudaMemcpyDeviceToDevice,
                                   ctx->stream));
    else
        CNN_CUDA(cudaMemcpy2DAsync(x, xp, y + at, yp, w, outer, cudaMemcpyDeviceToDevice,
                                   ctx->stream));
    CNN_SYNC_IF_DEBUG(ctx);
    return CNN_OK;
}

/* Up to CNN_CUDA_ELT_MAX_BOTTOMS device pointers and coefficients, by value. */
struct elt_args {
    const float *x[CNN_CUDA_ELT_MAX_BOTTOMS];
    float coeff[CNN_CUDA_ELT_MAX_BOTTOMS];
    int k;
};

__global__ void elt_fwd_kernel(cnn_cuda_elt_op op, elt_args a, size_t n, float *y, int *argmax)
{
    CNN_GRID_STRIDE(i, n)
    {
        if (op == CNN_CUDA_ELT_PROD) {
            float v = a.x[0][i];
            for (int k = 1; k < a.k; k++) v *= a.x[k][i];
            y[i] = v;
        } else if (op == CNN_CUDA_ELT_SUM) {
            float v = a.coeff[0] * a.x[0][i];
            for (int k = 1; k < a.k; k++) v += a.coeff[k] * a.x[k][i];
            y[i] = v;
        } else {
            float v = a.x[0][i];
            int arg = 0;
            for (int k = 1; k < a.k; k++)
                if (a.x[k][i] > v) {
                    v = a.x[k][i];
                    arg = k;
                }
            y[i] = v;
            argmax[i] = arg;
        }
    }
}

__global__ void elt_bwd_kernel(cnn_cuda_elt_op op, elt_args a, size_t n, const float *y,
                               const float *dy, const int *argmax, int which, bool stable,
                               float *dx)
{
    CNN_GRID_STRIDE(i, n)
    {
        if (op == CNN_CUDA_ELT_PROD) {
            if (stable) {
                float v = dy[i];
                for (int j = 0; j < a.k; j++)
                    if (j != which) v *= a.x[j][i];
                dx[i] = v;
            } else {
                dx[i] = dy[i] * y[i] / a.x[which][i];
            }
        } else if (op == CNN_CUDA_ELT_SUM) {
            dx[i] = a.coeff[which] * dy[i];
        } else {
            dx[i] = argmax[i] == which ? dy[i] : 0.f;
        }
    }
}

static cnn_status pack(int k, const float *const *xs, const float *coeff, elt_args *a)
{
    if (k < 1 || k > CNN_CUDA_ELT_MAX_BOTTOMS)
        return CNN_ERROR(CNN_ERR_ARG, "%d operands (1 to %d on CUDA)", k,
                         CNN_CUDA_ELT_MAX_BOTTOMS);
    a->k = k;
    for (int i = 0; i < k; i++) {
        a->x[i] = xs[i];
        a->coeff[i] = coeff ? coeff[i] : 1.f;
    }
    return CNN_OK;
}

extern "C" cnn_status cnn_cuda_eltwise_forward(cnn_cuda_ctx *ctx, cnn_cuda_elt_op op, int k,
                                               const float *const *xs, const float *coeff,
                                               size_t n, float *y, int *argmax)
{
    elt_args a = {};
    CNN_TRY_CUDA(pack(k, xs, coeff, &a));
    if (n) CNN_LAUNCH(ctx, elt_fwd_kernel, cnn_blocks(n), op, a, n, y, argmax);
    return CNN_OK;
}

extern "C" cnn_status cnn_cuda_eltwise_backward(cnn_cuda_ctx *ctx, cnn_cuda_elt_op op, int k,
                                                const float *const *xs, const float *coeff,
                                                size_t n, const float *y, const float *dy,
                                                const int *argmax, int which, bool stable_prod,
                                                float *dx)
{
    elt_args a = {};
    CNN_TRY_CUDA(pack(k, xs, coeff, &a));
    if (which < 0 || which >= k) return CNN_ERROR(CNN_ERR_ARG, "operand %d of %d", which, k);
    if (n)
        CNN_LAUNCH(ctx, elt_bwd_kernel, cnn_blocks(n), op, a, n, y, dy, argmax, which,
                   stable_prod, dx);
    return CNN_OK;
}

__global__ void sum_kernel(elt_args a, size_t n, float *dx)
{
    CNN_GRID_STRIDE(i, n)
    {
        float v = a.x[0][i];
        for (int k = 1; k < a.k; k++) v += a.x[k][i];
        dx[i] = v;
    }
}

extern "C" cnn_status cnn_cuda_split_accumulate(cnn_cuda_ctx *ctx, int k,
                                                const float *const *dys, size_t n, float *dx)
{
    elt_args a = {};
    CNN_TRY_CUDA(pack(k, dys, NULL, &a));
    if (n) CNN_LAUNCH(ctx, sum_kernel, cnn_blocks(n), a, n, dx);
    return CNN_OK;
}
