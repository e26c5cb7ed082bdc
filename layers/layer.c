/* layer.c — what every layer shares: parameter creation and sharing (with
 * device mirrors on a GPU net), fillers (Caffe's FillerParameter), private
 * state, error messages. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/gpu.h"
#include "../core/net_internal.h"
#include "layer.h"

static const char *const filler_names[] = {"constant", "uniform", "gaussian", "xavier",
                                           "msra",     "bilinear", NULL};
static const char *const norm_names[] = {"FAN_IN", "FAN_OUT", "AVERAGE", NULL};

cnn_status cnn_filler_parse(cnn_cfg *m, const char *key, float def_value, cnn_filler *out)
{
    cnn_status st = CNN_OK;
    cnn_cfg *f = NULL;
    const char *type = "constant";
    int norm = 0;
    *out = (cnn_filler){.type = CNN_FILL_CONSTANT, .value = def_value, .max = 1, .std = 1};
    if (!m) return CNN_OK;
    CNN_TRY(cnn_cfg_message(m, key, &f));
    if (!f) return CNN_OK;
    CNN_TRY(cnn_cfg_string(f, "type", "constant", &type));
    int t = -1;
    for (int i = 0; filler_names[i]; i++)
        if (!strcmp(type, filler_names[i])) t = i;
    if (t < 0)
        return cnn_cfg_error(cnn_cfg_get(f, "type"), CNN_ERR_CONFIG,
                             "unknown filler type '%s' (constant, uniform, gaussian, xavier, "
                             "msra, bilinear)", type);
    out->type = (cnn_filler_type)t;
    CNN_TRY(cnn_cfg_float(f, "value", def_value, &out->value));
    CNN_TRY(cnn_cfg_float(f, "min", 0, &out->min));
    CNN_TRY(cnn_cfg_float(f, "max", 1, &out->max));
    CNN_TRY(cnn_cfg_float(f, "mean", 0, &out->mean));
    CNN_TRY(cnn_cfg_float(f, "std", 1, &out->std));
    CNN_TRY(cnn_cfg_enum(f, "variance_norm", norm_names, 0, &norm));
    out->variance_norm = (cnn_variance_norm)norm;
    int sparse = -1;
    CNN_TRY(cnn_cfg_int(f, "sparse", -1, &sparse));
    if (sparse >= 0)
        return cnn_cfg_error(cnn_cfg_get(f, "sparse"), CNN_ERR_UNSUPPORTED,
                             "sparse gaussian fillers are not supported");
fail:
    return st;
}

static double fan(const cnn_filler *f, const cnn_tensor *t)
{
    double n = (double)t->count;
    double in = t->ndim > 0 && t->shape[0] ? n / t->shape[0] : n;
    double out = t->ndim > 1 && t->shape[1] ? n / t->shape[1] : n;
    switch (f->variance_norm) {
    case CNN_NORM_FAN_OUT: return out;
    case CNN_NORM_AVERAGE: return (in + out) / 2;
    default: return in;
    }
}

static void fill_bilinear(cnn_tensor *t)
{
    int kw = cnn_tensor_dim(t, -1), kh = cnn_tensor_dim(t, -2);
    int f = (int)ceil(kw / 2.0);
    double c = (2 * f - 1 - f % 2) / (2.0 * f);
    for (size_t i = 0; i < t->count; i++) {
        int x = (int)(i % (size_t)kw), y = (int)((i / (size_t)kw) % (size_t)kh);
        t->data[i] = (float)((1 - fabs(x / (double)f - c)) * (1 - fabs(y / (double)f - c)));
    }
}

void cnn_filler_fill(const cnn_filler *f, cnn_tensor *t, cnn_rng *rng)
{
    double a, b;
    switch (f->type) {
    case CNN_FILL_CONSTANT:
        for (size_t i = 0; i < t->count; i++) t->data[i] = f->value;
        return;
    case CNN_FILL_UNIFORM:
        for (size_t i = 0; i < t->count; i++)
            t->data[i] = (float)(f->min + (f->max - f->min) * cnn_rng_uniform(rng));
        return;
    case CNN_FILL_GAUSSIAN:
        for (size_t i = 0; i < t->count; i++)
            t->data[i] = (float)(f->mean + f->std * cnn_rng_gaussian(rng));
        return;
    case CNN_FILL_XAVIER:
        a = sqrt(3.0 / fan(f, t));
        for (size_t i = 0; i < t->count; i++)
            t->data[i] = (float)(-a + 2 * a * cnn_rng_uniform(rng));
        return;
    case CNN_FILL_MSRA:
        b = sqrt(2.0 / fan(f, t));
        for (size_t i = 0; i < t->count; i++) t->data[i] = (float)(b * cnn_rng_gaussian(rng));
        return;
    case CNN_FILL_BILINEAR: fill_bilinear(t); return;
    }
}

cnn_status cnn_layer_param(cnn_layer *l, int idx, int ndim, const int *shape,
                           const cnn_filler *f, cnn_tensor **out)
{
    cnn_status st = CNN_OK;
    char want[64], have[64];
    if (idx < 0 || idx >= CNN_MAX_LAYER_PARAMS || idx > l->n_param)
        return cnn_layer_error(l, CNN_ERR_ARG, "parameter %d declared out of order", idx);
    cnn_tensor *t = idx < l->n_param ? l->param[idx] : NULL;
    if (!t) {
        const char *share = idx < l->n_spec ? l->spec[idx].name : NULL;
        CNN_TRY(cnn_net_param_tensor(l->net, l->name, idx, share, ndim, shape, f, &t));
        /* On a GPU net: mirrored on the layer's device from the start. */
        cnn_cuda_ctx *ctx = cnn_net_cuda(l->net, l->device);
        if (ctx && !t->dev) CNN_TRY(cnn_tensor_attach(t, ctx));
        l->param[idx] = t;
        l->n_param = idx + 1;
    }
    cnn_tensor probe = {.ndim = ndim};
    memcpy(probe.shape, shape, (size_t)ndim * sizeof(int));
    if (!cnn_tensor_same_shape(t, &probe))
        return cnn_layer_error(l, CNN_ERR_SHAPE, "parameter %d has shape %s, needs %s", idx,
                               cnn_tensor_shape_str(t, have, sizeof have),
                               cnn_tensor_shape_str(&probe, want, sizeof want));
    if (out) *out = t;
fail:
    return st;
}

cnn_status cnn_layer_alloc_priv(cnn_layer *l, size_t size)
{
    free(l->priv);
    l->priv = calloc(1, size ? size : 1);
    if (!l->priv) return cnn_layer_error(l, CNN_ERR_MEMORY, "out of memory");
    return CNN_OK;
}

cnn_status cnn_layer_error(const cnn_layer *l, cnn_status s, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return CNN_ERROR(s, "layer '%s' (%s): %s", l->name, l->type->name, msg);
}

cnn_status cnn_layer_gpu_io(cnn_layer *l, bool grad, const float **in, float **out)
{
    cnn_status st = CNN_OK;
    cnn_tensor *x = l->bottom[0], *y = l->top[0];
    if (x == y) {
        CNN_TRY(grad ? cnn_gpu_modify_grad(y, out) : cnn_gpu_modify(y, out));
        *in = *out;
    } else if (grad) {
        CNN_TRY(cnn_gpu_read_grad(y, in));
        CNN_TRY(cnn_gpu_write_grad(x, out));
    } else {
        CNN_TRY(cnn_gpu_read(x, in));
        CNN_TRY(cnn_gpu_write(y, out));
    }
fail:
    return st;
}
