/* vis.c — input gradients, saliency, class models, occlusion sensitivity and
 * sample sources for the visualisation and adversarial tools (see vis.h).
 * Backward passes here run only the layers between the input and the scores,
 * with each layer's propagate_down set for this pass and restored after.
 * On a GPU net the input counts as written by the host before each forward,
 * and every tensor is brought back to the host after each pass. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config.h"
#include "gpu.h"
#include "net_internal.h"
#include "preprocess.h"
#include "transform.h"
#include "vis.h"

static cnn_status oom(void) { return CNN_ERROR(CNN_ERR_MEMORY, "out of memory"); }

/* A set of tensors (pointer identity), small enough for linear search. */
typedef struct {
    const cnn_tensor **v;
    int n, cap;
} tset;

static bool tset_has(const tset *s, const cnn_tensor *t)
{
    for (int i = 0; i < s->n; i++)
        if (s->v[i] == t) return true;
    return false;
}

static cnn_status tset_add(tset *s, const cnn_tensor *t)
{
    if (tset_has(s, t)) return CNN_OK;
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 32;
        const cnn_tensor **v = realloc(s->v, (size_t)cap * sizeof *v);
        if (!v) return oom();
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = t;
    return CNN_OK;
}

int cnn_vis_writer(const cnn_net *n, const cnn_tensor *t)
{
    for (int i = cnn_net_num_layers(n) - 1; i >= 0; i--)
        for (int k = 0; k < cnn_net_layer_num_tops(n, i); k++)
            if (cnn_net_layer_top(n, i, k) == t) return i;
    return -1;
}

cnn_status cnn_vis_forward_from(cnn_net *n, const cnn_tensor *input)
{
    cnn_status st = CNN_OK;
    cnn_host_wrote_data((cnn_tensor *)input);
    for (int i = cnn_vis_writer(n, input) + 1; i < cnn_net_num_layers(n); i++)
        CNN_TRY(cnn_net_layer_forward(n, i));
    CNN_TRY(cnn_net_sync_host(n));
fail:
    return st;
}

static bool is_type(const cnn_net *n, int i, const char *type)
{
    return !strcmp(cnn_net_layer_type(n, i), type);
}

cnn_status cnn_vis_find_scores(const cnn_net *n, const char *name, cnn_tensor **out)
{
    *out = NULL;
    if (name) {
        if (!(*out = cnn_net_blob(n, name)))
            return CNN_ERROR(CNN_ERR_ARG, "the model has no blob '%s'", name);
        return CNN_OK;
    }
    int n_out = cnn_net_num_outputs(n);
    cnn_tensor *o = NULL;
    for (int i = 0; i < n_out; i++)
        if (n_out == 1 || !strcmp(cnn_net_output(n, i)->name, "prob")) o = cnn_net_output(n, i);
    if (o) {
        int w = cnn_vis_writer(n, o);
        if (w >= 0 && is_type(n, w, "Softmax")) {
            *out = cnn_net_layer_bottom(n, w, 0);
            return CNN_OK;
        }
    }
    for (int i = 0; i < cnn_net_num_layers(n); i++)
        if (is_type(n, i, "SoftmaxWithLoss") || is_type(n, i, "Accuracy")) {
            *out = cnn_net_layer_bottom(n, i, 0);
            return CNN_OK;
        }
    if (o) {
        *out = o;
        return CNN_OK;
    }
    return CNN_ERROR(CNN_ERR_ARG, "cannot tell which blob holds the class scores (no Softmax, "
                                  "SoftmaxWithLoss or Accuracy layer, %d outputs): name it",
                     n_out);
}

cnn_status cnn_vis_find_input(const cnn_net *n, const char *name, cnn_tensor **out)
{
    cnn_tensor *t = NULL;
    char s[64];
    if (name) {
        if (!(t = cnn_net_blob(n, name)))
            return CNN_ERROR(CNN_ERR_ARG, "the model has no blob '%s'", name);
    } else if (cnn_net_num_inputs(n) > 0) {
        t = cnn_net_input(n, 0);
    } else {
        for (int i = 0; i < cnn_net_num_layers(n) && !t; i++)
            if (cnn_net_layer_num_bottoms(n, i) == 0 && cnn_net_layer_num_tops(n, i) > 0)
                t = cnn_net_layer_top(n, i, 0);
        if (!t) return CNN_ERROR(CNN_ERR_ARG, "the model has no Input or data layer");
    }
    if (t->ndim != 4)
        return CNN_ERROR(CNN_ERR_SHAPE, "input '%s' is %s, not N x C x H x W", t->name,
                         cnn_tensor_shape_str(t, s, sizeof s));
    *out = t;
    return CNN_OK;
}

void cnn_vis_softmax(const float *scores, int n, int k, float *p)
{
    for (int r = 0; r < n; r++) {
        const float *s = scores + (size_t)r * k;
        float *o = p + (size_t)r * k;
        float mx = s[0];
        for (int j = 1; j < k; j++) mx = s[j] > mx ? s[j] : mx;
        double sum = 0;
        for (int j = 0; j < k; j++) sum += (o[j] = expf(s[j] - mx));
        for (int j = 0; j < k; j++) o[j] = (float)(o[j] / sum);
    }
}

int cnn_vis_argmax(const float *v, int k)
{
    int b = 0;
    for (int j = 1; j < k; j++)
        if (v[j] > v[b]) b = j;
    return b;
}

/* Rows and classes of a score blob: (N, C, ...) is N rows of count/N. */
static cnn_status score_dims(const cnn_tensor *s, int *rows, int *k)
{
    if (s->ndim < 1 || s->shape[0] < 1 || s->count == 0 || s->count % (size_t)s->shape[0])
        return CNN_ERROR(CNN_ERR_SHAPE, "score blob '%s' has no per-sample rows", s->name);
    *rows = s->shape[0];
    *k = (int)(s->count / (size_t)s->shape[0]);
    return CNN_OK;
}

cnn_status cnn_input_gradient(cnn_net *n, const char *score_blob, const float *score_grad,
                              const char *input_blob, float *grad)
{
    cnn_status st = CNN_OK;
    tset dep = {0}, need = {0};
    bool *on_path = NULL;
    cnn_tensor *in = cnn_net_blob(n, input_blob), *sc = cnn_net_blob(n, score_blob);
    if (!in) return CNN_ERROR(CNN_ERR_ARG, "the model has no input blob '%s'", input_blob);
    if (!sc) return CNN_ERROR(CNN_ERR_ARG, "the model has no score blob '%s'", score_blob);
    int wi = cnn_vis_writer(n, in), ws = cnn_vis_writer(n, sc), L = cnn_net_num_layers(n);
    if (ws <= wi)
        return CNN_ERROR(CNN_ERR_ARG, "blob '%s' is not computed from '%s'", score_blob,
                         input_blob);
    if (!(on_path = calloc((size_t)L, sizeof *on_path))) return oom();
    /* Forward: which tensors depend on the input. */
    CNN_TRY(tset_add(&dep, in));
    for (int i = wi + 1; i <= ws; i++) {
        bool d = false;
        for (int b = 0; b < cnn_net_layer_num_bottoms(n, i); b++)
            d |= tset_has(&dep, cnn_net_layer_bottom(n, i, b));
        for (int t = 0; t < cnn_net_layer_num_tops(n, i) && d; t++)
            CNN_TRY(tset_add(&dep, cnn_net_layer_top(n, i, t)));
    }
    if (!tset_has(&dep, sc)) {
        st = CNN_ERROR(CNN_ERR_ARG, "blob '%s' is not computed from '%s'", score_blob,
                       input_blob);
        goto fail;
    }
    /* Backward: layers between the two, with a top the scores need. */
    CNN_TRY(tset_add(&need, sc));
    for (int i = ws; i > wi; i--) {
        bool needed = false, depends = false;
        for (int t = 0; t < cnn_net_layer_num_tops(n, i); t++)
            needed |= tset_has(&need, cnn_net_layer_top(n, i, t));
        for (int b = 0; b < cnn_net_layer_num_bottoms(n, i); b++)
            depends |= tset_has(&dep, cnn_net_layer_bottom(n, i, b));
        if (!needed || !depends) continue;
        cnn_layer *l = cnn_net_layer(n, i);
        if (!l->type->backward) {
            st = cnn_layer_error(l, CNN_ERR_UNSUPPORTED, "has no gradient, so '%s' cannot be "
                                 "differentiated with respect to '%s'", score_blob, input_blob);
            goto fail;
        }
        on_path[i] = true;
        for (int b = 0; b < l->n_bottom; b++)
            if (tset_has(&dep, l->bottom[b])) CNN_TRY(tset_add(&need, l->bottom[b]));
    }
    /* Every gradient the pass reads starts at zero, except the scores'. */
    for (int i = wi + 1; i <= ws; i++) {
        if (!on_path[i]) continue;
        cnn_layer *l = cnn_net_layer(n, i);
        for (int t = 0; t < l->n_top; t++) {
            memset(l->top[t]->grad, 0, l->top[t]->count * sizeof(float));
            cnn_host_wrote_grad(l->top[t]);
        }
        for (int b = 0; b < l->n_bottom; b++) {
            memset(l->bottom[b]->grad, 0, l->bottom[b]->count * sizeof(float));
            cnn_host_wrote_grad(l->bottom[b]);
        }
    }
    if (score_grad) {
        memcpy(sc->grad, score_grad, sc->count * sizeof(float));
    } else {
        int rows = 0, k = 0;
        CNN_TRY(score_dims(sc, &rows, &k));
        for (int r = 0; r < rows; r++)
            sc->grad[(size_t)r * k + cnn_vis_argmax(sc->data + (size_t)r * k, k)] = 1.f;
    }
    cnn_host_wrote_grad(sc);
    cnn_net_zero_param_grads(n);
    for (int i = ws; i > wi && st == CNN_OK; i--) {
        if (!on_path[i]) continue;
        cnn_layer *l = cnn_net_layer(n, i);
        bool saved[16];
        if (l->n_bottom > 16) {
            st = cnn_layer_error(l, CNN_ERR_UNSUPPORTED, "too many bottoms for a gradient");
            break;
        }
        for (int b = 0; b < l->n_bottom; b++) {
            saved[b] = l->propagate_down[b];
            l->propagate_down[b] = tset_has(&dep, l->bottom[b]);
        }
        st = cnn_net_run_backward(n, i);
        for (int b = 0; b < l->n_bottom; b++) l->propagate_down[b] = saved[b];
    }
    if (st == CNN_OK) st = cnn_net_sync_host(n);
    cnn_net_zero_param_grads(n);
    if (st == CNN_OK && grad) memcpy(grad, in->grad, in->count * sizeof(float));
fail:
    free(dep.v);
    free(need.v);
    free(on_path);
    return st;
}

/* The input and score tensors of a pass, checked: scores one row per sample. */
static cnn_status pass_blobs(cnn_net *n, const char *input, const char *scores,
                             cnn_tensor **in, cnn_tensor **sc, int *k)
{
    int rows = 0;
    if (!(*in = cnn_net_blob(n, input)))
        return CNN_ERROR(CNN_ERR_ARG, "the model has no blob '%s'", input);
    if (!(*sc = cnn_net_blob(n, scores)))
        return CNN_ERROR(CNN_ERR_ARG, "the model has no blob '%s'", scores);
    if ((*in)->ndim != 4) return CNN_ERROR(CNN_ERR_SHAPE, "input '%s' is not 4-D", input);
    cnn_status st = score_dims(*sc, &rows, k);
    if (st) return st;
    if (rows != (*in)->shape[0])
        return CNN_ERROR(CNN_ERR_SHAPE, "score blob '%s' has %d rows for %d inputs", scores,
                         rows, (*in)->shape[0]);
    return CNN_OK;
}

/* Forward from the input, then the gradient of score[s][cls[s]] (or of each
 * sample's top class when cls is NULL) left in in->grad. */
static cnn_status class_gradient(cnn_net *n, cnn_tensor *in, cnn_tensor *sc, int k,
                                 const int *cls, float *onehot)
{
    cnn_status st = CNN_OK;
    int rows = in->shape[0];
    CNN_TRY(cnn_vis_forward_from(n, in));
    memset(onehot, 0, (size_t)rows * k * sizeof *onehot);
    for (int r = 0; r < rows; r++) {
        int c = cls ? cls[r] : cnn_vis_argmax(sc->data + (size_t)r * k, k);
        if (c < 0 || c >= k)
            return CNN_ERROR(CNN_ERR_ARG, "class %d is outside 0..%d", c, k - 1);
        onehot[(size_t)r * k + c] = 1.f;
    }
    CNN_TRY(cnn_input_gradient(n, sc->name, onehot, in->name, NULL));
fail:
    return st;
}

cnn_status cnn_vis_saliency(cnn_net *n, const char *input, const char *scores, const int *cls,
                            float *map)
{
    cnn_status st = CNN_OK;
    cnn_tensor *in = NULL, *sc = NULL;
    int k;
    float *onehot = NULL;
    CNN_TRY(pass_blobs(n, input, scores, &in, &sc, &k));
    if (!(onehot = malloc((size_t)in->shape[0] * k * sizeof *onehot))) return oom();
    CNN_TRY(class_gradient(n, in, sc, k, cls, onehot));
    int N = in->shape[0], C = in->shape[1];
    size_t plane = (size_t)in->shape[2] * in->shape[3];
    for (int s = 0; s < N; s++)
        for (size_t p = 0; p < plane; p++) {
            float m = 0;
            for (int c = 0; c < C; c++) {
                float g = fabsf(in->grad[((size_t)s * C + c) * plane + p]);
                m = g > m ? g : m;
            }
            map[(size_t)s * plane + p] = m;
        }
fail:
    free(onehot);
    return st;
}

cnn_status cnn_vis_class_model(cnn_net *n, const char *input, const char *scores, const int *cls,
                               const cnn_classmodel_opts *o, float *score_first,
                               float *score_last)
{
    cnn_status st = CNN_OK;
    cnn_tensor *in = NULL, *sc = NULL;
    int k;
    float *onehot = NULL;
    CNN_TRY(pass_blobs(n, input, scores, &in, &sc, &k));
    if (o->iterations < 0 || !isfinite(o->lr) || !isfinite(o->l2))
        return CNN_ERROR(CNN_ERR_ARG, "class model: bad iterations, rate or L2 weight");
    int N = in->shape[0], C = in->shape[1];
    size_t plane = (size_t)in->shape[2] * in->shape[3];
    if (!(onehot = malloc((size_t)N * k * sizeof *onehot))) return oom();
    for (int it = 0; it <= o->iterations; it++) {
        CNN_TRY(class_gradient(n, in, sc, k, cls, onehot));
        for (int s = 0; s < N; s++) {
            float v = sc->data[(size_t)s * k + cls[s]];
            if (it == 0 && score_first) score_first[s] = v;
            if (score_last) score_last[s] = v;
        }
        if (it == o->iterations) break;
        for (int s = 0; s < N; s++)
            for (int c = 0; c < C; c++) {
                float *x = in->data + ((size_t)s * C + c) * plane;
                const float *g = in->grad + ((size_t)s * C + c) * plane;
                for (size_t p = 0; p < plane; p++) {
                    float v = x[p] + o->lr * (g[p] - 2.f * o->l2 * x[p]);
                    if (o->lo) v = v < o->lo[c] ? o->lo[c] : v;
                    if (o->hi) v = v > o->hi[c] ? o->hi[c] : v;
                    x[p] = v;
                }
            }
    }
fail:
    free(onehot);
    return st;
}

/* Patch positions along a side: 0, stride, ... and the last flush with the end. */
static int positions(int size, int patch, int stride, int *pos)
{
    int n = 0;
    for (int p = 0; p + patch <= size; p += stride) pos[n++] = p;
    if (n == 0 || pos[n - 1] + patch < size) pos[n++] = size - patch;
    return n;
}

cnn_status cnn_vis_occlusion(cnn_net *n, const char *input, const char *scores,
                             const float *image, int cls, const cnn_occlusion_opts *o,
                             float *map, float *prob)
{
    cnn_status st = CNN_OK;
    cnn_tensor *in = NULL, *sc = NULL;
    int k;
    int *py = NULL, *px = NULL;
    float *cover = NULL, *p = NULL;
    CNN_TRY(pass_blobs(n, input, scores, &in, &sc, &k));
    int N = in->shape[0], C = in->shape[1], H = in->shape[2], W = in->shape[3];
    if (o->patch < 1 || o->patch > H || o->patch > W || o->stride < 1)
        return CNN_ERROR(CNN_ERR_ARG, "occlusion: patch %d / stride %d do not fit %dx%d",
                         o->patch, o->stride, H, W);
    if (cls < 0 || cls >= k) return CNN_ERROR(CNN_ERR_ARG, "class %d is outside 0..%d", cls,
                                              k - 1);
    size_t sample = (size_t)C * H * W;
    py = malloc(((size_t)H + 1) * sizeof *py);
    px = malloc(((size_t)W + 1) * sizeof *px);
    cover = calloc((size_t)H * W, sizeof *cover);
    p = malloc((size_t)N * k * sizeof *p);
    if (!py || !px || !cover || !p) {
        st = oom();
        goto fail;
    }
    int ny = positions(H, o->patch, o->stride, py), nx = positions(W, o->patch, o->stride, px);
    int total = ny * nx;
    memset(map, 0, (size_t)H * W * sizeof *map);
    /* Job -1 is the unoccluded image; job j >= 0 the patch at (py, px). */
    for (int job = -1; job < total;) {
        int nb = 0;
        for (; nb < N && job + nb < total; nb++) {
            int j = job + nb;
            float *x = in->data + sample * nb;
            memcpy(x, image, sample * sizeof *x);
            if (j < 0) continue;
            int y0 = py[j / nx], x0 = px[j % nx];
            for (int c = 0; c < C; c++)
                for (int y = y0; y < y0 + o->patch; y++)
                    for (int xx = x0; xx < x0 + o->patch; xx++)
                        x[((size_t)c * H + y) * W + xx] = o->fill[c];
        }
        for (int b = nb; b < N; b++) memcpy(in->data + sample * b, image, sample * sizeof(float));
        CNN_TRY(cnn_vis_forward_from(n, in));
        cnn_vis_softmax(sc->data, N, k, p);
        for (int b = 0; b < nb; b++) {
            int j = job + b;
            float v = p[(size_t)b * k + cls];
            if (j < 0) {
                if (prob) *prob = v;
                continue;
            }
            int y0 = py[j / nx], x0 = px[j % nx];
            for (int y = y0; y < y0 + o->patch; y++)
                for (int xx = x0; xx < x0 + o->patch; xx++) {
                    map[(size_t)y * W + xx] += v;
                    cover[(size_t)y * W + xx] += 1;
                }
        }
        job += nb;
    }
    for (size_t i = 0; i < (size_t)H * W; i++) map[i] = cover[i] > 0 ? map[i] / cover[i] : NAN;
fail:
    free(py);
    free(px);
    free(cover);
    free(p);
    return st;
}

/* ---- transforms and images ------------------------------------------------ */

cnn_status cnn_vis_model_transform(const char *model, const char *layer, cnn_phase phase,
                                   cnn_transform *out, bool *found)
{
    cnn_status st = CNN_OK;
    cnn_cfg *root = NULL;
    *out = (cnn_transform){.scale = 1};
    *found = false;
    static const char *const phases[] = {"TRAIN", "TEST", NULL};
    CNN_TRY(cnn_cfg_parse_file(model, &root));
    for (int i = 0; i < cnn_cfg_count(root, "layer") && !*found; i++) {
        cnn_cfg *l = cnn_cfg_nth(root, "layer", i);
        const char *name = NULL;
        if (l->kind != CNN_CFG_MESSAGE) continue;
        CNN_TRY(cnn_cfg_string(l, "name", "", &name));
        if (strcmp(name, layer)) continue;
        /* The phase rules, as the net applies them (levels and stages aside). */
        int n_inc = cnn_cfg_count(l, "include"), n_exc = cnn_cfg_count(l, "exclude");
        bool inc = n_inc == 0;
        for (int r = 0; r < n_inc + n_exc; r++) {
            cnn_cfg *rule = r < n_inc ? cnn_cfg_nth(l, "include", r)
                                      : cnn_cfg_nth(l, "exclude", r - n_inc);
            int ph = -1;
            if (rule->kind == CNN_CFG_MESSAGE)
                CNN_TRY(cnn_cfg_enum(rule, "phase", phases, -1, &ph));
            bool m = ph < 0 || ph == (int)phase;
            if (m) inc = r < n_inc;
        }
        if (!inc) continue;
        *found = cnn_cfg_count(l, "transform_param") > 0;
        CNN_TRY(cnn_transform_parse(l, true, out));
        break;
    }
fail:
    cnn_cfg_free(root);
    return st;
}

void cnn_vis_pixel_bounds(const cnn_transform *t, int c, float *lo, float *hi)
{
    float scale = t ? t->scale : 1.f;
    for (int ch = 0; ch < c; ch++) {
        float mean = t ? cnn_transform_mean(t, ch) : 0.f;
        float a = (0.f - mean) * scale, b = (255.f - mean) * scale;
        lo[ch] = a < b ? a : b;
        hi[ch] = a < b ? b : a;
    }
}

cnn_status cnn_vis_to_image(const float *x, int c, int h, int w, const cnn_transform *t,
                            bool bgr, cnn_image *out)
{
    if (c != 1 && c != 3)
        return CNN_ERROR(CNN_ERR_SHAPE, "%d-channel input cannot be shown as an image", c);
    cnn_status st = cnn_image_alloc(out, h, w, c);
    if (st) return st;
    float scale = t && t->scale != 0 ? t->scale : 1.f;
    size_t plane = (size_t)h * w;
    for (int ch = 0; ch < c; ch++) {
        float mean = t ? cnn_transform_mean(t, ch) : 0.f;
        int dst = bgr && c == 3 ? 2 - ch : ch;
        for (size_t p = 0; p < plane; p++) {
            float v = x[(size_t)ch * plane + p] / scale + mean;
            v = isfinite(v) ? v : 0;
            out->data[p * c + dst] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : lroundf(v));
        }
    }
    return CNN_OK;
}

/* ---- samples ------------------------------------------------------------------ */

struct cnn_samples {
    cnn_net *net;
    cnn_tensor *input;
    cnn_tensor *label;   /* data layer's labels, or NULL */
    int layer;           /* data layer index, -1 for files */
    cnn_transform tf;
    long batches;        /* data layer: batches to run */
    size_t total, next;  /* samples in the run, index of the next */
    char **files;        /* (total) for files */
    int *labels;         /* (total) for files, or NULL */
    int batch, c, h, w;
    bool bgr;
};

void cnn_samples_free(cnn_samples *s)
{
    if (!s) return;
    if (s->files)
        for (size_t i = 0; i < s->total; i++) free(s->files[i]);
    free(s->files);
    free(s->labels);
    free(s);
}

cnn_status cnn_samples_from_net(cnn_net *n, const char *model, cnn_phase phase,
                                const cnn_tensor *input, long batches, cnn_samples **out)
{
    cnn_status st = CNN_OK;
    *out = NULL;
    int li = cnn_vis_writer(n, input);
    if (li < 0 || cnn_net_layer_num_bottoms(n, li) != 0 || is_type(n, li, "Input"))
        return CNN_ERROR(CNN_ERR_ARG, "blob '%s' does not come from a data layer",
                         input->name);
    cnn_samples *s = calloc(1, sizeof *s);
    if (!s) return oom();
    s->net = n;
    s->input = (cnn_tensor *)input;
    s->layer = li;
    s->label = cnn_net_layer_num_tops(n, li) > 1 ? cnn_net_layer_top(n, li, 1) : NULL;
    bool found;
    CNN_TRY(cnn_vis_model_transform(model, cnn_net_layer_name(n, li), phase, &s->tf, &found));
    s->batch = input->shape[0];
    size_t avail = cnn_net_data_samples(n);
    if (batches > 0) {
        s->batches = batches;
        s->total = (size_t)batches * s->batch;
    } else {
        if (avail == 0)
            CNN_TRY(CNN_ERROR(CNN_ERR_ARG, "layer '%s' cannot tell its data set size: give a "
                              "number of batches", cnn_net_layer_name(n, li)));
        s->total = avail;
        s->batches = (long)((avail + s->batch - 1) / s->batch);
    }
    CNN_TRY(cnn_net_seek_data(n, 0));
    *out = s;
    return CNN_OK;
fail:
    cnn_samples_free(s);
    return st;
}

cnn_status cnn_samples_from_files(cnn_net *n, cnn_tensor *input, char *const *files,
                                  const int *labels, int count, int batch, bool bgr,
                                  cnn_samples **out)
{
    cnn_status st = CNN_OK;
    *out = NULL;
    if (input->ndim != 4 || (input->shape[1] != 1 && input->shape[1] != 3))
        return CNN_ERROR(CNN_ERR_SHAPE, "input '%s' must be N x 1|3 x H x W for images",
                         input->name);
    if (batch < 1 || count < 0) return CNN_ERROR(CNN_ERR_ARG, "bad batch size or file count");
    cnn_samples *s = calloc(1, sizeof *s);
    if (!s) return oom();
    s->net = n;
    s->input = input;
    s->layer = -1;
    s->batch = batch;
    s->bgr = bgr;
    s->c = input->shape[1];
    s->h = input->shape[2];
    s->w = input->shape[3];
    s->tf = (cnn_transform){.scale = 1};
    cnn_net_input_transform(n, input->name, &s->tf);
    CNN_TRY(cnn_preprocess_check(&s->tf, s->c));
    s->files = calloc((size_t)count + 1, sizeof *s->files);
    s->labels = labels ? malloc(((size_t)count + 1) * sizeof *s->labels) : NULL;
    if (!s->files || (labels && !s->labels)) {
        st = oom();
        goto fail;
    }
    for (int i = 0; i < count; i++) {
        if (!(s->files[i] = strdup(files[i]))) {
            s->total = (size_t)i;
            st = oom();
            goto fail;
        }
        if (labels) s->labels[i] = labels[i];
    }
    s->total = (size_t)count;
    *out = s;
    return CNN_OK;
fail:
    cnn_samples_free(s);
    return st;
}

cnn_status cnn_samples_next(cnn_samples *s, int *count, int *labels, size_t *first)
{
    cnn_status st = CNN_OK;
    *count = 0;
    *first = s->next;
    if (s->next >= s->total) return CNN_OK;
    if (s->layer >= 0) {
        CNN_TRY(cnn_net_layer_forward(s->net, s->layer));
        size_t left = s->total - s->next;
        int nb = left < (size_t)s->batch ? (int)left : s->batch;
        for (int i = 0; i < nb; i++)
            labels[i] = s->label ? (int)s->label->data[i] : -1;
        s->next += (size_t)nb;
        *count = nb;
        return CNN_OK;
    }
    size_t left = s->total - s->next;
    int nb = left < (size_t)s->batch ? (int)left : s->batch;
    if (s->input->shape[0] != nb)
        CNN_TRY(cnn_tensor_reshape4(s->input, nb, s->c, s->h, s->w));
    size_t sample = (size_t)s->c * s->h * s->w;
    for (int i = 0; i < nb; i++) {
        size_t j = s->next + (size_t)i;
        CNN_TRY(cnn_preprocess_file(s->files[j], &s->tf, s->c, s->h, s->w, s->bgr,
                                    s->input->data + sample * i));
        labels[i] = s->labels ? s->labels[j] : -1;
    }
    CNN_TRY(cnn_net_reshape(s->net));
    s->next += (size_t)nb;
    *count = nb;
fail:
    return st;
}

const char *cnn_samples_file(const cnn_samples *s, size_t i)
{
    return s->files && i < s->total ? s->files[i] : NULL;
}

const cnn_transform *cnn_samples_transform(const cnn_samples *s) { return &s->tf; }

/* ---- file lists --------------------------------------------------------------- */

typedef struct {
    char **v;
    int n, cap;
} strvec;

static cnn_status strvec_push(strvec *l, const char *s)
{
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 16;
        char **v = realloc(l->v, (size_t)cap * sizeof *v);
        if (!v) return oom();
        l->v = v;
        l->cap = cap;
    }
    if (!(l->v[l->n] = strdup(s))) return oom();
    l->n++;
    return CNN_OK;
}

void cnn_vis_free_files(char **files, int count)
{
    if (!files) return;
    for (int i = 0; i < count; i++) free(files[i]);
    free(files);
}

static bool is_image_name(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (!dot || dot == name) return false;
    char ext[8];
    size_t k = 0;
    for (dot++; *dot && k < sizeof ext - 1; dot++) ext[k++] = (char)tolower((unsigned char)*dot);
    if (*dot) return false;
    ext[k] = 0;
    return !strcmp(ext, "png") || !strcmp(ext, "jpg") || !strcmp(ext, "jpeg");
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Appends the image files of directory `dir`, sorted. */
static cnn_status add_dir(strvec *out, const char *dir)
{
    cnn_status st = CNN_OK;
    strvec found = {0};
    char *path = NULL;
    DIR *d = opendir(dir);
    if (!d) return CNN_ERROR(CNN_ERR_IO, "%s: %s", dir, strerror(errno));
    size_t dl = strlen(dir);
    bool slash = dl > 0 && dir[dl - 1] == '/';
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || !is_image_name(e->d_name)) continue;
        if (!(path = malloc(dl + strlen(e->d_name) + 2))) {
            st = oom();
            goto fail;
        }
        sprintf(path, "%s%s%s", dir, slash ? "" : "/", e->d_name);
        struct stat sb;
        if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode)) CNN_TRY(strvec_push(&found, path));
        free(path);
        path = NULL;
    }
    if (found.n == 0) {
        st = CNN_ERROR(CNN_ERR_IO, "%s: no PNG or JPEG files", dir);
        goto fail;
    }
    qsort(found.v, (size_t)found.n, sizeof *found.v, cmp_str);
    for (int i = 0; i < found.n; i++) CNN_TRY(strvec_push(out, found.v[i]));
fail:
    free(path);
    closedir(d);
    cnn_vis_free_files(found.v, found.n);
    return st;
}

cnn_status cnn_vis_image_args(char *const *args, int n, char ***files, int *count)
{
    cnn_status st = CNN_OK;
    strvec out = {0};
    for (int i = 0; i < n; i++) {
        struct stat sb;
        if (stat(args[i], &sb) != 0) {
            st = CNN_ERROR(CNN_ERR_IO, "%s: %s", args[i], strerror(errno));
            goto fail;
        }
        if (S_ISDIR(sb.st_mode))
            CNN_TRY(add_dir(&out, args[i]));
        else
            CNN_TRY(strvec_push(&out, args[i]));
    }
    *files = out.v;
    *count = out.n;
    return CNN_OK;
fail:
    cnn_vis_free_files(out.v, out.n);
    return st;
}

cnn_status cnn_vis_read_list(const char *path, const char *root, char ***files, int **labels,
                             int *count)
{
    cnn_status st = CNN_OK;
    strvec out = {0};
    int *lab = NULL, n_lab = 0;
    char *line = NULL, *full = NULL;
    size_t cap = 0;
    FILE *f = fopen(path, "r");
    if (!f) return CNN_ERROR(CNN_ERR_IO, "%s: %s", path, strerror(errno));
    ssize_t len;
    for (int no = 1; (len = getline(&line, &cap, f)) >= 0; no++) {
        while (len > 0 && isspace((unsigned char)line[len - 1])) line[--len] = 0;
        char *p = line;
        while (isspace((unsigned char)*p)) p++;
        if (!*p) continue;
        char *sp = p + strlen(p);
        while (sp > p && !isspace((unsigned char)sp[-1])) sp--;
        char *end;
        errno = 0;
        long v = sp > p ? strtol(sp, &end, 10) : 0;
        if (sp == p || errno || *end || v < 0 || v > 1000000) {
            st = CNN_ERROR(CNN_ERR_FORMAT, "%s:%d: want 'path label' with a label >= 0", path,
                           no);
            goto fail;
        }
        char *q = sp;
        while (q > p && isspace((unsigned char)q[-1])) q--;
        *q = 0;
        size_t rl = root ? strlen(root) : 0;
        if (!(full = malloc(rl + strlen(p) + 1))) {
            st = oom();
            goto fail;
        }
        sprintf(full, "%s%s", root ? root : "", p);
        CNN_TRY(strvec_push(&out, full));
        free(full);
        full = NULL;
        int *nl = realloc(lab, (size_t)(n_lab + 1) * sizeof *nl);
        if (!nl) {
            st = oom();
            goto fail;
        }
        lab = nl;
        lab[n_lab++] = (int)v;
    }
    if (ferror(f)) {
        st = CNN_ERROR(CNN_ERR_IO, "%s: read error", path);
        goto fail;
    }
    if (out.n == 0) {
        st = CNN_ERROR(CNN_ERR_FORMAT, "%s: no images listed", path);
        goto fail;
    }
    fclose(f);
    free(line);
    *files = out.v;
    *labels = lab;
    *count = out.n;
    return CNN_OK;
fail:
    fclose(f);
    free(line);
    free(full);
    free(lab);
    cnn_vis_free_files(out.v, out.n);
    return st;
}

cnn_status cnn_vis_read_names(const char *path, char ***names, int *count)
{
    cnn_status st = CNN_OK;
    strvec out = {0};
    char *line = NULL;
    size_t cap = 0;
    FILE *f = fopen(path, "r");
    if (!f) return CNN_ERROR(CNN_ERR_IO, "%s: %s", path, strerror(errno));
    ssize_t len;
    while ((len = getline(&line, &cap, f)) >= 0) {
        while (len > 0 && isspace((unsigned char)line[len - 1])) line[--len] = 0;
        CNN_TRY(strvec_push(&out, line));
    }
    if (ferror(f)) {
        st = CNN_ERROR(CNN_ERR_IO, "%s: read error", path);
        goto fail;
    }
    fclose(f);
    free(line);
    *names = out.v;
    *count = out.n;
    return CNN_OK;
fail:
    fclose(f);
    free(line);
    cnn_vis_free_files(out.v, out.n);
    return st;
}
