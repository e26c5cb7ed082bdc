/* conv.c — the Convolution layer (Caffe's semantics): 2-d convolution with
 * padding, stride, dilation and groups, by im2col and GEMM. Several images
 * are unfolded side by side so that one GEMM per group covers a chunk of
 * the batch; 1x1 kernels with stride 1 and no padding skip im2col. Several
 * bottom/top pairs share the weights, as in Caffe. On a GPU net the layer
 * runs through cuDNN, planned at reshape for the bottom shape (all bottoms
 * share it, so one plan serves every pair). */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "../core/gpu.h"
#include "../kernels/kernels.h"
#include "layer.h"

/* Largest column buffer (floats) the backward pass batches images in (1 MB:
 * its col2im and gradient gathers slow down once the buffer falls out of
 * cache) and the forward pass (4 MB: a wider GEMM still gains there); a
 * single image may need more, which is then what is allocated. */
#define COL_LIMIT ((size_t)1 << 18)
#define FWD_COL_LIMIT ((size_t)1 << 20)

typedef struct {
    int num_output, group, axis;
    bool bias_term;
    int kh, kw, ph, pw, sh, sw, dh, dw;
    cnn_filler weight_filler, bias_filler;
    /* From the bottom shape, set by reshape. */
    int n, c, h, w, oh, ow;
    bool is_1x1;
    int chunk;        /* images per GEMM, backward */
    int fwd_chunk;    /* images per GEMM, forward */
    float *col;       /* (C*kh*kw, fwd_chunk*oh*ow) */
    size_t col_cap;
    float *tmp;       /* (num_output, fwd_chunk*oh*ow): outputs or top grads, batched */
    size_t tmp_cap;
    bool col_valid;   /* col holds bottom[0]'s whole batch, unfolded by forward */
    cnn_cuda_conv *plan;     /* GPU: the cuDNN plan for plan_desc, NULL when none */
    cnn_cuda_conv_desc plan_desc;
} conv_priv;

static void conv_destroy(cnn_layer *l)
{
    conv_priv *p = l->priv;
    if (p) {
        free(p->col);
        free(p->tmp);
        cnn_cuda_conv_free(p->plan);
    }
    free(l->priv);
    l->priv = NULL;
}

/* Reads a repeated spatial field `rep` (1 value for both axes, or h then w)
 * or, where Caffe has them (key_h not NULL), its `key_h`/`key_w` pair (a
 * missing one of the pair is 0, as in Caffe). Absent: both get `def`. */
static cnn_status read_pair(cnn_layer *l, cnn_cfg *p, const char *rep, const char *key_h,
                            const char *key_w, int def, int *vh, int *vw)
{
    cnn_status st = CNN_OK;
    int n = cnn_cfg_count(p, rep);
    bool has_hw = key_h && (cnn_cfg_count(p, key_h) > 0 || cnn_cfg_count(p, key_w) > 0);
    *vh = *vw = def;
    if (!has_hw && n == 0) return CNN_OK;
    if (has_hw) {
        if (n > 0)
            return cnn_layer_error(l, CNN_ERR_CONFIG, "give either %s or %s/%s, not both", rep,
                                   key_h, key_w);
        CNN_TRY(cnn_cfg_int(p, key_h, 0, vh));
        CNN_TRY(cnn_cfg_int(p, key_w, 0, vw));
    } else if (n == 1) {
        CNN_TRY(cnn_cfg_as_int(cnn_cfg_nth(p, rep, 0), vh));
        *vw = *vh;
    } else if (n == 2) {
        CNN_TRY(cnn_cfg_as_int(cnn_cfg_nth(p, rep, 0), vh));
        CNN_TRY(cnn_cfg_as_int(cnn_cfg_nth(p, rep, 1), vw));
    } else {
        return cnn_layer_error(l, CNN_ERR_UNSUPPORTED,
                               "%s given %d times: only 2-d convolution is supported (give it "
                               "once, or h then w)", rep, n);
    }
    if (*vh < 0 || *vw < 0)
        return cnn_layer_error(l, CNN_ERR_CONFIG, "%s must not be negative", rep);
fail:
    return st;
}

/* Prefixes the layer's name to an error from the config getters (errors
 * made with cnn_layer_error already carry it). */
static cnn_status named(const cnn_layer *l, cnn_status st)
{
    if (st == CNN_OK || !strncmp(cnn_error_message(), "layer '", 7)) return st;
    return cnn_layer_error(l, st, "%s", cnn_error_message());
}

static cnn_status conv_setup(cnn_layer *l, cnn_cfg *cfg)
{
    static const char *const engines[] = {"DEFAULT", "CAFFE", "CUDNN", NULL};
    cnn_status st = CNN_OK;
    cnn_cfg *p = NULL;
    int engine = 0;
    bool force_nd = false;
    CNN_TRY(cnn_layer_alloc_priv(l, sizeof(conv_priv)));
    conv_priv *cp = l->priv;
    CNN_TRY(cnn_cfg_message(cfg, "convolution_param", &p));
    if (!p)
        return cnn_layer_error(l, CNN_ERR_CONFIG, "convolution_param { num_output … } missing");
    if (l->n_bottom != l->n_top)
        return cnn_layer_error(l, CNN_ERR_CONFIG, "needs one top per bottom (%d bottoms, %d "
                               "tops)", l->n_bottom, l->n_top);
    CNN_TRY(cnn_cfg_int(p, "num_output", 0, &cp->num_output));
    CNN_TRY(cnn_cfg_bool(p, "bias_term", true, &cp->bias_term));
    CNN_TRY(cnn_cfg_int(p, "group", 1, &cp->group));
    CNN_TRY(cnn_cfg_int(p, "axis", 1, &cp->axis));
    CNN_TRY(cnn_cfg_enum(p, "engine", engines, 0, &engine));
    CNN_TRY(cnn_cfg_bool(p, "force_nd_im2col", false, &force_nd));
    CNN_TRY(read_pair(l, p, "kernel_size", "kernel_h", "kernel_w", -1, &cp->kh, &cp->kw));
    CNN_TRY(read_pair(l, p, "stride", "stride_h", "stride_w", 1, &cp->sh, &cp->sw));
    CNN_TRY(read_pair(l, p, "pad", "pad_h", "pad_w", 0, &cp->ph, &cp->pw));
    CNN_TRY(read_pair(l, p, "dilation", NULL, NULL, 1, &cp->dh, &cp->dw));
    CNN_TRY(cnn_filler_parse(p, "weight_filler", 0.f, &cp->weight_filler));
    CNN_TRY(cnn_filler_parse(p, "bias_filler", 0.f, &cp->bias_filler));
    if (cp->kh < 0)
        return cnn_layer_error(l, CNN_ERR_CONFIG,
                               "kernel_size (or kernel_h and kernel_w) is required");
    if (cp->kh == 0 || cp->kw == 0)
        return cnn_layer_error(l, CNN_ERR_CONFIG, "kernel size must be nonzero (got %d high, "
                               "%d wide: give kernel_size, or both kernel_h and kernel_w)",
                               cp->kh, cp->kw);
    if (cp->sh == 0 || cp->sw == 0)
        return cnn_layer_error(l, CNN_ERR_CONFIG, "stride must be nonzero (got %d high, %d "
                               "wide: give stride, or both stride_h and stride_w)", cp->sh,
                               cp->sw);
    if (cp->dh == 0 || cp->dw == 0)
        return cnn_layer_error(l, CNN_ERR_CONFIG, "dilation must be nonzero");
    if (cp->num_output <= 0)
        return cnn_layer_error(l, CNN_ERR_CONFIG, "num_output must be given and positive");
    if (cp->group <= 0)
        return cnn_layer_error(l, CNN_ERR_CONFIG, "group must be positive (got %d)", cp->group);
    if (cp->num_output % cp->group)
        return cnn_layer_error(l, CNN_ERR_CONFIG,
                               "num_output %d is not a multiple of group %d", cp->num_output,
                               cp->group);
    cp->is_1x1 = cp->kh == 1 && cp->kw == 1 && cp->sh == 1 && cp->sw == 1 && cp->ph == 0 &&
                 cp->pw == 0;
fail:
    return named(l, st);
}

/* Grows *buf to hold n floats. */
static cnn_status grow(cnn_layer *l, float **buf, size_t *cap, size_t n)
{
    if (n <= *cap) return CNN_OK;
    float *b = malloc(n * sizeof(float));
    if (!b) return cnn_layer_error(l, CNN_ERR_MEMORY, "cannot allocate %zu floats", n);
    free(*buf);
    *buf = b;
    *cap = n;
    return CNN_OK;
}

/* Plans the cuDNN convolution for the current bottom shape, keeping the
 * plan when the shape has not changed (an empty batch gets none). */
static cnn_status plan_gpu(cnn_layer *l)
{
    conv_priv *cp = l->priv;
    cnn_cuda_conv_desc d = {
        .n = cp->n, .c = cp->c, .h = cp->h, .w = cp->w, .o = cp->num_output,
        .kh = cp->kh, .kw = cp->kw, .ph = cp->ph, .pw = cp->pw, .sh = cp->sh, .sw = cp->sw,
        .dh = cp->dh, .dw = cp->dw, .group = cp->group,
    };
    if (cp->plan && !memcmp(&d, &cp->plan_desc, sizeof d)) return CNN_OK;
    cnn_cuda_conv_free(cp->plan);
    cp->plan = NULL;
    if (cp->n == 0) return CNN_OK;
    cnn_status st = cnn_cuda_conv_create(l->cuda, &d, &cp->plan);
    if (st != CNN_OK) return cnn_layer_error(l, st, "%s", cnn_error_message());
    cp->plan_desc = d;
    int oh, ow;
    cnn_cuda_conv_out_size(cp->plan, &oh, &ow);
    if (oh != cp->oh || ow != cp->ow)
        return cnn_layer_error(l, CNN_ERR_CUDA, "cuDNN plans a %dx%d output, expected %dx%d",
                               oh, ow, cp->oh, cp->ow);
    return CNN_OK;
}

/* want, clamped to [1, batch]. */
static int images_per_gemm(const conv_priv *cp, size_t want)
{
    if (want > (size_t)cp->n) want = (size_t)cp->n;
    return want < 1 ? 1 : (int)want;
}

static cnn_status conv_reshape(cnn_layer *l)
{
    conv_priv *cp = l->priv;
    cnn_status st = CNN_OK;
    const cnn_tensor *b = l->bottom[0];
    char s[64], s2[64];
    cp->col_valid = false;
    if (b->ndim != 4)
        return cnn_layer_error(l, CNN_ERR_UNSUPPORTED,
                               "needs a 4-d input (N, C, H, W), got %s",
                               cnn_tensor_shape_str(b, s, sizeof s));
    if (cnn_tensor_axis(b, cp->axis) != 1)
        return cnn_layer_error(l, CNN_ERR_UNSUPPORTED, "axis %d: only axis 1 (channels) is "
                               "supported", cp->axis);
    for (int i = 1; i < l->n_bottom; i++)
        if (!cnn_tensor_same_shape(l->bottom[i], b))
            return cnn_layer_error(l, CNN_ERR_SHAPE, "bottom %d has shape %s, bottom 0 %s", i,
                                   cnn_tensor_shape_str(l->bottom[i], s, sizeof s),
                                   cnn_tensor_shape_str(b, s2, sizeof s2));
    cp->n = b->shape[0];
    cp->c = b->shape[1];
    cp->h = b->shape[2];
    cp->w = b->shape[3];
    if (cp->c % cp->group)
        return cnn_layer_error(l, CNN_ERR_CONFIG, "%d input channels are not divisible by "
                               "group %d", cp->c, cp->group);
    cnn_k_conv_axis ay = cnn_k_conv_axis_of(cp->h, cp->kh, cp->ph, cp->sh, cp->dh);
    cnn_k_conv_axis ax = cnn_k_conv_axis_of(cp->w, cp->kw, cp->pw, cp->sw, cp->dw);
    if (!ay.out || !ax.out)
        return cnn_layer_error(l, CNN_ERR_SHAPE,
                               "kernel %lldx%lld (dilated) is larger than the padded input "
                               "%lldx%lld", ay.extent, ax.extent, ay.padded, ax.padded);
    if (ay.out > INT_MAX || ax.out > INT_MAX)
        return cnn_layer_error(l, CNN_ERR_SHAPE, "output of %lldx%lld is too large (pad %dx%d "
                               "on a %dx%d input)", ay.out, ax.out, cp->ph, cp->pw, cp->h,
                               cp->w);
    cp->oh = (int)ay.out;
    cp->ow = (int)ax.out;
    int wshape[4] = {cp->num_output, cp->c / cp->group, cp->kh, cp->kw};
    CNN_TRY(cnn_layer_param(l, 0, 4, wshape, &cp->weight_filler, NULL));
    if (cp->bias_term) CNN_TRY(cnn_layer_param(l, 1, 1, &cp->num_output, &cp->bias_filler, NULL));
    for (int i = 0; i < l->n_top; i++)
        CNN_TRY(cnn_tensor_reshape4(l->top[i], cp->n, cp->num_output, cp->oh, cp->ow));
    size_t ohw = (size_t)cp->oh * cp->ow, k = (size_t)cp->c * cp->kh * cp->kw;
    size_t rows = k > (size_t)cp->num_output ? k : (size_t)cp->num_output;
    cp->chunk = images_per_gemm(cp, COL_LIMIT / (rows * ohw));
    cp->fwd_chunk = images_per_gemm(cp, FWD_COL_LIMIT / (rows * ohw));
    size_t chunk = (size_t)cp->fwd_chunk;
    if (l->cuda) return plan_gpu(l); /* cuDNN: no host im2col buffers */
    if (!cp->is_1x1) CNN_TRY(grow(l, &cp->col, &cp->col_cap, k * chunk * ohw));
    if (chunk > 1) CNN_TRY(grow(l, &cp->tmp, &cp->tmp_cap, (size_t)cp->num_output * chunk * ohw));
fail:
    return st;
}

/* Adds bias[o] to every position of output channel o of nb images. */
static void add_bias(const conv_priv *cp, const float *bias, int nb, float *y)
{
    size_t ohw = (size_t)cp->oh * cp->ow;
    long planes = (long)nb * cp->num_output;
#pragma omp parallel for schedule(static) if ((size_t)planes * ohw >= 65536)
    for (long p = 0; p < planes; p++) {
        float v = bias[p % cp->num_output], *yp = y + (size_t)p * ohw;
        for (size_t i = 0; i < ohw; i++) yp[i] += v;
    }
}

/* Scatters tmp (O, nb*ohw), the batched GEMM output, into the image layout
 * (nb, O, ohw) of y, adding bias[o] when bias is given. */
static void scatter(const conv_priv *cp, int nb, const float *tmp, const float *bias, float *y)
{
    size_t ohw = (size_t)cp->oh * cp->ow, ld = ohw * (size_t)nb;
    long planes = (long)nb * cp->num_output;
#pragma omp parallel for schedule(static) if ((size_t)planes * ohw >= 65536)
    for (long p = 0; p < planes; p++) {
        long i = p / cp->num_output, o = p % cp->num_output;
        const float *tp = tmp + (size_t)o * ld + (size_t)i * ohw;
        float v = bias ? bias[o] : 0.f, *yp = y + (size_t)p * ohw;
        for (size_t j = 0; j < ohw; j++) yp[j] = tp[j] + v;
    }
}

/* Gathers dy (nb, O, ohw) into the batched layout (O, nb*ohw) of tmp. */
static void gather(const conv_priv *cp, int nb, const float *dy, float *tmp)
{
    size_t ohw = (size_t)cp->oh * cp->ow, ld = ohw * (size_t)nb;
    long planes = (long)nb * cp->num_output;
#pragma omp parallel for schedule(static) if ((size_t)planes * ohw >= 65536)
    for (long p = 0; p < planes; p++) {
        long i = p / cp->num_output, o = p % cp->num_output;
        const float *gp = dy + (size_t)p * ohw;
        float *tp = tmp + (size_t)o * ld + (size_t)i * ohw;
        for (size_t j = 0; j < ohw; j++) tp[j] = gp[j];
    }
}

static void forward_one(cnn_layer *l, const float *x, float *y)
{
    conv_priv *cp = l->priv;
    const float *wt = l->param[0]->data, *bias = cp->bias_term ? l->param[1]->data : NULL;
    int g = cp->group, og = cp->num_output / g, cg = cp->c / g, kg = cg * cp->kh * cp->kw;
    size_t hw = (size_t)cp->h * cp->w, ohw = (size_t)cp->oh * cp->ow;
    size_t chw = (size_t)cp->c * hw, ochw = (size_t)cp->num_output * ohw;
    if (cp->is_1x1) {
        for (int n = 0; n < cp->n; n++)
            for (int j = 0; j < g; j++)
                cnn_k_gemm(false, false, og, (int)hw, cg, 1.f, wt + (size_t)j * og * cg,
                           x + n * chw + (size_t)j * cg * hw, 0.f,
                           y + n * ochw + (size_t)j * og * ohw);
        if (bias) add_bias(cp, bias, cp->n, y);
        return;
    }
    for (int n0 = 0; n0 < cp->n; n0 += cp->fwd_chunk) {
        int nb = cp->n - n0 < cp->fwd_chunk ? cp->n - n0 : cp->fwd_chunk;
        size_t ld = (size_t)nb * ohw;
        float *out = nb == 1 ? y + n0 * ochw : cp->tmp;
        cnn_k_im2col_batch(x + n0 * chw, nb, cp->c, cp->h, cp->w, cp->kh, cp->kw, cp->ph,
                           cp->pw, cp->sh, cp->sw, cp->dh, cp->dw, cp->col);
        for (int j = 0; j < g; j++)
            cnn_k_gemm(false, false, og, (int)ld, kg, 1.f, wt + (size_t)j * og * kg,
                       cp->col + (size_t)j * kg * ld, 0.f, out + (size_t)j * og * ld);
        if (nb > 1)
            scatter(cp, nb, cp->tmp, bias, y + n0 * ochw);
        else if (bias)
            add_bias(cp, bias, 1, out);
    }
}

static cnn_status conv_forward(cnn_layer *l)
{
    conv_priv *cp = l->priv;
    for (int i = 0; i < l->n_bottom; i++) forward_one(l, l->bottom[i]->data, l->top[i]->data);
    cp->col_valid = l->n_bottom == 1 && !cp->is_1x1 && cp->chunk >= cp->n; /* so fwd_chunk too */
    return CNN_OK;
}

/* Whether parameter idx gets a gradient (Caffe skips lr_mult 0). */
static bool param_needed(const cnn_layer *l, int idx)
{
    return idx < l->n_param && l->spec[idx].lr_mult != 0.f;
}

static void backward_one(cnn_layer *l, const float *x, const float *dy, float *dx)
{
    conv_priv *cp = l->priv;
    const float *wt = l->param[0]->data;
    float *dw = param_needed(l, 0) ? l->param[0]->grad : NULL;
    int g = cp->group, og = cp->num_output / g, cg = cp->c / g, kg = cg * cp->kh * cp->kw;
    size_t hw = (size_t)cp->h * cp->w, ohw = (size_t)cp->oh * cp->ow;
    size_t chw = (size_t)cp->c * hw, ochw = (size_t)cp->num_output * ohw;
    if (cp->bias_term && param_needed(l, 1)) {
        float *db = l->param[1]->grad;
#pragma omp parallel for schedule(static) if ((size_t)cp->n * ochw >= 65536)
        for (int o = 0; o < cp->num_output; o++) {
            float s = 0.f;
            for (int n = 0; n < cp->n; n++) {
                const float *gp = dy + n * ochw + (size_t)o * ohw;
                for (size_t i = 0; i < ohw; i++) s += gp[i];
            }
            db[o] += s;
        }
    }
    if (cp->is_1x1) {
        for (int n = 0; n < cp->n; n++)
            for (int j = 0; j < g; j++) {
                const float *gy = dy + n * ochw + (size_t)j * og * ohw;
                size_t xo = n * chw + (size_t)j * cg * hw;
                if (dw)
                    cnn_k_gemm(false, true, og, cg, (int)hw, 1.f, gy, x + xo, 1.f,
                               dw + (size_t)j * og * cg);
                if (dx)
                    cnn_k_gemm(true, false, cg, (int)hw, og, 1.f, wt + (size_t)j * og * cg, gy,
                               0.f, dx + xo);
            }
        return;
    }
    for (int n0 = 0; n0 < cp->n; n0 += cp->chunk) {
        int nb = cp->n - n0 < cp->chunk ? cp->n - n0 : cp->chunk;
        size_t ld = (size_t)nb * ohw;
        const float *gy = dy + n0 * ochw;
        if (nb > 1) {
            gather(cp, nb, gy, cp->tmp);
            gy = cp->tmp;
        }
        if (dw) {
            if (!cp->col_valid)
                cnn_k_im2col_batch(x + n0 * chw, nb, cp->c, cp->h, cp->w, cp->kh, cp->kw,
                                   cp->ph, cp->pw, cp->sh, cp->sw, cp->dh, cp->dw, cp->col);
            for (int j = 0; j < g; j++)
                cnn_k_gemm(false, true, og, kg, (int)ld, 1.f, gy + (size_t)j * og * ld,
                           cp->col + (size_t)j * kg * ld, 1.f, dw + (size_t)j * og * kg);
        }
        if (dx) {
            for (int j = 0; j < g; j++)
                cnn_k_gemm(true, false, kg, (int)ld, og, 1.f, wt + (size_t)j * og * kg,
                           gy + (size_t)j * og * ld, 0.f, cp->col + (size_t)j * kg * ld);
            cp->col_valid = false;
            cnn_k_col2im_batch(cp->col, nb, cp->c, cp->h, cp->w, cp->kh, cp->kw, cp->ph, cp->pw,
                               cp->sh, cp->sw, cp->dh, cp->dw, dx + n0 * chw);
        }
    }
}

static cnn_status conv_backward(cnn_layer *l)
{
    conv_priv *cp = l->priv;
    for (int i = 0; i < l->n_bottom; i++) {
        if (i > 0) cp->col_valid = false;
        backward_one(l, l->bottom[i]->data, l->top[i]->grad,
                     l->propagate_down[i] ? l->bottom[i]->grad : NULL);
    }
    cp->col_valid = false;
    return CNN_OK;
}

static cnn_status conv_forward_gpu(cnn_layer *l)
{
    conv_priv *cp = l->priv;
    cnn_status st = CNN_OK;
    const float *w, *bias = NULL, *x;
    float *y;
    if (!cp->plan) return CNN_OK; /* empty batch */
    CNN_TRY(cnn_gpu_read(l->param[0], &w));
    if (cp->bias_term) CNN_TRY(cnn_gpu_read(l->param[1], &bias));
    for (int i = 0; i < l->n_bottom; i++) {
        CNN_TRY(cnn_gpu_read(l->bottom[i], &x));
        CNN_TRY(cnn_gpu_write(l->top[i], &y));
        CNN_TRY(cnn_cuda_conv_forward(l->cuda, cp->plan, x, w, bias, y));
    }
fail:
    return st;
}

static cnn_status conv_backward_gpu(cnn_layer *l)
{
    conv_priv *cp = l->priv;
    cnn_status st = CNN_OK;
    const float *w, *x, *dy;
    float *dw = NULL, *db = NULL, *dx;
    bool acc_w = true, acc_b = true; /* false: the first pair overwrites a pending zero */
    if (!cp->plan) return CNN_OK;
    CNN_TRY(cnn_gpu_read(l->param[0], &w));
    if (param_needed(l, 0)) CNN_TRY(cnn_gpu_accumulate_grad(l->param[0], &dw, &acc_w));
    if (cp->bias_term && param_needed(l, 1))
        CNN_TRY(cnn_gpu_accumulate_grad(l->param[1], &db, &acc_b));
    for (int i = 0; i < l->n_bottom; i++) {
        CNN_TRY(cnn_gpu_read_grad(l->top[i], &dy));
        if (db) CNN_TRY(cnn_cuda_conv_backward_bias(l->cuda, cp->plan, dy, acc_b || i, db));
        if (dw) {
            CNN_TRY(cnn_gpu_read(l->bottom[i], &x));
            CNN_TRY(cnn_cuda_conv_backward_filter(l->cuda, cp->plan, x, dy, acc_w || i, dw));
        }
        if (l->propagate_down[i]) {
            CNN_TRY(cnn_gpu_write_grad(l->bottom[i], &dx));
            CNN_TRY(cnn_cuda_conv_backward_data(l->cuda, cp->plan, w, dy, dx));
        }
    }
fail:
    return st;
}

static double conv_flops(const cnn_layer *l)
{
    const conv_priv *cp = l->priv;
    double outs = (double)cp->n * cp->num_output * cp->oh * cp->ow * l->n_bottom;
    double macs = outs * (cp->c / cp->group) * cp->kh * cp->kw;
    return 2 * macs + (cp->bias_term ? outs : 0);
}

const cnn_layer_type cnn_layer_Convolution = {
    .name = "Convolution",
    .min_bottoms = 1,
    .max_bottoms = -1,
    .min_tops = 1,
    .max_tops = -1,
    .setup = conv_setup,
    .reshape = conv_reshape,
    .forward = conv_forward,
    .backward = conv_backward,
    .destroy = conv_destroy,
    .flops = conv_flops,
    .forward_gpu = conv_forward_gpu,
    .backward_gpu = conv_backward_gpu,
};
