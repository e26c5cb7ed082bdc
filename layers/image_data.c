/* image_data.c — the ImageData layer: batches decoded from the PNG / JPEG
 * files a list file names ("path label" lines), optionally resized to
 * new_height x new_width, transformed by transform_param. Decoding happens
 * in the loader's worker threads. Tops: data (N, C, H, W), label (N).
 * Channels are RGB (Caffe's OpenCV-based layer gives BGR). */
#include <stdlib.h>

#include "../core/dataset.h"
#include "../core/image.h"
#include "../core/loader.h"
#include "layer.h"

#define MAX_THREADS 64

typedef struct image_data_priv {
    cnn_loader *loader; /* first, as in data.c; NULL when shapes only */
    cnn_dataset *set;
    cnn_data_transform tf;
    int batch, c;
    int h, w;           /* the images' size after resizing */
    bool resize;        /* new_height / new_width given */
    bool train;
} image_data_priv;

/* Decodes image i into an (h, w, c) buffer, resized when asked. */
static cnn_status load_image(const image_data_priv *p, size_t i, cnn_image *out)
{
    const cnn_dataset *d = p->set;
    cnn_status st = cnn_image_read(d->paths[i], p->c, out);
    if (st == CNN_OK && p->resize && (out->h != p->h || out->w != p->w)) {
        cnn_image r;
        st = cnn_image_resize(out, p->h, p->w, &r);
        cnn_image_free(out);
        *out = r;
    }
    if (st) return CNN_ERROR(st, "%s (%s:%d)", cnn_error_message(), d->source, d->lines[i]);
    return CNN_OK;
}

/* The loader's per-sample callback. */
static cnn_status image_fill(void *ctx, size_t i, float *data, float *label, cnn_rng *rng)
{
    const image_data_priv *p = ctx;
    const cnn_dataset *d = p->set;
    cnn_image im;
    cnn_status st = load_image(p, i, &im);
    if (st) return st;
    int crop = p->tf.t.crop_size;
    if (crop ? im.h < crop || im.w < crop : im.h != p->h || im.w != p->w) {
        if (crop)
            st = CNN_ERROR(CNN_ERR_SHAPE, "%s: a %dx%d image is smaller than crop_size %d "
                           "(%s:%d)", d->paths[i], im.h, im.w, crop, d->source, d->lines[i]);
        else
            st = CNN_ERROR(CNN_ERR_SHAPE, "%s: a %dx%d image, but the first one is %dx%d; set "
                           "new_height and new_width to resize (%s:%d)", d->paths[i], im.h,
                           im.w, p->h, p->w, d->source, d->lines[i]);
        cnn_image_free(&im);
        return st;
    }
    cnn_transform_apply(&p->tf.t, im.data, im.c, im.h, im.w, true, p->train, rng, data);
    if (label) *label = (float)d->labels[i];
    cnn_image_free(&im);
    return CNN_OK;
}

/* Shape for cnninfo: from new_height/new_width, the first image when the
 * list is readable, or crop_size; else an error. */
static cnn_status shapes_only_setup(cnn_layer *l, image_data_priv *p, const char *source,
                                    const char *root)
{
    cnn_status st = CNN_OK;
    int crop = p->tf.t.crop_size;
    if (!p->resize && cnn_dataset_load_list(source, root, false, &p->set) == CNN_OK) {
        cnn_image im;
        if (load_image(p, 0, &im) == CNN_OK) {
            p->h = im.h;
            p->w = im.w;
            cnn_image_free(&im);
        }
        cnn_dataset_free(p->set);
        p->set = NULL;
    }
    if (!p->h && crop) p->h = p->w = crop;
    if (!p->h)
        return cnn_layer_error(l, CNN_ERR_CONFIG, "the image size cannot be known without "
                               "reading '%s'; give new_height/new_width or crop_size", source);
    if ((st = cnn_transform_check(&p->tf.t, p->c, p->h, p->w, source)))
        return cnn_layer_error(l, st, "%s", cnn_error_message());
    return CNN_OK;
}

static cnn_status image_data_setup(cnn_layer *l, cnn_cfg *cfg)
{
    cnn_status st = CNN_OK;
    cnn_cfg *p = NULL;
    const char *source = NULL, *root = NULL;
    int threads, prefetch, new_h, new_w;
    unsigned rand_skip = 0;
    bool shuffle = false, is_color = true;
    CNN_TRY(cnn_layer_alloc_priv(l, sizeof(image_data_priv)));
    image_data_priv *ip = l->priv;
    uint64_t seed = cnn_rng_next(l->rng);
    ip->train = l->phase == CNN_TRAIN;
    CNN_TRY(cnn_cfg_message(cfg, "image_data_param", &p));
    CNN_TRY(cnn_cfg_string(p, "source", NULL, &source));
    CNN_TRY(cnn_cfg_int(p, "batch_size", 1, &ip->batch));
    CNN_TRY(cnn_cfg_uint(p, "rand_skip", 0, &rand_skip));
    CNN_TRY(cnn_cfg_bool(p, "shuffle", false, &shuffle));
    CNN_TRY(cnn_cfg_int(p, "new_height", 0, &new_h));
    CNN_TRY(cnn_cfg_int(p, "new_width", 0, &new_w));
    CNN_TRY(cnn_cfg_bool(p, "is_color", true, &is_color));
    CNN_TRY(cnn_cfg_string(p, "root_folder", "", &root));
    CNN_TRY(cnn_cfg_int(p, "threads", 2, &threads));
    CNN_TRY(cnn_cfg_int(p, "prefetch", 4, &prefetch));
    CNN_TRY(cnn_data_transform_parse(cfg, p, &ip->tf));
    if (!source) return cnn_layer_error(l, CNN_ERR_CONFIG, "image_data_param.source is missing");
    if (ip->batch <= 0)
        return cnn_layer_error(l, CNN_ERR_CONFIG, "image_data_param.batch_size must be positive");
    if (new_h < 0 || new_w < 0 || (new_h > 0) != (new_w > 0))
        return cnn_layer_error(l, CNN_ERR_CONFIG, "new_height and new_width must be given "
                               "together, and be positive");
    if (threads < 0 || threads > MAX_THREADS)
        return cnn_cfg_error(cnn_cfg_get(p, "threads"), CNN_ERR_CONFIG,
                             "threads must be 0 to %d", MAX_THREADS);
    if (prefetch < 1)
        return cnn_cfg_error(cnn_cfg_get(p, "prefetch"), CNN_ERR_CONFIG,
                             "prefetch must be at least 1");
    ip->c = ip->tf.force_gray ? 1 : ip->tf.force_color ? 3 : is_color ? 3 : 1;
    ip->resize = new_h > 0;
    ip->h = new_h;
    ip->w = new_w;
    if (l->shapes_only) return shapes_only_setup(l, ip, source, root);
    if (ip->tf.mean_file)
        return cnn_layer_error(l, CNN_ERR_UNSUPPORTED, "transform_param.mean_file ('%s') is "
                               "not supported; give mean_value per channel", ip->tf.mean_file);
    if ((st = cnn_dataset_load_list(source, root, true, &ip->set)))
        return cnn_layer_error(l, st, "%s", cnn_error_message());
    if (!ip->resize) {
        /* The batch shape comes from the first image, as in Caffe. */
        cnn_image im;
        if ((st = load_image(ip, 0, &im)))
            return cnn_layer_error(l, st, "%s", cnn_error_message());
        ip->h = im.h;
        ip->w = im.w;
        cnn_image_free(&im);
    }
    if ((st = cnn_transform_check(&ip->tf.t, ip->c, ip->h, ip->w, ip->set->paths[0])))
        return cnn_layer_error(l, st, "%s", cnn_error_message());
    cnn_rng skip_rng;
    cnn_rng_seed(&skip_rng, seed ^ 0x5c1bULL);
    cnn_loader_opts o = {
        .num_samples = ip->set->n,
        .batch_size = ip->batch,
        .sample_floats = (size_t)ip->c * cnn_transform_out(&ip->tf.t, ip->h) *
                         cnn_transform_out(&ip->tf.t, ip->w),
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
    cnn_status st = cnn_tensor_reshape4(l->top[0], p->batch, p->c,
                                        cnn_transform_out(&p->tf.t, p->h),
                                        cnn_transform_out(&p->tf.t, p->w));
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
