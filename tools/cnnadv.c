/* cnnadv — adversarial examples against a trained classifier: FGSM on one
 * image, an iterative targeted attack towards a chosen class, and a
 * robustness report (accuracy as a function of epsilon) over a model's TEST
 * data or a set of labelled images. Epsilons are in pixel units (0..255). */
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "core/adversarial.h"
#include "core/caffemodel.h"
#include "core/cnn.h"
#include "core/image.h"
#include "core/preprocess.h"
#include "core/vis.h"
#include "common/tool_device.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: cnnadv COMMAND --model M --weights W [options]\n"
            "  fgsm        IMAGE --epsilon E [--label L] [--out F] [--perturbation F]\n"
            "              [--amplify A] [--json]\n"
            "  targeted    IMAGE --target T --epsilon E [--alpha A] [--iterations N]\n"
            "              [--no-early-stop] [--out F] [--perturbation F] [--amplify A] [--json]\n"
            "  robustness  [IMAGE|DIR ... | --list FILE [--root DIR] | --batches N]\n"
            "              [--epsilons E1,E2,...] [--json]\n"
            "Epsilons and --alpha are in pixel units (0..255), converted with the input's\n"
            "transform_param scale. Common: --labels FILE (class names), --bgr, --input BLOB,\n"
            "--scores BLOB. Runs on CUDA device 0 when there is one (--gpu N, --cpu,\n"
            "--workspace-mb N, --deterministic choose; device named on stderr).\n"
            "See docs/vis.md.\n");
}

typedef struct {
    const char *cmd;
    const char *model, *weights, *out, *pert, *labels, *list, *root, *input, *scores,
        *epsilons;
    int label, target, iterations, batches;
    float eps, alpha, amplify;
    bool has_eps, json, bgr, no_early;
    cnn_tool_dev dev;
    char **args;
    int n_args;
} opts;

enum { F_STR, F_INT, F_FLOAT, F_BOOL };

typedef struct {
    const char *name;
    int type;
    size_t off;
    const char *cmds; /* NULL: every command */
} flag;

static const flag flags[] = {
    {"--model", F_STR, offsetof(opts, model), NULL},
    {"--weights", F_STR, offsetof(opts, weights), NULL},
    {"--out", F_STR, offsetof(opts, out), "fgsm targeted"},
    {"--perturbation", F_STR, offsetof(opts, pert), "fgsm targeted"},
    {"--labels", F_STR, offsetof(opts, labels), NULL},
    {"--list", F_STR, offsetof(opts, list), "robustness"},
    {"--root", F_STR, offsetof(opts, root), "robustness"},
    {"--input", F_STR, offsetof(opts, input), NULL},
    {"--scores", F_STR, offsetof(opts, scores), NULL},
    {"--epsilons", F_STR, offsetof(opts, epsilons), "robustness"},
    {"--label", F_INT, offsetof(opts, label), "fgsm"},
    {"--target", F_INT, offsetof(opts, target), "targeted"},
    {"--iterations", F_INT, offsetof(opts, iterations), "targeted"},
    {"--batches", F_INT, offsetof(opts, batches), "robustness"},
    {"--epsilon", F_FLOAT, offsetof(opts, eps), "fgsm targeted"},
    {"--alpha", F_FLOAT, offsetof(opts, alpha), "targeted"},
    {"--amplify", F_FLOAT, offsetof(opts, amplify), "fgsm targeted"},
    {"--json", F_BOOL, offsetof(opts, json), NULL},
    {"--bgr", F_BOOL, offsetof(opts, bgr), NULL},
    {"--no-early-stop", F_BOOL, offsetof(opts, no_early), "targeted"},
};

static bool takes(const flag *f, const char *cmd)
{
    if (!f->cmds) return true;
    size_t n = strlen(cmd);
    for (const char *p = f->cmds; (p = strstr(p, cmd)); p += n)
        if ((p == f->cmds || p[-1] == ' ') && (p[n] == ' ' || p[n] == 0)) return true;
    return false;
}

static int parse_args(int argc, char **argv, opts *o)
{
    o->label = o->target = -1;
    o->alpha = 1.f;
    o->amplify = NAN;
    o->iterations = -1;
    cnn_tool_dev_init(&o->dev, "cnnadv", false);
    if (!(o->args = calloc((size_t)argc, sizeof *o->args))) return 1;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            exit(0);
        }
        int d = cnn_tool_dev_arg(&o->dev, argc, argv, &i);
        if (d < 0) return 2;
        if (d > 0) continue;
        if (a[0] != '-' || !a[1]) {
            o->args[o->n_args++] = argv[i];
            continue;
        }
        const flag *f = NULL;
        for (size_t j = 0; j < sizeof flags / sizeof *flags && !f; j++)
            if (!strcmp(flags[j].name, a)) f = &flags[j];
        if (!f || !takes(f, o->cmd)) {
            fprintf(stderr, "cnnadv %s: unknown option %s\n", o->cmd, a);
            return 2;
        }
        void *dst = (char *)o + f->off;
        if (f->type == F_BOOL) {
            *(bool *)dst = true;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "cnnadv %s: %s needs a value\n", o->cmd, a);
            return 2;
        }
        const char *v = argv[++i];
        char *end;
        errno = 0;
        if (f->type == F_STR) {
            *(const char **)dst = v;
        } else if (f->type == F_INT) {
            long x = strtol(v, &end, 10);
            if (errno || *end || end == v || x < 0 || x > 100000000) {
                fprintf(stderr, "cnnadv %s: %s wants a non-negative integer, not '%s'\n", o->cmd,
                        a, v);
                return 2;
            }
            *(int *)dst = (int)x;
        } else {
            float x = strtof(v, &end);
            if (errno || *end || end == v || !isfinite(x) || x < 0) {
                fprintf(stderr, "cnnadv %s: %s wants a non-negative number, not '%s'\n", o->cmd,
                        a, v);
                return 2;
            }
            *(float *)dst = x;
            if (!strcmp(a, "--epsilon")) o->has_eps = true;
        }
    }
    return 0;
}

static int fail_lib(const char *cmd)
{
    fprintf(stderr, "cnnadv %s: %s\n", cmd, cnn_error_message());
    return 1;
}

static int usage_error(const char *cmd, const char *msg)
{
    fprintf(stderr, "cnnadv %s: %s\n", cmd, msg);
    usage(stderr);
    return 2;
}

typedef struct {
    cnn_net *net;
    cnn_tensor *in, *sc;
    bool from_input;   /* the input comes from an Input layer (images can be fed) */
    cnn_transform tf;
    char **names;
    int n_names;
} model;

static void model_free(model *m)
{
    cnn_net_free(m->net);
    cnn_vis_free_files(m->names, m->n_names);
}

static int model_load(const opts *o, model *m)
{
    memset(m, 0, sizeof *m);
    if (!o->model || !o->weights)
        return usage_error(o->cmd, !o->model ? "--model is required" : "--weights is required");
    cnn_net_opts no = cnn_net_default_opts();
    cnn_tool_dev dev = o->dev;
    char desc[512];
    no.phase = CNN_TEST;
    if (cnn_tool_dev_resolve(&dev, &no)) return 1;
    fprintf(stderr, "cnnadv: device %s\n", cnn_tool_dev_describe(&dev, desc, sizeof desc));
    if (cnn_net_from_file(o->model, &no, &m->net) != CNN_OK ||
        cnn_weights_load_any(m->net, o->weights, false) != CNN_OK ||
        cnn_vis_find_input(m->net, o->input, &m->in) != CNN_OK ||
        cnn_vis_find_scores(m->net, o->scores, &m->sc) != CNN_OK)
        return fail_lib(o->cmd);
    int w = cnn_vis_writer(m->net, m->in);
    m->from_input = w < 0 || !strcmp(cnn_net_layer_type(m->net, w), "Input");
    m->tf = (cnn_transform){.scale = 1};
    if (m->from_input) cnn_net_input_transform(m->net, m->in->name, &m->tf);
    if (o->labels && cnn_vis_read_names(o->labels, &m->names, &m->n_names) != CNN_OK)
        return fail_lib(o->cmd);
    return 0;
}

static const char *class_name(const model *m, int c)
{
    return m->names && c >= 0 && c < m->n_names ? m->names[c] : "";
}

static int num_classes(const model *m) { return (int)(m->sc->count / (size_t)m->sc->shape[0]); }

static int check_names(const opts *o, const model *m)
{
    if (m->names && m->n_names != num_classes(m)) {
        fprintf(stderr, "cnnadv %s: %s has %d names for %d classes\n", o->cmd, o->labels,
                m->n_names, num_classes(m));
        return 1;
    }
    return 0;
}

/* Predicted class and its probability, and the probability of class `of`. */
typedef struct {
    int cls;
    float prob, prob_of;
} pred;

static pred predict(const model *m, int row, int of, float *p)
{
    int k = num_classes(m);
    cnn_vis_softmax(m->sc->data + (size_t)row * k, 1, k, p);
    int c = cnn_vis_argmax(p, k);
    return (pred){c, p[c], of >= 0 && of < k ? p[of] : NAN};
}

/* ---- single-image attacks ------------------------------------------------- */

static cJSON *pred_json(const model *m, pred p, int of)
{
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddNumberToObject(o, "class", p.cls);
    if (m->names) cJSON_AddStringToObject(o, "label", class_name(m, p.cls));
    cJSON_AddNumberToObject(o, "prob", p.prob);
    cJSON_AddNumberToObject(o, of == -2 ? "prob_target" : "prob_label", p.prob_of);
    return o;
}

static void print_pred(const model *m, const char *what, pred p, const char *of_name, int of)
{
    const char *name = class_name(m, p.cls);
    printf("%-7s class %d%s%s (%.4f); %s %d: %.4f\n", what, p.cls, *name ? " " : "", name, p.prob,
           of_name, of, p.prob_of);
}

/* Writes the amplified perturbation: 128 + amplify * (x' - x) in pixels. */
static int write_perturbation(const opts *o, const model *m, const float *x0, const float *x1,
                              float amplify)
{
    int C = m->in->shape[1], H = m->in->shape[2], W = m->in->shape[3];
    cnn_image im;
    if (cnn_image_alloc(&im, H, W, C) != CNN_OK) return fail_lib(o->cmd);
    float scale = m->tf.scale != 0 ? m->tf.scale : 1.f;
    size_t plane = (size_t)H * W;
    for (int c = 0; c < C; c++) {
        int dc = o->bgr && C == 3 ? 2 - c : c;
        for (size_t p = 0; p < plane; p++) {
            float d = (x1[c * plane + p] - x0[c * plane + p]) / scale;
            float v = 128.f + amplify * d;
            im.data[p * C + dc] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : lroundf(v));
        }
    }
    int rc = 0;
    if (cnn_image_write_png(o->pert, &im) != CNN_OK)
        rc = fail_lib(o->cmd);
    else if (!o->json)
        printf("wrote %s (%dx%d, 128 + %g x perturbation)\n", o->pert, W, H, amplify);
    cnn_image_free(&im);
    return rc;
}

static int cmd_attack(const opts *o)
{
    bool targeted = !strcmp(o->cmd, "targeted");
    model m;
    float *x0 = NULL, *x1 = NULL, *p = NULL, *lo = NULL, *hi = NULL;
    cnn_image adv = {0};
    cJSON *js = NULL;
    int rc = model_load(o, &m);
    if (rc) goto done;
    if (o->n_args != 1) {
        rc = usage_error(o->cmd, "give exactly one IMAGE");
        goto done;
    }
    if (!o->has_eps || (targeted && o->target < 0)) {
        rc = usage_error(o->cmd, !o->has_eps ? "--epsilon is required" : "--target is required");
        goto done;
    }
    if (!m.from_input) {
        fprintf(stderr, "cnnadv %s: %s: '%s' comes from a data layer; images need a deploy "
                        "model with an Input layer\n", o->cmd, o->model, m.in->name);
        rc = 1;
        goto done;
    }
    int C = m.in->shape[1], H = m.in->shape[2], W = m.in->shape[3];
    if (cnn_tensor_reshape4(m.in, 1, C, H, W) || cnn_net_reshape(m.net) ||
        cnn_preprocess_file(o->args[0], &m.tf, C, H, W, o->bgr, m.in->data) ||
        cnn_vis_forward_from(m.net, m.in))
        goto lib_error;
    if ((rc = check_names(o, &m))) goto done;
    int k = num_classes(&m);
    size_t n = m.in->count;
    x0 = malloc(n * sizeof *x0);
    x1 = malloc(n * sizeof *x1);
    p = malloc((size_t)k * sizeof *p);
    lo = malloc((size_t)C * sizeof *lo);
    hi = malloc((size_t)C * sizeof *hi);
    if (!x0 || !x1 || !p || !lo || !hi) goto oom;
    memcpy(x0, m.in->data, n * sizeof *x0);
    cnn_vis_pixel_bounds(&m.tf, C, lo, hi);
    float scale = fabsf(m.tf.scale), eps = o->eps * scale;
    int of = targeted ? o->target : o->label;
    pred before = predict(&m, 0, of, p);
    if (of < 0) of = before.cls; /* FGSM away from the predicted class */
    before.prob_of = p[of];
    if (of >= k) {
        fprintf(stderr, "cnnadv %s: class %d, but the model has %d classes\n", o->cmd, of, k);
        rc = 2;
        goto done;
    }
    int steps = 1, iters = 0;
    if (targeted) {
        iters = o->iterations >= 0 ? o->iterations
                                   : (int)ceil(fminf(o->eps + 4.f, 1.25f * o->eps));
        cnn_adv_iter_opts io = {.eps = eps, .alpha = o->alpha * scale, .iterations = iters,
                                .stop_early = !o->no_early};
        if (o->alpha <= 0) {
            rc = usage_error(o->cmd, "--alpha must be > 0");
            goto done;
        }
        if (cnn_adv_targeted(m.net, m.in->name, m.sc->name, &of, &io, lo, hi, &steps))
            goto lib_error;
    } else if (cnn_adv_fgsm(m.net, m.in->name, m.sc->name, &of, eps, lo, hi)) {
        goto lib_error;
    }
    pred after = predict(&m, 0, of, p);
    memcpy(x1, m.in->data, n * sizeof *x1);
    /* The adversarial image as 8-bit pixels, and what the net says about it. */
    if (cnn_vis_to_image(x1, C, H, W, &m.tf, o->bgr, &adv) ||
        cnn_preprocess_image(&adv, &m.tf, C, H, W, o->bgr, m.in->data) ||
        cnn_vis_forward_from(m.net, m.in))
        goto lib_error;
    pred png = predict(&m, 0, of, p);
    double linf = 0;
    for (size_t i = 0; i < n; i++) linf = fmax(linf, fabs((double)x1[i] - x0[i]) / scale);
    const char *of_name = targeted ? "target" : "label";
    if (o->json) {
        js = cJSON_CreateObject();
        if (!js) goto oom;
        cJSON_AddStringToObject(js, "file", o->args[0]);
        cJSON_AddStringToObject(js, "attack", targeted ? "targeted" : "fgsm");
        cJSON_AddNumberToObject(js, "epsilon", o->eps);
        cJSON_AddNumberToObject(js, "epsilon_input", eps);
        cJSON_AddNumberToObject(js, of_name, of);
        if (targeted) {
            cJSON_AddNumberToObject(js, "alpha", o->alpha);
            cJSON_AddNumberToObject(js, "steps", steps);
            cJSON_AddBoolToObject(js, "success", after.cls == of);
        }
        cJSON_AddNumberToObject(js, "linf_pixels", linf);
        int tag = targeted ? -2 : -1;
        cJSON_AddItemToObject(js, "before", pred_json(&m, before, tag));
        cJSON_AddItemToObject(js, "after", pred_json(&m, after, tag));
        cJSON_AddItemToObject(js, "after_png", pred_json(&m, png, tag));
    } else {
        printf("%s: %s, epsilon %g pixels (%g input units)", o->args[0],
               targeted ? "targeted" : "FGSM", o->eps, eps);
        if (targeted) printf(", alpha %g, %d of at most %d steps", o->alpha, steps, iters);
        printf("\n");
        print_pred(&m, "before", before, of_name, of);
        print_pred(&m, "after", after, of_name, of);
        print_pred(&m, "png", png, of_name, of);
        printf("max |perturbation| %.3g pixels\n", linf);
    }
    if (o->out) {
        if (cnn_image_write_png(o->out, &adv)) goto lib_error;
        if (!o->json) printf("wrote %s (%dx%d)\n", o->out, W, H);
    }
    if (o->pert) {
        float amp = !isnan(o->amplify) ? o->amplify : o->eps > 0 ? 127.f / o->eps : 1.f;
        if ((rc = write_perturbation(o, &m, x0, x1, amp))) goto done;
    }
    if (js) {
        char *s = cJSON_PrintUnformatted(js);
        if (!s) goto oom;
        printf("%s\n", s);
        free(s);
    }
    goto done;
lib_error:
    rc = fail_lib(o->cmd);
    goto done;
oom:
    fprintf(stderr, "cnnadv %s: out of memory\n", o->cmd);
    rc = 1;
done:
    cJSON_Delete(js);
    free(x0);
    free(x1);
    free(p);
    free(lo);
    free(hi);
    cnn_image_free(&adv);
    model_free(&m);
    return rc;
}

/* ---- robustness ----------------------------------------------------------- */

static int parse_epsilons(const char *s, float **out, int *n)
{
    const char *list = s ? s : "0,1,2,4,8,16,32";
    int cap = 1;
    for (const char *p = list; *p; p++) cap += *p == ',';
    float *v = malloc((size_t)cap * sizeof *v);
    if (!v) return 1;
    int k = 0;
    const char *p = list;
    for (;;) {
        char *end;
        errno = 0;
        float x = strtof(p, &end);
        if (errno || end == p || !isfinite(x) || x < 0 || (*end && *end != ',')) {
            fprintf(stderr, "cnnadv robustness: --epsilons wants numbers >= 0 separated by "
                            "commas, not '%s'\n", list);
            free(v);
            return 2;
        }
        v[k++] = x;
        if (!*end) break;
        p = end + 1;
    }
    *out = v;
    *n = k;
    return 0;
}

static int cmd_robustness(const opts *o)
{
    model m;
    cnn_samples *s = NULL;
    char **files = NULL;
    int *file_labels = NULL, n_files = 0, n_eps = 0;
    float *eps = NULL, *x0 = NULL, *sign = NULL, *p = NULL, *lo = NULL, *hi = NULL;
    int *lab = NULL, *clean = NULL;
    long *correct = NULL, *changed = NULL;
    cJSON *js = NULL;
    int rc = model_load(o, &m);
    if (rc || (rc = parse_epsilons(o->epsilons, &eps, &n_eps))) goto done;
    bool from_files = o->n_args > 0 || o->list;
    if (from_files) {
        if (o->batches) {
            rc = usage_error(o->cmd, "--batches is for a model's data layer, not files");
            goto done;
        }
        if (!m.from_input) {
            fprintf(stderr, "cnnadv robustness: %s: images need a model with an Input layer\n",
                    o->model);
            rc = 1;
            goto done;
        }
        cnn_status st = o->list
                            ? cnn_vis_read_list(o->list, o->root, &files, &file_labels, &n_files)
                            : cnn_vis_image_args(o->args, o->n_args, &files, &n_files);
        int batch = m.in->shape[0] > 0 ? m.in->shape[0] : 1;
        if (st || cnn_samples_from_files(m.net, m.in, files, file_labels, n_files, batch,
                                         o->bgr, &s))
            goto lib_error;
    } else {
        if (m.from_input) {
            fprintf(stderr, "cnnadv robustness: %s has no data layer: give images, a --list, "
                            "or a model with a TEST data layer\n", o->model);
            rc = 2;
            goto done;
        }
        if (cnn_samples_from_net(m.net, o->model, CNN_TEST, m.in, o->batches, &s))
            goto lib_error;
    }
    const cnn_transform *tf = cnn_samples_transform(s);
    int N = m.in->shape[0], C = m.in->shape[1];
    size_t cap = m.in->count;
    x0 = malloc(cap * sizeof *x0);
    sign = malloc(cap * sizeof *sign);
    lab = malloc((size_t)N * sizeof *lab);
    clean = malloc((size_t)N * sizeof *clean);
    lo = malloc((size_t)C * sizeof *lo);
    hi = malloc((size_t)C * sizeof *hi);
    correct = calloc((size_t)n_eps, sizeof *correct);
    changed = calloc((size_t)n_eps, sizeof *changed);
    if (!x0 || !sign || !lab || !clean || !lo || !hi || !correct || !changed) goto oom;
    cnn_vis_pixel_bounds(tf, C, lo, hi);
    float scale = fabsf(tf->scale);
    long total = 0, labelled = 0;
    for (;;) {
        int count;
        size_t first;
        if (cnn_samples_next(s, &count, lab, &first)) goto lib_error;
        if (!count) break;
        /* Clean predictions; unknown labels become the clean prediction. */
        if (cnn_vis_forward_from(m.net, m.in)) goto lib_error;
        int k = num_classes(&m);
        if (!p && !(p = malloc((size_t)k * sizeof *p))) goto oom;
        int rows = m.in->shape[0];
        for (int i = 0; i < rows; i++) {
            clean[i] = cnn_vis_argmax(m.sc->data + (size_t)i * k, k);
            if (i >= count) lab[i] = -1; /* padding of a short data-layer batch */
            if (i < count && lab[i] >= k) {
                fprintf(stderr, "cnnadv robustness: label %d of sample %zu is outside the %d "
                                "classes\n", lab[i], first + (size_t)i, k);
                rc = 1;
                goto done;
            }
            if (i < count && lab[i] >= 0) labelled++;
        }
        int *target = malloc((size_t)rows * sizeof *target);
        if (!target) goto oom;
        for (int i = 0; i < rows; i++) target[i] = lab[i] >= 0 ? lab[i] : clean[i];
        size_t n = m.in->count;
        memcpy(x0, m.in->data, n * sizeof *x0);
        cnn_status st = cnn_adv_loss_sign(m.net, m.in->name, m.sc->name, target, sign);
        if (st) {
            free(target);
            goto lib_error;
        }
        size_t plane = (size_t)m.in->shape[2] * m.in->shape[3];
        for (int e = 0; e < n_eps; e++) {
            cnn_adv_step(x0, sign, eps[e] * scale, rows, C, plane, lo, hi, m.in->data);
            if ((st = cnn_vis_forward_from(m.net, m.in))) break;
            for (int i = 0; i < count; i++) {
                int c = cnn_vis_argmax(m.sc->data + (size_t)i * k, k);
                correct[e] += c == target[i];
                changed[e] += c != clean[i];
            }
        }
        free(target);
        if (st) goto lib_error;
        total += count;
    }
    if (total == 0) {
        fprintf(stderr, "cnnadv robustness: no samples\n");
        rc = 1;
        goto done;
    }
    const char *basis = labelled == total ? "labels" : labelled == 0 ? "clean predictions"
                                                                     : "labels where known";
    if (o->json) {
        js = cJSON_CreateObject();
        cJSON *arr = NULL;
        if (!js) goto oom;
        cJSON_AddStringToObject(js, "model", o->model);
        cJSON_AddStringToObject(js, "attack", "fgsm");
        cJSON_AddNumberToObject(js, "samples", (double)total);
        cJSON_AddNumberToObject(js, "labelled", (double)labelled);
        if (!(arr = cJSON_AddArrayToObject(js, "results"))) goto oom;
        for (int e = 0; e < n_eps; e++) {
            cJSON *r = cJSON_CreateObject();
            if (!r) goto oom;
            cJSON_AddItemToArray(arr, r);
            cJSON_AddNumberToObject(r, "epsilon", eps[e]);
            cJSON_AddNumberToObject(r, "epsilon_input", eps[e] * scale);
            cJSON_AddNumberToObject(r, "accuracy", (double)correct[e] / total);
            cJSON_AddNumberToObject(r, "changed", (double)changed[e] / total);
        }
        char *str = cJSON_PrintUnformatted(js);
        if (!str) goto oom;
        printf("%s\n", str);
        free(str);
    } else {
        printf("FGSM robustness: %ld samples, accuracy against %s\n", total, basis);
        printf("%10s %14s %9s %8s\n", "epsilon", "epsilon_input", "accuracy", "changed");
        for (int e = 0; e < n_eps; e++)
            printf("%10g %14.6g %9.4f %8.4f\n", eps[e], eps[e] * scale,
                   (double)correct[e] / total, (double)changed[e] / total);
    }
    goto done;
lib_error:
    rc = fail_lib(o->cmd);
    goto done;
oom:
    fprintf(stderr, "cnnadv robustness: out of memory\n");
    rc = 1;
done:
    cJSON_Delete(js);
    free(eps);
    free(x0);
    free(sign);
    free(p);
    free(lo);
    free(hi);
    free(lab);
    free(clean);
    free(correct);
    free(changed);
    free(file_labels);
    cnn_vis_free_files(files, n_files);
    cnn_samples_free(s);
    model_free(&m);
    return rc;
}

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*run)(const opts *);
    } cmds[] = {{"fgsm", cmd_attack}, {"targeted", cmd_attack}, {"robustness", cmd_robustness}};
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof cmds / sizeof *cmds; i++) {
        if (strcmp(argv[1], cmds[i].name)) continue;
        opts o = {.cmd = cmds[i].name};
        int rc = parse_args(argc, argv, &o);
        if (rc == 0)
            rc = cmds[i].run(&o);
        else if (rc == 2)
            usage(stderr);
        else
            fprintf(stderr, "cnnadv: out of memory\n");
        free(o.args);
        return rc;
    }
    fprintf(stderr, "cnnadv: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
