/* pool.cu — max and average pooling with Caffe's window rules, as in
 * kernels/cpu/pool.c (windows clipped to the image, the average divisor
 * clipped to the padded input, first maximum wins, empty windows give 0).
 * cuDNN's pooling divides by the full or the unpadded window, so these are
 * our own kernels. Backward passes gather (no atomics) in the order the CPU
 * scatters, so the results match it bit for bit. */
#include "common.cuh"

__global__ void maxpool_fwd_kernel(cnn_k_pool_geom g, const float *x, float *y, int *argmax,
                                   float *mask)
{
    size_t total = (size_t)g.planes * g.oh * g.ow;
    CNN_GRID_STRIDE(i, total)
    {
        int ox = (int)(i % g.ow), oy = (int)(i / g.ow % g.oh);
        size_t p = i / ((size_t)g.ow * g.oh);
        const float *xp = x + p * g.h * g.w;
        int hs = oy * g.sh - g.ph, he = min(hs + g.kh, g.h);
        int ws = ox * g.sw - g.pw, we = min(ws + g.kw, g.w);
        hs = max(hs, 0);
        ws = max(ws, 0);
        float best = 0.f;
        int at = -1;
        if (hs < he && ws < we) {
            at = hs * g.w + ws;
            best = xp[at];
            for (int iy = hs; iy < he; iy++)
                for (int ix = ws; ix < we; ix++) {
                    float v = xp[iy * g.w + ix];
                    if (v > best) {
                        best = v;
                        at = iy * g.w + ix;
                    }
                }
        }
        y[i] = best;
        argmax[i] = at;
        if (mask) mask[i] = (float)at;
    }
}

/* The outputs whose windows cover input row (or column) v: [*lo, *hi). */
__device__ __forceinline__ void covering(int v, int pad, int k, int stride, int out, int *lo,
                                         int *hi)
{
    *lo = v + pad < k ? 0 : (v + pad - k) / stride + 1;
    *hi = min((v + pad) / stride + 1, out);
}

__global__ void maxpool_bwd_kernel(cnn_k_pool_geom g, const float *dy, const int *argmax,
                                   float *dx)
{
    size_t total = (size_t)g.planes * g.h * g.w;
    CNN_GRID_STRIDE(i, total)
    {
        int ix = (int)(i % g.w), iy = (int)(i / g.w % g.h);
        size_t p = i / ((size_t)g.w * g.h);
        int y0, y1, x0, x1, idx = iy * g.w + ix;
        covering(iy, g.ph, g.kh, g.sh, g.oh, &y0, &y1);
        covering(ix, g.pw, g.kw, g.sw, g.ow, &x0, &x1);
        const float *gp = dy + p * g.oh * g.ow;
        const int *ap = argmax + p * g.oh * g.ow;
        float s = 0.f;
        for (int oy = y0; oy < y1; oy++)
            for (int ox = x0; ox < x1; ox++)
                if (ap[oy * g.ow + ox] == idx) s += gp[oy * g.ow + ox];
        dx[i] = s;
    }
}

/* Window rows [*s, *e) inside the image and the divisor's extent. */
__device__ __forceinline__ int ave_window(int o, int stride, int pad, int k, int in, int *s,
                                          int *e)
{
    int a = o * stride - pad, b = min(a + k, in + pad), size = b - a;
    *s = max(a, 0);
    *e = min(b, in);
    return size;
}

__global__ void avepool_fwd_kernel(cnn_k_pool_geom g, const float *x, float *y)
{
    size_t total = (size_t)g.planes * g.oh * g.ow;
    CNN_GRID_STRIDE(i, total)
    {
        int ox = (int)(i % g.ow), oy = (int)(i / g.ow % g.oh);
        size_t p = i / ((size_t)g.ow * g.oh);
        const float *xp = x + p * g.h * g.w;
        int hs, he, ws, we;
        int size = ave_window(oy, g.sh, g.ph, g.kh, g.h, &hs, &he) *
                   ave_window(ox, g.sw, g.pw, g.kw, g.w, &ws, &we);
        float s = 0.f;
        for (int iy = hs; iy < he; iy++)
            for (int ix = ws; ix < we; ix++) s += xp[iy * g.w + ix];
        y[i] = size > 0 ? s / (float)size : 0.f;
    }
}

__global__ void avepool_bwd_kernel(cnn_k_pool_geom g, const float *dy, float *dx)
{
    size_t total = (size_t)g.planes * g.h * g.w;
    CNN_GRID_STRIDE(i, total)
    {
        int ix = (int)(i % g.w), iy = (int)(i / g.w % g.h);
        size_t p = i / ((size_t)g.w * g.h);
        int y0, y1, x0, x1;
        covering(iy, g.ph, g.kh, g.sh, g.oh, &y0, &y1);
        covering(ix, g.pw, g.kw, g.sw, g.ow, &x0, &x1);
        const float *gp = dy + p * g.oh * g.ow;
        float s = 0.f;
        for (int oy = y0; oy < y1; oy++)
            for (int ox = x0; ox < x1; ox++) {
                int a, b, c, d;
                int size = ave_window(oy, g.sh, g.ph, g.kh, g.h, &a, &b) *
                           ave_window(ox, g.sw, g.pw, g.kw, g.w, &c, &d);
                if (size > 0) s += gp[oy * g.ow + ox] / (float)size;
            }
        dx[i] = s;
    }
}

static size_t out_count(const cnn_k_pool_geom *g) { return (size_t)g->planes * g->oh * g->ow; }
static size_t in_count(const cnn_k_pool_geom *g) { return (size_t)g->planes * g->h * g->w; }

extern "C" cnn_status cnn_cuda_maxpool_fwd(cnn_cuda_ctx *ctx, const cnn_k_pool_geom *g,
                                           const float *x, float *y, int *argmax, float *mask)
{
    size_t n = out_count(g);
    if (n) CNN_LAUNCH(ctx, maxpool_fwd_kernel, cnn_blocks(n), *g, x, y, argmax, mask);
    return CNN_OK;
}

extern "C" cnn_status cnn_cuda_maxpool_bwd(cnn_cuda_ctx *ctx, const cnn_k_pool_geom *g,
                                           const float *dy, const int *argmax, float *dx)
{
    size_t n = in_count(g);
    if (n) CNN_LAUNCH(ctx, maxpool_bwd_kernel, cnn_blocks(n), *g, dy, argmax, dx);
    return CNN_OK;
}

extern "C" cnn_status cnn_cuda_avepool_fwd(cnn_cuda_ctx *ctx, const cnn_k_pool_geom *g,
                                           const float *x, float *y)
{
    size_t n = out_count(g);
    if (n) CNN_LAUNCH(ctx, avepool_fwd_kernel, cnn_blocks(n), *g, x, y);
    return CNN_OK;
}

extern "C" cnn_status cnn_cuda_avepool_bwd(cnn_cuda_ctx *ctx, const cnn_k_pool_geom *g,
                                           const float *dy, float *dx)
{
    size_t n = in_count(g);
    if (n) CNN_LAUNCH(ctx, avepool_bwd_kernel, cnn_blocks(n), *g, dy, dx);
    return CNN_OK;
}
