/* check_gpu_net.c — whole nets on the GPU against the CPU: LeNet and
 * cifar10-quick trained 20 iterations (losses and final weights), a net
 * with every layer type that has a GPU path (forward outputs and all
 * gradients), dropout masks, every solver type with L1 and L2 decay, two
 * logical devices on one GPU (and on two GPUs when there are two), the CPU
 * fallback for a layer without a GPU path, snapshots, weights loading and
 * cnn_net_sync_host after GPU steps, the TEST net, the training loop
 * (display, test, snapshot), NaN losses, a GPU that does not exist, and
 * (on the emulator) no device memory left after the nets are freed.
 *
 * Built twice: against lib/libcnn.a (skips without a CUDA device) and
 * against lib/libcnn_emu.a (tests/emu/: the GPU path on the CPU emulator,
 * run by `make test`). Tolerances depend on which: the emulator computes
 * with the CPU kernels, so results differ only where a layer's GPU path
 * orders its arithmetic differently (1e-7); a real GPU differs in every
 * reduction. Run with CK_FORK=no (CUDA does not survive
 * fork). */
#include <float.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../stub_counts.h"
#include "../testutil.h"
#include "core/device.h"
#include "core/gpu.h"
#include "core/net_internal.h"
#include "solvers/solver.h"

static bool emulated;

/* Relative tolerances: one forward/backward pass (and a few solver steps);
 * losses after 20 iterations; weights after 20 iterations (looser: cifar10-
 * quick's conv1 weights are tiny and their gradients sums that cancel, so
 * summation order shows: 8e-4 when only the emulator's GEMM chunking
 * differed from the CPU's). */
static double tol_pass(void) { return emulated ? 1e-5 : 1e-3; }
static double tol_train(void) { return emulated ? 1e-5 : 2e-3; }
static double tol_weights(void) { return emulated ? 1e-5 : 1e-2; }

/* ---- helpers -------------------------------------------------------------- */

/* max |a - b| / max |a| (at least 1e-6); infinity when either has a NaN. */
/* max |a - b| / max |a|, the scale at least `floor`. */
static double rel_err_at(const float *a, const float *b, size_t n, double floor)
{
    double diff = 0, scale = fmax(floor, 1e-6);
    for (size_t i = 0; i < n; i++) {
        if (isnan(a[i]) || isnan(b[i])) return INFINITY;
        diff = fmax(diff, fabs((double)a[i] - b[i]));
        scale = fmax(scale, fabs((double)a[i]));
    }
    return diff / scale;
}

static double rel_err(const float *a, const float *b, size_t n)
{
    return rel_err_at(a, b, n, 0);
}

/* Checks tensor b (GPU) against a (CPU), printing the error relative to
 * a's largest value, or to `floor` when larger. */
static double expect_close_at(const char *what, const cnn_tensor *a, const float *ad,
                              const cnn_tensor *b, const float *bd, double tol, double floor)
{
    ck_assert_msg(a->count == b->count, "%s: %zu vs %zu values", what, a->count, b->count);
    double e = rel_err_at(ad, bd, a->count, floor);
    printf("    %-32s rel err %.3g\n", what, e);
    ck_assert_msg(e <= tol, "%s: GPU differs from CPU: relative error %.3g > %.3g", what, e,
                  tol);
    return e;
}

static double expect_close(const char *what, const cnn_tensor *a, const float *ad,
                           const cnn_tensor *b, const float *bd, double tol)
{
    return expect_close_at(what, a, ad, b, bd, tol, 0);
}

/* Net options: CPU (ngpu 0) or logical devices on GPUs ids[0..ngpu). */
static cnn_net_opts opts_for(int ngpu, const int *ids, int devices, uint64_t seed)
{
    cnn_net_opts o = cnn_net_default_opts();
    o.seed = seed;
    o.devices = devices;
    o.gpus = ngpu;
    o.deterministic = true;
    for (int i = 0; i < ngpu; i++) o.gpu[i] = ids[i];
    return o;
}

static cnn_net *build(const char *text, int ngpu, const int *ids, int devices, uint64_t seed)
{
    cnn_net_opts o = opts_for(ngpu, ids, devices, seed);
    cnn_net *n = NULL;
    cnn_status st = cnn_net_from_string(text, &o, &n);
    ck_assert_msg(st == CNN_OK, "building the %s net failed: %s", ngpu ? "GPU" : "CPU",
                  cnn_error_message());
    ck_assert(cnn_net_on_gpu(n) == (ngpu > 0));
    return n;
}

static const int GPU0[1] = {0};

/* Fills input blob t for batch number `batch`: labels (blobs named
 * "label*") get classes in [0, classes), targets ("target*") values in
 * [0, 1), anything else uniform(-1, 1). Tells a GPU net the host wrote. */
static void fill_input(cnn_tensor *t, uint64_t batch, int classes)
{
    cnn_rng r;
    uint64_t h = 1469598103934665603ull;
    for (const char *p = t->name; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ull;
    cnn_rng_seed(&r, h ^ (batch * 0x9e3779b97f4a7c15ull));
    bool label = !strncmp(t->name, "label", 5), target = !strncmp(t->name, "target", 6);
    for (size_t i = 0; i < t->count; i++) {
        if (label)
            t->data[i] = (float)cnn_rng_below(&r, (uint32_t)classes);
        else if (target)
            t->data[i] = (float)cnn_rng_uniform(&r);
        else
            t->data[i] = (float)(2 * cnn_rng_uniform(&r) - 1);
    }
    cnn_host_wrote_data(t);
}

static void fill_inputs(cnn_net *n, uint64_t batch, int classes)
{
    for (int i = 0; i < cnn_net_num_inputs(n); i++)
        fill_input(cnn_net_input(n, i), batch, classes);
}

static cnn_status feed10(cnn_net *n, uint64_t batch, void *user)
{
    fill_inputs(n, batch, 10);
    return CNN_OK;
}

/* Makes a GPU net's host copies current (no-op on the CPU). */
static void sync_host(cnn_net *n)
{
    ck_assert_msg(cnn_net_sync_host(n) == CNN_OK, "cnn_net_sync_host: %s", cnn_error_message());
}

/* Compares every parameter's data (and grad when `grads`) of two nets built
 * from the same text, by owning layer and index. Returns the largest error. */
/* The largest |value| among layer `layer`'s parameters in n: the scale a
 * trained bias, which starts at zero and moves little, is measured on (its
 * own values are mostly rounding noise of summed gradients). */
static double layer_scale(cnn_net *n, const char *layer)
{
    double m = 0;
    for (int i = 0; i < cnn_net_num_params(n); i++) {
        const cnn_param_info *p = cnn_net_param_info(n, i);
        if (strcmp(p->layer, layer)) continue;
        for (size_t k = 0; k < p->tensor->count; k++) m = fmax(m, fabs(p->tensor->data[k]));
    }
    return m;
}

static double compare_params(cnn_net *cpu, cnn_net *gpu, bool grads, double tol)
{
    sync_host(cpu);
    sync_host(gpu);
    double worst = 0;
    ck_assert_int_eq(cnn_net_num_params(cpu), cnn_net_num_params(gpu));
    for (int i = 0; i < cnn_net_num_params(cpu); i++) {
        const cnn_param_info *pc = cnn_net_param_info(cpu, i);
        cnn_tensor *tg = cnn_net_param(gpu, pc->layer, pc->index);
        ck_assert_msg(tg != NULL, "GPU net lacks %s.%d", pc->layer, pc->index);
        char what[96];
        snprintf(what, sizeof what, "%s.%d", pc->layer, pc->index);
        worst = fmax(worst, expect_close_at(what, pc->tensor, pc->tensor->data, tg, tg->data,
                                            tol, layer_scale(cpu, pc->layer)));
        if (grads) {
            snprintf(what, sizeof what, "%s.%d grad", pc->layer, pc->index);
            worst = fmax(worst,
                         expect_close(what, pc->tensor, pc->tensor->grad, tg, tg->grad, tol));
        }
    }
    return worst;
}

/* Compares every top blob (data and grad) of two nets with the same layers. */
static double compare_blobs(cnn_net *cpu, cnn_net *gpu, double tol)
{
    sync_host(cpu);
    sync_host(gpu);
    double worst = 0;
    ck_assert_int_eq(cnn_net_num_layers(cpu), cnn_net_num_layers(gpu));
    for (int i = 0; i < cnn_net_num_layers(cpu); i++) {
        ck_assert_str_eq(cnn_net_layer_name(cpu, i), cnn_net_layer_name(gpu, i));
        for (int t = 0; t < cnn_net_layer_num_tops(cpu, i); t++) {
            cnn_tensor *a = cnn_net_layer_top(cpu, i, t), *b = cnn_net_layer_top(gpu, i, t);
            char what[96];
            snprintf(what, sizeof what, "%s (%s)", a->name, cnn_net_layer_type(cpu, i));
            worst = fmax(worst, expect_close(what, a, a->data, b, b->data, tol));
            snprintf(what, sizeof what, "%s grad", a->name);
            worst = fmax(worst, expect_close(what, a, a->grad, b, b->grad, tol));
        }
    }
    return worst;
}

static void step_pass(cnn_net *n, float *loss)
{
    ck_assert_msg(cnn_net_forward(n, loss) == CNN_OK, "forward: %s", cnn_error_message());
    cnn_net_zero_param_grads(n);
    ck_assert_msg(cnn_net_backward(n) == CNN_OK, "backward: %s", cnn_error_message());
}

/* ---- models with their data layers replaced by Input layers --------------- */

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s (run from the repository root)", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    ck_assert_uint_eq(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = 0;
    fclose(f);
    return s;
}

/* End of the { } block whose '{' is at p (skips strings and # comments). */
static const char *block_end(const char *p)
{
    int depth = 0;
    for (; *p; p++) {
        if (*p == '#')
            while (*p && *p != '\n') p++;
        else if (*p == '"')
            for (p++; *p && *p != '"'; p++) p += *p == '\\';
        if (*p == '{') depth++;
        if (*p == '}' && --depth == 0) return p + 1;
    }
    ck_abort_msg("unbalanced braces in a model file");
    return p;
}

/* The model at `path` without its Data layers and its solver block, with
 * `head` before and `tail` after. */
static char *model_text(const char *path, const char *head, const char *tail)
{
    char *src = read_text(path);
    size_t cap = strlen(src) + strlen(head) + strlen(tail) + 1, len = strlen(head);
    char *out = malloc(cap);
    strcpy(out, head);
    for (const char *p = src; *p;) {
        const char *kw = NULL;
        if (*p == '#') {
            const char *e = strchr(p, '\n');
            e = e ? e + 1 : p + strlen(p);
            memcpy(out + len, p, (size_t)(e - p));
            len += (size_t)(e - p);
            p = e;
            continue;
        }
        if (!strncmp(p, "layer", 5) || !strncmp(p, "solver", 6)) kw = p;
        if (kw && (kw == src || kw[-1] == '\n')) {
            const char *brace = strchr(kw, '{'), *end = block_end(brace);
            char *body = strndup(kw, (size_t)(end - kw));
            bool drop = kw[0] == 's' || strstr(body, "type: \"Data\"") != NULL;
            free(body);
            if (drop) {
                p = end;
                continue;
            }
            memcpy(out + len, kw, (size_t)(end - kw));
            len += (size_t)(end - kw);
            p = end;
            continue;
        }
        out[len++] = *p++;
    }
    strcpy(out + len, tail);
    free(src);
    return out;
}

/* ---- solvers ----------------------------------------------------------------- */

static cnn_solver *make_solver(const char *text, int ngpu, const int *ids, int devices)
{
    cnn_solver_opts o = {0};
    o.devices = devices;
    o.gpus = ngpu;
    o.deterministic = true;
    for (int i = 0; i < ngpu; i++) o.gpu[i] = ids[i];
    cnn_solver *s = NULL;
    cnn_status st = cnn_solver_from_string(text, "gpu_net_test", &o, &s);
    ck_assert_msg(st == CNN_OK, "solver build failed: %s", cnn_error_message());
    ck_assert(cnn_net_on_gpu(cnn_solver_net(s)) == (ngpu > 0));
    cnn_solver_set_feed(s, feed10, NULL);
    return s;
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* Trains `iters` iterations on the CPU and on GPU 0 from the same seed and
 * checks every loss against `tol` and the final weights against `wtol`. */
static void train_both(const char *what, const char *text, int iters, double tol,
                       double wtol)
{
    cnn_solver *cpu = make_solver(text, 0, NULL, 0), *gpu = make_solver(text, 1, GPU0, 0);
    double worst = 0, t_cpu = 0, t_gpu = 0;
    for (int i = 0; i < iters; i++) {
        float lc = NAN, lg = NAN;
        double t0 = now();
        ck_assert_msg(cnn_solver_step(cpu, &lc) == CNN_OK, "CPU step %d: %s", i,
                      cnn_error_message());
        double t1 = now();
        ck_assert_msg(cnn_solver_step(gpu, &lg) == CNN_OK, "GPU step %d: %s", i,
                      cnn_error_message());
        t_cpu += t1 - t0;
        t_gpu += now() - t1;
        double e = isfinite(lg) ? fabs((double)lc - lg) / fmax(fabs((double)lc), 1e-6) : INFINITY;
        printf("  %s iter %2d: loss CPU %.7f GPU %.7f rel %.3g\n", what, i, lc, lg, e);
        worst = fmax(worst, e);
    }
    printf("  %s: largest relative loss difference over %d iterations %.3g (tolerance %.3g); "
           "%.2f s on the CPU, %.2f s on the GPU\n",
           what, iters, worst, tol, t_cpu, t_gpu);
    ck_assert_msg(worst <= tol, "%s: losses differ by %.3g (> %.3g)", what, worst, tol);
    double w = compare_params(cnn_solver_net(cpu), cnn_solver_net(gpu), false, wtol);
    printf("  %s: largest relative weight difference %.3g\n", what, w);
    cnn_solver_free(cpu);
    cnn_solver_free(gpu);
}

/* ---- (a) whole nets ------------------------------------------------------------ */

START_TEST(test_lenet_20_iterations)
{
    char *text = model_text(
        "models/lenet.cfg",
        "layer { name: \"data\" type: \"Input\" top: \"data\" "
        "input_param { shape { dim: 64 dim: 1 dim: 28 dim: 28 } } }\n"
        "layer { name: \"label\" type: \"Input\" top: \"label\" "
        "input_param { shape { dim: 64 } } }\n",
        "solver { base_lr: 0.01 momentum: 0.9 weight_decay: 0.0005 lr_policy: \"inv\" "
        "gamma: 0.0001 power: 0.75 max_iter: 20 random_seed: 1 }\n");
    train_both("LeNet", text, 20, tol_train(), tol_weights());
    free(text);
}
END_TEST

START_TEST(test_cifar10_quick_20_iterations)
{
    char *text = model_text(
        "models/cifar10_quick.cfg",
        "layer { name: \"data\" type: \"Input\" top: \"data\" "
        "input_param { shape { dim: 100 dim: 3 dim: 32 dim: 32 } } }\n"
        "layer { name: \"label\" type: \"Input\" top: \"label\" "
        "input_param { shape { dim: 100 } } }\n",
        "solver { base_lr: 0.001 momentum: 0.9 weight_decay: 0.004 lr_policy: \"fixed\" "
        "max_iter: 20 random_seed: 1 }\n");
    train_both("cifar10-quick", text, 20, tol_train(), tol_weights());
    free(text);
}
END_TEST

/* ---- (b) every layer type with a GPU path ------------------------------------------ */

#define INPUT(name, dims)                                                                   \
    "layer { name: \"" name "\" type: \"Input\" top: \"" name "\" input_param { shape { " dims \
    " } } }\n"
#define FILL_G "weight_filler { type: \"gaussian\" std: 0.2 } "
#define FILL_B "bias_filler { type: \"uniform\" min: -0.2 max: 0.2 } "
/* Batch norm, scale, ReLU (in place on blob "conv") and 2x2 max pooling
 * into "pool". */
#define BN_RELU_POOL                                                                        \
    "layer { name: \"bn\" type: \"BatchNorm\" bottom: \"conv\" top: \"conv\" }\n"              \
    "layer { name: \"scale\" type: \"Scale\" bottom: \"conv\" top: \"conv\" "                   \
    "  scale_param { bias_term: true } }\n"                                                  \
    "layer { name: \"relu\" type: \"ReLU\" bottom: \"conv\" top: \"conv\" }\n"                 \
    "layer { name: \"pool\" type: \"Pooling\" bottom: \"conv\" top: \"pool\" "                  \
    "  pooling_param { pool: MAX kernel_size: 2 stride: 2 } }\n"

/* conv2 feeds BatchNorm, which removes every channel's mean: a bias there
 * would have a gradient of rounding noise, so it has none. Also covered:
 * group and dilation, rectangular kernels, a convolution with two bottom/top
 * pairs, global pooling, softmax over channels of images, Scale by a second
 * bottom, in-place PReLU (shared slope), ELU and ReLU, a transposed inner
 * product, losses and accuracy with an ignored label. */
static const char *const ALL_LAYERS =
    "force_backward: true\n" INPUT("data", "dim: 4 dim: 4 dim: 10 dim: 10")
    INPUT("label", "dim: 4") INPUT("target", "dim: 4 dim: 6")
    INPUT("target_sm", "dim: 4 dim: 2 dim: 5")
    "layer { name: \"conv1\" type: \"Convolution\" bottom: \"data\" top: \"conv1\" "
    "  convolution_param { num_output: 8 kernel_size: 3 pad: 1 " FILL_G FILL_B "} }\n"
    "layer { name: \"conv2\" type: \"Convolution\" bottom: \"conv1\" top: \"conv2\" "
    "  convolution_param { num_output: 6 kernel_size: 3 pad: 2 dilation: 2 group: 2 "
    "  stride: 1 bias_term: false " FILL_G "} }\n"
    "layer { name: \"conv3\" type: \"Convolution\" bottom: \"conv1\" top: \"conv3\" "
    "  convolution_param { num_output: 6 kernel_h: 3 kernel_w: 2 stride: 2 pad_h: 1 "
    "  pad_w: 0 " FILL_G FILL_B "} }\n"
    "layer { name: \"bn\" type: \"BatchNorm\" bottom: \"conv2\" top: \"bn\" }\n"
    "layer { name: \"scale\" type: \"Scale\" bottom: \"bn\" top: \"bn\" "
    "  scale_param { bias_term: true filler { type: \"uniform\" min: 0.5 max: 1.5 } "
    "  bias_filler { type: \"uniform\" min: -0.2 max: 0.2 } } }\n"
    "layer { name: \"relu\" type: \"ReLU\" bottom: \"bn\" top: \"bn\" }\n"
    "layer { name: \"pmax\" type: \"Pooling\" bottom: \"bn\" top: \"pmax\" "
    "  pooling_param { pool: MAX kernel_size: 3 stride: 2 } }\n"
    "layer { name: \"lrn_a\" type: \"LRN\" bottom: \"pmax\" top: \"lrn_a\" "
    "  lrn_param { local_size: 3 alpha: 0.5 beta: 0.75 } }\n"
    "layer { name: \"pave\" type: \"Pooling\" bottom: \"conv3\" top: \"pave\" "
    "  pooling_param { pool: AVE kernel_size: 3 stride: 1 pad: 1 } }\n"
    "layer { name: \"lrn_w\" type: \"LRN\" bottom: \"pave\" top: \"lrn_w\" "
    "  lrn_param { local_size: 3 alpha: 0.5 beta: 0.6 norm_region: WITHIN_CHANNEL } }\n"
    "layer { name: \"prelu\" type: \"PReLU\" bottom: \"lrn_w\" top: \"prelu\" "
    "  prelu_param { filler { type: \"uniform\" min: 0.1 max: 0.3 } } }\n"
    "layer { name: \"sum\" type: \"Eltwise\" bottom: \"lrn_a\" bottom: \"prelu\" top: \"sum\" "
    "  eltwise_param { operation: SUM coeff: 0.5 coeff: -1.5 } }\n"
    "layer { name: \"max\" type: \"Eltwise\" bottom: \"lrn_a\" bottom: \"prelu\" top: \"max\" "
    "  eltwise_param { operation: MAX } }\n"
    "layer { name: \"prod\" type: \"Eltwise\" bottom: \"lrn_a\" bottom: \"prelu\" "
    "  top: \"prod\" eltwise_param { operation: PROD } }\n"
    "layer { name: \"sm4\" type: \"Softmax\" bottom: \"conv3\" top: \"sm4\" }\n"
    "layer { name: \"scale2\" type: \"Scale\" bottom: \"lrn_a\" bottom: \"target\" "
    "  top: \"scaled\" scale_param { axis: 0 } }\n"
    "layer { name: \"convs\" type: \"Convolution\" bottom: \"sum\" bottom: \"max\" "
    "  top: \"cs1\" top: \"cs2\" "
    "  convolution_param { num_output: 6 kernel_size: 3 pad: 1 " FILL_G FILL_B "} }\n"
    "layer { name: \"pglob\" type: \"Pooling\" bottom: \"conv3\" top: \"pglob\" "
    "  pooling_param { pool: AVE global_pooling: true } }\n"
    "layer { name: \"pglob_r\" type: \"Reshape\" bottom: \"pglob\" top: \"pglob_r\" "
    "  reshape_param { shape { dim: 0 dim: -1 } } }\n"
    "layer { name: \"euclid_g\" type: \"EuclideanLoss\" bottom: \"pglob_r\" "
    "  bottom: \"target\" top: \"euclid_g\" }\n"
    "layer { name: \"cat\" type: \"Concat\" bottom: \"prod\" bottom: \"sm4\" "
    "  bottom: \"scaled\" bottom: \"cs1\" bottom: \"cs2\" top: \"cat\" }\n"
    "layer { name: \"prelu2\" type: \"PReLU\" bottom: \"cat\" top: \"cat\" "
    "  prelu_param { channel_shared: true filler { type: \"constant\" value: 0.3 } } }\n"
    "layer { name: \"tanh\" type: \"TanH\" bottom: \"cat\" top: \"tanh\" }\n"
    "layer { name: \"flat\" type: \"Flatten\" bottom: \"tanh\" top: \"flat\" }\n"
    "layer { name: \"ip1\" type: \"InnerProduct\" bottom: \"flat\" top: \"ip1\" "
    "  inner_product_param { num_output: 16 " FILL_G FILL_B "} }\n"
    "layer { name: \"elu\" type: \"ELU\" bottom: \"ip1\" top: \"ip1\" elu_param { alpha: 0.7 } }\n"
    "layer { name: \"drop\" type: \"Dropout\" bottom: \"ip1\" top: \"drop\" "
    "  dropout_param { dropout_ratio: 0.3 } }\n"
    "layer { name: \"ip2\" type: \"InnerProduct\" bottom: \"drop\" top: \"ip2\" "
    "  inner_product_param { num_output: 10 " FILL_G FILL_B "} }\n"
    "layer { name: \"loss\" type: \"SoftmaxWithLoss\" bottom: \"ip2\" bottom: \"label\" "
    "  top: \"loss\" loss_param { ignore_label: 3 } }\n"
    "layer { name: \"acc\" type: \"Accuracy\" bottom: \"ip2\" bottom: \"label\" top: \"acc\" "
    "  accuracy_param { top_k: 3 ignore_label: 3 } }\n"
    "layer { name: \"prob\" type: \"Softmax\" bottom: \"ip2\" top: \"prob\" }\n"
    "layer { name: \"reshape\" type: \"Reshape\" bottom: \"prob\" top: \"prob_r\" "
    "  reshape_param { shape { dim: 0 dim: 2 dim: -1 } } }\n"
    "layer { name: \"euclid_sm\" type: \"EuclideanLoss\" bottom: \"prob_r\" "
    "  bottom: \"target_sm\" top: \"euclid_sm\" loss_weight: 3 }\n"
    "layer { name: \"ip3\" type: \"InnerProduct\" bottom: \"drop\" top: \"ip3\" "
    "  inner_product_param { num_output: 6 transpose: true " FILL_G FILL_B "} }\n"
    "layer { name: \"sig\" type: \"Sigmoid\" bottom: \"ip3\" top: \"sig\" }\n"
    "layer { name: \"euclid\" type: \"EuclideanLoss\" bottom: \"sig\" bottom: \"target\" "
    "  top: \"euclid\" loss_weight: 2 }\n"
    "layer { name: \"xent\" type: \"SigmoidCrossEntropyLoss\" bottom: \"ip3\" "
    "  bottom: \"target\" top: \"xent\" loss_weight: 0.5 }\n";

START_TEST(test_every_gpu_layer_forward_backward)
{
    cnn_net *cpu = build(ALL_LAYERS, 0, NULL, 0, 7), *gpu = build(ALL_LAYERS, 1, GPU0, 0, 7);
    /* Two passes: the second runs on state the first left (BatchNorm's
     * moving sums, dropout's next mask, device buffers reused). */
    for (int pass = 0; pass < 2; pass++) {
        fill_inputs(cpu, (uint64_t)pass, 10);
        fill_inputs(gpu, (uint64_t)pass, 10);
        for (int k = 0; k < 2; k++) { /* one ignored label */
            cnn_tensor *label = cnn_net_blob(k ? gpu : cpu, "label");
            label->data[1] = 3.f;
            cnn_host_wrote_data(label);
        }
        float lc = NAN, lg = NAN;
        step_pass(cpu, &lc);
        step_pass(gpu, &lg);
        printf("  pass %d: loss CPU %.7f GPU %.7f\n", pass, lc, lg);
        ck_assert_msg(fabs((double)lc - lg) <= tol_pass() * fmax(1, fabs((double)lc)),
                      "loss CPU %.8g vs GPU %.8g", lc, lg);
        double b = compare_blobs(cpu, gpu, tol_pass());
        double p = compare_params(cpu, gpu, true, tol_pass());
        printf("  pass %d: largest relative error: blobs %.3g, parameters %.3g\n", pass, b, p);
    }
    cnn_net_free(cpu);
    cnn_net_free(gpu);
}
END_TEST

/* TEST phase on the GPU: BatchNorm's global statistics, Dropout's identity,
 * Accuracy, after the moving sums were computed in TRAIN on each side. */
START_TEST(test_every_gpu_layer_test_phase)
{
    cnn_net_opts oc = opts_for(0, NULL, 0, 7), og = opts_for(1, GPU0, 0, 7);
    oc.phase = og.phase = CNN_TEST;
    cnn_net *cpu = NULL, *gpu = NULL;
    ck_assert_msg(cnn_net_from_string(ALL_LAYERS, &oc, &cpu) == CNN_OK, "%s",
                  cnn_error_message());
    ck_assert_msg(cnn_net_from_string(ALL_LAYERS, &og, &gpu) == CNN_OK, "%s",
                  cnn_error_message());
    /* Moving sums as if trained: weight 1, sums uniform. */
    cnn_tensor *pc[3], *pg[3];
    for (int i = 0; i < 3; i++) {
        pc[i] = cnn_net_param(cpu, "bn", i);
        pg[i] = cnn_net_param(gpu, "bn", i);
        cnn_test_fill_uniform(pc[i], 0.5f, 1.5f, 40 + (uint64_t)i);
        cnn_test_fill_uniform(pg[i], 0.5f, 1.5f, 40 + (uint64_t)i);
    }
    cnn_net_params_changed(gpu);
    fill_inputs(cpu, 3, 10);
    fill_inputs(gpu, 3, 10);
    float lc = NAN, lg = NAN;
    ck_assert_msg(cnn_net_forward(cpu, &lc) == CNN_OK, "%s", cnn_error_message());
    ck_assert_msg(cnn_net_forward(gpu, &lg) == CNN_OK, "%s", cnn_error_message());
    sync_host(gpu);
    printf("  TEST phase: loss CPU %.7f GPU %.7f\n", lc, lg);
    ck_assert(fabs((double)lc - lg) <= tol_pass() * fmax(1, fabs((double)lc)));
    for (int i = 0; i < cnn_net_num_layers(cpu); i++)
        for (int t = 0; t < cnn_net_layer_num_tops(cpu, i); t++) {
            cnn_tensor *a = cnn_net_layer_top(cpu, i, t), *b = cnn_net_layer_top(gpu, i, t);
            expect_close(a->name, a, a->data, b, b->data, tol_pass());
        }
    cnn_net_free(cpu);
    cnn_net_free(gpu);
}
END_TEST

/* ---- (c) dropout ---------------------------------------------------------------------- */

static const char *const DROPOUT_NET =
    "force_backward: true\n" INPUT("x", "dim: 8 dim: 300") INPUT("target", "dim: 8 dim: 300")
    "layer { name: \"drop\" type: \"Dropout\" bottom: \"x\" top: \"y\" "
    "  dropout_param { dropout_ratio: 0.4 } }\n"
    "layer { name: \"loss\" type: \"EuclideanLoss\" bottom: \"y\" bottom: \"target\" "
    "  top: \"loss\" }\n";

START_TEST(test_dropout_same_mask)
{
    cnn_net *cpu = build(DROPOUT_NET, 0, NULL, 0, 11), *gpu = build(DROPOUT_NET, 1, GPU0, 0, 11);
    cnn_tensor *xc = cnn_net_blob(cpu, "x"), *yc = cnn_net_blob(cpu, "y");
    cnn_tensor *xg = cnn_net_blob(gpu, "x"), *yg = cnn_net_blob(gpu, "y");
    for (int pass = 0; pass < 3; pass++) {
        fill_inputs(cpu, 0, 10); /* same input: only the mask changes */
        fill_inputs(gpu, 0, 10);
        float lc, lg;
        step_pass(cpu, &lc);
        step_pass(gpu, &lg);
        sync_host(gpu);
        size_t dropped = 0, diff = 0;
        for (size_t i = 0; i < yc->count; i++) {
            dropped += yc->data[i] == 0.f;
            diff += yc->data[i] != yg->data[i] || xc->grad[i] != xg->grad[i];
        }
        printf("  pass %d: %zu of %zu dropped, %zu differ (data or grad)\n", pass, dropped,
               yc->count, diff);
        ck_assert_msg(diff == 0, "pass %d: %zu outputs or gradients differ", pass, diff);
        ck_assert(dropped > yc->count / 4 && dropped < yc->count * 11 / 20);
    }
    cnn_net_free(cpu);
    cnn_net_free(gpu);
}
END_TEST

/* ---- (d) solver types ----------------------------------------------------------------------- */

#define SMALL_NET                                                                             \
    INPUT("data", "dim: 8 dim: 2 dim: 5 dim: 5") INPUT("label", "dim: 8")                    \
    "layer { name: \"conv\" type: \"Convolution\" bottom: \"data\" top: \"conv\" "          \
    "  convolution_param { num_output: 4 kernel_size: 3 " FILL_G FILL_B "} }\n"             \
    "layer { name: \"tanh\" type: \"TanH\" bottom: \"conv\" top: \"conv\" }\n"              \
    "layer { name: \"ip\" type: \"InnerProduct\" bottom: \"conv\" top: \"ip\" "            \
    "  inner_product_param { num_output: 10 " FILL_G FILL_B "} }\n"                          \
    "layer { name: \"loss\" type: \"SoftmaxWithLoss\" bottom: \"ip\" bottom: \"label\" "    \
    "  top: \"loss\" }\n"

START_TEST(test_solver_types)
{
    static const char *const types[] = {
        "type: \"SGD\" momentum: 0.9",
        "type: \"Nesterov\" momentum: 0.9",
        "type: \"Adam\" momentum: 0.9 momentum2: 0.999 delta: 1e-8",
        "type: \"AdamW\" momentum: 0.9 momentum2: 0.99",
        "type: \"RMSProp\" rms_decay: 0.95 delta: 1e-6",
        "type: \"AdaGrad\" delta: 1e-6",
        "type: \"AdaDelta\" momentum: 0.95 delta: 1e-6",
        "type: \"SGD\" momentum: 0.9 iter_size: 2 clip_gradients: 0.5",
    };
    static const char *const regs[] = {"L2", "L1"};
    for (size_t t = 0; t < sizeof types / sizeof *types; t++)
        for (int r = 0; r < 2; r++) {
            char text[4096], what[160];
            snprintf(text, sizeof text,
                     SMALL_NET "solver { %s base_lr: 0.05 lr_policy: \"step\" gamma: 0.5 "
                               "stepsize: 2 weight_decay: 0.01 regularization_type: \"%s\" "
                               "max_iter: 5 random_seed: 3 }\n",
                     types[t], regs[r]);
            snprintf(what, sizeof what, "%s, %s", types[t], regs[r]);
            printf("  %s\n", what);
            train_both(what, text, 5, tol_pass(), tol_pass());
        }
}
END_TEST

/* Parameter gradients are zeroed lazily on the GPU (cnn_gpu_zero_grad): the
 * first op that writes one overwrites it, later ones add. Covered here: a
 * weight shared by two layers, a convolution with two bottom/top pairs
 * (both add into one gradient), gradients no op writes (lr_mult 0: they
 * must read back as zero), several passes in a row and iter_size 2. */
#define LAZY_NET                                                                               \
    INPUT("data", "dim: 3 dim: 2 dim: 6 dim: 6") INPUT("data2", "dim: 3 dim: 2 dim: 6 dim: 6")  \
    INPUT("label", "dim: 3")                                                                   \
    "layer { name: \"conv\" type: \"Convolution\" bottom: \"data\" bottom: \"data2\" "       \
    "  top: \"c1\" top: \"c2\" param { name: \"cw\" } param { lr_mult: 0 } "                  \
    "  convolution_param { num_output: 3 kernel_size: 3 " FILL_G FILL_B "} }\n"                 \
    "layer { name: \"conv_b\" type: \"Convolution\" bottom: \"c1\" top: \"c3\" "              \
    "  param { name: \"cw2\" } "                                                               \
    "  convolution_param { num_output: 3 kernel_size: 1 " FILL_G FILL_B "} }\n"                 \
    "layer { name: \"conv_c\" type: \"Convolution\" bottom: \"c2\" top: \"c4\" "              \
    "  param { name: \"cw2\" } "                                                               \
    "  convolution_param { num_output: 3 kernel_size: 1 " FILL_G FILL_B "} }\n"                 \
    "layer { name: \"sum\" type: \"Eltwise\" bottom: \"c3\" bottom: \"c4\" top: \"s\" }\n"     \
    "layer { name: \"ip\" type: \"InnerProduct\" bottom: \"s\" top: \"ip\" "                   \
    "  param { lr_mult: 0 } param { lr_mult: 1 } "                                              \
    "  inner_product_param { num_output: 4 " FILL_G FILL_B "} }\n"                             \
    "layer { name: \"ip2\" type: \"InnerProduct\" bottom: \"ip\" top: \"ip2\" "                \
    "  inner_product_param { num_output: 10 " FILL_G FILL_B "} }\n"                            \
    "layer { name: \"loss\" type: \"SoftmaxWithLoss\" bottom: \"ip2\" bottom: \"label\" "      \
    "  top: \"loss\" }\n"

START_TEST(test_lazy_zero_grads)
{
    cnn_net *cpu = build(LAZY_NET, 0, NULL, 0, 4), *gpu = build(LAZY_NET, 1, GPU0, 0, 4);
    for (int pass = 0; pass < 3; pass++) {
        fill_inputs(cpu, (uint64_t)pass, 10);
        fill_inputs(gpu, (uint64_t)pass, 10);
        float lc, lg;
        step_pass(cpu, &lc);
        step_pass(gpu, &lg);
        double p = compare_params(cpu, gpu, true, tol_pass());
        printf("  pass %d: loss CPU %.7f GPU %.7f, parameters and gradients within %.3g\n",
               pass, lc, lg, p);
    }
    /* No op wrote these: zeros, made on the host when read. */
    cnn_tensor *unwritten[2] = {cnn_net_param(gpu, "conv", 1), cnn_net_param(gpu, "ip", 0)};
    for (int k = 0; k < 2; k++) {
        ck_assert_msg(cnn_host_grad(unwritten[k]) == CNN_OK, "%s", cnn_error_message());
        for (size_t i = 0; i < unwritten[k]->count; i++)
            ck_assert_float_eq(unwritten[k]->grad[i], 0.f);
    }
    cnn_net_free(cpu);
    cnn_net_free(gpu);
    train_both("lazy zero, iter_size 2",
               LAZY_NET "solver { type: \"SGD\" base_lr: 0.05 momentum: 0.9 iter_size: 2 "
                        "weight_decay: 0.01 max_iter: 4 random_seed: 3 }\n",
               4, tol_pass(), tol_pass());
}
END_TEST

/* CUDA graphs (cnn_net_forward_backward with cuda_graph): `steps` solver
 * steps of `text` on `gpus` logical devices of GPU 0, eagerly and recorded
 * once and replayed, give the same losses and weights (within tol_pass:
 * two solvers' contexts may time different deterministic cuDNN algorithms)
 * and the graph replays. The emulator cannot record: there both sides run
 * eagerly, through the graph path's prelude on one side. */
static void graph_matches_eager(const char *text, int gpus, int steps)
{
    cnn_solver *s[2];
    for (int k = 0; k < 2; k++) {
        cnn_solver_opts o = {0};
        o.gpus = gpus;
        o.deterministic = true;
        o.cuda_graph = k == 1;
        ck_assert_msg(cnn_solver_from_string(text, "graph_test", &o, &s[k]) == CNN_OK, "%s",
                      cnn_error_message());
        ck_assert_int_eq(cnn_net_num_devices(cnn_solver_net(s[k])), gpus);
        cnn_solver_set_feed(s[k], feed10, NULL);
    }
    for (int i = 0; i < steps; i++) {
        float l[2] = {NAN, NAN};
        for (int k = 0; k < 2; k++)
            ck_assert_msg(cnn_solver_step(s[k], &l[k]) == CNN_OK, "%s", cnn_error_message());
        printf("  step %d: loss eager %.7f, graph %.7f\n", i, l[0], l[1]);
        ck_assert_msg(fabs((double)l[0] - l[1]) <= tol_pass() * fabs((double)l[0]),
                      "step %d: loss eager %.9g, graph %.9g", i, l[0], l[1]);
    }
    const char *note = cnn_net_graph_note(cnn_solver_net(s[1]));
    printf("  CUDA graph: %s\n", note);
    ck_assert_msg(emulated ? strstr(note, "emulator") != NULL : !strcmp(note, "replayed"),
                  "graph note '%s'", note);
    compare_params(cnn_solver_net(s[0]), cnn_solver_net(s[1]), false, tol_pass());
    for (int k = 0; k < 2; k++) cnn_solver_free(s[k]);
}

START_TEST(test_cuda_graph_matches_eager)
{
    const char *text =
        INPUT("data", "dim: 8 dim: 3 dim: 12 dim: 12") INPUT("label", "dim: 8")
        "layer { name: \"conv\" type: \"Convolution\" bottom: \"data\" top: \"conv\" "
        "  convolution_param { num_output: 6 kernel_size: 3 " FILL_G FILL_B "} }\n"
        BN_RELU_POOL
        "layer { name: \"ip\" type: \"InnerProduct\" bottom: \"pool\" top: \"ip\" "
        "  inner_product_param { num_output: 10 " FILL_G FILL_B "} }\n"
        "layer { name: \"loss\" type: \"SoftmaxWithLoss\" bottom: \"ip\" bottom: \"label\" "
        "  top: \"loss\" }\n"
        "solver { type: \"SGD\" base_lr: 0.05 momentum: 0.9 weight_decay: 0.001 "
        "  max_iter: 20 random_seed: 9 }\n";
    graph_matches_eager(text, 1, 6);
    /* Dropout's seed, drawn on the host each pass, goes up before each
     * replay: the graph draws the masks an eager step draws. */
    char text2[8192];
    snprintf(text2, sizeof text2, "%s", text);
    char *at = strstr(text2, "layer { name: \"ip\"");
    ck_assert(at != NULL);
    const char *drop = "layer { name: \"drop\" type: \"Dropout\" bottom: \"pool\" "
                       "top: \"pool\" }\n";
    memmove(at + strlen(drop), at, strlen(at) + 1);
    memcpy(at, drop, strlen(drop));
    graph_matches_eager(text2, 1, 5);
}
END_TEST

/* ---- (e) logical devices ---------------------------------------------------------------------- */

#define TWO_TOWER(D1)                                                                          \
    "force_backward: true\n" INPUT("data", "dim: 6 dim: 3 dim: 8 dim: 8") INPUT("label",     \
                                                                              "dim: 6")       \
    "layer { name: \"conv1\" type: \"Convolution\" bottom: \"data\" top: \"conv1\" "          \
    "  convolution_param { num_output: 4 kernel_size: 3 " FILL_G FILL_B "} }\n"               \
    "layer { name: \"relu1\" type: \"ReLU\" bottom: \"conv1\" top: \"conv1\" }\n"             \
    "layer { name: \"conv2\" type: \"Convolution\" bottom: \"conv1\" top: \"conv2\" " D1    \
    "  convolution_param { num_output: 4 kernel_size: 3 " FILL_G FILL_B "} }\n"               \
    "layer { name: \"pool\" type: \"Pooling\" bottom: \"conv2\" top: \"pool\" " D1           \
    "  pooling_param { pool: MAX kernel_size: 2 stride: 2 } }\n"                              \
    "layer { name: \"ip1\" type: \"InnerProduct\" bottom: \"conv1\" top: \"ip1\" "            \
    "  inner_product_param { num_output: 10 " FILL_G FILL_B "} }\n"                           \
    "layer { name: \"ip2\" type: \"InnerProduct\" bottom: \"pool\" top: \"ip2\" " D1         \
    "  inner_product_param { num_output: 10 " FILL_G FILL_B "} }\n"                           \
    "layer { name: \"sum\" type: \"Eltwise\" bottom: \"ip1\" bottom: \"ip2\" top: \"sum\" }\n" \
    "layer { name: \"loss\" type: \"SoftmaxWithLoss\" bottom: \"sum\" bottom: \"label\" "     \
    "  top: \"loss\" }\n"

static const char *const ONE_DEVICE = TWO_TOWER("");
static const char *const TWO_DEVICES = TWO_TOWER("device: 1 ");

/* Two logical devices on GPUs ids[0..ngpu) against one device on GPU 0:
 * losses, parameter gradients and, after solver steps, weights. */
static void two_devices_vs_one(int ngpu, const int *ids)
{
    cnn_net *one = build(ONE_DEVICE, 1, GPU0, 0, 5), *two = build(TWO_DEVICES, ngpu, ids, 2, 5);
    ck_assert_int_eq(cnn_net_num_devices(two), 2);
    for (int pass = 0; pass < 2; pass++) {
        fill_inputs(one, (uint64_t)pass, 10);
        fill_inputs(two, (uint64_t)pass, 10);
        float l1, l2;
        step_pass(one, &l1);
        step_pass(two, &l2);
        printf("  pass %d: loss one device %.7f, two %.7f\n", pass, l1, l2);
        ck_assert(fabs((double)l1 - l2) <= tol_pass() * fmax(1, fabs((double)l1)));
        compare_params(one, two, true, tol_pass());
        cnn_tensor *a = cnn_net_blob(one, "data"), *b = cnn_net_blob(two, "data");
        sync_host(one);
        expect_close("data grad", a, a->grad, b, b->grad, tol_pass());
    }
    cnn_net_free(one);
    cnn_net_free(two);
    char t1[8192], t2[8192];
    const char *solver = "solver { type: \"SGD\" base_lr: 0.05 momentum: 0.9 "
                         "weight_decay: 0.001 max_iter: 4 random_seed: 5 }\n";
    snprintf(t1, sizeof t1, "%s%s", ONE_DEVICE, solver);
    snprintf(t2, sizeof t2, "%s%s", TWO_DEVICES, solver);
    cnn_solver *s1 = make_solver(t1, 1, GPU0, 0), *s2 = make_solver(t2, ngpu, ids, 2);
    for (int i = 0; i < 4; i++) {
        float l1, l2;
        ck_assert_msg(cnn_solver_step(s1, &l1) == CNN_OK, "%s", cnn_error_message());
        ck_assert_msg(cnn_solver_step(s2, &l2) == CNN_OK, "%s", cnn_error_message());
        printf("  step %d: loss one device %.7f, two %.7f\n", i, l1, l2);
        ck_assert(fabs((double)l1 - l2) <= tol_pass() * fmax(1, fabs((double)l1)));
    }
    compare_params(cnn_solver_net(s1), cnn_solver_net(s2), false, tol_pass());
    cnn_solver_free(s1);
    cnn_solver_free(s2);
}

/* A CUDA graph over two logical devices on one GPU: two streams joined
 * into the recording by the passes' events. */
START_TEST(test_cuda_graph_two_devices)
{
    char text[8192];
    snprintf(text, sizeof text, "%s%s", TWO_DEVICES,
             "solver { type: \"SGD\" base_lr: 0.05 momentum: 0.9 weight_decay: 0.001 "
             "max_iter: 10 random_seed: 5 }\n");
    graph_matches_eager(text, 2, 5);
}
END_TEST

/* AlexNet's shape: both towers read the input (so the net splits it, and
 * the label's Input layer comes after a GPU Split: the prelude still runs
 * it), Dropout on each device (each replay uploads new seeds first). */
START_TEST(test_cuda_graph_towers_with_dropout)
{
    graph_matches_eager(
        INPUT("data", "dim: 6 dim: 3 dim: 8 dim: 8") INPUT("label", "dim: 6")
        "layer { name: \"conv_a\" type: \"Convolution\" bottom: \"data\" top: \"conv_a\" "
        "  convolution_param { num_output: 4 kernel_size: 3 " FILL_G FILL_B "} }\n"
        "layer { name: \"conv_b\" type: \"Convolution\" bottom: \"data\" top: \"conv_b\" "
        "  device: 1 convolution_param { num_output: 4 kernel_size: 3 " FILL_G FILL_B "} }\n"
        "layer { name: \"drop_a\" type: \"Dropout\" bottom: \"conv_a\" top: \"conv_a\" }\n"
        "layer { name: \"drop_b\" type: \"Dropout\" bottom: \"conv_b\" top: \"conv_b\" }\n"
        "layer { name: \"ip_a\" type: \"InnerProduct\" bottom: \"conv_a\" top: \"ip_a\" "
        "  inner_product_param { num_output: 10 " FILL_G FILL_B "} }\n"
        "layer { name: \"ip_b\" type: \"InnerProduct\" bottom: \"conv_b\" top: \"ip_b\" "
        "  inner_product_param { num_output: 10 " FILL_G FILL_B "} }\n"
        "layer { name: \"sum\" type: \"Eltwise\" bottom: \"ip_a\" bottom: \"ip_b\" "
        "  top: \"sum\" }\n"
        "layer { name: \"loss\" type: \"SoftmaxWithLoss\" bottom: \"sum\" bottom: \"label\" "
        "  top: \"loss\" }\n"
        "solver { type: \"SGD\" base_lr: 0.05 momentum: 0.9 weight_decay: 0.001 "
        "  max_iter: 10 random_seed: 7 }\n",
        2, 5);
}
END_TEST

START_TEST(test_two_logical_devices_one_gpu)
{
    two_devices_vs_one(1, GPU0);
}
END_TEST

START_TEST(test_two_logical_devices_two_gpus)
{
    if (cnn_cuda_device_count() < 2) {
        printf("  SKIP: one CUDA device\n");
        return;
    }
    static const int ids[2] = {0, 1};
    two_devices_vs_one(2, ids);
}
END_TEST

/* ---- (f) the CPU fallback --------------------------------------------------------------------- */

/* Eltwise with more than CNN_CUDA_ELT_MAX_BOTTOMS (16) bottoms has no GPU
 * path: it runs on the host in the middle of a GPU net, between device
 * layers, and its 17 gradients join conv1's split on the way back. */
#define C1 "bottom: \"conv1\" "
static const char *const FALLBACK_NET =
    "force_backward: true\n" INPUT("data", "dim: 4 dim: 3 dim: 6 dim: 6") INPUT("label", "dim: 4")
    "layer { name: \"conv1\" type: \"Convolution\" bottom: \"data\" top: \"conv1\" "
    "  convolution_param { num_output: 5 kernel_size: 3 " FILL_G FILL_B "} }\n"
    "layer { name: \"sum17\" type: \"Eltwise\" " C1 C1 C1 C1 C1 C1 C1 C1 C1 C1 C1 C1 C1 C1 C1
    C1 C1 "top: \"sum17\" eltwise_param { operation: SUM coeff: 0.1 coeff: -0.2 coeff: 0.3 "
    "  coeff: 0.4 coeff: -0.5 coeff: 0.6 coeff: 0.7 coeff: 0.8 coeff: -0.9 coeff: 1.0 "
    "  coeff: 1.1 coeff: -1.2 coeff: 1.3 coeff: 1.4 coeff: 0.15 coeff: -0.16 coeff: 0.17 } }\n"
    "layer { name: \"relu\" type: \"ReLU\" bottom: \"sum17\" top: \"sum17\" }\n"
    "layer { name: \"ip\" type: \"InnerProduct\" bottom: \"sum17\" top: \"ip\" "
    "  inner_product_param { num_output: 10 " FILL_G FILL_B "} }\n"
    "layer { name: \"ip_skip\" type: \"InnerProduct\" bottom: \"conv1\" top: \"ip_skip\" "
    "  inner_product_param { num_output: 10 " FILL_G FILL_B "} }\n"
    "layer { name: \"both\" type: \"Eltwise\" bottom: \"ip\" bottom: \"ip_skip\" "
    "  top: \"both\" }\n"
    "layer { name: \"loss\" type: \"SoftmaxWithLoss\" bottom: \"both\" bottom: \"label\" "
    "  top: \"loss\" }\n";

START_TEST(test_cpu_fallback_in_gpu_net)
{
    cnn_net *cpu = build(FALLBACK_NET, 0, NULL, 0, 9), *gpu = build(FALLBACK_NET, 1, GPU0, 0, 9);
    for (int pass = 0; pass < 2; pass++) {
        fill_inputs(cpu, (uint64_t)pass, 10);
        fill_inputs(gpu, (uint64_t)pass, 10);
        float lc, lg;
        step_pass(cpu, &lc);
        step_pass(gpu, &lg);
        printf("  pass %d: loss CPU %.7f GPU %.7f\n", pass, lc, lg);
        ck_assert(fabs((double)lc - lg) <= tol_pass() * fmax(1, fabs((double)lc)));
        compare_blobs(cpu, gpu, tol_pass());
        compare_params(cpu, gpu, true, tol_pass());
    }
    cnn_net_free(cpu);
    cnn_net_free(gpu);
    /* A host layer on a GPU layer's output: no CUDA graph, and why. */
    cnn_net_opts o = opts_for(1, GPU0, 0, 9);
    o.cuda_graph = true;
    ck_assert_msg(cnn_net_from_string(FALLBACK_NET, &o, &gpu) == CNN_OK, "%s",
                  cnn_error_message());
    const char *note = cnn_net_graph_note(gpu);
    printf("  CUDA graph: %s\n", note);
    ck_assert_msg(strstr(note, "'sum17'") && strstr(note, "on the output of GPU layers"),
                  "graph note '%s'", note);
    cnn_net_free(gpu);
}
END_TEST

/* ---- (g) snapshots and cnn_net_sync_host ---------------------------------------------------------- */

static char tmpdir[64];

static void rm_tmpdir(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    ck_assert_int_eq(system(cmd), 0);
}

START_TEST(test_snapshot_after_gpu_steps)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/cnn_gpu_net_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
    char text[8192], prefix[128], state[512];
    snprintf(prefix, sizeof prefix, "%s/snap", tmpdir);
    snprintf(text, sizeof text,
             "%ssolver { type: \"Adam\" base_lr: 0.01 momentum: 0.9 weight_decay: 0.001 "
             "max_iter: 6 random_seed: 4 snapshot_prefix: \"%s\" }\n",
             ONE_DEVICE, prefix);
    cnn_solver *cpu = make_solver(text, 0, NULL, 0), *gpu = make_solver(text, 1, GPU0, 0);
    cnn_net *ng = cnn_solver_net(gpu);
    /* The initial weights, to see that the host copies did change. */
    int np = cnn_net_num_params(ng);
    float *init[16];
    ck_assert(np <= 16);
    for (int i = 0; i < np; i++) {
        cnn_tensor *t = cnn_net_param_info(ng, i)->tensor;
        init[i] = malloc(t->count * sizeof(float));
        memcpy(init[i], t->data, t->count * sizeof(float));
    }
    for (int i = 0; i < 3; i++) {
        ck_assert_msg(cnn_solver_step(cpu, NULL) == CNN_OK, "%s", cnn_error_message());
        ck_assert_msg(cnn_solver_step(gpu, NULL) == CNN_OK, "%s", cnn_error_message());
    }
    ck_assert_msg(cnn_solver_snapshot(gpu, state, sizeof state) == CNN_OK, "%s",
                  cnn_error_message());
    /* The host copies after a sync are the trained weights (equal to the
     * CPU's), not the initial ones. */
    compare_params(cnn_solver_net(cpu), ng, false, tol_pass());
    for (int i = 0; i < np; i++) {
        cnn_tensor *t = cnn_net_param_info(ng, i)->tensor;
        if (!strcmp(cnn_net_param_info(ng, i)->layer, "conv1") ||
            !strcmp(cnn_net_param_info(ng, i)->layer, "ip2"))
            ck_assert_msg(rel_err(init[i], t->data, t->count) > 1e-4, "%s.%d did not change",
                          cnn_net_param_info(ng, i)->layer, cnn_net_param_info(ng, i)->index);
        free(init[i]);
    }
    /* The snapshot's weights file holds the same values. */
    char weights[600];
    snprintf(weights, sizeof weights, "%s_iter_3.safetensors", prefix);
    cnn_net *loaded = build(ONE_DEVICE, 0, NULL, 0, 99);
    ck_assert_msg(cnn_weights_load(loaded, weights, false) == CNN_OK, "%s", cnn_error_message());
    compare_params(ng, loaded, false, 0);
    /* Loaded into a GPU net, the same weights reach the device. */
    cnn_net *loaded_gpu = build(ONE_DEVICE, 1, GPU0, 0, 98);
    ck_assert_msg(cnn_weights_load(loaded_gpu, weights, false) == CNN_OK, "%s",
                  cnn_error_message());
    fill_inputs(loaded, 7, 10);
    fill_inputs(loaded_gpu, 7, 10);
    float l_cpu, l_gpu;
    step_pass(loaded, &l_cpu);
    step_pass(loaded_gpu, &l_gpu);
    printf("  loaded weights: loss CPU %.7f GPU %.7f\n", l_cpu, l_gpu);
    ck_assert(fabs((double)l_cpu - l_gpu) <= tol_pass() * fmax(1, fabs((double)l_cpu)));
    compare_params(loaded, loaded_gpu, true, tol_pass());
    cnn_net_free(loaded);
    cnn_net_free(loaded_gpu);
    /* Initial weights for new solvers (cnn_solver_load_weights, as
     * cnntrain --weights does): training on from them agrees. */
    cnn_solver *fc = make_solver(text, 0, NULL, 0), *fg = make_solver(text, 1, GPU0, 0);
    ck_assert_msg(cnn_solver_load_weights(fc, weights) == CNN_OK, "%s", cnn_error_message());
    ck_assert_msg(cnn_solver_load_weights(fg, weights) == CNN_OK, "%s", cnn_error_message());
    for (int i = 0; i < 2; i++) {
        float la, lb;
        ck_assert_msg(cnn_solver_step(fc, &la) == CNN_OK, "%s", cnn_error_message());
        ck_assert_msg(cnn_solver_step(fg, &lb) == CNN_OK, "%s", cnn_error_message());
        printf("  from loaded weights, step %d: loss CPU %.7f GPU %.7f\n", i, la, lb);
        ck_assert(fabs((double)la - lb) <= tol_pass() * fmax(1, fabs((double)la)));
    }
    compare_params(cnn_solver_net(fc), cnn_solver_net(fg), false, tol_pass());
    cnn_solver_free(fc);
    cnn_solver_free(fg);
    /* Resuming on the GPU continues exactly where the GPU run is. */
    cnn_solver *resumed = make_solver(text, 1, GPU0, 0);
    ck_assert_msg(cnn_solver_restore(resumed, state) == CNN_OK, "%s", cnn_error_message());
    for (int i = 3; i < 6; i++) {
        float la, lb;
        ck_assert_msg(cnn_solver_step(gpu, &la) == CNN_OK, "%s", cnn_error_message());
        ck_assert_msg(cnn_solver_step(resumed, &lb) == CNN_OK, "%s", cnn_error_message());
        printf("  step %d: loss continued %.7f, resumed %.7f\n", i, la, lb);
        ck_assert(fabs((double)la - lb) <= tol_pass() * fmax(1, fabs((double)la)));
    }
    compare_params(ng, cnn_solver_net(resumed), false, tol_pass());
    cnn_solver_free(resumed);
    cnn_solver_free(cpu);
    cnn_solver_free(gpu);
    rm_tmpdir();
}
END_TEST

/* The TEST net gets the trained weights from the device (cnn_net_copy_params
 * GPU to GPU) and tests on the GPU: the same results as on the CPU. */
START_TEST(test_solver_test_net)
{
    char text[8192];
    snprintf(text, sizeof text,
             "%slayer { name: \"acc\" type: \"Accuracy\" bottom: \"sum\" bottom: \"label\" "
             "top: \"accuracy\" include { phase: TEST } }\n"
             "solver { type: \"Nesterov\" base_lr: 0.05 momentum: 0.9 max_iter: 3 "
             "test_iter: 2 test_interval: 100 test_initialization: false random_seed: 6 }\n",
             ONE_DEVICE);
    cnn_solver *cpu = make_solver(text, 0, NULL, 0), *gpu = make_solver(text, 1, GPU0, 0);
    for (int i = 0; i < 3; i++) {
        ck_assert_msg(cnn_solver_step(cpu, NULL) == CNN_OK, "%s", cnn_error_message());
        ck_assert_msg(cnn_solver_step(gpu, NULL) == CNN_OK, "%s", cnn_error_message());
    }
    ck_assert_ptr_nonnull(cnn_solver_test_net(gpu));
    ck_assert(cnn_net_on_gpu(cnn_solver_test_net(gpu)));
    fill_inputs(cnn_solver_test_net(cpu), 20, 10);
    fill_inputs(cnn_solver_test_net(gpu), 20, 10);
    cnn_test_result rc, rg;
    bool stopped = false;
    ck_assert_msg(cnn_solver_test(cpu, NULL, &stopped, &rc) == CNN_OK, "%s", cnn_error_message());
    ck_assert_msg(cnn_solver_test(gpu, NULL, &stopped, &rg) == CNN_OK, "%s", cnn_error_message());
    printf("  test pass: loss CPU %.7f GPU %.7f, accuracy CPU %.4f GPU %.4f\n", rc.loss, rg.loss,
           rc.accuracy, rg.accuracy);
    ck_assert_int_eq(rc.n, rg.n);
    for (int i = 0; i < rc.n; i++) {
        ck_assert_str_eq(rc.name[i], rg.name[i]);
        ck_assert_msg(fabs(rc.value[i] - rg.value[i]) <= tol_pass() * fmax(1, fabs(rc.value[i])),
                      "%s: CPU %.8g GPU %.8g", rc.name[i], rc.value[i], rg.value[i]);
    }
    cnn_solver_free(cpu);
    cnn_solver_free(gpu);
}
END_TEST

/* The CPU stand-ins for CUDA (the emulator, tests/emu/, and hostcuda,
 * tests/hostcuda/) count live device memory and the host's waits; the real
 * library has no such counts, and these checks are skipped there. */
size_t cnn_stub_live_device_bytes(void) __attribute__((weak));
void cnn_stub_get_counts(cnn_stub_counts *out) __attribute__((weak));

/* Trains `text` for 3 warm-up steps, then counts what 5 more cost the host. */
static void count_steps(const char *text, int gpus, cnn_stub_counts *used)
{
    cnn_solver_opts o = {0};
    o.gpus = gpus; /* all on GPU 0 */
    cnn_solver *s = NULL;
    ck_assert_msg(cnn_solver_from_string(text, "steps", &o, &s) == CNN_OK, "%s",
                  cnn_error_message());
    ck_assert_int_eq(cnn_net_num_devices(cnn_solver_net(s)), gpus);
    for (int i = 0; i < 3; i++) /* warm-up: first uploads of parameters */
        ck_assert_msg(cnn_solver_step(s, NULL) == CNN_OK, "%s", cnn_error_message());
    cnn_stub_counts a, b;
    cnn_stub_get_counts(&a);
    for (int i = 0; i < 5; i++)
        ck_assert_msg(cnn_solver_step(s, NULL) == CNN_OK, "%s", cnn_error_message());
    cnn_stub_get_counts(&b);
    *used = (cnn_stub_counts){b.allocs - a.allocs, b.frees - a.frees,
                             b.stream_syncs - a.stream_syncs, b.downloads - a.downloads,
                             b.pageable_uploads - a.pageable_uploads,
                             b.event_syncs - a.event_syncs};
    printf("  5 steps on %d logical device%s: %lu allocations, %lu frees, %lu stream syncs, "
           "%lu downloads, %lu pageable uploads, %lu event waits\n",
           gpus, gpus > 1 ? "s" : "", used->allocs, used->frees, used->stream_syncs,
           used->downloads, used->pageable_uploads, used->event_syncs);
    /* Reading the loss back is where the host waits. */
    float loss = NAN;
    ck_assert(cnn_solver_step(s, &loss) == CNN_OK && isfinite(loss));
    cnn_stub_get_counts(&a);
    ck_assert_uint_gt(a.downloads, b.downloads);
    cnn_solver_free(s);
}

#define STEP_INPUTS                                                                     \
    "layer { name: \"data\" type: \"Input\" top: \"data\" "                             \
    "  input_param { shape { dim: 16 dim: 3 dim: 40 dim: 40 } } }\n"                     \
    "layer { name: \"label\" type: \"Input\" top: \"label\" "                           \
    "  input_param { shape { dim: 16 } } }\n"
#define STEP_SOLVER                                                                     \
    "solver { base_lr: 0.01 momentum: 0.9 weight_decay: 0.0005 max_iter: 100 "         \
    "  random_seed: 1 }\n"
#define STEP_CONV(name, bottom, extra)                                                  \
    "layer { name: \"" name "\" type: \"Convolution\" bottom: \"" bottom "\" "           \
    "  top: \"" name "\" " extra " convolution_param { num_output: 4 kernel_size: 5 "    \
    "  stride: 3 weight_filler { type: \"xavier\" } } }\n"
#define STEP_IP(name, bottom, extra)                                                    \
    "layer { name: \"" name "\" type: \"InnerProduct\" bottom: \"" bottom "\" "          \
    "  top: \"" name "\" " extra " inner_product_param { num_output: 10 "                \
    "  weight_filler { type: \"xavier\" } } }\n"

/* Issue 4's rule for a training step on the GPU, counted: between two
 * loss read-backs a step allocates nothing, frees nothing, waits for no
 * stream, downloads nothing and uploads nothing from pageable memory; its
 * only host waits are the feeds' staging events (one per input upload,
 * and one for Dropout's seed, each for the upload of two steps before).
 * One net has both feed paths (a
 * 307 KB batch through the copy stream, labels straight), BatchNorm,
 * dropout and a momentum solver with weight decay; the other two towers on
 * two logical devices (--gpus 0,0), whose exchanges are event-ordered. */
START_TEST(test_training_step_never_syncs)
{
    if (!cnn_stub_get_counts) {
        printf("  SKIP: no host-wait count on a real GPU\n");
        return;
    }
    static const char *one =
        STEP_INPUTS STEP_CONV("conv", "data", "")
        BN_RELU_POOL
        "layer { name: \"drop\" type: \"Dropout\" bottom: \"pool\" top: \"pool\" }\n"
        STEP_IP("ip", "pool", "")
        "layer { name: \"loss\" type: \"SoftmaxWithLoss\" bottom: \"ip\" "
        "  bottom: \"label\" top: \"loss\" }\n" STEP_SOLVER;
    static const char *two =
        STEP_INPUTS STEP_CONV("conv_a", "data", "") STEP_CONV("conv_b", "data", "device: 1")
        STEP_IP("ip_a", "conv_a", "") STEP_IP("ip_b", "conv_b", "device: 1")
        "layer { name: \"sum\" type: \"Eltwise\" bottom: \"ip_a\" bottom: \"ip_b\" "
        "  top: \"sum\" }\n"
        "layer { name: \"loss\" type: \"SoftmaxWithLoss\" bottom: \"sum\" "
        "  bottom: \"label\" top: \"loss\" }\n" STEP_SOLVER;
    for (int k = 0; k < 2; k++) {
        cnn_stub_counts u;
        count_steps(k ? two : one, k + 1, &u);
        ck_assert_uint_eq(u.allocs, 0);
        ck_assert_uint_eq(u.frees, 0);
        ck_assert_uint_eq(u.stream_syncs, 0);
        ck_assert_uint_eq(u.downloads, 0);
        ck_assert_uint_eq(u.pageable_uploads, 0);
        ck_assert_uint_le(u.event_syncs, (k ? 2 : 3) * 5); /* data, label (, seed) */
    }
}
END_TEST

/* Runs last: every net and solver above was freed, so no device memory may
 * remain (a layer whose destroy misses a device buffer leaks it). Tests
 * that failed may have left theirs. */
START_TEST(test_no_device_memory_left)
{
    if (!cnn_stub_live_device_bytes) {
        printf("  SKIP: no allocation count on a real GPU\n");
        return;
    }
    size_t live = cnn_stub_live_device_bytes();
    printf("  %zu bytes of device memory live after every net was freed\n", live);
    ck_assert_msg(live == 0, "%zu bytes of device memory leaked (run with CNN_EMU_TRACE=1 to "
                  "see allocations)", live);
}
END_TEST

/* The training loop on the GPU: displayed losses (read back from the device
 * only there), test passes and snapshots, as on the CPU. */
typedef struct {
    int n_display, n_test, n_snapshot;
    double display[16], test[16];
} solve_log;

static void log_event(const cnn_solver_event *e, void *user)
{
    solve_log *g = user;
    if (e->kind == CNN_EV_DISPLAY && g->n_display < 16) g->display[g->n_display++] = e->loss;
    if (e->kind == CNN_EV_TEST && g->n_test < 16) g->test[g->n_test++] = e->test->loss;
    if (e->kind == CNN_EV_SNAPSHOT) g->n_snapshot++;
}

START_TEST(test_solve_loop)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/cnn_gpu_net_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
    char text[8192];
    snprintf(text, sizeof text,
             "%slayer { name: \"acc\" type: \"Accuracy\" bottom: \"sum\" bottom: \"label\" "
             "top: \"accuracy\" include { phase: TEST } }\n"
             "solver { type: \"SGD\" base_lr: 0.05 momentum: 0.9 max_iter: 6 display: 2 "
             "average_loss: 2 test_iter: 2 test_interval: 3 snapshot: 3 random_seed: 8 "
             "snapshot_prefix: \"%s/solve\" }\n",
             ONE_DEVICE, tmpdir);
    solve_log g[2] = {{0}};
    for (int k = 0; k < 2; k++) {
        cnn_solver *s = make_solver(text, k, GPU0, 0);
        fill_inputs(cnn_solver_test_net(s), 30, 10);
        ck_assert_msg(cnn_solver_solve(s, NULL, log_event, &g[k]) == CNN_OK, "%s solve: %s",
                      k ? "GPU" : "CPU", cnn_error_message());
        cnn_solver_free(s);
    }
    ck_assert_int_eq(g[0].n_display, 3);
    ck_assert_int_eq(g[1].n_display, g[0].n_display);
    ck_assert_int_eq(g[1].n_test, g[0].n_test);
    ck_assert_int_eq(g[1].n_snapshot, g[0].n_snapshot);
    for (int i = 0; i < g[0].n_display; i++) {
        printf("  display %d: loss CPU %.7f GPU %.7f\n", i, g[0].display[i], g[1].display[i]);
        ck_assert(fabs(g[0].display[i] - g[1].display[i]) <= tol_pass() * fabs(g[0].display[i]));
    }
    for (int i = 0; i < g[0].n_test; i++) {
        printf("  test %d: loss CPU %.7f GPU %.7f\n", i, g[0].test[i], g[1].test[i]);
        ck_assert(fabs(g[0].test[i] - g[1].test[i]) <= tol_pass() * fabs(g[0].test[i]));
    }
    rm_tmpdir();
}
END_TEST

/* Steps that never read the loss back queue work without host waits: each
 * batch goes up through pinned staging, the data (320 KB) through the copy
 * stream and a landing buffer, the target (48 bytes) straight on the
 * compute stream (core/gpu.c); the emulator aborts if a pinned buffer is
 * refilled before its previous upload finished, or if the copy and compute
 * streams touch the landing buffer unordered. The weights still match the
 * CPU's. */
START_TEST(test_steps_without_readback)
{
    const char *text =
        INPUT("data", "dim: 4 dim: 20000") INPUT("target", "dim: 4 dim: 3")
        "layer { name: \"fc\" type: \"InnerProduct\" bottom: \"data\" top: \"y\" "
        "  inner_product_param { num_output: 3 " FILL_G FILL_B "} }\n"
        "layer { name: \"loss\" type: \"EuclideanLoss\" bottom: \"y\" bottom: \"target\" "
        "  top: \"loss\" }\n"
        "solver { type: \"SGD\" base_lr: 0.0005 momentum: 0.9 max_iter: 8 random_seed: 8 }\n";
    cnn_solver *cpu = make_solver(text, 0, NULL, 0), *gpu = make_solver(text, 1, GPU0, 0);
    for (int i = 0; i < 8; i++) {
        ck_assert_msg(cnn_solver_step(cpu, NULL) == CNN_OK, "%s", cnn_error_message());
        ck_assert_msg(cnn_solver_step(gpu, NULL) == CNN_OK, "%s", cnn_error_message());
    }
    double w = compare_params(cnn_solver_net(cpu), cnn_solver_net(gpu), false, tol_weights());
    printf("  8 steps without readback: largest relative weight difference %.3g\n", w);
    cnn_solver_free(cpu);
    cnn_solver_free(gpu);
}
END_TEST

/* The solver block's workspace_mb and deterministic reach every context;
 * the command line's budget (cnn_solver_opts) wins over the file's. */
START_TEST(test_solver_block_device_settings)
{
    const char *head =
        INPUT("data", "dim: 4 dim: 6") INPUT("target", "dim: 4 dim: 3")
        "layer { name: \"fc\" type: \"InnerProduct\" bottom: \"data\" top: \"y\" "
        "  inner_product_param { num_output: 3 " FILL_G FILL_B "} }\n"
        "layer { name: \"loss\" type: \"EuclideanLoss\" bottom: \"y\" bottom: \"target\" "
        "  top: \"loss\" }\n";
    char text[4096];
    snprintf(text, sizeof text,
             "%ssolver { base_lr: 0.1 max_iter: 1 workspace_mb: 64 deterministic: true }\n",
             head);
    for (int flag = 0; flag < 2; flag++) {
        cnn_solver_opts o = {0};
        o.gpus = 1;
        o.workspace_bytes = flag ? (size_t)8 << 20 : 0;
        cnn_solver *s = NULL;
        ck_assert_msg(cnn_solver_from_string(text, "settings", &o, &s) == CNN_OK, "%s",
                      cnn_error_message());
        cnn_cuda_ctx *c = cnn_net_cuda(cnn_solver_net(s), 0);
        ck_assert_uint_eq(cnn_cuda_ctx_workspace_limit(c), flag ? (size_t)8 << 20 : 64u << 20);
        ck_assert(cnn_cuda_ctx_deterministic(c));
        cnn_solver_free(s);
    }
    snprintf(text, sizeof text, "%ssolver { base_lr: 0.1 max_iter: 1 workspace_mb: -4 }\n", head);
    cnn_solver_opts o = {0};
    o.gpus = 1;
    cnn_solver *s = NULL;
    ck_assert(cnn_solver_from_string(text, "settings", &o, &s) != CNN_OK);
    printf("  workspace_mb: -4: '%s'\n", cnn_error_message());
    ck_assert(strstr(cnn_error_message(), "workspace_mb"));
}
END_TEST

/* Labels in [0, 10) except batch 1's third, which is 10. */
static cnn_status feed_bad_label(cnn_net *n, uint64_t batch, void *user)
{
    fill_inputs(n, batch, 10);
    if (batch == 1) {
        cnn_tensor *t = cnn_net_blob(n, "label");
        t->data[2] = 10;
        cnn_host_wrote_data(t);
    }
    return CNN_OK;
}

/* A label out of range stops training with an error naming the loss layer,
 * on the GPU too, though there it surfaces only when the loss is read back
 * (here two steps later): the device latches it until then. */
START_TEST(test_bad_label)
{
    const char *text =
        INPUT("data", "dim: 4 dim: 6") INPUT("label", "dim: 4")
        "layer { name: \"fc\" type: \"InnerProduct\" bottom: \"data\" top: \"y\" "
        "  inner_product_param { num_output: 10 " FILL_G FILL_B "} }\n"
        "layer { name: \"loss\" type: \"SoftmaxWithLoss\" bottom: \"y\" bottom: \"label\" "
        "  top: \"loss\" }\n"
        "solver { type: \"SGD\" base_lr: 0.05 max_iter: 6 display: 3 random_seed: 8 }\n";
    for (int k = 0; k < 2; k++) {
        cnn_solver *s = make_solver(text, k, GPU0, 0);
        cnn_solver_set_feed(s, feed_bad_label, NULL);
        cnn_status st = cnn_solver_solve(s, NULL, NULL, NULL);
        printf("  %s: bad label: status %d (%s)\n", k ? "GPU" : "CPU", st, cnn_error_message());
        ck_assert_int_eq(st, CNN_ERR_ARG);
        ck_assert_msg(strstr(cnn_error_message(), "loss") &&
                          strstr(cnn_error_message(), "outside [0, 10)"),
                      "message '%s'", cnn_error_message());
        ck_assert_int_eq(cnn_solver_iter(s), k ? 3 : 1); /* GPU: found at display */
        cnn_solver_free(s);
    }
    /* Good labels after a report: the latch was reset. */
    cnn_solver *s = make_solver(text, 1, GPU0, 0);
    cnn_solver_set_feed(s, feed_bad_label, NULL);
    float loss;
    ck_assert(cnn_solver_step(s, &loss) == CNN_OK);
    ck_assert(cnn_solver_step(s, &loss) == CNN_ERR_ARG);
    ck_assert_msg(cnn_solver_step(s, &loss) == CNN_OK, "%s", cnn_error_message());
    cnn_solver_free(s);
}
END_TEST

/* Inputs with a NaN from batch *user on. */
static cnn_status feed_nan(cnn_net *n, uint64_t batch, void *user)
{
    fill_inputs(n, batch, 10);
    if (batch >= *(const uint64_t *)user) {
        cnn_tensor *d = cnn_net_blob(n, "data");
        d->data[3] = NAN;
        cnn_host_wrote_data(d);
    }
    return CNN_OK;
}

/* A NaN loss is CNN_ERR_NUMERIC and leaves the weights alone, on the GPU
 * as on the CPU; the training loop reports it too. (A regression: softmax
 * losses clamp a NaN probability to FLT_MIN, Caffe's way.) */
START_TEST(test_nan_loss)
{
    const char *text =
        INPUT("data", "dim: 4 dim: 6") INPUT("target", "dim: 4 dim: 3")
        "layer { name: \"conv1\" type: \"InnerProduct\" bottom: \"data\" top: \"y\" "
        "  inner_product_param { num_output: 3 " FILL_G FILL_B "} }\n"
        "layer { name: \"loss\" type: \"EuclideanLoss\" bottom: \"y\" bottom: \"target\" "
        "  top: \"loss\" }\n"
        "solver { type: \"SGD\" base_lr: 0.05 momentum: 0.9 max_iter: 4 display: 2 "
        "random_seed: 8 }\n";
    static const uint64_t from = 2;
    for (int k = 0; k < 2; k++) {
        cnn_solver *s = make_solver(text, k, GPU0, 0);
        cnn_solver_set_feed(s, feed_nan, (void *)&from);
        float loss;
        for (int i = 0; i < 2; i++)
            ck_assert_msg(cnn_solver_step(s, &loss) == CNN_OK, "%s", cnn_error_message());
        cnn_net *n = cnn_solver_net(s);
        sync_host(n);
        cnn_tensor *w = cnn_net_param(n, "conv1", 0);
        float *before = malloc(w->count * sizeof(float));
        memcpy(before, w->data, w->count * sizeof(float));
        cnn_status st = cnn_solver_step(s, &loss);
        printf("  %s: step with a NaN input: status %d (%s)\n", k ? "GPU" : "CPU", st,
               cnn_error_message());
        ck_assert_int_eq(st, CNN_ERR_NUMERIC);
        ck_assert_msg(strstr(cnn_error_message(), "iteration 2"), "wrong iteration named");
        sync_host(n);
        ck_assert_msg(rel_err(before, w->data, w->count) == 0, "weights changed");
        free(before);
        cnn_solver_free(s);
        /* The loop, which reads GPU losses back only at display iterations. */
        s = make_solver(text, k, GPU0, 0);
        cnn_solver_set_feed(s, feed_nan, (void *)&from);
        st = cnn_solver_solve(s, NULL, NULL, NULL);
        printf("  %s: solve: status %d (%s)\n", k ? "GPU" : "CPU", st, cnn_error_message());
        ck_assert_int_eq(st, CNN_ERR_NUMERIC);
        /* GPU losses are read back at display and at the end; the ring holds
         * average_loss (1) of them, so the GPU names the newest unread step
         * and says that an earlier one may have failed first. */
        ck_assert_msg(strstr(cnn_error_message(), k ? "iteration 3 or earlier" : "iteration 2"),
                      "wrong iteration named");
        cnn_solver_free(s);
    }
}
END_TEST

/* ---- (h) bad input ------------------------------------------------------------------------------ */

START_TEST(test_missing_gpu_is_an_error)
{
    int count = cnn_cuda_device_count();
    int bad[2] = {count, -1};
    for (int i = 0; i < 2; i++) {
        cnn_net_opts o = opts_for(1, &bad[i], 0, 1);
        cnn_net *n = NULL;
        cnn_status st = cnn_net_from_string(ONE_DEVICE, &o, &n);
        printf("  gpu %d of %d: status %d, '%s'\n", bad[i], count, st, cnn_error_message());
        ck_assert_msg(st != CNN_OK, "gpu %d accepted with %d devices", bad[i], count);
        ck_assert_ptr_null(n);
        char num[16];
        snprintf(num, sizeof num, "%d", bad[i]);
        ck_assert_msg(strstr(cnn_error_message(), num), "message '%s' does not name GPU %d",
                      cnn_error_message(), bad[i]);
    }
    /* A second logical device beyond the list is also refused cleanly. */
    cnn_solver_opts so = {0};
    so.gpus = 1;
    so.gpu[0] = count;
    cnn_solver *s = NULL;
    char text[8192];
    snprintf(text, sizeof text, "%ssolver { base_lr: 0.1 max_iter: 1 }\n", ONE_DEVICE);
    cnn_status st = cnn_solver_from_string(text, "bad_gpu", &so, &s);
    ck_assert_msg(st != CNN_OK, "solver accepted GPU %d", count);
    ck_assert_ptr_null(s);
}
END_TEST

int main(void)
{
    if (cnn_cuda_device_count() == 0) {
        printf("check_gpu_net: SKIP (no CUDA device)\n");
        return 0;
    }
    char desc[256] = "";
    if (cnn_cuda_describe(0, desc, sizeof desc) == CNN_OK) printf("check_gpu_net on %s\n", desc);
    emulated = strstr(desc, "emulated") != NULL;
    setvbuf(stdout, NULL, _IOLBF, 0);
    /* Cases by subject (CK_RUN_CASE=solvers runs one); the memory check last. */
    Suite *s = suite_create("gpu_net");
    const struct {
        const char *tcase;
        const TTest *test;
    } tests[] = {
        {"errors", test_missing_gpu_is_an_error},
        {"layers", test_dropout_same_mask},
        {"layers", test_every_gpu_layer_forward_backward},
        {"layers", test_every_gpu_layer_test_phase},
        {"layers", test_cpu_fallback_in_gpu_net},
        {"devices", test_two_logical_devices_one_gpu},
        {"devices", test_cuda_graph_two_devices},
        {"devices", test_cuda_graph_towers_with_dropout},
        {"devices", test_two_logical_devices_two_gpus},
        {"solvers", test_solver_types},
        {"solvers", test_lazy_zero_grads},
        {"solvers", test_cuda_graph_matches_eager},
        {"solvers", test_snapshot_after_gpu_steps},
        {"solvers", test_solver_test_net},
        {"solvers", test_solve_loop},
        {"solvers", test_nan_loss},
        {"solvers", test_bad_label},
        {"solvers", test_steps_without_readback},
        {"solvers", test_training_step_never_syncs},
        {"solvers", test_solver_block_device_settings},
        {"nets", test_lenet_20_iterations},
        {"nets", test_cifar10_quick_20_iterations},
        {"memory", test_no_device_memory_left},
    };
    TCase *tc = NULL;
    const char *cur = "";
    for (size_t i = 0; i < sizeof tests / sizeof *tests; i++) {
        if (strcmp(cur, tests[i].tcase)) {
            cur = tests[i].tcase;
            tc = tcase_create(tests[i].tcase);
            tcase_set_timeout(tc, 600);
            suite_add_tcase(s, tc);
        }
        tcase_add_test(tc, tests[i].test);
    }
    return cnn_test_run(s) != 0;
}
