/* activation.c — CPU kernels for the point-wise activations (ReLU, PReLU,
 * Sigmoid, TanH, ELU) and the dropout mask product. Backward kernels may
 * write dx over dy (in-place layers share data and grad storage). */
#include <math.h>

#include "../kernels.h"

/* Below this many elements a parallel region costs more than it saves. */
#define PAR_MIN 32768

void cnn_k_relu_forward(size_t n, float slope, const float *x, float *y)
{
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) y[i] = x[i] > 0 ? x[i] : slope * x[i];
}

void cnn_k_relu_backward(size_t n, float slope, const float *x, const float *dy, float *dx)
{
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) dx[i] = dy[i] * (x[i] > 0 ? 1.f : slope);
}

void cnn_k_prelu_forward(int n, int c, size_t dim, const float *slope, bool shared,
                         const float *x, float *y)
{
    size_t total = (size_t)n * (size_t)c * dim;
#pragma omp parallel for schedule(static) if (total > PAR_MIN)
    for (int nc = 0; nc < n * c; nc++) {
        float a = slope[shared ? 0 : nc % c];
        const float *xp = x + (size_t)nc * dim;
        float *yp = y + (size_t)nc * dim;
        for (size_t i = 0; i < dim; i++) yp[i] = xp[i] > 0 ? xp[i] : a * xp[i];
    }
}

void cnn_k_prelu_backward(int n, int c, size_t dim, const float *slope, bool shared,
                          const float *x, const float *dy, float *dx)
{
    size_t total = (size_t)n * (size_t)c * dim;
#pragma omp parallel for schedule(static) if (total > PAR_MIN)
    for (int nc = 0; nc < n * c; nc++) {
        float a = slope[shared ? 0 : nc % c];
        size_t o = (size_t)nc * dim;
        for (size_t i = 0; i < dim; i++) dx[o + i] = dy[o + i] * (x[o + i] > 0 ? 1.f : a);
    }
}

void cnn_k_prelu_slope_grad(int n, int c, size_t dim, bool shared, const float *x,
                            const float *dy, float *dslope)
{
    size_t total = (size_t)n * (size_t)c * dim;
    double shared_sum = 0;
#pragma omp parallel for schedule(static) if (total > PAR_MIN) reduction(+ : shared_sum)
    for (int ch = 0; ch < c; ch++) {
        double s = 0;
        for (int b = 0; b < n; b++) {
            size_t o = ((size_t)b * (size_t)c + (size_t)ch) * dim;
            for (size_t i = 0; i < dim; i++)
                if (x[o + i] <= 0) s += (double)dy[o + i] * x[o + i];
        }
        if (shared)
            shared_sum += s;
        else
            dslope[ch] += (float)s;
    }
    if (shared) dslope[0] += (float)shared_sum;
}

void cnn_k_sigmoid_forward(size_t n, const float *x, float *y)
{
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) y[i] = 0.5f * tanhf(0.5f * x[i]) + 0.5f;
}

void cnn_k_sigmoid_backward(size_t n, const float *y, const float *dy, float *dx)
{
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) dx[i] = dy[i] * y[i] * (1.f - y[i]);
}

void cnn_k_tanh_forward(size_t n, const float *x, float *y)
{
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) y[i] = tanhf(x[i]);
}

void cnn_k_tanh_backward(size_t n, const float *y, const float *dy, float *dx)
{
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) dx[i] = dy[i] * (1.f - y[i] * y[i]);
}

void cnn_k_elu_forward(size_t n, float alpha, const float *x, float *y)
{
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) y[i] = x[i] > 0 ? x[i] : alpha * expm1f(x[i]);
}

void cnn_k_elu_backward(size_t n, float alpha, const float *x, const float *y,
                        const float *dy, float *dx)
{
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) dx[i] = dy[i] * (x[i] > 0 ? 1.f : alpha + y[i]);
}

void cnn_k_dropout_apply(size_t n, const float *x, const float *mask, float *y)
{
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) y[i] = x[i] * mask[i];
}
