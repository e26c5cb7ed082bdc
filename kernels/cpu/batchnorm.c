/* batchnorm.c — CPU kernels for batch normalisation over data laid out as
 * (n, c, s): statistics per channel c over the n*s values of that channel. */
#include "../kernels.h"

#define PAR_MIN 32768

void cnn_k_bn_stats(int n, int c, size_t s, const float *x, float *mean, float *var)
{
    size_t total = (size_t)n * (size_t)c * s;
    double m = (double)n * (double)s;
#pragma omp parallel for schedule(static) if (total > PAR_MIN)
    for (int ch = 0; ch < c; ch++) {
        double sum = 0;
        for (int b = 0; b < n; b++) {
            const float *xp = x + ((size_t)b * (size_t)c + (size_t)ch) * s;
            for (size_t i = 0; i < s; i++) sum += xp[i];
        }
        double mu = m > 0 ? sum / m : 0, sq = 0;
        for (int b = 0; b < n; b++) {
            const float *xp = x + ((size_t)b * (size_t)c + (size_t)ch) * s;
            for (size_t i = 0; i < s; i++) sq += ((double)xp[i] - mu) * ((double)xp[i] - mu);
        }
        mean[ch] = (float)mu;
        var[ch] = m > 0 ? (float)(sq / m) : 0.f;
    }
}

void cnn_k_bn_normalize(int n, int c, size_t s, const float *x, const float *mean,
                        const float *inv_std, float *y)
{
    size_t total = (size_t)n * (size_t)c * s;
#pragma omp parallel for schedule(static) if (total > PAR_MIN)
    for (int nc = 0; nc < n * c; nc++) {
        float mu = mean[nc % c], is = inv_std[nc % c];
        size_t o = (size_t)nc * s;
        for (size_t i = 0; i < s; i++) y[o + i] = (x[o + i] - mu) * is;
    }
}

void cnn_k_bn_backward(int n, int c, size_t s, const float *xn, const float *dy,
                       const float *inv_std, float *dx)
{
    size_t total = (size_t)n * (size_t)c * s;
    double m = (double)n * (double)s;
#pragma omp parallel for schedule(static) if (total > PAR_MIN)
    for (int ch = 0; ch < c; ch++) {
        double sum_dy = 0, sum_dyx = 0;
        for (int b = 0; b < n; b++) {
            size_t o = ((size_t)b * (size_t)c + (size_t)ch) * s;
            for (size_t i = 0; i < s; i++) {
                sum_dy += dy[o + i];
                sum_dyx += (double)dy[o + i] * xn[o + i];
            }
        }
        float mean_dy = m > 0 ? (float)(sum_dy / m) : 0.f;
        float mean_dyx = m > 0 ? (float)(sum_dyx / m) : 0.f, is = inv_std[ch];
        for (int b = 0; b < n; b++) {
            size_t o = ((size_t)b * (size_t)c + (size_t)ch) * s;
            for (size_t i = 0; i < s; i++)
                dx[o + i] = (dy[o + i] - mean_dy - mean_dyx * xn[o + i]) * is;
        }
    }
}
