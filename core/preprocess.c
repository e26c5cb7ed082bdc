/* preprocess.c — image → input tensor conversion shared by the tools: resize,
 * channel order, mean subtraction and scaling (see preprocess.h). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "preprocess.h"
#include "transform.h"

cnn_status cnn_preprocess_check(const cnn_transform *t, int c)
{
    if (t && t->n_mean > 1 && t->n_mean != c)
        return CNN_ERROR(CNN_ERR_CONFIG,
                         "transform_param has %d mean_value entries for a %d-channel input "
                         "(give 1 or %d)",
                         t->n_mean, c, c);
    return CNN_OK;
}

/* The shorter side resized to `side` (aspect kept), then the centre h x w. */
static cnn_status shorter_then_centre(const cnn_image *img, int side, int h, int w,
                                      cnn_image *out)
{
    cnn_status st = CNN_OK;
    cnn_image big = {0};
    double s = (double)side / (img->h < img->w ? img->h : img->w);
    int rh = img->h <= img->w ? side : (int)lround(img->h * s);
    int rw = img->w <= img->h ? side : (int)lround(img->w * s);
    if (rh < h || rw < w)
        return CNN_ERROR(CNN_ERR_CONFIG, "resize_shorter %d makes a %dx%d image %dx%d, smaller "
                         "than the %dx%d input", side, img->h, img->w, rh, rw, h, w);
    CNN_TRY(cnn_image_resize(img, rh, rw, &big));
    CNN_TRY(cnn_image_alloc(out, h, w, img->c));
    int y0 = (rh - h) / 2, x0 = (rw - w) / 2;
    size_t row = (size_t)w * img->c;
    for (int y = 0; y < h; y++)
        memcpy(out->data + y * row, big.data + ((size_t)(y0 + y) * rw + x0) * img->c, row);
fail:
    cnn_image_free(&big);
    return st;
}

cnn_status cnn_preprocess_image(const cnn_image *img, const cnn_transform *t, int c, int h,
                                int w, bool bgr, float *out)
{
    cnn_status st = CNN_OK;
    cnn_image sized = {0};
    if (c != 1 && c != 3)
        return CNN_ERROR(CNN_ERR_SHAPE, "inputs of %d channels cannot come from images (1 or 3)",
                         c);
    if (img->c != c)
        return CNN_ERROR(CNN_ERR_ARG, "image has %d channels, input wants %d", img->c, c);
    if (h <= 0 || w <= 0) return CNN_ERROR(CNN_ERR_SHAPE, "bad input size %dx%d", h, w);
    CNN_TRY(cnn_preprocess_check(t, c));
    CNN_TRY(t && t->resize_shorter ? shorter_then_centre(img, t->resize_shorter, h, w, &sized)
                                   : cnn_image_resize(img, h, w, &sized));
    float scale = t ? t->scale : 1.f;
    size_t plane = (size_t)h * w;
    for (int ch = 0; ch < c; ch++) {
        int src = bgr && c == 3 ? 2 - ch : ch;
        float mean = t ? cnn_transform_mean(t, ch) : 0.f;
        float *o = out + (size_t)ch * plane;
        const uint8_t *p = sized.data + src;
        for (size_t k = 0; k < plane; k++) o[k] = ((float)p[k * c] - mean) * scale;
    }
fail:
    cnn_image_free(&sized);
    return st;
}

cnn_status cnn_preprocess_file(const char *path, const cnn_transform *t, int c, int h, int w,
                               bool bgr, float *out)
{
    cnn_status st = CNN_OK;
    cnn_image img = {0};
    CNN_TRY(cnn_image_read(path, c, &img));
    st = cnn_preprocess_image(&img, t, c, h, w, bgr, out);
    if (st != CNN_OK) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", cnn_error_message());
        st = CNN_ERROR(st, "%s: %s", path, msg);
    }
fail:
    cnn_image_free(&img);
    return st;
}
