/* emu_context.c — the emulator's devices, contexts, memory and events.
 *
 * Devices: $CNN_EMU_DEVICES of them (2 when unset). Device memory is host
 * memory kept in a table of live allocations (base, size, device) and
 * filled with NaN when allocated, so that data never uploaded shows up as
 * NaN. Everything runs synchronously on the calling thread: an event
 * records the host clock, waits return at once, a sync returns OK. The
 * table is shared by all threads (one per logical device) under a mutex.
 *
 * Streams are not emulated, but their ordering is checked: each context
 * (a stream) keeps a vector clock, ticked by every op and merged by event
 * waits; the host's clock merges a context's at cnn_cuda_ctx_sync (and
 * where CUDA synchronises: cudaFree, context teardown, elapsed time), and
 * every launch starts after what the host has seen finish. Each allocation
 * remembers its last write and every context's last read, and an op that
 * reads memory another stream wrote, or writes memory another stream read
 * or wrote, without an event or host sync ordering the two, aborts with
 * both ops named: on a GPU that is a race. CNN_EMU_RACES=0 turns this off. */
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

/* ---- counts of what the host did (cnn_stub_get_counts) ---------------------- */

static cnn_stub_counts counts;
static pthread_mutex_t counts_lock = PTHREAD_MUTEX_INITIALIZER;

static void count(unsigned long *field)
{
    pthread_mutex_lock(&counts_lock);
    (*field)++;
    pthread_mutex_unlock(&counts_lock);
}

void cnn_stub_get_counts(cnn_stub_counts *out)
{
    pthread_mutex_lock(&counts_lock);
    *out = counts;
    pthread_mutex_unlock(&counts_lock);
}

/* ---- the allocation table ------------------------------------------------- */

#define MAX_SLOTS 64 /* contexts alive at once */

/* Who touched an allocation last, in context clocks. */
typedef struct {
    int w_slot;          /* last writer, -1 for none */
    uint64_t w_time;
    const char *w_op;
    uint64_t r[MAX_SLOTS]; /* each context's last read (0: none) */
    const char *r_op[MAX_SLOTS];
} access_log;

typedef struct {
    char *base;
    size_t size;
    int device;
    access_log *log;
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
    access_log *log = calloc(1, sizeof *log);
    if (!log) return false;
    log->w_slot = -1;
    pthread_mutex_lock(&table_lock);
    if (n_table == cap_table) {
        size_t cap = cap_table ? 2 * cap_table : 256;
        alloc_entry *t = realloc(table, cap * sizeof *t);
        if (!t) {
            pthread_mutex_unlock(&table_lock);
            free(log);
            return false;
        }
        table = t;
        cap_table = cap;
    }
    size_t i = upper(base);
    memmove(&table[i + 1], &table[i], (n_table - i) * sizeof *table);
    table[i] = (alloc_entry){base, size, device, log};
    n_table++;
    pthread_mutex_unlock(&table_lock);
    return true;
}

size_t cnn_stub_live_device_bytes(void)
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

/* ---- the current device ------------------------------------------------------
 * CUDA launches a kernel (and cuBLAS and cuDNN run theirs) only into a
 * stream of the calling thread's current device; copies and event waits
 * work across devices. The real context code makes a device current in
 * cnn_cuda_ctx_create, _use, _free and cnn_cuda_enable_peer (cnn_cuda_malloc
 * and cnn_cuda_event_create give the caller's device back); a thread starts
 * on device 0. */

static __thread int current_device;

void cnn_emu_need_current(const char *op, const cnn_cuda_ctx *ctx)
{
    if (ctx->copy_only) {
        fprintf(stderr,
                "cnn CUDA emulator: %s on a copy-only context (cnn_cuda_copy_ctx_create): it "
                "has no cuBLAS or cuDNN handle, and nets launch nothing on it\n",
                op);
        die();
    }
    if (ctx->device == current_device) return;
    fprintf(stderr,
            "cnn CUDA emulator: %s on a context of device %d while device %d is current on "
            "this thread: a GPU refuses the launch (cnn_cuda_ctx_use missing on this "
            "thread?)\n",
            op, ctx->device, current_device);
    die();
}

/* ---- stream ordering ------------------------------------------------------ */

static uint64_t clocks[MAX_SLOTS][MAX_SLOTS]; /* clocks[s][t]: what stream s has seen of t */
static uint64_t host_clock[MAX_SLOTS];        /* what the host has seen finish */
static bool slot_used[MAX_SLOTS];

static bool races_on(void)
{
    static int on = -1;
    if (on < 0) {
        const char *v = getenv("CNN_EMU_RACES");
        on = !(v && !strcmp(v, "0"));
    }
    return on;
}

static void merge(uint64_t *into, const uint64_t *from)
{
    for (int t = 0; t < MAX_SLOTS; t++)
        if (from[t] > into[t]) into[t] = from[t];
}

/* The host has seen everything queued on slot s so far finish. */
static void host_joins(int s) { merge(host_clock, clocks[s]); }

/* CNN_EMU_JITTER=N: each op first sleeps up to N microseconds (chosen at
 * random), so that threads of different devices interleave differently
 * from run to run and the ordering check sees more schedules. */
static void jitter(void)
{
    static int max_us = -1;
    static __thread unsigned seed;
    if (max_us < 0) {
        const char *v = getenv("CNN_EMU_JITTER");
        max_us = v ? atoi(v) : 0;
    }
    if (max_us <= 0) return;
    if (!seed) seed = (unsigned)(uintptr_t)&seed ^ (unsigned)time(NULL);
    struct timespec t = {0, (long)(rand_r(&seed) % (unsigned)max_us) * 1000};
    nanosleep(&t, NULL);
}

void cnn_emu_op(const char *op, const cnn_cuda_ctx *ctx)
{
    jitter();
    cnn_emu_trace(op, ctx);
    pthread_mutex_lock(&table_lock);
    merge(clocks[ctx->slot], host_clock);
    clocks[ctx->slot][ctx->slot]++;
    pthread_mutex_unlock(&table_lock);
}

static void race(const char *op, const char *arg, const void *p, const cnn_cuda_ctx *by,
                 const char *what, int slot, const char *other_op)
{
    fprintf(stderr,
            "cnn CUDA emulator: %s: argument '%s' = %p on the stream of device %d (context "
            "#%d) %s context #%d's %s, with no event wait or host sync ordering the two: a "
            "race on a GPU (CNN_EMU_RACES=0 ignores this)\n",
            op, arg, p, by->device, by->slot, what, slot, other_op ? other_op : "op");
    die();
}

/* Checks and records an access to e by stream `by` (under the lock). */
static void order(const char *op, const char *arg, const void *p, const cnn_cuda_ctx *by,
                  const alloc_entry *e, bool write)
{
    access_log *g = e->log;
    int s = by->slot;
    uint64_t now = clocks[s][s];
    if (races_on()) {
        if (g->w_slot >= 0 && g->w_slot != s && clocks[s][g->w_slot] < g->w_time) {
            pthread_mutex_unlock(&table_lock);
            race(op, arg, p, by, write ? "overwrites memory last written by"
                                       : "reads memory last written by",
                 g->w_slot, g->w_op);
        }
        if (write)
            for (int t = 0; t < MAX_SLOTS; t++)
                if (t != s && g->r[t] > clocks[s][t]) {
                    pthread_mutex_unlock(&table_lock);
                    race(op, arg, p, by, "overwrites memory still being read by", t,
                         g->r_op[t]);
                }
    }
    if (write) {
        g->w_slot = s;
        g->w_time = now;
        g->w_op = op;
    } else {
        g->r[s] = now;
        g->r_op[s] = op;
    }
}

void cnn_emu_access(const char *op, const char *arg, const cnn_cuda_ctx *mem,
                    const cnn_cuda_ctx *by, const void *p, size_t bytes, bool write)
{
    if (bytes == 0) return; /* touches nothing */
    int device = mem->device;
    pthread_mutex_lock(&table_lock);
    const alloc_entry *e = p ? owner(p) : NULL;
    alloc_entry found = e ? *e : (alloc_entry){0};
    if (e && found.device == device &&
        bytes <= found.size - (size_t)((const char *)p - found.base)) {
        order(op, arg, p, by, e, write);
        pthread_mutex_unlock(&table_lock);
        return;
    }
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
    fprintf(stderr,
            "cnn CUDA emulator: %s: argument '%s' = %p: %zu bytes from offset %zu run "
            "past the end of its %zu-byte device allocation\n",
            op, arg, p, bytes, off, found.size);
    die();
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

static cnn_status create(int device, bool copy_only, cnn_cuda_ctx **out)
{
    *out = NULL;
    int count = cnn_cuda_device_count();
    if (device < 0 || device >= count)
        return CNN_ERROR(CNN_ERR_ARG, "CUDA device %d does not exist (%d found)", device, count);
    cnn_cuda_ctx *c = calloc(1, sizeof *c);
    if (!c) return CNN_ERROR(CNN_ERR_MEMORY, "cannot allocate a CUDA context");
    pthread_mutex_lock(&table_lock);
    c->slot = -1;
    for (int s = 0; s < MAX_SLOTS && c->slot < 0; s++)
        if (!slot_used[s]) {
            slot_used[s] = true;
            c->slot = s;
        }
    pthread_mutex_unlock(&table_lock);
    if (c->slot < 0) {
        free(c);
        return CNN_ERROR(CNN_ERR_CUDA, "emulator: more than %d CUDA contexts alive", MAX_SLOTS);
    }
    c->device = device;
    current_device = device;
    c->ws_limit = CNN_CUDA_DEFAULT_WORKSPACE;
    const char *v = getenv("CNN_CUDA_SYNC");
    c->sync_debug = v && *v && strcmp(v, "0") != 0;
    c->copy_only = copy_only;
    *out = c;
    return CNN_OK;
}

cnn_status cnn_cuda_ctx_create(int device, cnn_cuda_ctx **out)
{
    return create(device, false, out);
}

cnn_status cnn_cuda_copy_ctx_create(int device, cnn_cuda_ctx **out)
{
    return create(device, true, out);
}

/* Like the real one, waits for the stream; then forgets the slot's clocks
 * (everywhere: a later context may reuse the slot). */
void cnn_cuda_ctx_free(cnn_cuda_ctx *ctx)
{
    if (!ctx) return;
    current_device = ctx->device;
    int s = ctx->slot;
    pthread_mutex_lock(&table_lock);
    host_joins(s);
    for (int t = 0; t < MAX_SLOTS; t++) {
        clocks[t][s] = 0;
        clocks[s][t] = 0;
    }
    host_clock[s] = 0;
    for (size_t i = 0; i < n_table; i++) {
        access_log *g = table[i].log;
        if (g->w_slot == s) g->w_slot = -1;
        g->r[s] = 0;
    }
    slot_used[s] = false;
    pthread_mutex_unlock(&table_lock);
    free(ctx);
}

int cnn_cuda_ctx_device(const cnn_cuda_ctx *ctx) { return ctx->device; }

cnn_status cnn_cuda_ctx_use(cnn_cuda_ctx *ctx)
{
    current_device = ctx->device;
    return CNN_OK;
}

/* No streams: the context itself stands for its stream. */
void *cnn_cuda_ctx_stream(const cnn_cuda_ctx *ctx) { return (void *)ctx; }

cnn_status cnn_cuda_ctx_sync(cnn_cuda_ctx *ctx)
{
    count(&counts.stream_syncs);
    pthread_mutex_lock(&table_lock);
    host_joins(ctx->slot);
    pthread_mutex_unlock(&table_lock);
    return CNN_OK;
}

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
    count(&counts.allocs);
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
    count(&counts.frees);
    if (trace_on()) fprintf(stderr, "emu: cnn_cuda_free %p\n", p);
    pthread_mutex_lock(&table_lock);
    size_t i = upper(p);
    bool ok = i > 0 && table[i - 1].base == (char *)p;
    if (ok) {
        /* cudaFree waits for the whole device: the host joins its streams. */
        for (int s = 0; s < MAX_SLOTS; s++)
            if (slot_used[s]) host_joins(s);
        free(table[i - 1].log);
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

/* ---- pinned host memory ----------------------------------------------------
 * On a GPU an upload from pinned memory runs asynchronously, reading the
 * buffer when the stream gets there, so the host must not write the buffer
 * again until it has seen the upload finish (an event or stream sync). The
 * emulator copies at once, so it checks that discipline where it shows: a
 * pinned buffer uploaded from again (after the host refilled it) while the
 * host has not seen its previous upload finish aborts. */

#define MAX_PINNED 4096

typedef struct pinned_entry {
    const char *base;
    size_t size;
    int slot;       /* the stream of the last upload from it */
    uint64_t clock; /* that stream's clock at the upload (0: none yet) */
} pinned_entry;

static pinned_entry pinned[MAX_PINNED];
static int n_pinned;

static pinned_entry *find_pinned(const void *p)
{
    for (int i = 0; i < n_pinned; i++)
        if ((const char *)p >= pinned[i].base && (const char *)p < pinned[i].base + pinned[i].size)
            return &pinned[i];
    return NULL;
}

cnn_status cnn_cuda_malloc_host(size_t bytes, void **out)
{
    count(&counts.allocs);
    *out = malloc(bytes ? bytes : 1);
    if (!*out) return CNN_ERROR(CNN_ERR_MEMORY, "cudaMallocHost of %zu bytes failed", bytes);
    pthread_mutex_lock(&table_lock);
    if (n_pinned < MAX_PINNED)
        pinned[n_pinned++] = (pinned_entry){.base = *out, .size = bytes ? bytes : 1};
    pthread_mutex_unlock(&table_lock);
    return CNN_OK;
}

void cnn_cuda_free_host(void *p)
{
    if (!p) return;
    count(&counts.frees);
    pthread_mutex_lock(&table_lock);
    pinned_entry *e = find_pinned(p);
    if (e) *e = pinned[--n_pinned];
    for (int s = 0; s < MAX_SLOTS; s++) /* cudaFreeHost waits for the device */
        if (slot_used[s]) host_joins(s);
    pthread_mutex_unlock(&table_lock);
    free(p);
}

/* Checks and records an upload by ctx from pinned memory (under the lock). */
static void pinned_upload(const cnn_cuda_ctx *ctx, const void *host)
{
    pinned_entry *e = find_pinned(host);
    if (!e) {
        count(&counts.pageable_uploads);
        return;
    }
    if (races_on() && e->clock && host_clock[e->slot] < e->clock) {
        fprintf(stderr,
                "cnn CUDA emulator: cnn_cuda_upload: pinned host buffer %p uploaded again "
                "while the host has not seen its previous upload (context #%d) finish: on a "
                "GPU that copy may read what the host wrote since (CNN_EMU_RACES=0 ignores "
                "this)\n",
                host, e->slot);
        die();
    }
    e->slot = ctx->slot;
    e->clock = clocks[ctx->slot][ctx->slot];
}

cnn_status cnn_cuda_upload(cnn_cuda_ctx *ctx, void *dev, const void *host, size_t bytes)
{
    cnn_emu_op("cnn_cuda_upload", ctx);
    EMU_DEV(ctx, "cnn_cuda_upload", dev, bytes);
    cnn_emu_check_host("cnn_cuda_upload", "host", host, bytes);
    if (bytes) {
        pthread_mutex_lock(&table_lock);
        pinned_upload(ctx, host);
        pthread_mutex_unlock(&table_lock);
        memcpy(dev, host, bytes);
    }
    return CNN_OK;
}

cnn_status cnn_cuda_download(cnn_cuda_ctx *ctx, void *host, const void *dev, size_t bytes)
{
    count(&counts.downloads);
    cnn_emu_op("cnn_cuda_download", ctx);
    EMU_DEV(ctx, "cnn_cuda_download", dev, bytes);
    cnn_emu_check_host("cnn_cuda_download", "host", host, bytes);
    if (bytes) memcpy(host, dev, bytes);
    return CNN_OK;
}

cnn_status cnn_cuda_copy_bytes(cnn_cuda_ctx *ctx, void *dst, const void *src, size_t bytes)
{
    cnn_emu_op("cnn_cuda_copy_bytes", ctx);
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
    double ms;                 /* host clock at the last record */
    uint64_t clock[MAX_SLOTS]; /* the recording stream's clock then */
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
    if (e->device != ctx->device)
        return CNN_ERROR(CNN_ERR_CUDA, "cudaEventRecord: event of device %d recorded on a "
                         "stream of device %d (emulated)", e->device, ctx->device);
    cnn_emu_op("cnn_cuda_event_record", ctx);
    pthread_mutex_lock(&table_lock);
    memcpy(e->clock, clocks[ctx->slot], sizeof e->clock);
    pthread_mutex_unlock(&table_lock);
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    e->ms = t.tv_sec * 1e3 + t.tv_nsec / 1e6;
    e->recorded = true;
    return CNN_OK;
}

cnn_status cnn_cuda_event_sync(const cnn_cuda_event *e)
{
    if (!e) return CNN_ERROR(CNN_ERR_ARG, "cnn_cuda_event_sync: no event");
    count(&counts.event_syncs);
    pthread_mutex_lock(&table_lock);
    merge(host_clock, e->clock); /* the host has seen that work finish */
    pthread_mutex_unlock(&table_lock);
    return CNN_OK;
}

cnn_status cnn_cuda_wait_event(cnn_cuda_ctx *ctx, const cnn_cuda_event *e)
{
    if (!e) return CNN_ERROR(CNN_ERR_ARG, "cnn_cuda_wait_event: no event");
    cnn_emu_op("cnn_cuda_wait_event", ctx);
    /* An event never recorded is complete: waiting on it orders nothing. */
    pthread_mutex_lock(&table_lock);
    merge(clocks[ctx->slot], e->clock);
    pthread_mutex_unlock(&table_lock);
    return CNN_OK;
}

cnn_status cnn_cuda_event_elapsed(const cnn_cuda_event *start, const cnn_cuda_event *end,
                                  float *ms)
{
    if (!start->timing || !end->timing)
        return CNN_ERROR(CNN_ERR_CUDA, "cudaEventElapsedTime: event created without timing "
                         "(emulated)");
    if (start->device != end->device)
        return CNN_ERROR(CNN_ERR_CUDA, "cudaEventElapsedTime: events of devices %d and %d "
                         "(emulated)", start->device, end->device);
    if (!start->recorded || !end->recorded)
        return CNN_ERROR(CNN_ERR_CUDA, "cudaEventElapsedTime: event not recorded (emulated)");
    *ms = (float)(end->ms - start->ms);
    pthread_mutex_lock(&table_lock);
    merge(host_clock, end->clock); /* cudaEventElapsedTime waits for `end` */
    pthread_mutex_unlock(&table_lock);
    return CNN_OK;
}

cnn_status cnn_cuda_enable_peer(cnn_cuda_ctx *dst, cnn_cuda_ctx *src, bool *peer)
{
    *peer = true;
    if (dst->device != src->device) current_device = dst->device;
    return CNN_OK;
}

cnn_status cnn_cuda_copy_peer(cnn_cuda_ctx *dst_ctx, void *dst, cnn_cuda_ctx *src_ctx,
                              const void *src, size_t bytes)
{
    cnn_emu_op("cnn_cuda_copy_peer", dst_ctx);
    if (bytes == 0) return CNN_OK;
    EMU_DEV(dst_ctx, "cnn_cuda_copy_peer", dst, bytes);
    /* Read by dst_ctx's stream, from src_ctx's device. */
    cnn_emu_access("cnn_cuda_copy_peer", "src", src_ctx, dst_ctx, src, bytes, false);
    if (dst != src) memmove(dst, src, bytes);
    return CNN_OK;
}

/* ---- CUDA graphs: not emulated ---------------------------------------------
 * Ops run when called here, so nothing can be recorded for a replay: the
 * net sees the refusal and runs its passes as usual. */

cnn_status cnn_cuda_graph_begin(cnn_cuda_ctx *ctx)
{
    return CNN_ERROR(CNN_ERR_UNSUPPORTED, "the CUDA emulator cannot record graphs");
}

cnn_status cnn_cuda_graph_end(cnn_cuda_ctx *ctx, cnn_cuda_graph **out)
{
    *out = NULL;
    return CNN_ERROR(CNN_ERR_UNSUPPORTED, "the CUDA emulator cannot record graphs");
}

cnn_status cnn_cuda_graph_launch(cnn_cuda_ctx *ctx, const cnn_cuda_graph *g)
{
    return CNN_ERROR(CNN_ERR_UNSUPPORTED, "the CUDA emulator cannot replay graphs");
}

void cnn_cuda_graph_free(cnn_cuda_graph *g) {}
