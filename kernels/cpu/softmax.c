/* softmax.c — CPU kernels for softmax and the classification losses and
 * metrics built on it: softmax cross-entropy, sigmoid cross-entropy and
 * top-k accuracy. Data is (outer, c, inner): softmax runs over c for each
 * (outer, inner) pair; labels are (outer, inner) floats holding integers. */
#include <float.h>
#include <math.h>

#include "../kernels.h"
#include "../softmax_column.h"

#define PAR_MIN 32768

void cnn_k_softmax_forward(int outer, int c, int inner, const float *x, float *y)
{
    long cols = (long)outer * inner;
#pragma omp parallel for schedule(static) if (cols * c > PAR_MIN)
    for (long col = 0; col < cols; col++) {
        size_t base = (size_t)(col / inner) * (size_t)c * (size_t)inner + (size_t)(col % inner);
        cnn_softmax_column(c, (size_t)inner, x + base, y + base);
    }
}

void cnn_k_softmax_backward(int outer, int c, int inner, const float *y, const float *dy,
                            float *dx)
{
    long cols = (long)outer * inner;
#pragma omp parallel for schedule(static) if (cols * c > PAR_MIN)
    for (long col = 0; col < cols; col++) {
        size_t base = (size_t)(col / inner) * (size_t)c * (size_t)inner + (size_t)(col % inner);
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

/* The integer a label value stands for, truncated like Caffe's cast; false
 * when it is NaN, infinite or outside the int range. */
static inline bool label_int(float v, int *out)
{
    if (!(v > -2147483648.f && v < 2147483648.f)) return false;
    *out = (int)v;
    return true;
}

long cnn_k_softmax_loss_forward(int outer, int c, int inner, const float *prob,
                                const float *label, bool has_ignore, int ignore,
                                double *loss, long *valid)
{
    long cols = (long)outer * inner, bad = cols, n_valid = 0;
    double sum = 0;
#pragma omp parallel for schedule(static) if (cols * c > PAR_MIN) \
    reduction(+ : sum, n_valid) reduction(min : bad)
    for (long col = 0; col < cols; col++) {
        int lv;
        if (!label_int(label[col], &lv)) {
            if (col < bad) bad = col;
            continue;
        }
        if (has_ignore && lv == ignore) continue;
        if (lv < 0 || lv >= c) {
            if (col < bad) bad = col;
            continue;
        }
        size_t i = (size_t)(col / inner) * (size_t)c * (size_t)inner + (size_t)lv * inner +
                   (size_t)(col % inner);
        sum -= log(fmax(prob[i], FLT_MIN));
        n_valid++;
    }
    *loss = sum;
    *valid = n_valid;
    return bad == cols ? -1 : bad;
}

void cnn_k_softmax_loss_backward(int outer, int c, int inner, const float *prob,
                                 const float *label, bool has_ignore, int ignore, float scale,
                                 float *dx)
{
    long cols = (long)outer * inner;
#pragma omp parallel for schedule(static) if (cols * c > PAR_MIN)
    for (long col = 0; col < cols; col++) {
        size_t base = (size_t)(col / inner) * (size_t)c * (size_t)inner + (size_t)(col % inner);
        int lv = -1;
        bool ok = label_int(label[col], &lv) && !(has_ignore && lv == ignore) && lv >= 0 &&
                  lv < c;
        for (int k = 0; k < c; k++) {
            size_t i = base + (size_t)k * inner;
            dx[i] = ok ? scale * (prob[i] - (k == lv ? 1.f : 0.f)) : 0.f;
        }
    }
}

long cnn_k_accuracy(int outer, int c, int inner, const float *x, const float *label,
                    int top_k, bool has_ignore, int ignore, long *correct, long *count,
                    float *class_correct, float *class_count)
{
    long cols = (long)outer * inner, n_correct = 0, n_count = 0;
    if (class_correct)
        for (int k = 0; k < c; k++) class_correct[k] = class_count[k] = 0;
    /* Sequential: the per-class tallies are shared and c*cols is small. */
    for (long col = 0; col < cols; col++) {
        int lv;
        if (!label_int(label[col], &lv)) return col;
        if (has_ignore && lv == ignore) continue;
        if (lv < 0 || lv >= c) return col;
        size_t base = (size_t)(col / inner) * (size_t)c * (size_t)inner + (size_t)(col % inner);
        float truth = x[base + (size_t)lv * inner];
        /* Caffe counts the true class itself as "better", so ties go against. */
        int better = -1;
        for (int k = 0; k < c && better < top_k; k++)
            better += x[base + (size_t)k * inner] >= truth;
        if (class_count) class_count[lv] += 1;
        if (better < top_k) {
            n_correct++;
            if (class_correct) class_correct[lv] += 1;
        }
        n_count++;
    }
    *correct = n_correct;
    *count = n_count;
    return -1;
}

void cnn_k_sigmoid_xent_forward(size_t n, const float *x, const float *t, bool has_ignore,
                                int ignore, double *loss, long *valid)
{
    double sum = 0;
    long n_valid = 0;
#pragma omp parallel for schedule(static) if (n > PAR_MIN) reduction(+ : sum, n_valid)
    for (size_t i = 0; i < n; i++) {
        int tv;
        if (has_ignore && label_int(t[i], &tv) && tv == ignore) continue;
        /* -[t log s(x) + (1-t) log(1-s(x))] without overflow for any x. */
        double xi = x[i], pos = xi >= 0;
        sum -= xi * (t[i] - pos) - log1p(exp(xi - 2 * xi * pos));
        n_valid++;
    }
    *loss = sum;
    *valid = n_valid;
}

void cnn_k_sigmoid_xent_backward(size_t n, const float *x, const float *t, bool has_ignore,
                                 int ignore, float scale, float *dx)
{
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        int tv;
        if (has_ignore && label_int(t[i], &tv) && tv == ignore) {
            dx[i] = 0;
            continue;
        }
        float s = 0.5f * tanhf(0.5f * x[i]) + 0.5f;
        dx[i] = scale * (s - t[i]);
    }
}
