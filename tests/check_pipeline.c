/* check_pipeline.c — the ImageNet-style image pipeline: folder data sets
 * (class sub-folders, labels_file), the transform_param extensions each in
 * isolation with known results (resize_shorter, scale / aspect jitter,
 * rotation, PCA lighting, colour casting, mirror and crops), determinism
 * across thread counts with every augmentation on, unreadable images
 * (skipped, counted, max_bad_images) and the errors bad values give.
 * Fixtures are written to a fresh temporary folder per test. */
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jpeglib.h>

#include "core/dataset.h"
#include "core/image.h"
#include "core/loader.h"
#include "core/preprocess.h"
#include "core/transform.h"
#include "testutil.h"

/* ---- fixtures --------------------------------------------------------------- */

static char tmp[256];

static void tmp_setup(void)
{
    snprintf(tmp, sizeof tmp, "/tmp/check_pipeline_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmp));
}

static void tmp_teardown(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    ck_assert_int_eq(system(cmd), 0);
}

/* tmp/name in a rotating static buffer (several live at once). */
static const char *tpath(const char *name)
{
    static char bufs[8][512];
    static int next;
    char *b = bufs[next++ % 8];
    snprintf(b, 512, "%s/%s", tmp, name);
    return b;
}

static void write_text(const char *name, const char *text)
{
    FILE *f = fopen(tpath(name), "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

static void make_dir(const char *name) { ck_assert_int_eq(mkdir(tpath(name), 0777), 0); }

/* A c-channel h x w image whose pixel (y, x, ch) is a known pattern. */
static uint8_t pattern(int y, int x, int ch, int seed)
{
    return (uint8_t)((y * 13 + x * 7 + ch * 50 + seed * 31) & 0xff);
}

static void make_image(cnn_image *im, int h, int w, int c, int seed)
{
    ck_assert_int_eq(cnn_image_alloc(im, h, w, c), CNN_OK);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int ch = 0; ch < c; ch++) im->data[(y * w + x) * c + ch] = pattern(y, x, ch, seed);
}

static void write_png(const char *name, int h, int w, int seed)
{
    cnn_image im;
    make_image(&im, h, w, 3, seed);
    ck_assert_int_eq(cnn_image_write_png(tpath(name), &im), CNN_OK);
    cnn_image_free(&im);
}

static void write_jpeg(const char *name, int h, int w, int seed)
{
    cnn_image im;
    make_image(&im, h, w, 3, seed);
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr err;
    c.err = jpeg_std_error(&err);
    jpeg_create_compress(&c);
    FILE *f = fopen(tpath(name), "wb");
    ck_assert_ptr_nonnull(f);
    jpeg_stdio_dest(&c, f);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = 3;
    c.in_color_space = JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 90, TRUE);
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = im.data + (size_t)c.next_scanline * w * 3;
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    fclose(f);
    cnn_image_free(&im);
}

/* A transform_param parsed from text (the one parser). */
static cnn_data_transform parse_tf(const char *transform)
{
    char text[1024];
    snprintf(text, sizeof text, "transform_param { %s }\n", transform);
    cnn_cfg *root = NULL;
    ck_assert_msg(cnn_cfg_parse_string(text, "t.cfg", &root) == CNN_OK, "%s",
                  cnn_error_message());
    cnn_data_transform dt;
    ck_assert_msg(cnn_data_transform_parse(root, NULL, &dt) == CNN_OK, "%s",
                  cnn_error_message());
    cnn_cfg_free(root);
    return dt;
}

/* Expects transform_param { transform } to be refused with `needle`. */
static void expect_tf_error(const char *transform, const char *needle)
{
    char text[1024];
    snprintf(text, sizeof text, "transform_param {\n  %s }\n", transform);
    cnn_cfg *root = NULL;
    ck_assert_int_eq(cnn_cfg_parse_string(text, "t.cfg", &root), CNN_OK);
    cnn_data_transform dt;
    cnn_status st = cnn_data_transform_parse(root, NULL, &dt);
    ck_assert_msg(st == CNN_ERR_CONFIG, "'%s' gave %d (%s)", transform, st, cnn_error_message());
    ck_assert_msg(strstr(cnn_error_message(), needle), "message '%s' lacks '%s'",
                  cnn_error_message(), needle);
    cnn_cfg_free(root);
}

static const char *image_proto(const char *source, const char *param, const char *transform)
{
    static char buf[2048];
    snprintf(buf, sizeof buf,
             "layer { name: 'img' type: 'ImageData' top: 'data' top: 'label'\n"
             "  transform_param { %s }\n"
             "  image_data_param { source: '%s' %s } }\n",
             transform, source, param);
    return buf;
}

static void forward(cnn_net *n)
{
    ck_assert_msg(cnn_net_forward(n, NULL) == CNN_OK, "forward: %s", cnn_error_message());
}

static void expect_shape(cnn_net *n, const char *blob, const char *want)
{
    char buf[64];
    ck_assert_str_eq(cnn_tensor_shape_str(cnn_net_blob(n, blob), buf, sizeof buf), want);
}

/* ---- folder data sets ------------------------------------------------------------ */

/* ds/ with classes "B", "a", "c" (byte order: B < a < c) and assorted files. */
static void make_folder_set(void)
{
    make_dir("ds");
    make_dir("ds/a");
    make_dir("ds/B");
    make_dir("ds/c");
    make_dir("ds/c/nested");
    make_dir("ds/.hidden");
    write_png("ds/a/2.png", 8, 8, 1);
    write_jpeg("ds/a/1.JPG", 8, 8, 2);
    write_png("ds/B/z.PNG", 8, 8, 3);
    write_jpeg("ds/B/y.jpeg", 8, 8, 4);
    write_png("ds/B/.x.png", 8, 8, 5); /* hidden */
    write_text("ds/B/notes.txt", "not an image");
    write_png("ds/c/k.png", 8, 8, 6);
    write_png("ds/c/nested/j.png", 8, 8, 7);
    write_png("ds/.hidden/h.png", 8, 8, 8);
    write_png("ds/top.png", 8, 8, 9); /* not in a class folder: ignored */
}

START_TEST(test_folder_dataset)
{
    make_folder_set();
    cnn_dataset *d = NULL;
    ck_assert_msg(cnn_dataset_load_folder(tpath("ds"), true, &d) == CNN_OK, "%s",
                  cnn_error_message());
    ck_assert_int_eq(d->num_classes, 3);
    ck_assert_str_eq(d->class_names[0], "B");
    ck_assert_str_eq(d->class_names[1], "a");
    ck_assert_str_eq(d->class_names[2], "c");
    const char *want[] = {"ds/B/y.jpeg", "ds/B/z.PNG", "ds/a/1.JPG", "ds/a/2.png",
                          "ds/c/k.png",  "ds/c/nested/j.png"};
    const int labels[] = {0, 0, 1, 1, 2, 2};
    ck_assert_uint_eq(d->n, 6);
    for (int i = 0; i < 6; i++) {
        ck_assert_str_eq(d->paths[i], tpath(want[i]));
        ck_assert_int_eq(d->labels[i], labels[i]);
    }
    ck_assert_int_eq(cnn_dataset_write_labels(d, tpath("labels.txt")), CNN_OK);
    cnn_dataset_free(d);
    FILE *f = fopen(tpath("labels.txt"), "r");
    char buf[64] = {0};
    ck_assert_uint_eq(fread(buf, 1, sizeof buf - 1, f), 6);
    fclose(f);
    ck_assert_str_eq(buf, "B\na\nc\n");
    /* The layer: source names the folder; labels_file is written at build. */
    char param[600];
    snprintf(param, sizeof param, "batch_size: 6 labels_file: '%s'", tpath("names.txt"));
    cnn_net *n = cnn_test_net(image_proto(tpath("ds"), param, ""), CNN_TEST);
    expect_shape(n, "data", "6x3x8x8");
    forward(n);
    const float *l = cnn_net_blob(n, "label")->data, *x = cnn_net_blob(n, "data")->data;
    for (int i = 0; i < 6; i++) ck_assert_float_eq(l[i], labels[i]);
    /* Sample 3 is ds/a/2.png (seed 1), a lossless PNG: R at (2, 3). */
    ck_assert_float_eq(x[3 * 192 + 2 * 8 + 3], pattern(2, 3, 0, 1));
    cnn_net_free(n);
    ck_assert_int_eq(access(tpath("names.txt"), R_OK), 0);
}
END_TEST

static void expect_build_error(const char *proto, cnn_status want, const char *needle)
{
    cnn_net_opts o = cnn_net_default_opts();
    cnn_net *n = NULL;
    cnn_status st = cnn_net_from_string(proto, &o, &n);
    ck_assert_msg(st == want, "expected status %d, got %d (%s)", want, st, cnn_error_message());
    ck_assert_msg(strstr(cnn_error_message(), needle), "message '%s' lacks '%s'",
                  cnn_error_message(), needle);
    ck_assert_ptr_null(n);
}

START_TEST(test_folder_errors)
{
    make_dir("empty");
    expect_build_error(image_proto(tpath("empty"), "", ""), CNN_ERR_FORMAT,
                       "no class sub-folders");
    make_dir("empty/cat");
    make_dir("empty/dog");
    write_png("empty/cat/1.png", 4, 4, 0);
    write_text("empty/dog/readme.txt", "x");
    expect_build_error(image_proto(tpath("empty"), "", ""), CNN_ERR_FORMAT,
                       "class folder 'dog' holds no .png, .jpg or .jpeg files");
    write_png("empty/dog/1.png", 4, 4, 0);
    expect_build_error(image_proto(tpath("empty"), "root_folder: '/x'", ""), CNN_ERR_CONFIG,
                       "root_folder applies to list files");
    write_text("list.txt", "empty/cat/1.png 0\n");
    expect_build_error(image_proto(tpath("list.txt"), "labels_file: 'n.txt'", ""),
                       CNN_ERR_CONFIG, "labels_file needs a folder of class folders");
    char param[600];
    snprintf(param, sizeof param, "labels_file: '%s'", tpath("no/such/dir/n.txt"));
    expect_build_error(image_proto(tpath("empty"), param, ""), CNN_ERR_IO, "cannot create");
}
END_TEST

/* ---- each transform in isolation --------------------------------------------------- */

/* Output (c, oh, ow) of the extended transform on an (h, w, c) image. */
static float *run_tf(const cnn_data_transform *dt, const cnn_image *im, bool train,
                     uint64_t seed, cnn_transform_draw *drawn)
{
    int oh, ow;
    cnn_data_transform_out(dt, im->h, im->w, &oh, &ow);
    float *out = malloc((size_t)im->c * oh * ow * sizeof(float));
    cnn_rng rng;
    cnn_rng_seed(&rng, seed);
    cnn_transform_draw d;
    cnn_data_transform_draw(dt, im->c, im->h, im->w, train, &rng, &d);
    ck_assert_int_eq(cnn_data_transform_render(dt, &d, im->data, im->c, im->h, im->w, true, out),
                     CNN_OK);
    if (drawn) *drawn = d;
    return out;
}

START_TEST(test_resize_shorter)
{
    cnn_image im, ref;
    make_image(&im, 6, 10, 3, 0);
    cnn_data_transform dt = parse_tf("resize_shorter: 3");
    int oh, ow;
    cnn_data_transform_out(&dt, 6, 10, &oh, &ow);
    ck_assert(oh == 3 && ow == 5);
    cnn_data_transform_out(&dt, 10, 6, &oh, &ow);
    ck_assert(oh == 5 && ow == 3);
    /* Values: the bilinear resize of the whole image, planar. */
    ck_assert_int_eq(cnn_image_resize(&im, 3, 5, &ref), CNN_OK);
    float *out = run_tf(&dt, &im, false, 1, NULL);
    for (int ch = 0; ch < 3; ch++)
        for (int p = 0; p < 15; p++) ck_assert_float_eq(out[ch * 15 + p], ref.data[p * 3 + ch]);
    free(out);
    /* TRAIN without jitter: the same size; with a crop: centred in TEST. */
    dt = parse_tf("resize_shorter: 3 crop_size: 3 mean_value: 1 scale: 2");
    out = run_tf(&dt, &im, false, 1, NULL);
    for (int ch = 0; ch < 3; ch++)
        for (int y = 0; y < 3; y++)
            for (int x = 0; x < 3; x++)
                ck_assert_float_eq(out[(ch * 3 + y) * 3 + x],
                                   ((float)ref.data[(y * 5 + x + 1) * 3 + ch] - 1.f) * 2.f);
    free(out);
    /* Already the right size: untouched. */
    cnn_image_free(&ref);
    dt = parse_tf("resize_shorter: 6");
    out = run_tf(&dt, &im, true, 1, NULL);
    ck_assert_float_eq(out[60 + 2 * 10 + 7], pattern(2, 7, 1, 0));
    free(out);
    cnn_image_free(&im);
}
END_TEST

START_TEST(test_crop_mirror_jitter_ranges)
{
    cnn_image im;
    make_image(&im, 20, 30, 1, 0);
    cnn_data_transform dt = parse_tf("resize_shorter: 16 crop_size: 12 mirror: true "
                                     "scale_jitter_min: 0.5 scale_jitter_max: 1.25 "
                                     "aspect_jitter: 1.5");
    int flips = 0, small = 0, big = 0;
    for (uint64_t s = 0; s < 400; s++) {
        cnn_transform_draw d;
        float *out = run_tf(&dt, &im, true, s, &d);
        /* Shorter side 16 x [0.5, 1.25], aspect within [1/1.5, 1.5], at least the crop. */
        double f = 16.0 / 20.0;
        ck_assert_msg(d.h >= 12 && d.h <= lround(20 * f * 1.25 * sqrt(1.5)) + 1, "h %d", d.h);
        ck_assert_msg(d.w >= 12 && d.w <= lround(30 * f * 1.25 * sqrt(1.5)) + 1, "w %d", d.w);
        ck_assert(d.y0 >= 0 && d.y0 <= d.h - 12 && d.x0 >= 0 && d.x0 <= d.w - 12);
        flips += d.flip;
        small += d.h == 12;
        big += d.w > 27;
        free(out);
    }
    ck_assert(flips > 150 && flips < 250);
    ck_assert(small > 20 && big > 20);
    /* TEST: no jitter, centred crop, never flipped. */
    cnn_transform_draw d;
    free(run_tf(&dt, &im, false, 3, &d));
    ck_assert(d.h == 16 && d.w == 24 && d.y0 == 2 && d.x0 == 6 && !d.flip);
    /* A plain crop + mirror reproduces the window it claims. */
    dt = parse_tf("crop_size: 5 mirror: true");
    for (uint64_t s = 0; s < 20; s++) {
        float *out = run_tf(&dt, &im, true, s, &d);
        for (int y = 0; y < 5; y++)
            for (int x = 0; x < 5; x++) {
                int sx = d.flip ? d.x0 + 4 - x : d.x0 + x;
                ck_assert_float_eq(out[y * 5 + x], pattern(d.y0 + y, sx, 0, 0));
            }
        free(out);
    }
    cnn_image_free(&im);
}
END_TEST

START_TEST(test_rotation)
{
    cnn_image im;
    make_image(&im, 3, 3, 1, 0);
    cnn_data_transform dt = parse_tf("crop_size: 3");
    cnn_transform_draw d = {.h = 3, .w = 3};
    float out[9];
    const struct {
        float angle;
        int sy[9], sx[9];
    } cases[] = {
        /* Rotation by 0 and by a full turn: the image itself. */
        {0, {0, 0, 0, 1, 1, 1, 2, 2, 2}, {0, 1, 2, 0, 1, 2, 0, 1, 2}},
        {360, {0, 0, 0, 1, 1, 1, 2, 2, 2}, {0, 1, 2, 0, 1, 2, 0, 1, 2}},
        /* 90 degrees: out(y, x) = src(x, 2 - y). */
        {90, {0, 1, 2, 0, 1, 2, 0, 1, 2}, {2, 2, 2, 1, 1, 1, 0, 0, 0}},
        /* 180 degrees: out(y, x) = src(2 - y, 2 - x). */
        {180, {2, 2, 2, 1, 1, 1, 0, 0, 0}, {2, 1, 0, 2, 1, 0, 2, 1, 0}},
    };
    for (int k = 0; k < 4; k++) {
        d.angle = cases[k].angle;
        ck_assert_int_eq(cnn_data_transform_render(&dt, &d, im.data, 1, 3, 3, true, out),
                         CNN_OK);
        for (int p = 0; p < 9; p++)
            ck_assert_msg(fabsf(out[p] - pattern(cases[k].sy[p], cases[k].sx[p], 0, 0)) < 1e-3,
                          "angle %g pixel %d: %g", cases[k].angle, p, out[p]);
    }
    /* A half-pixel shift by a small rotation is a bilinear mix of neighbours;
     * random angles stay within +-max_rotation and inside the value range. */
    cnn_image big;
    make_image(&big, 16, 16, 1, 0);
    dt = parse_tf("crop_size: 10 max_rotation: 8");
    int neg = 0;
    for (uint64_t s = 0; s < 50; s++) {
        float *o = run_tf(&dt, &big, true, s, &d);
        ck_assert(fabsf(d.angle) <= 8.f && d.angle != 0.f);
        neg += d.angle < 0;
        for (int p = 0; p < 100; p++) ck_assert(o[p] >= 0.f && o[p] <= 255.f);
        free(o);
    }
    ck_assert(neg > 10 && neg < 40);
    /* TEST never rotates. */
    free(run_tf(&dt, &big, false, 1, &d));
    ck_assert_float_eq(d.angle, 0);
    cnn_image_free(&big);
    cnn_image_free(&im);
}
END_TEST

START_TEST(test_lighting)
{
    cnn_image im;
    make_image(&im, 4, 5, 3, 2);
    /* std 0 (the default) is the identity, even in TRAIN. */
    cnn_data_transform dt = parse_tf("lighting_std: 0");
    float *out = run_tf(&dt, &im, true, 9, NULL);
    for (int ch = 0; ch < 3; ch++)
        for (int p = 0; p < 20; p++) ck_assert_float_eq(out[ch * 20 + p], im.data[p * 3 + ch]);
    free(out);
    /* A fixed draw: alpha = (1, 0, 0) adds 255 * eigvec[c][0] * eigval[0]. */
    dt = parse_tf("lighting_std: 0.1");
    float alpha[3] = {1, 0, 0}, off[3];
    cnn_data_transform_lighting(&dt, alpha, off);
    const float v0[3] = {-0.5675f, -0.5808f, -0.5836f};
    for (int c = 0; c < 3; c++) ck_assert_float_eq_tol(off[c], 255.f * v0[c] * 0.2175f, 1e-3);
    cnn_transform_draw d = {.h = 4, .w = 5};
    memcpy(d.offset, off, sizeof off);
    out = malloc(60 * sizeof(float));
    ck_assert_int_eq(cnn_data_transform_render(&dt, &d, im.data, 3, 4, 5, true, out), CNN_OK);
    for (int ch = 0; ch < 3; ch++)
        for (int p = 0; p < 20; p++)
            ck_assert_float_eq_tol(out[ch * 20 + p], im.data[p * 3 + ch] + off[ch], 1e-4);
    free(out);
    /* Random draws: one offset per channel, zero mean, the predicted spread. */
    double sum[3] = {0}, sq[3] = {0};
    const int N = 3000;
    for (int s = 0; s < N; s++) {
        out = run_tf(&dt, &im, true, (uint64_t)s, &d);
        for (int ch = 0; ch < 3; ch++) {
            float o = out[ch * 20 + 7] - im.data[7 * 3 + ch];
            ck_assert_float_eq_tol(o, d.offset[ch], 1e-3);
            ck_assert_float_eq_tol(out[ch * 20 + 13] - im.data[13 * 3 + ch], o, 1e-3);
            sum[ch] += o;
            sq[ch] += (double)o * o;
        }
        free(out);
    }
    for (int c = 0; c < 3; c++) {
        double var = 0;
        for (int j = 0; j < 3; j++) {
            double t = 255.0 * 0.1 * dt.eigvec[c * 3 + j] * dt.eigval[j];
            var += t * t;
        }
        double m = sum[c] / N, sd = sqrt(sq[c] / N - m * m);
        ck_assert_msg(fabs(m) < 4 * sqrt(var / N), "channel %d mean %g", c, m);
        ck_assert_msg(fabs(sd / sqrt(var) - 1) < 0.08, "channel %d sd %g vs %g", c, sd,
                      sqrt(var));
    }
    /* User eigen-decomposition: identity vectors, one non-zero value. */
    dt = parse_tf("lighting_std: 1 lighting_eigval: 0.5 lighting_eigval: 0 lighting_eigval: 0 "
                  "lighting_eigvec: 1 lighting_eigvec: 0 lighting_eigvec: 0 "
                  "lighting_eigvec: 0 lighting_eigvec: 1 lighting_eigvec: 0 "
                  "lighting_eigvec: 0 lighting_eigvec: 0 lighting_eigvec: 1");
    float a2[3] = {0.2f, 5, 5};
    cnn_data_transform_lighting(&dt, a2, off);
    ck_assert_float_eq_tol(off[0], 255 * 0.2 * 0.5, 1e-3);
    ck_assert_float_eq(off[1], 0);
    ck_assert_float_eq(off[2], 0);
    cnn_image_free(&im);
}
END_TEST

START_TEST(test_color_cast)
{
    cnn_image im;
    make_image(&im, 4, 4, 3, 1);
    cnn_data_transform dt = parse_tf("color_cast: 20 mean_value: 100");
    double lo = 0, hi = 0;
    for (uint64_t s = 0; s < 200; s++) {
        cnn_transform_draw d;
        float *out = run_tf(&dt, &im, true, s, &d);
        for (int ch = 0; ch < 3; ch++) {
            ck_assert(fabsf(d.offset[ch]) <= 20.f);
            for (int p = 0; p < 16; p++)
                ck_assert_float_eq_tol(out[ch * 16 + p],
                                       im.data[p * 3 + ch] + d.offset[ch] - 100.f, 1e-4);
            lo = fmin(lo, d.offset[ch]);
            hi = fmax(hi, d.offset[ch]);
        }
        ck_assert(d.offset[0] != d.offset[1]);
        free(out);
    }
    ck_assert(lo < -15 && hi > 15);
    /* TEST: no cast. */
    float *out = run_tf(&dt, &im, false, 1, NULL);
    ck_assert_float_eq(out[5], im.data[15] - 100.f);
    free(out);
    cnn_image_free(&im);
}
END_TEST

/* ---- the layer: shapes, determinism, resume ---------------------------------------- */

/* A list of 8 images of assorted sizes and 2 undecodable files. */
static void make_list_with_bad(void)
{
    char text[1024] = "";
    for (int i = 0; i < 10; i++) {
        char name[32], line[64];
        snprintf(name, sizeof name, "im%d.%s", i, i % 3 ? "png" : "jpg");
        if (i == 3 || i == 7)
            write_text(name, "definitely not an image");
        else if (i % 3)
            write_png(name, 20 + i, 28 - i, i);
        else
            write_jpeg(name, 20 + i, 28 - i, i);
        snprintf(line, sizeof line, "%s %d\n", name, i);
        strcat(text, line);
    }
    write_text("list.txt", text);
}

static const char *all_augs =
    "resize_shorter: 18 crop_size: 14 mirror: true scale_jitter_min: 0.9 "
    "scale_jitter_max: 1.2 aspect_jitter: 1.3 max_rotation: 10 lighting_std: 0.1 "
    "color_cast: 10 mean_value: 120 scale: 0.01";

/* Batches from..from+nb-1 (data and labels), from a fresh net. */
static float *run_batches(const char *param, int nb, int from, size_t *bad)
{
    char p[512];
    snprintf(p, sizeof p, "batch_size: 3 shuffle: true %s", param);
    cnn_net *n = cnn_test_net(image_proto(tpath("list.txt"), p, all_augs), CNN_TRAIN);
    expect_shape(n, "data", "3x3x14x14");
    if (from) ck_assert_int_eq(cnn_net_seek_data(n, (uint64_t)from), CNN_OK);
    const size_t per = 3 * 3 * 14 * 14 + 3;
    float *out = malloc(per * (size_t)nb * sizeof(float));
    for (int b = 0; b < nb; b++) {
        forward(n);
        memcpy(out + b * per, cnn_net_blob(n, "data")->data, (per - 3) * sizeof(float));
        memcpy(out + b * per + per - 3, cnn_net_blob(n, "label")->data, 3 * sizeof(float));
    }
    if (bad) *bad = cnn_net_data_bad_images(n);
    cnn_net_free(n);
    return out;
}

START_TEST(test_determinism_threads)
{
    make_list_with_bad();
    ck_assert_ptr_nonnull(freopen(tpath("stderr.txt"), "w", stderr));
    const size_t per = 3 * 3 * 14 * 14 + 3;
    size_t bad = 0;
    float *ref = run_batches("threads: 0", 8, 0, &bad);
    ck_assert_uint_eq(bad, 2);
    const char *params[] = {"threads: 1 prefetch: 1", "threads: 2", "threads: 4 prefetch: 6"};
    for (int k = 0; k < 3; k++) {
        float *b = run_batches(params[k], 8, 0, &bad);
        ck_assert_msg(!memcmp(b, ref, 8 * per * sizeof(float)), "%s differs", params[k]);
        ck_assert_uint_eq(bad, 2);
        free(b);
    }
    /* Resuming at batch 5 gives batches 5, 6, 7. */
    float *b5 = run_batches("threads: 2", 3, 5, NULL);
    ck_assert(!memcmp(b5, ref + 5 * per, 3 * per * sizeof(float)));
    free(b5);
    /* Augmented, yet never a bad image's label, and all finite. */
    for (int b = 0; b < 8; b++)
        for (int j = 0; j < 3; j++) {
            float l = ref[b * per + per - 3 + j];
            ck_assert(l != 3.f && l != 7.f);
        }
    for (size_t i = 0; i < 8 * per; i++) ck_assert(isfinite(ref[i]));
    free(ref);
}
END_TEST

/* ---- unreadable images -------------------------------------------------------------- */

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    static char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

START_TEST(test_bad_images)
{
    make_list_with_bad();
    ck_assert_ptr_nonnull(freopen(tpath("stderr.txt"), "w", stderr));
    /* Default: skipped with a warning naming file and line, counted once each. */
    cnn_net *n = cnn_test_net(image_proto(tpath("list.txt"), "batch_size: 5 threads: 2",
                                          "resize_shorter: 16 crop_size: 16"),
                              CNN_TEST);
    for (int b = 0; b < 6; b++) {
        forward(n);
        const float *l = cnn_net_blob(n, "label")->data;
        for (int j = 0; j < 5; j++) {
            int want = (b * 5 + j) % 10;
            if (want != 3 && want != 7) ck_assert_float_eq(l[j], want);
            ck_assert(l[j] != 3.f && l[j] != 7.f);
        }
    }
    ck_assert_uint_eq(cnn_net_data_bad_images(n), 2);
    cnn_net_free(n);
    fflush(stderr);
    const char *log = read_file(tpath("stderr.txt"));
    char want[700];
    /* Two loader threads: which one is counted first depends on timing. */
    snprintf(want, sizeof want, "%s: not a PNG or JPEG file (%s:4)\n", tpath("im3.jpg"),
             tpath("list.txt"));
    ck_assert_msg(strstr(log, want), "log '%s' lacks '%s'", log, want);
    ck_assert_ptr_nonnull(strstr(log, "im7.png: not a PNG or JPEG file"));
    ck_assert_ptr_nonnull(strstr(log, "warning: layer 'img': skipping an unreadable image (1 so "
                                      "far): /"));
    ck_assert_ptr_nonnull(strstr(log, "(2 so far)"));
    ck_assert_ptr_null(strstr(log, "(3 so far)"));
    /* max_bad_images: 1: the second one stops the run, with both counts. */
    n = cnn_test_net(image_proto(tpath("list.txt"), "batch_size: 5 threads: 0 max_bad_images: 1",
                                 "resize_shorter: 16 crop_size: 16"),
                     CNN_TRAIN);
    forward(n);
    ck_assert_int_eq(cnn_net_forward(n, NULL), CNN_ERR_FORMAT);
    snprintf(want, sizeof want, "layer 'img' (ImageData): %s: not a PNG or JPEG file (%s:8); 2 "
             "unreadable image(s), more than max_bad_images (1)", tpath("im7.png"),
             tpath("list.txt"));
    ck_assert_str_eq(cnn_error_message(), want);
    cnn_net_free(n);
    /* A list of nothing but bad images: an error, not an endless search. */
    write_text("list2.txt", "im3.jpg 0\nim7.png 1\n");
    n = cnn_test_net(image_proto(tpath("list2.txt"), "new_height: 4 new_width: 4 threads: 0",
                                 ""),
                     CNN_TRAIN);
    ck_assert_int_eq(cnn_net_forward(n, NULL), CNN_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(cnn_error_message(), "no readable image found in 32 tries"));
    cnn_net_free(n);
    /* The first image is read at build: unreadable there is a build error. */
    write_text("list3.txt", "im3.jpg 0\nim1.png 1\n");
    expect_build_error(image_proto(tpath("list3.txt"), "", ""), CNN_ERR_FORMAT,
                       "im3.jpg: not a PNG or JPEG file");
    expect_build_error(image_proto(tpath("list.txt"), "max_bad_images: -2", ""), CNN_ERR_CONFIG,
                       "max_bad_images must be -1");
}
END_TEST

/* ---- configuration errors ------------------------------------------------------------ */

START_TEST(test_config_errors)
{
    expect_tf_error("resize_shorter: -3", "t.cfg:2:3: resize_shorter -3: must be 0 (off)");
    expect_tf_error("crop_size: 227 resize_shorter: 200",
                    "t.cfg:2:18: resize_shorter 200 is smaller than crop_size 227");
    expect_tf_error("crop_size: 4 scale_jitter_min: 1.2 scale_jitter_max: 0.8",
                    "t.cfg:2:38: scale_jitter_max 0.8: must be at least scale_jitter_min");
    expect_tf_error("crop_size: 4 scale_jitter_min: 0", "t.cfg:2:16: scale_jitter_min 0:");
    expect_tf_error("crop_size: 4 aspect_jitter: 0.5", "t.cfg:2:16: aspect_jitter 0.5: must be "
                    "1 (off) to 10");
    expect_tf_error("aspect_jitter: 1.2", "t.cfg:2:3: aspect_jitter needs crop_size");
    expect_tf_error("scale_jitter_max: 1.2", "t.cfg:2:3: scale_jitter_max needs crop_size");
    expect_tf_error("max_rotation: -1", "t.cfg:2:3: max_rotation -1: must be 0 (off) to 180");
    expect_tf_error("max_rotation: nan", "max_rotation nan");
    expect_tf_error("lighting_std: -0.1", "t.cfg:2:3: lighting_std -0.1");
    expect_tf_error("color_cast: -5", "t.cfg:2:3: color_cast -5");
    expect_tf_error("lighting_eigval: 1 lighting_eigval: 2",
                    "t.cfg:2:3: lighting_eigval needs exactly 3 values, got 2");
    expect_tf_error("lighting_eigvec: 1", "lighting_eigvec needs exactly 9 values, got 1");
    expect_tf_error("resize_shorter: 'big'", "t.cfg:2:3: field 'resize_shorter' expects");
    /* The Input layer refuses the data-layer extensions. */
    expect_build_error("layer { name: 'in' type: 'Input' top: 'x'\n"
                       "  input_param { shape { dim: 1 dim: 3 dim: 4 dim: 4 } }\n"
                       "  transform_param { color_cast: 3 } }\n",
                       CNN_ERR_UNSUPPORTED, "<string>:3:21: color_cast is a data-layer extension");
    /* Lighting needs RGB; the Data layer checks too. */
    write_png("a.png", 8, 8, 0);
    write_text("list.txt", "a.png 0\n");
    expect_build_error(image_proto(tpath("list.txt"), "is_color: false", "lighting_std: 0.1"),
                       CNN_ERR_CONFIG, "lighting_std needs RGB data (3 channels), not 1");
    /* Different aspect ratios without a crop cannot share one batch shape. */
    write_png("b.png", 8, 12, 0);
    write_text("list.txt", "a.png 0\nb.png 1\n");
    cnn_net *n = cnn_test_net(image_proto(tpath("list.txt"), "batch_size: 2",
                                          "resize_shorter: 4"),
                              CNN_TEST);
    expect_shape(n, "data", "2x3x4x4");
    ck_assert_int_eq(cnn_net_forward(n, NULL), CNN_ERR_SHAPE);
    ck_assert_ptr_nonnull(strstr(cnn_error_message(), "b.png: a 8x12 image resizes to 4x6, but "
                                 "the first one to 4x4; add crop_size"));
    cnn_net_free(n);
}
END_TEST

/* The tools' preprocessing with an Input layer's resize_shorter: the
 * shorter side resized (aspect kept), then the centre of the input's size;
 * without it the image is resized to the input. */
START_TEST(test_tools_resize_shorter_centre_crop)
{
    cnn_net *n = cnn_test_net("layer { name: 'in' type: 'Input' top: 'x'\n"
                              "  input_param { shape { dim: 1 dim: 1 dim: 4 dim: 4 } }\n"
                              "  transform_param { resize_shorter: 4 } }\n",
                              CNN_TEST);
    cnn_transform tf;
    ck_assert(cnn_net_input_transform(n, "x", &tf));
    ck_assert_int_eq(tf.resize_shorter, 4);
    /* 8x12 gray, pixel (y, x) = 10 * (x / 2) + y / 2: constant on 2x2 blocks,
     * so halving it is exact: (y, x) -> 10 * x + y on a 4x6 image. */
    cnn_image im = {0};
    ck_assert(cnn_image_alloc(&im, 8, 12, 1) == CNN_OK);
    for (int y = 0; y < 8; y++)
        for (int x = 0; x < 12; x++) im.data[y * 12 + x] = (uint8_t)(10 * (x / 2) + y / 2);
    float out[16];
    ck_assert(cnn_preprocess_image(&im, &tf, 1, 4, 4, false, out) == CNN_OK);
    for (int y = 0; y < 4; y++) /* the centre 4x4 of 4x6: columns 1..4 */
        for (int x = 0; x < 4; x++) ck_assert_float_eq(out[y * 4 + x], 10 * (x + 1) + y);
    /* Too small a side for the input is one clear error. */
    tf.resize_shorter = 3;
    ck_assert_int_eq(cnn_preprocess_image(&im, &tf, 1, 4, 4, false, out), CNN_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(cnn_error_message(), "smaller than the 4x4 input"));
    cnn_image_free(&im);
    cnn_net_free(n);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("pipeline");
    TCase *tc = tcase_create("pipeline");
    tcase_add_checked_fixture(tc, tmp_setup, tmp_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_folder_dataset);
    tcase_add_test(tc, test_folder_errors);
    tcase_add_test(tc, test_resize_shorter);
    tcase_add_test(tc, test_crop_mirror_jitter_ranges);
    tcase_add_test(tc, test_rotation);
    tcase_add_test(tc, test_lighting);
    tcase_add_test(tc, test_color_cast);
    tcase_add_test(tc, test_determinism_threads);
    tcase_add_test(tc, test_bad_images);
    tcase_add_test(tc, test_config_errors);
    tcase_add_test(tc, test_tools_resize_shorter_centre_crop);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return cnn_test_run(suite()) != 0; }
