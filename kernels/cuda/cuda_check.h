/* cuda_check.h — one macro to check every CUDA runtime call. */
#ifndef CNN_CUDA_CHECK_H
#define CNN_CUDA_CHECK_H

#include <cuda_runtime.h>

#include "../../core/cnn.h"

/* Evaluates a cudaError_t call; on failure returns a CNN_ERR_CUDA status
 * naming the call, our file and line. */
#define CNN_CUDA(call)                                                                   \
    do {                                                                                 \
        cudaError_t e_ = (call);                                                         \
        if (e_ != cudaSuccess)                                                           \
            return cnn_error_at(__FILE__, __LINE__, CNN_ERR_CUDA, "%s failed: %s (%s:%d)", \
                                #call, cudaGetErrorString(e_), __FILE__, __LINE__);      \
    } while (0)

#endif
