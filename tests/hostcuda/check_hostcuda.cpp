/* check_hostcuda.cpp — the rules tests/hostcuda enforces, each shown to
 * fire: barriers that synchronise, a missing barrier that shows (a
 * kernel's first launch runs thread 0 last), a missing event wait between
 * streams that shows, a divergent barrier, writes and reads past device
 * memory, host or foreign-device pointers handed to a kernel, bad launch
 * geometry, a launch on another device's stream, and the stream capture
 * rules (replay by value, synchronisation, foreign events, forks not
 * joined back, pageable copies). A rule that aborts is run in a forked
 * child (Check's default) and expected to raise SIGABRT. */
#include <check.h>
#include <signal.h>

#include <cstdlib>
#include <vector>

#include "cuda_runtime.h"

#define LAUNCH(k, grid, block, s, ...) cnn_hc_launch(#k, k, grid, block, 0, s, __VA_ARGS__)

static float *dev_floats(size_t n)
{
    float *p = nullptr;
    ck_assert_int_eq(cudaMalloc(&p, n * sizeof(float)), cudaSuccess);
    return p;
}

static cudaStream_t new_stream()
{
    cudaStream_t s;
    ck_assert_int_eq(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), cudaSuccess);
    return s;
}

/* ---- kernels ---------------------------------------------------------------- */

__global__ void fill(float *x, int n, float v)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] = v;
}

__global__ void add_one(float *x) { x[threadIdx.x] += 1.f; }

/* Sums 256 values with a shared-memory tree: wrong without its barriers. */
__global__ void tree_sum(const float *x, float *out)
{
    __shared__ float sh[256];
    sh[threadIdx.x] = x[threadIdx.x];
    __syncthreads();
    for (int s = 128; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) sh[threadIdx.x] += sh[threadIdx.x + s];
        __syncthreads();
    }
    if (threadIdx.x == 0) *out = sh[0];
}

/* Thread 0 writes a shared value the others read with no barrier between:
 * a bug that running thread 0 first would hide. */
__global__ void missing_barrier(const float *x, float *y)
{
    __shared__ float v;
    if (threadIdx.x == 0) v = -1.f;
    __syncthreads();
    if (threadIdx.x == 0) v = x[0];
    y[threadIdx.x] = v;
    __syncthreads();
}

__global__ void early_return_then_barrier(float *x)
{
    if (threadIdx.x >= 8) return;
    __syncthreads();
    x[threadIdx.x] = 1.f;
}

__global__ void copy_shifted(const float *x, float *y, int shift) { y[threadIdx.x] = x[threadIdx.x + shift]; }

__global__ void write_at(float *x, int i) { x[i] = 1.f; }

/* ---- kernels and memory ------------------------------------------------------- */

START_TEST(test_barriers_synchronise)
{
    std::vector<float> h(256);
    for (int i = 0; i < 256; i++) h[i] = (float)(i % 7);
    float *x = dev_floats(256), *out = dev_floats(1), r = 0;
    ck_assert_int_eq(cudaMemcpyAsync(x, h.data(), 1024, cudaMemcpyHostToDevice, 0), cudaSuccess);
    LAUNCH(tree_sum, 1, 256, 0, x, out);
    ck_assert_int_eq(cudaGetLastError(), cudaSuccess);
    ck_assert_int_eq(cudaMemcpyAsync(&r, out, 4, cudaMemcpyDeviceToHost, 0), cudaSuccess);
    float want = 0;
    for (float v : h) want += v;
    ck_assert_float_eq(r, want);
}
END_TEST

START_TEST(test_missing_barrier_shows)
{
    float *x = dev_floats(1), *y = dev_floats(64), h[64], five = 5.f;
    ck_assert_int_eq(cudaMemcpyAsync(x, &five, 4, cudaMemcpyHostToDevice, 0), cudaSuccess);
    LAUNCH(missing_barrier, 1, 64, 0, x, y);
    ck_assert_int_eq(cudaMemcpyAsync(h, y, sizeof h, cudaMemcpyDeviceToHost, 0), cudaSuccess);
    int stale = 0;
    for (float v : h) stale += v != 5.f;
    ck_assert_msg(stale > 0, "every thread saw thread 0's write: the bug is hidden");
}
END_TEST

START_TEST(test_fresh_memory_is_nan)
{
    float *x = dev_floats(4), h[4];
    ck_assert_int_eq(cudaMemcpyAsync(h, x, 16, cudaMemcpyDeviceToHost, 0), cudaSuccess);
    for (float v : h) ck_assert(std::isnan(v));
}
END_TEST

START_TEST(test_divergent_barrier_aborts)
{
    LAUNCH(early_return_then_barrier, 1, 32, 0, dev_floats(32));
    cudaStreamSynchronize(0); /* work runs when the host waits for it */
}
END_TEST

START_TEST(test_write_past_end_aborts)
{
    LAUNCH(write_at, 1, 1, 0, dev_floats(10), 10);
    cudaStreamSynchronize(0); /* work runs when the host waits for it */
}
END_TEST

START_TEST(test_write_before_start_aborts)
{
    LAUNCH(write_at, 1, 1, 0, dev_floats(10), -1);
    cudaStreamSynchronize(0); /* work runs when the host waits for it */
}
END_TEST

START_TEST(test_read_past_end_aborts)
{
    LAUNCH(copy_shifted, 1, 64, 0, dev_floats(64), dev_floats(64), 64);
    cudaStreamSynchronize(0); /* work runs when the host waits for it */
}
END_TEST

START_TEST(test_host_pointer_aborts)
{
    static float host[32];
    LAUNCH(fill, 1, 32, 0, host, 32, 0.f);
}
END_TEST

START_TEST(test_bad_geometry_is_an_error)
{
    float *x = dev_floats(4);
    LAUNCH(fill, 1, 2048, 0, x, 4, 0.f);
    ck_assert_int_eq(cudaGetLastError(), cudaErrorInvalidConfiguration);
    LAUNCH(fill, 0, 32, 0, x, 4, 0.f);
    ck_assert_int_eq(cudaGetLastError(), cudaErrorInvalidConfiguration);
    ck_assert_int_eq(cudaGetLastError(), cudaSuccess);
}
END_TEST

START_TEST(test_copy_out_of_range_is_an_error)
{
    float *x = dev_floats(4), h[8] = {0};
    ck_assert_int_eq(cudaMemcpyAsync(x, h, 32, cudaMemcpyHostToDevice, 0), cudaErrorInvalidValue);
    ck_assert_int_eq(cudaMemcpyAsync(h, h + 4, 16, cudaMemcpyDeviceToHost, 0),
                     cudaErrorInvalidValue);
    cudaGetLastError();
}
END_TEST

/* ---- devices -------------------------------------------------------------------- */

START_TEST(test_launch_on_another_devices_stream_is_an_error)
{
    ck_assert_int_eq(cudaSetDevice(1), cudaSuccess);
    cudaStream_t s1 = new_stream();
    float *x1 = dev_floats(4);
    ck_assert_int_eq(cudaSetDevice(0), cudaSuccess);
    LAUNCH(fill, 1, 4, s1, x1, 4, 0.f);
    ck_assert_int_eq(cudaGetLastError(), cudaErrorInvalidResourceHandle);
}
END_TEST

START_TEST(test_other_devices_memory_without_peer_aborts)
{
    ck_assert_int_eq(cudaSetDevice(1), cudaSuccess);
    float *x1 = dev_floats(4);
    ck_assert_int_eq(cudaSetDevice(0), cudaSuccess);
    LAUNCH(fill, 1, 4, 0, x1, 4, 0.f);
}
END_TEST

START_TEST(test_peer_access_allows_other_devices_memory)
{
    ck_assert_int_eq(cudaSetDevice(1), cudaSuccess);
    float *x1 = dev_floats(4);
    ck_assert_int_eq(cudaSetDevice(0), cudaSuccess);
    ck_assert_int_eq(cudaDeviceEnablePeerAccess(1, 0), cudaSuccess);
    LAUNCH(fill, 1, 4, 0, x1, 4, 2.f);
    ck_assert_int_eq(cudaGetLastError(), cudaSuccess);
}
END_TEST

/* ---- streams ------------------------------------------------------------------------ */

/* Stream b copies what stream a wrote: right with an event wait between,
 * stale without (work runs as late as the host's waits allow). */
static float copied_across_streams(bool wait)
{
    cudaStream_t a = new_stream(), b = new_stream();
    cudaEvent_t ev;
    ck_assert_int_eq(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming), cudaSuccess);
    float *x = dev_floats(4), *y = dev_floats(4), h = 0;
    LAUNCH(fill, 1, 4, a, x, 4, 0.f);
    LAUNCH(fill, 1, 4, a, y, 4, 0.f);
    ck_assert_int_eq(cudaStreamSynchronize(a), cudaSuccess);
    LAUNCH(fill, 1, 4, a, x, 4, 7.f);
    ck_assert_int_eq(cudaEventRecord(ev, a), cudaSuccess);
    if (wait) ck_assert_int_eq(cudaStreamWaitEvent(b, ev, 0), cudaSuccess);
    ck_assert_int_eq(cudaMemcpyAsync(y, x, 16, cudaMemcpyDeviceToDevice, b), cudaSuccess);
    ck_assert_int_eq(cudaMemcpyAsync(&h, y, 4, cudaMemcpyDeviceToHost, b), cudaSuccess);
    ck_assert_int_eq(cudaStreamSynchronize(a), cudaSuccess);
    return h;
}

START_TEST(test_missing_event_wait_shows)
{
    ck_assert_float_eq(copied_across_streams(true), 7.f);
    ck_assert_float_eq(copied_across_streams(false), 0.f);
}
END_TEST

/* ---- stream capture -------------------------------------------------------------- */

START_TEST(test_graph_replays_captured_arguments)
{
    cudaStream_t s = new_stream();
    float *x = dev_floats(4), h[4];
    LAUNCH(fill, 1, 4, s, x, 4, 0.f);
    ck_assert_int_eq(cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed), cudaSuccess);
    LAUNCH(add_one, 1, 4, s, x);
    cudaGraph_t g;
    cudaGraphExec_t e;
    ck_assert_int_eq(cudaStreamEndCapture(s, &g), cudaSuccess);
    ck_assert_int_eq(cudaMemcpyAsync(h, x, 16, cudaMemcpyDeviceToHost, s), cudaSuccess);
    ck_assert_float_eq(h[0], 0.f); /* recorded, not run */
    ck_assert_int_eq(cudaGraphInstantiate(&e, g, 0), cudaSuccess);
    ck_assert_int_eq(cudaGraphLaunch(e, s), cudaSuccess);
    ck_assert_int_eq(cudaGraphLaunch(e, s), cudaSuccess);
    ck_assert_int_eq(cudaMemcpyAsync(h, x, 16, cudaMemcpyDeviceToHost, s), cudaSuccess);
    ck_assert_float_eq(h[3], 2.f);
    cudaGraphExecDestroy(e);
    cudaGraphDestroy(g);
}
END_TEST

START_TEST(test_sync_in_capture_invalidates_it)
{
    cudaStream_t s = new_stream();
    ck_assert_int_eq(cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed), cudaSuccess);
    ck_assert_int_eq(cudaStreamSynchronize(s), cudaErrorStreamCaptureUnsupported);
    cudaGraph_t g;
    ck_assert_int_eq(cudaStreamEndCapture(s, &g), cudaErrorStreamCaptureInvalidated);
    cudaGetLastError();
}
END_TEST

START_TEST(test_wait_on_uncaptured_event_is_an_error)
{
    cudaStream_t s = new_stream(), other = new_stream();
    cudaEvent_t ev;
    ck_assert_int_eq(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming), cudaSuccess);
    ck_assert_int_eq(cudaEventRecord(ev, other), cudaSuccess);
    ck_assert_int_eq(cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed), cudaSuccess);
    ck_assert_int_eq(cudaStreamWaitEvent(s, ev, 0), cudaErrorStreamCaptureIsolation);
    cudaGraph_t g;
    ck_assert_int_eq(cudaStreamEndCapture(s, &g), cudaErrorStreamCaptureInvalidated);
    cudaGetLastError();
}
END_TEST

/* A second stream joins through an event; the capture ends cleanly only
 * once the origin waits on an event recorded after that stream's work. */
static cudaError_t fork_capture(bool join)
{
    cudaStream_t s = new_stream(), side = new_stream();
    cudaEvent_t forked, joined;
    cudaEventCreateWithFlags(&forked, cudaEventDisableTiming);
    cudaEventCreateWithFlags(&joined, cudaEventDisableTiming);
    float *x = dev_floats(4);
    ck_assert_int_eq(cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed), cudaSuccess);
    ck_assert_int_eq(cudaEventRecord(forked, s), cudaSuccess);
    ck_assert_int_eq(cudaStreamWaitEvent(side, forked, 0), cudaSuccess);
    ck_assert(cnn_hc_capturing(side));
    LAUNCH(add_one, 1, 4, side, x);
    if (join) {
        ck_assert_int_eq(cudaEventRecord(joined, side), cudaSuccess);
        ck_assert_int_eq(cudaStreamWaitEvent(s, joined, 0), cudaSuccess);
    }
    cudaGraph_t g = nullptr;
    cudaError_t e = cudaStreamEndCapture(s, &g);
    cudaGetLastError();
    ck_assert(!cnn_hc_capturing(side));
    if (g) cudaGraphDestroy(g);
    return e;
}

START_TEST(test_fork_must_be_joined)
{
    ck_assert_int_eq(fork_capture(true), cudaSuccess);
    ck_assert_int_eq(fork_capture(false), cudaErrorStreamCaptureUnjoined);
}
END_TEST

START_TEST(test_pageable_copy_in_capture_is_an_error)
{
    cudaStream_t s = new_stream();
    float *x = dev_floats(4), *pin = nullptr, pageable[4] = {0};
    ck_assert_int_eq(cudaMallocHost((void **)&pin, 16), cudaSuccess);
    ck_assert_int_eq(cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed), cudaSuccess);
    ck_assert_int_eq(cudaMemcpyAsync(x, pin, 16, cudaMemcpyHostToDevice, s), cudaSuccess);
    ck_assert_int_eq(cudaMemcpyAsync(x, pageable, 16, cudaMemcpyHostToDevice, s),
                     cudaErrorStreamCaptureUnsupported);
    cudaGraph_t g;
    ck_assert_int_eq(cudaStreamEndCapture(s, &g), cudaErrorStreamCaptureInvalidated);
    cudaGetLastError();
    cudaFreeHost(pin);
}
END_TEST

int main(void)
{
    Suite *su = suite_create("hostcuda");
    TCase *ok = tcase_create("rules");
    tcase_add_test(ok, test_barriers_synchronise);
    tcase_add_test(ok, test_missing_barrier_shows);
    tcase_add_test(ok, test_fresh_memory_is_nan);
    tcase_add_test(ok, test_bad_geometry_is_an_error);
    tcase_add_test(ok, test_copy_out_of_range_is_an_error);
    tcase_add_test(ok, test_launch_on_another_devices_stream_is_an_error);
    tcase_add_test(ok, test_peer_access_allows_other_devices_memory);
    tcase_add_test(ok, test_missing_event_wait_shows);
    tcase_add_test(ok, test_graph_replays_captured_arguments);
    tcase_add_test(ok, test_sync_in_capture_invalidates_it);
    tcase_add_test(ok, test_wait_on_uncaptured_event_is_an_error);
    tcase_add_test(ok, test_fork_must_be_joined);
    tcase_add_test(ok, test_pageable_copy_in_capture_is_an_error);
    suite_add_tcase(su, ok);
    TCase *aborts = tcase_create("aborts");
    tcase_add_test_raise_signal(aborts, test_divergent_barrier_aborts, SIGABRT);
    tcase_add_test_raise_signal(aborts, test_write_past_end_aborts, SIGABRT);
    tcase_add_test_raise_signal(aborts, test_write_before_start_aborts, SIGABRT);
    tcase_add_test_raise_signal(aborts, test_read_past_end_aborts, SIGABRT);
    tcase_add_test_raise_signal(aborts, test_host_pointer_aborts, SIGABRT);
    tcase_add_test_raise_signal(aborts, test_other_devices_memory_without_peer_aborts, SIGABRT);
    suite_add_tcase(su, aborts);
    SRunner *sr = srunner_create(su);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed != 0;
}
