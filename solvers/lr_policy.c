/* lr_policy.c — the learning rate as a pure function of the iteration:
 * Caffe's policies (SGDSolver::GetLearningRate) plus cosine decay and a
 * linear warm-up. Computed in double. */
#include <math.h>

#include "solver.h"

const char *const cnn_lr_policy_names[] = {"fixed", "step", "multistep", "exp", "inv",
                                           "poly",  "sigmoid", "cosine", NULL};

static double policy_rate(const cnn_lr_config *c, int iter)
{
    double it = iter;
    switch (c->policy) {
    case CNN_LR_FIXED: return c->base_lr;
    case CNN_LR_STEP:
        return c->base_lr * pow(c->gamma, iter / (c->stepsize > 0 ? c->stepsize : 1));
    case CNN_LR_MULTISTEP: {
        int step = 0;
        while (step < c->n_stepvalue && iter >= c->stepvalue[step]) step++;
        return c->base_lr * pow(c->gamma, step);
    }
    case CNN_LR_EXP: return c->base_lr * pow(c->gamma, it);
    case CNN_LR_INV: return c->base_lr * pow(1.0 + c->gamma * it, -c->power);
    case CNN_LR_POLY: {
        double frac = c->max_iter > 0 ? fmin(it / c->max_iter, 1.0) : 0.0;
        return c->base_lr * pow(1.0 - frac, c->power);
    }
    case CNN_LR_SIGMOID: return c->base_lr / (1.0 + exp(-c->gamma * (it - c->stepsize)));
    case CNN_LR_COSINE: {
        double frac = c->max_iter > 0 ? fmin(it / c->max_iter, 1.0) : 0.0;
        return c->min_lr + (c->base_lr - c->min_lr) * 0.5 * (1.0 + cos(M_PI * frac));
    }
    }
    return c->base_lr;
}

double cnn_lr_at(const cnn_lr_config *c, int iter)
{
    if (iter < 0) iter = 0;
    if (c->warmup_iter > 0 && iter < c->warmup_iter) {
        double end = policy_rate(c, c->warmup_iter);
        return c->warmup_start_lr + (end - c->warmup_start_lr) * iter / c->warmup_iter;
    }
    return policy_rate(c, iter);
}
