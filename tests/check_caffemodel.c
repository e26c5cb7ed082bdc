/* check_caffemodel.c — the .caffemodel reader: files written here in the
 * protobuf wire format (V2 `layer`, V1 `layers` with legacy 4-d blobs, V0
 * layers inside V1 ones, packed and unpacked values, double_data, unknown
 * fields) read back to exactly the values written; every truncation length
 * and thousands of random byte flips give a clean error or a valid result,
 * never a crash, under a 256 MiB address-space limit; the weights-file
 * interface and cnn_weights_load_any over both formats. */
#include <sys/resource.h>
#include <unistd.h>

#include "core/caffemodel.h"
#include "core/weights.h"
#include "testutil.h"

/* ---- a tiny protobuf writer ----------------------------------------------- */

typedef struct {
    unsigned char *b;
    size_t n, cap;
} pbuf;

static void put(pbuf *p, const void *src, size_t n)
{
    if (p->n + n > p->cap) {
        p->cap = (p->n + n) * 2 + 64;
        p->b = realloc(p->b, p->cap);
        ck_assert_ptr_nonnull(p->b);
    }
    if (n) memcpy(p->b + p->n, src, n);
    p->n += n;
}

static void varint(pbuf *p, uint64_t v)
{
    unsigned char c;
    do {
        c = (unsigned char)(v & 0x7f);
        v >>= 7;
        if (v) c |= 0x80;
        put(p, &c, 1);
    } while (v);
}

static void key(pbuf *p, uint32_t field, int wire) { varint(p, ((uint64_t)field << 3) | wire); }

static void field_varint(pbuf *p, uint32_t f, uint64_t v)
{
    key(p, f, 0);
    varint(p, v);
}

static void field_bytes(pbuf *p, uint32_t f, const void *b, size_t n)
{
    key(p, f, 2);
    varint(p, n);
    put(p, b, n);
}

static void field_str(pbuf *p, uint32_t f, const char *s) { field_bytes(p, f, s, strlen(s)); }

/* Moves sub into p as field f, freeing sub. */
static void field_msg(pbuf *p, uint32_t f, pbuf *sub)
{
    field_bytes(p, f, sub->b, sub->n);
    free(sub->b);
    memset(sub, 0, sizeof *sub);
}

static void field_packed_floats(pbuf *p, uint32_t f, const float *v, size_t n)
{
    field_bytes(p, f, v, n * sizeof(float));
}

/* A BlobProto with `shape` (BlobShape, packed dims) and packed float data. */
static void blob_shape(pbuf *blob, const int *dims, int nd, const float *v, size_t n)
{
    pbuf sh = {0}, packed = {0};
    for (int i = 0; i < nd; i++) varint(&packed, (uint64_t)dims[i]);
    field_msg(&sh, 1, &packed);
    field_msg(blob, 7, &sh);
    field_packed_floats(blob, 5, v, n);
}

/* A BlobProto with the legacy num/channels/height/width fields. */
static void blob_legacy(pbuf *blob, int num, int ch, int h, int w, const float *v, size_t n)
{
    field_varint(blob, 1, (uint64_t)num);
    field_varint(blob, 2, (uint64_t)ch);
    field_varint(blob, 3, (uint64_t)h);
    field_varint(blob, 4, (uint64_t)w);
    field_packed_floats(blob, 5, v, n);
}

static float conv_w[24], conv_b[2], ip_w[6], ip_b[3];

static void init_values(void)
{
    for (int i = 0; i < 24; i++) conv_w[i] = (float)i * 0.5f - 3.25f;
    conv_b[0] = 1e-20f;
    conv_b[1] = -7.f;
    for (int i = 0; i < 6; i++) ip_w[i] = (float)(i * i) / 3.f;
    ip_b[0] = 0.1f;
    ip_b[1] = -0.2f;
    ip_b[2] = 3.4028235e38f;
}

/* NetParameter with V2 layers: data (no blobs), conv1 (2 blobs), ip1 (2 blobs,
 * the weight's shape unpacked and its values as unpacked fixed32), plus
 * fields a reader must skip (phase, include, a double, a fixed32). */
static pbuf model_v2(void)
{
    pbuf net = {0}, layer = {0}, blob = {0};
    field_str(&net, 1, "tiny");
    field_str(&layer, 1, "data");
    field_str(&layer, 2, "Input");
    field_str(&layer, 4, "data"); /* top */
    field_msg(&net, 100, &layer);

    field_str(&layer, 1, "conv1");
    field_str(&layer, 2, "Convolution");
    field_varint(&layer, 10, 0); /* phase */
    blob_shape(&blob, (int[]){2, 3, 2, 2}, 4, conv_w, 24);
    field_msg(&layer, 7, &blob);
    blob_shape(&blob, (int[]){2}, 1, conv_b, 2);
    field_msg(&layer, 7, &blob);
    key(&layer, 106, 1); /* an unknown fixed64 */
    put(&layer, "\1\2\3\4\5\6\7\10", 8);
    field_msg(&net, 100, &layer);

    field_str(&layer, 2, "InnerProduct"); /* type before name */
    pbuf sh = {0};
    field_varint(&sh, 1, 3);
    field_varint(&sh, 1, 2);
    field_msg(&blob, 7, &sh);
    for (int i = 0; i < 6; i++) {
        key(&blob, 5, 5);
        put(&blob, &ip_w[i], 4);
    }
    field_msg(&layer, 7, &blob);
    field_str(&layer, 1, "ip1");
    blob_shape(&blob, (int[]){3}, 1, ip_b, 3);
    key(&blob, 6, 2); /* diff, skipped */
    varint(&blob, 4);
    put(&blob, "\0\0\0\0", 4);
    field_msg(&layer, 7, &blob);
    key(&layer, 200, 5); /* unknown fixed32 */
    put(&layer, "abcd", 4);
    field_msg(&net, 100, &layer);
    return net;
}

/* The same weights as a V1 file: legacy 4-d blobs (the InnerProduct weight
 * 1x1x3x2, its bias 1x1x1x3 as double_data), type as an enum, and a layer that
 * wraps a V0 layer. */
static pbuf model_v1(void)
{
    pbuf net = {0}, layer = {0}, blob = {0}, v0 = {0};
    field_str(&net, 1, "tiny_v1");
    field_str(&layer, 4, "conv1");
    field_varint(&layer, 5, 4); /* CONVOLUTION */
    blob_legacy(&blob, 2, 3, 2, 2, conv_w, 24);
    field_msg(&layer, 6, &blob);
    blob_legacy(&blob, 1, 1, 1, 2, conv_b, 2);
    field_msg(&layer, 6, &blob);
    field_msg(&net, 2, &layer);

    field_str(&layer, 4, "relu1");
    field_varint(&layer, 5, 18);
    field_msg(&net, 2, &layer);

    field_str(&v0, 1, "ip1");
    field_str(&v0, 2, "innerproduct");
    blob_legacy(&blob, 1, 1, 3, 2, ip_w, 6);
    field_msg(&v0, 50, &blob);
    field_varint(&blob, 1, 1);
    field_varint(&blob, 2, 1);
    field_varint(&blob, 3, 1);
    field_varint(&blob, 4, 3);
    double d[3] = {ip_b[0], ip_b[1], ip_b[2]};
    field_bytes(&blob, 8, d, sizeof d);
    field_msg(&v0, 50, &blob);
    field_msg(&layer, 1, &v0);
    field_msg(&net, 2, &layer);
    return net;
}

static void expect_blob(const cnn_caffemodel *m, int i, const char *name, const char *type,
                        int ndim, const int *shape, const float *v, size_t n, bool legacy)
{
    ck_assert_int_lt(i, m->n);
    const cnn_caffemodel_blob *b = &m->blob[i];
    ck_assert_str_eq(b->name, name);
    ck_assert_str_eq(b->type, type);
    ck_assert_int_eq(b->ndim, ndim);
    for (int d = 0; d < ndim; d++) ck_assert_int_eq(b->shape[d], shape[d]);
    ck_assert_uint_eq(b->count, n);
    ck_assert_int_eq(b->legacy, legacy);
    ck_assert_msg(!memcmp(b->data, v, n * sizeof(float)), "%s: values differ", name);
}

START_TEST(reads_v2)
{
    init_values();
    pbuf p = model_v2();
    cnn_caffemodel *m = NULL;
    ck_assert_msg(cnn_caffemodel_parse(p.b, p.n, "v2", &m) == CNN_OK, "%s",
                  cnn_error_message());
    ck_assert_str_eq(m->net_name, "tiny");
    ck_assert_int_eq(m->n, 4);
    ck_assert_int_eq(m->n_layers, 2);
    expect_blob(m, 0, "conv1.0", "Convolution", 4, (int[]){2, 3, 2, 2}, conv_w, 24, false);
    expect_blob(m, 1, "conv1.1", "Convolution", 1, (int[]){2}, conv_b, 2, false);
    expect_blob(m, 2, "ip1.0", "InnerProduct", 2, (int[]){3, 2}, ip_w, 6, false);
    expect_blob(m, 3, "ip1.1", "InnerProduct", 1, (int[]){3}, ip_b, 3, false);
    cnn_caffemodel_free(m);
    free(p.b);
}
END_TEST

START_TEST(reads_v1_and_v0)
{
    init_values();
    pbuf p = model_v1();
    cnn_caffemodel *m = NULL;
    ck_assert_msg(cnn_caffemodel_parse(p.b, p.n, "v1", &m) == CNN_OK, "%s",
                  cnn_error_message());
    ck_assert_str_eq(m->net_name, "tiny_v1");
    ck_assert_int_eq(m->n, 4);
    expect_blob(m, 0, "conv1.0", "Convolution", 4, (int[]){2, 3, 2, 2}, conv_w, 24, true);
    expect_blob(m, 1, "conv1.1", "Convolution", 4, (int[]){1, 1, 1, 2}, conv_b, 2, true);
    expect_blob(m, 2, "ip1.0", "innerproduct", 4, (int[]){1, 1, 3, 2}, ip_w, 6, true);
    expect_blob(m, 3, "ip1.1", "innerproduct", 4, (int[]){1, 1, 1, 3}, ip_b, 3, true);
    int sq[CNN_MAX_DIMS];
    ck_assert_int_eq(cnn_caffemodel_squeeze(m->blob[2].shape, 4, sq), 2);
    ck_assert_int_eq(sq[0], 3);
    ck_assert_int_eq(sq[1], 2);
    cnn_caffemodel_free(m);
    free(p.b);
}
END_TEST

START_TEST(shape_compatibility)
{
    ck_assert(cnn_shape_compatible((int[]){1, 1, 3, 2}, 4, (int[]){3, 2}, 2));
    ck_assert(cnn_shape_compatible((int[]){1, 1, 1, 3}, 4, (int[]){3}, 1));
    ck_assert(cnn_shape_compatible((int[]){1, 3, 2, 2}, 4, (int[]){3, 2, 2}, 3));
    ck_assert(!cnn_shape_compatible((int[]){3, 2}, 2, (int[]){2, 3}, 2));
    ck_assert(!cnn_shape_compatible((int[]){3, 1}, 2, (int[]){3}, 1));
    ck_assert(cnn_shape_compatible((int[]){1}, 1, NULL, 0));
}
END_TEST

/* Expects parsing to fail with CNN_ERR_FORMAT and a message with `needle`. */
static void expect_fails(const pbuf *p, const char *needle)
{
    cnn_caffemodel *m = NULL;
    cnn_status st = cnn_caffemodel_parse(p->b, p->n, "bad.caffemodel", &m);
    ck_assert_msg(st == CNN_ERR_FORMAT || st == CNN_ERR_UNSUPPORTED,
                  "status %d for '%s' (%s)", st, needle, cnn_error_message());
    ck_assert_ptr_null(m);
    ck_assert_msg(strstr(cnn_error_message(), "bad.caffemodel"), "no file name in '%s'",
                  cnn_error_message());
    ck_assert_msg(strstr(cnn_error_message(), needle), "message '%s' lacks '%s'",
                  cnn_error_message(), needle);
}

START_TEST(malformed)
{
    init_values();
    pbuf p = {0}, layer = {0}, blob = {0};
    expect_fails(&p, "no layers");
    /* Not protobuf at all: text. */
    put(&p, "name: \"LeNet\"\n", 14);
    expect_fails(&p, "byte");
    p.n = 0;
    /* A length far past the end. */
    key(&p, 100, 2);
    varint(&p, 1ull << 40);
    expect_fails(&p, "length runs past the end");
    p.n = 0;
    /* An 11-byte varint. */
    put(&p, "\x18\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 12);
    expect_fails(&p, "varint");
    p.n = 0;
    /* A group (wire type 3). */
    key(&p, 5, 3);
    expect_fails(&p, "wire type");
    p.n = 0;
    /* Shape says 8 values, data has 6. */
    field_str(&layer, 1, "ip");
    blob_shape(&blob, (int[]){2, 4}, 2, ip_w, 6);
    field_msg(&layer, 7, &blob);
    field_msg(&p, 100, &layer);
    expect_fails(&p, "holds 8 values but it has 6");
    p.n = 0;
    /* A dimension over INT_MAX, and a huge legacy count with no data. */
    field_str(&layer, 1, "ip");
    blob_shape(&blob, (int[]){1}, 1, ip_w, 1);
    pbuf sh = {0};
    field_varint(&sh, 1, 1ull << 33);
    field_msg(&blob, 7, &sh);
    field_msg(&layer, 7, &blob);
    field_msg(&p, 100, &layer);
    expect_fails(&p, "dimension");
    p.n = 0;
    field_str(&layer, 1, "ip");
    field_varint(&blob, 1, 100000);
    field_varint(&blob, 2, 100000);
    field_varint(&blob, 3, 100000);
    field_varint(&blob, 4, 100000);
    field_msg(&layer, 7, &blob);
    field_msg(&p, 100, &layer);
    expect_fails(&p, "but it has 0 data values");
    p.n = 0;
    /* Seven dimensions. */
    field_str(&layer, 1, "ip");
    blob_shape(&blob, (int[]){1, 1, 1, 1, 1, 1, 1}, 7, ip_w, 1);
    field_msg(&layer, 7, &blob);
    field_msg(&p, 100, &layer);
    expect_fails(&p, "7 dimensions");
    p.n = 0;
    /* A packed float array of 5 bytes. */
    field_str(&layer, 1, "ip");
    field_bytes(&blob, 5, "abcde", 5);
    field_msg(&layer, 7, &blob);
    field_msg(&p, 100, &layer);
    expect_fails(&p, "multiple of the value size");
    p.n = 0;
    /* Blobs without a layer name; a name twice; a name with a NUL. */
    blob_shape(&blob, (int[]){1}, 1, ip_w, 1);
    field_msg(&layer, 7, &blob);
    field_msg(&p, 100, &layer);
    expect_fails(&p, "has no name");
    p.n = 0;
    for (int k = 0; k < 2; k++) {
        field_str(&layer, 1, "twice");
        blob_shape(&blob, (int[]){1}, 1, ip_w, 1);
        field_msg(&layer, 7, &blob);
        field_msg(&p, 100, &layer);
    }
    expect_fails(&p, "'twice' appears twice");
    p.n = 0;
    field_bytes(&layer, 1, "a\0b", 3);
    field_msg(&p, 100, &layer);
    expect_fails(&p, "NUL");
    /* Wrong wire type for the layer field. */
    p.n = 0;
    field_varint(&p, 100, 5);
    expect_fails(&p, "wire type 0, expected 2");
    free(p.b);
    free(layer.b);
    free(blob.b);
}
END_TEST

/* Caps the address space so an unbounded allocation fails instead of
 * succeeding lazily (Check runs each test in its own process). */
static void limit_memory(void)
{
    struct rlimit rl = {256ull << 20, 256ull << 20};
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long pages = 0;
    if (f && fscanf(f, "%lu", &pages) == 1)
        rl.rlim_cur = rl.rlim_max = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + (256ull << 20);
    if (f) fclose(f);
    ck_assert_int_eq(setrlimit(RLIMIT_AS, &rl), 0);
}

/* Parses every prefix of the V2 and V1 files: each must fail cleanly or,
 * at a message boundary, give a model whose blobs are a prefix of the full
 * file's with the full values. */
START_TEST(fuzz_truncation)
{
    init_values();
    limit_memory();
    pbuf files[2] = {model_v2(), model_v1()};
    for (int k = 0; k < 2; k++) {
        cnn_caffemodel *full = NULL;
        ck_assert_int_eq(cnn_caffemodel_parse(files[k].b, files[k].n, "full", &full), CNN_OK);
        int ok = 0;
        for (size_t len = 0; len < files[k].n; len++) {
            unsigned char *copy = malloc(len ? len : 1); /* exact size: overreads trip ASan */
            memcpy(copy, files[k].b, len);
            cnn_caffemodel *m = NULL;
            cnn_status st = cnn_caffemodel_parse(copy, len, "cut.caffemodel", &m);
            if (st == CNN_OK) {
                ok++;
                ck_assert_int_le(m->n, full->n);
                for (int i = 0; i < m->n; i++) {
                    ck_assert_str_eq(m->blob[i].name, full->blob[i].name);
                    ck_assert_uint_eq(m->blob[i].count, full->blob[i].count);
                    ck_assert(!memcmp(m->blob[i].data, full->blob[i].data,
                                      m->blob[i].count * sizeof(float)));
                }
            } else {
                ck_assert_msg(st == CNN_ERR_FORMAT, "len %zu: status %d", len, st);
                ck_assert_msg(strstr(cnn_error_message(), "cut.caffemodel"), "%s",
                              cnn_error_message());
            }
            cnn_caffemodel_free(m);
            free(copy);
        }
        ck_assert_int_lt(ok, 5); /* only the few message boundaries */
        cnn_caffemodel_free(full);
        free(files[k].b);
    }
}
END_TEST

START_TEST(fuzz_flips)
{
    init_values();
    limit_memory();
    pbuf files[2] = {model_v2(), model_v1()};
    cnn_rng r;
    cnn_rng_seed(&r, 12345);
    int errors = 0, oks = 0;
    for (int iter = 0; iter < 6000; iter++) {
        const pbuf *f = &files[iter % 2];
        unsigned char *copy = malloc(f->n);
        memcpy(copy, f->b, f->n);
        int flips = 1 + (int)cnn_rng_below(&r, 4);
        for (int k = 0; k < flips; k++) {
            size_t at = cnn_rng_below(&r, (uint32_t)f->n);
            if (cnn_rng_below(&r, 2)) copy[at] ^= (unsigned char)(1u << cnn_rng_below(&r, 8));
            else copy[at] = (unsigned char)cnn_rng_below(&r, 256);
        }
        cnn_caffemodel *m = NULL;
        cnn_status st = cnn_caffemodel_parse(copy, f->n, "flip.caffemodel", &m);
        if (st == CNN_OK) {
            oks++;
            for (int i = 0; i < m->n; i++) {
                size_t c = 1;
                for (int d = 0; d < m->blob[i].ndim; d++) c *= (size_t)m->blob[i].shape[d];
                ck_assert_uint_eq(c, m->blob[i].count);
                ck_assert_uint_le(m->blob[i].count * 4, f->n);
            }
        } else {
            errors++;
            ck_assert_msg(st == CNN_ERR_FORMAT || st == CNN_ERR_UNSUPPORTED, "status %d: %s",
                          st, cnn_error_message());
            ck_assert(strlen(cnn_error_message()) > 0);
        }
        cnn_caffemodel_free(m);
        free(copy);
    }
    ck_assert_int_gt(errors, 100);
    ck_assert_int_gt(oks, 100); /* flips inside float values keep the file valid */
    free(files[0].b);
    free(files[1].b);
}
END_TEST

/* ---- files and cnn_weights_load_any --------------------------------------- */

static char tmpdir[64];

static void setup_tmp(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/cnn_caffemodel_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown_tmp(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    ck_assert_int_eq(system(cmd), 0);
}

static const char *tmp_path(const char *name)
{
    static char buf[4][256];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
    return buf[k];
}

static void write_file(const char *path, const pbuf *p)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(p->b, 1, p->n, f), p->n);
    ck_assert_int_eq(fclose(f), 0);
}

/* A net whose conv1 and ip1 have the shapes of model_v2/model_v1. */
static const char *NET =
    "layer { name: \"data\" type: \"Input\" top: \"data\" "
    "input_param { shape { dim: 1 dim: 3 dim: 3 dim: 3 } } }\n"
    "layer { name: \"conv1\" type: \"Convolution\" bottom: \"data\" top: \"c\" "
    "convolution_param { num_output: 2 kernel_size: 2 stride: 2 } }\n"
    "layer { name: \"ip1\" type: \"InnerProduct\" bottom: \"c\" top: \"y\" "
    "inner_product_param { num_output: 3 } }\n";

static void expect_net_values(cnn_net *n)
{
    ck_assert(!memcmp(cnn_net_param(n, "conv1", 0)->data, conv_w, sizeof conv_w));
    ck_assert(!memcmp(cnn_net_param(n, "conv1", 1)->data, conv_b, sizeof conv_b));
    ck_assert(!memcmp(cnn_net_param(n, "ip1", 0)->data, ip_w, sizeof ip_w));
    ck_assert(!memcmp(cnn_net_param(n, "ip1", 1)->data, ip_b, sizeof ip_b));
}

START_TEST(load_any_both_formats)
{
    init_values();
    pbuf v2 = model_v2(), v1 = model_v1();
    write_file(tmp_path("v2.caffemodel"), &v2);
    write_file(tmp_path("v1.bin"), &v1); /* the extension does not matter */
    for (int k = 0; k < 2; k++) {
        cnn_net *n = cnn_test_net(NET, CNN_TEST);
        const char *path = tmp_path(k ? "v1.bin" : "v2.caffemodel");
        ck_assert(!cnn_weights_is_safetensors(path));
        ck_assert_msg(cnn_weights_load_any(n, path, false) == CNN_OK, "%s",
                      cnn_error_message());
        expect_net_values(n);
        /* Saved as safetensors, loaded again through the same door. */
        const char *st = tmp_path("saved.safetensors");
        ck_assert_int_eq(cnn_weights_save(n, st), CNN_OK);
        ck_assert(cnn_weights_is_safetensors(st));
        cnn_net *m = cnn_test_net(NET, CNN_TEST);
        ck_assert_msg(cnn_weights_load_any(m, st, false) == CNN_OK, "%s", cnn_error_message());
        expect_net_values(m);
        cnn_net_free(m);
        cnn_net_free(n);
    }
    free(v2.b);
    free(v1.b);
}
END_TEST

START_TEST(load_any_errors)
{
    init_values();
    pbuf v2 = model_v2();
    write_file(tmp_path("v2.caffemodel"), &v2);
    /* ip1 has 4 outputs here: shape mismatch, and the net stays as it was. */
    char text[1024];
    snprintf(text, sizeof text, "%s", NET);
    char *at = strstr(text, "num_output: 3");
    at[12] = '4';
    cnn_net *n = cnn_test_net(text, CNN_TEST);
    float before = cnn_net_param(n, "conv1", 0)->data[0];
    cnn_status st = cnn_weights_load_any(n, tmp_path("v2.caffemodel"), true);
    ck_assert_int_eq(st, CNN_ERR_SHAPE);
    ck_assert_msg(strstr(cnn_error_message(), "ip1.0: file has 3x2, net has 4x2"), "%s",
                  cnn_error_message());
    ck_assert(cnn_net_param(n, "conv1", 0)->data[0] == before);
    cnn_net_free(n);
    /* A net with an extra layer: error unless partial. */
    snprintf(text, sizeof text, "%slayer { name: \"ip2\" type: \"InnerProduct\" bottom: \"y\" "
             "top: \"z\" inner_product_param { num_output: 2 } }\n", NET);
    n = cnn_test_net(text, CNN_TEST);
    st = cnn_weights_load_any(n, tmp_path("v2.caffemodel"), false);
    ck_assert_int_eq(st, CNN_ERR_FORMAT);
    ck_assert_msg(strstr(cnn_error_message(), "no tensor 'ip2.0'"), "%s", cnn_error_message());
    ck_assert_int_eq(cnn_weights_load_any(n, tmp_path("v2.caffemodel"), true), CNN_OK);
    expect_net_values(n);
    cnn_net_free(n);
    /* Missing and damaged files name the file. */
    n = cnn_test_net(NET, CNN_TEST);
    ck_assert_int_eq(cnn_weights_load_any(n, tmp_path("absent.caffemodel"), false), CNN_ERR_IO);
    ck_assert(strstr(cnn_error_message(), "absent.caffemodel"));
    v2.n /= 2;
    write_file(tmp_path("half.caffemodel"), &v2);
    ck_assert_int_eq(cnn_weights_load_any(n, tmp_path("half.caffemodel"), false),
                     CNN_ERR_FORMAT);
    ck_assert(strstr(cnn_error_message(), "half.caffemodel"));
    cnn_net_free(n);
    free(v2.b);
}
END_TEST

START_TEST(weights_file_interface)
{
    init_values();
    pbuf v1 = model_v1();
    write_file(tmp_path("v1.caffemodel"), &v1);
    cnn_weights_file *f = NULL;
    ck_assert_int_eq(cnn_weights_file_open(tmp_path("v1.caffemodel"), &f), CNN_OK);
    ck_assert_str_eq(cnn_weights_file_kind(f), "caffemodel");
    ck_assert_int_eq(cnn_weights_file_count(f), 4);
    ck_assert_str_eq(cnn_weights_file_name(f, 2), "ip1.0");
    int i = cnn_weights_file_find(f, "ip1.1"), nd, shape[CNN_MAX_DIMS];
    const float *d = NULL;
    ck_assert_int_eq(i, 3);
    ck_assert_int_eq(cnn_weights_file_find(f, "ip1.2"), -1);
    ck_assert_int_eq(cnn_weights_file_get(f, i, &nd, shape, &d), CNN_OK);
    ck_assert_int_eq(nd, 4);
    ck_assert(!memcmp(d, ip_b, sizeof ip_b));
    cnn_weights_file_close(f);
    const int s[1] = {3};
    cnn_safetensors_entry e = {"x.0", 1, s, ip_b};
    ck_assert_int_eq(cnn_safetensors_write(tmp_path("x.safetensors"), &e, 1, NULL), CNN_OK);
    ck_assert_int_eq(cnn_weights_file_open(tmp_path("x.safetensors"), &f), CNN_OK);
    ck_assert_str_eq(cnn_weights_file_kind(f), "safetensors");
    ck_assert_int_eq(cnn_weights_file_get(f, 0, &nd, shape, &d), CNN_OK);
    ck_assert(!memcmp(d, ip_b, sizeof ip_b));
    cnn_weights_file_close(f);
    free(v1.b);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("caffemodel");
    TCase *c = tcase_create("parse");
    tcase_add_test(c, reads_v2);
    tcase_add_test(c, reads_v1_and_v0);
    tcase_add_test(c, shape_compatibility);
    tcase_add_test(c, malformed);
    tcase_add_test(c, fuzz_truncation);
    tcase_add_test(c, fuzz_flips);
    tcase_set_timeout(c, 60);
    suite_add_tcase(s, c);
    c = tcase_create("files");
    tcase_add_checked_fixture(c, setup_tmp, teardown_tmp);
    tcase_add_test(c, load_any_both_formats);
    tcase_add_test(c, load_any_errors);
    tcase_add_test(c, weights_file_interface);
    suite_add_tcase(s, c);
    return s;
}

int main(void) { return cnn_test_run(suite()) != 0; }
