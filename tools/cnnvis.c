/* cnnvis — pictures of what a trained net does: first-layer (or any layer's)
 * filters, feature maps, saliency maps, class model visualisations,
 * occlusion sensitivity, the images that excite a unit most, and training
 * curves from cnntrain's JSON-lines log. Every picture is a PNG. */
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "core/caffemodel.h"
#include "core/cnn.h"
#include "core/image.h"
#include "core/plot.h"
#include "core/preprocess.h"
#include "core/vis.h"
#include "common/tool_device.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: cnnvis COMMAND [options]\n"
            "  filters     --model M --weights W [--layer L] [--per-channel] [--bgr]\n"
            "  activations --model M --weights W --blob B IMAGE [--bgr]\n"
            "  saliency    --model M --weights W IMAGE [--class K] [--raw F] [--alpha A]\n"
            "  classmodel  --model M --weights W --class K|--classes LIST|all [--iterations N]\n"
            "              [--lr R] [--l2 L]\n"
            "  occlusion   --model M --weights W IMAGE [--class K] [--patch P] [--stride S]\n"
            "              [--fill V] [--raw F] [--alpha A]\n"
            "  top-images  --model M --weights W --blob B --channel C [--k K]\n"
            "              [IMAGE|DIR ... | --list FILE [--root DIR] | --batches N]\n"
            "  curves      LOG [--title T] [--width W] [--height H]\n"
            "Common: --out F.png (output PNG), --zoom Z (pixels per value), --pad P, --cols N,\n"
            "        --input BLOB, --scores BLOB, --labels FILE (class names), --bgr.\n"
            "Runs on CUDA device 0 when there is one (--gpu N, --cpu, --workspace-mb N,\n"
            "--deterministic choose; device named on stderr).\n"
            "See docs/vis.md.\n");
}

typedef struct {
    const char *cmd;
    const char *model, *weights, *out, *raw, *blob, *layer, *input, *scores, *labels, *list,
        *root, *title, *classes;
    int cls, channel, k, zoom, pad, cols, iterations, patch, stride, width, height, batches;
    float lr, l2, alpha, fill;
    bool has_fill, bgr, per_channel;
    cnn_tool_dev dev;
    char **args;
    int n_args;
} opts;

enum { F_STR, F_INT, F_FLOAT, F_BOOL };

typedef struct {
    const char *name;
    int type;
    size_t off;
    const char *cmds; /* commands that take it, space-separated; NULL: all */
} flag;

#define IMG_CMDS "activations saliency occlusion top-images"
#define NET_CMDS "filters activations saliency classmodel occlusion top-images"
#define CLS_CMDS "saliency classmodel occlusion"

static const flag flags[] = {
    {"--model", F_STR, offsetof(opts, model), NET_CMDS},
    {"--weights", F_STR, offsetof(opts, weights), NET_CMDS},
    {"--out", F_STR, offsetof(opts, out), NULL},
    {"--raw", F_STR, offsetof(opts, raw), "saliency occlusion"},
    {"--blob", F_STR, offsetof(opts, blob), "activations top-images"},
    {"--layer", F_STR, offsetof(opts, layer), "filters"},
    {"--input", F_STR, offsetof(opts, input), NET_CMDS},
    {"--scores", F_STR, offsetof(opts, scores), CLS_CMDS},
    {"--labels", F_STR, offsetof(opts, labels), CLS_CMDS " top-images"},
    {"--list", F_STR, offsetof(opts, list), "top-images"},
    {"--root", F_STR, offsetof(opts, root), "top-images"},
    {"--title", F_STR, offsetof(opts, title), "curves"},
    {"--classes", F_STR, offsetof(opts, classes), "classmodel"},
    {"--class", F_INT, offsetof(opts, cls), CLS_CMDS},
    {"--channel", F_INT, offsetof(opts, channel), "top-images"},
    {"--k", F_INT, offsetof(opts, k), "top-images"},
    {"--zoom", F_INT, offsetof(opts, zoom), NET_CMDS},
    {"--pad", F_INT, offsetof(opts, pad), "filters activations classmodel top-images"},
    {"--cols", F_INT, offsetof(opts, cols), "filters activations classmodel top-images"},
    {"--iterations", F_INT, offsetof(opts, iterations), "classmodel"},
    {"--patch", F_INT, offsetof(opts, patch), "occlusion"},
    {"--stride", F_INT, offsetof(opts, stride), "occlusion"},
    {"--width", F_INT, offsetof(opts, width), "curves"},
    {"--height", F_INT, offsetof(opts, height), "curves"},
    {"--batches", F_INT, offsetof(opts, batches), "top-images"},
    {"--lr", F_FLOAT, offsetof(opts, lr), "classmodel"},
    {"--l2", F_FLOAT, offsetof(opts, l2), "classmodel"},
    {"--alpha", F_FLOAT, offsetof(opts, alpha), "saliency occlusion"},
    {"--fill", F_FLOAT, offsetof(opts, fill), "occlusion"},
    {"--bgr", F_BOOL, offsetof(opts, bgr), NET_CMDS},
    {"--per-channel", F_BOOL, offsetof(opts, per_channel), "filters"},
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
    o->cls = o->channel = -1;
    o->k = 9;
    o->pad = -1;
    o->lr = NAN;
    o->l2 = NAN;
    o->alpha = 0.6f;
    cnn_tool_dev_init(&o->dev, "cnnvis", false);
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
            fprintf(stderr, "cnnvis %s: unknown option %s\n", o->cmd, a);
            return 2;
        }
        void *dst = (char *)o + f->off;
        if (f->type == F_BOOL) {
            *(bool *)dst = true;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "cnnvis %s: %s needs a value\n", o->cmd, a);
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
                fprintf(stderr, "cnnvis %s: %s wants a non-negative integer, not '%s'\n",
                        o->cmd, a, v);
                return 2;
            }
            *(int *)dst = (int)x;
        } else {
            float x = strtof(v, &end);
            if (errno || *end || end == v || !isfinite(x)) {
                fprintf(stderr, "cnnvis %s: %s wants a number, not '%s'\n", o->cmd, a, v);
                return 2;
            }
            *(float *)dst = x;
            if (!strcmp(a, "--fill")) o->has_fill = true;
        }
    }
    return 0;
}

static int fail_lib(const char *cmd)
{
    fprintf(stderr, "cnnvis %s: %s\n", cmd, cnn_error_message());
    return 1;
}

static int usage_error(const char *cmd, const char *msg)
{
    fprintf(stderr, "cnnvis %s: %s\n", cmd, msg);
    usage(stderr);
    return 2;
}

/* The smallest zoom making max(h, w) * zoom at least `target` pixels. */
static int auto_zoom(int zoom, int h, int w, int target)
{
    if (zoom > 0) return zoom;
    int m = h > w ? h : w;
    int z = m > 0 ? (target + m - 1) / m : 1;
    return z < 1 ? 1 : z;
}

static int write_png(const char *cmd, const char *path, const cnn_image *im)
{
    if (cnn_image_write_png(path, im) != CNN_OK) return fail_lib(cmd);
    printf("wrote %s (%dx%d)\n", path, im->w, im->h);
    return 0;
}

/* ---- nets and images ----------------------------------------------------- */

typedef struct {
    cnn_net *net;
    cnn_tensor *in;    /* image input (N, C, H, W) */
    cnn_tensor *sc;    /* class scores, NULL when not needed */
    cnn_transform tf;
    char **names;      /* class names, or NULL */
    int n_names;
} model;

static void model_free(model *m)
{
    cnn_net_free(m->net);
    cnn_vis_free_files(m->names, m->n_names);
}

/* Builds the TEST net, loads weights, finds the input (and the scores). */
static int model_load(const opts *o, bool scores, bool needs_input_layer, model *m)
{
    memset(m, 0, sizeof *m);
    if (!o->model || !o->weights)
        return usage_error(o->cmd, !o->model ? "--model is required" : "--weights is required");
    cnn_net_opts no = cnn_net_default_opts();
    cnn_tool_dev dev = o->dev;
    char desc[512];
    no.phase = CNN_TEST;
    if (cnn_tool_dev_resolve(&dev, &no)) return 1;
    fprintf(stderr, "cnnvis: device %s\n", cnn_tool_dev_describe(&dev, desc, sizeof desc));
    if (cnn_net_from_file(o->model, &no, &m->net) != CNN_OK ||
        cnn_weights_load_any(m->net, o->weights, false) != CNN_OK ||
        cnn_vis_find_input(m->net, o->input, &m->in) != CNN_OK ||
        (scores && cnn_vis_find_scores(m->net, o->scores, &m->sc) != CNN_OK))
        return fail_lib(o->cmd);
    m->tf = (cnn_transform){.scale = 1};
    int w = cnn_vis_writer(m->net, m->in);
    bool from_input = w < 0 || !strcmp(cnn_net_layer_type(m->net, w), "Input");
    if (needs_input_layer && !from_input) {
        fprintf(stderr, "cnnvis %s: %s: '%s' comes from a data layer; images need a deploy "
                        "model with an Input layer\n", o->cmd, o->model, m->in->name);
        return 1;
    }
    if (from_input) cnn_net_input_transform(m->net, m->in->name, &m->tf);
    if (o->labels && cnn_vis_read_names(o->labels, &m->names, &m->n_names) != CNN_OK)
        return fail_lib(o->cmd);
    return 0;
}

/* Sets the input's batch size and reshapes the net. */
static int set_batch(const char *cmd, model *m, int n)
{
    if (cnn_tensor_reshape4(m->in, n, m->in->shape[1], m->in->shape[2], m->in->shape[3]) ||
        cnn_net_reshape(m->net))
        return fail_lib(cmd);
    return 0;
}

/* Loads IMAGE (the single positional argument) into sample 0 of a batch of 1. */
static int load_image(const opts *o, model *m)
{
    if (o->n_args != 1) return usage_error(o->cmd, "give exactly one IMAGE");
    int c = m->in->shape[1];
    if (set_batch(o->cmd, m, 1)) return 1;
    if (cnn_preprocess_file(o->args[0], &m->tf, c, m->in->shape[2], m->in->shape[3], o->bgr,
                            m->in->data) != CNN_OK ||
        cnn_vis_forward_from(m->net, m->in) != CNN_OK)
        return fail_lib(o->cmd);
    return 0;
}

static const char *class_name(const model *m, int c)
{
    return m->names && c >= 0 && c < m->n_names ? m->names[c] : "";
}

/* The separator before a class name: a space when there is a name. */
static const char *sep(const model *m, int c) { return *class_name(m, c) ? " " : ""; }

/* Class count of the scores after a forward pass with batch 1. */
static int num_classes(const model *m) { return (int)(m->sc->count / (size_t)m->sc->shape[0]); }

/* The class to explain: --class, else the prediction of sample 0. */
static int pick_class(const opts *o, const model *m, int *cls)
{
    int k = num_classes(m);
    if (m->names && m->n_names != k) {
        fprintf(stderr, "cnnvis %s: %s has %d names for %d classes\n", o->cmd, o->labels,
                m->n_names, k);
        return 1;
    }
    *cls = o->cls >= 0 ? o->cls : cnn_vis_argmax(m->sc->data, k);
    if (*cls >= k) {
        fprintf(stderr, "cnnvis %s: --class %d, but the model has %d classes\n", o->cmd, *cls,
                k);
        return 2;
    }
    return 0;
}

/* The current input (sample 0) as 8-bit pixels. */
static int input_image(const opts *o, const model *m, cnn_image *out)
{
    if (cnn_vis_to_image(m->in->data, m->in->shape[1], m->in->shape[2], m->in->shape[3], &m->tf,
                         o->bgr, out) != CNN_OK)
        return fail_lib(o->cmd);
    return 0;
}

/* map (h x w) enlarged by nearest neighbour. */
static float *zoom_map(const float *map, int h, int w, int z)
{
    float *o = malloc((size_t)h * z * w * z * sizeof *o);
    if (!o) return NULL;
    for (int y = 0; y < h * z; y++)
        for (int x = 0; x < w * z; x++) o[(size_t)y * w * z + x] = map[(size_t)(y / z) * w + x / z];
    return o;
}

/* Writes `base` zoomed with map overlaid (--out) and, if asked, the map
 * itself: grey (saliency) or heat (occlusion probabilities) (--raw). */
static int write_overlay(const opts *o, const cnn_image *base, const float *overlay,
                         const float *raw, bool raw_heat, int zoom, const char *def_out)
{
    int rc = 1, h = base->h, w = base->w;
    cnn_image zb = {0}, ov = {0}, rim = {0}, rz = {0};
    float *zm = zoom_map(overlay, h, w, zoom);
    if (!zm || cnn_plot_zoom(base, zoom, &zb) || cnn_plot_overlay(&zb, zm, o->alpha, &ov)) {
        rc = fail_lib(o->cmd);
        goto done;
    }
    if (write_png(o->cmd, o->out ? o->out : def_out, &ov)) goto done;
    if (o->raw) {
        if (raw_heat) {
            cnn_grid_opts g = cnn_grid_default_opts();
            g.pad = 0;
            g.zoom = zoom;
            g.norm = CNN_NORM_FIXED;
            g.lo = 0;
            g.hi = 1;
            g.heat = true;
            if (cnn_plot_grid(raw, 1, 1, h, w, &g, &rz) != CNN_OK) {
                rc = fail_lib(o->cmd);
                goto done;
            }
        } else {
            if (cnn_image_alloc(&rim, h, w, 1) != CNN_OK) {
                rc = fail_lib(o->cmd);
                goto done;
            }
            for (int i = 0; i < h * w; i++)
                rim.data[i] = (uint8_t)lroundf(255.f * (raw[i] < 0 ? 0 : raw[i] > 1 ? 1 : raw[i]));
            if (cnn_plot_zoom(&rim, zoom, &rz) != CNN_OK) {
                rc = fail_lib(o->cmd);
                goto done;
            }
        }
        if (write_png(o->cmd, o->raw, &rz)) goto done;
    }
    rc = 0;
done:
    free(zm);
    cnn_image_free(&zb);
    cnn_image_free(&ov);
    cnn_image_free(&rim);
    cnn_image_free(&rz);
    return rc;
}

/* ---- filters ------------------------------------------------------------- */

static int cmd_filters(const opts *o)
{
    model m;
    int rc = model_load(o, false, false, &m);
    float *buf = NULL;
    cnn_image im = {0};
    if (rc) goto done;
    int li = -1;
    for (int i = 0; i < cnn_net_num_layers(m.net) && li < 0; i++)
        if (o->layer ? !strcmp(cnn_net_layer_name(m.net, i), o->layer)
                     : !strcmp(cnn_net_layer_type(m.net, i), "Convolution"))
            li = i;
    if (li < 0) {
        fprintf(stderr, "cnnvis filters: %s: %s\n", o->model,
                o->layer ? "no such layer" : "no Convolution layer");
        rc = 1;
        goto done;
    }
    const char *name = cnn_net_layer_name(m.net, li);
    cnn_tensor *w = cnn_net_layer_num_params(m.net, li) > 0 ? cnn_net_layer_param(m.net, li, 0)
                                                            : NULL;
    if (!w || w->ndim != 4) {
        fprintf(stderr, "cnnvis filters: layer '%s' has no 4-D weights (out x in x h x w)\n",
                name);
        rc = 1;
        goto done;
    }
    int O = w->shape[0], I = w->shape[1], kh = w->shape[2], kw = w->shape[3];
    size_t fsz = (size_t)I * kh * kw, plane = (size_t)kh * kw;
    if (!(buf = malloc(w->count * sizeof *buf))) goto oom;
    /* Each filter to [0, 1] by its own min..max over all its channels. */
    for (int f = 0; f < O; f++) {
        const float *src = w->data + f * fsz;
        float lo = src[0], hi = src[0];
        for (size_t i = 1; i < fsz; i++) {
            lo = src[i] < lo ? src[i] : lo;
            hi = src[i] > hi ? src[i] : hi;
        }
        for (int c = 0; c < I; c++) {
            int dc = o->bgr && I == 3 ? 2 - c : c;
            for (size_t p = 0; p < plane; p++)
                buf[f * fsz + dc * plane + p] =
                    hi > lo ? (src[c * plane + p] - lo) / (hi - lo) : 0.f;
        }
    }
    cnn_grid_opts g = cnn_grid_default_opts();
    g.norm = CNN_NORM_FIXED;
    g.lo = 0;
    g.hi = 1;
    g.zoom = auto_zoom(o->zoom, kh, kw, 32);
    g.pad = o->pad >= 0 ? o->pad : 2;
    g.cols = o->cols;
    bool colour = I == 3 && !o->per_channel, rows = I != 1 && !colour;
    if (rows) g.cols = I; /* one row per filter, one column per input channel */
    if (cnn_plot_grid(buf, rows ? O * I : O, colour ? 3 : 1, kh, kw, &g, &im) != CNN_OK) {
        rc = fail_lib(o->cmd);
        goto done;
    }
    printf("%s: %d filters of %dx%dx%d%s\n", name, O, I, kh, kw,
           colour ? " (RGB)" : rows ? " (a row per filter, a column per input channel)" : "");
    rc = write_png(o->cmd, o->out ? o->out : "filters.png", &im);
    goto done;
oom:
    fprintf(stderr, "cnnvis filters: out of memory\n");
    rc = 1;
done:
    free(buf);
    cnn_image_free(&im);
    model_free(&m);
    return rc;
}

/* ---- activations --------------------------------------------------------- */

static int cmd_activations(const opts *o)
{
    model m;
    cnn_image im = {0};
    int rc = model_load(o, false, true, &m);
    if (rc) goto done;
    if (!o->blob) {
        rc = usage_error(o->cmd, "--blob is required");
        goto done;
    }
    cnn_tensor *b = cnn_net_blob(m.net, o->blob);
    if (!b) {
        fprintf(stderr, "cnnvis activations: %s: no blob '%s'\n", o->model, o->blob);
        rc = 1;
        goto done;
    }
    if ((rc = load_image(o, &m))) goto done;
    char s[64];
    cnn_tensor_shape_str(b, s, sizeof s);
    if (b->ndim < 2 || b->ndim > 4 || b->shape[0] != 1) {
        fprintf(stderr, "cnnvis activations: blob '%s' is %s; want 1 x C [x H [x W]]\n",
                o->blob, s);
        rc = 1;
        goto done;
    }
    int C = b->shape[1], H = b->ndim > 2 ? b->shape[2] : 1, W = b->ndim > 3 ? b->shape[3] : 1;
    cnn_grid_opts g = cnn_grid_default_opts();
    g.cols = o->cols;
    g.pad = o->pad >= 0 ? o->pad : 2;
    if (H * W == 1) { /* a vector: one strip, one scale for all values */
        g.norm = CNN_NORM_GLOBAL;
        g.pad = o->pad >= 0 ? o->pad : 0;
        if (!o->cols) g.cols = C < 32 ? C : 32;
        g.zoom = o->zoom > 0 ? o->zoom : 16;
    } else {
        g.zoom = auto_zoom(o->zoom, H, W, 64);
    }
    if (cnn_plot_grid(b->data, C, 1, H, W, &g, &im) != CNN_OK) {
        rc = fail_lib(o->cmd);
        goto done;
    }
    printf("%s: %s, %d maps of %dx%d\n", o->blob, s, C, H, W);
    rc = write_png(o->cmd, o->out ? o->out : "activations.png", &im);
done:
    cnn_image_free(&im);
    model_free(&m);
    return rc;
}

/* ---- saliency ------------------------------------------------------------ */

static int cmd_saliency(const opts *o)
{
    model m;
    cnn_image base = {0};
    float *map = NULL, *p = NULL;
    int rc = model_load(o, true, true, &m), cls;
    if (rc || (rc = load_image(o, &m)) || (rc = pick_class(o, &m, &cls))) goto done;
    int H = m.in->shape[2], W = m.in->shape[3], k = num_classes(&m);
    map = malloc((size_t)H * W * sizeof *map);
    p = malloc((size_t)k * sizeof *p);
    if (!map || !p) {
        fprintf(stderr, "cnnvis saliency: out of memory\n");
        rc = 1;
        goto done;
    }
    cnn_vis_softmax(m.sc->data, 1, k, p);
    float score = m.sc->data[cls], prob = p[cls];
    if (cnn_vis_saliency(m.net, m.in->name, m.sc->name, &cls, map) != CNN_OK) {
        rc = fail_lib(o->cmd);
        goto done;
    }
    float mx = 0;
    for (int i = 0; i < H * W; i++) mx = map[i] > mx ? map[i] : mx;
    for (int i = 0; i < H * W; i++) map[i] = mx > 0 ? map[i] / mx : 0.f;
    printf("class %d%s%s score %.4f prob %.4f; max |d score / d input| %.4g\n", cls,
           sep(&m, cls), class_name(&m, cls), score, prob, mx);
    if ((rc = input_image(o, &m, &base))) goto done;
    rc = write_overlay(o, &base, map, map, false, auto_zoom(o->zoom, H, W, 128),
                       "saliency.png");
done:
    free(map);
    free(p);
    cnn_image_free(&base);
    model_free(&m);
    return rc;
}

/* ---- class model --------------------------------------------------------- */

/* The classes of --class K or --classes "all" | "K,K,...", checked against k. */
static int class_list(const opts *o, int k, int **out, int *n)
{
    *n = 0;
    if ((o->cls >= 0) == (o->classes != NULL))
        return usage_error(o->cmd, "give --class K or --classes LIST|all");
    int *v = malloc((size_t)(k > 0 ? k : 1) * sizeof *v);
    if (!v) return 1;
    if (o->cls >= 0) {
        v[(*n)++] = o->cls;
    } else if (!strcmp(o->classes, "all")) {
        for (int c = 0; c < k; c++) v[(*n)++] = c;
    } else {
        for (const char *p = o->classes;;) {
            char *end;
            errno = 0;
            long c = strtol(p, &end, 10);
            if (errno || end == p || c < 0 || (*end && *end != ',') || *n == k) {
                fprintf(stderr, "cnnvis classmodel: --classes wants 'all' or up to %d class "
                                "numbers separated by commas, not '%s'\n", k, o->classes);
                free(v);
                return 2;
            }
            v[(*n)++] = (int)c;
            if (!*end) break;
            p = end + 1;
        }
    }
    for (int i = 0; i < *n; i++)
        if (v[i] >= k) {
            fprintf(stderr, "cnnvis classmodel: class %d, but the model has %d classes\n", v[i],
                    k);
            free(v);
            return 2;
        }
    *out = v;
    return 0;
}

static int cmd_classmodel(const opts *o)
{
    model m;
    cnn_image im = {0};
    float *lo = NULL, *hi = NULL, *first = NULL, *last = NULL;
    int *cls = NULL, n = 0;
    int rc = model_load(o, true, true, &m);
    if (rc || (rc = set_batch(o->cmd, &m, 1))) goto done;
    int C = m.in->shape[1], H = m.in->shape[2], W = m.in->shape[3];
    if (C != 1 && C != 3) {
        fprintf(stderr, "cnnvis classmodel: a %d-channel input cannot be shown\n", C);
        rc = 1;
        goto done;
    }
    memset(m.in->data, 0, m.in->count * sizeof(float));
    if (cnn_vis_forward_from(m.net, m.in) != CNN_OK) {
        rc = fail_lib(o->cmd);
        goto done;
    }
    int k = num_classes(&m);
    if ((rc = class_list(o, k, &cls, &n))) goto done;
    if (m.names && m.n_names != k) {
        fprintf(stderr, "cnnvis classmodel: %s has %d names for %d classes\n", o->labels,
                m.n_names, k);
        rc = 1;
        goto done;
    }
    /* One sample per class, all starting from zero: the mean image. */
    if ((rc = set_batch(o->cmd, &m, n))) goto done;
    memset(m.in->data, 0, m.in->count * sizeof(float));
    lo = malloc((size_t)C * sizeof *lo);
    hi = malloc((size_t)C * sizeof *hi);
    first = malloc((size_t)n * sizeof *first);
    last = malloc((size_t)n * sizeof *last);
    if (!lo || !hi || !first || !last) {
        fprintf(stderr, "cnnvis classmodel: out of memory\n");
        rc = 1;
        goto done;
    }
    cnn_vis_pixel_bounds(&m.tf, C, lo, hi);
    /* Rates are per unit of the input range (pixels 0..255 after the transform). */
    float range = hi[0] - lo[0];
    cnn_classmodel_opts co = {.iterations = o->iterations ? o->iterations : 200,
                              .lr = isnan(o->lr) ? 0.1f * range * range : o->lr,
                              .l2 = isnan(o->l2) ? 0.05f / (range * range) : o->l2,
                              .lo = lo,
                              .hi = hi};
    if (cnn_vis_class_model(m.net, m.in->name, m.sc->name, cls, &co, first, last) != CNN_OK) {
        rc = fail_lib(o->cmd);
        goto done;
    }
    for (int i = 0; i < n; i++)
        printf("class %d%s%s: score %.4f -> %.4f after %d steps (lr %g, l2 %g)\n", cls[i],
               sep(&m, cls[i]), class_name(&m, cls[i]), first[i], last[i], co.iterations, co.lr,
               co.l2);
    size_t plane = (size_t)H * W;
    if (C == 3 && o->bgr) /* show as RGB */
        for (int i = 0; i < n; i++) {
            float *x = m.in->data + (size_t)i * 3 * plane;
            for (size_t p = 0; p < plane; p++) {
                float t = x[p];
                x[p] = x[2 * plane + p];
                x[2 * plane + p] = t;
            }
        }
    cnn_grid_opts g = cnn_grid_default_opts();
    g.pad = o->pad >= 0 ? o->pad : n > 1 ? 2 : 0;
    g.cols = o->cols;
    g.zoom = auto_zoom(o->zoom, H, W, n > 1 ? 64 : 128);
    if (cnn_plot_grid(m.in->data, n, C, H, W, &g, &im) != CNN_OK) {
        rc = fail_lib(o->cmd);
        goto done;
    }
    rc = write_png(o->cmd, o->out ? o->out : "classmodel.png", &im);
done:
    free(lo);
    free(hi);
    free(first);
    free(last);
    free(cls);
    cnn_image_free(&im);
    model_free(&m);
    return rc;
}

/* ---- occlusion ----------------------------------------------------------- */

static int cmd_occlusion(const opts *o)
{
    model m;
    cnn_image base = {0};
    float *image = NULL, *map = NULL, *imp = NULL, fill[4];
    int rc = model_load(o, true, true, &m), cls;
    if (rc || (rc = load_image(o, &m)) || (rc = pick_class(o, &m, &cls))) goto done;
    int C = m.in->shape[1], H = m.in->shape[2], W = m.in->shape[3];
    if ((rc = input_image(o, &m, &base))) goto done;
    size_t sample = (size_t)C * H * W;
    image = malloc(sample * sizeof *image);
    map = malloc((size_t)H * W * sizeof *map);
    imp = malloc((size_t)H * W * sizeof *imp);
    if (!image || !map || !imp) {
        fprintf(stderr, "cnnvis occlusion: out of memory\n");
        rc = 1;
        goto done;
    }
    memcpy(image, m.in->data, sample * sizeof *image);
    int side = H < W ? H : W;
    int patch = o->patch ? o->patch : (side / 4 > 0 ? side / 4 : 1);
    int stride = o->stride ? o->stride : (patch / 2 > 0 ? patch / 2 : 1);
    float pix = o->has_fill ? o->fill : 128.f;
    float scale = m.tf.scale;
    for (int c = 0; c < C && c < 4; c++) {
        float mean = m.tf.n_mean == 0 ? 0.f : m.tf.mean[m.tf.n_mean == 1 ? 0 : c];
        fill[c] = (pix - mean) * scale;
    }
    if (C > 4) {
        fprintf(stderr, "cnnvis occlusion: a %d-channel input cannot come from images\n", C);
        rc = 1;
        goto done;
    }
    if ((rc = set_batch(o->cmd, &m, 32))) goto done;
    cnn_occlusion_opts oo = {.patch = patch, .stride = stride, .fill = fill};
    float p0;
    if (cnn_vis_occlusion(m.net, m.in->name, m.sc->name, image, cls, &oo, map, &p0) != CNN_OK) {
        rc = fail_lib(o->cmd);
        goto done;
    }
    float worst = 1, drop = 0;
    int wy = 0, wx = 0;
    for (int i = 0; i < H * W; i++) {
        if (map[i] < worst) {
            worst = map[i];
            wy = i / W;
            wx = i % W;
        }
        imp[i] = p0 - map[i] > 0 ? p0 - map[i] : 0;
        drop = imp[i] > drop ? imp[i] : drop;
    }
    for (int i = 0; i < H * W; i++) imp[i] = drop > 0 ? imp[i] / drop : 0.f;
    printf("class %d%s%s prob %.4f; patch %d stride %d fill %g; lowest %.4f at (%d, %d)\n",
           cls, sep(&m, cls), class_name(&m, cls), p0, patch, stride, pix, worst, wx, wy);
    rc = write_overlay(o, &base, imp, map, true, auto_zoom(o->zoom, H, W, 128),
                       "occlusion.png");
done:
    free(image);
    free(map);
    free(imp);
    cnn_image_free(&base);
    model_free(&m);
    return rc;
}

/* ---- top images ---------------------------------------------------------- */

typedef struct {
    float act;
    size_t index;
    int label;
    float *pixels; /* (c, h, w) 0..255 */
} hit;

static int cmp_hit(const void *a, const void *b)
{
    const hit *x = a, *y = b;
    if (x->act != y->act) return x->act < y->act ? 1 : -1;
    return x->index < y->index ? -1 : x->index > y->index;
}

static int cmd_top_images(const opts *o)
{
    model m;
    cnn_samples *s = NULL;
    char **files = NULL;
    int *labels = NULL, n_files = 0, *lab = NULL;
    hit *top = NULL;
    float *tiles = NULL;
    cnn_image im = {0}, px = {0};
    int rc = model_load(o, false, false, &m), n_top = 0;
    if (rc) goto done;
    if (!o->blob || o->channel < 0) {
        rc = usage_error(o->cmd, !o->blob ? "--blob is required" : "--channel is required");
        goto done;
    }
    if (o->k < 1 || o->k > 1024) {
        rc = usage_error(o->cmd, "--k must be 1..1024");
        goto done;
    }
    cnn_tensor *b = cnn_net_blob(m.net, o->blob);
    if (!b) {
        fprintf(stderr, "cnnvis top-images: %s: no blob '%s'\n", o->model, o->blob);
        rc = 1;
        goto done;
    }
    int C = m.in->shape[1], H = m.in->shape[2], W = m.in->shape[3];
    bool from_files = o->n_args > 0 || o->list;
    if (from_files) {
        if (o->batches) {
            rc = usage_error(o->cmd, "--batches is for a model's data layer, not files");
            goto done;
        }
        if (cnn_vis_writer(m.net, m.in) >= 0 &&
            strcmp(cnn_net_layer_type(m.net, cnn_vis_writer(m.net, m.in)), "Input")) {
            fprintf(stderr, "cnnvis top-images: %s: images need a model with an Input layer\n",
                    o->model);
            rc = 1;
            goto done;
        }
        cnn_status st = o->list ? cnn_vis_read_list(o->list, o->root, &files, &labels, &n_files)
                                : cnn_vis_image_args(o->args, o->n_args, &files, &n_files);
        if (st != CNN_OK) {
            rc = fail_lib(o->cmd);
            goto done;
        }
        int batch = m.in->shape[0] > 0 ? m.in->shape[0] : 1;
        if (cnn_samples_from_files(m.net, m.in, files, labels, n_files, batch, o->bgr, &s) !=
            CNN_OK) {
            rc = fail_lib(o->cmd);
            goto done;
        }
    } else if (cnn_samples_from_net(m.net, o->model, CNN_TEST, m.in, o->batches, &s) != CNN_OK) {
        rc = fail_lib(o->cmd);
        goto done;
    }
    size_t sample = (size_t)C * H * W;
    top = calloc((size_t)o->k, sizeof *top);
    lab = malloc((size_t)(m.in->shape[0] > 0 ? m.in->shape[0] : 1) * sizeof *lab);
    if (!top || !lab) goto oom;
    for (int i = 0; i < o->k; i++)
        if (!(top[i].pixels = malloc(sample * sizeof(float)))) goto oom;
    int count;
    size_t first;
    const cnn_transform *tf = cnn_samples_transform(s);
    for (;;) {
        if (cnn_samples_next(s, &count, lab, &first) != CNN_OK ||
            (count && cnn_vis_forward_from(m.net, m.in) != CNN_OK)) {
            rc = fail_lib(o->cmd);
            goto done;
        }
        if (!count) break;
        int N = b->ndim > 0 ? b->shape[0] : 0;
        size_t per = N > 0 ? b->count / (size_t)N : 0;
        int bc = b->ndim > 1 ? b->shape[1] : 1;
        if (N != m.in->shape[0] || o->channel >= bc) {
            fprintf(stderr, "cnnvis top-images: blob '%s' has %d channels and %d rows for %d "
                            "inputs\n", o->blob, bc, N, m.in->shape[0]);
            rc = 1;
            goto done;
        }
        size_t plane = per / (size_t)bc;
        for (int i = 0; i < count; i++) {
            const float *v = b->data + per * i + plane * o->channel;
            float a = v[0];
            for (size_t p = 1; p < plane; p++) a = v[p] > a ? v[p] : a;
            /* Replace the weakest kept sample (or fill an empty slot). */
            int slot = n_top < o->k ? n_top : -1;
            if (slot < 0) {
                int w = 0;
                for (int j = 1; j < o->k; j++)
                    if (cmp_hit(&top[j], &top[w]) > 0) w = j;
                if (a > top[w].act) slot = w;
            } else {
                n_top++;
            }
            if (slot < 0) continue;
            top[slot].act = a;
            top[slot].index = first + (size_t)i;
            top[slot].label = lab[i];
            cnn_image_free(&px);
            if (cnn_vis_to_image(m.in->data + sample * i, C, H, W, tf, o->bgr, &px) != CNN_OK) {
                rc = fail_lib(o->cmd);
                goto done;
            }
            for (int c = 0; c < C; c++) /* RGB planes for the grid */
                for (int p = 0; p < H * W; p++)
                    top[slot].pixels[(size_t)c * H * W + p] = px.data[(size_t)p * C + c];
        }
    }
    if (n_top == 0) {
        fprintf(stderr, "cnnvis top-images: no samples\n");
        rc = 1;
        goto done;
    }
    qsort(top, (size_t)n_top, sizeof *top, cmp_hit);
    if (!(tiles = malloc((size_t)n_top * sample * sizeof *tiles))) goto oom;
    printf("%s channel %d: top %d of %zu samples\nrank  activation  label  sample\n", o->blob,
           o->channel, n_top, first);
    for (int i = 0; i < n_top; i++) {
        memcpy(tiles + sample * i, top[i].pixels, sample * sizeof *tiles);
        const char *f = cnn_samples_file(s, top[i].index);
        char idx[32];
        snprintf(idx, sizeof idx, "#%zu", top[i].index);
        printf("%4d  %10.4f  %5d  %s\n", i + 1, top[i].act, top[i].label, f ? f : idx);
    }
    cnn_grid_opts g = cnn_grid_default_opts();
    g.norm = CNN_NORM_FIXED;
    g.lo = 0;
    g.hi = 255;
    g.cols = o->cols;
    g.pad = o->pad >= 0 ? o->pad : 2;
    g.zoom = auto_zoom(o->zoom, H, W, 64);
    if (C != 1 && C != 3) {
        fprintf(stderr, "cnnvis top-images: a %d-channel input cannot be shown\n", C);
        rc = 1;
        goto done;
    }
    if (cnn_plot_grid(tiles, n_top, C, H, W, &g, &im) != CNN_OK) {
        rc = fail_lib(o->cmd);
        goto done;
    }
    rc = write_png(o->cmd, o->out ? o->out : "top_images.png", &im);
    goto done;
oom:
    fprintf(stderr, "cnnvis top-images: out of memory\n");
    rc = 1;
done:
    if (top)
        for (int i = 0; i < o->k; i++) free(top[i].pixels);
    free(top);
    free(tiles);
    free(lab);
    free(labels);
    cnn_vis_free_files(files, n_files);
    cnn_samples_free(s);
    cnn_image_free(&im);
    cnn_image_free(&px);
    model_free(&m);
    return rc;
}

/* ---- curves -------------------------------------------------------------- */

typedef struct {
    double *x, *y;
    int n, cap;
} series_buf;

static int push_point(series_buf *s, double x, double y)
{
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 256;
        double *nx = realloc(s->x, (size_t)cap * sizeof *nx);
        if (!nx) return -1;
        s->x = nx;
        double *ny = realloc(s->y, (size_t)cap * sizeof *ny);
        if (!ny) return -1;
        s->y = ny;
        s->cap = cap;
    }
    s->x[s->n] = x;
    s->y[s->n] = y;
    s->n++;
    return 0;
}

static bool get_num(const cJSON *obj, const char *key, double *v)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsNumber(it)) return false;
    *v = it->valuedouble;
    return true;
}

static int cmd_curves(const opts *o)
{
    if (o->n_args != 1) return usage_error(o->cmd, "give exactly one LOG file");
    const char *path = o->args[0];
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "cnnvis curves: %s: %s\n", path, strerror(errno));
        return 1;
    }
    series_buf tr = {0}, tl = {0}, ta = {0};
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int rc = 0, no = 0;
    cnn_image im = {0};
    while ((len = getline(&line, &cap, f)) >= 0) {
        no++;
        bool complete = len > 0 && line[len - 1] == '\n';
        const char *p = line;
        while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') p++;
        if (!*p) continue;
        cJSON *obj = cJSON_Parse(line);
        if (!cJSON_IsObject(obj)) {
            cJSON_Delete(obj);
            if (!complete) { /* a line still being written by cnntrain */
                fprintf(stderr, "cnnvis curves: %s:%d: ignoring an incomplete last line\n",
                        path, no);
                break;
            }
            fprintf(stderr, "cnnvis curves: %s:%d: not a JSON object\n", path, no);
            rc = 1;
            goto done;
        }
        double it, v;
        int bad = 0;
        if (get_num(obj, "iter", &it)) {
            if (get_num(obj, "loss", &v)) bad |= push_point(&tr, it, v);
            if (get_num(obj, "test_loss", &v)) bad |= push_point(&tl, it, v);
            if (get_num(obj, "test_accuracy", &v)) bad |= push_point(&ta, it, v);
        }
        cJSON_Delete(obj);
        if (bad) {
            fprintf(stderr, "cnnvis curves: out of memory\n");
            rc = 1;
            goto done;
        }
    }
    if (ferror(f)) {
        fprintf(stderr, "cnnvis curves: %s: read error\n", path);
        rc = 1;
        goto done;
    }
    if (tr.n + tl.n + ta.n == 0) {
        fprintf(stderr, "cnnvis curves: %s: no records with iter and loss, test_loss or "
                        "test_accuracy\n", path);
        rc = 1;
        goto done;
    }
    cnn_plot_series s[3];
    int n = 0;
    if (tr.n)
        s[n++] = (cnn_plot_series){.label = "train loss", .x = tr.x, .y = tr.y, .n = tr.n,
                                   .color = {31, 119, 180}};
    if (tl.n)
        s[n++] = (cnn_plot_series){.label = "test loss", .x = tl.x, .y = tl.y, .n = tl.n,
                                   .color = {255, 127, 14}, .markers = true};
    if (ta.n)
        s[n++] = (cnn_plot_series){.label = "test accuracy", .x = ta.x, .y = ta.y, .n = ta.n,
                                   .color = {44, 160, 44}, .right_axis = true, .markers = true};
    cnn_plot_opts po = {.width = o->width, .height = o->height, .title = o->title,
                        .xlabel = "iteration", .ylabel = "loss", .y2label = "accuracy"};
    if (cnn_plot_chart(s, n, &po, &im) != CNN_OK) {
        rc = fail_lib(o->cmd);
        goto done;
    }
    printf("%d train loss, %d test loss, %d test accuracy points", tr.n, tl.n, ta.n);
    if (tr.n) printf("; last train loss %.4g", tr.y[tr.n - 1]);
    if (ta.n) printf("; last test accuracy %.4g", ta.y[ta.n - 1]);
    printf("\n");
    rc = write_png(o->cmd, o->out ? o->out : "curves.png", &im);
done:
    fclose(f);
    free(line);
    series_buf *all[3] = {&tr, &tl, &ta};
    for (int i = 0; i < 3; i++) {
        free(all[i]->x);
        free(all[i]->y);
    }
    cnn_image_free(&im);
    return rc;
}

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*run)(const opts *);
    } cmds[] = {{"filters", cmd_filters},       {"activations", cmd_activations},
                {"saliency", cmd_saliency},     {"classmodel", cmd_classmodel},
                {"occlusion", cmd_occlusion},   {"top-images", cmd_top_images},
                {"curves", cmd_curves}};
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
        if (rc == 0) {
            if (o.n_args && strcmp(o.cmd, "curves") && strcmp(o.cmd, "top-images") &&
                strcmp(o.cmd, "activations") && strcmp(o.cmd, "saliency") &&
                strcmp(o.cmd, "occlusion"))
                rc = usage_error(o.cmd, "unexpected argument");
            else
                rc = cmds[i].run(&o);
        } else if (rc == 2) {
            usage(stderr);
        } else {
            fprintf(stderr, "cnnvis: out of memory\n");
        }
        free(o.args);
        return rc;
    }
    fprintf(stderr, "cnnvis: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
