/* cuda_runtime.h (tests/hostcuda) — the part of the CUDA runtime that
 * kernels/cuda/ uses, for compiling those .cu files as C++ with the host
 * compiler and running them on the CPU (lib/libcnn_hostcuda.a). Kernels
 * run block by block; the threads of a block run as fibers that switch at
 * __syncthreads. See tests/hostcuda/runtime.cpp for what is checked. */
#ifndef CNN_HOSTCUDA_RUNTIME_H
#define CNN_HOSTCUDA_RUNTIME_H

#include <cmath>
#include <cstddef>
#include <functional>
#include <tuple>
#include <type_traits>
#include <utility>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static /* blocks run one at a time on one host thread */

struct uint3 {
    unsigned x, y, z;
};
struct dim3 {
    unsigned x, y, z;
    dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

/* Where the running CUDA thread is. */
struct cnn_hc_where {
    uint3 thread, block;
    dim3 block_dim, grid_dim;
};
extern cnn_hc_where cnn_hc_at;
#define threadIdx (cnn_hc_at.thread)
#define blockIdx (cnn_hc_at.block)
#define blockDim (cnn_hc_at.block_dim)
#define gridDim (cnn_hc_at.grid_dim)

void __syncthreads(void);

/* Blocks run one at a time and threads switch only at barriers: atomics
 * need no locking. */
inline float atomicAdd(float *p, float v) { float o = *p; *p = o + v; return o; }
inline double atomicAdd(double *p, double v) { double o = *p; *p = o + v; return o; }
inline int atomicAdd(int *p, int v) { int o = *p; *p = o + v; return o; }
inline int atomicMin(int *p, int v) { int o = *p; if (v < o) *p = v; return o; }
inline int atomicMax(int *p, int v) { int o = *p; if (v > o) *p = v; return o; }

/* Correctly rounded intrinsics (the build uses -ffp-contract=off). */
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fsqrt_rn(float a) { return std::sqrt(a); }
using std::signbit;

/* CUDA's integer and float min/max overloads (mixed types compare in their
 * common type, as CUDA's do). */
template <class A, class B> inline std::common_type_t<A, B> min(A a, B b)
{
    std::common_type_t<A, B> x = a, y = b;
    return y < x ? y : x;
}
template <class A, class B> inline std::common_type_t<A, B> max(A a, B b)
{
    std::common_type_t<A, B> x = a, y = b;
    return y > x ? y : x;
}

typedef enum cudaError {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorInvalidDevice = 101,
    cudaErrorInvalidResourceHandle = 400,
    cudaErrorNotReady = 600,
    cudaErrorIllegalAddress = 700,
    cudaErrorPeerAccessAlreadyEnabled = 704,
    cudaErrorPeerAccessNotEnabled = 705,
    cudaErrorStreamCaptureUnsupported = 900,
    cudaErrorStreamCaptureInvalidated = 901,
    cudaErrorStreamCaptureUnjoined = 904,
    cudaErrorStreamCaptureIsolation = 905,
    cudaErrorCapturedEvent = 907,
    cudaErrorStreamCaptureWrongThread = 908,
    cudaErrorIllegalState = 401,
} cudaError_t;

typedef enum cudaMemcpyKind {
    cudaMemcpyHostToHost = 0,
    cudaMemcpyHostToDevice = 1,
    cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3,
    cudaMemcpyDefault = 4,
} cudaMemcpyKind;

typedef enum cudaStreamCaptureMode {
    cudaStreamCaptureModeGlobal = 0,
    cudaStreamCaptureModeThreadLocal = 1,
    cudaStreamCaptureModeRelaxed = 2,
} cudaStreamCaptureMode;

#define cudaStreamDefault 0x00
#define cudaStreamNonBlocking 0x01
#define cudaEventDefault 0x00
#define cudaEventDisableTiming 0x02

typedef struct CUstream_st *cudaStream_t;
typedef struct CUevent_st *cudaEvent_t;
typedef struct CUgraph_st *cudaGraph_t;
typedef struct CUgraphExec_st *cudaGraphExec_t;

struct cudaDeviceProp {
    char name[256];
    size_t totalGlobalMem;
    int major, minor;
    int multiProcessorCount;
};

const char *cudaGetErrorString(cudaError_t e);
cudaError_t cudaGetLastError(void);
cudaError_t cudaGetDeviceCount(int *n);
cudaError_t cudaGetDevice(int *d);
cudaError_t cudaSetDevice(int d);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int d);
cudaError_t cudaDeviceCanAccessPeer(int *can, int d, int peer);
cudaError_t cudaDeviceEnablePeerAccess(int peer, unsigned flags);

cudaError_t cudaMalloc(void **p, size_t bytes);
template <class T> cudaError_t cudaMalloc(T **p, size_t bytes) { return cudaMalloc((void **)p, bytes); }
cudaError_t cudaFree(void *p);
cudaError_t cudaMallocHost(void **p, size_t bytes);
cudaError_t cudaFreeHost(void *p);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t s);
cudaError_t cudaMemcpy2DAsync(void *dst, size_t dpitch, const void *src, size_t spitch,
                              size_t width, size_t height, cudaMemcpyKind kind, cudaStream_t s);
cudaError_t cudaMemcpyPeerAsync(void *dst, int ddev, const void *src, int sdev, size_t bytes,
                                cudaStream_t s);
cudaError_t cudaMemsetAsync(void *p, int value, size_t bytes, cudaStream_t s);

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t s);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned flags);
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned flags);
cudaError_t cudaEventDestroy(cudaEvent_t e);
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s);
cudaError_t cudaEventSynchronize(cudaEvent_t e);
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t end);

cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode mode);
cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t *g);
cudaError_t cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t g, unsigned long long flags);
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t s);
cudaError_t cudaGraphDestroy(cudaGraph_t g);
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec);

/* ---- for tests/hostcuda's library stand-ins and the launch macro -------- */

/* Runs op on stream s now, or records it when s is being captured. Returns
 * the error to report (a stream of another device than the current one). */
cudaError_t cnn_hc_enqueue(cudaStream_t s, const char *what, std::function<void()> op);
/* Aborts, naming `what`, unless p is null or lies in device memory that a
 * kernel on stream s may read (its device's, or a peer's with access). */
void cnn_hc_check_device_pointer(cudaStream_t s, const char *what, int arg, const void *p);
/* Runs every thread of a grid: body() is one CUDA thread. */
void cnn_hc_run_grid(const char *name, dim3 grid, dim3 block, const std::function<void()> &body);
/* Whether s is being recorded into a graph (it began a capture or joined one). */
bool cnn_hc_capturing(cudaStream_t s);
/* Sets the error cudaGetLastError() returns next (a bad launch). */
void cnn_hc_set_launch_error(cudaError_t e);

template <class T> void cnn_hc_check_arg(cudaStream_t s, const char *name, int i, const T &v)
{
    if constexpr (std::is_pointer_v<T>) cnn_hc_check_device_pointer(s, name, i, (const void *)v);
}

/* kernel<<<grid, block, shmem, stream>>>(args...): arguments converted to
 * the kernel's parameter types and copied now, as a launch does. */
template <class... P, class... A>
void cnn_hc_launch(const char *name, void (*kernel)(P...), dim3 grid, dim3 block, size_t shmem,
                   cudaStream_t s, A &&...a)
{
    (void)shmem;
    if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.y > 65535 || grid.z > 65535 ||
        block.x * block.y * block.z == 0 || block.x * block.y * block.z > 1024) {
        cnn_hc_set_launch_error(cudaErrorInvalidConfiguration);
        return;
    }
    std::tuple<std::decay_t<P>...> args(std::forward<A>(a)...);
    std::apply([&](const auto &...v) {
        int i = 0;
        (cnn_hc_check_arg(s, name, i++, v), ...);
    }, args);
    cudaError_t e = cnn_hc_enqueue(s, name, [=] {
        cnn_hc_run_grid(name, grid, block, [&] { std::apply(kernel, args); });
    });
    if (e != cudaSuccess) cnn_hc_set_launch_error(e);
}

#endif
