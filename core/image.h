/* image.h — decoding PNG and JPEG files into 8-bit pixel buffers, writing
 * PNG, and the two geometric operations data layers need (bilinear resize,
 * centre crop). Pixels are interleaved (H, W, C), channels in RGB order.
 * Every error message names the file the pixels came from. */
#ifndef CNN_IMAGE_H
#define CNN_IMAGE_H

#include "cnn.h"

/* An 8-bit image; c is 1 (gray), 3 (RGB) or, for writing only, 4 (RGBA). */
typedef struct cnn_image {
    int h, w, c;
    uint8_t *data; /* (h, w, c) row-major, interleaved */
} cnn_image;

/* Allocates a zeroed h x w x c image into *out. */
cnn_status cnn_image_alloc(cnn_image *out, int h, int w, int c);
/* Frees the pixels and clears the struct; accepts an empty image. */
void cnn_image_free(cnn_image *im);

/* Reads and decodes a PNG or JPEG file. channels: 1 converts to gray, 3 to
 * RGB, 0 keeps what the file holds (1 for gray files, else 3). Alpha is
 * dropped, 16-bit samples become 8-bit, palettes are expanded. */
cnn_status cnn_image_read(const char *path, int channels, cnn_image *out);
/* The same for a file already in memory; `name` is used in error messages. */
cnn_status cnn_image_decode(const void *buf, size_t size, const char *name, int channels,
                            cnn_image *out);
/* Writes im (1, 3 or 4 channels) as an 8-bit PNG file. */
cnn_status cnn_image_write_png(const char *path, const cnn_image *im);

/* Bilinear resize of src to h x w (pixel centres aligned, as OpenCV's
 * INTER_LINEAR); *out is allocated. */
cnn_status cnn_image_resize(const cnn_image *src, int h, int w, cnn_image *out);
/* The centred h x w window of src (h <= src->h, w <= src->w); *out is
 * allocated. */
cnn_status cnn_image_center_crop(const cnn_image *src, int h, int w, cnn_image *out);

#endif
