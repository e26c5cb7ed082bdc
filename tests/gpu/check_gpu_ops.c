/* check_gpu_ops.c — every op of kernels/cuda_ops.h against the CPU reference
 * (kernels/cpu, solvers/update.c, or a direct double-precision loop for
 * convolution): fresh random inputs (never zeros), outputs poisoned with
 * NaN before each run, NaN/Inf failing, the relative error printed
 * (max |gpu - cpu| / max |cpu|). Philox masks must match bit for bit.
 * Prints one SKIP line and passes without a CUDA device or a CUDA build.
 * Runs without forking: CUDA cannot be used in a forked child. */
#include <float.h>

#include "../testutil.h"
#include "core/device.h"
#include "kernels/cuda_ops.h"
#include "kernels/kernels.h"
#include "solvers/solver.h"

static cnn_cuda_ctx *ctx;

/* ---- helpers ------------------------------------------------------------ */

#define MAX_ALLOCS 512
static void *dev_allocs[MAX_ALLOCS], *host_allocs[MAX_ALLOCS];
static int n_dev, n_host;

#define OK(call) ck_assert_msg((call) == CNN_OK, "%s: %s", #call, cnn_error_message())

static void *hmalloc(size_t bytes)
{
    ck_assert(n_host < MAX_ALLOCS);
    void *p = calloc(1, bytes ? bytes : 1);
    ck_assert_ptr_nonnull(p);
    return host_allocs[n_host++] = p;
}

/* Frees everything the helpers allocated (end of each test). */
static void release_all(void)
{
    OK(cnn_cuda_ctx_sync(ctx));
    while (n_dev) cnn_cuda_free(ctx, dev_allocs[--n_dev]);
    while (n_host) free(host_allocs[--n_host]);
}

static void *dmalloc(size_t bytes)
{
    void *p;
    ck_assert(n_dev < MAX_ALLOCS);
    OK(cnn_cuda_malloc(ctx, bytes, &p));
    return dev_allocs[n_dev++] = p;
}

/* n uniform values in [lo, hi), never exactly zero. */
static float *rnd(size_t n, float lo, float hi, uint64_t seed)
{
    float *h = hmalloc(n * sizeof(float));
    cnn_rng r;
    cnn_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) {
        do h[i] = lo + (hi - lo) * (float)cnn_rng_uniform(&r);
        while (h[i] == 0.f);
    }
    return h;
}

static float *hcopy(const float *src, size_t n)
{
    float *h = hmalloc(n * sizeof(float));
    memcpy(h, src, n * sizeof(float));
    return h;
}

static float *up(const float *h, size_t n)
{
    float *d = dmalloc(n * sizeof(float));
    OK(cnn_cuda_upload(ctx, d, h, n * sizeof(float)));
    return d;
}

/* A device buffer of n floats filled with NaN. */
static float *poisoned(size_t n)
{
    float *h = hmalloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) h[i] = NAN;
    return up(h, n);
}

static float *down(const float *d, size_t n)
{
    float *h = hmalloc(n * sizeof(float));
    OK(cnn_cuda_download(ctx, h, d, n * sizeof(float)));
    OK(cnn_cuda_ctx_sync(ctx));
    return h;
}

static int *down_int(const int *d, size_t n)
{
    int *h = hmalloc(n * sizeof(int));
    OK(cnn_cuda_download(ctx, h, d, n * sizeof(int)));
    OK(cnn_cuda_ctx_sync(ctx));
    return h;
}

/* Fails on a non-finite GPU value or a relative error above tol; prints it. */
static double compare(const char *what, const float *gpu, const float *cpu, size_t n, double tol)
{
    double err = 0, scale = 0;
    size_t worst = 0, differ = 0;
    for (size_t i = 0; i < n; i++) {
        ck_assert_msg(isfinite(gpu[i]), "%s[%zu] is %g on the GPU (CPU %g)", what, i, gpu[i],
                      cpu[i]);
        ck_assert_msg(isfinite(cpu[i]), "%s[%zu] is %g on the CPU", what, i, cpu[i]);
        double e = fabs((double)gpu[i] - cpu[i]);
        if (e > err) err = e, worst = i;
        differ += gpu[i] != cpu[i];
        scale = fmax(scale, fabs(cpu[i]));
    }
    double rel = err / fmax(scale, 1e-30);
    printf("  %-34s n=%-8zu rel err %.2e (max abs %.2e at %zu, %zu differ)\n", what, n, rel, err,
           worst, differ);
    ck_assert_msg(rel <= tol, "%s: relative error %.3g > %.3g (gpu %g cpu %g at %zu)", what, rel,
                  tol, n ? gpu[worst] : 0, n ? cpu[worst] : 0, worst);
    return rel;
}

/* Bit-for-bit equality (Philox masks, indices). */
static void same_bits(const char *what, const float *gpu, const float *cpu, size_t n)
{
    size_t differ = 0, first = n;
    for (size_t i = 0; i < n; i++)
        if (memcmp(&gpu[i], &cpu[i], sizeof(float))) {
            if (first == n) first = i;
            differ++;
        }
    printf("  %-34s n=%-8zu %zu differ\n", what, n, differ);
    ck_assert_msg(differ == 0, "%s: %zu values differ, first at %zu (gpu %g cpu %g)", what,
                  differ, first, gpu[first], cpu[first]);
}

/* ---- BLAS ----------------------------------------------------------------- */

START_TEST(test_blas)
{
    int m = 37, n = 53, k = 29;
    for (int t = 0; t < 4; t++) {
        bool ta = t & 1, tb = t & 2;
        float *a = rnd((size_t)m * k, -1, 1, 1 + t), *b = rnd((size_t)k * n, -1, 1, 11 + t);
        float *c = rnd((size_t)m * n, -1, 1, 21 + t), *want = hcopy(c, (size_t)m * n);
        cnn_k_gemm(ta, tb, m, n, k, 0.7f, a, b, 0.3f, want);
        float *dc = up(c, (size_t)m * n);
        OK(cnn_cuda_gemm(ctx, ta, tb, m, n, k, 0.7f, up(a, (size_t)m * k), up(b, (size_t)k * n),
                         0.3f, dc));
        char what[64];
        snprintf(what, sizeof what, "gemm ta=%d tb=%d", ta, tb);
        compare(what, down(dc, (size_t)m * n), want, (size_t)m * n, 1e-5);
        /* beta = 0 must ignore NaN in C. */
        float *dz = poisoned((size_t)m * n), *want0 = hcopy(c, (size_t)m * n);
        cnn_k_gemm(ta, tb, m, n, k, 1.f, a, b, 0.f, want0);
        OK(cnn_cuda_gemm(ctx, ta, tb, m, n, k, 1.f, up(a, (size_t)m * k), up(b, (size_t)k * n),
                         0.f, dz));
        snprintf(what, sizeof what, "gemm ta=%d tb=%d beta=0", ta, tb);
        compare(what, down(dz, (size_t)m * n), want0, (size_t)m * n, 1e-5);
    }
    for (int ta = 0; ta < 2; ta++) {
        float *a = rnd((size_t)m * n, -1, 1, 31), *x = rnd(ta ? m : n, -1, 1, 32);
        float *y = rnd(ta ? n : m, -1, 1, 33), *want = hcopy(y, ta ? n : m);
        cnn_k_gemv(ta, m, n, 1.3f, a, x, 0.5f, want);
        float *dy = up(y, ta ? n : m);
        OK(cnn_cuda_gemv(ctx, ta, m, n, 1.3f, up(a, (size_t)m * n), up(x, ta ? m : n), 0.5f, dy));
        compare(ta ? "gemv trans" : "gemv", down(dy, ta ? n : m), want, ta ? n : m, 1e-5);
    }
    size_t len = 100003;
    float *x = rnd(len, -2, 2, 41), *y = rnd(len, -2, 2, 42), *want = hcopy(y, len);
    float *dx = up(x, len), *dy = up(y, len);
    cnn_k_axpy(len, -0.75f, x, want);
    OK(cnn_cuda_axpy(ctx, len, -0.75f, dx, dy));
    compare("axpy", down(dy, len), want, len, 1e-6);
    cnn_k_scale(len, 1.7f, want);
    OK(cnn_cuda_scale(ctx, len, 1.7f, dy));
    compare("scale", down(dy, len), want, len, 1e-6);
    float *ds = poisoned(len), *wset = hmalloc(len * sizeof(float));
    cnn_k_set(len, 0.25f, wset);
    OK(cnn_cuda_set(ctx, len, 0.25f, ds));
    compare("set", down(ds, len), wset, len, 0);
    cnn_k_set(len, 0.f, wset);
    OK(cnn_cuda_set(ctx, len, 0.f, ds));
    compare("set 0", down(ds, len), wset, len, 0);
    float *dcp = poisoned(len);
    OK(cnn_cuda_copy(ctx, len, dx, dcp));
    compare("copy", down(dcp, len), x, len, 0);
    float *dadd = poisoned(len), *wadd = hmalloc(len * sizeof(float));
    cnn_k_add(len, x, y, wadd);
    OK(cnn_cuda_add(ctx, len, dx, up(y, len), dadd));
    compare("add", down(dadd, len), wadd, len, 0);
    /* Division by max(den, 1): counts, zeros among them, as the losses use it. */
    float *den = hmalloc(len * sizeof(float)), *wdiv = hmalloc(len * sizeof(float));
    for (size_t i = 0; i < len; i++) {
        den[i] = (float)(i % 5);
        wdiv[i] = x[i] / (den[i] > 1.f ? den[i] : 1.f);
    }
    float *ddiv = poisoned(len);
    OK(cnn_cuda_div(ctx, len, dx, up(den, len), 1.f, ddiv));
    compare("div by max(den, 1)", down(ddiv, len), wdiv, len, 0);
    float *dot = poisoned(2);
    OK(cnn_cuda_dot(ctx, len, dx, up(y, len), dot));
    OK(cnn_cuda_asum(ctx, len, dx, dot + 1));
    float wdot[2] = {cnn_k_dot(len, x, y), cnn_k_asum(len, x)};
    compare("dot, asum", down(dot, 2), wdot, 2, 1e-6);
    release_all();
}
END_TEST

/* ---- convolution ---------------------------------------------------------- */

/* fp32 against a double reference; Winograd and FFT algorithms round more. */
#define CONV_TOL 2e-4

/* Direct double-precision reference: y = conv(x, w) + b, and for dy the
 * gradients dx (overwritten), dw and db (added to). */
static void conv_ref(const cnn_cuda_conv_desc *d, int oh, int ow, const float *x, const float *w,
                     const float *b, float *y, const float *dy, float *dx, float *dw, float *db)
{
    int cg = d->c / d->group, og = d->o / d->group;
    size_t nx = (size_t)d->n * d->c * d->h * d->w, nw = (size_t)d->o * cg * d->kh * d->kw;
    double *ax = calloc(nx, sizeof(double)), *aw = calloc(nw, sizeof(double));
    double *ab = calloc((size_t)d->o, sizeof(double));
    for (int n = 0; n < d->n; n++)
        for (int o = 0; o < d->o; o++)
            for (int oy = 0; oy < oh; oy++)
                for (int ox = 0; ox < ow; ox++) {
                    size_t yi = (((size_t)n * d->o + o) * oh + oy) * ow + ox;
                    double s = b[o], g = dy[yi];
                    ab[o] += g;
                    for (int c = 0; c < cg; c++)
                        for (int ki = 0; ki < d->kh; ki++)
                            for (int kj = 0; kj < d->kw; kj++) {
                                int iy = oy * d->sh - d->ph + ki * d->dh;
                                int ix = ox * d->sw - d->pw + kj * d->dw;
                                if (iy < 0 || iy >= d->h || ix < 0 || ix >= d->w) continue;
                                int ch = (o / og) * cg + c;
                                size_t xi = (((size_t)n * d->c + ch) * d->h + iy) * d->w + ix;
                                size_t wi = (((size_t)o * cg + c) * d->kh + ki) * d->kw + kj;
                                s += (double)x[xi] * w[wi];
                                ax[xi] += g * w[wi];
                                aw[wi] += g * x[xi];
                            }
                    y[yi] = (float)s;
                }
    for (size_t i = 0; i < nx; i++) dx[i] = (float)ax[i];
    for (size_t i = 0; i < nw; i++) dw[i] = (float)(dw[i] + aw[i]);
    for (int o = 0; o < d->o; o++) db[o] = (float)(db[o] + ab[o]);
    free(ax);
    free(aw);
    free(ab);
}

static void conv_case(const cnn_cuda_conv_desc *d, const char *name, uint64_t seed)
{
    cnn_cuda_conv *cv = NULL;
    OK(cnn_cuda_conv_create(ctx, d, &cv));
    int oh, ow;
    cnn_cuda_conv_out_size(cv, &oh, &ow);
    size_t nx = (size_t)d->n * d->c * d->h * d->w, ny = (size_t)d->n * d->o * oh * ow;
    size_t nw = (size_t)d->o * (d->c / d->group) * d->kh * d->kw;
    float *x = rnd(nx, -1, 1, seed), *w = rnd(nw, -0.5, 0.5, seed + 1);
    float *b = rnd((size_t)d->o, -1, 1, seed + 2), *dy = rnd(ny, -1, 1, seed + 3);
    float *dw0 = rnd(nw, -1, 1, seed + 4), *db0 = rnd((size_t)d->o, -1, 1, seed + 5);
    float *y = hmalloc(ny * sizeof(float)), *dx = hmalloc(nx * sizeof(float));
    float *dw = hcopy(dw0, nw), *db = hcopy(db0, (size_t)d->o);
    conv_ref(d, oh, ow, x, w, b, y, dy, dx, dw, db);

    float *gx = up(x, nx), *gw = up(w, nw), *gdy = up(dy, ny);
    float *gy = poisoned(ny), *gdx = poisoned(nx), *gdw = up(dw0, nw), *gdb = up(db0, d->o);
    OK(cnn_cuda_conv_forward(ctx, cv, gx, gw, up(b, d->o), gy));
    OK(cnn_cuda_conv_backward_data(ctx, cv, gw, gdy, gdx));
    OK(cnn_cuda_conv_backward_filter(ctx, cv, gx, gdy, true, gdw));
    OK(cnn_cuda_conv_backward_bias(ctx, cv, gdy, true, gdb));
    char what[96], desc[256];
    printf("  conv %s: %s\n", name, cnn_cuda_conv_describe(cv, desc, sizeof desc));
    snprintf(what, sizeof what, "conv %s forward", name);
    compare(what, down(gy, ny), y, ny, CONV_TOL);
    snprintf(what, sizeof what, "conv %s backward data", name);
    compare(what, down(gdx, nx), dx, nx, CONV_TOL);
    snprintf(what, sizeof what, "conv %s backward filter (+=)", name);
    compare(what, down(gdw, nw), dw, nw, CONV_TOL);
    snprintf(what, sizeof what, "conv %s backward bias (+=)", name);
    compare(what, down(gdb, d->o), db, d->o, 1e-5);
    /* Overwriting forms: poisoned outputs. */
    float *gdw2 = poisoned(nw), *gdb2 = poisoned(d->o), *gy2 = poisoned(ny);
    float *dwz = hmalloc(nw * sizeof(float)), *dbz = hmalloc(d->o * sizeof(float));
    conv_ref(d, oh, ow, x, w, b, y, dy, dx, dwz, dbz);
    OK(cnn_cuda_conv_backward_filter(ctx, cv, gx, gdy, false, gdw2));
    OK(cnn_cuda_conv_backward_bias(ctx, cv, gdy, false, gdb2));
    OK(cnn_cuda_conv_forward(ctx, cv, gx, gw, NULL, gy2));
    snprintf(what, sizeof what, "conv %s backward filter (=)", name);
    compare(what, down(gdw2, nw), dwz, nw, CONV_TOL);
    snprintf(what, sizeof what, "conv %s backward bias (=)", name);
    compare(what, down(gdb2, d->o), dbz, d->o, 1e-5);
    float *yb = hcopy(y, ny);
    for (size_t i = 0; i < ny; i++) yb[i] -= b[i / ((size_t)oh * ow) % d->o];
    snprintf(what, sizeof what, "conv %s forward, no bias", name);
    compare(what, down(gy2, ny), yb, ny, CONV_TOL);
    cnn_cuda_conv_free(cv);
}

START_TEST(test_conv)
{
    cnn_cuda_conv_desc a = {4, 6, 13, 11, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1};
    cnn_cuda_conv_desc b = {3, 5, 17, 17, 7, 5, 5, 0, 0, 2, 2, 1, 1, 1};
    cnn_cuda_conv_desc c = {2, 8, 12, 10, 6, 3, 3, 2, 1, 1, 2, 2, 2, 2};
    cnn_cuda_conv_desc d = {5, 16, 7, 7, 32, 1, 1, 0, 0, 1, 1, 1, 1, 1};
    cnn_cuda_conv_desc e = {2, 3, 35, 35, 16, 11, 11, 0, 0, 4, 4, 1, 1, 1}; /* conv1-like */
    conv_case(&a, "3x3 pad 1", 100);
    conv_case(&b, "5x5 stride 2", 200);
    conv_case(&c, "group 2 dilation 2", 300);
    conv_case(&d, "1x1", 400);
    conv_case(&e, "11x11 stride 4", 500);
    /* Deterministic mode: two backward-filter runs agree bit for bit. */
    cnn_cuda_ctx_set_deterministic(ctx, true);
    conv_case(&a, "3x3 deterministic", 600);
    cnn_cuda_conv *cv;
    OK(cnn_cuda_conv_create(ctx, &b, &cv));
    int oh, ow;
    cnn_cuda_conv_out_size(cv, &oh, &ow);
    size_t nx = (size_t)b.n * b.c * b.h * b.w, ny = (size_t)b.n * b.o * oh * ow;
    size_t nw = (size_t)b.o * b.c * b.kh * b.kw;
    float *gx = up(rnd(nx, -1, 1, 7), nx), *gdy = up(rnd(ny, -1, 1, 8), ny);
    float *w1 = poisoned(nw), *w2 = poisoned(nw);
    OK(cnn_cuda_conv_backward_filter(ctx, cv, gx, gdy, false, w1));
    OK(cnn_cuda_conv_backward_filter(ctx, cv, gx, gdy, false, w2));
    same_bits("deterministic backward filter x2", down(w1, nw), down(w2, nw), nw);
    cnn_cuda_conv_free(cv);
    cnn_cuda_ctx_set_deterministic(ctx, false);
    /* Bad descriptions are errors, not crashes. */
    cnn_cuda_conv_desc bad = a;
    bad.group = 4; /* 6 channels */
    ck_assert_int_eq(cnn_cuda_conv_create(ctx, &bad, &cv), CNN_ERR_ARG);
    ck_assert_ptr_null(cv);
    bad = a;
    bad.kh = 40;
    ck_assert_int_ne(cnn_cuda_conv_create(ctx, &bad, &cv), CNN_OK);
    printf("  workspace: %zu bytes allocated, limit %zu\n", cnn_cuda_ctx_workspace_size(ctx),
           cnn_cuda_ctx_workspace_limit(ctx));
    ck_assert(cnn_cuda_ctx_workspace_size(ctx) <= cnn_cuda_ctx_workspace_limit(ctx));
    release_all();
}
END_TEST

START_TEST(test_conv_budget)
{
    /* A zero budget still finds an algorithm needing no workspace. */
    size_t old = cnn_cuda_ctx_workspace_limit(ctx);
    cnn_cuda_ctx_set_workspace_limit(ctx, 0);
    cnn_cuda_conv_desc a = {2, 4, 9, 9, 6, 3, 3, 1, 1, 1, 1, 1, 1, 1};
    conv_case(&a, "3x3 no workspace", 700);
    cnn_cuda_ctx_set_workspace_limit(ctx, old);
    release_all();
}
END_TEST

/* ---- pooling, LRN --------------------------------------------------------- */

/* Caffe's pooled size: ceil, then the last window must start in the image. */
static int pooled(int in, int k, int p, int s)
{
    int o = (int)ceil((double)(in + 2 * p - k) / s) + 1;
    if (p > 0 && (o - 1) * s >= in + p) o--;
    return o;
}

static void pool_case(int planes, int h, int w, int k, int s, int p, uint64_t seed)
{
    cnn_k_pool_geom g = {planes, h, w, pooled(h, k, p, s), pooled(w, k, p, s), k, k, s, s, p, p};
    size_t ni = (size_t)planes * h * w, no = (size_t)planes * g.oh * g.ow;
    float *x = rnd(ni, -1, 1, seed), *dy = rnd(no, -1, 1, seed + 1);
    float *y = hmalloc(no * 4), *mask = hmalloc(no * 4), *dx = hmalloc(ni * 4);
    int *arg = hmalloc(no * sizeof(int));
    float *gx = up(x, ni), *gdy = up(dy, no), *gy = poisoned(no), *gmask = poisoned(no);
    float *gdx = poisoned(ni);
    int *garg = dmalloc(no * sizeof(int));
    char what[96];
    cnn_k_maxpool_fwd(&g, x, y, arg, mask);
    cnn_k_maxpool_bwd(&g, dy, arg, dx);
    OK(cnn_cuda_maxpool_fwd(ctx, &g, gx, gy, garg, gmask));
    OK(cnn_cuda_maxpool_bwd(ctx, &g, gdy, garg, gdx));
    snprintf(what, sizeof what, "maxpool k%d s%d p%d %dx%d fwd", k, s, p, h, w);
    compare(what, down(gy, no), y, no, 0);
    int *ga = down_int(garg, no);
    for (size_t i = 0; i < no; i++) ck_assert_int_eq(ga[i], arg[i]);
    same_bits("  maxpool mask", down(gmask, no), mask, no);
    snprintf(what, sizeof what, "maxpool k%d s%d p%d bwd", k, s, p);
    compare(what, down(gdx, ni), dx, ni, 1e-6);
    float *gy2 = poisoned(no), *gdx2 = poisoned(ni);
    cnn_k_avepool_fwd(&g, x, y);
    cnn_k_avepool_bwd(&g, dy, dx);
    OK(cnn_cuda_avepool_fwd(ctx, &g, gx, gy2));
    OK(cnn_cuda_avepool_bwd(ctx, &g, gdy, gdx2));
    snprintf(what, sizeof what, "avepool k%d s%d p%d %dx%d fwd", k, s, p, h, w);
    compare(what, down(gy2, no), y, no, 1e-6);
    snprintf(what, sizeof what, "avepool k%d s%d p%d bwd", k, s, p);
    compare(what, down(gdx2, ni), dx, ni, 1e-6);
}

START_TEST(test_pool)
{
    pool_case(12, 13, 13, 3, 2, 0, 1);  /* AlexNet-like, ceil size */
    pool_case(10, 16, 16, 2, 2, 0, 2);
    pool_case(6, 11, 9, 3, 2, 1, 3);    /* padded: clipped divisor */
    pool_case(4, 10, 10, 2, 3, 1, 4);   /* stride > kernel */
    pool_case(3, 8, 8, 8, 1, 0, 5);     /* global */
    pool_case(5, 7, 7, 3, 1, 1, 6);
    release_all();
}
END_TEST

static void lrn_case(cnn_k_lrn_desc d, const char *name, uint64_t seed)
{
    size_t n = (size_t)d.n * d.c * d.h * d.w;
    float *x = rnd(n, -2, 2, seed), *dy = rnd(n, -1, 1, seed + 1);
    float *scale = hmalloc(n * 4), *y = hmalloc(n * 4), *dx = hmalloc(n * 4);
    float *ws = hmalloc(cnn_k_lrn_ws_floats(&d, 1) * 4);
    cnn_k_lrn_fwd(&d, x, scale, y, ws, 1);
    cnn_k_lrn_bwd(&d, x, scale, dy, dx, ws, 1);
    float *gx = up(x, n), *gs = poisoned(n), *gy = poisoned(n), *gdx = poisoned(n);
    OK(cnn_cuda_lrn_fwd(ctx, &d, gx, gs, gy));
    OK(cnn_cuda_lrn_bwd(ctx, &d, gx, gs, up(dy, n), gdx));
    char what[96];
    snprintf(what, sizeof what, "lrn %s scale", name);
    compare(what, down(gs, n), scale, n, 1e-6);
    snprintf(what, sizeof what, "lrn %s fwd", name);
    compare(what, down(gy, n), y, n, 1e-5);
    snprintf(what, sizeof what, "lrn %s bwd", name);
    compare(what, down(gdx, n), dx, n, 1e-5);
}

START_TEST(test_lrn)
{
    lrn_case((cnn_k_lrn_desc){3, 12, 7, 9, 5, 0.5f, 0.75f, 2.f, false}, "across", 10);
    lrn_case((cnn_k_lrn_desc){2, 7, 6, 5, 3, 0.3f, 0.6f, 1.f, false}, "across beta 0.6", 20);
    lrn_case((cnn_k_lrn_desc){2, 4, 9, 11, 3, 0.5f, 0.75f, 1.f, true}, "within", 30);
    lrn_case((cnn_k_lrn_desc){2, 3, 8, 8, 5, 0.9f, 0.5f, 1.f, true}, "within size 5", 40);
    release_all();
}
END_TEST

/* ---- activations, dropout ------------------------------------------------- */

START_TEST(test_activations)
{
    size_t n = 65537;
    float *x = rnd(n, -3, 3, 50), *dy = rnd(n, -1, 1, 51);
    float *gx = up(x, n), *gdy = up(dy, n);
    float *y = hmalloc(n * 4), *dx = hmalloc(n * 4);
    for (int s = 0; s < 2; s++) {
        float slope = s ? 0.1f : 0.f;
        float *gy = poisoned(n), *gdx = poisoned(n);
        cnn_k_relu_forward(n, slope, x, y);
        cnn_k_relu_backward(n, slope, x, dy, dx);
        OK(cnn_cuda_relu_forward(ctx, n, slope, gx, gy));
        OK(cnn_cuda_relu_backward(ctx, n, slope, gx, gdy, gdx));
        compare(s ? "leaky relu fwd" : "relu fwd", down(gy, n), y, n, 0);
        compare(s ? "leaky relu bwd" : "relu bwd", down(gdx, n), dx, n, 0);
    }
    float *gy = poisoned(n), *gdx = poisoned(n);
    cnn_k_sigmoid_forward(n, x, y);
    OK(cnn_cuda_sigmoid_forward(ctx, n, gx, gy));
    compare("sigmoid fwd", down(gy, n), y, n, 1e-6);
    float *gyc = up(y, n);
    cnn_k_sigmoid_backward(n, y, dy, dx);
    OK(cnn_cuda_sigmoid_backward(ctx, n, gyc, gdy, gdx));
    compare("sigmoid bwd", down(gdx, n), dx, n, 1e-6);
    gy = poisoned(n);
    gdx = poisoned(n);
    cnn_k_tanh_forward(n, x, y);
    OK(cnn_cuda_tanh_forward(ctx, n, gx, gy));
    compare("tanh fwd", down(gy, n), y, n, 1e-6);
    gyc = up(y, n);
    cnn_k_tanh_backward(n, y, dy, dx);
    OK(cnn_cuda_tanh_backward(ctx, n, gyc, gdy, gdx));
    compare("tanh bwd", down(gdx, n), dx, n, 1e-6);
    gy = poisoned(n);
    gdx = poisoned(n);
    cnn_k_elu_forward(n, 0.8f, x, y);
    OK(cnn_cuda_elu_forward(ctx, n, 0.8f, gx, gy));
    compare("elu fwd", down(gy, n), y, n, 1e-6);
    gyc = up(y, n);
    cnn_k_elu_backward(n, 0.8f, x, y, dy, dx);
    OK(cnn_cuda_elu_backward(ctx, n, 0.8f, gx, gyc, gdy, gdx));
    compare("elu bwd", down(gdx, n), dx, n, 1e-6);
    /* In place: dx over dy. */
    float *inplace = up(dy, n);
    cnn_k_relu_backward(n, 0.2f, x, dy, dx);
    OK(cnn_cuda_relu_backward(ctx, n, 0.2f, gx, inplace, inplace));
    compare("leaky relu bwd in place", down(inplace, n), dx, n, 0);
    release_all();
}
END_TEST

/* PReLU over nb x c x dim, per-channel and shared slopes. */
static void check_prelu(int nb, int c, size_t dim)
{
    size_t n = (size_t)nb * c * dim;
    float *x = rnd(n, -2, 2, 60), *dy = rnd(n, -1, 1, 61), *sl = rnd(c, 0.05f, 0.5f, 62);
    float *y = hmalloc(n * 4), *dx = hmalloc(n * 4);
    for (int shared = 0; shared < 2; shared++) {
        int ns = shared ? 1 : c;
        float *ds0 = rnd(ns, -1, 1, 63), *ds = hcopy(ds0, ns);
        float *gy = poisoned(n), *gdx = poisoned(n), *gds = up(ds0, ns), *gsl = up(sl, c);
        float *gx = up(x, n), *gdy = up(dy, n);
        cnn_k_prelu_forward(nb, c, dim, sl, shared, x, y);
        cnn_k_prelu_backward(nb, c, dim, sl, shared, x, dy, dx);
        cnn_k_prelu_slope_grad(nb, c, dim, shared, x, dy, ds);
        OK(cnn_cuda_prelu_forward(ctx, nb, c, dim, gsl, shared, gx, gy));
        OK(cnn_cuda_prelu_backward(ctx, nb, c, dim, gsl, shared, gx, gdy, gdx));
        OK(cnn_cuda_prelu_slope_grad(ctx, nb, c, dim, shared, gx, gdy, gds));
        compare(shared ? "prelu shared fwd" : "prelu fwd", down(gy, n), y, n, 0);
        compare(shared ? "prelu shared bwd" : "prelu bwd", down(gdx, n), dx, n, 0);
        compare(shared ? "prelu shared slope grad (+=)" : "prelu slope grad (+=)",
                down(gds, ns), ds, ns, 1e-6);
    }
    release_all();
}

/* Also more channels than the slope-gradient kernel has blocks (1024). */
START_TEST(test_prelu)
{
    check_prelu(3, 7, 37);
    check_prelu(2, 1500, 5);
}
END_TEST

START_TEST(test_philox_dropout)
{
    size_t n = 1000003;
    uint64_t seed = 0xfeedface12345678ULL, off = 3;
    float *m = hmalloc(n * 4), *u = hmalloc(n * 4);
    cnn_k_dropout_mask(n, seed, off, 0.6f, 1.f / 0.6f, m);
    cnn_k_philox_uniform(n, seed, off, u);
    float *gm = poisoned(n), *gu = poisoned(n);
    OK(cnn_cuda_dropout_mask(ctx, n, up((const float *)&seed, 2), off, 0.6f, 1.f / 0.6f, gm));
    OK(cnn_cuda_philox_uniform(ctx, n, seed, off, gu));
    same_bits("philox dropout mask CPU == GPU", down(gm, n), m, n);
    same_bits("philox uniform CPU == GPU", down(gu, n), u, n);
    size_t small = 7; /* a partial last block */
    float *gm7 = poisoned(small);
    const uint64_t nine = 9;
    OK(cnn_cuda_dropout_mask(ctx, small, up((const float *)&nine, 2), 0, 0.5f, 2.f, gm7));
    cnn_k_dropout_mask(small, 9, 0, 0.5f, 2.f, m);
    same_bits("philox mask n=7", down(gm7, small), m, small);
    float *x = rnd(n, -1, 1, 70), *y = hmalloc(n * 4), *gy = poisoned(n);
    cnn_k_dropout_mask(n, seed, off, 0.6f, 1.f / 0.6f, m);
    cnn_k_dropout_apply(n, x, m, y);
    OK(cnn_cuda_dropout_apply(ctx, n, up(x, n), gm, gy));
    compare("dropout apply", down(gy, n), y, n, 0);
    release_all();
}
END_TEST

/* ---- softmax, losses, accuracy -------------------------------------------- */

static void softmax_case(int outer, int c, int inner, uint64_t seed)
{
    size_t n = (size_t)outer * c * inner;
    float *x = rnd(n, -5, 5, seed), *dy = rnd(n, -1, 1, seed + 1);
    float *y = hmalloc(n * 4), *dx = hmalloc(n * 4);
    cnn_k_softmax_forward(outer, c, inner, x, y);
    cnn_k_softmax_backward(outer, c, inner, y, dy, dx);
    float *gy = poisoned(n), *gdx = poisoned(n);
    OK(cnn_cuda_softmax_forward(ctx, outer, c, inner, up(x, n), gy));
    char what[96];
    snprintf(what, sizeof what, "softmax %dx%dx%d fwd", outer, c, inner);
    compare(what, down(gy, n), y, n, 1e-5);
    OK(cnn_cuda_softmax_backward(ctx, outer, c, inner, up(y, n), up(dy, n), gdx));
    snprintf(what, sizeof what, "softmax %dx%dx%d bwd", outer, c, inner);
    compare(what, down(gdx, n), dx, n, 1e-5);
}

START_TEST(test_softmax)
{
    softmax_case(7, 1000, 1, 80);
    softmax_case(64, 10, 1, 81);
    softmax_case(3, 5, 17, 82);
    release_all();
}
END_TEST

/* Labels in [0, c) as floats, with every fifth one `ignore` when ign. */
static float *labels(size_t cols, int c, bool ign, int ignore, uint64_t seed)
{
    float *l = hmalloc(cols * 4);
    cnn_rng r;
    cnn_rng_seed(&r, seed);
    for (size_t i = 0; i < cols; i++)
        l[i] = ign && i % 5 == 2 ? (float)ignore : (float)cnn_rng_below(&r, (uint32_t)c);
    return l;
}

START_TEST(test_softmax_loss)
{
    int outer = 6, c = 11, inner = 4;
    size_t n = (size_t)outer * c * inner, cols = (size_t)outer * inner;
    float *x = rnd(n, -3, 3, 90), *prob = hmalloc(n * 4);
    cnn_k_softmax_forward(outer, c, inner, x, prob);
    for (int ign = 0; ign < 2; ign++) {
        float *lab = labels(cols, c, ign, 7, 91);
        double loss;
        long valid;
        ck_assert_int_eq(cnn_k_softmax_loss_forward(outer, c, inner, prob, lab, ign, 7, &loss,
                                                    &valid), -1);
        float *gout = poisoned(2), *gp = up(prob, n), *gl = up(lab, cols);
        int *gbad = dmalloc(sizeof(int));
        OK(cnn_cuda_softmax_loss_forward(ctx, outer, c, inner, gp, gl, ign, 7, gout, gbad));
        float want[2] = {(float)loss, (float)valid};
        compare(ign ? "softmax loss fwd (ignore)" : "softmax loss fwd", down(gout, 2), want, 2,
                1e-6);
        ck_assert_int_eq(down_int(gbad, 1)[0], -1);
        float *dx = hmalloc(n * 4), *gdx = poisoned(n), *gsc = up((float[]){0.5f}, 1);
        cnn_k_softmax_loss_backward(outer, c, inner, prob, lab, ign, 7, 0.25f * 0.5f, dx);
        OK(cnn_cuda_softmax_loss_backward(ctx, outer, c, inner, gp, gl, ign, 7, 0.25f, gsc,
                                          gdx));
        compare(ign ? "softmax loss bwd (ignore)" : "softmax loss bwd", down(gdx, n), dx, n,
                1e-6);
    }
    /* A bad label is reported by index. */
    float *lab = labels(cols, c, false, 0, 92);
    lab[9] = (float)c;
    lab[13] = -1.f;
    double loss;
    long valid;
    long want_bad = cnn_k_softmax_loss_forward(outer, c, inner, prob, lab, false, 0, &loss, &valid);
    float *gout = poisoned(2);
    int *gbad = dmalloc(sizeof(int));
    OK(cnn_cuda_softmax_loss_forward(ctx, outer, c, inner, up(prob, n), up(lab, cols), false, 0,
                                     gout, gbad));
    ck_assert_int_eq(down_int(gbad, 1)[0], (int)want_bad);
    release_all();
}
END_TEST

/* The one-launch SoftmaxWithLoss forward against the CPU's softmax, loss
 * and normalisation: LeNet's shape, columns with inner > 1, ignored labels,
 * a fixed normaliser, a bad label (reported and latched once). */
static void fused_case(int outer, int c, int inner, bool ign, float norm, int bad_at,
                       uint64_t seed)
{
    size_t n = (size_t)outer * c * inner, cols = (size_t)outer * inner;
    float *x = rnd(n, -4, 4, seed), *prob = hmalloc(n * 4), *lab = labels(cols, c, ign, 7, seed);
    if (bad_at >= 0) lab[bad_at] = (float)c + 2;
    cnn_k_softmax_forward(outer, c, inner, x, prob);
    double sum;
    long valid;
    long bad = cnn_k_softmax_loss_forward(outer, c, inner, prob, lab, ign, 7, &sum, &valid);
    float den = norm > 0 ? norm : (float)valid;
    float want[3] = {(float)sum, (float)valid, den}, want_loss = want[0] / fmaxf(den, 1.f);
    float *gprob = poisoned(n), *gout = poisoned(3), *gloss = poisoned(1);
    int *gbad = dmalloc(sizeof(int)), *gfirst = dmalloc(sizeof(int));
    OK(cnn_cuda_upload(ctx, gfirst, (int[]){-1}, sizeof(int)));
    OK(cnn_cuda_softmax_loss_fused(ctx, outer, c, inner, up(x, n), up(lab, cols), ign, 7, norm,
                                   gprob, gout, gbad, gfirst, gloss));
    char what[96];
    snprintf(what, sizeof what, "fused softmax loss %dx%dx%d%s: prob", outer, c, inner,
             ign ? " (ignore)" : "");
    compare(what, down(gprob, n), prob, n, 1e-6);
    snprintf(what, sizeof what, "fused softmax loss %dx%dx%d: sum, count, normaliser", outer, c,
             inner);
    compare(what, down(gout, 3), want, 3, 1e-6);
    compare("fused softmax loss: loss", down(gloss, 1), &want_loss, 1, 1e-6);
    ck_assert_int_eq(down_int(gbad, 1)[0], (int)bad);
    ck_assert_int_eq(down_int(gfirst, 1)[0], (int)bad);
}

START_TEST(test_softmax_loss_fused)
{
    fused_case(64, 10, 1, false, 0.f, -1, 150);
    fused_case(100, 10, 1, true, 0.f, -1, 151);
    fused_case(5, 11, 37, true, 0.f, -1, 152);
    fused_case(64, 10, 1, false, 64.f, -1, 153);
    fused_case(700, 93, 1, false, 0.f, 411, 154); /* 65100 values: just fits */
    ck_assert(!cnn_cuda_softmax_loss_fits(256, 1000, 1));
    ck_assert(!cnn_cuda_softmax_loss_fits(1, 5000, 1)); /* one thread per column */
    ck_assert(cnn_cuda_softmax_loss_fused(ctx, 256, 1000, 1, NULL, NULL, false, 0, 0.f, NULL,
                                          NULL, NULL, NULL, NULL) != CNN_OK);
    release_all();
}
END_TEST

START_TEST(test_accuracy)
{
    int outer = 50, c = 10, inner = 3;
    size_t n = (size_t)outer * c * inner, cols = (size_t)outer * inner;
    float *x = rnd(n, -1, 1, 100);
    for (size_t i = 0; i < n; i += 7) x[i] = 0.5f; /* some ties */
    for (int k = 1; k <= 5; k += 4)
        for (int ign = 0; ign < 2; ign++) {
            float *lab = labels(cols, c, ign, 3, 101);
            long correct = 0, count = 0;
            float *cc = hmalloc(c * 4), *cn = hmalloc(c * 4);
            ck_assert_int_eq(
                cnn_k_accuracy(outer, c, inner, x, lab, k, ign, 3, &correct, &count, cc, cn), -1);
            float *gout = poisoned(2), *gcc = poisoned(c), *gcn = poisoned(c);
            int *gbad = dmalloc(sizeof(int));
            OK(cnn_cuda_accuracy(ctx, outer, c, inner, up(x, n), up(lab, cols), k, ign, 3, gout,
                                 gcc, gcn, gbad));
            float want[2] = {(float)correct, (float)count};
            char what[64];
            snprintf(what, sizeof what, "accuracy top-%d%s", k, ign ? " (ignore)" : "");
            compare(what, down(gout, 2), want, 2, 0);
            compare("  per-class correct", down(gcc, c), cc, c, 0);
            compare("  per-class count", down(gcn, c), cn, c, 0);
            ck_assert_int_eq(down_int(gbad, 1)[0], -1);
        }
    release_all();
}
END_TEST

START_TEST(test_sigmoid_xent)
{
    size_t n = 4099;
    float *x = rnd(n, -6, 6, 110), *t = rnd(n, 0, 1, 111);
    for (size_t i = 0; i < n; i += 9) t[i] = -1.f; /* ignored when has_ignore */
    for (int ign = 0; ign < 2; ign++) {
        double loss;
        long valid;
        cnn_k_sigmoid_xent_forward(n, x, t, ign, -1, &loss, &valid);
        float *gout = poisoned(2), *gx = up(x, n), *gt = up(t, n);
        OK(cnn_cuda_sigmoid_xent_forward(ctx, n, gx, gt, ign, -1, gout));
        float want[2] = {(float)loss, (float)valid};
        compare(ign ? "sigmoid xent fwd (ignore)" : "sigmoid xent fwd", down(gout, 2), want, 2,
                1e-6);
        float *dx = hmalloc(n * 4), *gdx = poisoned(n);
        cnn_k_sigmoid_xent_backward(n, x, t, ign, -1, 0.3f, dx);
        OK(cnn_cuda_sigmoid_xent_backward(ctx, n, gx, gt, ign, -1, 0.3f, NULL, gdx));
        compare(ign ? "sigmoid xent bwd (ignore)" : "sigmoid xent bwd", down(gdx, n), dx, n,
                1e-6);
    }
    release_all();
}
END_TEST

START_TEST(test_euclidean)
{
    size_t n = 3000;
    int num = 12;
    float *a = rnd(n, -1, 1, 120), *b = rnd(n, -1, 1, 121), *diff = hcopy(a, n);
    cnn_k_axpy(n, -1.f, b, diff);
    float want = cnn_k_dot(n, diff, diff) / (float)num / 2.f;
    float *gdiff = poisoned(n), *gout = poisoned(1);
    OK(cnn_cuda_euclidean_forward(ctx, n, num, up(a, n), up(b, n), gdiff, gout));
    compare("euclidean diff", down(gdiff, n), diff, n, 0);
    compare("euclidean loss", down(gout, 1), &want, 1, 1e-6);
    float dl = 0.7f, *dx = hmalloc(n * 4), *gdx = poisoned(n), *gdl = up(&dl, 1);
    for (int i = 0; i < 2; i++) {
        float sign = i ? -1.f : 1.f, alpha = sign * dl / (float)num;
        for (size_t j = 0; j < n; j++) dx[j] = diff[j] * alpha;
        OK(cnn_cuda_euclidean_backward(ctx, n, num, sign, gdl, gdiff, gdx));
        compare(i ? "euclidean bwd b" : "euclidean bwd a", down(gdx, n), dx, n, 0);
    }
    release_all();
}
END_TEST

/* ---- batch norm, scale ---------------------------------------------------- */

START_TEST(test_batchnorm)
{
    int nb = 5, c = 6;
    size_t s = 49, n = (size_t)nb * c * s;
    float *x = rnd(n, -2, 3, 130), *dy = rnd(n, -1, 1, 131);
    float *mean = hmalloc(c * 4), *var = hmalloc(c * 4), *xn = hmalloc(n * 4);
    float *dx = hmalloc(n * 4);
    cnn_k_bn_stats(nb, c, s, x, mean, var);
    float *gx = up(x, n), *gmean = poisoned(c), *gvar = poisoned(c);
    OK(cnn_cuda_bn_stats(ctx, nb, c, s, gx, gmean, gvar));
    compare("bn mean", down(gmean, c), mean, c, 1e-6);
    compare("bn var", down(gvar, c), var, c, 1e-6);
    /* Moving sums and inv_std as layers/batchnorm.c does them. */
    float *sm = rnd(c, -1, 1, 132), *sv = rnd(c, 0.1f, 1, 133), wt = 3.5f, frac = 0.999f;
    float *gsm = up(sm, c), *gsv = up(sv, c), *gwt = up(&wt, 1);
    size_t m = n / c;
    float corr = (float)m / (float)(m - 1);
    float *inv = hcopy(var, c);
    for (int i = 0; i < c; i++) {
        sm[i] = frac * sm[i] + mean[i];
        sv[i] = frac * sv[i] + corr * var[i];
        inv[i] = 1.f / sqrtf(var[i] + 1e-5f);
    }
    float wt2 = wt * frac + 1.f;
    float *gmean2 = up(mean, c), *ginv = up(var, c);
    OK(cnn_cuda_bn_running(ctx, c, false, frac, corr, 1e-5f, gmean2, ginv, gsm, gsv, gwt));
    compare("bn moving mean sum", down(gsm, c), sm, c, 1e-6);
    compare("bn moving var sum", down(gsv, c), sv, c, 1e-6);
    compare("bn moving weight", down(gwt, 1), &wt2, 1, 0);
    compare("bn inv_std", down(ginv, c), inv, c, 1e-6);
    /* Global statistics (TEST phase). */
    float *gm3 = poisoned(c), *gv3 = poisoned(c), *m3 = hmalloc(c * 4), *v3 = hmalloc(c * 4);
    for (int i = 0; i < c; i++) {
        m3[i] = (1.f / wt2) * sm[i];
        v3[i] = 1.f / sqrtf((1.f / wt2) * sv[i] + 1e-5f);
    }
    OK(cnn_cuda_bn_running(ctx, c, true, frac, corr, 1e-5f, gm3, gv3, gsm, gsv, gwt));
    compare("bn global mean", down(gm3, c), m3, c, 1e-6);
    compare("bn global inv_std", down(gv3, c), v3, c, 1e-6);
    float *gxn = poisoned(n);
    cnn_k_bn_normalize(nb, c, s, x, mean, inv, xn);
    OK(cnn_cuda_bn_normalize(ctx, nb, c, s, gx, up(mean, c), up(inv, c), gxn));
    compare("bn normalize", down(gxn, n), xn, n, 1e-6);
    float *gdx = poisoned(n);
    cnn_k_bn_backward(nb, c, s, xn, dy, inv, dx);
    OK(cnn_cuda_bn_backward(ctx, nb, c, s, up(xn, n), up(dy, n), up(inv, c), gdx));
    compare("bn backward", down(gdx, n), dx, n, 1e-5);
    float *inplace = up(dy, n);
    OK(cnn_cuda_bn_backward(ctx, nb, c, s, up(xn, n), inplace, up(inv, c), inplace));
    compare("bn backward in place", down(inplace, n), dx, n, 1e-5);
    release_all();
}
END_TEST

START_TEST(test_scale)
{
    int outer = 4, dim = 9;
    size_t inner = 31, n = (size_t)outer * dim * inner;
    float *x = rnd(n, -2, 2, 140), *dy = rnd(n, -1, 1, 141);
    float *s = rnd(dim, -1, 1, 142), *b = rnd(dim, -1, 1, 143), *y = hmalloc(n * 4);
    float *gx = up(x, n), *gdy = up(dy, n);
    for (int wb = 0; wb < 2; wb++) {
        float *gy = poisoned(n);
        cnn_k_bcast_scale(outer, dim, inner, x, s, wb ? b : NULL, y);
        OK(cnn_cuda_bcast_scale(ctx, outer, dim, inner, gx, up(s, dim), wb ? up(b, dim) : NULL,
                                gy));
        compare(wb ? "scale with bias" : "scale", down(gy, n), y, n, 1e-6);
    }
    float *yb = hcopy(x, n), *gyb = up(x, n), *ones = hmalloc(dim * 4);
    for (int d = 0; d < dim; d++) ones[d] = 1.f;
    cnn_k_bcast_scale(outer, dim, inner, x, ones, b, yb);
    OK(cnn_cuda_add_bias(ctx, outer, dim, inner, up(b, dim), gyb));
    compare("add bias", down(gyb, n), yb, n, 0);
    for (int acc = 0; acc < 2; acc++) {
        float *ds0 = rnd(dim, -1, 1, 144), *ds = hcopy(ds0, dim);
        float *gds = acc ? up(ds0, dim) : poisoned(dim);
        cnn_k_bcast_scale_grad(outer, dim, inner, x, dy, acc, ds);
        OK(cnn_cuda_bcast_scale_grad(ctx, outer, dim, inner, gx, gdy, acc, gds));
        compare(acc ? "scale grad (+=)" : "scale grad (=)", down(gds, dim), ds, dim, 1e-6);
    }
    for (int acc = 0; acc < 2; acc++) {
        float *db = acc ? rnd(dim, -1, 1, 145) : hmalloc(dim * 4);
        float *gdb = acc ? up(db, dim) : poisoned(dim);
        if (!acc) memset(db, 0, dim * 4);
        cnn_k_bcast_bias_grad(outer, dim, inner, dy, db);
        OK(cnn_cuda_bcast_bias_grad(ctx, outer, dim, inner, gdy, acc, gdb));
        compare(acc ? "bias grad (+=)" : "bias grad (=)", down(gdb, dim), db, dim, 1e-6);
    }
    release_all();
}
END_TEST

/* ---- structure: concat, eltwise, split ------------------------------------ */

START_TEST(test_concat)
{
    size_t outer = 5, c1 = 3 * 16, c2 = 4 * 16, ct = c1 + c2;
    float *a = rnd(outer * c1, -1, 1, 150), *b = rnd(outer * c2, -1, 1, 151);
    float *y = hmalloc(outer * ct * 4);
    for (size_t o = 0; o < outer; o++) {
        memcpy(y + o * ct, a + o * c1, c1 * 4);
        memcpy(y + o * ct + c1, b + o * c2, c2 * 4);
    }
    float *gy = poisoned(outer * ct), *ga = up(a, outer * c1), *gb = up(b, outer * c2);
    OK(cnn_cuda_concat_copy(ctx, outer, c1, ct, 0, true, ga, gy));
    OK(cnn_cuda_concat_copy(ctx, outer, c2, ct, c1, true, gb, gy));
    compare("concat forward", down(gy, outer * ct), y, outer * ct, 0);
    float *ga2 = poisoned(outer * c1), *gb2 = poisoned(outer * c2);
    OK(cnn_cuda_concat_copy(ctx, outer, c1, ct, 0, false, ga2, gy));
    OK(cnn_cuda_concat_copy(ctx, outer, c2, ct, c1, false, gb2, gy));
    compare("concat backward 0", down(ga2, outer * c1), a, outer * c1, 0);
    compare("concat backward 1", down(gb2, outer * c2), b, outer * c2, 0);
    ck_assert_int_ne(cnn_cuda_concat_copy(ctx, outer, c2, ct, c1 + 1, true, gb, gy), CNN_OK);
    release_all();
}
END_TEST

START_TEST(test_eltwise)
{
    size_t n = 5003;
    enum { K = 3 };
    float *x[K], *gxs[K], coeff[K] = {0.5f, -1.5f, 2.f};
    for (int k = 0; k < K; k++) {
        x[k] = rnd(n, -2, 2, 160 + k);
        gxs[k] = up(x[k], n);
    }
    float *dy = rnd(n, -1, 1, 170), *gdy = up(dy, n);
    const char *names[] = {"prod", "sum", "max"};
    for (int op = 0; op < 3; op++) {
        float *y = hmalloc(n * 4);
        int *arg = hmalloc(n * sizeof(int));
        for (size_t i = 0; i < n; i++) {
            float v = op == 1 ? coeff[0] * x[0][i] : x[0][i];
            arg[i] = 0;
            for (int k = 1; k < K; k++) {
                if (op == 0) v *= x[k][i];
                if (op == 1) v += coeff[k] * x[k][i];
                if (op == 2 && x[k][i] > v) v = x[k][i], arg[i] = k;
            }
            y[i] = v;
        }
        float *gy = poisoned(n);
        int *garg = dmalloc(n * sizeof(int));
        OK(cnn_cuda_eltwise_forward(ctx, (cnn_cuda_elt_op)op, K, (const float *const *)gxs,
                                    coeff, n, gy, garg));
        char what[64];
        snprintf(what, sizeof what, "eltwise %s fwd", names[op]);
        compare(what, down(gy, n), y, n, 1e-6);
        if (op == 2) {
            int *ga = down_int(garg, n);
            for (size_t i = 0; i < n; i++) ck_assert_int_eq(ga[i], arg[i]);
        }
        for (int stable = 0; stable < (op == 0 ? 2 : 1); stable++)
            for (int w = 0; w < K; w++) {
                float *dx = hmalloc(n * 4), *gdx = poisoned(n);
                for (size_t i = 0; i < n; i++) {
                    if (op == 0 && stable) {
                        float v = dy[i];
                        for (int j = 0; j < K; j++)
                            if (j != w) v *= x[j][i];
                        dx[i] = v;
                    } else if (op == 0) {
                        dx[i] = dy[i] * y[i] / x[w][i];
                    } else if (op == 1) {
                        dx[i] = coeff[w] * dy[i];
                    } else {
                        dx[i] = arg[i] == w ? dy[i] : 0.f;
                    }
                }
                OK(cnn_cuda_eltwise_backward(ctx, (cnn_cuda_elt_op)op, K,
                                             (const float *const *)gxs, coeff, n, up(y, n), gdy,
                                             garg, w, stable, gdx));
                snprintf(what, sizeof what, "eltwise %s%s bwd %d", names[op],
                         stable ? " stable" : "", w);
                compare(what, down(gdx, n), dx, n, 1e-6);
            }
    }
    /* Split: the sum of three top gradients, one of them the output. */
    float *want = hcopy(x[0], n);
    cnn_k_axpy(n, 1.f, x[1], want);
    cnn_k_axpy(n, 1.f, x[2], want);
    float *acc = up(x[0], n);
    const float *tops[K] = {acc, gxs[1], gxs[2]};
    OK(cnn_cuda_split_accumulate(ctx, K, tops, n, acc));
    compare("split accumulate", down(acc, n), want, n, 0);
    release_all();
}
END_TEST

/* ---- solver updates ------------------------------------------------------- */

START_TEST(test_solver_updates)
{
    size_t n = 10007;
    for (int type = CNN_SOLVER_SGD; type <= CNN_SOLVER_ADAMW; type++)
        for (int variant = 0; variant < 3; variant++) {
            /* 0: L2 decay, 1: L1 decay, 2: no decay with iter_size 2. */
            cnn_update_config c = {.type = (cnn_solver_type)type,
                                   .reg = variant == 1 ? CNN_REG_L1 : CNN_REG_L2,
                                   .momentum = type >= CNN_SOLVER_ADAM ? 0.9f : 0.85f,
                                   .momentum2 = 0.999f,
                                   .delta = 1e-6f,
                                   .rms_decay = 0.95f};
            float rate = 0.01f, decay = variant == 2 ? 0.f : 5e-4f, scale = variant == 2 ? .5f : 1;
            int iter = 6;
            float *w = rnd(n, -1, 1, 180), *g = rnd(n, -1, 1, 181);
            float *h0 = rnd(n, 0.01f, 1, 182), *h1 = rnd(n, 0.01f, 1, 183);
            float *gw = up(w, n), *gg = up(g, n), *gh0 = up(h0, n), *gh1 = up(h1, n);
            for (size_t i = 0; i < n; i++) g[i] *= scale;
            if (type != CNN_SOLVER_ADAMW) cnn_solver_regularize(c.reg, decay, n, w, g);
            cnn_solver_update(&c, n, rate, decay, iter, w, g, h0, h1);
            cnn_cuda_update u = {.rule = (cnn_cuda_update_rule)type,
                                 .l1 = c.reg == CNN_REG_L1,
                                 .momentum = c.momentum,
                                 .momentum2 = c.momentum2,
                                 .delta = c.delta,
                                 .rms_decay = c.rms_decay,
                                 .rate = rate,
                                 .decay = decay,
                                 .grad_scale = scale,
                                 .iter = iter};
            OK(cnn_cuda_solver_update(ctx, &u, n, gw, gg, gh0, gh1));
            char what[64];
            const char *v = variant == 0 ? "L2" : variant == 1 ? "L1" : "iter_size 2";
            snprintf(what, sizeof what, "%s %s: weights", cnn_solver_type_names[type], v);
            compare(what, down(gw, n), w, n, 1e-6);
            snprintf(what, sizeof what, "%s %s: update", cnn_solver_type_names[type], v);
            compare(what, down(gg, n), g, n, 1e-6);
            snprintf(what, sizeof what, "%s %s: history 0", cnn_solver_type_names[type], v);
            compare(what, down(gh0, n), h0, n, 1e-6);
            if (cnn_solver_history_slots((cnn_solver_type)type) == 2) {
                snprintf(what, sizeof what, "%s %s: history 1", cnn_solver_type_names[type], v);
                compare(what, down(gh1, n), h1, n, 1e-6);
            }
            release_all();
        }
}
END_TEST

/* ---- context -------------------------------------------------------------- */

START_TEST(test_context)
{
    char buf[256];
    OK(cnn_cuda_describe(cnn_cuda_ctx_device(ctx), buf, sizeof buf));
    printf("  %s\n", buf);
    ck_assert_ptr_nonnull(cnn_cuda_ctx_stream(ctx));
    ck_assert_int_eq(cnn_cuda_ctx_workspace_limit(ctx), CNN_CUDA_DEFAULT_WORKSPACE);
    /* Debug mode: every launch synchronised, results unchanged. */
    bool was = cnn_cuda_ctx_sync_debug(ctx);
    cnn_cuda_ctx_set_sync_debug(ctx, true);
    size_t n = 1000;
    float *x = rnd(n, -1, 1, 190), *y = hmalloc(n * 4), *gy = poisoned(n);
    cnn_k_relu_forward(n, 0.f, x, y);
    OK(cnn_cuda_relu_forward(ctx, n, 0.f, up(x, n), gy));
    compare("relu in debug mode", down(gy, n), y, n, 0);
    cnn_cuda_ctx_set_sync_debug(ctx, was);
    /* A second context on the same device (logical devices) works alongside. */
    cnn_cuda_ctx *other;
    OK(cnn_cuda_ctx_create(cnn_cuda_ctx_device(ctx), &other));
    ck_assert_ptr_ne(cnn_cuda_ctx_stream(other), cnn_cuda_ctx_stream(ctx));
    cnn_cuda_ctx_free(other);
    ck_assert_int_eq(cnn_cuda_ctx_create(-1, &other), CNN_ERR_ARG);
    ck_assert_ptr_null(other);
    cnn_cuda_ctx_free(NULL);
    release_all();
}
END_TEST

int main(void)
{
    if (cnn_cuda_device_count() == 0) {
        printf("check_gpu_ops: SKIP (no CUDA device or no CUDA build)\n");
        return 0;
    }
    if (cnn_cuda_ctx_create(0, &ctx) != CNN_OK) {
        printf("check_gpu_ops: cannot create a CUDA context: %s\n", cnn_error_message());
        return 1;
    }
    Suite *s = suite_create("gpu_ops");
    TCase *tc = tcase_create("ops");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_context);
    tcase_add_test(tc, test_blas);
    tcase_add_test(tc, test_conv);
    tcase_add_test(tc, test_conv_budget);
    tcase_add_test(tc, test_pool);
    tcase_add_test(tc, test_lrn);
    tcase_add_test(tc, test_activations);
    tcase_add_test(tc, test_prelu);
    tcase_add_test(tc, test_philox_dropout);
    tcase_add_test(tc, test_softmax);
    tcase_add_test(tc, test_softmax_loss);
    tcase_add_test(tc, test_softmax_loss_fused);
    tcase_add_test(tc, test_accuracy);
    tcase_add_test(tc, test_sigmoid_xent);
    tcase_add_test(tc, test_euclidean);
    tcase_add_test(tc, test_batchnorm);
    tcase_add_test(tc, test_scale);
    tcase_add_test(tc, test_concat);
    tcase_add_test(tc, test_eltwise);
    tcase_add_test(tc, test_solver_updates);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK); /* CUDA in the parent: no forked children */
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    cnn_cuda_ctx_free(ctx);
    return failed != 0;
}
