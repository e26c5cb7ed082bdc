/* net_internal.h — what layers may ask of the net that owns them. */
#ifndef CNN_NET_INTERNAL_H
#define CNN_NET_INTERNAL_H

#include "../layers/layer.h"

/* Parameter `idx` of layer `layer`: when `share` names a parameter another
 * layer already created, that tensor (shapes must match); otherwise a new
 * tensor of `shape`, filled by `f`, owned by the net. */
cnn_status cnn_net_param_tensor(cnn_net *n, const char *layer, int idx, const char *share,
                                int ndim, const int *shape, const cnn_filler *f,
                                cnn_tensor **out);

/* The layer objects, for tools inside the library (weights, solver). */
cnn_layer *cnn_net_layer(const cnn_net *n, int i);

/* The CUDA context of logical device `device` of a GPU net; NULL on the CPU. */
struct cnn_cuda_ctx *cnn_net_cuda(const cnn_net *n, int device);
/* GPU nets: *dev_dst (a float in device 0's memory) += the weighted loss of
 * the last forward pass, queued on device 0's stream with no host wait. */
cnn_status cnn_net_loss_device(cnn_net *n, float *dev_dst);
/* Layer i backward with its propagate_down as it stands (GPU function or
 * CPU fallback, like the passes). */
cnn_status cnn_net_run_backward(cnn_net *n, int i);
/* GPU nets: each layer's check_gpu (input errors found on the device since
 * the last call, such as bad labels); a host wait. No-op on the CPU. */
cnn_status cnn_net_check_gpu(cnn_net *n);
/* cnn_net_zero_param_grads with a status (device work can fail). */
cnn_status cnn_net_zero_grads(cnn_net *n);

#endif
