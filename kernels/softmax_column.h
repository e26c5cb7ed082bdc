/* softmax_column.h — the softmax of one column of c values, `inner` floats
 * apart (max, exponentials summed in double, one scale), shared by the CPU
 * kernel (kernels/cpu/softmax.c) and the CUDA ones (kernels/cuda/softmax.cu)
 * so that both compute it the same way. Header-only, like philox.h. */
#ifndef CNN_SOFTMAX_COLUMN_H
#define CNN_SOFTMAX_COLUMN_H

#include <math.h>
#include <stddef.h>

#ifndef CNN_HD
#ifdef __CUDACC__
#define CNN_HD __host__ __device__
#else
#define CNN_HD
#endif
#endif

static inline CNN_HD void cnn_softmax_column(int c, size_t inner, const float *xp, float *yp)
{
    float mx = xp[0];
    for (int k = 1; k < c; k++) mx = fmaxf(mx, xp[(size_t)k * inner]);
    double sum = 0;
    for (int k = 0; k < c; k++) {
        float e = expf(xp[(size_t)k * inner] - mx);
        yp[(size_t)k * inner] = e;
        sum += e;
    }
    float inv = (float)(1.0 / sum);
    for (int k = 0; k < c; k++) yp[(size_t)k * inner] *= inv;
}

#endif
