/* loader.h — the prefetching batch loader behind the Data and ImageData
 * layers.
 *
 * Batch k (counted from 0 over the whole run) is a pure function of the seed
 * and k: sample positions k*B .. k*B+B-1 (after an initial skip) walk the
 * epochs in order, each epoch in the order of a Fisher–Yates permutation
 * seeded from (seed, epoch) when shuffling, and random crop/mirror choices of
 * batch k come from a generator seeded from (seed, k). Worker threads fill a
 * ring of preallocated batch buffers ahead of the consumer. */
#ifndef CNN_LOADER_H
#define CNN_LOADER_H

#include "cnn.h"
#include "config.h"
#include "transform.h"

typedef struct cnn_loader cnn_loader;

/* Produces sample `index` of the data set: writes sample_floats values to
 * data and, when label is not NULL, its label. Called from worker threads
 * (concurrently for different batches); errors are returned with
 * CNN_ERROR and reported by cnn_loader_next for that batch. */
typedef cnn_status (*cnn_loader_fill_fn)(void *ctx, size_t index, float *data, float *label,
                                         cnn_rng *rng);

typedef struct cnn_loader_opts {
    size_t num_samples;   /* N, the data set size */
    int batch_size;       /* B */
    size_t sample_floats; /* floats per sample */
    bool labels;          /* produce a label per sample */
    bool shuffle;         /* permute every epoch */
    uint64_t seed;
    uint64_t skip;        /* sample positions skipped before batch 0 */
    int threads;          /* worker threads; 0 fills batches in the caller */
    int prefetch;         /* batch buffers in the ring (>= 1) */
} cnn_loader_opts;

/* Creates a loader (buffers allocated, threads started on first use). */
cnn_status cnn_loader_create(const cnn_loader_opts *o, cnn_loader_fill_fn fill, void *ctx,
                             cnn_loader **out);
/* Stops and joins the workers and frees everything; accepts NULL. */
void cnn_loader_free(cnn_loader *ld);
/* Copies the next batch (B x sample_floats values, and B labels when the
 * loader has them and `label` is not NULL), waiting for it if needed. */
cnn_status cnn_loader_next(cnn_loader *ld, float *data, float *label);
/* Makes the next cnn_loader_next return batch `batch`; batches already
 * prefetched are dropped. */
cnn_status cnn_loader_seek(cnn_loader *ld, uint64_t batch);
/* Number of the batch cnn_loader_next returns next. */
uint64_t cnn_loader_position(const cnn_loader *ld);
/* Total seconds cnn_loader_next has spent waiting for workers. */
double cnn_loader_wait_seconds(const cnn_loader *ld);
/* Number of samples in the loader's data set (one epoch). */
size_t cnn_loader_num_samples(const cnn_loader *ld);
/* Data set index of sample position `pos` (epoch pos / N). */
size_t cnn_loader_sample_index(cnn_loader *ld, uint64_t pos);
/* Counts one more unreadable sample (thread-safe); returns the new count. */
size_t cnn_loader_note_bad(cnn_loader *ld);
/* Unreadable samples counted so far. */
size_t cnn_loader_bad_samples(const cnn_loader *ld);
/* Unreadable images the net's data layers have skipped so far (each image
 * counted once). Defined with the Data layer (layers/data.c). */
size_t cnn_net_data_bad_images(const cnn_net *n);


#endif
