/* device.h — what the library knows about accelerators. In a build without
 * CUDA these report no devices (kernels/nocuda.c). */
#ifndef CNN_DEVICE_H
#define CNN_DEVICE_H

#include "cnn.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Number of usable CUDA devices; 0 without a driver, a GPU or CUDA support. */
int cnn_cuda_device_count(void);
/* One line describing CUDA device `device` (name, memory, capability). */
cnn_status cnn_cuda_describe(int device, char *buf, size_t n);

#ifdef __cplusplus
}
#endif
#endif
