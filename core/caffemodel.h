/* caffemodel.h — reading Caffe's binary .caffemodel weights (a protobuf
 * NetParameter) and .binaryproto blobs (mean images), and weights files of
 * either kind (.safetensors or .caffemodel) behind one interface.
 *
 * A .caffemodel is parsed straight from the protobuf wire format, without
 * libprotobuf: NetParameter { name = 1; layers = 2 (V1LayerParameter);
 * layer = 100 (LayerParameter) }, LayerParameter { name = 1; type = 2;
 * blobs = 7 }, V1LayerParameter { layer = 1 (V0); name = 4; type = 5 (enum);
 * blobs = 6 }, V0LayerParameter { name = 1; type = 2; blobs = 50 }, and
 * BlobProto { num = 1; channels = 2; height = 3; width = 4; data = 5;
 * shape = 7 (BlobShape { dim = 1 }); double_data = 8 }. Every other field is
 * skipped. Blob j of layer L is named "L.j", as in our own weights files.
 * Shapes follow Caffe's Blob::FromProto: the legacy 4-d num/channels/height/
 * width when any of them is present, else `shape`. Lengths are checked against
 * the bytes left before anything is allocated, so a damaged file gives an
 * error naming the byte offset, never a crash or a huge allocation. */
#ifndef CNN_CAFFEMODEL_H
#define CNN_CAFFEMODEL_H

#include "cnn.h"

/* One parameter blob of a .caffemodel. */
typedef struct cnn_caffemodel_blob {
    char *name;  /* "<layer>.<index>" */
    char *layer; /* the layer's name */
    char *type;  /* the layer's type ("Convolution"; V1 enums become their V2 name) */
    int index;   /* position among the layer's blobs */
    int ndim;
    int shape[CNN_MAX_DIMS]; /* (ndim) as stored; legacy blobs have 4 dims */
    bool legacy;             /* shape came from num/channels/height/width */
    size_t count;            /* product of shape */
    float *data;             /* (count) values; double_data is rounded to float */
} cnn_caffemodel_blob;

/* A parsed .caffemodel: its blobs in file order. */
typedef struct cnn_caffemodel {
    char *source;   /* the path, or the name given for a buffer */
    char *net_name; /* NetParameter.name, "" when absent */
    int n_layers;   /* layers with at least one blob */
    int n;
    cnn_caffemodel_blob *blob; /* (n) */
} cnn_caffemodel;

/* Parses a .caffemodel held in memory (`size` bytes); `name` is used in
 * messages. Errors (CNN_ERR_FORMAT) name the source and the byte offset. */
cnn_status cnn_caffemodel_parse(const void *buf, size_t size, const char *name,
                                cnn_caffemodel **out);
/* Reads and parses the .caffemodel file at `path`. */
cnn_status cnn_caffemodel_read(const char *path, cnn_caffemodel **out);
/* Frees what parse/read returned; accepts NULL. */
void cnn_caffemodel_free(cnn_caffemodel *m);

/* Reads a Caffe .binaryproto file: one BlobProto at the top level, as
 * Caffe's compute_image_mean writes a mean image. *out gets its shape and
 * values (name "BlobProto"); release it with cnn_caffemodel_blob_clear.
 * Errors (CNN_ERR_FORMAT, CNN_ERR_IO) name the file and the byte offset. */
cnn_status cnn_blobproto_read(const char *path, cnn_caffemodel_blob *out);
/* Frees what one blob holds and zeroes it. */
void cnn_caffemodel_blob_clear(cnn_caffemodel_blob *b);

/* The shape of b with leading 1s dropped, as Caffe compares legacy blobs
 * (a 1x1x4096x9216 InnerProduct weight is 4096x9216); returns the new ndim. */
int cnn_caffemodel_squeeze(const int *shape, int ndim, int *out);
/* Whether two shapes hold the same values in the same order for Caffe:
 * equal once leading 1s are dropped from both. */
bool cnn_shape_compatible(const int *a, int na, const int *b, int nb);

/* ---- weights files of either kind -------------------------------------- */

/* A .safetensors or .caffemodel file, open for reading tensors by name. */
typedef struct cnn_weights_file cnn_weights_file;

/* Whether the file at `path` is a .safetensors file (by its first bytes: an
 * 8-byte header length that fits the file, then '{'). Unreadable: false. */
bool cnn_weights_is_safetensors(const char *path);
/* Opens `path` as safetensors when its first bytes say so, else as a
 * .caffemodel; errors name the file. */
cnn_status cnn_weights_file_open(const char *path, cnn_weights_file **out);
/* Frees everything open() allocated; accepts NULL. */
void cnn_weights_file_close(cnn_weights_file *f);
/* "safetensors" or "caffemodel". */
const char *cnn_weights_file_kind(const cnn_weights_file *f);
const char *cnn_weights_file_path(const cnn_weights_file *f);
/* Number of tensors, and the name of tensor i (owned by f). */
int cnn_weights_file_count(const cnn_weights_file *f);
const char *cnn_weights_file_name(const cnn_weights_file *f, int i);
/* Index of the tensor called `name`, or -1. */
int cnn_weights_file_find(const cnn_weights_file *f, const char *name);
/* Tensor i as float32: *ndim, shape (room for CNN_MAX_DIMS) and *data (owned
 * by f). A safetensors tensor of another dtype is CNN_ERR_UNSUPPORTED. */
cnn_status cnn_weights_file_get(const cnn_weights_file *f, int i, int *ndim, int *shape,
                                const float **data);

/* Loads a net's parameters from a .safetensors or .caffemodel file (decided
 * by content): every parameter "<layer>.<index>" must be present with a
 * compatible shape unless `partial`, in which case missing ones keep their
 * values; a shape that differs is always an error. Nothing changes on error. */
cnn_status cnn_weights_load_any(cnn_net *n, const char *path, bool partial);

#endif
