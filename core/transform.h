/* transform.h — reading Caffe's transform_param, and applying it to 8-bit
 * pixels. Shared by the data layers, the Input layer and the tools. */
#ifndef CNN_TRANSFORM_H
#define CNN_TRANSFORM_H

#include "cnn.h"
#include "config.h"

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
/* Reads `transform_param` from a layer message (absent: identity), as the
 * Input layer and the tools need it: mean_file is refused (clear error). */
cnn_status cnn_transform_parse(cnn_cfg *layer, cnn_transform *out);
/* Mean of channel c (0 when no mean is given). */
static inline float cnn_transform_mean(const cnn_transform *t, int c)
{
    return t->n_mean == 0 ? 0.f : t->mean[t->n_mean == 1 ? 0 : c];
}

#endif
