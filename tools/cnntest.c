/* cnntest — scores trained weights on a model's TEST-phase data: runs N
 * batches forward, averages every output blob (loss, accuracy, …) and builds
 * a top-1 confusion matrix from the scores and labels the first Accuracy
 * layer reads. Like `caffe test`, plus the confusion matrix. Runs on CUDA
 * device 0 when there is one (--gpu N, --cpu choose); the outputs and the
 * Accuracy layer's bottoms are fetched to the host after each batch. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "core/caffemodel.h"
#include "core/cnn.h"
#include "core/config.h"
#include "core/gpu.h"
#include "common/tool_device.h"

#define TEXT_MATRIX_MAX 32 /* larger matrices only go to --json */
#define TEXT_VALUES_MAX 64 /* outputs with more values are summarised */

static void usage(FILE *f)
{
    fprintf(f, "usage: cnntest MODEL --weights W [--iterations N] [--json] [--gpu N | --cpu]\n"
               "Runs the TEST phase of MODEL with weights W and prints the averaged outputs\n"
               "and a confusion matrix (from the first Accuracy layer's bottoms).\n"
               "  --weights W     .safetensors or Caffe .caffemodel weights\n"
               "  --iterations N  batches to run (default: the model's solver { test_iter },\n"
               "                  else 100)\n"
               "  --json          one JSON object instead of text\n"
               "%s", cnn_tool_dev_usage(true));
}

/* What the confusion matrix is built from. */
typedef struct {
    const char *layer;     /* the Accuracy layer */
    const char *name;      /* the scores blob as the model file names it */
    cnn_tensor *scores;    /* its bottom 0: (outer, C, inner) around `axis` */
    cnn_tensor *labels;    /* its bottom 1: (outer * inner) class indices */
    int axis;
    bool has_ignore;
    int ignore;
    int c;
    long long *m;          /* (c, c) counts, rows true class */
    long long counted;
} confusion;

/* The `layer { name: NAME }` message of the model file, or NULL. */
static cnn_cfg *find_layer_cfg(cnn_cfg *root, const char *name)
{
    for (cnn_cfg *f = root->child; f; f = f->next) {
        if (f->kind != CNN_CFG_MESSAGE || strcmp(f->key, "layer")) continue;
        for (cnn_cfg *g = f->child; g; g = g->next)
            if (!strcmp(g->key, "name") && g->text && !strcmp(g->text, name)) return f;
    }
    return NULL;
}

/* Reads `accuracy_param { axis ignore_label }` of the Accuracy layer without
 * marking fields (the layer itself reads them). */
static void read_accuracy_param(cnn_cfg *root, confusion *cm)
{
    cm->axis = 1;
    cnn_cfg *l = find_layer_cfg(root, cm->layer);
    if (!l) return;
    for (cnn_cfg *p = l->child; p; p = p->next) {
        if (p->kind != CNN_CFG_MESSAGE || strcmp(p->key, "accuracy_param")) continue;
        for (cnn_cfg *f = p->child; f; f = f->next) {
            if (f->kind != CNN_CFG_NUMBER) continue;
            if (!strcmp(f->key, "axis")) cm->axis = atoi(f->text);
            if (!strcmp(f->key, "ignore_label")) {
                cm->has_ignore = true;
                cm->ignore = atoi(f->text);
            }
        }
    }
}

/* The blob `t` copies when a Split made it (the name the model file uses). */
static const cnn_tensor *unsplit(const cnn_net *n, const cnn_tensor *t)
{
    for (int i = cnn_net_num_layers(n) - 1; i >= 0; i--) {
        if (strcmp(cnn_net_layer_type(n, i), "Split") || cnn_net_layer_num_bottoms(n, i) != 1)
            continue;
        for (int k = 0; k < cnn_net_layer_num_tops(n, i); k++)
            if (cnn_net_layer_top(n, i, k) == t) return unsplit(n, cnn_net_layer_bottom(n, i, 0));
    }
    return t;
}

/* Finds the first Accuracy layer; false when the net has none. */
static bool confusion_find(const cnn_net *net, cnn_cfg *root, confusion *cm)
{
    for (int i = 0; i < cnn_net_num_layers(net); i++) {
        if (strcmp(cnn_net_layer_type(net, i), "Accuracy") ||
            cnn_net_layer_num_bottoms(net, i) < 2)
            continue;
        cm->layer = cnn_net_layer_name(net, i);
        cm->scores = cnn_net_layer_bottom(net, i, 0);
        cm->name = unsplit(net, cm->scores)->name;
        cm->labels = cnn_net_layer_bottom(net, i, 1);
        read_accuracy_param(root, cm);
        return true;
    }
    return false;
}

/* Adds one batch's argmax-vs-label counts. 0 on success, else prints why. */
static int confusion_add(confusion *cm)
{
    const cnn_tensor *s = cm->scores;
    int axis = cm->axis < 0 ? cm->axis + s->ndim : cm->axis;
    if (axis < 0 || axis >= s->ndim) {
        fprintf(stderr, "cnntest: layer '%s': axis %d out of range\n", cm->layer, cm->axis);
        return 1;
    }
    int c = s->shape[axis];
    size_t outer = cnn_tensor_count_range(s, 0, axis);
    size_t inner = cnn_tensor_count_range(s, axis + 1, s->ndim);
    if (c < 1 || cm->labels->count != outer * inner) {
        char a[64], b[64];
        fprintf(stderr, "cnntest: layer '%s': scores %s do not fit labels %s\n", cm->layer,
                cnn_tensor_shape_str(s, a, sizeof a),
                cnn_tensor_shape_str(cm->labels, b, sizeof b));
        return 1;
    }
    if (!cm->m) {
        cm->c = c;
        cm->m = calloc((size_t)c * c, sizeof *cm->m);
        if (!cm->m) {
            fprintf(stderr, "cnntest: out of memory\n");
            return 1;
        }
    } else if (c != cm->c) {
        fprintf(stderr, "cnntest: layer '%s': class count changed from %d to %d\n", cm->layer,
                cm->c, c);
        return 1;
    }
    for (size_t o = 0; o < outer; o++)
        for (size_t i = 0; i < inner; i++) {
            float lf = cm->labels->data[o * inner + i];
            int label = (int)lf;
            if (cm->has_ignore && label == cm->ignore) continue;
            if (label < 0 || label >= c || (float)label != lf) {
                fprintf(stderr, "cnntest: layer '%s': label %g is not a class in [0, %d)\n",
                        cm->layer, lf, c);
                return 1;
            }
            const float *x = s->data + o * c * inner + i;
            int best = 0;
            for (int k = 1; k < c; k++)
                if (x[k * inner] > x[best * inner]) best = k;
            cm->m[(size_t)label * c + best]++;
            cm->counted++;
        }
    return 0;
}

static long long row_sum(const confusion *cm, int r)
{
    long long s = 0;
    for (int k = 0; k < cm->c; k++) s += cm->m[(size_t)r * cm->c + k];
    return s;
}

static long long trace(const confusion *cm)
{
    long long t = 0;
    for (int k = 0; k < cm->c; k++) t += cm->m[(size_t)k * cm->c + k];
    return t;
}

/* Accumulated output blobs. */
typedef struct {
    int n;
    cnn_tensor **t;
    double **sum; /* [n][count] */
    size_t *count;
} outputs;

static int outputs_init(outputs *o, const cnn_net *net)
{
    o->n = cnn_net_num_outputs(net);
    o->t = calloc((size_t)o->n + 1, sizeof *o->t);
    o->sum = calloc((size_t)o->n + 1, sizeof *o->sum);
    o->count = calloc((size_t)o->n + 1, sizeof *o->count);
    if (!o->t || !o->sum || !o->count) return 1;
    for (int i = 0; i < o->n; i++) {
        o->t[i] = cnn_net_output(net, i);
        o->count[i] = o->t[i]->count;
        if (!(o->sum[i] = calloc(o->count[i] + 1, sizeof **o->sum))) return 1;
    }
    return 0;
}

/* Makes the outputs and the confusion matrix's blobs (cm may be NULL)
 * current on the host. */
static cnn_status fetch(outputs *o, confusion *cm)
{
    cnn_status st = CNN_OK;
    for (int i = 0; i < o->n; i++) CNN_TRY(cnn_host_data(o->t[i]));
    if (cm) {
        CNN_TRY(cnn_host_data(cm->scores));
        CNN_TRY(cnn_host_data(cm->labels));
    }
fail:
    return st;
}

static int outputs_add(outputs *o)
{
    for (int i = 0; i < o->n; i++) {
        if (o->t[i]->count != o->count[i]) {
            fprintf(stderr, "cnntest: output '%s' changed size between batches\n",
                    o->t[i]->name);
            return 1;
        }
        for (size_t k = 0; k < o->count[i]; k++) o->sum[i][k] += o->t[i]->data[k];
    }
    return 0;
}

static void outputs_free(outputs *o)
{
    for (int i = 0; o->sum && i < o->n; i++) free(o->sum[i]);
    free(o->sum);
    free(o->t);
    free(o->count);
}

static void print_text(const char *model, const char *device, int iters, int batch, double loss,
                       const outputs *o, const confusion *cm)
{
    printf("cnntest: device %s\n", device);
    printf("cnntest: %s, %d iterations of batch %d\n", model, iters, batch);
    for (int i = 0; i < o->n; i++) {
        if (o->count[i] == 1) {
            printf("  %s = %.6g\n", o->t[i]->name, o->sum[i][0] / iters);
        } else if (o->count[i] <= TEXT_VALUES_MAX) {
            for (size_t k = 0; k < o->count[i]; k++)
                printf("  %s[%zu] = %.6g\n", o->t[i]->name, k, o->sum[i][k] / iters);
        } else {
            printf("  %s: %zu values (see --json)\n", o->t[i]->name, o->count[i]);
        }
    }
    printf("  loss (weighted sum of losses) = %.6g\n", loss / iters);
    if (!cm->m) {
        printf("no Accuracy layer: no confusion matrix\n");
        return;
    }
    long long t = trace(cm);
    printf("top-1 accuracy of '%s': %.4f (%lld/%lld)\n", cm->name,
           cm->counted ? (double)t / cm->counted : 0.0, t, cm->counted);
    if (cm->c <= TEXT_MATRIX_MAX) {
        printf("confusion matrix (rows: true class, columns: predicted; last: class "
               "accuracy)\n%6s", "");
        for (int k = 0; k < cm->c; k++) printf(" %6d", k);
        printf("\n");
        for (int r = 0; r < cm->c; r++) {
            printf("%6d", r);
            for (int k = 0; k < cm->c; k++) printf(" %6lld", cm->m[(size_t)r * cm->c + k]);
            long long n = row_sum(cm, r);
            if (n)
                printf("   %.4f\n", (double)cm->m[(size_t)r * cm->c + r] / n);
            else
                printf("   -\n");
        }
    } else {
        printf("confusion matrix: %d classes (see --json); per-class accuracy:\n", cm->c);
        for (int r = 0; r < cm->c; r++) {
            long long n = row_sum(cm, r);
            if (n)
                printf("%6d   %.4f (%lld)\n", r, (double)cm->m[(size_t)r * cm->c + r] / n, n);
        }
    }
}

static int print_json(const char *model, const char *device, int iters, int batch, double loss,
                      const outputs *o, const confusion *cm)
{
    cJSON *j = cJSON_CreateObject(), *outs = NULL;
    if (!j || !cJSON_AddStringToObject(j, "model", model) ||
        !cJSON_AddStringToObject(j, "device", device) ||
        !cJSON_AddNumberToObject(j, "iterations", iters) ||
        !cJSON_AddNumberToObject(j, "batch", batch) ||
        !cJSON_AddNumberToObject(j, "loss", loss / iters) ||
        !(outs = cJSON_AddObjectToObject(j, "outputs")))
        goto oom;
    for (int i = 0; i < o->n; i++) {
        if (o->count[i] == 1) {
            if (!cJSON_AddNumberToObject(outs, o->t[i]->name, o->sum[i][0] / iters)) goto oom;
            continue;
        }
        cJSON *a = cJSON_AddArrayToObject(outs, o->t[i]->name);
        if (!a) goto oom;
        for (size_t k = 0; k < o->count[i]; k++) {
            cJSON *v = cJSON_CreateNumber(o->sum[i][k] / iters);
            if (!v) goto oom;
            cJSON_AddItemToArray(a, v);
        }
    }
    if (cm->m) {
        cJSON *rows = NULL, *pc = NULL;
        if (!cJSON_AddStringToObject(j, "scores", cm->name) ||
            !cJSON_AddNumberToObject(j, "samples", (double)cm->counted) ||
            !cJSON_AddNumberToObject(j, "accuracy",
                                     cm->counted ? (double)trace(cm) / cm->counted : 0) ||
            !(rows = cJSON_AddArrayToObject(j, "confusion")) ||
            !(pc = cJSON_AddArrayToObject(j, "per_class_accuracy")))
            goto oom;
        for (int r = 0; r < cm->c; r++) {
            cJSON *row = cJSON_CreateArray(), *acc;
            if (!row) goto oom;
            cJSON_AddItemToArray(rows, row);
            for (int k = 0; k < cm->c; k++) {
                cJSON *v = cJSON_CreateNumber((double)cm->m[(size_t)r * cm->c + k]);
                if (!v) goto oom;
                cJSON_AddItemToArray(row, v);
            }
            long long n = row_sum(cm, r);
            acc = n ? cJSON_CreateNumber((double)cm->m[(size_t)r * cm->c + r] / n)
                    : cJSON_CreateNull();
            if (!acc) goto oom;
            cJSON_AddItemToArray(pc, acc);
        }
    }
    char *s = cJSON_PrintUnformatted(j);
    if (!s) goto oom;
    printf("%s\n", s);
    free(s);
    cJSON_Delete(j);
    return 0;
oom:
    cJSON_Delete(j);
    fprintf(stderr, "cnntest: out of memory\n");
    return 1;
}

/* solver { test_iter } of the model file, or `def`. */
static cnn_status default_iterations(cnn_cfg *root, int def, int *out)
{
    cnn_status st = CNN_OK;
    cnn_cfg *s = NULL;
    *out = def;
    CNN_TRY(cnn_cfg_message(root, "solver", &s));
    if (s && cnn_cfg_count(s, "test_iter") > 0) {
        cnn_cfg *f = cnn_cfg_nth(s, "test_iter", 0);
        CNN_TRY(cnn_cfg_as_int(f, out));
        if (*out < 1) return cnn_cfg_error(f, CNN_ERR_CONFIG, "test_iter must be positive");
    }
fail:
    return st;
}

int main(int argc, char **argv)
{
    const char *model = NULL, *weights = NULL;
    int iters = 0;
    bool json = false;
    cnn_tool_dev dev;
    cnn_tool_dev_init(&dev, "cnntest", true);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int d = cnn_tool_dev_arg(&dev, argc, argv, &i);
        if (d < 0) return 2;
        if (d > 0) continue;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--weights") && i + 1 < argc) {
            weights = argv[++i];
        } else if (!strcmp(a, "--iterations") && i + 1 < argc) {
            char *end;
            errno = 0;
            long v = strtol(argv[++i], &end, 10);
            if (errno || *end || end == argv[i] || v < 1 || v > 100000000) {
                fprintf(stderr, "cnntest: --iterations wants a positive integer, not '%s'\n",
                        argv[i]);
                return 2;
            }
            iters = (int)v;
        } else if (!strcmp(a, "--json")) {
            json = true;
        } else if ((a[0] == '-' && a[1]) || model) {
            fprintf(stderr, "cnntest: unexpected argument: %s\n", a);
            usage(stderr);
            return 2;
        } else {
            model = a;
        }
    }
    if (!model || !weights) {
        fprintf(stderr, "cnntest: %s\n", !model ? "no MODEL given" : "--weights is required");
        usage(stderr);
        return 2;
    }

    int rc = 1;
    cnn_cfg *root = NULL;
    cnn_net *net = NULL;
    outputs outs = {0};
    confusion cm = {0};
    cnn_net_opts o = cnn_net_default_opts();
    o.phase = CNN_TEST;
    char desc[512];
    if (cnn_tool_dev_resolve(&dev, &o)) goto done;
    cnn_tool_dev_describe(&dev, desc, sizeof desc);
    if (cnn_cfg_parse_file(model, &root) != CNN_OK ||
        (iters == 0 && default_iterations(root, 100, &iters) != CNN_OK) ||
        cnn_net_from_cfg(root, model, &o, &net) != CNN_OK ||
        cnn_weights_load_any(net, weights, false) != CNN_OK) {
        fprintf(stderr, "cnntest: %s\n", cnn_error_message());
        goto done;
    }
    cnn_net_params_changed(net);
    if (outputs_init(&outs, net)) {
        fprintf(stderr, "cnntest: out of memory\n");
        goto done;
    }
    bool have_cm = confusion_find(net, root, &cm);
    double loss_sum = 0;
    int batch = 0;
    for (int it = 0; it < iters; it++) {
        float loss = 0;
        if (cnn_net_forward(net, &loss) != CNN_OK || fetch(&outs, have_cm ? &cm : NULL) != CNN_OK) {
            fprintf(stderr, "cnntest: batch %d: %s\n", it, cnn_error_message());
            goto done;
        }
        loss_sum += loss;
        if (outputs_add(&outs) || (have_cm && confusion_add(&cm))) goto done;
        if (it == 0 && have_cm) batch = cnn_tensor_dim(cm.scores, 0);
    }
    if (!batch && cnn_net_num_layers(net) > 0 && cnn_net_layer_num_tops(net, 0) > 0)
        batch = cnn_tensor_dim(cnn_net_layer_top(net, 0, 0), 0);
    if (json) {
        if (print_json(model, desc, iters, batch, loss_sum, &outs, &cm)) goto done;
    } else {
        print_text(model, desc, iters, batch, loss_sum, &outs, &cm);
    }
    rc = 0;
done:
    free(cm.m);
    outputs_free(&outs);
    cnn_net_free(net);
    cnn_cfg_free(root);
    return rc;
}
