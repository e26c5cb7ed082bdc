/* vis.h — looking inside a trained net: the gradient of class scores with
 * respect to the input (cnn_input_gradient), Simonyan et al.'s image-specific
 * saliency maps and class model visualisation, Zeiler and Fergus's occlusion
 * sensitivity, and what the visualisation and adversarial tools share: finding
 * the class-score blob, re-running a net from a modified input, and reading
 * labelled samples from a model's data layer or from image files. */
#ifndef CNN_VIS_H
#define CNN_VIS_H

#include "cnn.h"
#include "image.h"

/* Index of the last layer that writes t (-1 when no layer does). */
int cnn_vis_writer(const cnn_net *n, const cnn_tensor *t);

/* Runs forward every layer after the last one that writes `input`, so values
 * the caller wrote into an input (or a data layer's top) reach the outputs
 * without a data layer loading the next batch. Reshapes those layers first. */
cnn_status cnn_vis_forward_from(cnn_net *n, const cnn_tensor *input);

/* The class-score blob (pre-softmax scores, (N, C)): the blob called `name`
 * when given; otherwise the bottom of the Softmax that writes the net's
 * output ("prob" when there are several), else bottom 0 of the first
 * SoftmaxWithLoss or Accuracy layer, else the only output. */
cnn_status cnn_vis_find_scores(const cnn_net *n, const char *name, cnn_tensor **out);

/* The image input blob: the blob called `name` when given, else the net's
 * first Input blob, else top 0 of the first data layer (a layer with no
 * bottoms that is not an Input). Must be (N, C, H, W). */
cnn_status cnn_vis_find_input(const cnn_net *n, const char *name, cnn_tensor **out);

/* The gradient of sum_i score_grad[i] * score[i] with respect to the blob
 * `input_blob`, into grad (the input's count; NULL: left in the input's
 * grad). score_grad has the score blob's count; NULL means one-hot at each
 * sample's arg-max class (the gradient of the top class score). The caller
 * must have run the net forward on the current input. Only the layers on a
 * path from the input to the scores run backward, bottoms not reached from
 * the input get no gradient, and no model option (force_backward) is needed.
 * Parameter gradients are left at zero. */
cnn_status cnn_input_gradient(cnn_net *n, const char *score_blob, const float *score_grad,
                              const char *input_blob, float *grad);

/* Softmax of each of the n rows of k scores into p (may equal scores). */
void cnn_vis_softmax(const float *scores, int n, int k, float *p);
/* Index of the largest of k values (the first on ties). */
int cnn_vis_argmax(const float *v, int k);

/* Simonyan et al.'s saliency: runs the net forward on the current input,
 * then map[s] (H x W per sample) = max over channels of |d score[s][cls[s]]
 * / d input[s]|. cls may be NULL: each sample's predicted class. */
cnn_status cnn_vis_saliency(cnn_net *n, const char *input, const char *scores, const int *cls,
                            float *map);

typedef struct cnn_classmodel_opts {
    int iterations; /* gradient-ascent steps */
    float lr;       /* step size */
    float l2;       /* lambda of the L2 penalty lambda * ||x||^2 */
    const float *lo, *hi; /* per-channel clip range in input units, or NULL */
} cnn_classmodel_opts;

/* Simonyan et al.'s class model: starting from the current input values
 * (zero is the mean image), x += lr * (d score[cls] / dx - 2 l2 x) for every
 * sample, each towards its class cls[s]. score_first / score_last (per
 * sample, may be NULL) get the class score before the first and after the
 * last step. */
cnn_status cnn_vis_class_model(cnn_net *n, const char *input, const char *scores, const int *cls,
                               const cnn_classmodel_opts *o, float *score_first,
                               float *score_last);

typedef struct cnn_occlusion_opts {
    int patch, stride;  /* square side and step, pixels */
    const float *fill;  /* per channel, input units (grey = (128 - mean) * scale) */
} cnn_occlusion_opts;

/* Zeiler and Fergus's occlusion sensitivity for one image (C, H, W in input
 * units): a fill-coloured patch slides over the image (positions every
 * `stride` pixels, plus the last one flush with the right and bottom edges),
 * and map (H x W) gets, at each pixel, the mean probability of class `cls`
 * over the patches covering it. The net's input batch is filled with
 * occluded copies, as many per forward pass as its N. *prob gets the
 * unoccluded probability (may be NULL). */
cnn_status cnn_vis_occlusion(cnn_net *n, const char *input, const char *scores,
                             const float *image, int cls, const cnn_occlusion_opts *o,
                             float *map, float *prob);

/* ---- samples: a model's data layer, or image files ------------------------ */

typedef struct cnn_samples cnn_samples;

/* Samples from the data layer that writes `input` (the net built from the
 * model file `model` in `phase`, for its transform_param); labels from that
 * layer's second top. batches: how many batches (0: one pass over the data
 * set, the last batch cut short). */
cnn_status cnn_samples_from_net(cnn_net *n, const char *model, cnn_phase phase,
                                const cnn_tensor *input, long batches, cnn_samples **out);
/* Samples from image files (PNG/JPEG), preprocessed with the transform_param
 * of the Input layer writing `input` (identity if none), `batch` per pass;
 * labels (count values, may be NULL: unknown) are copied. */
cnn_status cnn_samples_from_files(cnn_net *n, cnn_tensor *input, char *const *files,
                                  const int *labels, int count, int batch, bool bgr,
                                  cnn_samples **out);
/* Loads the next batch into the input (its N is reduced for a short last
 * batch of files) and gives *count samples (0 at the end), their labels (-1:
 * unknown; labels has room for the input's N) and *first, the index of the
 * batch's first sample in the run. Files that cannot be read are errors. */
cnn_status cnn_samples_next(cnn_samples *s, int *count, int *labels, size_t *first);
/* The file of sample i, or NULL when samples come from a data layer. */
const char *cnn_samples_file(const cnn_samples *s, size_t i);
/* input = (pixel - mean[c]) * scale for the samples' channels. */
const cnn_transform *cnn_samples_transform(const cnn_samples *s);
void cnn_samples_free(cnn_samples *s);

/* The transform_param of the layer called `layer` in model file `model` that
 * is active in `phase` (identity, and false, when it has none). */
cnn_status cnn_vis_model_transform(const char *model, const char *layer, cnn_phase phase,
                                   cnn_transform *out, bool *found);

/* Per-channel input values of pixels 0 and 255 under t (c channels; t may be
 * NULL: identity), lo <= hi. */
void cnn_vis_pixel_bounds(const cnn_transform *t, int c, float *lo, float *hi);
/* Input values (c, h, w) back to 8-bit pixels (h, w, c): x / scale + mean,
 * rounded and clamped; channels reversed when `bgr`. *out is allocated. */
cnn_status cnn_vis_to_image(const float *x, int c, int h, int w, const cnn_transform *t,
                            bool bgr, cnn_image *out);

/* ---- file lists ---------------------------------------------------------- */

/* The image files named by args: files as given, a directory as its *.png,
 * *.jpg and *.jpeg files (case-insensitive, sorted, not recursive). *files
 * (free with cnn_vis_free_files) gets *count paths; a missing path or an
 * empty directory is an error naming it. */
cnn_status cnn_vis_image_args(char *const *args, int n, char ***files, int *count);
/* Reads an image list, one "path label" per line as Caffe's ImageData
 * source (the label is the last field; blank lines skipped); paths are
 * prefixed with root when given. Errors name list:line. */
cnn_status cnn_vis_read_list(const char *path, const char *root, char ***files, int **labels,
                             int *count);
/* Reads class names, one per line (trailing blanks removed). */
cnn_status cnn_vis_read_names(const char *path, char ***names, int *count);
void cnn_vis_free_files(char **files, int count);

#endif
