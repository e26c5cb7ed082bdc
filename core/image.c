/* image.c — PNG (libpng) and JPEG (libjpeg-turbo) decoding from memory into
 * 8-bit (H, W, C) buffers, PNG writing, bilinear resize and centre crop.
 * Both decoders report errors through setjmp/longjmp so a corrupt file gives
 * an error value naming it, never an exit or a crash. */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

#include "image.h"

/* Larger images are refused rather than risking overflow or memory blowup. */
#define MAX_PIXELS ((size_t)1 << 28)

cnn_status cnn_image_alloc(cnn_image *out, int h, int w, int c)
{
    memset(out, 0, sizeof *out);
    if (h <= 0 || w <= 0 || c <= 0 || c > 4 || (size_t)h * (size_t)w > MAX_PIXELS)
        return CNN_ERROR(CNN_ERR_ARG, "image: bad size %dx%dx%d", h, w, c);
    out->data = calloc((size_t)h * w * c, 1);
    if (!out->data)
        return CNN_ERROR(CNN_ERR_MEMORY, "image: cannot allocate %dx%dx%d pixels", h, w, c);
    out->h = h;
    out->w = w;
    out->c = c;
    return CNN_OK;
}

void cnn_image_free(cnn_image *im)
{
    if (!im) return;
    free(im->data);
    memset(im, 0, sizeof *im);
}

/* Gray (BT.601 luma weights summing to 256, as OpenCV) or replicated RGB. */
static cnn_status convert_channels(cnn_image *im, int channels)
{
    if (channels == 0 || channels == im->c) return CNN_OK;
    cnn_image o;
    cnn_status st = cnn_image_alloc(&o, im->h, im->w, channels);
    if (st) return st;
    size_t n = (size_t)im->h * im->w;
    const uint8_t *s = im->data;
    if (channels == 1) {
        for (size_t i = 0; i < n; i++, s += 3)
            o.data[i] = (uint8_t)((77u * s[0] + 150u * s[1] + 29u * s[2] + 128u) >> 8);
    } else {
        for (size_t i = 0; i < n; i++)
            o.data[3 * i] = o.data[3 * i + 1] = o.data[3 * i + 2] = s[i];
    }
    cnn_image_free(im);
    *im = o;
    return CNN_OK;
}

/* ---- PNG ------------------------------------------------------------------ */

typedef struct png_ctx {
    const uint8_t *p;
    size_t size, pos;
    char msg[256];
} png_ctx;

static void png_on_error(png_structp png, png_const_charp msg)
{
    png_ctx *c = png_get_error_ptr(png);
    if (!c->msg[0]) snprintf(c->msg, sizeof c->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

static void png_read_mem(png_structp png, png_bytep out, size_t len)
{
    png_ctx *c = png_get_io_ptr(png);
    if (c->size - c->pos < len) {
        snprintf(c->msg, sizeof c->msg, "truncated PNG data");
        png_longjmp(png, 1);
    }
    memcpy(out, c->p + c->pos, len);
    c->pos += len;
}

static cnn_status decode_png(const uint8_t *buf, size_t size, const char *name, int channels,
                             cnn_image *out)
{
    png_ctx ctx = {.p = buf, .size = size};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &ctx, png_on_error,
                                             png_on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    uint8_t *volatile pixels = NULL;
    png_bytep *volatile rows = NULL;
    if (!info) {
        png_destroy_read_struct(png ? &png : NULL, NULL, NULL);
        return CNN_ERROR(CNN_ERR_MEMORY, "%s: cannot allocate a PNG decoder", name);
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        free(pixels);
        free(rows);
        return CNN_ERROR(CNN_ERR_FORMAT, "%s: %s", name, ctx.msg[0] ? ctx.msg : "bad PNG data");
    }
    png_set_read_fn(png, &ctx, png_read_mem);
    png_read_info(png, info);
    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    if ((size_t)w * h > MAX_PIXELS) {
        snprintf(ctx.msg, sizeof ctx.msg, "PNG image too large (%ux%u)", (unsigned)w,
                 (unsigned)h);
        png_longjmp(png, 1);
    }
    png_set_expand(png); /* palette -> RGB, low-bit gray -> 8 bits, tRNS -> alpha */
    png_set_scale_16(png);
    png_set_strip_alpha(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    int c = png_get_channels(png, info);
    size_t stride = png_get_rowbytes(png, info);
    if ((c != 1 && c != 3) || stride != (size_t)w * c) {
        snprintf(ctx.msg, sizeof ctx.msg, "unsupported PNG pixel layout");
        png_longjmp(png, 1);
    }
    pixels = malloc((size_t)h * stride);
    rows = malloc(h * sizeof *rows);
    if (!pixels || !rows) {
        snprintf(ctx.msg, sizeof ctx.msg, "cannot allocate %ux%u pixels", (unsigned)w,
                 (unsigned)h);
        png_longjmp(png, 1);
    }
    for (png_uint_32 y = 0; y < h; y++) rows[y] = pixels + y * stride;
    png_read_image(png, rows);
    png_read_end(png, NULL);
    png_destroy_read_struct(&png, &info, NULL);
    free(rows);
    out->h = (int)h;
    out->w = (int)w;
    out->c = c;
    out->data = pixels;
    cnn_status st = convert_channels(out, channels);
    if (st) cnn_image_free(out);
    return st;
}

/* ---- JPEG ----------------------------------------------------------------- */

typedef struct jpeg_err {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
    char msg[JMSG_LENGTH_MAX];
    bool truncated;
} jpeg_err;

static void jpeg_on_error(j_common_ptr cinfo)
{
    jpeg_err *e = (jpeg_err *)cinfo->err;
    cinfo->err->format_message(cinfo, e->msg);
    longjmp(e->jb, 1);
}

/* Warnings are silent, except that running out of data is remembered: the
 * library would pad the image with gray, we call it an error. */
static void jpeg_on_message(j_common_ptr cinfo, int level)
{
    jpeg_err *e = (jpeg_err *)cinfo->err;
    if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) e->truncated = true;
}

static cnn_status decode_jpeg(const uint8_t *buf, size_t size, const char *name,
                              int channels, cnn_image *out)
{
    struct jpeg_decompress_struct cinfo;
    jpeg_err err;
    memset(&err, 0, sizeof err);
    uint8_t *volatile pixels = NULL;
    uint8_t *volatile row = NULL;
    cinfo.err = jpeg_std_error(&err.pub);
    err.pub.error_exit = jpeg_on_error;
    err.pub.emit_message = jpeg_on_message;
    if (setjmp(err.jb)) {
        jpeg_destroy_decompress(&cinfo);
        free(pixels);
        free(row);
        return CNN_ERROR(CNN_ERR_FORMAT, "%s: JPEG: %s", name, err.msg);
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, buf, (unsigned long)size);
    jpeg_read_header(&cinfo, TRUE);
    bool cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
    int want = channels ? channels : cinfo.jpeg_color_space == JCS_GRAYSCALE ? 1 : 3;
    cinfo.out_color_space = cmyk ? JCS_CMYK : want == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_start_decompress(&cinfo);
    size_t w = cinfo.output_width, h = cinfo.output_height;
    int nc = cinfo.output_components;
    if (w * h > MAX_PIXELS) {
        snprintf(err.msg, sizeof err.msg, "image too large (%zux%zu)", w, h);
        longjmp(err.jb, 1);
    }
    pixels = malloc(w * h * (size_t)(cmyk ? 3 : nc));
    row = malloc(w * (size_t)nc);
    if (!pixels || !row) {
        snprintf(err.msg, sizeof err.msg, "cannot allocate %zux%zu pixels", w, h);
        longjmp(err.jb, 1);
    }
    bool inverted = cinfo.saw_Adobe_marker;
    while (cinfo.output_scanline < h) {
        size_t y = cinfo.output_scanline;
        uint8_t *dst = pixels + y * w * (size_t)(cmyk ? 3 : nc);
        JSAMPROW r = cmyk ? row : dst; /* other colour spaces decode in place */
        jpeg_read_scanlines(&cinfo, &r, 1);
        if (!cmyk) continue;
        for (size_t x = 0; x < w; x++) {
            const uint8_t *s = row + 4 * x;
            unsigned k = inverted ? s[3] : 255u - s[3];
            for (int ch = 0; ch < 3; ch++) {
                unsigned v = inverted ? s[ch] : 255u - s[ch];
                dst[3 * x + ch] = (uint8_t)((v * k + 127u) / 255u);
            }
        }
    }
    if (err.truncated) {
        snprintf(err.msg, sizeof err.msg, "truncated JPEG data");
        longjmp(err.jb, 1);
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    free(row);
    out->h = (int)h;
    out->w = (int)w;
    out->c = cmyk ? 3 : nc;
    out->data = pixels;
    cnn_status st = convert_channels(out, channels);
    if (st) cnn_image_free(out);
    return st;
}

/* ---- entry points --------------------------------------------------------- */

cnn_status cnn_image_decode(const void *buf, size_t size, const char *name, int channels,
                            cnn_image *out)
{
    memset(out, 0, sizeof *out);
    if (channels != 0 && channels != 1 && channels != 3)
        return CNN_ERROR(CNN_ERR_ARG, "%s: cannot decode into %d channels", name, channels);
    const uint8_t *b = buf;
    if (size >= 8 && !png_sig_cmp(b, 0, 8)) return decode_png(b, size, name, channels, out);
    if (size >= 3 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff)
        return decode_jpeg(b, size, name, channels, out);
    return CNN_ERROR(CNN_ERR_FORMAT, "%s: not a PNG or JPEG file", name);
}

cnn_status cnn_image_read(const char *path, int channels, cnn_image *out)
{
    memset(out, 0, sizeof *out);
    cnn_status st = CNN_OK;
    uint8_t *buf = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return CNN_ERROR(CNN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    long size = -1;
    if (fseek(f, 0, SEEK_END) == 0) size = ftell(f);
    if (size < 0 || fseek(f, 0, SEEK_SET) != 0) {
        st = CNN_ERROR(CNN_ERR_IO, "%s: cannot read: %s", path, strerror(errno));
        goto fail;
    }
    buf = malloc(size ? (size_t)size : 1);
    if (!buf) {
        st = CNN_ERROR(CNN_ERR_MEMORY, "%s: cannot allocate %ld bytes", path, size);
        goto fail;
    }
    if (fread(buf, 1, (size_t)size, f) != (size_t)size) {
        st = CNN_ERROR(CNN_ERR_IO, "%s: read error: %s", path,
                       ferror(f) ? strerror(errno) : "file shrank while reading");
        goto fail;
    }
    st = cnn_image_decode(buf, (size_t)size, path, channels, out);
fail:
    free(buf);
    fclose(f);
    return st;
}

typedef struct png_wctx {
    char msg[256];
} png_wctx;

static void png_on_write_error(png_structp png, png_const_charp msg)
{
    png_wctx *c = png_get_error_ptr(png);
    snprintf(c->msg, sizeof c->msg, "%s", msg);
    png_longjmp(png, 1);
}

cnn_status cnn_image_write_png(const char *path, const cnn_image *im)
{
    static const int types[5] = {0, PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA,
                                 PNG_COLOR_TYPE_RGB, PNG_COLOR_TYPE_RGB_ALPHA};
    if (!im->data || im->h <= 0 || im->w <= 0 || im->c < 1 || im->c > 4)
        return CNN_ERROR(CNN_ERR_ARG, "%s: cannot write a %dx%dx%d image as PNG", path,
                         im->h, im->w, im->c);
    png_wctx ctx = {{0}};
    FILE *f = fopen(path, "wb");
    if (!f) return CNN_ERROR(CNN_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &ctx,
                                              png_on_write_error, png_on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    png_bytep *volatile rows = NULL;
    if (!info) {
        png_destroy_write_struct(png ? &png : NULL, NULL);
        fclose(f);
        return CNN_ERROR(CNN_ERR_MEMORY, "%s: cannot allocate a PNG encoder", path);
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        free(rows);
        fclose(f);
        return CNN_ERROR(CNN_ERR_IO, "%s: PNG write failed: %s", path, ctx.msg);
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)im->w, (png_uint_32)im->h, 8, types[im->c],
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    rows = malloc((size_t)im->h * sizeof *rows);
    if (!rows) {
        snprintf(ctx.msg, sizeof ctx.msg, "out of memory");
        png_longjmp(png, 1);
    }
    for (int y = 0; y < im->h; y++) rows[y] = im->data + (size_t)y * im->w * im->c;
    png_write_info(png, info);
    png_write_image(png, rows);
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    free(rows);
    if (fclose(f) != 0)
        return CNN_ERROR(CNN_ERR_IO, "%s: write error: %s", path, strerror(errno));
    return CNN_OK;
}

/* ---- geometry ------------------------------------------------------------- */

/* Source coordinate table for one axis: index i0, and weight of i0 + 1. */
static void bilinear_axis(int src, int dst, int *i0, float *frac)
{
    double ratio = (double)src / dst;
    for (int i = 0; i < dst; i++) {
        double s = (i + 0.5) * ratio - 0.5;
        if (s < 0) s = 0;
        int k = (int)s;
        if (k >= src - 1) {
            k = src - 1;
            s = k;
        }
        i0[i] = k;
        frac[i] = (float)(s - k);
    }
}

cnn_status cnn_image_resize(const cnn_image *src, int h, int w, cnn_image *out)
{
    cnn_status st = cnn_image_alloc(out, h, w, src->c);
    if (st) return st;
    if (h == src->h && w == src->w) {
        memcpy(out->data, src->data, (size_t)h * w * src->c);
        return CNN_OK;
    }
    int *ys = malloc(((size_t)h + w) * sizeof(int));
    float *fy = malloc(((size_t)h + w) * sizeof(float));
    if (!ys || !fy) {
        free(ys);
        free(fy);
        cnn_image_free(out);
        return CNN_ERROR(CNN_ERR_MEMORY, "image: cannot allocate resize tables");
    }
    int *xs = ys + h;
    float *fx = fy + h;
    bilinear_axis(src->h, h, ys, fy);
    bilinear_axis(src->w, w, xs, fx);
    int c = src->c;
    size_t sstride = (size_t)src->w * c;
    for (int y = 0; y < h; y++) {
        const uint8_t *r0 = src->data + (size_t)ys[y] * sstride;
        const uint8_t *r1 = ys[y] + 1 < src->h ? r0 + sstride : r0;
        float wy = fy[y];
        uint8_t *d = out->data + (size_t)y * w * c;
        for (int x = 0; x < w; x++) {
            int x0 = xs[x] * c, x1 = xs[x] + 1 < src->w ? x0 + c : x0;
            float wx = fx[x];
            for (int ch = 0; ch < c; ch++) {
                float top = r0[x0 + ch] + wx * (r0[x1 + ch] - r0[x0 + ch]);
                float bot = r1[x0 + ch] + wx * (r1[x1 + ch] - r1[x0 + ch]);
                float v = top + wy * (bot - top) + 0.5f;
                d[x * c + ch] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
        }
    }
    free(ys);
    free(fy);
    return CNN_OK;
}

cnn_status cnn_image_center_crop(const cnn_image *src, int h, int w, cnn_image *out)
{
    if (h > src->h || w > src->w)
        return CNN_ERROR(CNN_ERR_SHAPE, "image: cannot crop %dx%d from a %dx%d image", h, w,
                         src->h, src->w);
    cnn_status st = cnn_image_alloc(out, h, w, src->c);
    if (st) return st;
    int y0 = (src->h - h) / 2, x0 = (src->w - w) / 2, c = src->c;
    for (int y = 0; y < h; y++)
        memcpy(out->data + (size_t)y * w * c,
               src->data + ((size_t)(y0 + y) * src->w + x0) * c, (size_t)w * c);
    return CNN_OK;
}
