/* nocuda.c — the device API in a build without CUDA: no devices, and every
 * op of kernels/cuda_ops.h fails with CNN_ERR_UNSUPPORTED ("built without
 * CUDA") after creating nothing. */
#include "../core/device.h"
#include "cuda_ops.h"

int cnn_cuda_device_count(void) { return 0; }

cnn_status cnn_cuda_describe(int device, char *buf, size_t n)
{
    return CNN_ERROR(CNN_ERR_UNSUPPORTED,
                     "CUDA device %d: this build has no CUDA support "
                     "(rebuild with CUDA=1)",
                     device);
}

static cnn_status no_cuda(const char *fn)
{
    return CNN_ERROR(CNN_ERR_UNSUPPORTED, "%s: built without CUDA (rebuild with CUDA=1)", fn);
}

cnn_status cnn_cuda_ctx_create(int device, cnn_cuda_ctx **out)
{
    *out = NULL;
    return no_cuda("cnn_cuda_ctx_create");
}

cnn_status cnn_cuda_copy_ctx_create(int device, cnn_cuda_ctx **out)
{
    *out = NULL;
    return no_cuda("cnn_cuda_copy_ctx_create");
}

void cnn_cuda_ctx_free(cnn_cuda_ctx *ctx) {}

int cnn_cuda_ctx_device(const cnn_cuda_ctx *ctx) { return 0; }

cnn_status cnn_cuda_ctx_use(cnn_cuda_ctx *ctx) { return no_cuda("cnn_cuda_ctx_use"); }

void *cnn_cuda_ctx_stream(const cnn_cuda_ctx *ctx) { return NULL; }

cnn_status cnn_cuda_ctx_sync(cnn_cuda_ctx *ctx) { return no_cuda("cnn_cuda_ctx_sync"); }

void cnn_cuda_ctx_set_workspace_limit(cnn_cuda_ctx *ctx, size_t bytes) {}

size_t cnn_cuda_ctx_workspace_limit(const cnn_cuda_ctx *ctx) { return 0; }

size_t cnn_cuda_ctx_workspace_size(const cnn_cuda_ctx *ctx) { return 0; }

void cnn_cuda_ctx_set_deterministic(cnn_cuda_ctx *ctx, bool on) {}

bool cnn_cuda_ctx_deterministic(const cnn_cuda_ctx *ctx) { return false; }

cnn_status cnn_cuda_ctx_set_tf32(cnn_cuda_ctx *ctx, bool on)
{
    return no_cuda("cnn_cuda_ctx_set_tf32");
}

void cnn_cuda_ctx_set_sync_debug(cnn_cuda_ctx *ctx, bool on) {}

bool cnn_cuda_ctx_sync_debug(const cnn_cuda_ctx *ctx) { return false; }

cnn_status cnn_cuda_malloc(cnn_cuda_ctx *ctx, size_t bytes, void **out)
{
    *out = NULL;
    return no_cuda("cnn_cuda_malloc");
}

void cnn_cuda_free(cnn_cuda_ctx *ctx, void *p) {}

cnn_status cnn_cuda_malloc_host(size_t bytes, void **out)
{
    *out = NULL;
    return no_cuda("cnn_cuda_malloc_host");
}

void cnn_cuda_free_host(void *p) {}

cnn_status cnn_cuda_upload(cnn_cuda_ctx *ctx, void *dev, const void *host, size_t bytes)
{
    return no_cuda("cnn_cuda_upload");
}

cnn_status cnn_cuda_download(cnn_cuda_ctx *ctx, void *host, const void *dev, size_t bytes)
{
    return no_cuda("cnn_cuda_download");
}

cnn_status cnn_cuda_copy_bytes(cnn_cuda_ctx *ctx, void *dst, const void *src, size_t bytes)
{
    return no_cuda("cnn_cuda_copy_bytes");
}

cnn_status cnn_cuda_event_create(cnn_cuda_ctx *ctx, bool timing, cnn_cuda_event **out)
{
    *out = NULL;
    return no_cuda("cnn_cuda_event_create");
}

void cnn_cuda_event_free(cnn_cuda_event *e) {}

cnn_status cnn_cuda_event_record(cnn_cuda_ctx *ctx, cnn_cuda_event *e)
{
    return no_cuda("cnn_cuda_event_record");
}

cnn_status cnn_cuda_event_sync(const cnn_cuda_event *e)
{
    return no_cuda("cnn_cuda_event_sync");
}

cnn_status cnn_cuda_wait_event(cnn_cuda_ctx *ctx, const cnn_cuda_event *e)
{
    return no_cuda("cnn_cuda_wait_event");
}

cnn_status cnn_cuda_event_elapsed(const cnn_cuda_event *start, const cnn_cuda_event *end,
                                  float *ms)
{
    *ms = 0;
    return no_cuda("cnn_cuda_event_elapsed");
}

cnn_status cnn_cuda_enable_peer(cnn_cuda_ctx *dst, cnn_cuda_ctx *src, bool *peer)
{
    *peer = false;
    return no_cuda("cnn_cuda_enable_peer");
}

cnn_status cnn_cuda_copy_peer(cnn_cuda_ctx *dst_ctx, void *dst, cnn_cuda_ctx *src_ctx,
                              const void *src, size_t bytes)
{
    return no_cuda("cnn_cuda_copy_peer");
}

cnn_status cnn_cuda_gemm(cnn_cuda_ctx *ctx, bool ta, bool tb, int m, int n, int k, float alpha,
                         const float *a, const float *b, float beta, float *c)
{
    return no_cuda("cnn_cuda_gemm");
}

cnn_status cnn_cuda_gemv(cnn_cuda_ctx *ctx, bool ta, int m, int n, float alpha, const float *a,
                         const float *x, float beta, float *y)
{
    return no_cuda("cnn_cuda_gemv");
}

cnn_status cnn_cuda_axpy(cnn_cuda_ctx *ctx, size_t n, float alpha, const float *x, float *y)
{
    return no_cuda("cnn_cuda_axpy");
}

cnn_status cnn_cuda_scale(cnn_cuda_ctx *ctx, size_t n, float alpha, float *x)
{
    return no_cuda("cnn_cuda_scale");
}

cnn_status cnn_cuda_set(cnn_cuda_ctx *ctx, size_t n, float value, float *x)
{
    return no_cuda("cnn_cuda_set");
}

cnn_status cnn_cuda_copy(cnn_cuda_ctx *ctx, size_t n, const float *x, float *y)
{
    return no_cuda("cnn_cuda_copy");
}

cnn_status cnn_cuda_add(cnn_cuda_ctx *ctx, size_t n, const float *a, const float *b, float *y)
{
    return no_cuda("cnn_cuda_add");
}

cnn_status cnn_cuda_div(cnn_cuda_ctx *ctx, size_t n, const float *num, const float *den,
                        float lo, float *out)
{
    return no_cuda("cnn_cuda_div");
}

cnn_status cnn_cuda_dot(cnn_cuda_ctx *ctx, size_t n, const float *x, const float *y, float *out)
{
    return no_cuda("cnn_cuda_dot");
}

cnn_status cnn_cuda_asum(cnn_cuda_ctx *ctx, size_t n, const float *x, float *out)
{
    return no_cuda("cnn_cuda_asum");
}

cnn_status cnn_cuda_conv_create(cnn_cuda_ctx *ctx, const cnn_cuda_conv_desc *d, cnn_cuda_conv **out)
{
    *out = NULL;
    return no_cuda("cnn_cuda_conv_create");
}

void cnn_cuda_conv_free(cnn_cuda_conv *cv) {}

void cnn_cuda_conv_out_size(const cnn_cuda_conv *cv, int *oh, int *ow) {}

const char *cnn_cuda_conv_describe(const cnn_cuda_conv *cv, char *buf, size_t n) { return NULL; }

cnn_status cnn_cuda_conv_forward(cnn_cuda_ctx *ctx, const cnn_cuda_conv *cv, const float *x,
                                 const float *w, const float *bias, float *y)
{
    return no_cuda("cnn_cuda_conv_forward");
}

cnn_status cnn_cuda_conv_backward_data(cnn_cuda_ctx *ctx, const cnn_cuda_conv *cv, const float *w,
                                       const float *dy, float *dx)
{
    return no_cuda("cnn_cuda_conv_backward_data");
}

cnn_status cnn_cuda_conv_backward_filter(cnn_cuda_ctx *ctx, const cnn_cuda_conv *cv, const float *x,
                                         const float *dy, bool accumulate, float *dw)
{
    return no_cuda("cnn_cuda_conv_backward_filter");
}

cnn_status cnn_cuda_conv_backward_bias(cnn_cuda_ctx *ctx, const cnn_cuda_conv *cv, const float *dy,
                                       bool accumulate, float *db)
{
    return no_cuda("cnn_cuda_conv_backward_bias");
}

cnn_status cnn_cuda_maxpool_fwd(cnn_cuda_ctx *ctx, const cnn_k_pool_geom *g, const float *x,
                                float *y, int *argmax, float *mask)
{
    return no_cuda("cnn_cuda_maxpool_fwd");
}

cnn_status cnn_cuda_maxpool_bwd(cnn_cuda_ctx *ctx, const cnn_k_pool_geom *g, const float *dy,
                                const int *argmax, float *dx)
{
    return no_cuda("cnn_cuda_maxpool_bwd");
}

cnn_status cnn_cuda_avepool_fwd(cnn_cuda_ctx *ctx, const cnn_k_pool_geom *g, const float *x,
                                float *y)
{
    return no_cuda("cnn_cuda_avepool_fwd");
}

cnn_status cnn_cuda_avepool_bwd(cnn_cuda_ctx *ctx, const cnn_k_pool_geom *g, const float *dy,
                                float *dx)
{
    return no_cuda("cnn_cuda_avepool_bwd");
}

cnn_status cnn_cuda_lrn_fwd(cnn_cuda_ctx *ctx, const cnn_k_lrn_desc *d, const float *x,
                            float *scale, float *y)
{
    return no_cuda("cnn_cuda_lrn_fwd");
}

cnn_status cnn_cuda_lrn_bwd(cnn_cuda_ctx *ctx, const cnn_k_lrn_desc *d, const float *x,
                            const float *scale, const float *dy, float *dx)
{
    return no_cuda("cnn_cuda_lrn_bwd");
}

cnn_status cnn_cuda_relu_forward(cnn_cuda_ctx *ctx, size_t n, float slope, const float *x, float *y)
{
    return no_cuda("cnn_cuda_relu_forward");
}

cnn_status cnn_cuda_relu_backward(cnn_cuda_ctx *ctx, size_t n, float slope, const float *x,
                                  const float *dy, float *dx)
{
    return no_cuda("cnn_cuda_relu_backward");
}

cnn_status cnn_cuda_prelu_forward(cnn_cuda_ctx *ctx, int n, int c, size_t dim, const float *slope,
                                  bool shared, const float *x, float *y)
{
    return no_cuda("cnn_cuda_prelu_forward");
}

cnn_status cnn_cuda_prelu_backward(cnn_cuda_ctx *ctx, int n, int c, size_t dim, const float *slope,
                                   bool shared, const float *x, const float *dy, float *dx)
{
    return no_cuda("cnn_cuda_prelu_backward");
}

cnn_status cnn_cuda_prelu_slope_grad(cnn_cuda_ctx *ctx, int n, int c, size_t dim, bool shared,
                                     const float *x, const float *dy, float *dslope)
{
    return no_cuda("cnn_cuda_prelu_slope_grad");
}

cnn_status cnn_cuda_sigmoid_forward(cnn_cuda_ctx *ctx, size_t n, const float *x, float *y)
{
    return no_cuda("cnn_cuda_sigmoid_forward");
}

cnn_status cnn_cuda_sigmoid_backward(cnn_cuda_ctx *ctx, size_t n, const float *y, const float *dy,
                                     float *dx)
{
    return no_cuda("cnn_cuda_sigmoid_backward");
}

cnn_status cnn_cuda_tanh_forward(cnn_cuda_ctx *ctx, size_t n, const float *x, float *y)
{
    return no_cuda("cnn_cuda_tanh_forward");
}

cnn_status cnn_cuda_tanh_backward(cnn_cuda_ctx *ctx, size_t n, const float *y, const float *dy,
                                  float *dx)
{
    return no_cuda("cnn_cuda_tanh_backward");
}

cnn_status cnn_cuda_elu_forward(cnn_cuda_ctx *ctx, size_t n, float alpha, const float *x, float *y)
{
    return no_cuda("cnn_cuda_elu_forward");
}

cnn_status cnn_cuda_elu_backward(cnn_cuda_ctx *ctx, size_t n, float alpha, const float *x,
                                 const float *y, const float *dy, float *dx)
{
    return no_cuda("cnn_cuda_elu_backward");
}

cnn_status cnn_cuda_dropout_mask(cnn_cuda_ctx *ctx, size_t n, const float *seed, uint64_t offset,
                                 float p_keep, float keep_scale, float *mask)
{
    return no_cuda("cnn_cuda_dropout_mask");
}

cnn_status cnn_cuda_philox_uniform(cnn_cuda_ctx *ctx, size_t n, uint64_t seed, uint64_t offset,
                                   float *u)
{
    return no_cuda("cnn_cuda_philox_uniform");
}

cnn_status cnn_cuda_dropout_apply(cnn_cuda_ctx *ctx, size_t n, const float *x, const float *mask,
                                  float *y)
{
    return no_cuda("cnn_cuda_dropout_apply");
}

cnn_status cnn_cuda_softmax_forward(cnn_cuda_ctx *ctx, int outer, int c, int inner, const float *x,
                                    float *y)
{
    return no_cuda("cnn_cuda_softmax_forward");
}

cnn_status cnn_cuda_softmax_backward(cnn_cuda_ctx *ctx, int outer, int c, int inner, const float *y,
                                     const float *dy, float *dx)
{
    return no_cuda("cnn_cuda_softmax_backward");
}

cnn_status cnn_cuda_softmax_loss_forward(cnn_cuda_ctx *ctx, int outer, int c, int inner,
                                         const float *prob, const float *label, bool has_ignore,
                                         int ignore, float *out, int *bad)
{
    return no_cuda("cnn_cuda_softmax_loss_forward");
}

cnn_status cnn_cuda_softmax_loss_fused(cnn_cuda_ctx *ctx, int outer, int c, int inner,
                                       const float *x, const float *label, bool has_ignore,
                                       int ignore, float norm, float *prob, float *out,
                                       int *bad, int *first_bad, float *loss)
{
    return no_cuda("cnn_cuda_softmax_loss_fused");
}

cnn_status cnn_cuda_latch_index(cnn_cuda_ctx *ctx, const int *index, int *first)
{
    return no_cuda("cnn_cuda_latch_index");
}

cnn_status cnn_cuda_softmax_loss_backward(cnn_cuda_ctx *ctx, int outer, int c, int inner,
                                          const float *prob, const float *label, bool has_ignore,
                                          int ignore, float scale, const float *scale_dev,
                                          float *dx)
{
    return no_cuda("cnn_cuda_softmax_loss_backward");
}

cnn_status cnn_cuda_accuracy(cnn_cuda_ctx *ctx, int outer, int c, int inner, const float *x,
                             const float *label, int top_k, bool has_ignore, int ignore, float *out,
                             float *class_correct, float *class_count, int *bad)
{
    return no_cuda("cnn_cuda_accuracy");
}

cnn_status cnn_cuda_sigmoid_xent_forward(cnn_cuda_ctx *ctx, size_t n, const float *x,
                                         const float *t, bool has_ignore, int ignore, float *out)
{
    return no_cuda("cnn_cuda_sigmoid_xent_forward");
}

cnn_status cnn_cuda_sigmoid_xent_backward(cnn_cuda_ctx *ctx, size_t n, const float *x,
                                          const float *t, bool has_ignore, int ignore, float scale,
                                          const float *scale_dev, float *dx)
{
    return no_cuda("cnn_cuda_sigmoid_xent_backward");
}

cnn_status cnn_cuda_euclidean_forward(cnn_cuda_ctx *ctx, size_t n, int num, const float *a,
                                      const float *b, float *diff, float *out)
{
    return no_cuda("cnn_cuda_euclidean_forward");
}

cnn_status cnn_cuda_euclidean_backward(cnn_cuda_ctx *ctx, size_t n, int num, float sign,
                                       const float *dloss, const float *diff, float *dx)
{
    return no_cuda("cnn_cuda_euclidean_backward");
}

cnn_status cnn_cuda_bn_stats(cnn_cuda_ctx *ctx, int n, int c, size_t s, const float *x, float *mean,
                             float *var)
{
    return no_cuda("cnn_cuda_bn_stats");
}

cnn_status cnn_cuda_bn_normalize(cnn_cuda_ctx *ctx, int n, int c, size_t s, const float *x,
                                 const float *mean, const float *inv_std, float *y)
{
    return no_cuda("cnn_cuda_bn_normalize");
}

cnn_status cnn_cuda_bn_backward(cnn_cuda_ctx *ctx, int n, int c, size_t s, const float *xn,
                                const float *dy, const float *inv_std, float *dx)
{
    return no_cuda("cnn_cuda_bn_backward");
}

cnn_status cnn_cuda_bn_running(cnn_cuda_ctx *ctx, int c, bool use_global, float fraction,
                               float corr, float eps, float *mean, float *var, float *sum_mean,
                               float *sum_var, float *weight)
{
    return no_cuda("cnn_cuda_bn_running");
}

cnn_status cnn_cuda_bcast_scale(cnn_cuda_ctx *ctx, int outer, int dim, size_t inner, const float *x,
                                const float *s, const float *b, float *y)
{
    return no_cuda("cnn_cuda_bcast_scale");
}

cnn_status cnn_cuda_add_bias(cnn_cuda_ctx *ctx, int outer, int dim, size_t inner, const float *b,
                             float *y)
{
    return no_cuda("cnn_cuda_add_bias");
}

cnn_status cnn_cuda_bcast_scale_grad(cnn_cuda_ctx *ctx, int outer, int dim, size_t inner,
                                     const float *x, const float *dy, bool accumulate, float *ds)
{
    return no_cuda("cnn_cuda_bcast_scale_grad");
}

cnn_status cnn_cuda_bcast_bias_grad(cnn_cuda_ctx *ctx, int outer, int dim, size_t inner,
                                    const float *dy, bool accumulate, float *db)
{
    return no_cuda("cnn_cuda_bcast_bias_grad");
}

cnn_status cnn_cuda_concat_copy(cnn_cuda_ctx *ctx, size_t outer, size_t chunk, size_t y_chunk,
                                size_t at, bool to_y, float *x, float *y)
{
    return no_cuda("cnn_cuda_concat_copy");
}

cnn_status cnn_cuda_eltwise_forward(cnn_cuda_ctx *ctx, cnn_cuda_elt_op op, int k,
                                    const float *const *xs, const float *coeff, size_t n, float *y,
                                    int *argmax)
{
    return no_cuda("cnn_cuda_eltwise_forward");
}

cnn_status cnn_cuda_eltwise_backward(cnn_cuda_ctx *ctx, cnn_cuda_elt_op op, int k,
                                     const float *const *xs, const float *coeff, size_t n,
                                     const float *y, const float *dy, const int *argmax, int which,
                                     bool stable_prod, float *dx)
{
    return no_cuda("cnn_cuda_eltwise_backward");
}

cnn_status cnn_cuda_split_accumulate(cnn_cuda_ctx *ctx, int k, const float *const *dys, size_t n,
                                     float *dx)
{
    return no_cuda("cnn_cuda_split_accumulate");
}

cnn_status cnn_cuda_solver_update(cnn_cuda_ctx *ctx, const cnn_cuda_update *u, size_t n, float *w,
                                  float *g, float *h0, float *h1)
{
    return no_cuda("cnn_cuda_solver_update");
}

cnn_status cnn_cuda_graph_begin(cnn_cuda_ctx *ctx) { return no_cuda("cnn_cuda_graph_begin"); }

cnn_status cnn_cuda_graph_end(cnn_cuda_ctx *ctx, cnn_cuda_graph **out)
{
    *out = NULL;
    return no_cuda("cnn_cuda_graph_end");
}

cnn_status cnn_cuda_graph_launch(cnn_cuda_ctx *ctx, const cnn_cuda_graph *g)
{
    return no_cuda("cnn_cuda_graph_launch");
}

void cnn_cuda_graph_free(cnn_cuda_graph *g) {}
