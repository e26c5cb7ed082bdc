/* im2col.c — unfolding images into columns (and back) so that convolution
 * becomes one matrix product. Handles padding, stride and dilation; the
 * batched forms lay several images side by side in one column matrix. */
#include <limits.h>
#include <stdbool.h>
#include <string.h>

#include "../kernels.h"

/* Rows are often a few floats long: keep GCC from turning the copy loops
 * into memcpy/memset calls, which cost more than the copy itself. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-tree-loop-distribute-patterns")
#endif

/* Work (in floats moved) below which the loops stay on one thread. */
#define PAR_MIN 65536
/* Images unfolded together by one job of the tap-by-tap path. */
#define IMG_TILE 8

/* Output extent of a convolution along one axis (0 when the dilated kernel
 * does not fit the padded input, or the output could not be indexed). */
static int out_size(int in, int k, int pad, int stride, int dil)
{
    long long out = cnn_k_conv_axis_of(in, k, pad, stride, dil).out;
    return out > INT_MAX ? 0 : (int)out;
}

/* For kernel column offset x0 (= kj*dil - pad), the output columns [*lo, *hi)
 * whose input column ox*stride + x0 lies inside [0, w). */
static void valid_range(int x0, int stride, int w, int ow, int *lo, int *hi)
{
    int a = x0 < 0 ? (-x0 + stride - 1) / stride : 0;
    int b = w - 1 - x0 < 0 ? 0 : (w - 1 - x0) / stride + 1;
    if (b > ow) b = ow;
    if (a > b) a = b;
    *lo = a;
    *hi = b;
}

/* One kernel tap (ki, kj): input offsets y0 = ki*dh - ph, x0 = kj*dw - pw,
 * and the output rows [ylo, yhi) and columns [xlo, xhi) that read inside
 * the image (the rest read padding). */
typedef struct {
    int y0, x0, ylo, yhi, xlo, xhi;
} tap;

static tap make_tap(int ki, int kj, int h, int w, int oh, int ow, int ph, int pw, int sh,
                    int sw, int dh, int dw)
{
    tap t = {.y0 = ki * dh - ph, .x0 = kj * dw - pw};
    valid_range(t.y0, sh, h, oh, &t.ylo, &t.yhi);
    valid_range(t.x0, sw, w, ow, &t.xlo, &t.xhi);
    return t;
}

/* Writes the (oh, ow) row of the column matrix that tap t reads from one
 * channel plane of width w. */
static inline void unfold(const float *restrict plane, int w, int oh, int ow, int sh, int sw,
                          const tap *t, float *restrict dst)
{
    for (int oy = 0; oy < t->ylo; oy++, dst += ow)
        for (int ox = 0; ox < ow; ox++) dst[ox] = 0.f;
    for (int oy = t->ylo; oy < t->yhi; oy++, dst += ow) {
        const float *row = plane + (size_t)(oy * sh + t->y0) * w;
        for (int ox = 0; ox < t->xlo; ox++) dst[ox] = 0.f;
        if (sw == 1)
            for (int ox = t->xlo; ox < t->xhi; ox++) dst[ox] = row[ox + t->x0];
        else
            for (int ox = t->xlo; ox < t->xhi; ox++) dst[ox] = row[ox * sw + t->x0];
        for (int ox = t->xhi; ox < ow; ox++) dst[ox] = 0.f;
    }
    for (int oy = t->yhi; oy < oh; oy++, dst += ow)
        for (int ox = 0; ox < ow; ox++) dst[ox] = 0.f;
}

/* Adds the column-matrix row of tap t back into its channel plane. */
static inline void fold(const float *restrict src, int w, int ow, int sh, int sw,
                        const tap *t, float *restrict plane)
{
    src += (size_t)t->ylo * ow;
    for (int oy = t->ylo; oy < t->yhi; oy++, src += ow) {
        float *row = plane + (size_t)(oy * sh + t->y0) * w;
        if (sw == 1)
            for (int ox = t->xlo; ox < t->xhi; ox++) row[ox + t->x0] += src[ox];
        else
            for (int ox = t->xlo; ox < t->xhi; ox++) row[ox * sw + t->x0] += src[ox];
    }
}

/* Largest zero-padded plane (floats) kept on the stack: 64 KB, so that it
 * stays in L1/L2 while every tap reads it (threads need that much stack to
 * spare: glibc's and libgomp's default stacks are megabytes). Bigger padded
 * planes take the tap-by-tap path, which clips each row to the image. */
#define PAD_MAX 16384

/* The geometry of one unfolding, shared by the helpers below. */
typedef struct {
    int c, h, w, kh, kw, ph, pw, sh, sw, dh, dw, oh, ow;
    size_t ohw, ld, hw;
} geom;

/* Copies a plane into the middle of an (h + 2ph, w + 2pw) buffer, zeroing its border. */
static void pad_plane(const geom *g, const float *restrict plane, float *restrict pad)
{
    int pwid = g->w + 2 * g->pw;
    size_t rows = (size_t)g->h + 2 * g->ph;
    for (size_t i = 0; i < (size_t)g->ph * pwid; i++) pad[i] = 0.f;
    for (size_t i = (rows - g->ph) * pwid; i < rows * pwid; i++) pad[i] = 0.f;
    for (int y = 0; y < g->h; y++) {
        float *row = pad + (size_t)(y + g->ph) * pwid;
        const float *src = plane + (size_t)y * g->w;
        for (int x = 0; x < g->pw; x++) row[x] = row[g->pw + g->w + x] = 0.f;
        for (int x = 0; x < g->w; x++) row[g->pw + x] = src[x];
    }
}

/* Unfolds one (padded) plane of width pwid: every tap's (oh, ow) row of the
 * column matrix is a plain strided copy, with no bounds to check. */
static void unfold_padded(const geom *g, const float *restrict pad, int pwid,
                          float *restrict dst)
{
    int oh = g->oh, ow = g->ow, sw = g->sw;
    size_t row_step = (size_t)g->sh * pwid;
    for (int ki = 0; ki < g->kh; ki++)
        for (int kj = 0; kj < g->kw; kj++, dst += g->ld) {
            const float *s = pad + (size_t)ki * g->dh * pwid + (size_t)kj * g->dw;
            float *d = dst;
            for (int oy = 0; oy < oh; oy++, d += ow, s += row_step)
                if (sw == 1)
                    for (int ox = 0; ox < ow; ox++) d[ox] = s[ox];
                else
                    for (int ox = 0; ox < ow; ox++) d[ox] = s[ox * sw];
        }
}

/* Fills g; false when no output position fits (or no image). */
static bool make_geom(int n, int c, int h, int w, int kh, int kw, int ph, int pw, int sh,
                      int sw, int dh, int dw, geom *g)
{
    int oh = out_size(h, kh, ph, sh, dh), ow = out_size(w, kw, pw, sw, dw);
    *g = (geom){.c = c, .h = h, .w = w, .kh = kh, .kw = kw, .ph = ph, .pw = pw, .sh = sh,
                .sw = sw, .dh = dh, .dw = dw, .oh = oh, .ow = ow,
                .ohw = (size_t)oh * ow, .ld = (size_t)oh * ow * n, .hw = (size_t)h * w};
    return oh > 0 && ow > 0 && n > 0;
}

static size_t padded_size(const geom *g)
{
    return ((size_t)g->h + 2 * (size_t)g->ph) * ((size_t)g->w + 2 * (size_t)g->pw);
}

/* Small planes: a job unfolds one whole plane, from a zero-padded copy on
 * the stack (or the plane itself when there is no padding). */
static void unfold_planes(const geom *g, int n, const float *im, float *col)
{
    long jobs = (long)g->c * n; /* consecutive jobs fill adjacent columns */
#pragma omp parallel for schedule(static) if ((size_t)jobs * g->kh * g->kw * g->ohw >= PAR_MIN)
    for (long j = 0; j < jobs; j++) {
        int ch = (int)(j / n), i = (int)(j % n);
        const float *plane = im + ((size_t)i * g->c + ch) * g->hw;
        float *dst = col + (size_t)ch * g->kh * g->kw * g->ld + (size_t)i * g->ohw;
        if (g->ph > 0 || g->pw > 0) {
            float pad[PAD_MAX];
            pad_plane(g, plane, pad);
            unfold_padded(g, pad, g->w + 2 * g->pw, dst);
        } else {
            unfold_padded(g, plane, g->w, dst);
        }
    }
}

/* Large planes: a job is one kernel row of one channel for a tile of
 * IMG_TILE images, each tap clipped to the image; the rows a kernel row
 * reads stay in cache while its taps write contiguous stretches. */
static void unfold_taps(const geom *g, int n, const float *im, float *col)
{
    long tiles = (n + IMG_TILE - 1) / IMG_TILE, jobs = tiles * g->c * g->kh;
#pragma omp parallel for schedule(static) if ((size_t)n * g->c * g->kh * g->kw * g->ohw >= PAR_MIN)
    for (long j = 0; j < jobs; j++) {
        int ch = (int)(j / (tiles * g->kh)), ki = (int)(j / tiles % g->kh);
        int i0 = (int)(j % tiles) * IMG_TILE, i1 = i0 + IMG_TILE < n ? i0 + IMG_TILE : n;
        for (int kj = 0; kj < g->kw; kj++) {
            tap t = make_tap(ki, kj, g->h, g->w, g->oh, g->ow, g->ph, g->pw, g->sh, g->sw,
                             g->dh, g->dw);
            float *dst = col + (((size_t)ch * g->kh + ki) * g->kw + kj) * g->ld;
            for (int i = i0; i < i1; i++)
                unfold(im + ((size_t)i * g->c + ch) * g->hw, g->w, g->oh, g->ow, g->sh, g->sw,
                       &t, dst + (size_t)i * g->ohw);
        }
    }
}

/* Unfolds n images (n, C, H, W) into col (C*kh*kw, n*oh*ow): image i fills
 * columns [i*oh*ow, (i+1)*oh*ow). */
void cnn_k_im2col_batch(const float *im, int n, int c, int h, int w, int kh, int kw,
                        int ph, int pw, int sh, int sw, int dh, int dw, float *col)
{
    geom g;
    if (!make_geom(n, c, h, w, kh, kw, ph, pw, sh, sw, dh, dw, &g)) return;
    if (padded_size(&g) <= PAD_MAX)
        unfold_planes(&g, n, im, col);
    else
        unfold_taps(&g, n, im, col);
}

/* The adjoint of cnn_k_im2col_batch: im (n, C, H, W) is overwritten with
 * the sum of every column entry that was read from each pixel. (Summing in
 * a padded copy, as unfold_planes reads one, is no faster here.) */
void cnn_k_col2im_batch(const float *col, int n, int c, int h, int w, int kh, int kw,
                        int ph, int pw, int sh, int sw, int dh, int dw, float *im)
{
    geom g;
    if (!make_geom(n, c, h, w, kh, kw, ph, pw, sh, sw, dh, dw, &g)) {
        if (n > 0) memset(im, 0, (size_t)n * c * h * w * sizeof(float));
        return;
    }
    long planes = (long)n * c;
#pragma omp parallel for schedule(static) if ((size_t)planes * kh * kw * g.ohw >= PAR_MIN)
    for (long q = 0; q < planes; q++) {
        /* Consecutive jobs read consecutive stretches of the same rows. */
        long ch = q / n, i = q % n;
        float *plane = im + ((size_t)i * c + ch) * g.hw;
        memset(plane, 0, g.hw * sizeof(float));
        for (int ki = 0; ki < kh; ki++)
            for (int kj = 0; kj < kw; kj++) {
                tap t = make_tap(ki, kj, h, w, g.oh, g.ow, ph, pw, sh, sw, dh, dw);
                size_t r = ((size_t)ch * kh + ki) * kw + kj;
                fold(col + r * g.ld + (size_t)i * g.ohw, w, g.ow, sh, sw, &t, plane);
            }
    }
}

/* Unfolds (C, H, W) into (C*kh*kw, oh*ow). */
void cnn_k_im2col(const float *im, int c, int h, int w, int kh, int kw, int ph, int pw,
                  int sh, int sw, int dh, int dw, float *col)
{
    cnn_k_im2col_batch(im, 1, c, h, w, kh, kw, ph, pw, sh, sw, dh, dw, col);
}

/* The adjoint of cnn_k_im2col; im is overwritten (zeroed, then summed into). */
void cnn_k_col2im(const float *col, int c, int h, int w, int kh, int kw, int ph, int pw,
                  int sh, int sw, int dh, int dw, float *im)
{
    cnn_k_col2im_batch(col, 1, c, h, w, kh, kw, ph, pw, sh, sw, dh, dw, im);
}
