/* cuda_ops.h — the ops of kernels.h on CUDA device pointers.
 *
 * Every op takes a context (device, stream, cuBLAS and cuDNN handles, a
 * workspace under a user-set byte budget), runs on the context's stream and
 * returns without waiting for the device: results are ready after
 * cnn_cuda_ctx_sync() or for later work on the same stream. Ops never
 * allocate device memory; scalar results (losses, counts, dot products) are
 * written to device memory so that a training step needs no host sync.
 * Semantics are those of the CPU op of the same name in kernels.h.
 *
 * In a build without CUDA (kernels/nocuda.c) every function here returns
 * CNN_ERR_UNSUPPORTED ("built without CUDA") and creates nothing. */
#ifndef CNN_CUDA_OPS_H
#define CNN_CUDA_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/cnn.h"

#ifdef __cplusplus
extern "C" {
#endif

#include "kernels.h"

/* ---- context (kernels/cuda/context.cu) ---------------------------------- */

typedef struct cnn_cuda_ctx cnn_cuda_ctx;

/* Default cuDNN workspace budget in bytes (cnn_cuda_ctx_set_workspace_limit). */
#define CNN_CUDA_DEFAULT_WORKSPACE ((size_t)256 << 20)

/* A context on physical device `device` with its own non-blocking stream.
 * CNN_CUDA_SYNC=1 in the environment turns on the debug mode (a stream
 * synchronisation and error check after every launch). */
cnn_status cnn_cuda_ctx_create(int device, cnn_cuda_ctx **out);
/* A context for copies and events only: a non-blocking stream of its own on
 * `device`, no cuBLAS or cuDNN handle (library ops on it fail). Nets upload
 * input batches on one, so that the copy overlaps the compute stream. */
cnn_status cnn_cuda_copy_ctx_create(int device, cnn_cuda_ctx **out);
void cnn_cuda_ctx_free(cnn_cuda_ctx *ctx);
int cnn_cuda_ctx_device(const cnn_cuda_ctx *ctx);
/* Makes the context's device current on the calling thread (ops assume it). */
cnn_status cnn_cuda_ctx_use(cnn_cuda_ctx *ctx);
/* The context's cudaStream_t, as a void pointer for C callers. */
void *cnn_cuda_ctx_stream(const cnn_cuda_ctx *ctx);
/* Waits for all work on the stream; reports any asynchronous error. */
cnn_status cnn_cuda_ctx_sync(cnn_cuda_ctx *ctx);
/* Largest workspace (bytes) a convolution algorithm may use; applies to
 * convolutions planned afterwards. */
void cnn_cuda_ctx_set_workspace_limit(cnn_cuda_ctx *ctx, size_t bytes);
size_t cnn_cuda_ctx_workspace_limit(const cnn_cuda_ctx *ctx);
/* Bytes of workspace now allocated (grown by cnn_cuda_conv_create). */
size_t cnn_cuda_ctx_workspace_size(const cnn_cuda_ctx *ctx);
/* Only deterministic cuDNN algorithms for convolutions planned afterwards. */
void cnn_cuda_ctx_set_deterministic(cnn_cuda_ctx *ctx, bool on);
bool cnn_cuda_ctx_deterministic(const cnn_cuda_ctx *ctx);
/* Allows TF32 tensor-core math in cuBLAS and cuDNN (off by default: plain
 * fp32 FMA, the precision of the CPU path). */
cnn_status cnn_cuda_ctx_set_tf32(cnn_cuda_ctx *ctx, bool on);
/* Whether the debug mode (sync after each launch) is on; settable. */
void cnn_cuda_ctx_set_sync_debug(cnn_cuda_ctx *ctx, bool on);
bool cnn_cuda_ctx_sync_debug(const cnn_cuda_ctx *ctx);

/* ---- memory, outside the hot path (kernels/cuda/context.cu) ------------- */

cnn_status cnn_cuda_malloc(cnn_cuda_ctx *ctx, size_t bytes, void **out);
void cnn_cuda_free(cnn_cuda_ctx *ctx, void *p); /* accepts NULL */
/* Page-locked host memory for asynchronous copies. */
cnn_status cnn_cuda_malloc_host(size_t bytes, void **out);
void cnn_cuda_free_host(void *p); /* accepts NULL */
/* Copies on the context's stream (asynchronous for pinned host memory). */
cnn_status cnn_cuda_upload(cnn_cuda_ctx *ctx, void *dev, const void *host, size_t bytes);
cnn_status cnn_cuda_download(cnn_cuda_ctx *ctx, void *host, const void *dev, size_t bytes);
cnn_status cnn_cuda_copy_bytes(cnn_cuda_ctx *ctx, void *dst, const void *src, size_t bytes);

/* ---- events and copies between contexts (kernels/cuda/context.cu) ------- */

typedef struct cnn_cuda_event cnn_cuda_event;

/* An event on ctx's device; `timing` enables cnn_cuda_event_elapsed. */
cnn_status cnn_cuda_event_create(cnn_cuda_ctx *ctx, bool timing, cnn_cuda_event **out);
void cnn_cuda_event_free(cnn_cuda_event *e); /* accepts NULL */
/* Records e on ctx's stream (any host thread may call this). */
cnn_status cnn_cuda_event_record(cnn_cuda_ctx *ctx, cnn_cuda_event *e);
/* Makes the host wait until the work before e's last record has finished
 * (an event never recorded is complete). */
cnn_status cnn_cuda_event_sync(const cnn_cuda_event *e);
/* Makes ctx's stream wait for e (no host wait); e may be another device's. */
cnn_status cnn_cuda_wait_event(cnn_cuda_ctx *ctx, const cnn_cuda_event *e);
/* Milliseconds between two recorded timing events; waits for `end`. */
cnn_status cnn_cuda_event_elapsed(const cnn_cuda_event *start, const cnn_cuda_event *end,
                                  float *ms);
/* ---- CUDA graphs (kernels/cuda/context.cu) --------------------------------
 * Work queued once and replayed with one launch. Recording starts on ctx's
 * stream in relaxed mode: other threads may queue onto streams that joined
 * it through event waits, which must rejoin it before the end. Nothing
 * queued while recording runs then; host waits and allocations are errors
 * (they invalidate the recording, reported by cnn_cuda_graph_end). */
typedef struct cnn_cuda_graph cnn_cuda_graph;
cnn_status cnn_cuda_graph_begin(cnn_cuda_ctx *ctx);
/* Ends the recording (always call it after a begin) and instantiates it:
 * *out is the graph, or NULL with an error saying why it cannot be. */
cnn_status cnn_cuda_graph_end(cnn_cuda_ctx *ctx, cnn_cuda_graph **out);
cnn_status cnn_cuda_graph_launch(cnn_cuda_ctx *ctx, const cnn_cuda_graph *g);
void cnn_cuda_graph_free(cnn_cuda_graph *g); /* accepts NULL */

/* Lets dst's device read and write src's memory directly where the hardware
 * allows (no-op for the same device); false in *peer when it does not. */
cnn_status cnn_cuda_enable_peer(cnn_cuda_ctx *dst, cnn_cuda_ctx *src, bool *peer);
/* Copies bytes from src_ctx's device memory to dst_ctx's, queued on dst_ctx's
 * stream (a peer copy across GPUs, a plain one on the same GPU). The caller
 * orders it after src's producer with an event. */
cnn_status cnn_cuda_copy_peer(cnn_cuda_ctx *dst_ctx, void *dst, cnn_cuda_ctx *src_ctx,
                              const void *src, size_t bytes);

/* ---- BLAS-like (kernels/cuda/blas.cu), row-major like kernels.h ---------- */

cnn_status cnn_cuda_gemm(cnn_cuda_ctx *ctx, bool ta, bool tb, int m, int n, int k,
                         float alpha, const float *a, const float *b, float beta, float *c);
cnn_status cnn_cuda_gemv(cnn_cuda_ctx *ctx, bool ta, int m, int n, float alpha,
                         const float *a, const float *x, float beta, float *y);
cnn_status cnn_cuda_axpy(cnn_cuda_ctx *ctx, size_t n, float alpha, const float *x, float *y);
cnn_status cnn_cuda_scale(cnn_cuda_ctx *ctx, size_t n, float alpha, float *x);
cnn_status cnn_cuda_set(cnn_cuda_ctx *ctx, size_t n, float value, float *x);
cnn_status cnn_cuda_copy(cnn_cuda_ctx *ctx, size_t n, const float *x, float *y);
cnn_status cnn_cuda_add(cnn_cuda_ctx *ctx, size_t n, const float *a, const float *b, float *y);
/* out[i] = num[i] / max(den[i], lo), one correctly rounded division as on
 * the CPU (normalisers: a count of at least 1, so 0 / 0 gives 0). */
cnn_status cnn_cuda_div(cnn_cuda_ctx *ctx, size_t n, const float *num, const float *den,
                        float lo, float *out);
/* *out (device) = sum x*y / sum |x|, accumulated in double, deterministic. */
cnn_status cnn_cuda_dot(cnn_cuda_ctx *ctx, size_t n, const float *x, const float *y,
                        float *out);
cnn_status cnn_cuda_asum(cnn_cuda_ctx *ctx, size_t n, const float *x, float *out);

/* ---- convolution through cuDNN (kernels/cuda/conv.cu) ------------------- */

typedef struct cnn_cuda_conv_desc {
    int n, c, h, w;   /* input (N, C, H, W) */
    int o;            /* output channels */
    int kh, kw, ph, pw, sh, sw, dh, dw;
    int group;        /* weights are (O, C/group, kh, kw) */
} cnn_cuda_conv_desc;

typedef struct cnn_cuda_conv cnn_cuda_conv;

/* Plans a convolution: descriptors, and the fastest algorithm of each
 * direction that fits the workspace budget (deterministic ones only in
 * deterministic mode), found once per shape with cuDNN's Find API and
 * cached in the context. Grows the context's workspace; call at reshape. */
cnn_status cnn_cuda_conv_create(cnn_cuda_ctx *ctx, const cnn_cuda_conv_desc *d,
                                cnn_cuda_conv **out);
void cnn_cuda_conv_free(cnn_cuda_conv *cv);
/* Output height and width of a planned convolution. */
void cnn_cuda_conv_out_size(const cnn_cuda_conv *cv, int *oh, int *ow);
/* Checks a descriptor (CNN_ERR_ARG for bad fields, CNN_ERR_SHAPE when the
 * dilated kernel exceeds the padded input) and gives the output size (either
 * pointer may be NULL); kernels/cpu/conv_desc.c, so that builds without
 * CUDA and the emulator have it too. */
cnn_status cnn_cuda_conv_desc_check(const cnn_cuda_conv_desc *d, int *oh, int *ow);
/* A one-line description of the chosen algorithms and their workspace. */
const char *cnn_cuda_conv_describe(const cnn_cuda_conv *cv, char *buf, size_t n);
/* y = conv(x, w) (+ bias[o] when bias is not NULL); y overwritten. */
cnn_status cnn_cuda_conv_forward(cnn_cuda_ctx *ctx, const cnn_cuda_conv *cv, const float *x,
                                 const float *w, const float *bias, float *y);
/* dx = the adjoint of the convolution applied to dy (overwritten). */
cnn_status cnn_cuda_conv_backward_data(cnn_cuda_ctx *ctx, const cnn_cuda_conv *cv,
                                       const float *w, const float *dy, float *dx);
/* dw (+)= d conv / d w applied to dy. */
cnn_status cnn_cuda_conv_backward_filter(cnn_cuda_ctx *ctx, const cnn_cuda_conv *cv,
                                         const float *x, const float *dy, bool accumulate,
                                         float *dw);
/* db[o] (+)= sum of dy over n, h, w. */
cnn_status cnn_cuda_conv_backward_bias(cnn_cuda_ctx *ctx, const cnn_cuda_conv *cv,
                                       const float *dy, bool accumulate, float *db);

/* ---- pooling, LRN (kernels/cuda/pool.cu, lrn.cu): Caffe's rules --------- */

cnn_status cnn_cuda_maxpool_fwd(cnn_cuda_ctx *ctx, const cnn_k_pool_geom *g, const float *x,
                                float *y, int *argmax, float *mask);
cnn_status cnn_cuda_maxpool_bwd(cnn_cuda_ctx *ctx, const cnn_k_pool_geom *g, const float *dy,
                                const int *argmax, float *dx);
cnn_status cnn_cuda_avepool_fwd(cnn_cuda_ctx *ctx, const cnn_k_pool_geom *g, const float *x,
                                float *y);
cnn_status cnn_cuda_avepool_bwd(cnn_cuda_ctx *ctx, const cnn_k_pool_geom *g, const float *dy,
                                float *dx);
/* scale (same shape as x) is kept for the backward pass; no workspace.
 * Unlike the point-wise ops, dx must not alias dy. */
cnn_status cnn_cuda_lrn_fwd(cnn_cuda_ctx *ctx, const cnn_k_lrn_desc *d, const float *x,
                            float *scale, float *y);
cnn_status cnn_cuda_lrn_bwd(cnn_cuda_ctx *ctx, const cnn_k_lrn_desc *d, const float *x,
                            const float *scale, const float *dy, float *dx);

/* ---- activations, dropout (kernels/cuda/activation.cu) ------------------ */

cnn_status cnn_cuda_relu_forward(cnn_cuda_ctx *ctx, size_t n, float slope, const float *x,
                                 float *y);
cnn_status cnn_cuda_relu_backward(cnn_cuda_ctx *ctx, size_t n, float slope, const float *x,
                                  const float *dy, float *dx);
cnn_status cnn_cuda_prelu_forward(cnn_cuda_ctx *ctx, int n, int c, size_t dim,
                                  const float *slope, bool shared, const float *x, float *y);
cnn_status cnn_cuda_prelu_backward(cnn_cuda_ctx *ctx, int n, int c, size_t dim,
                                   const float *slope, bool shared, const float *x,
                                   const float *dy, float *dx);
/* dslope (c, or 1 when shared) += sum of dy * x where x <= 0. */
cnn_status cnn_cuda_prelu_slope_grad(cnn_cuda_ctx *ctx, int n, int c, size_t dim, bool shared,
                                     const float *x, const float *dy, float *dslope);
cnn_status cnn_cuda_sigmoid_forward(cnn_cuda_ctx *ctx, size_t n, const float *x, float *y);
cnn_status cnn_cuda_sigmoid_backward(cnn_cuda_ctx *ctx, size_t n, const float *y,
                                     const float *dy, float *dx);
cnn_status cnn_cuda_tanh_forward(cnn_cuda_ctx *ctx, size_t n, const float *x, float *y);
cnn_status cnn_cuda_tanh_backward(cnn_cuda_ctx *ctx, size_t n, const float *y,
                                  const float *dy, float *dx);
cnn_status cnn_cuda_elu_forward(cnn_cuda_ctx *ctx, size_t n, float alpha, const float *x,
                                float *y);
cnn_status cnn_cuda_elu_backward(cnn_cuda_ctx *ctx, size_t n, float alpha, const float *x,
                                 const float *y, const float *dy, float *dx);
/* The mask of cnn_k_dropout_mask (kernels.h), bit for bit. The seed is read
 * from device memory when the kernel runs (the 8 bytes of a uint64_t at
 * `seed`, two floats' worth), so that a CUDA graph replay uses the seed
 * uploaded before it. */
cnn_status cnn_cuda_dropout_mask(cnn_cuda_ctx *ctx, size_t n, const float *seed, uint64_t offset,
                                 float p_keep, float keep_scale, float *mask);
/* The uniforms of cnn_k_philox_uniform, bit for bit. */
cnn_status cnn_cuda_philox_uniform(cnn_cuda_ctx *ctx, size_t n, uint64_t seed,
                                   uint64_t offset, float *u);
cnn_status cnn_cuda_dropout_apply(cnn_cuda_ctx *ctx, size_t n, const float *x,
                                  const float *mask, float *y);

/* ---- softmax, losses, accuracy (kernels/cuda/softmax.cu) ----------------
 * Scalar results go to device memory: out[0] the sum, out[1] the count of
 * valid labels (as floats); *bad (device int) the first label index outside
 * [0, c) or NaN, -1 when none. */

cnn_status cnn_cuda_softmax_forward(cnn_cuda_ctx *ctx, int outer, int c, int inner,
                                    const float *x, float *y);
cnn_status cnn_cuda_softmax_backward(cnn_cuda_ctx *ctx, int outer, int c, int inner,
                                     const float *y, const float *dy, float *dx);
cnn_status cnn_cuda_softmax_loss_forward(cnn_cuda_ctx *ctx, int outer, int c, int inner,
                                         const float *prob, const float *label,
                                         bool has_ignore, int ignore, float *out, int *bad);
/* dx = scale * (prob - onehot(label)); scale_dev (device, may be NULL)
 * multiplies scale, so a normaliser computed on the device needs no sync. */
cnn_status cnn_cuda_softmax_loss_backward(cnn_cuda_ctx *ctx, int outer, int c, int inner,
                                          const float *prob, const float *label,
                                          bool has_ignore, int ignore, float scale,
                                          const float *scale_dev, float *dx);
/* Softmax with its loss in one launch, for small problems (fits: at most
 * CNN_SOFTMAX_LOSS_FUSED values and 1024 classes, LeNet's or
 * cifar10-quick's batch, where the separate ops' launches would cost more
 * than the work; one thread does a column's classes): prob =
 * softmax(x); out[0] = the loss sum, out[1] = the count of valid labels,
 * out[2] = the normaliser (norm when > 0, else that count); *loss =
 * out[0] / max(out[2], 1); *bad as above, then latched into *first_bad as
 * cnn_cuda_latch_index does. */
#define CNN_SOFTMAX_LOSS_FUSED 65536
static inline bool cnn_cuda_softmax_loss_fits(int outer, int c, int inner)
{
    return outer > 0 && c > 0 && c <= 1024 && inner > 0 &&
           (size_t)outer * c * inner <= CNN_SOFTMAX_LOSS_FUSED;
}
cnn_status cnn_cuda_softmax_loss_fused(cnn_cuda_ctx *ctx, int outer, int c, int inner,
                                       const float *x, const float *label, bool has_ignore,
                                       int ignore, float norm, float *prob, float *out,
                                       int *bad, int *first_bad, float *loss);
/* out[0] = correct, out[1] = count; class_correct/class_count (device, c
 * floats, may be NULL) are overwritten with per-class tallies. */
cnn_status cnn_cuda_accuracy(cnn_cuda_ctx *ctx, int outer, int c, int inner, const float *x,
                             const float *label, int top_k, bool has_ignore, int ignore,
                             float *out, float *class_correct, float *class_count, int *bad);
/* *first = *index when *first < 0 and *index >= 0 (device ints): keeps the
 * first bad label index reported over many launches until the host resets
 * *first to -1, so it can be read back once, when the loss is. */
cnn_status cnn_cuda_latch_index(cnn_cuda_ctx *ctx, const int *index, int *first);
cnn_status cnn_cuda_sigmoid_xent_forward(cnn_cuda_ctx *ctx, size_t n, const float *x,
                                         const float *t, bool has_ignore, int ignore,
                                         float *out);
cnn_status cnn_cuda_sigmoid_xent_backward(cnn_cuda_ctx *ctx, size_t n, const float *x,
                                          const float *t, bool has_ignore, int ignore,
                                          float scale, const float *scale_dev, float *dx);
/* EuclideanLoss: diff = a - b; *out (device) = sum diff^2 / num / 2. */
cnn_status cnn_cuda_euclidean_forward(cnn_cuda_ctx *ctx, size_t n, int num, const float *a,
                                      const float *b, float *diff, float *out);
/* dx = sign * dloss[0] / num * diff; dloss is the device top gradient. */
cnn_status cnn_cuda_euclidean_backward(cnn_cuda_ctx *ctx, size_t n, int num, float sign,
                                       const float *dloss, const float *diff, float *dx);

/* ---- batch norm, scale (kernels/cuda/batchnorm.cu) ---------------------- */

cnn_status cnn_cuda_bn_stats(cnn_cuda_ctx *ctx, int n, int c, size_t s, const float *x,
                             float *mean, float *var);
cnn_status cnn_cuda_bn_normalize(cnn_cuda_ctx *ctx, int n, int c, size_t s, const float *x,
                                 const float *mean, const float *inv_std, float *y);
cnn_status cnn_cuda_bn_backward(cnn_cuda_ctx *ctx, int n, int c, size_t s, const float *xn,
                                const float *dy, const float *inv_std, float *dx);
/* The BatchNorm layer's bookkeeping in TRAIN: moving sums
 * (sum_mean = f*sum_mean + mean, sum_var = f*sum_var + corr*var,
 * weight = weight*f + 1) then var <- 1/sqrt(var + eps) in place. In TEST
 * (use_global) mean/var come from the sums scaled by 1/weight first. */
cnn_status cnn_cuda_bn_running(cnn_cuda_ctx *ctx, int c, bool use_global, float fraction,
                               float corr, float eps, float *mean, float *var,
                               float *sum_mean, float *sum_var, float *weight);
cnn_status cnn_cuda_bcast_scale(cnn_cuda_ctx *ctx, int outer, int dim, size_t inner,
                                const float *x, const float *s, const float *b, float *y);
/* y[o, d, i] += b[d] over (outer, dim, inner): a bias added in place. */
cnn_status cnn_cuda_add_bias(cnn_cuda_ctx *ctx, int outer, int dim, size_t inner, const float *b,
                             float *y);
cnn_status cnn_cuda_bcast_scale_grad(cnn_cuda_ctx *ctx, int outer, int dim, size_t inner,
                                     const float *x, const float *dy, bool accumulate,
                                     float *ds);
/* db[d] (+)= sum of dy over outer and inner. */
cnn_status cnn_cuda_bcast_bias_grad(cnn_cuda_ctx *ctx, int outer, int dim, size_t inner,
                                    const float *dy, bool accumulate, float *db);

/* ---- structure helpers (kernels/cuda/misc.cu) --------------------------- */

/* Concat: copies x (outer, chunk) into y (outer, y_chunk) at column offset
 * `at` (to_y), or back from y into x (!to_y). */
cnn_status cnn_cuda_concat_copy(cnn_cuda_ctx *ctx, size_t outer, size_t chunk,
                                size_t y_chunk, size_t at, bool to_y, float *x, float *y);
/* Eltwise over k bottoms of n values (xs: a host array of device pointers). */
typedef enum { CNN_CUDA_ELT_PROD, CNN_CUDA_ELT_SUM, CNN_CUDA_ELT_MAX } cnn_cuda_elt_op;
#define CNN_CUDA_ELT_MAX_BOTTOMS 16
cnn_status cnn_cuda_eltwise_forward(cnn_cuda_ctx *ctx, cnn_cuda_elt_op op, int k,
                                    const float *const *xs, const float *coeff, size_t n,
                                    float *y, int *argmax);
/* dx of bottom `which`: PROD (stable: product of the others; else dy*y/x),
 * SUM coeff[which]*dy, MAX dy where argmax == which. */
cnn_status cnn_cuda_eltwise_backward(cnn_cuda_ctx *ctx, cnn_cuda_elt_op op, int k,
                                     const float *const *xs, const float *coeff, size_t n,
                                     const float *y, const float *dy, const int *argmax,
                                     int which, bool stable_prod, float *dx);
/* Split backward: dx = sum of the k top gradients (dx may be one of them). */
cnn_status cnn_cuda_split_accumulate(cnn_cuda_ctx *ctx, int k, const float *const *dys,
                                     size_t n, float *dx);

/* ---- solver updates (kernels/cuda/solver.cu) ---------------------------- */

/* Same order and meaning as cnn_solver_type / cnn_regularization. */
typedef enum {
    CNN_CUDA_SGD,
    CNN_CUDA_NESTEROV,
    CNN_CUDA_ADAGRAD,
    CNN_CUDA_RMSPROP,
    CNN_CUDA_ADADELTA,
    CNN_CUDA_ADAM,
    CNN_CUDA_ADAMW
} cnn_cuda_update_rule;

typedef struct cnn_cuda_update {
    cnn_cuda_update_rule rule;
    bool l1;          /* L1 weight decay instead of L2 */
    float momentum;   /* SGD/Nesterov momentum, Adam beta1, AdaDelta decay */
    float momentum2;  /* Adam beta2 */
    float delta;      /* epsilon */
    float rms_decay;  /* RMSProp */
    float rate;       /* learning rate times lr_mult */
    float decay;      /* weight_decay times decay_mult */
    float grad_scale; /* multiplies g first (1 / iter_size); 1 for none */
    int iter;         /* 0-based iteration (Adam's bias correction) */
} cnn_cuda_update;

/* One fused kernel: g *= grad_scale, weight decay (coupled, except AdamW),
 * the rule's step on the history h0/h1, w -= update; g gets the update.
 * Bit for bit solvers/update.c after cnn_solver_regularize. */
cnn_status cnn_cuda_solver_update(cnn_cuda_ctx *ctx, const cnn_cuda_update *u, size_t n,
                                  float *w, float *g, float *h0, float *h1);

#ifdef __cplusplus
}
#endif
#endif
