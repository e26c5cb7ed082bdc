/* conv.cu — convolution through cuDNN: descriptors per planned shape, the
 * algorithm of each direction chosen once per shape with the Find API under
 * the context's workspace budget (deterministic ones only in deterministic
 * mode), cached in the context; plain fp32 FMA math unless TF32 is on. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.cuh"

typedef struct cnn_conv_algos {
    cudnnConvolutionFwdAlgo_t fwd;
    cudnnConvolutionBwdDataAlgo_t bwd_data;
    cudnnConvolutionBwdFilterAlgo_t bwd_filter;
    cudnnMathType_t fwd_math, data_math, filter_math;
    size_t fwd_ws, data_ws, filter_ws;
} cnn_conv_algos;

struct cnn_conv_cache_entry {
    cnn_cuda_conv_desc d;
    bool deterministic, tf32;
    size_t limit;
    cnn_conv_algos a;
};

struct cnn_cuda_conv {
    cnn_cuda_conv_desc d;
    int oh, ow;
    cudnnTensorDescriptor_t x, y;
    cudnnFilterDescriptor_t w;
    cudnnConvolutionDescriptor_t fwd, data, filter; /* one per direction: math types differ */
    cnn_conv_algos a;
};

extern "C" void cnn_cuda_conv_free(cnn_cuda_conv *cv)
{
    if (!cv) return;
    if (cv->x) cudnnDestroyTensorDescriptor(cv->x);
    if (cv->y) cudnnDestroyTensorDescriptor(cv->y);
    if (cv->w) cudnnDestroyFilterDescriptor(cv->w);
    if (cv->fwd) cudnnDestroyConvolutionDescriptor(cv->fwd);
    if (cv->data) cudnnDestroyConvolutionDescriptor(cv->data);
    if (cv->filter) cudnnDestroyConvolutionDescriptor(cv->filter);
    free(cv);
}

static cnn_status make_conv_desc(const cnn_cuda_conv_desc *d, bool tf32,
                                 cudnnConvolutionDescriptor_t *out)
{
    CNN_CUDNN(cudnnCreateConvolutionDescriptor(out));
    CNN_CUDNN(cudnnSetConvolution2dDescriptor(*out, d->ph, d->pw, d->sh, d->sw, d->dh, d->dw,
                                              CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    CNN_CUDNN(cudnnSetConvolutionGroupCount(*out, d->group));
    CNN_CUDNN(cudnnSetConvolutionMathType(*out, tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH));
    return CNN_OK;
}

static cnn_status make_descs(cnn_cuda_ctx *ctx, cnn_cuda_conv *cv)
{
    const cnn_cuda_conv_desc *d = &cv->d;
    CNN_CUDNN(cudnnCreateTensorDescriptor(&cv->x));
    CNN_CUDNN(cudnnSetTensor4dDescriptor(cv->x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, d->n, d->c,
                                         d->h, d->w));
    CNN_CUDNN(cudnnCreateFilterDescriptor(&cv->w));
    CNN_CUDNN(cudnnSetFilter4dDescriptor(cv->w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, d->o,
                                         d->c / d->group, d->kh, d->kw));
    CNN_TRY_CUDA(make_conv_desc(d, ctx->tf32, &cv->fwd));
    CNN_TRY_CUDA(make_conv_desc(d, ctx->tf32, &cv->data));
    CNN_TRY_CUDA(make_conv_desc(d, ctx->tf32, &cv->filter));
    int n, c, h, w; /* cv->oh, cv->ow: from cnn_cuda_conv_desc_check */
    CNN_CUDNN(cudnnGetConvolution2dForwardOutputDim(cv->fwd, cv->x, cv->w, &n, &c, &h, &w));
    if (cv->oh <= 0 || cv->ow <= 0 || h != cv->oh || w != cv->ow || c != d->o || n != d->n)
        return CNN_ERROR(CNN_ERR_SHAPE,
                         "convolution output %dx%d (cuDNN says %dx%dx%dx%d) for input %dx%d",
                         cv->oh, cv->ow, n, c, h, w, d->h, d->w);
    CNN_CUDNN(cudnnCreateTensorDescriptor(&cv->y));
    CNN_CUDNN(cudnnSetTensor4dDescriptor(cv->y, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, d->n, d->o,
                                         cv->oh, cv->ow));
    return CNN_OK;
}

/* Whether a Find result may be used under the context's options. */
template <class P> static bool usable(const cnn_cuda_ctx *ctx, const P &p)
{
    return p.status == CUDNN_STATUS_SUCCESS && p.memory <= ctx->ws_limit &&
           (!ctx->deterministic || p.determinism == CUDNN_DETERMINISTIC) &&
           (ctx->tf32 || (p.mathType != CUDNN_TENSOR_OP_MATH &&
                          p.mathType != CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION));
}

/* Scratch for Find: input, filter and output buffers and a workspace of at
 * most the budget (less when the device has less free). */
typedef struct find_bufs {
    float *x, *w, *y;
    void *ws;
    size_t ws_size;
} find_bufs;

static void free_bufs(find_bufs *b)
{
    cudaFree(b->x);
    cudaFree(b->w);
    cudaFree(b->y);
    cudaFree(b->ws);
}

static cnn_status alloc_bufs(cnn_cuda_ctx *ctx, const cnn_cuda_conv *cv, find_bufs *b)
{
    const cnn_cuda_conv_desc *d = &cv->d;
    size_t nx = (size_t)d->n * d->c * d->h * d->w, ny = (size_t)d->n * d->o * cv->oh * cv->ow;
    size_t nw = (size_t)d->o * (d->c / d->group) * d->kh * d->kw;
    CNN_CUDA(cudaMalloc((void **)&b->x, nx * sizeof(float)));
    CNN_CUDA(cudaMalloc((void **)&b->w, nw * sizeof(float)));
    CNN_CUDA(cudaMalloc((void **)&b->y, ny * sizeof(float)));
    CNN_CUDA(cudaMemsetAsync(b->x, 0, nx * sizeof(float), ctx->stream));
    CNN_CUDA(cudaMemsetAsync(b->w, 0, nw * sizeof(float), ctx->stream));
    CNN_CUDA(cudaMemsetAsync(b->y, 0, ny * sizeof(float), ctx->stream));
    for (b->ws_size = ctx->ws_limit; b->ws_size > 0; b->ws_size /= 2) {
        if (cudaMalloc(&b->ws, b->ws_size) == cudaSuccess) break;
        cudaGetLastError();
        b->ws = NULL;
    }
    CNN_CUDA(cudaStreamSynchronize(ctx->stream));
    return CNN_OK;
}

#define MAX_ALGOS 16

static cnn_status find_fwd(cnn_cuda_ctx *ctx, cnn_cuda_conv *cv, find_bufs *b)
{
    cudnnConvolutionFwdAlgoPerf_t p[MAX_ALGOS];
    int got = 0;
    CNN_CUDNN(cudnnFindConvolutionForwardAlgorithmEx(ctx->dnn, cv->x, b->x, cv->w, b->w,
                                                     cv->fwd, cv->y, b->y, MAX_ALGOS, &got, p,
                                                     b->ws, b->ws_size));
    for (int i = 0; i < got; i++)
        if (usable(ctx, p[i])) {
            cv->a.fwd = p[i].algo;
            cv->a.fwd_math = p[i].mathType;
            cv->a.fwd_ws = p[i].memory;
            return CNN_OK;
        }
    return CNN_ERROR(CNN_ERR_CUDA, "no cuDNN forward convolution algorithm fits (%d tried, "
                     "workspace budget %zu bytes%s)", got, ctx->ws_limit,
                     ctx->deterministic ? ", deterministic only" : "");
}

static cnn_status find_data(cnn_cuda_ctx *ctx, cnn_cuda_conv *cv, find_bufs *b)
{
    cudnnConvolutionBwdDataAlgoPerf_t p[MAX_ALGOS];
    int got = 0;
    CNN_CUDNN(cudnnFindConvolutionBackwardDataAlgorithmEx(ctx->dnn, cv->w, b->w, cv->y, b->y,
                                                          cv->data, cv->x, b->x, MAX_ALGOS,
                                                          &got, p, b->ws, b->ws_size));
    for (int i = 0; i < got; i++)
        if (usable(ctx, p[i])) {
            cv->a.bwd_data = p[i].algo;
            cv->a.data_math = p[i].mathType;
            cv->a.data_ws = p[i].memory;
            return CNN_OK;
        }
    return CNN_ERROR(CNN_ERR_CUDA, "no cuDNN backward-data convolution algorithm fits (%d "
                     "tried, workspace budget %zu bytes%s)", got, ctx->ws_limit,
                     ctx->deterministic ? ", deterministic only" : "");
}

static cnn_status find_filter(cnn_cuda_ctx *ctx, cnn_cuda_conv *cv, find_bufs *b)
{
    cudnnConvolutionBwdFilterAlgoPerf_t p[MAX_ALGOS];
    int got = 0;
    CNN_CUDNN(cudnnFindConvolutionBackwardFilterAlgorithmEx(ctx->dnn, cv->x, b->x, cv->y, b->y,
                                                            cv->filter, cv->w, b->w, MAX_ALGOS,
                                                            &got, p, b->ws, b->ws_size));
    for (int i = 0; i < got; i++)
        if (usable(ctx, p[i])) {
            cv->a.bwd_filter = p[i].algo;
            cv->a.filter_math = p[i].mathType;
            cv->a.filter_ws = p[i].memory;
            return CNN_OK;
        }
    return CNN_ERROR(CNN_ERR_CUDA, "no cuDNN backward-filter convolution algorithm fits (%d "
                     "tried, workspace budget %zu bytes%s)", got, ctx->ws_limit,
                     ctx->deterministic ? ", deterministic only" : "");
}

static cnn_status find_all(cnn_cuda_ctx *ctx, cnn_cuda_conv *cv)
{
    find_bufs b = {};
    cnn_status st = alloc_bufs(ctx, cv, &b);
    if (st == CNN_OK) st = find_fwd(ctx, cv, &b);
    if (st == CNN_OK) st = find_data(ctx, cv, &b);
    if (st == CNN_OK) st = find_filter(ctx, cv, &b);
    free_bufs(&b);
    return st;
}

static struct cnn_conv_cache_entry *cache_find(cnn_cuda_ctx *ctx, const cnn_cuda_conv_desc *d)
{
    for (int i = 0; i < ctx->n_cache; i++) {
        struct cnn_conv_cache_entry *e = &ctx->cache[i];
        if (!memcmp(&e->d, d, sizeof *d) && e->deterministic == ctx->deterministic &&
            e->tf32 == ctx->tf32 && e->limit == ctx->ws_limit)
            return e;
    }
    return NULL;
}

static cnn_status cache_add(cnn_cuda_ctx *ctx, const cnn_cuda_conv *cv)
{
    if (ctx->n_cache == ctx->cap_cache) {
        int cap = ctx->cap_cache ? 2 * ctx->cap_cache : 16;
        void *p = realloc(ctx->cache, (size_t)cap * sizeof *ctx->cache);
        if (!p) return CNN_ERROR(CNN_ERR_MEMORY, "cannot grow the convolution algorithm cache");
        ctx->cache = (struct cnn_conv_cache_entry *)p;
        ctx->cap_cache = cap;
    }
    struct cnn_conv_cache_entry *e = &ctx->cache[ctx->n_cache++];
    e->d = cv->d;
    e->deterministic = ctx->deterministic;
    e->tf32 = ctx->tf32;
    e->limit = ctx->ws_limit;
    e->a = cv->a;
    return CNN_OK;
}

/* Grows the context's workspace to at least `bytes` (outside the hot path:
 * waits for the stream so that no queued work still uses the old one). */
static cnn_status grow_workspace(cnn_cuda_ctx *ctx, size_t bytes)
{
    if (bytes <= ctx->ws_size) return CNN_OK;
    CNN_CUDA(cudaStreamSynchronize(ctx->stream));
    CNN_CUDA(cudaFree(ctx->ws));
    ctx->ws = NULL;
    ctx->ws_size = 0;
    CNN_CUDA(cudaMalloc(&ctx->ws, bytes));
    ctx->ws_size = bytes;
    return CNN_OK;
}

static size_t max3(size_t a, size_t b, size_t c) { return a > b ? (a > c ? a : c) : (b > c ? b : c); }

static cnn_status plan(cnn_cuda_ctx *ctx, cnn_cuda_conv *cv)
{
    CNN_TRY_CUDA(cnn_cuda_conv_desc_check(&cv->d, &cv->oh, &cv->ow));
    CNN_TRY_CUDA(make_descs(ctx, cv));
    struct cnn_conv_cache_entry *e = cache_find(ctx, &cv->d);
    if (e) {
        cv->a = e->a;
    } else {
        CNN_TRY_CUDA(find_all(ctx, cv));
        CNN_TRY_CUDA(cache_add(ctx, cv));
    }
    if (ctx->tf32) {
        CNN_CUDNN(cudnnSetConvolutionMathType(cv->fwd, cv->a.fwd_math));
        CNN_CUDNN(cudnnSetConvolutionMathType(cv->data, cv->a.data_math));
        CNN_CUDNN(cudnnSetConvolutionMathType(cv->filter, cv->a.filter_math));
    }
    return grow_workspace(ctx, max3(cv->a.fwd_ws, cv->a.data_ws, cv->a.filter_ws));
}

extern "C" cnn_status cnn_cuda_conv_create(cnn_cuda_ctx *ctx, const cnn_cuda_conv_desc *d,
                                           cnn_cuda_conv **out)
{
    *out = NULL;
    cnn_cuda_conv *cv = (cnn_cuda_conv *)calloc(1, sizeof *cv);
    if (!cv) return CNN_ERROR(CNN_ERR_MEMORY, "cannot allocate a convolution plan");
    cv->d = *d;
    cnn_status st = plan(ctx, cv);
    if (st != CNN_OK) {
        cnn_cuda_conv_free(cv);
        return st;
    }
    *out = cv;
    return CNN_OK;
}

extern "C" void cnn_cuda_conv_out_size(const cnn_cuda_conv *cv, int *oh, int *ow)
{
    *oh = cv->oh;
    *ow = cv->ow;
}

extern "C" const char *cnn_cuda_conv_describe(const cnn_cuda_conv *cv, char *buf, size_t n)
{
    snprintf(buf, n, "fwd algo %d (%zu B), bwd-data algo %d (%zu B), bwd-filter algo %d (%zu B)",
             (int)cv->a.fwd, cv->a.fwd_ws, (int)cv->a.bwd_data, cv->a.data_ws,
             (int)cv->a.bwd_filter, cv->a.filter_ws);
    return buf;
}

extern "C" cnn_status cnn_cuda_conv_forward(cnn_cuda_ctx *ctx, const cnn_cuda_conv *cv,
                                            const float *x, const float *w, const float *bias,
                                            float *y)
{
    const float one = 1.f, zero = 0.f;
    CNN_CUDNN(cudnnConvolutionForward(ctx->dnn, &one, cv->x, x, cv->w, w, cv->fwd, cv->a.fwd,
                                      ctx->ws, cv->a.fwd_ws, &zero, cv->y, y));
    CNN_SYNC_IF_DEBUG(ctx);
    /* Our kernel rather than cudnnAddTensor: a plain launch costs the host
     * less than a cuDNN call, and small nets are bound by the host. */
    if (bias) return cnn_cuda_add_bias(ctx, cv->d.n, cv->d.o, (size_t)cv->oh * cv->ow, bias, y);
    return CNN_OK;
}

extern "C" cnn_status cnn_cuda_conv_backward_data(cnn_cuda_ctx *ctx, const cnn_cuda_conv *cv,
                                                  const float *w, const float *dy, float *dx)
{
    const float one = 1.f, zero = 0.f;
    CNN_CUDNN(cudnnConvolutionBackwardData(ctx->dnn, &one, cv->w, w, cv->y, dy, cv->data,
                                           cv->a.bwd_data, ctx->ws, cv->a.data_ws, &zero, cv->x,
                                           dx));
    CNN_SYNC_IF_DEBUG(ctx);
    return CNN_OK;
}

extern "C" cnn_status cnn_cuda_conv_backward_filter(cnn_cuda_ctx *ctx, const cnn_cuda_conv *cv,
                                                    const float *x, const float *dy,
                                                    bool accumulate, float *dw)
{
    const float one = 1.f, beta = accumulate ? 1.f : 0.f;
    CNN_CUDNN(cudnnConvolutionBackwardFilter(ctx->dnn, &one, cv->x, x, cv->y, dy, cv->filter,
                                             cv->a.bwd_filter, ctx->ws, cv->a.filter_ws, &beta,
                                             cv->w, dw));
    CNN_SYNC_IF_DEBUG(ctx);
    return CNN_OK;
}

extern "C" cnn_status cnn_cuda_conv_backward_bias(cnn_cuda_ctx *ctx, const cnn_cuda_conv *cv,
                                                  const float *dy, bool accumulate, float *db)
{
    return cnn_cuda_bcast_bias_grad(ctx, cv->d.n, cv->d.o, (size_t)cv->oh * cv->ow, dy,
                                    accumulate, db);
}
