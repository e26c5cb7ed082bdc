/* cuda_check.h — one family of macros to check every CUDA runtime, cuDNN
 * and cuBLAS call and every kernel launch. On failure each returns a
 * CNN_ERR_CUDA status naming the call, our file and line. */
#ifndef CNN_CUDA_CHECK_H
#define CNN_CUDA_CHECK_H

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include "../../core/cnn.h"

/* cuBLAS has no status-string function before 11.4 in every build; ours. */
const char *cnn_cublas_status_string(cublasStatus_t s);

#define CNN_CHECK_FAIL_(call, what)                                                      \
    return cnn_error_at(__FILE__, __LINE__, CNN_ERR_CUDA, "%s failed: %s (%s:%d)", #call, \
                        (what), __FILE__, __LINE__)

/* Evaluates a cudaError_t call. */
#define CNN_CUDA(call)                                                                   \
    do {                                                                                 \
        cudaError_t e_ = (call);                                                         \
        if (e_ != cudaSuccess) CNN_CHECK_FAIL_(call, cudaGetErrorString(e_));            \
    } while (0)

/* Evaluates a cudnnStatus_t call. */
#define CNN_CUDNN(call)                                                                  \
    do {                                                                                 \
        cudnnStatus_t e_ = (call);                                                       \
        if (e_ != CUDNN_STATUS_SUCCESS) CNN_CHECK_FAIL_(call, cudnnGetErrorString(e_));  \
    } while (0)

/* Evaluates a cublasStatus_t call. */
#define CNN_CUBLAS(call)                                                                 \
    do {                                                                                 \
        cublasStatus_t e_ = (call);                                                      \
        if (e_ != CUBLAS_STATUS_SUCCESS)                                                 \
            CNN_CHECK_FAIL_(call, cnn_cublas_status_string(e_));                         \
    } while (0)

/* After a kernel launch on ctx's stream: cudaGetLastError(), and in debug
 * mode (CNN_CUDA_SYNC=1) a stream synchronisation so that a fault is
 * reported at the launch that caused it. `name` names the kernel. */
#define CNN_LAUNCHED(ctx, name)                                                          \
    do {                                                                                 \
        cudaError_t e_ = cudaGetLastError();                                             \
        if (e_ == cudaSuccess && cnn_cuda_ctx_sync_debug(ctx))                           \
            e_ = cudaStreamSynchronize((cudaStream_t)cnn_cuda_ctx_stream(ctx));          \
        if (e_ != cudaSuccess) CNN_CHECK_FAIL_(launch of name, cudaGetErrorString(e_));  \
    } while (0)

/* Same for a library call that launches work (cuDNN, cuBLAS) in debug mode. */
#define CNN_SYNC_IF_DEBUG(ctx)                                                           \
    do {                                                                                 \
        if (cnn_cuda_ctx_sync_debug(ctx))                                                \
            CNN_CUDA(cudaStreamSynchronize((cudaStream_t)cnn_cuda_ctx_stream(ctx)));     \
    } while (0)

#endif
