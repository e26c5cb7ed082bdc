/* check_net.c — building nets: phases, splits, in-place layers, parameter
 * sharing, loss weights, gradient planning and the errors on bad models. */
#include "testutil.h"

#define INPUT(name, dims) \
    "layer { name: \"" name "\" type: \"Input\" top: \"" name "\" input_param { shape { " dims " } } }\n"

START_TEST(test_phase_filtering)
{
    const char *proto = INPUT("x", "dim: 2 dim: 3")
        "layer { name: \"tr\" type: \"ReLU\" bottom: \"x\" top: \"a\" include { phase: TRAIN } }\n"
        "layer { name: \"te\" type: \"Sigmoid\" bottom: \"x\" top: \"a\" include { phase: TEST } }\n"
        "layer { name: \"ex\" type: \"TanH\" bottom: \"a\" top: \"b\" exclude { phase: TEST } }\n";
    cnn_net *train = cnn_test_net(proto, CNN_TRAIN);
    ck_assert_int_eq(cnn_net_num_layers(train), 3);
    ck_assert_str_eq(cnn_net_layer_name(train, 1), "tr");
    ck_assert_ptr_nonnull(cnn_net_blob(train, "b"));
    cnn_net *test = cnn_test_net(proto, CNN_TEST);
    ck_assert_int_eq(cnn_net_num_layers(test), 2);
    ck_assert_str_eq(cnn_net_layer_type(test, 1), "Sigmoid");
    ck_assert_ptr_null(cnn_net_blob(test, "b"));
    cnn_net_free(train);
    cnn_net_free(test);
}
END_TEST

START_TEST(test_split_inserted_and_gradients_summed)
{
    /* x feeds two layers: the net splits it, and x's gradient is the sum. */
    const char *proto = "force_backward: true\n" INPUT("x", "dim: 2 dim: 3") INPUT("t", "dim: 2 dim: 3")
        "layer { name: \"a\" type: \"Scale\" bottom: \"x\" top: \"a\" "
        "  scale_param { filler { type: \"constant\" value: 2 } } }\n"
        "layer { name: \"b\" type: \"Scale\" bottom: \"x\" top: \"b\" "
        "  scale_param { filler { type: \"constant\" value: 3 } } }\n"
        "layer { name: \"s\" type: \"Eltwise\" bottom: \"a\" bottom: \"b\" top: \"s\" }\n"
        "layer { name: \"loss\" type: \"EuclideanLoss\" bottom: \"s\" bottom: \"t\" top: \"loss\" }\n";
    cnn_net *n = cnn_test_net(proto, CNN_TRAIN);
    bool split = false;
    for (int i = 0; i < cnn_net_num_layers(n); i++)
        split |= !strcmp(cnn_net_layer_type(n, i), "Split");
    ck_assert(split);
    cnn_tensor *x = cnn_net_blob(n, "x"), *t = cnn_net_blob(n, "t");
    cnn_test_fill_uniform(x, -1, 1, 3);
    memset(t->data, 0, t->count * sizeof(float));
    float loss;
    ck_assert(cnn_net_forward(n, &loss) == CNN_OK);
    ck_assert(cnn_net_backward(n) == CNN_OK);
    /* loss = sum((5x)^2) / (2N), dL/dx = 25x / N with N = 2 */
    for (size_t i = 0; i < x->count; i++)
        ck_assert_float_eq_tol(x->grad[i], 25 * x->data[i] / 2, 1e-4);
    cnn_net_free(n);
}
END_TEST

START_TEST(test_in_place_shares_tensor)
{
    const char *proto = INPUT("x", "dim: 2 dim: 3")
        "layer { name: \"ip\" type: \"InnerProduct\" bottom: \"x\" top: \"y\" "
        "  inner_product_param { num_output: 4 weight_filler { type: \"xavier\" } } }\n"
        "layer { name: \"relu\" type: \"ReLU\" bottom: \"y\" top: \"y\" }\n";
    cnn_net *n = cnn_test_net(proto, CNN_TRAIN);
    ck_assert_ptr_eq(cnn_net_layer_bottom(n, 2, 0), cnn_net_layer_top(n, 2, 0));
    cnn_test_fill_uniform(cnn_net_blob(n, "x"), -1, 1, 5);
    ck_assert(cnn_net_forward(n, NULL) == CNN_OK);
    cnn_tensor *y = cnn_net_blob(n, "y");
    for (size_t i = 0; i < y->count; i++) ck_assert(y->data[i] >= 0);
    ck_assert_int_eq(cnn_net_num_outputs(n), 1);
    ck_assert_ptr_eq(cnn_net_output(n, 0), y);
    cnn_net_free(n);
}
END_TEST

START_TEST(test_param_sharing)
{
    const char *proto = INPUT("x", "dim: 2 dim: 3")
        "layer { name: \"a\" type: \"InnerProduct\" bottom: \"x\" top: \"a\" param { name: \"w\" } "
        "  param { name: \"b\" } inner_product_param { num_output: 3 "
        "  weight_filler { type: \"gaussian\" std: 0.1 } } }\n"
        "layer { name: \"b\" type: \"InnerProduct\" bottom: \"a\" top: \"b\" param { name: \"w\" } "
        "  param { name: \"b\" } inner_product_param { num_output: 3 } }\n";
    cnn_net *n = cnn_test_net(proto, CNN_TRAIN);
    ck_assert_ptr_eq(cnn_net_param(n, "a", 0), cnn_net_param(n, "b", 0));
    ck_assert_ptr_eq(cnn_net_param(n, "a", 1), cnn_net_param(n, "b", 1));
    ck_assert_int_eq(cnn_net_num_params(n), 2);
    cnn_net_free(n);
    /* Sharing needs equal shapes. */
    cnn_test_net_fails(INPUT("x", "dim: 2 dim: 3")
                       "layer { name: \"a\" type: \"InnerProduct\" bottom: \"x\" top: \"a\" "
                       "  param { name: \"w\" } inner_product_param { num_output: 4 } }\n"
                       "layer { name: \"b\" type: \"InnerProduct\" bottom: \"a\" top: \"b\" "
                       "  param { name: \"w\" } inner_product_param { num_output: 4 } }\n",
                       CNN_ERR_SHAPE, "layer 'b'");
}
END_TEST

START_TEST(test_fillers_reproducible)
{
    const char *proto = INPUT("x", "dim: 2 dim: 3 dim: 8 dim: 8")
        "layer { name: \"c\" type: \"Convolution\" bottom: \"x\" top: \"c\" convolution_param { "
        "  num_output: 4 kernel_size: 3 weight_filler { type: \"msra\" } "
        "  bias_filler { type: \"uniform\" min: -1 max: 1 } } }\n";
    cnn_net *a = cnn_test_net(proto, CNN_TRAIN), *b = cnn_test_net(proto, CNN_TRAIN);
    cnn_tensor *wa = cnn_net_param(a, "c", 0), *wb = cnn_net_param(b, "c", 0);
    ck_assert_int_eq(memcmp(wa->data, wb->data, wa->count * sizeof(float)), 0);
    double var = 0;
    for (size_t i = 0; i < wa->count; i++) var += wa->data[i] * wa->data[i];
    var /= (double)wa->count; /* msra: 2 / fan_in = 2 / 27 */
    ck_assert_msg(fabs(var - 2.0 / 27) < 0.03, "variance %g", var);
    cnn_net_free(a);
    cnn_net_free(b);
}
END_TEST

START_TEST(test_backward_plan)
{
    /* Nothing below a data input needs gradients; frozen layers below the
     * first learnable one are skipped. */
    const char *proto = INPUT("x", "dim: 2 dim: 3") INPUT("label", "dim: 2")
        "layer { name: \"frozen\" type: \"InnerProduct\" bottom: \"x\" top: \"f\" "
        "  param { lr_mult: 0 } param { lr_mult: 0 } inner_product_param { num_output: 4 } }\n"
        "layer { name: \"ip\" type: \"InnerProduct\" bottom: \"f\" top: \"y\" "
        "  inner_product_param { num_output: 3 } }\n"
        "layer { name: \"loss\" type: \"SoftmaxWithLoss\" bottom: \"y\" bottom: \"label\" "
        "  top: \"loss\" }\n";
    cnn_net *n = cnn_test_net(proto, CNN_TRAIN);
    cnn_net_blob(n, "label")->data[1] = 2;
    float loss = 0;
    ck_assert(cnn_net_forward(n, &loss) == CNN_OK);
    ck_assert_msg(fabs(loss - logf(3)) < 1e-5, "zero weights give log(3), got %g", loss);
    memset(cnn_net_blob(n, "f")->grad, 0x7f, 4); /* poison: must stay untouched */
    ck_assert(cnn_net_backward(n) == CNN_OK);
    ck_assert_int_eq(cnn_net_num_params(n), 4);
    ck_assert(cnn_net_param_info(n, 0)->lr_mult == 0);
    ck_assert(cnn_net_param_info(n, 2)->lr_mult == 1);
    cnn_net_free(n);
}
END_TEST

START_TEST(test_loss_weight)
{
    const char *proto = INPUT("a", "dim: 2 dim: 3") INPUT("b", "dim: 2 dim: 3")
        "layer { name: \"l\" type: \"EuclideanLoss\" bottom: \"a\" bottom: \"b\" top: \"l\" "
        "  loss_weight: 3 }\n";
    cnn_net *n = cnn_test_net(proto, CNN_TRAIN);
    cnn_tensor *a = cnn_net_blob(n, "a");
    for (size_t i = 0; i < a->count; i++) a->data[i] = 1;
    float loss;
    ck_assert(cnn_net_forward(n, &loss) == CNN_OK);
    ck_assert_float_eq_tol(loss, 3 * 6.0 / 4, 1e-5);
    cnn_net_free(n);
}
END_TEST

START_TEST(test_old_input_header)
{
    cnn_net *n = cnn_test_net("name: \"old\"\ninput: \"data\"\ninput_dim: 10\ninput_dim: 3\n"
                              "input_dim: 4\ninput_dim: 4\n"
                              "layer { name: \"r\" type: \"ReLU\" bottom: \"data\" top: \"r\" }\n",
                              CNN_TEST);
    ck_assert_str_eq(cnn_net_name(n), "old");
    ck_assert_int_eq(cnn_net_num_inputs(n), 1);
    ck_assert_int_eq(cnn_net_input(n, 0)->shape[0], 10);
    ck_assert_int_eq(cnn_net_blob(n, "r")->count, 10 * 3 * 4 * 4);
    cnn_net_free(n);
    n = cnn_test_net("input: \"data\"\ninput_shape { dim: 2 dim: 5 }\n"
                     "layer { name: \"r\" type: \"ReLU\" bottom: \"data\" top: \"r\" }\n",
                     CNN_TEST);
    ck_assert_int_eq(cnn_net_blob(n, "r")->count, 10);
    cnn_net_free(n);
}
END_TEST

START_TEST(test_bad_models)
{
    cnn_test_net_fails(INPUT("x", "dim: 2") "layer { name: \"q\" type: \"Quux\" bottom: \"x\" top: \"y\" }",
                       CNN_ERR_CONFIG, "<string>:2:");
    cnn_test_net_fails(INPUT("x", "dim: 2") "layer { name: \"q\" type: \"Quux\" bottom: \"x\" top: \"y\" }",
                       CNN_ERR_CONFIG, "unknown layer type 'Quux'");
    cnn_test_net_fails(INPUT("x", "dim: 2")
                       "layer { name: \"r\" type: \"ReLU\" bottom: \"nope\" top: \"y\" }",
                       CNN_ERR_CONFIG, "bottom 'nope'");
    cnn_test_net_fails(INPUT("x", "dim: 2")
                       "layer { name: \"r\" type: \"ReLU\" bottom: \"x\" top: \"y\" relu_param { "
                       "negative_slope: 0.1 typo: 3 } }",
                       CNN_ERR_CONFIG, "typo");
    cnn_test_net_fails(INPUT("x", "dim: 2") "layer { name: \"r\" type: \"ReLU\" bottom: \"x\" "
                       "top: \"y\" bogus_field: 1 }",
                       CNN_ERR_CONFIG, "'bogus_field'");
    cnn_test_net_fails(INPUT("x", "dim: 2")
                       "layer { name: \"a\" type: \"ReLU\" bottom: \"x\" top: \"y\" }\n"
                       "layer { name: \"b\" type: \"ReLU\" bottom: \"x\" top: \"y\" }",
                       CNN_ERR_CONFIG, "already produced");
    cnn_test_net_fails(INPUT("x", "dim: 2")
                       "layer { name: \"a\" type: \"ReLU\" bottom: \"x\" bottom: \"x\" top: \"y\" }",
                       CNN_ERR_CONFIG, "takes 1 bottoms, got 2");
    cnn_test_net_fails("layers { name: \"a\" type: RELU }", CNN_ERR_UNSUPPORTED, "V1");
    cnn_test_net_fails("layer { name: \"a\" type: \"ReLU\" ", CNN_ERR_PARSE, "<string>");
    /* Shapes beyond any memory: an error naming the tensor, not the OOM
     * killer (found by fuzzing), nor a wrapped-around size. */
    cnn_test_net_fails(INPUT("x", "dim: 65536 dim: 65536 dim: 65536"), CNN_ERR_MEMORY,
                       "tensor 'x': 281474976710656 floats");
    cnn_test_net_fails(INPUT("x", "dim: 2147483647 dim: 2147483647 dim: 2147483647"),
                       CNN_ERR_SHAPE, "tensor 'x': a shape of 3 dimensions holds more values "
                       "than memory can address");
}
END_TEST

static const char *caffe_dir(void)
{
    static const char *dirs[] = {"../shared/caffe-models", "../../shared/caffe-models", NULL};
    for (int i = 0; dirs[i]; i++) {
        char p[256];
        snprintf(p, sizeof p, "%s/bvlc_alexnet_deploy.prototxt", dirs[i]);
        FILE *f = fopen(p, "r");
        if (f) {
            fclose(f);
            return dirs[i];
        }
    }
    return NULL;
}

static cnn_net *caffe_net(const char *file, cnn_phase phase)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", caffe_dir(), file);
    cnn_net_opts o = cnn_net_default_opts();
    o.phase = phase;
    o.shapes_only = true;
    cnn_net *n = NULL;
    ck_assert_msg(cnn_net_from_file(p, &o, &n) == CNN_OK, "%s: %s", file, cnn_error_message());
    return n;
}

static void expect_shape(cnn_net *n, const char *blob, const char *want)
{
    char buf[64];
    cnn_tensor *t = cnn_net_blob(n, blob);
    ck_assert_msg(t, "no blob %s", blob);
    ck_assert_str_eq(cnn_tensor_shape_str(t, buf, sizeof buf), want);
}

START_TEST(test_caffe_deploy_shapes)
{
    if (!caffe_dir()) {
        printf("check_net: SKIP Caffe model files (../shared/caffe-models absent)\n");
        return;
    }
    cnn_net *n = caffe_net("bvlc_alexnet_deploy.prototxt", CNN_TEST);
    expect_shape(n, "conv1", "10x96x55x55");
    expect_shape(n, "pool5", "10x256x6x6");
    expect_shape(n, "prob", "10x1000");
    cnn_net_free(n);
    n = caffe_net("bvlc_reference_caffenet_deploy.prototxt", CNN_TEST);
    expect_shape(n, "pool1", "10x96x27x27");
    expect_shape(n, "fc6", "10x4096");
    cnn_net_free(n);
    n = caffe_net("cifar10_cifar10_quick.prototxt", CNN_TEST);
    expect_shape(n, "pool1", "1x32x16x16");
    expect_shape(n, "ip2", "1x10");
    cnn_net_free(n);
    n = caffe_net("mnist_lenet.prototxt", CNN_TEST);
    expect_shape(n, "pool2", "64x50x4x4");
    cnn_net_free(n);
}
END_TEST

START_TEST(test_caffe_train_val_files_load)
{
    static const char *files[] = {"bvlc_alexnet_train_val.prototxt",
                                  "bvlc_reference_caffenet_train_val.prototxt",
                                  "cifar10_cifar10_quick_train_test.prototxt",
                                  "mnist_lenet_train_test.prototxt", NULL};
    if (!caffe_dir()) return;
    /* Both phases of the small nets; the ImageNet nets in TEST phase (batch
     * 50), which keeps the activations of this test small. */
    for (int i = 0; files[i]; i++)
        for (int ph = i < 2 ? 1 : 0; ph < 2; ph++) cnn_net_free(caffe_net(files[i], (cnn_phase)ph));
    cnn_net *n = caffe_net("mnist_lenet_train_test.prototxt", CNN_TRAIN);
    expect_shape(n, "data", "64x1x28x28");
    expect_shape(n, "ip2", "64x10");
    cnn_net_free(n);
    n = caffe_net("bvlc_alexnet_train_val.prototxt", CNN_TEST);
    expect_shape(n, "data", "50x3x227x227");
    expect_shape(n, "conv1", "50x96x55x55");
    cnn_net_free(n);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("net");
    TCase *tc = tcase_create("net");
    tcase_add_test(tc, test_phase_filtering);
    tcase_add_test(tc, test_split_inserted_and_gradients_summed);
    tcase_add_test(tc, test_in_place_shares_tensor);
    tcase_add_test(tc, test_param_sharing);
    tcase_add_test(tc, test_fillers_reproducible);
    tcase_add_test(tc, test_backward_plan);
    tcase_add_test(tc, test_loss_weight);
    tcase_add_test(tc, test_old_input_header);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_bad_models);
    tcase_add_test(tc, test_caffe_deploy_shapes);
    tcase_add_test(tc, test_caffe_train_val_files_load);
    suite_add_tcase(s, tc);
    return cnn_test_run(s) != 0;
}
