/* gpu.c — device mirrors of tensors (core/gpu.h).
 *
 * A mirror holds device copies of a tensor's data and grad, both sized to
 * the mirror's capacity (the tensor's capacity when attached or grown), on
 * one context, and a head per array: which copy is current. Uploads go on
 * the context's stream (the host copy is pageable memory, so the host may
 * write it again as soon as the call returns); downloads wait for the
 * stream. Every tensor of a GPU net is only ever written on its own
 * context's stream (the Copy layer's peer copies included), so a download
 * on that stream sees every write queued before it. */
#include <stdlib.h>

#include "gpu.h"

typedef enum { HEAD_HOST, HEAD_DEVICE, HEAD_BOTH } head;

typedef struct mirror {
    cnn_cuda_ctx *ctx;
    float *data, *grad; /* (cap) each; NULL while cap is 0 */
    size_t cap;
    head hd, hg; /* heads of data and grad */
} mirror;

static mirror *mir(const cnn_tensor *t) { return (mirror *)t->dev; }

static const char *tname(const cnn_tensor *t) { return t->name ? t->name : "(unnamed)"; }

/* Allocates both device arrays for `cap` floats (nothing for 0). */
static cnn_status alloc_arrays(mirror *m, size_t cap)
{
    void *d = NULL, *g = NULL;
    if (cap) {
        cnn_status st = cnn_cuda_malloc(m->ctx, cap * sizeof(float), &d);
        if (st) return st;
        if ((st = cnn_cuda_malloc(m->ctx, cap * sizeof(float), &g))) {
            cnn_cuda_free(m->ctx, d);
            return st;
        }
    }
    m->data = d;
    m->grad = g;
    m->cap = cap;
    return CNN_OK;
}

cnn_status cnn_tensor_attach(cnn_tensor *t, cnn_cuda_ctx *ctx)
{
    mirror *m = mir(t);
    if (m) {
        if (m->ctx == ctx) return CNN_OK;
        return CNN_ERROR(CNN_ERR_ARG, "tensor '%s' is already on another CUDA context",
                         tname(t));
    }
    m = calloc(1, sizeof *m);
    if (!m) return CNN_ERROR(CNN_ERR_MEMORY, "out of memory");
    m->ctx = ctx;
    m->hd = m->hg = HEAD_HOST;
    cnn_status st = alloc_arrays(m, t->capacity);
    if (st) {
        free(m);
        return st;
    }
    t->dev = m;
    return CNN_OK;
}

cnn_cuda_ctx *cnn_tensor_ctx(const cnn_tensor *t) { return t->dev ? mir(t)->ctx : NULL; }

void cnn_tensor_detach(cnn_tensor *t)
{
    mirror *m = mir(t);
    if (!m) return;
    cnn_cuda_free(m->ctx, m->data);
    cnn_cuda_free(m->ctx, m->grad);
    free(m);
    t->dev = NULL;
}

cnn_status cnn_tensor_dev_fit(cnn_tensor *t)
{
    mirror *m = mir(t);
    if (!m || m->cap >= t->capacity) return CNN_OK;
    cnn_cuda_free(m->ctx, m->data);
    cnn_cuda_free(m->ctx, m->grad);
    m->data = m->grad = NULL;
    m->cap = 0;
    m->hd = m->hg = HEAD_HOST;
    return alloc_arrays(m, t->capacity);
}

/* ---- intents ------------------------------------------------------------ */

static cnn_status not_attached(const cnn_tensor *t)
{
    return CNN_ERROR(CNN_ERR_ARG, "tensor '%s' has no device copy (not on a GPU net)",
                     tname(t));
}

/* The device array (data or grad) for an access: uploads the host copy
 * when it alone is current and the access reads; sets the head. */
static cnn_status dev_array(cnn_tensor *t, bool grad, bool reads, bool writes, float **out)
{
    mirror *m = mir(t);
    *out = NULL;
    if (!m) return not_attached(t);
    if (t->count == 0) return CNN_OK;
    float *dev = grad ? m->grad : m->data;
    head *h = grad ? &m->hg : &m->hd;
    if (reads && *h == HEAD_HOST) {
        cnn_status st = cnn_cuda_upload(m->ctx, dev, grad ? t->grad : t->data,
                                        t->count * sizeof(float));
        if (st) return st;
        *h = HEAD_BOTH;
    }
    if (writes) *h = HEAD_DEVICE;
    *out = dev;
    return CNN_OK;
}

cnn_status cnn_gpu_read(cnn_tensor *t, const float **out)
{
    return dev_array(t, false, true, false, (float **)out);
}

cnn_status cnn_gpu_write(cnn_tensor *t, float **out) { return dev_array(t, false, false, true, out); }

cnn_status cnn_gpu_modify(cnn_tensor *t, float **out) { return dev_array(t, false, true, true, out); }

cnn_status cnn_gpu_read_grad(cnn_tensor *t, const float **out)
{
    return dev_array(t, true, true, false, (float **)out);
}

cnn_status cnn_gpu_write_grad(cnn_tensor *t, float **out)
{
    return dev_array(t, true, false, true, out);
}

cnn_status cnn_gpu_modify_grad(cnn_tensor *t, float **out)
{
    return dev_array(t, true, true, true, out);
}

/* ---- the host side -------------------------------------------------------- */

static cnn_status to_host(cnn_tensor *t, bool grad)
{
    cnn_status st = CNN_OK;
    mirror *m = mir(t);
    if (!m || t->count == 0) return CNN_OK;
    head *h = grad ? &m->hg : &m->hd;
    if (*h != HEAD_DEVICE) return CNN_OK;
    CNN_TRY(cnn_cuda_download(m->ctx, grad ? t->grad : t->data, grad ? m->grad : m->data,
                              t->count * sizeof(float)));
    CNN_TRY(cnn_cuda_ctx_sync(m->ctx));
    *h = HEAD_BOTH;
fail:
    return st;
}

cnn_status cnn_host_data(cnn_tensor *t) { return to_host(t, false); }

cnn_status cnn_host_grad(cnn_tensor *t) { return to_host(t, true); }

void cnn_host_wrote_data(cnn_tensor *t)
{
    if (t->dev) mir(t)->hd = HEAD_HOST;
}

void cnn_host_wrote_grad(cnn_tensor *t)
{
    if (t->dev) mir(t)->hg = HEAD_HOST;
}
