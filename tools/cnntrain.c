/* cnntrain — trains a model: reads the solver (a model's `solver` block or a
 * Caffe solver.prototxt), runs the training loop, prints progress and test
 * results, writes a JSON-lines log and snapshots, and resumes from one.
 * SIGINT/SIGTERM finish the current iteration, snapshot and exit 130/143.
 * Trains on CUDA device 0 when there is one (--gpu N, --gpus L, --cpu
 * choose); the first line names the device. */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/cnn.h"
#include "core/device.h"
#include "core/finetune.h"
#include "solvers/solver.h"
#include "common/tool_device.h"

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig) { stop_signal = sig; }

static void usage(FILE *f)
{
    fprintf(f,
            "usage: cnntrain MODEL|SOLVER [options]\n"
            "Trains the net of a model file with a solver { } block, or of a Caffe\n"
            "solver.prototxt naming it with net: \"path\".\n"
            "%s"
            "  --devices N           on the CPU: N logical CPU devices, each running the\n"
            "                        layers whose device: field names it on a thread of\n"
            "                        its own (default 1; device: K needs N > K)\n"
            "  --iterations N        train for N iterations (replaces max_iter)\n"
            "  --cuda-graph          on a GPU: replay each step's passes as a CUDA graph\n"
            "                        (as the solver block's cuda_graph: true)\n"
            "  --weights F[,F...]    initial weights (.safetensors or .caffemodel) copied by\n"
            "                        layer name; new or reshaped layers keep their fillers\n"
            "                        (a table shows what was loaded)\n"
            "  --strict-weights      with --weights: a parameter not loaded or a tensor not\n"
            "                        used is an error\n"
            "  --resume F            continue from a .solverstate snapshot\n"
            "  --log F               write JSON lines (display and test records) to F\n"
            "                        (appended to when resuming)\n"
            "  --snapshot-prefix P   write snapshots as P_iter_N.{safetensors,solverstate}\n"
            "  --quiet               print only errors and the final line\n",
            cnn_tool_dev_usage(true));
}

typedef struct run_state {
    cnn_solver *s;
    FILE *log;
    bool quiet, tty;
    int max_iter, batch, start_iter;
    size_t samples;      /* images in one epoch, 0 when unknown */
    double t_start;      /* when training began */
    double t_last;       /* time of the last event */
    double excluded;     /* seconds spent testing and snapshotting */
    double t_display;    /* time and exclusion at the last display */
    double excl_display;
    int it_display;
    double t_progress;   /* last live-line update */
    bool progress_shown;
    char last_snapshot[CNN_SOLVER_PATH_MAX];
} run_state;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void clear_progress(run_state *r)
{
    if (r->progress_shown) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
        r->progress_shown = false;
    }
}

static const char *duration(double sec, char *buf, size_t n)
{
    if (!isfinite(sec) || sec < 0) return snprintf(buf, n, "?"), buf;
    long s = (long)(sec + 0.5);
    if (s >= 3600)
        snprintf(buf, n, "%ldh%02ldm", s / 3600, (s / 60) % 60);
    else if (s >= 60)
        snprintf(buf, n, "%ldm%02lds", s / 60, s % 60);
    else
        snprintf(buf, n, "%lds", s);
    return buf;
}

static void log_json(run_state *r, cJSON *o)
{
    char *text = o ? cJSON_PrintUnformatted(o) : NULL;
    if (text) {
        fputs(text, r->log);
        fputc('\n', r->log);
        fflush(r->log);
    }
    free(text);
    cJSON_Delete(o);
}

/* Epochs of training data seen after `iter` iterations (NAN when unknown). */
static double epoch_at(const run_state *r, int iter)
{
    const cnn_solver_config *c = cnn_solver_get_config(r->s);
    return r->samples ? (double)iter * r->batch * c->iter_size / (double)r->samples : NAN;
}

/* "  epoch E.EE" for the progress lines, or "" when the epoch size is
 * unknown (Input layers). */
static const char *epoch_text(const run_state *r, int iter, char *buf, size_t n)
{
    buf[0] = 0;
    if (r->samples) snprintf(buf, n, "  epoch %.2f", epoch_at(r, iter));
    return buf;
}

static void on_iter(run_state *r, const cnn_solver_event *e, double t)
{
    int done = e->iter - r->start_iter;
    double busy = t - r->t_start - r->excluded;
    double per_iter = done > 0 ? busy / done : NAN;
    const cnn_solver_config *c = cnn_solver_get_config(r->s);
    double images = (double)r->batch * c->iter_size;
    if (r->tty && !r->quiet && (t - r->t_progress > 0.1 || e->iter == r->max_iter)) {
        char eta[32], ep[32];
        fprintf(stderr, "\r\033[Kiteration %d/%d%s  loss %.4g  lr %.3g  %.0f img/s  ETA %s",
                e->iter, r->max_iter, epoch_text(r, e->iter, ep, sizeof ep), e->loss, e->lr,
                per_iter > 0 ? images / per_iter : 0.0,
                duration(per_iter * (r->max_iter - e->iter), eta, sizeof eta));
        fflush(stderr);
        r->progress_shown = true;
        r->t_progress = t;
    }
    if (e->kind != CNN_EV_DISPLAY) return;
    double span = (t - r->t_display) - (r->excluded - r->excl_display);
    int its = e->iter - r->it_display;
    double ips = span > 0 ? its * images / span : 0.0;
    r->t_display = t;
    r->excl_display = r->excluded;
    r->it_display = e->iter;
    if (!r->quiet) {
        char ep[32];
        clear_progress(r);
        printf("iteration %d/%d%s  loss %.6g  lr %.6g  %.1f img/s\n", e->iter, r->max_iter,
               epoch_text(r, e->iter, ep, sizeof ep), e->loss, e->lr, ips);
        fflush(stdout);
    }
    if (r->log) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "iter", e->iter);
        if (r->samples) cJSON_AddNumberToObject(o, "epoch", epoch_at(r, e->iter));
        cJSON_AddNumberToObject(o, "loss", e->loss);
        cJSON_AddNumberToObject(o, "lr", e->lr);
        cJSON_AddNumberToObject(o, "images_per_sec", ips);
        cJSON_AddNumberToObject(o, "data_wait_s", cnn_net_data_wait_seconds(cnn_solver_net(r->s)));
        log_json(r, o);
    }
}

static void on_test(run_state *r, const cnn_solver_event *e)
{
    const cnn_test_result *t = e->test;
    if (!r->quiet) {
        clear_progress(r);
        printf("test at iteration %d: loss %.6g", t->iter, t->loss);
        if (!isnan(t->accuracy)) printf("  accuracy %.4f", t->accuracy);
        for (int i = 0; i < t->n; i++) printf("%s%s = %.6g", i ? ", " : "  (", t->name[i],
                                               t->value[i]);
        printf("%s\n", t->n ? ")" : "");
        fflush(stdout);
    }
    if (r->log) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "iter", t->iter);
        if (r->samples) cJSON_AddNumberToObject(o, "epoch", epoch_at(r, t->iter));
        cJSON_AddNumberToObject(o, "test_loss", t->loss);
        if (!isnan(t->accuracy)) cJSON_AddNumberToObject(o, "test_accuracy", t->accuracy);
        cJSON *outs = cJSON_AddObjectToObject(o, "test_outputs");
        for (int i = 0; i < t->n; i++)
            if (isfinite(t->value[i])) cJSON_AddNumberToObject(outs, t->name[i], t->value[i]);
        log_json(r, o);
    }
}

static void on_event(const cnn_solver_event *e, void *user)
{
    run_state *r = user;
    double t = now();
    switch (e->kind) {
    case CNN_EV_ITER:
    case CNN_EV_DISPLAY: on_iter(r, e, t); break;
    case CNN_EV_TEST:
        r->excluded += t - r->t_last;
        on_test(r, e);
        break;
    case CNN_EV_SNAPSHOT:
        r->excluded += t - r->t_last;
        snprintf(r->last_snapshot, sizeof r->last_snapshot, "%s", e->path);
        if (!r->quiet) {
            clear_progress(r);
            printf("snapshot at iteration %d: %s\n", e->iter, e->path);
            fflush(stdout);
        }
        break;
    }
    r->t_last = now();
}

/* Parses a positive int argument. */
static bool parse_int(const char *s, int min, int *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > 1000000000L) return false;
    *out = (int)v;
    return true;
}

static int fail(const char *msg)
{
    fprintf(stderr, "cnntrain: %s\n", msg);
    return 1;
}

static void print_summary(const cnn_solver *s, const char *model, const cnn_tool_dev *dev)
{
    const cnn_solver_config *c = cnn_solver_get_config(s);
    cnn_net *n = cnn_solver_net(s), *tn = cnn_solver_test_net(s);
    size_t params = 0;
    for (int i = 0; i < cnn_net_num_params(n); i++)
        params += cnn_net_param_info(n, i)->tensor->count;
    int nd = cnn_solver_num_devices(s);
    char desc[512];
    if (cnn_tool_dev_gpu(dev)) {
        printf("cnntrain: device %s", cnn_tool_dev_describe(dev, desc, sizeof desc));
        if (nd > 1 && !dev->list) printf(" (%d logical devices, one stream each)", nd);
    } else {
        printf("cnntrain: device CPU");
        if (nd > 1) printf(" (%d logical devices, one thread each)", nd);
    }
    printf("; net '%s' from %s: %d layers, %zu parameters, batch %d", cnn_net_name(n), model,
           cnn_net_num_layers(n), params, cnn_solver_batch_size(s));
    if (c->iter_size > 1) printf(" x iter_size %d", c->iter_size);
    printf("; solver %s, lr_policy %s, base_lr %g, max_iter %d, seed %llu\n",
           cnn_solver_type_names[c->update.type], cnn_lr_policy_names[c->lr.policy],
           c->lr.base_lr, c->max_iter, (unsigned long long)cnn_solver_seed(s));
    if (!cnn_tool_dev_gpu(dev) && strcmp(dev->why_cpu, "--cpu"))
        printf("cnntrain: on the CPU: %s\n", dev->why_cpu);
    if (tn)
        printf("test net: %d layers, %d passes every %d iterations\n", cnn_net_num_layers(tn),
               c->test_iter, c->test_interval);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    const char *model = NULL, *weights = NULL, *resume = NULL, *log_path = NULL;
    cnn_solver_opts o = {0};
    int devices = 0;
    bool quiet = false, strict_weights = false;
    cnn_tool_dev dev;
    cnn_tool_dev_init(&dev, "cnntrain", true);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_val = i + 1 < argc;
        int d = cnn_tool_dev_arg(&dev, argc, argv, &i);
        if (d < 0) return 2;
        if (d > 0) continue;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--devices") && has_val) {
            if (!parse_int(argv[++i], 1, &devices) || devices > CNN_MAX_DEVICES) {
                fprintf(stderr, "cnntrain: --devices needs a number from 1 to %d\n",
                        CNN_MAX_DEVICES);
                return 2;
            }
        } else if (!strcmp(a, "--strict-weights")) {
            strict_weights = true;
        } else if (!strcmp(a, "--cuda-graph")) {
            o.cuda_graph = true;
        } else if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) {
            quiet = true;
        } else if (!strcmp(a, "--iterations") && has_val) {
            if (!parse_int(argv[++i], 1, &o.max_iter))
                return fail("--iterations needs a positive number");
        } else if (!strcmp(a, "--weights") && has_val) {
            weights = argv[++i];
        } else if (!strcmp(a, "--resume") && has_val) {
            resume = argv[++i];
        } else if (!strcmp(a, "--log") && has_val) {
            log_path = argv[++i];
        } else if (!strcmp(a, "--snapshot-prefix") && has_val) {
            o.snapshot_prefix = argv[++i];
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "cnntrain: unknown option or missing value: %s\n", a);
            usage(stderr);
            return 2;
        } else if (model) {
            fprintf(stderr, "cnntrain: more than one model file given ('%s', '%s')\n", model,
                    a);
            return 2;
        } else {
            model = a;
        }
    }
    if (!model) {
        usage(stderr);
        return 2;
    }
    if (devices && dev.mode == CNN_TOOL_DEV_GPU) {
        fprintf(stderr, "cnntrain: --devices is for the CPU; with GPUs the --gpus list gives "
                        "the logical devices\n");
        return 2;
    }
    if (devices) dev.mode = CNN_TOOL_DEV_CPU; /* --devices alone asks for the CPU */
    /* On the CPU one logical device unless --devices; on a GPU as many as
     * the model names (--gpus: as many as listed), each with its stream. */
    cnn_net_opts no = cnn_net_default_opts();
    if (cnn_tool_dev_resolve(&dev, &no)) return 1;
    if (!cnn_tool_dev_gpu(&dev)) no.devices = devices ? devices : 1;
    o.devices = no.devices;
    o.gpus = no.gpus;
    memcpy(o.gpu, no.gpu, sizeof o.gpu);
    o.workspace_bytes = no.workspace_bytes;
    o.deterministic = no.deterministic;
    if (strict_weights && !weights) {
        fprintf(stderr, "cnntrain: --strict-weights needs --weights\n");
        return 2;
    }
    if (weights && resume)
        return fail("give --resume to continue training or --weights to fine-tune, "
                    "not both");

    cnn_solver *s = NULL;
    FILE *log = NULL;
    int rc = 1;
    if (cnn_solver_from_file(model, &o, &s) != CNN_OK) return fail(cnn_error_message());
    if (resume && cnn_solver_restore(s, resume) != CNN_OK) goto fail;
    if (log_path && !(log = fopen(log_path, resume ? "a" : "w"))) {
        fprintf(stderr, "cnntrain: cannot open log file '%s': %s\n", log_path, strerror(errno));
        goto done;
    }
    if (!quiet) {
        print_summary(s, model, &dev);
        if (resume) printf("resumed from %s at iteration %d\n", resume, cnn_solver_iter(s));
    }
    if (weights && cnn_finetune_load_list(cnn_solver_net(s), weights, strict_weights,
                                          quiet ? NULL : stdout) != CNN_OK)
        goto fail;

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART | SA_RESETHAND; /* a second signal ends the program at once */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    run_state r = {.s = s, .log = log, .quiet = quiet, .tty = isatty(STDERR_FILENO),
                   .max_iter = cnn_solver_get_config(s)->max_iter,
                   .batch = cnn_solver_batch_size(s), .start_iter = cnn_solver_iter(s),
                   .samples = cnn_net_data_samples(cnn_solver_net(s))};
    r.t_start = r.t_last = r.t_display = now();
    r.it_display = r.start_iter;
    cnn_status st = cnn_solver_solve(s, &stop_signal, on_event, &r);
    clear_progress(&r);
    if (st != CNN_OK) goto fail;
    char took[32];
    duration(now() - r.t_start, took, sizeof took);
    if (cnn_solver_stopped(s)) {
        int sig = stop_signal;
        fprintf(stderr, "cnntrain: %s at iteration %d; snapshot written to %s\n",
                sig == SIGTERM ? "terminated" : "interrupted", cnn_solver_iter(s),
                r.last_snapshot[0] ? r.last_snapshot : "(none)");
        rc = 128 + sig;
        goto done;
    }
    printf("done: %d iterations in %s%s%s\n", cnn_solver_iter(s), took,
           r.last_snapshot[0] ? "; snapshot " : "", r.last_snapshot);
    double waited = cnn_net_data_wait_seconds(cnn_solver_net(s)), ran = now() - r.t_start;
    if (!quiet && r.samples)
        printf("data: training waited %.1f s for batches (%.1f%% of the run)\n", waited,
               ran > 0 ? 100 * waited / ran : 0.0);
    if (!quiet && (cnn_solver_get_config(s)->cuda_graph || o.cuda_graph))
        printf("CUDA graph: %s\n", cnn_net_graph_note(cnn_solver_net(s)));
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "cnntrain: %s\n", cnn_error_message());
    rc = 1;
done:
    if (log) fclose(log);
    cnn_solver_free(s);
    return rc;
}
