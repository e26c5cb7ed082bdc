/* update.c — the update rules, element by element as Caffe's solvers compute
 * them (sgd_solver.cpp, nesterov_solver.cpp, adagrad_solver.cpp,
 * rmsprop_solver.cpp, adadelta_solver.cpp, adam_solver.cpp), in float, plus
 * AdamW's decoupled weight decay. Each element is independent, so the
 * results do not depend on the number of threads. */
#include <math.h>

#include "solver.h"

/* Loops shorter than this stay on one thread. */
#define PAR_MIN 32768

const char *const cnn_solver_type_names[] = {"SGD",     "Nesterov", "AdaGrad", "RMSProp",
                                             "AdaDelta", "Adam",    "AdamW",   NULL};

int cnn_solver_history_slots(cnn_solver_type t)
{
    return t == CNN_SOLVER_ADADELTA || t == CNN_SOLVER_ADAM || t == CNN_SOLVER_ADAMW ? 2 : 1;
}

static inline float sign(float x) { return (float)((0.f < x) - (x < 0.f)); }

void cnn_solver_regularize(cnn_regularization reg, float decay, size_t n, const float *w,
                           float *g)
{
    if (decay == 0.f) return;
    if (reg == CNN_REG_L1) {
#pragma omp parallel for if (n > PAR_MIN)
        for (size_t i = 0; i < n; i++) g[i] += decay * sign(w[i]);
    } else {
#pragma omp parallel for if (n > PAR_MIN)
        for (size_t i = 0; i < n; i++) g[i] += decay * w[i];
    }
}

static void adam(const cnn_update_config *c, size_t n, float rate, float decay, int iter,
                 float *w, float *g, float *m, float *v)
{
    const float b1 = c->momentum, b2 = c->momentum2, eps = c->delta;
    const int t = iter + 1;
    const float correction =
        sqrtf(1.f - (float)pow(b2, t)) / (1.f - (float)pow(b1, t));
    const float step = rate * correction;
    const bool decoupled = c->type == CNN_SOLVER_ADAMW && decay != 0.f;
    const float wd = rate * decay;
#pragma omp parallel for if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        m[i] = b1 * m[i] + (1.f - b1) * g[i];
        v[i] = b2 * v[i] + (1.f - b2) * (g[i] * g[i]);
        float u = step * (m[i] / (sqrtf(v[i]) + eps));
        if (decoupled) u += wd * (c->reg == CNN_REG_L1 ? sign(w[i]) : w[i]);
        g[i] = u;
        w[i] -= u;
    }
}

void cnn_solver_update(const cnn_update_config *c, size_t n, float rate, float decay,
                       int iter, float *w, float *g, float *h0, float *h1)
{
    const float mom = c->momentum, delta = c->delta;
    switch (c->type) {
    case CNN_SOLVER_SGD:
#pragma omp parallel for if (n > PAR_MIN)
        for (size_t i = 0; i < n; i++) {
            h0[i] = rate * g[i] + mom * h0[i];
            g[i] = h0[i];
            w[i] -= g[i];
        }
        break;
    case CNN_SOLVER_NESTEROV:
#pragma omp parallel for if (n > PAR_MIN)
        for (size_t i = 0; i < n; i++) {
            float old = h0[i];
            h0[i] = mom * h0[i] + rate * g[i];
            g[i] = (1.f + mom) * h0[i] - mom * old;
            w[i] -= g[i];
        }
        break;
    case CNN_SOLVER_ADAGRAD:
#pragma omp parallel for if (n > PAR_MIN)
        for (size_t i = 0; i < n; i++) {
            h0[i] += g[i] * g[i];
            g[i] = rate * (g[i] / (sqrtf(h0[i]) + delta));
            w[i] -= g[i];
        }
        break;
    case CNN_SOLVER_RMSPROP: {
        const float d = c->rms_decay;
#pragma omp parallel for if (n > PAR_MIN)
        for (size_t i = 0; i < n; i++) {
            h0[i] = (1.f - d) * (g[i] * g[i]) + d * h0[i];
            g[i] = g[i] / (sqrtf(h0[i]) + delta) * rate;
            w[i] -= g[i];
        }
        break;
    }
    case CNN_SOLVER_ADADELTA:
#pragma omp parallel for if (n > PAR_MIN)
        for (size_t i = 0; i < n; i++) {
            h0[i] = (1.f - mom) * (g[i] * g[i]) + mom * h0[i];
            float u = g[i] * sqrtf((h1[i] + delta) / (h0[i] + delta));
            h1[i] = (1.f - mom) * (u * u) + mom * h1[i];
            g[i] = rate * u;
            w[i] -= g[i];
        }
        break;
    case CNN_SOLVER_ADAM:
    case CNN_SOLVER_ADAMW: adam(c, n, rate, decay, iter, w, g, h0, h1); break;
    }
}
