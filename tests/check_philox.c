/* check_philox.c — the counter-based RNG behind dropout masks: Philox4x32-10
 * against Random123's known-answer vectors, the stream layout, and masks
 * (the CUDA side is compared with these in tests/gpu/check_gpu_ops.c). */
#include "testutil.h"
#include "kernels/kernels.h"
#include "kernels/philox.h"

/* Random123 kat_vectors: counter, key -> output. */
static const uint32_t kat[3][10] = {
    {0, 0, 0, 0, 0, 0, 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
    {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0x408f276d,
     0x41c83b0e, 0xa20bc7c6, 0x6d5451fd},
    {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0, 0xd16cfe09,
     0x94fdcceb, 0x5001e420, 0x24126ea1},
};

START_TEST(test_known_answers)
{
    for (int t = 0; t < 3; t++) {
        cnn_philox4 c = {{kat[t][0], kat[t][1], kat[t][2], kat[t][3]}};
        cnn_philox4 r = cnn_philox4x32_10(c, kat[t][4], kat[t][5]);
        for (int j = 0; j < 4; j++)
            ck_assert_msg(r.v[j] == kat[t][6 + j], "vector %d word %d: %08x, want %08x", t, j,
                          r.v[j], kat[t][6 + j]);
    }
}
END_TEST

START_TEST(test_stream_layout)
{
    enum { N = 4099 };
    static float u[N];
    uint64_t seed = 0x123456789abcdefULL, off = 77;
    cnn_k_philox_uniform(N, seed, off, u);
    for (size_t i = 0; i < N; i += 97) {
        cnn_philox4 r = cnn_philox_block(seed, off, i / 4);
        ck_assert_float_eq(u[i], cnn_philox_to_unit(r.v[i % 4]));
    }
    double mean = 0;
    for (size_t i = 0; i < N; i++) {
        ck_assert(u[i] >= 0.f && u[i] < 1.f);
        mean += u[i] / N;
    }
    ck_assert_msg(fabs(mean - 0.5) < 0.02, "mean %g", mean);
}
END_TEST

START_TEST(test_mask)
{
    enum { N = 100003 };
    static float m[N], m2[N], u[N];
    cnn_k_dropout_mask(N, 42, 5, 0.7f, 1.f / 0.7f, m);
    cnn_k_dropout_mask(N, 42, 5, 0.7f, 1.f / 0.7f, m2);
    cnn_k_philox_uniform(N, 42, 5, u);
    long kept = 0;
    for (size_t i = 0; i < N; i++) {
        ck_assert(m[i] == m2[i]);
        ck_assert(m[i] == (u[i] < 0.7f ? 1.f / 0.7f : 0.f));
        kept += m[i] != 0;
    }
    ck_assert_msg(fabs(kept / (double)N - 0.7) < 0.01, "kept %ld of %d", kept, N);
    /* Another offset gives another mask. */
    cnn_k_dropout_mask(N, 42, 6, 0.7f, 1.f / 0.7f, m2);
    long same = 0;
    for (size_t i = 0; i < N; i++) same += m[i] == m2[i];
    ck_assert(same < N * 0.7);
    printf("check_philox: %ld of %d kept at p_keep 0.7\n", kept, N);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("philox");
    TCase *tc = tcase_create("philox");
    tcase_add_test(tc, test_known_answers);
    tcase_add_test(tc, test_stream_layout);
    tcase_add_test(tc, test_mask);
    suite_add_tcase(s, tc);
    return cnn_test_run(s) != 0;
}
