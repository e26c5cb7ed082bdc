/* check_data.c — image I/O, data set readers, the loader, and the Data and
 * ImageData layers: values, transforms, shuffling, seek/resume determinism,
 * and the error messages bad files give. Fixtures are written to a fresh
 * temporary folder per test. */
#include <errno.h>
#include <glob.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jpeglib.h>
#include <png.h>
#include <zlib.h>

#include "core/dataset.h"
#include "core/image.h"
#include "core/loader.h"
#include "testutil.h"

/* ---- fixtures --------------------------------------------------------------- */

static char tmp[256];

static void tmp_setup(void)
{
    snprintf(tmp, sizeof tmp, "/tmp/check_data_XXXXXX");
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

static void write_bytes(const char *path, bool gz, const void *buf, size_t n)
{
    if (gz) {
        gzFile g = gzopen(path, "wb");
        ck_assert_ptr_nonnull(g);
        ck_assert_int_eq(gzwrite(g, buf, (unsigned)n), (int)n);
        ck_assert_int_eq(gzclose(g), Z_OK);
    } else {
        FILE *f = fopen(path, "wb");
        ck_assert_ptr_nonnull(f);
        ck_assert_uint_eq(fwrite(buf, 1, n, f), n);
        fclose(f);
    }
}

static void write_text(const char *name, const char *text)
{
    write_bytes(tpath(name), false, text, strlen(text));
}

/* An IDX file: type byte, dims, then `n` payload bytes (which may be fewer
 * or more than the dims promise). */
static void write_idx(const char *path, bool gz, int type, int ndim, const int *dims,
                      const uint8_t *data, size_t n)
{
    size_t hn = 4 + 4 * (size_t)ndim;
    uint8_t *b = malloc(hn + n + 1);
    b[0] = b[1] = 0;
    b[2] = (uint8_t)type;
    b[3] = (uint8_t)ndim;
    for (int i = 0; i < ndim; i++) {
        uint32_t v = (uint32_t)dims[i];
        uint8_t *p = b + 4 + 4 * i;
        p[0] = v >> 24;
        p[1] = v >> 16;
        p[2] = v >> 8;
        p[3] = v;
    }
    if (n) memcpy(b + hn, data, n);
    write_bytes(path, gz, b, hn + n);
    free(b);
}

#define NIMG 10
#define IH 5
#define IW 6

/* Distinct per image: pixel (0, 0) of image i is 25 i; all stay below 255. */
static uint8_t pix(int i, int y, int x) { return (uint8_t)(i * 25 + y * IW + x); }
static int label_of(int i) { return (i * 7) % 10; }

/* images.idx / labels.idx (or .gz) holding NIMG IH x IW images. */
static void write_mnist_like(bool gz, const char *img, const char *lab)
{
    uint8_t data[NIMG * IH * IW], labels[NIMG];
    for (int i = 0; i < NIMG; i++) {
        labels[i] = (uint8_t)label_of(i);
        for (int y = 0; y < IH; y++)
            for (int x = 0; x < IW; x++) data[(i * IH + y) * IW + x] = pix(i, y, x);
    }
    int d3[3] = {NIMG, IH, IW}, d1[1] = {NIMG};
    write_idx(tpath(img), gz, 0x08, 3, d3, data, sizeof data);
    write_idx(tpath(lab), gz, 0x08, 1, d1, labels, sizeof labels);
}

/* A model with one Data layer reading tmp/images.idx + tmp/labels.idx. */
static const char *data_proto(const char *data_extra, const char *transform)
{
    static char buf[2048];
    snprintf(buf, sizeof buf,
             "name: 't'\n"
             "layer { name: 'data' type: 'Data' top: 'data' top: 'label'\n"
             "  transform_param { %s }\n"
             "  data_param { source: '%s' label_source: '%s' backend: IDX batch_size: 4 %s } }\n",
             transform, tpath("images.idx"), tpath("labels.idx"), data_extra);
    return buf;
}

static cnn_net *build(const char *proto, cnn_phase phase, bool shapes_only, cnn_status *st)
{
    cnn_net_opts o = cnn_net_default_opts();
    o.phase = phase;
    o.shapes_only = shapes_only;
    cnn_net *n = NULL;
    *st = cnn_net_from_string(proto, &o, &n);
    return n;
}

static void forward(cnn_net *n)
{
    ck_assert_msg(cnn_net_forward(n, NULL) == CNN_OK, "forward: %s", cnn_error_message());
}

static void expect_shape(cnn_net *n, const char *blob, const char *want)
{
    char buf[64];
    cnn_tensor *t = cnn_net_blob(n, blob);
    ck_assert_msg(t, "no blob %s", blob);
    ck_assert_str_eq(cnn_tensor_shape_str(t, buf, sizeof buf), want);
}

/* Which image a plain (uncropped, scale 1, no mean) sample came from. */
static int image_of(const float *sample) { return (int)lrintf(sample[0]) / 25; }

/* ---- IDX -------------------------------------------------------------------- */

START_TEST(test_idx_raw_and_gzip)
{
    write_mnist_like(false, "images.idx", "labels.idx");
    write_mnist_like(true, "images.idx.gz", "labels.idx.gz");
    cnn_dataset *a = NULL, *b = NULL;
    ck_assert_msg(cnn_dataset_load_idx(tpath("images.idx"), tpath("labels.idx"), &a) == CNN_OK,
                  "%s", cnn_error_message());
    ck_assert_msg(cnn_dataset_load_idx(tpath("images.idx.gz"), tpath("labels.idx.gz"), &b) ==
                      CNN_OK, "%s", cnn_error_message());
    ck_assert_uint_eq(a->n, NIMG);
    ck_assert_int_eq(a->c, 1);
    ck_assert_int_eq(a->h, IH);
    ck_assert_int_eq(a->w, IW);
    ck_assert_uint_eq(b->n, NIMG);
    ck_assert_mem_eq(a->pixels, b->pixels, NIMG * IH * IW);
    for (int i = 0; i < NIMG; i++) {
        ck_assert_int_eq(a->labels[i], label_of(i));
        ck_assert_int_eq(b->labels[i], label_of(i));
        ck_assert_int_eq(a->pixels[i * IH * IW + 7], pix(i, 1, 1));
    }
    int ndim, dims[4];
    ck_assert_int_eq(cnn_idx_header(tpath("images.idx.gz"), &ndim, dims), CNN_OK);
    ck_assert_int_eq(ndim, 3);
    ck_assert_int_eq(dims[0], NIMG);
    ck_assert_int_eq(dims[2], IW);
    cnn_dataset_free(a);
    cnn_dataset_free(b);
}
END_TEST

static void expect_idx_error(const char *img, const char *lab, cnn_status want,
                             const char *needle)
{
    cnn_dataset *d = NULL;
    cnn_status st = cnn_dataset_load_idx(tpath(img), lab ? tpath(lab) : NULL, &d);
    ck_assert_msg(st == want, "%s: status %d (%s)", needle, st, cnn_error_message());
    ck_assert_msg(strstr(cnn_error_message(), needle), "message '%s' lacks '%s'",
                  cnn_error_message(), needle);
    ck_assert_ptr_null(d);
}

START_TEST(test_idx_errors)
{
    uint8_t data[NIMG * IH * IW] = {0}, labels[NIMG] = {0};
    int d3[3] = {NIMG, IH, IW}, d1[1] = {NIMG}, d1short[1] = {NIMG - 1};
    char want[256];
    for (int gz = 0; gz < 2; gz++) {
        write_idx(tpath("trunc.idx"), gz, 0x08, 3, d3, data, sizeof data - 10);
        snprintf(want, sizeof want, "%s: truncated: expected 300 bytes of images, got 290",
                 tpath("trunc.idx"));
        expect_idx_error("trunc.idx", NULL, CNN_ERR_FORMAT, want);
    }
    /* A gzip stream cut in the middle. */
    uint8_t noise[sizeof data];
    for (size_t i = 0; i < sizeof noise; i++) noise[i] = (uint8_t)((i * 2654435761u) >> 13);
    write_idx(tpath("cut.gz"), true, 0x08, 3, d3, noise, sizeof noise);
    ck_assert_int_eq(truncate(tpath("cut.gz"), 200), 0);
    expect_idx_error("cut.gz", NULL, CNN_ERR_FORMAT, "truncated: expected 300 bytes of images");
    write_idx(tpath("images.idx"), false, 0x08, 3, d3, data, sizeof data);
    write_idx(tpath("short.idx"), false, 0x08, 1, d1short, labels, NIMG - 1);
    expect_idx_error("images.idx", "short.idx", CNN_ERR_FORMAT, "9 labels, but ");
    expect_idx_error("images.idx", "missing.idx", CNN_ERR_IO, "missing.idx: cannot open");
    expect_idx_error("missing.idx", NULL, CNN_ERR_IO, "missing.idx: cannot open");
    write_idx(tpath("labels.idx"), false, 0x08, 1, d1, labels, NIMG);
    expect_idx_error("labels.idx", NULL, CNN_ERR_FORMAT, "has 1 dimensions; images need 3");
    expect_idx_error("images.idx", "images.idx", CNN_ERR_FORMAT, "labels need 1");
    write_idx(tpath("float.idx"), false, 0x0d, 3, d3, data, sizeof data);
    expect_idx_error("float.idx", NULL, CNN_ERR_FORMAT, "element type 0x0d (float)");
    write_idx(tpath("long.idx"), false, 0x08, 3, d3, data, sizeof data);
    FILE *f = fopen(tpath("long.idx"), "ab");
    fputs("extra", f);
    fclose(f);
    expect_idx_error("long.idx", NULL, CNN_ERR_FORMAT, "unexpected data after 300 bytes");
    write_bytes(tpath("text.idx"), false, "hello world, not idx", 20);
    expect_idx_error("text.idx", NULL, CNN_ERR_FORMAT, "not an IDX file");
    write_bytes(tpath("tiny.idx"), false, "\0\0", 2);
    expect_idx_error("tiny.idx", NULL, CNN_ERR_FORMAT, "truncated IDX header");
}
END_TEST

/* ---- the Data layer ----------------------------------------------------------- */

START_TEST(test_data_values)
{
    write_mnist_like(false, "images.idx", "labels.idx");
    cnn_status st;
    cnn_net *n = build(data_proto("", "scale: 0.5 mean_value: 3"), CNN_TRAIN, false, &st);
    ck_assert_msg(st == CNN_OK, "%s", cnn_error_message());
    expect_shape(n, "data", "4x1x5x6");
    expect_shape(n, "label", "4");
    /* In order, wrapping around: 0-3, 4-7, 8 9 0 1. */
    for (int b = 0; b < 3; b++) {
        forward(n);
        cnn_tensor *d = cnn_net_blob(n, "data"), *l = cnn_net_blob(n, "label");
        for (int j = 0; j < 4; j++) {
            int i = (b * 4 + j) % NIMG;
            ck_assert_float_eq(l->data[j], (float)label_of(i));
            for (int y = 0; y < IH; y++)
                for (int x = 0; x < IW; x++)
                    ck_assert_float_eq(d->data[(j * IH + y) * IW + x],
                                       ((float)pix(i, y, x) - 3.f) * 0.5f);
        }
    }
    ck_assert(cnn_net_data_wait_seconds(n) >= 0);
    cnn_net_free(n);
    /* gzip content is found by its magic, whatever the name; no threads. */
    write_mnist_like(true, "images.idx", "labels.idx");
    n = cnn_test_net(data_proto("threads: 0", ""), CNN_TEST);
    forward(n);
    ck_assert_float_eq(cnn_net_blob(n, "data")->data[IH * IW + 1], pix(1, 0, 1));
    cnn_net_free(n);
}
END_TEST

/* Does `s` (oh x ow) equal a window of image i at (y0, x0), maybe flipped? */
static bool is_window(const float *s, int i, int oh, int ow, int y0, int x0, bool flip)
{
    for (int y = 0; y < oh; y++)
        for (int x = 0; x < ow; x++) {
            int sx = flip ? x0 + ow - 1 - x : x0 + x;
            if (s[y * ow + x] != pix(i, y0 + y, sx)) return false;
        }
    return true;
}

START_TEST(test_data_crop_mirror)
{
    write_mnist_like(false, "images.idx", "labels.idx");
    cnn_net *n = cnn_test_net(data_proto("", "crop_size: 3 mirror: true"), CNN_TRAIN);
    expect_shape(n, "data", "4x1x3x3");
    int flipped = 0, plain = 0, offsets = 0;
    for (int b = 0; b < 10; b++) {
        forward(n);
        const float *d = cnn_net_blob(n, "data")->data;
        for (int j = 0; j < 4; j++) {
            const float *s = d + j * 9;
            int i = (b * 4 + j) % NIMG, found = 0;
            for (int y0 = 0; y0 <= IH - 3; y0++)
                for (int x0 = 0; x0 <= IW - 3; x0++)
                    for (int f = 0; f < 2; f++)
                        if (is_window(s, i, 3, 3, y0, x0, f)) {
                            found++;
                            flipped += f;
                            plain += !f;
                            offsets |= 1 << (y0 * 4 + x0);
                        }
            ck_assert_msg(found == 1, "batch %d sample %d is no crop of image %d", b, j, i);
        }
    }
    ck_assert(flipped > 5 && plain > 5);
    ck_assert(__builtin_popcount((unsigned)offsets) >= 6);
    cnn_net_free(n);
    /* TEST: centre crop, never mirrored. */
    n = cnn_test_net(data_proto("", "crop_size: 3 mirror: true"), CNN_TEST);
    for (int b = 0; b < 3; b++) {
        forward(n);
        const float *d = cnn_net_blob(n, "data")->data;
        for (int j = 0; j < 4; j++)
            ck_assert(is_window(d + j * 9, (b * 4 + j) % NIMG, 3, 3, 1, 1, false));
    }
    cnn_net_free(n);
}
END_TEST

START_TEST(test_data_shuffle)
{
    write_mnist_like(false, "images.idx", "labels.idx");
    cnn_net *n = cnn_test_net(data_proto("shuffle: true", ""), CNN_TRAIN);
    int order[3][NIMG];
    /* batch 4 over 10 images: 15 batches are 6 epochs; check the first 3. */
    int seen = 0;
    for (int b = 0; b < 8; b++) {
        forward(n);
        const float *d = cnn_net_blob(n, "data")->data, *l = cnn_net_blob(n, "label")->data;
        for (int j = 0; j < 4 && seen < 3 * NIMG; j++, seen++) {
            int i = image_of(d + j * IH * IW);
            ck_assert_float_eq(l[j], (float)label_of(i));
            order[seen / NIMG][seen % NIMG] = i;
        }
    }
    for (int e = 0; e < 3; e++) {
        int count[NIMG] = {0};
        for (int k = 0; k < NIMG; k++) count[order[e][k]]++;
        for (int i = 0; i < NIMG; i++)
            ck_assert_msg(count[i] == 1, "epoch %d shows image %d %d times", e, i, count[i]);
    }
    ck_assert(memcmp(order[0], order[1], sizeof order[0]) ||
              memcmp(order[1], order[2], sizeof order[0]));
    bool identity = true;
    for (int k = 0; k < NIMG; k++) identity &= order[0][k] == k;
    ck_assert(!identity);
    cnn_net_free(n);
}
END_TEST

/* Batches 0..nb-1 of a fresh net, data and labels, concatenated. */
static float *run_batches(const char *proto, int nb, int from)
{
    cnn_net *n = cnn_test_net(proto, CNN_TRAIN);
    if (from) ck_assert_int_eq(cnn_net_seek_data(n, (uint64_t)from), CNN_OK);
    size_t per = 4 * 9 + 4;
    float *out = malloc(per * (size_t)nb * sizeof(float));
    for (int b = 0; b < nb; b++) {
        forward(n);
        memcpy(out + b * per, cnn_net_blob(n, "data")->data, 36 * sizeof(float));
        memcpy(out + b * per + 36, cnn_net_blob(n, "label")->data, 4 * sizeof(float));
    }
    cnn_net_free(n);
    return out;
}

START_TEST(test_data_seek)
{
    write_mnist_like(false, "images.idx", "labels.idx");
    char proto[2048];
    snprintf(proto, sizeof proto, "%s",
             data_proto("shuffle: true threads: 3 prefetch: 2", "crop_size: 3 mirror: true"));
    const size_t per = 40;
    float *ref = run_batches(proto, 12, 0);
    /* A fresh net told to start at batch 7 gives batches 7, 8, ... */
    float *b7 = run_batches(proto, 3, 7);
    ck_assert_mem_eq(b7, ref + 7 * per, 3 * per * sizeof(float));
    /* Seeking back and forth on a running net. */
    cnn_net *n = cnn_test_net(proto, CNN_TRAIN);
    for (int b = 0; b < 5; b++) forward(n);
    int seq[] = {2, 10, 0, 5};
    for (int s = 0; s < 4; s++) {
        ck_assert_int_eq(cnn_net_seek_data(n, (uint64_t)seq[s]), CNN_OK);
        forward(n);
        ck_assert_mem_eq(cnn_net_blob(n, "data")->data, ref + seq[s] * per, 36 * sizeof(float));
        ck_assert_mem_eq(cnn_net_blob(n, "label")->data, ref + seq[s] * per + 36,
                         4 * sizeof(float));
    }
    cnn_net_free(n);
    /* The same batches with no worker threads, or one. */
    snprintf(proto, sizeof proto, "%s",
             data_proto("shuffle: true threads: 0", "crop_size: 3 mirror: true"));
    float *sync = run_batches(proto, 12, 0);
    ck_assert_mem_eq(sync, ref, 12 * per * sizeof(float));
    snprintf(proto, sizeof proto, "%s",
             data_proto("shuffle: true threads: 1 prefetch: 1", "crop_size: 3 mirror: true"));
    float *one = run_batches(proto, 12, 0);
    ck_assert_mem_eq(one, ref, 12 * per * sizeof(float));
    free(ref);
    free(b7);
    free(sync);
    free(one);
}
END_TEST

static void expect_build_error(const char *proto, bool shapes_only, cnn_status want,
                               const char *needle)
{
    cnn_status st;
    cnn_net *n = build(proto, CNN_TRAIN, shapes_only, &st);
    ck_assert_msg(st == want, "expected status %d, got %d (%s)", want, st, cnn_error_message());
    ck_assert_msg(strstr(cnn_error_message(), needle), "message '%s' lacks '%s'",
                  cnn_error_message(), needle);
    ck_assert_ptr_null(n);
}

START_TEST(test_data_errors)
{
    uint8_t data[NIMG * IH * IW] = {0}, labels[NIMG] = {0};
    int d3[3] = {NIMG, IH, IW}, d1[1] = {NIMG - 2};
    write_idx(tpath("images.idx"), true, 0x08, 3, d3, data, sizeof data - 1);
    write_idx(tpath("labels.idx"), false, 0x08, 1, d1, labels, NIMG - 2);
    char want[512];
    snprintf(want, sizeof want, "layer 'data' (Data): %s: truncated: expected 300 bytes of "
             "images, got 299", tpath("images.idx"));
    expect_build_error(data_proto("", ""), false, CNN_ERR_FORMAT, want);
    write_idx(tpath("images.idx"), true, 0x08, 3, d3, data, sizeof data);
    expect_build_error(data_proto("", ""), false, CNN_ERR_FORMAT,
                       "labels.idx: 8 labels, but ");
    unlink(tpath("labels.idx"));
    expect_build_error(data_proto("", ""), false, CNN_ERR_IO, "labels.idx: cannot open");
    write_mnist_like(false, "images.idx", "labels.idx");
    expect_build_error(data_proto("", "crop_size: 7"), false, CNN_ERR_SHAPE, "crop_size 7");
    expect_build_error(data_proto("", "mean_value: 1 mean_value: 2"), false, CNN_ERR_CONFIG,
                       "2 mean_value entries for 1 channels");
    expect_build_error(data_proto("", "mean_file: 'no/mean.binaryproto'"), false, CNN_ERR_IO,
                       "no/mean.binaryproto: cannot open");
    expect_build_error(data_proto("bogus: 1", ""), false, CNN_ERR_CONFIG, "bogus");
    expect_build_error(data_proto("threads: -1", ""), false, CNN_ERR_CONFIG, "threads");
    char proto[1024];
    snprintf(proto, sizeof proto,
             "layer { name: 'data' type: 'Data' top: 'data' top: 'label'\n"
             "  data_param { source: '%s' backend: IDX batch_size: 4 } }\n",
             tpath("images.idx"));
    expect_build_error(proto, false, CNN_ERR_CONFIG, "needs data_param.label_source");
    expect_build_error("layer { name: 'data' type: 'Data' top: 'data' top: 'label'\n"
                       "  data_param { source: 'x_lmdb' backend: LMDB batch_size: 4 } }\n",
                       false, CNN_ERR_UNSUPPORTED, "backend LMDB is not supported");
    expect_build_error("layer { name: 'data' type: 'Data' top: 'data'\n"
                       "  data_param { source: 'x' backend: IDX } }\n",
                       false, CNN_ERR_CONFIG, "batch_size must be positive");
    expect_build_error("layer { name: 'data' type: 'Data' top: 'data'\n"
                       "  data_param { source: 'x' backend: ROCKSDB batch_size: 1 } }\n",
                       false, CNN_ERR_CONFIG, "ROCKSDB");
}
END_TEST

/* ---- CIFAR ------------------------------------------------------------------ */

static uint8_t cifar_px(int rec, int ch, int y, int x)
{
    return (uint8_t)(rec * 11 + ch * 5 + y * 3 + x);
}

static void write_cifar(const char *name, int first, int count, int bad_label_at)
{
    size_t n = (size_t)count * 3073;
    uint8_t *b = malloc(n);
    for (int r = 0; r < count; r++) {
        uint8_t *p = b + (size_t)r * 3073;
        p[0] = r == bad_label_at ? 12 : (uint8_t)((first + r) % 10);
        for (int ch = 0; ch < 3; ch++)
            for (int y = 0; y < 32; y++)
                for (int x = 0; x < 32; x++)
                    p[1 + (ch * 32 + y) * 32 + x] = cifar_px(first + r, ch, y, x);
    }
    write_bytes(tpath(name), false, b, n);
    free(b);
}

START_TEST(test_cifar)
{
    write_cifar("data_batch_2.bin", 2, 3, -1);
    write_cifar("data_batch_1.bin", 0, 2, -1);
    char proto[1024];
    snprintf(proto, sizeof proto,
             "layer { name: 'data' type: 'Data' top: 'data' top: 'label'\n"
             "  transform_param { scale: 2 mean_value: 1 mean_value: 2 mean_value: 3 }\n"
             "  data_param { source: '%s/data_batch_*.bin' backend: CIFAR batch_size: 4 } }\n",
             tmp);
    cnn_net *n = cnn_test_net(proto, CNN_TRAIN);
    expect_shape(n, "data", "4x3x32x32");
    for (int b = 0; b < 2; b++) {
        forward(n);
        const float *d = cnn_net_blob(n, "data")->data, *l = cnn_net_blob(n, "label")->data;
        for (int j = 0; j < 4; j++) {
            int r = (b * 4 + j) % 5;
            ck_assert_float_eq(l[j], (float)(r % 10));
            for (int ch = 0; ch < 3; ch++)
                for (int y = 0; y < 32; y += 7)
                    for (int x = 0; x < 32; x += 5)
                        ck_assert_float_eq(d[((j * 3 + ch) * 32 + y) * 32 + x],
                                           ((float)cifar_px(r, ch, y, x) - (float)(ch + 1)) *
                                               2.f);
        }
    }
    cnn_net_free(n);
    /* A single file, and errors. */
    cnn_dataset *d = NULL;
    ck_assert_int_eq(cnn_dataset_load_cifar(tpath("data_batch_2.bin"), &d), CNN_OK);
    ck_assert_uint_eq(d->n, 3);
    ck_assert_int_eq(d->labels[0], 2);
    cnn_dataset_free(d);
    write_cifar("bad_label.bin", 0, 3, 1);
    ck_assert_int_eq(cnn_dataset_load_cifar(tpath("bad_label.bin"), &d), CNN_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(cnn_error_message(), "record 1 has label 12"));
    write_bytes(tpath("odd.bin"), false, "0123456789", 10);
    ck_assert_int_eq(cnn_dataset_load_cifar(tpath("odd.bin"), &d), CNN_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(cnn_error_message(), "10 bytes is not a whole number"));
    ck_assert_int_eq(cnn_dataset_load_cifar(tpath("nothing_*.bin"), &d), CNN_ERR_IO);
    ck_assert_ptr_nonnull(strstr(cnn_error_message(), "no CIFAR files match"));
    ck_assert_ptr_null(d);
}
END_TEST

/* ---- shapes only (cnninfo) -------------------------------------------------------- */

static cnn_net *shapes_net(const char *proto)
{
    cnn_status st;
    cnn_net *n = build(proto, CNN_TRAIN, true, &st);
    ck_assert_msg(st == CNN_OK, "%s", cnn_error_message());
    return n;
}

START_TEST(test_shapes_only)
{
    cnn_net *n = shapes_net("layer { name: 'd' type: 'Data' top: 'data' top: 'label'\n"
                            "  transform_param { scale: 0.00390625 }\n"
                            "  data_param { source: 'examples/mnist/mnist_train_lmdb' "
                            "batch_size: 64 backend: LMDB } }\n");
    expect_shape(n, "data", "64x1x28x28");
    expect_shape(n, "label", "64");
    cnn_status st = cnn_net_forward(n, NULL);
    ck_assert_int_ne(st, CNN_OK);
    ck_assert_ptr_nonnull(strstr(cnn_error_message(), "shapes only"));
    cnn_net_free(n);
    n = shapes_net("layer { name: 'd' type: 'Data' top: 'data' top: 'label'\n"
                   "  transform_param { mirror: true crop_size: 227 "
                   "mean_file: 'data/ilsvrc12/imagenet_mean.binaryproto' }\n"
                   "  data_param { source: 'ilsvrc12_train_lmdb' batch_size: 2 "
                   "backend: LMDB } }\n");
    expect_shape(n, "data", "2x3x227x227");
    cnn_net_free(n);
    n = shapes_net("layer { name: 'd' type: 'Data' top: 'data' top: 'label'\n"
                   "  data_param { source: 'cifar10_train_lmdb' batch_size: 100 } }\n");
    expect_shape(n, "data", "100x3x32x32");
    cnn_net_free(n);
    expect_build_error("layer { name: 'd' type: 'Data' top: 'data'\n"
                       "  data_param { source: 'foo_lmdb' batch_size: 8 backend: LMDB } }\n",
                       true, CNN_ERR_CONFIG, "cannot be known without reading it");
    /* A readable IDX header gives the real shape. */
    write_mnist_like(true, "images.idx", "labels.idx");
    n = shapes_net(data_proto("", ""));
    expect_shape(n, "data", "4x1x5x6");
    cnn_net_free(n);
    /* ImageData: from new_height/new_width, or crop_size, without the list. */
    n = shapes_net("layer { name: 'd' type: 'ImageData' top: 'data' top: 'label'\n"
                   "  image_data_param { source: 'nope.txt' batch_size: 5 new_height: 20 "
                   "new_width: 30 } }\n");
    expect_shape(n, "data", "5x3x20x30");
    cnn_net_free(n);
    n = shapes_net("layer { name: 'd' type: 'ImageData' top: 'data' top: 'label'\n"
                   "  transform_param { crop_size: 9 }\n"
                   "  image_data_param { source: 'nope.txt' is_color: false } }\n");
    expect_shape(n, "data", "1x1x9x9");
    cnn_net_free(n);
    expect_build_error("layer { name: 'd' type: 'ImageData' top: 'data'\n"
                       "  image_data_param { source: 'nope.txt' } }\n",
                       true, CNN_ERR_CONFIG, "cannot be known");
}
END_TEST

static const char *caffe_dir(void)
{
    static const char *dirs[] = {"../shared/caffe-models", "../../shared/caffe-models", NULL};
    for (int i = 0; dirs[i]; i++) {
        char p[256];
        snprintf(p, sizeof p, "%s/mnist_lenet_train_test.prototxt", dirs[i]);
        if (access(p, R_OK) == 0) return dirs[i];
    }
    return NULL;
}

START_TEST(test_caffe_train_val_shapes)
{
    const char *dir = caffe_dir();
    if (!dir) {
        printf("check_data: SKIP Caffe train_val files (../shared/caffe-models absent)\n");
        return;
    }
    const struct {
        const char *file, *data;
        cnn_phase phase;
    } cases[] = {
        {"mnist_lenet_train_test.prototxt", "64x1x28x28", CNN_TRAIN},
        {"mnist_lenet_train_test.prototxt", "100x1x28x28", CNN_TEST},
        {"cifar10_cifar10_quick_train_test.prototxt", "100x3x32x32", CNN_TRAIN},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char p[512];
        snprintf(p, sizeof p, "%s/%s", dir, cases[i].file);
        cnn_net_opts o = cnn_net_default_opts();
        o.phase = cases[i].phase;
        o.shapes_only = true;
        cnn_net *n = NULL;
        ck_assert_msg(cnn_net_from_file(p, &o, &n) == CNN_OK, "%s: %s", cases[i].file,
                      cnn_error_message());
        expect_shape(n, "data", cases[i].data);
        cnn_net_free(n);
    }
}
END_TEST

/* ---- the loader on its own ------------------------------------------------------- */

typedef struct {
    int delay_us;
    size_t fail_at; /* index whose fill fails; SIZE_MAX: none */
} fill_ctx;

static cnn_status test_fill(void *ctx, size_t index, float *data, float *label, cnn_rng *rng)
{
    const fill_ctx *c = ctx;
    if (c->delay_us) usleep((useconds_t)c->delay_us);
    if (index == c->fail_at) return CNN_ERROR(CNN_ERR_FORMAT, "sample %zu is broken", index);
    data[0] = (float)index;
    data[1] = (float)cnn_rng_below(rng, 1000);
    if (label) *label = (float)(index * 2);
    return CNN_OK;
}

START_TEST(test_loader)
{
    fill_ctx fc = {.delay_us = 20000, .fail_at = 5};
    cnn_loader_opts o = {.num_samples = 7, .batch_size = 2, .sample_floats = 2,
                         .labels = true, .shuffle = true, .seed = 42, .skip = 3,
                         .threads = 1, .prefetch = 2};
    cnn_loader *ld = NULL;
    ck_assert_int_eq(cnn_loader_create(&o, test_fill, &fc, &ld), CNN_OK);
    float data[4], label[2];
    int fails = 0;
    for (int b = 0; b < 7; b++) {
        cnn_status st = cnn_loader_next(ld, data, label);
        size_t i0 = cnn_loader_sample_index(ld, 3 + 2 * (uint64_t)b);
        size_t i1 = cnn_loader_sample_index(ld, 4 + 2 * (uint64_t)b);
        if (i0 == 5 || i1 == 5) {
            ck_assert_int_eq(st, CNN_ERR_FORMAT);
            ck_assert_str_eq(cnn_error_message(), "sample 5 is broken");
            fails++;
            continue;
        }
        ck_assert_int_eq(st, CNN_OK);
        ck_assert_float_eq(data[0], (float)i0);
        ck_assert_float_eq(data[2], (float)i1);
        ck_assert_float_eq(label[1], (float)(2 * i1));
    }
    ck_assert_int_ge(fails, 1); /* positions 7..13 are a whole epoch */
    ck_assert_uint_eq(cnn_loader_position(ld), 7);
    /* The consumer outran a worker taking 40 ms per batch. */
    ck_assert(cnn_loader_wait_seconds(ld) > 0.01);
    cnn_loader_free(ld);
    /* Each epoch is a permutation. */
    fc.delay_us = 0;
    ck_assert_int_eq(cnn_loader_create(&o, test_fill, &fc, &ld), CNN_OK);
    for (uint64_t e = 0; e < 4; e++) {
        int seen[7] = {0};
        for (uint64_t i = 0; i < 7; i++) seen[cnn_loader_sample_index(ld, e * 7 + i)]++;
        for (int i = 0; i < 7; i++) ck_assert_int_eq(seen[i], 1);
    }
    cnn_loader_free(ld);
    cnn_loader_free(NULL);
}
END_TEST

/* ---- images ---------------------------------------------------------------------- */

static void fill_pattern(cnn_image *im, int seed)
{
    for (size_t i = 0; i < (size_t)im->h * im->w * im->c; i++)
        im->data[i] = (uint8_t)(i * 37 + (size_t)seed * 11);
}

START_TEST(test_png_round_trip)
{
    for (int c = 1; c <= 4; c++) {
        cnn_image a, b;
        ck_assert_int_eq(cnn_image_alloc(&a, 7, 9, c), CNN_OK);
        fill_pattern(&a, c);
        ck_assert_int_eq(cnn_image_write_png(tpath("a.png"), &a), CNN_OK);
        ck_assert_msg(cnn_image_read(tpath("a.png"), 0, &b) == CNN_OK, "%s",
                      cnn_error_message());
        int want_c = c == 1 || c == 2 ? 1 : 3; /* alpha is dropped */
        ck_assert_int_eq(b.c, want_c);
        ck_assert_int_eq(b.h, 7);
        ck_assert_int_eq(b.w, 9);
        for (int p = 0; p < 63; p++)
            for (int ch = 0; ch < want_c; ch++)
                ck_assert_int_eq(b.data[p * want_c + ch], a.data[p * c + ch]);
        cnn_image_free(&b);
        /* Conversions on read. */
        ck_assert_int_eq(cnn_image_read(tpath("a.png"), 3, &b), CNN_OK);
        ck_assert_int_eq(b.c, 3);
        if (c == 1) ck_assert(b.data[3] == a.data[1] && b.data[4] == a.data[1]);
        cnn_image_free(&b);
        ck_assert_int_eq(cnn_image_read(tpath("a.png"), 1, &b), CNN_OK);
        ck_assert_int_eq(b.c, 1);
        if (c >= 3) {
            const uint8_t *s = a.data + 5 * c;
            ck_assert_int_eq(b.data[5], (77 * s[0] + 150 * s[1] + 29 * s[2] + 128) >> 8);
        }
        cnn_image_free(&b);
        cnn_image_free(&a);
    }
    cnn_image im = {0};
    ck_assert_int_eq(cnn_image_write_png(tpath("x.png"), &im), CNN_ERR_ARG);
    ck_assert_int_eq(cnn_image_alloc(&im, 2, 2, 1), CNN_OK);
    ck_assert_int_eq(cnn_image_write_png(tpath("no/such/dir.png"), &im), CNN_ERR_IO);
    ck_assert_ptr_nonnull(strstr(cnn_error_message(), "no/such/dir.png: cannot create"));
    cnn_image_free(&im);
}
END_TEST

/* Writes a PNG of the given libpng colour type and depth with libpng. */
static void write_png_raw(const char *path, int w, int h, int type, int depth,
                          const uint8_t *rows_data, int palette_n)
{
    FILE *f = fopen(path, "wb");
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    ck_assert(!setjmp(png_jmpbuf(png)));
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, type, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (palette_n) {
        png_color pal[4] = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {10, 20, 30}};
        png_set_PLTE(png, info, pal, palette_n);
    }
    png_write_info(png, info);
    size_t stride = png_get_rowbytes(png, info);
    for (int y = 0; y < h; y++) png_write_row(png, rows_data + (size_t)y * stride);
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    fclose(f);
}

START_TEST(test_png_depths_and_palette)
{
    /* 16-bit gray: v * 257 reads back as v. */
    uint8_t g16[4 * 3 * 2];
    for (int i = 0; i < 12; i++) g16[2 * i] = g16[2 * i + 1] = (uint8_t)(i * 20);
    write_png_raw(tpath("g16.png"), 4, 3, PNG_COLOR_TYPE_GRAY, 16, g16, 0);
    cnn_image im;
    ck_assert_msg(cnn_image_read(tpath("g16.png"), 0, &im) == CNN_OK, "%s",
                  cnn_error_message());
    ck_assert_int_eq(im.c, 1);
    for (int i = 0; i < 12; i++) ck_assert_int_eq(im.data[i], i * 20);
    cnn_image_free(&im);
    /* A 2-bit palette image expands to RGB. */
    uint8_t pal[2 * 1] = {0x1b, 0xe4}; /* indices 0 1 2 3 | 3 2 1 0 */
    write_png_raw(tpath("pal.png"), 4, 2, PNG_COLOR_TYPE_PALETTE, 2, pal, 4);
    ck_assert_msg(cnn_image_read(tpath("pal.png"), 0, &im) == CNN_OK, "%s",
                  cnn_error_message());
    ck_assert_int_eq(im.c, 3);
    ck_assert(im.data[0] == 255 && im.data[1] == 0 && im.data[2] == 0);
    ck_assert(im.data[9] == 10 && im.data[10] == 20 && im.data[11] == 30);
    ck_assert(im.data[12] == 10 && im.data[21] == 255);
    cnn_image_free(&im);
    /* 16-bit RGBA: alpha dropped, samples scaled. */
    uint8_t rgba[2 * 8];
    for (int i = 0; i < 8; i++) rgba[2 * i] = rgba[2 * i + 1] = (uint8_t)(i * 30);
    write_png_raw(tpath("rgba16.png"), 2, 1, PNG_COLOR_TYPE_RGB_ALPHA, 16, rgba, 0);
    ck_assert_int_eq(cnn_image_read(tpath("rgba16.png"), 0, &im), CNN_OK);
    ck_assert_int_eq(im.c, 3);
    uint8_t want[6] = {0, 30, 60, 120, 150, 180};
    ck_assert_mem_eq(im.data, want, 6);
    cnn_image_free(&im);
}
END_TEST

static void write_jpeg(const char *path, const cnn_image *im, int quality)
{
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr err;
    c.err = jpeg_std_error(&err);
    jpeg_create_compress(&c);
    FILE *f = fopen(path, "wb");
    jpeg_stdio_dest(&c, f);
    c.image_width = (JDIMENSION)im->w;
    c.image_height = (JDIMENSION)im->h;
    c.input_components = im->c;
    c.in_color_space = im->c == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, quality, TRUE);
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = im->data + (size_t)c.next_scanline * im->w * im->c;
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    fclose(f);
}

static double mean_abs_diff(const cnn_image *a, const cnn_image *b)
{
    double s = 0;
    size_t n = (size_t)a->h * a->w * a->c;
    for (size_t i = 0; i < n; i++) s += fabs((double)a->data[i] - b->data[i]);
    return s / (double)n;
}

START_TEST(test_jpeg)
{
    for (int c = 1; c <= 3; c += 2) {
        cnn_image a, b;
        ck_assert_int_eq(cnn_image_alloc(&a, 64, 96, c), CNN_OK);
        for (int y = 0; y < 64; y++)
            for (int x = 0; x < 96; x++)
                for (int ch = 0; ch < c; ch++)
                    a.data[(y * 96 + x) * c + ch] =
                        (uint8_t)(x + y + ch * 40 + ((x * 7 ^ y * 13) & 15));
        write_jpeg(tpath("a.jpg"), &a, 95);
        ck_assert_msg(cnn_image_read(tpath("a.jpg"), 0, &b) == CNN_OK, "%s",
                      cnn_error_message());
        ck_assert_int_eq(b.c, c);
        ck_assert_int_eq(b.h, 64);
        ck_assert_int_eq(b.w, 96);
        double d = mean_abs_diff(&a, &b);
        ck_assert_msg(d < 3.0, "mean abs difference %g", d);
        cnn_image_free(&b);
        ck_assert_int_eq(cnn_image_read(tpath("a.jpg"), c == 1 ? 3 : 1, &b), CNN_OK);
        ck_assert_int_eq(b.c, c == 1 ? 3 : 1);
        cnn_image_free(&b);
        /* Truncated and corrupt JPEGs are errors, not exits. */
        FILE *f = fopen(tpath("a.jpg"), "rb");
        static uint8_t buf[1 << 16];
        size_t n = fread(buf, 1, sizeof buf, f);
        ck_assert(n > 1000 && n < sizeof buf);
        fclose(f);
        ck_assert_int_eq(cnn_image_decode(buf, n / 2, "half.jpg", 0, &b), CNN_ERR_FORMAT);
        ck_assert_str_eq(cnn_error_message(), "half.jpg: JPEG: truncated JPEG data");
        ck_assert_ptr_null(b.data);
        memset(buf + 3, 0x55, 200);
        ck_assert_int_eq(cnn_image_decode(buf, n, "garbled.jpg", 0, &b), CNN_ERR_FORMAT);
        ck_assert_ptr_nonnull(strstr(cnn_error_message(), "garbled.jpg: JPEG: "));
        ck_assert_int_eq(cnn_image_decode(buf, 3, "stub.jpg", 0, &b), CNN_ERR_FORMAT);
        cnn_image_free(&a);
    }
}
END_TEST

START_TEST(test_png_corrupt)
{
    cnn_image a, b;
    ck_assert_int_eq(cnn_image_alloc(&a, 16, 16, 3), CNN_OK);
    fill_pattern(&a, 3);
    ck_assert_int_eq(cnn_image_write_png(tpath("a.png"), &a), CNN_OK);
    cnn_image_free(&a);
    FILE *f = fopen(tpath("a.png"), "rb");
    uint8_t buf[4096];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    for (size_t cut = 8; cut < n; cut += n / 7) {
        ck_assert_int_eq(cnn_image_decode(buf, cut, "img/3.png", 0, &b), CNN_ERR_FORMAT);
        ck_assert_str_eq(cnn_error_message(), "img/3.png: truncated PNG data");
        ck_assert_ptr_null(b.data);
    }
    buf[n / 2] ^= 0xff; /* damaged IDAT: a CRC error */
    ck_assert_int_eq(cnn_image_decode(buf, n, "img/4.png", 0, &b), CNN_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(cnn_error_message(), "img/4.png: "));
    ck_assert_int_eq(cnn_image_decode("GIF89a......", 12, "img/5.gif", 0, &b), CNN_ERR_FORMAT);
    ck_assert_str_eq(cnn_error_message(), "img/5.gif: not a PNG or JPEG file");
    ck_assert_int_eq(cnn_image_decode("", 0, "empty.png", 0, &b), CNN_ERR_FORMAT);
    ck_assert_int_eq(cnn_image_read(tpath("missing.png"), 0, &b), CNN_ERR_IO);
    ck_assert_ptr_nonnull(strstr(cnn_error_message(), "missing.png: cannot open"));
}
END_TEST

START_TEST(test_resize_crop)
{
    cnn_image a, b;
    ck_assert_int_eq(cnn_image_alloc(&a, 2, 2, 1), CNN_OK);
    a.data[0] = 0;
    a.data[1] = 100;
    a.data[2] = 200;
    a.data[3] = 40;
    /* Up 2x: centres map to -0.25, 0.25, 0.75, 1.25 (clamped): weights 0,.25,.75,1. */
    ck_assert_int_eq(cnn_image_resize(&a, 4, 4, &b), CNN_OK);
    uint8_t row0[4] = {0, 25, 75, 100};
    ck_assert_mem_eq(b.data, row0, 4);
    ck_assert_int_eq(b.data[12], 200);
    ck_assert_int_eq(b.data[15], 40);
    ck_assert_int_eq(b.data[5], 59); /* 25 + .25 * (160 - 25), rounded */
    cnn_image_free(&b);
    /* Down 2x on a 4x4: block means. */
    cnn_image c;
    ck_assert_int_eq(cnn_image_alloc(&c, 4, 4, 3), CNN_OK);
    for (int i = 0; i < 48; i++) c.data[i] = (uint8_t)(i / 3 % 4 < 2 ? 10 : 50);
    ck_assert_int_eq(cnn_image_resize(&c, 2, 2, &b), CNN_OK);
    ck_assert(b.data[0] == 10 && b.data[3] == 50 && b.data[11] == 50);
    cnn_image_free(&b);
    ck_assert_int_eq(cnn_image_center_crop(&c, 2, 3, &b), CNN_OK);
    ck_assert(b.h == 2 && b.w == 3 && b.c == 3);
    ck_assert_int_eq(b.data[0], c.data[(1 * 4 + 0) * 3]);
    cnn_image_free(&b);
    ck_assert_int_eq(cnn_image_center_crop(&c, 5, 3, &b), CNN_ERR_SHAPE);
    cnn_image_free(&c);
    cnn_image_free(&a);
}
END_TEST

/* ---- ImageData -------------------------------------------------------------------- */

static void write_solid_png(const char *name, int h, int w, uint8_t r, uint8_t g, uint8_t b)
{
    cnn_image im;
    ck_assert_int_eq(cnn_image_alloc(&im, h, w, 3), CNN_OK);
    for (int i = 0; i < h * w; i++) {
        im.data[3 * i] = r;
        im.data[3 * i + 1] = g;
        im.data[3 * i + 2] = b;
    }
    ck_assert_int_eq(cnn_image_write_png(tpath(name), &im), CNN_OK);
    cnn_image_free(&im);
}

static const char *image_proto(const char *param, const char *transform)
{
    static char buf[2048];
    snprintf(buf, sizeof buf,
             "layer { name: 'img' type: 'ImageData' top: 'data' top: 'label'\n"
             "  transform_param { %s }\n"
             "  image_data_param { source: '%s' %s } }\n",
             transform, tpath("list.txt"), param);
    return buf;
}

START_TEST(test_image_data)
{
    ck_assert_int_eq(mkdir(tpath("sub dir"), 0777), 0);
    write_solid_png("a.png", 8, 6, 200, 100, 0);
    write_solid_png("sub dir/b c.png", 10, 12, 0, 50, 250);
    write_solid_png("c.png", 8, 6, 30, 30, 30);
    write_text("list.txt", "a.png 3\n\n# a comment\nsub dir/b c.png 1\nc.png 7\n");
    /* Paths relative to the list's folder; resized; gray. */
    cnn_net *n = cnn_test_net(image_proto("batch_size: 2 new_height: 4 new_width: 5 "
                                          "is_color: false",
                                          "scale: 2 mean_value: 10"),
                              CNN_TEST);
    expect_shape(n, "data", "2x1x4x5");
    const int labels[] = {3, 1, 7};
    const float gray[] = {(77 * 200 + 150 * 100 + 128) >> 8, (150 * 50 + 29 * 250 + 128) >> 8,
                          30};
    for (int b = 0; b < 3; b++) {
        forward(n);
        const float *d = cnn_net_blob(n, "data")->data, *l = cnn_net_blob(n, "label")->data;
        for (int j = 0; j < 2; j++) {
            int i = (b * 2 + j) % 3;
            ck_assert_float_eq(l[j], (float)labels[i]);
            for (int p = 0; p < 20; p++)
                ck_assert_float_eq(d[j * 20 + p], (gray[i] - 10.f) * 2.f);
        }
    }
    cnn_net_free(n);
    /* root_folder, colour with per-channel means, a crop from each image's own size. */
    write_text("list.txt", "a.png 3\nsub dir/b c.png 1\n");
    char param[600];
    snprintf(param, sizeof param, "batch_size: 2 root_folder: '%s'", tmp);
    n = cnn_test_net(image_proto(param, "crop_size: 5 mirror: true mean_value: 1 mean_value: 2 "
                                        "mean_value: 3"),
                     CNN_TRAIN);
    expect_shape(n, "data", "2x3x5x5");
    forward(n);
    const float *d = cnn_net_blob(n, "data")->data;
    ck_assert_float_eq(d[0], 199);
    ck_assert_float_eq(d[25], 98);
    ck_assert_float_eq(d[75 + 50], 247);
    cnn_net_free(n);
    /* Different sizes without resizing or crop: an error naming the image. */
    n = cnn_test_net(image_proto("batch_size: 2", ""), CNN_TRAIN);
    ck_assert_int_eq(cnn_net_forward(n, NULL), CNN_ERR_SHAPE);
    ck_assert_msg(strstr(cnn_error_message(), "b c.png: a 10x12 image, but the first one is "
                         "8x6"), "%s", cnn_error_message());
    cnn_net_free(n);
}
END_TEST

START_TEST(test_image_data_errors)
{
    write_solid_png("a.png", 4, 4, 1, 2, 3);
    write_text("list.txt", "a.png 0\nmissing.png 1\n");
    char want[600];
    snprintf(want, sizeof want, "%s:2: cannot read image 'missing.png'", tpath("list.txt"));
    expect_build_error(image_proto("", ""), false, CNN_ERR_IO, want);
    write_text("list.txt", "a.png 0\na.png\n");
    expect_build_error(image_proto("", ""), false, CNN_ERR_FORMAT, "list.txt:2: expected "
                       "'path label', got 'a.png'");
    unlink(tpath("list.txt"));
    expect_build_error(image_proto("", ""), false, CNN_ERR_IO, "list.txt: cannot open");
    expect_build_error(image_proto("new_height: 4", ""), false, CNN_ERR_CONFIG,
                       "new_height and new_width");
    /* A corrupt image mid-epoch with max_bad_images: 0: forward fails naming it
     * (by default it is skipped: see check_pipeline). */
    write_bytes(tpath("bad.png"), false, "\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR", 16);
    write_text("list.txt", "a.png 0\nbad.png 1\n");
    cnn_net *n = cnn_test_net(image_proto("batch_size: 1 threads: 2 max_bad_images: 0", ""),
                              CNN_TRAIN);
    forward(n);
    ck_assert_int_eq(cnn_net_forward(n, NULL), CNN_ERR_FORMAT);
    snprintf(want, sizeof want, "layer 'img' (ImageData): %s: truncated PNG data (%s:2); 1 "
             "unreadable image(s), more than max_bad_images (0)", tpath("bad.png"),
             tpath("list.txt"));
    ck_assert_str_eq(cnn_error_message(), want);
    forward(n); /* the next batch is fine again */
    cnn_net_free(n);
}
END_TEST

/* ---- mean_file --------------------------------------------------------------------- */

static size_t put_varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    do {
        p[n] = (uint8_t)(v & 0x7f);
        v >>= 7;
        p[n++] |= v ? 0x80 : 0;
    } while (v);
    return n;
}

/* Writes a Caffe .binaryproto BlobProto of shape n x c x h x w: Caffe's
 * legacy num/channels/height/width fields, or (shape_field) a BlobShape;
 * then the values as packed floats. Returns the file's size. */
static size_t write_blobproto(const char *name, int n, int c, int h, int w, const float *v,
                              bool shape_field)
{
    size_t count = (size_t)n * c * h * w;
    uint8_t *buf = malloc(64 + count * 4), *p = buf;
    int dim[4] = {n, c, h, w};
    if (shape_field) {
        uint8_t dims[40];
        size_t nd = 0;
        for (int i = 0; i < 4; i++) nd += put_varint(dims + nd, (uint64_t)dim[i]);
        *p++ = 7 << 3 | 2; /* shape: BlobShape { dim = 1 (packed) } */
        p += put_varint(p, nd + 2);
        *p++ = 1 << 3 | 2;
        p += put_varint(p, nd);
        memcpy(p, dims, nd);
        p += nd;
    } else {
        for (int i = 0; i < 4; i++) {
            *p++ = (uint8_t)((i + 1) << 3); /* num, channels, height, width: varints */
            p += put_varint(p, (uint64_t)dim[i]);
        }
    }
    *p++ = 5 << 3 | 2; /* data: packed floats */
    p += put_varint(p, count * 4);
    memcpy(p, v, count * 4);
    p += count * 4;
    size_t size = (size_t)(p - buf);
    write_bytes(tpath(name), false, buf, size);
    free(buf);
    return size;
}

/* The mean image of the IDX test set's pattern: pix(i, y, x) - i * 25. */
static void write_pattern_mean(const char *name, int c, int h, int w, bool shape_field)
{
    float v[3 * IH * IW];
    for (int i = 0; i < c * h * w; i++) v[i] = (float)pix(0, i / w % h, i % w);
    write_blobproto(name, 1, c, h, w, v, shape_field);
}

/* Every value of each sample equals (25 * image - 0) * scale only when the
 * mean image is subtracted at the source pixel the crop and mirror read. */
START_TEST(test_mean_file)
{
    write_mnist_like(false, "images.idx", "labels.idx");
    write_pattern_mean("mean.binaryproto", 1, IH, IW, false);
    write_pattern_mean("shape.binaryproto", 1, IH, IW, true);
    char tf[600];
    snprintf(tf, sizeof tf, "crop_size: 3 mirror: true scale: 0.5 mean_file: '%s'",
             tpath("mean.binaryproto"));
    cnn_net *n = cnn_test_net(data_proto("", tf), CNN_TRAIN);
    expect_shape(n, "data", "4x1x3x3");
    for (int b = 0; b < 6; b++) {
        forward(n);
        const float *d = cnn_net_blob(n, "data")->data;
        for (int j = 0; j < 4; j++)
            for (int p = 0; p < 9; p++)
                ck_assert_float_eq(d[j * 9 + p], 25.f * ((b * 4 + j) % NIMG) * 0.5f);
    }
    cnn_net_free(n);
    snprintf(tf, sizeof tf, "mean_file: '%s'", tpath("shape.binaryproto"));
    n = cnn_test_net(data_proto("", tf), CNN_TEST);
    forward(n);
    const float *d = cnn_net_blob(n, "data")->data;
    for (int p = 0; p < 4 * IH * IW; p++) ck_assert_float_eq(d[p], 25.f * (p / (IH * IW)));
    cnn_net_free(n);
}
END_TEST

START_TEST(test_mean_file_errors)
{
    write_mnist_like(false, "images.idx", "labels.idx");
    char tf[600], want[600];
    float v[2 * 3 * IH * IW] = {0};
    struct {
        int n, c, h, w;
        const char *needle;
    } bad[] = {
        {1, 3, IH, IW, "has 3 channel(s), the data 1"},
        {1, 1, IH - 1, IW, "5x6 pixels, but the mean image"},
        {2, 1, IH, IW, "1 x C x H x W was expected, not 2x1x5x6"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        write_blobproto("m.binaryproto", bad[i].n, bad[i].c, bad[i].h, bad[i].w, v, false);
        snprintf(tf, sizeof tf, "mean_file: '%s'", tpath("m.binaryproto"));
        expect_build_error(data_proto("", tf), false, CNN_ERR_SHAPE, bad[i].needle);
    }
    /* TRAIN-time jitter alone does not excuse a mean of another size. */
    write_blobproto("m.binaryproto", 1, 1, IH - 1, IW, v, false);
    snprintf(tf, sizeof tf, "crop_size: 3 scale_jitter_max: 1.2 mean_file: '%s'",
             tpath("m.binaryproto"));
    expect_build_error(data_proto("", tf), false, CNN_ERR_SHAPE, "5x6 pixels, but the mean");
    snprintf(tf, sizeof tf, "mean_file: '%s'", tpath("m.binaryproto"));
    /* Truncated: the packed floats end early. */
    size_t size = write_blobproto("m.binaryproto", 1, 1, IH, IW, v, false);
    ck_assert_int_eq(truncate(tpath("m.binaryproto"), (off_t)size - 5), 0);
    snprintf(want, sizeof want, "%s: byte", tpath("m.binaryproto"));
    expect_build_error(data_proto("", tf), false, CNN_ERR_FORMAT, want);
    expect_build_error(data_proto("", tf), false, CNN_ERR_FORMAT, "not a .binaryproto?");
    write_bytes(tpath("m.binaryproto"), false, "", 0);
    expect_build_error(data_proto("", tf), false, CNN_ERR_FORMAT, "empty file");
    snprintf(tf, sizeof tf, "mean_value: 1 mean_file: '%s'", tpath("m.binaryproto"));
    expect_build_error(data_proto("", tf), false, CNN_ERR_CONFIG, "not both");
}
END_TEST

/* ImageData: resized images read the mean at the same relative position;
 * images of another size than the mean are an error naming them. */
START_TEST(test_image_data_mean_file)
{
    write_solid_png("a.png", 8, 6, 200, 100, 0);
    write_solid_png("b.png", 12, 9, 200, 100, 0);
    write_text("list.txt", "a.png 0\nb.png 1\n");
    float v[3 * 4 * 4];
    for (int i = 0; i < 48; i++) v[i] = i < 16 ? 200.f : i < 32 ? 100.f : 0.f;
    write_blobproto("m.binaryproto", 1, 3, 4, 4, v, false);
    char tf[600];
    for (int rotate = 0; rotate < 2; rotate++) {
        snprintf(tf, sizeof tf, "resize_shorter: 5 crop_size: 5 mirror: true %s mean_file: "
                 "'%s'", rotate ? "max_rotation: 10" : "", tpath("m.binaryproto"));
        cnn_net *n = cnn_test_net(image_proto("batch_size: 2", tf), CNN_TRAIN);
        for (int b = 0; b < 3; b++) {
            forward(n);
            const cnn_tensor *d = cnn_net_blob(n, "data");
            for (size_t i = 0; i < d->count; i++) ck_assert_float_eq(d->data[i], 0.f);
        }
        cnn_net_free(n);
    }
    /* Blocky 10x12 images and a 5x6 mean of the blocks' values: with
     * resize_shorter the mean is read at the same relative position, so every
     * output is 0, through crops and mirrors too. */
    cnn_image im;
    ck_assert_int_eq(cnn_image_alloc(&im, 10, 12, 3), CNN_OK);
    float blocks[3 * 5 * 6];
    for (int y = 0; y < 10; y++)
        for (int x = 0; x < 12; x++)
            for (int c = 0; c < 3; c++) {
                int value = 20 * (y / 2) + 3 * (x / 2) + 50 * c;
                im.data[(y * 12 + x) * 3 + c] = (uint8_t)value;
                blocks[(c * 5 + y / 2) * 6 + x / 2] = (float)value;
            }
    ck_assert_int_eq(cnn_image_write_png(tpath("blocky.png"), &im), CNN_OK);
    cnn_image_free(&im);
    write_text("list.txt", "blocky.png 0\n");
    write_blobproto("blocks.binaryproto", 1, 3, 5, 6, blocks, true);
    for (int train = 0; train < 2; train++) {
        snprintf(tf, sizeof tf, "resize_shorter: 10 %s mean_file: '%s'",
                 train ? "crop_size: 6 mirror: true" : "", tpath("blocks.binaryproto"));
        cnn_net *n = cnn_test_net(image_proto("batch_size: 4", tf), train ? CNN_TRAIN : CNN_TEST);
        forward(n);
        const cnn_tensor *d = cnn_net_blob(n, "data");
        for (size_t i = 0; i < d->count; i++) ck_assert_float_eq(d->data[i], 0.f);
        cnn_net_free(n);
    }
    write_text("list.txt", "a.png 0\nb.png 1\n");
    snprintf(tf, sizeof tf, "crop_size: 4 mean_file: '%s'", tpath("m.binaryproto"));
    expect_build_error(image_proto("", tf), false, CNN_ERR_SHAPE,
                       "a.png: 8x6 pixels, but the mean image");
    write_solid_png("c.png", 4, 4, 200, 100, 0);
    write_text("list.txt", "c.png 0\na.png 1\n");
    cnn_net *n = cnn_test_net(image_proto("batch_size: 2", tf), CNN_TRAIN);
    ck_assert_int_eq(cnn_net_forward(n, NULL), CNN_ERR_SHAPE);
    ck_assert_msg(strstr(cnn_error_message(), "a.png: 8x6 pixels, but the mean image"), "%s",
                  cnn_error_message());
    cnn_net_free(n);
}
END_TEST

/* Input layers (the tools' preprocessing) take a mean image's per-channel
 * averages, as Caffe's classification example does; cnninfo does not read it. */
START_TEST(test_input_mean_file)
{
    float v[5 * 2 * 3];
    for (int i = 0; i < 30; i++) v[i] = (float)(i / 6 * 10 + i % 6); /* channel c: 10c + 0..5 */
    write_blobproto("m.binaryproto", 1, 3, 2, 3, v, false);
    char proto[800];
    const char *fmt = "layer { name: 'in' type: 'Input' top: 'x'\n"
                      "  input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } }\n"
                      "  transform_param { scale: 2 mean_file: '%s' } }\n";
    snprintf(proto, sizeof proto, fmt, tpath("m.binaryproto"));
    cnn_net *n = cnn_test_net(proto, CNN_TEST);
    cnn_transform tf;
    ck_assert(cnn_net_input_transform(n, "x", &tf));
    ck_assert_int_eq(tf.n_mean, 3);
    for (int c = 0; c < 3; c++) ck_assert_float_eq(tf.mean[c], 10.f * c + 2.5f);
    ck_assert_float_eq(tf.scale, 2.f);
    cnn_net_free(n);
    write_blobproto("m.binaryproto", 1, 5, 2, 3, v, false);
    expect_build_error(proto, false, CNN_ERR_SHAPE, "a mean image of 5 channels; at most 4");
    snprintf(proto, sizeof proto, fmt, tpath("none.binaryproto"));
    expect_build_error(proto, false, CNN_ERR_IO, "none.binaryproto: cannot open");
    cnn_status st;
    n = build(proto, CNN_TEST, true, &st);
    ck_assert_msg(st == CNN_OK, "shapes only: %s", cnn_error_message());
    cnn_net_free(n);
}
END_TEST

/* ---- export ---------------------------------------------------------------------- */

START_TEST(test_export)
{
    write_mnist_like(true, "images.idx.gz", "labels.idx.gz");
    cnn_dataset *d = NULL, *list = NULL;
    ck_assert_int_eq(cnn_dataset_load_idx(tpath("images.idx.gz"), tpath("labels.idx.gz"), &d),
                     CNN_OK);
    ck_assert_msg(cnn_dataset_export_png(d, tpath("out"), 0, NULL, 0) == CNN_OK, "%s",
                  cnn_error_message());
    ck_assert_int_eq(cnn_dataset_load_list(tpath("out/list.txt"), NULL, true, &list), CNN_OK);
    ck_assert_uint_eq(list->n, NIMG);
    for (int i = 0; i < NIMG; i++) {
        cnn_image im;
        ck_assert_int_eq(cnn_image_read(list->paths[i], 0, &im), CNN_OK);
        ck_assert(im.c == 1 && im.h == IH && im.w == IW);
        ck_assert_mem_eq(im.data, d->pixels + i * IH * IW, IH * IW);
        ck_assert_int_eq(list->labels[i], label_of(i));
        cnn_image_free(&im);
    }
    ck_assert_ptr_nonnull(strstr(list->paths[3], "out/00003.png"));
    cnn_dataset_free(list);
    const char *names[10] = {"T-shirt/top", "b", "c", "d", "e", "f", "g", "Ankle boot", "i",
                             "j"};
    ck_assert_int_eq(cnn_dataset_export_png(d, tpath("named"), 4, names, 10), CNN_OK);
    ck_assert_int_eq(cnn_dataset_load_list(tpath("named/list.txt"), NULL, true, &list),
                     CNN_OK);
    ck_assert_uint_eq(list->n, 4);
    ck_assert_ptr_nonnull(strstr(list->paths[0], "named/T-shirt_top/00000.png"));
    ck_assert_ptr_nonnull(strstr(list->paths[1], "named/Ankle_boot/00001.png"));
    cnn_dataset_free(list);
    ck_assert_int_eq(cnn_dataset_export_png(d, tpath("few"), 0, names, 3), CNN_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(cnn_error_message(), "has label 7, but only 3 class names"));
    cnn_dataset_free(d);
}
END_TEST

/* ---- Fashion-MNIST --------------------------------------------------------------- */

START_TEST(test_fashion_mnist_headers)
{
    const char *dir = "/usr/share/datasets/fashion-mnist";
    char p[256];
    snprintf(p, sizeof p, "%s/train-images-idx3-ubyte.gz", dir);
    if (access(p, R_OK) != 0) {
        printf("check_data: SKIP Fashion-MNIST (%s absent)\n", dir);
        return;
    }
    const struct {
        const char *file;
        int ndim, n;
    } f[] = {{"train-images-idx3-ubyte.gz", 3, 60000}, {"train-labels-idx1-ubyte.gz", 1, 60000},
             {"t10k-images-idx3-ubyte.gz", 3, 10000}, {"t10k-labels-idx1-ubyte.gz", 1, 10000}};
    for (int i = 0; i < 4; i++) {
        int ndim, dims[4];
        snprintf(p, sizeof p, "%s/%s", dir, f[i].file);
        ck_assert_msg(cnn_idx_header(p, &ndim, dims) == CNN_OK, "%s", cnn_error_message());
        ck_assert_int_eq(ndim, f[i].ndim);
        ck_assert_int_eq(dims[0], f[i].n);
        if (ndim == 3) ck_assert(dims[1] == 28 && dims[2] == 28);
    }
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("data");
    TCase *tc = tcase_create("data");
    tcase_add_checked_fixture(tc, tmp_setup, tmp_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_idx_raw_and_gzip);
    tcase_add_test(tc, test_idx_errors);
    tcase_add_test(tc, test_data_values);
    tcase_add_test(tc, test_data_crop_mirror);
    tcase_add_test(tc, test_data_shuffle);
    tcase_add_test(tc, test_data_seek);
    tcase_add_test(tc, test_data_errors);
    tcase_add_test(tc, test_cifar);
    tcase_add_test(tc, test_shapes_only);
    tcase_add_test(tc, test_caffe_train_val_shapes);
    tcase_add_test(tc, test_loader);
    tcase_add_test(tc, test_png_round_trip);
    tcase_add_test(tc, test_png_depths_and_palette);
    tcase_add_test(tc, test_jpeg);
    tcase_add_test(tc, test_png_corrupt);
    tcase_add_test(tc, test_resize_crop);
    tcase_add_test(tc, test_image_data);
    tcase_add_test(tc, test_image_data_errors);
    tcase_add_test(tc, test_mean_file);
    tcase_add_test(tc, test_mean_file_errors);
    tcase_add_test(tc, test_image_data_mean_file);
    tcase_add_test(tc, test_input_mean_file);
    tcase_add_test(tc, test_export);
    tcase_add_test(tc, test_fashion_mnist_headers);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return cnn_test_run(suite()) != 0; }
