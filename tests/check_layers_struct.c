/* check_layers_struct.c — the structural layers: Concat, Eltwise, Flatten,
 * Reshape, Split and Silence. Gradient checks, forward values, shape
 * inference and configuration errors. */
#include "testutil.h"

#define IN(name, dims)                                                                  \
    "layer { name: \"" name "\" type: \"Input\" top: \"" name "\" input_param { shape { " \
    dims " } } }\n"

static void expect_shape(const cnn_tensor *t, int ndim, const int *shape)
{
    char got[96];
    ck_assert_msg(t, "no tensor");
    ck_assert_msg(t->ndim == ndim, "%s: ndim %d, want %d (%s)", t->name, t->ndim, ndim,
                  cnn_tensor_shape_str(t, got, sizeof got));
    for (int d = 0; d < ndim; d++)
        ck_assert_msg(t->shape[d] == shape[d], "%s: shape %s, dim %d should be %d", t->name,
                      cnn_tensor_shape_str(t, got, sizeof got), d, shape[d]);
}

/* ---- Concat ------------------------------------------------------------- */

static const char *concat_axis1 =
    IN("a", "dim: 2 dim: 2 dim: 3 dim: 3") IN("b", "dim: 2 dim: 3 dim: 3 dim: 3")
    IN("c", "dim: 2 dim: 1 dim: 3 dim: 3")
    "layer { name: \"cat\" type: \"Concat\" bottom: \"a\" bottom: \"b\" bottom: \"c\" "
    "top: \"y\" }\n";

static const char *concat_axis0 =
    IN("a", "dim: 1 dim: 2 dim: 3 dim: 2") IN("b", "dim: 2 dim: 2 dim: 3 dim: 2")
    IN("c", "dim: 1 dim: 2 dim: 3 dim: 2")
    "layer { name: \"cat\" type: \"Concat\" bottom: \"a\" bottom: \"b\" bottom: \"c\" "
    "top: \"y\" concat_param { axis: 0 } }\n";

START_TEST(concat_gradcheck_axis1) { cnn_test_gradcheck(concat_axis1, "cat", 7); }
END_TEST

START_TEST(concat_gradcheck_axis0) { cnn_test_gradcheck(concat_axis0, "cat", 7); }
END_TEST

START_TEST(concat_forward_values)
{
    cnn_net *n = cnn_test_net(concat_axis1, CNN_TEST);
    const char *names[3] = {"a", "b", "c"};
    for (int i = 0; i < 3; i++) {
        cnn_tensor *t = cnn_net_blob(n, names[i]);
        for (size_t k = 0; k < t->count; k++) t->data[k] = (float)(100 * i + (int)k);
    }
    ck_assert_int_eq(cnn_net_forward(n, NULL), CNN_OK);
    cnn_tensor *y = cnn_net_blob(n, "y");
    expect_shape(y, 4, (int[]){2, 6, 3, 3});
    /* y[n, c] is a[n, c] for c < 2, b[n, c-2] for c < 5, c[n, c-5] otherwise. */
    for (int s = 0; s < 2; s++)
        for (int c = 0; c < 6; c++)
            for (int k = 0; k < 9; k++) {
                int src = c < 2 ? 0 : c < 5 ? 1 : 2, ch = c < 2 ? c : c < 5 ? c - 2 : c - 5;
                int nc = src == 0 ? 2 : src == 1 ? 3 : 1;
                float want = (float)(100 * src + (s * nc + ch) * 9 + k);
                ck_assert_float_eq(y->data[(s * 6 + c) * 9 + k], want);
            }
    cnn_net_free(n);
}
END_TEST

START_TEST(concat_legacy_and_negative_axis)
{
    cnn_net *n = cnn_test_net(IN("a", "dim: 2 dim: 3 dim: 4") IN("b", "dim: 2 dim: 3 dim: 5")
                              "layer { name: \"c1\" type: \"Concat\" bottom: \"a\" bottom: \"b\" "
                              "top: \"y\" concat_param { concat_dim: 2 } }\n"
                              "layer { name: \"c2\" type: \"Concat\" bottom: \"a\" bottom: \"b\" "
                              "top: \"z\" concat_param { axis: -1 } }\n",
                              CNN_TEST);
    expect_shape(cnn_net_blob(n, "y"), 3, (int[]){2, 3, 9});
    expect_shape(cnn_net_blob(n, "z"), 3, (int[]){2, 3, 9});
    cnn_net_free(n);
}
END_TEST

START_TEST(concat_errors)
{
    cnn_test_net_fails(IN("a", "dim: 2 dim: 3") IN("b", "dim: 3 dim: 3")
                       "layer { name: \"cat\" type: \"Concat\" bottom: \"a\" bottom: \"b\" "
                       "top: \"y\" }\n",
                       CNN_ERR_SHAPE, "bottom 1 is 3x3");
    cnn_test_net_fails(IN("a", "dim: 2 dim: 3") IN("b", "dim: 2 dim: 3")
                       "layer { name: \"cat\" type: \"Concat\" bottom: \"a\" bottom: \"b\" "
                       "top: \"y\" concat_param { axis: 2 } }\n",
                       CNN_ERR_SHAPE, "out of range");
    cnn_test_net_fails(IN("a", "dim: 2 dim: 3") IN("b", "dim: 2 dim: 3")
                       "layer { name: \"cat\" type: \"Concat\" bottom: \"a\" bottom: \"b\" "
                       "top: \"y\" concat_param { axis: 1 concat_dim: 1 } }\n",
                       CNN_ERR_CONFIG, "not both");
}
END_TEST

/* ---- Eltwise ------------------------------------------------------------ */

#define ELT_INPUTS                                                                        \
    IN("a", "dim: 2 dim: 3 dim: 2 dim: 2") IN("b", "dim: 2 dim: 3 dim: 2 dim: 2")            \
    IN("c", "dim: 2 dim: 3 dim: 2 dim: 2")
#define ELT_LAYER(param)                                                                  \
    "layer { name: \"e\" type: \"Eltwise\" bottom: \"a\" bottom: \"b\" bottom: \"c\" "      \
    "top: \"y\" " param " }\n"

START_TEST(eltwise_gradcheck_sum_coeff)
{
    cnn_test_gradcheck(ELT_INPUTS ELT_LAYER("eltwise_param { operation: SUM coeff: 1 "
                                            "coeff: -0.5 coeff: 2 }"),
                       "e", 7);
}
END_TEST

START_TEST(eltwise_gradcheck_sum_default)
{
    cnn_test_gradcheck(ELT_INPUTS ELT_LAYER(""), "e", 7);
}
END_TEST

START_TEST(eltwise_gradcheck_prod)
{
    cnn_test_gradcheck(ELT_INPUTS ELT_LAYER("eltwise_param { operation: PROD }"), "e", 7);
}
END_TEST

/* Keeps inputs away from zero for the dividing gradient. */
static void away_from_zero(cnn_net *n)
{
    const char *names[3] = {"a", "b", "c"};
    for (int i = 0; i < 3; i++) {
        cnn_tensor *t = cnn_net_blob(n, names[i]);
        for (size_t k = 0; k < t->count; k++) t->data[k] = t->data[k] * 0.5f + 1.f;
    }
}

START_TEST(eltwise_gradcheck_prod_unstable)
{
    cnn_test_gradcheck_ex(ELT_INPUTS ELT_LAYER("eltwise_param { operation: PROD "
                                               "stable_prod_grad: false }"),
                          "e", 7, 1e-2, 1e-2, CNN_TRAIN, away_from_zero);
}
END_TEST

/* Values at least 0.1 apart across bottoms, so finite differences never
 * change which bottom is the maximum. */
static void distinct_values(cnn_net *n)
{
    const char *names[3] = {"a", "b", "c"};
    for (int i = 0; i < 3; i++) {
        cnn_tensor *t = cnn_net_blob(n, names[i]);
        for (size_t k = 0; k < t->count; k++)
            t->data[k] = (float)((k * 7 + (size_t)i * 3) % 11) * 0.1f - 0.5f;
    }
}

START_TEST(eltwise_gradcheck_max)
{
    cnn_test_gradcheck_ex(ELT_INPUTS ELT_LAYER("eltwise_param { operation: MAX }"), "e", 7,
                          1e-2, 1e-2, CNN_TRAIN, distinct_values);
}
END_TEST

/* The stable PROD gradient is exact where an input is 0 (the dividing one
 * would give NaN), and MAX routes each gradient to the winning bottom. */
START_TEST(eltwise_values)
{
    cnn_net *n = cnn_test_net(IN("a", "dim: 3") IN("b", "dim: 3")
                              "layer { name: \"p\" type: \"Eltwise\" bottom: \"a\" "
                              "bottom: \"b\" top: \"y\" eltwise_param { operation: PROD } }\n"
                              "layer { name: \"m\" type: \"Eltwise\" bottom: \"a\" "
                              "bottom: \"b\" top: \"z\" eltwise_param { operation: MAX } }\n",
                              CNN_TRAIN);
    cnn_tensor *a = cnn_net_blob(n, "a"), *b = cnn_net_blob(n, "b");
    const float av[3] = {0, 2, -1}, bv[3] = {3, 4, -5};
    memcpy(a->data, av, sizeof av);
    memcpy(b->data, bv, sizeof bv);
    /* a and b feed two layers each, through inserted splits. */
    int p = cnn_test_layer_index(n, "p"), m = cnn_test_layer_index(n, "m");
    ck_assert_int_eq(cnn_net_forward(n, NULL), CNN_OK);
    cnn_tensor *y = cnn_net_layer_top(n, p, 0), *z = cnn_net_layer_top(n, m, 0);
    const float yv[3] = {0, 8, 5}, zv[3] = {3, 4, -1};
    for (int i = 0; i < 3; i++) {
        ck_assert_float_eq(y->data[i], yv[i]);
        ck_assert_float_eq(z->data[i], zv[i]);
        y->grad[i] = 1.f + (float)i;
        z->grad[i] = 10.f + (float)i;
    }
    cnn_tensor *pa = cnn_net_layer_bottom(n, p, 0), *pb = cnn_net_layer_bottom(n, p, 1);
    ck_assert_int_eq(cnn_net_layer_backward_all(n, p), CNN_OK);
    const float ga[3] = {3, 8, -15}, gb[3] = {0, 4, -3};
    for (int i = 0; i < 3; i++) {
        ck_assert_float_eq(pa->grad[i], ga[i]);
        ck_assert_float_eq(pb->grad[i], gb[i]);
    }
    cnn_tensor *ma = cnn_net_layer_bottom(n, m, 0), *mb = cnn_net_layer_bottom(n, m, 1);
    ck_assert_int_eq(cnn_net_layer_backward_all(n, m), CNN_OK);
    const float ma_want[3] = {0, 0, 12}, mb_want[3] = {10, 11, 0};
    for (int i = 0; i < 3; i++) {
        ck_assert_float_eq(ma->grad[i], ma_want[i]);
        ck_assert_float_eq(mb->grad[i], mb_want[i]);
    }
    cnn_net_free(n);
}
END_TEST

START_TEST(eltwise_errors)
{
    cnn_test_net_fails(ELT_INPUTS ELT_LAYER("eltwise_param { coeff: 1 coeff: 2 }"),
                       CNN_ERR_CONFIG, "2 coeff values for 3 bottoms");
    cnn_test_net_fails(ELT_INPUTS ELT_LAYER("eltwise_param { operation: MAX coeff: 1 "
                                            "coeff: 2 coeff: 3 }"),
                       CNN_ERR_CONFIG, "only allowed with operation SUM");
    cnn_test_net_fails(IN("a", "dim: 2 dim: 3") IN("b", "dim: 3 dim: 2")
                       "layer { name: \"e\" type: \"Eltwise\" bottom: \"a\" bottom: \"b\" "
                       "top: \"y\" }\n",
                       CNN_ERR_SHAPE, "bottom 1 is 3x2 but bottom 0 is 2x3");
}
END_TEST

/* ---- Split and Silence -------------------------------------------------- */

START_TEST(split_gradcheck)
{
    cnn_test_gradcheck(IN("x", "dim: 2 dim: 3 dim: 2")
                       "layer { name: \"s\" type: \"Split\" bottom: \"x\" top: \"x1\" "
                       "top: \"x2\" top: \"x3\" }\n",
                       "s", 1);
}
END_TEST

/* x feeds two Eltwise layers; the net inserts a Split whose backward must
 * sum both consumers' gradients: d/dx (2x + (-3)x) = -1 per element. */
START_TEST(split_inserted_by_net)
{
    cnn_net *n = cnn_test_net(IN("x", "dim: 2 dim: 3") IN("z", "dim: 2 dim: 3")
                              "layer { name: \"e1\" type: \"Eltwise\" bottom: \"x\" "
                              "bottom: \"z\" top: \"y1\" eltwise_param { coeff: 2 coeff: 0 } }\n"
                              "layer { name: \"e2\" type: \"Eltwise\" bottom: \"x\" "
                              "bottom: \"z\" top: \"y2\" eltwise_param { coeff: -3 coeff: 0 } }\n"
                              "layer { name: \"sum\" type: \"Eltwise\" bottom: \"y1\" "
                              "bottom: \"y2\" top: \"y\" }\n",
                              CNN_TRAIN);
    int splits = 0;
    for (int i = 0; i < cnn_net_num_layers(n); i++)
        splits += !strcmp(cnn_net_layer_type(n, i), "Split");
    ck_assert_int_ge(splits, 1);
    cnn_test_fill_uniform(cnn_net_blob(n, "x"), -1, 1, 3);
    cnn_test_fill_uniform(cnn_net_blob(n, "z"), -1, 1, 4);
    ck_assert_int_eq(cnn_net_forward(n, NULL), CNN_OK);
    cnn_tensor *x = cnn_net_blob(n, "x"), *y = cnn_net_blob(n, "y");
    for (size_t k = 0; k < y->count; k++) {
        ck_assert_float_eq_tol(y->data[k], -x->data[k], 1e-6);
        y->grad[k] = 1.f;
    }
    /* Every layer backward, last to first, gradients into the inputs too. */
    for (int i = cnn_net_num_layers(n) - 1; i >= 0; i--)
        ck_assert_int_eq(cnn_net_layer_backward_all(n, i), CNN_OK);
    for (size_t k = 0; k < x->count; k++) ck_assert_float_eq_tol(x->grad[k], -1.f, 1e-6);
    cnn_net_free(n);
}
END_TEST

START_TEST(silence_zeroes_grads)
{
    cnn_net *n = cnn_test_net(IN("x", "dim: 4") IN("w", "dim: 2 dim: 2")
                              "layer { name: \"s\" type: \"Silence\" bottom: \"x\" "
                              "bottom: \"w\" }\n",
                              CNN_TRAIN);
    int s = cnn_test_layer_index(n, "s");
    ck_assert_int_eq(cnn_net_layer_num_tops(n, s), 0);
    cnn_tensor *x = cnn_net_blob(n, "x"), *w = cnn_net_blob(n, "w");
    for (int k = 0; k < 4; k++) x->grad[k] = w->grad[k] = 5.f;
    ck_assert_int_eq(cnn_net_forward(n, NULL), CNN_OK);
    ck_assert_int_eq(cnn_net_layer_backward_all(n, s), CNN_OK);
    for (int k = 0; k < 4; k++) {
        ck_assert_float_eq(x->grad[k], 0.f);
        ck_assert_float_eq(w->grad[k], 0.f);
    }
    cnn_net_free(n);
}
END_TEST

/* ---- Flatten and Reshape ------------------------------------------------ */

#define X2365 IN("x", "dim: 2 dim: 3 dim: 6 dim: 5")

static void check_top_shape(const char *layer_text, int ndim, const int *shape)
{
    char proto[1024];
    snprintf(proto, sizeof proto, "%s%s", X2365, layer_text);
    cnn_net *n = cnn_test_net(proto, CNN_TEST);
    cnn_test_fill_uniform(cnn_net_blob(n, "x"), -1, 1, 5);
    ck_assert_int_eq(cnn_net_forward(n, NULL), CNN_OK);
    cnn_tensor *x = cnn_net_blob(n, "x"), *y = cnn_net_blob(n, "y");
    expect_shape(y, ndim, shape);
    ck_assert_int_eq(memcmp(x->data, y->data, x->count * sizeof(float)), 0);
    cnn_net_free(n);
}

#define RESHAPE(param) \
    "layer { name: \"r\" type: \"Reshape\" bottom: \"x\" top: \"y\" reshape_param { " \
    param " } }\n"
#define FLATTEN(param) \
    "layer { name: \"f\" type: \"Flatten\" bottom: \"x\" top: \"y\" " param " }\n"

START_TEST(flatten_shapes)
{
    check_top_shape(FLATTEN(""), 2, (int[]){2, 90});
    check_top_shape(FLATTEN("flatten_param { axis: 2 }"), 3, (int[]){2, 3, 30});
    check_top_shape(FLATTEN("flatten_param { axis: 1 end_axis: 2 }"), 3, (int[]){2, 18, 5});
    check_top_shape(FLATTEN("flatten_param { axis: 0 end_axis: -2 }"), 2, (int[]){36, 5});
    check_top_shape(FLATTEN("flatten_param { axis: -1 }"), 4, (int[]){2, 3, 6, 5});
    cnn_test_net_fails(X2365 FLATTEN("flatten_param { axis: 3 end_axis: 1 }"), CNN_ERR_SHAPE,
                       "not a range");
    cnn_test_net_fails(X2365 FLATTEN("flatten_param { axis: 4 }"), CNN_ERR_SHAPE,
                       "not a range");
}
END_TEST

START_TEST(reshape_shapes)
{
    check_top_shape(RESHAPE("shape { dim: 0 dim: -1 }"), 2, (int[]){2, 90});
    check_top_shape(RESHAPE("shape { dim: -1 }"), 1, (int[]){180});
    check_top_shape(RESHAPE("shape { dim: 0 dim: 0 dim: 0 dim: 0 }"), 4, (int[]){2, 3, 6, 5});
    check_top_shape(RESHAPE("shape { dim: 0 dim: 3 dim: 2 dim: -1 }"), 4,
                    (int[]){2, 3, 2, 15});
    check_top_shape(RESHAPE("shape { dim: 6 dim: 5 dim: 6 }"), 3, (int[]){6, 5, 6});
    /* axis / num_axes replace only part of the shape. */
    check_top_shape(RESHAPE("axis: 1 num_axes: 2 shape { dim: -1 }"), 3, (int[]){2, 18, 5});
    check_top_shape(RESHAPE("axis: 2 shape { dim: 3 dim: 10 }"), 4, (int[]){2, 3, 3, 10});
    check_top_shape(RESHAPE("axis: -2 shape { dim: 1 dim: -1 }"), 5, (int[]){2, 3, 6, 1, 5});
    check_top_shape(RESHAPE("axis: 0 num_axes: 0 shape { dim: 1 }"), 5,
                    (int[]){1, 2, 3, 6, 5});
    check_top_shape(RESHAPE("axis: -1 num_axes: 0 shape { dim: 1 }"), 5,
                    (int[]){2, 3, 6, 5, 1});
    check_top_shape(RESHAPE("axis: 1 num_axes: 1 shape { dim: 0 dim: 1 }"), 5,
                    (int[]){2, 3, 1, 6, 5});
}
END_TEST

START_TEST(reshape_errors)
{
    cnn_test_net_fails(X2365 RESHAPE("shape { dim: -1 dim: 3 dim: -1 }"), CNN_ERR_CONFIG,
                       "more than one -1");
    cnn_test_net_fails(X2365 RESHAPE("shape { dim: 0 dim: 7 dim: -1 }"), CNN_ERR_SHAPE,
                       "not a multiple of 14");
    cnn_test_net_fails(X2365 RESHAPE("shape { dim: 2 dim: 3 dim: 5 }"), CNN_ERR_SHAPE,
                       "new shape holds 30 values");
    cnn_test_net_fails(X2365 RESHAPE("axis: 3 shape { dim: 0 dim: 0 }"), CNN_ERR_SHAPE,
                       "no axis 4");
    cnn_test_net_fails(X2365 RESHAPE("axis: 5 shape { dim: 1 }"), CNN_ERR_SHAPE,
                       "out of range");
    cnn_test_net_fails(X2365 RESHAPE("axis: 2 num_axes: 3 shape { dim: -1 }"), CNN_ERR_SHAPE,
                       "run past");
    cnn_test_net_fails(X2365 RESHAPE("shape { dim: -2 }"), CNN_ERR_CONFIG, "invalid");
    cnn_test_net_fails(X2365 RESHAPE("num_axes: -2 shape { dim: -1 }"), CNN_ERR_CONFIG,
                       "num_axes");
    cnn_test_net_fails(X2365 "layer { name: \"r\" type: \"Reshape\" bottom: \"x\" top: \"y\" }\n",
                       CNN_ERR_CONFIG, "missing");
}
END_TEST

START_TEST(flatten_reshape_gradcheck)
{
    cnn_test_gradcheck(IN("x", "dim: 2 dim: 3 dim: 2 dim: 2")
                       FLATTEN("flatten_param { axis: 1 end_axis: 2 }"), "f", 1);
    cnn_test_gradcheck(IN("x", "dim: 2 dim: 3 dim: 2 dim: 2")
                       RESHAPE("shape { dim: 0 dim: -1 dim: 3 }"), "r", 1);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("layers_struct");
    TCase *c = tcase_create("concat");
    tcase_add_test(c, concat_gradcheck_axis1);
    tcase_add_test(c, concat_gradcheck_axis0);
    tcase_add_test(c, concat_forward_values);
    tcase_add_test(c, concat_legacy_and_negative_axis);
    tcase_add_test(c, concat_errors);
    suite_add_tcase(s, c);
    c = tcase_create("eltwise");
    tcase_add_test(c, eltwise_gradcheck_sum_coeff);
    tcase_add_test(c, eltwise_gradcheck_sum_default);
    tcase_add_test(c, eltwise_gradcheck_prod);
    tcase_add_test(c, eltwise_gradcheck_prod_unstable);
    tcase_add_test(c, eltwise_gradcheck_max);
    tcase_add_test(c, eltwise_values);
    tcase_add_test(c, eltwise_errors);
    suite_add_tcase(s, c);
    c = tcase_create("split");
    tcase_add_test(c, split_gradcheck);
    tcase_add_test(c, split_inserted_by_net);
    tcase_add_test(c, silence_zeroes_grads);
    suite_add_tcase(s, c);
    c = tcase_create("reshape");
    tcase_add_test(c, flatten_shapes);
    tcase_add_test(c, reshape_shapes);
    tcase_add_test(c, reshape_errors);
    tcase_add_test(c, flatten_reshape_gradcheck);
    suite_add_tcase(s, c);
    return s;
}

int main(void) { return cnn_test_run(suite()) != 0; }
