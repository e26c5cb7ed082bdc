/* preprocess.h — turning decoded images into network input: resize to the
 * input's size, optional RGB → BGR swap, and Caffe's (pixel - mean) * scale,
 * written as planar (C, H, W) floats. Used by cnnclassify and other tools that
 * feed image files to an Input blob. */
#ifndef CNN_PREPROCESS_H
#define CNN_PREPROCESS_H

#include "cnn.h"
#include "image.h"

/* Error unless a transform's mean_value list fits c channels (0, 1 or c). */
cnn_status cnn_preprocess_check(const cnn_transform *t, int c);
/* Writes img, resized (bilinear) to h x w, into out (c, h, w): channels
 * reversed when `bgr` (3 channels only), then (x - mean[c]) * scale. img->c
 * must be c; t may be NULL (identity). */
cnn_status cnn_preprocess_image(const cnn_image *img, const cnn_transform *t, int c, int h,
                                int w, bool bgr, float *out);
/* Reads a PNG/JPEG file as c channels and preprocesses it into out (c, h, w).
 * Errors name the file. */
cnn_status cnn_preprocess_file(const char *path, const cnn_transform *t, int c, int h, int w,
                               bool bgr, float *out);

#endif
