/* device.cu — CUDA device discovery for a CUDA build. */
#include <stdio.h>

#include "../../core/device.h"
#include "cuda_check.h"

extern "C" int cnn_cuda_device_count(void)
{
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError(); /* no driver or no device: clear the sticky error */
        return 0;
    }
    return n;
}

extern "C" cnn_status cnn_cuda_describe(int device, char *buf, size_t n)
{
    cudaDeviceProp p;
    int count = cnn_cuda_device_count();
    if (device < 0 || device >= count)
        return CNN_ERROR(CNN_ERR_ARG, "CUDA device %d does not exist (%d found)", device, count);
    CNN_CUDA(cudaGetDeviceProperties(&p, device));
    snprintf(buf, n, "GPU %d: %s, %.1f GiB, compute capability %d.%d", device, p.name,
             p.totalGlobalMem / 1073741824.0, p.major, p.minor);
    return CNN_OK;
}
