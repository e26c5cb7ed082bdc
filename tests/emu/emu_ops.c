/* emu_ops.c — the ops of kernels/cuda_ops.h computed on the CPU: each one
 * checks its device pointers (tests/emu/emu.h), then runs the CPU kernel of
 * the same name from kernels/kernels.h, or the loop the CUDA kernel runs
 * where kernels.h has none. Convolution repeats the CPU layer's
 * arithmetic (layers/conv.c); the solver update calls solvers/update.c.
 * Scalar results are written to "device" memory, as on a GPU. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emu.h"
#include "solvers/solver.h"

/* Starts an op: a kernel launch (on the current device) or a copy. */
#define TRACE(ctx) (cnn_emu_need_current(__func__, ctx), cnn_emu_op(__func__, ctx))
#define TRACE_COPY(ctx) cnn_emu_op(__func__, ctx)
#define DEV_F(p, n) EMU_F(ctx, __func__, p, n)
#define DEV_I(p, n) EMU_I(ctx, __func__, p, n)
#define OPT_F(p, n) EMU_OPT_F(ctx, __func__, p, n)

static size_t szmul(long a, long b, long c)
{
    return a > 0 && b > 0 && c > 0 ? (size_t)a * (size_t)b * (size_t)c : 0;
}

static void no_alias(const char *op, const void *a, const void *b, size_t bytes)
{
    if (bytes && (const char *)a < (const char *)b + bytes &&
        (const char *)b < (const char *)a + bytes) {
        fprintf(stderr, "cnn CUDA emulator: %s: dx must not alias dy (%p, %p)\n", op, a, b);
        fflush(stdout);
        abort();
    }
}

/* ---- BLAS-like -------------------------------------------------------------- */

cnn_status cnn_cuda_gemm(cnn_cuda_ctx *ctx, bool ta, bool tb, int m, int n, int k, float alpha,
                         const float *a, const float *b, float beta, float *c)
{
    TRACE(ctx);
    if (m <= 0 || n <= 0) return CNN_OK;
    DEV_F(c, (size_t)m * n);
    if (k > 0) {
        DEV_F(a, (size_t)m * k);
        DEV_F(b, (size_t)k * n);
    }
    cnn_k_gemm(ta, tb, m, n, k, alpha, a, b, beta, c);
    return CNN_OK;
}

cnn_status cnn_cuda_gemv(cnn_cuda_ctx *ctx, bool ta, int m, int n, float alpha, const float *a,
                         const float *x, float beta, float *y)
{
    TRACE(ctx);
    int ny = ta ? n : m, nx = ta ? m : n;
    if (ny <= 0) return CNN_OK;
    DEV_F(y, ny);
    if (m > 0 && n > 0) {
        DEV_F(a, (size_t)m * n);
        DEV_F(x, nx);
    }
    cnn_k_gemv(ta, m, n, alpha, a, x, beta, y);
    return CNN_OK;
}

cnn_status cnn_cuda_axpy(cnn_cuda_ctx *ctx, size_t n, float alpha, const float *x, float *y)
{
    TRACE(ctx);
    DEV_F(x, n);
    DEV_F(y, n);
    cnn_k_axpy(n, alpha, x, y);
    return CNN_OK;
}

cnn_status cnn_cuda_scale(cnn_cuda_ctx *ctx, size_t n, float alpha, float *x)
{
    TRACE(ctx);
    DEV_F(x, n);
    cnn_k_scale(n, alpha, x);
    return CNN_OK;
}

cnn_status cnn_cuda_set(cnn_cuda_ctx *ctx, size_t n, float value, float *x)
{
    TRACE(ctx);
    DEV_F(x, n);
    cnn_k_set(n, value, x);
    return CNN_OK;
}

cnn_status cnn_cuda_copy(cnn_cuda_ctx *ctx, size_t n, const float *x, float *y)
{
    TRACE_COPY(ctx);
    if (x == y || n == 0) return CNN_OK;
    DEV_F(x, n);
    DEV_F(y, n);
    memmove(y, x, n * sizeof(float));
    return CNN_OK;
}

cnn_status cnn_cuda_add(cnn_cuda_ctx *ctx, size_t n, const float *a, const float *b, float *y)
{
    TRACE(ctx);
    DEV_F(a, n);
    DEV_F(b, n);
    DEV_F(y, n);
    cnn_k_add(n, a, b, y);
    return CNN_OK;
}

cnn_status cnn_cuda_div(cnn_cuda_ctx *ctx, size_t n, const float *num, const float *den,
                        float lo, float *out)
{
    TRACE(ctx);
    DEV_F(num, n);
    DEV_F(den, n);
    DEV_F(out, n);
    for (size_t i = 0; i < n; i++) out[i] = num[i] / fmaxf(den[i], lo);
    return CNN_OK;
}

cnn_status cnn_cuda_dot(cnn_cuda_ctx *ctx, size_t n, const float *x, const float *y, float *out)
{
    TRACE(ctx);
    DEV_F(x, n);
    DEV_F(y, n);
    DEV_F(out, 1);
    *out = cnn_k_dot(n, x, y);
    return CNN_OK;
}

cnn_status cnn_cuda_asum(cnn_cuda_ctx *ctx, size_t n, const float *x, float *out)
{
    TRACE(ctx);
    DEV_F(x, n);
    DEV_F(out, 1);
    *out = cnn_k_asum(n, x);
    return CNN_OK;
}

/* ---- convolution --------------------------------------------------------------
 * The arithmetic of the Convolution layer's CPU path (layers/conv.c), so
 * that the emulated GPU path gives the CPU's results bit for bit: images
 * unfolded side by side in chunks of the same size (CONV_COL_LIMIT is
 * conv.c's COL_LIMIT), one GEMM per group and chunk, 1x1 kernels without
 * im2col, the bias gradient summed in float per channel. */

#define CONV_COL_LIMIT ((size_t)1 << 18)

struct cnn_cuda_conv {
    cnn_cuda_conv_desc d;
    int oh, ow;
    bool is_1x1;  /* 1x1, stride 1, no padding */
    int chunk;    /* images per GEMM */
    float *col;   /* (C*kh*kw, chunk*oh*ow) host scratch */
    float *tmp;   /* (O, chunk*oh*ow) */
};

/* Sizes of a planned convolution, in floats. */
typedef struct {
    int g, og, cg, kg;
    size_t hw, ohw, chw, ochw, nw;
} conv_dims;

static conv_dims dims_of(const cnn_cuda_conv *cv)
{
    const cnn_cuda_conv_desc *d = &cv->d;
    conv_dims m;
    m.g = d->group;
    m.og = d->o / d->group;
    m.cg = d->c / d->group;
    m.kg = m.cg * d->kh * d->kw;
    m.hw = (size_t)d->h * d->w;
    m.ohw = (size_t)cv->oh * cv->ow;
    m.chw = (size_t)d->c * m.hw;
    m.ochw = (size_t)d->o * m.ohw;
    m.nw = (size_t)d->o * m.kg;
    return m;
}

cnn_status cnn_cuda_conv_create(cnn_cuda_ctx *ctx, const cnn_cuda_conv_desc *d,
                                cnn_cuda_conv **out)
{
    TRACE(ctx);
    *out = NULL;
    int oh = 0, ow = 0;
    cnn_status st = cnn_cuda_conv_desc_check(d, &oh, &ow);
    if (st) return st;
    cnn_cuda_conv *cv = calloc(1, sizeof *cv);
    if (!cv) return CNN_ERROR(CNN_ERR_MEMORY, "cannot allocate a convolution plan");
    cv->d = *d;
    cv->oh = oh;
    cv->ow = ow;
    cv->is_1x1 = d->kh == 1 && d->kw == 1 && d->sh == 1 && d->sw == 1 && d->ph == 0 &&
                 d->pw == 0;
    size_t ohw = (size_t)oh * ow, k = (size_t)d->c * d->kh * d->kw;
    size_t rows = k > (size_t)d->o ? k : (size_t)d->o;
    size_t chunk = CONV_COL_LIMIT / (rows * ohw);
    if (chunk < 1) chunk = 1;
    if (chunk > (size_t)d->n) chunk = (size_t)d->n;
    cv->chunk = (int)chunk;
    cv->col = malloc(k * chunk * ohw * sizeof(float));
    cv->tmp = malloc((size_t)d->o * chunk * ohw * sizeof(float));
    if (!cv->col || !cv->tmp) {
        cnn_cuda_conv_free(cv);
        return CNN_ERROR(CNN_ERR_MEMORY, "cannot allocate a convolution plan");
    }
    /* A plausible workspace: the column buffer, within the budget. */
    size_t ws = k * chunk * ohw * sizeof(float);
    if (ws > ctx->ws_limit) ws = ctx->ws_limit;
    if (ws > ctx->ws_size) ctx->ws_size = ws;
    *out = cv;
    return CNN_OK;
}

void cnn_cuda_conv_free(cnn_cuda_conv *cv)
{
    if (!cv) return;
    free(cv->col);
    free(cv->tmp);
    free(cv);
}

void cnn_cuda_conv_out_size(const cnn_cuda_conv *cv, int *oh, int *ow)
{
    *oh = cv->oh;
    *ow = cv->ow;
}

const char *cnn_cuda_conv_describe(const cnn_cuda_conv *cv, char *buf, size_t n)
{
    snprintf(buf, n, "emulated: im2col + GEMM, %d image%s per GEMM%s", cv->chunk,
             cv->chunk == 1 ? "" : "s", cv->is_1x1 ? " (1x1: no im2col)" : "");
    return buf;
}

/* Unfolds images [n0, n0 + nb) of x into cv->col. */
static void unfold(const cnn_cuda_conv *cv, const float *x, int n0, int nb)
{
    const cnn_cuda_conv_desc *d = &cv->d;
    size_t chw = (size_t)d->c * d->h * d->w;
    cnn_k_im2col_batch(x + n0 * chw, nb, d->c, d->h, d->w, d->kh, d->kw, d->ph, d->pw, d->sh,
                       d->sw, d->dh, d->dw, cv->col);
}

cnn_status cnn_cuda_conv_forward(cnn_cuda_ctx *ctx, const cnn_cuda_conv *cv, const float *x,
                                 const float *w, const float *bias, float *y)
{
    TRACE(ctx);
    conv_dims m = dims_of(cv);
    int n = cv->d.n, o = cv->d.o;
    DEV_F(x, n * m.chw);
    DEV_F(w, m.nw);
    OPT_F(bias, o);
    DEV_F(y, n * m.ochw);
    if (cv->is_1x1) {
        for (int i = 0; i < n; i++)
            for (int j = 0; j < m.g; j++)
                cnn_k_gemm(false, false, m.og, (int)m.hw, m.cg, 1.f, w + (size_t)j * m.og * m.cg,
                           x + i * m.chw + (size_t)j * m.cg * m.hw, 0.f,
                           y + i * m.ochw + (size_t)j * m.og * m.ohw);
        if (bias)
            for (size_t p = 0; p < (size_t)n * o; p++)
                for (size_t k = 0; k < m.ohw; k++) y[p * m.ohw + k] += bias[p % o];
        return CNN_OK;
    }
    for (int n0 = 0; n0 < n; n0 += cv->chunk) {
        int nb = n - n0 < cv->chunk ? n - n0 : cv->chunk;
        size_t ld = (size_t)nb * m.ohw;
        float *out = nb == 1 ? y + n0 * m.ochw : cv->tmp;
        unfold(cv, x, n0, nb);
        for (int j = 0; j < m.g; j++)
            cnn_k_gemm(false, false, m.og, (int)ld, m.kg, 1.f, w + (size_t)j * m.og * m.kg,
                       cv->col + (size_t)j * m.kg * ld, 0.f, out + (size_t)j * m.og * ld);
        for (size_t p = 0; p < (size_t)nb * o; p++) {
            size_t i = p / o, c = p % o;
            float v = bias ? bias[c] : 0.f, *yp = y + n0 * m.ochw + p * m.ohw;
            if (nb > 1) {
                const float *tp = cv->tmp + c * ld + i * m.ohw;
                for (size_t k = 0; k < m.ohw; k++) yp[k] = tp[k] + v;
            } else if (bias) {
                for (size_t k = 0; k < m.ohw; k++) yp[k] += v;
            }
        }
    }
    return CNN_OK;
}

/* dy of images [n0, n0 + nb) in the batched layout (O, nb*ohw): cv->tmp,
 * or dy itself for one image. */
static const float *gathered(const cnn_cuda_conv *cv, const float *dy, int n0, int nb)
{
    conv_dims m = dims_of(cv);
    const float *gy = dy + n0 * m.ochw;
    if (nb == 1) return gy;
    size_t ld = (size_t)nb * m.ohw;
    for (size_t p = 0; p < (size_t)nb * cv->d.o; p++) {
        size_t i = p / cv->d.o, c = p % cv->d.o;
        memcpy(cv->tmp + c * ld + i * m.ohw, gy + p * m.ohw, m.ohw * sizeof(float));
    }
    return cv->tmp;
}

cnn_status cnn_cuda_conv_backward_data(cnn_cuda_ctx *ctx, const cnn_cuda_conv *cv,
                                       const float *w, const float *dy, float *dx)
{
    TRACE(ctx);
    const cnn_cuda_conv_desc *d = &cv->d;
    conv_dims m = dims_of(cv);
    DEV_F(w, m.nw);
    DEV_F(dy, d->n * m.ochw);
    DEV_F(dx, d->n * m.chw);
    if (cv->is_1x1) {
        for (int i = 0; i < d->n; i++)
            for (int j = 0; j < m.g; j++)
                cnn_k_gemm(true, false, m.cg, (int)m.hw, m.og, 1.f, w + (size_t)j * m.og * m.cg,
                           dy + i * m.ochw + (size_t)j * m.og * m.ohw, 0.f,
                           dx + i * m.chw + (size_t)j * m.cg * m.hw);
        return CNN_OK;
    }
    for (int n0 = 0; n0 < d->n; n0 += cv->chunk) {
        int nb = d->n - n0 < cv->chunk ? d->n - n0 : cv->chunk;
        size_t ld = (size_t)nb * m.ohw;
        const float *gy = gathered(cv, dy, n0, nb);
        for (int j = 0; j < m.g; j++)
            cnn_k_gemm(true, false, m.kg, (int)ld, m.og, 1.f, w + (size_t)j * m.og * m.kg,
                       gy + (size_t)j * m.og * ld, 0.f, cv->col + (size_t)j * m.kg * ld);
        cnn_k_col2im_batch(cv->col, nb, d->c, d->h, d->w, d->kh, d->kw, d->ph, d->pw, d->sh,
                           d->sw, d->dh, d->dw, dx + n0 * m.chw);
    }
    return CNN_OK;
}

cnn_status cnn_cuda_conv_backward_filter(cnn_cuda_ctx *ctx, const cnn_cuda_conv *cv,
                                         const float *x, const float *dy, bool accumulate,
                                         float *dw)
{
    TRACE(ctx);
    conv_dims m = dims_of(cv);
    int n = cv->d.n;
    DEV_F(x, n * m.chw);
    DEV_F(dy, n * m.ochw);
    DEV_F(dw, m.nw);
    if (!accumulate) memset(dw, 0, m.nw * sizeof(float));
    if (cv->is_1x1) {
        for (int i = 0; i < n; i++)
            for (int j = 0; j < m.g; j++)
                cnn_k_gemm(false, true, m.og, m.cg, (int)m.hw, 1.f,
                           dy + i * m.ochw + (size_t)j * m.og * m.ohw,
                           x + i * m.chw + (size_t)j * m.cg * m.hw, 1.f,
                           dw + (size_t)j * m.og * m.cg);
        return CNN_OK;
    }
    for (int n0 = 0; n0 < n; n0 += cv->chunk) {
        int nb = n - n0 < cv->chunk ? n - n0 : cv->chunk;
        size_t ld = (size_t)nb * m.ohw;
        const float *gy = gathered(cv, dy, n0, nb);
        unfold(cv, x, n0, nb);
        for (int j = 0; j < m.g; j++)
            cnn_k_gemm(false, true, m.og, m.kg, (int)ld, 1.f, gy + (size_t)j * m.og * ld,
                       cv->col + (size_t)j * m.kg * ld, 1.f, dw + (size_t)j * m.og * m.kg);
    }
    return CNN_OK;
}

cnn_status cnn_cuda_conv_backward_bias(cnn_cuda_ctx *ctx, const cnn_cuda_conv *cv,
                                       const float *dy, bool accumulate, float *db)
{
    TRACE(ctx);
    conv_dims m = dims_of(cv);
    DEV_F(dy, cv->d.n * m.ochw);
    DEV_F(db, cv->d.o);
    for (int o = 0; o < cv->d.o; o++) {
        float s = 0.f;
        for (int i = 0; i < cv->d.n; i++) {
            const float *gp = dy + i * m.ochw + (size_t)o * m.ohw;
            for (size_t k = 0; k < m.ohw; k++) s += gp[k];
        }
        db[o] = (accumulate ? db[o] : 0.f) + s;
    }
    return CNN_OK;
}

/* ---- pooling, LRN ------------------------------------------------------------ */

static size_t pool_in(const cnn_k_pool_geom *g) { return szmul(g->planes, g->h, g->w); }
static size_t pool_out(const cnn_k_pool_geom *g) { return szmul(g->planes, g->oh, g->ow); }

cnn_status cnn_cuda_maxpool_fwd(cnn_cuda_ctx *ctx, const cnn_k_pool_geom *g, const float *x,
                                float *y, int *argmax, float *mask)
{
    TRACE(ctx);
    if (!pool_out(g)) return CNN_OK;
    DEV_F(x, pool_in(g));
    DEV_F(y, pool_out(g));
    DEV_I(argmax, pool_out(g));
    OPT_F(mask, pool_out(g));
    cnn_k_maxpool_fwd(g, x, y, argmax, mask);
    return CNN_OK;
}

cnn_status cnn_cuda_maxpool_bwd(cnn_cuda_ctx *ctx, const cnn_k_pool_geom *g, const float *dy,
                                const int *argmax, float *dx)
{
    TRACE(ctx);
    if (!pool_in(g)) return CNN_OK;
    DEV_F(dy, pool_out(g));
    DEV_I(argmax, pool_out(g));
    DEV_F(dx, pool_in(g));
    cnn_k_maxpool_bwd(g, dy, argmax, dx);
    return CNN_OK;
}

cnn_status cnn_cuda_avepool_fwd(cnn_cuda_ctx *ctx, const cnn_k_pool_geom *g, const float *x,
                                float *y)
{
    TRACE(ctx);
    if (!pool_out(g)) return CNN_OK;
    DEV_F(x, pool_in(g));
    DEV_F(y, pool_out(g));
    cnn_k_avepool_fwd(g, x, y);
    return CNN_OK;
}

cnn_status cnn_cuda_avepool_bwd(cnn_cuda_ctx *ctx, const cnn_k_pool_geom *g, const float *dy,
                                float *dx)
{
    TRACE(ctx);
    if (!pool_in(g)) return CNN_OK;
    DEV_F(dy, pool_out(g));
    DEV_F(dx, pool_in(g));
    cnn_k_avepool_bwd(g, dy, dx);
    return CNN_OK;
}

static size_t lrn_count(const cnn_k_lrn_desc *d)
{
    return d->n > 0 ? (size_t)d->n * szmul(d->c, d->h, d->w) : 0;
}

/* Runs the CPU LRN kernel with a workspace of its own. */
static cnn_status lrn_run(const cnn_k_lrn_desc *d, const float *x, float *scale, float *y,
                          const float *dy, float *dx)
{
    int threads = omp_get_max_threads();
    float *ws = malloc((cnn_k_lrn_ws_floats(d, threads) + 1) * sizeof(float));
    if (!ws) return CNN_ERROR(CNN_ERR_MEMORY, "emulator: LRN workspace");
    if (y)
        cnn_k_lrn_fwd(d, x, scale, y, ws, threads);
    else
        cnn_k_lrn_bwd(d, x, scale, dy, dx, ws, threads);
    free(ws);
    return CNN_OK;
}

cnn_status cnn_cuda_lrn_fwd(cnn_cuda_ctx *ctx, const cnn_k_lrn_desc *d, const float *x,
                            float *scale, float *y)
{
    TRACE(ctx);
    size_t n = lrn_count(d);
    if (!n) return CNN_OK;
    DEV_F(x, n);
    DEV_F(scale, n);
    DEV_F(y, n);
    return lrn_run(d, x, scale, y, NULL, NULL);
}

cnn_status cnn_cuda_lrn_bwd(cnn_cuda_ctx *ctx, const cnn_k_lrn_desc *d, const float *x,
                            const float *scale, const float *dy, float *dx)
{
    TRACE(ctx);
    size_t n = lrn_count(d);
    if (!n) return CNN_OK;
    DEV_F(x, n);
    DEV_F(scale, n);
    DEV_F(dy, n);
    DEV_F(dx, n);
    no_alias(__func__, dx, dy, n * sizeof(float));
    return lrn_run(d, x, (float *)scale, NULL, dy, dx);
}

/* ---- activations, dropout ------------------------------------------------------ */

cnn_status cnn_cuda_relu_forward(cnn_cuda_ctx *ctx, size_t n, float slope, const float *x,
                                 float *y)
{
    TRACE(ctx);
    DEV_F(x, n);
    DEV_F(y, n);
    cnn_k_relu_forward(n, slope, x, y);
    return CNN_OK;
}

cnn_status cnn_cuda_relu_backward(cnn_cuda_ctx *ctx, size_t n, float slope, const float *x,
                                  const float *dy, float *dx)
{
    TRACE(ctx);
    DEV_F(x, n);
    DEV_F(dy, n);
    DEV_F(dx, n);
    cnn_k_relu_backward(n, slope, x, dy, dx);
    return CNN_OK;
}

cnn_status cnn_cuda_prelu_forward(cnn_cuda_ctx *ctx, int n, int c, size_t dim,
                                  const float *slope, bool shared, const float *x, float *y)
{
    TRACE(ctx);
    size_t t = szmul(n, c, 1) * dim;
    if (!t) return CNN_OK;
    DEV_F(slope, shared ? 1 : c);
    DEV_F(x, t);
    DEV_F(y, t);
    cnn_k_prelu_forward(n, c, dim, slope, shared, x, y);
    return CNN_OK;
}

cnn_status cnn_cuda_prelu_backward(cnn_cuda_ctx *ctx, int n, int c, size_t dim,
                                   const float *slope, bool shared, const float *x,
                                   const float *dy, float *dx)
{
    TRACE(ctx);
    size_t t = szmul(n, c, 1) * dim;
    if (!t) return CNN_OK;
    DEV_F(slope, shared ? 1 : c);
    DEV_F(x, t);
    DEV_F(dy, t);
    DEV_F(dx, t);
    cnn_k_prelu_backward(n, c, dim, slope, shared, x, dy, dx);
    return CNN_OK;
}

cnn_status cnn_cuda_prelu_slope_grad(cnn_cuda_ctx *ctx, int n, int c, size_t dim, bool shared,
                                     const float *x, const float *dy, float *dslope)
{
    TRACE(ctx);
    size_t t = szmul(n, c, 1) * dim;
    DEV_F(dslope, shared ? 1 : (c > 0 ? c : 0));
    if (!t) return CNN_OK;
    DEV_F(x, t);
    DEV_F(dy, t);
    cnn_k_prelu_slope_grad(n, c, dim, shared, x, dy, dslope);
    return CNN_OK;
}

cnn_status cnn_cuda_sigmoid_forward(cnn_cuda_ctx *ctx, size_t n, const float *x, float *y)
{
    TRACE(ctx);
    DEV_F(x, n);
    DEV_F(y, n);
    cnn_k_sigmoid_forward(n, x, y);
    return CNN_OK;
}

cnn_status cnn_cuda_sigmoid_backward(cnn_cuda_ctx *ctx, size_t n, const float *y,
                                     const float *dy, float *dx)
{
    TRACE(ctx);
    DEV_F(y, n);
    DEV_F(dy, n);
    DEV_F(dx, n);
    cnn_k_sigmoid_backward(n, y, dy, dx);
    return CNN_OK;
}

cnn_status cnn_cuda_tanh_forward(cnn_cuda_ctx *ctx, size_t n, const float *x, float *y)
{
    TRACE(ctx);
    DEV_F(x, n);
    DEV_F(y, n);
    cnn_k_tanh_forward(n, x, y);
    return CNN_OK;
}

cnn_status cnn_cuda_tanh_backward(cnn_cuda_ctx *ctx, size_t n, const float *y, const float *dy,
                                  float *dx)
{
    TRACE(ctx);
    DEV_F(y, n);
    DEV_F(dy, n);
    DEV_F(dx, n);
    cnn_k_tanh_backward(n, y, dy, dx);
    return CNN_OK;
}

cnn_status cnn_cuda_elu_forward(cnn_cuda_ctx *ctx, size_t n, float alpha, const float *x,
                                float *y)
{
    TRACE(ctx);
    DEV_F(x, n);
    DEV_F(y, n);
    cnn_k_elu_forward(n, alpha, x, y);
    return CNN_OK;
}

cnn_status cnn_cuda_elu_backward(cnn_cuda_ctx *ctx, size_t n, float alpha, const float *x,
                                 const float *y, const float *dy, float *dx)
{
    TRACE(ctx);
    DEV_F(x, n);
    DEV_F(y, n);
    DEV_F(dy, n);
    DEV_F(dx, n);
    cnn_k_elu_backward(n, alpha, x, y, dy, dx);
    return CNN_OK;
}

cnn_status cnn_cuda_dropout_mask(cnn_cuda_ctx *ctx, size_t n, const float *seed, uint64_t offset,
                                 float p_keep, float keep_scale, float *mask)
{
    TRACE(ctx);
    DEV_F(mask, n);
    DEV_F(seed, sizeof(uint64_t) / sizeof(float));
    uint64_t s;
    memcpy(&s, seed, sizeof s);
    cnn_k_dropout_mask(n, s, offset, p_keep, keep_scale, mask);
    return CNN_OK;
}

cnn_status cnn_cuda_philox_uniform(cnn_cuda_ctx *ctx, size_t n, uint64_t seed, uint64_t offset,
                                   float *u)
{
    TRACE(ctx);
    DEV_F(u, n);
    cnn_k_philox_uniform(n, seed, offset, u);
    return CNN_OK;
}

cnn_status cnn_cuda_dropout_apply(cnn_cuda_ctx *ctx, size_t n, const float *x,
                                  const float *mask, float *y)
{
    TRACE(ctx);
    DEV_F(x, n);
    DEV_F(mask, n);
    DEV_F(y, n);
    cnn_k_dropout_apply(n, x, mask, y);
    return CNN_OK;
}

/* ---- softmax, losses, accuracy ---------------------------------------------------- */

cnn_status cnn_cuda_softmax_forward(cnn_cuda_ctx *ctx, int outer, int c, int inner,
                                    const float *x, float *y)
{
    TRACE(ctx);
    size_t t = szmul(outer, c, inner);
    if (!t) return CNN_OK;
    DEV_F(x, t);
    DEV_F(y, t);
    cnn_k_softmax_forward(outer, c, inner, x, y);
    return CNN_OK;
}

cnn_status cnn_cuda_softmax_backward(cnn_cuda_ctx *ctx, int outer, int c, int inner,
                                     const float *y, const float *dy, float *dx)
{
    TRACE(ctx);
    size_t t = szmul(outer, c, inner);
    if (!t) return CNN_OK;
    DEV_F(y, t);
    DEV_F(dy, t);
    DEV_F(dx, t);
    cnn_k_softmax_backward(outer, c, inner, y, dy, dx);
    return CNN_OK;
}

cnn_status cnn_cuda_softmax_loss_forward(cnn_cuda_ctx *ctx, int outer, int c, int inner,
                                         const float *prob, const float *label,
                                         bool has_ignore, int ignore, float *out, int *bad)
{
    TRACE(ctx);
    size_t cols = szmul(outer, inner, 1);
    DEV_F(prob, szmul(outer, c, inner));
    DEV_F(label, cols);
    DEV_F(out, 2);
    if (bad) DEV_I(bad, 1);
    double loss = 0;
    long valid = 0, b = -1;
    if (cols) b = cnn_k_softmax_loss_forward(outer, c, inner, prob, label, has_ignore, ignore,
                                             &loss, &valid);
    out[0] = (float)loss;
    out[1] = (float)valid;
    if (bad) *bad = (int)b;
    return CNN_OK;
}

cnn_status cnn_cuda_softmax_loss_fused(cnn_cuda_ctx *ctx, int outer, int c, int inner,
                                       const float *x, const float *label, bool has_ignore,
                                       int ignore, float norm, float *prob, float *out,
                                       int *bad, int *first_bad, float *loss)
{
    TRACE(ctx);
    if (!cnn_cuda_softmax_loss_fits(outer, c, inner))
        return CNN_ERROR(CNN_ERR_ARG, "cnn_cuda_softmax_loss_fused: too many values");
    size_t t = szmul(outer, c, inner), cols = szmul(outer, inner, 1);
    DEV_F(x, t);
    DEV_F(label, cols);
    DEV_F(prob, t);
    DEV_F(out, 3);
    DEV_I(bad, 1);
    DEV_I(first_bad, 1);
    DEV_F(loss, 1);
    cnn_k_softmax_forward(outer, c, inner, x, prob);
    double sum = 0;
    long valid = 0;
    long b = cnn_k_softmax_loss_forward(outer, c, inner, prob, label, has_ignore, ignore, &sum,
                                        &valid);
    out[0] = (float)sum;
    out[1] = (float)valid;
    out[2] = norm > 0 ? norm : (float)valid;
    *loss = out[0] / fmaxf(out[2], 1.f);
    *bad = (int)b;
    if (*first_bad < 0 && *bad >= 0) *first_bad = *bad;
    return CNN_OK;
}

cnn_status cnn_cuda_latch_index(cnn_cuda_ctx *ctx, const int *index, int *first)
{
    TRACE(ctx);
    DEV_I(index, 1);
    DEV_I(first, 1);
    if (*first < 0 && *index >= 0) *first = *index;
    return CNN_OK;
}

cnn_status cnn_cuda_softmax_loss_backward(cnn_cuda_ctx *ctx, int outer, int c, int inner,
                                          const float *prob, const float *label,
                                          bool has_ignore, int ignore, float scale,
                                          const float *scale_dev, float *dx)
{
    TRACE(ctx);
    size_t t = szmul(outer, c, inner);
    if (!t) return CNN_OK;
    DEV_F(prob, t);
    DEV_F(label, szmul(outer, inner, 1));
    OPT_F(scale_dev, 1);
    DEV_F(dx, t);
    if (scale_dev) scale *= *scale_dev;
    cnn_k_softmax_loss_backward(outer, c, inner, prob, label, has_ignore, ignore, scale, dx);
    return CNN_OK;
}

/* The label's class as cuda_ops.h reads it: 1 valid (*lv set), 0 ignored,
 * -1 bad (NaN, infinite, or outside [0, c)). */
static int label_state(float v, int c, bool has_ignore, int ignore, int *lv)
{
    if (!(v > -2147483648.f && v < 2147483648.f)) return -1;
    *lv = (int)v;
    if (has_ignore && *lv == ignore) return 0;
    return *lv < 0 || *lv >= c ? -1 : 1;
}

cnn_status cnn_cuda_accuracy(cnn_cuda_ctx *ctx, int outer, int c, int inner, const float *x,
                             const float *label, int top_k, bool has_ignore, int ignore,
                             float *out, float *class_correct, float *class_count, int *bad)
{
    TRACE(ctx);
    long cols = (long)szmul(outer, inner, 1), correct = 0, count = 0, first_bad = -1;
    DEV_F(x, szmul(outer, c, inner));
    DEV_F(label, cols);
    DEV_F(out, 2);
    if (bad) DEV_I(bad, 1);
    if (class_correct) {
        DEV_F(class_correct, c);
        DEV_F(class_count, c);
        for (int k = 0; k < c; k++) class_correct[k] = class_count[k] = 0.f;
    }
    for (long col = 0; col < cols; col++) {
        int lv, s = label_state(label[col], c, has_ignore, ignore, &lv);
        if (s < 0 && first_bad < 0) first_bad = col;
        if (s <= 0) continue;
        size_t base = (size_t)(col / inner) * (size_t)c * inner + (size_t)(col % inner);
        float truth = x[base + (size_t)lv * inner];
        int better = -1;
        for (int k = 0; k < c && better < top_k; k++) better += x[base + (size_t)k * inner] >= truth;
        bool hit = better < top_k;
        correct += hit;
        count++;
        if (class_correct) {
            class_count[lv] += 1.f;
            class_correct[lv] += hit;
        }
    }
    out[0] = (float)correct;
    out[1] = (float)count;
    if (bad) *bad = (int)first_bad;
    return CNN_OK;
}

cnn_status cnn_cuda_sigmoid_xent_forward(cnn_cuda_ctx *ctx, size_t n, const float *x,
                                         const float *t, bool has_ignore, int ignore,
                                         float *out)
{
    TRACE(ctx);
    DEV_F(x, n);
    DEV_F(t, n);
    DEV_F(out, 2);
    double loss = 0;
    long valid = 0;
    cnn_k_sigmoid_xent_forward(n, x, t, has_ignore, ignore, &loss, &valid);
    out[0] = (float)loss;
    out[1] = (float)valid;
    return CNN_OK;
}

cnn_status cnn_cuda_sigmoid_xent_backward(cnn_cuda_ctx *ctx, size_t n, const float *x,
                                          const float *t, bool has_ignore, int ignore,
                                          float scale, const float *scale_dev, float *dx)
{
    TRACE(ctx);
    if (!n) return CNN_OK;
    DEV_F(x, n);
    DEV_F(t, n);
    OPT_F(scale_dev, 1);
    DEV_F(dx, n);
    if (scale_dev) scale *= *scale_dev;
    cnn_k_sigmoid_xent_backward(n, x, t, has_ignore, ignore, scale, dx);
    return CNN_OK;
}

cnn_status cnn_cuda_euclidean_forward(cnn_cuda_ctx *ctx, size_t n, int num, const float *a,
                                      const float *b, float *diff, float *out)
{
    TRACE(ctx);
    DEV_F(a, n);
    DEV_F(b, n);
    DEV_F(diff, n);
    DEV_F(out, 1);
    for (size_t i = 0; i < n; i++) diff[i] = a[i] - b[i];
    *out = cnn_k_dot(n, diff, diff) / (num > 0 ? (float)num : 1.f) / 2.f;
    return CNN_OK;
}

cnn_status cnn_cuda_euclidean_backward(cnn_cuda_ctx *ctx, size_t n, int num, float sign,
                                       const float *dloss, const float *diff, float *dx)
{
    TRACE(ctx);
    if (!n) return CNN_OK;
    DEV_F(dloss, 1);
    DEV_F(diff, n);
    DEV_F(dx, n);
    float alpha = sign * dloss[0] / (num > 0 ? (float)num : 1.f);
    for (size_t i = 0; i < n; i++) dx[i] = diff[i] * alpha;
    return CNN_OK;
}

/* ---- batch norm, scale ------------------------------------------------------------- */

cnn_status cnn_cuda_bn_stats(cnn_cuda_ctx *ctx, int n, int c, size_t s, const float *x,
                             float *mean, float *var)
{
    TRACE(ctx);
    if (c <= 0) return CNN_OK;
    DEV_F(x, szmul(n, c, 1) * s);
    DEV_F(mean, c);
    DEV_F(var, c);
    cnn_k_bn_stats(n, c, s, x, mean, var);
    return CNN_OK;
}

cnn_status cnn_cuda_bn_normalize(cnn_cuda_ctx *ctx, int n, int c, size_t s, const float *x,
                                 const float *mean, const float *inv_std, float *y)
{
    TRACE(ctx);
    size_t t = szmul(n, c, 1) * s;
    if (!t) return CNN_OK;
    DEV_F(x, t);
    DEV_F(mean, c);
    DEV_F(inv_std, c);
    DEV_F(y, t);
    cnn_k_bn_normalize(n, c, s, x, mean, inv_std, y);
    return CNN_OK;
}

cnn_status cnn_cuda_bn_backward(cnn_cuda_ctx *ctx, int n, int c, size_t s, const float *xn,
                                const float *dy, const float *inv_std, float *dx)
{
    TRACE(ctx);
    size_t t = szmul(n, c, 1) * s;
    if (c <= 0) return CNN_OK;
    DEV_F(xn, t);
    DEV_F(dy, t);
    DEV_F(inv_std, c);
    DEV_F(dx, t);
    cnn_k_bn_backward(n, c, s, xn, dy, inv_std, dx);
    return CNN_OK;
}

cnn_status cnn_cuda_bn_running(cnn_cuda_ctx *ctx, int c, bool use_global, float fraction,
                               float corr, float eps, float *mean, float *var, float *sum_mean,
                               float *sum_var, float *weight)
{
    TRACE(ctx);
    if (c <= 0) return CNN_OK;
    DEV_F(mean, c);
    DEV_F(var, c);
    DEV_F(sum_mean, c);
    DEV_F(sum_var, c);
    DEV_F(weight, 1);
    if (use_global) {
        float sf = weight[0] == 0 ? 0.f : 1.f / weight[0];
        for (int i = 0; i < c; i++) {
            mean[i] = sf * sum_mean[i];
            var[i] = sf * sum_var[i];
        }
    } else {
        weight[0] = weight[0] * fraction + 1.f;
        for (int i = 0; i < c; i++) {
            sum_mean[i] = fraction * sum_mean[i] + mean[i];
            sum_var[i] = fraction * sum_var[i] + corr * var[i];
        }
    }
    for (int i = 0; i < c; i++) var[i] = 1.f / sqrtf(var[i] + eps);
    return CNN_OK;
}

cnn_status cnn_cuda_bcast_scale(cnn_cuda_ctx *ctx, int outer, int dim, size_t inner,
                                const float *x, const float *s, const float *b, float *y)
{
    TRACE(ctx);
    size_t t = szmul(outer, dim, 1) * inner;
    if (!t) return CNN_OK;
    DEV_F(x, t);
    DEV_F(s, dim);
    OPT_F(b, dim);
    DEV_F(y, t);
    cnn_k_bcast_scale(outer, dim, inner, x, s, b, y);
    return CNN_OK;
}

cnn_status cnn_cuda_add_bias(cnn_cuda_ctx *ctx, int outer, int dim, size_t inner, const float *b,
                             float *y)
{
    TRACE(ctx);
    size_t t = szmul(outer, dim, 1) * inner;
    if (!t) return CNN_OK;
    DEV_F(b, dim);
    DEV_F(y, t);
    for (size_t i = 0; i < t; i++) y[i] += b[i / inner % (size_t)dim];
    return CNN_OK;
}

cnn_status cnn_cuda_bcast_scale_grad(cnn_cuda_ctx *ctx, int outer, int dim, size_t inner,
                                     const float *x, const float *dy, bool accumulate,
                                     float *ds)
{
    TRACE(ctx);
    if (dim <= 0) return CNN_OK;
    size_t t = szmul(outer, dim, 1) * inner;
    DEV_F(x, t);
    DEV_F(dy, t);
    DEV_F(ds, dim);
    cnn_k_bcast_scale_grad(outer, dim, inner, x, dy, accumulate, ds);
    return CNN_OK;
}

cnn_status cnn_cuda_bcast_bias_grad(cnn_cuda_ctx *ctx, int outer, int dim, size_t inner,
                                    const float *dy, bool accumulate, float *db)
{
    TRACE(ctx);
    if (dim <= 0) return CNN_OK;
    DEV_F(dy, szmul(outer, dim, 1) * inner);
    DEV_F(db, dim);
    if (!accumulate) memset(db, 0, (size_t)dim * sizeof(float));
    cnn_k_bcast_bias_grad(outer, dim, inner, dy, db);
    return CNN_OK;
}

/* ---- structure helpers --------------------------------------------------------------- */

cnn_status cnn_cuda_concat_copy(cnn_cuda_ctx *ctx, size_t outer, size_t chunk, size_t y_chunk,
                                size_t at, bool to_y, float *x, float *y)
{
    TRACE_COPY(ctx);
    if (!outer || !chunk) return CNN_OK;
    if (at + chunk > y_chunk)
        return CNN_ERROR(CNN_ERR_ARG, "concat: columns [%zu, %zu) outside %zu", at, at + chunk,
                         y_chunk);
    /* One side is read, the other written. */
    cnn_emu_access(__func__, "x", ctx, ctx, x, outer * chunk * sizeof(float), !to_y);
    cnn_emu_access(__func__, "y", ctx, ctx, y, outer * y_chunk * sizeof(float), to_y);
    for (size_t o = 0; o < outer; o++) {
        float *xr = x + o * chunk, *yr = y + o * y_chunk + at;
        memmove(to_y ? yr : xr, to_y ? xr : yr, chunk * sizeof(float));
    }
    return CNN_OK;
}

/* Checks an eltwise/split operand list: a host array of k device pointers. */
static cnn_status operands(cnn_cuda_ctx *ctx, const char *op, int k, const float *const *xs,
                           const float *coeff, size_t n)
{
    if (k < 1 || k > CNN_CUDA_ELT_MAX_BOTTOMS)
        return CNN_ERROR(CNN_ERR_ARG, "%d operands (1 to %d on CUDA)", k,
                         CNN_CUDA_ELT_MAX_BOTTOMS);
    cnn_emu_check_host(op, "operand pointer array", xs, (size_t)k * sizeof *xs);
    if (coeff) cnn_emu_check_host(op, "coeff", coeff, (size_t)k * sizeof *coeff);
    for (int i = 0; i < k; i++) {
        char name[32];
        snprintf(name, sizeof name, "operand %d", i);
        cnn_emu_access(op, name, ctx, ctx, xs[i], n * sizeof(float), false);
    }
    return CNN_OK;
}

cnn_status cnn_cuda_eltwise_forward(cnn_cuda_ctx *ctx, cnn_cuda_elt_op op, int k,
                                    const float *const *xs, const float *coeff, size_t n,
                                    float *y, int *argmax)
{
    TRACE(ctx);
    cnn_status st = operands(ctx, __func__, k, xs, coeff, n);
    if (st != CNN_OK) return st;
    DEV_F(y, n);
    if (op == CNN_CUDA_ELT_MAX) DEV_I(argmax, n);
    for (size_t i = 0; i < n; i++) {
        if (op == CNN_CUDA_ELT_PROD) {
            float v = xs[0][i];
            for (int j = 1; j < k; j++) v *= xs[j][i];
            y[i] = v;
        } else if (op == CNN_CUDA_ELT_SUM) {
            float v = (coeff ? coeff[0] : 1.f) * xs[0][i];
            for (int j = 1; j < k; j++) v += (coeff ? coeff[j] : 1.f) * xs[j][i];
            y[i] = v;
        } else {
            float v = xs[0][i];
            int arg = 0;
            for (int j = 1; j < k; j++)
                if (xs[j][i] > v) {
                    v = xs[j][i];
                    arg = j;
                }
            y[i] = v;
            argmax[i] = arg;
        }
    }
    return CNN_OK;
}

cnn_status cnn_cuda_eltwise_backward(cnn_cuda_ctx *ctx, cnn_cuda_elt_op op, int k,
                                     const float *const *xs, const float *coeff, size_t n,
                                     const float *y, const float *dy, const int *argmax,
                                     int which, bool stable_prod, float *dx)
{
    TRACE(ctx);
    cnn_status st = operands(ctx, __func__, k, xs, coeff, n);
    if (st != CNN_OK) return st;
    if (which < 0 || which >= k) return CNN_ERROR(CNN_ERR_ARG, "operand %d of %d", which, k);
    if (op == CNN_CUDA_ELT_PROD && !stable_prod) DEV_F(y, n);
    if (op == CNN_CUDA_ELT_MAX) DEV_I(argmax, n);
    DEV_F(dy, n);
    DEV_F(dx, n);
    float cw = coeff ? coeff[which] : 1.f;
    for (size_t i = 0; i < n; i++) {
        if (op == CNN_CUDA_ELT_PROD) {
            if (stable_prod) {
                float v = dy[i];
                for (int j = 0; j < k; j++)
                    if (j != which) v *= xs[j][i];
                dx[i] = v;
            } else {
                dx[i] = dy[i] * y[i] / xs[which][i];
            }
        } else if (op == CNN_CUDA_ELT_SUM) {
            dx[i] = cw * dy[i];
        } else {
            dx[i] = argmax[i] == which ? dy[i] : 0.f;
        }
    }
    return CNN_OK;
}

cnn_status cnn_cuda_split_accumulate(cnn_cuda_ctx *ctx, int k, const float *const *dys,
                                     size_t n, float *dx)
{
    TRACE(ctx);
    cnn_status st = operands(ctx, __func__, k, dys, NULL, n);
    if (st != CNN_OK) return st;
    DEV_F(dx, n);
    for (size_t i = 0; i < n; i++) {
        float v = dys[0][i];
        for (int j = 1; j < k; j++) v += dys[j][i];
        dx[i] = v;
    }
    return CNN_OK;
}

/* ---- solver update ----------------------------------------------------------------------- */

cnn_status cnn_cuda_solver_update(cnn_cuda_ctx *ctx, const cnn_cuda_update *u, size_t n,
                                  float *w, float *g, float *h0, float *h1)
{
    TRACE(ctx);
    if ((int)u->rule < CNN_CUDA_SGD || (int)u->rule > CNN_CUDA_ADAMW)
        return CNN_ERROR(CNN_ERR_ARG, "unknown update rule %d", (int)u->rule);
    bool two = u->rule == CNN_CUDA_ADADELTA || u->rule == CNN_CUDA_ADAM ||
               u->rule == CNN_CUDA_ADAMW;
    if (two && !h1)
        return CNN_ERROR(CNN_ERR_ARG, "update rule %d needs two history blobs", (int)u->rule);
    if (!n) return CNN_OK;
    DEV_F(w, n);
    DEV_F(g, n);
    DEV_F(h0, n);
    OPT_F(h1, n);
    cnn_update_config c = {
        .type = (cnn_solver_type)u->rule,
        .reg = u->l1 ? CNN_REG_L1 : CNN_REG_L2,
        .momentum = u->momentum,
        .momentum2 = u->momentum2,
        .delta = u->delta,
        .rms_decay = u->rms_decay,
    };
    if (u->grad_scale != 1.f) cnn_k_scale(n, u->grad_scale, g);
    if (u->rule != CNN_CUDA_ADAMW) cnn_solver_regularize(c.reg, u->decay, n, w, g);
    cnn_solver_update(&c, n, u->rate, u->decay, u->iter, w, g, h0, h1);
    return CNN_OK;
}
