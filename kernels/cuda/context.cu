/* context.cu — the CUDA context (device, stream, cuBLAS and cuDNN handles,
 * workspace, reduction scratch, options) and device memory helpers. */
#include <stdlib.h>
#include <string.h>

#include "../../core/device.h"
#include "common.cuh"

const char *cnn_cublas_status_string(cublasStatus_t s)
{
    switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    default: return "unknown cuBLAS status";
    }
}

/* Final pass of cnn_cuda_sum: one block adds the partials in a fixed order. */
__global__ void cnn_finish_sum_kernel(const double *partial, int parts, float scale, float *out)
{
    double acc = 0;
    for (int i = threadIdx.x; i < parts; i += blockDim.x) acc += partial[i];
    double s = cnn_block_sum(acc);
    if (threadIdx.x == 0) *out = (float)(s * scale);
}

cnn_status cnn_cuda_finish_sum(cnn_cuda_ctx *ctx, int parts, float scale, float *out)
{
    CNN_LAUNCH(ctx, cnn_finish_sum_kernel, 1, ctx->partial, parts, scale, out);
    return CNN_OK;
}

static bool env_on(const char *name)
{
    const char *v = getenv(name);
    return v && *v && strcmp(v, "0") != 0;
}

/* Everything but the struct; separate so that create can unwind with it. */
static void release(cnn_cuda_ctx *c)
{
    cudaSetDevice(c->device);
    if (c->dnn) cudnnDestroy(c->dnn);
    if (c->blas) cublasDestroy(c->blas);
    cudaFree(c->ws);
    cudaFree(c->blas_ws);
    cudaFree(c->partial);
    if (c->stream) cudaStreamDestroy(c->stream);
    free(c->cache);
}

/* cuBLAS's workspace, ours so that it never allocates while a CUDA graph
 * records (32 MiB: NVIDIA's figure for Hopper, more than older GPUs need). */
#define BLAS_WORKSPACE ((size_t)32 << 20)

static cnn_status init(cnn_cuda_ctx *c, bool copy_only)
{
    CNN_CUDA(cudaSetDevice(c->device));
    CNN_CUDA(cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking));
    if (copy_only) return CNN_OK;
    CNN_CUBLAS(cublasCreate(&c->blas));
    CNN_CUBLAS(cublasSetStream(c->blas, c->stream));
    CNN_CUDA(cudaMalloc(&c->blas_ws, BLAS_WORKSPACE));
    CNN_CUBLAS(cublasSetWorkspace(c->blas, c->blas_ws, BLAS_WORKSPACE));
    CNN_CUBLAS(cublasSetMathMode(c->blas, CUBLAS_DEFAULT_MATH));
    CNN_CUDNN(cudnnCreate(&c->dnn));
    CNN_CUDNN(cudnnSetStream(c->dnn, c->stream));
    CNN_CUDA(cudaMalloc((void **)&c->partial, CNN_PARTIALS * sizeof(double)));
    return CNN_OK;
}

static cnn_status create(int device, bool copy_only, cnn_cuda_ctx **out)
{
    *out = NULL;
    int count = cnn_cuda_device_count();
    if (device < 0 || device >= count)
        return CNN_ERROR(CNN_ERR_ARG, "CUDA device %d does not exist (%d found)", device, count);
    cnn_cuda_ctx *c = (cnn_cuda_ctx *)calloc(1, sizeof *c);
    if (!c) return CNN_ERROR(CNN_ERR_MEMORY, "cannot allocate a CUDA context");
    c->device = device;
    c->ws_limit = CNN_CUDA_DEFAULT_WORKSPACE;
    c->sync_debug = env_on("CNN_CUDA_SYNC");
    cnn_status st = init(c, copy_only);
    if (st != CNN_OK) {
        release(c);
        free(c);
        return st;
    }
    *out = c;
    return CNN_OK;
}

extern "C" cnn_status cnn_cuda_ctx_create(int device, cnn_cuda_ctx **out)
{
    return create(device, false, out);
}

extern "C" cnn_status cnn_cuda_copy_ctx_create(int device, cnn_cuda_ctx **out)
{
    return create(device, true, out);
}

extern "C" void cnn_cuda_ctx_free(cnn_cuda_ctx *ctx)
{
    if (!ctx) return;
    cudaSetDevice(ctx->device);
    cudaStreamSynchronize(ctx->stream);
    release(ctx);
    free(ctx);
}

extern "C" int cnn_cuda_ctx_device(const cnn_cuda_ctx *ctx) { return ctx->device; }

extern "C" void *cnn_cuda_ctx_stream(const cnn_cuda_ctx *ctx) { return (void *)ctx->stream; }

extern "C" cnn_status cnn_cuda_ctx_use(cnn_cuda_ctx *ctx)
{
    CNN_CUDA(cudaSetDevice(ctx->device));
    return CNN_OK;
}

extern "C" cnn_status cnn_cuda_ctx_sync(cnn_cuda_ctx *ctx)
{
    CNN_CUDA(cudaStreamSynchronize(ctx->stream));
    CNN_CUDA(cudaGetLastError());
    return CNN_OK;
}

extern "C" void cnn_cuda_ctx_set_workspace_limit(cnn_cuda_ctx *ctx, size_t bytes)
{
    ctx->ws_limit = bytes;
}

extern "C" size_t cnn_cuda_ctx_workspace_limit(const cnn_cuda_ctx *ctx) { return ctx->ws_limit; }

extern "C" size_t cnn_cuda_ctx_workspace_size(const cnn_cuda_ctx *ctx) { return ctx->ws_size; }

extern "C" void cnn_cuda_ctx_set_deterministic(cnn_cuda_ctx *ctx, bool on)
{
    ctx->deterministic = on;
}

extern "C" bool cnn_cuda_ctx_deterministic(const cnn_cuda_ctx *ctx) { return ctx->deterministic; }

extern "C" cnn_status cnn_cuda_ctx_set_tf32(cnn_cuda_ctx *ctx, bool on)
{
    CNN_CUBLAS(cublasSetMathMode(ctx->blas, on ? CUBLAS_TF32_TENSOR_OP_MATH
                                               : CUBLAS_DEFAULT_MATH));
    ctx->tf32 = on;
    return CNN_OK;
}

extern "C" void cnn_cuda_ctx_set_sync_debug(cnn_cuda_ctx *ctx, bool on) { ctx->sync_debug = on; }

extern "C" bool cnn_cuda_ctx_sync_debug(const cnn_cuda_ctx *ctx) { return ctx->sync_debug; }

/* ---- memory ------------------------------------------------------------- */

/* Allocation and event creation act on ctx's device and then give the
 * calling thread its current device back, so they never change where the
 * caller's next launch goes. */
extern "C" cnn_status cnn_cuda_malloc(cnn_cuda_ctx *ctx, size_t bytes, void **out)
{
    int prev = 0;
    *out = NULL;
    CNN_CUDA(cudaGetDevice(&prev));
    CNN_CUDA(cudaSetDevice(ctx->device));
    cudaError_t e = cudaMalloc(out, bytes ? bytes : 1);
    CNN_CUDA(cudaSetDevice(prev));
    if (e != cudaSuccess) {
        cudaGetLastError();
        *out = NULL;
        return CNN_ERROR(CNN_ERR_MEMORY, "cudaMalloc of %zu bytes on GPU %d failed: %s", bytes,
                         ctx->device, cudaGetErrorString(e));
    }
    return CNN_OK;
}

extern "C" void cnn_cuda_free(cnn_cuda_ctx *ctx, void *p)
{
    (void)ctx; /* cudaFree finds the device from the pointer */
    if (p) cudaFree(p);
}

extern "C" cnn_status cnn_cuda_malloc_host(size_t bytes, void **out)
{
    *out = NULL;
    CNN_CUDA(cudaMallocHost(out, bytes ? bytes : 1));
    return CNN_OK;
}

extern "C" void cnn_cuda_free_host(void *p)
{
    if (p) cudaFreeHost(p);
}

extern "C" cnn_status cnn_cuda_upload(cnn_cuda_ctx *ctx, void *dev, const void *host,
                                      size_t bytes)
{
    CNN_CUDA(cudaMemcpyAsync(dev, host, bytes, cudaMemcpyHostToDevice, ctx->stream));
    CNN_SYNC_IF_DEBUG(ctx);
    return CNN_OK;
}

extern "C" cnn_status cnn_cuda_download(cnn_cuda_ctx *ctx, void *host, const void *dev,
                                        size_t bytes)
{
    CNN_CUDA(cudaMemcpyAsync(host, dev, bytes, cudaMemcpyDeviceToHost, ctx->stream));
    CNN_SYNC_IF_DEBUG(ctx);
    return CNN_OK;
}

extern "C" cnn_status cnn_cuda_copy_bytes(cnn_cuda_ctx *ctx, void *dst, const void *src,
                                          size_t bytes)
{
    if (dst == src || bytes == 0) return CNN_OK;
    CNN_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, ctx->stream));
    CNN_SYNC_IF_DEBUG(ctx);
    return CNN_OK;
}

/* ---- events and copies between contexts --------------------------------- */

struct cnn_cuda_event {
    int device;
    cudaEvent_t ev;
};

extern "C" cnn_status cnn_cuda_event_create(cnn_cuda_ctx *ctx, bool timing,
                                            cnn_cuda_event **out)
{
    *out = NULL;
    cnn_cuda_event *e = (cnn_cuda_event *)calloc(1, sizeof *e);
    if (!e) return CNN_ERROR(CNN_ERR_MEMORY, "cannot allocate a CUDA event");
    e->device = ctx->device;
    int prev = 0;
    cudaError_t r = cudaGetDevice(&prev);
    if (r == cudaSuccess) r = cudaSetDevice(ctx->device);
    if (r == cudaSuccess) {
        r = cudaEventCreateWithFlags(&e->ev, timing ? cudaEventDefault : cudaEventDisableTiming);
        cudaSetDevice(prev);
    }
    if (r != cudaSuccess) {
        free(e);
        CNN_CUDA(r);
    }
    *out = e;
    return CNN_OK;
}

extern "C" void cnn_cuda_event_free(cnn_cuda_event *e)
{
    if (!e) return;
    cudaEventDestroy(e->ev);
    free(e);
}

extern "C" cnn_status cnn_cuda_event_record(cnn_cuda_ctx *ctx, cnn_cuda_event *e)
{
    CNN_CUDA(cudaEventRecord(e->ev, ctx->stream));
    CNN_SYNC_IF_DEBUG(ctx);
    return CNN_OK;
}

extern "C" cnn_status cnn_cuda_event_sync(const cnn_cuda_event *e)
{
    CNN_CUDA(cudaEventSynchronize(e->ev));
    return CNN_OK;
}

extern "C" cnn_status cnn_cuda_wait_event(cnn_cuda_ctx *ctx, const cnn_cuda_event *e)
{
    CNN_CUDA(cudaStreamWaitEvent(ctx->stream, e->ev, 0));
    return CNN_OK;
}

extern "C" cnn_status cnn_cuda_event_elapsed(const cnn_cuda_event *start,
                                             const cnn_cuda_event *end, float *ms)
{
    *ms = 0;
    CNN_CUDA(cudaEventSynchronize(end->ev));
    CNN_CUDA(cudaEventElapsedTime(ms, start->ev, end->ev));
    return CNN_OK;
}

extern "C" cnn_status cnn_cuda_enable_peer(cnn_cuda_ctx *dst, cnn_cuda_ctx *src, bool *peer)
{
    *peer = true;
    if (dst->device == src->device) return CNN_OK;
    int can = 0;
    CNN_CUDA(cudaDeviceCanAccessPeer(&can, dst->device, src->device));
    *peer = can != 0;
    if (!can) return CNN_OK;
    CNN_CUDA(cudaSetDevice(dst->device));
    cudaError_t r = cudaDeviceEnablePeerAccess(src->device, 0);
    if (r == cudaErrorPeerAccessAlreadyEnabled) {
        cudaGetLastError(); /* clear the sticky-free error state */
        return CNN_OK;
    }
    CNN_CUDA(r);
    return CNN_OK;
}

extern "C" cnn_status cnn_cuda_copy_peer(cnn_cuda_ctx *dst_ctx, void *dst, cnn_cuda_ctx *src_ctx,
                                         const void *src, size_t bytes)
{
    if (bytes == 0 || dst == src) return CNN_OK;
    if (dst_ctx->device == src_ctx->device)
        CNN_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, dst_ctx->stream));
    else
        CNN_CUDA(cudaMemcpyPeerAsync(dst, dst_ctx->device, src, src_ctx->device, bytes,
                                     dst_ctx->stream));
    CNN_SYNC_IF_DEBUG(dst_ctx);
    return CNN_OK;
}

/* ---- CUDA graphs ---------------------------------------------------------- */

struct cnn_cuda_graph {
    cudaGraphExec_t exec;
};

extern "C" cnn_status cnn_cuda_graph_begin(cnn_cuda_ctx *ctx)
{
    if (ctx->sync_debug)
        return CNN_ERROR(CNN_ERR_UNSUPPORTED, "no CUDA graphs in the debug mode (CNN_CUDA_SYNC)");
    CNN_CUDA(cudaStreamBeginCapture(ctx->stream, cudaStreamCaptureModeRelaxed));
    return CNN_OK;
}

extern "C" cnn_status cnn_cuda_graph_end(cnn_cuda_ctx *ctx, cnn_cuda_graph **out)
{
    *out = NULL;
    cudaGraph_t graph = NULL;
    cudaError_t r = cudaStreamEndCapture(ctx->stream, &graph);
    if (r != cudaSuccess) {
        cudaGetLastError(); /* the failed recording leaves no sticky error */
        return CNN_ERROR(CNN_ERR_CUDA, "recording a CUDA graph failed: %s",
                         cudaGetErrorString(r));
    }
    cudaGraphExec_t exec = NULL;
    r = cudaGraphInstantiate(&exec, graph, 0);
    cudaGraphDestroy(graph);
    if (r != cudaSuccess) {
        cudaGetLastError();
        return CNN_ERROR(CNN_ERR_CUDA, "cudaGraphInstantiate: %s", cudaGetErrorString(r));
    }
    cnn_cuda_graph *g = (cnn_cuda_graph *)calloc(1, sizeof *g);
    if (!g) {
        cudaGraphExecDestroy(exec);
        return CNN_ERROR(CNN_ERR_MEMORY, "cannot allocate a CUDA graph");
    }
    g->exec = exec;
    *out = g;
    return CNN_OK;
}

extern "C" cnn_status cnn_cuda_graph_launch(cnn_cuda_ctx *ctx, const cnn_cuda_graph *g)
{
    CNN_CUDA(cudaGraphLaunch(g->exec, ctx->stream));
    CNN_SYNC_IF_DEBUG(ctx);
    return CNN_OK;
}

extern "C" void cnn_cuda_graph_free(cnn_cuda_graph *g)
{
    if (!g) return;
    cudaGraphExecDestroy(g->exec);
    free(g);
}
