/* gpu.c — device mirrors of tensors (core/gpu.h).
 *
 * A mirror holds device copies of a tensor's data and grad, both sized to
 * the mirror's capacity (the tensor's capacity when attached or grown), on
 * one context, and a head per array: which copy is current. Downloads wait
 * for the stream. Every tensor of a GPU net is only ever written on its own
 * context's stream (the Copy layer's peer copies included), so a download
 * on that stream sees every write queued before it.
 *
 * Uploads: a tensor the host writes every step (an input batch, a host
 * layer's output: cnn_tensor_stream) has a feed. The host copies the array
 * into one of two pinned buffers, the copy context's stream uploads it into
 * a device landing buffer, and the tensor's own stream copies it from there
 * once the upload is done (an event), device to device. So the host only
 * queues work, the upload of batch k+1 overlaps the compute stream's step k,
 * and the tensor's device pointers never change. A pinned buffer is refilled
 * once the host has seen its previous upload finish; the landing buffer is
 * refilled once the compute stream has copied it out (another event). Any
 * other upload (parameters: once) goes straight from the pageable host copy
 * on the tensor's stream. A small batch (FEED_DIRECT) skips the landing
 * buffer: pinned buffer to tensor on the tensor's stream.
 *
 * A grad can also be a pending zero (cnn_gpu_zero_grad): zero in neither
 * copy until an access needs the bits, which an overwriting op never does.
 * CUDA graph replays set the heads from outside (cnn_gpu_set_state). */
#include <stdlib.h>
#include <string.h>

#include "../kernels/kernels.h"
#include "gpu.h"

typedef enum { HEAD_HOST, HEAD_DEVICE, HEAD_BOTH } head;

/* Uploads of a fed tensor up to this size go from the pinned buffer
 * straight into the tensor on its own stream: the copy takes about as long
 * as the events and the extra copy that let a bigger one overlap. */
#define FEED_DIRECT ((size_t)256 << 10)

/* The upload path of a streamed tensor (see the top), buffers of the
 * mirror's capacity. */
typedef struct feed {
    cnn_cuda_ctx *copy;          /* whose stream uploads */
    float *pinned[2];            /* host staging */
    cnn_cuda_event *uploaded[2]; /* after the last upload from pinned[i], on its stream */
    float *landing;              /* device buffer the copy stream fills */
    cnn_cuda_event *drained;     /* on the tensor's stream, after landing was copied out */
    int next;                    /* the pinned buffer the next upload uses */
} feed;

typedef struct mirror {
    cnn_cuda_ctx *ctx;
    float *data, *grad; /* (cap) each; NULL while cap is 0 */
    size_t cap;
    head hd, hg;        /* heads of data and grad */
    bool grad_zero;     /* the grad is zero, in neither copy yet (cnn_gpu_zero_grad) */
    feed *feed;         /* streamed tensors only */
} mirror;

static mirror *mir(const cnn_tensor *t) { return (mirror *)t->dev; }

static const char *tname(const cnn_tensor *t) { return t->name ? t->name : "(unnamed)"; }

static cnn_status not_attached(const cnn_tensor *t)
{
    return CNN_ERROR(CNN_ERR_ARG, "tensor '%s' has no device copy (not on a GPU net)",
                     tname(t));
}

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

/* Waits for the copies still using the feed's buffers, then frees them
 * (the events and the copy context stay). */
static void free_feed_buffers(mirror *m, feed *f)
{
    for (int i = 0; i < 2; i++) {
        if (f->uploaded[i]) cnn_cuda_event_sync(f->uploaded[i]);
        cnn_cuda_free_host(f->pinned[i]);
        f->pinned[i] = NULL;
    }
    if (f->drained) cnn_cuda_event_sync(f->drained);
    cnn_cuda_free(m->ctx, f->landing);
    f->landing = NULL;
}

static cnn_status alloc_feed_buffers(mirror *m, feed *f)
{
    cnn_status st = CNN_OK;
    size_t bytes = m->cap * sizeof(float);
    if (!bytes) return CNN_OK;
    for (int i = 0; i < 2; i++) CNN_TRY(cnn_cuda_malloc_host(bytes, (void **)&f->pinned[i]));
    CNN_TRY(cnn_cuda_malloc(m->ctx, bytes, (void **)&f->landing));
    return CNN_OK;
fail:
    free_feed_buffers(m, f);
    return st;
}

static void free_feed(mirror *m)
{
    feed *f = m->feed;
    if (!f) return;
    free_feed_buffers(m, f);
    for (int i = 0; i < 2; i++) cnn_cuda_event_free(f->uploaded[i]);
    cnn_cuda_event_free(f->drained);
    free(f);
    m->feed = NULL;
}

static cnn_status make_feed(mirror *m, cnn_cuda_ctx *copy)
{
    cnn_status st = CNN_OK;
    feed *f = calloc(1, sizeof *f);
    if (!f) return CNN_ERROR(CNN_ERR_MEMORY, "out of memory");
    f->copy = copy;
    m->feed = f;
    for (int i = 0; i < 2; i++) CNN_TRY(cnn_cuda_event_create(copy, false, &f->uploaded[i]));
    CNN_TRY(cnn_cuda_event_create(m->ctx, false, &f->drained));
    CNN_TRY(alloc_feed_buffers(m, f));
    return CNN_OK;
fail:
    free_feed(m);
    return st;
}

/* Copies n floats from the host to dev, queued on the mirror's stream (see
 * the top). */
static cnn_status upload(mirror *m, float *dev, const float *host, size_t n)
{
    cnn_status st = CNN_OK;
    feed *f = m->feed;
    size_t bytes = n * sizeof(float);
    if (!f) return cnn_cuda_upload(m->ctx, dev, host, bytes);
    int i = f->next;
    f->next ^= 1;
    CNN_TRY(cnn_cuda_event_sync(f->uploaded[i]));
    cnn_k_copy(n, host, f->pinned[i]); /* threaded when big */
    if (bytes <= FEED_DIRECT) {
        /* Small: straight into the tensor on its own stream. */
        CNN_TRY(cnn_cuda_upload(m->ctx, dev, f->pinned[i], bytes));
        return cnn_cuda_event_record(m->ctx, f->uploaded[i]);
    }
    CNN_TRY(cnn_cuda_wait_event(f->copy, f->drained));
    CNN_TRY(cnn_cuda_upload(f->copy, f->landing, f->pinned[i], bytes));
    CNN_TRY(cnn_cuda_event_record(f->copy, f->uploaded[i]));
    CNN_TRY(cnn_cuda_wait_event(m->ctx, f->uploaded[i]));
    CNN_TRY(cnn_cuda_copy_bytes(m->ctx, dev, f->landing, bytes));
    CNN_TRY(cnn_cuda_event_record(m->ctx, f->drained));
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
    free_feed(m);
    cnn_cuda_free(m->ctx, m->data);
    cnn_cuda_free(m->ctx, m->grad);
    free(m);
    t->dev = NULL;
}

cnn_status cnn_tensor_stream(cnn_tensor *t, cnn_cuda_ctx *copy)
{
    mirror *m = mir(t);
    if (!m) return not_attached(t);
    if (!m->feed) return make_feed(m, copy);
    if (m->feed->copy == copy) return CNN_OK;
    return CNN_ERROR(CNN_ERR_ARG, "tensor '%s' is already fed by another copy context",
                     tname(t));
}

cnn_status cnn_tensor_dev_fit(cnn_tensor *t)
{
    mirror *m = mir(t);
    if (!m || m->cap >= t->capacity) return CNN_OK;
    if (m->feed) free_feed_buffers(m, m->feed);
    cnn_cuda_free(m->ctx, m->data);
    cnn_cuda_free(m->ctx, m->grad);
    m->data = m->grad = NULL;
    m->cap = 0;
    m->hd = m->hg = HEAD_HOST;
    cnn_status st = alloc_arrays(m, t->capacity);
    if (!st && m->feed) st = alloc_feed_buffers(m, m->feed);
    return st;
}

/* ---- intents ------------------------------------------------------------ */

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
    if (grad && m->grad_zero) {
        /* A writer overwrites everything: the zeros are never needed. */
        m->grad_zero = false;
        cnn_status st = reads ? cnn_cuda_set(m->ctx, t->count, 0.f, dev) : CNN_OK;
        if (st) return st;
    } else if (reads && *h == HEAD_HOST) {
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

cnn_status cnn_gpu_accumulate_grad(cnn_tensor *t, float **out, bool *accumulate)
{
    const mirror *m = mir(t);
    *accumulate = !(m && m->grad_zero);
    return *accumulate ? cnn_gpu_modify_grad(t, out) : cnn_gpu_write_grad(t, out);
}

cnn_status cnn_gpu_zero_grad(cnn_tensor *t)
{
    mirror *m = mir(t);
    if (!m) return not_attached(t);
    m->grad_zero = true;
    m->hg = HEAD_DEVICE; /* the host copy is stale too */
    return CNN_OK;
}

cnn_status cnn_gpu_device_only(cnn_tensor *t)
{
    cnn_status st = CNN_OK;
    mirror *m = mir(t);
    float *p;
    if (!m) return not_attached(t);
    if (m->hd == HEAD_HOST) CNN_TRY(dev_array(t, false, true, false, &p));
    if (m->hg == HEAD_HOST && !m->grad_zero) CNN_TRY(dev_array(t, true, true, false, &p));
    if (t->count) {
        m->hd = HEAD_DEVICE;
        m->hg = HEAD_DEVICE;
    }
fail:
    return st;
}

unsigned cnn_gpu_state(const cnn_tensor *t)
{
    const mirror *m = mir(t);
    return m ? (unsigned)m->hd | (unsigned)m->hg << 2 | (unsigned)m->grad_zero << 4 : 0;
}

void cnn_gpu_set_state(cnn_tensor *t, unsigned state)
{
    mirror *m = mir(t);
    if (!m) return;
    m->hd = (head)(state & 3);
    m->hg = (head)(state >> 2 & 3);
    m->grad_zero = state >> 4 & 1;
}

bool cnn_gpu_state_device_current(unsigned state) { return (state & 3) != HEAD_HOST; }

bool cnn_gpu_state_grad_zero(unsigned state) { return state >> 4 & 1; }

/* ---- the host side -------------------------------------------------------- */

static cnn_status to_host(cnn_tensor *t, bool grad)
{
    cnn_status st = CNN_OK;
    mirror *m = mir(t);
    if (!m || t->count == 0) return CNN_OK;
    head *h = grad ? &m->hg : &m->hd;
    if (grad && m->grad_zero) {
        /* Zeros made on the host; a device read uploads them. */
        memset(t->grad, 0, t->count * sizeof(float));
        m->grad_zero = false;
        *h = HEAD_HOST;
        return CNN_OK;
    }
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
    if (!t->dev) return;
    mir(t)->hg = HEAD_HOST;
    mir(t)->grad_zero = false;
}
