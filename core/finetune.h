/* finetune.h — initial weights for fine-tuning: copies parameters into a net
 * by name ("<layer>.<index>") from one or more .safetensors / .caffemodel
 * files, keeps the filler values of parameters that are new, renamed or
 * reshaped, and reports what happened to every parameter and every tensor
 * of the files (the table cnntrain --weights prints). */
#ifndef CNN_FINETUNE_H
#define CNN_FINETUNE_H

#include <stdio.h>

#include "cnn.h"

typedef enum {
    CNN_FT_LOADED,  /* copied from a file */
    CNN_FT_MISSING, /* in no file: keeps its filler values */
    CNN_FT_SHAPE    /* only with another shape: keeps its filler values */
} cnn_ft_status;

/* What happened to one parameter tensor of the net. */
typedef struct cnn_ft_param {
    char *key;   /* "<layer>.<index>" (the first layer owning it) */
    char *layer; /* that layer's name */
    int index;
    cnn_ft_status status;
    int file;    /* LOADED: the file it came from (the last one having it);
                  * SHAPE: a file holding it with another shape; else -1 */
    int file_ndim;
    int file_shape[CNN_MAX_DIMS]; /* SHAPE: the shape in that file */
    int ndim;
    int shape[CNN_MAX_DIMS];      /* the net's shape */
    float lr_mult;
} cnn_ft_param;

/* A tensor of a file that was not copied into the net. */
typedef struct cnn_ft_unused {
    int file;
    char *name;
    char *reason; /* "no layer 'fc8' in the net", "shape 10x500, the net has 5x500", ... */
} cnn_ft_unused;

typedef struct cnn_ft_report {
    int n_files;
    char **files; /* (n_files) paths */
    char **kinds; /* (n_files) "safetensors" or "caffemodel" */
    int *counts;  /* (n_files) tensors per file */
    int n_params;
    cnn_ft_param *param; /* (n_params) in net order */
    int n_unused;
    cnn_ft_unused *unused; /* (n_unused) by file, then file order */
} cnn_ft_report;

/* Loads the files in order (a later file overrides an earlier one) into n:
 * parameters found with a compatible shape (equal once leading 1s are
 * dropped) are copied, the others keep their values. *out (may be NULL)
 * receives the report whenever every file could be read, also when `strict`
 * fails. With `strict`, a parameter that is not loaded or a tensor that is not
 * used is a CNN_ERR_CONFIG error and the net is left unchanged. */
cnn_status cnn_finetune_load(cnn_net *n, const char *const *paths, int n_paths, bool strict,
                             cnn_ft_report **out);
/* The same for a comma-separated list of paths; prints the report as a table
 * to `table` when it is not NULL (before returning a strict error). */
cnn_status cnn_finetune_load_list(cnn_net *n, const char *list, bool strict, FILE *table);
/* Prints the report, one line per layer with parameters, then the unused
 * tensors grouped by layer name. `n` (may be NULL) adds layer types. */
void cnn_ft_report_print(const cnn_ft_report *r, const cnn_net *n, FILE *f);
/* Counts of parameters by status and of unused tensors. */
void cnn_ft_report_counts(const cnn_ft_report *r, int *loaded, int *reinit, int *unused);
void cnn_ft_report_free(cnn_ft_report *r);

#endif
