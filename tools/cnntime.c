/* cnntime — times a model layer by layer, like `caffe time`: one warm-up
 * iteration, then N iterations of forward (every layer in order) and backward
 * (the layers the net's backward plan runs, in reverse), each layer timed
 * with CLOCK_MONOTONIC. Input blobs are filled with random values; those that
 * feed a classification loss or Accuracy as labels get valid class indices.
 *
 * On a GPU each layer with a GPU path is timed with CUDA events recorded on
 * its context's stream around it (uploads of host-written bottoms, such as
 * the input batch, queued before the first); a layer that runs on the host
 * is timed with the clock after the streams have drained. The iteration time is then
 * measured separately, as training runs it: N more iterations of
 * cnn_net_forward and cnn_net_backward (all devices concurrently), from the
 * drained streams to the drained streams. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cJSON.h>

#include "core/cnn.h"
#include "core/gpu.h"
#include "core/net_internal.h"
#include "common/tool_device.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: cnntime MODEL [--iterations N] [--phase TRAIN|TEST] [--json]\n"
               "               [--gpu N | --gpus L | --cpu] [--workspace-mb N] [--deterministic]\n"
               "               [--cuda-graph]\n"
               "Times each layer's forward and backward pass and the whole iteration.\n"
               "  --iterations N        timed iterations after one warm-up (default 50)\n"
               "  --phase P             TRAIN (default) or TEST\n"
               "  --json                one JSON object instead of a table\n"
               "  --cuda-graph          on a GPU: time whole iterations replayed as a CUDA\n"
               "                        graph (the per-layer table runs eagerly)\n"
               "%s", cnn_tool_dev_usage(true));
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
        cnn_host_wrote_data(t);
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
        cnn_host_wrote_grad(t);
    }
    for (int i = 0; i < cnn_net_num_layers(n); i++) {
        cnn_layer *l = cnn_net_layer(n, i);
        for (int t = 0; t < l->n_top; t++)
            if (l->loss_weight[t] != 0) {
                for (size_t k = 0; k < l->top[t]->count; k++)
                    l->top[t]->grad[k] = l->loss_weight[t];
                cnn_host_wrote_grad(l->top[t]);
            }
    }
}

/* CUDA events around each layer's passes on a GPU net: ev[4 i + 0..1] for
 * forward, ev[4 i + 2..3] for backward; NULL where that pass runs on the
 * host. The contexts are drained before a host layer is timed. */
typedef struct gpu_timer {
    int n_ctx;
    cnn_cuda_ctx *ctx[CNN_MAX_DEVICES];
    cnn_cuda_event **ev;
} gpu_timer;

/* Whether layer l's forward (or backward) runs on its GPU. */
static bool on_gpu(const cnn_layer *l, bool backward)
{
    return l->cuda && (backward ? l->type->backward_gpu : l->type->forward_gpu);
}

static void gtimer_free(gpu_timer *tm, int nl)
{
    if (tm->ev)
        for (int i = 0; i < 4 * nl; i++) cnn_cuda_event_free(tm->ev[i]);
    free(tm->ev);
    *tm = (gpu_timer){0};
}

static cnn_status gtimer_create(cnn_net *n, gpu_timer *tm)
{
    cnn_status st = CNN_OK;
    int nl = cnn_net_num_layers(n);
    *tm = (gpu_timer){0};
    if (!(tm->ev = calloc(4 * (size_t)nl + 1, sizeof *tm->ev)))
        return CNN_ERROR(CNN_ERR_MEMORY, "out of memory");
    for (int d = 0; d < cnn_net_num_devices(n) && tm->n_ctx < CNN_MAX_DEVICES; d++)
        if (cnn_net_cuda(n, d)) tm->ctx[tm->n_ctx++] = cnn_net_cuda(n, d);
    for (int i = 0; i < nl; i++) {
        cnn_layer *l = cnn_net_layer(n, i);
        for (int k = 0; k < 4; k++)
            if (on_gpu(l, k >= 2)) CNN_TRY(cnn_cuda_event_create(l->cuda, true, &tm->ev[4 * i + k]));
    }
    return CNN_OK;
fail:
    gtimer_free(tm, nl);
    return st;
}

/* Waits for every context's stream (no-op on the CPU). */
static cnn_status drain(const gpu_timer *tm)
{
    cnn_status st = CNN_OK;
    for (int c = 0; c < tm->n_ctx; c++) CNN_TRY(cnn_cuda_ctx_sync(tm->ctx[c]));
fail:
    return st;
}

/* Runs one pass of layer i, timed by events (ev != NULL) or by the clock
 * into *ms after draining the streams. */
static cnn_status timed_pass(cnn_net *n, const gpu_timer *tm, int i, bool backward, double *ms)
{
    cnn_status st = CNN_OK;
    cnn_layer *l = cnn_net_layer(n, i);
    cnn_cuda_event *const *ev = tm->ev ? &tm->ev[4 * i + (backward ? 2 : 0)] : NULL;
    if (ev && ev[0]) {
        /* Bottoms the host wrote (the input batch) are uploaded before the
         * start event: a layer's time is its own work. */
        for (int b = 0; b < l->n_bottom && !backward; b++) {
            const float *p;
            CNN_TRY(cnn_gpu_read(l->bottom[b], &p));
        }
        CNN_TRY(cnn_cuda_event_record(l->cuda, ev[0]));
        CNN_TRY(backward ? cnn_net_layer_backward(n, i) : cnn_net_layer_forward(n, i));
        CNN_TRY(cnn_cuda_event_record(l->cuda, ev[1]));
        return CNN_OK;
    }
    CNN_TRY(drain(tm));
    double t0 = now_ms();
    CNN_TRY(backward ? cnn_net_layer_backward(n, i) : cnn_net_layer_forward(n, i));
    if (ms) *ms += now_ms() - t0;
fail:
    return st;
}

/* Adds the event-timed passes of the last iteration to fwd and bwd. */
static cnn_status add_events(const cnn_net *n, const gpu_timer *tm, double *fwd, double *bwd)
{
    cnn_status st = CNN_OK;
    for (int i = 0; i < cnn_net_num_layers(n); i++)
        for (int k = 0; k < 4; k += 2) {
            cnn_cuda_event *const *ev = &tm->ev[4 * i + k];
            if (!ev[0] || (k == 2 && !cnn_net_layer(n, i)->need_backward)) continue;
            float ms = 0;
            CNN_TRY(cnn_cuda_event_elapsed(ev[0], ev[1], &ms));
            (k ? bwd : fwd)[i] += ms;
        }
fail:
    return st;
}

/* One iteration layer by layer; per-layer milliseconds are added to fwd/bwd
 * when not NULL (tm: the GPU timer, zeroed on the CPU). */
static cnn_status iteration(cnn_net *n, const gpu_timer *tm, double *fwd, double *bwd)
{
    cnn_status st = CNN_OK;
    int nl = cnn_net_num_layers(n);
    for (int i = 0; i < nl; i++) CNN_TRY(timed_pass(n, tm, i, false, fwd ? &fwd[i] : NULL));
    CNN_TRY(cnn_net_zero_grads(n));
    seed_loss_grads(n);
    for (int i = nl - 1; i >= 0; i--) {
        if (!cnn_net_layer(n, i)->need_backward) continue;
        CNN_TRY(timed_pass(n, tm, i, true, bwd ? &bwd[i] : NULL));
    }
    CNN_TRY(drain(tm));
    if (fwd && tm->ev) CNN_TRY(add_events(n, tm, fwd, bwd));
fail:
    return st;
}

/* A training iteration as the solver runs it (GPU nets): mean milliseconds
 * of `iters` after one warm-up, from drained streams to drained streams. */
static cnn_status train_iterations(cnn_net *n, const gpu_timer *tm, int iters, double *ms)
{
    cnn_status st = CNN_OK;
    double t0 = 0;
    /* A CUDA graph is recorded at the second call: both untimed. */
    int warm = strcmp(cnn_net_graph_note(n), "not asked for") ? 2 : 1;
    for (int it = 0; it < iters + warm; it++) {
        if (it == warm) {
            CNN_TRY(drain(tm));
            t0 = now_ms();
        }
        CNN_TRY(cnn_net_zero_grads(n));
        CNN_TRY(cnn_net_forward_backward(n));
    }
    CNN_TRY(drain(tm));
    *ms = (now_ms() - t0) / iters;
fail:
    return st;
}

/* The host's share of a training iteration (GPU nets): mean milliseconds
 * to queue one, each started on drained streams so that the host never
 * waits for the device. Near the iteration time, the GPU waits for the host
 * (launch-bound: fewer launches or CUDA graphs would help); well below, the
 * host keeps ahead and the kernels set the pace. */
static cnn_status queue_time(cnn_net *n, const gpu_timer *tm, int iters, double *ms)
{
    cnn_status st = CNN_OK;
    double total = 0;
    for (int it = 0; it < iters; it++) {
        CNN_TRY(drain(tm));
        double t0 = now_ms();
        CNN_TRY(cnn_net_zero_grads(n));
        CNN_TRY(cnn_net_forward_backward(n));
        total += now_ms() - t0;
    }
    CNN_TRY(drain(tm));
    *ms = total / iters;
fail:
    return st;
}

/* Where layer i runs: "cuda:K" (K physical), "host" (a GPU net's layer
 * without a GPU path) or "cpu". */
static const char *where(const cnn_net *n, int i, bool gpu, char *buf, size_t len)
{
    const cnn_layer *l = cnn_net_layer(n, i);
    if (on_gpu(l, false))
        snprintf(buf, len, "cuda:%d", cnn_cuda_ctx_device(l->cuda));
    else
        snprintf(buf, len, gpu ? "host" : "cpu");
    return buf;
}

/* What a run measured. */
typedef struct timing {
    const char *model, *phase, *device;
    bool gpu;
    int iters, batch;
    double *fwd, *bwd; /* summed milliseconds per layer */
    double f, b, it;   /* mean forward, backward, iteration milliseconds */
    double host;       /* GPU: mean milliseconds the host takes to queue an iteration */
} timing;

static int print_json(const cnn_net *n, const timing *r)
{
    char buf[32];
    cJSON *j = cJSON_CreateObject(), *layers = NULL;
    if (!j || !cJSON_AddStringToObject(j, "model", r->model) ||
        !cJSON_AddStringToObject(j, "phase", r->phase) ||
        !cJSON_AddStringToObject(j, "device", r->device) ||
        !cJSON_AddNumberToObject(j, "iterations", r->iters) ||
        !cJSON_AddNumberToObject(j, "batch", r->batch) ||
        !(layers = cJSON_AddArrayToObject(j, "layers")))
        goto oom;
    for (int i = 0; i < cnn_net_num_layers(n); i++) {
        cJSON *e = cJSON_CreateObject();
        if (!e) goto oom;
        cJSON_AddItemToArray(layers, e);
        bool back = cnn_net_layer(n, i)->need_backward;
        if (!cJSON_AddStringToObject(e, "name", cnn_net_layer_name(n, i)) ||
            !cJSON_AddStringToObject(e, "type", cnn_net_layer_type(n, i)) ||
            !cJSON_AddNumberToObject(e, "device", cnn_net_layer_device(n, i)) ||
            !cJSON_AddStringToObject(e, "where", where(n, i, r->gpu, buf, sizeof buf)) ||
            !cJSON_AddNumberToObject(e, "forward_ms", r->fwd[i] / r->iters) ||
            !(back ? cJSON_AddNumberToObject(e, "backward_ms", r->bwd[i] / r->iters)
                   : cJSON_AddNullToObject(e, "backward_ms")))
            goto oom;
    }
    if (!cJSON_AddNumberToObject(j, "forward_ms", r->f) ||
        !cJSON_AddNumberToObject(j, "backward_ms", r->b) ||
        !cJSON_AddNumberToObject(j, "iteration_ms", r->it) ||
        !cJSON_AddNumberToObject(j, "images_per_s", r->it > 0 ? r->batch * 1e3 / r->it : 0) ||
        (r->gpu && !cJSON_AddNumberToObject(j, "host_queue_ms", r->host)) ||
        (r->gpu && !cJSON_AddStringToObject(j, "cuda_graph", cnn_net_graph_note(n))))
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

static void print_table(const cnn_net *n, const timing *r)
{
    char buf[32];
    printf("cnntime: device %s\n", r->device);
    printf("cnntime: %s, phase %s, batch %d, %d iterations after 1 warm-up\n\n", r->model,
           r->phase, r->batch, r->iters);
    printf("%-24s %-22s %12s %12s\n", "layer", "type", "forward ms", "backward ms");
    for (int i = 0; i < cnn_net_num_layers(n); i++) {
        printf("%-24s %-22s %12.4f ", cnn_net_layer_name(n, i), cnn_net_layer_type(n, i),
               r->fwd[i] / r->iters);
        if (cnn_net_layer(n, i)->need_backward)
            printf("%12.4f\n", r->bwd[i] / r->iters);
        else
            printf("%12s\n", "-");
    }
    printf("\naverage forward:          %10.4f ms\n", r->f);
    printf("average backward:         %10.4f ms\n", r->b);
    printf("average forward-backward: %10.4f ms (%.1f images/s)\n", r->it,
           r->it > 0 ? r->batch * 1e3 / r->it : 0.0);
    if (!r->gpu) return;
    printf("CUDA graph:               %s\n", cnn_net_graph_note(n));
    printf("host queueing:            %10.4f ms per iteration (%.0f%% of it: near 100%%, the GPU "
           "waits for launches)\n",
           r->host, r->it > 0 ? 100 * r->host / r->it : 0.0);
    printf("(layers: CUDA events, each pass alone; forward-backward: cnn_net_forward and "
           "cnn_net_backward as training runs them)\non the host (no GPU path):");
    int host = 0;
    for (int i = 0; i < cnn_net_num_layers(n); i++)
        if (!strcmp(where(n, i, true, buf, sizeof buf), "host"))
            printf("%s %s", host++ ? "," : "", cnn_net_layer_name(n, i));
    printf("%s\n", host ? "" : " none");
}

/* Times the net: layer by layer, then (GPU) whole training passes. */
static int run(cnn_net *n, timing *r)
{
    bool gpu = r->gpu;
    int nl = cnn_net_num_layers(n), rc = 1;
    gpu_timer tm = {0};
    r->fwd = calloc((size_t)nl + 1, sizeof *r->fwd);
    r->bwd = calloc((size_t)nl + 1, sizeof *r->bwd);
    if (!r->fwd || !r->bwd) {
        fprintf(stderr, "cnntime: out of memory\n");
        return 1;
    }
    fill_inputs(n);
    if ((gpu && gtimer_create(n, &tm) != CNN_OK) || iteration(n, &tm, NULL, NULL) != CNN_OK) {
        fprintf(stderr, "cnntime: warm-up: %s\n", cnn_error_message());
        goto done;
    }
    double total = 0;
    for (int it = 0; it < r->iters; it++) {
        double t0 = now_ms();
        if (iteration(n, &tm, r->fwd, r->bwd) != CNN_OK) {
            fprintf(stderr, "cnntime: iteration %d: %s\n", it, cnn_error_message());
            goto done;
        }
        total += now_ms() - t0;
    }
    r->it = total / r->iters;
    if (gpu && (train_iterations(n, &tm, r->iters, &r->it) != CNN_OK ||
                queue_time(n, &tm, r->iters, &r->host) != CNN_OK)) {
        fprintf(stderr, "cnntime: training iterations: %s\n", cnn_error_message());
        goto done;
    }
    for (int i = 0; i < nl; i++) {
        r->f += r->fwd[i] / r->iters;
        r->b += r->bwd[i] / r->iters;
    }
    rc = 0;
done:
    gtimer_free(&tm, nl);
    return rc;
}

int main(int argc, char **argv)
{
    const char *model = NULL;
    int iters = 50;
    bool json = false;
    cnn_net_opts o = cnn_net_default_opts();
    cnn_tool_dev dev;
    cnn_tool_dev_init(&dev, "cnntime", true);
    o.phase = CNN_TRAIN;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int d = cnn_tool_dev_arg(&dev, argc, argv, &i);
        if (d < 0) return 2;
        if (d > 0) continue;
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
        } else if (!strcmp(a, "--cuda-graph")) {
            o.cuda_graph = true;
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
    if (cnn_tool_dev_resolve(&dev, &o)) return 1;

    char desc[512];
    timing r = {.model = model, .phase = o.phase == CNN_TRAIN ? "TRAIN" : "TEST",
                .device = cnn_tool_dev_describe(&dev, desc, sizeof desc),
                .gpu = cnn_tool_dev_gpu(&dev), .iters = iters};
    int rc = 1;
    cnn_net *n = NULL;
    if (cnn_net_from_file(model, &o, &n) != CNN_OK) {
        fprintf(stderr, "cnntime: %s\n", cnn_error_message());
        goto done;
    }
    if (run(n, &r)) goto done;
    r.batch = batch_size(n);
    if (json)
        rc = print_json(n, &r);
    else
        print_table(n, &r), rc = 0;
done:
    free(r.fwd);
    free(r.bwd);
    cnn_net_free(n);
    return rc;
}
