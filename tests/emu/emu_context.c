/* emu_context.c — the emulator's devices, contexts, memory and events.
 *
 * Devices: $CNN_EMU_DEVICES of them (2 when unset). Device memory is host
 * memory kept in a table of live allocations (base, size, device) and
 * filled with NaN when allocated, so that data never uploaded shows up as
 * NaN. Everything runs synchronously on the calling thread: an event
 * records the host clock, waits are no-ops, a sync returns OK. The table
 * is shared by all threads (one per logical device) under a mutex. */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/device.h"
#include "emu.h"

/* ---- devices -------------------------------------------------------------- */

int cnn_cuda_device_count(void)
{
    const char *v = getenv("CNN_EMU_DEVICES");
    if (!v || !*v) return 2;
    int n = atoi(v);
    return n < 0 ? 0 : n > CNN_MAX_DEVICES ? CNN_MAX_DEVICES : n;
}

cnn_status cnn_cuda_describe(int device, char *buf, size_t n)
{
    int count = cnn_cuda_device_count();
    if (device < 0 || device >= count)
        return CNN_ERROR(CNN_ERR_ARG, "CUDA device %d does not exist (%d found)", device, count);
    snprintf(buf, n, "emulated CUDA device %d (CPU)", device);
    return CNN_OK;
}

static bool trace_on(void)
{
    static int on = -1;
    if (on < 0) {
        const char *v = getenv("CNN_EMU_TRACE");
        on = v && *v && strcmp(v, "0") != 0;
    }
    return on;
}

void cnn_emu_trace(const char *op, const cnn_cuda_ctx *ctx)
{
    if (trace_on()) fprintf(stderr, "emu: %s (device %d)\n", op, ctx ? ctx->device : -1);
}

/* ---- the allocation table ------------------------------------------------- */

typedef struct {
    char *base;
    size_t size;
    int device;
} alloc_entry;

static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static alloc_entry *table; /* sorted by base */
static size_t n_table, cap_table;

/* Index of the first entry with base > p. */
static size_t upper(const char *p)
{
    size_t lo = 0, hi = n_table;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if ((uintptr_t)table[mid].base <= (uintptr_t)p)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* The allocation holding p (under the lock), or NULL. */
static const alloc_entry *owner(const void *p)
{
    size_t i = upper(p);
    if (i == 0) return NULL;
    const alloc_entry *e = &table[i - 1];
    return (uintptr_t)p < (uintptr_t)e->base + (e->size ? e->size : 1) ? e : NULL;
}

static bool table_add(char *base, size_t size, int device)
{
    pthread_mutex_lock(&table_lock);
    if (n_table == cap_table) {
        size_t cap = cap_table ? 2 * cap_table : 256;
        alloc_entry *t = realloc(table, cap * sizeof *t);
        if (!t) {
            pthread_mutex_unlock(&table_lock);
            return false;
        }
        table = t;
        cap_table = cap;
    }
    size_t i = upper(base);
    memmove(&table[i + 1], &table[i], (n_table - i) * sizeof *table);
    table[i] = (alloc_entry){base, size, device};
    n_table++;
    pthread_mutex_unlock(&table_lock);
    return true;
}

size_t cnn_emu_live_bytes(void)
{
    size_t total = 0;
    pthread_mutex_lock(&table_lock);
    for (size_t i = 0; i < n_table; i++) total += table[i].size ? table[i].size : 1;
    pthread_mutex_unlock(&table_lock);
    return total;
}

static void die(void)
{
    fflush(stdout);
    abort();
}

void cnn_emu_check(const char *op, const char *arg, int device, const void *p, size_t bytes)
{
    if (bytes == 0) return; /* touches nothing */
    pthread_mutex_lock(&table_lock);
    const alloc_entry *e = p ? owner(p) : NULL;
    alloc_entry found = e ? *e : (alloc_entry){0};
    pthread_mutex_unlock(&table_lock);
    if (!e) {
        fprintf(stderr,
                "cnn CUDA emulator: %s: argument '%s' = %p (%zu bytes) is not device memory "
                "(no live cnn_cuda_malloc allocation holds it: a host pointer, a freed "
                "buffer or NULL)\n",
                op, arg, p, bytes);
        die();
    }
    size_t off = (size_t)((const char *)p - found.base);
    if (found.device != device) {
        fprintf(stderr,
                "cnn CUDA emulator: %s: argument '%s' = %p is memory of device %d, but the "
                "context is on device %d\n",
                op, arg, p, found.device, device);
        die();
    }
    if (bytes > found.size - off) {
        fprintf(stderr,
                "cnn CUDA emulator: %s: argument '%s' = %p: %zu bytes from offset %zu run "
                "past the end of its %zu-byte device allocation\n",
                op, arg, p, bytes, off, found.size);
        die();
    }
}

void cnn_emu_check_host(const char *op, const char *arg, const void *p, size_t bytes)
{
    if (!p) {
        if (bytes == 0) return;
        fprintf(stderr, "cnn CUDA emulator: %s: host argument '%s' is NULL (%zu bytes)\n", op,
                arg, bytes);
        die();
    }
    pthread_mutex_lock(&table_lock);
    const alloc_entry *e = owner(p);
    int dev = e ? e->device : -1;
    pthread_mutex_unlock(&table_lock);
    if (e) {
        fprintf(stderr,
                "cnn CUDA emulator: %s: argument '%s' = %p should be host memory but is "
                "device memory of device %d\n",
                op, arg, p, dev);
        die();
    }
}

/* ---- contexts --------------------------------------------------------------- */

cnn_status cnn_cuda_ctx_create(int device, cnn_cuda_ctx **out)
{
    *out = NULL;
    int count = cnn_cuda_device_count();
    if (device < 0 || device >= count)
        return CNN_ERROR(CNN_ERR_ARG, "CUDA device %d does not exist (%d found)", device, count);
    cnn_cuda_ctx *c = calloc(1, sizeof *c);
    if (!c) return CNN_ERROR(CNN_ERR_MEMORY, "cannot allocate a CUDA context");
    c->device = device;
    c->ws_limit = CNN_CUDA_DEFAULT_WORKSPACE;
    const char *v = getenv("CNN_CUDA_SYNC");
    c->sync_debug = v && *v && strcmp(v, "0") != 0;
    *out = c;
    return CNN_OK;
}

void cnn_cuda_ctx_free(cnn_cuda_ctx *ctx) { free(ctx); }

int cnn_cuda_ctx_device(const cnn_cuda_ctx *ctx) { return ctx->device; }

cnn_status cnn_cuda_ctx_use(cnn_cuda_ctx *ctx) { return CNN_OK; }

/* No streams: the context itself stands for its stream. */
void *cnn_cuda_ctx_stream(const cnn_cuda_ctx *ctx) { return (void *)ctx; }

cnn_status cnn_cuda_ctx_sync(cnn_cuda_ctx *ctx) { return CNN_OK; }

void cnn_cuda_ctx_set_workspace_limit(cnn_cuda_ctx *ctx, size_t bytes) { ctx->ws_limit = bytes; }

size_t cnn_cuda_ctx_workspace_limit(const cnn_cuda_ctx *ctx) { return ctx->ws_limit; }

size_t cnn_cuda_ctx_workspace_size(const cnn_cuda_ctx *ctx) { return ctx->ws_size; }

void cnn_cuda_ctx_set_deterministic(cnn_cuda_ctx *ctx, bool on) { ctx->deterministic = on; }

bool cnn_cuda_ctx_deterministic(const cnn_cuda_ctx *ctx) { return ctx->deterministic; }

cnn_status cnn_cuda_ctx_set_tf32(cnn_cuda_ctx *ctx, bool on)
{
    ctx->tf32 = on;
    return CNN_OK;
}

void cnn_cuda_ctx_set_sync_debug(cnn_cuda_ctx *ctx, bool on) { ctx->sync_debug = on; }

bool cnn_cuda_ctx_sync_debug(const cnn_cuda_ctx *ctx) { return ctx->sync_debug; }

/* ---- memory ------------------------------------------------------------------ */

cnn_status cnn_cuda_malloc(cnn_cuda_ctx *ctx, size_t bytes, void **out)
{
    *out = NULL;
    size_t size = bytes ? bytes : 1;
    char *p = malloc(size);
    if (!p)
        return CNN_ERROR(CNN_ERR_MEMORY, "cudaMalloc of %zu bytes on GPU %d failed: out of "
                         "memory (emulated)", bytes, ctx->device);
    /* NaN in every float slot (0x7fc00000), 0xff in a ragged tail. */
    const uint32_t nan_bits = 0x7fc00000u;
    size_t words = size / 4;
    for (size_t i = 0; i < words; i++) memcpy(p + 4 * i, &nan_bits, 4);
    memset(p + 4 * words, 0xff, size - 4 * words);
    if (!table_add(p, bytes, ctx->device)) {
        free(p);
        return CNN_ERROR(CNN_ERR_MEMORY, "emulator: cannot grow the allocation table");
    }
    *out = p;
    if (trace_on())
        fprintf(stderr, "emu: cnn_cuda_malloc %zu bytes -> %p (device %d)\n", bytes, *out,
                ctx->device);
    return CNN_OK;
}

void cnn_cuda_free(cnn_cuda_ctx *ctx, void *p)
{
    if (!p) return;
    if (trace_on()) fprintf(stderr, "emu: cnn_cuda_free %p\n", p);
    pthread_mutex_lock(&table_lock);
    size_t i = upper(p);
    bool ok = i > 0 && table[i - 1].base == (char *)p;
    if (ok) {
        memmove(&table[i - 1], &table[i], (n_table - i) * sizeof *table);
        n_table--;
    }
    pthread_mutex_unlock(&table_lock);
    if (!ok) {
        fprintf(stderr,
                "cnn CUDA emulator: cnn_cuda_free: %p is not the start of a live device "
                "allocation (freed twice, or not from cnn_cuda_malloc)\n",
                p);
        die();
    }
    free(p);
}

cnn_status cnn_cuda_malloc_host(size_t bytes, void **out)
{
    *out = malloc(bytes ? bytes : 1);
    if (!*out) return CNN_ERROR(CNN_ERR_MEMORY, "cudaMallocHost of %zu bytes failed", bytes);
    return CNN_OK;
}

void cnn_cuda_free_host(void *p) { free(p); }

cnn_status cnn_cuda_upload(cnn_cuda_ctx *ctx, void *dev, const void *host, size_t bytes)
{
    cnn_emu_trace("cnn_cuda_upload", ctx);
    EMU_DEV(ctx, "cnn_cuda_upload", dev, bytes);
    cnn_emu_check_host("cnn_cuda_upload", "host", host, bytes);
    if (bytes) memcpy(dev, host, bytes);
    return CNN_OK;
}

cnn_status cnn_cuda_download(cnn_cuda_ctx *ctx, void *host, const void *dev, size_t bytes)
{
    cnn_emu_trace("cnn_cuda_download", ctx);
    EMU_DEV(ctx, "cnn_cuda_download", dev, bytes);
    cnn_emu_check_host("cnn_cuda_download", "host", host, bytes);
    if (bytes) memcpy(host, dev, bytes);
    return CNN_OK;
}

cnn_status cnn_cuda_copy_bytes(cnn_cuda_ctx *ctx, void *dst, const void *src, size_t bytes)
{
    cnn_emu_trace("cnn_cuda_copy_bytes", ctx);
    if (dst == src || bytes == 0) return CNN_OK;
    EMU_DEV(ctx, "cnn_cuda_copy_bytes", dst, bytes);
    EMU_DEV(ctx, "cnn_cuda_copy_bytes", src, bytes);
    memmove(dst, src, bytes);
    return CNN_OK;
}

/* ---- events and copies between contexts --------------------------------------- */

struct cnn_cuda_event {
    int device;
    bool timing, recorded;
    double ms; /* host clock at the last record */
};

cnn_status cnn_cuda_event_create(cnn_cuda_ctx *ctx, bool timing, cnn_cuda_event **out)
{
    *out = calloc(1, sizeof **out);
    if (!*out) return CNN_ERROR(CNN_ERR_MEMORY, "cannot allocate a CUDA event");
    (*out)->device = ctx->device;
    (*out)->timing = timing;
    return CNN_OK;
}

void cnn_cuda_event_free(cnn_cuda_event *e) { free(e); }

cnn_status cnn_cuda_event_record(cnn_cuda_ctx *ctx, cnn_cuda_event *e)
{
    cnn_emu_trace("cnn_cuda_event_record", ctx);
    if (e->device != ctx->device)
        return CNN_ERROR(CNN_ERR_CUDA, "cudaEventRecord: event of device %d recorded on a "
                         "stream of device %d (emulated)", e->device, ctx->device);
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    e->ms = t.tv_sec * 1e3 + t.tv_nsec / 1e6;
    e->recorded = true;
    return CNN_OK;
}

cnn_status cnn_cuda_wait_event(cnn_cuda_ctx *ctx, const cnn_cuda_event *e)
{
    cnn_emu_trace("cnn_cuda_wait_event", ctx);
    if (!e) return CNN_ERROR(CNN_ERR_ARG, "cnn_cuda_wait_event: no event");
    return CNN_OK;
}

cnn_status cnn_cuda_event_elapsed(const cnn_cuda_event *start, const cnn_cuda_event *end,
                                  float *ms)
{
    if (!start->timing || !end->timing)
        return CNN_ERROR(CNN_ERR_CUDA, "cudaEventElapsedTime: event created without timing "
                         "(emulated)");
    if (!start->recorded || !end->recorded)
        return CNN_ERROR(CNN_ERR_CUDA, "cudaEventElapsedTime: event not recorded (emulated)");
    *ms = (float)(end->ms - start->ms);
    return CNN_OK;
}

cnn_status cnn_cuda_enable_peer(cnn_cuda_ctx *dst, cnn_cuda_ctx *src, bool *peer)
{
    *peer = true;
    return CNN_OK;
}

cnn_status cnn_cuda_copy_peer(cnn_cuda_ctx *dst_ctx, void *dst, cnn_cuda_ctx *src_ctx,
                              const void *src, size_t bytes)
{
    cnn_emu_trace("cnn_cuda_copy_peer", dst_ctx);
    if (bytes == 0) return CNN_OK;
    EMU_DEV(dst_ctx, "cnn_cuda_copy_peer", dst, bytes);
    EMU_DEV(src_ctx, "cnn_cuda_copy_peer", src, bytes);
    if (dst != src) memmove(dst, src, bytes);
    return CNN_OK;
}
