/* dataset.h — the sample sets data layers read from: IDX files (MNIST,
 * Fashion-MNIST; raw or gzip), CIFAR-10 binary batches, and image list
 * files ("path label" lines) or folders of class folders. IDX and CIFAR sets
 * are read into memory once; a list set holds paths, decoded on demand by
 * the loader threads. */
#ifndef CNN_DATASET_H
#define CNN_DATASET_H

#include "cnn.h"

typedef enum {
    CNN_DATASET_MEMORY, /* every sample's pixels in `pixels` */
    CNN_DATASET_LIST    /* image files in `paths` */
} cnn_dataset_kind;

typedef struct cnn_dataset {
    cnn_dataset_kind kind;
    char *source;        /* what it was read from, for messages */
    size_t n;            /* number of samples */
    int c, h, w;         /* sample shape of a memory set (0 for lists) */
    uint8_t *pixels;     /* (n, c, h, w) for memory sets, else NULL */
    int *labels;         /* (n), or NULL when the set has no labels */
    char **paths;        /* (n) image files of a list set, root folder applied */
    int *lines;          /* (n) list-file line of each path */
    int num_classes;     /* labels are < num_classes; 0 when unknown */
    char **class_names;  /* (num_classes) sub-folder names of a folder set, else NULL */
} cnn_dataset;

/* Reads only the header of an IDX file: *ndim and dims[0..ndim) (ndim <= 4).
 * Works on raw and gzip files. */
cnn_status cnn_idx_header(const char *path, int *ndim, int dims[4]);
/* Reads an idx3 unsigned-byte image file (N, H, W) and, when `labels` is
 * not NULL, an idx1 unsigned-byte label file with the same count. */
cnn_status cnn_dataset_load_idx(const char *images, const char *labels, cnn_dataset **out);
/* Reads CIFAR-10 binary batches (records of 1 label byte + 3x32x32 pixels,
 * planes R, G, B). `source` is one file or a glob(7) pattern naming several,
 * read in sorted order. */
cnn_status cnn_dataset_load_cifar(const char *source, cnn_dataset **out);
/* Reads a list file of "path label" lines (split at the last blank, so paths
 * may contain spaces; empty lines and lines starting with '#' are skipped).
 * Paths are prefixed by root_folder (a '/' is added when it lacks one); when
 * root_folder is NULL or "" a relative path that does not exist from the
 * working directory is taken relative to the list file's folder. With
 * `check_files`, every image must be readable; errors name "list:line". */
cnn_status cnn_dataset_load_list(const char *list, const char *root_folder, bool check_files,
                                 cnn_dataset **out);
/* Reads a folder holding one sub-folder per class (hidden entries skipped):
 * class k is the k-th sub-folder in sorted (byte) order, its images the
 * .png / .jpg / .jpeg files (any case) under it, sorted, sub-folders
 * included. Class names are kept in class_names; `lines` are 0. An empty
 * class folder, or none at all, is an error. */
cnn_status cnn_dataset_load_folder(const char *dir, bool check_files, cnn_dataset **out);
/* A folder set when `source` is a folder (root_folder must then be empty),
 * else a list file as cnn_dataset_load_list. */
cnn_status cnn_dataset_load_images(const char *source, const char *root_folder,
                                   bool check_files, cnn_dataset **out);
/* Writes the class names of a folder set, one per line (line k = class k). */
cnn_status cnn_dataset_write_labels(const cnn_dataset *d, const char *path);
/* True when path names a folder (symbolic links followed). */
bool cnn_path_is_dir(const char *path);
void cnn_dataset_free(cnn_dataset *d);

/* Writes the first `count` samples (all when 0 or more than n) of a memory
 * set with labels as PNG files outdir/00000.png, ... (created if missing)
 * and outdir/list.txt with "relative/path label" lines, ready for an
 * ImageData layer. With class `names` (n_names of them), image i goes to
 * outdir/<name of its label>/ (blanks and '/' in names become '_'). */
cnn_status cnn_dataset_export_png(const cnn_dataset *d, const char *outdir, size_t count,
                                  const char *const *names, int n_names);

#endif
