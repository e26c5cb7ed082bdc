/* image_data.c — the ImageData layer: batches decoded from PNG / JPEG files
 * named by a list file ("path label" lines) or found in a folder of class
 * folders, optionally resized to new_height x new_width, transformed by
 * transform_param (with the augmentation extensions of core/transform.h).
 * Decoding happens in the loader's worker threads. An image that cannot be
 * decoded is skipped with a warning and replaced by another sample chosen
 * deterministically; more than max_bad_images of them stop the run.
 * Tops: data (N, C, H, W), label (N). Channels are RGB (Caffe's
 * OpenCV-based layer gives BGR). */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "../core/dataset.h"
#include "../core/image.h"
#include "../core/loader.h"
#include "layer.h"

/* Replacements tried for one sample before giving up. */
#define MAX_TRIES 32

typedef struct image_data_priv {
    cnn_loader *loader; /* first, as in data.c; NULL when shapes only */
    cnn_dataset *set;
    cnn_data_transform tf;
    int batch, c;
    int h, w;           /* the first image's size after new_height/new_width */
    int oh, ow;         /* output size */
    bool resize;        /* new_height / new_width given */
    bool train;
    int max_bad;        /* unreadable images tolerated; -1: any number */
    atomic_uchar *bad;  /* (n) images known to be unreadable */
    const char *name;   /* the layer's, for warnings */
} image_data_priv;

/* " (list:line)" for list sets, "" for folder sets. */
static const char *where(const cnn_dataset *d, size_t i, char *buf, size_t n)
{
    if (d->lines[i] <= 0) return "";
    snprintf(buf, n, " (%s:%d)", d->source, d->lines[i]);
    return buf;
}

/* Decodes image i into an (h, w, c) buffer, resized when asked. */
static cnn_status load_image(const image_data_priv *p, size_t i, cnn_image *out)
{
    const cnn_dataset *d = p->set;
    char at[1200];
    cnn_status st = cnn_image_read(d->paths[i], p->c, out);
    if (st == CNN_OK && p->resize && (out->h != p->h || out->w != p->w)) {
        cnn_image r;
        st = cnn_image_resize(out, p->h, p->w, &r);
        cnn_image_free(out);
        *out = r;
    }
    if (st) return CNN_ERROR(st, "%s%s", cnn_error_message(), where(d, i, at, sizeof at));
    return CNN_OK;
}

/* Error unless an h x w image gives the batch's output size. */
static cnn_status check_size(const image_data_priv *p, size_t i, int h, int w)
{
    const cnn_dataset *d = p->set;
    const cnn_data_transform *tf = &p->tf;
    int crop = tf->t.crop_size, rh, rw;
    char at[1200];
    if (cnn_data_transform_check_mean_size(tf, h, w, d->paths[i]))
        return CNN_ERROR(CNN_ERR_SHAPE, "%s%s", cnn_error_message(), where(d, i, at, sizeof at));
    if (crop && cnn_data_transform_resizes(tf)) return CNN_OK; /* resized to fit the crop */
    if (crop && (h < crop || w < crop))
        return CNN_ERROR(CNN_ERR_SHAPE, "%s: a %dx%d image is smaller than crop_size %d%s",
                         d->paths[i], h, w, crop, where(d, i, at, sizeof at));
    cnn_data_transform_resized(tf, h, w, &rh, &rw);
    if (crop || (rh == p->oh && rw == p->ow)) return CNN_OK;
    if (tf->t.resize_shorter)
        return CNN_ERROR(CNN_ERR_SHAPE, "%s: a %dx%d image resizes to %dx%d, but the first one "
                         "to %dx%d; add crop_size%s", d->paths[i], h, w, rh, rw, p->oh, p->ow,
                         where(d, i, at, sizeof at));
    return CNN_ERROR(CNN_ERR_SHAPE, "%s: a %dx%d image, but the first one is %dx%d; set "
                     "new_height and new_width to resize%s", d->paths[i], h, w, p->h, p->w,
                     where(d, i, at, sizeof at));
}

/* Decodes and transforms image i into data. */
static cnn_status fill_one(const image_data_priv *p, size_t i, float *data, cnn_rng *rng)
{
    cnn_image im;
    cnn_status st = load_image(p, i, &im);
    if (st) return st;
    if ((st = check_size(p, i, im.h, im.w)) == CNN_OK)
        st = cnn_data_transform_apply(&p->tf, im.data, im.c, im.h, im.w, true, p->train, rng,
                                      data);
    cnn_image_free(&im);
    return st;
}

/* Counts image i as unreadable (once), warning on stderr with the decoder's
 * message (`fresh`: it is the current error message); an error once more
 * than max_bad images failed. */
static cnn_status note_bad(image_data_priv *p, size_t i, bool fresh)
{
    char msg[1500];
    if (fresh)
        snprintf(msg, sizeof msg, "%s", cnn_error_message());
    else
        snprintf(msg, sizeof msg, "%s: unreadable (skipped before)", p->set->paths[i]);
    size_t n = cnn_loader_bad_samples(p->loader);
    if (!atomic_exchange(&p->bad[i], 1)) {
        n = cnn_loader_note_bad(p->loader);
        fprintf(stderr, "warning: layer '%s': skipping an unreadable image (%zu so far): %s\n",
                p->name, n, msg);
    }
    if (p->max_bad >= 0 && n > (size_t)p->max_bad)
        return CNN_ERROR(CNN_ERR_FORMAT, "%s; %zu unreadable image(s), more than "
                         "max_bad_images (%d)", msg, n, p->max_bad);
    return CNN_OK;
}

/* The replacement for sample i after `attempt` failures: a pure function of
 * both, so batches do not depend on timing. */
static size_t replacement(size_t i, int attempt, size_t n)
{
    uint64_t z = (uint64_t)i * 0x9e3779b97f4a7c15ULL + (uint64_t)attempt + 1;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return (size_t)((z ^ (z >> 31)) % n);
}

/* The loader's per-sample callback. */
static cnn_status image_fill(void *ctx, size_t i, float *data, float *label, cnn_rng *rng)
{
    image_data_priv *p = ctx;
    const cnn_dataset *d = p->set;
    size_t k = i;
    for (int attempt = 0; attempt < MAX_TRIES; attempt++) {
        bool known = atomic_load(&p->bad[k]);
        cnn_status st = known ? CNN_ERR_FORMAT : fill_one(p, k, data, rng);
        if (st == CNN_OK) {
            if (label) *label = (float)d->labels[k];
            return CNN_OK;
        }
        if (st != CNN_ERR_FORMAT && st != CNN_ERR_IO) return st;
        if ((st = note_bad(p, k, !known))) return st;
        k = replacement(i, attempt, d->n);
    }
    return CNN_ERROR(CNN_ERR_FORMAT, "%s: no readable image found in %d tries to replace %s",
                     d->source, MAX_TRIES, d->paths[i]);
}

/* Shape for cnninfo: from new_height/new_width, the first image when the
 * source is readable, or crop_size / resize_shorter; else an error. */
static cnn_status shapes_only_setup(cnn_layer *l, image_data_priv *p, const char *source,
                                    const char *root)
{
    cnn_status st = CNN_OK;
    int crop = p->tf.t.crop_size, side = crop ? crop : p->tf.t.resize_shorter;
    if (!p->resize && cnn_dataset_load_images(source, root, false, &p->set) == CNN_OK) {
        cnn_image im;
        if (load_image(p, 0, &im) == CNN_OK) {
            p->h = im.h;
            p->w = im.w;
            cnn_image_free(&im);
        }
        cnn_dataset_free(p->set);
        p->set = NULL;
    }
    if (!p->h && side) p->h = p->w = side;
    if (!p->h)
        return cnn_layer_error(l, CNN_ERR_CONFIG, "the image size cannot be known without "
                               "reading '%s'; give new_height/new_width or crop_size", source);
    if ((st = cnn_data_transform_check(&p->tf, p->c, p->h, p->w, source)))
        return cnn_layer_error(l, st, "%s", cnn_error_message());
    cnn_data_transform_out(&p->tf, p->h, p->w, &p->oh, &p->ow);
    return CNN_OK;
}

/* Reads the set, the first image's size, and writes labels_file. */
static cnn_status open_set(cnn_layer *l, image_data_priv *ip, const char *source,
                           const char *root, const char *labels_file)
{
    cnn_status st = cnn_dataset_load_images(source, root, true, &ip->set);
    if (st == CNN_OK && labels_file) st = cnn_dataset_write_labels(ip->set, labels_file);
    if (st) return cnn_layer_error(l, st, "%s", cnn_error_message());
    if (!ip->resize) {
        /* The batch shape comes from the first image, as in Caffe. */
        cnn_image im;
        if ((st = load_image(ip, 0, &im)))
            return cnn_layer_error(l, st, "%s", cnn_error_message());
        ip->h = im.h;
        ip->w = im.w;
        cnn_image_free(&im);
    }
    if ((st = cnn_data_transform_check(&ip->tf, ip->c, ip->h, ip->w, ip->set->paths[0])))
        return cnn_layer_error(l, st, "%s", cnn_error_message());
    cnn_data_transform_out(&ip->tf, ip->h, ip->w, &ip->oh, &ip->ow);
    ip->bad = calloc(ip->set->n, sizeof *ip->bad);
    if (!ip->bad) return cnn_layer_error(l, CNN_ERR_MEMORY, "out of memory");
    return CNN_OK;
}

static cnn_status image_data_setup(cnn_layer *l, cnn_cfg *cfg)
{
    cnn_status st = CNN_OK;
    cnn_cfg *p = NULL;
    const char *source = NULL, *root = NULL, *labels_file = NULL;
    int threads, prefetch, new_h, new_w;
    unsigned rand_skip = 0;
    bool shuffle = false, is_color = true;
    CNN_TRY(cnn_layer_alloc_priv(l, sizeof(image_data_priv)));
    image_data_priv *ip = l->priv;
    uint64_t seed = cnn_rng_next(l->rng);
    ip->train = l->phase == CNN_TRAIN;
    ip->name = l->name;
    CNN_TRY(cnn_cfg_message(cfg, "image_data_param", &p));
    CNN_TRY(cnn_cfg_string(p, "source", NULL, &source));
    CNN_TRY(cnn_cfg_int(p, "batch_size", 1, &ip->batch));
    CNN_TRY(cnn_cfg_uint(p, "rand_skip", 0, &rand_skip));
    CNN_TRY(cnn_cfg_bool(p, "shuffle", false, &shuffle));
    CNN_TRY(cnn_cfg_int(p, "new_height", 0, &new_h));
    CNN_TRY(cnn_cfg_int(p, "new_width", 0, &new_w));
    CNN_TRY(cnn_cfg_bool(p, "is_color", true, &is_color));
    CNN_TRY(cnn_cfg_string(p, "root_folder", "", &root));
    CNN_TRY(cnn_data_loader_fields(p, &threads, &prefetch));
    CNN_TRY(cnn_cfg_int(p, "max_bad_images", -1, &ip->max_bad));
    CNN_TRY(cnn_cfg_string(p, "labels_file", NULL, &labels_file));
    CNN_TRY(cnn_data_transform_parse(cfg, p, &ip->tf));
    if (!source) return cnn_layer_error(l, CNN_ERR_CONFIG, "image_data_param.source is missing");
    if (ip->batch <= 0)
        return cnn_layer_error(l, CNN_ERR_CONFIG, "image_data_param.batch_size must be positive");
    if (new_h < 0 || new_w < 0 || (new_h > 0) != (new_w > 0))
        return cnn_layer_error(l, CNN_ERR_CONFIG, "new_height and new_width must be given "
                               "together, and be positive");
    if (ip->max_bad < -1)
        return cnn_cfg_error(cnn_cfg_get(p, "max_bad_images"), CNN_ERR_CONFIG,
                             "max_bad_images must be -1 (no limit) or at least 0");
    if (labels_file && !cnn_path_is_dir(source))
        return cnn_cfg_error(cnn_cfg_get(p, "labels_file"), CNN_ERR_CONFIG,
                             "labels_file needs a folder of class folders as source ('%s' is "
                             "not a folder)", source);
    ip->c = ip->tf.force_gray ? 1 : ip->tf.force_color ? 3 : is_color ? 3 : 1;
    ip->resize = new_h > 0;
    ip->h = new_h;
    ip->w = new_w;
    if (l->shapes_only) return shapes_only_setup(l, ip, source, root);
    if ((st = cnn_data_transform_load_mean(&ip->tf, ip->c)))
        return cnn_layer_error(l, st, "%s", cnn_error_message());
    CNN_TRY(open_set(l, ip, source, root, labels_file));
    cnn_rng skip_rng;
    cnn_rng_seed(&skip_rng, seed ^ 0x5c1bULL);
    cnn_loader_opts o = {
        .num_samples = ip->set->n,
        .batch_size = ip->batch,
        .sample_floats = (size_t)ip->c * ip->oh * ip->ow,
        .labels = l->n_top > 1,
        .shuffle = shuffle,
        .seed = seed,
        .skip = rand_skip ? cnn_rng_below(&skip_rng, rand_skip) : 0,
        .threads = threads,
        .prefetch = prefetch,
    };
    if ((st = cnn_loader_create(&o, image_fill, ip, &ip->loader)))
        return cnn_layer_error(l, st, "%s", cnn_error_message());
fail:
    return st;
}

static cnn_status image_data_reshape(cnn_layer *l)
{
    image_data_priv *p = l->priv;
    cnn_status st = cnn_tensor_reshape4(l->top[0], p->batch, p->c, p->oh, p->ow);
    if (st == CNN_OK && l->n_top > 1) st = cnn_tensor_reshape(l->top[1], 1, &p->batch);
    return st;
}

static cnn_status image_data_forward(cnn_layer *l)
{
    image_data_priv *p = l->priv;
    if (!p->loader)
        return cnn_layer_error(l, CNN_ERR_ARG, "built for shapes only; its images were not "
                               "opened");
    cnn_status st = cnn_loader_next(p->loader, l->top[0]->data,
                                    l->n_top > 1 ? l->top[1]->data : NULL);
    return st ? cnn_layer_error(l, st, "%s", cnn_error_message()) : CNN_OK;
}

static cnn_status image_data_seek(cnn_layer *l, uint64_t batch)
{
    image_data_priv *p = l->priv;
    return p->loader ? cnn_loader_seek(p->loader, batch) : CNN_OK;
}

static void image_data_destroy(cnn_layer *l)
{
    image_data_priv *p = l->priv;
    if (p) {
        cnn_loader_free(p->loader); /* joins the workers before the list goes */
        cnn_dataset_free(p->set);
        free(p->bad);
        cnn_data_transform_release(&p->tf);
    }
    free(p);
    l->priv = NULL;
}

const cnn_layer_type cnn_layer_ImageData = {
    .name = "ImageData",
    .min_bottoms = 0,
    .max_bottoms = 0,
    .min_tops = 1,
    .max_tops = 2,
    .setup = image_data_setup,
    .reshape = image_data_reshape,
    .forward = image_data_forward,
    .destroy = image_data_destroy,
    .seek = image_data_seek,
};
