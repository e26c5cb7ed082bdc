/* gpu.h — tensors on a CUDA device, for the net, the layers and the solver
 * (internal to the library).
 *
 * On a net that runs on GPUs every tensor gets a device mirror of its data
 * and grad arrays (cnn_tensor.dev) on its logical device's context. Each
 * array has a head saying which copy is current: the host's, the device's,
 * or both. Device layers ask for device pointers with the intent of their
 * access; host code (data layers, a layer with no GPU path, snapshots, the
 * tools) asks for the host copy to be made current, or says it wrote the
 * host copy. Copies happen only where a head says they must, so a training
 * step that stays on the GPU moves nothing but the input batch.
 *
 *   read:   current copy needed; uploads when only the host's is current.
 *   write:  every element will be overwritten; nothing is copied, and the
 *           device copy becomes the only current one.
 *   modify: read then written (accumulate, in place).
 *
 * Host-side calls wait for the context's stream when they download. */
#ifndef CNN_GPU_H
#define CNN_GPU_H

#include <stdbool.h>

#include "../kernels/cuda_ops.h"
#include "cnn.h"

/* Gives t a device mirror on ctx (sized to t's capacity, grown by
 * cnn_tensor_reshape). The host copy stays current; nothing is uploaded yet.
 * Attaching an already attached tensor to the same ctx is a no-op. */
cnn_status cnn_tensor_attach(cnn_tensor *t, cnn_cuda_ctx *ctx);
/* The context of t's mirror; NULL for a host-only tensor. */
cnn_cuda_ctx *cnn_tensor_ctx(const cnn_tensor *t);

/* Marks t as written by the host every step (an input batch, the output
 * of a layer that runs on the host): its uploads then go through pinned
 * staging and `copy`'s stream (a context from cnn_cuda_copy_ctx_create on
 * t's device), overlapping the work on t's own stream, and land with one
 * device-to-device copy on t's stream (core/gpu.c). Allocates the staging
 * now and again when t grows; a no-op when t is fed by `copy` already. */
cnn_status cnn_tensor_stream(cnn_tensor *t, cnn_cuda_ctx *copy);

/* Device pointers to t's data (count floats) with the given intent. t must
 * be attached; a tensor of count 0 gives NULL and succeeds. */
cnn_status cnn_gpu_read(cnn_tensor *t, const float **out);
cnn_status cnn_gpu_write(cnn_tensor *t, float **out);
cnn_status cnn_gpu_modify(cnn_tensor *t, float **out);
/* The same for t's grad. */
cnn_status cnn_gpu_read_grad(cnn_tensor *t, const float **out);
cnn_status cnn_gpu_write_grad(cnn_tensor *t, float **out);
cnn_status cnn_gpu_modify_grad(cnn_tensor *t, float **out);

/* Sets t's grad to zero without launching anything: the first access that
 * reads it (or the host's) makes the zeros; one that overwrites all of it
 * never needs them. Zeroing parameter gradients this way costs no kernel
 * when the first gradient op of the pass overwrites. */
cnn_status cnn_gpu_zero_grad(cnn_tensor *t);
/* t's grad for an op that adds into it: *accumulate is false when the
 * grad is still a pending zero, and the op must then overwrite (= instead
 * of +=) all of it. */
cnn_status cnn_gpu_accumulate_grad(cnn_tensor *t, float **out, bool *accumulate);

/* Uploads what only the host holds of t, then counts the host copies as
 * stale (they are downloaded again when read): the state a CUDA graph's
 * recording starts from. A pending zero grad stays pending. */
cnn_status cnn_gpu_device_only(cnn_tensor *t);
/* A tensor's heads and pending zero, packed, for CUDA graph replays: they
 * change the device copies without the accesses that keep the heads, so
 * the net saves the states a recorded pass left and sets them after each
 * replay. */
unsigned cnn_gpu_state(const cnn_tensor *t);
void cnn_gpu_set_state(cnn_tensor *t, unsigned state);
/* Whether a state's device data is current; whether its grad is a pending
 * zero. */
bool cnn_gpu_state_device_current(unsigned state);
bool cnn_gpu_state_grad_zero(unsigned state);

/* Makes t->data (t->grad) current on the host, downloading and waiting if
 * the device copy is newer. No-op for host-only tensors. */
cnn_status cnn_host_data(cnn_tensor *t);
cnn_status cnn_host_grad(cnn_tensor *t);
/* Says host code has written t->data (t->grad): the device copy is stale
 * and is uploaded on the next device read. No-op for host-only tensors. */
void cnn_host_wrote_data(cnn_tensor *t);
void cnn_host_wrote_grad(cnn_tensor *t);

/* Grows t's device arrays to t's capacity when smaller (cnn_tensor_reshape
 * calls it after making the host copy current and growing the host
 * arrays); after a growth the host copy is the only current one. */
cnn_status cnn_tensor_dev_fit(cnn_tensor *t);
/* Frees t's mirror (cnn_tensor_free calls it). */
void cnn_tensor_detach(cnn_tensor *t);

#endif
