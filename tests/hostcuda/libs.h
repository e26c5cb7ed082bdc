/* libs.h (tests/hostcuda) — what the cuBLAS and cuDNN stand-ins share. */
#ifndef CNN_HOSTCUDA_LIBS_H
#define CNN_HOSTCUDA_LIBS_H

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "cuda_runtime.h"

/* Rounds to TF32 (10-bit mantissa, nearest even), as a tensor core reads. */
inline float cnn_hc_to_tf32(float v)
{
    uint32_t b;
    memcpy(&b, &v, sizeof b);
    if ((b & 0x7f800000u) == 0x7f800000u) return v; /* inf, NaN */
    b += 0xfffu + ((b >> 13) & 1u);
    b &= ~0x1fffu;
    memcpy(&v, &b, sizeof v);
    return v;
}

/* out = alpha * acc + beta * out, out not read when beta is 0 (as both
 * libraries promise). */
inline void cnn_hc_blend(float *out, double acc, float alpha, float beta)
{
    double v = (double)alpha * acc;
    if (beta != 0.f) v += (double)beta * *out;
    *out = (float)v;
}

/* A handle belongs to the device current at its creation: aborts, naming
 * the call, when another device is current. */
inline void cnn_hc_check_handle_device(const char *lib, int handle_device, const char *what)
{
    int cur = -1;
    cudaGetDevice(&cur);
    if (cur == handle_device) return;
    fprintf(stderr, "hostcuda: %s: %s handle of device %d used while device %d is current\n",
            what, lib, handle_device, cur);
    abort();
}

#endif
