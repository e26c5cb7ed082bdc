/* kernels.h — every numeric op, declared once. The CPU versions in
 * kernels/cpu/ are the reference; CUDA versions live in kernels/cuda/.
 * Kernels know nothing about layers: they take raw pointers and sizes. */
#ifndef CNN_KERNELS_H
#define CNN_KERNELS_H

#include <stdbool.h>
#include <stddef.h>

/* ---- BLAS-like (kernels/cpu/blas.c) ------------------------------------- */

/* C = alpha * op(A) * op(B) + beta * C, row-major; op is transpose when t*. */
void cnn_k_gemm(bool ta, bool tb, int m, int n, int k, float alpha, const float *a,
                const float *b, float beta, float *c);
/* y = alpha * op(A) * x + beta * y, A is m x n row-major. */
void cnn_k_gemv(bool ta, int m, int n, float alpha, const float *a, const float *x,
                float beta, float *y);
void cnn_k_axpy(size_t n, float alpha, const float *x, float *y); /* y += a*x */
void cnn_k_scale(size_t n, float alpha, float *x);              /* x *= a */
void cnn_k_set(size_t n, float value, float *x);
void cnn_k_copy(size_t n, const float *x, float *y);
void cnn_k_add(size_t n, const float *a, const float *b, float *y); /* y = a+b */
float cnn_k_dot(size_t n, const float *x, const float *y);
float cnn_k_asum(size_t n, const float *x);

/* ---- images to columns (kernels/cpu/im2col.c) --------------------------- */

/* Unfolds (C, H, W) into (C*kh*kw, oh*ow) for convolution by GEMM. */
void cnn_k_im2col(const float *im, int c, int h, int w, int kh, int kw, int ph, int pw,
                  int sh, int sw, int dh, int dw, float *col);
/* The adjoint: accumulates columns back into a zeroed (C, H, W) image. */
void cnn_k_col2im(const float *col, int c, int h, int w, int kh, int kw, int ph, int pw,
                  int sh, int sw, int dh, int dw, float *im);

#endif
