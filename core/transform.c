/* transform.c — Caffe's transform_param: reading it, and applying it to 8-bit
 * pixels. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "caffemodel.h"
#include "image.h"
#include "transform.h"

/* The principal components of ImageNet's RGB pixel covariance (pixels in
 * 0..1) that AlexNet's lighting noise uses; these are the values published
 * with fb.resnet.torch (Krizhevsky et al. do not list theirs). */
static const float imagenet_eigval[3] = {0.2175f, 0.0188f, 0.0045f};
static const float imagenet_eigvec[9] = {-0.5675f, 0.7192f,  0.4009f,  -0.5808f, -0.0045f,
                                         -0.8140f, -0.5836f, -0.6948f, 0.4203f};

/* Extension keys: data layers only (the Input layer refuses them). */
static const char *const ext_keys[] = {"scale_jitter_min", "scale_jitter_max",
                                       "aspect_jitter",  "max_rotation",     "lighting_std",
                                       "lighting_eigval", "lighting_eigvec", "color_cast",
                                       NULL};

static void ext_defaults(cnn_data_transform *out)
{
    out->jitter_min = out->jitter_max = 1.f;
    out->aspect_jitter = 1.f;
    memcpy(out->eigval, imagenet_eigval, sizeof out->eigval);
    memcpy(out->eigvec, imagenet_eigvec, sizeof out->eigvec);
}

/* Reads n values of the repeated field `key` into v when it is given;
 * otherwise v keeps its defaults. */
static cnn_status read_floats(cnn_cfg *tp, const char *key, int n, float *v)
{
    int k = cnn_cfg_count(tp, key);
    if (k == 0) return CNN_OK;
    if (k != n)
        return cnn_cfg_error(cnn_cfg_get(tp, key), CNN_ERR_CONFIG,
                             "%s needs exactly %d values, got %d", key, n, k);
    for (int i = 0; i < n; i++) {
        cnn_status st = cnn_cfg_as_float(cnn_cfg_nth(tp, key, i), &v[i]);
        if (st) return st;
        if (!isfinite(v[i]))
            return cnn_cfg_error(cnn_cfg_nth(tp, key, i), CNN_ERR_CONFIG,
                                 "%s values must be finite", key);
    }
    return CNN_OK;
}

/* Error at `key` unless its value v satisfies lo <= v <= hi (NaN fails). */
static cnn_status check_range(cnn_cfg *tp, const char *key, double v, double lo, double hi,
                              const char *rule)
{
    if (v >= lo && v <= hi) return CNN_OK;
    return cnn_cfg_error(cnn_cfg_get(tp, key), CNN_ERR_CONFIG, "%s %g: %s", key, v, rule);
}

/* The extension fields of transform_param, with their checks. */
static cnn_status parse_extensions(cnn_cfg *tp, cnn_data_transform *out)
{
    cnn_status st = CNN_OK;
    CNN_TRY(cnn_cfg_int(tp, "resize_shorter", 0, &out->t.resize_shorter));
    CNN_TRY(cnn_cfg_float(tp, "scale_jitter_min", 1.f, &out->jitter_min));
    CNN_TRY(cnn_cfg_float(tp, "scale_jitter_max", 1.f, &out->jitter_max));
    CNN_TRY(cnn_cfg_float(tp, "aspect_jitter", 1.f, &out->aspect_jitter));
    CNN_TRY(cnn_cfg_float(tp, "max_rotation", 0.f, &out->max_rotation));
    CNN_TRY(cnn_cfg_float(tp, "lighting_std", 0.f, &out->lighting_std));
    CNN_TRY(cnn_cfg_float(tp, "color_cast", 0.f, &out->color_cast));
    CNN_TRY(read_floats(tp, "lighting_eigval", 3, out->eigval));
    CNN_TRY(read_floats(tp, "lighting_eigvec", 9, out->eigvec));
    int crop = out->t.crop_size;
    CNN_TRY(check_range(tp, "resize_shorter", out->t.resize_shorter, 0, 1 << 16,
                        "must be 0 (off) to 65536"));
    if (out->t.resize_shorter && crop > out->t.resize_shorter)
        return cnn_cfg_error(cnn_cfg_get(tp, "resize_shorter"), CNN_ERR_CONFIG,
                             "resize_shorter %d is smaller than crop_size %d",
                             out->t.resize_shorter, crop);
    CNN_TRY(check_range(tp, "scale_jitter_min", out->jitter_min, 0.01, 100,
                        "must be 0.01 to 100"));
    CNN_TRY(check_range(tp, "scale_jitter_max", out->jitter_max, out->jitter_min, 100,
                        "must be at least scale_jitter_min and at most 100"));
    CNN_TRY(check_range(tp, "aspect_jitter", out->aspect_jitter, 1, 10,
                        "must be 1 (off) to 10"));
    CNN_TRY(check_range(tp, "max_rotation", out->max_rotation, 0, 180,
                        "must be 0 (off) to 180 degrees"));
    CNN_TRY(check_range(tp, "lighting_std", out->lighting_std, 0, 10, "must be 0 (off) to 10"));
    CNN_TRY(check_range(tp, "color_cast", out->color_cast, 0, 255, "must be 0 (off) to 255"));
    bool jitter = out->jitter_min != 1.f || out->jitter_max != 1.f || out->aspect_jitter != 1.f;
    if (jitter && !crop) {
        const char *k = cnn_cfg_count(tp, "aspect_jitter") ? "aspect_jitter"
                        : cnn_cfg_count(tp, "scale_jitter_min") ? "scale_jitter_min"
                                                                : "scale_jitter_max";
        return cnn_cfg_error(cnn_cfg_get(tp, k), CNN_ERR_CONFIG,
                             "%s needs crop_size (jittered images differ in size)", k);
    }
fail:
    return st;
}

cnn_status cnn_data_transform_parse(cnn_cfg *layer, cnn_cfg *legacy, cnn_data_transform *out)
{
    cnn_status st = CNN_OK;
    cnn_cfg *tp = NULL;
    memset(out, 0, sizeof *out);
    cnn_transform *t = &out->t;
    t->scale = 1.f;
    ext_defaults(out);
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
    CNN_TRY(parse_extensions(tp, out));
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

/* t's mean_value from the per-channel averages of the mean image in `path`. */
static cnn_status channel_means(const char *path, cnn_transform *t)
{
    cnn_data_transform dt = {.mean_file = path};
    cnn_status st = cnn_data_transform_load_mean(&dt, -1);
    if (st) return st;
    if (dt.mean_c > CNN_MAX_MEAN) {
        st = CNN_ERROR(CNN_ERR_SHAPE, "%s: a mean image of %d channels; at most %d are "
                       "supported", path, dt.mean_c, CNN_MAX_MEAN);
    } else {
        size_t plane = (size_t)dt.mean_h * dt.mean_w;
        for (int c = 0; c < dt.mean_c; c++) {
            double s = 0;
            for (size_t i = 0; i < plane; i++) s += dt.mean_img[c * plane + i];
            t->mean[c] = (float)(s / (double)plane);
        }
        t->n_mean = dt.mean_c;
    }
    cnn_data_transform_release(&dt);
    return st;
}

cnn_status cnn_transform_parse(cnn_cfg *layer, bool read_mean, cnn_transform *out)
{
    cnn_data_transform d;
    *out = (cnn_transform){.scale = 1};
    if (!layer) return CNN_OK;
    cnn_status st = cnn_data_transform_parse(layer, NULL, &d);
    if (st) return st;
    cnn_cfg *tp = NULL;
    cnn_cfg_message(layer, "transform_param", &tp);
    for (int i = 0; tp && ext_keys[i]; i++)
        if (cnn_cfg_count(tp, ext_keys[i]))
            return cnn_cfg_error(cnn_cfg_get(tp, ext_keys[i]), CNN_ERR_UNSUPPORTED,
                                 "%s is a data-layer extension (Data, ImageData); this layer "
                                 "cannot use it", ext_keys[i]);
    if (d.mean_file && read_mean && (st = channel_means(d.mean_file, &d.t))) return st;
    *out = d.t;
    return CNN_OK;
}

/* ---- the extended transform --------------------------------------------------- */

bool cnn_data_transform_resizes(const cnn_data_transform *dt)
{
    return dt->t.resize_shorter > 0 || dt->jitter_min != 1.f || dt->jitter_max != 1.f ||
           dt->aspect_jitter != 1.f;
}

void cnn_data_transform_resized(const cnn_data_transform *dt, int h, int w, int *rh, int *rw)
{
    *rh = h;
    *rw = w;
    if (dt->t.resize_shorter <= 0) return;
    double s = (double)dt->t.resize_shorter / (h < w ? h : w);
    *rh = h <= w ? dt->t.resize_shorter : (int)lround(h * s);
    *rw = w <= h ? dt->t.resize_shorter : (int)lround(w * s);
}

void cnn_data_transform_out(const cnn_data_transform *dt, int h, int w, int *oh, int *ow)
{
    cnn_data_transform_resized(dt, h, w, oh, ow);
    if (dt->t.crop_size) *oh = *ow = dt->t.crop_size;
}

cnn_status cnn_data_transform_check_mean_size(const cnn_data_transform *dt, int h, int w,
                                              const char *what)
{
    if (!dt->mean_img || dt->t.resize_shorter > 0 || (h == dt->mean_h && w == dt->mean_w))
        return CNN_OK;
    return CNN_ERROR(CNN_ERR_SHAPE, "%s: %dx%d pixels, but the mean image %s is %dx%d (give a "
                     "mean of the images' size, or resize them to its size)", what, h, w,
                     dt->mean_path, dt->mean_h, dt->mean_w);
}

cnn_status cnn_data_transform_load_mean(cnn_data_transform *dt, int c)
{
    if (!dt->mean_file || dt->mean_img) return CNN_OK;
    cnn_caffemodel_blob b;
    cnn_status st = cnn_blobproto_read(dt->mean_file, &b);
    if (st) return st;
    /* 1 x C x H x W as Caffe writes it, or C x H x W. */
    int nd = b.ndim, off = nd == 4 ? 1 : 0;
    if ((nd != 3 && nd != 4) || (nd == 4 && b.shape[0] != 1) || b.count == 0) {
        char s[64] = "";
        for (int i = 0; i < nd; i++)
            snprintf(s + strlen(s), sizeof s - strlen(s), "%s%d", i ? "x" : "", b.shape[i]);
        cnn_caffemodel_blob_clear(&b);
        return CNN_ERROR(CNN_ERR_SHAPE, "%s: a mean image of shape 1 x C x H x W was expected, "
                         "not %s", dt->mean_file, nd ? s : "a blob without a shape");
    }
    dt->mean_c = b.shape[off];
    dt->mean_h = b.shape[off + 1];
    dt->mean_w = b.shape[off + 2];
    dt->mean_img = b.data;
    b.data = NULL;
    cnn_caffemodel_blob_clear(&b);
    if (!(dt->mean_path = strdup(dt->mean_file))) {
        cnn_data_transform_release(dt);
        return CNN_ERROR(CNN_ERR_MEMORY, "%s: out of memory", dt->mean_file);
    }
    dt->mean_file = dt->mean_path; /* the config's copy goes once the net is built */
    if (c >= 0 && dt->mean_c != c) {
        st = CNN_ERROR(CNN_ERR_SHAPE, "%s: the mean image has %d channel(s), the data %d",
                       dt->mean_file, dt->mean_c, c);
        cnn_data_transform_release(dt);
    }
    return st;
}

void cnn_data_transform_release(cnn_data_transform *dt)
{
    if (dt->mean_file == dt->mean_path) dt->mean_file = NULL;
    free(dt->mean_img);
    free(dt->mean_path);
    dt->mean_img = NULL;
    dt->mean_path = NULL;
}

cnn_status cnn_data_transform_check(const cnn_data_transform *dt, int c, int h, int w,
                                    const char *what)
{
    int rh, rw;
    cnn_data_transform_resized(dt, h, w, &rh, &rw);
    cnn_status st = cnn_transform_check(&dt->t, c, rh, rw, what);
    if (st) return st;
    if (dt->lighting_std > 0 && c != 3)
        return CNN_ERROR(CNN_ERR_CONFIG, "%s: lighting_std needs RGB data (3 channels), not %d "
                         "channel(s)", what, c);
    if (dt->color_cast > 0 && c > CNN_AUG_CHANNELS)
        return CNN_ERROR(CNN_ERR_CONFIG, "%s: color_cast handles 1 or 3 channels, not %d", what,
                         c);
    if (dt->mean_img && dt->mean_c != c)
        return CNN_ERROR(CNN_ERR_SHAPE, "%s: the mean image %s has %d channel(s), the data %d",
                         what, dt->mean_path, dt->mean_c, c);
    return cnn_data_transform_check_mean_size(dt, h, w, what);
}

void cnn_data_transform_lighting(const cnn_data_transform *dt, const float alpha[3],
                                 float out[3])
{
    for (int c = 0; c < 3; c++) {
        double s = 0;
        for (int j = 0; j < 3; j++) s += (double)dt->eigvec[c * 3 + j] * alpha[j] * dt->eigval[j];
        out[c] = (float)(255.0 * s);
    }
}

/* Uniform in [-a, a]. */
static double sym_uniform(cnn_rng *rng, double a) { return (2.0 * cnn_rng_uniform(rng) - 1.0) * a; }

/* Size after resizing in TRAIN (jitter drawn from rng) or TEST. */
static void draw_size(const cnn_data_transform *dt, int h, int w, bool train, cnn_rng *rng,
                      cnn_transform_draw *d)
{
    cnn_data_transform_resized(dt, h, w, &d->h, &d->w);
    if (!train || !cnn_data_transform_resizes(dt)) return;
    double sh = d->h, sw = d->w;
    if (dt->jitter_min != 1.f || dt->jitter_max != 1.f) {
        double f = dt->jitter_min + (dt->jitter_max - dt->jitter_min) * cnn_rng_uniform(rng);
        sh *= f;
        sw *= f;
    }
    if (dt->aspect_jitter != 1.f) {
        double r = sqrt(exp(sym_uniform(rng, log(dt->aspect_jitter))));
        sw *= r;
        sh /= r;
    }
    int crop = dt->t.crop_size;
    d->h = (int)lround(sh);
    d->w = (int)lround(sw);
    if (d->h < crop) d->h = crop;
    if (d->w < crop) d->w = crop;
    if (d->h < 1) d->h = 1;
    if (d->w < 1) d->w = 1;
}

void cnn_data_transform_draw(const cnn_data_transform *dt, int c, int h, int w, bool train,
                             cnn_rng *rng, cnn_transform_draw *d)
{
    const cnn_transform *t = &dt->t;
    memset(d, 0, sizeof *d);
    draw_size(dt, h, w, train, rng, d);
    d->flip = t->mirror && train && cnn_rng_below(rng, 2);
    int oh = t->crop_size ? t->crop_size : d->h, ow = t->crop_size ? t->crop_size : d->w;
    d->y0 = (d->h - oh) / 2;
    d->x0 = (d->w - ow) / 2;
    if (t->crop_size && train) {
        d->y0 = (int)cnn_rng_below(rng, (uint32_t)(d->h - oh + 1));
        d->x0 = (int)cnn_rng_below(rng, (uint32_t)(d->w - ow + 1));
    }
    if (!train) return;
    if (dt->max_rotation > 0) d->angle = (float)sym_uniform(rng, dt->max_rotation);
    if (dt->lighting_std > 0 && c == 3) {
        float alpha[3];
        for (int j = 0; j < 3; j++) alpha[j] = (float)(cnn_rng_gaussian(rng) * dt->lighting_std);
        cnn_data_transform_lighting(dt, alpha, d->offset);
    }
    if (dt->color_cast > 0)
        for (int ch = 0; ch < c && ch < CNN_AUG_CHANNELS; ch++)
            d->offset[ch] += (float)sym_uniform(rng, dt->color_cast);
}

/* Where pixel (ch, y, x) of a source sits: base + ch * cs + y * ys + x * xs. */
typedef struct src_view {
    const uint8_t *p;
    int c, h, w;
    size_t cs, ys, xs;
} src_view;

static src_view make_view(const uint8_t *p, int c, int h, int w, bool hwc)
{
    return (src_view){.p = p, .c = c, .h = h, .w = w, .cs = hwc ? 1 : (size_t)h * w,
                      .ys = hwc ? (size_t)w * c : (size_t)w, .xs = hwc ? (size_t)c : 1};
}

static float chan_add(const cnn_transform_draw *d, int ch)
{
    return ch < CNN_AUG_CHANNELS ? d->offset[ch] : 0.f;
}

/* Position v of a side of n pixels on a side of m (the same when n == m;
 * else the nearest pixel at the same relative position). */
static int rescaled(int v, int n, int m)
{
    if (n == m) return v;
    int i = (int)(((double)v + 0.5) * m / n);
    return i < 0 ? 0 : i < m ? i : m - 1;
}

/* Row sy of channel ch of the mean image, for a source of d->h rows. */
static const float *mean_row(const cnn_data_transform *dt, const cnn_transform_draw *d, int ch,
                             int sy)
{
    return dt->mean_img + ((size_t)ch * dt->mean_h + rescaled(sy, d->h, dt->mean_h)) *
                              dt->mean_w;
}

/* Crop, mirror, offsets, mean and scale: integer positions, no rotation. */
static void render_straight(const cnn_data_transform *dt, const cnn_transform_draw *d,
                            const src_view *s, int oh, int ow, float *dst)
{
    const cnn_transform *t = &dt->t;
    for (int ch = 0; ch < s->c; ch++) {
        float mean = cnn_transform_mean(t, ch), add = chan_add(d, ch), scale = t->scale;
        for (int y = 0; y < oh; y++) {
            const uint8_t *row = s->p + ch * s->cs + (size_t)(d->y0 + y) * s->ys;
            const float *mrow = dt->mean_img ? mean_row(dt, d, ch, d->y0 + y) : NULL;
            float *o = dst + ((size_t)ch * oh + y) * ow;
            for (int x = 0; x < ow; x++) {
                int sx = d->flip ? d->x0 + ow - 1 - x : d->x0 + x;
                float m = mrow ? mrow[rescaled(sx, d->w, dt->mean_w)] : mean;
                o[x] = ((float)row[(size_t)sx * s->xs] + add - m) * scale;
            }
        }
    }
}

/* The same, sampled bilinearly on a window rotated by d->angle about the
 * crop's centre; positions outside the image take the nearest edge pixel,
 * and the mean image's pixel nearest to the position. */
static void render_rotated(const cnn_data_transform *dt, const cnn_transform_draw *d,
                           const src_view *s, int oh, int ow, float *dst)
{
    const cnn_transform *t = &dt->t;
    double a = d->angle * M_PI / 180.0;
    float ca = (float)cos(a), sa = (float)sin(a);
    float hx = (float)(ow - 1) * 0.5f, hy = (float)(oh - 1) * 0.5f;
    float cx = (float)d->x0 + hx, cy = (float)d->y0 + hy;
    size_t plane = (size_t)oh * ow;
    for (int y = 0; y < oh; y++)
        for (int x = 0; x < ow; x++) {
            float u = (float)(d->flip ? ow - 1 - x : x) - hx, v = (float)y - hy;
            float sx = cx + ca * u - sa * v, sy = cy + sa * u + ca * v;
            sx = sx < 0 ? 0 : sx > (float)(s->w - 1) ? (float)(s->w - 1) : sx;
            sy = sy < 0 ? 0 : sy > (float)(s->h - 1) ? (float)(s->h - 1) : sy;
            int x0 = (int)sx, y0 = (int)sy;
            int x1 = x0 + 1 < s->w ? x0 + 1 : x0, y1 = y0 + 1 < s->h ? y0 + 1 : y0;
            float fx = sx - (float)x0, fy = sy - (float)y0;
            int mx = dt->mean_img ? rescaled((int)lroundf(sx), d->w, dt->mean_w) : 0;
            for (int ch = 0; ch < s->c; ch++) {
                const uint8_t *b = s->p + ch * s->cs;
                float p00 = b[y0 * s->ys + x0 * s->xs], p01 = b[y0 * s->ys + x1 * s->xs];
                float p10 = b[y1 * s->ys + x0 * s->xs], p11 = b[y1 * s->ys + x1 * s->xs];
                float top = p00 + fx * (p01 - p00), bot = p10 + fx * (p11 - p10);
                float val = top + fy * (bot - top);
                float m = dt->mean_img ? mean_row(dt, d, ch, (int)lroundf(sy))[mx]
                                       : cnn_transform_mean(t, ch);
                dst[ch * plane + (size_t)y * ow + x] = (val + chan_add(d, ch) - m) * t->scale;
            }
        }
}

/* src (c, h, w) or (h, w, c) resized to rh x rw into *out (h, w, c). */
static cnn_status resize_source(const uint8_t *src, int c, int h, int w, bool hwc, int rh,
                                int rw, cnn_image *out)
{
    cnn_image in = {.h = h, .w = w, .c = c, .data = (uint8_t *)src}, tmp = {0};
    cnn_status st;
    if (!hwc) {
        if ((st = cnn_image_alloc(&tmp, h, w, c))) return st;
        size_t plane = (size_t)h * w;
        for (size_t p = 0; p < plane; p++)
            for (int ch = 0; ch < c; ch++) tmp.data[p * c + ch] = src[ch * plane + p];
        in = tmp;
    }
    st = cnn_image_resize(&in, rh, rw, out);
    cnn_image_free(&tmp);
    return st;
}

cnn_status cnn_data_transform_render(const cnn_data_transform *dt, const cnn_transform_draw *d,
                                     const uint8_t *src, int c, int h, int w, bool hwc,
                                     float *dst)
{
    cnn_image resized = {0};
    const cnn_transform *t = &dt->t;
    if (d->h != h || d->w != w) {
        cnn_status st = resize_source(src, c, h, w, hwc, d->h, d->w, &resized);
        if (st) return st;
        src = resized.data;
        hwc = true;
    }
    src_view s = make_view(src, c, d->h, d->w, hwc);
    int oh = t->crop_size ? t->crop_size : d->h, ow = t->crop_size ? t->crop_size : d->w;
    if (d->angle != 0.f)
        render_rotated(dt, d, &s, oh, ow, dst);
    else
        render_straight(dt, d, &s, oh, ow, dst);
    cnn_image_free(&resized);
    return CNN_OK;
}

cnn_status cnn_data_transform_apply(const cnn_data_transform *dt, const uint8_t *src, int c,
                                    int h, int w, bool hwc, bool train, cnn_rng *rng,
                                    float *dst)
{
    cnn_transform_draw d;
    cnn_data_transform_draw(dt, c, h, w, train, rng, &d);
    return cnn_data_transform_render(dt, &d, src, c, h, w, hwc, dst);
}
