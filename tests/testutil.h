/* testutil.h — helpers shared by the Check suites: nets from strings, random
 * tensors, and the finite-difference gradient check. */
#ifndef CNN_TESTUTIL_H
#define CNN_TESTUTIL_H

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cnn.h"

/* Builds a net from text or fails the test with the library's message. */
static inline cnn_net *cnn_test_net(const char *proto, cnn_phase phase)
{
    cnn_net_opts o = cnn_net_default_opts();
    o.phase = phase;
    cnn_net *n = NULL;
    cnn_status st = cnn_net_from_string(proto, &o, &n);
    ck_assert_msg(st == CNN_OK, "net build failed: %s", cnn_error_message());
    return n;
}

/* Expects building `proto` to fail with status `want` and a message that
 * contains `needle`. */
static inline void cnn_test_net_fails(const char *proto, cnn_status want, const char *needle)
{
    cnn_net_opts o = cnn_net_default_opts();
    cnn_net *n = NULL;
    cnn_status st = cnn_net_from_string(proto, &o, &n);
    ck_assert_msg(st == want, "expected status %d, got %d (%s)", want, st,
                  cnn_error_message());
    ck_assert_msg(strstr(cnn_error_message(), needle), "message '%s' lacks '%s'",
                  cnn_error_message(), needle);
    ck_assert_ptr_null(n);
}

static inline void cnn_test_fill_uniform(cnn_tensor *t, float lo, float hi, uint64_t seed)
{
    cnn_rng r;
    cnn_rng_seed(&r, seed);
    for (size_t i = 0; i < t->count; i++)
        t->data[i] = lo + (hi - lo) * (float)cnn_rng_uniform(&r);
}

/* Index of the layer called `name` in n, failing the test when absent. */
static inline int cnn_test_layer_index(const cnn_net *n, const char *name)
{
    for (int i = 0; i < cnn_net_num_layers(n); i++)
        if (!strcmp(cnn_net_layer_name(n, i), name)) return i;
    ck_abort_msg("no layer '%s'", name);
    return -1;
}

/* L = sum over tops t of sum_i w_t[i] * top_t[i], with fixed weights w. */
static inline double gradcheck_objective(cnn_net *n, int li, float **w)
{
    ck_assert_msg(cnn_net_layer_forward(n, li) == CNN_OK, "forward: %s",
                  cnn_error_message());
    double L = 0;
    for (int t = 0; t < cnn_net_layer_num_tops(n, li); t++) {
        cnn_tensor *top = cnn_net_layer_top(n, li, t);
        for (size_t i = 0; i < top->count; i++) L += (double)w[t][i] * top->data[i];
    }
    return L;
}

/* Compares the analytic gradient `analytic` of tensor x (count values) with
 * central differences of the objective. */
static inline void gradcheck_tensor(cnn_net *n, int li, float **w, cnn_tensor *x,
                                    const float *analytic, double step, double tol,
                                    const char *what)
{
    for (size_t i = 0; i < x->count; i++) {
        float saved = x->data[i];
        x->data[i] = (float)(saved + step);
        double lp = gradcheck_objective(n, li, w);
        x->data[i] = (float)(saved - step);
        double lm = gradcheck_objective(n, li, w);
        x->data[i] = saved;
        double num = (lp - lm) / (2.0 * step), a = analytic[i];
        double scale = fmax(fmax(fabs(a), fabs(num)), 1.0);
        ck_assert_msg(isfinite(a) && fabs(a - num) <= tol * scale,
                      "%s[%zu]: analytic %.6g vs numeric %.6g", what, i, a, num);
    }
}

/* Builds `proto` (Input layers feeding the layer `layer`), fills every input
 * blob with uniform(-1, 1) values, lets `prep` adjust the net (labels, …),
 * and checks d L / d bottom for each bottom whose bit is set in
 * `bottom_mask`, and d L / d param for every parameter of the layer. */
static inline void cnn_test_gradcheck_ex(const char *proto, const char *layer,
                                         unsigned bottom_mask, double step, double tol,
                                         cnn_phase phase, void (*prep)(cnn_net *))
{
    cnn_net *n = cnn_test_net(proto, phase);
    int li = cnn_test_layer_index(n, layer);
    for (int i = 0; i < cnn_net_num_inputs(n); i++)
        cnn_test_fill_uniform(cnn_net_input(n, i), -1.f, 1.f, 100 + (uint64_t)i);
    if (prep) prep(n);
    /* The layer may reshape its tops on first forward; run it once. */
    ck_assert_msg(cnn_net_layer_forward(n, li) == CNN_OK, "%s", cnn_error_message());
    int nt = cnn_net_layer_num_tops(n, li), nb = cnn_net_layer_num_bottoms(n, li);
    int np = cnn_net_layer_num_params(n, li);
    float *w[8];
    ck_assert(nt <= 8);
    for (int t = 0; t < nt; t++) {
        cnn_tensor *top = cnn_net_layer_top(n, li, t);
        w[t] = malloc((top->count + 1) * sizeof(float));
        cnn_rng r;
        cnn_rng_seed(&r, 7 + (uint64_t)t);
        for (size_t i = 0; i < top->count; i++) w[t][i] = (float)cnn_rng_uniform(&r) - 0.5f;
    }
    /* Analytic gradients. */
    for (int t = 0; t < nt; t++) {
        cnn_tensor *top = cnn_net_layer_top(n, li, t);
        memcpy(top->grad, w[t], top->count * sizeof(float));
    }
    for (int p = 0; p < np; p++) {
        cnn_tensor *pt = cnn_net_layer_param(n, li, p);
        memset(pt->grad, 0, pt->count * sizeof(float));
    }
    ck_assert_msg(cnn_net_layer_backward_all(n, li) == CNN_OK, "%s", cnn_error_message());
    float *ab[8] = {0}, *ap[8] = {0};
    for (int b = 0; b < nb && b < 8; b++) {
        cnn_tensor *x = cnn_net_layer_bottom(n, li, b);
        ab[b] = malloc((x->count + 1) * sizeof(float));
        memcpy(ab[b], x->grad, x->count * sizeof(float));
    }
    for (int p = 0; p < np && p < 8; p++) {
        cnn_tensor *x = cnn_net_layer_param(n, li, p);
        ap[p] = malloc((x->count + 1) * sizeof(float));
        memcpy(ap[p], x->grad, x->count * sizeof(float));
    }
    char what[64];
    for (int b = 0; b < nb && b < 8; b++) {
        if (!(bottom_mask & (1u << b))) continue;
        snprintf(what, sizeof what, "%s bottom %d", layer, b);
        gradcheck_tensor(n, li, w, cnn_net_layer_bottom(n, li, b), ab[b], step, tol, what);
    }
    for (int p = 0; p < np && p < 8; p++) {
        snprintf(what, sizeof what, "%s param %d", layer, p);
        gradcheck_tensor(n, li, w, cnn_net_layer_param(n, li, p), ap[p], step, tol, what);
    }
    for (int i = 0; i < 8; i++) {
        free(ab[i]);
        free(ap[i]);
        if (i < nt) free(w[i]);
    }
    cnn_net_free(n);
}

static inline void cnn_test_gradcheck(const char *proto, const char *layer,
                                      unsigned bottom_mask)
{
    cnn_test_gradcheck_ex(proto, layer, bottom_mask, 1e-2, 1e-2, CNN_TRAIN, NULL);
}

/* Runs a suite and returns the number of failures (for main). */
static inline int cnn_test_run(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed;
}

#endif
