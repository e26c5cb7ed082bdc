/* data.c — the Data layer: batches of (data, label) from a data set read
 * into memory once (IDX files such as MNIST / Fashion-MNIST, or CIFAR-10
 * binary batches), transformed by transform_param and prefetched by the
 * loader's worker threads. Caffe's LEVELDB / LMDB backends parse but cannot
 * run. Tops: data (N, C, H, W) and optionally label (N). */
#define _GNU_SOURCE /* strcasestr, sched_getaffinity */
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "../core/dataset.h"
#include "../core/loader.h"
#include "../core/net_internal.h"
#include "layer.h"

enum { BACKEND_LEVELDB, BACKEND_LMDB, BACKEND_IDX, BACKEND_CIFAR };
static const char *const backend_names[] = {"LEVELDB", "LMDB", "IDX", "CIFAR", NULL};

#define MAX_THREADS 64

typedef struct data_priv {
    cnn_loader *loader; /* first, as in image_data.c; NULL when shapes only */
    cnn_dataset *set;
    cnn_data_transform tf;
    int batch;
    int c, h, w; /* one sample as stored */
    bool train;
} data_priv;

extern const cnn_layer_type cnn_layer_ImageData;

/* cnninfo without the data: the shape from crop_size, else from the source
 * name; `c` is the channel count when the backend fixes it, else 0. */
static cnn_status guess_shape(cnn_layer *l, const char *source, int crop, int c, data_priv *p)
{
    bool mnist = strcasestr(source, "mnist"), cifar = strcasestr(source, "cifar");
    p->c = c ? c : mnist ? 1 : 3;
    if (crop) {
        p->h = p->w = crop;
        return CNN_OK;
    }
    if (mnist || cifar) {
        p->h = p->w = mnist ? 28 : 32;
        return CNN_OK;
    }
    return cnn_layer_error(l, CNN_ERR_CONFIG, "the shape of '%s' cannot be known without "
                           "reading it; give transform_param.crop_size or a readable source",
                           source);
}

/* The loader's per-sample callback. */
static cnn_status data_fill(void *ctx, size_t i, float *data, float *label, cnn_rng *rng)
{
    const data_priv *p = ctx;
    const cnn_dataset *d = p->set;
    cnn_status st = cnn_data_transform_apply(&p->tf, d->pixels + i * (size_t)d->c * d->h * d->w,
                                             d->c, d->h, d->w, false, p->train, rng, data);
    if (st) return st;
    if (label) *label = (float)d->labels[i];
    return CNN_OK;
}

/* Loader threads when a data layer does not say: one per CPU this process
 * may run on, at most AUTO_THREADS (beyond that the GPU is fed anyway). */
#define AUTO_THREADS 8

static int auto_threads(void)
{
    cpu_set_t set;
    int n = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 2;
    return n < 1 ? 1 : n > AUTO_THREADS ? AUTO_THREADS : n;
}

cnn_status cnn_data_loader_fields(cnn_cfg *p, int *threads, int *prefetch)
{
    cnn_status st = CNN_OK;
    CNN_TRY(cnn_cfg_int(p, "threads", auto_threads(), threads));
    if (*threads < 0 || *threads > MAX_THREADS)
        return cnn_cfg_error(cnn_cfg_get(p, "threads"), CNN_ERR_CONFIG,
                             "threads must be 0 to %d", MAX_THREADS);
    /* Each worker fills a whole batch into a ring slot: as many slots as
     * workers keep them all busy. */
    CNN_TRY(cnn_cfg_int(p, "prefetch", *threads > 4 ? *threads : 4, prefetch));
    if (*prefetch < 1)
        return cnn_cfg_error(cnn_cfg_get(p, "prefetch"), CNN_ERR_CONFIG,
                             "prefetch must be at least 1");
fail:
    return st;
}

static cnn_status data_setup(cnn_layer *l, cnn_cfg *cfg)
{
    cnn_status st = CNN_OK;
    cnn_cfg *p = NULL;
    const char *source = NULL, *label_source = NULL;
    int backend = BACKEND_LEVELDB, threads, prefetch;
    unsigned rand_skip = 0;
    bool shuffle = false, encoded_color = false;
    CNN_TRY(cnn_layer_alloc_priv(l, sizeof(data_priv)));
    data_priv *dp = l->priv;
    /* Drawn whatever the mode, so the net's later draws do not depend on it. */
    uint64_t seed = cnn_rng_next(l->rng);
    dp->train = l->phase == CNN_TRAIN;
    CNN_TRY(cnn_cfg_message(cfg, "data_param", &p));
    CNN_TRY(cnn_cfg_string(p, "source", NULL, &source));
    CNN_TRY(cnn_cfg_int(p, "batch_size", 0, &dp->batch));
    CNN_TRY(cnn_cfg_uint(p, "rand_skip", 0, &rand_skip));
    CNN_TRY(cnn_cfg_enum(p, "backend", backend_names, BACKEND_LEVELDB, &backend));
    CNN_TRY(cnn_cfg_string(p, "label_source", NULL, &label_source));
    CNN_TRY(cnn_cfg_bool(p, "shuffle", false, &shuffle));
    /* Only meaningful for encoded datums in LMDB/LEVELDB, which we never read. */
    CNN_TRY(cnn_cfg_bool(p, "force_encoded_color", false, &encoded_color));
    CNN_TRY(cnn_data_loader_fields(p, &threads, &prefetch));
    CNN_TRY(cnn_data_transform_parse(cfg, p, &dp->tf));
    if (!source) return cnn_layer_error(l, CNN_ERR_CONFIG, "data_param.source is missing");
    if (dp->batch <= 0)
        return cnn_layer_error(l, CNN_ERR_CONFIG, "data_param.batch_size must be positive");
    if (label_source && backend != BACKEND_IDX)
        return cnn_cfg_error(cnn_cfg_get(p, "label_source"), CNN_ERR_CONFIG,
                             "label_source is only used with backend: IDX");
    if (l->shapes_only) {
        /* Describe the net without loading the data: the real header when
         * readable, else a guess. */
        int ndim = 0, dims[4];
        if (backend == BACKEND_IDX && cnn_idx_header(source, &ndim, dims) == CNN_OK &&
            ndim == 3) {
            dp->c = 1;
            dp->h = dims[1];
            dp->w = dims[2];
        } else if (backend == BACKEND_CIFAR) {
            dp->c = 3;
            dp->h = dp->w = 32;
        } else {
            return guess_shape(l, source, dp->tf.t.crop_size, backend == BACKEND_IDX, dp);
        }
        if ((st = cnn_data_transform_check(&dp->tf, dp->c, dp->h, dp->w, source)))
            return cnn_layer_error(l, st, "%s", cnn_error_message());
        return CNN_OK;
    }
    if (backend == BACKEND_LEVELDB || backend == BACKEND_LMDB)
        return cnn_layer_error(l, CNN_ERR_UNSUPPORTED, "backend %s is not supported (source "
                               "'%s'); use backend: IDX or CIFAR, or an ImageData layer",
                               backend_names[backend], source);
    if (dp->tf.force_color || dp->tf.force_gray)
        return cnn_layer_error(l, CNN_ERR_UNSUPPORTED, "force_color / force_gray apply to "
                               "encoded images; the Data layer does not support them");
    if (backend == BACKEND_IDX && l->n_top > 1 && !label_source)
        return cnn_layer_error(l, CNN_ERR_CONFIG, "backend IDX needs data_param.label_source "
                               "(the idx1 labels file) for the label top");
    if (backend == BACKEND_IDX)
        st = cnn_dataset_load_idx(source, label_source, &dp->set);
    else
        st = cnn_dataset_load_cifar(source, &dp->set);
    if (st) return cnn_layer_error(l, st, "%s", cnn_error_message());
    dp->c = dp->set->c;
    dp->h = dp->set->h;
    dp->w = dp->set->w;
    if ((st = cnn_data_transform_load_mean(&dp->tf, dp->c)) ||
        (st = cnn_data_transform_check(&dp->tf, dp->c, dp->h, dp->w, source)))
        return cnn_layer_error(l, st, "%s", cnn_error_message());
    int oh, ow;
    cnn_data_transform_out(&dp->tf, dp->h, dp->w, &oh, &ow);
    cnn_rng skip_rng;
    cnn_rng_seed(&skip_rng, seed ^ 0x5c1bULL);
    cnn_loader_opts o = {
        .num_samples = dp->set->n,
        .batch_size = dp->batch,
        .sample_floats = (size_t)dp->c * oh * ow,
        .labels = l->n_top > 1,
        .shuffle = shuffle,
        .seed = seed,
        .skip = rand_skip ? cnn_rng_below(&skip_rng, rand_skip) : 0,
        .threads = threads,
        .prefetch = prefetch,
    };
    if ((st = cnn_loader_create(&o, data_fill, dp, &dp->loader)))
        return cnn_layer_error(l, st, "%s", cnn_error_message());
fail:
    return st;
}

static cnn_status data_reshape(cnn_layer *l)
{
    data_priv *p = l->priv;
    int oh, ow;
    cnn_data_transform_out(&p->tf, p->h, p->w, &oh, &ow);
    cnn_status st = cnn_tensor_reshape4(l->top[0], p->batch, p->c, oh, ow);
    if (st == CNN_OK && l->n_top > 1) st = cnn_tensor_reshape(l->top[1], 1, &p->batch);
    return st;
}

static cnn_status data_forward(cnn_layer *l)
{
    data_priv *p = l->priv;
    if (!p->loader)
        return cnn_layer_error(l, CNN_ERR_ARG, "built for shapes only; its data was not opened");
    cnn_status st = cnn_loader_next(p->loader, l->top[0]->data,
                                    l->n_top > 1 ? l->top[1]->data : NULL);
    return st ? cnn_layer_error(l, st, "%s", cnn_error_message()) : CNN_OK;
}

static cnn_status data_seek(cnn_layer *l, uint64_t batch)
{
    data_priv *p = l->priv;
    return p->loader ? cnn_loader_seek(p->loader, batch) : CNN_OK;
}

static void data_destroy(cnn_layer *l)
{
    data_priv *p = l->priv;
    if (p) {
        cnn_loader_free(p->loader); /* joins the workers before the data goes */
        cnn_dataset_free(p->set);
        cnn_data_transform_release(&p->tf);
    }
    free(p);
    l->priv = NULL;
}

const cnn_layer_type cnn_layer_Data = {
    .name = "Data",
    .min_bottoms = 0,
    .max_bottoms = 0,
    .min_tops = 1,
    .max_tops = 2,
    .setup = data_setup,
    .reshape = data_reshape,
    .forward = data_forward,
    .destroy = data_destroy,
    .seek = data_seek,
};

/* The loader of data layer l, or NULL for other layers. */
static const cnn_loader *layer_loader(const cnn_layer *l)
{
    if ((l->type != &cnn_layer_Data && l->type != &cnn_layer_ImageData) || !l->priv)
        return NULL;
    return *(cnn_loader *const *)l->priv; /* both layers keep their loader first */
}

double cnn_net_data_wait_seconds(const cnn_net *n)
{
    double s = 0;
    for (int i = 0; i < cnn_net_num_layers(n); i++) {
        const cnn_loader *ld = layer_loader(cnn_net_layer(n, i));
        if (ld) s += cnn_loader_wait_seconds(ld);
    }
    return s;
}

size_t cnn_net_data_bad_images(const cnn_net *n)
{
    size_t s = 0;
    for (int i = 0; i < cnn_net_num_layers(n); i++) {
        const cnn_loader *ld = layer_loader(cnn_net_layer(n, i));
        if (ld) s += cnn_loader_bad_samples(ld);
    }
    return s;
}

size_t cnn_net_data_samples(const cnn_net *n)
{
    for (int i = 0; i < cnn_net_num_layers(n); i++) {
        const cnn_loader *ld = layer_loader(cnn_net_layer(n, i));
        if (ld) return cnn_loader_num_samples(ld);
    }
    return 0;
}
