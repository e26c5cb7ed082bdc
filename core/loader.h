/* loader.h — the prefetching batch loader behind the Data and ImageData
 * layers, and the per-sample transformation (crop, mirror, mean, scale) that
 * Caffe's transform_param describes.
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

/* transform_param as the data layers read it: Caffe's fields (the
 * cnn_transform of cnn.h) plus what only matters for data sources. */
typedef struct cnn_data_transform {
    cnn_transform t;
    const char *mean_file;  /* given (unsupported when the layer runs), or NULL */
    bool force_color, force_gray;
} cnn_data_transform;

/* Reads `transform_param` from the layer message `layer`; `legacy` (may be
 * NULL) is the data_param / image_data_param message whose deprecated
 * scale, mean_file, crop_size and mirror fields apply when transform_param
 * does not set them. mean_file is recorded, not refused: a shapes-only net
 * (cnninfo) can still describe Caffe's files that use one. */
cnn_status cnn_data_transform_parse(cnn_cfg *layer, cnn_cfg *legacy, cnn_data_transform *out);
/* Checks that the transform fits samples of c x h x w; `what` names the
 * data in messages. */
cnn_status cnn_transform_check(const cnn_transform *t, int c, int h, int w, const char *what);
/* Output height/width for h x w samples. */
static inline int cnn_transform_out(const cnn_transform *t, int size)
{
    return t->crop_size ? t->crop_size : size;
}
/* Writes one sample (c, out_h, out_w) to dst from 8-bit pixels src laid out
 * (c, h, w), or (h, w, c) when `hwc`. In `train`, crop offsets and mirroring
 * are drawn from rng; otherwise the crop is centred and nothing is flipped. */
void cnn_transform_apply(const cnn_transform *t, const uint8_t *src, int c, int h, int w,
                         bool hwc, bool train, cnn_rng *rng, float *dst);

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


#endif
