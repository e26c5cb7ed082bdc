/* gpu.c — device mirrors of tensors (core/gpu.h).
 *
 * A mirror holds device copies of a tensor's data and grad, both sized to
 * the mirror's capacity (the tensor's capacity when attached or grown), on
 * one context, and a head per array: which copy is current. Uploads go on
 * the context's stream. A tensor's first upload (parameters, most of the
 * time: uploaded once) goes straight from its pageable host copy; from the
 * second on (an input batch, a host layer's output: every step) it goes
 * through one of two pinned staging buffers, so that the copy is truly
 * asynchronous and the host goes on queueing work, overlapping the next
 * batch with the step before. A staging buffer is reused once the upload
 * that last read it has finished (its event). Downloads wait for the
 * stream. Every tensor of a GPU net is only ever written on its own
 * context's stream (the Copy layer's peer copies included), so a download
 * on that stream sees every write queued before it. */
#include <stdlib.h>
#include <string.h>

#include "gpu.h"

typedef enum { HEAD_HOST, HEAD_DEVICE, HEAD_BOTH } head;

/* A pinned host buffer of the mirror's capacity and the event recorded after
 * the last upload that read it. */
typedef struct stage {
    float *buf;
    cnn_cuda_event *done;
} stage;

typedef struct mirror {
    cnn_cuda_ctx *ctx;
    float *data, *grad; /* (cap) each; NULL while cap is 0 */
    size_t cap;
    head hd, hg;        /* heads of data and grad */
    unsigned uploads;   /* so far; staging starts at the second */
    stage stage[2];     /* allocated at the second upload */
    int next;           /* the staging buffer the next upload uses */
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

/* Waits for the uploads still reading the staging buffers, then frees them. */
static void free_stages(mirror *m)
{
    for (int i = 0; i < 2; i++) {
        stage *s = &m->stage[i];
        if (s->done) cnn_cuda_event_sync(s->done);
        cnn_cuda_event_free(s->done);
        cnn_cuda_free_host(s->buf);
        s->done = NULL;
        s->buf = NULL;
    }
}

static cnn_status alloc_stages(mirror *m)
{
    for (int i = 0; i < 2; i++) {
        stage *s = &m->stage[i];
        cnn_status st = cnn_cuda_malloc_host(m->cap * sizeof(float), (void **)&s->buf);
        if (!st) st = cnn_cuda_event_create(m->ctx, false, &s->done);
        if (st) {
            free_stages(m);
            return st;
        }
    }
    return CNN_OK;
}

/* Copies n floats from the host to dev on the mirror's stream (see the top). */
static cnn_status upload(mirror *m, float *dev, const float *host, size_t n)
{
    cnn_status st = CNN_OK;
    if (m->uploads++ == 0) return cnn_cuda_upload(m->ctx, dev, host, n * sizeof(float));
    if (!m->stage[0].buf) CNN_TRY(alloc_stages(m));
    stage *s = &m->stage[m->next];
    m->next ^= 1;
    CNN_TRY(cnn_cuda_event_sync(s->done));
    memcpy(s->buf, host, n * sizeof(float));
    CNN_TRY(cnn_cuda_upload(m->ctx, dev, s->buf, n * sizeof(float)));
    CNN_TRY(cnn_cuda_event_record(m->ctx, s->done));
fail:
    return st;
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
    free_stages(m);
    cnn_cuda_free(m->ctx, m->data);
    cnn_cuda_free(m->ctx, m->grad);
    free(m);
    t->dev = NULL;
}

cnn_status cnn_tensor_dev_fit(cnn_tensor *t)
{
    mirror *m = mir(t);
    if (!m || m->cap >= t->capacity) return CNN_OK;
    free_stages(m);
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
        cnn_status st = upload(m, dev, grad ? t->grad : t->data, t->count);
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
