/* cnntime — times a model layer by layer, like `caffe time`: one warm-up
 * iteration, then N iterations of forward (every layer in order) and backward
 * (the layers the net's backward plan runs, in reverse), each layer timed
 * with CLOCK_MONOTONIC. Input blobs are filled with random values; those that
 * feed a classification loss or Accuracy as labels get valid class indices. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cJSON.h>

#include "core/cnn.h"
#include "core/net_internal.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: cnntime MODEL [--iterations N] [--phase TRAIN|TEST] [--json]\n"
               "Times each layer's forward and backward pass and the whole iteration.\n"
               "  --iterations N  timed iterations after one warm-up (default 50)\n"
               "  --phase P       TRAIN (default) or TEST\n"
               "  --json          one JSON object instead of a table\n");
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Layer types whose bottom 1 holds class indices into bottom 0's axis 1. */
static bool takes_class_labels(const char *type)
{
    static const char *const names[] = {"SoftmaxWithLoss", "Accuracy", "MultinomialLogisticLoss",
                                        "InfogainLoss", "HingeLoss", NULL};
    for (int i = 0; names[i]; i++)
        if (!strcmp(type, names[i])) return true;
    return false;
}

/* The tensor `t` comes from before any Split copies (what the model names). */
static const cnn_tensor *unsplit(const cnn_net *n, const cnn_tensor *t)
{
    for (int i = cnn_net_num_layers(n) - 1; i >= 0; i--) {
        if (strcmp(cnn_net_layer_type(n, i), "Split")) continue;
        for (int k = 0; k < cnn_net_layer_num_tops(n, i); k++)
            if (cnn_net_layer_top(n, i, k) == t && cnn_net_layer_num_bottoms(n, i) == 1)
                return unsplit(n, cnn_net_layer_bottom(n, i, 0));
    }
    return t;
}

/* How input blob `in` is consumed: 0 plain values, else the class count C
 * (labels in [0, C)), or -1 for 0/1 targets (SigmoidCrossEntropyLoss). */
static int label_kind(const cnn_net *n, const cnn_tensor *in)
{
    int classes = 0;
    for (int i = 0; i < cnn_net_num_layers(n); i++) {
        const char *type = cnn_net_layer_type(n, i);
        if (cnn_net_layer_num_bottoms(n, i) < 2 ||
            unsplit(n, cnn_net_layer_bottom(n, i, 1)) != in)
            continue;
        if (!strcmp(type, "SigmoidCrossEntropyLoss")) return -1;
        if (!takes_class_labels(type)) continue;
        int c = cnn_tensor_dim(cnn_net_layer_bottom(n, i, 0), 1);
        if (c > 0 && (classes == 0 || c < classes)) classes = c;
    }
    return classes;
}

static void fill_inputs(cnn_net *n)
{
    cnn_rng rng;
    cnn_rng_seed(&rng, 1234);
    for (int i = 0; i < cnn_net_num_inputs(n); i++) {
        cnn_tensor *t = cnn_net_input(n, i);
        int kind = label_kind(n, t);
        for (size_t k = 0; k < t->count; k++)
            t->data[k] = kind > 0    ? (float)cnn_rng_below(&rng, (uint32_t)kind)
                         : kind < 0 ? (float)cnn_rng_below(&rng, 2)
                                    : (float)(2 * cnn_rng_uniform(&rng) - 1);
    }
}

/* Batch size: dim 0 of the first input, else of the first top of a layer
 * without bottoms (a data layer). */
static int batch_size(const cnn_net *n)
{
    if (cnn_net_num_inputs(n) > 0) return cnn_tensor_dim(cnn_net_input(n, 0), 0);
    for (int i = 0; i < cnn_net_num_layers(n); i++)
        if (cnn_net_layer_num_bottoms(n, i) == 0 && cnn_net_layer_num_tops(n, i) > 0)
            return cnn_tensor_dim(cnn_net_layer_top(n, i, 0), 0);
    return 1;
}

/* Sets the loss tops' gradients to their weights and clears the other
 * outputs' gradients, as cnn_net_backward does before its backward sweep. */
static void seed_loss_grads(cnn_net *n)
{
    for (int i = 0; i < cnn_net_num_outputs(n); i++) {
        cnn_tensor *t = cnn_net_output(n, i);
        memset(t->grad, 0, t->count * sizeof(float));
    }
    for (int i = 0; i < cnn_net_num_layers(n); i++) {
        cnn_layer *l = cnn_net_layer(n, i);
        for (int t = 0; t < l->n_top; t++)
            if (l->loss_weight[t] != 0)
                for (size_t k = 0; k < l->top[t]->count; k++)
                    l->top[t]->grad[k] = l->loss_weight[t];
    }
}

/* One iteration; per-layer milliseconds are added to fwd/bwd when not NULL. */
static cnn_status iteration(cnn_net *n, double *fwd, double *bwd)
{
    cnn_status st = CNN_OK;
    int nl = cnn_net_num_layers(n);
    for (int i = 0; i < nl; i++) {
        double t0 = now_ms();
        CNN_TRY(cnn_net_layer_forward(n, i));
        if (fwd) fwd[i] += now_ms() - t0;
    }
    cnn_net_zero_param_grads(n);
    seed_loss_grads(n);
    for (int i = nl - 1; i >= 0; i--) {
        if (!cnn_net_layer(n, i)->need_backward) continue;
        double t0 = now_ms();
        CNN_TRY(cnn_net_layer_backward(n, i));
        if (bwd) bwd[i] += now_ms() - t0;
    }
fail:
    return st;
}

static int print_json(const cnn_net *n, const char *model, const char *phase, int iters,
                      int batch, const double *fwd, const double *bwd, double f, double b,
                      double it)
{
    cJSON *j = cJSON_CreateObject(), *layers = NULL;
    if (!j || !cJSON_AddStringToObject(j, "model", model) ||
        !cJSON_AddStringToObject(j, "phase", phase) ||
        !cJSON_AddNumberToObject(j, "iterations", iters) ||
        !cJSON_AddNumberToObject(j, "batch", batch) ||
        !(layers = cJSON_AddArrayToObject(j, "layers")))
        goto oom;
    for (int i = 0; i < cnn_net_num_layers(n); i++) {
        cJSON *e = cJSON_CreateObject();
        if (!e) goto oom;
        cJSON_AddItemToArray(layers, e);
        bool back = cnn_net_layer(n, i)->need_backward;
        if (!cJSON_AddStringToObject(e, "name", cnn_net_layer_name(n, i)) ||
            !cJSON_AddStringToObject(e, "type", cnn_net_layer_type(n, i)) ||
            !cJSON_AddNumberToObject(e, "forward_ms", fwd[i] / iters) ||
            !(back ? cJSON_AddNumberToObject(e, "backward_ms", bwd[i] / iters)
                   : cJSON_AddNullToObject(e, "backward_ms")))
            goto oom;
    }
    if (!cJSON_AddNumberToObject(j, "forward_ms", f) ||
        !cJSON_AddNumberToObject(j, "backward_ms", b) ||
        !cJSON_AddNumberToObject(j, "iteration_ms", it) ||
        !cJSON_AddNumberToObject(j, "images_per_s", it > 0 ? batch * 1e3 / it : 0))
        goto oom;
    char *s = cJSON_PrintUnformatted(j);
    if (!s) goto oom;
    printf("%s\n", s);
    free(s);
    cJSON_Delete(j);
    return 0;
oom:
    cJSON_Delete(j);
    fprintf(stderr, "cnntime: out of memory\n");
    return 1;
}

int main(int argc, char **argv)
{
    const char *model = NULL;
    int iters = 50;
    bool json = false;
    cnn_net_opts o = cnn_net_default_opts();
    o.phase = CNN_TRAIN;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--iterations") && i + 1 < argc) {
            char *end;
            errno = 0;
            long v = strtol(argv[++i], &end, 10);
            if (errno || *end || end == argv[i] || v < 1 || v > 10000000) {
                fprintf(stderr, "cnntime: --iterations wants a positive integer, not '%s'\n",
                        argv[i]);
                return 2;
            }
            iters = (int)v;
        } else if (!strcmp(a, "--phase") && i + 1 < argc) {
            const char *p = argv[++i];
            if (!strcmp(p, "TRAIN") || !strcmp(p, "train")) {
                o.phase = CNN_TRAIN;
            } else if (!strcmp(p, "TEST") || !strcmp(p, "test")) {
                o.phase = CNN_TEST;
            } else {
                fprintf(stderr, "cnntime: --phase must be TRAIN or TEST, not '%s'\n", p);
                return 2;
            }
        } else if (!strcmp(a, "--json")) {
            json = true;
        } else if ((a[0] == '-' && a[1]) || model) {
            fprintf(stderr, "cnntime: unexpected argument: %s\n", a);
            usage(stderr);
            return 2;
        } else {
            model = a;
        }
    }
    if (!model) {
        fprintf(stderr, "cnntime: no MODEL given\n");
        usage(stderr);
        return 2;
    }

    int rc = 1;
    cnn_net *n = NULL;
    double *fwd = NULL, *bwd = NULL;
    if (cnn_net_from_file(model, &o, &n) != CNN_OK) {
        fprintf(stderr, "cnntime: %s\n", cnn_error_message());
        goto done;
    }
    int nl = cnn_net_num_layers(n);
    fwd = calloc((size_t)nl + 1, sizeof *fwd);
    bwd = calloc((size_t)nl + 1, sizeof *bwd);
    if (!fwd || !bwd) {
        fprintf(stderr, "cnntime: out of memory\n");
        goto done;
    }
    fill_inputs(n);
    if (iteration(n, NULL, NULL) != CNN_OK) {
        fprintf(stderr, "cnntime: warm-up: %s\n", cnn_error_message());
        goto done;
    }
    double total = 0;
    for (int it = 0; it < iters; it++) {
        double t0 = now_ms();
        if (iteration(n, fwd, bwd) != CNN_OK) {
            fprintf(stderr, "cnntime: iteration %d: %s\n", it, cnn_error_message());
            goto done;
        }
        total += now_ms() - t0;
    }
    double f = 0, b = 0, it_ms = total / iters;
    for (int i = 0; i < nl; i++) {
        f += fwd[i] / iters;
        b += bwd[i] / iters;
    }
    int batch = batch_size(n);
    const char *phase = o.phase == CNN_TRAIN ? "TRAIN" : "TEST";
    if (json) {
        if (print_json(n, model, phase, iters, batch, fwd, bwd, f, b, it_ms)) goto done;
    } else {
        printf("cnntime: %s, phase %s, batch %d, %d iterations after 1 warm-up\n\n", model,
               phase, batch, iters);
        printf("%-24s %-22s %12s %12s\n", "layer", "type", "forward ms", "backward ms");
        for (int i = 0; i < nl; i++) {
            printf("%-24s %-22s %12.4f ", cnn_net_layer_name(n, i), cnn_net_layer_type(n, i),
                   fwd[i] / iters);
            if (cnn_net_layer(n, i)->need_backward)
                printf("%12.4f\n", bwd[i] / iters);
            else
                printf("%12s\n", "-");
        }
        printf("\naverage forward:          %10.4f ms\n", f);
        printf("average backward:         %10.4f ms\n", b);
        printf("average forward-backward: %10.4f ms (%.1f images/s)\n", it_ms,
               it_ms > 0 ? batch * 1e3 / it_ms : 0.0);
    }
    rc = 0;
done:
    free(fwd);
    free(bwd);
    cnn_net_free(n);
    return rc;
}
