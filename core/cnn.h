/* cnn.h — the public API of the cnn deep learning framework.
 *
 * A network is read from a Caffe-schema protobuf text file, built into a
 * graph of layers connected by named tensors, and run forward and backward.
 * Every function that can fail returns a cnn_status; on failure the message
 * is available from cnn_error_message(). */
#ifndef CNN_H
#define CNN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- status and errors ------------------------------------------------ */

typedef enum {
    CNN_OK = 0,
    CNN_ERR_ARG,       /* bad argument from the caller */
    CNN_ERR_IO,        /* a file could not be read or written */
    CNN_ERR_PARSE,     /* a model file is not valid protobuf text */
    CNN_ERR_CONFIG,    /* a model file is valid text but wrong for us */
    CNN_ERR_SHAPE,     /* tensor shapes do not fit */
    CNN_ERR_FORMAT,    /* a data or weights file is malformed */
    CNN_ERR_MEMORY,    /* out of memory */
    CNN_ERR_CUDA,      /* a CUDA, cuDNN or cuBLAS call failed */
    CNN_ERR_NUMERIC,   /* NaN or infinity where a number was expected */
    CNN_ERR_UNSUPPORTED /* valid, but not built into this binary */
} cnn_status;

/* The message of the last error set on this thread ("" when none). */
const char *cnn_error_message(void);
/* Source location (file:line in our code) where the last error was set. */
const char *cnn_error_where(void);
/* Sets this thread's error message and returns s. Use through CNN_ERROR. */
cnn_status cnn_error_at(const char *src, int line, cnn_status s, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
#define CNN_ERROR(s, ...) cnn_error_at(__FILE__, __LINE__, (s), __VA_ARGS__)
/* Evaluates a cnn_status expression and jumps to `fail` on error. */
#define CNN_TRY(expr)                                                                   \
    do {                                                                                \
        if ((st = (expr)) != CNN_OK) goto fail;                                         \
    } while (0)

/* ---- tensors ------------------------------------------------------------ */

#define CNN_MAX_DIMS 6

typedef enum { CNN_F32 = 0 } cnn_dtype;
typedef enum { CNN_LAYOUT_NCHW = 0 } cnn_layout;

/* An N-d array of floats with its gradient. Host storage is always present
 * (the CPU path and I/O use it); device copies hang off `dev`. */
typedef struct cnn_tensor {
    char *name;
    int ndim;
    int shape[CNN_MAX_DIMS]; /* (N, C, H, W) for images */
    size_t count;            /* product of shape */
    size_t capacity;         /* floats allocated in data and grad */
    cnn_dtype dtype;
    cnn_layout layout;
    int device;              /* logical device index, 0 for the first */
    float *data;             /* (count) values */
    float *grad;             /* (count) gradient of the loss, same shape */
    void *dev;               /* opaque device storage, NULL on the CPU */
} cnn_tensor;

/* A new empty tensor (count 0) named `name` (copied; may be NULL). */
cnn_tensor *cnn_tensor_create(const char *name);
void cnn_tensor_free(cnn_tensor *t);
/* Gives t a new shape; storage grows when needed, new elements are zero. */
cnn_status cnn_tensor_reshape(cnn_tensor *t, int ndim, const int *shape);
/* Shorthand for a 4-d reshape. */
cnn_status cnn_tensor_reshape4(cnn_tensor *t, int n, int c, int h, int w);
/* Gives t the shape of `like`. */
cnn_status cnn_tensor_reshape_like(cnn_tensor *t, const cnn_tensor *like);
/* Dimension `axis` (negative counts from the end); 1 past the last axis. */
int cnn_tensor_dim(const cnn_tensor *t, int axis);
/* Normalises a possibly negative axis; -1 when out of range. */
int cnn_tensor_axis(const cnn_tensor *t, int axis);
/* Product of dimensions [from, to). */
size_t cnn_tensor_count_range(const cnn_tensor *t, int from, int to);
/* Writes the shape as "10x96x55x55" into buf. */
const char *cnn_tensor_shape_str(const cnn_tensor *t, char *buf, size_t n);
bool cnn_tensor_same_shape(const cnn_tensor *a, const cnn_tensor *b);

/* ---- random numbers ----------------------------------------------------- */

/* xoshiro256** state; seeded from one 64-bit seed for reproducible runs. */
typedef struct cnn_rng {
    uint64_t s[4];
} cnn_rng;

void cnn_rng_seed(cnn_rng *r, uint64_t seed);
uint64_t cnn_rng_next(cnn_rng *r);
/* Uniform in [0, 1). */
double cnn_rng_uniform(cnn_rng *r);
/* Standard normal. */
double cnn_rng_gaussian(cnn_rng *r);
/* Uniform integer in [0, n). */
uint32_t cnn_rng_below(cnn_rng *r, uint32_t n);

/* ---- model files -------------------------------------------------------- */

typedef struct cnn_cfg cnn_cfg; /* a parsed protobuf text tree, see core/config.h */

/* Parses a protobuf text file; errors name file:line:column. */
cnn_status cnn_cfg_parse_file(const char *path, cnn_cfg **out);
/* Parses text held in memory; `name` is used in error messages. */
cnn_status cnn_cfg_parse_string(const char *text, const char *name, cnn_cfg **out);
void cnn_cfg_free(cnn_cfg *c);

/* ---- nets --------------------------------------------------------------- */

typedef enum { CNN_TRAIN = 0, CNN_TEST = 1 } cnn_phase;

typedef struct cnn_net cnn_net;

/* Most logical devices a net may use (model parallelism). */
#define CNN_MAX_DEVICES 16

typedef struct cnn_net_opts {
    cnn_phase phase;
    uint64_t seed;      /* seeds fillers, dropout and data shuffling */
    bool shapes_only;   /* cnninfo: data layers need not open their sources */
    int level;          /* Caffe's NetState level, for include { min_level } */
    /* Logical devices of the run (layers' `device: K` indexes them; a K at or
     * beyond this is an error). 0: as many as the model names (1 + the
     * largest K). */
    int devices;
    /* Where the logical devices run. gpus == 0: all on the CPU. Otherwise
     * logical device k runs on physical GPU gpu[k] (k < gpus; with fewer
     * entries than logical devices the last one repeats, so one entry puts
     * every logical device on one GPU, each with its own stream). */
    int gpus;
    int gpu[CNN_MAX_DEVICES];
    size_t workspace_bytes; /* cuDNN workspace budget per device; 0: default */
    bool deterministic;     /* deterministic cuDNN algorithms only */
    bool cuda_graph;        /* replay cnn_net_forward_backward as a CUDA graph */
} cnn_net_opts;

/* Default options: TRAIN phase, seed 1, devices 0 (as the model asks). */
cnn_net_opts cnn_net_default_opts(void);

/* Builds a net from a model file (the `solver` block, if any, is ignored). */
cnn_status cnn_net_from_file(const char *path, const cnn_net_opts *o, cnn_net **out);
cnn_status cnn_net_from_string(const char *text, const cnn_net_opts *o, cnn_net **out);
/* Builds from a parsed tree; `root` stays owned by the caller. */
cnn_status cnn_net_from_cfg(cnn_cfg *root, const char *file, const cnn_net_opts *o,
                            cnn_net **out);
void cnn_net_free(cnn_net *n);

/* Recomputes all shapes after an input was reshaped. */
cnn_status cnn_net_reshape(cnn_net *n);
/* Runs every layer forward; *loss (may be NULL) gets the weighted loss sum.
 * With several logical devices each device's layers run on a thread of
 * their own, waiting only where they use another device's tensors. */
cnn_status cnn_net_forward(cnn_net *n, float *loss);
/* Runs every layer backward, accumulating parameter gradients. */
cnn_status cnn_net_backward(cnn_net *n);
/* cnn_net_forward (no loss) then cnn_net_backward: a training step after
 * cnn_net_zero_grads. With opts.cuda_graph on a GPU net, the GPU part is
 * recorded as a CUDA graph at the second call and replayed after
 * (docs/cuda.md); the results are the same. */
cnn_status cnn_net_forward_backward(cnn_net *n);
/* The CUDA graph's status: "replayed", "not recorded yet", "not asked
 * for", or why the net runs without one. */
const char *cnn_net_graph_note(const cnn_net *n);
/* Whether the net runs on GPUs (opts.gpus > 0). */
bool cnn_net_on_gpu(const cnn_net *n);
/* Makes every parameter and every blob current on the host (downloads what
 * the GPU changed and waits); call before reading tensors' data or grad
 * from the host. No-op on the CPU. */
cnn_status cnn_net_sync_host(cnn_net *n);
/* Says host code has written parameters' data (weights loaded, copied,
 * re-initialised): the device copies are refreshed before their next use.
 * No-op on the CPU. */
void cnn_net_params_changed(cnn_net *n);
/* Sets every parameter gradient to zero. */
void cnn_net_zero_param_grads(cnn_net *n);

const char *cnn_net_name(const cnn_net *n);
cnn_phase cnn_net_phase(const cnn_net *n);
/* The blob called `name`, or NULL. */
cnn_tensor *cnn_net_blob(const cnn_net *n, const char *name);
/* Parameter `idx` of layer `layer`, or NULL. */
cnn_tensor *cnn_net_param(const cnn_net *n, const char *layer, int idx);

/* Learnable parameters: unique tensors (shared ones appear once). */
typedef struct cnn_param_info {
    cnn_tensor *tensor;
    const char *layer; /* owning layer's name */
    int index;         /* blob index within that layer */
    float lr_mult, decay_mult;
    int device;        /* logical device of the owning layer (and its history) */
} cnn_param_info;
int cnn_net_num_params(const cnn_net *n);
const cnn_param_info *cnn_net_param_info(const cnn_net *n, int i);

/* Logical devices the net runs on (1 without model parallelism). */
int cnn_net_num_devices(const cnn_net *n);

/* Layers, in execution order (including inserted splits and copies). */
int cnn_net_num_layers(const cnn_net *n);
const char *cnn_net_layer_name(const cnn_net *n, int i);
const char *cnn_net_layer_type(const cnn_net *n, int i);
int cnn_net_layer_num_tops(const cnn_net *n, int i);
cnn_tensor *cnn_net_layer_top(const cnn_net *n, int i, int t);
int cnn_net_layer_num_bottoms(const cnn_net *n, int i);
cnn_tensor *cnn_net_layer_bottom(const cnn_net *n, int i, int b);
/* Parameters owned by layer i (including shared ones). */
int cnn_net_layer_num_params(const cnn_net *n, int i);
cnn_tensor *cnn_net_layer_param(const cnn_net *n, int i, int p);
/* Forward multiply-adds x2 of layer i for the current shapes. */
double cnn_net_layer_flops(const cnn_net *n, int i);
/* The logical device layer i runs on. */
int cnn_net_layer_device(const cnn_net *n, int i);
/* Runs layer i alone: forward (after its reshape), or backward as planned. */
cnn_status cnn_net_layer_forward(cnn_net *n, int i);
cnn_status cnn_net_layer_backward(cnn_net *n, int i);
/* Backward of layer i into every bottom, whatever the plan (gradient checks). */
cnn_status cnn_net_layer_backward_all(cnn_net *n, int i);

/* The generator behind fillers and dropout (saved in solver snapshots). */
cnn_rng *cnn_net_rng(cnn_net *n);
/* Makes every data layer produce batch number `batch` next (for resume). */
cnn_status cnn_net_seek_data(cnn_net *n, uint64_t batch);
/* Samples in one epoch of the first data layer (0 when it has none). */
size_t cnn_net_data_samples(const cnn_net *n);
/* Seconds the net's forward passes have waited for data loaders. */
double cnn_net_data_wait_seconds(const cnn_net *n);
/* Copies parameter values into `dst` from the layers of `src` with the same
 * names (Caffe's test net sharing the train net's weights). */
cnn_status cnn_net_copy_params(cnn_net *dst, const cnn_net *src);

/* Blobs the net reads from outside (Input layers, input: header). */
int cnn_net_num_inputs(const cnn_net *n);
cnn_tensor *cnn_net_input(const cnn_net *n, int i);
/* Blobs no layer consumes (outputs). */
int cnn_net_num_outputs(const cnn_net *n);
cnn_tensor *cnn_net_output(const cnn_net *n, int i);

/* ---- input preprocessing ------------------------------------------------ */

#define CNN_MAX_MEAN 4

/* Caffe's transform_param: y = (x - mean[c]) * scale on 0..255 pixels, after
 * an optional crop (random at train time, centred at test) and mirror. */
typedef struct cnn_transform {
    float scale;               /* 1 when absent */
    int n_mean;                /* 0, 1 (all channels) or one per channel */
    float mean[CNN_MAX_MEAN];
    int crop_size;             /* 0: no crop */
    bool mirror;
    int resize_shorter;        /* extension: shorter side resized to this before
                                  the crop (for an Input layer: the tools resize
                                  so, then take the centre); 0: no */
} cnn_transform;

/* The transform_param of the layer that produces input blob `blob` (an
 * Input layer may carry one for tools such as cnnclassify). False if none. */
bool cnn_net_input_transform(const cnn_net *n, const char *blob, cnn_transform *out);

/* ---- weights ------------------------------------------------------------ */

/* Saves every parameter (and BatchNorm statistics) as safetensors, keyed
 * "<layer>.<index>"; written to a temporary file and renamed into place. */
cnn_status cnn_weights_save(const cnn_net *n, const char *path);
/* Loads parameters by name; every tensor in the net must be present with the
 * same shape unless `partial`, in which case missing ones are left alone. */
cnn_status cnn_weights_load(cnn_net *n, const char *path, bool partial);

#ifdef __cplusplus
}
#endif
#endif
