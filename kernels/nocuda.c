/* nocuda.c — the device API in a build without CUDA: no devices. */
#include "../core/device.h"

int cnn_cuda_device_count(void) { return 0; }

cnn_status cnn_cuda_describe(int device, char *buf, size_t n)
{
    (void)buf;
    (void)n;
    return CNN_ERROR(CNN_ERR_UNSUPPORTED, "CUDA device %d: this build has no CUDA support "
                                          "(rebuild with CUDA=1)", device);
}
