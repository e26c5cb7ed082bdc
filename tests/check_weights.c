/* check_weights.c — .safetensors weights files: the reader and writer API,
 * save/load round trips, shape mismatches, partial loads, and damaged files
 * (truncated at every header length, corrupt JSON, bad offsets, dtypes).
 * When /usr/bin/python3 has torch, PyTorch reads our files and writes one
 * for us (tests/safetensors_torch.py). */
#include <sys/wait.h>
#include <unistd.h>

#include "core/weights.h"
#include "testutil.h"

/* A small conv + inner-product net; `channels` and `ip_out` vary its shapes. */
static char *net_text(int channels, int ip_out)
{
    static char buf[1024];
    snprintf(buf, sizeof buf,
             "name: \"small\"\n"
             "layer { name: \"x\" type: \"Input\" top: \"x\" "
             "input_param { shape { dim: 2 dim: %d dim: 8 dim: 8 } } }\n"
             "layer { name: \"conv1\" type: \"Convolution\" bottom: \"x\" top: \"c\" "
             "convolution_param { num_output: 4 kernel_size: 3 stride: 2 "
             "weight_filler { type: \"gaussian\" std: 0.1 } "
             "bias_filler { type: \"uniform\" min: -1 max: 1 } } }\n"
             "layer { name: \"ip1\" type: \"InnerProduct\" bottom: \"c\" top: \"y\" "
             "inner_product_param { num_output: %d weight_filler { type: \"xavier\" } "
             "bias_filler { type: \"gaussian\" std: 1 } } }\n",
             channels, ip_out);
    return buf;
}

static cnn_net *make_net(int channels, int ip_out, uint64_t seed)
{
    cnn_net_opts o = cnn_net_default_opts();
    o.seed = seed;
    cnn_net *n = NULL;
    ck_assert_msg(cnn_net_from_string(net_text(channels, ip_out), &o, &n) == CNN_OK, "%s",
                  cnn_error_message());
    return n;
}

static char tmpdir[64];

static void setup_tmp(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/cnn_weights_XXXXXX");
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

static void write_bytes(const char *path, const void *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(b, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

static unsigned char *read_bytes(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(*n + 1);
    ck_assert_uint_eq(fread(b, 1, *n, f), *n);
    fclose(f);
    return b;
}

/* A hand-made file: length field `hlen` (0: the header's length rounded up
 * to 8), header text `json` padded with spaces to that length, then `ndata`
 * data bytes. A given `hlen` shorter than the text, or over 4096, writes the
 * text unpadded, so the field can lie. */
static void write_raw(const char *path, uint64_t hlen, const char *json, const void *data,
                      size_t ndata)
{
    size_t jl = strlen(json);
    if (!hlen) hlen = (jl + 7) & ~(size_t)7;
    size_t body = hlen > jl && hlen <= 4096 ? (size_t)hlen : jl;
    unsigned char *b = calloc(8 + body + ndata + 1, 1);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(hlen >> (8 * i));
    memcpy(b + 8, json, jl);
    memset(b + 8 + jl, ' ', body - jl);
    if (ndata) memcpy(b + 8 + body, data, ndata);
    write_bytes(path, b, 8 + body + ndata);
    free(b);
}

/* Expects loading `path` into n to fail with `want` and a message holding
 * the file name and `needle`. */
static void expect_load_fails(cnn_net *n, const char *path, bool partial, cnn_status want,
                              const char *needle)
{
    cnn_status st = cnn_weights_load(n, path, partial);
    ck_assert_msg(st == want, "status %d, want %d (%s)", st, want, cnn_error_message());
    ck_assert_msg(strstr(cnn_error_message(), path), "message '%s' does not name %s",
                  cnn_error_message(), path);
    ck_assert_msg(strstr(cnn_error_message(), needle), "message '%s' lacks '%s'",
                  cnn_error_message(), needle);
}

static bool params_equal(cnn_net *a, cnn_net *b)
{
    ck_assert_int_eq(cnn_net_num_layers(a), cnn_net_num_layers(b));
    for (int i = 0; i < cnn_net_num_layers(a); i++)
        for (int p = 0; p < cnn_net_layer_num_params(a, i); p++) {
            cnn_tensor *x = cnn_net_layer_param(a, i, p), *y = cnn_net_layer_param(b, i, p);
            ck_assert_uint_eq(x->count, y->count);
            if (memcmp(x->data, y->data, x->count * sizeof(float))) return false;
        }
    return true;
}

/* ---- reader and writer -------------------------------------------------- */

START_TEST(api_round_trip)
{
    const float a[6] = {1, -2, 3.5f, 1e-30f, -0.f, 7};
    const float s = 42;
    const int sa[2] = {2, 3}, se[1] = {0};
    cnn_safetensors_entry e[3] = {
        {"layer.a.0", 2, sa, a}, {"scalar", 0, NULL, &s}, {"empty", 1, se, NULL}};
    const char *meta[] = {"net", "demo", "format", "ignored", NULL};
    const char *path = tmp_path("api.safetensors");
    ck_assert_int_eq(cnn_safetensors_write(path, e, 3, meta), CNN_OK);
    /* Header length is a multiple of 8 and no temporary file is left. */
    size_t n;
    unsigned char *b = read_bytes(path, &n);
    ck_assert_uint_eq(b[0] % 8, 0);
    ck_assert_uint_eq(n, 8 + (size_t)b[0] + (size_t)b[1] * 256 + sizeof a + sizeof s);
    free(b);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "ls %s | grep -q tmp", tmpdir);
    ck_assert_int_ne(system(cmd), 0);

    cnn_safetensors *st = NULL;
    ck_assert_int_eq(cnn_safetensors_open(path, &st), CNN_OK);
    ck_assert_int_eq(cnn_safetensors_count(st), 3);
    ck_assert_str_eq(cnn_safetensors_name(st, 0), "layer.a.0");
    ck_assert_str_eq(cnn_safetensors_name(st, 1), "scalar");
    ck_assert_str_eq(cnn_safetensors_name(st, 2), "empty");
    ck_assert_str_eq(cnn_safetensors_dtype(st, 0), "F32");
    ck_assert_str_eq(cnn_safetensors_meta(st, "format"), "cnn");
    ck_assert_str_eq(cnn_safetensors_meta(st, "net"), "demo");
    ck_assert_ptr_null(cnn_safetensors_meta(st, "nothing"));
    int nd, shape[CNN_MAX_DIMS];
    const float *d;
    ck_assert_int_eq(cnn_safetensors_get(st, "layer.a.0", &nd, shape, &d), CNN_OK);
    ck_assert_int_eq(nd, 2);
    ck_assert_int_eq(shape[0], 2);
    ck_assert_int_eq(shape[1], 3);
    ck_assert_int_eq(memcmp(d, a, sizeof a), 0);
    ck_assert_int_eq(cnn_safetensors_get(st, "scalar", &nd, shape, &d), CNN_OK);
    ck_assert_int_eq(nd, 0);
    ck_assert_float_eq(d[0], 42);
    ck_assert_int_eq(cnn_safetensors_get(st, "empty", &nd, shape, &d), CNN_OK);
    ck_assert_int_eq(nd, 1);
    ck_assert_int_eq(shape[0], 0);
    ck_assert_int_eq(cnn_safetensors_get(st, "missing", &nd, shape, &d), CNN_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(cnn_error_message(), "missing"));
    cnn_safetensors_close(st);
    cnn_safetensors_close(NULL);
}
END_TEST

START_TEST(api_write_errors)
{
    const float a[2] = {1, 2};
    const int sa[1] = {2};
    cnn_safetensors_entry dup[2] = {{"t", 1, sa, a}, {"t", 1, sa, a}};
    const char *path = tmp_path("dup.safetensors");
    ck_assert_int_eq(cnn_safetensors_write(path, dup, 2, NULL), CNN_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(cnn_error_message(), "used twice"));
    cnn_safetensors_entry meta[1] = {{"__metadata__", 1, sa, a}};
    ck_assert_int_eq(cnn_safetensors_write(path, meta, 1, NULL), CNN_ERR_ARG);
    ck_assert_int_ne(access(path, F_OK), 0);
    const char *bad = tmp_path("no/such/dir/w.safetensors");
    ck_assert_int_eq(cnn_safetensors_write(bad, dup, 1, NULL), CNN_ERR_IO);
    ck_assert_ptr_nonnull(strstr(cnn_error_message(), bad));
    cnn_safetensors *st = NULL;
    ck_assert_int_eq(cnn_safetensors_open(tmp_path("absent.safetensors"), &st), CNN_ERR_IO);
    ck_assert_ptr_nonnull(strstr(cnn_error_message(), "absent.safetensors"));
    ck_assert_ptr_null(st);
}
END_TEST

/* F32 data at an offset that is not 4-byte aligned in memory is copied. */
START_TEST(api_unaligned_data)
{
    const char *json = "{\"u8\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
                       "\"f\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[1,9]}}";
    unsigned char data[9] = {7};
    const float v[2] = {1.25f, -8};
    memcpy(data + 1, v, sizeof v);
    const char *path = tmp_path("unaligned.safetensors");
    write_raw(path, strlen(json), json, data, sizeof data); /* unpadded */
    cnn_safetensors *st = NULL;
    ck_assert_msg(cnn_safetensors_open(path, &st) == CNN_OK, "%s", cnn_error_message());
    int nd, shape[CNN_MAX_DIMS];
    const float *d;
    ck_assert_int_eq(cnn_safetensors_get(st, "f", &nd, shape, &d), CNN_OK);
    ck_assert_uint_eq((uintptr_t)d % 4, 0);
    ck_assert_float_eq(d[0], 1.25f);
    ck_assert_float_eq(d[1], -8);
    ck_assert_int_eq(cnn_safetensors_get(st, "u8", &nd, shape, &d), CNN_ERR_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(cnn_error_message(), "'u8' has dtype U8"));
    cnn_safetensors_close(st);
}
END_TEST

/* ---- net weights -------------------------------------------------------- */

START_TEST(net_round_trip)
{
    cnn_net *a = make_net(3, 5, 1), *b = make_net(3, 5, 2);
    ck_assert(!params_equal(a, b));
    const char *path = tmp_path("net.safetensors");
    ck_assert_msg(cnn_weights_save(a, path) == CNN_OK, "%s", cnn_error_message());
    ck_assert_msg(cnn_weights_load(b, path, false) == CNN_OK, "%s", cnn_error_message());
    ck_assert(params_equal(a, b));
    cnn_safetensors *st = NULL;
    ck_assert_int_eq(cnn_safetensors_open(path, &st), CNN_OK);
    ck_assert_int_eq(cnn_safetensors_count(st), 4);
    ck_assert_str_eq(cnn_safetensors_name(st, 0), "conv1.0");
    ck_assert_str_eq(cnn_safetensors_name(st, 1), "conv1.1");
    ck_assert_str_eq(cnn_safetensors_name(st, 2), "ip1.0");
    ck_assert_str_eq(cnn_safetensors_name(st, 3), "ip1.1");
    ck_assert_str_eq(cnn_safetensors_meta(st, "format"), "cnn");
    ck_assert_str_eq(cnn_safetensors_meta(st, "net"), "small");
    int nd, shape[CNN_MAX_DIMS];
    const float *d;
    ck_assert_int_eq(cnn_safetensors_get(st, "conv1.0", &nd, shape, &d), CNN_OK);
    ck_assert_int_eq(nd, 4);
    ck_assert_int_eq(shape[0] * 1000 + shape[1] * 100 + shape[2] * 10 + shape[3], 4333);
    cnn_safetensors_close(st);
    /* Saving over an existing file replaces it. */
    ck_assert_int_eq(cnn_weights_save(b, path), CNN_OK);
    ck_assert_int_eq(cnn_weights_load(a, path, false), CNN_OK);
    cnn_net_free(a);
    cnn_net_free(b);
}
END_TEST

/* A tensor shared by two layers is stored once, under its first owner. */
START_TEST(net_shared_param_saved_once)
{
    const char *text =
        "layer { name: \"x\" type: \"Input\" top: \"x\" input_param { shape { dim: 2 dim: 6 } } }\n"
        "layer { name: \"ip1\" type: \"InnerProduct\" bottom: \"x\" top: \"y\" "
        "param { name: \"w\" } inner_product_param { num_output: 6 "
        "weight_filler { type: \"gaussian\" } } }\n"
        "layer { name: \"ip2\" type: \"InnerProduct\" bottom: \"y\" top: \"z\" "
        "param { name: \"w\" } inner_product_param { num_output: 6 "
        "weight_filler { type: \"gaussian\" } bias_filler { type: \"gaussian\" } } }\n";
    cnn_net_opts o = cnn_net_default_opts();
    cnn_net *a = NULL, *b = NULL;
    ck_assert_msg(cnn_net_from_string(text, &o, &a) == CNN_OK, "%s", cnn_error_message());
    o.seed = 9;
    ck_assert_int_eq(cnn_net_from_string(text, &o, &b), CNN_OK);
    const char *path = tmp_path("shared.safetensors");
    ck_assert_int_eq(cnn_weights_save(a, path), CNN_OK);
    cnn_safetensors *st = NULL;
    ck_assert_int_eq(cnn_safetensors_open(path, &st), CNN_OK);
    ck_assert_int_eq(cnn_safetensors_count(st), 3);
    ck_assert_int_ge(cnn_safetensors_find(st, "ip1.0"), 0);
    ck_assert_int_lt(cnn_safetensors_find(st, "ip2.0"), 0);
    cnn_safetensors_close(st);
    ck_assert_int_eq(cnn_weights_load(b, path, false), CNN_OK);
    ck_assert(params_equal(a, b));
    cnn_net_free(a);
    cnn_net_free(b);
}
END_TEST

START_TEST(net_shape_mismatch)
{
    cnn_net *a = make_net(3, 5, 1), *b = make_net(1, 5, 2), *c = make_net(3, 7, 3);
    const char *path = tmp_path("mismatch.safetensors");
    ck_assert_int_eq(cnn_weights_save(a, path), CNN_OK);
    expect_load_fails(b, path, false, CNN_ERR_SHAPE, "conv1.0: file has 4x3x3x3, net has 4x1x3x3");
    expect_load_fails(b, path, true, CNN_ERR_SHAPE, "conv1.0: file has 4x3x3x3, net has 4x1x3x3");
    /* A failed load changes nothing, not even the tensors checked before. */
    cnn_tensor *w = cnn_net_param(c, "conv1", 0);
    float *before = malloc(w->count * sizeof(float));
    memcpy(before, w->data, w->count * sizeof(float));
    expect_load_fails(c, path, false, CNN_ERR_SHAPE, "ip1.0: file has 5x36, net has 7x36");
    ck_assert_int_eq(memcmp(before, w->data, w->count * sizeof(float)), 0);
    free(before);
    cnn_net_free(a);
    cnn_net_free(b);
    cnn_net_free(c);
}
END_TEST

START_TEST(net_partial)
{
    cnn_net *a = make_net(3, 5, 1), *b = make_net(3, 5, 2);
    cnn_tensor *w = cnn_net_param(a, "conv1", 0), *bias = cnn_net_param(a, "conv1", 1);
    const float extra[3] = {1, 2, 3};
    const int se[1] = {3};
    cnn_safetensors_entry e[3] = {{"conv1.0", w->ndim, w->shape, w->data},
                                  {"unused.0", 1, se, extra},
                                  {"conv1.1", bias->ndim, bias->shape, bias->data}};
    const char *path = tmp_path("partial.safetensors");
    ck_assert_int_eq(cnn_safetensors_write(path, e, 3, NULL), CNN_OK);
    expect_load_fails(b, path, false, CNN_ERR_FORMAT, "no tensor 'ip1.0'");
    cnn_tensor *ipw = cnn_net_param(b, "ip1", 0);
    float *before = malloc(ipw->count * sizeof(float));
    memcpy(before, ipw->data, ipw->count * sizeof(float));
    ck_assert_msg(cnn_weights_load(b, path, true) == CNN_OK, "%s", cnn_error_message());
    cnn_tensor *bw = cnn_net_param(b, "conv1", 0), *bb = cnn_net_param(b, "conv1", 1);
    ck_assert_int_eq(memcmp(bw->data, w->data, w->count * sizeof(float)), 0);
    ck_assert_int_eq(memcmp(bb->data, bias->data, bias->count * sizeof(float)), 0);
    ck_assert_int_eq(memcmp(before, ipw->data, ipw->count * sizeof(float)), 0);
    free(before);
    cnn_net_free(a);
    cnn_net_free(b);
}
END_TEST

/* Every prefix of a good file up to the end of the header, and prefixes
 * ending inside the data, must fail cleanly with the file named. */
START_TEST(net_truncated)
{
    cnn_net *a = make_net(3, 5, 1), *b = make_net(3, 5, 2);
    const char *path = tmp_path("full.safetensors"), *cut = tmp_path("cut.safetensors");
    ck_assert_int_eq(cnn_weights_save(a, path), CNN_OK);
    size_t n;
    unsigned char *bytes = read_bytes(path, &n);
    size_t hend = 8 + (size_t)bytes[0] + ((size_t)bytes[1] << 8);
    ck_assert_uint_lt(hend, n);
    for (size_t len = 0; len < n; len += len <= hend ? 1 : 29) {
        write_bytes(cut, bytes, len);
        for (int partial = 0; partial < 2; partial++) {
            cnn_status st = cnn_weights_load(b, cut, partial);
            ck_assert_msg(st == CNN_ERR_FORMAT, "prefix of %zu bytes: status %d (%s)", len, st,
                          cnn_error_message());
            ck_assert_msg(strstr(cnn_error_message(), cut), "prefix %zu: '%s'", len,
                          cnn_error_message());
        }
    }
    write_bytes(cut, bytes, n - 1);
    expect_load_fails(b, cut, false, CNN_ERR_FORMAT, "run past the");
    write_bytes(cut, bytes, 10);
    expect_load_fails(b, cut, false, CNN_ERR_FORMAT, "truncated");
    write_bytes(cut, bytes, 3);
    expect_load_fails(b, cut, false, CNN_ERR_FORMAT, "too short");
    /* Nothing was loaded by any of the failed attempts. */
    ck_assert(!params_equal(a, b));
    free(bytes);
    cnn_net_free(a);
    cnn_net_free(b);
}
END_TEST

START_TEST(bad_headers)
{
    cnn_net *b = make_net(3, 5, 2);
    const char *p = tmp_path("bad.safetensors");
    const unsigned char data[16] = {0};
    write_raw(p, 0, "{\"conv1.0\": {", data, 16);
    expect_load_fails(b, p, false, CNN_ERR_FORMAT, "not valid JSON");
    write_raw(p, 8, "[1, 2]", NULL, 0);
    expect_load_fails(b, p, false, CNN_ERR_FORMAT, "not a JSON object");
    write_raw(p, 8, "{} x", NULL, 0);
    expect_load_fails(b, p, false, CNN_ERR_FORMAT, "stray bytes");
    write_raw(p, 5000, "{}", data, 16);
    expect_load_fails(b, p, false, CNN_ERR_FORMAT, "header length 5000 runs past");
    write_raw(p, 1ull << 62, "{}", NULL, 0);
    expect_load_fails(b, p, false, CNN_ERR_FORMAT, "over the");
    write_raw(p, 0, "{\"x.0\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", data, 4);
    expect_load_fails(b, p, true, CNN_ERR_FORMAT, "'x.0': data_offsets [0, 8] run past");
    write_raw(p, 0, "{\"x.0\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,4]}}", data, 16);
    expect_load_fails(b, p, true, CNN_ERR_FORMAT, "run backwards");
    write_raw(p, 0, "{\"x.0\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", data, 16);
    expect_load_fails(b, p, true, CNN_ERR_FORMAT, "needs 12 bytes");
    write_raw(p, 0, "{\"x.0\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-1,7]}}", data,
              16);
    expect_load_fails(b, p, true, CNN_ERR_FORMAT, "not a pair");
    write_raw(p, 0, "{\"x.0\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,8]}}", data,
              16);
    expect_load_fails(b, p, true, CNN_ERR_FORMAT, "shape[0]");
    write_raw(p, 0, "{\"x.0\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],"
              "\"data_offsets\":[0,8]}}", data, 16);
    expect_load_fails(b, p, true, CNN_ERR_FORMAT, "needs over");
    write_raw(p, 0, "{\"x.0\":{\"dtype\":\"Q7\",\"shape\":[2],\"data_offsets\":[0,8]}}", data, 16);
    expect_load_fails(b, p, true, CNN_ERR_FORMAT, "unknown dtype 'Q7'");
    write_raw(p, 0, "{\"x.0\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]}}", data, 16);
    expect_load_fails(b, p, true, CNN_ERR_UNSUPPORTED, "tensor 'x.0' has dtype F16");
    write_raw(p, 0, "{\"x.0\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,4]}}", data,
              16);
    expect_load_fails(b, p, true, CNN_ERR_UNSUPPORTED, "tensor 'x.0' has dtype BF16");
    write_raw(p, 0, "{\"x.0\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[0,16]}}", data,
              16);
    expect_load_fails(b, p, true, CNN_ERR_UNSUPPORTED, "tensor 'x.0' has dtype F64");
    write_raw(p, 0, "{\"x.0\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
              "\"x.0\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", data, 16);
    expect_load_fails(b, p, true, CNN_ERR_FORMAT, "'x.0' appears twice");
    write_raw(p, 0, "{\"__metadata__\":{\"a\":1}}", NULL, 0);
    expect_load_fails(b, p, true, CNN_ERR_FORMAT, "not a string");
    write_raw(p, 0, "{\"x.0\": 5}", NULL, 0);
    expect_load_fails(b, p, true, CNN_ERR_FORMAT, "not an object");
    write_raw(p, 0, "{\"x.0\": {\"shape\":[],\"data_offsets\":[0,0]}}", NULL, 0);
    expect_load_fails(b, p, true, CNN_ERR_FORMAT, "no dtype");
    /* A valid file with only an unused tensor loads as a partial no-op. */
    write_raw(p, 0, "{\"x.0\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", data, 8);
    ck_assert_msg(cnn_weights_load(b, p, true) == CNN_OK, "%s", cnn_error_message());
    expect_load_fails(b, p, false, CNN_ERR_FORMAT, "no tensor 'conv1.0'");
    cnn_net_free(b);
}
END_TEST

/* ---- PyTorch interop ---------------------------------------------------- */

static const char *script_path(void)
{
    static char buf[512];
    const char *f = __FILE__, *slash = strrchr(f, '/');
    snprintf(buf, sizeof buf, "%.*s/safetensors_torch.py", slash ? (int)(slash - f) : 1,
             slash ? f : ".");
    return buf;
}

static bool have_torch(void)
{
    if (access("/usr/bin/python3", X_OK)) return false;
    return system("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1") == 0;
}

START_TEST(torch_reads_our_file)
{
    if (!have_torch()) {
        printf("SKIP torch interop: /usr/bin/python3 cannot import torch\n");
        return;
    }
    ck_assert_msg(access(script_path(), R_OK) == 0, "missing %s", script_path());
    cnn_net *a = make_net(3, 5, 1);
    const char *path = tmp_path("net.safetensors"), *ref = tmp_path("ref.txt");
    ck_assert_int_eq(cnn_weights_save(a, path), CNN_OK);
    FILE *f = fopen(ref, "w");
    ck_assert_ptr_nonnull(f);
    for (int i = 0; i < cnn_net_num_layers(a); i++)
        for (int p = 0; p < cnn_net_layer_num_params(a, i); p++) {
            cnn_tensor *t = cnn_net_layer_param(a, i, p);
            fprintf(f, "%s.%d %d", cnn_net_layer_name(a, i), p, t->ndim);
            for (int d = 0; d < t->ndim; d++) fprintf(f, " %d", t->shape[d]);
            for (size_t k = 0; k < t->count; k++) fprintf(f, " %.9g", t->data[k]);
            fprintf(f, "\n");
        }
    fclose(f);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s' read '%s' '%s'", script_path(), path, ref);
    ck_assert_msg(system(cmd) == 0, "PyTorch could not read our file: %s", cmd);
    cnn_net_free(a);
}
END_TEST

START_TEST(we_read_torch_file)
{
    if (!have_torch()) {
        printf("SKIP torch interop: /usr/bin/python3 cannot import torch\n");
        return;
    }
    const char *path = tmp_path("torch.safetensors");
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s' write '%s'", script_path(), path);
    ck_assert_msg(system(cmd) == 0, "PyTorch could not write: %s", cmd);
    cnn_safetensors *st = NULL;
    ck_assert_msg(cnn_safetensors_open(path, &st) == CNN_OK, "%s", cnn_error_message());
    ck_assert_int_eq(cnn_safetensors_count(st), 3);
    ck_assert_str_eq(cnn_safetensors_meta(st, "format"), "pt");
    int nd, shape[CNN_MAX_DIMS];
    const float *d;
    ck_assert_int_eq(cnn_safetensors_get(st, "a.0", &nd, shape, &d), CNN_OK);
    ck_assert_int_eq(nd, 3);
    ck_assert_int_eq(shape[0] * 100 + shape[1] * 10 + shape[2], 234);
    for (int i = 0; i < 24; i++) ck_assert_float_eq(d[i], i * 0.25f - 3);
    ck_assert_int_eq(cnn_safetensors_get(st, "b.1", &nd, shape, &d), CNN_OK);
    ck_assert_int_eq(nd, 1);
    ck_assert_int_eq(shape[0], 5);
    for (int i = 0; i < 5; i++) ck_assert_float_eq(d[i], -1 + 0.5f * i);
    ck_assert_int_eq(cnn_safetensors_get(st, "h.0", &nd, shape, &d), CNN_ERR_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(cnn_error_message(), "'h.0' has dtype F16"));
    cnn_safetensors_close(st);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("weights");
    TCase *c = tcase_create("api");
    tcase_add_checked_fixture(c, setup_tmp, teardown_tmp);
    tcase_add_test(c, api_round_trip);
    tcase_add_test(c, api_write_errors);
    tcase_add_test(c, api_unaligned_data);
    suite_add_tcase(s, c);
    c = tcase_create("net");
    tcase_add_checked_fixture(c, setup_tmp, teardown_tmp);
    tcase_add_test(c, net_round_trip);
    tcase_add_test(c, net_shared_param_saved_once);
    tcase_add_test(c, net_shape_mismatch);
    tcase_add_test(c, net_partial);
    tcase_add_test(c, net_truncated);
    tcase_add_test(c, bad_headers);
    suite_add_tcase(s, c);
    c = tcase_create("torch");
    tcase_add_checked_fixture(c, setup_tmp, teardown_tmp);
    tcase_set_timeout(c, 60);
    tcase_add_test(c, torch_reads_our_file);
    tcase_add_test(c, we_read_torch_file);
    suite_add_tcase(s, c);
    return s;
}

int main(void) { return cnn_test_run(suite()) != 0; }
