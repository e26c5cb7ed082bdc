/* philox.h — Philox4x32-10 (Salmon et al., "Parallel random numbers: as
 * easy as 1, 2, 3", SC'11), shared by the CPU (kernels/cpu/philox.c) and
 * CUDA (kernels/cuda/activation.cu) dropout so that a seed gives the same
 * mask on both. Element i of a stream (seed, offset) is word i % 4 of the
 * block with counter (i / 4, offset) and key seed. Header-only so that both
 * compilers see the same arithmetic. */
#ifndef CNN_PHILOX_H
#define CNN_PHILOX_H

#include <stdint.h>

#ifndef CNN_HD
#ifdef __CUDACC__
#define CNN_HD __host__ __device__
#else
#define CNN_HD
#endif
#endif

typedef struct cnn_philox4 {
    uint32_t v[4];
} cnn_philox4;

static inline CNN_HD uint32_t cnn_philox_mulhilo(uint32_t a, uint32_t b, uint32_t *hi)
{
    uint64_t p = (uint64_t)a * b;
    *hi = (uint32_t)(p >> 32);
    return (uint32_t)p;
}

/* The ten-round block function on counter c with key (k0, k1). */
static inline CNN_HD cnn_philox4 cnn_philox4x32_10(cnn_philox4 c, uint32_t k0, uint32_t k1)
{
    for (int r = 0; r < 10; r++) {
        uint32_t hi0, hi1;
        uint32_t lo0 = cnn_philox_mulhilo(0xD2511F53u, c.v[0], &hi0);
        uint32_t lo1 = cnn_philox_mulhilo(0xCD9E8D57u, c.v[2], &hi1);
        cnn_philox4 o = {{hi1 ^ c.v[1] ^ k0, lo1, hi0 ^ c.v[3] ^ k1, lo0}};
        c = o;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    return c;
}

/* The block holding elements 4*blk .. 4*blk+3 of stream (seed, offset). */
static inline CNN_HD cnn_philox4 cnn_philox_block(uint64_t seed, uint64_t offset, uint64_t blk)
{
    cnn_philox4 c = {{(uint32_t)blk, (uint32_t)(blk >> 32), (uint32_t)offset,
                      (uint32_t)(offset >> 32)}};
    return cnn_philox4x32_10(c, (uint32_t)seed, (uint32_t)(seed >> 32));
}

/* A uniform float in [0, 1) from the top 24 bits of a word (exact). */
static inline CNN_HD float cnn_philox_to_unit(uint32_t x) { return (float)(x >> 8) * 0x1p-24f; }

#endif
