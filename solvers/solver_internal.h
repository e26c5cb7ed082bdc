/* solver_internal.h — the solver object, shared by solver.c (configuration,
 * training loop) and snapshot.c (snapshots and resume). Internal. */
#ifndef CNN_SOLVER_INTERNAL_H
#define CNN_SOLVER_INTERNAL_H

#include "../core/config.h"
#include "solver.h"

struct cnn_solver {
    cnn_solver_config cfg;
    char model[CNN_SOLVER_PATH_MAX]; /* the file the solver was read from */
    cnn_cfg *roots[3];               /* the file given, the train and test model files */
    cnn_net *net, *test_net;
    uint64_t seed;
    int iter;                        /* iterations done */
    uint64_t batches;                /* training batches consumed (iter * iter_size) */
    int n_params;
    cnn_tensor **hist[2];            /* [slot][param]: history, shaped like the param
                                        (mirrored on the param's device on GPUs) */
    int devices;                     /* cnn_solver_opts.devices for both nets */
    int gpus;                        /* cnn_solver_opts' GPU fields for both nets */
    int gpu_ids[CNN_MAX_DEVICES];
    size_t workspace_bytes;
    bool deterministic;
    bool cuda_graph;         /* opts or the solver block asked for CUDA graphs */
    /* Parameters (indices into the net's param info) grouped by the logical
     * device they and their history live on; updates go device by device. */
    int n_devices;
    int dev_n[CNN_MAX_DEVICES];
    int *dev_param[CNN_MAX_DEVICES];
    double *losses;                  /* (average_loss) ring of recent losses */
    int n_losses;
    /* GPUs: the ring on device 0, filled from the device loss sum and read
     * back only when displayed; per-device scratch for gradient clipping. */
    bool gpu;
    cnn_tensor *dev_losses;          /* (average_loss) on device 0 */
    int fetched;                     /* n_losses when dev_losses was last read */
    int last_loss_iter;              /* the iteration the newest loss is from */
    cnn_tensor *clip_scratch[CNN_MAX_DEVICES]; /* (dev_n[d]) squared norms */
    double lr;                       /* rate of the last (or next) iteration */
    double *test_sum;                /* (test_sum_cap) accumulated test outputs */
    size_t test_sum_cap;
    cnn_solver_feed_fn feed;
    void *feed_user;
    bool stopped;
};

/* The folder part of `path` ("." when it has none) into out (n bytes). */
void cnn_solver_path_dir(const char *path, char *out, size_t n);
/* Allocates zeroed history for every parameter of the train net (on the
 * parameters' devices on GPUs), and the GPU loss ring and scratch. */
cnn_status cnn_solver_alloc_history(cnn_solver *s);
/* GPUs: reads the device loss ring into `losses` (a sync) and fails with
 * CNN_ERR_NUMERIC when a loss since the last read was NaN or infinite.
 * No-op on the CPU or when nothing new was computed. */
cnn_status cnn_solver_fetch_losses(cnn_solver *s);

#endif
