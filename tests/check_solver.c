/* check_solver.c — the solver: learning-rate policies against Caffe's
 * formulas, every update rule against an independent double-precision
 * reference and hand-computed steps, weight decay, per-parameter lr/decay
 * multipliers, gradient clipping, iter_size equivalence, configuration
 * errors, solver files, test passes, the training loop's events and stop
 * flag, snapshot atomicity, and bit-identical resume. */
#include <sys/stat.h>
#include <unistd.h>

#include "core/config.h"
#include "solvers/solver.h"
#include "testutil.h"

/* ---- fixtures -------------------------------------------------------------- */

static char tmpdir[64];

static void setup_tmp(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/cnn_solver_XXXXXX");
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

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    ck_assert_int_eq(fclose(f), 0);
}

static unsigned char *read_bytes(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(*n + 1);
    ck_assert_uint_eq(fread(b, 1, *n, f), *n);
    fclose(f);
    return b;
}

/* A tiny regression: y = s * x + b per channel (Scale), Euclidean loss
 * against t. `extra` goes after the loss layer (a solver block, ...). */
#define TINY_NET(N, SCALE_EXTRA, MID)                                                      \
    "name: \"tiny\"\n"                                                                     \
    "layer { name: \"x\" type: \"Input\" top: \"x\" input_param { shape { dim: " #N      \
    " dim: 3 } } }\n"                                                                      \
    "layer { name: \"t\" type: \"Input\" top: \"t\" input_param { shape { dim: " #N      \
    " dim: 3 } } }\n"                                                                      \
    "layer { name: \"sc\" type: \"Scale\" bottom: \"x\" top: \"y\" " SCALE_EXTRA          \
    " scale_param { axis: 1 bias_term: true filler { value: 0.5 } "                        \
    "bias_filler { value: 0.25 } } }\n" MID                                                \
    "layer { name: \"loss\" type: \"EuclideanLoss\" bottom: \"y\" bottom: \"t\" "          \
    "top: \"loss\" }\n"

static cnn_solver *make_solver_opts(const char *text, const cnn_solver_opts *o)
{
    cnn_solver *s = NULL;
    cnn_status st = cnn_solver_from_string(text, tmp_path("m.cfg"), o, &s);
    ck_assert_msg(st == CNN_OK, "solver build failed: %s", cnn_error_message());
    return s;
}

static cnn_solver *make_solver(const char *text) { return make_solver_opts(text, NULL); }

static void expect_solver_error(const char *text, cnn_status want, const char *needle)
{
    cnn_solver *s = NULL;
    cnn_status st = cnn_solver_from_string(text, "m.cfg", NULL, &s);
    ck_assert_msg(st == want, "expected status %d, got %d (%s)", want, st,
                  cnn_error_message());
    ck_assert_msg(strstr(cnn_error_message(), needle), "message '%s' lacks '%s'",
                  cnn_error_message(), needle);
    ck_assert_ptr_null(s);
}

/* Deterministic sample values: sample i, channel c. */
static float sample_x(uint64_t i, int c) { return (float)sin(0.37 * (double)i + 1.3 * c); }
static float sample_t(uint64_t i, int c) { return 2.f * sample_x(i, c) - 0.5f + 0.1f * c; }

/* Fills x and t with the samples of batch `batch`. */
static cnn_status feed_samples(cnn_net *n, uint64_t batch, void *user)
{
    (void)user;
    cnn_tensor *x = cnn_net_blob(n, "x"), *t = cnn_net_blob(n, "t");
    int bs = x->shape[0];
    for (int k = 0; k < bs; k++)
        for (int c = 0; c < 3; c++) {
            uint64_t i = batch * (uint64_t)bs + (uint64_t)k;
            x->data[k * 3 + c] = sample_x(i, c);
            t->data[k * 3 + c] = sample_t(i, c);
        }
    return CNN_OK;
}

static void set_blob(cnn_net *n, const char *name, float v)
{
    cnn_tensor *t = cnn_net_blob(n, name);
    ck_assert_ptr_nonnull(t);
    for (size_t i = 0; i < t->count; i++) t->data[i] = v;
}

static float param_value(cnn_solver *s, int idx, int i)
{
    return cnn_net_param(cnn_solver_net(s), "sc", idx)->data[i];
}

/* ---- learning-rate policies ----------------------------------------------- */

static cnn_lr_config lr_base(cnn_lr_policy p)
{
    cnn_lr_config c;
    memset(&c, 0, sizeof c);
    c.policy = p;
    c.base_lr = 0.01;
    return c;
}

#define ck_lr(c, it, want)                                                                 \
    ck_assert_msg(fabs(cnn_lr_at(&(c), (it)) - (want)) <= 1e-12 + 1e-9 * fabs(want),      \
                  "iter %d: %.12g vs %.12g", (it), cnn_lr_at(&(c), (it)), (double)(want))

START_TEST(lr_fixed_step_exp)
{
    cnn_lr_config c = lr_base(CNN_LR_FIXED);
    ck_lr(c, 0, 0.01);
    ck_lr(c, 123456, 0.01);
    c = lr_base(CNN_LR_STEP);
    c.gamma = 0.1;
    c.stepsize = 100;
    ck_lr(c, 0, 0.01);
    ck_lr(c, 99, 0.01);
    ck_lr(c, 100, 0.001);
    ck_lr(c, 250, 0.0001);
    c = lr_base(CNN_LR_EXP);
    c.gamma = 0.99;
    ck_lr(c, 0, 0.01);
    ck_lr(c, 10, 0.01 * pow(0.99, 10));
}
END_TEST

START_TEST(lr_multistep)
{
    cnn_lr_config c = lr_base(CNN_LR_MULTISTEP);
    c.gamma = 0.5;
    c.n_stepvalue = 2;
    c.stepvalue[0] = 10;
    c.stepvalue[1] = 30;
    ck_lr(c, 0, 0.01);
    ck_lr(c, 9, 0.01);
    ck_lr(c, 10, 0.005);
    ck_lr(c, 29, 0.005);
    ck_lr(c, 30, 0.0025);
    ck_lr(c, 100000, 0.0025);
}
END_TEST

START_TEST(lr_inv_poly_sigmoid)
{
    /* Caffe's LeNet solver: inv, gamma 1e-4, power 0.75. */
    cnn_lr_config c = lr_base(CNN_LR_INV);
    c.gamma = 1e-4;
    c.power = 0.75;
    ck_lr(c, 0, 0.01);
    ck_lr(c, 10000, 0.01 * pow(2.0, -0.75));
    c = lr_base(CNN_LR_POLY);
    c.base_lr = 0.1;
    c.power = 2;
    c.max_iter = 100;
    ck_lr(c, 0, 0.1);
    ck_lr(c, 50, 0.025);
    ck_lr(c, 100, 0.0);
    c = lr_base(CNN_LR_SIGMOID);
    c.gamma = -0.1;
    c.stepsize = 50;
    ck_lr(c, 50, 0.005);
    ck_lr(c, 0, 0.01 / (1 + exp(-5.0)));
    ck_lr(c, 100, 0.01 / (1 + exp(5.0)));
}
END_TEST

START_TEST(lr_cosine_warmup)
{
    cnn_lr_config c = lr_base(CNN_LR_COSINE);
    c.base_lr = 0.1;
    c.min_lr = 0.001;
    c.max_iter = 1000;
    ck_lr(c, 0, 0.1);
    ck_lr(c, 500, (0.1 + 0.001) / 2);
    ck_lr(c, 1000, 0.001);
    ck_lr(c, 250, 0.001 + 0.099 * 0.5 * (1 + cos(M_PI / 4)));
    /* Warm-up ramps linearly to the policy's rate at warmup_iter. */
    c.warmup_iter = 100;
    c.warmup_start_lr = 0.0;
    double end = 0.001 + 0.099 * 0.5 * (1 + cos(M_PI * 0.1));
    ck_lr(c, 0, 0.0);
    ck_lr(c, 50, end / 2);
    ck_lr(c, 100, end);
    ck_lr(c, 500, (0.1 + 0.001) / 2);
    cnn_lr_config f = lr_base(CNN_LR_FIXED);
    f.warmup_iter = 4;
    f.warmup_start_lr = 0.002;
    ck_lr(f, 0, 0.002);
    ck_lr(f, 2, 0.006);
    ck_lr(f, 4, 0.01);
}
END_TEST

START_TEST(lr_from_config)
{
    cnn_solver *s = make_solver(TINY_NET(2, "", "")
                                "solver { base_lr: 0.2 lr_policy: \"multistep\" gamma: 0.5 "
                                "stepvalue: 3 stepvalue: 5 max_iter: 10 }\n");
    const cnn_solver_config *c = cnn_solver_get_config(s);
    ck_assert_int_eq(c->lr.policy, CNN_LR_MULTISTEP);
    ck_assert_int_eq(c->lr.n_stepvalue, 2);
    ck_lr(c->lr, 4, 0.1);
    ck_lr(c->lr, 5, 0.05);
    cnn_solver_set_feed(s, feed_samples, NULL);
    double want[] = {0.2, 0.2, 0.2, 0.1, 0.1, 0.05};
    for (int i = 0; i < 6; i++) {
        ck_assert_int_eq(cnn_solver_step(s, NULL), CNN_OK);
        ck_assert_double_eq_tol(cnn_solver_lr(s), want[i], 1e-12);
    }
    cnn_solver_free(s);
}
END_TEST

/* ---- update rules ------------------------------------------------------------ */

/* Caffe's formulas, one element, in double. */
static void ref_update(const cnn_update_config *c, double rate, double decay, int iter,
                       double *w, double g, double *h0, double *h1)
{
    double m = c->momentum, d = c->delta, u = 0;
    switch (c->type) {
    case CNN_SOLVER_SGD:
        *h0 = m * *h0 + rate * g;
        u = *h0;
        break;
    case CNN_SOLVER_NESTEROV: {
        double old = *h0;
        *h0 = m * *h0 + rate * g;
        u = (1 + m) * *h0 - m * old;
        break;
    }
    case CNN_SOLVER_ADAGRAD:
        *h0 += g * g;
        u = rate * g / (sqrt(*h0) + d);
        break;
    case CNN_SOLVER_RMSPROP:
        *h0 = c->rms_decay * *h0 + (1 - c->rms_decay) * g * g;
        u = rate * g / (sqrt(*h0) + d);
        break;
    case CNN_SOLVER_ADADELTA:
        *h0 = m * *h0 + (1 - m) * g * g;
        u = g * sqrt((*h1 + d) / (*h0 + d));
        *h1 = m * *h1 + (1 - m) * u * u;
        u *= rate;
        break;
    case CNN_SOLVER_ADAM:
    case CNN_SOLVER_ADAMW: {
        double b2 = c->momentum2;
        int t = iter + 1;
        *h0 = m * *h0 + (1 - m) * g;
        *h1 = b2 * *h1 + (1 - b2) * g * g;
        u = rate * sqrt(1 - pow(b2, t)) / (1 - pow(m, t)) * *h0 / (sqrt(*h1) + d);
        if (c->type == CNN_SOLVER_ADAMW) u += rate * decay * *w;
        break;
    }
    }
    *w -= u;
}

static void check_rule(cnn_solver_type type, float momentum)
{
    cnn_update_config c = {.type = type, .reg = CNN_REG_L2, .momentum = momentum,
                           .momentum2 = 0.999f, .delta = 1e-6f, .rms_decay = 0.9f};
    enum { N = 5 };
    float w[N] = {0.5f, -1.f, 2.f, 0.f, -0.125f}, g[N], h0[N] = {0}, h1[N] = {0};
    double rw[N], rh0[N] = {0}, rh1[N] = {0};
    for (int i = 0; i < N; i++) rw[i] = w[i];
    const float rate = 0.05f, decay = 0.01f;
    for (int step = 0; step < 3; step++) {
        for (int i = 0; i < N; i++) g[i] = (w[i] - 0.3f * (float)i) + 0.1f * (float)step;
        for (int i = 0; i < N; i++) {
            double gd = g[i];
            ref_update(&c, rate, decay, step, &rw[i], gd, &rh0[i], &rh1[i]);
        }
        cnn_solver_update(&c, N, rate, decay, step, w, g, h0, h1);
        for (int i = 0; i < N; i++)
            ck_assert_msg(fabs(w[i] - rw[i]) <= 1e-5 * fmax(1.0, fabs(rw[i])),
                          "%s step %d w[%d]: %.8g vs %.8g", cnn_solver_type_names[type], step,
                          i, w[i], rw[i]);
    }
}

START_TEST(update_rules_match_caffe_formulas)
{
    check_rule(CNN_SOLVER_SGD, 0.f);
    check_rule(CNN_SOLVER_SGD, 0.9f);
    check_rule(CNN_SOLVER_NESTEROV, 0.9f);
    check_rule(CNN_SOLVER_ADAGRAD, 0.f);
    check_rule(CNN_SOLVER_RMSPROP, 0.f);
    check_rule(CNN_SOLVER_ADADELTA, 0.95f);
    check_rule(CNN_SOLVER_ADAM, 0.9f);
    check_rule(CNN_SOLVER_ADAMW, 0.9f);
}
END_TEST

START_TEST(update_rules_hand_computed)
{
    /* SGD, momentum 0.9, lr 0.1, gradient 0.5 twice: v = 0.05 then 0.095. */
    cnn_update_config c = {.type = CNN_SOLVER_SGD, .momentum = 0.9f, .delta = 1e-8f};
    float w = 1.f, g = 0.5f, h = 0.f;
    cnn_solver_update(&c, 1, 0.1f, 0, 0, &w, &g, &h, NULL);
    ck_assert_float_eq_tol(w, 0.95f, 1e-7f);
    g = 0.5f;
    cnn_solver_update(&c, 1, 0.1f, 0, 1, &w, &g, &h, NULL);
    ck_assert_float_eq_tol(w, 0.855f, 1e-6f);
    /* Nesterov: first step (1 + m) * lr * g = 0.095; second uses the history. */
    c.type = CNN_SOLVER_NESTEROV;
    w = 1.f, g = 0.5f, h = 0.f;
    cnn_solver_update(&c, 1, 0.1f, 0, 0, &w, &g, &h, NULL);
    ck_assert_float_eq_tol(w, 0.905f, 1e-6f);
    g = 0.5f; /* h: 0.05 -> 0.095; update 1.9 * 0.095 - 0.9 * 0.05 = 0.1355 */
    cnn_solver_update(&c, 1, 0.1f, 0, 1, &w, &g, &h, NULL);
    ck_assert_float_eq_tol(w, 0.905f - 0.1355f, 1e-6f);
    /* Adam's bias correction makes the first step lr * sign(g). */
    cnn_update_config a = {.type = CNN_SOLVER_ADAM, .momentum = 0.9f, .momentum2 = 0.999f,
                           .delta = 1e-8f};
    float wa = 1.f, ga = 0.37f, m = 0, v = 0;
    cnn_solver_update(&a, 1, 0.01f, 0, 0, &wa, &ga, &m, &v);
    ck_assert_float_eq_tol(wa, 0.99f, 1e-6f);
    /* AdaGrad: first step lr * g / |g| = lr. */
    cnn_update_config ag = {.type = CNN_SOLVER_ADAGRAD, .delta = 1e-8f};
    float wg = 1.f, gg = -2.f, hg = 0;
    cnn_solver_update(&ag, 1, 0.1f, 0, 0, &wg, &gg, &hg, NULL);
    ck_assert_float_eq_tol(wg, 1.1f, 1e-6f);
    /* AdamW: decoupled decay adds lr * wd * w to Adam's step. */
    a.type = CNN_SOLVER_ADAMW;
    wa = 2.f, ga = 0.37f, m = 0, v = 0;
    cnn_solver_update(&a, 1, 0.01f, 0.5f, 0, &wa, &ga, &m, &v);
    ck_assert_float_eq_tol(wa, 2.f - 0.01f - 0.01f * 0.5f * 2.f, 1e-6f);
}
END_TEST

START_TEST(regularize_l1_l2)
{
    float w[4] = {2.f, -3.f, 0.f, 0.5f}, g[4] = {1.f, 1.f, 1.f, 1.f};
    cnn_solver_regularize(CNN_REG_L2, 0.1f, 4, w, g);
    float want2[4] = {1.2f, 0.7f, 1.f, 1.05f};
    for (int i = 0; i < 4; i++) ck_assert_float_eq_tol(g[i], want2[i], 1e-6f);
    for (int i = 0; i < 4; i++) g[i] = 1.f;
    cnn_solver_regularize(CNN_REG_L1, 0.1f, 4, w, g);
    float want1[4] = {1.1f, 0.9f, 1.f, 1.1f};
    for (int i = 0; i < 4; i++) ck_assert_float_eq_tol(g[i], want1[i], 1e-6f);
}
END_TEST

/* With x = 0 the data gradient of the scale is 0: only weight decay moves it. */
static void check_decay_in_net(const char *reg, float w_after)
{
    char text[4096];
    snprintf(text, sizeof text,
             TINY_NET(2, "param { lr_mult: 1 decay_mult: 1 } param { lr_mult: 0 }", "")
             "solver { base_lr: 0.1 weight_decay: 0.2 regularization_type: \"%s\" "
             "max_iter: 10 }\n", reg);
    cnn_solver *s = make_solver(text);
    set_blob(cnn_solver_net(s), "x", 0.f);
    set_blob(cnn_solver_net(s), "t", 0.25f); /* y = bias = t: no bias gradient either */
    ck_assert_int_eq(cnn_solver_step(s, NULL), CNN_OK);
    for (int c = 0; c < 3; c++) {
        ck_assert_float_eq_tol(param_value(s, 0, c), w_after, 1e-6f);
        ck_assert_float_eq(param_value(s, 1, c), 0.25f); /* lr_mult 0: frozen */
    }
    cnn_solver_free(s);
}

START_TEST(weight_decay_in_net)
{
    check_decay_in_net("L2", 0.5f - 0.1f * 0.2f * 0.5f);
    check_decay_in_net("L1", 0.5f - 0.1f * 0.2f);
}
END_TEST

START_TEST(lr_and_decay_mult)
{
    /* scale: lr_mult 2, decay_mult 0; bias: lr_mult 1. x = 1, t = 0, y = 0.75:
     * d loss / d s = d loss / d b = 0.75 (the loss divides by 2N, summed over N). */
    cnn_solver *s = make_solver(
        TINY_NET(2, "param { lr_mult: 2 decay_mult: 0 } param { lr_mult: 1 }", "")
        "solver { base_lr: 0.1 weight_decay: 0.5 max_iter: 10 }\n");
    set_blob(cnn_solver_net(s), "x", 1.f);
    set_blob(cnn_solver_net(s), "t", 0.f);
    float loss = 0;
    ck_assert_int_eq(cnn_solver_step(s, &loss), CNN_OK);
    ck_assert_float_eq_tol(loss, 3 * 0.75f * 0.75f / 2, 1e-6f);
    for (int c = 0; c < 3; c++) {
        ck_assert_float_eq_tol(param_value(s, 0, c), 0.5f - 0.2f * 0.75f, 1e-6f);
        ck_assert_float_eq_tol(param_value(s, 1, c), 0.25f - 0.1f * (0.75f + 0.5f * 0.25f),
                               1e-6f);
    }
    cnn_solver_free(s);
}
END_TEST

START_TEST(clip_gradients_global_norm)
{
    /* Six gradients of 0.75: norm 0.75 * sqrt(6); clipped to 0.5. */
    const char *tail = "solver { base_lr: 1 clip_gradients: 0.5 max_iter: 10 }\n";
    char text[4096];
    snprintf(text, sizeof text, "%s%s", TINY_NET(2, "", ""), tail);
    cnn_solver *s = make_solver(text);
    set_blob(cnn_solver_net(s), "x", 1.f);
    set_blob(cnn_solver_net(s), "t", 0.f);
    ck_assert_int_eq(cnn_solver_step(s, NULL), CNN_OK);
    double sq = 0;
    for (int c = 0; c < 3; c++) {
        double ds = 0.5 - param_value(s, 0, c), db = 0.25 - param_value(s, 1, c);
        ck_assert_double_eq_tol(ds, db, 1e-6);
        sq += ds * ds + db * db;
    }
    ck_assert_double_eq_tol(sqrt(sq), 0.5, 1e-5);
    cnn_solver_free(s);
    /* A threshold above the norm leaves the gradient alone. */
    snprintf(text, sizeof text, "%s%s", TINY_NET(2, "", ""),
             "solver { base_lr: 1 clip_gradients: 100 max_iter: 10 }\n");
    s = make_solver(text);
    set_blob(cnn_solver_net(s), "x", 1.f);
    set_blob(cnn_solver_net(s), "t", 0.f);
    ck_assert_int_eq(cnn_solver_step(s, NULL), CNN_OK);
    ck_assert_float_eq_tol(param_value(s, 0, 0), 0.5f - 0.75f, 1e-6f);
    cnn_solver_free(s);
}
END_TEST

START_TEST(iter_size_equivalence)
{
    cnn_solver *a = make_solver(TINY_NET(2, "", "")
                                "solver { base_lr: 0.05 momentum: 0.9 weight_decay: 0.01 "
                                "iter_size: 2 max_iter: 10 }\n");
    cnn_solver *b = make_solver(TINY_NET(4, "", "")
                                "solver { base_lr: 0.05 momentum: 0.9 weight_decay: 0.01 "
                                "max_iter: 10 }\n");
    cnn_solver_set_feed(a, feed_samples, NULL);
    cnn_solver_set_feed(b, feed_samples, NULL);
    for (int it = 0; it < 8; it++) {
        float la = 0, lb = 0;
        ck_assert_int_eq(cnn_solver_step(a, &la), CNN_OK);
        ck_assert_int_eq(cnn_solver_step(b, &lb), CNN_OK);
        ck_assert_float_eq_tol(la, lb, 1e-5f * fmaxf(1.f, lb));
    }
    for (int p = 0; p < 2; p++)
        for (int c = 0; c < 3; c++)
            ck_assert_float_eq_tol(param_value(a, p, c), param_value(b, p, c), 1e-5f);
    ck_assert_float_ne(param_value(a, 0, 0), 0.5f);
    cnn_solver_free(a);
    cnn_solver_free(b);
}
END_TEST

START_TEST(nan_loss_stops)
{
    cnn_solver *s = make_solver(TINY_NET(2, "", "") "solver { base_lr: 0.1 max_iter: 10 }\n");
    cnn_solver_set_feed(s, feed_samples, NULL);
    ck_assert_int_eq(cnn_solver_step(s, NULL), CNN_OK);
    cnn_solver_set_feed(s, NULL, NULL);
    cnn_net *n = cnn_solver_net(s);
    cnn_net_blob(n, "x")->data[1] = NAN;
    float before = param_value(s, 0, 1);
    ck_assert_int_eq(cnn_solver_step(s, NULL), CNN_ERR_NUMERIC);
    ck_assert_str_eq(cnn_error_message(), "loss is nan at iteration 1");
    ck_assert_float_eq(param_value(s, 0, 1), before);
    cnn_solver_free(s);
}
END_TEST

/* ---- configuration ----------------------------------------------------------- */

START_TEST(config_defaults_and_fields)
{
    cnn_solver *s = make_solver(
        TINY_NET(2, "", "") "solver {\n"
                            "  base_lr: 0.01 momentum: 0.9 momentum2: 0.99 delta: 1e-6\n"
                            "  rms_decay: 0.95 weight_decay: 5e-4 regularization_type: \"L1\"\n"
                            "  type: \"Adam\" clip_gradients: 10 iter_size: 3 max_iter: 7\n"
                            "  display: 2 average_loss: 4 snapshot: 5 snapshot_prefix: \"p\"\n"
                            "  snapshot_after_train: false random_seed: 42 solver_mode: CPU\n"
                            "  device_id: 0 debug_info: false snapshot_format: BINARYPROTO\n"
                            "  test_compute_loss: false layer_wise_reduce: true\n"
                            "}\n");
    const cnn_solver_config *c = cnn_solver_get_config(s);
    ck_assert_int_eq(c->update.type, CNN_SOLVER_ADAM);
    ck_assert_int_eq(c->update.reg, CNN_REG_L1);
    ck_assert_float_eq(c->update.momentum2, 0.99f);
    ck_assert_float_eq(c->update.delta, 1e-6f);
    ck_assert_float_eq(c->update.rms_decay, 0.95f);
    ck_assert_float_eq(c->clip_gradients, 10.f);
    ck_assert_int_eq(c->iter_size, 3);
    ck_assert_int_eq(c->max_iter, 7);
    ck_assert_int_eq(c->average_loss, 4);
    ck_assert_str_eq(c->snapshot_prefix, "p");
    ck_assert(!c->snapshot_after_train);
    ck_assert_uint_eq(cnn_solver_seed(s), 42);
    ck_assert(!c->gpu);
    ck_assert_ptr_null(cnn_solver_test_net(s));
    ck_assert_int_eq(cnn_solver_batch_size(s), 2);
    cnn_solver_free(s);
    /* Defaults; legacy solver_type; the prefix defaults to the file's stem. */
    s = make_solver(TINY_NET(2, "", "") "solver { max_iter: 3 solver_type: NESTEROV }\n");
    c = cnn_solver_get_config(s);
    ck_assert_int_eq(c->update.type, CNN_SOLVER_NESTEROV);
    ck_assert_int_eq(c->lr.policy, CNN_LR_FIXED);
    ck_assert_float_eq(c->update.delta, 1e-8f);
    ck_assert_float_eq(c->clip_gradients, -1.f);
    ck_assert(c->test_initialization && c->snapshot_after_train);
    ck_assert_str_eq(c->snapshot_prefix, tmp_path("m"));
    cnn_solver_free(s);
    /* --iterations and --snapshot-prefix overrides. */
    cnn_solver_opts o = {.max_iter = 99, .snapshot_prefix = "/x/y"};
    s = make_solver_opts(TINY_NET(2, "", "") "solver { max_iter: 3 }\n", &o);
    ck_assert_int_eq(cnn_solver_get_config(s)->max_iter, 99);
    ck_assert_str_eq(cnn_solver_get_config(s)->snapshot_prefix, "/x/y");
    cnn_solver_free(s);
}
END_TEST

START_TEST(config_errors)
{
    const char *net = TINY_NET(2, "", ""); /* 5 lines */
    char text[4096];
    snprintf(text, sizeof text, "%ssolver {\n  max_iter: 10\n  bogus_field: 3\n}\n", net);
    expect_solver_error(text, CNN_ERR_CONFIG, "m.cfg:8:");
    expect_solver_error(text, CNN_ERR_CONFIG, "bogus_field");
    snprintf(text, sizeof text, "%ssolver { max_iter: 10 type: \"Adamm\" }\n", net);
    expect_solver_error(text, CNN_ERR_CONFIG, "unknown solver type 'Adamm'");
    expect_solver_error(text, CNN_ERR_CONFIG, "m.cfg:6:");
    snprintf(text, sizeof text, "%ssolver { max_iter: 10 lr_policy: \"cos\" }\n", net);
    expect_solver_error(text, CNN_ERR_CONFIG, "unknown lr_policy 'cos'");
    snprintf(text, sizeof text, "%ssolver { max_iter: 10 lr_policy: \"step\" }\n", net);
    expect_solver_error(text, CNN_ERR_CONFIG, "stepsize > 0");
    snprintf(text, sizeof text, "%ssolver { max_iter: 10 regularization_type: \"L3\" }\n",
             net);
    expect_solver_error(text, CNN_ERR_CONFIG, "unknown regularization_type 'L3'");
    snprintf(text, sizeof text, "%ssolver { max_iter: 10 test_iter: 1 test_iter: 2 }\n", net);
    expect_solver_error(text, CNN_ERR_UNSUPPORTED, "only one test net");
    snprintf(text, sizeof text, "%ssolver { base_lr: 0.1 }\n", net);
    expect_solver_error(text, CNN_ERR_CONFIG, "max_iter must be set");
    snprintf(text, sizeof text, "%ssolver { max_iter: 5 type: \"SGD\" solver_type: SGD }\n",
             net);
    expect_solver_error(text, CNN_ERR_CONFIG, "not both");
    snprintf(text, sizeof text, "%ssolver { max_iter: 5 stepvalue: 5 stepvalue: 5 }\n", net);
    expect_solver_error(text, CNN_ERR_CONFIG, "stepvalue 5 is not above");
    snprintf(text, sizeof text, "%ssolver { max_iter: 5 net: \"other.prototxt\" }\n", net);
    expect_solver_error(text, CNN_ERR_CONFIG, "cannot name a net");
    snprintf(text, sizeof text, "%ssolver { max_iter: 5 momentum: 1.5 }\n", net);
    expect_solver_error(text, CNN_ERR_CONFIG, "momentum must be in [0, 1)");
    snprintf(text, sizeof text, "%ssolver { max_iter: 5 snapshot_diff: true }\n", net);
    expect_solver_error(text, CNN_ERR_UNSUPPORTED, "snapshot_diff");
    snprintf(text, sizeof text, "%ssolver { max_iter: 5 base_lr: \"x\" }\n", net);
    expect_solver_error(text, CNN_ERR_CONFIG, "m.cfg:6:");
    expect_solver_error(net, CNN_ERR_CONFIG, "no solver { } block");
}
END_TEST

START_TEST(solver_file_resolves_net)
{
    char text[4096];
    write_text(tmp_path("net.prototxt"), TINY_NET(2, "", ""));
    snprintf(text, sizeof text,
             "# a Caffe solver file\nnet: \"net.prototxt\"\nbase_lr: 0.1\nlr_policy: \"inv\"\n"
             "gamma: 0.0001\npower: 0.75\nmax_iter: 4\nsolver_mode: GPU\n");
    write_text(tmp_path("solver.prototxt"), text);
    char cwd[1024];
    ck_assert_ptr_nonnull(getcwd(cwd, sizeof cwd));
    ck_assert_int_eq(chdir("/"), 0);
    cnn_solver *s = NULL;
    ck_assert_msg(cnn_solver_from_file(tmp_path("solver.prototxt"), NULL, &s) == CNN_OK, "%s",
                  cnn_error_message());
    const cnn_solver_config *c = cnn_solver_get_config(s);
    ck_assert_str_eq(c->train_net, tmp_path("net.prototxt"));
    ck_assert_int_eq(c->lr.policy, CNN_LR_INV);
    ck_assert_str_eq(c->snapshot_prefix, tmp_path("solver"));
    cnn_solver_set_feed(s, feed_samples, NULL);
    ck_assert_int_eq(cnn_solver_step(s, NULL), CNN_OK);
    cnn_solver_free(s);
    ck_assert_int_eq(chdir(cwd), 0);
    /* train_net + test_net naming two files. */
    write_text(tmp_path("test.prototxt"), TINY_NET(5, "", ""));
    write_text(tmp_path("s2.prototxt"),
               "train_net: \"net.prototxt\"\ntest_net: \"test.prototxt\"\n"
               "test_iter: 2\ntest_interval: 10\nmax_iter: 4\n");
    ck_assert_msg(cnn_solver_from_file(tmp_path("s2.prototxt"), NULL, &s) == CNN_OK, "%s",
                  cnn_error_message());
    ck_assert_ptr_nonnull(cnn_solver_test_net(s));
    ck_assert_int_eq(cnn_net_blob(cnn_solver_test_net(s), "x")->shape[0], 5);
    cnn_solver_free(s);
    /* A missing net file names the field's location and where it looked. */
    write_text(tmp_path("s3.prototxt"), "base_lr: 0.1\nnet: \"nope.prototxt\"\nmax_iter: 4\n");
    ck_assert_int_eq(cnn_solver_from_file(tmp_path("s3.prototxt"), NULL, &s), CNN_ERR_IO);
    ck_assert_ptr_nonnull(strstr(cnn_error_message(), "s3.prototxt:2:"));
    ck_assert_ptr_nonnull(strstr(cnn_error_message(), "nope.prototxt' not found"));
    /* Unknown fields of a solver file are errors too. */
    write_text(tmp_path("s4.prototxt"), "net: \"net.prototxt\"\nmax_iter: 4\nlr: 0.1\n");
    ck_assert_int_eq(cnn_solver_from_file(tmp_path("s4.prototxt"), NULL, &s), CNN_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(cnn_error_message(), "s4.prototxt:3:"));
    /* Neither a model nor a solver naming one. */
    write_text(tmp_path("s5.prototxt"), "max_iter: 4\n");
    ck_assert_int_eq(cnn_solver_from_file(tmp_path("s5.prototxt"), NULL, &s), CNN_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(cnn_error_message(), "no net:"));
}
END_TEST

/* Caffe's own solver files load unchanged (their net files copied where the
 * solver's relative `net:` path points). */
START_TEST(caffe_solver_files)
{
    static const char *dirs[] = {"../shared/caffe-models", "../../shared/caffe-models", NULL};
    const char *dir = NULL;
    for (int i = 0; dirs[i]; i++)
        if (access(dirs[i], R_OK) == 0) dir = dirs[i];
    if (!dir) {
        printf("check_solver: SKIP Caffe solver files (../shared/caffe-models absent)\n");
        return;
    }
    static const char *files[] = {"mnist_lenet_solver.prototxt",
                                  "cifar10_cifar10_quick_solver.prototxt",
                                  "bvlc_alexnet_solver.prototxt",
                                  "bvlc_reference_caffenet_solver.prototxt", NULL};
    for (int i = 0; files[i]; i++) {
        char path[512], cmd[1024];
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        cnn_cfg *root = NULL;
        ck_assert_msg(cnn_cfg_parse_file(path, &root) == CNN_OK, "%s", cnn_error_message());
        const char *net = NULL;
        ck_assert_int_eq(cnn_cfg_string(root, "net", "", &net), CNN_OK);
        snprintf(cmd, sizeof cmd, "mkdir -p \"$(dirname '%s/%s')\" && touch '%s/%s'", tmpdir,
                 net, tmpdir, net);
        ck_assert_int_eq(system(cmd), 0);
        cnn_solver_config c;
        ck_assert_msg(cnn_solver_config_read(root, tmpdir, &c) == CNN_OK, "%s: %s", files[i],
                      cnn_error_message());
        ck_assert_int_gt(c.max_iter, 0);
        ck_assert_int_gt(c.test_iter, 0);
        ck_assert(c.gpu);
        cnn_cfg_free(root);
    }
}
END_TEST

/* ---- testing and the loop ---------------------------------------------------- */

#define TEST_NET                                                                           \
    "name: \"tested\"\n"                                                                   \
    "layer { name: \"x\" type: \"Input\" top: \"x\" input_param { shape { dim: 4 dim: 3 } } "\
    "}\n"                                                                                  \
    "layer { name: \"t\" type: \"Input\" top: \"t\" input_param { shape { dim: 4 dim: 3 } } "\
    "}\n"                                                                                  \
    "layer { name: \"label\" type: \"Input\" top: \"label\" include { phase: TEST } "      \
    "input_param { shape { dim: 4 } } }\n"                                                 \
    "layer { name: \"sc\" type: \"Scale\" bottom: \"x\" top: \"y\" "                       \
    "scale_param { axis: 1 bias_term: true } }\n"                                          \
    "layer { name: \"loss\" type: \"EuclideanLoss\" bottom: \"y\" bottom: \"t\" "          \
    "top: \"loss\" }\n"                                                                    \
    "layer { name: \"acc\" type: \"Accuracy\" bottom: \"y\" bottom: \"label\" "            \
    "top: \"accuracy\" include { phase: TEST } }\n"

START_TEST(test_pass_averages_outputs)
{
    cnn_solver *s = make_solver(TEST_NET "solver { max_iter: 10 test_iter: 3 "
                                         "test_interval: 5 base_lr: 0.1 }\n");
    cnn_net *tn = cnn_solver_test_net(s);
    ck_assert_ptr_nonnull(tn);
    ck_assert_ptr_null(cnn_net_blob(cnn_solver_net(s), "label"));
    /* Rows one-hot at 0, 1, 2, 0; labels 0, 1, 2, 1: three of four right. */
    cnn_tensor *x = cnn_net_blob(tn, "x"), *lab = cnn_net_blob(tn, "label");
    memset(x->data, 0, x->count * sizeof(float));
    int hot[4] = {0, 1, 2, 0};
    float labels[4] = {0, 1, 2, 1};
    for (int k = 0; k < 4; k++) x->data[k * 3 + hot[k]] = 1.f;
    memcpy(lab->data, labels, sizeof labels);
    set_blob(tn, "t", 0.f);
    /* The test net gets the train net's weights: scale 2 makes y = 2x. */
    cnn_tensor *scale = cnn_net_param(cnn_solver_net(s), "sc", 0);
    for (int c = 0; c < 3; c++) scale->data[c] = 2.f;
    cnn_test_result r;
    bool stopped = true;
    ck_assert_int_eq(cnn_solver_test(s, NULL, &stopped, &r), CNN_OK);
    ck_assert(!stopped);
    ck_assert_double_eq_tol(r.accuracy, 0.75, 1e-6);
    ck_assert_double_eq_tol(r.loss, 4 * 4.0 / (2 * 4), 1e-6); /* sum (2x)^2 / 2N */
    ck_assert_int_eq(r.n, 2);
    bool seen_loss = false, seen_acc = false;
    for (int i = 0; i < r.n; i++) {
        seen_loss |= !strcmp(r.name[i], "loss") && fabs(r.value[i] - 2.0) < 1e-6;
        seen_acc |= !strcmp(r.name[i], "accuracy") && fabs(r.value[i] - 0.75) < 1e-6;
    }
    ck_assert(seen_loss && seen_acc);
    volatile sig_atomic_t stop = 1;
    ck_assert_int_eq(cnn_solver_test(s, &stop, &stopped, &r), CNN_OK);
    ck_assert(stopped);
    cnn_solver_free(s);
}
END_TEST

typedef struct counts {
    int iters, displays, tests, snapshots;
    int test_iters[8], snap_iters[8];
    int stop_at;
    volatile sig_atomic_t stop;
    char last[512];
} counts;

static void count_events(const cnn_solver_event *e, void *user)
{
    counts *c = user;
    switch (e->kind) {
    case CNN_EV_ITER:
        c->iters++;
        ck_assert(isfinite(e->loss));
        if (e->iter == c->stop_at) c->stop = 1;
        break;
    case CNN_EV_DISPLAY: c->displays++; break;
    case CNN_EV_TEST: c->test_iters[c->tests++ & 7] = e->iter; break;
    case CNN_EV_SNAPSHOT:
        c->snap_iters[c->snapshots++ & 7] = e->iter;
        snprintf(c->last, sizeof c->last, "%s", e->path);
        break;
    }
}

START_TEST(solve_events)
{
    cnn_solver *s = make_solver(TEST_NET "solver { max_iter: 6 display: 2 test_iter: 2 "
                                         "test_interval: 3 snapshot: 4 base_lr: 0.01 }\n");
    cnn_solver_set_feed(s, feed_samples, NULL);
    counts c = {.stop_at = -1};
    ck_assert_msg(cnn_solver_solve(s, NULL, count_events, &c) == CNN_OK, "%s",
                  cnn_error_message());
    ck_assert(!cnn_solver_stopped(s));
    ck_assert_int_eq(c.iters, 6);
    ck_assert_int_eq(c.displays, 3);
    ck_assert_int_eq(c.tests, 3);
    ck_assert_int_eq(c.test_iters[0], 0);
    ck_assert_int_eq(c.test_iters[1], 3);
    ck_assert_int_eq(c.test_iters[2], 6);
    ck_assert_int_eq(c.snapshots, 2);
    ck_assert_int_eq(c.snap_iters[0], 4);
    ck_assert_int_eq(c.snap_iters[1], 6);
    ck_assert_str_eq(c.last, tmp_path("m_iter_6.solverstate"));
    ck_assert_int_eq(access(tmp_path("m_iter_6.safetensors"), R_OK), 0);
    ck_assert_int_eq(access(tmp_path("m_iter_4.solverstate"), R_OK), 0);
    cnn_solver_free(s);
}
END_TEST

START_TEST(solve_stop_flag_snapshots)
{
    cnn_solver *s = make_solver(TINY_NET(2, "", "")
                                "solver { max_iter: 100 snapshot: 50 base_lr: 0.01 "
                                "snapshot_after_train: false }\n");
    cnn_solver_set_feed(s, feed_samples, NULL);
    counts c = {.stop_at = 7};
    ck_assert_int_eq(cnn_solver_solve(s, &c.stop, count_events, &c), CNN_OK);
    ck_assert(cnn_solver_stopped(s));
    ck_assert_int_eq(cnn_solver_iter(s), 7);
    ck_assert_int_eq(c.snapshots, 1);
    ck_assert_str_eq(c.last, tmp_path("m_iter_7.solverstate"));
    cnn_solver_free(s);
    /* Missing snapshot folders are created before training starts... */
    cnn_solver_opts o = {.snapshot_prefix = tmp_path("a/b/p")};
    s = make_solver_opts(TINY_NET(2, "", "") "solver { max_iter: 3 }\n", &o);
    cnn_solver_set_feed(s, feed_samples, NULL);
    ck_assert_msg(cnn_solver_solve(s, NULL, NULL, NULL) == CNN_OK, "%s", cnn_error_message());
    ck_assert_int_eq(access(tmp_path("a/b/p_iter_3.solverstate"), R_OK), 0);
    cnn_solver_free(s);
    /* ... and a folder that cannot be made fails before the first iteration. */
    write_text(tmp_path("file"), "x");
    o.snapshot_prefix = tmp_path("file/sub/p");
    s = make_solver_opts(TINY_NET(2, "", "") "solver { max_iter: 3 }\n", &o);
    cnn_solver_set_feed(s, feed_samples, NULL);
    ck_assert_int_eq(cnn_solver_solve(s, NULL, NULL, NULL), CNN_ERR_IO);
    ck_assert_ptr_nonnull(strstr(cnn_error_message(), "cannot create folder"));
    ck_assert_int_eq(cnn_solver_iter(s), 0);
    cnn_solver_free(s);
}
END_TEST

/* ---- snapshots and resume ---------------------------------------------------- */

START_TEST(snapshot_atomic)
{
    cnn_solver_opts o = {.snapshot_prefix = "/nonexistent-cnn-dir/p"};
    cnn_solver *s = make_solver_opts(TINY_NET(2, "", "") "solver { max_iter: 3 }\n", &o);
    ck_assert_int_ne(cnn_solver_snapshot(s, NULL, 0), CNN_OK);
    ck_assert_ptr_nonnull(strstr(cnn_error_message(), "/nonexistent-cnn-dir/p_iter_0"));
    cnn_solver_free(s);

    s = make_solver(TINY_NET(2, "", "") "solver { max_iter: 3 momentum: 0.9 }\n");
    char path[512];
    ck_assert_int_eq(cnn_solver_snapshot(s, path, sizeof path), CNN_OK);
    ck_assert_str_eq(path, tmp_path("m_iter_0.solverstate"));
    /* Nothing but the two files is left behind. */
    char cmd[256];
    snprintf(cmd, sizeof cmd, "test $(ls '%s' | wc -l) -eq 2", tmpdir);
    ck_assert_int_eq(system(cmd), 0);
    size_t nw0, ns0, nw1, ns1;
    unsigned char *w0 = read_bytes(tmp_path("m_iter_0.safetensors"), &nw0);
    unsigned char *s0 = read_bytes(tmp_path("m_iter_0.solverstate"), &ns0);
    /* Block both temporary files so the next write fails half-way. */
    char tmp[512];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", tmp_path("m_iter_0.safetensors"), (long)getpid());
    ck_assert_int_eq(mkdir(tmp, 0700), 0);
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", tmp_path("m_iter_0.solverstate"), (long)getpid());
    ck_assert_int_eq(mkdir(tmp, 0700), 0);
    cnn_net_param(cnn_solver_net(s), "sc", 0)->data[0] = 42.f;
    ck_assert_int_eq(cnn_solver_snapshot(s, NULL, 0), CNN_ERR_IO);
    ck_assert_ptr_nonnull(strstr(cnn_error_message(), "m_iter_0"));
    unsigned char *w1 = read_bytes(tmp_path("m_iter_0.safetensors"), &nw1);
    unsigned char *s1 = read_bytes(tmp_path("m_iter_0.solverstate"), &ns1);
    ck_assert(nw0 == nw1 && !memcmp(w0, w1, nw0));
    ck_assert(ns0 == ns1 && !memcmp(s0, s1, ns0));
    free(w0);
    free(w1);
    free(s0);
    free(s1);
    cnn_solver_free(s);
}
END_TEST

/* Adam (two history blobs) and Dropout (the net's RNG) on streamed samples. */
#define RESUME_NET(SOLVER)                                                                 \
    TINY_NET(2, "", "layer { name: \"drop\" type: \"Dropout\" bottom: \"y\" top: \"y\" "   \
                    "dropout_param { dropout_ratio: 0.3 } }\n")                            \
    "solver { type: \"" SOLVER "\" base_lr: 0.01 momentum: 0.9 weight_decay: 0.001 "       \
    "lr_policy: \"step\" gamma: 0.5 stepsize: 30 max_iter: 200 random_seed: 7 "            \
    "average_loss: 5 iter_size: 2 }\n"

static void check_resume(const char *text)
{
    cnn_solver *a = make_solver(text);
    cnn_solver_set_feed(a, feed_samples, NULL);
    ck_assert_int_eq(cnn_solver_solve(a, NULL, NULL, NULL), CNN_OK);
    ck_assert_int_eq(cnn_solver_iter(a), 200);

    cnn_solver_opts half = {.max_iter = 100, .snapshot_prefix = tmp_path("half")};
    cnn_solver *b = make_solver_opts(text, &half);
    cnn_solver_set_feed(b, feed_samples, NULL);
    ck_assert_int_eq(cnn_solver_solve(b, NULL, NULL, NULL), CNN_OK);
    cnn_solver_free(b);

    cnn_solver_opts other = {.snapshot_prefix = tmp_path("rest")};
    cnn_solver *c = make_solver_opts(text, &other);
    cnn_solver_set_feed(c, feed_samples, NULL);
    ck_assert_msg(cnn_solver_restore(c, tmp_path("half_iter_100.solverstate")) == CNN_OK, "%s",
                  cnn_error_message());
    ck_assert_int_eq(cnn_solver_iter(c), 100);
    ck_assert_int_eq(cnn_solver_solve(c, NULL, NULL, NULL), CNN_OK);
    ck_assert_int_eq(cnn_solver_iter(c), 200);

    cnn_net *na = cnn_solver_net(a), *nc = cnn_solver_net(c);
    ck_assert_int_eq(cnn_net_num_params(na), cnn_net_num_params(nc));
    for (int p = 0; p < cnn_net_num_params(na); p++) {
        cnn_tensor *ta = cnn_net_param_info(na, p)->tensor;
        cnn_tensor *tc = cnn_net_param_info(nc, p)->tensor;
        ck_assert(!memcmp(ta->data, tc->data, ta->count * sizeof(float)));
    }
    ck_assert(!memcmp(cnn_net_rng(na)->s, cnn_net_rng(nc)->s, sizeof(cnn_rng)));
    ck_assert_float_ne(cnn_net_param(na, "sc", 0)->data[0], 0.5f);
    cnn_solver_free(a);
    cnn_solver_free(c);
}

START_TEST(resume_bit_identical)
{
    check_resume(RESUME_NET("Adam"));
    check_resume(RESUME_NET("SGD"));
}
END_TEST

/* A small IDX image set (n images of h x w) and its labels, written to tmpdir. */
static void write_idx(int n, int h, int w, int classes)
{
    FILE *f = fopen(tmp_path("img.idx"), "wb"), *g = fopen(tmp_path("lab.idx"), "wb");
    ck_assert(f && g);
    unsigned char hi[16] = {0, 0, 8, 3}, hl[8] = {0, 0, 8, 1};
    int dims[3] = {n, h, w};
    for (int d = 0; d < 3; d++)
        for (int b = 0; b < 4; b++) hi[4 + 4 * d + b] = (unsigned char)(dims[d] >> (24 - 8 * b));
    for (int b = 0; b < 4; b++) hl[4 + b] = (unsigned char)(n >> (24 - 8 * b));
    fwrite(hi, 1, 16, f);
    fwrite(hl, 1, 8, g);
    cnn_rng r;
    cnn_rng_seed(&r, 11);
    for (int i = 0; i < n; i++) {
        int label = i % classes;
        fputc(label, g);
        for (int k = 0; k < h * w; k++)
            fputc((int)(cnn_rng_below(&r, 128) + (k % classes == label ? 127 : 0)), f);
    }
    ck_assert_int_eq(fclose(f), 0);
    ck_assert_int_eq(fclose(g), 0);
}

/* The same property with a shuffling, prefetching Data layer: the resumed
 * run must continue the data stream exactly. */
START_TEST(resume_bit_identical_data_layer)
{
    write_idx(52, 4, 4, 3);
    char text[4096];
    snprintf(text, sizeof text,
             "name: \"d\"\n"
             "layer { name: \"data\" type: \"Data\" top: \"data\" top: \"label\" "
             "transform_param { scale: 0.0039 } data_param { source: \"%s\" "
             "label_source: \"%s\" backend: IDX batch_size: 8 shuffle: true } }\n"
             "layer { name: \"ip\" type: \"InnerProduct\" bottom: \"data\" top: \"ip\" "
             "inner_product_param { num_output: 3 weight_filler { type: \"xavier\" } } }\n"
             "layer { name: \"drop\" type: \"Dropout\" bottom: \"ip\" top: \"ip\" }\n"
             "layer { name: \"loss\" type: \"SoftmaxWithLoss\" bottom: \"ip\" "
             "bottom: \"label\" top: \"loss\" }\n"
             "solver { type: \"Nesterov\" base_lr: 0.1 momentum: 0.9 max_iter: 200 "
             "random_seed: 3 iter_size: 2 }\n",
             tmp_path("img.idx"), tmp_path("lab.idx"));
    cnn_solver *a = make_solver(text);
    ck_assert_int_eq(cnn_solver_solve(a, NULL, NULL, NULL), CNN_OK);
    cnn_solver_opts half = {.max_iter = 100, .snapshot_prefix = tmp_path("half")};
    cnn_solver *b = make_solver_opts(text, &half);
    ck_assert_int_eq(cnn_solver_solve(b, NULL, NULL, NULL), CNN_OK);
    cnn_solver_free(b);
    cnn_solver_opts rest = {.snapshot_prefix = tmp_path("rest")};
    cnn_solver *c = make_solver_opts(text, &rest);
    ck_assert_msg(cnn_solver_restore(c, tmp_path("half_iter_100.solverstate")) == CNN_OK, "%s",
                  cnn_error_message());
    ck_assert_int_eq(cnn_solver_solve(c, NULL, NULL, NULL), CNN_OK);
    cnn_tensor *wa = cnn_net_param(cnn_solver_net(a), "ip", 0);
    cnn_tensor *wc = cnn_net_param(cnn_solver_net(c), "ip", 0);
    ck_assert(!memcmp(wa->data, wc->data, wa->count * sizeof(float)));
    wa = cnn_net_param(cnn_solver_net(a), "ip", 1);
    wc = cnn_net_param(cnn_solver_net(c), "ip", 1);
    ck_assert(!memcmp(wa->data, wc->data, wa->count * sizeof(float)));
    cnn_solver_free(a);
    cnn_solver_free(c);
}
END_TEST

START_TEST(resume_errors)
{
    cnn_solver *s = make_solver(TINY_NET(2, "", "") "solver { max_iter: 5 }\n");
    ck_assert_int_eq(cnn_solver_snapshot(s, NULL, 0), CNN_OK);
    cnn_solver_free(s);
    /* A different solver type. */
    s = make_solver(TINY_NET(2, "", "") "solver { max_iter: 5 type: \"Adam\" }\n");
    ck_assert_int_eq(cnn_solver_restore(s, tmp_path("m_iter_0.solverstate")), CNN_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(cnn_error_message(), "written by the SGD solver"));
    cnn_solver_free(s);
    /* A weights file is not a solver state. */
    s = make_solver(TINY_NET(2, "", "") "solver { max_iter: 5 }\n");
    ck_assert_int_eq(cnn_solver_restore(s, tmp_path("m_iter_0.safetensors")),
                     CNN_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(cnn_error_message(), "not a solver state"));
    /* The weights file is gone. */
    ck_assert_int_eq(unlink(tmp_path("m_iter_0.safetensors")), 0);
    ck_assert_int_eq(cnn_solver_restore(s, tmp_path("m_iter_0.solverstate")), CNN_ERR_IO);
    ck_assert_ptr_nonnull(strstr(cnn_error_message(), "m_iter_0.safetensors' is missing"));
    /* A missing state file. */
    ck_assert_int_ne(cnn_solver_restore(s, tmp_path("none.solverstate")), CNN_OK);
    cnn_solver_free(s);
    /* A net with other shapes. */
    s = make_solver(TINY_NET(2, "", "") "solver { max_iter: 5 }\n");
    ck_assert_int_eq(cnn_solver_snapshot(s, NULL, 0), CNN_OK);
    cnn_solver_free(s);
    s = make_solver("name: \"tiny\"\n"
                    "layer { name: \"x\" type: \"Input\" top: \"x\" input_param { shape { "
                    "dim: 2 dim: 4 } } }\n"
                    "layer { name: \"sc\" type: \"Scale\" bottom: \"x\" top: \"y\" "
                    "scale_param { axis: 1 bias_term: true } }\n"
                    "solver { max_iter: 5 }\n");
    ck_assert_int_eq(cnn_solver_restore(s, tmp_path("m_iter_0.solverstate")), CNN_ERR_SHAPE);
    cnn_solver_free(s);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("solver");
    TCase *lr = tcase_create("lr");
    tcase_add_checked_fixture(lr, setup_tmp, teardown_tmp);
    tcase_add_test(lr, lr_fixed_step_exp);
    tcase_add_test(lr, lr_multistep);
    tcase_add_test(lr, lr_inv_poly_sigmoid);
    tcase_add_test(lr, lr_cosine_warmup);
    tcase_add_test(lr, lr_from_config);
    suite_add_tcase(s, lr);
    TCase *up = tcase_create("update");
    tcase_add_checked_fixture(up, setup_tmp, teardown_tmp);
    tcase_add_test(up, update_rules_match_caffe_formulas);
    tcase_add_test(up, update_rules_hand_computed);
    tcase_add_test(up, regularize_l1_l2);
    tcase_add_test(up, weight_decay_in_net);
    tcase_add_test(up, lr_and_decay_mult);
    tcase_add_test(up, clip_gradients_global_norm);
    tcase_add_test(up, iter_size_equivalence);
    tcase_add_test(up, nan_loss_stops);
    suite_add_tcase(s, up);
    TCase *cfg = tcase_create("config");
    tcase_add_checked_fixture(cfg, setup_tmp, teardown_tmp);
    tcase_add_test(cfg, config_defaults_and_fields);
    tcase_add_test(cfg, config_errors);
    tcase_add_test(cfg, solver_file_resolves_net);
    tcase_add_test(cfg, caffe_solver_files);
    suite_add_tcase(s, cfg);
    TCase *loop = tcase_create("loop");
    tcase_add_checked_fixture(loop, setup_tmp, teardown_tmp);
    tcase_add_test(loop, test_pass_averages_outputs);
    tcase_add_test(loop, solve_events);
    tcase_add_test(loop, solve_stop_flag_snapshots);
    tcase_add_test(loop, snapshot_atomic);
    tcase_add_test(loop, resume_bit_identical);
    tcase_add_test(loop, resume_bit_identical_data_layer);
    tcase_add_test(loop, resume_errors);
    tcase_set_timeout(loop, 60);
    suite_add_tcase(s, loop);
    return s;
}

int main(void) { return cnn_test_run(suite()) != 0; }
