/* blas.c — BLAS-like kernels on the CPU: matrix products through OpenBLAS
 * (cblas_*), split across OpenMP threads; element-wise loops with OpenMP
 * when the arrays are large enough for threads to pay off. */
#include <cblas.h>
#include <omp.h>
#include <pthread.h>

#include "../kernels.h"

/* Below this many elements a loop runs on one thread: starting the team
 * costs more than it saves. */
#define PAR_MIN 65536

/* OpenBLAS is told once to run on the calling thread only, and large
 * products are split across the OpenMP team instead: with two thread pools
 * (OpenBLAS's and OpenMP's) each one's idle threads spin while the other
 * works, which on a small machine made LeNet training 3-4x slower. */
static void blas_init(void) { openblas_set_num_threads(1); }

static void blas_once(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, blas_init);
}

/* C = alpha * op(A) * op(B) + beta * C; A is m x k after op, B k x n. */
void cnn_k_gemm(bool ta, bool tb, int m, int n, int k, float alpha, const float *a,
                const float *b, float beta, float *c)
{
    blas_once();
    if (m <= 0 || n <= 0) return;
    if (k <= 0) {
        /* An empty sum: BLAS would reject the leading dimensions. */
        for (size_t i = 0; i < (size_t)m * n; i++) c[i] = beta == 0.f ? 0.f : beta * c[i];
        return;
    }
    int lda = ta ? m : k, ldb = tb ? k : n;
    /* Split the larger of m and n into one block per thread. */
    double work = (double)m * n * k;
    int parts = work < 2e6 || omp_in_parallel() ? 1 : omp_get_max_threads();
    bool split_m = m >= n;
    int len = split_m ? m : n;
    if (parts > len) parts = len;
#pragma omp parallel for num_threads(parts) schedule(static) if (parts > 1)
    for (int t = 0; t < parts; t++) {
        int lo = (int)((long)len * t / parts), hi = (int)((long)len * (t + 1) / parts);
        if (split_m) {
            const float *ap = ta ? a + lo : a + (size_t)lo * lda;
            cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans,
                        tb ? CblasTrans : CblasNoTrans, hi - lo, n, k, alpha, ap, lda, b, ldb,
                        beta, c + (size_t)lo * n, n);
        } else {
            const float *bp = tb ? b + (size_t)lo * ldb : b + lo;
            cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans,
                        tb ? CblasTrans : CblasNoTrans, m, hi - lo, k, alpha, a, lda, bp, ldb,
                        beta, c + lo, n);
        }
    }
}

/* y = alpha * op(A) * x + beta * y with A stored m x n. */
void cnn_k_gemv(bool ta, int m, int n, float alpha, const float *a, const float *x,
                float beta, float *y)
{
    blas_once();
    if (m <= 0 || n <= 0) {
        int ny = ta ? n : m;
        for (int i = 0; i < ny; i++) y[i] = beta == 0.f ? 0.f : beta * y[i];
        return;
    }
    cblas_sgemv(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, m, n, alpha, a, n, x, 1,
                beta, y, 1);
}

/* y += alpha * x. */
void cnn_k_axpy(size_t n, float alpha, const float *x, float *y)
{
#pragma omp parallel for simd if (n >= PAR_MIN)
    for (size_t i = 0; i < n; i++) y[i] += alpha * x[i];
}

/* x *= alpha. */
void cnn_k_scale(size_t n, float alpha, float *x)
{
#pragma omp parallel for simd if (n >= PAR_MIN)
    for (size_t i = 0; i < n; i++) x[i] *= alpha;
}

/* x[i] = value. */
void cnn_k_set(size_t n, float value, float *x)
{
#pragma omp parallel for simd if (n >= PAR_MIN)
    for (size_t i = 0; i < n; i++) x[i] = value;
}

/* y = x (the arrays must not overlap unless equal). */
void cnn_k_copy(size_t n, const float *x, float *y)
{
    if (x == y) return;
#pragma omp parallel for simd if (n >= PAR_MIN)
    for (size_t i = 0; i < n; i++) y[i] = x[i];
}

/* y = a + b, element-wise; y may alias a or b. */
void cnn_k_add(size_t n, const float *a, const float *b, float *y)
{
#pragma omp parallel for simd if (n >= PAR_MIN)
    for (size_t i = 0; i < n; i++) y[i] = a[i] + b[i];
}

/* Sum of x[i] * y[i], accumulated in double for accuracy on long vectors. */
float cnn_k_dot(size_t n, const float *x, const float *y)
{
    double s = 0;
#pragma omp parallel for simd reduction(+ : s) if (n >= PAR_MIN)
    for (size_t i = 0; i < n; i++) s += (double)x[i] * y[i];
    return (float)s;
}

/* Sum of |x[i]|, accumulated in double. */
float cnn_k_asum(size_t n, const float *x)
{
    double s = 0;
#pragma omp parallel for simd reduction(+ : s) if (n >= PAR_MIN)
    for (size_t i = 0; i < n; i++) s += x[i] < 0 ? -(double)x[i] : (double)x[i];
    return (float)s;
}
