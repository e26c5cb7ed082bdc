/* softmax.cu — softmax over c of (outer, c, inner), the softmax and sigmoid
 * cross-entropy losses, top-k accuracy and the Euclidean loss, as in
 * kernels/cpu/softmax.c and layers/loss.c. Sums run in double in a fixed
 * order (deterministic); scalar results stay on the device. */
#include <float.h>
#include <limits.h>

#include "../softmax_column.h"
#include "common.cuh"

/* ---- softmax ------------------------------------------------------------ */

/* op over the block's values of v, in a fixed tree order; every thread gets
 * the result. */
template <class T, class Op> __device__ __forceinline__ T block_reduce(T v, Op op)
{
    __shared__ T sh[CNN_THREADS];
    sh[threadIdx.x] = v;
    __syncthreads();
    for (int s = CNN_THREADS / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) sh[threadIdx.x] = op(sh[threadIdx.x], sh[threadIdx.x + s]);
        __syncthreads();
    }
    T r = sh[0];
    __syncthreads();
    return r;
}

struct max_op {
    __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
};
struct min_op {
    __device__ int operator()(int a, int b) const { return min(a, b); }
};

__device__ __forceinline__ float block_max(float v) { return block_reduce(v, max_op{}); }

__device__ __forceinline__ double block_sum_all(double v)
{
    __shared__ double total;
    double s = cnn_block_sum(v);
    if (threadIdx.x == 0) total = s;
    __syncthreads();
    double r = total;
    __syncthreads();
    return r;
}

/* inner == 1: one block per row of c values. */
__global__ void softmax_rows_kernel(int c, const float *x, float *y)
{
    const float *xp = x + (size_t)blockIdx.x * c;
    float *yp = y + (size_t)blockIdx.x * c;
    float mx = -INFINITY;
    for (int k = threadIdx.x; k < c; k += blockDim.x) mx = fmaxf(mx, xp[k]);
    mx = block_max(mx);
    double acc = 0;
    for (int k = threadIdx.x; k < c; k += blockDim.x) {
        float e = expf(xp[k] - mx);
        yp[k] = e;
        acc += e;
    }
    float inv = (float)(1.0 / block_sum_all(acc));
    for (int k = threadIdx.x; k < c; k += blockDim.x) yp[k] *= inv;
}

/* General layout: one thread per (outer, inner) column. */
__global__ void softmax_cols_kernel(int outer, int c, int inner, const float *x, float *y)
{
    CNN_GRID_STRIDE(col, (size_t)outer * inner)
    {
        size_t base = col / inner * (size_t)c * inner + col % inner;
        cnn_softmax_column(c, (size_t)inner, x + base, y + base);
    }
}

__global__ void softmax_bwd_rows_kernel(int c, const float *y, const float *dy, float *dx)
{
    size_t o = (size_t)blockIdx.x * c;
    double acc = 0;
    for (int k = threadIdx.x; k < c; k += blockDim.x) acc += (double)dy[o + k] * y[o + k];
    float dot = (float)block_sum_all(acc);
    for (int k = threadIdx.x; k < c; k += blockDim.x) dx[o + k] = (dy[o + k] - dot) * y[o + k];
}

__global__ void softmax_bwd_cols_kernel(int outer, int c, int inner, const float *y,
                                        const float *dy, float *dx)
{
    CNN_GRID_STRIDE(col, (size_t)outer * inner)
    {
        size_t base = col / inner * (size_t)c * inner + col % inner;
        double dot = 0;
        for (int k = 0; k < c; k++) {
            size_t i = base + (size_t)k * inner;
            dot += (double)dy[i] * y[i];
        }
        for (int k = 0; k < c; k++) {
            size_t i = base + (size_t)k * inner;
            dx[i] = (dy[i] - (float)dot) * y[i];
        }
    }
}

extern "C" cnn_status cnn_cuda_softmax_forward(cnn_cuda_ctx *ctx, int outer, int c, int inner,
                                               const float *x, float *y)
{
    if (outer <= 0 || c <= 0 || inner <= 0) return CNN_OK;
    if (inner == 1)
        CNN_LAUNCH(ctx, softmax_rows_kernel, (unsigned)outer, c, x, y);
    else
        CNN_LAUNCH(ctx, softmax_cols_kernel, cnn_blocks((size_t)outer * inner), outer, c, inner,
                   x, y);
    return CNN_OK;
}

extern "C" cnn_status cnn_cuda_softmax_backward(cnn_cuda_ctx *ctx, int outer, int c, int inner,
                                                const float *y, const float *dy, float *dx)
{
    if (outer <= 0 || c <= 0 || inner <= 0) return CNN_OK;
    if (inner == 1)
        CNN_LAUNCH(ctx, softmax_bwd_rows_kernel, (unsigned)outer, c, y, dy, dx);
    else
        CNN_LAUNCH(ctx, softmax_bwd_cols_kernel, cnn_blocks((size_t)outer * inner), outer, c,
                   inner, y, dy, dx);
    return CNN_OK;
}

/* ---- labels ------------------------------------------------------------- */

/* The integer a label stands for (Caffe's truncating cast); false for NaN,
 * infinities and values outside the int range. */
__device__ __forceinline__ bool label_int(float v, int *out)
{
    if (!(v > -2147483648.f && v < 2147483648.f)) return false;
    *out = (int)v;
    return true;
}

/* 0: ignored, 1: valid (*lv set), -1: bad. */
__device__ __forceinline__ int label_state(float v, int c, bool has_ignore, int ignore, int *lv)
{
    if (!label_int(v, lv)) return -1;
    if (has_ignore && *lv == ignore) return 0;
    return *lv < 0 || *lv >= c ? -1 : 1;
}

__global__ void int_set_kernel(int *p, int v) { *p = v; }

__global__ void bad_finish_kernel(int *bad)
{
    if (*bad == INT_MAX) *bad = -1;
}

__global__ void bad_labels_kernel(size_t cols, int c, const float *label, bool has_ignore,
                                  int ignore, int *bad)
{
    CNN_GRID_STRIDE(col, cols)
    {
        int lv;
        if (label_state(label[col], c, has_ignore, ignore, &lv) < 0) atomicMin(bad, (int)col);
    }
}

__global__ void latch_index_kernel(const int *index, int *first)
{
    if (*first < 0 && *index >= 0) *first = *index;
}

extern "C" cnn_status cnn_cuda_latch_index(cnn_cuda_ctx *ctx, const int *index, int *first)
{
    CNN_LAUNCH_SCALAR(ctx, latch_index_kernel, index, first);
    return CNN_OK;
}

/* *bad = the first bad label's index among cols labels, or -1. */
static cnn_status find_bad(cnn_cuda_ctx *ctx, size_t cols, int c, const float *label,
                           bool has_ignore, int ignore, int *bad)
{
    if (!bad) return CNN_OK;
    if (cols > INT_MAX) return CNN_ERROR(CNN_ERR_ARG, "%zu labels is too many", cols);
    CNN_LAUNCH_SCALAR(ctx, int_set_kernel, bad, INT_MAX);
    if (cols) CNN_LAUNCH(ctx, bad_labels_kernel, cnn_blocks(cols), cols, c, label, has_ignore,
                         ignore, bad);
    CNN_LAUNCH_SCALAR(ctx, bad_finish_kernel, bad);
    return CNN_OK;
}

/* ---- softmax loss ------------------------------------------------------- */

struct xent_term {
    int c, inner;
    const float *prob, *label;
    bool has_ignore;
    int ignore;
    bool count; /* the number of valid labels instead of the loss */
    __device__ double operator()(size_t col) const
    {
        int lv;
        if (label_state(label[col], c, has_ignore, ignore, &lv) <= 0) return 0;
        if (count) return 1;
        size_t i = col / inner * (size_t)c * inner + (size_t)lv * inner + col % inner;
        return -log(fmax((double)prob[i], (double)FLT_MIN));
    }
};

extern "C" cnn_status cnn_cuda_softmax_loss_forward(cnn_cuda_ctx *ctx, int outer, int c,
                                                    int inner, const float *prob,
                                                    const float *label, bool has_ignore,
                                                    int ignore, float *out, int *bad)
{
    size_t cols = (size_t)(outer > 0 ? outer : 0) * (size_t)(inner > 0 ? inner : 0);
    xent_term t{c, inner, prob, label, has_ignore, ignore, false};
    CNN_TRY_CUDA(cnn_cuda_sum(ctx, cols, t, 1.f, out));
    t.count = true;
    CNN_TRY_CUDA(cnn_cuda_sum(ctx, cols, t, 1.f, out + 1));
    return find_bad(ctx, cols, c, label, has_ignore, ignore, bad);
}

/* One block: each thread takes whole columns (their softmax, then the
 * column's loss term), then block sums in double. */
__global__ void softmax_loss_fused_kernel(int outer, int c, int inner, const float *x,
                                          const float *label, bool has_ignore, int ignore,
                                          float norm, float *prob, float *out, int *bad,
                                          int *first_bad, float *loss)
{
    size_t cols = (size_t)outer * inner;
    double sum = 0, valid = 0;
    int first = INT_MAX;
    for (size_t col = threadIdx.x; col < cols; col += blockDim.x) {
        size_t base = col / inner * (size_t)c * inner + col % inner;
        float *yp = prob + base;
        cnn_softmax_column(c, (size_t)inner, x + base, yp);
        int lv, state = label_state(label[col], c, has_ignore, ignore, &lv);
        if (state < 0) {
            first = min(first, (int)col);
        } else if (state > 0) {
            sum -= log(fmax((double)yp[(size_t)lv * inner], (double)FLT_MIN));
            valid += 1;
        }
    }
    sum = cnn_block_sum(sum);
    valid = cnn_block_sum(valid);
    first = block_reduce(first, min_op{});
    if (threadIdx.x == 0) {
        float s = (float)sum, den = norm > 0 ? norm : (float)valid;
        out[0] = s;
        out[1] = (float)valid;
        out[2] = den;
        *loss = __fdiv_rn(s, fmaxf(den, 1.f));
        int b = first == INT_MAX ? -1 : first;
        *bad = b;
        if (*first_bad < 0 && b >= 0) *first_bad = b;
    }
}

extern "C" cnn_status cnn_cuda_softmax_loss_fused(cnn_cuda_ctx *ctx, int outer, int c,
                                                  int inner, const float *x,
                                                  const float *label, bool has_ignore,
                                                  int ignore, float norm, float *prob,
                                                  float *out, int *bad, int *first_bad,
                                                  float *loss)
{
    if (!cnn_cuda_softmax_loss_fits(outer, c, inner))
        return CNN_ERROR(CNN_ERR_ARG, "cnn_cuda_softmax_loss_fused: %d x %d x %d values is "
                         "too many for one block (at most %d, and 1024 classes)", outer, c,
                         inner, CNN_SOFTMAX_LOSS_FUSED);
    CNN_LAUNCH(ctx, softmax_loss_fused_kernel, 1, outer, c, inner, x, label, has_ignore, ignore,
               norm, prob, out, bad, first_bad, loss);
    return CNN_OK;
}

__global__ void softmax_loss_bwd_kernel(int outer, int c, int inner, const float *prob,
                                        const float *label, bool has_ignore, int ignore,
                                        float scale, const float *scale_dev, float *dx)
{
    if (scale_dev) scale *= *scale_dev;
    CNN_GRID_STRIDE(i, (size_t)outer * c * inner)
    {
        size_t in = i % inner, o = i / ((size_t)c * inner);
        int k = (int)(i / inner % c), lv;
        bool ok = label_state(label[o * inner + in], c, has_ignore, ignore, &lv) > 0;
        dx[i] = ok ? scale * (prob[i] - (k == lv ? 1.f : 0.f)) : 0.f;
    }
}

extern "C" cnn_status cnn_cuda_softmax_loss_backward(cnn_cuda_ctx *ctx, int outer, int c,
                                                     int inner, const float *prob,
                                                     const float *label, bool has_ignore,
                                                     int ignore, float scale,
                                                     const float *scale_dev, float *dx)
{
    size_t n = (size_t)(outer > 0 ? outer : 0) * (c > 0 ? c : 0) * (inner > 0 ? inner : 0);
    if (n)
        CNN_LAUNCH(ctx, softmax_loss_bwd_kernel, cnn_blocks(n), outer, c, inner, prob, label,
                   has_ignore, ignore, scale, scale_dev, dx);
    return CNN_OK;
}

/* ---- accuracy ----------------------------------------------------------- */

/* 1 when column col's label is within the top k (ties count against). */
__device__ __forceinline__ bool top_k_hit(int c, int inner, int top_k, const float *x,
                                          size_t col, int lv)
{
    size_t base = col / inner * (size_t)c * inner + col % inner;
    float truth = x[base + (size_t)lv * inner];
    int better = -1;
    for (int k = 0; k < c && better < top_k; k++) better += x[base + (size_t)k * inner] >= truth;
    return better < top_k;
}

struct acc_term {
    int c, inner, top_k;
    const float *x, *label;
    bool has_ignore;
    int ignore;
    bool count;
    __device__ double operator()(size_t col) const
    {
        int lv;
        if (label_state(label[col], c, has_ignore, ignore, &lv) <= 0) return 0;
        return count ? 1 : (double)top_k_hit(c, inner, top_k, x, col, lv);
    }
};

__global__ void class_tally_kernel(size_t cols, acc_term t, float *class_correct,
                                   float *class_count)
{
    CNN_GRID_STRIDE(col, cols)
    {
        int lv;
        if (label_state(t.label[col], t.c, t.has_ignore, t.ignore, &lv) <= 0) continue;
        atomicAdd(&class_count[lv], 1.f); /* integers: exact in any order */
        if (top_k_hit(t.c, t.inner, t.top_k, t.x, col, lv)) atomicAdd(&class_correct[lv], 1.f);
    }
}

extern "C" cnn_status cnn_cuda_accuracy(cnn_cuda_ctx *ctx, int outer, int c, int inner,
                                        const float *x, const float *label, int top_k,
                                        bool has_ignore, int ignore, float *out,
                                        float *class_correct, float *class_count, int *bad)
{
    size_t cols = (size_t)(outer > 0 ? outer : 0) * (size_t)(inner > 0 ? inner : 0);
    acc_term t{c, inner, top_k, x, label, has_ignore, ignore, false};
    CNN_TRY_CUDA(cnn_cuda_sum(ctx, cols, t, 1.f, out));
    t.count = true;
    CNN_TRY_CUDA(cnn_cuda_sum(ctx, cols, t, 1.f, out + 1));
    if (class_correct && c > 0) {
        CNN_CUDA(cudaMemsetAsync(class_correct, 0, (size_t)c * sizeof(float), ctx->stream));
        CNN_CUDA(cudaMemsetAsync(class_count, 0, (size_t)c * sizeof(float), ctx->stream));
        if (cols)
            CNN_LAUNCH(ctx, class_tally_kernel, cnn_blocks(cols), cols, t, class_correct,
                       class_count);
    }
    return find_bad(ctx, cols, c, label, has_ignore, ignore, bad);
}

/* ---- sigmoid cross-entropy ---------------------------------------------- */

__device__ __forceinline__ bool ignored(float t, bool has_ignore, int ignore)
{
    int tv;
    return has_ignore && label_int(t, &tv) && tv == ignore;
}

struct sxent_term {
    const float *x, *t;
    bool has_ignore;
    int ignore;
    bool count;
    __device__ double operator()(size_t i) const
    {
        if (ignored(t[i], has_ignore, ignore)) return 0;
        if (count) return 1;
        double xi = x[i], pos = xi >= 0;
        return -(xi * (t[i] - pos) - log1p(exp(xi - 2 * xi * pos)));
    }
};

extern "C" cnn_status cnn_cuda_sigmoid_xent_forward(cnn_cuda_ctx *ctx, size_t n,
                                                    const float *x, const float *t,
                                                    bool has_ignore, int ignore, float *out)
{
    sxent_term term{x, t, has_ignore, ignore, false};
    CNN_TRY_CUDA(cnn_cuda_sum(ctx, n, term, 1.f, out));
    term.count = true;
    return cnn_cuda_sum(ctx, n, term, 1.f, out + 1);
}

__global__ void sxent_bwd_kernel(size_t n, const float *x, const float *t, bool has_ignore,
                                 int ignore, float scale, const float *scale_dev, float *dx)
{
    if (scale_dev) scale *= *scale_dev;
    CNN_GRID_STRIDE(i, n)
    {
        if (ignored(t[i], has_ignore, ignore)) {
            dx[i] = 0;
            continue;
        }
        float s = 0.5f * tanhf(0.5f * x[i]) + 0.5f;
        dx[i] = scale * (s - t[i]);
    }
}

extern "C" cnn_status cnn_cuda_sigmoid_xent_backward(cnn_cuda_ctx *ctx, size_t n,
                                                     const float *x, const float *t,
                                                     bool has_ignore, int ignore, float scale,
                                                     const float *scale_dev, float *dx)
{
    if (n)
        CNN_LAUNCH(ctx, sxent_bwd_kernel, cnn_blocks(n), n, x, t, has_ignore, ignore, scale,
                   scale_dev, dx);
    return CNN_OK;
}

/* ---- Euclidean loss ----------------------------------------------------- */

__global__ void sub_kernel(size_t n, const float *a, const float *b, float *d)
{
    CNN_GRID_STRIDE(i, n) d[i] = a[i] - b[i];
}

__global__ void euclid_finish_kernel(float num, float *out) { *out = *out / num / 2.f; }

struct sq_term {
    const float *d;
    __device__ double operator()(size_t i) const { return (double)d[i] * d[i]; }
};

extern "C" cnn_status cnn_cuda_euclidean_forward(cnn_cuda_ctx *ctx, size_t n, int num,
                                                 const float *a, const float *b, float *diff,
                                                 float *out)
{
    if (n) CNN_LAUNCH(ctx, sub_kernel, cnn_blocks(n), n, a, b, diff);
    CNN_TRY_CUDA(cnn_cuda_sum(ctx, n, sq_term{diff}, 1.f, out));
    CNN_LAUNCH_SCALAR(ctx, euclid_finish_kernel, num > 0 ? (float)num : 1.f, out);
    return CNN_OK;
}

__global__ void euclid_bwd_kernel(size_t n, float sign, float num, const float *dloss,
                                  const float *diff, float *dx)
{
    float alpha = sign * dloss[0] / num;
    CNN_GRID_STRIDE(i, n) dx[i] = diff[i] * alpha;
}

extern "C" cnn_status cnn_cuda_euclidean_backward(cnn_cuda_ctx *ctx, size_t n, int num,
                                                  float sign, const float *dloss,
                                                  const float *diff, float *dx)
{
    if (n)
        CNN_LAUNCH(ctx, euclid_bwd_kernel, cnn_blocks(n), n, sign, num > 0 ? (float)num : 1.f,
                   dloss, diff, dx);
    return CNN_OK;
}
