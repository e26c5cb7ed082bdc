/* transform.h — reading Caffe's transform_param, and applying it to 8-bit
 * pixels. Shared by the data layers, the Input layer and the tools. */
#ifndef CNN_TRANSFORM_H
#define CNN_TRANSFORM_H

#include "cnn.h"
#include "config.h"

/* Reads `transform_param` from a layer message (absent: identity).
 * mean_file is not supported (clear error). */
cnn_status cnn_transform_parse(cnn_cfg *layer, cnn_transform *out);
/* Mean of channel c (0 when no mean is given). */
static inline float cnn_transform_mean(const cnn_transform *t, int c)
{
    return t->n_mean == 0 ? 0.f : t->mean[t->n_mean == 1 ? 0 : c];
}

#endif
