/* solver.cu — the parameter update as one fused kernel per parameter:
 * gradient scaling (iter_size), weight decay (L2 or L1; decoupled for
 * AdamW), the rule's step on its history and w -= update, each element as
 * solvers/update.c computes it. The arithmetic is written with explicit
 * round-to-nearest intrinsics so that nvcc does not fuse multiply-adds:
 * the results equal the CPU's bit for bit. */
#include <math.h>

#include "common.cuh"

#define MUL __fmul_rn
#define ADD __fadd_rn
#define SUB __fsub_rn
#define DIV __fdiv_rn
#define SQRT __fsqrt_rn

__device__ __forceinline__ float sign_of(float x) { return (float)((0.f < x) - (x < 0.f)); }

struct upd_args {
    cnn_cuda_update_rule rule;
    bool l1, coupled; /* coupled: decay added to g before the step */
    float mom, mom2, delta, rms_decay, rate, decay, grad_scale;
    float step, wd; /* Adam: rate * bias correction; AdamW: rate * decay */
};

__device__ __forceinline__ float adam_step(const upd_args &a, float w, float g, float *m,
                                           float *v)
{
    *m = ADD(MUL(a.mom, *m), MUL(SUB(1.f, a.mom), g));
    *v = ADD(MUL(a.mom2, *v), MUL(SUB(1.f, a.mom2), MUL(g, g)));
    float u = MUL(a.step, DIV(*m, ADD(SQRT(*v), a.delta)));
    if (a.rule == CNN_CUDA_ADAMW && a.decay != 0.f)
        u = ADD(u, MUL(a.wd, a.l1 ? sign_of(w) : w));
    return u;
}

/* The update value of one element; h0/h1 updated in place. */
__device__ __forceinline__ float step_of(const upd_args &a, float w, float g, float *h0,
                                         float *h1)
{
    switch (a.rule) {
    case CNN_CUDA_SGD:
        *h0 = ADD(MUL(a.rate, g), MUL(a.mom, *h0));
        return *h0;
    case CNN_CUDA_NESTEROV: {
        float old = *h0;
        *h0 = ADD(MUL(a.mom, *h0), MUL(a.rate, g));
        return SUB(MUL(ADD(1.f, a.mom), *h0), MUL(a.mom, old));
    }
    case CNN_CUDA_ADAGRAD:
        *h0 = ADD(*h0, MUL(g, g));
        return MUL(a.rate, DIV(g, ADD(SQRT(*h0), a.delta)));
    case CNN_CUDA_RMSPROP:
        *h0 = ADD(MUL(SUB(1.f, a.rms_decay), MUL(g, g)), MUL(a.rms_decay, *h0));
        return MUL(DIV(g, ADD(SQRT(*h0), a.delta)), a.rate);
    case CNN_CUDA_ADADELTA: {
        *h0 = ADD(MUL(SUB(1.f, a.mom), MUL(g, g)), MUL(a.mom, *h0));
        float u = MUL(g, SQRT(DIV(ADD(*h1, a.delta), ADD(*h0, a.delta))));
        *h1 = ADD(MUL(SUB(1.f, a.mom), MUL(u, u)), MUL(a.mom, *h1));
        return MUL(a.rate, u);
    }
    default: return adam_step(a, w, g, h0, h1);
    }
}

__global__ void update_kernel(upd_args a, size_t n, float *w, float *g, float *h0, float *h1)
{
    CNN_GRID_STRIDE(i, n)
    {
        float gi = MUL(g[i], a.grad_scale), wi = w[i];
        if (a.coupled) gi = ADD(gi, MUL(a.decay, a.l1 ? sign_of(wi) : wi));
        float dummy = 0.f;
        float u = step_of(a, wi, gi, &h0[i], h1 ? &h1[i] : &dummy);
        g[i] = u;
        w[i] = SUB(wi, u);
    }
}

static bool two_slots(cnn_cuda_update_rule r)
{
    return r == CNN_CUDA_ADADELTA || r == CNN_CUDA_ADAM || r == CNN_CUDA_ADAMW;
}

extern "C" cnn_status cnn_cuda_solver_update(cnn_cuda_ctx *ctx, const cnn_cuda_update *u,
                                             size_t n, float *w, float *g, float *h0, float *h1)
{
    if ((int)u->rule < CNN_CUDA_SGD || (int)u->rule > CNN_CUDA_ADAMW)
        return CNN_ERROR(CNN_ERR_ARG, "unknown update rule %d", (int)u->rule);
    if (two_slots(u->rule) && !h1)
        return CNN_ERROR(CNN_ERR_ARG, "update rule %d needs two history blobs", (int)u->rule);
    upd_args a;
    a.rule = u->rule;
    a.l1 = u->l1;
    a.coupled = u->rule != CNN_CUDA_ADAMW && u->decay != 0.f;
    a.mom = u->momentum;
    a.mom2 = u->momentum2;
    a.delta = u->delta;
    a.rms_decay = u->rms_decay;
    a.rate = u->rate;
    a.decay = u->decay;
    a.grad_scale = u->grad_scale;
    /* Adam's bias correction, as solvers/update.c computes it on the host. */
    int t = u->iter + 1;
    float correction = sqrtf(1.f - (float)pow((double)u->momentum2, (double)t)) /
                       (1.f - (float)pow((double)u->momentum, (double)t));
    a.step = u->rate * correction;
    a.wd = u->rate * u->decay;
    if (n) CNN_LAUNCH(ctx, update_kernel, cnn_blocks(n), a, n, w, g, h0, h1);
    return CNN_OK;
}
