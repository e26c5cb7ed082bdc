/* lrn.c — local response normalisation on the CPU, as Caffe defines it:
 * across channels (AlexNet) and within a channel (a size x size window,
 * Caffe's average-pooling formulation with its fixed shift of 1). */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "../kernels.h"

/* Work (in floats) below which the loops stay on one thread. */
#define PAR_MIN 32768

/* out[i] = s[i]^-beta; beta = 0.75 (the usual value) avoids powf. */
static void neg_pow(const float *s, float beta, size_t n, float *out)
{
    if (beta == 0.75f)
        for (size_t i = 0; i < n; i++) out[i] = 1.f / sqrtf(s[i] * sqrtf(s[i]));
    else
        for (size_t i = 0; i < n; i++) out[i] = powf(s[i], -beta);
}

/* Channel window [*lo, *hi) of channel c. */
static void channel_window(const cnn_k_lrn_desc *d, int c, int *lo, int *hi)
{
    int pre = (d->size - 1) / 2;
    *lo = c - pre < 0 ? 0 : c - pre;
    *hi = c + pre + 1 > d->c ? d->c : c + pre + 1;
}

/* dst (h, w) = sum of src over a size x size window clipped to the plane;
 * tmp holds h*w floats. */
static void box_sum(const float *src, int h, int w, int size, float *tmp, float *dst)
{
    int pre = (size - 1) / 2;
    for (int y = 0; y < h; y++) {
        const float *s = src + (size_t)y * w;
        float *t = tmp + (size_t)y * w;
        for (int x = 0; x < w; x++) {
            int a = x - pre < 0 ? 0 : x - pre, b = x + pre + 1 > w ? w : x + pre + 1;
            float acc = 0.f;
            for (int j = a; j < b; j++) acc += s[j];
            t[x] = acc;
        }
    }
    for (int y = 0; y < h; y++) {
        int a = y - pre < 0 ? 0 : y - pre, b = y + pre + 1 > h ? h : y + pre + 1;
        float *o = dst + (size_t)y * w;
        memcpy(o, tmp + (size_t)a * w, (size_t)w * sizeof(float));
        for (int j = a + 1; j < b; j++) {
            const float *t = tmp + (size_t)j * w;
            for (int x = 0; x < w; x++) o[x] += t[x];
        }
    }
}

size_t cnn_k_lrn_ws_floats(const cnn_k_lrn_desc *d, int threads)
{
    size_t hw = (size_t)d->h * d->w;
    return (size_t)(threads < 1 ? 1 : threads) * (d->within ? 2 * hw : (size_t)d->c * hw);
}

void cnn_k_lrn_fwd(const cnn_k_lrn_desc *d, const float *x, float *scale, float *y,
                   float *ws, int threads)
{
    size_t hw = (size_t)d->h * d->w, total = (size_t)d->n * d->c * hw;
    long planes = (long)d->n * d->c;
    if (threads < 1) threads = 1;
#pragma omp parallel num_threads(threads) if (total >= PAR_MIN)
    {
        float *tmp = ws + (d->within ? (size_t)omp_get_thread_num() * 2 * hw : 0);
#pragma omp for schedule(static)
        for (long p = 0; p < planes; p++) {
            float *sc = scale + (size_t)p * hw;
            const float *xp = x + (size_t)p * hw;
            if (d->within) {
                float *sq = tmp + hw;
                for (size_t i = 0; i < hw; i++) sq[i] = xp[i] * xp[i];
                box_sum(sq, d->h, d->w, d->size, tmp, sc);
                float a = d->alpha / (float)(d->size * d->size);
                for (size_t i = 0; i < hw; i++) sc[i] = 1.f + a * sc[i];
            } else {
                int c = (int)(p % d->c), lo, hi;
                channel_window(d, c, &lo, &hi);
                float a = d->alpha / (float)d->size;
                const float *x0 = xp - (size_t)(c - lo) * hw;
                for (size_t i = 0; i < hw; i++) sc[i] = d->k;
                for (int j = lo; j < hi; j++, x0 += hw)
                    for (size_t i = 0; i < hw; i++) sc[i] += a * x0[i] * x0[i];
            }
            float *yp = y + (size_t)p * hw;
            neg_pow(sc, d->beta, hw, yp);
            for (size_t i = 0; i < hw; i++) yp[i] *= xp[i];
        }
    }
}

void cnn_k_lrn_bwd(const cnn_k_lrn_desc *d, const float *x, const float *scale,
                   const float *dy, float *dx, float *ws, int threads)
{
    size_t hw = (size_t)d->h * d->w, chw = (size_t)d->c * hw, total = (size_t)d->n * chw;
    if (threads < 1) threads = 1;
    if (d->within) {
        /* dx = dy s^-b - 2ab/size^2 * x * box(dy x s^(-b-1)); the window is
         * symmetric, so the box sum is its own adjoint. */
        float cr = 2.f * d->alpha * d->beta / (float)(d->size * d->size);
        long planes = (long)d->n * d->c;
#pragma omp parallel num_threads(threads) if (total >= PAR_MIN)
        {
            float *tmp = ws + (size_t)omp_get_thread_num() * 2 * hw, *ratio = tmp + hw;
#pragma omp for schedule(static)
            for (long p = 0; p < planes; p++) {
                size_t o = (size_t)p * hw;
                float *dp = dx + o;
                neg_pow(scale + o, d->beta, hw, dp);
                for (size_t i = 0; i < hw; i++) {
                    ratio[i] = dy[o + i] * x[o + i] * dp[i] / scale[o + i];
                    dp[i] *= dy[o + i];
                }
                box_sum(ratio, d->h, d->w, d->size, tmp, ratio);
                for (size_t i = 0; i < hw; i++) dp[i] -= cr * x[o + i] * ratio[i];
            }
        }
        return;
    }
    /* Across channels: per image, ratio[c] = dy x s^(-b-1) for every channel,
     * then dx[c] = dy s^-b - 2ab/size * x * (sum of ratio over c's window). */
    float cr = 2.f * d->alpha * d->beta / (float)d->size;
#pragma omp parallel num_threads(threads) if (total >= PAR_MIN)
    {
        float *ratio = ws + (size_t)omp_get_thread_num() * chw;
#pragma omp for schedule(static)
        for (long n = 0; n < d->n; n++) {
            size_t o = (size_t)n * chw;
            neg_pow(scale + o, d->beta, chw, dx + o);
            for (size_t i = 0; i < chw; i++) {
                ratio[i] = dy[o + i] * x[o + i] * dx[o + i] / scale[o + i];
                dx[o + i] *= dy[o + i];
            }
            for (int c = 0; c < d->c; c++) {
                int lo, hi;
                channel_window(d, c, &lo, &hi);
                float *dp = dx + o + (size_t)c * hw;
                const float *xp = x + o + (size_t)c * hw;
                for (int j = lo; j < hi; j++) {
                    const float *r = ratio + (size_t)j * hw;
                    for (size_t i = 0; i < hw; i++) dp[i] -= cr * xp[i] * r[i];
                }
            }
        }
    }
}
