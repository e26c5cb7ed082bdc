/* philox.c — counter-based random numbers on the CPU (Philox4x32-10 from
 * kernels/philox.h): dropout masks and uniforms that the CUDA versions
 * reproduce bit for bit, whatever the thread count. */
#include "../kernels.h"
#include "../philox.h"

#define PAR_MIN 65536

void cnn_k_philox_uniform(size_t n, uint64_t seed, uint64_t offset, float *u)
{
    size_t blocks = (n + 3) / 4;
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (size_t b = 0; b < blocks; b++) {
        cnn_philox4 r = cnn_philox_block(seed, offset, b);
        for (size_t j = 0; j < 4 && 4 * b + j < n; j++) u[4 * b + j] = cnn_philox_to_unit(r.v[j]);
    }
}

void cnn_k_dropout_mask(size_t n, uint64_t seed, uint64_t offset, float p_keep,
                        float keep_scale, float *mask)
{
    size_t blocks = (n + 3) / 4;
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (size_t b = 0; b < blocks; b++) {
        cnn_philox4 r = cnn_philox_block(seed, offset, b);
        for (size_t j = 0; j < 4 && 4 * b + j < n; j++)
            mask[4 * b + j] = cnn_philox_to_unit(r.v[j]) < p_keep ? keep_scale : 0.f;
    }
}
