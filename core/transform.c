/* transform.c — Caffe's transform_param: reading it, and applying it to 8-bit
 * pixels. */
#include <string.h>

#include "transform.h"

cnn_status cnn_data_transform_parse(cnn_cfg *layer, cnn_cfg *legacy, cnn_data_transform *out)
{
    cnn_status st = CNN_OK;
    cnn_cfg *tp = NULL;
    memset(out, 0, sizeof *out);
    cnn_transform *t = &out->t;
    t->scale = 1.f;
    /* Deprecated copies in data_param / image_data_param come first, so that
     * transform_param overrides them. */
    if (legacy) {
        CNN_TRY(cnn_cfg_float(legacy, "scale", t->scale, &t->scale));
        CNN_TRY(cnn_cfg_int(legacy, "crop_size", t->crop_size, &t->crop_size));
        CNN_TRY(cnn_cfg_bool(legacy, "mirror", t->mirror, &t->mirror));
        CNN_TRY(cnn_cfg_string(legacy, "mean_file", NULL, &out->mean_file));
        if (t->crop_size < 0)
            return cnn_cfg_error(cnn_cfg_get(legacy, "crop_size"), CNN_ERR_CONFIG,
                                 "crop_size must not be negative");
    }
    CNN_TRY(cnn_cfg_message(layer, "transform_param", &tp));
    if (!tp) return CNN_OK;
    CNN_TRY(cnn_cfg_float(tp, "scale", t->scale, &t->scale));
    CNN_TRY(cnn_cfg_int(tp, "crop_size", t->crop_size, &t->crop_size));
    CNN_TRY(cnn_cfg_bool(tp, "mirror", t->mirror, &t->mirror));
    CNN_TRY(cnn_cfg_string(tp, "mean_file", out->mean_file, &out->mean_file));
    CNN_TRY(cnn_cfg_bool(tp, "force_color", false, &out->force_color));
    CNN_TRY(cnn_cfg_bool(tp, "force_gray", false, &out->force_gray));
    if (t->crop_size < 0)
        return cnn_cfg_error(cnn_cfg_get(tp, "crop_size"), CNN_ERR_CONFIG,
                             "crop_size must not be negative");
    int nm = cnn_cfg_count(tp, "mean_value");
    if (nm > CNN_MAX_MEAN)
        return cnn_cfg_error(cnn_cfg_nth(tp, "mean_value", CNN_MAX_MEAN), CNN_ERR_CONFIG,
                             "at most %d mean_value entries", CNN_MAX_MEAN);
    for (int i = 0; i < nm; i++)
        CNN_TRY(cnn_cfg_as_float(cnn_cfg_nth(tp, "mean_value", i), &t->mean[i]));
    t->n_mean = nm;
    if (nm && out->mean_file)
        return cnn_cfg_error(cnn_cfg_get(tp, "mean_value"), CNN_ERR_CONFIG,
                             "give either mean_file or mean_value, not both");
    if (out->force_color && out->force_gray)
        return cnn_cfg_error(cnn_cfg_get(tp, "force_gray"), CNN_ERR_CONFIG,
                             "force_color and force_gray cannot both be true");
fail:
    return st;
}

cnn_status cnn_transform_check(const cnn_transform *t, int c, int h, int w, const char *what)
{
    if (t->n_mean > 1 && t->n_mean != c)
        return CNN_ERROR(CNN_ERR_CONFIG, "%s: %d mean_value entries for %d channels (give 1 or "
                         "%d)", what, t->n_mean, c, c);
    if (t->crop_size && (t->crop_size > h || t->crop_size > w))
        return CNN_ERROR(CNN_ERR_SHAPE, "%s: crop_size %d is larger than the %dx%d images", what,
                         t->crop_size, h, w);
    return CNN_OK;
}

void cnn_transform_apply(const cnn_transform *t, const uint8_t *src, int c, int h, int w,
                         bool hwc, bool train, cnn_rng *rng, float *dst)
{
    int oh = cnn_transform_out(t, h), ow = cnn_transform_out(t, w);
    bool flip = t->mirror && train && cnn_rng_below(rng, 2);
    int y0 = (h - oh) / 2, x0 = (w - ow) / 2;
    if (t->crop_size && train) {
        y0 = (int)cnn_rng_below(rng, (uint32_t)(h - oh + 1));
        x0 = (int)cnn_rng_below(rng, (uint32_t)(w - ow + 1));
    }
    /* Pixel (ch, y, x) sits at base + ch * cs + y * ys + x * xs. */
    size_t cs = hwc ? 1 : (size_t)h * w, ys = hwc ? (size_t)w * c : (size_t)w;
    size_t xs = hwc ? (size_t)c : 1;
    for (int ch = 0; ch < c; ch++) {
        float mean = cnn_transform_mean(t, ch);
        float scale = t->scale;
        for (int y = 0; y < oh; y++) {
            const uint8_t *row = src + ch * cs + (size_t)(y0 + y) * ys;
            float *d = dst + ((size_t)ch * oh + y) * ow;
            if (flip) {
                for (int x = 0; x < ow; x++)
                    d[x] = ((float)row[(size_t)(x0 + ow - 1 - x) * xs] - mean) * scale;
            } else {
                for (int x = 0; x < ow; x++)
                    d[x] = ((float)row[(size_t)(x0 + x) * xs] - mean) * scale;
            }
        }
    }
}

cnn_status cnn_transform_parse(cnn_cfg *layer, cnn_transform *out)
{
    cnn_data_transform d;
    *out = (cnn_transform){.scale = 1};
    if (!layer) return CNN_OK;
    cnn_status st = cnn_data_transform_parse(layer, NULL, &d);
    if (st) return st;
    if (d.mean_file) {
        cnn_cfg *tp = NULL;
        cnn_cfg_message(layer, "transform_param", &tp);
        return cnn_cfg_error(cnn_cfg_get(tp, "mean_file"), CNN_ERR_UNSUPPORTED,
                             "mean_file is not supported; give mean_value per channel");
    }
    *out = d.t;
    return CNN_OK;
}
