/* check_modelpar.c — model parallelism on logical CPU devices: device
 * placement and inheritance, Copy insertion and naming, the equivalence of a
 * small two-tower net (AlexNet's structure: towers, a layer reading both
 * towers, fully connected halves with cross-connections, concats) on two
 * devices with the same net on one (loss, every blob, every parameter
 * gradient, and the weights after solver steps: bit-identical), a
 * finite-difference check through cross-device edges, determinism of
 * dropout with concurrent devices, and the errors. */
#include "solvers/solver.h"
#include "testutil.h"

#define LAYER(name, type, bottoms, rest) \
    "layer { name: \"" name "\" type: \"" type "\" " bottoms " top: \"" name "\" " rest " }\n"
#define B1(a) "bottom: \"" a "\""
#define B2(a, b) "bottom: \"" a "\" bottom: \"" b "\""
#define CONV(n, k, pad) \
    "convolution_param { num_output: " #n " kernel_size: " #k " pad: " #pad \
    " weight_filler { type: \"gaussian\" std: 0.3 } bias_filler { type: \"uniform\" min: -0.1 " \
    "max: 0.1 } }"
#define FC(n) \
    "inner_product_param { num_output: " #n " weight_filler { type: \"xavier\" } " \
    "bias_filler { type: \"uniform\" min: -0.1 max: 0.1 } }"
#define RELU(x) "layer { name: \"relu_" x "\" type: \"ReLU\" bottom: \"" x "\" top: \"" x "\" }\n"
#define POOL(k, s) "pooling_param { pool: MAX kernel_size: " #k " stride: " #s " }"

/* Two towers: conv1-conv2 within each, conv3 reading both, fc6 and fc7 in
 * halves reading both halves, fc8 and the loss on device 0. Layers without
 * a device field inherit their first bottom's. */
static const char *const tower_net =
    "name: \"towers\"\nforce_backward: true\n"
    "layer { name: \"data\" type: \"Input\" top: \"data\" "
    "  input_param { shape { dim: 4 dim: 3 dim: 16 dim: 16 } } }\n"
    "layer { name: \"label\" type: \"Input\" top: \"label\" input_param { shape { dim: 4 } } }\n"
    LAYER("conv1_a", "Convolution", B1("data"), "device: 0 " CONV(4, 3, 0)) RELU("conv1_a")
    LAYER("conv1_b", "Convolution", B1("data"), "device: 1 " CONV(4, 3, 0)) RELU("conv1_b")
    LAYER("norm1_a", "LRN", B1("conv1_a"), "lrn_param { local_size: 3 alpha: 0.1 k: 2 }")
    LAYER("norm1_b", "LRN", B1("conv1_b"), "lrn_param { local_size: 3 alpha: 0.1 k: 2 }")
    LAYER("pool1_a", "Pooling", B1("norm1_a"), POOL(2, 2))
    LAYER("pool1_b", "Pooling", B1("norm1_b"), POOL(2, 2))
    LAYER("conv2_a", "Convolution", B1("pool1_a"), CONV(4, 3, 1)) RELU("conv2_a")
    LAYER("conv2_b", "Convolution", B1("pool1_b"), CONV(4, 3, 1)) RELU("conv2_b")
    LAYER("cat3_a", "Concat", B2("conv2_a", "conv2_b"), "")
    LAYER("cat3_b", "Concat", B2("conv2_b", "conv2_a"), "")
    LAYER("conv3_a", "Convolution", B1("cat3_a"), CONV(4, 3, 1)) RELU("conv3_a")
    LAYER("conv3_b", "Convolution", B1("cat3_b"), CONV(4, 3, 1)) RELU("conv3_b")
    LAYER("pool3_a", "Pooling", B1("conv3_a"), POOL(3, 2))
    LAYER("pool3_b", "Pooling", B1("conv3_b"), POOL(3, 2))
    LAYER("cat6_a", "Concat", B2("pool3_a", "pool3_b"), "")
    LAYER("cat6_b", "Concat", B2("pool3_b", "pool3_a"), "")
    LAYER("fc6_a", "InnerProduct", B1("cat6_a"), FC(6)) RELU("fc6_a")
    LAYER("fc6_b", "InnerProduct", B1("cat6_b"), FC(6)) RELU("fc6_b")
    LAYER("cat7_a", "Concat", B2("fc6_a", "fc6_b"), "")
    LAYER("cat7_b", "Concat", B2("fc6_b", "fc6_a"), "")
    LAYER("fc7_a", "InnerProduct", B1("cat7_a"), FC(5)) RELU("fc7_a")
    LAYER("fc7_b", "InnerProduct", B1("cat7_b"), FC(5)) RELU("fc7_b")
    LAYER("cat8", "Concat", B2("fc7_a", "fc7_b"), "device: 0")
    LAYER("fc8", "InnerProduct", B1("cat8"), FC(3))
    "layer { name: \"loss\" type: \"SoftmaxWithLoss\" bottom: \"fc8\" bottom: \"label\" "
    "  top: \"loss\" }\n";

/* `text` without its "device: K" fields (a malloc'ed copy). */
static char *strip_devices(const char *text)
{
    char *out = malloc(strlen(text) + 1), *o = out;
    for (const char *p = text; *p;) {
        if (!strncmp(p, "device: ", 8)) {
            p += 8;
            while (*p >= '0' && *p <= '9') p++;
            continue;
        }
        *o++ = *p++;
    }
    *o = '\0';
    return out;
}

/* `text` with every `from` replaced by `to` (a malloc'ed copy). */
static char *replace_all(const char *text, const char *from, const char *to)
{
    size_t nf = strlen(from), nt = strlen(to), k = 0;
    for (const char *p = strstr(text, from); p; p = strstr(p + nf, from)) k++;
    char *out = malloc(strlen(text) + k * (nt > nf ? nt - nf : 0) + 1), *o = out;
    for (const char *p = text; *p;) {
        if (!strncmp(p, from, nf)) {
            memcpy(o, to, nt);
            o += nt;
            p += nf;
        } else {
            *o++ = *p++;
        }
    }
    *o = '\0';
    return out;
}

static cnn_net *net_with(const char *text, int devices, cnn_phase phase, uint64_t seed)
{
    cnn_net_opts o = cnn_net_default_opts();
    o.devices = devices;
    o.phase = phase;
    o.seed = seed;
    cnn_net *n = NULL;
    ck_assert_msg(cnn_net_from_string(text, &o, &n) == CNN_OK, "%s", cnn_error_message());
    return n;
}

/* Fills data with uniform values and labels with classes 0..2. */
static void fill_inputs(cnn_net *n, uint64_t seed)
{
    cnn_test_fill_uniform(cnn_net_blob(n, "data"), -1, 1, seed);
    cnn_tensor *label = cnn_net_blob(n, "label");
    for (size_t i = 0; label && i < label->count; i++) label->data[i] = (float)((i + seed) % 3);
}

static int find_layer(const cnn_net *n, const char *name)
{
    for (int i = 0; i < cnn_net_num_layers(n); i++)
        if (!strcmp(cnn_net_layer_name(n, i), name)) return i;
    return -1;
}

/* Equal values: bit for bit when tol is 0, else within tol relative. */
static void expect_close(const float *a, const float *b, size_t count, double tol,
                         const char *what)
{
    for (size_t i = 0; i < count; i++) {
        double scale = fmax(fmax(fabs(a[i]), fabs(b[i])), 1e-3);
        ck_assert_msg(a[i] == b[i] || fabs((double)a[i] - b[i]) <= tol * scale,
                      "%s[%zu]: %.9g on 2 devices vs %.9g on 1", what, i, a[i], b[i]);
    }
}

static void expect_same(const float *a, const float *b, size_t count, const char *what)
{
    expect_close(a, b, count, 0, what);
}

/* Every blob of `one` (the one-device net) named in the model has its twin
 * in `two` with the same values and gradients, and so has every parameter. */
static void expect_nets_equal(cnn_net *two, cnn_net *one, double tol)
{
    char what[160];
    for (int i = 0; i < cnn_net_num_layers(one); i++)
        for (int t = 0; t < cnn_net_layer_num_tops(one, i); t++) {
            /* Inserted splits are named after their readers, which differ. */
            if (!strcmp(cnn_net_layer_type(one, i), "Split")) continue;
            cnn_tensor *a = cnn_net_layer_top(one, i, t), *b = cnn_net_blob(two, a->name);
            ck_assert_msg(b != NULL, "blob '%s' missing on 2 devices", a->name);
            ck_assert(cnn_tensor_same_shape(a, b));
            snprintf(what, sizeof what, "blob %s", a->name);
            expect_close(b->data, a->data, a->count, tol, what);
            snprintf(what, sizeof what, "gradient of blob %s", a->name);
            expect_close(b->grad, a->grad, a->count, tol, what);
        }
    ck_assert_int_eq(cnn_net_num_params(two), cnn_net_num_params(one));
    for (int p = 0; p < cnn_net_num_params(one); p++) {
        const cnn_param_info *a = cnn_net_param_info(one, p);
        cnn_tensor *b = cnn_net_param(two, a->layer, a->index);
        ck_assert_ptr_nonnull(b);
        snprintf(what, sizeof what, "%s.%d", a->layer, a->index);
        expect_close(b->data, a->tensor->data, a->tensor->count, tol, what);
        snprintf(what, sizeof what, "gradient of %s.%d", a->layer, a->index);
        expect_close(b->grad, a->tensor->grad, a->tensor->count, tol, what);
    }
}

/* Runs `text` on 2 devices and without device fields on 1, several passes
 * with fresh inputs, and compares everything: bit for bit when tol is 0. */
static void check_equivalent(const char *text, int passes, double tol)
{
    char *plain = strip_devices(text);
    cnn_net *two = net_with(text, 2, CNN_TRAIN, 3), *one = net_with(plain, 1, CNN_TRAIN, 3);
    ck_assert_int_eq(cnn_net_num_devices(two), 2);
    ck_assert_int_eq(cnn_net_num_devices(one), 1);
    ck_assert(cnn_net_copy_params(two, one) == CNN_OK);
    for (int k = 0; k < passes; k++) {
        float l2 = 0, l1 = 0;
        fill_inputs(two, 10 + (uint64_t)k);
        fill_inputs(one, 10 + (uint64_t)k);
        cnn_net_zero_param_grads(two);
        cnn_net_zero_param_grads(one);
        ck_assert_msg(cnn_net_forward(two, &l2) == CNN_OK, "%s", cnn_error_message());
        ck_assert(cnn_net_forward(one, &l1) == CNN_OK);
        expect_close(&l2, &l1, 1, tol, "loss");
        ck_assert(isfinite(l1) && l1 > 0);
        ck_assert_msg(cnn_net_backward(two) == CNN_OK, "%s", cnn_error_message());
        ck_assert(cnn_net_backward(one) == CNN_OK);
        expect_nets_equal(two, one, tol);
    }
    cnn_net_free(two);
    cnn_net_free(one);
    free(plain);
}

START_TEST(test_placement_and_copies)
{
    cnn_net *n = net_with(tower_net, 0, CNN_TRAIN, 1);
    ck_assert_int_eq(cnn_net_num_devices(n), 2);
    /* Inherited devices. */
    static const char *const on1[] = {"relu_conv1_b", "norm1_b", "pool1_b", "conv2_b",
                                      "cat3_b", "conv3_b", "fc6_b", "fc7_b", NULL};
    static const char *const on0[] = {"data", "label", "norm1_a", "cat3_a", "fc6_a", "cat8",
                                      "fc8", "loss", NULL};
    for (int i = 0; on1[i]; i++)
        ck_assert_int_eq(cnn_net_layer_device(n, find_layer(n, on1[i])), 1);
    for (int i = 0; on0[i]; i++)
        ck_assert_int_eq(cnn_net_layer_device(n, find_layer(n, on0[i])), 0);
    /* One Copy per blob and destination, named <blob>_to_dev<K>, on K. */
    static const char *const copies[] = {"data_to_dev1", "conv2_a_to_dev1", "conv2_b_to_dev0",
                                         "pool3_a_to_dev1", "pool3_b_to_dev0", "fc6_a_to_dev1",
                                         "fc6_b_to_dev0", "fc7_b_to_dev0", NULL};
    int n_copies = 0;
    for (int i = 0; i < cnn_net_num_layers(n); i++) {
        if (strcmp(cnn_net_layer_type(n, i), "Copy")) continue;
        n_copies++;
        /* The copy runs on its destination and its bottom lives elsewhere. */
        ck_assert_int_ne(cnn_net_layer_bottom(n, i, 0)->device, cnn_net_layer_device(n, i));
        ck_assert_int_eq(cnn_net_layer_top(n, i, 0)->device, cnn_net_layer_device(n, i));
    }
    ck_assert_int_eq(n_copies, 8);
    for (int i = 0; copies[i]; i++) {
        int li = find_layer(n, copies[i]);
        ck_assert_msg(li >= 0, "no copy layer '%s'", copies[i]);
        ck_assert_str_eq(cnn_net_layer_type(n, li), "Copy");
        ck_assert_int_eq(cnn_net_layer_device(n, li), copies[i][strlen(copies[i]) - 1] - '0');
    }
    /* Every layer reads only tensors of its own device (copies excepted). */
    for (int i = 0; i < cnn_net_num_layers(n); i++) {
        if (!strcmp(cnn_net_layer_type(n, i), "Copy")) continue;
        for (int b = 0; b < cnn_net_layer_num_bottoms(n, i); b++)
            ck_assert_msg(cnn_net_layer_bottom(n, i, b)->device == cnn_net_layer_device(n, i),
                          "layer '%s' reads '%s' across devices", cnn_net_layer_name(n, i),
                          cnn_net_layer_bottom(n, i, b)->name);
    }
    /* Parameters live on their layer's device. */
    for (int p = 0; p < cnn_net_num_params(n); p++) {
        const cnn_param_info *pi = cnn_net_param_info(n, p);
        int want = cnn_net_layer_device(n, find_layer(n, pi->layer));
        ck_assert_int_eq(pi->device, want);
        ck_assert_int_eq(pi->tensor->device, want);
    }
    cnn_net_free(n);
    /* Without device fields: one device and no copies. */
    char *plain = strip_devices(tower_net);
    n = net_with(plain, 0, CNN_TRAIN, 1);
    ck_assert_int_eq(cnn_net_num_devices(n), 1);
    for (int i = 0; i < cnn_net_num_layers(n); i++)
        ck_assert_str_ne(cnn_net_layer_type(n, i), "Copy");
    cnn_net_free(n);
    free(plain);
    /* More devices than the model uses: the extra ones stay idle. */
    n = net_with(tower_net, 3, CNN_TRAIN, 1);
    ck_assert_int_eq(cnn_net_num_devices(n), 3);
    fill_inputs(n, 1);
    ck_assert(cnn_net_forward(n, NULL) == CNN_OK);
    ck_assert(cnn_net_backward(n) == CNN_OK);
    cnn_net_free(n);
}
END_TEST

START_TEST(test_two_towers_equal_one_device)
{
    check_equivalent(tower_net, 20, 0);
}
END_TEST

/* A copy's name is taken by a blob of the model: the copy gets a suffix;
 * several readers on one device share one copy (through a Split). */
START_TEST(test_copy_names)
{
    const char *text =
        "force_backward: true\n"
        "layer { name: \"data\" type: \"Input\" top: \"data\" "
        "  input_param { shape { dim: 4 dim: 3 dim: 16 dim: 16 } } }\n"
        "layer { name: \"label\" type: \"Input\" top: \"label\" "
        "  input_param { shape { dim: 4 } } }\n"
        LAYER("x", "Convolution", B1("data"), CONV(2, 3, 1))
        "layer { name: \"t\" type: \"TanH\" bottom: \"x\" top: \"x\" }\n"
        LAYER("x_to_dev1", "Pooling", B1("x"), POOL(2, 2))
        LAYER("u", "Pooling", B1("x"), "device: 1 " POOL(2, 2))
        LAYER("v", "Pooling", B1("x"), "device: 1 " POOL(3, 2))
        LAYER("w", "Pooling", B1("x_to_dev1"), "device: 1 " POOL(2, 1))
        LAYER("f1", "InnerProduct", B1("u"), "device: 0 " FC(3))
        LAYER("f2", "InnerProduct", B1("v"), "device: 0 " FC(3))
        LAYER("f3", "InnerProduct", B1("w"), "device: 0 " FC(3))
        LAYER("f", "Eltwise", B2("f1", "f2"), "")
        LAYER("g", "Eltwise", B2("f", "f3"), "")
        "layer { name: \"loss\" type: \"SoftmaxWithLoss\" bottom: \"g\" bottom: \"label\" "
        "  top: \"loss\" }\n";
    cnn_net *n = net_with(text, 2, CNN_TRAIN, 1);
    int copy = find_layer(n, "x_to_dev1_1"), copy2 = find_layer(n, "x_to_dev1_to_dev1");
    ck_assert_int_ge(copy, 0);
    ck_assert_int_ge(copy2, 0);
    ck_assert_str_eq(cnn_net_layer_type(n, copy), "Copy");
    /* It reads x through the Split of x's three readers. */
    ck_assert(!strncmp(cnn_net_layer_bottom(n, copy, 0)->name, "x_t_split_", 10));
    int n_copies = 0;
    for (int i = 0; i < cnn_net_num_layers(n); i++)
        n_copies += !strcmp(cnn_net_layer_type(n, i), "Copy");
    ck_assert_int_eq(n_copies, 5); /* x, x_to_dev1 to 1; u, v, w to 0 */
    cnn_net_free(n);
    /* Two readers on device 1 share one copy, so x's gradient is summed as
     * g0 + (g1 + g2) instead of (g0 + g1) + g2: equal up to rounding, which
     * the weight gradients below it (sums that cancel) magnify to ~1e-5. */
    check_equivalent(text, 10, 1e-4);
}
END_TEST

/* Central differences of the whole net's loss against the analytic
 * gradients, for the input (which crosses to device 1 and comes back
 * through several copies) and for parameters on both devices. The net is
 * made smooth (TanH for ReLU, average for max pooling) so that no kink
 * lies within a step. */
START_TEST(test_finite_differences_across_devices)
{
    char *tanh = replace_all(tower_net, "\"ReLU\"", "\"TanH\"");
    char *smooth = replace_all(tanh, "pool: MAX", "pool: AVE");
    cnn_net *n = net_with(smooth, 2, CNN_TRAIN, 5);
    free(tanh);
    free(smooth);
    fill_inputs(n, 7);
    cnn_net_zero_param_grads(n);
    float loss = 0;
    ck_assert(cnn_net_forward(n, &loss) == CNN_OK);
    ck_assert(cnn_net_backward(n) == CNN_OK);
    cnn_tensor *checked[] = {cnn_net_blob(n, "data"), cnn_net_param(n, "conv1_b", 0),
                             cnn_net_param(n, "conv1_a", 0), cnn_net_param(n, "fc6_b", 0),
                             cnn_net_param(n, "conv3_b", 1)};
    for (size_t c = 0; c < sizeof checked / sizeof checked[0]; c++) {
        cnn_tensor *x = checked[c];
        float *analytic = malloc(x->count * sizeof(float));
        memcpy(analytic, x->grad, x->count * sizeof(float));
        size_t stride = x->count > 200 ? x->count / 200 : 1;
        for (size_t i = 0; i < x->count; i += stride) {
            const double h = 1e-2;
            float saved = x->data[i], lp = 0, lm = 0;
            x->data[i] = (float)(saved + h);
            ck_assert(cnn_net_forward(n, &lp) == CNN_OK);
            x->data[i] = (float)(saved - h);
            ck_assert(cnn_net_forward(n, &lm) == CNN_OK);
            x->data[i] = saved;
            double num = ((double)lp - lm) / (2 * h), a = analytic[i];
            double scale = fmax(fmax(fabs(a), fabs(num)), 1e-2);
            ck_assert_msg(fabs(a - num) <= 1e-2 * scale, "%s[%zu]: analytic %.6g vs "
                          "numeric %.6g", x->name, i, a, num);
        }
        free(analytic);
    }
    cnn_net_free(n);
}
END_TEST

/* Dropout on both devices at once: each device draws from its own
 * generator, so two runs with the same seed agree exactly. */
START_TEST(test_dropout_deterministic)
{
    const char *text =
        "layer { name: \"data\" type: \"Input\" top: \"data\" "
        "  input_param { shape { dim: 8 dim: 64 } } }\n"
        LAYER("a", "Dropout", B1("data"), "device: 0")
        LAYER("b", "Dropout", B1("data"), "device: 1")
        LAYER("ab", "Concat", B2("a", "b"), "device: 0");
    cnn_net *n1 = net_with(text, 2, CNN_TRAIN, 9), *n2 = net_with(text, 2, CNN_TRAIN, 9);
    for (int k = 0; k < 10; k++) {
        fill_inputs(n1, 1);
        fill_inputs(n2, 1);
        ck_assert(cnn_net_forward(n1, NULL) == CNN_OK);
        ck_assert(cnn_net_forward(n2, NULL) == CNN_OK);
        cnn_tensor *x = cnn_net_blob(n1, "ab"), *y = cnn_net_blob(n2, "ab");
        expect_same(x->data, y->data, x->count, "dropout output");
        /* The two devices' masks differ. */
        ck_assert(memcmp(x->data, x->data + 64, 64 * sizeof(float)) != 0);
    }
    cnn_net_free(n1);
    cnn_net_free(n2);
}
END_TEST

static cnn_status feed(cnn_net *n, uint64_t batch, void *user)
{
    fill_inputs(n, 100 + batch);
    return CNN_OK;
}

static cnn_solver *solver_with(const char *text, int devices)
{
    cnn_solver_opts o = {.devices = devices};
    cnn_solver *s = NULL;
    ck_assert_msg(cnn_solver_from_string(text, "/tmp/check_modelpar.cfg", &o, &s) == CNN_OK,
                  "%s", cnn_error_message());
    cnn_solver_set_feed(s, feed, NULL);
    return s;
}

/* Training steps (SGD with momentum and weight decay) give the same weights
 * and history groups on two devices as on one. */
START_TEST(test_solver_steps_equal)
{
    const char *solver = "solver { base_lr: 0.05 momentum: 0.9 weight_decay: 0.0005 "
                         "max_iter: 10 random_seed: 4 snapshot_after_train: false }\n";
    size_t len = strlen(tower_net) + strlen(solver) + 1;
    char *text = malloc(len);
    snprintf(text, len, "%s%s", tower_net, solver);
    char *plain = strip_devices(text);
    cnn_solver *two = solver_with(text, 2), *one = solver_with(plain, 1);
    ck_assert_int_eq(cnn_solver_num_devices(two), 2);
    ck_assert_int_eq(cnn_solver_num_devices(one), 1);
    for (int k = 0; k < 8; k++) {
        float l2 = 0, l1 = 0;
        ck_assert(cnn_solver_step(two, &l2) == CNN_OK);
        ck_assert(cnn_solver_step(one, &l1) == CNN_OK);
        ck_assert_msg(l2 == l1, "step %d: loss %.9g vs %.9g", k, l2, l1);
    }
    expect_nets_equal(cnn_solver_net(two), cnn_solver_net(one), 0);
    cnn_solver_free(two);
    cnn_solver_free(one);
    free(plain);
    free(text);
}
END_TEST

START_TEST(test_errors)
{
    cnn_net_opts o = cnn_net_default_opts();
    cnn_net *n = NULL;
    /* A device beyond the run's: the message names the layer and file:line:col. */
    o.devices = 1;
    ck_assert(cnn_net_from_string(tower_net, &o, &n) == CNN_ERR_CONFIG);
    ck_assert_ptr_null(n);
    ck_assert_msg(strstr(cnn_error_message(), "<string>:7:") &&
                      strstr(cnn_error_message(), "layer 'conv1_b': device 1, but this run "
                                                  "has 1 logical device"),
                  "%s", cnn_error_message());
    const char *in = "layer { name: \"x\" type: \"Input\" top: \"x\" "
                     "input_param { shape { dim: 2 dim: 3 } } }\n";
    char buf[1024];
    static const struct {
        const char *rest, *want;
    } cases[] = {
        {"layer { name: \"r\" type: \"ReLU\" bottom: \"x\" top: \"y\" device: -1 }",
         "<string>:2:53: layer 'r': device -1 is out of range (0..15)"},
        {"layer { name: \"r\" type: \"ReLU\" bottom: \"x\" top: \"y\" device: 16 }",
         "device 16 is out of range"},
        {"layer { name: \"r\" type: \"ReLU\" bottom: \"x\" top: \"y\" device: \"1\" }",
         "<string>:2:"},
        /* In place on another device's blob. */
        {"layer { name: \"r\" type: \"ReLU\" bottom: \"x\" top: \"x\" device: 1 }",
         "layer 'r' on device 1 computes in place on 'x' from device 0"},
        /* A parameter shared across devices. */
        {"layer { name: \"a\" type: \"InnerProduct\" bottom: \"x\" top: \"a\" param { name: "
         "\"w\" } inner_product_param { num_output: 2 } }\n"
         "layer { name: \"b\" type: \"InnerProduct\" bottom: \"x\" top: \"b\" param { name: "
         "\"w\" } device: 1 inner_product_param { num_output: 2 } }",
         "layer 'b' (InnerProduct): parameter 0 is shared with layer 'a' on device 0"},
    };
    o.devices = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(buf, sizeof buf, "%s%s\n", in, cases[i].rest);
        ck_assert_msg(cnn_net_from_string(buf, &o, &n) != CNN_OK, "case %zu built", i);
        ck_assert_ptr_null(n);
        ck_assert_msg(strstr(cnn_error_message(), cases[i].want), "case %zu: '%s' lacks '%s'",
                      i, cnn_error_message(), cases[i].want);
    }
    /* A solver refuses the same way. */
    cnn_solver_opts so = {.devices = 1};
    cnn_solver *s = NULL;
    snprintf(buf, sizeof buf, "%slayer { name: \"r\" type: \"ReLU\" bottom: \"x\" top: \"y\" "
                              "device: 1 }\nsolver { max_iter: 1 }\n", in);
    ck_assert(cnn_solver_from_string(buf, "m.cfg", &so, &s) == CNN_ERR_CONFIG);
    ck_assert_ptr_null(s);
    ck_assert_msg(strstr(cnn_error_message(), "m.cfg:2:"), "%s", cnn_error_message());
}
END_TEST

/* The device fields of the two shipped models. */
static void check_model_file(const char *path, int devices, int copies)
{
    cnn_net_opts o = cnn_net_default_opts();
    o.shapes_only = true;
    o.phase = CNN_TEST;
    cnn_net *n = NULL;
    ck_assert_msg(cnn_net_from_file(path, &o, &n) == CNN_OK, "%s", cnn_error_message());
    ck_assert_int_eq(cnn_net_num_devices(n), devices);
    int found = 0;
    for (int i = 0; i < cnn_net_num_layers(n); i++)
        found += !strcmp(cnn_net_layer_type(n, i), "Copy");
    ck_assert_int_eq(found, copies);
    cnn_tensor *prob = cnn_net_blob(n, "fc8");
    ck_assert_ptr_nonnull(prob);
    ck_assert_int_eq(cnn_tensor_dim(prob, 1), 1000);
    cnn_net_free(n);
}

START_TEST(test_model_files)
{
    check_model_file("models/caffenet.cfg", 1, 0);
    check_model_file("models/alexnet_2gpu.cfg", 2, 8);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("modelpar");
    TCase *tc = tcase_create("modelpar");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_placement_and_copies);
    tcase_add_test(tc, test_two_towers_equal_one_device);
    tcase_add_test(tc, test_copy_names);
    tcase_add_test(tc, test_finite_differences_across_devices);
    tcase_add_test(tc, test_dropout_deterministic);
    tcase_add_test(tc, test_solver_steps_equal);
    tcase_add_test(tc, test_errors);
    tcase_add_test(tc, test_model_files);
    suite_add_tcase(s, tc);
    return cnn_test_run(s) != 0;
}
