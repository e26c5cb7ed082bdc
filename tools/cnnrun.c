/* cnnrun — runs a model once on inputs from a .safetensors file and writes
 * what came out to another: every output blob (or, with --all, every blob),
 * the weighted loss (metadata "loss"), and with --backward every parameter
 * gradient ("grad.<layer>.<index>") and the gradient of every input blob the
 * backward pass reaches ("grad.<blob>"). For debugging models and for
 * comparing cnn with other frameworks (tests/torch_oracle_test.sh). Runs on
 * CUDA device 0 when there is one (--gpu N, --gpus L, --cpu choose; metadata
 * "device" says where); everything is fetched to the host before writing. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cnn.h"
#include "core/net_internal.h"
#include "core/weights.h"
#include "common/tool_device.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: cnnrun MODEL --out OUT [--weights W] [--inputs IN] [--backward]\n"
            "              [--phase TRAIN|TEST] [--seed S] [--all]\n"
            "Runs MODEL forward (and backward) once and writes the results to OUT\n"
            "(.safetensors).\n"
            "  --weights W   parameters from W (.safetensors, \"<layer>.<index>\"); without it\n"
            "                the model's fillers initialise them\n"
            "  --inputs IN   input blobs from IN (.safetensors, tensor name = blob name);\n"
            "                every input blob of the model must be there; a different\n"
            "                shape reshapes the net\n"
            "  --backward    also run backward: writes \"grad.<layer>.<index>\" for every\n"
            "                parameter and \"grad.<blob>\" for every input blob that gets a\n"
            "                gradient (use force_backward: true in MODEL for inputs)\n"
            "  --phase P     TEST (default) or TRAIN\n"
            "  --seed S      seed for fillers and dropout (default 1)\n"
            "  --all         write every blob, not only the outputs\n"
            "%s"
            "OUT holds the output blobs by name and the loss as metadata \"loss\".\n",
            cnn_tool_dev_usage(true));
}

/* A growing list of tensors to write; names are owned by the list. */
typedef struct {
    cnn_safetensors_entry *e;
    char **names;
    int n, cap;
} out_list;

/* Adds `values` (t's shape) under the name printf(fmt, ...); a buffer that is
 * already listed (an in-place top seen again) is skipped. */
static cnn_status out_add(out_list *o, const cnn_tensor *t, const float *values,
                          const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static cnn_status out_add(out_list *o, const cnn_tensor *t, const float *values,
                          const char *fmt, ...)
{
    for (int i = 0; i < o->n; i++)
        if (o->e[i].data == values) return CNN_OK;
    if (o->n == o->cap) {
        int cap = o->cap ? 2 * o->cap : 16;
        cnn_safetensors_entry *e = realloc(o->e, (size_t)cap * sizeof *e);
        if (!e) return CNN_ERROR(CNN_ERR_MEMORY, "out of memory");
        o->e = e;
        char **names = realloc(o->names, (size_t)cap * sizeof *names);
        if (!names) return CNN_ERROR(CNN_ERR_MEMORY, "out of memory");
        o->names = names;
        o->cap = cap;
    }
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = malloc((size_t)len + 1);
    if (!s) return CNN_ERROR(CNN_ERR_MEMORY, "out of memory");
    va_start(ap, fmt);
    vsnprintf(s, (size_t)len + 1, fmt, ap);
    va_end(ap);
    o->names[o->n] = s;
    o->e[o->n] = (cnn_safetensors_entry){
        .name = s, .ndim = t->ndim, .shape = t->shape, .data = values};
    o->n++;
    return CNN_OK;
}

static void out_free(out_list *o)
{
    for (int i = 0; i < o->n; i++) free(o->names[i]);
    free(o->names);
    free(o->e);
}

static bool is_input(const cnn_net *n, const cnn_tensor *t)
{
    for (int i = 0; i < cnn_net_num_inputs(n); i++)
        if (cnn_net_input(n, i) == t) return true;
    return false;
}

/* Copies every input blob from `path`; reshapes the net when a shape differs.
 * Tensors in the file that are not input blobs are errors (likely typos). */
static cnn_status set_inputs(cnn_net *n, const char *path)
{
    cnn_safetensors *st_file = NULL;
    cnn_status st = cnn_safetensors_open(path, &st_file);
    if (st != CNN_OK) return st;
    bool reshaped = false;
    for (int i = 0; i < cnn_safetensors_count(st_file); i++) {
        const char *name = cnn_safetensors_name(st_file, i);
        cnn_tensor *t = cnn_net_blob(n, name);
        if (!t || !is_input(n, t)) {
            st = CNN_ERROR(CNN_ERR_ARG, "%s: tensor '%s' is not an input blob of the model",
                           path, name);
            goto fail;
        }
    }
    for (int i = 0; i < cnn_net_num_inputs(n); i++) {
        cnn_tensor *t = cnn_net_input(n, i);
        int ndim, shape[CNN_MAX_DIMS];
        const float *data;
        if (cnn_safetensors_find(st_file, t->name) < 0) {
            st = CNN_ERROR(CNN_ERR_ARG, "%s: no tensor for input blob '%s'", path, t->name);
            goto fail;
        }
        CNN_TRY(cnn_safetensors_get(st_file, t->name, &ndim, shape, &data));
        if (ndim != t->ndim || memcmp(shape, t->shape, (size_t)ndim * sizeof *shape)) {
            CNN_TRY(cnn_tensor_reshape(t, ndim, shape));
            reshaped = true;
        }
        if (t->count) memcpy(t->data, data, t->count * sizeof *data);
    }
    if (reshaped) CNN_TRY(cnn_net_reshape(n));
fail:
    cnn_safetensors_close(st_file);
    return st;
}

/* True when some layer computes the gradient of blob `t` (its one reader,
 * since the net inserts Split layers for blobs with several readers). */
static bool gets_gradient(const cnn_net *n, const cnn_tensor *t)
{
    for (int i = 0; i < cnn_net_num_layers(n); i++) {
        const cnn_layer *l = cnn_net_layer(n, i);
        if (!l->need_backward) continue;
        for (int b = 0; b < l->n_bottom; b++)
            if (l->bottom[b] == t && l->propagate_down[b]) return true;
    }
    return false;
}

typedef struct {
    const char *model, *weights, *inputs, *out, *device;
    bool backward, all;
    cnn_net_opts opts;
} run_args;

static cnn_status run(const run_args *a)
{
    cnn_status st = CNN_OK;
    cnn_net *n = NULL;
    out_list o = {0};
    float loss = 0;
    CNN_TRY(cnn_net_from_file(a->model, &a->opts, &n));
    if (a->weights) CNN_TRY(cnn_weights_load(n, a->weights, false));
    if (a->inputs) {
        CNN_TRY(set_inputs(n, a->inputs));
    } else if (cnn_net_num_inputs(n) > 0) {
        st = CNN_ERROR(CNN_ERR_ARG, "%s has input blobs ('%s', ...): give them with --inputs",
                       a->model, cnn_net_input(n, 0)->name);
        goto fail;
    }
    CNN_TRY(cnn_net_forward(n, &loss));
    if (a->backward) {
        cnn_net_zero_param_grads(n);
        CNN_TRY(cnn_net_backward(n));
    }
    CNN_TRY(cnn_net_sync_host(n));
    if (a->all) {
        for (int i = 0; i < cnn_net_num_layers(n); i++)
            for (int t = 0; t < cnn_net_layer_num_tops(n, i); t++) {
                cnn_tensor *x = cnn_net_layer_top(n, i, t);
                CNN_TRY(out_add(&o, x, x->data, "%s", x->name));
            }
    } else {
        for (int i = 0; i < cnn_net_num_outputs(n); i++) {
            cnn_tensor *x = cnn_net_output(n, i);
            CNN_TRY(out_add(&o, x, x->data, "%s", x->name));
        }
    }
    if (a->backward) {
        for (int i = 0; i < cnn_net_num_params(n); i++) {
            const cnn_param_info *p = cnn_net_param_info(n, i);
            CNN_TRY(out_add(&o, p->tensor, p->tensor->grad, "grad.%s.%d", p->layer, p->index));
        }
        for (int i = 0; i < cnn_net_num_inputs(n); i++) {
            cnn_tensor *x = cnn_net_input(n, i);
            if (gets_gradient(n, x)) CNN_TRY(out_add(&o, x, x->grad, "grad.%s", x->name));
        }
    }
    char loss_text[32];
    snprintf(loss_text, sizeof loss_text, "%.9g", loss);
    const char *meta[] = {"loss", loss_text, "model", a->model,
                          "phase", a->opts.phase == CNN_TRAIN ? "TRAIN" : "TEST",
                          "device", a->device, NULL};
    CNN_TRY(cnn_safetensors_write(a->out, o.e, o.n, meta));
fail:
    out_free(&o);
    cnn_net_free(n);
    return st;
}

int main(int argc, char **argv)
{
    run_args a = {.opts = cnn_net_default_opts()};
    cnn_tool_dev dev;
    cnn_tool_dev_init(&dev, "cnnrun", true);
    a.opts.phase = CNN_TEST;
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        bool has_value = i + 1 < argc;
        int d = cnn_tool_dev_arg(&dev, argc, argv, &i);
        if (d < 0) return 2;
        if (d > 0) continue;
        if (!strcmp(s, "-h") || !strcmp(s, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(s, "--weights") && has_value) {
            a.weights = argv[++i];
        } else if (!strcmp(s, "--inputs") && has_value) {
            a.inputs = argv[++i];
        } else if (!strcmp(s, "--out") && has_value) {
            a.out = argv[++i];
        } else if (!strcmp(s, "--backward")) {
            a.backward = true;
        } else if (!strcmp(s, "--all")) {
            a.all = true;
        } else if (!strcmp(s, "--phase") && has_value) {
            const char *p = argv[++i];
            if (!strcmp(p, "TRAIN") || !strcmp(p, "train")) {
                a.opts.phase = CNN_TRAIN;
            } else if (!strcmp(p, "TEST") || !strcmp(p, "test")) {
                a.opts.phase = CNN_TEST;
            } else {
                fprintf(stderr, "cnnrun: --phase must be TRAIN or TEST, not '%s'\n", p);
                return 2;
            }
        } else if (!strcmp(s, "--seed") && has_value) {
            char *end;
            errno = 0;
            unsigned long long v = strtoull(argv[++i], &end, 10);
            if (errno || *end || end == argv[i] || argv[i][0] == '-') {
                fprintf(stderr, "cnnrun: --seed wants a non-negative integer, not '%s'\n",
                        argv[i]);
                return 2;
            }
            a.opts.seed = v;
        } else if ((s[0] == '-' && s[1]) || a.model) {
            fprintf(stderr, "cnnrun: unexpected argument: %s\n", s);
            usage(stderr);
            return 2;
        } else {
            a.model = s;
        }
    }
    if (!a.model || !a.out) {
        fprintf(stderr, "cnnrun: %s\n", !a.model ? "no MODEL given" : "no --out given");
        usage(stderr);
        return 2;
    }
    char desc[512];
    if (cnn_tool_dev_resolve(&dev, &a.opts)) return 1;
    a.device = cnn_tool_dev_describe(&dev, desc, sizeof desc);
    if (run(&a) != CNN_OK) {
        fprintf(stderr, "cnnrun: %s\n", cnn_error_message());
        return 1;
    }
    return 0;
}
