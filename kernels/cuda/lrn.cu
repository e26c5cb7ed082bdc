/* lrn.cu — local response normalisation as kernels/cpu/lrn.c defines it
 * (across channels: k + alpha/size * window sum; within a channel: Caffe's
 * 1 + alpha/size^2 * zero-padded box sum). cuDNN's LRN has no
 * within-channel mode with these constants, so both are our own kernels:
 * one thread per value, sums in the CPU's order, no workspace (backward
 * recomputes its neighbours' ratios). */
#include "common.cuh"

/* s^-beta as the CPU computes it. */
__device__ __forceinline__ float neg_pow(float s, float beta)
{
    return beta == 0.75f ? 1.f / sqrtf(s * sqrtf(s)) : powf(s, -beta);
}

struct lrn_pos {
    size_t plane_off; /* offset of (n, c) plane */
    int c, y, x;
};

__device__ __forceinline__ lrn_pos lrn_at(const cnn_k_lrn_desc &d, size_t i)
{
    size_t hw = (size_t)d.h * d.w;
    lrn_pos p;
    p.x = (int)(i % d.w);
    p.y = (int)(i / d.w % d.h);
    p.c = (int)(i / hw % d.c);
    p.plane_off = i - i % hw;
    return p;
}

/* Box sum of f over the size x size window at (y, x) of one plane, clipped,
 * rows summed first, as box_sum in kernels/cpu/lrn.c. */
template <class F>
__device__ __forceinline__ float box(const cnn_k_lrn_desc &d, int y, int x, F f)
{
    int pre = (d.size - 1) / 2;
    int ya = max(y - pre, 0), yb = min(y + pre + 1, d.h);
    int xa = max(x - pre, 0), xb = min(x + pre + 1, d.w);
    float total = 0.f;
    for (int yy = ya; yy < yb; yy++) {
        float row = 0.f;
        for (int xx = xa; xx < xb; xx++) row += f(yy * d.w + xx);
        total = yy == ya ? row : total + row;
    }
    return total;
}

struct sq_of {
    const float *p;
    __device__ float operator()(int j) const { return p[j] * p[j]; }
};

__global__ void lrn_fwd_kernel(cnn_k_lrn_desc d, const float *x, float *scale, float *y)
{
    size_t total = (size_t)d.n * d.c * d.h * d.w, hw = (size_t)d.h * d.w;
    CNN_GRID_STRIDE(i, total)
    {
        lrn_pos p = lrn_at(d, i);
        float s;
        if (d.within) {
            float a = d.alpha / (float)(d.size * d.size);
            s = 1.f + a * box(d, p.y, p.x, sq_of{x + p.plane_off});
        } else {
            int pre = (d.size - 1) / 2, lo = max(p.c - pre, 0), hi = min(p.c + pre + 1, d.c);
            float a = d.alpha / (float)d.size;
            s = d.k;
            for (int j = lo; j < hi; j++) {
                float v = x[i + ((long)j - p.c) * (long)hw];
                s += a * v * v;
            }
        }
        scale[i] = s;
        y[i] = neg_pow(s, d.beta) * x[i];
    }
}

/* dy x s^-beta / s at index j: the CPU's `ratio`. */
struct ratio_of {
    const float *x, *scale, *dy;
    float beta;
    __device__ float operator()(size_t j) const
    {
        return dy[j] * x[j] * neg_pow(scale[j], beta) / scale[j];
    }
};

struct plane_ratio {
    ratio_of r;
    size_t off;
    __device__ float operator()(int j) const { return r(off + j); }
};

__global__ void lrn_bwd_kernel(cnn_k_lrn_desc d, const float *x, const float *scale,
                               const float *dy, float *dx)
{
    size_t total = (size_t)d.n * d.c * d.h * d.w, hw = (size_t)d.h * d.w;
    ratio_of r{x, scale, dy, d.beta};
    CNN_GRID_STRIDE(i, total)
    {
        lrn_pos p = lrn_at(d, i);
        float v = neg_pow(scale[i], d.beta) * dy[i], xi = x[i];
        if (d.within) {
            float cr = 2.f * d.alpha * d.beta / (float)(d.size * d.size);
            v -= cr * xi * box(d, p.y, p.x, plane_ratio{r, p.plane_off});
        } else {
            float cr = 2.f * d.alpha * d.beta / (float)d.size;
            int pre = (d.size - 1) / 2, lo = max(p.c - pre, 0), hi = min(p.c + pre + 1, d.c);
            for (int j = lo; j < hi; j++) v -= cr * xi * r(i + ((long)j - p.c) * (long)hw);
        }
        dx[i] = v;
    }
}

static size_t lrn_count(const cnn_k_lrn_desc *d) { return (size_t)d->n * d->c * d->h * d->w; }

extern "C" cnn_status cnn_cuda_lrn_fwd(cnn_cuda_ctx *ctx, const cnn_k_lrn_desc *d,
                                       const float *x, float *scale, float *y)
{
    size_t n = lrn_count(d);
    if (n) CNN_LAUNCH(ctx, lrn_fwd_kernel, cnn_blocks(n), *d, x, scale, y);
    return CNN_OK;
}

extern "C" cnn_status cnn_cuda_lrn_bwd(cnn_cuda_ctx *ctx, const cnn_k_lrn_desc *d,
                                       const float *x, const float *scale, const float *dy,
                                       float *dx)
{
    size_t n = lrn_count(d);
    if (n) CNN_LAUNCH(ctx, lrn_bwd_kernel, cnn_blocks(n), *d, x, scale, dy, dx);
    return CNN_OK;
}
