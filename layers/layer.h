/* layer.h — the interface every layer type implements, and the helpers
 * layers share (parameters, fillers). Internal to the library. */
#ifndef CNN_LAYER_H
#define CNN_LAYER_H

#include "../core/cnn.h"
#include "../core/config.h"

typedef struct cnn_layer cnn_layer;

/* How a parameter blob is initialised (Caffe's FillerParameter). */
typedef enum {
    CNN_FILL_CONSTANT,
    CNN_FILL_UNIFORM,
    CNN_FILL_GAUSSIAN,
    CNN_FILL_XAVIER,
    CNN_FILL_MSRA,
    CNN_FILL_BILINEAR
} cnn_filler_type;

typedef enum { CNN_NORM_FAN_IN, CNN_NORM_FAN_OUT, CNN_NORM_AVERAGE } cnn_variance_norm;

typedef struct cnn_filler {
    cnn_filler_type type;
    float value, min, max, mean, std;
    cnn_variance_norm variance_norm;
} cnn_filler;

/* Reads a filler message `key` from m (absent: constant `def_value`). */
cnn_status cnn_filler_parse(cnn_cfg *m, const char *key, float def_value, cnn_filler *out);
/* Fills t; fan-in is count/shape[0], fan-out count/shape[1]. */
void cnn_filler_fill(const cnn_filler *f, cnn_tensor *t, cnn_rng *rng);

/* Reads the loader fields of a data layer's parameter message p (Data,
 * ImageData): `threads` (default: one per usable CPU, at most 8) and
 * `prefetch` (default: 4, or `threads` when more), checked. */
cnn_status cnn_data_loader_fields(cnn_cfg *p, int *threads, int *prefetch);

/* A layer type: a table of functions registered under Caffe's type name. */
typedef struct cnn_layer_type {
    const char *name;
    int min_bottoms, max_bottoms; /* -1: no upper bound */
    int min_tops, max_tops;
    bool is_loss;                 /* top[0] gets loss_weight 1 by default */
    /* Reads `<type>_param` from cfg (the whole layer message) into l->priv.
     * Fields it does not read are reported as errors by the net. */
    cnn_status (*setup)(cnn_layer *l, cnn_cfg *cfg);
    /* Bottom shapes are known: set top shapes, create parameters. */
    cnn_status (*reshape)(cnn_layer *l);
    cnn_status (*forward)(cnn_layer *l);
    /* Writes (overwrites) bottom grads where l->propagate_down[i]; adds to
     * parameter grads. NULL for layers with no gradient. */
    cnn_status (*backward)(cnn_layer *l);
    void (*destroy)(cnn_layer *l); /* frees l->priv; NULL: plain free */
    double (*flops)(const cnn_layer *l); /* forward FLOPs; NULL: 0 */
    /* Data layers: make the next forward produce batch number `batch` (counted
     * from 0 over the whole run), so a resumed run sees the same data. */
    cnn_status (*seek)(cnn_layer *l, uint64_t batch);
    /* The GPU path (core/gpu.h, kernels/cuda_ops.h), used when l->cuda is
     * set; same contract as forward/backward, on device copies, queued on
     * l->cuda's stream without host waits. NULL: the net runs the CPU
     * functions on host copies instead (data layers, or types without one). */
    cnn_status (*forward_gpu)(cnn_layer *l);
    cnn_status (*backward_gpu)(cnn_layer *l);
    /* GPU path, TRAIN: host work each forward pass needs first, queued so
     * that forward_gpu reads it from device memory (Dropout draws its seed
     * and uploads it). The net calls it before the GPU passes of a CUDA
     * graph step, outside the recording, so that every replay reads a fresh
     * value; forward_gpu calls it itself when it was not called for this
     * pass. NULL: none. */
    cnn_status (*pass_begin_gpu)(cnn_layer *l);
    /* GPU path: reports an input error its ops found on the device since
     * the last call (a bad label), reading it back (a host wait). The net
     * calls it where the loss or outputs are read back anyway. NULL: none. */
    cnn_status (*check_gpu)(cnn_layer *l);
} cnn_layer_type;

/* A parameter as the model file declares it: param { name lr_mult decay_mult } */
typedef struct cnn_param_spec {
    char *name; /* sharing key, or NULL */
    float lr_mult, decay_mult;
} cnn_param_spec;

#define CNN_MAX_LAYER_PARAMS 8

struct cnn_layer {
    const cnn_layer_type *type;
    char *name;
    cnn_net *net;
    cnn_phase phase;
    cnn_rng *rng; /* the net's generator (fillers, dropout) */
    int n_bottom, n_top;
    cnn_tensor **bottom, **top;
    bool *propagate_down; /* per bottom: compute its gradient */
    float *loss_weight;   /* per top */
    int n_param;
    cnn_tensor *param[CNN_MAX_LAYER_PARAMS];
    cnn_param_spec spec[CNN_MAX_LAYER_PARAMS]; /* from the model file */
    int n_spec;
    bool need_backward;
    bool shapes_only; /* cnninfo: do not open data sources */
    int device;
    /* The CUDA context of the layer's logical device on a GPU net, NULL on
     * the CPU. Set before reshape: reshape plans device work (cuDNN, device
     * scratch buffers in priv, freed by destroy) when it is set. */
    struct cnn_cuda_ctx *cuda;
    void *priv;
};

/* Parameter `idx` of l with the given shape: created and filled the first
 * time (or taken from another layer sharing its name), checked afterwards.
 * Parameters must be declared in index order. */
cnn_status cnn_layer_param(cnn_layer *l, int idx, int ndim, const int *shape,
                           const cnn_filler *f, cnn_tensor **out);
/* Allocates zeroed priv of `size` bytes. */
cnn_status cnn_layer_alloc_priv(cnn_layer *l, size_t size);
/* Device pointers of a one-bottom, one-top layer's GPU pass: bottom data
 * read and top data written; with `grad`, top grad read and bottom grad
 * written. In place, one read-write pointer serves both. */
cnn_status cnn_layer_gpu_io(cnn_layer *l, bool grad, const float **in, float **out);
/* Gives a layer's own tensor t (attached to l->cuda), which the host writes
 * every pass, an upload path through pinned memory and the device's copy
 * stream, as the net gives its inputs (core/gpu.h, cnn_tensor_stream). */
cnn_status cnn_layer_feed(cnn_layer *l, cnn_tensor *t);
/* Error naming the layer: "layer 'conv1' (Convolution): ...". */
cnn_status cnn_layer_error(const cnn_layer *l, cnn_status s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The registry: every type, looked up by Caffe name. */
const cnn_layer_type *cnn_layer_type_find(const char *name);
/* NULL-terminated list of all registered types. */
const cnn_layer_type *const *cnn_layer_types(void);

#endif
