/* check_config.c — the protobuf text parser and the typed accessors: every
 * syntax form, error positions for malformed input, getter errors, unused
 * field reports, Caffe's own model files, and robustness against truncated
 * and random input. */
#include <dirent.h>
#include <limits.h>
#include <unistd.h>

#include "core/config.h"
#include "tests/testutil.h"

static cnn_cfg *parse_ok(const char *text)
{
    cnn_cfg *c = NULL;
    cnn_status st = cnn_cfg_parse_string(text, "t.cfg", &c);
    ck_assert_msg(st == CNN_OK, "parse failed: %s", cnn_error_message());
    ck_assert_ptr_nonnull(c);
    return c;
}

/* Expects `text` to fail to parse with "t.cfg:<where>: ...<needle>...". */
static void parse_fails_at(const char *text, const char *where, const char *needle)
{
    cnn_cfg *c = NULL;
    cnn_status st = cnn_cfg_parse_string(text, "t.cfg", &c);
    ck_assert_msg(st == CNN_ERR_PARSE, "'%s': expected a parse error, got %d (%s)", text, st,
                  cnn_error_message());
    ck_assert_ptr_null(c);
    char prefix[64];
    snprintf(prefix, sizeof prefix, "t.cfg:%s: ", where);
    const char *msg = cnn_error_message();
    ck_assert_msg(!strncmp(msg, prefix, strlen(prefix)) && strstr(msg, needle),
                  "'%s': message '%s' does not start with '%s' or lacks '%s'", text, msg, prefix,
                  needle);
}

/* Expects `st` to be a config error whose message contains `needle`. */
static void want_cfg_error(cnn_status st, const char *needle)
{
    ck_assert_msg(st == CNN_ERR_CONFIG, "expected a config error, got %d (%s)", st,
                  cnn_error_message());
    ck_assert_msg(strstr(cnn_error_message(), needle), "message '%s' lacks '%s'",
                  cnn_error_message(), needle);
}

static const char *sample_model =
    "name: \"LeNet\"\n"
    "layer {\n"
    "  name: \"mnist\"\n"
    "  type: \"Data\"\n"
    "  top: \"data\"\n"
    "  top: \"label\"\n"
    "  include { phase: TRAIN }\n"
    "  transform_param { scale: 0.00390625 }\n"
    "  data_param { source: 'examples/mnist/mnist_train_lmdb' batch_size: 64 backend: LMDB }\n"
    "}\n"
    "layer <\n"
    "  name: \"conv1\" type: \"Convolution\" bottom: \"data\" top: \"conv1\"\n"
    "  param { lr_mult: 1 } param { lr_mult: 2 }\n"
    "  convolution_param: {\n"
    "    num_output: 20 kernel_size: 5 stride: 1\n"
    "    weight_filler { type: \"xavier\" std: 1e-2 }\n"
    "    bias_filler { type: \"constant\" value: -.5 }\n"
    "  }\n"
    ">\n"
    "# trailing comment without newline";

/* ---- good input ----------------------------------------------------------- */

START_TEST(test_forms)
{
    cnn_cfg *c = parse_ok("# leading comment\n"
                          "name: \"net\"  # trailing comment\n"
                          "a: 1, b: 2; c: 3\n"
                          "msg { x: 1 }\n"
                          "msg2: { y: 2 }\n"
                          "msg3 < z: 3 >\n"
                          "msg4: < w: 4 >;\n"
                          "rep: 1 rep: 2 rep: 3\n"
                          "nested { inner { deep: \"d\" } }\n"
                          "list: [1, -2, 3] elist: []\n"
                          "mlist [ { v: 1 }, < v: 2 > ]\n"
                          "slist: [\"p\", 'q']\n"
                          "empty {}\n"
                          "e: MAX\n");
    ck_assert_int_eq(c->kind, CNN_CFG_MESSAGE);
    ck_assert(c->key == NULL || c->key[0] == 0);
    ck_assert_ptr_null(c->parent);
    const char *order[] = {"name", "a",   "b",   "c",    "msg",   "msg2",  "msg3",
                           "msg4", "rep", "rep", "rep",  "nested", "list", "list",
                           "list", "mlist", "mlist", "slist", "slist", "empty", "e"};
    int i = 0;
    for (cnn_cfg *f = c->child; f; f = f->next, i++) {
        ck_assert_int_lt(i, (int)(sizeof order / sizeof *order));
        ck_assert_str_eq(f->key, order[i]);
        ck_assert_ptr_eq(f->parent, c);
        ck_assert_ptr_eq(f->file, c->file);
    }
    ck_assert_int_eq(i, (int)(sizeof order / sizeof *order));
    ck_assert_str_eq(c->file, "t.cfg");

    int v = 0;
    const char *s = NULL;
    ck_assert_int_eq(cnn_cfg_string(c, "name", NULL, &s), CNN_OK);
    ck_assert_str_eq(s, "net");
    ck_assert_int_eq(cnn_cfg_int(c, "a", 0, &v), CNN_OK);
    ck_assert_int_eq(v, 1);
    ck_assert_int_eq(cnn_cfg_int(c, "c", 0, &v), CNN_OK);
    ck_assert_int_eq(v, 3);
    const char *msgs[] = {"msg", "msg2", "msg3", "msg4"}, *inner[] = {"x", "y", "z", "w"};
    for (int k = 0; k < 4; k++) {
        cnn_cfg *m = NULL;
        ck_assert_int_eq(cnn_cfg_message(c, msgs[k], &m), CNN_OK);
        ck_assert_ptr_nonnull(m);
        ck_assert_int_eq(m->kind, CNN_CFG_MESSAGE);
        ck_assert_int_eq(cnn_cfg_int(m, inner[k], 0, &v), CNN_OK);
        ck_assert_int_eq(v, k + 1);
    }
    ck_assert_int_eq(cnn_cfg_count(c, "rep"), 3);
    for (int k = 0; k < 3; k++) {
        ck_assert_int_eq(cnn_cfg_as_int(cnn_cfg_nth(c, "rep", k), &v), CNN_OK);
        ck_assert_int_eq(v, k + 1);
    }
    ck_assert_ptr_null(cnn_cfg_nth(c, "rep", 3));
    ck_assert_ptr_null(cnn_cfg_nth(c, "rep", -1));
    cnn_cfg *n = cnn_cfg_get(c, "nested"), *in = cnn_cfg_get(n, "inner");
    ck_assert_int_eq(cnn_cfg_string(in, "deep", NULL, &s), CNN_OK);
    ck_assert_str_eq(s, "d");
    ck_assert_ptr_eq(in->parent, n);
    ck_assert_int_eq(cnn_cfg_count(c, "list"), 3);
    ck_assert_int_eq(cnn_cfg_as_int(cnn_cfg_nth(c, "list", 1), &v), CNN_OK);
    ck_assert_int_eq(v, -2);
    ck_assert_int_eq(cnn_cfg_count(c, "elist"), 0);
    ck_assert_int_eq(cnn_cfg_count(c, "mlist"), 2);
    ck_assert_int_eq(cnn_cfg_int(cnn_cfg_nth(c, "mlist", 1), "v", 0, &v), CNN_OK);
    ck_assert_int_eq(v, 2);
    ck_assert_str_eq(cnn_cfg_nth(c, "slist", 1)->text, "q");
    cnn_cfg *e = cnn_cfg_get(c, "empty");
    ck_assert_int_eq(e->kind, CNN_CFG_MESSAGE);
    ck_assert_ptr_null(e->child);
    static const char *const pools[] = {"MAX", "AVE", "STOCHASTIC", NULL};
    ck_assert_int_eq(cnn_cfg_enum(c, "e", pools, 1, &v), CNN_OK);
    ck_assert_int_eq(v, 0);
    ck_assert_int_eq(cnn_cfg_get(c, "e")->kind, CNN_CFG_IDENT);
    cnn_cfg_free(c);

    c = parse_ok("");
    ck_assert_ptr_null(c->child);
    cnn_cfg_free(c);
    c = parse_ok("  # only a comment");
    ck_assert_ptr_null(c->child);
    cnn_cfg_free(c);
    c = parse_ok("\xEF\xBB\xBF" "a: 1"); /* byte order mark */
    ck_assert_int_eq(c->child->col, 1);
    cnn_cfg_free(c);
    cnn_cfg_free(NULL);
}
END_TEST

START_TEST(test_positions)
{
    cnn_cfg *c = parse_ok("a: 1\r\n"
                          "  b {\n"
                          "\tc: 'x'\n"
                          "  }  d: [7,\n"
                          "  8]\n");
    cnn_cfg *a = cnn_cfg_get(c, "a"), *b = cnn_cfg_get(c, "b"), *cc = cnn_cfg_get(b, "c");
    ck_assert_int_eq(a->line, 1);
    ck_assert_int_eq(a->col, 1);
    ck_assert_int_eq(b->line, 2);
    ck_assert_int_eq(b->col, 3);
    ck_assert_int_eq(cc->line, 3);
    ck_assert_int_eq(cc->col, 2);
    cnn_cfg *d0 = cnn_cfg_nth(c, "d", 0), *d1 = cnn_cfg_nth(c, "d", 1);
    ck_assert_int_eq(d0->line, 4); /* list elements carry their own position */
    ck_assert_int_eq(d0->col, 10);
    ck_assert_int_eq(d1->line, 5);
    ck_assert_int_eq(d1->col, 3);
    ck_assert_int_eq(cnn_cfg_error(cc, CNN_ERR_CONFIG, "bad %s", "thing"), CNN_ERR_CONFIG);
    ck_assert_str_eq(cnn_error_message(), "t.cfg:3:2: bad thing");
    cnn_cfg_free(c);
}
END_TEST

START_TEST(test_strings)
{
    cnn_cfg *c = parse_ok("s1: \"a\\nb\\t\\\\\\\"\\'\\r\\a\\b\\f\\v\\?\"\n"
                          "s2: 'single \"q\"'\n"
                          "s3: \"ab\" 'cd'\n   \"ef\"\n"
                          "s4: \"\\x41\\101\\x7a\\X4A\\7\"\n"
                          "s5: \"\\u00e9\\U0001F600\"\n"
                          "s6: \"\"\n"
                          "s7: \"caf\xc3\xa9 # not a comment\"\n"
                          "s8: \"\\x414\"\n");
    const char *s;
    ck_assert_int_eq(cnn_cfg_string(c, "s1", NULL, &s), CNN_OK);
    ck_assert_str_eq(s, "a\nb\t\\\"'\r\a\b\f\v?");
    ck_assert_int_eq(cnn_cfg_string(c, "s2", NULL, &s), CNN_OK);
    ck_assert_str_eq(s, "single \"q\"");
    ck_assert_int_eq(cnn_cfg_string(c, "s3", NULL, &s), CNN_OK);
    ck_assert_str_eq(s, "abcdef");
    ck_assert_int_eq(cnn_cfg_string(c, "s4", NULL, &s), CNN_OK);
    ck_assert_str_eq(s, "AAzJ\a");
    ck_assert_int_eq(cnn_cfg_string(c, "s5", NULL, &s), CNN_OK);
    ck_assert_str_eq(s, "\xc3\xa9\xf0\x9f\x98\x80");
    ck_assert_int_eq(cnn_cfg_string(c, "s6", "dflt", &s), CNN_OK);
    ck_assert_str_eq(s, "");
    ck_assert_int_eq(cnn_cfg_string(c, "s7", NULL, &s), CNN_OK);
    ck_assert_str_eq(s, "caf\xc3\xa9 # not a comment");
    ck_assert_int_eq(cnn_cfg_string(c, "s8", NULL, &s), CNN_OK);
    ck_assert_str_eq(s, "A4");
    ck_assert_int_eq(cnn_cfg_string(c, "absent", "dflt", &s), CNN_OK);
    ck_assert_str_eq(s, "dflt");
    ck_assert_int_eq(cnn_cfg_get(c, "s3")->kind, CNN_CFG_STRING);
    ck_assert_int_eq(cnn_cfg_get(c, "s3")->line, 3);
    cnn_cfg_free(c);
}
END_TEST

START_TEST(test_numbers)
{
    cnn_cfg *c = parse_ok("i1: 42 i2: -7 i3: 0x1F i4: -0x10 i5: 017 i6: - 5 i7: 0\n"
                          "f1: 1e-3 f2: .5 f3: 5. f4: -inf f5: inf f6: nan f7: 1.5f\n"
                          "f8: 2F f9: -2.5e+2 f10: 1E3 f11: 3 f12: -Infinity f13: NaN\n"
                          "f14: 1e-50 f15: 0xff f16: 1e5f\n"
                          "big: 9000000000 umax: 4294967295 lmin: -9223372036854775808\n");
    int v;
    const int want_i[] = {42, -7, 31, -16, 15, -5, 0};
    char key[16];
    for (int k = 0; k < 7; k++) {
        snprintf(key, sizeof key, "i%d", k + 1);
        ck_assert_msg(cnn_cfg_int(c, key, 99, &v) == CNN_OK, "%s", cnn_error_message());
        ck_assert_int_eq(v, want_i[k]);
    }
    ck_assert_int_eq(cnn_cfg_get(c, "i1")->kind, CNN_CFG_NUMBER);
    ck_assert_str_eq(cnn_cfg_get(c, "i6")->text, "-5");
    float f;
    double d;
    ck_assert_int_eq(cnn_cfg_float(c, "f1", 0, &f), CNN_OK);
    ck_assert_float_eq_tol(f, 1e-3f, 1e-9f);
    ck_assert_int_eq(cnn_cfg_float(c, "f2", 0, &f), CNN_OK);
    ck_assert_float_eq(f, 0.5f);
    ck_assert_int_eq(cnn_cfg_float(c, "f3", 0, &f), CNN_OK);
    ck_assert_float_eq(f, 5.f);
    ck_assert_int_eq(cnn_cfg_float(c, "f4", 0, &f), CNN_OK);
    ck_assert(isinf(f) && f < 0);
    ck_assert_int_eq(cnn_cfg_get(c, "f4")->kind, CNN_CFG_NUMBER);
    ck_assert_int_eq(cnn_cfg_float(c, "f5", 0, &f), CNN_OK);
    ck_assert(isinf(f) && f > 0);
    ck_assert_int_eq(cnn_cfg_get(c, "f5")->kind, CNN_CFG_NUMBER);
    ck_assert_int_eq(cnn_cfg_double(c, "f6", 0, &d), CNN_OK);
    ck_assert(isnan(d));
    ck_assert_int_eq(cnn_cfg_float(c, "f7", 0, &f), CNN_OK);
    ck_assert_float_eq(f, 1.5f);
    ck_assert_int_eq(cnn_cfg_float(c, "f8", 0, &f), CNN_OK);
    ck_assert_float_eq(f, 2.f);
    ck_assert_int_eq(cnn_cfg_double(c, "f9", 0, &d), CNN_OK);
    ck_assert_double_eq(d, -250.0);
    ck_assert_int_eq(cnn_cfg_double(c, "f10", 0, &d), CNN_OK);
    ck_assert_double_eq(d, 1000.0);
    ck_assert_int_eq(cnn_cfg_float(c, "f11", 0, &f), CNN_OK);
    ck_assert_float_eq(f, 3.f);
    ck_assert_int_eq(cnn_cfg_double(c, "f12", 0, &d), CNN_OK);
    ck_assert(isinf(d) && d < 0);
    ck_assert_int_eq(cnn_cfg_double(c, "f13", 0, &d), CNN_OK);
    ck_assert(isnan(d));
    ck_assert_int_eq(cnn_cfg_float(c, "f14", 1, &f), CNN_OK); /* underflow is fine */
    ck_assert_float_eq(f, 0.f);
    ck_assert_int_eq(cnn_cfg_float(c, "f15", 0, &f), CNN_OK);
    ck_assert_float_eq(f, 255.f);
    ck_assert_int_eq(cnn_cfg_float(c, "f16", 0, &f), CNN_OK);
    ck_assert_float_eq(f, 1e5f);
    ck_assert_int_eq(cnn_cfg_as_double(cnn_cfg_get(c, "f1"), &d), CNN_OK);
    ck_assert_double_eq_tol(d, 1e-3, 1e-15);
    ck_assert_int_eq(cnn_cfg_as_float(cnn_cfg_get(c, "f2"), &f), CNN_OK);
    ck_assert_float_eq(f, 0.5f);
    long long ll;
    ck_assert_int_eq(cnn_cfg_int64(c, "big", 0, &ll), CNN_OK);
    ck_assert(ll == 9000000000LL);
    ck_assert_int_eq(cnn_cfg_int64(c, "lmin", 0, &ll), CNN_OK);
    ck_assert(ll == LLONG_MIN);
    unsigned u;
    ck_assert_int_eq(cnn_cfg_uint(c, "umax", 0, &u), CNN_OK);
    ck_assert_uint_eq(u, 4294967295u);
    ck_assert_int_eq(cnn_cfg_uint(c, "i1", 0, &u), CNN_OK);
    ck_assert_uint_eq(u, 42);
    /* Defaults for absent fields and absent messages. */
    ck_assert_int_eq(cnn_cfg_int(c, "nope", 5, &v), CNN_OK);
    ck_assert_int_eq(v, 5);
    ck_assert_int_eq(cnn_cfg_int(NULL, "nope", 6, &v), CNN_OK);
    ck_assert_int_eq(v, 6);
    ck_assert_int_eq(cnn_cfg_float(NULL, "nope", 2.5f, &f), CNN_OK);
    ck_assert_float_eq(f, 2.5f);
    ck_assert_int_eq(cnn_cfg_double(c, "nope", 0.25, &d), CNN_OK);
    ck_assert_double_eq(d, 0.25);
    ck_assert_int_eq(cnn_cfg_int64(NULL, "nope", -3, &ll), CNN_OK);
    ck_assert(ll == -3);
    ck_assert_int_eq(cnn_cfg_uint(NULL, "nope", 8, &u), CNN_OK);
    ck_assert_uint_eq(u, 8);
    cnn_cfg *m = (cnn_cfg *)1;
    ck_assert_int_eq(cnn_cfg_message(c, "nope", &m), CNN_OK);
    ck_assert_ptr_null(m);
    ck_assert_int_eq(cnn_cfg_message(NULL, "nope", &m), CNN_OK);
    ck_assert_ptr_null(m);
    ck_assert_int_eq(cnn_cfg_count(NULL, "x"), 0);
    ck_assert_ptr_null(cnn_cfg_get(NULL, "x"));
    ck_assert_int_eq(cnn_cfg_as_int(NULL, &v), CNN_ERR_ARG);
    cnn_cfg_free(c);
}
END_TEST

START_TEST(test_bools)
{
    cnn_cfg *c = parse_ok("a: true b: false c: True d: False e: t f: f g: 1 h: 0\n"
                          "x1: 2 x2: yes x3: \"true\" x4: 1.0 x5 { }\n");
    const char *keys = "abcdefgh";
    for (int k = 0; k < 8; k++) {
        char key[2] = {keys[k], 0};
        bool b = k % 2 == 0 ? false : true;
        ck_assert_msg(cnn_cfg_bool(c, key, !b, &b) == CNN_OK, "%s", cnn_error_message());
        ck_assert_int_eq(b, k % 2 == 0);
    }
    bool b = true;
    ck_assert_int_eq(cnn_cfg_bool(c, "absent", false, &b), CNN_OK);
    ck_assert(!b);
    want_cfg_error(cnn_cfg_bool(c, "x1", false, &b), "t.cfg:2:1: field 'x1' expects true or false");
    want_cfg_error(cnn_cfg_bool(c, "x2", false, &b), "got 'yes'");
    want_cfg_error(cnn_cfg_bool(c, "x3", false, &b), "got the string \"true\"");
    want_cfg_error(cnn_cfg_bool(c, "x4", false, &b), "expects true or false");
    want_cfg_error(cnn_cfg_bool(c, "x5", false, &b), "got a message");
    cnn_cfg_free(c);
}
END_TEST

/* ---- getter errors -------------------------------------------------------- */

START_TEST(test_getter_errors)
{
    cnn_cfg *c = parse_ok("m { }\n"
                          "frac: 1.5\n"
                          "big: 3000000000\n"
                          "neg: -1\n"
                          "pool: MAXX\n"
                          "x: 1 x: 2\n"
                          "id: MAX\n"
                          "huge: 1e39\n"
                          "vhuge: 1e999\n"
                          "ll: 99999999999999999999\n"
                          "str: \"7\"\n"
                          "octal: 08\n"
                          "sub { a: 1 } sub { a: 2 }\n"
                          "inf: inf\n");
    int v;
    unsigned u;
    float f;
    double d;
    long long ll;
    const char *s;
    cnn_cfg *m;
    want_cfg_error(cnn_cfg_int(c, "m", 0, &v),
                   "t.cfg:1:1: field 'm' expects an integer, got a message");
    want_cfg_error(cnn_cfg_float(c, "m", 0, &f), "t.cfg:1:1: field 'm' expects a number");
    want_cfg_error(cnn_cfg_string(c, "m", NULL, &s), "field 'm' expects a string");
    want_cfg_error(cnn_cfg_int(c, "frac", 0, &v),
                   "t.cfg:2:1: field 'frac' expects an integer, got '1.5'");
    want_cfg_error(cnn_cfg_int(c, "big", 0, &v),
                   "t.cfg:3:1: field 'big': 3000000000 is out of range");
    ck_assert_int_eq(cnn_cfg_int64(c, "big", 0, &ll), CNN_OK);
    ck_assert(ll == 3000000000LL);
    ck_assert_int_eq(cnn_cfg_uint(c, "big", 0, &u), CNN_OK);
    ck_assert_uint_eq(u, 3000000000u);
    want_cfg_error(cnn_cfg_uint(c, "neg", 0, &u), "t.cfg:4:1: field 'neg': -1 is out of range");
    static const char *const pools[] = {"MAX", "AVE", "STOCHASTIC", NULL};
    want_cfg_error(cnn_cfg_enum(c, "pool", pools, 0, &v),
                   "t.cfg:5:1: field 'pool' expects one of MAX, AVE, STOCHASTIC; got 'MAXX'");
    want_cfg_error(cnn_cfg_enum(c, "str", pools, 0, &v), "got the string \"7\"");
    want_cfg_error(cnn_cfg_enum(c, "neg", pools, 0, &v), "expects one of MAX");
    want_cfg_error(cnn_cfg_int(c, "x", 0, &v), "t.cfg:6:6: field 'x' given twice");
    want_cfg_error(cnn_cfg_float(c, "x", 0, &f), "field 'x' given twice");
    want_cfg_error(cnn_cfg_int(c, "id", 0, &v),
                   "t.cfg:7:1: field 'id' expects an integer, got 'MAX'");
    want_cfg_error(cnn_cfg_float(c, "huge", 0, &f),
                   "t.cfg:8:1: field 'huge': 1e39 is out of range");
    ck_assert_int_eq(cnn_cfg_double(c, "huge", 0, &d), CNN_OK);
    ck_assert_double_eq(d, 1e39);
    want_cfg_error(cnn_cfg_double(c, "vhuge", 0, &d), "out of range for double");
    want_cfg_error(cnn_cfg_int64(c, "ll", 0, &ll), "t.cfg:10:1: field 'll'");
    want_cfg_error(cnn_cfg_int(c, "str", 0, &v), "expects an integer, got the string \"7\"");
    want_cfg_error(cnn_cfg_double(c, "str", 0, &d), "expects a number");
    want_cfg_error(cnn_cfg_int(c, "octal", 0, &v), "expects an integer, got '08'");
    want_cfg_error(cnn_cfg_message(c, "frac", &m), "t.cfg:2:1: field 'frac' expects a message");
    want_cfg_error(cnn_cfg_message(c, "sub", &m), "t.cfg:13:14: field 'sub' given twice");
    want_cfg_error(cnn_cfg_int(c, "inf", 0, &v), "expects an integer, got 'inf'");
    want_cfg_error(cnn_cfg_as_int(cnn_cfg_get(c, "m"), &v), "expects an integer");
    want_cfg_error(cnn_cfg_as_float(cnn_cfg_get(c, "str"), &f), "expects a number");
    cnn_cfg_free(c);
}
END_TEST

/* ---- used-field tracking -------------------------------------------------- */

START_TEST(test_check_used)
{
    cnn_cfg *c = parse_ok("layer {\n"
                          "  name: \"a\"\n"
                          "  conv { k: 3 extra: 1 }\n"
                          "  unread { z: 1 }\n"
                          "  rep: 1 rep: 2\n"
                          "}\n");
    cnn_cfg *l = cnn_cfg_get(c, "layer");
    ck_assert(l->used);
    ck_assert_int_eq(cnn_cfg_check_used(c, "the net"), CNN_ERR_CONFIG);
    ck_assert_str_eq(cnn_error_message(), "t.cfg:2:3: unknown or unused field 'name' in the net");
    const char *s;
    ck_assert_int_eq(cnn_cfg_string(l, "name", NULL, &s), CNN_OK);
    cnn_cfg *conv = NULL;
    ck_assert_int_eq(cnn_cfg_message(l, "conv", &conv), CNN_OK);
    ck_assert(conv->used);
    ck_assert(!conv->child->used); /* children stay unread */
    int v;
    ck_assert_int_eq(cnn_cfg_int(conv, "k", 0, &v), CNN_OK);
    ck_assert_int_eq(cnn_cfg_check_used(l, "layer 'a'"), CNN_ERR_CONFIG);
    ck_assert_str_eq(cnn_error_message(),
                     "t.cfg:3:15: unknown or unused field 'extra' in layer 'a'");
    ck_assert_int_eq(cnn_cfg_int(conv, "extra", 0, &v), CNN_OK);
    /* An unread message is reported itself, not its contents. */
    ck_assert_int_eq(cnn_cfg_check_used(l, "layer 'a'"), CNN_ERR_CONFIG);
    ck_assert_str_eq(cnn_error_message(),
                     "t.cfg:4:3: unknown or unused field 'unread' in layer 'a'");
    ck_assert_ptr_nonnull(cnn_cfg_get(l, "unread"));
    ck_assert_int_eq(cnn_cfg_check_used(l, "layer 'a'"), CNN_ERR_CONFIG);
    ck_assert_str_eq(cnn_error_message(), "t.cfg:4:12: unknown or unused field 'z' in layer 'a'");
    cnn_cfg_mark_used(cnn_cfg_get(l, "unread"));
    /* count does not mark; nth marks only the one it returns. */
    ck_assert_int_eq(cnn_cfg_count(l, "rep"), 2);
    ck_assert_int_eq(cnn_cfg_check_used(l, "layer 'a'"), CNN_ERR_CONFIG);
    ck_assert_str_eq(cnn_error_message(), "t.cfg:5:3: unknown or unused field 'rep' in layer 'a'");
    cnn_cfg_nth(l, "rep", 0);
    ck_assert_int_eq(cnn_cfg_check_used(l, "layer 'a'"), CNN_ERR_CONFIG);
    ck_assert_str_eq(cnn_error_message(), "t.cfg:5:10: unknown or unused field 'rep' in layer 'a'");
    cnn_cfg_nth(l, "rep", 1);
    ck_assert_int_eq(cnn_cfg_check_used(l, "layer 'a'"), CNN_OK);
    ck_assert_int_eq(cnn_cfg_check_used(c, "the net"), CNN_OK);
    ck_assert_int_eq(cnn_cfg_check_used(NULL, "x"), CNN_OK);
    cnn_cfg_free(c);

    /* mark_used on the root covers everything; getters mark even on error. */
    c = parse_ok("a { b { c: 1 } } d: x");
    cnn_cfg_mark_used(c);
    ck_assert_int_eq(cnn_cfg_check_used(c, "the net"), CNN_OK);
    cnn_cfg_free(c);
    c = parse_ok("d: x");
    int v2;
    ck_assert_int_eq(cnn_cfg_int(c, "d", 0, &v2), CNN_ERR_CONFIG);
    ck_assert_int_eq(cnn_cfg_check_used(c, NULL), CNN_OK);
    cnn_cfg_free(c);
}
END_TEST

/* ---- malformed input ------------------------------------------------------ */

START_TEST(test_syntax_errors)
{
    static const struct {
        const char *text, *where, *needle;
    } cases[] = {
        {"foo 5", "1:5", "expected ':' or '{' after field name 'foo', got '5'"},
        {"\n\n  x: 1\n  y z", "4:5", "expected ':' or '{' after field name 'y', got 'z'"},
        {"foo", "1:4", "expected ':' or '{' after field name 'foo', got end of file"},
        {"a: \"abc", "1:4", "unterminated string"},
        {"a: 'abc\nb: 1", "1:4", "unterminated string"},
        {"a: \"abc\\", "1:8", "unterminated string"},
        {"a: \"x\\\ny\"", "1:6", "strings cannot span lines"},
        {"a {\n b: 1\n", "3:1",
         "unexpected end of file: message 'a' opened at 1:1 has no closing '}'"},
        {"a { b < c: 1 }", "1:14", "unexpected '}': message 'b' opened at 1:5 needs '>'"},
        {"a { b { c: 1 }", "1:15", "message 'a' opened at 1:1"},
        {"a { b: 1 }}", "1:11", "unexpected '}' with no open message"},
        {"a { b: 1 >", "1:10", "unexpected '>'"},
        {">", "1:1", "unexpected '>' with no open message"},
        {"a: 1 @", "1:6", "unexpected character '@'"},
        {"a: 1\n  b: \xff", "2:6", "unexpected byte 0xFF"},
        {"a: }", "1:4", "expected a value for field 'a', got '}'"},
        {"a:", "1:3", "expected a value for field 'a', got end of file"},
        {"a: -x", "1:5", "expected a number after '-' for field 'a', got 'x'"},
        {"a: -\"s\"", "1:5", "expected a number after '-'"},
        {"5: 3", "1:1", "expected a field name, got '5'"},
        {"\"s\": 3", "1:1", "expected a field name, got a string"},
        {"a: 1,, b: 2", "1:6", "expected a field name, got ','"},
        {"a: 1 ;; b: 2", "1:7", "expected a field name, got ';'"},
        {"[ext]: 1", "1:1", "expected a field name, got '['"},
        {"a: 1.2.3", "1:4", "invalid number '1.2.3'"},
        {"a: 12abc", "1:4", "invalid number '12abc'"},
        {"a: 0x1g", "1:4", "invalid number"},
        {"a: 1e", "1:4", "number '1e' has no exponent digits"},
        {"a: 1e+f", "1:4", "no exponent digits"},
        {"a: 0x", "1:4", "'0x' needs hex digits"},
        {"a: \"\\q\"", "1:5", "unknown escape sequence '\\q'"},
        {"a: \"\\x\"", "1:5", "'\\x' needs hex digits"},
        {"a: \"ok\\0\"", "1:7", "NUL characters in strings are not supported"},
        {"a: \"\\x00\"", "1:5", "NUL characters"},
        {"a: \"\\777\"", "1:5", "above \\377"},
        {"a: \"\\u12\"", "1:5", "'\\u' needs 4 hex digits"},
        {"a: \"\\uD800\"", "1:5", "not a valid code point"},
        {"a: \"\\U00110000\"", "1:5", "not a valid code point"},
        {"a: [1, 2", "1:9", "expected ',' or ']' in the list 'a' opened at 1:4, got end of file"},
        {"a: [1 2]", "1:7", "expected ',' or ']'"},
        {"a: [1,]", "1:7", "expected a value for field 'a'"},
        {"a [1]", "1:4", "expected '{' in the list of messages 'a', got '1'"},
        {"a: [{ b: 1 }", "1:13", "expected ',' or ']'"},
        {"a { b: [ { c: 1 ] }", "1:17", "expected a field name, got ']'"},
        {"a: b: c", "1:5", "expected a field name, got ':'"},
        {"a: 1 b", "1:7", "expected ':' or '{' after field name 'b', got end of file"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        parse_fails_at(cases[i].text, cases[i].where, cases[i].needle);
}
END_TEST

START_TEST(test_deep_nesting)
{
    size_t n = 100000;
    char *buf = malloc(6 * n + 16);
    /* 100 levels are fine. */
    char *p = buf;
    for (int i = 0; i < 100; i++) p += sprintf(p, "a { ");
    for (int i = 0; i < 100; i++) *p++ = '}';
    *p = 0;
    cnn_cfg *c = parse_ok(buf), *m = c;
    int depth = 0;
    while (m->child) m = m->child, depth++;
    ck_assert_int_eq(depth, 100);
    cnn_cfg_free(c);
    /* 101 are not: the error points at the 101st '{'. */
    p = buf;
    for (int i = 0; i < 101; i++) p += sprintf(p, "a { ");
    for (int i = 0; i < 101; i++) *p++ = '}';
    *p = 0;
    parse_fails_at(buf, "1:403", "messages nested more than 100 deep");
    /* A huge run of openers fails the same way, without deep recursion. */
    p = buf;
    for (size_t i = 0; i < n; i++) p += sprintf(p, "a<");
    *p = 0;
    parse_fails_at(buf, "1:202", "nested more than 100 deep");
    memset(buf, '}', n);
    buf[n] = 0;
    parse_fails_at(buf, "1:1", "unexpected '}' with no open message");
    free(buf);
}
END_TEST

/* Writes `len` bytes to a temporary file and returns its path in `path`. */
static void write_temp(char *path, size_t n, const char *data, size_t len)
{
    snprintf(path, n, "/tmp/check_config_XXXXXX");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
    close(fd);
}

START_TEST(test_files)
{
    char path[64], want[128];
    cnn_cfg *c = (cnn_cfg *)1;
    ck_assert_int_eq(cnn_cfg_parse_file("/nonexistent/dir/model.cfg", &c), CNN_ERR_IO);
    ck_assert_ptr_null(c);
    ck_assert_ptr_nonnull(strstr(cnn_error_message(), "/nonexistent/dir/model.cfg"));
    ck_assert_int_eq(cnn_cfg_parse_file("/tmp", &c), CNN_ERR_IO);
    ck_assert_ptr_nonnull(strstr(cnn_error_message(), "'/tmp'"));

    /* Embedded NUL bytes are errors with their position (allowed in comments). */
    static const struct {
        const char *data;
        size_t len;
        const char *where, *needle;
    } cases[] = {
        {"a: 1\0b: 2", 9, "1:5", "unexpected NUL byte"},
        {"a: 1\n\"x\0y\"", 10, "2:3", "NUL byte inside a string"},
        {"a {\0}", 5, "1:4", "unexpected NUL byte"},
        {"a: 1\nb { c: 2\n", 14, "3:1", "unexpected end of file"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        write_temp(path, sizeof path, cases[i].data, cases[i].len);
        ck_assert_int_eq(cnn_cfg_parse_file(path, &c), CNN_ERR_PARSE);
        ck_assert_ptr_null(c);
        snprintf(want, sizeof want, "%s:%s: %s", path, cases[i].where, cases[i].needle);
        ck_assert_msg(!strncmp(cnn_error_message(), want, strlen(want)), "'%s' vs '%s'",
                      cnn_error_message(), want);
        unlink(path);
    }
    write_temp(path, sizeof path, "# c\0mment\na: 1\n", 15);
    ck_assert_int_eq(cnn_cfg_parse_file(path, &c), CNN_OK);
    ck_assert_str_eq(c->file, path);
    ck_assert_str_eq(c->child->file, path);
    ck_assert_int_eq(c->child->line, 2);
    cnn_cfg_free(c);
    unlink(path);
    /* An empty file is an empty message. */
    write_temp(path, sizeof path, "", 0);
    ck_assert_int_eq(cnn_cfg_parse_file(path, &c), CNN_OK);
    ck_assert_ptr_null(c->child);
    cnn_cfg_free(c);
    unlink(path);
}
END_TEST

START_TEST(test_large)
{
    /* 20000 layers (a few MB): one read, linear parse. */
    int n = 20000;
    size_t cap = (size_t)n * 160 + 1;
    char *buf = malloc(cap), *p = buf;
    for (int i = 0; i < n; i++)
        p += sprintf(p, "layer { name: \"l%d\" type: \"ReLU\" bottom: \"x\" top: \"x\" "
                        "param { lr_mult: %d decay_mult: 0.5 } }\n", i, i);
    char path[64];
    write_temp(path, sizeof path, buf, (size_t)(p - buf));
    cnn_cfg *c = NULL;
    ck_assert_msg(cnn_cfg_parse_file(path, &c) == CNN_OK, "%s", cnn_error_message());
    unlink(path);
    ck_assert_int_eq(cnn_cfg_count(c, "layer"), n);
    cnn_cfg *last = cnn_cfg_nth(c, "layer", n - 1);
    ck_assert_int_eq(last->line, n);
    int v;
    ck_assert_int_eq(cnn_cfg_int(cnn_cfg_get(last, "param"), "lr_mult", 0, &v), CNN_OK);
    ck_assert_int_eq(v, n - 1);
    cnn_cfg_free(c);
    /* One very long string and a very long line. */
    size_t len = 1 << 20;
    p = buf = realloc(buf, len + 64);
    p += sprintf(p, "s: \"");
    memset(p, 'x', len);
    p += len;
    sprintf(p, "\" t: 1");
    c = parse_ok(buf);
    ck_assert_uint_eq(strlen(cnn_cfg_get(c, "s")->text), len);
    ck_assert_int_eq(cnn_cfg_get(c, "t")->col, (int)len + 7);
    cnn_cfg_free(c);
    free(buf);
}
END_TEST

/* ---- Caffe's files and robustness ----------------------------------------- */

/* The folder of Caffe's example files, or NULL when it is not there. */
static const char *caffe_dir(void)
{
    static const char *const dirs[] = {"../shared/caffe-models", "../../shared/caffe-models",
                                       "../../../shared/caffe-models"};
    for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++)
        if (access(dirs[i], R_OK) == 0) return dirs[i];
    return NULL;
}

/* Reads every field below m through the getters, as a consumer would. */
static void read_all(cnn_cfg *m)
{
    for (cnn_cfg *f = m->child; f; f = f->next) {
        cnn_cfg *g = cnn_cfg_nth(m, f->key, 0);
        ck_assert_ptr_nonnull(g);
        if (f->kind == CNN_CFG_MESSAGE) read_all(f);
        f->used = true;
    }
}

START_TEST(test_caffe_models)
{
    const char *dir = caffe_dir();
    if (!dir) {
        printf("check_config: ../shared/caffe-models not found, skipping Caffe model files\n");
        return;
    }
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int files = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t nl = strlen(e->d_name);
        if (nl < 9 || strcmp(e->d_name + nl - 9, ".prototxt")) continue;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        cnn_cfg *c = NULL;
        ck_assert_msg(cnn_cfg_parse_file(path, &c) == CNN_OK, "%s", cnn_error_message());
        ck_assert_ptr_nonnull(c->child);
        if (strstr(e->d_name, "solver")) {
            float lr = 0;
            ck_assert_int_eq(cnn_cfg_float(c, "base_lr", 0, &lr), CNN_OK);
            ck_assert(lr > 0);
        } else {
            ck_assert_int_gt(cnn_cfg_count(c, "layer"), 2);
            const char *ty = NULL;
            ck_assert_int_eq(cnn_cfg_string(cnn_cfg_get(c, "layer"), "type", NULL, &ty), CNN_OK);
            ck_assert_ptr_nonnull(ty);
        }
        read_all(c);
        ck_assert_int_eq(cnn_cfg_check_used(c, "the model"), CNN_OK);
        cnn_cfg_free(c);
        files++;
    }
    closedir(d);
    ck_assert_int_gt(files, 0);

    /* Spot checks on LeNet. */
    char path[512];
    snprintf(path, sizeof path, "%s/mnist_lenet_train_test.prototxt", dir);
    cnn_cfg *c = NULL;
    if (cnn_cfg_parse_file(path, &c) != CNN_OK) return;
    const char *s;
    ck_assert_int_eq(cnn_cfg_string(c, "name", NULL, &s), CNN_OK);
    ck_assert_str_eq(s, "LeNet");
    cnn_cfg *l0 = cnn_cfg_nth(c, "layer", 0), *inc = NULL;
    ck_assert_int_eq(cnn_cfg_string(l0, "type", NULL, &s), CNN_OK);
    ck_assert_str_eq(s, "Data");
    ck_assert_int_eq(cnn_cfg_message(l0, "include", &inc), CNN_OK);
    static const char *const phases[] = {"TRAIN", "TEST", NULL};
    int ph = -1;
    ck_assert_int_eq(cnn_cfg_enum(inc, "phase", phases, 1, &ph), CNN_OK);
    ck_assert_int_eq(ph, 0);
    cnn_cfg_free(c);
}
END_TEST

/* Parses text, and when it parses, pokes the tree with every getter. */
static void parse_anything(const char *text)
{
    cnn_cfg *c = NULL;
    cnn_status st = cnn_cfg_parse_string(text, "fuzz.cfg", &c);
    if (st != CNN_OK) {
        ck_assert_msg(st == CNN_ERR_PARSE, "status %d: %s", st, cnn_error_message());
        ck_assert_ptr_null(c);
        ck_assert_msg(!strncmp(cnn_error_message(), "fuzz.cfg:", 9), "%s", cnn_error_message());
        return;
    }
    static const char *const keys[] = {"a", "b", "layer", "name", "x"};
    static const char *const names[] = {"MAX", "b", NULL};
    for (size_t k = 0; k < sizeof keys / sizeof *keys; k++) {
        int i;
        float f;
        double d;
        bool b;
        long long ll;
        unsigned u;
        const char *s;
        cnn_cfg *m;
        (void)cnn_cfg_int(c, keys[k], 0, &i);
        (void)cnn_cfg_float(c, keys[k], 0, &f);
        (void)cnn_cfg_double(c, keys[k], 0, &d);
        (void)cnn_cfg_bool(c, keys[k], 0, &b);
        (void)cnn_cfg_int64(c, keys[k], 0, &ll);
        (void)cnn_cfg_uint(c, keys[k], 0, &u);
        (void)cnn_cfg_string(c, keys[k], NULL, &s);
        (void)cnn_cfg_enum(c, keys[k], names, 0, &i);
        if (cnn_cfg_message(c, keys[k], &m) == CNN_OK && m) (void)cnn_cfg_check_used(m, "m");
        for (int j = 0; j < cnn_cfg_count(c, keys[k]); j++)
            (void)cnn_cfg_as_float(cnn_cfg_nth(c, keys[k], j), &f);
    }
    (void)cnn_cfg_check_used(c, "fuzz");
    cnn_cfg_free(c);
}

START_TEST(test_truncations)
{
    char *text = NULL;
    const char *dir = caffe_dir();
    if (dir) {
        char path[512];
        snprintf(path, sizeof path, "%s/mnist_lenet_train_test.prototxt", dir);
        FILE *f = fopen(path, "rb");
        if (f) {
            text = calloc(1, 1 << 16);
            size_t n = fread(text, 1, (1 << 16) - 1, f);
            text[n] = 0;
            fclose(f);
        }
    }
    if (!text) text = strdup(sample_model);
    cnn_cfg *whole = parse_ok(text);
    cnn_cfg_free(whole);
    size_t n = strlen(text);
    char *buf = malloc(n + 1);
    for (size_t i = 0; i <= n; i++) {
        memcpy(buf, text, i);
        buf[i] = 0;
        parse_anything(buf);
    }
    /* The built-in sample has every syntax form; truncate it too. */
    n = strlen(sample_model);
    buf = realloc(buf, n + 1);
    for (size_t i = 0; i <= n; i++) {
        memcpy(buf, sample_model, i);
        buf[i] = 0;
        parse_anything(buf);
    }
    free(buf);
    free(text);
}
END_TEST

START_TEST(test_random)
{
    static const char *const frags[] = {
        "a",  "b",    "layer", "x",     ":",     "{",    "}",   "<",  ">",   "[",  "]",
        ",",  ";",    "\"s\"", "'t'",   "'",     "\"",   "\\",  "\\x", "1",  "-",  "1.5e3",
        "0x", "0x1f", "#c\n",  "\n",    " ",     "inf",  ".",   "e",   "f",  "MAX", "true",
        "\"\\u00e9\"", "\"\\1\"", "\t", "\r\n", "99999999999999999999", "1e999", "nan"};
    size_t nf = sizeof frags / sizeof *frags;
    cnn_rng r;
    cnn_rng_seed(&r, 1234);
    char buf[1024];
    for (int it = 0; it < 3000; it++) {
        size_t len = 0;
        int nfr = (int)cnn_rng_below(&r, 60);
        for (int k = 0; k < nfr; k++) {
            const char *fr = frags[cnn_rng_below(&r, (uint32_t)nf)];
            size_t fl = strlen(fr);
            if (len + fl >= sizeof buf) break;
            memcpy(buf + len, fr, fl);
            len += fl;
        }
        buf[len] = 0;
        parse_anything(buf);
    }
    /* Raw random bytes (any byte but NUL, which ends a C string). */
    for (int it = 0; it < 2000; it++) {
        size_t len = cnn_rng_below(&r, 200);
        for (size_t k = 0; k < len; k++) buf[k] = (char)(1 + cnn_rng_below(&r, 255));
        buf[len] = 0;
        parse_anything(buf);
    }
    /* Random bytes including NUL, through files. */
    char path[64];
    for (int it = 0; it < 50; it++) {
        size_t len = cnn_rng_below(&r, 300);
        for (size_t k = 0; k < len; k++) buf[k] = (char)cnn_rng_below(&r, 256);
        write_temp(path, sizeof path, buf, len);
        cnn_cfg *c = NULL;
        cnn_status st = cnn_cfg_parse_file(path, &c);
        ck_assert(st == CNN_OK || st == CNN_ERR_PARSE);
        cnn_cfg_free(c);
        unlink(path);
    }
}
END_TEST

static Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_forms);
    tcase_add_test(tc, test_positions);
    tcase_add_test(tc, test_strings);
    tcase_add_test(tc, test_numbers);
    tcase_add_test(tc, test_bools);
    tcase_add_test(tc, test_getter_errors);
    tcase_add_test(tc, test_check_used);
    tcase_add_test(tc, test_syntax_errors);
    tcase_add_test(tc, test_deep_nesting);
    tcase_add_test(tc, test_files);
    tcase_add_test(tc, test_large);
    tcase_add_test(tc, test_caffe_models);
    tcase_add_test(tc, test_truncations);
    tcase_add_test(tc, test_random);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return cnn_test_run(config_suite()) != 0; }
