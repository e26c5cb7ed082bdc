/* transform.h — reading Caffe's transform_param, and applying it to 8-bit
 * pixels. Shared by the data layers, the Input layer and the tools.
 *
 * Beyond Caffe's fields, the data layers accept extensions for ImageNet-style
 * augmentation (all off by default): resize of the shorter side, random
 * scale and aspect jitter, small rotations, AlexNet's PCA lighting noise and
 * colour casting. Their randomness is drawn from the generator the loader
 * hands to each batch, so batches stay a function of (seed, batch). */
#ifndef CNN_TRANSFORM_H
#define CNN_TRANSFORM_H

#include "cnn.h"
#include "config.h"

/* Channels the colour augmentations handle (gray or RGB). */
#define CNN_AUG_CHANNELS 3

/* transform_param as the data layers read it: Caffe's fields (the
 * cnn_transform of cnn.h) plus what only matters for data sources. */
typedef struct cnn_data_transform {
    cnn_transform t;
    const char *mean_file;  /* a Caffe .binaryproto mean image, or NULL; points into
                               the config until loaded, then to mean_path */
    char *mean_path;        /* once loaded: an owned copy of the path, and the */
    float *mean_img;        /* (mean_c, mean_h, mean_w) values; else NULL */
    int mean_c, mean_h, mean_w;
    bool force_color, force_gray;
    /* Extensions; the defaults switch them off (and t.resize_shorter). */
    float jitter_min, jitter_max; /* TRAIN: resized sides x U(min, max); 1, 1: off */
    float aspect_jitter;    /* TRAIN: aspect w/h x r, log r ~ U(+-log a); 1: off */
    float max_rotation;     /* TRAIN: rotation ~ U(+-max) degrees; 0: off */
    float lighting_std;     /* TRAIN: AlexNet PCA lighting, alpha ~ N(0, std); 0: off */
    float eigval[3];        /* lighting eigenvalues (pixels in 0..1 units) */
    float eigvec[9];        /* row c = channel c (R, G, B), column j = eigenvector j */
    float color_cast;       /* TRAIN: per-channel offset ~ U(+-a) (0..255 units); 0: off */
} cnn_data_transform;

/* The random choices for one sample (drawn in TRAIN, fixed in TEST). */
typedef struct cnn_transform_draw {
    int h, w;               /* size after resizing, before the crop */
    int y0, x0;             /* crop offset in the resized image */
    bool flip;              /* horizontal mirror */
    float angle;            /* rotation in degrees, counter-clockwise */
    float offset[CNN_AUG_CHANNELS]; /* added to each channel's 0..255 pixels */
} cnn_transform_draw;

/* Reads `transform_param` from the layer message `layer`; `legacy` (may be
 * NULL) is the data_param / image_data_param message whose deprecated
 * scale, mean_file, crop_size and mirror fields apply when transform_param
 * does not set them. mean_file is only recorded: a shapes-only net (cnninfo)
 * describes Caffe's files without reading it; a layer that runs calls
 * cnn_data_transform_load_mean. Bad values are errors naming
 * file:line:col. */
cnn_status cnn_data_transform_parse(cnn_cfg *layer, cnn_cfg *legacy, cnn_data_transform *out);
/* Reads mean_file, when given, for samples of c channels (any number when
 * c < 0): a BlobProto of shape 1 x c x H x W (or c x H x W), as Caffe's
 * compute_image_mean writes.
 * As in Caffe, pixel (y, x) of the image the crop is taken from loses the
 * mean's pixel (y, x). Without resize_shorter the images must have the
 * mean's size; where they are resized (resize_shorter, or the TRAIN-time
 * scale and aspect jitter) to another size, the mean is read at the same
 * relative position (nearest pixel). */
cnn_status cnn_data_transform_load_mean(cnn_data_transform *dt, int c);
/* Frees what cnn_data_transform_load_mean read. */
void cnn_data_transform_release(cnn_data_transform *dt);
/* Checks that the transform fits samples of c x h x w; `what` names the
 * data in messages. */
cnn_status cnn_transform_check(const cnn_transform *t, int c, int h, int w, const char *what);
/* The same for the extended transform (also: colour augmentation needs 1
 * or 3 channels, lighting 3; a loaded mean image must match c, and h x w
 * unless resize_shorter is set). */
cnn_status cnn_data_transform_check(const cnn_data_transform *dt, int c, int h, int w,
                                    const char *what);
/* Error unless h x w images fit the loaded mean image (see above). */
cnn_status cnn_data_transform_check_mean_size(const cnn_data_transform *dt, int h, int w,
                                              const char *what);
/* Output height/width for h x w samples. */
static inline int cnn_transform_out(const cnn_transform *t, int size)
{
    return t->crop_size ? t->crop_size : size;
}
/* Size of an h x w sample after resize_shorter (TEST geometry: no jitter). */
void cnn_data_transform_resized(const cnn_data_transform *dt, int h, int w, int *rh, int *rw);
/* Output size of the extended transform for h x w samples. */
void cnn_data_transform_out(const cnn_data_transform *dt, int h, int w, int *oh, int *ow);
/* True when any extension that resizes is on (resize_shorter or jitter). */
bool cnn_data_transform_resizes(const cnn_data_transform *dt);
/* Draws the random choices for one c x h x w sample (TRAIN), or sets the
 * TEST ones (resize_shorter, centred crop, nothing else) when !train. The
 * draw order is fixed: jitter scale, aspect, mirror, crop y, crop x,
 * rotation, 3 lighting alphas, colour casts; each only when switched on. */
void cnn_data_transform_draw(const cnn_data_transform *dt, int c, int h, int w, bool train,
                             cnn_rng *rng, cnn_transform_draw *d);
/* Renders a sample with the choices in d: resize to d->h x d->w (bilinear),
 * crop at (d->y0, d->x0), rotate about the crop's centre (bilinear, edges
 * replicated), mirror, add d->offset, then (x - mean) * scale. */
cnn_status cnn_data_transform_render(const cnn_data_transform *dt, const cnn_transform_draw *d,
                                     const uint8_t *src, int c, int h, int w, bool hwc,
                                     float *dst);
/* Draw + render: the whole extended transform of one sample. */
cnn_status cnn_data_transform_apply(const cnn_data_transform *dt, const uint8_t *src, int c,
                                    int h, int w, bool hwc, bool train, cnn_rng *rng,
                                    float *dst);
/* The lighting offsets (0..255 units) of the three channels for the draws
 * alpha: 255 * sum_j eigvec[c][j] * alpha[j] * eigval[j]. */
void cnn_data_transform_lighting(const cnn_data_transform *dt, const float alpha[3],
                                 float out[3]);
/* Reads `transform_param` from a layer message (absent: identity), as the
 * Input layer and the tools need it: the data-layer extensions are refused
 * (clear error). A mean_file becomes its per-channel averages (mean_value),
 * as Caffe's classification example uses a mean image: the tools resize
 * whole images to the input, so no pixel of the mean lines up with them;
 * the file is read only when `read_mean` (not for a shapes-only net). */
cnn_status cnn_transform_parse(cnn_cfg *layer, bool read_mean, cnn_transform *out);
/* Mean of channel c (0 when no mean is given). */
static inline float cnn_transform_mean(const cnn_transform *t, int c)
{
    return t->n_mean == 0 ? 0.f : t->mean[t->n_mean == 1 ? 0 : c];
}

#endif
