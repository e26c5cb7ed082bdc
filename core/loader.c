/* loader.c — the prefetching batch loader.
 *
 * Workers claim batch numbers in order and fill ring slot (k % prefetch);
 * the consumer takes batch k from its slot once it is ready and frees it,
 * letting a worker claim batch k + prefetch. A seek bumps a generation
 * counter so batches still being filled for the old position are dropped. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../kernels/kernels.h"
#include "loader.h"

/* ---- the loader ----------------------------------------------------------- */

enum { SLOT_FREE, SLOT_BUSY, SLOT_READY };

typedef struct slot {
    float *data;  /* (B, sample_floats) */
    float *label; /* (B) or NULL */
    uint64_t batch;
    int state;
    cnn_status st; /* result of filling it */
    char msg[1024];
} slot;

#define PERM_CACHE 3

typedef struct perm_entry {
    uint64_t epoch; /* UINT64_MAX: none yet */
    uint32_t *perm; /* (N) */
} perm_entry;

struct cnn_loader {
    cnn_loader_opts o;
    cnn_loader_fill_fn fill;
    void *ctx;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    slot *slots;      /* (prefetch) */
    uint64_t claim;   /* next batch a worker takes */
    uint64_t take;    /* next batch the consumer returns */
    uint64_t gen;     /* bumped by seek */
    bool stop, started;
    pthread_t *threads;
    int n_threads;    /* started */
    double wait_s;
    atomic_size_t bad; /* samples the fill function reported unreadable */
    pthread_mutex_t perm_mu;
    perm_entry perms[PERM_CACHE];
    int perm_next;
};

/* splitmix64's finaliser: a well-mixed 64-bit hash. */
static uint64_t mix64(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static const uint32_t *epoch_perm(cnn_loader *ld, uint64_t epoch)
{
    /* The caller holds perm_mu; entries live until evicted under it. */
    for (int i = 0; i < PERM_CACHE; i++)
        if (ld->perms[i].epoch == epoch) return ld->perms[i].perm;
    perm_entry *e = &ld->perms[ld->perm_next];
    ld->perm_next = (ld->perm_next + 1) % PERM_CACHE;
    size_t n = ld->o.num_samples;
    cnn_rng r;
    cnn_rng_seed(&r, mix64(ld->o.seed ^ mix64(epoch ^ 0x5eed0e70c4ULL)));
    for (size_t i = 0; i < n; i++) e->perm[i] = (uint32_t)i;
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = cnn_rng_below(&r, (uint32_t)(i + 1));
        uint32_t t = e->perm[i];
        e->perm[i] = e->perm[j];
        e->perm[j] = t;
    }
    e->epoch = epoch;
    return e->perm;
}

size_t cnn_loader_sample_index(cnn_loader *ld, uint64_t pos)
{
    uint64_t n = ld->o.num_samples, epoch = pos / n, i = pos % n;
    if (!ld->o.shuffle) return (size_t)i;
    pthread_mutex_lock(&ld->perm_mu);
    size_t idx = epoch_perm(ld, epoch)[i];
    pthread_mutex_unlock(&ld->perm_mu);
    return idx;
}

/* Fills batch k into s->data / s->label (no lock held). */
static cnn_status fill_batch(cnn_loader *ld, uint64_t k, slot *s)
{
    cnn_rng rng;
    cnn_rng_seed(&rng, mix64(ld->o.seed ^ mix64(k ^ 0xba7c4ULL)));
    uint64_t pos = ld->o.skip + k * (uint64_t)ld->o.batch_size;
    for (int j = 0; j < ld->o.batch_size; j++) {
        size_t idx = cnn_loader_sample_index(ld, pos + (uint64_t)j);
        cnn_status st = ld->fill(ld->ctx, idx, s->data + (size_t)j * ld->o.sample_floats,
                                 s->label ? s->label + j : NULL, &rng);
        if (st) return st;
    }
    return CNN_OK;
}

static void *worker(void *arg)
{
    cnn_loader *ld = arg;
    int P = ld->o.prefetch;
    pthread_mutex_lock(&ld->mu);
    while (!ld->stop) {
        slot *s = &ld->slots[ld->claim % (uint64_t)P];
        if (ld->claim >= ld->take + (uint64_t)P || s->state != SLOT_FREE) {
            pthread_cond_wait(&ld->cv, &ld->mu);
            continue;
        }
        uint64_t k = ld->claim++, gen = ld->gen;
        s->state = SLOT_BUSY;
        s->batch = k;
        pthread_mutex_unlock(&ld->mu);
        cnn_status st = fill_batch(ld, k, s);
        pthread_mutex_lock(&ld->mu);
        if (gen != ld->gen) {
            s->state = SLOT_FREE;
        } else {
            s->state = SLOT_READY;
            s->st = st;
            if (st) snprintf(s->msg, sizeof s->msg, "%s", cnn_error_message());
        }
        pthread_cond_broadcast(&ld->cv);
    }
    pthread_mutex_unlock(&ld->mu);
    return NULL;
}

cnn_status cnn_loader_create(const cnn_loader_opts *o, cnn_loader_fill_fn fill, void *ctx,
                             cnn_loader **out)
{
    *out = NULL;
    if (o->num_samples == 0 || o->num_samples > UINT32_MAX || o->batch_size <= 0 ||
        o->prefetch <= 0 || o->threads < 0)
        return CNN_ERROR(CNN_ERR_ARG, "loader: bad options (%zu samples, batch %d, prefetch %d, "
                         "%d threads)", o->num_samples, o->batch_size, o->prefetch, o->threads);
    cnn_loader *ld = calloc(1, sizeof *ld);
    if (!ld) return CNN_ERROR(CNN_ERR_MEMORY, "loader: out of memory");
    ld->o = *o;
    ld->fill = fill;
    ld->ctx = ctx;
    pthread_mutex_init(&ld->mu, NULL);
    pthread_mutex_init(&ld->perm_mu, NULL);
    pthread_cond_init(&ld->cv, NULL);
    ld->slots = calloc((size_t)o->prefetch, sizeof *ld->slots);
    if (!ld->slots) goto oom;
    size_t floats = (size_t)o->batch_size * o->sample_floats;
    for (int i = 0; i < o->prefetch; i++) {
        ld->slots[i].data = malloc((floats ? floats : 1) * sizeof(float));
        if (!ld->slots[i].data) goto oom;
        if (o->labels && !(ld->slots[i].label = malloc((size_t)o->batch_size * sizeof(float))))
            goto oom;
    }
    if (o->shuffle)
        for (int i = 0; i < PERM_CACHE; i++) {
            ld->perms[i].epoch = UINT64_MAX; /* holds no epoch yet */
            if (!(ld->perms[i].perm = malloc(o->num_samples * sizeof(uint32_t)))) goto oom;
        }
    *out = ld;
    return CNN_OK;
oom:
    cnn_loader_free(ld);
    return CNN_ERROR(CNN_ERR_MEMORY, "loader: cannot allocate %d batches of %d x %zu floats",
                     o->prefetch, o->batch_size, o->sample_floats);
}

void cnn_loader_free(cnn_loader *ld)
{
    if (!ld) return;
    pthread_mutex_lock(&ld->mu);
    ld->stop = true;
    pthread_cond_broadcast(&ld->cv);
    pthread_mutex_unlock(&ld->mu);
    for (int i = 0; i < ld->n_threads; i++) pthread_join(ld->threads[i], NULL);
    free(ld->threads);
    if (ld->slots)
        for (int i = 0; i < ld->o.prefetch; i++) {
            free(ld->slots[i].data);
            free(ld->slots[i].label);
        }
    free(ld->slots);
    for (int i = 0; i < PERM_CACHE; i++) free(ld->perms[i].perm);
    pthread_cond_destroy(&ld->cv);
    pthread_mutex_destroy(&ld->mu);
    pthread_mutex_destroy(&ld->perm_mu);
    free(ld);
}

static cnn_status start_threads(cnn_loader *ld)
{
    ld->started = true;
    if (!ld->o.threads) return CNN_OK;
    ld->threads = calloc((size_t)ld->o.threads, sizeof *ld->threads);
    if (!ld->threads) return CNN_ERROR(CNN_ERR_MEMORY, "loader: out of memory");
    for (int i = 0; i < ld->o.threads; i++) {
        int r = pthread_create(&ld->threads[i], NULL, worker, ld);
        if (r) return CNN_ERROR(CNN_ERR_MEMORY, "loader: cannot start thread %d (error %d)", i,
                                r);
        ld->n_threads++;
    }
    return CNN_OK;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The batch out of its slot: threaded when big (AlexNet's is 158 MB). */
static void copy_out(const cnn_loader *ld, const slot *s, float *data, float *label)
{
    cnn_k_copy((size_t)ld->o.batch_size * ld->o.sample_floats, s->data, data);
    if (label && s->label) memcpy(label, s->label, (size_t)ld->o.batch_size * sizeof(float));
}

cnn_status cnn_loader_next(cnn_loader *ld, float *data, float *label)
{
    cnn_status st = CNN_OK;
    if (!ld->started && (st = start_threads(ld))) return st;
    if (!ld->n_threads) {
        /* Synchronous: fill slot 0 in the caller. */
        slot *s = &ld->slots[0];
        if ((st = fill_batch(ld, ld->take, s))) {
            ld->take++;
            return st;
        }
        copy_out(ld, s, data, label);
        ld->take++;
        ld->claim = ld->take;
        return CNN_OK;
    }
    pthread_mutex_lock(&ld->mu);
    uint64_t k = ld->take;
    slot *s = &ld->slots[k % (uint64_t)ld->o.prefetch];
    if (!(s->state == SLOT_READY && s->batch == k)) {
        double t0 = now_s();
        while (!(s->state == SLOT_READY && s->batch == k)) pthread_cond_wait(&ld->cv, &ld->mu);
        ld->wait_s += now_s() - t0;
    }
    pthread_mutex_unlock(&ld->mu);
    /* The slot stays READY (unclaimable) while it is copied out. */
    st = s->st;
    if (st == CNN_OK)
        copy_out(ld, s, data, label);
    else
        CNN_ERROR(st, "%s", s->msg);
    pthread_mutex_lock(&ld->mu);
    s->state = SLOT_FREE;
    ld->take++;
    pthread_cond_broadcast(&ld->cv);
    pthread_mutex_unlock(&ld->mu);
    return st;
}

cnn_status cnn_loader_seek(cnn_loader *ld, uint64_t batch)
{
    pthread_mutex_lock(&ld->mu);
    ld->gen++;
    for (int i = 0; i < ld->o.prefetch; i++)
        if (ld->slots[i].state == SLOT_READY) ld->slots[i].state = SLOT_FREE;
    ld->take = ld->claim = batch;
    pthread_cond_broadcast(&ld->cv);
    pthread_mutex_unlock(&ld->mu);
    return CNN_OK;
}

uint64_t cnn_loader_position(const cnn_loader *ld) { return ld->take; }

double cnn_loader_wait_seconds(const cnn_loader *ld) { return ld->wait_s; }

size_t cnn_loader_num_samples(const cnn_loader *ld) { return ld->o.num_samples; }

size_t cnn_loader_note_bad(cnn_loader *ld) { return atomic_fetch_add(&ld->bad, 1) + 1; }

size_t cnn_loader_bad_samples(const cnn_loader *ld)
{
    return atomic_load(&((cnn_loader *)ld)->bad);
}
