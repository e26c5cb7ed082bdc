/* scale.c — CPU kernels for a per-slice scale and bias broadcast over data
 * laid out as (outer, dim, inner): y = x * s[d] + b[d]. */
#include "../kernels.h"

#define PAR_MIN 32768

void cnn_k_bcast_scale(int outer, int dim, size_t inner, const float *x, const float *s,
                       const float *b, float *y)
{
    size_t total = (size_t)outer * (size_t)dim * inner;
#pragma omp parallel for schedule(static) if (total > PAR_MIN)
    for (long od = 0; od < (long)outer * dim; od++) {
        float a = s[od % dim], c = b ? b[od % dim] : 0.f;
        size_t o = (size_t)od * inner;
        for (size_t i = 0; i < inner; i++) y[o + i] = x[o + i] * a + c;
    }
}

void cnn_k_bcast_scale_grad(int outer, int dim, size_t inner, const float *x,
                            const float *dy, bool accumulate, float *ds)
{
    size_t total = (size_t)outer * (size_t)dim * inner;
#pragma omp parallel for schedule(static) if (total > PAR_MIN)
    for (int d = 0; d < dim; d++) {
        double sum = 0;
        for (int b = 0; b < outer; b++) {
            size_t o = ((size_t)b * (size_t)dim + (size_t)d) * inner;
            for (size_t i = 0; i < inner; i++) sum += (double)dy[o + i] * x[o + i];
        }
        ds[d] = (accumulate ? ds[d] : 0.f) + (float)sum;
    }
}

void cnn_k_bcast_bias_grad(int outer, int dim, size_t inner, const float *dy, float *db)
{
    size_t total = (size_t)outer * (size_t)dim * inner;
#pragma omp parallel for schedule(static) if (total > PAR_MIN)
    for (int d = 0; d < dim; d++) {
        double sum = 0;
        for (int b = 0; b < outer; b++) {
            size_t o = ((size_t)b * (size_t)dim + (size_t)d) * inner;
            for (size_t i = 0; i < inner; i++) sum += dy[o + i];
        }
        db[d] += (float)sum;
    }
}
