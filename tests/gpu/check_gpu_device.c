/* check_gpu_device.c — the CUDA device layer; skips without a GPU. */
#include "../testutil.h"
#include "core/device.h"

START_TEST(test_describe_each_device)
{
    char buf[256];
    int n = cnn_cuda_device_count();
    for (int i = 0; i < n; i++) {
        ck_assert_msg(cnn_cuda_describe(i, buf, sizeof buf) == CNN_OK, "%s",
                      cnn_error_message());
        ck_assert(strlen(buf) > 0);
    }
    ck_assert_int_ne(cnn_cuda_describe(n, buf, sizeof buf), CNN_OK);
}
END_TEST

int main(void)
{
    if (cnn_cuda_device_count() == 0) {
        printf("check_gpu_device: SKIP (no CUDA device or no CUDA build)\n");
        return 0;
    }
    Suite *s = suite_create("gpu_device");
    TCase *tc = tcase_create("device");
    tcase_add_test(tc, test_describe_each_device);
    suite_add_tcase(s, tc);
    return cnn_test_run(s) != 0;
}
