/* solver.c — the solver configuration (Caffe's SolverParameter read from a
 * model's `solver` block or a solver.prototxt), the train and test nets, one
 * training step (Caffe's Solver::Step and SGDSolver::ApplyUpdate), test
 * passes and the training loop. On GPUs the history lives beside each
 * parameter on its device, the update is one fused kernel per parameter,
 * and a step queues everything without waiting for the device: the loss
 * goes into a device ring read back only when it is displayed. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../core/finetune.h"
#include "../core/gpu.h"
#include "../core/net_internal.h"
#include "solver_internal.h"

/* ---- configuration ------------------------------------------------------ */

void cnn_solver_config_default(cnn_solver_config *c)
{
    memset(c, 0, sizeof *c);
    c->lr.policy = CNN_LR_FIXED;
    c->update.type = CNN_SOLVER_SGD;
    c->update.reg = CNN_REG_L2;
    c->update.momentum2 = 0.999f;
    c->update.delta = 1e-8f;
    c->update.rms_decay = 0.99f;
    c->clip_gradients = -1.f;
    c->iter_size = 1;
    c->test_initialization = true;
    c->average_loss = 1;
    c->snapshot_after_train = true;
    c->random_seed = -1;
    c->gpu = true;
}

/* An error at field `key` of m when present, else one naming m's file. */
static cnn_status field_error(cnn_cfg *m, const char *key, cnn_status s, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static cnn_status field_error(cnn_cfg *m, const char *key, cnn_status s, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cnn_cfg *f = key ? cnn_cfg_get(m, key) : NULL;
    if (f) return cnn_cfg_error(f, s, "%s", msg);
    return CNN_ERROR(s, "%s: %s", m->file ? m->file : "solver", msg);
}

void cnn_solver_path_dir(const char *path, char *out, size_t n)
{
    snprintf(out, n, "%s", path);
    char *slash = strrchr(out, '/');
    if (!slash)
        snprintf(out, n, ".");
    else if (slash == out)
        out[1] = '\0';
    else
        *slash = '\0';
}

static bool file_exists(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0;
}

/* Resolves model path `p` (field f) against `dir`, then the current directory. */
static cnn_status resolve_net(cnn_cfg *f, const char *dir, const char *p, char *out)
{
    if (!*p) return cnn_cfg_error(f, CNN_ERR_CONFIG, "empty net path");
    if (p[0] != '/' && dir && *dir) {
        int k = snprintf(out, CNN_SOLVER_PATH_MAX, "%s/%s", dir, p);
        if (k < CNN_SOLVER_PATH_MAX && file_exists(out)) return CNN_OK;
    }
    if (strlen(p) >= CNN_SOLVER_PATH_MAX)
        return cnn_cfg_error(f, CNN_ERR_CONFIG, "net path too long");
    strcpy(out, p);
    if (file_exists(out)) return CNN_OK;
    if (p[0] == '/')
        return cnn_cfg_error(f, CNN_ERR_IO, "net file '%s' not found", p);
    return cnn_cfg_error(f, CNN_ERR_IO,
                         "net file '%s' not found (looked in '%s' and the current directory)",
                         p, dir && *dir ? dir : ".");
}

static cnn_status read_state(cnn_cfg *m, const char *key, int *level)
{
    cnn_status st = CNN_OK;
    cnn_cfg *ns = NULL;
    CNN_TRY(cnn_cfg_message(m, key, &ns));
    if (!ns) return CNN_OK;
    CNN_TRY(cnn_cfg_int(ns, "level", 0, level));
    if (cnn_cfg_count(ns, "stage"))
        return cnn_cfg_error(cnn_cfg_get(ns, "stage"), CNN_ERR_UNSUPPORTED,
                             "net stages are not supported");
    if (cnn_cfg_count(ns, "phase"))
        return cnn_cfg_error(cnn_cfg_get(ns, "phase"), CNN_ERR_UNSUPPORTED,
                             "%s cannot set the phase", key);
fail:
    return st;
}

static cnn_status read_nets(cnn_cfg *m, const char *dir, cnn_solver_config *c)
{
    cnn_status st = CNN_OK;
    const char *p = NULL;
    static const char *const inline_nets[] = {"net_param", "train_net_param", "test_net_param",
                                              NULL};
    for (int i = 0; inline_nets[i]; i++)
        if (cnn_cfg_count(m, inline_nets[i]))
            return field_error(m, inline_nets[i], CNN_ERR_UNSUPPORTED,
                               "%s (a net inside the solver) is not supported: name the model "
                               "file with net: \"path\"", inline_nets[i]);
    bool has_net = cnn_cfg_count(m, "net"), has_train = cnn_cfg_count(m, "train_net");
    if (has_net && has_train)
        return field_error(m, "train_net", CNN_ERR_CONFIG,
                           "give either net or train_net, not both");
    if (has_net || has_train) {
        const char *key = has_net ? "net" : "train_net";
        CNN_TRY(cnn_cfg_string(m, key, "", &p));
        CNN_TRY(resolve_net(cnn_cfg_get(m, key), dir, p, c->train_net));
    }
    int nt = cnn_cfg_count(m, "test_net");
    if (nt > 1)
        return cnn_cfg_error(cnn_cfg_nth(m, "test_net", 1), CNN_ERR_UNSUPPORTED,
                             "only one test net is supported");
    if (nt == 1) {
        CNN_TRY(cnn_cfg_string(m, "test_net", "", &p));
        CNN_TRY(resolve_net(cnn_cfg_get(m, "test_net"), dir, p, c->test_net));
    } else {
        strcpy(c->test_net, c->train_net);
    }
    int nw = cnn_cfg_count(m, "weights");
    if (nw > 8)
        return cnn_cfg_error(cnn_cfg_nth(m, "weights", 8), CNN_ERR_UNSUPPORTED,
                             "at most 8 weights files");
    for (int i = 0; i < nw; i++) {
        cnn_cfg *f = cnn_cfg_nth(m, "weights", i);
        if (f->kind != CNN_CFG_STRING)
            return cnn_cfg_error(f, CNN_ERR_CONFIG, "weights must be a quoted path");
        if (strlen(f->text) >= CNN_SOLVER_PATH_MAX)
            return cnn_cfg_error(f, CNN_ERR_CONFIG, "path too long");
        strcpy(c->weights[c->n_weights++], f->text);
    }
    CNN_TRY(read_state(m, "train_state", &c->train_level));
    CNN_TRY(read_state(m, "test_state", &c->test_level));
fail:
    return st;
}

static cnn_status read_lr(cnn_cfg *m, cnn_solver_config *c)
{
    cnn_status st = CNN_OK;
    cnn_lr_config *lr = &c->lr;
    const char *policy = "fixed";
    CNN_TRY(cnn_cfg_double(m, "base_lr", 0, &lr->base_lr));
    CNN_TRY(cnn_cfg_string(m, "lr_policy", "fixed", &policy));
    int pi = -1;
    for (int i = 0; cnn_lr_policy_names[i]; i++)
        if (!strcmp(policy, cnn_lr_policy_names[i])) pi = i;
    if (pi < 0)
        return field_error(m, "lr_policy", CNN_ERR_CONFIG,
                           "unknown lr_policy '%s' (fixed, step, multistep, exp, inv, poly, "
                           "sigmoid, cosine)", policy);
    lr->policy = (cnn_lr_policy)pi;
    CNN_TRY(cnn_cfg_double(m, "gamma", 0, &lr->gamma));
    CNN_TRY(cnn_cfg_double(m, "power", 0, &lr->power));
    CNN_TRY(cnn_cfg_int(m, "stepsize", 0, &lr->stepsize));
    CNN_TRY(cnn_cfg_double(m, "min_lr", 0, &lr->min_lr));
    CNN_TRY(cnn_cfg_int(m, "warmup_iter", 0, &lr->warmup_iter));
    CNN_TRY(cnn_cfg_double(m, "warmup_start_lr", 0, &lr->warmup_start_lr));
    int ns = cnn_cfg_count(m, "stepvalue");
    if (ns > CNN_MAX_STEPVALUES)
        return field_error(m, "stepvalue", CNN_ERR_UNSUPPORTED, "more than %d stepvalues",
                           CNN_MAX_STEPVALUES);
    for (int i = 0; i < ns; i++) {
        cnn_cfg *f = cnn_cfg_nth(m, "stepvalue", i);
        CNN_TRY(cnn_cfg_as_int(f, &lr->stepvalue[i]));
        if (i > 0 && lr->stepvalue[i] <= lr->stepvalue[i - 1])
            return cnn_cfg_error(f, CNN_ERR_CONFIG, "stepvalue %d is not above the one before",
                                 lr->stepvalue[i]);
    }
    lr->n_stepvalue = ns;
    if (lr->base_lr < 0)
        return field_error(m, "base_lr", CNN_ERR_CONFIG, "base_lr must not be negative");
    if ((lr->policy == CNN_LR_STEP) && lr->stepsize <= 0)
        return field_error(m, "stepsize", CNN_ERR_CONFIG,
                           "lr_policy \"step\" needs stepsize > 0");
    if (lr->policy == CNN_LR_MULTISTEP && ns == 0)
        return field_error(m, "lr_policy", CNN_ERR_CONFIG,
                           "lr_policy \"multistep\" needs at least one stepvalue");
    if (lr->warmup_iter < 0)
        return field_error(m, "warmup_iter", CNN_ERR_CONFIG, "warmup_iter must be >= 0");
fail:
    return st;
}

static cnn_status read_type(cnn_cfg *m, cnn_solver_config *c)
{
    cnn_status st = CNN_OK;
    static const char *const legacy[] = {"SGD",      "NESTEROV", "ADAGRAD", "RMSPROP",
                                         "ADADELTA", "ADAM",     NULL};
    const char *type = "SGD", *reg = "L2";
    bool has_type = cnn_cfg_count(m, "type"), has_legacy = cnn_cfg_count(m, "solver_type");
    if (has_type && has_legacy)
        return field_error(m, "solver_type", CNN_ERR_CONFIG,
                           "give either type or the old solver_type, not both");
    if (has_legacy) {
        int t = 0;
        CNN_TRY(cnn_cfg_enum(m, "solver_type", legacy, 0, &t));
        c->update.type = (cnn_solver_type)t;
    } else {
        CNN_TRY(cnn_cfg_string(m, "type", "SGD", &type));
        int t = -1;
        for (int i = 0; cnn_solver_type_names[i]; i++)
            if (!strcasecmp(type, cnn_solver_type_names[i])) t = i;
        if (t < 0)
            return field_error(m, "type", CNN_ERR_CONFIG,
                               "unknown solver type '%s' (SGD, Nesterov, AdaGrad, RMSProp, "
                               "AdaDelta, Adam, AdamW)", type);
        c->update.type = (cnn_solver_type)t;
    }
    CNN_TRY(cnn_cfg_string(m, "regularization_type", "L2", &reg));
    if (!strcmp(reg, "L2"))
        c->update.reg = CNN_REG_L2;
    else if (!strcmp(reg, "L1"))
        c->update.reg = CNN_REG_L1;
    else
        return field_error(m, "regularization_type", CNN_ERR_CONFIG,
                           "unknown regularization_type '%s' (L1, L2)", reg);
    CNN_TRY(cnn_cfg_float(m, "momentum", 0.f, &c->update.momentum));
    CNN_TRY(cnn_cfg_float(m, "momentum2", 0.999f, &c->update.momentum2));
    CNN_TRY(cnn_cfg_float(m, "delta", 1e-8f, &c->update.delta));
    CNN_TRY(cnn_cfg_float(m, "rms_decay", 0.99f, &c->update.rms_decay));
    CNN_TRY(cnn_cfg_float(m, "weight_decay", 0.f, &c->weight_decay));
    CNN_TRY(cnn_cfg_float(m, "clip_gradients", -1.f, &c->clip_gradients));
    if (c->update.momentum < 0 || c->update.momentum >= 1.f)
        return field_error(m, "momentum", CNN_ERR_CONFIG, "momentum must be in [0, 1)");
    if (c->update.momentum2 < 0 || c->update.momentum2 >= 1.f)
        return field_error(m, "momentum2", CNN_ERR_CONFIG, "momentum2 must be in [0, 1)");
    if (c->update.rms_decay < 0 || c->update.rms_decay > 1.f)
        return field_error(m, "rms_decay", CNN_ERR_CONFIG, "rms_decay must be in [0, 1]");
    if (c->update.delta < 0)
        return field_error(m, "delta", CNN_ERR_CONFIG, "delta must not be negative");
fail:
    return st;
}

/* A non-negative int field. */
static cnn_status read_count(cnn_cfg *m, const char *key, int def, int min, int *out)
{
    cnn_status st = cnn_cfg_int(m, key, def, out);
    if (st != CNN_OK) return st;
    if (*out < min) return field_error(m, key, CNN_ERR_CONFIG, "%s must be >= %d", key, min);
    return CNN_OK;
}

cnn_status cnn_solver_config_read(cnn_cfg *m, const char *dir, cnn_solver_config *c)
{
    cnn_status st = CNN_OK;
    static const char *const modes[] = {"CPU", "GPU", NULL};
    static const char *const formats[] = {"HDF5", "BINARYPROTO", NULL};
    const char *prefix = "";
    bool b = false;
    int mode = 1, fmt = 1;
    cnn_solver_config_default(c);
    CNN_TRY(read_nets(m, dir, c));
    CNN_TRY(read_lr(m, c));
    CNN_TRY(read_type(m, c));
    CNN_TRY(read_count(m, "iter_size", 1, 1, &c->iter_size));
    CNN_TRY(read_count(m, "max_iter", 0, 0, &c->max_iter));
    int nti = cnn_cfg_count(m, "test_iter");
    if (nti > 1)
        return cnn_cfg_error(cnn_cfg_nth(m, "test_iter", 1), CNN_ERR_UNSUPPORTED,
                             "only one test net is supported (one test_iter)");
    CNN_TRY(read_count(m, "test_iter", 0, 0, &c->test_iter));
    CNN_TRY(read_count(m, "test_interval", 0, 0, &c->test_interval));
    CNN_TRY(cnn_cfg_bool(m, "test_initialization", true, &c->test_initialization));
    CNN_TRY(cnn_cfg_bool(m, "test_compute_loss", false, &b));
    CNN_TRY(read_count(m, "display", 0, 0, &c->display));
    CNN_TRY(read_count(m, "average_loss", 1, 1, &c->average_loss));
    CNN_TRY(read_count(m, "snapshot", 0, 0, &c->snapshot));
    CNN_TRY(cnn_cfg_string(m, "snapshot_prefix", "", &prefix));
    if (strlen(prefix) >= CNN_SOLVER_PATH_MAX - 64)
        return field_error(m, "snapshot_prefix", CNN_ERR_CONFIG, "snapshot_prefix too long");
    strcpy(c->snapshot_prefix, prefix);
    CNN_TRY(cnn_cfg_bool(m, "snapshot_after_train", true, &c->snapshot_after_train));
    CNN_TRY(cnn_cfg_bool(m, "snapshot_diff", false, &b));
    if (b)
        return field_error(m, "snapshot_diff", CNN_ERR_UNSUPPORTED,
                           "snapshot_diff is not supported");
    CNN_TRY(cnn_cfg_enum(m, "snapshot_format", formats, 1, &fmt));
    CNN_TRY(cnn_cfg_int64(m, "random_seed", -1, &c->random_seed));
    CNN_TRY(cnn_cfg_enum(m, "solver_mode", modes, 1, &mode));
    c->gpu = mode == 1;
    CNN_TRY(cnn_cfg_int(m, "device_id", 0, &c->device_id));
    CNN_TRY(cnn_cfg_int(m, "workspace_mb", -1, &c->workspace_mb));
    if (c->workspace_mb < -1 || c->workspace_mb > (1 << 20))
        return field_error(m, "workspace_mb", CNN_ERR_CONFIG,
                           "workspace_mb must be a number of MiB from 0 to 1048576");
    CNN_TRY(cnn_cfg_bool(m, "deterministic", false, &c->deterministic));
    CNN_TRY(cnn_cfg_bool(m, "cuda_graph", false, &c->cuda_graph));
    CNN_TRY(cnn_cfg_bool(m, "debug_info", false, &c->debug_info));
    CNN_TRY(cnn_cfg_bool(m, "layer_wise_reduce", true, &b));
    c->lr.max_iter = c->max_iter;
    CNN_TRY(cnn_cfg_check_used(m, "solver"));
fail:
    return st;
}

/* ---- construction --------------------------------------------------------- */

static bool is_model(cnn_cfg *root)
{
    return cnn_cfg_count(root, "layer") || cnn_cfg_count(root, "layers") ||
           cnn_cfg_count(root, "solver");
}

/* Groups the parameters by their device (the GPU path keeps each group's
 * history and update on that device). */
static cnn_status group_params(cnn_solver *s)
{
    s->n_devices = cnn_net_num_devices(s->net);
    for (int d = 0; d < s->n_devices; d++) {
        s->dev_param[d] = calloc((size_t)s->n_params + 1, sizeof(int));
        if (!s->dev_param[d]) return CNN_ERROR(CNN_ERR_MEMORY, "out of memory");
    }
    for (int p = 0; p < s->n_params; p++) {
        int d = cnn_net_param_info(s->net, p)->device;
        s->dev_param[d][s->dev_n[d]++] = p;
    }
    return CNN_OK;
}

/* A zeroed tensor of n floats, mirrored on ctx when ctx is not NULL. */
static cnn_status new_tensor(const char *name, int ndim, const int *shape, cnn_cuda_ctx *ctx,
                             cnn_tensor **out)
{
    cnn_status st = CNN_OK;
    cnn_tensor *t = cnn_tensor_create(name);
    if (!t) return CNN_ERROR(CNN_ERR_MEMORY, "out of memory for solver history");
    CNN_TRY(cnn_tensor_reshape(t, ndim, shape));
    if (ctx) CNN_TRY(cnn_tensor_attach(t, ctx));
    *out = t;
    return CNN_OK;
fail:
    cnn_tensor_free(t);
    return st;
}

cnn_status cnn_solver_alloc_history(cnn_solver *s)
{
    cnn_status st = CNN_OK;
    s->n_params = cnn_net_num_params(s->net);
    s->gpu = cnn_net_on_gpu(s->net);
    CNN_TRY(group_params(s));
    int slots = cnn_solver_history_slots(s->cfg.update.type);
    for (int k = 0; k < slots; k++) {
        s->hist[k] = calloc((size_t)s->n_params + 1, sizeof(cnn_tensor *));
        if (!s->hist[k]) return CNN_ERROR(CNN_ERR_MEMORY, "out of memory for solver history");
        for (int p = 0; p < s->n_params; p++) {
            const cnn_param_info *pi = cnn_net_param_info(s->net, p);
            CNN_TRY(new_tensor("history", pi->tensor->ndim, pi->tensor->shape,
                               cnn_tensor_ctx(pi->tensor), &s->hist[k][p]));
        }
    }
    if (!s->gpu) return CNN_OK;
    int n = s->cfg.average_loss;
    CNN_TRY(new_tensor("losses", 1, &n, cnn_net_cuda(s->net, 0), &s->dev_losses));
    for (int d = 0; d < s->n_devices; d++) {
        int m = s->dev_n[d] > 0 ? s->dev_n[d] : 1;
        CNN_TRY(new_tensor("clip", 1, &m, cnn_net_cuda(s->net, d), &s->clip_scratch[d]));
    }
fail:
    return st;
}

static uint64_t clock_seed(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = (uint64_t)ts.tv_sec * 1000000007ULL ^ (uint64_t)ts.tv_nsec ^
                 ((uint64_t)getpid() << 32);
    /* Keep it printable as a non-negative int64 so it can be reused as random_seed. */
    return x & 0x7fffffffffffffffULL;
}

/* The default snapshot prefix: the file name without its extension. */
static void default_prefix(const char *path, char *out)
{
    snprintf(out, CNN_SOLVER_PATH_MAX - 64, "%s", path);
    char *slash = strrchr(out, '/'), *dot = strrchr(out, '.');
    if (dot && (!slash || dot > slash + 1)) *dot = '\0';
}

static cnn_status build_net(cnn_solver *s, cnn_cfg *root, const char *file, cnn_phase phase,
                            cnn_net **out)
{
    cnn_net_opts o = cnn_net_default_opts();
    o.phase = phase;
    o.seed = s->seed;
    o.level = phase == CNN_TRAIN ? s->cfg.train_level : s->cfg.test_level;
    o.devices = s->devices;
    o.gpus = s->gpus;
    memcpy(o.gpu, s->gpu_ids, sizeof o.gpu);
    o.workspace_bytes = s->workspace_bytes;
    o.deterministic = s->deterministic;
    o.cuda_graph = phase == CNN_TRAIN && s->cuda_graph && s->cfg.iter_size == 1;
    return cnn_net_from_cfg(root, file, &o, out);
}

/* Builds the solver around an already parsed file `path` (root, owned by s). */
static cnn_status from_root(cnn_solver *s, cnn_cfg *root, const char *path,
                            const cnn_solver_opts *o)
{
    cnn_status st = CNN_OK;
    char dir[CNN_SOLVER_PATH_MAX];
    cnn_solver_path_dir(path, dir, sizeof dir);
    snprintf(s->model, sizeof s->model, "%s", path);
    s->roots[0] = root;
    cnn_cfg *train_root = root, *test_root = root;
    const char *train_file = path, *test_file = path;
    if (is_model(root)) {
        cnn_cfg *blk = NULL;
        CNN_TRY(cnn_cfg_message(root, "solver", &blk));
        if (!blk)
            return CNN_ERROR(CNN_ERR_CONFIG,
                             "%s: no solver { } block (add one, or pass a solver file)", path);
        static const char *const nets[] = {"net", "train_net", "test_net", NULL};
        for (int i = 0; nets[i]; i++)
            if (cnn_cfg_count(blk, nets[i]))
                return cnn_cfg_error(cnn_cfg_get(blk, nets[i]), CNN_ERR_CONFIG,
                                     "a solver block inside a model file cannot name a net");
        CNN_TRY(cnn_solver_config_read(blk, dir, &s->cfg));
        snprintf(s->cfg.train_net, sizeof s->cfg.train_net, "%s", path);
        snprintf(s->cfg.test_net, sizeof s->cfg.test_net, "%s", path);
    } else {
        CNN_TRY(cnn_solver_config_read(root, dir, &s->cfg));
        if (!s->cfg.train_net[0])
            return CNN_ERROR(CNN_ERR_CONFIG,
                             "%s: neither a model (no layer fields) nor a solver naming one "
                             "(no net: \"path\")", path);
        CNN_TRY(cnn_cfg_parse_file(s->cfg.train_net, &s->roots[1]));
        train_root = test_root = s->roots[1];
        train_file = test_file = s->cfg.train_net;
        if (strcmp(s->cfg.test_net, s->cfg.train_net)) {
            CNN_TRY(cnn_cfg_parse_file(s->cfg.test_net, &s->roots[2]));
            test_root = s->roots[2];
            test_file = s->cfg.test_net;
        }
    }
    if (o && o->max_iter > 0) s->cfg.max_iter = s->cfg.lr.max_iter = o->max_iter;
    if (s->cfg.max_iter <= 0)
        return CNN_ERROR(CNN_ERR_CONFIG, "%s: max_iter must be set (> 0)", path);
    if (o && o->snapshot_prefix) {
        if (!*o->snapshot_prefix || strlen(o->snapshot_prefix) >= CNN_SOLVER_PATH_MAX - 64)
            return CNN_ERROR(CNN_ERR_ARG, "bad snapshot prefix '%s'", o->snapshot_prefix);
        strcpy(s->cfg.snapshot_prefix, o->snapshot_prefix);
    }
    if (!s->cfg.snapshot_prefix[0]) default_prefix(path, s->cfg.snapshot_prefix);
    s->seed = s->cfg.random_seed >= 0 ? (uint64_t)s->cfg.random_seed : clock_seed();
    s->devices = o ? o->devices : 0;
    if (o && o->gpus > 0) {
        s->gpus = o->gpus;
        memcpy(s->gpu_ids, o->gpu, sizeof s->gpu_ids);
        s->workspace_bytes = o->workspace_bytes;
        s->deterministic = o->deterministic;
    }
    /* The model file's settings, unless the command line gave its own. */
    if (!s->workspace_bytes && s->cfg.workspace_mb >= 0) /* 0 MiB: no workspace at all */
        s->workspace_bytes = s->cfg.workspace_mb ? (size_t)s->cfg.workspace_mb << 20 : 1;
    s->deterministic = s->deterministic || s->cfg.deterministic;
    s->cuda_graph = (o && o->cuda_graph) || s->cfg.cuda_graph;
    CNN_TRY(build_net(s, train_root, train_file, CNN_TRAIN, &s->net));
    if (s->cfg.test_iter > 0 && s->cfg.test_interval > 0)
        CNN_TRY(build_net(s, test_root, test_file, CNN_TEST, &s->test_net));
    CNN_TRY(cnn_solver_alloc_history(s));
    s->losses = calloc((size_t)s->cfg.average_loss, sizeof(double));
    if (!s->losses) return CNN_ERROR(CNN_ERR_MEMORY, "out of memory");
    s->lr = cnn_lr_at(&s->cfg.lr, 0);
    for (int i = 0; i < s->cfg.n_weights; i++)
        CNN_TRY(cnn_solver_load_weights(s, s->cfg.weights[i]));
fail:
    return st;
}

static cnn_status finish(cnn_status st, cnn_solver *s, cnn_solver **out)
{
    if (st != CNN_OK) {
        cnn_solver_free(s);
        return st;
    }
    *out = s;
    return CNN_OK;
}

cnn_status cnn_solver_from_file(const char *path, const cnn_solver_opts *o, cnn_solver **out)
{
    *out = NULL;
    cnn_cfg *root = NULL;
    cnn_status st = cnn_cfg_parse_file(path, &root);
    if (st != CNN_OK) return st;
    cnn_solver *s = calloc(1, sizeof *s);
    if (!s) {
        cnn_cfg_free(root);
        return CNN_ERROR(CNN_ERR_MEMORY, "out of memory");
    }
    return finish(from_root(s, root, path, o), s, out);
}

cnn_status cnn_solver_from_string(const char *text, const char *name,
                                  const cnn_solver_opts *o, cnn_solver **out)
{
    *out = NULL;
    cnn_cfg *root = NULL;
    cnn_status st = cnn_cfg_parse_string(text, name, &root);
    if (st != CNN_OK) return st;
    cnn_solver *s = calloc(1, sizeof *s);
    if (!s) {
        cnn_cfg_free(root);
        return CNN_ERROR(CNN_ERR_MEMORY, "out of memory");
    }
    return finish(from_root(s, root, name, o), s, out);
}

void cnn_solver_free(cnn_solver *s)
{
    if (!s) return;
    /* Mirrors first: they belong to the nets' contexts. */
    for (int k = 0; k < 2; k++) {
        if (s->hist[k])
            for (int p = 0; p < s->n_params; p++) cnn_tensor_free(s->hist[k][p]);
        free(s->hist[k]);
    }
    cnn_tensor_free(s->dev_losses);
    for (int d = 0; d < CNN_MAX_DEVICES; d++) cnn_tensor_free(s->clip_scratch[d]);
    cnn_net_free(s->net);
    cnn_net_free(s->test_net);
    for (int k = 0; k < 3; k++) cnn_cfg_free(s->roots[k]);
    for (int d = 0; d < CNN_MAX_DEVICES; d++) free(s->dev_param[d]);
    free(s->losses);
    free(s->test_sum);
    free(s);
}

/* ---- accessors ------------------------------------------------------------ */

const cnn_solver_config *cnn_solver_get_config(const cnn_solver *s) { return &s->cfg; }
cnn_net *cnn_solver_net(const cnn_solver *s) { return s->net; }
cnn_net *cnn_solver_test_net(const cnn_solver *s) { return s->test_net; }
uint64_t cnn_solver_seed(const cnn_solver *s) { return s->seed; }
int cnn_solver_iter(const cnn_solver *s) { return s->iter; }
double cnn_solver_lr(const cnn_solver *s) { return s->lr; }
bool cnn_solver_stopped(const cnn_solver *s) { return s->stopped; }
int cnn_solver_num_devices(const cnn_solver *s) { return s->n_devices; }

int cnn_solver_batch_size(const cnn_solver *s)
{
    if (cnn_net_num_layers(s->net) < 1 || cnn_net_layer_num_tops(s->net, 0) < 1) return 1;
    cnn_tensor *t = cnn_net_layer_top(s->net, 0, 0);
    return t->ndim > 0 && t->shape[0] > 0 ? t->shape[0] : 1;
}

double cnn_solver_smoothed_loss(const cnn_solver *s)
{
    if (s->n_losses == 0) return NAN;
    int k = s->n_losses < s->cfg.average_loss ? s->n_losses : s->cfg.average_loss;
    double sum = 0;
    for (int i = 0; i < k; i++) sum += s->losses[i];
    return sum / k;
}

cnn_status cnn_solver_load_weights(cnn_solver *s, const char *path)
{
    return cnn_finetune_load(s->net, &path, 1, false, NULL);
}

void cnn_solver_set_feed(cnn_solver *s, cnn_solver_feed_fn fn, void *user)
{
    s->feed = fn;
    s->feed_user = user;
}

/* ---- one step ------------------------------------------------------------ */

/* Caffe's ClipGradients: scales every learned gradient so that their joint
 * L2 norm is at most clip_gradients. */
static void clip_gradients(cnn_solver *s)
{
    float clip = s->cfg.clip_gradients;
    if (clip < 0) return;
    double sumsq = 0;
    for (int p = 0; p < s->n_params; p++) {
        const cnn_param_info *pi = cnn_net_param_info(s->net, p);
        if (pi->lr_mult == 0.f) continue;
        const float *g = pi->tensor->grad;
        for (size_t i = 0; i < pi->tensor->count; i++) sumsq += (double)g[i] * g[i];
    }
    float norm = (float)sqrt(sumsq);
    if (norm <= clip) return;
    float scale = clip / norm;
    for (int p = 0; p < s->n_params; p++) {
        const cnn_param_info *pi = cnn_net_param_info(s->net, p);
        if (pi->lr_mult == 0.f) continue;
        float *g = pi->tensor->grad;
        for (size_t i = 0; i < pi->tensor->count; i++) g[i] *= scale;
    }
}

/* Normalise, regularise and update parameter p (with its history). */
static void update_param(cnn_solver *s, int p, float rate)
{
    const cnn_solver_config *c = &s->cfg;
    const cnn_param_info *pi = cnn_net_param_info(s->net, p);
    if (pi->lr_mult == 0.f) return;
    cnn_tensor *t = pi->tensor;
    if (c->iter_size > 1) {
        float inv = 1.f / (float)c->iter_size;
        for (size_t i = 0; i < t->count; i++) t->grad[i] *= inv;
    }
    float decay = c->weight_decay * pi->decay_mult;
    if (c->update.type != CNN_SOLVER_ADAMW)
        cnn_solver_regularize(c->update.reg, decay, t->count, t->data, t->grad);
    cnn_solver_update(&c->update, t->count, rate * pi->lr_mult, decay, s->iter, t->data,
                      t->grad, s->hist[0][p]->data, s->hist[1] ? s->hist[1][p]->data : NULL);
}

/* Caffe's SGDSolver::ApplyUpdate: clip, normalise, regularise, update;
 * device by device, each parameter where it lives. */
static void apply_update(cnn_solver *s)
{
    clip_gradients(s);
    for (int d = 0; d < s->n_devices; d++)
        for (int k = 0; k < s->dev_n[d]; k++) update_param(s, s->dev_param[d][k], (float)s->lr);
}

/* ---- one step on GPUs ------------------------------------------------------ */

/* clip_gradients on the devices: squared norms by device dot products, read
 * back (the one wait of a step, only when clipping is on), then a scale. */
static cnn_status clip_gradients_gpu(cnn_solver *s)
{
    cnn_status st = CNN_OK;
    float clip = s->cfg.clip_gradients;
    double sumsq = 0;
    if (clip < 0) return CNN_OK;
    for (int d = 0; d < s->n_devices; d++) {
        float *out = NULL;
        cnn_cuda_ctx *c = cnn_net_cuda(s->net, d);
        CNN_TRY(cnn_cuda_ctx_use(c));
        CNN_TRY(cnn_gpu_write(s->clip_scratch[d], &out));
        CNN_TRY(cnn_cuda_set(c, s->clip_scratch[d]->count, 0.f, out));
        for (int k = 0; k < s->dev_n[d]; k++) {
            const cnn_param_info *pi = cnn_net_param_info(s->net, s->dev_param[d][k]);
            const float *g = NULL;
            if (pi->lr_mult == 0.f || pi->tensor->count == 0) continue;
            CNN_TRY(cnn_gpu_read_grad(pi->tensor, &g));
            CNN_TRY(cnn_cuda_dot(c, pi->tensor->count, g, g, out + k));
        }
    }
    for (int d = 0; d < s->n_devices; d++) {
        CNN_TRY(cnn_host_data(s->clip_scratch[d]));
        for (int k = 0; k < s->dev_n[d]; k++) sumsq += s->clip_scratch[d]->data[k];
    }
    float norm = (float)sqrt(sumsq);
    if (norm <= clip) return CNN_OK;
    float scale = clip / norm;
    for (int p = 0; p < s->n_params; p++) {
        const cnn_param_info *pi = cnn_net_param_info(s->net, p);
        float *g = NULL;
        if (pi->lr_mult == 0.f || pi->tensor->count == 0) continue;
        cnn_cuda_ctx *c = cnn_tensor_ctx(pi->tensor);
        CNN_TRY(cnn_cuda_ctx_use(c));
        CNN_TRY(cnn_gpu_modify_grad(pi->tensor, &g));
        CNN_TRY(cnn_cuda_scale(c, pi->tensor->count, scale, g));
    }
fail:
    return st;
}

/* update_param on p's device: normalisation, regularisation and the rule
 * in one kernel (cnn_cuda_solver_update computes what update.c does). */
static cnn_status update_param_gpu(cnn_solver *s, int p, float rate)
{
    cnn_status st = CNN_OK;
    const cnn_solver_config *c = &s->cfg;
    const cnn_param_info *pi = cnn_net_param_info(s->net, p);
    cnn_tensor *t = pi->tensor;
    float *w = NULL, *g = NULL, *h0 = NULL, *h1 = NULL;
    if (pi->lr_mult == 0.f || t->count == 0) return CNN_OK;
    cnn_cuda_update u = {
        .rule = (cnn_cuda_update_rule)c->update.type,
        .l1 = c->update.reg == CNN_REG_L1,
        .momentum = c->update.momentum,
        .momentum2 = c->update.momentum2,
        .delta = c->update.delta,
        .rms_decay = c->update.rms_decay,
        .rate = rate * pi->lr_mult,
        .decay = c->weight_decay * pi->decay_mult,
        .grad_scale = c->iter_size > 1 ? 1.f / (float)c->iter_size : 1.f,
        .iter = s->iter,
    };
    cnn_cuda_ctx *ctx = cnn_tensor_ctx(t);
    CNN_TRY(cnn_cuda_ctx_use(ctx));
    CNN_TRY(cnn_gpu_modify(t, &w));
    CNN_TRY(cnn_gpu_modify_grad(t, &g));
    CNN_TRY(cnn_gpu_modify(s->hist[0][p], &h0));
    if (s->hist[1]) CNN_TRY(cnn_gpu_modify(s->hist[1][p], &h1));
    CNN_TRY(cnn_cuda_solver_update(ctx, &u, t->count, w, g, h0, h1));
fail:
    return st;
}

static cnn_status apply_update_gpu(cnn_solver *s)
{
    cnn_status st = CNN_OK;
    CNN_TRY(clip_gradients_gpu(s));
    for (int d = 0; d < s->n_devices; d++)
        for (int k = 0; k < s->dev_n[d]; k++)
            CNN_TRY(update_param_gpu(s, s->dev_param[d][k], (float)s->lr));
fail:
    return st;
}

cnn_status cnn_solver_fetch_losses(cnn_solver *s)
{
    cnn_status st = CNN_OK;
    int n = s->cfg.average_loss;
    if (!s->gpu || s->fetched == s->n_losses) return CNN_OK;
    CNN_TRY(cnn_net_check_gpu(s->net));
    CNN_TRY(cnn_host_data(s->dev_losses));
    int unread = s->n_losses - s->fetched, fresh = unread < n ? unread : n;
    s->fetched = s->n_losses;
    for (int i = 0; i < n; i++) s->losses[i] = s->dev_losses->data[i];
    for (int k = fresh; k >= 1; k--) { /* oldest first: name the first bad step */
        double l = s->losses[(s->n_losses - k) % n];
        if (!isfinite(l))
            return CNN_ERROR(CNN_ERR_NUMERIC, "loss is %s at iteration %d%s (on GPUs the loss "
                                              "is checked when it is read back)",
                             isnan(l) ? "nan" : "inf", s->last_loss_iter - (k - 1),
                             k == fresh && unread > n ? " or earlier" : "");
    }
fail:
    return st;
}

/* One step on GPUs: everything queued, the loss summed into its ring slot on
 * device 0; the host waits only for a requested loss or for clipping. */
static cnn_status step_gpu(cnn_solver *s, float *loss)
{
    cnn_status st = CNN_OK;
    cnn_cuda_ctx *c0 = cnn_net_cuda(s->net, 0);
    float *ring = NULL;
    int slot = s->n_losses % s->cfg.average_loss;
    CNN_TRY(cnn_net_zero_grads(s->net));
    CNN_TRY(cnn_gpu_modify(s->dev_losses, &ring));
    CNN_TRY(cnn_cuda_ctx_use(c0));
    CNN_TRY(cnn_cuda_set(c0, 1, 0.f, ring + slot));
    for (int k = 0; k < s->cfg.iter_size; k++) {
        if (s->feed) CNN_TRY(s->feed(s->net, s->batches, s->feed_user));
        /* One call, so that it can be a CUDA graph (backward leaves the
         * loss tops alone). */
        CNN_TRY(cnn_net_forward_backward(s->net));
        s->batches++;
        CNN_TRY(cnn_net_loss_device(s->net, ring + slot));
    }
    CNN_TRY(cnn_cuda_ctx_use(c0));
    if (s->cfg.iter_size > 1)
        CNN_TRY(cnn_cuda_scale(c0, 1, 1.f / (float)s->cfg.iter_size, ring + slot));
    s->n_losses++;
    s->last_loss_iter = s->iter;
    if (loss) {
        CNN_TRY(cnn_solver_fetch_losses(s));
        *loss = (float)s->losses[slot];
    }
    s->lr = cnn_lr_at(&s->cfg.lr, s->iter);
    CNN_TRY(apply_update_gpu(s));
    s->iter++;
fail:
    return st;
}

cnn_status cnn_solver_step(cnn_solver *s, float *loss)
{
    cnn_status st = CNN_OK;
    double sum = 0;
    if (s->gpu) return step_gpu(s, loss);
    cnn_net_zero_param_grads(s->net);
    for (int k = 0; k < s->cfg.iter_size; k++) {
        float l = 0;
        if (s->feed) CNN_TRY(s->feed(s->net, s->batches, s->feed_user));
        CNN_TRY(cnn_net_forward(s->net, &l));
        s->batches++;
        if (!isfinite(l))
            return CNN_ERROR(CNN_ERR_NUMERIC, "loss is %s at iteration %d",
                             isnan(l) ? "nan" : "inf", s->iter);
        CNN_TRY(cnn_net_backward(s->net));
        sum += l;
    }
    double mean = sum / s->cfg.iter_size;
    if (!isfinite(mean))
        return CNN_ERROR(CNN_ERR_NUMERIC, "loss is inf at iteration %d", s->iter);
    s->losses[s->n_losses++ % s->cfg.average_loss] = mean;
    s->lr = cnn_lr_at(&s->cfg.lr, s->iter);
    apply_update(s);
    s->iter++;
    if (loss) *loss = (float)mean;
fail:
    return st;
}

/* ---- testing -------------------------------------------------------------- */

cnn_status cnn_solver_test(cnn_solver *s, const volatile sig_atomic_t *stop, bool *stopped,
                           cnn_test_result *r)
{
    cnn_status st = CNN_OK;
    cnn_net *tn = s->test_net;
    if (stopped) *stopped = false;
    if (!tn) return CNN_ERROR(CNN_ERR_ARG, "the solver has no test net");
    CNN_TRY(cnn_net_copy_params(tn, s->net));
    CNN_TRY(cnn_net_seek_data(tn, 0));
    int no = cnn_net_num_outputs(tn);
    size_t total = 0;
    for (int o = 0; o < no; o++) total += cnn_net_output(tn, o)->count;
    if (total > s->test_sum_cap) {
        double *p = realloc(s->test_sum, total * sizeof(double));
        if (!p) return CNN_ERROR(CNN_ERR_MEMORY, "out of memory");
        s->test_sum = p;
        s->test_sum_cap = total;
    }
    if (total) memset(s->test_sum, 0, total * sizeof(double));
    double loss = 0;
    for (int it = 0; it < s->cfg.test_iter; it++) {
        if (stop && *stop) {
            if (stopped) *stopped = true;
            return CNN_OK;
        }
        float l = 0;
        CNN_TRY(cnn_net_forward(tn, &l));
        loss += l;
        size_t k = 0;
        for (int o = 0; o < no; o++) {
            cnn_tensor *t = cnn_net_output(tn, o);
            CNN_TRY(cnn_host_data(t));
            for (size_t i = 0; i < t->count && k < total; i++) s->test_sum[k++] += t->data[i];
        }
    }
    memset(r, 0, sizeof *r);
    r->iter = s->iter;
    r->loss = loss / s->cfg.test_iter;
    r->accuracy = NAN;
    size_t k = 0;
    for (int o = 0; o < no; o++) {
        cnn_tensor *t = cnn_net_output(tn, o);
        const char *name = t->name ? t->name : "output";
        for (size_t i = 0; i < t->count; i++, k++) {
            double v = s->test_sum[k] / s->cfg.test_iter;
            if (i == 0 && isnan(r->accuracy) && strstr(name, "accuracy")) r->accuracy = v;
            if (r->n >= CNN_MAX_TEST_OUTPUTS) continue;
            if (t->count == 1)
                snprintf(r->name[r->n], sizeof r->name[0], "%s", name);
            else
                snprintf(r->name[r->n], sizeof r->name[0], "%.40s[%d]", name,
                         (int)(i & 0xffff));
            r->value[r->n++] = v;
        }
    }
fail:
    return st;
}

/* ---- the loop ------------------------------------------------------------- */

static void emit(cnn_solver_event_fn cb, void *user, cnn_solver_event e)
{
    if (cb) cb(&e, user);
}

/* Creates the snapshot folder (and its parents) when missing, and fails
 * early when snapshots could not be written there (Caffe checks too). */
static cnn_status prepare_prefix(const cnn_solver *s)
{
    char dir[CNN_SOLVER_PATH_MAX];
    struct stat sb;
    cnn_solver_path_dir(s->cfg.snapshot_prefix, dir, sizeof dir);
    for (char *p = dir + 1;; p++) {
        bool end = *p == '\0';
        if (*p != '/' && !end) continue;
        *p = '\0';
        if (stat(dir, &sb) != 0 && mkdir(dir, 0777) != 0 && errno != EEXIST)
            return CNN_ERROR(CNN_ERR_IO, "snapshot_prefix '%s': cannot create folder '%s': %s",
                             s->cfg.snapshot_prefix, dir, strerror(errno));
        if (end) break;
        *p = '/';
    }
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return CNN_ERROR(CNN_ERR_IO, "snapshot_prefix '%s': '%s' is not a folder",
                         s->cfg.snapshot_prefix, dir);
    if (access(dir, W_OK) != 0)
        return CNN_ERROR(CNN_ERR_IO, "snapshot_prefix '%s': folder '%s' is not writable",
                         s->cfg.snapshot_prefix, dir);
    return CNN_OK;
}

static cnn_status run_test(cnn_solver *s, const volatile sig_atomic_t *stop,
                           cnn_solver_event_fn cb, void *user)
{
    cnn_test_result r;
    bool stopped = false;
    cnn_status st = cnn_solver_test(s, stop, &stopped, &r);
    if (st != CNN_OK || stopped) return st;
    emit(cb, user, (cnn_solver_event){.kind = CNN_EV_TEST, .iter = s->iter, .test = &r});
    return CNN_OK;
}

static cnn_status snapshot(cnn_solver *s, cnn_solver_event_fn cb, void *user)
{
    char path[CNN_SOLVER_PATH_MAX];
    cnn_status st = cnn_solver_snapshot(s, path, sizeof path);
    if (st != CNN_OK) return st;
    emit(cb, user, (cnn_solver_event){.kind = CNN_EV_SNAPSHOT, .iter = s->iter, .path = path});
    return CNN_OK;
}

cnn_status cnn_solver_solve(cnn_solver *s, const volatile sig_atomic_t *stop,
                            cnn_solver_event_fn cb, void *user)
{
    cnn_status st = CNN_OK;
    const cnn_solver_config *c = &s->cfg;
    bool testing = s->test_net && c->test_interval > 0, ran = false;
    int last_snapshot = -1;
    s->stopped = false;
    if (c->snapshot > 0 || c->snapshot_after_train || stop) CNN_TRY(prepare_prefix(s));
    if (testing && s->iter % c->test_interval == 0 && (s->iter > 0 || c->test_initialization) &&
        s->iter < c->max_iter)
        CNN_TRY(run_test(s, stop, cb, user));
    while (s->iter < c->max_iter && !(stop && *stop)) {
        CNN_TRY(cnn_solver_step(s, NULL));
        ran = true;
        bool display = c->display > 0 && s->iter % c->display == 0;
        /* GPUs: the losses come back (and are checked) only where they are
         * shown or before work that needs sane weights. */
        if (display || (testing && s->iter % c->test_interval == 0) ||
            (c->snapshot > 0 && s->iter % c->snapshot == 0) || s->iter == c->max_iter ||
            (stop && *stop))
            CNN_TRY(cnn_solver_fetch_losses(s));
        cnn_solver_event e = {.kind = CNN_EV_ITER, .iter = s->iter,
                              .loss = cnn_solver_smoothed_loss(s), .lr = s->lr};
        emit(cb, user, e);
        if (display) {
            e.kind = CNN_EV_DISPLAY;
            emit(cb, user, e);
        }
        if (testing && s->iter % c->test_interval == 0 && !(stop && *stop))
            CNN_TRY(run_test(s, stop, cb, user));
        if (c->snapshot > 0 && s->iter % c->snapshot == 0) {
            CNN_TRY(snapshot(s, cb, user));
            last_snapshot = s->iter;
        }
    }
    s->stopped = stop && *stop && s->iter < c->max_iter;
    if (ran && (s->stopped || c->snapshot_after_train) && last_snapshot != s->iter)
        CNN_TRY(snapshot(s, cb, user));
fail:
    return st;
}
