/* kernels.h — every numeric op, declared once. The CPU versions in
 * kernels/cpu/ are the reference; CUDA versions live in kernels/cuda/.
 * Kernels know nothing about layers: they take raw pointers and sizes. */
#ifndef CNN_KERNELS_H
#define CNN_KERNELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

/* A convolution along one axis: the dilated kernel's extent, the padded
 * input and the output size, in 64 bits so that no model file's values can
 * overflow them; out is 0 when the kernel does not fit the padded input. */
typedef struct cnn_k_conv_axis {
    long long extent, padded, out;
} cnn_k_conv_axis;

static inline cnn_k_conv_axis cnn_k_conv_axis_of(int in, int k, int pad, int stride, int dil)
{
    cnn_k_conv_axis a;
    a.extent = (long long)dil * (k - 1) + 1;
    a.padded = (long long)in + 2LL * pad;
    a.out = a.extent > a.padded ? 0 : (a.padded - a.extent) / stride + 1;
    return a;
}

/* Unfolds (C, H, W) into (C*kh*kw, oh*ow) for convolution by GEMM. */
void cnn_k_im2col(const float *im, int c, int h, int w, int kh, int kw, int ph, int pw,
                  int sh, int sw, int dh, int dw, float *col);
/* The adjoint: accumulates columns back into a zeroed (C, H, W) image. */
void cnn_k_col2im(const float *col, int c, int h, int w, int kh, int kw, int ph, int pw,
                  int sh, int sw, int dh, int dw, float *im);

/* ---- batched im2col, pooling, LRN (kernels/cpu/{im2col,pool,lrn}.c) ----- */

/* Unfolds n images (n, C, H, W) into col (C*kh*kw, n*oh*ow), image i in
 * columns [i*oh*ow, (i+1)*oh*ow), so one GEMM covers the whole batch.
 * Writes nothing when the dilated kernel does not fit the padded input. */
void cnn_k_im2col_batch(const float *im, int n, int c, int h, int w, int kh, int kw,
                        int ph, int pw, int sh, int sw, int dh, int dw, float *col);
/* The adjoint of cnn_k_im2col_batch; im (n, C, H, W) is overwritten. */
void cnn_k_col2im_batch(const float *col, int n, int c, int h, int w, int kh, int kw,
                        int ph, int pw, int sh, int sw, int dh, int dw, float *im);

/* Geometry of a 2-d pooling over `planes` independent (h, w) planes. */
typedef struct cnn_k_pool_geom {
    int planes;      /* batch * channels */
    int h, w;        /* input plane */
    int oh, ow;      /* output plane */
    int kh, kw;      /* window */
    int sh, sw;      /* stride */
    int ph, pw;      /* padding */
} cnn_k_pool_geom;

/* Max pooling: y (planes, oh, ow); argmax gets the in-plane index h*w+x of
 * each maximum (-1 for an empty window); mask (may be NULL) the same as floats. */
void cnn_k_maxpool_fwd(const cnn_k_pool_geom *g, const float *x, float *y, int *argmax,
                       float *mask);
/* dx (planes, h, w) = the scatter of dy through argmax (overwritten). */
void cnn_k_maxpool_bwd(const cnn_k_pool_geom *g, const float *dy, const int *argmax,
                       float *dx);
/* Average pooling as Caffe does it: the divisor is the window clipped to
 * the padded input, the sum runs over the window clipped to the image. */
void cnn_k_avepool_fwd(const cnn_k_pool_geom *g, const float *x, float *y);
/* dx (planes, h, w) overwritten with the adjoint of cnn_k_avepool_fwd. */
void cnn_k_avepool_bwd(const cnn_k_pool_geom *g, const float *dy, float *dx);

/* Local response normalisation over (n, c, h, w). Across channels:
 * scale = k + alpha/size * sum of x^2 over `size` neighbouring channels;
 * within a channel: scale = 1 + alpha/size^2 * sum of x^2 over a size x size
 * zero-padded window (k unused). In both, y = x * scale^-beta. */
typedef struct cnn_k_lrn_desc {
    int n, c, h, w;
    int size; /* odd */
    float alpha, beta, k;
    bool within;
} cnn_k_lrn_desc;

/* Floats of workspace cnn_k_lrn_fwd/bwd need when run on `threads` threads. */
size_t cnn_k_lrn_ws_floats(const cnn_k_lrn_desc *d, int threads);
/* y = LRN(x); scale (same shape as x) is kept for the backward pass. */
void cnn_k_lrn_fwd(const cnn_k_lrn_desc *d, const float *x, float *scale, float *y,
                   float *ws, int threads);
/* dx = d LRN / dx applied to dy (overwritten), from x and the saved scale. */
void cnn_k_lrn_bwd(const cnn_k_lrn_desc *d, const float *x, const float *scale,
                   const float *dy, float *dx, float *ws, int threads);

/* ---- point-wise activations, softmax, losses, batch norm, scale --------
 * (kernels/cpu/{activation,softmax,batchnorm,scale}.c). Backward kernels
 * may write dx over dy: in-place layers share data and grad storage. */

/* y = x > 0 ? x : slope * x. */
void cnn_k_relu_forward(size_t n, float slope, const float *x, float *y);
/* dx = dy * (x > 0 ? 1 : slope); x may be the forward output when slope >= 0. */
void cnn_k_relu_backward(size_t n, float slope, const float *x, const float *dy, float *dx);
/* PReLU over (n, c, dim): slope[c] per channel, or slope[0] when shared. */
void cnn_k_prelu_forward(int n, int c, size_t dim, const float *slope, bool shared,
                         const float *x, float *y);
/* dx = dy * (x > 0 ? 1 : slope); x is the forward input. */
void cnn_k_prelu_backward(int n, int c, size_t dim, const float *slope, bool shared,
                          const float *x, const float *dy, float *dx);
/* dslope (c, or 1 when shared) += sum of dy * x where x <= 0. */
void cnn_k_prelu_slope_grad(int n, int c, size_t dim, bool shared, const float *x,
                            const float *dy, float *dslope);
/* y = 1 / (1 + exp(-x)). */
void cnn_k_sigmoid_forward(size_t n, const float *x, float *y);
/* dx = dy * y * (1 - y), y the forward output. */
void cnn_k_sigmoid_backward(size_t n, const float *y, const float *dy, float *dx);
void cnn_k_tanh_forward(size_t n, const float *x, float *y);
/* dx = dy * (1 - y^2), y the forward output. */
void cnn_k_tanh_backward(size_t n, const float *y, const float *dy, float *dx);
/* y = x > 0 ? x : alpha * (exp(x) - 1). */
void cnn_k_elu_forward(size_t n, float alpha, const float *x, float *y);
/* dx = dy * (x > 0 ? 1 : alpha + y); x may be the output when alpha > 0. */
void cnn_k_elu_backward(size_t n, float alpha, const float *x, const float *y,
                        const float *dy, float *dx);
/* y = x * mask (dropout with the keep-scale folded into the mask). */
void cnn_k_dropout_apply(size_t n, const float *x, const float *mask, float *y);
/* Counter-based dropout mask (kernels/cpu/philox.c, Philox4x32-10 as in
 * kernels/philox.h): mask[i] = keep_scale when uniform i of the stream
 * (seed, offset) is < p_keep, else 0. The CUDA version gives the same bits. */
void cnn_k_dropout_mask(size_t n, uint64_t seed, uint64_t offset, float p_keep,
                        float keep_scale, float *mask);
/* u[i] = uniform i in [0, 1) of the Philox stream (seed, offset). */
void cnn_k_philox_uniform(size_t n, uint64_t seed, uint64_t offset, float *u);

/* Softmax over c of (outer, c, inner). */
void cnn_k_softmax_forward(int outer, int c, int inner, const float *x, float *y);
/* dx = (dy - sum_c dy * y) * y. */
void cnn_k_softmax_backward(int outer, int c, int inner, const float *y, const float *dy,
                            float *dx);
/* *loss = sum of -log(max(prob[label], FLT_MIN)) over labels (outer, inner)
 * that are not `ignore` (when has_ignore), *valid their number. Returns the
 * index of the first label outside [0, c), or -1. */
long cnn_k_softmax_loss_forward(int outer, int c, int inner, const float *prob,
                                const float *label, bool has_ignore, int ignore,
                                double *loss, long *valid);
/* dx = scale * (prob - onehot(label)), zero at ignored positions. */
void cnn_k_softmax_loss_backward(int outer, int c, int inner, const float *prob,
                                 const float *label, bool has_ignore, int ignore, float scale,
                                 float *dx);
/* Top-k hits (ties count as misses, like Caffe) over non-ignored labels;
 * class_correct/class_count (c, may be NULL) get per-class tallies. Returns
 * the index of the first label outside [0, c), or -1. */
long cnn_k_accuracy(int outer, int c, int inner, const float *x, const float *label,
                    int top_k, bool has_ignore, int ignore, long *correct, long *count,
                    float *class_correct, float *class_count);
/* *loss = sum of the cross-entropy of sigmoid(x) against targets t, skipping
 * targets equal to `ignore` (when has_ignore); *valid their number. */
void cnn_k_sigmoid_xent_forward(size_t n, const float *x, const float *t, bool has_ignore,
                                int ignore, double *loss, long *valid);
/* dx = scale * (sigmoid(x) - t), zero at ignored targets. */
void cnn_k_sigmoid_xent_backward(size_t n, const float *x, const float *t, bool has_ignore,
                                 int ignore, float scale, float *dx);

/* Per-channel mean and biased variance of (n, c, s). */
void cnn_k_bn_stats(int n, int c, size_t s, const float *x, float *mean, float *var);
/* y = (x - mean[c]) * inv_std[c]; y may alias x. */
void cnn_k_bn_normalize(int n, int c, size_t s, const float *x, const float *mean,
                        const float *inv_std, float *y);
/* Batch-statistics backward from the normalised output xn:
 * dx = (dy - mean(dy) - mean(dy * xn) * xn) * inv_std, means per channel. */
void cnn_k_bn_backward(int n, int c, size_t s, const float *xn, const float *dy,
                       const float *inv_std, float *dx);

/* y = x * s[d] + b[d] over (outer, dim, inner); b may be NULL; y may alias x. */
void cnn_k_bcast_scale(int outer, int dim, size_t inner, const float *x, const float *s,
                       const float *b, float *y);
/* ds[d] = sum over outer, inner of dy * x, added to ds when `accumulate`. */
void cnn_k_bcast_scale_grad(int outer, int dim, size_t inner, const float *x,
                            const float *dy, bool accumulate, float *ds);
/* db[d] += sum over outer, inner of dy. */
void cnn_k_bcast_bias_grad(int outer, int dim, size_t inner, const float *dy, float *db);

#endif
