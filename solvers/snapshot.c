/* snapshot.c — snapshots and resume. A snapshot is two files:
 *   <prefix>_iter_<N>.safetensors  the weights (cnn_weights_save)
 *   <prefix>_iter_<N>.solverstate  safetensors holding the history blobs as
 *       "history.<slot>.<layer>.<index>" and, in __metadata__, the iteration,
 *       the training batches consumed, the net RNG state, the seed, the model
 *       file, the weights file, the solver type and the learning-rate state.
 * Both are written to a temporary file and renamed into place, so an existing
 * snapshot is never left half-written. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../core/gpu.h"
#include "../core/weights.h"
#include "solver_internal.h"

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

cnn_status cnn_solver_snapshot(cnn_solver *s, char *state_path, size_t n)
{
    cnn_status st = CNN_OK;
    char wpath[CNN_SOLVER_PATH_MAX], spath[CNN_SOLVER_PATH_MAX];
    const char *prefix = s->cfg.snapshot_prefix;
    int slots = cnn_solver_history_slots(s->cfg.update.type), ne = slots * s->n_params;
    cnn_safetensors_entry *e = calloc((size_t)ne + 1, sizeof *e);
    char **names = calloc((size_t)ne + 1, sizeof *names);
    if (!e || !names) {
        st = CNN_ERROR(CNN_ERR_MEMORY, "out of memory");
        goto fail;
    }
    if ((size_t)snprintf(wpath, sizeof wpath, "%s_iter_%d.safetensors", prefix, s->iter) >=
            sizeof wpath ||
        (size_t)snprintf(spath, sizeof spath, "%s_iter_%d.solverstate", prefix, s->iter) >=
            sizeof spath) {
        st = CNN_ERROR(CNN_ERR_ARG, "snapshot prefix '%s' is too long", prefix);
        goto fail;
    }
    for (int k = 0, i = 0; k < slots; k++)
        for (int p = 0; p < s->n_params; p++, i++) {
            const cnn_param_info *pi = cnn_net_param_info(s->net, p);
            size_t len = strlen(pi->layer) + 32;
            if (!(names[i] = malloc(len))) {
                st = CNN_ERROR(CNN_ERR_MEMORY, "out of memory");
                goto fail;
            }
            snprintf(names[i], len, "history.%d.%s.%d", k, pi->layer, pi->index);
            CNN_TRY(cnn_host_data(s->hist[k][p])); /* GPUs: the device's history */
            e[i] = (cnn_safetensors_entry){.name = names[i], .ndim = pi->tensor->ndim,
                                           .shape = pi->tensor->shape,
                                           .data = s->hist[k][p]->data};
        }
    CNN_TRY(cnn_weights_save(s->net, wpath));

    const uint64_t *r = cnn_net_rng(s->net)->s;
    char iter[32], batches[32], rng[80], seed[32], lr[40], iter_size[32];
    snprintf(iter, sizeof iter, "%d", s->iter);
    snprintf(batches, sizeof batches, "%" PRIu64, s->batches);
    snprintf(rng, sizeof rng, "%016" PRIx64 " %016" PRIx64 " %016" PRIx64 " %016" PRIx64, r[0],
             r[1], r[2], r[3]);
    snprintf(seed, sizeof seed, "%" PRIu64, s->seed);
    snprintf(lr, sizeof lr, "%.17g", cnn_lr_at(&s->cfg.lr, s->iter));
    snprintf(iter_size, sizeof iter_size, "%d", s->cfg.iter_size);
    const char *meta[] = {"iter",      iter,
                          "batches",   batches,
                          "rng",       rng,
                          "seed",      seed,
                          "model",     s->model,
                          "weights",   base_name(wpath),
                          "type",      cnn_solver_type_names[s->cfg.update.type],
                          "lr_policy", cnn_lr_policy_names[s->cfg.lr.policy],
                          "lr",        lr,
                          "iter_size", iter_size,
                          NULL};
    CNN_TRY(cnn_safetensors_write(spath, e, ne, meta));
    if (state_path && n) snprintf(state_path, n, "%s", spath);
fail:
    if (names)
        for (int i = 0; i < ne; i++) free(names[i]);
    free(names);
    free(e);
    return st;
}

/* A non-negative integer from metadata `key`. */
static cnn_status meta_u64(const cnn_safetensors *f, const char *path, const char *key,
                           uint64_t *out)
{
    const char *v = cnn_safetensors_meta(f, key);
    char *end = NULL;
    if (!v)
        return CNN_ERROR(CNN_ERR_FORMAT, "%s: not a solver state (no '%s' in its metadata)",
                         path, key);
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (errno || end == v || *end || v[0] == '-')
        return CNN_ERROR(CNN_ERR_FORMAT, "%s: bad '%s' value '%s'", path, key, v);
    *out = x;
    return CNN_OK;
}

/* The weights file that goes with state file `path`. */
static cnn_status weights_path(const cnn_safetensors *f, const char *path, char *out)
{
    char dir[CNN_SOLVER_PATH_MAX];
    const char *w = cnn_safetensors_meta(f, "weights");
    cnn_solver_path_dir(path, dir, sizeof dir);
    struct stat sb;
    if (w && *w && !strchr(w, '/') &&
        (size_t)snprintf(out, CNN_SOLVER_PATH_MAX, "%s/%s", dir, w) < CNN_SOLVER_PATH_MAX &&
        stat(out, &sb) == 0)
        return CNN_OK;
    /* The sibling with the same stem. */
    snprintf(out, CNN_SOLVER_PATH_MAX - 16, "%s", path);
    char *slash = strrchr(out, '/'), *dot = strrchr(out, '.');
    if (dot && (!slash || dot > slash)) *dot = '\0';
    strcat(out, ".safetensors");
    if (stat(out, &sb) == 0) return CNN_OK;
    return CNN_ERROR(CNN_ERR_IO, "%s: its weights file '%s' is missing", path,
                     w && *w ? w : out);
}

cnn_status cnn_solver_restore(cnn_solver *s, const char *path)
{
    cnn_status st = CNN_OK;
    cnn_safetensors *f = NULL;
    uint64_t iter = 0, batches = 0, r[4];
    char wpath[CNN_SOLVER_PATH_MAX];
    CNN_TRY(cnn_safetensors_open(path, &f));
    CNN_TRY(meta_u64(f, path, "iter", &iter));
    if (iter > (uint64_t)s->cfg.max_iter) {
        st = CNN_ERROR(CNN_ERR_CONFIG, "%s: iteration %" PRIu64 " is past max_iter %d", path,
                       iter, s->cfg.max_iter);
        goto fail;
    }
    if (cnn_safetensors_meta(f, "batches"))
        CNN_TRY(meta_u64(f, path, "batches", &batches));
    else
        batches = iter * (uint64_t)s->cfg.iter_size;
    const char *type = cnn_safetensors_meta(f, "type");
    const char *want = cnn_solver_type_names[s->cfg.update.type];
    if (!type || strcmp(type, want)) {
        st = CNN_ERROR(CNN_ERR_CONFIG, "%s: written by the %s solver, this run uses %s", path,
                       type ? type : "(unknown)", want);
        goto fail;
    }
    const char *rng = cnn_safetensors_meta(f, "rng");
    int used = 0;
    if (!rng ||
        sscanf(rng, "%" SCNx64 " %" SCNx64 " %" SCNx64 " %" SCNx64 "%n", &r[0], &r[1], &r[2],
               &r[3], &used) != 4 ||
        rng[used]) {
        st = CNN_ERROR(CNN_ERR_FORMAT, "%s: missing or bad 'rng' state", path);
        goto fail;
    }
    int slots = cnn_solver_history_slots(s->cfg.update.type);
    int ne = slots * s->n_params;
    if (cnn_safetensors_count(f) != ne) {
        st = CNN_ERROR(CNN_ERR_FORMAT, "%s: %d history tensors, this net and solver need %d",
                       path, cnn_safetensors_count(f), ne);
        goto fail;
    }
    CNN_TRY(weights_path(f, path, wpath));
    /* Pass 0 checks every history blob, pass 1 copies them. */
    for (int pass = 0; pass < 2; pass++)
        for (int k = 0; k < slots; k++)
            for (int p = 0; p < s->n_params; p++) {
                const cnn_param_info *pi = cnn_net_param_info(s->net, p);
                char name[512];
                int ndim = 0, shape[CNN_MAX_DIMS];
                const float *data = NULL;
                snprintf(name, sizeof name, "history.%d.%s.%d", k, pi->layer, pi->index);
                CNN_TRY(cnn_safetensors_get(f, name, &ndim, shape, &data));
                size_t count = 1;
                for (int d = 0; d < ndim; d++) count *= (size_t)shape[d];
                if (count != pi->tensor->count) {
                    st = CNN_ERROR(CNN_ERR_SHAPE, "%s: %s has %zu values, the parameter %zu",
                                   path, name, count, pi->tensor->count);
                    goto fail;
                }
                if (pass == 1) {
                    memcpy(s->hist[k][p]->data, data, count * sizeof(float));
                    cnn_host_wrote_data(s->hist[k][p]);
                }
            }
    CNN_TRY(cnn_weights_load(s->net, wpath, false));
    memcpy(cnn_net_rng(s->net)->s, r, sizeof r);
    CNN_TRY(cnn_net_seek_data(s->net, batches));
    s->iter = (int)iter;
    s->batches = batches;
    s->n_losses = s->fetched = 0;
    s->lr = cnn_lr_at(&s->cfg.lr, s->iter);
fail:
    cnn_safetensors_close(f);
    return st;
}
