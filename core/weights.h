/* weights.h — reading and writing .safetensors files.
 *
 * Layout: an 8-byte little-endian header length N, N bytes of JSON
 * ({"name": {"dtype", "shape", "data_offsets"}, "__metadata__": {...}}) padded
 * with spaces to a multiple of 8, then the raw little-endian tensor bytes with
 * offsets relative to the end of the header. The code assumes a little-endian
 * host (it reads and writes float32 bytes as they are in memory).
 *
 * cnn_weights_save / cnn_weights_load (declared in cnn.h) are built on this
 * reader and writer; the converter, fine-tuning and solver-state code reuse
 * them. Only F32 tensors can be read as floats; other safetensors dtypes are
 * recognised (their sizes are checked) and reported as unsupported. */
#ifndef CNN_WEIGHTS_H
#define CNN_WEIGHTS_H

#include "cnn.h"

/* An open safetensors file, held in memory. */
typedef struct cnn_safetensors cnn_safetensors;

/* Reads and validates the whole file at `path` (header length, JSON, dtypes,
 * shapes against byte spans, offsets inside the data area). Errors name the
 * file and, where one is at fault, the tensor. */
cnn_status cnn_safetensors_open(const char *path, cnn_safetensors **out);
/* Same, from a buffer of `size` bytes; `name` is used in error messages. */
cnn_status cnn_safetensors_open_buffer(const void *buf, size_t size, const char *name,
                                       cnn_safetensors **out);
/* Frees everything open() allocated; accepts NULL. */
void cnn_safetensors_close(cnn_safetensors *st);

/* Number of tensors in the file (the __metadata__ entry is not one). */
int cnn_safetensors_count(const cnn_safetensors *st);
/* Name of tensor i (0 <= i < count), in file order; owned by st. */
const char *cnn_safetensors_name(const cnn_safetensors *st, int i);
/* Dtype string of tensor i as written in the file ("F32", "F16", ...). */
const char *cnn_safetensors_dtype(const cnn_safetensors *st, int i);
/* Index of the tensor called `name`, or -1. */
int cnn_safetensors_find(const cnn_safetensors *st, const char *name);
/* Tensor `name` as float32: *ndim, shape[0..ndim) (room for CNN_MAX_DIMS) and
 * *data (owned by st, valid until close). Errors: absent (CNN_ERR_ARG), not
 * F32 (CNN_ERR_UNSUPPORTED), more than CNN_MAX_DIMS dimensions or a dimension
 * that does not fit an int (CNN_ERR_UNSUPPORTED). */
cnn_status cnn_safetensors_get(const cnn_safetensors *st, const char *name, int *ndim,
                               int *shape, const float **data);
/* Value of string metadata `key` from __metadata__, or NULL. */
const char *cnn_safetensors_meta(const cnn_safetensors *st, const char *key);
/* The name given at open (the path for files). */
const char *cnn_safetensors_source(const cnn_safetensors *st);

/* One tensor to write. */
typedef struct cnn_safetensors_entry {
    const char *name;
    int ndim;
    const int *shape; /* (ndim) */
    const float *data; /* (product of shape) values */
} cnn_safetensors_entry;

/* Writes `n` F32 tensors, contiguously in the given order, to `path`:
 * written to "<path>.tmp.<pid>", fsynced and renamed into place. `meta` is a
 * NULL-terminated list of key, value string pairs for __metadata__ (may be
 * NULL); "format": "cnn" is always written. Names must be unique and must not
 * be "__metadata__". Errors name the file. */
cnn_status cnn_safetensors_write(const char *path, const cnn_safetensors_entry *e, int n,
                                 const char *const *meta);

#endif
