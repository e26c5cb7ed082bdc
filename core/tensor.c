/* tensor.c — N-d float arrays with gradients, host storage (device mirrors
 * of a GPU net's tensors live in gpu.c; reshape grows them, free drops them). */
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cnn.h"
#include "gpu.h"

/* Bytes all tensors hold (data and gradient). A net that would hold more
 * than the machine's memory gets an error naming the tensor, rather than
 * the kernel's out-of-memory killer part-way through (pages are touched as
 * they are zeroed). */
static _Atomic size_t held_bytes;

static size_t machine_bytes(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
    return pages > 0 && size > 0 ? (size_t)pages * (size_t)size : SIZE_MAX;
}

/* Data and gradient of `count` floats. */
static size_t tensor_bytes(size_t count) { return 2 * count * sizeof(float); }

cnn_tensor *cnn_tensor_create(const char *name)
{
    cnn_tensor *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    if (name && !(t->name = strdup(name))) {
        free(t);
        return NULL;
    }
    return t;
}

void cnn_tensor_free(cnn_tensor *t)
{
    if (!t) return;
    cnn_tensor_detach(t);
    atomic_fetch_sub(&held_bytes, tensor_bytes(t->capacity));
    free(t->data);
    free(t->grad);
    free(t->name);
    free(t);
}

static float *alloc_floats(size_t n)
{
    void *p = NULL;
    size_t bytes = ((n * sizeof(float)) + 63) & ~(size_t)63;
    if (posix_memalign(&p, 64, bytes ? bytes : 64)) return NULL;
    memset(p, 0, bytes);
    return p;
}

static cnn_status grow(cnn_tensor *t, size_t count)
{
    if (count <= t->capacity) return CNN_OK;
    const char *name = t->name ? t->name : "";
    size_t limit = machine_bytes(), held = atomic_load(&held_bytes) - tensor_bytes(t->capacity);
    if (count > limit / (2 * sizeof(float)) || held > limit - tensor_bytes(count))
        return CNN_ERROR(CNN_ERR_MEMORY, "tensor '%s': %zu floats (%.2f GB with its gradient) "
                         "would bring the net's tensors past this machine's %.2f GB of memory",
                         name, count, (double)count * 2 * sizeof(float) / 1e9,
                         (double)limit / 1e9);
    float *d = alloc_floats(count), *g = alloc_floats(count);
    if (!d || !g) {
        free(d);
        free(g);
        return CNN_ERROR(CNN_ERR_MEMORY, "tensor '%s': cannot allocate %zu floats", name,
                         count);
    }
    if (t->data) memcpy(d, t->data, t->count * sizeof(float));
    if (t->grad) memcpy(g, t->grad, t->count * sizeof(float));
    free(t->data);
    free(t->grad);
    t->data = d;
    t->grad = g;
    atomic_fetch_add(&held_bytes, tensor_bytes(count) - tensor_bytes(t->capacity));
    t->capacity = count;
    return CNN_OK;
}

cnn_status cnn_tensor_reshape(cnn_tensor *t, int ndim, const int *shape)
{
    if (ndim < 0 || ndim > CNN_MAX_DIMS)
        return CNN_ERROR(CNN_ERR_SHAPE, "tensor '%s': %d dimensions (at most %d)",
                         t->name ? t->name : "", ndim, CNN_MAX_DIMS);
    size_t count = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return CNN_ERROR(CNN_ERR_SHAPE, "tensor '%s': negative dimension %d",
                             t->name ? t->name : "", shape[i]);
        if (shape[i] && count > SIZE_MAX / 8 / (size_t)shape[i])
            return CNN_ERROR(CNN_ERR_SHAPE, "tensor '%s': a shape of %d dimensions holds more "
                             "values than memory can address", t->name ? t->name : "", ndim);
        count *= (size_t)shape[i];
    }
    cnn_status st = CNN_OK;
    if (t->dev && count > t->capacity) {
        /* The device arrays are replaced: keep their contents on the host. */
        if ((st = cnn_host_data(t)) || (st = cnn_host_grad(t))) return st;
    }
    if ((st = grow(t, count))) return st;
    if (t->dev && (st = cnn_tensor_dev_fit(t))) return st;
    t->ndim = ndim;
    for (int i = 0; i < CNN_MAX_DIMS; i++) t->shape[i] = i < ndim ? shape[i] : 0;
    t->count = count;
    return CNN_OK;
}

cnn_status cnn_tensor_reshape4(cnn_tensor *t, int n, int c, int h, int w)
{
    int s[4] = {n, c, h, w};
    return cnn_tensor_reshape(t, 4, s);
}

cnn_status cnn_tensor_reshape_like(cnn_tensor *t, const cnn_tensor *like)
{
    return cnn_tensor_reshape(t, like->ndim, like->shape);
}

int cnn_tensor_axis(const cnn_tensor *t, int axis)
{
    if (axis < 0) axis += t->ndim;
    return axis < 0 || axis >= t->ndim ? -1 : axis;
}

int cnn_tensor_dim(const cnn_tensor *t, int axis)
{
    if (axis < 0) axis += t->ndim;
    return axis < 0 || axis >= t->ndim ? 1 : t->shape[axis];
}

size_t cnn_tensor_count_range(const cnn_tensor *t, int from, int to)
{
    size_t c = 1;
    for (int i = from; i < to && i < t->ndim; i++) c *= (size_t)t->shape[i];
    return c;
}

const char *cnn_tensor_shape_str(const cnn_tensor *t, char *buf, size_t n)
{
    size_t at = 0;
    buf[0] = 0;
    for (int i = 0; i < t->ndim && at < n; i++)
        at += (size_t)snprintf(buf + at, n - at, i ? "x%d" : "%d", t->shape[i]);
    return buf;
}

bool cnn_tensor_same_shape(const cnn_tensor *a, const cnn_tensor *b)
{
    if (a->ndim != b->ndim) return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return false;
    return true;
}
