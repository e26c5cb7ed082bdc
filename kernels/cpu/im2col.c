/* im2col.c — unfolding images into columns (and back) so that convolution
 * becomes one matrix product. Handles padding, stride and dilation; the
 * batched forms lay several images side by side in one column matrix. */
#include <string.h>

#include "../kernels.h"

/* Rows are often a few floats long: keep GCC from turning the copy loops
 * into memcpy/memset calls, which cost more than the copy itself. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-tree-loop-distribute-patterns")
#endif

/* Work (in floats moved) below which the loops stay on one thread. */
#define PAR_MIN 65536
/* Images unfolded together by one im2col job. */
#define IMG_TILE 8

/* Output extent of a convolution along one axis (<= 0 when none fits). */
static int out_size(int in, int k, int pad, int stride, int dil)
{
    return (in + 2 * pad - (dil * (k - 1) + 1)) / stride + 1;
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

/* Unfolds n images (n, C, H, W) into col (C*kh*kw, n*oh*ow): image i fills
 * columns [i*oh*ow, (i+1)*oh*ow). */
void cnn_k_im2col_batch(const float *im, int n, int c, int h, int w, int kh, int kw,
                        int ph, int pw, int sh, int sw, int dh, int dw, float *col)
{
    int oh = out_size(h, kh, ph, sh, dh), ow = out_size(w, kw, pw, sw, dw);
    if (oh <= 0 || ow <= 0 || n <= 0) return;
    /* A job is one kernel row of one channel for a tile of IMG_TILE images:
     * the planes stay in L1 while each tap writes a contiguous stretch. */
    long tiles = (n + IMG_TILE - 1) / IMG_TILE, jobs = tiles * c * kh;
    size_t ohw = (size_t)oh * ow, ld = ohw * (size_t)n, hw = (size_t)h * w;
#pragma omp parallel for schedule(static) if ((size_t)n * c * kh * kw * ohw >= PAR_MIN)
    for (long j = 0; j < jobs; j++) {
        int ch = (int)(j / (tiles * kh)), ki = (int)(j / tiles % kh);
        int i0 = (int)(j % tiles) * IMG_TILE, i1 = i0 + IMG_TILE < n ? i0 + IMG_TILE : n;
        for (int kj = 0; kj < kw; kj++) {
            tap t = make_tap(ki, kj, h, w, oh, ow, ph, pw, sh, sw, dh, dw);
            float *dst = col + (((size_t)ch * kh + ki) * kw + kj) * ld;
            for (int i = i0; i < i1; i++)
                unfold(im + ((size_t)i * c + ch) * hw, w, oh, ow, sh, sw, &t,
                       dst + (size_t)i * ohw);
        }
    }
}

/* The adjoint of cnn_k_im2col_batch: im (n, C, H, W) is overwritten with
 * the sum of every column entry that was read from each pixel. */
void cnn_k_col2im_batch(const float *col, int n, int c, int h, int w, int kh, int kw,
                        int ph, int pw, int sh, int sw, int dh, int dw, float *im)
{
    int oh = out_size(h, kh, ph, sh, dh), ow = out_size(w, kw, pw, sw, dw);
    size_t hw = (size_t)h * w;
    if (oh <= 0 || ow <= 0) {
        memset(im, 0, (size_t)n * c * hw * sizeof(float));
        return;
    }
    size_t ohw = (size_t)oh * ow, ld = ohw * (size_t)n;
    long planes = (long)n * c;
#pragma omp parallel for schedule(static) if ((size_t)planes * kh * kw * ohw >= PAR_MIN)
    for (long q = 0; q < planes; q++) {
        /* Consecutive jobs read consecutive stretches of the same rows. */
        long ch = q / n, i = q % n;
        float *plane = im + ((size_t)i * c + ch) * hw;
        memset(plane, 0, hw * sizeof(float));
        for (int ki = 0; ki < kh; ki++)
            for (int kj = 0; kj < kw; kj++) {
                tap t = make_tap(ki, kj, h, w, oh, ow, ph, pw, sh, sw, dh, dw);
                size_t r = ((size_t)ch * kh + ki) * kw + kj;
                fold(col + r * ld + (size_t)i * ohw, w, ow, sh, sw, &t, plane);
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
