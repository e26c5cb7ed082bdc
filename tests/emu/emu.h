/* emu.h — the CPU emulator of the CUDA op layer (tests/emu/): what its two
 * files share. A library linked with the emulator instead of the
 * kernels/cuda objects (lib/libcnn_emu.a) runs the whole GPU path on the
 * CPU: "device" memory is separate host memory, filled with NaN when
 * allocated, and every op checks that each pointer it is given lies inside
 * a live allocation of its context's device, aborting with the op's name
 * when one does not (a host pointer handed to a device op is the plumbing
 * bug this catches), and that streams touching the same memory are ordered
 * by events or host syncs. Ops compute with the CPU kernels.
 *
 * Environment: CNN_EMU_DEVICES (number of devices, 2 by default),
 * CNN_EMU_TRACE=1 (every op, allocation and free on stderr),
 * CNN_EMU_RACES=0 (no stream-ordering check), CNN_EMU_JITTER=N (each op
 * sleeps up to N us first, to vary how device threads interleave). Built
 * by `make`: the GPU suites again as build/tests/emu/check_gpu_*, the
 * emulator's own check build/tests/emu/check_emu, and with `make
 * emu-tools` the tools as build/emu/bin/ (e.g. build/emu/bin/cnntrain
 * --gpu 0). */
#ifndef CNN_EMU_H
#define CNN_EMU_H

#include <stdbool.h>
#include <stddef.h>

#include "kernels/cuda_ops.h"
#include "tests/stub_counts.h"

struct cnn_cuda_ctx {
    int device;
    int slot; /* index of the stream's clock (tests/emu/emu_context.c) */
    size_t ws_limit, ws_size;
    bool deterministic, tf32, sync_debug;
    bool copy_only; /* cnn_cuda_copy_ctx_create: no kernel or library launches */
};

/* Checks an access by an op on stream `by` to [p, p + bytes), memory of
 * mem's device, and records it: aborts unless the range lies inside one
 * live device allocation of that device, or when the access races with
 * another stream's (emu_context.c). bytes == 0 always passes. `op` and
 * `arg` name the culprit. */
void cnn_emu_access(const char *op, const char *arg, const cnn_cuda_ctx *mem,
                    const cnn_cuda_ctx *by, const void *p, size_t bytes, bool write);
/* Starts an op on ctx's stream: ticks its clock (after what the host has
 * seen finish) and traces it when CNN_EMU_TRACE is set. */
void cnn_emu_op(const char *op, const cnn_cuda_ctx *ctx);
/* Aborts when p is inside a live device allocation (a host pointer was
 * expected). */
void cnn_emu_check_host(const char *op, const char *arg, const void *p, size_t bytes);
/* Aborts unless ctx's device is the calling thread's current device (a
 * kernel, cuBLAS or cuDNN launch needs it; copies do not). */
void cnn_emu_need_current(const char *op, const cnn_cuda_ctx *ctx);
/* Live device bytes and the counts of allocations, frees, syncs,
 * downloads and pageable uploads (emu_context.c) are in
 * tests/stub_counts.h, which hostcuda implements too. */

/* Prints "emu: op (device K)" to stderr when CNN_EMU_TRACE is set. */
void cnn_emu_trace(const char *op, const cnn_cuda_ctx *ctx);

/* Shorthands for the ops on ctx's stream and memory: a pointer to const is
 * read, any other is written. Floats and ints. */
#define EMU_WRITES(p)                                                                   \
    _Generic((p), const float *: false, const int *: false, const void *: false,        \
             default: true)
#define EMU_DEV(ctx, op, p, bytes)                                                      \
    cnn_emu_access(op, #p, (ctx), (ctx), (p), (bytes), EMU_WRITES(p))
#define EMU_F(ctx, op, p, n) EMU_DEV(ctx, op, p, (size_t)(n) * sizeof(float))
#define EMU_I(ctx, op, p, n) EMU_DEV(ctx, op, p, (size_t)(n) * sizeof(int))
/* The same for a pointer that may be NULL. */
#define EMU_OPT_F(ctx, op, p, n)                                                        \
    do {                                                                                \
        if (p) EMU_F(ctx, op, p, n);                                                    \
    } while (0)

#endif
