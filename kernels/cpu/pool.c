/* pool.c — max and average pooling on the CPU with Caffe's window rules
 * (windows clipped to the image; average divisor clipped to the padding).
 * Planes are independent, so every loop is parallel over planes. */
#include <string.h>

#include "../kernels.h"

/* Work (in window elements) below which the loops stay on one thread. */
#define PAR_MIN 65536

static int imin(int a, int b) { return a < b ? a : b; }
static int imax(int a, int b) { return a > b ? a : b; }

static size_t work(const cnn_k_pool_geom *g)
{
    return (size_t)g->planes * g->oh * g->ow * g->kh * g->kw;
}

/* Max pooling forward; argmax (and mask when given) record the winners. */
void cnn_k_maxpool_fwd(const cnn_k_pool_geom *g, const float *x, float *y, int *argmax,
                       float *mask)
{
    size_t ihw = (size_t)g->h * g->w, ohw = (size_t)g->oh * g->ow;
#pragma omp parallel for schedule(static) if (work(g) >= PAR_MIN)
    for (long p = 0; p < g->planes; p++) {
        const float *xp = x + (size_t)p * ihw;
        float *yp = y + (size_t)p * ohw;
        int *ap = argmax + (size_t)p * ohw;
        for (int oy = 0; oy < g->oh; oy++) {
            int hs = oy * g->sh - g->ph, he = imin(hs + g->kh, g->h);
            hs = imax(hs, 0);
            for (int ox = 0; ox < g->ow; ox++) {
                int ws = ox * g->sw - g->pw, we = imin(ws + g->kw, g->w);
                ws = imax(ws, 0);
                if (hs >= he || ws >= we) {
                    /* A window wholly outside the image (possible with
                     * stride > kernel) has no input: 0, and no gradient. */
                    yp[oy * g->ow + ox] = 0.f;
                    ap[oy * g->ow + ox] = -1;
                    continue;
                }
                int at = hs * g->w + ws;
                float best = xp[at];
                /* Selects without branches (random data mispredicts); ties
                 * keep the first maximum, as in Caffe. */
                for (int iy = hs; iy < he; iy++)
                    for (int ix = ws; ix < we; ix++) {
                        int idx = iy * g->w + ix;
                        float v = xp[idx];
                        bool gt = v > best;
                        best = gt ? v : best;
                        at = gt ? idx : at;
                    }
                yp[oy * g->ow + ox] = best;
                ap[oy * g->ow + ox] = at;
            }
        }
        if (mask)
            for (size_t i = 0; i < ohw; i++) mask[(size_t)p * ohw + i] = (float)ap[i];
    }
}

/* Max pooling backward: each output gradient goes to its argmax. */
void cnn_k_maxpool_bwd(const cnn_k_pool_geom *g, const float *dy, const int *argmax,
                       float *dx)
{
    size_t ihw = (size_t)g->h * g->w, ohw = (size_t)g->oh * g->ow;
#pragma omp parallel for schedule(static) if ((size_t)g->planes * (ihw + ohw) >= PAR_MIN)
    for (long p = 0; p < g->planes; p++) {
        float *dp = dx + (size_t)p * ihw;
        const float *gp = dy + (size_t)p * ohw;
        const int *ap = argmax + (size_t)p * ohw;
        memset(dp, 0, ihw * sizeof(float));
        for (size_t i = 0; i < ohw; i++)
            if (ap[i] >= 0) dp[ap[i]] += gp[i];
    }
}

/* Average pooling forward. */
void cnn_k_avepool_fwd(const cnn_k_pool_geom *g, const float *x, float *y)
{
    size_t ihw = (size_t)g->h * g->w, ohw = (size_t)g->oh * g->ow;
#pragma omp parallel for schedule(static) if (work(g) >= PAR_MIN)
    for (long p = 0; p < g->planes; p++) {
        const float *xp = x + (size_t)p * ihw;
        float *yp = y + (size_t)p * ohw;
        for (int oy = 0; oy < g->oh; oy++) {
            int hs = oy * g->sh - g->ph, he = imin(hs + g->kh, g->h + g->ph);
            int hsize = he - hs;
            hs = imax(hs, 0);
            he = imin(he, g->h);
            for (int ox = 0; ox < g->ow; ox++) {
                int ws = ox * g->sw - g->pw, we = imin(ws + g->kw, g->w + g->pw);
                int size = hsize * (we - ws);
                ws = imax(ws, 0);
                we = imin(we, g->w);
                float s = 0.f;
                for (int iy = hs; iy < he; iy++)
                    for (int ix = ws; ix < we; ix++) s += xp[iy * g->w + ix];
                yp[oy * g->ow + ox] = size > 0 ? s / (float)size : 0.f;
            }
        }
    }
}

/* Average pooling backward: each output gradient is spread evenly (by the
 * forward divisor) over the window's pixels inside the image. */
void cnn_k_avepool_bwd(const cnn_k_pool_geom *g, const float *dy, float *dx)
{
    size_t ihw = (size_t)g->h * g->w, ohw = (size_t)g->oh * g->ow;
#pragma omp parallel for schedule(static) if (work(g) >= PAR_MIN)
    for (long p = 0; p < g->planes; p++) {
        float *dp = dx + (size_t)p * ihw;
        const float *gp = dy + (size_t)p * ohw;
        memset(dp, 0, ihw * sizeof(float));
        for (int oy = 0; oy < g->oh; oy++) {
            int hs = oy * g->sh - g->ph, he = imin(hs + g->kh, g->h + g->ph);
            int hsize = he - hs;
            hs = imax(hs, 0);
            he = imin(he, g->h);
            for (int ox = 0; ox < g->ow; ox++) {
                int ws = ox * g->sw - g->pw, we = imin(ws + g->kw, g->w + g->pw);
                int size = hsize * (we - ws);
                ws = imax(ws, 0);
                we = imin(we, g->w);
                if (size <= 0) continue;
                float v = gp[oy * g->ow + ox] / (float)size;
                for (int iy = hs; iy < he; iy++)
                    for (int ix = ws; ix < we; ix++) dp[iy * g->w + ix] += v;
            }
        }
    }
}
