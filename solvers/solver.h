/* solver.h — training: the solver configuration (Caffe's SolverParameter,
 * either a `solver { ... }` block in a model file or a Caffe solver.prototxt),
 * learning-rate policies, update rules, the training loop with periodic
 * testing, and snapshots that a later run can resume from bit for bit. */
#ifndef CNN_SOLVER_H
#define CNN_SOLVER_H

#include <signal.h>

#include "../core/cnn.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- learning-rate policies (solvers/lr_policy.c) ----------------------- */

typedef enum {
    CNN_LR_FIXED,     /* base_lr */
    CNN_LR_STEP,      /* base_lr * gamma ^ floor(iter / stepsize) */
    CNN_LR_MULTISTEP, /* base_lr * gamma ^ (number of stepvalues <= iter) */
    CNN_LR_EXP,       /* base_lr * gamma ^ iter */
    CNN_LR_INV,       /* base_lr * (1 + gamma * iter) ^ -power */
    CNN_LR_POLY,      /* base_lr * (1 - iter / max_iter) ^ power */
    CNN_LR_SIGMOID,   /* base_lr / (1 + exp(-gamma * (iter - stepsize))) */
    CNN_LR_COSINE     /* min_lr + (base_lr - min_lr) * (1 + cos(pi * iter / max_iter)) / 2 */
} cnn_lr_policy;

#define CNN_MAX_STEPVALUES 64

/* Everything the learning rate depends on. */
typedef struct cnn_lr_config {
    cnn_lr_policy policy;
    double base_lr, gamma, power, min_lr;
    int stepsize, max_iter;
    int n_stepvalue;
    int stepvalue[CNN_MAX_STEPVALUES]; /* increasing */
    int warmup_iter;        /* > 0: linear ramp over the first warmup_iter iterations */
    double warmup_start_lr; /* ramp start; it ends at the policy's rate at warmup_iter */
} cnn_lr_config;

/* Policy names as written in lr_policy ("fixed", "step", ...), NULL-terminated. */
extern const char *const cnn_lr_policy_names[];
/* The learning rate for (0-based) iteration `iter`; a pure function. */
double cnn_lr_at(const cnn_lr_config *c, int iter);

/* ---- update rules (solvers/update.c) ------------------------------------ */

typedef enum {
    CNN_SOLVER_SGD,
    CNN_SOLVER_NESTEROV,
    CNN_SOLVER_ADAGRAD,
    CNN_SOLVER_RMSPROP,
    CNN_SOLVER_ADADELTA,
    CNN_SOLVER_ADAM,
    CNN_SOLVER_ADAMW /* Adam with decoupled weight decay (extension) */
} cnn_solver_type;

typedef enum { CNN_REG_L2, CNN_REG_L1 } cnn_regularization;

/* Solver type names as written in `type` ("SGD", "Adam", ...), NULL-terminated. */
extern const char *const cnn_solver_type_names[];
/* History blobs the type keeps per parameter (1 or 2). */
int cnn_solver_history_slots(cnn_solver_type t);

/* The hyper-parameters an update rule reads. */
typedef struct cnn_update_config {
    cnn_solver_type type;
    cnn_regularization reg;
    float momentum;  /* SGD/Nesterov momentum, Adam beta1, AdaDelta decay */
    float momentum2; /* Adam beta2 */
    float delta;     /* epsilon of AdaGrad, RMSProp, AdaDelta, Adam */
    float rms_decay; /* RMSProp */
} cnn_update_config;

/* Caffe's Regularize: g += decay * w (L2) or decay * sign(w) (L1), n values. */
void cnn_solver_regularize(cnn_regularization reg, float decay, size_t n, const float *w,
                           float *g);
/* Caffe's ComputeUpdateValue followed by w -= update, for one parameter of n
 * values: `rate` is the learning rate times lr_mult, `iter` the 0-based
 * iteration (Adam's bias correction), h0/h1 the history blobs (h1 may be NULL
 * for one-slot types). g (already regularised, except for AdamW which applies
 * `decay` itself) is overwritten with the update. */
void cnn_solver_update(const cnn_update_config *c, size_t n, float rate, float decay,
                       int iter, float *w, float *g, float *h0, float *h1);

/* ---- configuration (solvers/solver.c) ----------------------------------- */

#define CNN_SOLVER_PATH_MAX 4096

/* Caffe's SolverParameter as far as we use it. */
typedef struct cnn_solver_config {
    cnn_lr_config lr;
    cnn_update_config update;
    float weight_decay;
    float clip_gradients; /* < 0: off; else clip the global L2 norm to this */
    int iter_size;        /* gradient accumulation: forward/backward passes per update */
    int max_iter;
    int test_iter;        /* forward passes per test (0: no test net) */
    int test_interval;    /* iterations between tests (0: never) */
    bool test_initialization; /* also test before the first iteration */
    int display;          /* iterations between progress lines (0: never) */
    int average_loss;     /* displayed loss is the mean of this many iterations */
    int snapshot;         /* iterations between snapshots (0: only at the end) */
    bool snapshot_after_train;
    long long random_seed; /* < 0: chosen from the clock */
    bool debug_info;
    bool gpu;             /* solver_mode: GPU (informational; the tool picks the device) */
    int device_id;
    int workspace_mb;     /* extension: cuDNN workspace budget in MiB (-1: default) */
    bool deterministic;   /* extension: deterministic cuDNN algorithms only */
    bool cuda_graph;      /* extension: replay training steps as a CUDA graph */
    char snapshot_prefix[CNN_SOLVER_PATH_MAX]; /* "" until resolved */
    char train_net[CNN_SOLVER_PATH_MAX];       /* model file of the train net */
    char test_net[CNN_SOLVER_PATH_MAX];        /* model file of the test net */
    int n_weights;                             /* Caffe's `weights`: initial weights */
    char weights[8][CNN_SOLVER_PATH_MAX];
    int train_level, test_level;               /* NetState levels */
} cnn_solver_config;

/* Caffe's defaults (lr_policy "fixed", type SGD, delta 1e-8, ...). */
void cnn_solver_config_default(cnn_solver_config *c);
/* Reads solver fields from message m (a `solver` block or a solver file's
 * root); `dir` resolves relative net paths (then the current directory).
 * Every field of m must be known: unknown ones are errors naming file:line:col. */
cnn_status cnn_solver_config_read(cnn_cfg *m, const char *dir, cnn_solver_config *c);

/* ---- the solver ---------------------------------------------------------- */

typedef struct cnn_solver cnn_solver;

/* Overrides from the command line; zero values mean "as configured". */
typedef struct cnn_solver_opts {
    int max_iter;                /* > 0: replaces max_iter */
    const char *snapshot_prefix; /* non-NULL: replaces snapshot_prefix */
    int devices;                 /* logical devices of the nets (cnn_net_opts.devices):
                                    0 as the model asks, else layers' device < devices */
    /* GPUs for both nets, as in cnn_net_opts (gpus 0: the CPU). */
    int gpus;
    int gpu[CNN_MAX_DEVICES];
    size_t workspace_bytes;
    bool deterministic;
    bool cuda_graph; /* or the solver block's cuda_graph: true */
} cnn_solver_opts;

/* Builds the solver from a model file with a `solver` block or a solver file
 * (`net:`/`train_net:`/`test_net:` naming the model): the TRAIN net and, when
 * test_iter and test_interval are set, a TEST net. `o` may be NULL. */
cnn_status cnn_solver_from_file(const char *path, const cnn_solver_opts *o, cnn_solver **out);
/* The same from text in memory (a model with a `solver` block); `name` is used
 * in messages and as the default snapshot prefix. */
cnn_status cnn_solver_from_string(const char *text, const char *name,
                                  const cnn_solver_opts *o, cnn_solver **out);
void cnn_solver_free(cnn_solver *s);

const cnn_solver_config *cnn_solver_get_config(const cnn_solver *s);
cnn_net *cnn_solver_net(const cnn_solver *s);
/* The TEST net, or NULL when the configuration tests nothing. */
cnn_net *cnn_solver_test_net(const cnn_solver *s);
/* The seed the nets were built with (random_seed, or the clock's). */
uint64_t cnn_solver_seed(const cnn_solver *s);
/* Iterations done so far (the next step is iteration number iter). */
int cnn_solver_iter(const cnn_solver *s);
/* Logical devices of the train net. */
int cnn_solver_num_devices(const cnn_solver *s);
/* Images per forward pass (the batch dimension of the first layer's first top). */
int cnn_solver_batch_size(const cnn_solver *s);
/* Learning rate of the current iteration. */
double cnn_solver_lr(const cnn_solver *s);
/* Mean training loss over the last average_loss iterations (NaN before any).
 * On GPUs the losses are read back at display, test and snapshot iterations
 * (and by cnn_solver_step with a loss pointer): in between this is the mean
 * as of the last read. */
double cnn_solver_smoothed_loss(const cnn_solver *s);

/* Loads initial weights (.safetensors or .caffemodel) into the train net by
 * name; missing or reshaped tensors are left alone (core/finetune.h). */
cnn_status cnn_solver_load_weights(cnn_solver *s, const char *path);

/* Called before every training forward pass with the global batch number
 * (iter * iter_size + k), for programs that fill Input blobs themselves. */
typedef cnn_status (*cnn_solver_feed_fn)(cnn_net *n, uint64_t batch, void *user);
void cnn_solver_set_feed(cnn_solver *s, cnn_solver_feed_fn fn, void *user);

/* One iteration: zero gradients, iter_size forward/backward passes, clip,
 * normalise, regularise, update. *loss (may be NULL) gets the mean loss.
 * A NaN or infinite loss is CNN_ERR_NUMERIC and leaves the weights alone.
 * On GPUs the step waits for the device only when `loss` is given (or
 * clip_gradients is set); with loss NULL a bad loss is reported later, by
 * cnn_solver_solve at the next display, test or snapshot iteration. */
cnn_status cnn_solver_step(cnn_solver *s, float *loss);

/* Test outputs: the mean over test_iter passes of every output element. */
#define CNN_MAX_TEST_OUTPUTS 32
typedef struct cnn_test_result {
    int iter;
    double loss;     /* mean weighted loss of the test net */
    double accuracy; /* first output named like "accuracy", NaN if none */
    int n;
    char name[CNN_MAX_TEST_OUTPUTS][64]; /* "accuracy", "prob[3]" for wide outputs */
    double value[CNN_MAX_TEST_OUTPUTS];
} cnn_test_result;

/* Copies the weights into the test net, seeks its data to batch 0 and runs
 * test_iter forward passes. `stop` (may be NULL) abandons the pass early:
 * then *r is not filled and *stopped is set. */
cnn_status cnn_solver_test(cnn_solver *s, const volatile sig_atomic_t *stop, bool *stopped,
                           cnn_test_result *r);

/* Writes <prefix>_iter_<N>.safetensors and <prefix>_iter_<N>.solverstate.
 * `state_path` (may be NULL) receives the state file's path. */
cnn_status cnn_solver_snapshot(cnn_solver *s, char *state_path, size_t n);
/* Restores a snapshot: weights (from the file the state names, else the
 * sibling with the same stem), history, iteration, the net's RNG, and moves
 * the train data to where that iteration left it. */
cnn_status cnn_solver_restore(cnn_solver *s, const char *state_path);

/* What the training loop reports. */
typedef enum {
    CNN_EV_ITER,     /* after every iteration */
    CNN_EV_DISPLAY,  /* after every `display`-th iteration (also an ITER) */
    CNN_EV_TEST,     /* a test pass finished */
    CNN_EV_SNAPSHOT  /* a snapshot was written */
} cnn_solver_event_kind;

typedef struct cnn_solver_event {
    cnn_solver_event_kind kind;
    int iter;       /* iterations done (ITER, DISPLAY: the one just done, 0-based) */
    double loss;    /* smoothed training loss (ITER, DISPLAY) */
    double lr;      /* rate used by that iteration */
    const cnn_test_result *test; /* TEST */
    const char *path;            /* SNAPSHOT: the .solverstate written */
} cnn_solver_event;

typedef void (*cnn_solver_event_fn)(const cnn_solver_event *e, void *user);

/* Trains until max_iter, testing every test_interval iterations (and before
 * the first unless test_initialization is false), snapshotting every
 * `snapshot` iterations and at the end. When *stop becomes non-zero the
 * current iteration finishes, a snapshot is written and it returns CNN_OK
 * with cnn_solver_stopped() true. `stop` and `cb` may be NULL. */
cnn_status cnn_solver_solve(cnn_solver *s, const volatile sig_atomic_t *stop,
                            cnn_solver_event_fn cb, void *user);
/* Whether the last solve ended because of `stop`. */
bool cnn_solver_stopped(const cnn_solver *s);

#ifdef __cplusplus
}
#endif
#endif
