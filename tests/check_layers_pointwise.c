/* check_layers_pointwise.c — the point-wise, normalisation, softmax, loss
 * and accuracy layers: finite-difference gradient checks in every mode,
 * forward values against hand-computed numbers, in-place runs against
 * out-of-place ones, Dropout statistics and configuration errors. */
#include "testutil.h"

#define IN(name, dims)                                                                  \
    "layer { name: '" name "' type: 'Input' top: '" name "' input_param { shape { " dims \
    " } } }\n"
#define D4 "dim: 2 dim: 3 dim: 2 dim: 2"
/* Layers with parameters run backward anyway; this makes them fill the
 * gradient of their Input-fed bottoms too. */
#define FB "force_backward: true\n"
#define LAYER(type, params) \
    "layer { name: 'l' type: '" type "' bottom: 'x' top: 'y' " params " }\n"

static void expect_near(float got, double want, double tol, const char *what)
{
    ck_assert_msg(fabs(got - want) <= tol * fmax(1.0, fabs(want)), "%s: got %.8g, want %.8g",
                  what, got, want);
}

static void set_values(cnn_net *n, const char *blob, const float *v, size_t count)
{
    cnn_tensor *t = cnn_net_blob(n, blob);
    ck_assert_ptr_nonnull(t);
    ck_assert_uint_eq(t->count, count);
    memcpy(t->data, v, count * sizeof(float));
}

/* Pushes the inputs away from 0, where ReLU-like layers have a kink that
 * central differences cannot cross. */
static void away_from_zero(cnn_net *n)
{
    cnn_tensor *x = cnn_net_blob(n, "x");
    for (size_t i = 0; i < x->count; i++)
        if (fabsf(x->data[i]) < 0.05f) x->data[i] = x->data[i] < 0 ? -0.1f : 0.1f;
}

/* Like cnn_test_gradcheck_ex but checks bottoms only: BatchNorm with global
 * statistics depends on its statistic blobs, which (as in Caffe) get no
 * gradient because they are never learned. */
static void gradcheck_bottoms(const char *proto, unsigned mask, double step, double tol,
                              cnn_phase phase, void (*prep)(cnn_net *))
{
    cnn_net *n = cnn_test_net(proto, phase);
    int li = cnn_test_layer_index(n, "l");
    for (int i = 0; i < cnn_net_num_inputs(n); i++)
        cnn_test_fill_uniform(cnn_net_input(n, i), -1.f, 1.f, 100 + (uint64_t)i);
    if (prep) prep(n);
    ck_assert_msg(cnn_net_layer_forward(n, li) == CNN_OK, "%s", cnn_error_message());
    cnn_tensor *top = cnn_net_layer_top(n, li, 0);
    float *w[1] = {malloc(top->count * sizeof(float))};
    cnn_test_fill_uniform(top, -0.5f, 0.5f, 7);
    memcpy(w[0], top->data, top->count * sizeof(float));
    memcpy(top->grad, w[0], top->count * sizeof(float));
    ck_assert_msg(cnn_net_layer_backward_all(n, li) == CNN_OK, "%s", cnn_error_message());
    for (int b = 0; b < cnn_net_layer_num_bottoms(n, li); b++) {
        if (!(mask & (1u << b))) continue;
        cnn_tensor *x = cnn_net_layer_bottom(n, li, b);
        float *a = malloc(x->count * sizeof(float));
        memcpy(a, x->grad, x->count * sizeof(float));
        gradcheck_tensor(n, li, w, x, a, step, tol, "bottom");
        free(a);
    }
    free(w[0]);
    cnn_net_free(n);
}

/* ---- ReLU, PReLU, Sigmoid, TanH, ELU ------------------------------------------ */

START_TEST(relu_gradcheck)
{
    cnn_test_gradcheck_ex(IN("x", D4) LAYER("ReLU", ""), "l", 1, 1e-2, 1e-2, CNN_TRAIN,
                          away_from_zero);
    cnn_test_gradcheck_ex(IN("x", D4) LAYER("ReLU", "relu_param { negative_slope: 0.1 }"),
                          "l", 1, 1e-2, 1e-2, CNN_TRAIN, away_from_zero);
}
END_TEST

START_TEST(prelu_gradcheck)
{
    cnn_test_gradcheck_ex(FB IN("x", D4) LAYER("PReLU", ""), "l", 1, 1e-2, 1e-2, CNN_TRAIN,
                          away_from_zero);
    cnn_test_gradcheck_ex(FB IN("x", D4) LAYER("PReLU", "prelu_param { channel_shared: true }"),
                          "l", 1, 1e-2, 1e-2, CNN_TRAIN, away_from_zero);
    cnn_test_gradcheck_ex(FB IN("x", D4) LAYER("PReLU", "prelu_param { filler { type: 'uniform' "
                                                     "min: -0.5 max: 0.5 } }"),
                          "l", 1, 1e-2, 1e-2, CNN_TRAIN, away_from_zero);
}
END_TEST

START_TEST(sigmoid_tanh_elu_gradcheck)
{
    cnn_test_gradcheck(IN("x", D4) LAYER("Sigmoid", ""), "l", 1);
    cnn_test_gradcheck(IN("x", D4) LAYER("TanH", ""), "l", 1);
    cnn_test_gradcheck_ex(IN("x", D4) LAYER("ELU", ""), "l", 1, 1e-2, 1e-2, CNN_TRAIN,
                          away_from_zero);
    cnn_test_gradcheck_ex(IN("x", D4) LAYER("ELU", "elu_param { alpha: 0.5 }"), "l", 1, 1e-2,
                          1e-2, CNN_TRAIN, away_from_zero);
}
END_TEST

START_TEST(pointwise_forward_values)
{
    const float x[4] = {-2.f, -0.5f, 0.f, 1.5f};
    struct {
        const char *layer;
        float want[4];
    } cases[] = {
        {LAYER("ReLU", ""), {0, 0, 0, 1.5f}},
        {LAYER("ReLU", "relu_param { negative_slope: 0.1 engine: CAFFE }"),
         {-0.2f, -0.05f, 0, 1.5f}},
        {LAYER("TanH", ""), {tanhf(-2.f), tanhf(-0.5f), 0, tanhf(1.5f)}},
        {LAYER("Sigmoid", ""),
         {1 / (1 + expf(2.f)), 1 / (1 + expf(0.5f)), 0.5f, 1 / (1 + expf(-1.5f))}},
        {LAYER("ELU", "elu_param { alpha: 2 }"),
         {2 * (expf(-2.f) - 1), 2 * (expf(-0.5f) - 1), 0, 1.5f}},
        {LAYER("PReLU", ""), {-0.5f, -0.125f, 0, 1.5f}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char proto[512];
        snprintf(proto, sizeof proto, "%s%s", IN("x", "dim: 1 dim: 1 dim: 4"), cases[c].layer);
        cnn_net *n = cnn_test_net(proto, CNN_TEST);
        set_values(n, "x", x, 4);
        ck_assert_int_eq(cnn_net_forward(n, NULL), CNN_OK);
        cnn_tensor *y = cnn_net_blob(n, "y");
        for (int i = 0; i < 4; i++) expect_near(y->data[i], cases[c].want[i], 1e-6, proto);
        cnn_net_free(n);
    }
    /* Exact anchor values. */
    cnn_net *n = cnn_test_net(IN("x", "dim: 3") LAYER("Sigmoid", ""), CNN_TEST);
    set_values(n, "x", (float[]){0.f, logf(3.f), -logf(3.f)}, 3);
    ck_assert_int_eq(cnn_net_forward(n, NULL), CNN_OK);
    float *y = cnn_net_blob(n, "y")->data;
    expect_near(y[0], 0.5, 1e-7, "sigmoid(0)");
    expect_near(y[1], 0.75, 1e-6, "sigmoid(ln 3)");
    expect_near(y[2], 0.25, 1e-6, "sigmoid(-ln 3)");
    cnn_net_free(n);
}
END_TEST

START_TEST(prelu_forward_per_channel)
{
    cnn_net *n = cnn_test_net(IN("x", "dim: 1 dim: 2 dim: 2") LAYER("PReLU", ""), CNN_TEST);
    cnn_tensor *a = cnn_net_param(n, "l", 0);
    ck_assert_int_eq(a->ndim, 1);
    ck_assert_int_eq(a->shape[0], 2);
    ck_assert_float_eq(a->data[0], 0.25f); /* Caffe's default filler */
    a->data[0] = 0.5f;
    a->data[1] = 0.1f;
    set_values(n, "x", (float[]){-4.f, 2.f, -1.f, 3.f}, 4);
    ck_assert_int_eq(cnn_net_forward(n, NULL), CNN_OK);
    float *y = cnn_net_blob(n, "y")->data;
    expect_near(y[0], -2.0, 1e-7, "c0");
    expect_near(y[1], 2.0, 1e-7, "c0");
    expect_near(y[2], -0.1, 1e-7, "c1");
    expect_near(y[3], 3.0, 1e-7, "c1");
    cnn_net_free(n);
    n = cnn_test_net(IN("x", "dim: 1 dim: 2 dim: 2")
                         LAYER("PReLU", "prelu_param { channel_shared: true }"),
                     CNN_TEST);
    ck_assert_int_eq(cnn_net_param(n, "l", 0)->count, 1);
    cnn_net_free(n);
}
END_TEST

/* ---- BatchNorm ------------------------------------------------------------- */

#define BN(params) LAYER("BatchNorm", params)

START_TEST(batchnorm_gradcheck_batch_stats)
{
    cnn_test_gradcheck_ex(IN("x", D4) BN(""), "l", 1, 1e-3, 2e-2, CNN_TRAIN, NULL);
    cnn_test_gradcheck_ex(IN("x", "dim: 5 dim: 3") BN(""), "l", 1, 1e-3, 2e-2, CNN_TRAIN,
                          NULL);
    cnn_test_gradcheck_ex(IN("x", D4) BN("batch_norm_param { use_global_stats: false }"), "l",
                          1, 1e-3, 2e-2, CNN_TEST, NULL);
}
END_TEST

/* Global statistics: mean = blob0 / blob2, variance = blob1 / blob2. */
static void set_bn_stats(cnn_net *n)
{
    cnn_tensor *m = cnn_net_param(n, "l", 0), *v = cnn_net_param(n, "l", 1);
    cnn_tensor *s = cnn_net_param(n, "l", 2);
    for (size_t i = 0; i < m->count; i++) {
        m->data[i] = 0.3f * (float)i - 0.2f;
        v->data[i] = 0.5f + 0.7f * (float)i;
    }
    s->data[0] = 1.7f;
}

START_TEST(batchnorm_gradcheck_global_stats)
{
    gradcheck_bottoms(IN("x", D4) BN(""), 1, 1e-3, 2e-2, CNN_TEST, set_bn_stats);
    gradcheck_bottoms(IN("x", "dim: 4 dim: 3") BN(""), 1, 1e-3, 2e-2, CNN_TEST, set_bn_stats);
    gradcheck_bottoms(IN("x", D4) BN("batch_norm_param { use_global_stats: true }"), 1, 1e-3,
                      2e-2, CNN_TRAIN, set_bn_stats);
}
END_TEST

START_TEST(batchnorm_forward_batch_stats)
{
    /* (N=2, C=2): channel 0 holds 1 and 3, channel 1 holds 2 and 2. */
    cnn_net *n = cnn_test_net(IN("x", "dim: 2 dim: 2") BN(""), CNN_TRAIN);
    set_values(n, "x", (float[]){1.f, 2.f, 3.f, 2.f}, 4);
    ck_assert_int_eq(cnn_net_forward(n, NULL), CNN_OK);
    float *y = cnn_net_blob(n, "y")->data;
    expect_near(y[0], -1 / sqrt(1 + 1e-5), 1e-6, "y00");
    expect_near(y[2], 1 / sqrt(1 + 1e-5), 1e-6, "y10");
    expect_near(y[1], 0, 1e-6, "y01");
    expect_near(y[3], 0, 1e-6, "y11");
    float *m = cnn_net_param(n, "l", 0)->data, *v = cnn_net_param(n, "l", 1)->data;
    float *s = cnn_net_param(n, "l", 2)->data;
    /* Running sums: mean, the unbiased variance m/(m-1) = 2, weight 1. */
    expect_near(m[0], 2, 1e-6, "mean0");
    expect_near(m[1], 2, 1e-6, "mean1");
    expect_near(v[0], 2, 1e-6, "var0");
    expect_near(v[1], 0, 1e-6, "var1");
    expect_near(s[0], 1, 1e-6, "weight");
    set_values(n, "x", (float[]){1.f, 2.f, 3.f, 2.f}, 4);
    ck_assert_int_eq(cnn_net_forward(n, NULL), CNN_OK);
    expect_near(m[0], 2 * 0.999 + 2, 1e-6, "mean0 after 2");
    expect_near(v[0], 2 * 0.999 + 2, 1e-6, "var0 after 2");
    expect_near(s[0], 1.999, 1e-6, "weight after 2");
    cnn_net_free(n);
    /* The statistics never learn. */
    n = cnn_test_net(IN("x", "dim: 2 dim: 2")
                         "layer { name: 'l' type: 'BatchNorm' bottom: 'x' top: 'y' "
                         "param { lr_mult: 1 } param { lr_mult: 1 } param { lr_mult: 1 } "
                         "batch_norm_param { moving_average_fraction: 0.9 eps: 0.001 } }\n",
                     CNN_TRAIN);
    ck_assert_int_eq(cnn_net_num_params(n), 3);
    for (int i = 0; i < 3; i++) {
        ck_assert_float_eq(cnn_net_param_info(n, i)->lr_mult, 0.f);
        ck_assert_float_eq(cnn_net_param_info(n, i)->decay_mult, 0.f);
    }
    set_values(n, "x", (float[]){1.f, 2.f, 3.f, 2.f}, 4);
    ck_assert_int_eq(cnn_net_forward(n, NULL), CNN_OK);
    ck_assert_int_eq(cnn_net_forward(n, NULL), CNN_OK);
    expect_near(cnn_net_param(n, "l", 2)->data[0], 1.9, 1e-6, "weight with fraction 0.9");
    expect_near(cnn_net_blob(n, "y")->data[0], -1 / sqrt(1 + 1e-3), 1e-6, "eps 0.001");
    cnn_net_free(n);
}
END_TEST

START_TEST(batchnorm_forward_global_stats)
{
    cnn_net *n = cnn_test_net(IN("x", "dim: 1 dim: 2 dim: 1 dim: 2") BN(""), CNN_TEST);
    float *m = cnn_net_param(n, "l", 0)->data, *v = cnn_net_param(n, "l", 1)->data;
    float *s = cnn_net_param(n, "l", 2)->data;
    /* A fresh layer's weight is 0: statistics read as 0, y = x / sqrt(eps). */
    set_values(n, "x", (float[]){4.f, 5.f, 4.f, 1.f}, 4);
    ck_assert_int_eq(cnn_net_forward(n, NULL), CNN_OK);
    float *y = cnn_net_blob(n, "y")->data;
    expect_near(y[0], 4 / sqrt(1e-5), 1e-5, "zero weight");
    m[0] = 4.f, m[1] = 6.f, v[0] = 8.f, v[1] = 2.f, s[0] = 2.f; /* mean 2, 3; var 4, 1 */
    ck_assert_int_eq(cnn_net_forward(n, NULL), CNN_OK);
    expect_near(y[0], 2 / sqrt(4 + 1e-5), 1e-6, "y0");
    expect_near(y[1], 3 / sqrt(4 + 1e-5), 1e-6, "y1");
    expect_near(y[2], 1 / sqrt(1 + 1e-5), 1e-6, "y2");
    expect_near(y[3], -2 / sqrt(1 + 1e-5), 1e-6, "y3");
    /* Global statistics are not updated. */
    ck_assert_float_eq(s[0], 2.f);
    ck_assert_float_eq(m[1], 6.f);
    cnn_net_free(n);
}
END_TEST

/* ---- Scale ----------------------------------------------------------------- */

START_TEST(scale_gradcheck)
{
    const char *params[] = {
        "",
        "scale_param { bias_term: true %s }",
        "scale_param { axis: 1 num_axes: -1 bias_term: true %s }",
        "scale_param { axis: -2 num_axes: 2 %s }",
        "scale_param { num_axes: 0 bias_term: true %s }",
    };
    const char *random = "filler { type: 'gaussian' std: 1 } "
                         "bias_filler { type: 'uniform' min: -1 max: 1 }";
    for (size_t i = 0; i < sizeof params / sizeof params[0]; i++) {
        char p[256], proto[1024];
        snprintf(p, sizeof p, params[i], random);
        snprintf(proto, sizeof proto, FB "%s" LAYER("Scale", "%s"), IN("x", D4), p);
        cnn_test_gradcheck(proto, "l", 1);
    }
}
END_TEST

START_TEST(scale_gradcheck_two_bottoms)
{
    cnn_test_gradcheck(FB IN("x", D4) IN("s", "dim: 3 dim: 2")
                       "layer { name: 'l' type: 'Scale' bottom: 'x' bottom: 's' top: 'y' }\n",
                       "l", 3);
    cnn_test_gradcheck(FB IN("x", D4) IN("s", "dim: 2 dim: 3")
                       "layer { name: 'l' type: 'Scale' bottom: 'x' bottom: 's' top: 'y' "
                       "scale_param { axis: 0 bias_term: true bias_filler { type: 'gaussian' "
                       "} } }\n",
                       "l", 3);
}
END_TEST

START_TEST(scale_forward_values)
{
    cnn_net *n = cnn_test_net(IN("x", "dim: 2 dim: 3")
                                  LAYER("Scale", "scale_param { bias_term: true }"),
                              CNN_TEST);
    float *s = cnn_net_param(n, "l", 0)->data, *b = cnn_net_param(n, "l", 1)->data;
    for (int i = 0; i < 3; i++) {
        ck_assert_float_eq(s[i], 1.f); /* default fillers: scale 1, bias 0 */
        ck_assert_float_eq(b[i], 0.f);
    }
    s[0] = 1.f, s[1] = 2.f, s[2] = 3.f, b[0] = 0.5f, b[1] = 0.f, b[2] = -1.f;
    set_values(n, "x", (float[]){1, 2, 3, 4, 5, 6}, 6);
    ck_assert_int_eq(cnn_net_forward(n, NULL), CNN_OK);
    float want[6] = {1.5f, 4, 8, 4.5f, 10, 17};
    for (int i = 0; i < 6; i++) expect_near(cnn_net_blob(n, "y")->data[i], want[i], 1e-7, "y");
    cnn_net_free(n);
    /* Two bottoms: the scale comes from bottom[1], here one value per row. */
    n = cnn_test_net(IN("x", "dim: 2 dim: 3") IN("s", "dim: 2")
                     "layer { name: 'l' type: 'Scale' bottom: 'x' bottom: 's' top: 'y' "
                     "scale_param { axis: 0 } }\n",
                     CNN_TEST);
    ck_assert_int_eq(cnn_net_layer_num_params(n, cnn_test_layer_index(n, "l")), 0);
    set_values(n, "x", (float[]){1, 2, 3, 4, 5, 6}, 6);
    set_values(n, "s", (float[]){2, -1}, 2);
    ck_assert_int_eq(cnn_net_forward(n, NULL), CNN_OK);
    float want2[6] = {2, 4, 6, -4, -5, -6};
    for (int i = 0; i < 6; i++) expect_near(cnn_net_blob(n, "y")->data[i], want2[i], 0, "y");
    cnn_net_free(n);
}
END_TEST

START_TEST(scale_shape_errors)
{
    cnn_test_net_fails(IN("x", "dim: 2 dim: 3")
                           LAYER("Scale", "scale_param { axis: 1 num_axes: 2 }"),
                       CNN_ERR_SHAPE, "layer 'l'");
    cnn_test_net_fails(IN("x", "dim: 2 dim: 3") IN("s", "dim: 2")
                       "layer { name: 'l' type: 'Scale' bottom: 'x' bottom: 's' top: 'y' }\n",
                       CNN_ERR_SHAPE, "layer 'l'");
    cnn_test_net_fails(IN("x", "dim: 2 dim: 3") LAYER("Scale", "scale_param { num_axes: -2 }"),
                       CNN_ERR_CONFIG, "num_axes");
}
END_TEST

/* ---- Softmax and SoftmaxWithLoss ---------------------------------------------- */

START_TEST(softmax_gradcheck)
{
    cnn_test_gradcheck(IN("x", D4) LAYER("Softmax", ""), "l", 1);
    cnn_test_gradcheck(IN("x", D4) LAYER("Softmax", "softmax_param { axis: -1 }"), "l", 1);
    cnn_test_gradcheck(IN("x", "dim: 3 dim: 5") LAYER("Softmax", ""), "l", 1);
}
END_TEST

START_TEST(softmax_forward_values)
{
    cnn_net *n = cnn_test_net(IN("x", "dim: 1 dim: 3 dim: 2") LAYER("Softmax", ""), CNN_TEST);
    /* Column 0 is (0, ln 2, ln 5) -> (1, 2, 5) / 8; column 1 is constant. */
    set_values(n, "x", (float[]){0, 7, logf(2), 7, logf(5), 7}, 6);
    ck_assert_int_eq(cnn_net_forward(n, NULL), CNN_OK);
    float *y = cnn_net_blob(n, "y")->data;
    float want[6] = {0.125f, 1 / 3.f, 0.25f, 1 / 3.f, 0.625f, 1 / 3.f};
    for (int i = 0; i < 6; i++) expect_near(y[i], want[i], 1e-6, "softmax");
    /* Large inputs do not overflow. */
    set_values(n, "x", (float[]){1000, 0, 1000, 0, 1000, 0}, 6);
    ck_assert_int_eq(cnn_net_forward(n, NULL), CNN_OK);
    for (int i = 0; i < 6; i++) expect_near(y[i], 1 / 3.0, 1e-6, "softmax large");
    cnn_net_free(n);
}
END_TEST

#define SWL(params)                                                                     \
    "layer { name: 'l' type: 'SoftmaxWithLoss' bottom: 'x' bottom: 'label' top: 'loss' " \
    params " }\n"

/* Labels (i * 3 + 1) mod C for C = x.shape[1]; every third one is
 * replaced by `ignore_value` when that is not INT_MIN. */
static int ignore_value = -2147483647 - 1;

static void write_labels(cnn_net *n)
{
    cnn_tensor *x = cnn_net_blob(n, "x"), *l = cnn_net_blob(n, "label");
    for (size_t i = 0; i < l->count; i++) {
        l->data[i] = (float)((i * 3 + 1) % (size_t)x->shape[1]);
        if (ignore_value != -2147483647 - 1 && i % 3 == 2) l->data[i] = (float)ignore_value;
    }
}

static void labels_plain(cnn_net *n)
{
    ignore_value = -2147483647 - 1;
    write_labels(n);
}

static void labels_ignore_255(cnn_net *n)
{
    ignore_value = 255;
    write_labels(n);
}

static void labels_ignore_1(cnn_net *n)
{
    ignore_value = 1;
    write_labels(n);
}

START_TEST(softmax_loss_gradcheck)
{
    const char *modes[] = {"",
                           "normalization: FULL",
                           "normalization: VALID",
                           "normalization: BATCH_SIZE",
                           "normalization: NONE",
                           "normalize: false"};
    for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
        char proto[1024];
        snprintf(proto, sizeof proto, "%s%s" SWL("loss_param { %s }"),
                 IN("x", "dim: 2 dim: 4 dim: 3"), IN("label", "dim: 2 dim: 3"), modes[m]);
        cnn_test_gradcheck_ex(proto, "l", 1, 1e-2, 1e-2, CNN_TRAIN, labels_plain);
        snprintf(proto, sizeof proto, "%s%s" SWL("loss_param { ignore_label: 255 %s }"),
                 IN("x", "dim: 2 dim: 4 dim: 3"), IN("label", "dim: 2 dim: 3"), modes[m]);
        cnn_test_gradcheck_ex(proto, "l", 1, 1e-2, 1e-2, CNN_TRAIN, labels_ignore_255);
    }
    /* An ignored class that is also a valid one; 2-d input; axis 2. */
    cnn_test_gradcheck_ex(IN("x", "dim: 3 dim: 5") IN("label", "dim: 3")
                              SWL("loss_param { ignore_label: 1 }"),
                          "l", 1, 1e-2, 1e-2, CNN_TRAIN, labels_ignore_1);
    cnn_test_gradcheck_ex(IN("x", "dim: 2 dim: 3 dim: 4") IN("label", "dim: 2 dim: 3")
                              SWL("softmax_param { axis: 2 }"),
                          "l", 1, 1e-2, 1e-2, CNN_TRAIN, labels_plain);
}
END_TEST

/* Loss of x (1, 3, 3) with columns (0, ln 2, ln 5) etc. and labels (2, 0, ignored). */
static double swl_loss(const char *params)
{
    char proto[1024];
    snprintf(proto, sizeof proto, "%s%s" SWL("%s"), IN("x", "dim: 1 dim: 3 dim: 3"),
             IN("label", "dim: 1 dim: 3"), params);
    cnn_net *n = cnn_test_net(proto, CNN_TRAIN);
    float l2 = logf(2), l5 = logf(5);
    set_values(n, "x", (float[]){0, 0, 0, l2, l2, l2, l5, l5, l5}, 9);
    set_values(n, "label", (float[]){2, 0, 255}, 3);
    float loss = 0;
    ck_assert_msg(cnn_net_forward(n, &loss) == CNN_OK, "%s", cnn_error_message());
    ck_assert_float_eq(loss, cnn_net_blob(n, "loss")->data[0]);
    ck_assert_int_eq(cnn_net_blob(n, "loss")->ndim, 0);
    cnn_net_free(n);
    return loss;
}

START_TEST(softmax_loss_forward_values)
{
    double sum = -log(0.625) - log(0.125); /* two valid labels */
    expect_near((float)swl_loss("loss_param { ignore_label: 255 }"), sum / 2, 1e-6, "VALID");
    expect_near((float)swl_loss("loss_param { ignore_label: 255 normalization: FULL }"),
                sum / 3, 1e-6, "FULL");
    expect_near((float)swl_loss("loss_param { ignore_label: 255 normalization: BATCH_SIZE }"),
                sum / 1, 1e-6, "BATCH_SIZE");
    expect_near((float)swl_loss("loss_param { ignore_label: 255 normalization: NONE }"), sum,
                1e-6, "NONE");
    expect_near((float)swl_loss("loss_param { ignore_label: 255 normalize: false }"), sum,
                1e-6, "normalize false");
    expect_near((float)swl_loss("loss_param { ignore_label: 255 normalize: true }"), sum / 2,
                1e-6, "normalize true");
    /* loss_weight scales the gradient; the probabilities come out of top 2. */
    cnn_net *n = cnn_test_net(IN("x", "dim: 1 dim: 3") IN("label", "dim: 1")
                              "layer { name: 'l' type: 'SoftmaxWithLoss' bottom: 'x' "
                              "bottom: 'label' top: 'loss' top: 'prob' loss_weight: 2 "
                              "loss_weight: 0 }\n"
                              "force_backward: true\n",
                              CNN_TRAIN);
    set_values(n, "x", (float[]){0, logf(2), logf(5)}, 3);
    set_values(n, "label", (float[]){1}, 1);
    float loss;
    ck_assert_int_eq(cnn_net_forward(n, &loss), CNN_OK);
    expect_near(loss, -2 * log(0.25), 1e-6, "weighted loss");
    float *p = cnn_net_blob(n, "prob")->data;
    expect_near(p[0], 0.125, 1e-6, "prob0");
    expect_near(p[2], 0.625, 1e-6, "prob2");
    ck_assert_int_eq(cnn_net_backward(n), CNN_OK);
    float *g = cnn_net_blob(n, "x")->grad;
    expect_near(g[0], 2 * 0.125, 1e-6, "grad0");
    expect_near(g[1], 2 * (0.25 - 1), 1e-6, "grad1");
    expect_near(g[2], 2 * 0.625, 1e-6, "grad2");
    ck_assert_float_eq(cnn_net_blob(n, "label")->grad[0], 0.f);
    cnn_net_free(n);
}
END_TEST

START_TEST(softmax_loss_errors)
{
    cnn_net *n = cnn_test_net(IN("x", "dim: 2 dim: 3") IN("label", "dim: 2") SWL(""),
                              CNN_TRAIN);
    set_values(n, "label", (float[]){0, 3}, 2);
    ck_assert_int_eq(cnn_net_forward(n, NULL), CNN_ERR_ARG);
    ck_assert_msg(strstr(cnn_error_message(), "layer 'l'") &&
                      strstr(cnn_error_message(), "label 3"),
                  "%s", cnn_error_message());
    set_values(n, "label", (float[]){-1, 0}, 2);
    ck_assert_int_eq(cnn_net_forward(n, NULL), CNN_ERR_ARG);
    set_values(n, "label", (float[]){NAN, 0}, 2);
    ck_assert_int_eq(cnn_net_forward(n, NULL), CNN_ERR_ARG);
    cnn_net_free(n);
    cnn_test_net_fails(IN("x", "dim: 2 dim: 3 dim: 2") IN("label", "dim: 2") SWL(""),
                       CNN_ERR_SHAPE, "layer 'l'");
    cnn_test_net_fails(IN("x", "dim: 2 dim: 3") IN("label", "dim: 2")
                           SWL("loss_param { normalization: SOMETIMES }"),
                       CNN_ERR_CONFIG, "SOMETIMES");
}
END_TEST

/* ---- Accuracy ------------------------------------------------------------ */

START_TEST(accuracy_values)
{
    /* Rows of scores over 4 classes, with their labels. */
    const float x[5][4] = {
        {0.1f, 0.7f, 0.2f, 0.0f}, /* label 1: top-1 hit */
        {0.5f, 0.1f, 0.4f, 0.0f}, /* label 2: second best, top-2 hit */
        {0.3f, 0.3f, 0.1f, 0.3f}, /* label 0: three-way tie, a miss for k < 3 */
        {0.9f, 0.0f, 0.05f, 0.05f}, /* label 3: tied second, a miss for k < 3 */
        {0.0f, 0.0f, 0.0f, 1.0f}, /* label 3: top-1 hit, or ignored */
    };
    const float labels[5] = {1, 2, 0, 3, 3};
    struct {
        const char *params;
        double want, per_class[4];
    } cases[] = {
        {"", 2 / 5.0, {0, 1, 0, 0.5}},
        {"accuracy_param { top_k: 2 }", 3 / 5.0, {0, 1, 1, 0.5}},
        {"accuracy_param { top_k: 3 }", 1, {1, 1, 1, 1}},
        {"accuracy_param { ignore_label: 3 }", 1 / 3.0, {0, 1, 0, 0}},
        {"accuracy_param { top_k: 4 ignore_label: 1 }", 1, {1, 0, 1, 1}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char proto[1024];
        snprintf(proto, sizeof proto,
                 "%s%slayer { name: 'l' type: 'Accuracy' bottom: 'x' bottom: 'label' "
                 "top: 'acc' top: 'per_class' %s }\n",
                 IN("x", "dim: 5 dim: 4"), IN("label", "dim: 5"), cases[c].params);
        cnn_net *n = cnn_test_net(proto, CNN_TEST);
        set_values(n, "x", &x[0][0], 20);
        set_values(n, "label", labels, 5);
        ck_assert_int_eq(cnn_net_forward(n, NULL), CNN_OK);
        cnn_tensor *acc = cnn_net_blob(n, "acc"), *pc = cnn_net_blob(n, "per_class");
        ck_assert_int_eq(acc->ndim, 0);
        ck_assert_int_eq(pc->ndim, 1);
        ck_assert_int_eq(pc->shape[0], 4);
        expect_near(acc->data[0], cases[c].want, 1e-6, cases[c].params);
        for (int k = 0; k < 4; k++) expect_near(pc->data[k], cases[c].per_class[k], 1e-6, "pc");
        /* A second forward gives the same (nothing accumulates). */
        ck_assert_int_eq(cnn_net_forward(n, NULL), CNN_OK);
        expect_near(acc->data[0], cases[c].want, 1e-6, "again");
        for (int k = 0; k < 4; k++) expect_near(pc->data[k], cases[c].per_class[k], 1e-6, "pc");
        cnn_net_free(n);
    }
}
END_TEST

START_TEST(accuracy_spatial_and_errors)
{
    /* Axis 1 of (1, 2, 3): three positions, two classes. */
    cnn_net *n = cnn_test_net(IN("x", "dim: 1 dim: 2 dim: 3") IN("label", "dim: 1 dim: 3")
                              "layer { name: 'l' type: 'Accuracy' bottom: 'x' "
                              "bottom: 'label' top: 'acc' }\n",
                              CNN_TEST);
    set_values(n, "x", (float[]){1, 0, 5, 0, 1, 4}, 6);
    set_values(n, "label", (float[]){0, 0, 0}, 3);
    ck_assert_int_eq(cnn_net_forward(n, NULL), CNN_OK);
    expect_near(cnn_net_blob(n, "acc")->data[0], 2 / 3.0, 1e-6, "spatial");
    set_values(n, "label", (float[]){0, 2, 0}, 3);
    ck_assert_int_eq(cnn_net_forward(n, NULL), CNN_ERR_ARG);
    ck_assert_msg(strstr(cnn_error_message(), "layer 'l'"), "%s", cnn_error_message());
    cnn_net_free(n);
    cnn_test_net_fails(IN("x", "dim: 2 dim: 3") IN("label", "dim: 2")
                       "layer { name: 'l' type: 'Accuracy' bottom: 'x' bottom: 'label' "
                       "top: 'acc' accuracy_param { top_k: 4 } }\n",
                       CNN_ERR_CONFIG, "top_k");
}
END_TEST

/* ---- EuclideanLoss and SigmoidCrossEntropyLoss --------------------------------- */

static void targets_01(cnn_net *n)
{
    cnn_tensor *t = cnn_net_blob(n, "t");
    for (size_t i = 0; i < t->count; i++) t->data[i] = (t->data[i] + 1) / 2;
}

static void targets_ignore(cnn_net *n)
{
    cnn_tensor *t = cnn_net_blob(n, "t");
    for (size_t i = 0; i < t->count; i++) t->data[i] = i % 4 == 1 ? -1.f : t->data[i] > 0;
}

#define LOSS2(type, params) \
    "layer { name: 'l' type: '" type "' bottom: 'x' bottom: 't' top: 'loss' " params " }\n"

START_TEST(loss_gradcheck)
{
    cnn_test_gradcheck(IN("x", D4) IN("t", D4) LOSS2("EuclideanLoss", ""), "l", 3);
    cnn_test_gradcheck(IN("x", "dim: 4 dim: 3") IN("t", "dim: 4 dim: 3")
                           LOSS2("EuclideanLoss", ""),
                       "l", 3);
    cnn_test_gradcheck_ex(IN("x", D4) IN("t", D4) LOSS2("SigmoidCrossEntropyLoss", ""), "l",
                          1, 1e-2, 1e-2, CNN_TRAIN, targets_01);
    const char *modes[] = {"FULL", "VALID", "BATCH_SIZE", "NONE"};
    for (int m = 0; m < 4; m++) {
        char proto[1024];
        snprintf(proto, sizeof proto,
                 "%s%s" LOSS2("SigmoidCrossEntropyLoss",
                              "loss_param { ignore_label: -1 normalization: %s }"),
                 IN("x", D4), IN("t", D4), modes[m]);
        cnn_test_gradcheck_ex(proto, "l", 1, 1e-2, 1e-2, CNN_TRAIN, targets_ignore);
    }
}
END_TEST

START_TEST(loss_forward_values)
{
    cnn_net *n = cnn_test_net(IN("x", "dim: 2 dim: 2") IN("t", "dim: 2 dim: 2")
                                  LOSS2("EuclideanLoss", ""),
                              CNN_TRAIN);
    set_values(n, "x", (float[]){1, 2, 3, 4}, 4);
    set_values(n, "t", (float[]){0, 0, 0, 0}, 4);
    float loss;
    ck_assert_int_eq(cnn_net_forward(n, &loss), CNN_OK);
    expect_near(loss, 30 / 2.0 / 2.0, 1e-6, "euclidean");
    cnn_net_free(n);

    const char *sce = IN("x", "dim: 2 dim: 2") IN("t", "dim: 2 dim: 2");
    struct {
        const char *params;
        double div;
    } cases[] = {
        {"", 2},                                      /* Caffe's default: BATCH_SIZE */
        {"loss_param { normalization: VALID }", 4},
        {"loss_param { normalize: true }", 4},
        {"loss_param { normalization: FULL }", 4},
        {"loss_param { normalization: NONE }", 1},
    };
    /* x = (0, ln 3, 100, -100) against t = (1, 0, 0, 0): ln 2 + ln 4 + 100 + ~0. */
    double sum = log(2) + log(4) + 100 + log1p(exp(-100));
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char proto[1024];
        snprintf(proto, sizeof proto, "%s" LOSS2("SigmoidCrossEntropyLoss", "%s"), sce,
                 cases[c].params);
        n = cnn_test_net(proto, CNN_TRAIN);
        set_values(n, "x", (float[]){0, logf(3), 100, -100}, 4);
        set_values(n, "t", (float[]){1, 0, 0, 0}, 4);
        ck_assert_int_eq(cnn_net_forward(n, &loss), CNN_OK);
        expect_near(loss, sum / cases[c].div, 1e-6, cases[c].params);
        cnn_net_free(n);
    }
    /* Ignored targets drop out of the sum and of VALID's count. */
    char proto[1024];
    snprintf(proto, sizeof proto, "%s" LOSS2("SigmoidCrossEntropyLoss", "%s"), sce,
             "loss_param { ignore_label: -1 normalization: VALID }");
    n = cnn_test_net(proto, CNN_TRAIN);
    set_values(n, "x", (float[]){0, logf(3), 100, -100}, 4);
    set_values(n, "t", (float[]){1, 0, -1, -1}, 4);
    ck_assert_int_eq(cnn_net_forward(n, &loss), CNN_OK);
    expect_near(loss, (log(2) + log(4)) / 2, 1e-6, "ignore");
    cnn_net_free(n);
    cnn_test_net_fails(IN("x", "dim: 2 dim: 2") IN("t", "dim: 2 dim: 3")
                           LOSS2("SigmoidCrossEntropyLoss", ""),
                       CNN_ERR_SHAPE, "layer 'l'");
    cnn_test_net_fails(IN("x", "dim: 2 dim: 2") IN("t", "dim: 2 dim: 3")
                           LOSS2("EuclideanLoss", ""),
                       CNN_ERR_SHAPE, "layer 'l'");
}
END_TEST

/* ---- Dropout ---------------------------------------------------------------- */

START_TEST(dropout_behaviour)
{
    const char *proto = IN("x", "dim: 100 dim: 100")
        LAYER("Dropout", "dropout_param { dropout_ratio: 0.3 }");
    /* TEST: the identity, forward and backward. */
    cnn_net *n = cnn_test_net(proto, CNN_TEST);
    int li = cnn_test_layer_index(n, "l");
    cnn_tensor *x = cnn_net_blob(n, "x"), *y = cnn_net_blob(n, "y");
    cnn_test_fill_uniform(x, -1, 1, 3);
    ck_assert_int_eq(cnn_net_forward(n, NULL), CNN_OK);
    for (size_t i = 0; i < x->count; i++) ck_assert_float_eq(y->data[i], x->data[i]);
    cnn_test_fill_uniform(y, -1, 1, 4);
    memcpy(y->grad, y->data, y->count * sizeof(float));
    ck_assert_int_eq(cnn_net_layer_backward_all(n, li), CNN_OK);
    for (size_t i = 0; i < x->count; i++) ck_assert_float_eq(x->grad[i], y->grad[i]);
    cnn_net_free(n);

    /* TRAIN: about 30% dropped, the rest scaled by 1/0.7; backward uses the mask. */
    n = cnn_test_net(proto, CNN_TRAIN);
    li = cnn_test_layer_index(n, "l");
    x = cnn_net_blob(n, "x");
    y = cnn_net_blob(n, "y");
    for (size_t i = 0; i < x->count; i++) x->data[i] = 1.f;
    ck_assert_int_eq(cnn_net_forward(n, NULL), CNN_OK);
    size_t dropped = 0;
    for (size_t i = 0; i < y->count; i++) {
        if (y->data[i] == 0.f)
            dropped++;
        else
            expect_near(y->data[i], 1 / 0.7, 1e-6, "kept value");
    }
    double frac = (double)dropped / (double)y->count;
    ck_assert_msg(fabs(frac - 0.3) < 0.02, "dropped fraction %g", frac);
    for (size_t i = 0; i < y->count; i++) y->grad[i] = 2.f;
    ck_assert_int_eq(cnn_net_layer_backward_all(n, li), CNN_OK);
    for (size_t i = 0; i < y->count; i++)
        expect_near(x->grad[i], y->data[i] == 0.f ? 0 : 2 / 0.7, 1e-6, "grad through mask");
    /* A new forward draws a new mask. */
    float *first = malloc(y->count * sizeof(float));
    memcpy(first, y->data, y->count * sizeof(float));
    ck_assert_int_eq(cnn_net_forward(n, NULL), CNN_OK);
    ck_assert(memcmp(first, y->data, y->count * sizeof(float)) != 0);
    free(first);
    cnn_net_free(n);

    /* scale_train: false scales in TEST instead. */
    const char *unscaled = IN("x", "dim: 10 dim: 10")
        LAYER("Dropout", "dropout_param { dropout_ratio: 0.25 scale_train: false }");
    n = cnn_test_net(unscaled, CNN_TRAIN);
    x = cnn_net_blob(n, "x");
    y = cnn_net_blob(n, "y");
    for (size_t i = 0; i < x->count; i++) x->data[i] = 1.f;
    ck_assert_int_eq(cnn_net_forward(n, NULL), CNN_OK);
    for (size_t i = 0; i < y->count; i++) ck_assert(y->data[i] == 0.f || y->data[i] == 1.f);
    cnn_net_free(n);
    n = cnn_test_net(unscaled, CNN_TEST);
    x = cnn_net_blob(n, "x");
    y = cnn_net_blob(n, "y");
    for (size_t i = 0; i < x->count; i++) x->data[i] = 2.f;
    ck_assert_int_eq(cnn_net_forward(n, NULL), CNN_OK);
    for (size_t i = 0; i < y->count; i++) expect_near(y->data[i], 1.5, 1e-7, "test scale");
    cnn_net_free(n);

    cnn_test_net_fails(IN("x", "dim: 2") LAYER("Dropout", "dropout_param { dropout_ratio: 1 }"),
                       CNN_ERR_CONFIG, "dropout_ratio");
}
END_TEST

/* ---- in place -------------------------------------------------------------- */

/* Runs x -> layer -> EuclideanLoss(., t) forward and backward with the
 * layer writing `top` ("y", or "x" for in place); returns the output, the
 * gradient reaching x and the layer's first parameter gradient (if any),
 * concatenated into a new array of *count floats. */
static float *run_net(const char *type, const char *params, const char *top, cnn_phase phase,
                      size_t *count)
{
    char proto[1024];
    snprintf(proto, sizeof proto,
             "force_backward: true\n"
             "layer { name: 'in' type: 'Input' top: 'x' top: 't' "
             "input_param { shape { " D4 " } } }\n"
             "layer { name: 'l' type: '%s' bottom: 'x' top: '%s' %s }\n"
             "layer { name: 'loss' type: 'EuclideanLoss' bottom: '%s' bottom: 't' top: 'loss' }\n",
             type, top, params, top);
    cnn_net *n = cnn_test_net(proto, phase);
    cnn_tensor *x = cnn_net_blob(n, "x"), *t = cnn_net_blob(n, "t");
    cnn_test_fill_uniform(x, -1, 1, 11);
    cnn_test_fill_uniform(t, -1, 1, 12);
    cnn_net_zero_param_grads(n);
    ck_assert_msg(cnn_net_forward(n, NULL) == CNN_OK, "%s", cnn_error_message());
    /* Copy the output now: in place it shares x, whose grad backward fills. */
    cnn_tensor *y = cnn_net_blob(n, top), *p = cnn_net_param(n, "l", 0);
    size_t np = p ? p->count : 0;
    float *out = malloc((2 * x->count + np) * sizeof(float));
    memcpy(out, y->data, x->count * sizeof(float));
    ck_assert_msg(cnn_net_backward(n) == CNN_OK, "%s", cnn_error_message());
    memcpy(out + x->count, x->grad, x->count * sizeof(float));
    if (np) memcpy(out + 2 * x->count, p->grad, np * sizeof(float));
    *count = 2 * x->count + np;
    cnn_net_free(n);
    return out;
}

START_TEST(in_place_matches_out_of_place)
{
    struct {
        const char *type, *params;
        cnn_phase phase;
    } cases[] = {
        {"ReLU", "", CNN_TRAIN},
        {"ReLU", "relu_param { negative_slope: 0.1 }", CNN_TRAIN},
        {"PReLU", "", CNN_TRAIN},
        {"PReLU", "prelu_param { channel_shared: true }", CNN_TRAIN},
        {"Sigmoid", "", CNN_TRAIN},
        {"TanH", "", CNN_TRAIN},
        {"ELU", "elu_param { alpha: 0.7 }", CNN_TRAIN},
        {"Dropout", "", CNN_TRAIN},
        {"Dropout", "", CNN_TEST},
        {"BatchNorm", "", CNN_TRAIN},
        {"BatchNorm", "", CNN_TEST},
        {"Scale", "scale_param { bias_term: true filler { type: 'gaussian' } }", CNN_TRAIN},
        {"Softmax", "", CNN_TRAIN},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        size_t na, nb;
        float *a = run_net(cases[c].type, cases[c].params, "y", cases[c].phase, &na);
        float *b = run_net(cases[c].type, cases[c].params, "x", cases[c].phase, &nb);
        ck_assert_uint_eq(na, nb);
        int nonzero = 0;
        for (size_t i = 0; i < na; i++) {
            ck_assert_msg(fabsf(a[i] - b[i]) <= 1e-6f * fmaxf(1.f, fabsf(a[i])),
                          "%s %s: value %zu differs in place: %g vs %g", cases[c].type,
                          cases[c].params, i, b[i], a[i]);
            nonzero += a[i] != 0;
        }
        ck_assert_msg(nonzero > (int)na / 4, "%s: mostly zeros", cases[c].type);
        free(a);
        free(b);
    }
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("layers_pointwise");
    TCase *tc = tcase_create("pointwise");
    tcase_add_test(tc, relu_gradcheck);
    tcase_add_test(tc, prelu_gradcheck);
    tcase_add_test(tc, sigmoid_tanh_elu_gradcheck);
    tcase_add_test(tc, pointwise_forward_values);
    tcase_add_test(tc, prelu_forward_per_channel);
    suite_add_tcase(s, tc);
    tc = tcase_create("batchnorm_scale");
    tcase_add_test(tc, batchnorm_gradcheck_batch_stats);
    tcase_add_test(tc, batchnorm_gradcheck_global_stats);
    tcase_add_test(tc, batchnorm_forward_batch_stats);
    tcase_add_test(tc, batchnorm_forward_global_stats);
    tcase_add_test(tc, scale_gradcheck);
    tcase_add_test(tc, scale_gradcheck_two_bottoms);
    tcase_add_test(tc, scale_forward_values);
    tcase_add_test(tc, scale_shape_errors);
    suite_add_tcase(s, tc);
    tc = tcase_create("softmax_loss");
    tcase_add_test(tc, softmax_gradcheck);
    tcase_add_test(tc, softmax_forward_values);
    tcase_add_test(tc, softmax_loss_gradcheck);
    tcase_add_test(tc, softmax_loss_forward_values);
    tcase_add_test(tc, softmax_loss_errors);
    tcase_add_test(tc, accuracy_values);
    tcase_add_test(tc, accuracy_spatial_and_errors);
    tcase_add_test(tc, loss_gradcheck);
    tcase_add_test(tc, loss_forward_values);
    suite_add_tcase(s, tc);
    tc = tcase_create("dropout_in_place");
    tcase_add_test(tc, dropout_behaviour);
    tcase_add_test(tc, in_place_matches_out_of_place);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return cnn_test_run(suite()) != 0; }
