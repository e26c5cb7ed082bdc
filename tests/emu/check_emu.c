/* check_emu.c — the CUDA emulator itself (tests/emu/): device memory is
 * NaN-filled and tracked, misused pointers abort, a kernel for a device
 * that is not current aborts, unordered accesses from two streams abort
 * while event waits and host syncs order them, and ops compute what the
 * CPU kernels do. Runs forked (no CUDA here): each abort
 * is an expected SIGABRT. */
#include <signal.h>

#include "../testutil.h"
#include "core/device.h"
#include "emu.h"
#include "kernels/cuda_ops.h"

static cnn_cuda_ctx *ctx(int device)
{
    cnn_cuda_ctx *c = NULL;
    ck_assert_msg(cnn_cuda_ctx_create(device, &c) == CNN_OK, "%s", cnn_error_message());
    return c;
}

static float *dev_floats(cnn_cuda_ctx *c, size_t n)
{
    void *p = NULL;
    ck_assert(cnn_cuda_malloc(c, n * sizeof(float), &p) == CNN_OK);
    return p;
}

START_TEST(test_devices_and_nan_fill)
{
    ck_assert_int_eq(cnn_cuda_device_count(), 2);
    char buf[128];
    ck_assert(cnn_cuda_describe(1, buf, sizeof buf) == CNN_OK);
    ck_assert_str_eq(buf, "emulated CUDA device 1 (CPU)");
    ck_assert(cnn_cuda_describe(2, buf, sizeof buf) != CNN_OK);
    cnn_cuda_ctx *c = NULL;
    ck_assert(cnn_cuda_ctx_create(2, &c) != CNN_OK);
    c = ctx(0);
    size_t before = cnn_stub_live_device_bytes();
    float *d = dev_floats(c, 5), h[5];
    ck_assert_uint_eq(cnn_stub_live_device_bytes(), before + 5 * sizeof(float));
    ck_assert(cnn_cuda_download(c, h, d, sizeof h) == CNN_OK);
    for (int i = 0; i < 5; i++) ck_assert(isnan(h[i]));
    cnn_cuda_free(c, d);
    ck_assert_uint_eq(cnn_stub_live_device_bytes(), before);
    cnn_cuda_ctx_free(c);
}
END_TEST

START_TEST(test_ops_compute)
{
    cnn_cuda_ctx *c = ctx(1);
    float *x = dev_floats(c, 4), *y = dev_floats(c, 4), *out = dev_floats(c, 1);
    float hx[4] = {1, -2, 3, -4}, hy[4];
    ck_assert(cnn_cuda_upload(c, x, hx, sizeof hx) == CNN_OK);
    ck_assert(cnn_cuda_relu_forward(c, 4, 0.f, x, y) == CNN_OK);
    ck_assert(cnn_cuda_asum(c, 4, x, out) == CNN_OK);
    ck_assert(cnn_cuda_download(c, hy, y, sizeof hy) == CNN_OK);
    ck_assert(cnn_cuda_ctx_sync(c) == CNN_OK);
    ck_assert(hy[0] == 1 && hy[1] == 0 && hy[2] == 3 && hy[3] == 0);
    float s;
    ck_assert(cnn_cuda_download(c, &s, out, sizeof s) == CNN_OK);
    ck_assert(s == 10.f);
    cnn_cuda_free(c, x);
    cnn_cuda_free(c, y);
    cnn_cuda_free(c, out);
    cnn_cuda_ctx_free(c);
}
END_TEST

START_TEST(test_host_pointer_aborts)
{
    cnn_cuda_ctx *c = ctx(0);
    float host[4] = {0};
    cnn_cuda_scale(c, 4, 2.f, host);
}
END_TEST

START_TEST(test_overrun_aborts)
{
    cnn_cuda_ctx *c = ctx(0);
    float *d = dev_floats(c, 4);
    cnn_cuda_set(c, 5, 0.f, d);
}
END_TEST

START_TEST(test_other_device_aborts)
{
    cnn_cuda_ctx *a = ctx(0), *b = ctx(1);
    float *d = dev_floats(a, 4);
    ck_assert(cnn_cuda_ctx_use(b) == CNN_OK);
    cnn_cuda_set(b, 4, 0.f, d);
}
END_TEST

/* A kernel for device 0's stream while device 1 is current. */
START_TEST(test_wrong_current_device_aborts)
{
    cnn_cuda_ctx *a = ctx(0), *b = ctx(1);
    float *d = dev_floats(a, 4);
    (void)b;
    ck_assert(cnn_cuda_ctx_use(b) == CNN_OK);
    cnn_cuda_set(a, 4, 0.f, d);
}
END_TEST

START_TEST(test_device_pointer_as_host_aborts)
{
    cnn_cuda_ctx *c = ctx(0);
    float *d = dev_floats(c, 4), *e = dev_floats(c, 4);
    cnn_cuda_upload(c, d, e, 4 * sizeof(float));
}
END_TEST

/* A copy-only context has no library handles: a launch on it is a bug. */
START_TEST(test_copy_ctx_launch_aborts)
{
    cnn_cuda_ctx *c = ctx(0), *copy = NULL;
    ck_assert(cnn_cuda_copy_ctx_create(0, &copy) == CNN_OK);
    float *d = dev_floats(c, 4);
    cnn_cuda_set(copy, 4, 0.f, d);
}
END_TEST

START_TEST(test_double_free_aborts)
{
    cnn_cuda_ctx *c = ctx(0);
    float *d = dev_floats(c, 4);
    cnn_cuda_free(c, d);
    cnn_cuda_free(c, d);
}
END_TEST

/* Stream b reads what stream a wrote, with no ordering: a race. */
START_TEST(test_unordered_read_aborts)
{
    cnn_cuda_ctx *a = ctx(0), *b = ctx(0);
    float *d = dev_floats(a, 4), *e = dev_floats(b, 4);
    ck_assert(cnn_cuda_set(a, 4, 1.f, d) == CNN_OK);
    cnn_cuda_copy(b, 4, d, e);
}
END_TEST

/* Stream b overwrites what stream a may still be reading: a race too. */
START_TEST(test_unordered_overwrite_aborts)
{
    cnn_cuda_ctx *a = ctx(0), *b = ctx(0);
    float *d = dev_floats(a, 4), *e = dev_floats(a, 4);
    ck_assert(cnn_cuda_set(b, 4, 1.f, d) == CNN_OK);
    ck_assert(cnn_cuda_ctx_sync(b) == CNN_OK);
    ck_assert(cnn_cuda_copy(a, 4, d, e) == CNN_OK);
    cnn_cuda_set(b, 4, 2.f, d);
}
END_TEST

/* Across devices, a peer copy that does not wait for its producer. */
START_TEST(test_unordered_peer_copy_aborts)
{
    cnn_cuda_ctx *a = ctx(0), *b = ctx(1);
    float *d = dev_floats(a, 4), *e = dev_floats(b, 4);
    ck_assert(cnn_cuda_ctx_use(a) == CNN_OK);
    ck_assert(cnn_cuda_set(a, 4, 1.f, d) == CNN_OK);
    cnn_cuda_copy_peer(b, e, a, d, 4 * sizeof(float));
}
END_TEST

/* A pinned buffer refilled and uploaded again before the host saw its first
 * upload finish: on a GPU the first copy could read the new contents. */
START_TEST(test_pinned_reuse_unsynced_aborts)
{
    cnn_cuda_ctx *a = ctx(0);
    float *d = dev_floats(a, 4), *h = NULL;
    ck_assert(cnn_cuda_malloc_host(4 * sizeof(float), (void **)&h) == CNN_OK);
    ck_assert(cnn_cuda_upload(a, d, h, 4 * sizeof(float)) == CNN_OK);
    cnn_cuda_upload(a, d, h, 4 * sizeof(float));
}
END_TEST

/* The same with an event the host waits for in between: no abort. */
START_TEST(test_pinned_reuse_after_event_passes)
{
    cnn_cuda_ctx *a = ctx(0);
    float *d = dev_floats(a, 4), *h = NULL;
    cnn_cuda_event *done = NULL;
    ck_assert(cnn_cuda_malloc_host(4 * sizeof(float), (void **)&h) == CNN_OK);
    ck_assert(cnn_cuda_event_create(a, false, &done) == CNN_OK);
    for (int i = 0; i < 3; i++) {
        ck_assert(cnn_cuda_event_sync(done) == CNN_OK);
        for (int k = 0; k < 4; k++) h[k] = (float)(i + k);
        ck_assert(cnn_cuda_upload(a, d, h, 4 * sizeof(float)) == CNN_OK);
        ck_assert(cnn_cuda_event_record(a, done) == CNN_OK);
    }
    ck_assert(cnn_cuda_event_sync(done) == CNN_OK);
    float back[4];
    ck_assert(cnn_cuda_download(a, back, d, sizeof back) == CNN_OK);
    ck_assert(back[0] == 2.f && back[3] == 5.f);
    cnn_cuda_event_free(done);
    cnn_cuda_free_host(h);
    cnn_cuda_free(a, d);
    cnn_cuda_ctx_free(a);
}
END_TEST

/* Events and host syncs order streams: no abort. */
START_TEST(test_ordered_accesses_pass)
{
    cnn_cuda_ctx *a = ctx(0), *b = ctx(1), *c = ctx(1);
    float *d = dev_floats(a, 4), *e = dev_floats(b, 4);
    cnn_cuda_event *ev = NULL, *back = NULL;
    ck_assert(cnn_cuda_event_create(a, false, &ev) == CNN_OK);
    ck_assert(cnn_cuda_event_create(b, false, &back) == CNN_OK);
    ck_assert(cnn_cuda_ctx_use(a) == CNN_OK);
    ck_assert(cnn_cuda_set(a, 4, 1.f, d) == CNN_OK);
    ck_assert(cnn_cuda_event_record(a, ev) == CNN_OK);
    ck_assert(cnn_cuda_wait_event(b, ev) == CNN_OK);
    ck_assert(cnn_cuda_copy_peer(b, e, a, d, 4 * sizeof(float)) == CNN_OK);
    /* a may overwrite d once it has waited for b's copy. */
    ck_assert(cnn_cuda_event_record(b, back) == CNN_OK);
    ck_assert(cnn_cuda_wait_event(a, back) == CNN_OK);
    ck_assert(cnn_cuda_set(a, 4, 2.f, d) == CNN_OK);
    /* c uses e after the host synced b. */
    ck_assert(cnn_cuda_ctx_sync(b) == CNN_OK);
    ck_assert(cnn_cuda_ctx_use(c) == CNN_OK);
    ck_assert(cnn_cuda_scale(c, 4, 3.f, e) == CNN_OK);
    float h[4];
    ck_assert(cnn_cuda_download(c, h, e, sizeof h) == CNN_OK);
    ck_assert(h[0] == 3.f && h[3] == 3.f);
    cnn_cuda_event_free(ev);
    cnn_cuda_event_free(back);
    cnn_cuda_free(a, d);
    cnn_cuda_free(b, e);
    cnn_cuda_ctx_free(a);
    cnn_cuda_ctx_free(b);
    cnn_cuda_ctx_free(c);
}
END_TEST

int main(void)
{
    setenv("CNN_EMU_DEVICES", "2", 1);
    Suite *s = suite_create("emu");
    TCase *tc = tcase_create("emu");
    tcase_add_test(tc, test_devices_and_nan_fill);
    tcase_add_test(tc, test_ops_compute);
    tcase_add_test(tc, test_ordered_accesses_pass);
    tcase_add_test(tc, test_pinned_reuse_after_event_passes);
    tcase_add_test_raise_signal(tc, test_pinned_reuse_unsynced_aborts, SIGABRT);
    tcase_add_test_raise_signal(tc, test_host_pointer_aborts, SIGABRT);
    tcase_add_test_raise_signal(tc, test_overrun_aborts, SIGABRT);
    tcase_add_test_raise_signal(tc, test_other_device_aborts, SIGABRT);
    tcase_add_test_raise_signal(tc, test_wrong_current_device_aborts, SIGABRT);
    tcase_add_test_raise_signal(tc, test_device_pointer_as_host_aborts, SIGABRT);
    tcase_add_test_raise_signal(tc, test_double_free_aborts, SIGABRT);
    tcase_add_test_raise_signal(tc, test_copy_ctx_launch_aborts, SIGABRT);
    tcase_add_test_raise_signal(tc, test_unordered_read_aborts, SIGABRT);
    tcase_add_test_raise_signal(tc, test_unordered_overwrite_aborts, SIGABRT);
    tcase_add_test_raise_signal(tc, test_unordered_peer_copy_aborts, SIGABRT);
    suite_add_tcase(s, tc);
    return cnn_test_run(s) != 0;
}
