/* net.c — builds a layer graph from a model file and runs it.
 *
 * Building goes in passes: read the layer messages that match the phase into
 * specs (names only), place every layer on a logical device and insert Copy
 * layers where a layer reads a blob of another device, insert Split layers
 * where one blob version feeds several layers, instantiate the layers with
 * their tensors, reshape everything (which creates the parameters), then work
 * out loss weights, which layers and bottoms need gradients, and the
 * per-device schedules. With several devices, forward and backward run one
 * thread per device; a layer waits only for the other devices' layers that
 * touch the same tensors (in practice: across Copy layers).
 *
 * On GPUs (opts.gpus > 0) every logical device gets a CUDA context, every
 * tensor a device mirror on its producer's context (core/gpu.h), and each
 * layer runs its GPU functions where it has them, else its CPU functions on
 * host copies (made current first, marked written after). A pass starts
 * with every stream waiting for device 0's and ends with device 0's waiting
 * for every other, so no device overwrites what another still reads; the
 * host waits only where it reads results (the loss, host fallbacks). */
#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cnn.h"
#include "config.h"
#include "device.h"
#include "gpu.h"
#include "net_internal.h"

typedef struct layer_spec {
    cnn_cfg *cfg; /* NULL for inserted splits */
    const cnn_layer_type *type;
    char *name;
    int n_bottom, n_top;
    char **bottom, **top;
    int device;         /* logical device; -1: inherit from the first bottom */
    cnn_cfg *device_at; /* the `device` field, for errors (NULL if none) */
} layer_spec;

struct cnn_net {
    char *name;
    char *file;
    cnn_phase phase;
    cnn_rng rng;
    bool force_backward, shapes_only;
    int n_layers;
    cnn_layer **layers;
    int n_blobs;
    cnn_tensor **blobs; /* every named activation, owned */
    int n_inputs, n_outputs;
    cnn_tensor **inputs, **outputs;
    int n_params;
    cnn_tensor **params; /* every parameter tensor, owned */
    char **param_keys;   /* sharing name of params[i], or NULL */
    int n_info;
    cnn_param_info *info; /* unique learnable view of params */
    int n_devices;
    cnn_rng dev_rng[CNN_MAX_DEVICES]; /* forward-time randomness of devices >= 1 */
    int *sched;      /* (n_layers) layer indices grouped by device, net order within */
    int sched_start[CNN_MAX_DEVICES + 1]; /* device d: sched[start[d] .. start[d + 1]) */
    int *fwd_wait;   /* (n_layers x n_devices) steps of device d done before i's forward */
    int *bwd_wait;   /* the same for backward, steps counted in reverse order */
    bool gpu;                                /* opts.gpus > 0 */
    cnn_cuda_ctx *cuda[CNN_MAX_DEVICES];     /* per logical device, on GPUs */
    cnn_cuda_ctx *copy[CNN_MAX_DEVICES];     /* their upload streams (core/gpu.c) */
    cnn_cuda_event *joined[CNN_MAX_DEVICES]; /* per device: pass joins, cross-net copies */
    float *loss_buf; /* device 0: a scalar slot, then ones (loss_cap), staging (loss_cap) */
    size_t loss_cap;
    /* cnn_net_forward_backward as a CUDA graph (opts.cuda_graph). */
    bool graph_asked;          /* opts.cuda_graph (used on GPU nets only) */
    int graph_step;            /* 0: warm up eagerly next, 1: record next, 2: replay */
    cnn_cuda_graph *graph;
    unsigned *graph_pre;       /* states of blobs then params when recorded ... */
    unsigned *graph_post;      /* ... and after the recorded passes */
    char graph_note[320];      /* why there is no graph ("" while there may be) */
    bool skip_host;            /* the host layers ran already (graph prelude) */
};

static cnn_status graph_reset(cnn_net *n);

/* ---- small helpers ------------------------------------------------------ */

static cnn_status oom(void) { return CNN_ERROR(CNN_ERR_MEMORY, "out of memory"); }

/* Appends `item` (a pointer) to a growing array. */
static cnn_status push_ptr(void ***arr, int *n, void *item)
{
    void **a = realloc(*arr, (size_t)(*n + 1) * sizeof *a);
    if (!a) return oom();
    a[(*n)++] = item;
    *arr = a;
    return CNN_OK;
}

static cnn_status push_str(char ***arr, int *n, const char *s)
{
    char *copy = strdup(s);
    if (!copy) return oom();
    cnn_status st = push_ptr((void ***)arr, n, copy);
    if (st) free(copy);
    return st;
}

static void free_strs(char **a, int n)
{
    for (int i = 0; i < n; i++) free(a[i]);
    free(a);
}

static void spec_free(layer_spec *s)
{
    if (!s) return;
    free(s->name);
    free_strs(s->bottom, s->n_bottom);
    free_strs(s->top, s->n_top);
    free(s);
}

cnn_net_opts cnn_net_default_opts(void)
{
    return (cnn_net_opts){.phase = CNN_TRAIN, .seed = 1, .devices = 0};
}

static cnn_tensor *find_blob(const cnn_net *n, const char *name)
{
    for (int i = 0; i < n->n_blobs; i++)
        if (!strcmp(n->blobs[i]->name, name)) return n->blobs[i];
    return NULL;
}

static cnn_status add_blob(cnn_net *n, const char *name, cnn_tensor **out)
{
    cnn_tensor *t = cnn_tensor_create(name);
    if (!t) return oom();
    cnn_status st = push_ptr((void ***)&n->blobs, &n->n_blobs, t);
    if (st) {
        cnn_tensor_free(t);
        return st;
    }
    *out = t;
    return CNN_OK;
}

/* ---- phase rules -------------------------------------------------------- */

static const char *const phase_names[] = {"TRAIN", "TEST", NULL};

/* Does one NetStateRule { phase min_level max_level stage not_stage } hold? */
static cnn_status rule_matches(cnn_cfg *rule, const cnn_net_opts *o, bool *match)
{
    cnn_status st = CNN_OK;
    int phase = -1, min_level = -1000000, max_level = 1000000;
    *match = false;
    if (rule->kind != CNN_CFG_MESSAGE)
        return cnn_cfg_error(rule, CNN_ERR_CONFIG, "'%s' must be a message", rule->key);
    CNN_TRY(cnn_cfg_enum(rule, "phase", phase_names, -1, &phase));
    CNN_TRY(cnn_cfg_int(rule, "min_level", min_level, &min_level));
    CNN_TRY(cnn_cfg_int(rule, "max_level", max_level, &max_level));
    /* We run with no stages: a required stage never holds, not_stage always. */
    int stages = cnn_cfg_count(rule, "stage");
    for (int i = 0; i < cnn_cfg_count(rule, "not_stage"); i++) cnn_cfg_nth(rule, "not_stage", i);
    for (int i = 0; i < stages; i++) cnn_cfg_nth(rule, "stage", i);
    *match = (phase < 0 || phase == (int)o->phase) && o->level >= min_level &&
             o->level <= max_level && stages == 0;
fail:
    return st;
}

static cnn_status layer_included(cnn_cfg *layer, const cnn_net_opts *o, bool *inc)
{
    cnn_status st = CNN_OK;
    int n_inc = cnn_cfg_count(layer, "include"), n_exc = cnn_cfg_count(layer, "exclude");
    bool m;
    if (n_inc && n_exc)
        return cnn_cfg_error(layer, CNN_ERR_CONFIG, "a layer may have include or exclude "
                                                    "rules, not both");
    *inc = n_inc == 0;
    for (int i = 0; i < n_inc; i++) {
        CNN_TRY(rule_matches(cnn_cfg_nth(layer, "include", i), o, &m));
        if (m) *inc = true;
    }
    for (int i = 0; i < n_exc; i++) {
        CNN_TRY(rule_matches(cnn_cfg_nth(layer, "exclude", i), o, &m));
        if (m) *inc = false;
    }
fail:
    return st;
}

/* ---- reading layer specs ------------------------------------------------ */

static cnn_status read_strings(cnn_cfg *m, const char *key, char ***out, int *n)
{
    cnn_status st = CNN_OK;
    for (int i = 0; i < cnn_cfg_count(m, key); i++) {
        cnn_cfg *f = cnn_cfg_nth(m, key, i);
        if (f->kind != CNN_CFG_STRING)
            return cnn_cfg_error(f, CNN_ERR_CONFIG, "'%s' must be a quoted string", key);
        CNN_TRY(push_str(out, n, f->text));
    }
fail:
    return st;
}

static cnn_status read_spec(cnn_cfg *m, int index, layer_spec **out)
{
    cnn_status st = CNN_OK;
    const char *name = NULL, *type = NULL;
    char fallback[32];
    layer_spec *s = calloc(1, sizeof *s);
    if (!s) return oom();
    s->cfg = m;
    s->device = -1;
    if (m->kind != CNN_CFG_MESSAGE) {
        st = cnn_cfg_error(m, CNN_ERR_CONFIG, "'layer' must be a message");
        goto fail;
    }
    snprintf(fallback, sizeof fallback, "layer%d", index);
    CNN_TRY(cnn_cfg_string(m, "name", fallback, &name));
    CNN_TRY(cnn_cfg_string(m, "type", NULL, &type));
    if (!type) {
        st = cnn_cfg_error(m, CNN_ERR_CONFIG, "layer '%s' has no type", name);
        goto fail;
    }
    s->type = cnn_layer_type_find(type);
    if (!s->type) {
        st = cnn_cfg_error(cnn_cfg_get(m, "type"), CNN_ERR_CONFIG,
                           "layer '%s': unknown layer type '%s'", name, type);
        goto fail;
    }
    if (!(s->name = strdup(name))) {
        st = oom();
        goto fail;
    }
    CNN_TRY(read_strings(m, "bottom", &s->bottom, &s->n_bottom));
    CNN_TRY(read_strings(m, "top", &s->top, &s->n_top));
    CNN_TRY(cnn_cfg_int(m, "device", -1, &s->device));
    s->device_at = cnn_cfg_get(m, "device");
    if (s->device_at && (s->device < 0 || s->device >= CNN_MAX_DEVICES)) {
        st = cnn_cfg_error(s->device_at, CNN_ERR_CONFIG,
                           "layer '%s': device %d is out of range (0..%d)", name, s->device,
                           CNN_MAX_DEVICES - 1);
        goto fail;
    }
    /* Caffe gives a loss layer without tops one automatically. */
    if (s->type->is_loss && s->n_top == 0) CNN_TRY(push_str(&s->top, &s->n_top, s->name));
    *out = s;
    return CNN_OK;
fail:
    spec_free(s);
    return st;
}

static bool in_specs(layer_spec *const *specs, int n, const layer_spec *s)
{
    for (int i = 0; i < n; i++)
        if (specs[i] == s) return true;
    return false;
}

/* ---- device placement and copy insertion --------------------------------- */

/* A blob's current version: the device it lives on and, per device, the
 * name of the copy made there for earlier readers (NULL: none yet). */
typedef struct {
    char *name;
    int device;
    char *copy[CNN_MAX_DEVICES];
} placed_blob;

typedef struct {
    int n;
    placed_blob *b;
} placement;

static void placement_free(placement *p)
{
    for (int i = 0; i < p->n; i++) {
        free(p->b[i].name);
        for (int d = 0; d < CNN_MAX_DEVICES; d++) free(p->b[i].copy[d]);
    }
    free(p->b);
}

static placed_blob *placed_find(const placement *p, const char *name)
{
    for (int i = 0; i < p->n; i++)
        if (!strcmp(p->b[i].name, name)) return &p->b[i];
    return NULL;
}

/* Records that a new version of `name` now lives on `device` (its old
 * copies are stale). */
static cnn_status placed_set(placement *p, const char *name, int device)
{
    placed_blob *b = placed_find(p, name);
    if (!b) {
        placed_blob *a = realloc(p->b, (size_t)(p->n + 1) * sizeof *a);
        if (!a) return oom();
        p->b = a;
        b = &a[p->n];
        *b = (placed_blob){.name = strdup(name)};
        if (!b->name) return oom();
        p->n++;
    }
    b->device = device;
    for (int d = 0; d < CNN_MAX_DEVICES; d++) {
        free(b->copy[d]);
        b->copy[d] = NULL;
    }
    return CNN_OK;
}

/* Whether any spec produces a top called `name`. */
static bool spec_top_exists(layer_spec *const *specs, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        for (int t = 0; t < specs[i]->n_top; t++)
            if (!strcmp(specs[i]->top[t], name)) return true;
    return false;
}

/* The Copy spec that brings blob `b` to `device`, named "<blob>_to_dev<K>"
 * (with a "_<k>" suffix when that name is taken). */
static cnn_status make_copy(const placed_blob *b, int device, const placement *p,
                            layer_spec *const *specs, int n_specs, layer_spec **out)
{
    cnn_status st = CNN_OK;
    char buf[512];
    layer_spec *s = calloc(1, sizeof *s);
    if (!s) return oom();
    s->type = cnn_layer_type_find("Copy");
    s->device = device;
    snprintf(buf, sizeof buf, "%s_to_dev%d", b->name, device);
    for (int k = 1; placed_find(p, buf) || spec_top_exists(specs, n_specs, buf); k++)
        snprintf(buf, sizeof buf, "%s_to_dev%d_%d", b->name, device, k);
    if (!s->type) {
        st = CNN_ERROR(CNN_ERR_UNSUPPORTED, "no Copy layer in this build");
        goto fail;
    }
    if (!(s->name = strdup(buf))) {
        st = oom();
        goto fail;
    }
    CNN_TRY(push_str(&s->bottom, &s->n_bottom, b->name));
    CNN_TRY(push_str(&s->top, &s->n_top, buf));
    *out = s;
    return CNN_OK;
fail:
    spec_free(s);
    return st;
}

/* The number of devices: o->devices, or 1 + the largest `device` given. A
 * device beyond the run's is an error at its field. */
static cnn_status count_devices(layer_spec *const *specs, int n, const cnn_net_opts *o,
                                int *out)
{
    int most = 0;
    for (int i = 0; i < n; i++)
        if (specs[i]->device + 1 > most) most = specs[i]->device + 1;
    *out = o->devices > 0 ? o->devices : most > 0 ? most : 1;
    if (*out > CNN_MAX_DEVICES)
        return CNN_ERROR(CNN_ERR_ARG, "%d logical devices requested; at most %d", *out,
                         CNN_MAX_DEVICES);
    for (int i = 0; i < n; i++)
        if (specs[i]->device >= *out)
            return cnn_cfg_error(specs[i]->device_at, CNN_ERR_CONFIG,
                                 "layer '%s': device %d, but this run has %d logical "
                                 "device%s (cnntrain: --devices N or --gpus with N entries)",
                                 specs[i]->name, specs[i]->device, *out,
                                 *out == 1 ? "" : "s");
    return CNN_OK;
}

/* Points bottom `b` of spec s at the copy of its blob on s's device, making
 * the Copy spec (appended to out) for the first such reader. */
static cnn_status read_across(layer_spec *s, int b, placed_blob *pb, placement *p,
                              layer_spec *const *specs, int n_specs, layer_spec ***out,
                              int *n_out)
{
    cnn_status st = CNN_OK;
    for (int t = 0; t < s->n_top; t++)
        if (!strcmp(s->top[t], s->bottom[b]))
            return cnn_cfg_error(s->cfg, CNN_ERR_CONFIG,
                                 "layer '%s' on device %d computes in place on '%s' from "
                                 "device %d; give it a top of its own",
                                 s->name, s->device, s->bottom[b], pb->device);
    int dev = s->device;
    const char *name = pb->copy[dev]; /* its own allocation: stays when pb moves */
    if (!name) {
        layer_spec *copy = NULL;
        CNN_TRY(make_copy(pb, dev, p, specs, n_specs, &copy));
        if ((st = push_ptr((void ***)out, n_out, copy))) {
            spec_free(copy);
            return st;
        }
        if (!(pb->copy[dev] = strdup(copy->top[0]))) return oom();
        name = pb->copy[dev];
        CNN_TRY(placed_set(p, name, dev)); /* the copy's blob, on dev */
    }
    char *renamed = strdup(name);
    if (!renamed) return oom();
    free(s->bottom[b]);
    s->bottom[b] = renamed;
fail:
    return st;
}

/* Gives every spec a device (its own, else its first bottom's, else 0) and
 * inserts a Copy before each layer that reads a blob of another device; one
 * copy per blob version and device serves all readers there. */
static cnn_status place_layers(layer_spec ***specs_io, int *n_io, char **inputs, int n_inputs,
                               const cnn_net_opts *o, int *n_devices)
{
    cnn_status st = CNN_OK;
    layer_spec **specs = *specs_io, **out = NULL;
    int n = *n_io, n_out = 0;
    placement p = {0};
    CNN_TRY(count_devices(specs, n, o, n_devices));
    for (int i = 0; i < n_inputs; i++) CNN_TRY(placed_set(&p, inputs[i], 0));
    for (int l = 0; l < n; l++) {
        layer_spec *s = specs[l];
        placed_blob *first = s->n_bottom ? placed_find(&p, s->bottom[0]) : NULL;
        if (s->device < 0) s->device = first ? first->device : 0;
        bool is_copy = !strcmp(s->type->name, "Copy");
        for (int b = 0; b < s->n_bottom && !is_copy; b++) {
            placed_blob *pb = placed_find(&p, s->bottom[b]);
            if (pb && pb->device != s->device)
                CNN_TRY(read_across(s, b, pb, &p, specs, n, &out, &n_out));
        }
        CNN_TRY(push_ptr((void ***)&out, &n_out, s));
        for (int t = 0; t < s->n_top; t++) CNN_TRY(placed_set(&p, s->top[t], s->device));
    }
    free(specs);
    *specs_io = out;
    *n_io = n_out;
    placement_free(&p);
    return CNN_OK;
fail:
    for (int i = 0; i < n_out; i++)
        if (!in_specs(specs, n, out[i])) spec_free(out[i]);
    free(out);
    placement_free(&p);
    return st;
}

/* ---- split insertion ---------------------------------------------------- */

/* One version of a blob: produced by layer `producer` (-1: a net input) and
 * read by `n_readers` (layer, bottom index) pairs. */
typedef struct {
    const char *name;
    int producer, n_readers;
    int *reader_layer, *reader_bottom;
} blob_version;

typedef struct {
    int n;
    blob_version *v;
} version_list;

static void versions_free(version_list *vl)
{
    for (int i = 0; i < vl->n; i++) {
        free(vl->v[i].reader_layer);
        free(vl->v[i].reader_bottom);
    }
    free(vl->v);
}

static cnn_status new_version(version_list *vl, const char *name, int producer, int *idx)
{
    blob_version *v = realloc(vl->v, (size_t)(vl->n + 1) * sizeof *v);
    if (!v) return oom();
    vl->v = v;
    v[vl->n] = (blob_version){.name = name, .producer = producer};
    *idx = vl->n++;
    return CNN_OK;
}

/* The latest version of `name`, or -1. */
static int current_version(const version_list *vl, const char *name)
{
    for (int i = vl->n - 1; i >= 0; i--)
        if (!strcmp(vl->v[i].name, name)) return i;
    return -1;
}

static cnn_status add_reader(blob_version *v, int layer, int bottom)
{
    int *a = realloc(v->reader_layer, (size_t)(v->n_readers + 1) * sizeof *a);
    if (!a) return oom();
    v->reader_layer = a;
    int *b = realloc(v->reader_bottom, (size_t)(v->n_readers + 1) * sizeof *b);
    if (!b) return oom();
    v->reader_bottom = b;
    a[v->n_readers] = layer;
    b[v->n_readers++] = bottom;
    return CNN_OK;
}

/* Makes the Split spec for version v and points its readers at its tops. */
static cnn_status make_split(blob_version *v, layer_spec **specs, const char *producer,
                             layer_spec **out)
{
    cnn_status st = CNN_OK;
    char buf[512];
    layer_spec *s = calloc(1, sizeof *s);
    if (!s) return oom();
    s->type = cnn_layer_type_find("Split");
    s->device = -1;
    snprintf(buf, sizeof buf, "%s_%s_split", v->name, producer);
    if (!s->type || !(s->name = strdup(buf))) {
        st = s->type ? oom() : CNN_ERROR(CNN_ERR_UNSUPPORTED, "no Split layer in this build");
        goto fail;
    }
    CNN_TRY(push_str(&s->bottom, &s->n_bottom, v->name));
    for (int r = 0; r < v->n_readers; r++) {
        snprintf(buf, sizeof buf, "%s_%s_split_%d", v->name, producer, r);
        CNN_TRY(push_str(&s->top, &s->n_top, buf));
        layer_spec *reader = specs[v->reader_layer[r]];
        char **slot = &reader->bottom[v->reader_bottom[r]];
        char *renamed = strdup(buf);
        if (!renamed) {
            st = oom();
            goto fail;
        }
        free(*slot);
        *slot = renamed;
    }
    *out = s;
    return CNN_OK;
fail:
    spec_free(s);
    return st;
}

/* Rewrites specs (n of them) so that every blob version read by more than one
 * layer goes through a Split; net inputs are listed in `inputs`. */
static cnn_status insert_splits(layer_spec ***specs_io, int *n_io, char **inputs, int n_inputs)
{
    cnn_status st = CNN_OK;
    layer_spec **specs = *specs_io, **out = NULL;
    int n = *n_io, n_out = 0, idx;
    version_list vl = {0};
    for (int i = 0; i < n_inputs; i++) CNN_TRY(new_version(&vl, inputs[i], -1, &idx));
    for (int l = 0; l < n; l++) {
        for (int b = 0; b < specs[l]->n_bottom; b++) {
            int v = current_version(&vl, specs[l]->bottom[b]);
            if (v < 0)
                return cnn_cfg_error(specs[l]->cfg, CNN_ERR_CONFIG,
                                     "layer '%s': bottom '%s' is not produced by an earlier "
                                     "layer or input",
                                     specs[l]->name, specs[l]->bottom[b]);
            CNN_TRY(add_reader(&vl.v[v], l, b));
        }
        for (int t = 0; t < specs[l]->n_top; t++)
            CNN_TRY(new_version(&vl, specs[l]->top[t], l, &idx));
    }
    /* Emit: splits of inputs first, then each layer followed by its splits. */
    for (int l = -1; l < n; l++) {
        if (l >= 0) CNN_TRY(push_ptr((void ***)&out, &n_out, specs[l]));
        for (int v = 0; v < vl.n; v++) {
            if (vl.v[v].producer != l || vl.v[v].n_readers < 2) continue;
            layer_spec *split = NULL;
            CNN_TRY(make_split(&vl.v[v], specs, l >= 0 ? specs[l]->name : "input", &split));
            st = push_ptr((void ***)&out, &n_out, split);
            if (st) {
                spec_free(split);
                goto fail;
            }
        }
    }
    free(specs);
    *specs_io = out;
    *n_io = n_out;
    versions_free(&vl);
    return CNN_OK;
fail:
    /* Specs already moved into `out` are still in `specs`; free only splits. */
    for (int i = 0; i < n_out; i++)
        if (!in_specs(specs, n, out[i])) spec_free(out[i]);
    free(out);
    versions_free(&vl);
    return st;
}

/* ---- GPUs: contexts, mirrors ------------------------------------------------ */

/* One CUDA context (and a join event) per logical device: device k on
 * physical GPU gpu[min(k, gpus - 1)]; peer access between different GPUs. */
static cnn_status make_contexts(cnn_net *n, const cnn_net_opts *o)
{
    cnn_status st = CNN_OK;
    if (o->gpus <= 0) return CNN_OK;
#ifndef CNN_WITH_CUDA
    return CNN_ERROR(CNN_ERR_UNSUPPORTED,
                     "GPUs requested, but this build has no CUDA support (rebuild with CUDA=1)");
#endif
    if (o->gpus > CNN_MAX_DEVICES)
        return CNN_ERROR(CNN_ERR_ARG, "%d GPUs given; at most %d", o->gpus, CNN_MAX_DEVICES);
    int have = cnn_cuda_device_count();
    for (int k = 0; k < o->gpus; k++) {
        if (o->gpu[k] < 0) return CNN_ERROR(CNN_ERR_ARG, "GPU index %d is negative", o->gpu[k]);
        if (o->gpu[k] >= have)
            return CNN_ERROR(CNN_ERR_ARG, "--gpus names GPU %d but this machine has %d CUDA "
                                          "device%s",
                             o->gpu[k], have, have == 1 ? "" : "s");
    }
    n->gpu = true;
    for (int d = 0; d < n->n_devices; d++) {
        int phys = o->gpu[d < o->gpus ? d : o->gpus - 1];
        CNN_TRY(cnn_cuda_ctx_create(phys, &n->cuda[d]));
        CNN_TRY(cnn_cuda_copy_ctx_create(phys, &n->copy[d]));
        cnn_cuda_ctx_set_workspace_limit(n->cuda[d], o->workspace_bytes
                                                         ? o->workspace_bytes
                                                         : CNN_CUDA_DEFAULT_WORKSPACE);
        cnn_cuda_ctx_set_deterministic(n->cuda[d], o->deterministic);
        CNN_TRY(cnn_cuda_event_create(n->cuda[d], false, &n->joined[d]));
    }
    for (int a = 0; a < n->n_devices; a++)
        for (int b = 0; b < n->n_devices; b++) {
            bool peer = false;
            if (cnn_cuda_ctx_device(n->cuda[a]) != cnn_cuda_ctx_device(n->cuda[b]))
                CNN_TRY(cnn_cuda_enable_peer(n->cuda[a], n->cuda[b], &peer));
        }
    if (n->n_devices > 0) CNN_TRY(cnn_cuda_ctx_use(n->cuda[0]));
fail:
    return st;
}

static void free_contexts(cnn_net *n)
{
    if (n->loss_buf) cnn_cuda_free(n->cuda[0], n->loss_buf);
    for (int d = 0; d < CNN_MAX_DEVICES; d++) {
        cnn_cuda_event_free(n->joined[d]);
        cnn_cuda_ctx_free(n->copy[d]);
        cnn_cuda_ctx_free(n->cuda[d]);
    }
}

/* Gives t a mirror on ctx unless it has one (a blob belongs to its first
 * producer, an input to its first reader). */
static cnn_status attach_free(cnn_tensor *t, cnn_cuda_ctx *ctx)
{
    return t->dev ? CNN_OK : cnn_tensor_attach(t, ctx);
}

/* Blobs nothing produced or read (header inputs no layer uses) go to their
 * device's context. */
static cnn_status attach_rest(cnn_net *n)
{
    cnn_status st = CNN_OK;
    for (int i = 0; i < n->n_blobs && n->gpu; i++)
        CNN_TRY(attach_free(n->blobs[i], n->cuda[n->blobs[i]->device]));
fail:
    return st;
}

/* Whether layer l runs a pass on the host on this GPU net. */
static bool host_layer(const cnn_layer *l)
{
    return !(l->cuda && l->type->forward_gpu) || (l->need_backward && !l->type->backward_gpu);
}

/* Gives t a feed on its context's copy stream (core/gpu.c). */
static cnn_status feed_tensor(cnn_net *n, cnn_tensor *t)
{
    cnn_cuda_ctx *ctx = cnn_tensor_ctx(t);
    for (int d = 0; d < n->n_devices; d++)
        if (n->cuda[d] == ctx) return cnn_tensor_stream(t, n->copy[d]);
    return CNN_OK;
}

cnn_status cnn_layer_feed(cnn_layer *l, cnn_tensor *t) { return feed_tensor(l->net, t); }

static cnn_status feed_all(cnn_net *n, cnn_tensor *const *t, int k)
{
    cnn_status st = CNN_OK;
    for (int i = 0; i < k; i++) CNN_TRY(feed_tensor(n, t[i]));
fail:
    return st;
}

/* The tensors the host writes every step — the inputs and everything a
 * host-run layer touches — upload on the copy streams, asynchronously. */
static cnn_status feed_host_tensors(cnn_net *n)
{
    cnn_status st = CNN_OK;
    if (!n->gpu) return CNN_OK;
    CNN_TRY(feed_all(n, n->inputs, n->n_inputs));
    for (int i = 0; i < n->n_layers; i++) {
        cnn_layer *l = n->layers[i];
        if (!host_layer(l)) continue;
        CNN_TRY(feed_all(n, l->top, l->n_top));
        CNN_TRY(feed_all(n, l->bottom, l->n_bottom));
        CNN_TRY(feed_all(n, l->param, l->n_param));
    }
fail:
    return st;
}

struct cnn_cuda_ctx *cnn_net_cuda(const cnn_net *n, int device)
{
    return n->gpu && device >= 0 && device < n->n_devices ? n->cuda[device] : NULL;
}

/* Device 0's loss buffer fits the widest loss top (reshape time). */
static cnn_status fit_loss_buf(cnn_net *n)
{
    cnn_status st = CNN_OK;
    size_t need = 1;
    for (int i = 0; i < n->n_layers; i++)
        for (int t = 0; t < n->layers[i]->n_top; t++)
            if (n->layers[i]->loss_weight[t] != 0 && n->layers[i]->top[t]->count > need)
                need = n->layers[i]->top[t]->count;
    if (!n->gpu || (n->loss_buf && need <= n->loss_cap)) return CNN_OK;
    void *p = NULL;
    cnn_cuda_ctx *c = n->cuda[0];
    cnn_cuda_free(c, n->loss_buf);
    n->loss_buf = NULL;
    CNN_TRY(cnn_cuda_malloc(c, (4 + 2 * need) * sizeof(float), &p));
    n->loss_buf = p;
    n->loss_cap = need;
    CNN_TRY(cnn_cuda_ctx_use(c));
    CNN_TRY(cnn_cuda_set(c, 4 + 2 * need, 1.f, n->loss_buf));
fail:
    return st;
}

/* ---- instantiating layers ----------------------------------------------- */

static cnn_status read_param_specs(cnn_layer *l, cnn_cfg *m)
{
    cnn_status st = CNN_OK;
    int n = cnn_cfg_count(m, "param");
    if (n > CNN_MAX_LAYER_PARAMS)
        return cnn_cfg_error(m, CNN_ERR_CONFIG, "layer '%s': too many param entries", l->name);
    for (int i = 0; i < n; i++) {
        cnn_cfg *p = cnn_cfg_nth(m, "param", i);
        const char *name = NULL;
        int share_mode = 0;
        static const char *const modes[] = {"STRICT", "PERMISSIVE", NULL};
        if (p->kind != CNN_CFG_MESSAGE)
            return cnn_cfg_error(p, CNN_ERR_CONFIG, "'param' must be a message");
        CNN_TRY(cnn_cfg_string(p, "name", NULL, &name));
        CNN_TRY(cnn_cfg_float(p, "lr_mult", 1, &l->spec[i].lr_mult));
        CNN_TRY(cnn_cfg_float(p, "decay_mult", 1, &l->spec[i].decay_mult));
        CNN_TRY(cnn_cfg_enum(p, "share_mode", modes, 0, &share_mode));
        if (name && *name && !(l->spec[i].name = strdup(name))) return oom();
    }
    for (int i = n; i < CNN_MAX_LAYER_PARAMS; i++) l->spec[i].lr_mult = l->spec[i].decay_mult = 1;
    l->n_spec = n;
fail:
    return st;
}

static cnn_status read_float_list(cnn_cfg *m, const char *key, int max, float *out, int *n)
{
    cnn_status st = CNN_OK;
    *n = cnn_cfg_count(m, key);
    if (*n > max)
        return cnn_cfg_error(cnn_cfg_nth(m, key, max), CNN_ERR_CONFIG,
                             "more '%s' values than tops/bottoms (%d)", key, max);
    for (int i = 0; i < *n; i++) CNN_TRY(cnn_cfg_as_float(cnn_cfg_nth(m, key, i), &out[i]));
fail:
    return st;
}

static cnn_status wire_tensors(cnn_net *n, cnn_layer *l, const layer_spec *s)
{
    cnn_status st = CNN_OK;
    for (int b = 0; b < s->n_bottom; b++) {
        l->bottom[b] = find_blob(n, s->bottom[b]);
        if (!l->bottom[b])
            return CNN_ERROR(CNN_ERR_CONFIG, "layer '%s': unknown bottom '%s'", s->name,
                             s->bottom[b]);
    }
    for (int t = 0; t < s->n_top; t++) {
        cnn_tensor *have = find_blob(n, s->top[t]);
        bool in_place = false;
        for (int b = 0; b < s->n_bottom; b++)
            if (!strcmp(s->bottom[b], s->top[t])) in_place = true;
        if (have && !in_place)
            return s->cfg ? cnn_cfg_error(s->cfg, CNN_ERR_CONFIG,
                                          "layer '%s': top '%s' is already produced by an "
                                          "earlier layer",
                                          s->name, s->top[t])
                          : CNN_ERROR(CNN_ERR_CONFIG, "top '%s' produced twice", s->top[t]);
        if (!have) CNN_TRY(add_blob(n, s->top[t], &have));
        l->top[t] = have;
    }
fail:
    return st;
}

static cnn_status count_check(const cnn_layer *l, int have, int min, int max, const char *what)
{
    if (have < min || (max >= 0 && have > max)) {
        if (max == min)
            return cnn_layer_error(l, CNN_ERR_CONFIG, "takes %d %s, got %d", min, what, have);
        if (max < 0)
            return cnn_layer_error(l, CNN_ERR_CONFIG, "takes at least %d %s, got %d", min,
                                   what, have);
        return cnn_layer_error(l, CNN_ERR_CONFIG, "takes %d to %d %s, got %d", min, max,
                               what, have);
    }
    return CNN_OK;
}

static cnn_status make_layer(cnn_net *n, const layer_spec *s, cnn_layer **out)
{
    cnn_status st = CNN_OK;
    float lw[16];
    float pd[16];
    int n_lw = 0, n_pd = 0;
    cnn_layer *l = calloc(1, sizeof *l);
    if (!l) return oom();
    l->type = s->type;
    l->net = n;
    l->phase = n->phase;
    l->rng = &n->rng;
    l->shapes_only = n->shapes_only;
    l->device = s->device;
    l->n_bottom = s->n_bottom;
    l->n_top = s->n_top;
    l->name = strdup(s->name);
    l->bottom = calloc((size_t)s->n_bottom + 1, sizeof *l->bottom);
    l->top = calloc((size_t)s->n_top + 1, sizeof *l->top);
    l->propagate_down = calloc((size_t)s->n_bottom + 1, sizeof *l->propagate_down);
    l->loss_weight = calloc((size_t)s->n_top + 1, sizeof *l->loss_weight);
    if (!l->name || !l->bottom || !l->top || !l->propagate_down || !l->loss_weight) {
        st = oom();
        goto fail;
    }
    *out = l; /* owned by the caller from here, even on failure */
    CNN_TRY(count_check(l, s->n_bottom, s->type->min_bottoms, s->type->max_bottoms, "bottoms"));
    CNN_TRY(count_check(l, s->n_top, s->type->min_tops, s->type->max_tops, "tops"));
    CNN_TRY(wire_tensors(n, l, s));
    for (int i = 0; i < CNN_MAX_LAYER_PARAMS; i++) l->spec[i].lr_mult = l->spec[i].decay_mult = 1;
    for (int b = 0; b < s->n_bottom; b++) l->propagate_down[b] = true;
    if (s->type->is_loss && s->n_top > 0) l->loss_weight[0] = 1;
    if (s->cfg) {
        CNN_TRY(read_param_specs(l, s->cfg));
        CNN_TRY(read_float_list(s->cfg, "loss_weight", l->n_top < 16 ? l->n_top : 16, lw, &n_lw));
        for (int t = 0; t < n_lw; t++) l->loss_weight[t] = lw[t];
        int m = l->n_bottom < 16 ? l->n_bottom : 16;
        CNN_TRY(read_float_list(s->cfg, "propagate_down", m, pd, &n_pd));
        if (n_pd && n_pd != l->n_bottom)
            return cnn_layer_error(l, CNN_ERR_CONFIG, "propagate_down needs one value per "
                                                      "bottom");
        for (int b = 0; b < n_pd; b++) l->propagate_down[b] = pd[b] != 0;
        int phase = 0;
        CNN_TRY(cnn_cfg_enum(s->cfg, "phase", phase_names, 0, &phase));
        for (int i = 0; i < cnn_cfg_count(s->cfg, "include"); i++)
            cnn_cfg_mark_used(cnn_cfg_nth(s->cfg, "include", i));
        for (int i = 0; i < cnn_cfg_count(s->cfg, "exclude"); i++)
            cnn_cfg_mark_used(cnn_cfg_nth(s->cfg, "exclude", i));
    }
    if (l->device < 0) l->device = l->n_bottom ? l->bottom[0]->device : 0;
    for (int t = 0; t < l->n_top; t++) l->top[t]->device = l->device;
    if (n->gpu) {
        l->cuda = n->cuda[l->device];
        for (int t = 0; t < l->n_top; t++) CNN_TRY(attach_free(l->top[t], l->cuda));
        for (int b = 0; b < l->n_bottom; b++) CNN_TRY(attach_free(l->bottom[b], l->cuda));
        CNN_TRY(cnn_cuda_ctx_use(l->cuda));
    }
    if (s->type->setup) CNN_TRY(s->type->setup(l, s->cfg));
    if (s->cfg) {
        char what[300];
        snprintf(what, sizeof what, "layer '%s' (%s)", l->name, l->type->name);
        CNN_TRY(cnn_cfg_check_used(s->cfg, what));
    }
fail:
    return st;
}

static void layer_free(cnn_layer *l)
{
    if (!l) return;
    if (l->type && l->type->destroy && l->priv)
        l->type->destroy(l);
    else
        free(l->priv);
    for (int i = 0; i < CNN_MAX_LAYER_PARAMS; i++) free(l->spec[i].name);
    free(l->name);
    free(l->bottom);
    free(l->top);
    free(l->propagate_down);
    free(l->loss_weight);
    free(l);
}

/* ---- parameters ------------------------------------------------------- */

cnn_status cnn_net_param_tensor(cnn_net *n, const char *layer, int idx, const char *share,
                                int ndim, const int *shape, const cnn_filler *f,
                                cnn_tensor **out)
{
    cnn_status st = CNN_OK;
    char key[300];
    if (share)
        for (int i = 0; i < n->n_params; i++)
            if (n->param_keys[i] && !strcmp(n->param_keys[i], share)) {
                *out = n->params[i];
                return CNN_OK;
            }
    snprintf(key, sizeof key, "%s.%d", layer, idx);
    cnn_tensor *t = cnn_tensor_create(key);
    if (!t) return oom();
    CNN_TRY(cnn_tensor_reshape(t, ndim, shape));
    if (f) cnn_filler_fill(f, t, &n->rng);
    char *k = share ? strdup(share) : NULL;
    if (share && !k) {
        st = oom();
        goto fail;
    }
    char **keys = realloc(n->param_keys, (size_t)(n->n_params + 1) * sizeof *keys);
    if (!keys) {
        free(k);
        st = oom();
        goto fail;
    }
    n->param_keys = keys;
    keys[n->n_params] = k;
    int count = n->n_params;
    st = push_ptr((void ***)&n->params, &count, t);
    if (st) {
        free(k);
        goto fail;
    }
    n->n_params = count;
    *out = t;
    return CNN_OK;
fail:
    cnn_tensor_free(t);
    return st;
}

static cnn_status collect_param_info(cnn_net *n)
{
    for (int li = 0; li < n->n_layers; li++) {
        cnn_layer *l = n->layers[li];
        for (int p = 0; p < l->n_param; p++) {
            const cnn_param_info *seen = NULL;
            for (int i = 0; i < n->n_info; i++)
                if (n->info[i].tensor == l->param[p]) seen = &n->info[i];
            if (seen && seen->device != l->device)
                return cnn_layer_error(l, CNN_ERR_CONFIG,
                                       "parameter %d is shared with layer '%s' on device %d, "
                                       "but this layer runs on device %d; shared parameters "
                                       "must be on one device",
                                       p, seen->layer, seen->device, l->device);
            if (seen) continue;
            cnn_param_info *a = realloc(n->info, (size_t)(n->n_info + 1) * sizeof *a);
            if (!a) return oom();
            n->info = a;
            l->param[p]->device = l->device;
            if (n->gpu) {
                cnn_status st = attach_free(l->param[p], n->cuda[l->device]);
                if (st) return st;
            }
            a[n->n_info++] = (cnn_param_info){.tensor = l->param[p],
                                              .layer = l->name,
                                              .index = p,
                                              .lr_mult = l->spec[p].lr_mult,
                                              .decay_mult = l->spec[p].decay_mult,
                                              .device = l->device};
        }
    }
    return CNN_OK;
}

/* ---- gradients: which layers and bottoms need them ----------------------- */

static bool in_list(cnn_tensor *const *list, int n, const cnn_tensor *t)
{
    for (int i = 0; i < n; i++)
        if (list[i] == t) return true;
    return false;
}

static cnn_status plan_backward(cnn_net *n)
{
    cnn_tensor **needs = NULL;
    int n_needs = 0;
    cnn_status st = CNN_OK;
    for (int li = 0; li < n->n_layers; li++) {
        cnn_layer *l = n->layers[li];
        bool any = n->force_backward;
        for (int b = 0; b < l->n_bottom; b++) {
            bool need = in_list(needs, n_needs, l->bottom[b]) || n->force_backward;
            l->propagate_down[b] = l->propagate_down[b] && need;
            any |= l->propagate_down[b];
        }
        for (int p = 0; p < l->n_param; p++) any |= l->spec[p].lr_mult != 0;
        l->need_backward = any && l->type->backward;
        if (!l->need_backward)
            for (int b = 0; b < l->n_bottom; b++) l->propagate_down[b] = false;
        for (int t = 0; t < l->n_top && l->need_backward; t++)
            if (!in_list(needs, n_needs, l->top[t]))
                CNN_TRY(push_ptr((void ***)&needs, &n_needs, l->top[t]));
    }
fail:
    free(needs);
    return st;
}

/* Inputs: blobs no layer writes, and Input-layer tops. Outputs: blobs that
 * no layer reads after the last layer that writes them. */
static cnn_status find_inputs_outputs(cnn_net *n)
{
    cnn_status st = CNN_OK;
    for (int bi = 0; bi < n->n_blobs; bi++) {
        cnn_tensor *t = n->blobs[bi];
        int read_at = -1, written_at = -1;
        bool input = false;
        for (int li = 0; li < n->n_layers; li++) {
            cnn_layer *l = n->layers[li];
            if (in_list(l->bottom, l->n_bottom, t)) read_at = li;
            if (in_list(l->top, l->n_top, t)) {
                written_at = li;
                input |= !strcmp(l->type->name, "Input");
            }
        }
        if (input || written_at < 0) CNN_TRY(push_ptr((void ***)&n->inputs, &n->n_inputs, t));
        if (written_at >= 0 && written_at >= read_at)
            CNN_TRY(push_ptr((void ***)&n->outputs, &n->n_outputs, t));
    }
fail:
    return st;
}

/* ---- per-device schedules ------------------------------------------------ */

static bool shares(cnn_tensor *const *a, int na, cnn_tensor *const *b, int nb)
{
    for (int i = 0; i < na; i++)
        if (in_list(b, nb, a[i])) return true;
    return false;
}

/* Must layers a and b keep their net order? Forward: one writes (a top) what
 * the other reads or writes. Backward: they touch a common tensor at all,
 * since gradients are written into bottoms and read from tops. */
static bool ordered(const cnn_layer *a, const cnn_layer *b, bool backward)
{
    if (shares(a->top, a->n_top, b->top, b->n_top) ||
        shares(a->top, a->n_top, b->bottom, b->n_bottom) ||
        shares(b->top, b->n_top, a->bottom, a->n_bottom))
        return true;
    return backward && shares(a->bottom, a->n_bottom, b->bottom, b->n_bottom);
}

/* Records, for every pair of layers on different devices that must keep
 * their order, how far the other device must have got: forward steps count
 * from the first layer, backward steps from the last. */
static void plan_waits(cnn_net *n, const int *pos)
{
    int nd = n->n_devices;
    for (int i = 0; i < n->n_layers; i++) {
        const cnn_layer *a = n->layers[i];
        for (int j = 0; j < n->n_layers; j++) {
            const cnn_layer *b = n->layers[j];
            int d = b->device, count = n->sched_start[d + 1] - n->sched_start[d];
            if (d == a->device) continue;
            int *fw = &n->fwd_wait[(size_t)i * nd + d], *bw = &n->bwd_wait[(size_t)i * nd + d];
            if (j < i && pos[j] + 1 > *fw && ordered(a, b, false)) *fw = pos[j] + 1;
            if (j > i && count - pos[j] > *bw && ordered(a, b, true)) *bw = count - pos[j];
        }
    }
}

/* Groups the layers by device (net order within each), works out the
 * waits between devices, and gives layers on devices >= 1 their own
 * generator (dropout), so that devices running at once never share one. */
static cnn_status plan_devices(cnn_net *n, uint64_t seed)
{
    int nd = n->n_devices, nl = n->n_layers, k = 0;
    int *pos = calloc((size_t)nl + 1, sizeof *pos);
    n->sched = calloc((size_t)nl + 1, sizeof *n->sched);
    n->fwd_wait = calloc((size_t)nl * nd + 1, sizeof *n->fwd_wait);
    n->bwd_wait = calloc((size_t)nl * nd + 1, sizeof *n->bwd_wait);
    if (!pos || !n->sched || !n->fwd_wait || !n->bwd_wait) {
        free(pos);
        return oom();
    }
    for (int d = 0; d < nd; d++) {
        n->sched_start[d] = k;
        for (int i = 0; i < nl; i++)
            if (n->layers[i]->device == d) {
                pos[i] = k - n->sched_start[d];
                n->sched[k++] = i;
            }
    }
    n->sched_start[nd] = k;
    plan_waits(n, pos);
    free(pos);
    for (int d = 1; d < nd; d++)
        cnn_rng_seed(&n->dev_rng[d], seed ^ (0x9e3779b97f4a7c15ULL * (uint64_t)d));
    for (int i = 0; i < nl; i++)
        if (n->layers[i]->device > 0) n->layers[i]->rng = &n->dev_rng[n->layers[i]->device];
    return CNN_OK;
}

/* ---- the input: header (old-style net inputs) ----------------------------- */

static cnn_status read_header_inputs(cnn_net *n, cnn_cfg *root, char ***names, int *n_names)
{
    cnn_status st = CNN_OK;
    int n_in = cnn_cfg_count(root, "input");
    int n_shape = cnn_cfg_count(root, "input_shape"), n_dim = cnn_cfg_count(root, "input_dim");
    CNN_TRY(read_strings(root, "input", names, n_names));
    if (n_in == 0 && (n_shape || n_dim))
        return cnn_cfg_error(cnn_cfg_get(root, n_shape ? "input_shape" : "input_dim"),
                             CNN_ERR_CONFIG, "input shapes given without 'input' names");
    if (n_in && n_shape != n_in && n_dim != 4 * n_in)
        return cnn_cfg_error(cnn_cfg_get(root, "input"), CNN_ERR_CONFIG,
                             "%d inputs need %d input_shape messages or %d input_dim values",
                             n_in, n_in, 4 * n_in);
    for (int i = 0; i < n_in; i++) {
        int shape[CNN_MAX_DIMS], nd = 0;
        if (n_shape == n_in) {
            cnn_cfg *s = cnn_cfg_nth(root, "input_shape", i);
            nd = cnn_cfg_count(s, "dim");
            if (nd > CNN_MAX_DIMS)
                return cnn_cfg_error(s, CNN_ERR_CONFIG, "more than %d dims", CNN_MAX_DIMS);
            for (int d = 0; d < nd; d++) CNN_TRY(cnn_cfg_as_int(cnn_cfg_nth(s, "dim", d), &shape[d]));
        } else {
            nd = 4;
            for (int d = 0; d < 4; d++)
                CNN_TRY(cnn_cfg_as_int(cnn_cfg_nth(root, "input_dim", 4 * i + d), &shape[d]));
        }
        cnn_tensor *t = NULL;
        if (find_blob(n, (*names)[i]))
            return cnn_cfg_error(cnn_cfg_nth(root, "input", i), CNN_ERR_CONFIG,
                                 "input '%s' given twice", (*names)[i]);
        CNN_TRY(add_blob(n, (*names)[i], &t));
        CNN_TRY(cnn_tensor_reshape(t, nd, shape));
    }
fail:
    return st;
}

/* ---- building ------------------------------------------------------------ */

static cnn_status read_net_fields(cnn_net *n, cnn_cfg *root)
{
    cnn_status st = CNN_OK;
    const char *name = "";
    bool debug = false;
    cnn_cfg *state = NULL;
    CNN_TRY(cnn_cfg_string(root, "name", "", &name));
    if (!(n->name = strdup(name))) return oom();
    CNN_TRY(cnn_cfg_bool(root, "force_backward", false, &n->force_backward));
    CNN_TRY(cnn_cfg_bool(root, "debug_info", false, &debug));
    CNN_TRY(cnn_cfg_message(root, "state", &state));
    if (state) cnn_cfg_mark_used(state); /* the phase comes from the caller */
    for (int i = 0; i < cnn_cfg_count(root, "solver"); i++)
        cnn_cfg_mark_used(cnn_cfg_nth(root, "solver", i));
    if (cnn_cfg_count(root, "layers"))
        return cnn_cfg_error(cnn_cfg_get(root, "layers"), CNN_ERR_UNSUPPORTED,
                             "the V1 'layers' format is not supported; use 'layer' (Caffe's "
                             "upgrade_net_proto_text converts old files)");
fail:
    return st;
}

cnn_status cnn_net_from_cfg(cnn_cfg *root, const char *file, const cnn_net_opts *o,
                            cnn_net **out)
{
    cnn_status st = CNN_OK;
    cnn_net_opts defaults = cnn_net_default_opts();
    layer_spec **specs = NULL;
    char **inputs = NULL;
    int n_specs = 0, n_inputs = 0;
    if (!o) o = &defaults;
    *out = NULL;
    cnn_net *n = calloc(1, sizeof *n);
    if (!n) return oom();
    n->phase = o->phase;
    n->shapes_only = o->shapes_only;
    n->file = strdup(file ? file : "<string>");
    cnn_rng_seed(&n->rng, o->seed);
    CNN_TRY(read_net_fields(n, root));
    CNN_TRY(read_header_inputs(n, root, &inputs, &n_inputs));
    for (int i = 0; i < cnn_cfg_count(root, "layer"); i++) {
        cnn_cfg *m = cnn_cfg_nth(root, "layer", i);
        layer_spec *s = NULL;
        bool inc = false;
        CNN_TRY(read_spec(m, i, &s));
        st = layer_included(m, o, &inc);
        if (st || !inc) {
            spec_free(s);
            if (st) goto fail;
            cnn_cfg_mark_used(m);
            continue;
        }
        if ((st = push_ptr((void ***)&specs, &n_specs, s))) {
            spec_free(s);
            goto fail;
        }
    }
    CNN_TRY(place_layers(&specs, &n_specs, inputs, n_inputs, o, &n->n_devices));
    CNN_TRY(insert_splits(&specs, &n_specs, inputs, n_inputs));
    CNN_TRY(make_contexts(n, o));
    for (int i = 0; i < n_specs; i++) {
        cnn_layer *l = NULL;
        cnn_status made = make_layer(n, specs[i], &l);
        if (l) CNN_TRY(push_ptr((void ***)&n->layers, &n->n_layers, l));
        if ((st = made)) goto fail;
    }
    CNN_TRY(cnn_cfg_check_used(root, "the net"));
    CNN_TRY(attach_rest(n));
    CNN_TRY(cnn_net_reshape(n));
    CNN_TRY(collect_param_info(n));
    CNN_TRY(plan_backward(n));
    CNN_TRY(find_inputs_outputs(n));
    CNN_TRY(plan_devices(n, o->seed));
    CNN_TRY(feed_host_tensors(n)); /* again: the inputs and need_backward are known now */
    n->graph_asked = o->cuda_graph;
    CNN_TRY(graph_reset(n));
    for (int i = 0; i < n_specs; i++) spec_free(specs[i]);
    free(specs);
    free_strs(inputs, n_inputs);
    *out = n;
    return CNN_OK;
fail:
    for (int i = 0; i < n_specs; i++) spec_free(specs[i]);
    free(specs);
    free_strs(inputs, n_inputs);
    cnn_net_free(n);
    return st;
}

cnn_status cnn_net_from_string(const char *text, const cnn_net_opts *o, cnn_net **out)
{
    cnn_cfg *root = NULL;
    *out = NULL;
    cnn_status st = cnn_cfg_parse_string(text, "<string>", &root);
    if (st == CNN_OK) st = cnn_net_from_cfg(root, "<string>", o, out);
    cnn_cfg_free(root);
    return st;
}

cnn_status cnn_net_from_file(const char *path, const cnn_net_opts *o, cnn_net **out)
{
    cnn_cfg *root = NULL;
    *out = NULL;
    cnn_status st = cnn_cfg_parse_file(path, &root);
    if (st == CNN_OK) st = cnn_net_from_cfg(root, path, o, out);
    cnn_cfg_free(root);
    return st;
}

void cnn_net_free(cnn_net *n)
{
    if (!n) return;
    for (int i = 0; i < n->n_layers; i++) layer_free(n->layers[i]);
    free(n->layers);
    for (int i = 0; i < n->n_blobs; i++) cnn_tensor_free(n->blobs[i]);
    free(n->blobs);
    for (int i = 0; i < n->n_params; i++) cnn_tensor_free(n->params[i]);
    free(n->params);
    free_strs(n->param_keys, n->n_params);
    free(n->info);
    free(n->inputs);
    free(n->outputs);
    free(n->sched);
    free(n->fwd_wait);
    free(n->bwd_wait);
    cnn_cuda_graph_free(n->graph);
    free(n->graph_pre);
    free(n->graph_post);
    free_contexts(n);
    free(n->name);
    free(n->file);
    free(n);
}

/* ---- running on several devices ------------------------------------------ */

/* One forward or backward pass shared by the device threads. */
typedef struct run_ctx {
    cnn_net *n;
    bool backward;
    int threads; /* OpenMP threads per device */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done[CNN_MAX_DEVICES]; /* schedule steps finished per device */
    bool failed;
    cnn_status st; /* the first failure and its message */
    char msg[1024];
} run_ctx;

typedef struct run_arg {
    run_ctx *ctx;
    int device;
} run_arg;

/* Makes the data (or grad) of k tensors current on the host. */
static cnn_status host_all(cnn_tensor *const *t, int k, bool grad)
{
    cnn_status st = CNN_OK;
    for (int i = 0; i < k; i++) CNN_TRY(grad ? cnn_host_grad(t[i]) : cnn_host_data(t[i]));
fail:
    return st;
}

/* A layer without a GPU path on a GPU net: its CPU forward on host copies.
 * Parameters count as written (BatchNorm's statistics change in forward). */
static cnn_status host_forward(cnn_layer *l)
{
    cnn_status st = CNN_OK;
    CNN_TRY(host_all(l->bottom, l->n_bottom, false));
    CNN_TRY(host_all(l->param, l->n_param, false));
    CNN_TRY(l->type->forward(l));
    for (int t = 0; t < l->n_top; t++) cnn_host_wrote_data(l->top[t]);
    for (int p = 0; p < l->n_param; p++) cnn_host_wrote_data(l->param[p]);
fail:
    return st;
}

/* The same for backward: bottoms' gradients (where propagated) and the
 * parameters' gradients are written on the host. */
static cnn_status host_backward(cnn_layer *l)
{
    cnn_status st = CNN_OK;
    CNN_TRY(host_all(l->bottom, l->n_bottom, false));
    CNN_TRY(host_all(l->top, l->n_top, false));
    CNN_TRY(host_all(l->top, l->n_top, true));
    CNN_TRY(host_all(l->param, l->n_param, false));
    CNN_TRY(host_all(l->param, l->n_param, true));
    CNN_TRY(l->type->backward(l));
    for (int b = 0; b < l->n_bottom; b++)
        if (l->propagate_down[b]) cnn_host_wrote_grad(l->bottom[b]);
    for (int p = 0; p < l->n_param; p++) cnn_host_wrote_grad(l->param[p]);
fail:
    return st;
}

/* Layer l forward or backward (whatever the plan): its GPU function when it
 * has one on a GPU net, else the CPU one (on host copies on a GPU net). */
static cnn_status dispatch(cnn_layer *l, bool backward)
{
    cnn_status st = CNN_OK;
    cnn_status (*gpu_fn)(cnn_layer *) = backward ? l->type->backward_gpu : l->type->forward_gpu;
    if (!l->net->gpu) return backward ? l->type->backward(l) : l->type->forward(l);
    if (l->cuda && gpu_fn) {
        CNN_TRY(cnn_cuda_ctx_use(l->cuda));
        return gpu_fn(l);
    }
    return backward ? host_backward(l) : host_forward(l);
fail:
    return st;
}

static cnn_status run_layer(cnn_layer *l, bool backward)
{
    if (!backward && l->net->skip_host && host_layer(l)) return CNN_OK;
    if (!backward) return dispatch(l, false);
    return l->need_backward ? dispatch(l, true) : CNN_OK;
}

/* Waits until every device has done `need[d]` steps; false when a device
 * failed meanwhile. */
static bool wait_for(run_ctx *c, const int *need)
{
    pthread_mutex_lock(&c->mu);
    for (;;) {
        bool ready = true;
        for (int d = 0; d < c->n->n_devices; d++) ready &= c->done[d] >= need[d];
        if (ready || c->failed) break;
        pthread_cond_wait(&c->cv, &c->mu);
    }
    bool ok = !c->failed;
    pthread_mutex_unlock(&c->mu);
    return ok;
}

/* Counts a finished step of `device`, or records its failure (this
 * thread's error message) and wakes everyone so they stop. */
static void step_done(run_ctx *c, int device, cnn_status st)
{
    pthread_mutex_lock(&c->mu);
    if (st == CNN_OK) {
        c->done[device]++;
    } else if (!c->failed) {
        c->failed = true;
        c->st = st;
        snprintf(c->msg, sizeof c->msg, "%s", cnn_error_message());
    }
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

/* A device thread: its layers in order (reversed for backward). */
static void *run_device(void *arg)
{
    const run_arg *a = arg;
    run_ctx *c = a->ctx;
    const cnn_net *n = c->n;
    int first = n->sched_start[a->device], count = n->sched_start[a->device + 1] - first;
    omp_set_num_threads(c->threads);
    for (int k = 0; k < count; k++) {
        int li = n->sched[first + (c->backward ? count - 1 - k : k)];
        const int *need = (c->backward ? n->bwd_wait : n->fwd_wait) + (size_t)li * n->n_devices;
        if (!wait_for(c, need)) break;
        cnn_status st = run_layer(n->layers[li], c->backward);
        step_done(c, a->device, st);
        if (st != CNN_OK) break;
    }
    return NULL;
}

/* Runs every layer forward or backward: in net order on one device; else
 * one thread per device (device 0 on the caller's), each with its share of
 * the OpenMP threads. */
static cnn_status run_layers(cnn_net *n, bool backward)
{
    cnn_status st = CNN_OK;
    int nd = n->n_devices, nl = n->n_layers;
    if (nd <= 1) {
        for (int k = 0; k < nl; k++)
            CNN_TRY(run_layer(n->layers[backward ? nl - 1 - k : k], backward));
        return CNN_OK;
    }
    int saved = omp_get_max_threads();
    run_ctx c = {.n = n, .backward = backward, .threads = saved > nd ? saved / nd : 1};
    run_arg args[CNN_MAX_DEVICES];
    pthread_t th[CNN_MAX_DEVICES];
    bool started[CNN_MAX_DEVICES] = {false};
    pthread_mutex_init(&c.mu, NULL);
    pthread_cond_init(&c.cv, NULL);
    for (int d = 0; d < nd; d++) args[d] = (run_arg){.ctx = &c, .device = d};
    for (int d = 1; d < nd; d++) {
        started[d] = pthread_create(&th[d], NULL, run_device, &args[d]) == 0;
        if (!started[d])
            step_done(&c, d, CNN_ERROR(CNN_ERR_MEMORY, "cannot start device %d's thread", d));
    }
    run_device(&args[0]);
    for (int d = 1; d < nd; d++)
        if (started[d]) pthread_join(th[d], NULL);
    omp_set_num_threads(saved);
    pthread_cond_destroy(&c.cv);
    pthread_mutex_destroy(&c.mu);
    if (c.failed) return CNN_ERROR(c.st, "%s", c.msg);
fail:
    return st;
}

/* ---- running -------------------------------------------------------------- */

/* A layer's reshape, with its device current on a GPU net. */
static cnn_status reshape_layer(cnn_layer *l)
{
    cnn_status st = CNN_OK;
    if (l->cuda) CNN_TRY(cnn_cuda_ctx_use(l->cuda));
    if (l->type->reshape) CNN_TRY(l->type->reshape(l));
fail:
    return st;
}

cnn_status cnn_net_reshape(cnn_net *n)
{
    cnn_status st = CNN_OK;
    for (int i = 0; i < n->n_layers; i++) {
        cnn_layer *l = n->layers[i];
        CNN_TRY(reshape_layer(l));
        for (int t = 0; t < l->n_top; t++)
            if (l->loss_weight[t] != 0 && l->top[t]->count == 0)
                return cnn_layer_error(l, CNN_ERR_SHAPE, "loss top '%s' is empty",
                                       l->top[t]->name);
    }
    CNN_TRY(fit_loss_buf(n));
    CNN_TRY(feed_host_tensors(n));
    CNN_TRY(graph_reset(n)); /* shapes, buffers and host fallbacks may have changed */
fail:
    return st;
}

cnn_status cnn_net_layer_forward(cnn_net *n, int i)
{
    cnn_layer *l = n->layers[i];
    cnn_status st = CNN_OK;
    CNN_TRY(reshape_layer(l));
    CNN_TRY(dispatch(l, false));
fail:
    return st;
}

cnn_status cnn_net_layer_backward(cnn_net *n, int i) { return run_layer(n->layers[i], true); }

cnn_status cnn_net_run_backward(cnn_net *n, int i) { return dispatch(n->layers[i], true); }

cnn_status cnn_net_layer_backward_all(cnn_net *n, int i)
{
    cnn_layer *l = n->layers[i];
    if (!l->type->backward) return CNN_OK;
    bool *saved = malloc((size_t)l->n_bottom * sizeof *saved + 1);
    if (!saved) return oom();
    for (int b = 0; b < l->n_bottom; b++) {
        saved[b] = l->propagate_down[b];
        l->propagate_down[b] = true;
    }
    cnn_status st = dispatch(l, true);
    for (int b = 0; b < l->n_bottom; b++) l->propagate_down[b] = saved[b];
    free(saved);
    return st;
}

/* The start of a pass on GPUs: every device's stream waits for device 0's
 * (which waited for all at the end of the last pass). */
static cnn_status join_start(cnn_net *n)
{
    cnn_status st = CNN_OK;
    if (!n->gpu || n->n_devices < 2) return CNN_OK;
    CNN_TRY(cnn_cuda_event_record(n->cuda[0], n->joined[0]));
    for (int d = 1; d < n->n_devices; d++) CNN_TRY(cnn_cuda_wait_event(n->cuda[d], n->joined[0]));
fail:
    return st;
}

/* The end of a pass: device 0's stream waits for every other device's. */
static cnn_status join_end(cnn_net *n)
{
    cnn_status st = CNN_OK;
    if (!n->gpu || n->n_devices < 2) return CNN_OK;
    for (int d = 1; d < n->n_devices; d++) {
        CNN_TRY(cnn_cuda_event_record(n->cuda[d], n->joined[d]));
        CNN_TRY(cnn_cuda_wait_event(n->cuda[0], n->joined[d]));
    }
fail:
    return st;
}

/* Runs the layers between a start and an end join. */
static cnn_status run_pass(cnn_net *n, bool backward)
{
    cnn_status st = CNN_OK;
    CNN_TRY(join_start(n));
    CNN_TRY(run_layers(n, backward));
    CNN_TRY(join_end(n));
fail:
    return st;
}

cnn_status cnn_net_loss_device(cnn_net *n, float *dev_dst)
{
    cnn_status st = CNN_OK;
    cnn_cuda_ctx *c0 = n->cuda[0];
    float *slot = n->loss_buf, *ones = n->loss_buf + 4, *stage = ones + n->loss_cap;
    if (!n->gpu) return CNN_ERROR(CNN_ERR_ARG, "the net is not on a GPU");
    for (int i = 0; i < n->n_layers; i++) {
        const cnn_layer *l = n->layers[i];
        for (int t = 0; t < l->n_top; t++) {
            cnn_tensor *top = l->top[t];
            const float *x = NULL;
            if (l->loss_weight[t] == 0 || top->count == 0) continue;
            cnn_cuda_ctx *c = cnn_tensor_ctx(top);
            CNN_TRY(cnn_cuda_ctx_use(c));
            CNN_TRY(cnn_gpu_read(top, &x));
            CNN_TRY(cnn_cuda_ctx_use(c0));
            if (c != c0) {
                CNN_TRY(cnn_cuda_event_record(c, n->joined[l->device]));
                CNN_TRY(cnn_cuda_wait_event(c0, n->joined[l->device]));
                CNN_TRY(cnn_cuda_copy_peer(c0, stage, c, x, top->count * sizeof(float)));
                x = stage;
            }
            if (top->count > 1) {
                CNN_TRY(cnn_cuda_dot(c0, top->count, x, ones, slot));
                x = slot;
            }
            CNN_TRY(cnn_cuda_axpy(c0, 1, l->loss_weight[t], x, dev_dst));
        }
    }
fail:
    return st;
}

cnn_status cnn_net_forward(cnn_net *n, float *loss)
{
    cnn_status st = CNN_OK;
    double total = 0;
    for (int d = 1; d < n->n_devices; d++) cnn_rng_seed(&n->dev_rng[d], cnn_rng_next(&n->rng));
    /* Inputs are written by host code (tools, feeds) between passes. */
    for (int i = 0; i < n->n_inputs && n->gpu; i++) cnn_host_wrote_data(n->inputs[i]);
    CNN_TRY(run_pass(n, false));
    if (n->gpu && !loss) return CNN_OK;
    CNN_TRY(cnn_net_check_gpu(n)); /* the loss is read back: a bad label first */
    for (int i = 0; i < n->n_layers; i++) {
        const cnn_layer *l = n->layers[i];
        for (int t = 0; t < l->n_top; t++) {
            if (l->loss_weight[t] == 0) continue;
            CNN_TRY(cnn_host_data(l->top[t]));
            double s = 0;
            for (size_t k = 0; k < l->top[t]->count; k++) s += l->top[t]->data[k];
            total += l->loss_weight[t] * s;
        }
    }
    if (loss) *loss = (float)total;
fail:
    return st;
}

/* Sets t's data or grad to `value` on its device. */
static cnn_status dev_fill(cnn_tensor *t, bool grad, float value)
{
    cnn_status st = CNN_OK;
    float *p = NULL;
    cnn_cuda_ctx *c = cnn_tensor_ctx(t);
    CNN_TRY(cnn_cuda_ctx_use(c));
    CNN_TRY(grad ? cnn_gpu_write_grad(t, &p) : cnn_gpu_write(t, &p));
    if (t->count) CNN_TRY(cnn_cuda_set(c, t->count, value, p));
fail:
    return st;
}

/* Whether t is a top with a loss weight. */
static bool weighted_loss_top(const cnn_net *n, const cnn_tensor *t)
{
    for (int i = 0; i < n->n_layers; i++) {
        const cnn_layer *l = n->layers[i];
        for (int k = 0; k < l->n_top; k++)
            if (l->top[k] == t && l->loss_weight[k] != 0) return true;
    }
    return false;
}

/* Backward's seeds on GPUs: outputs' gradients zero, loss tops' their
 * weight (one fill each: a loss top is not zeroed first). */
static cnn_status seed_grads_gpu(cnn_net *n)
{
    cnn_status st = CNN_OK;
    for (int i = 0; i < n->n_outputs; i++)
        if (!weighted_loss_top(n, n->outputs[i])) CNN_TRY(dev_fill(n->outputs[i], true, 0.f));
    for (int i = 0; i < n->n_layers; i++) {
        cnn_layer *l = n->layers[i];
        for (int t = 0; t < l->n_top; t++)
            if (l->loss_weight[t] != 0) CNN_TRY(dev_fill(l->top[t], true, l->loss_weight[t]));
    }
fail:
    return st;
}

cnn_status cnn_net_backward(cnn_net *n)
{
    cnn_status st = CNN_OK;
    if (n->gpu) {
        CNN_TRY(seed_grads_gpu(n));
        return run_pass(n, true);
    }
    for (int i = 0; i < n->n_outputs; i++)
        memset(n->outputs[i]->grad, 0, n->outputs[i]->count * sizeof(float));
    for (int i = 0; i < n->n_layers; i++) {
        cnn_layer *l = n->layers[i];
        for (int t = 0; t < l->n_top; t++)
            if (l->loss_weight[t] != 0)
                for (size_t k = 0; k < l->top[t]->count; k++)
                    l->top[t]->grad[k] = l->loss_weight[t];
    }
    CNN_TRY(run_layers(n, true));
fail:
    return st;
}

/* ---- a training step as a CUDA graph --------------------------------------
 * cnn_net_forward_backward with opts.cuda_graph: the host layers run first
 * (the prelude: data and Input layers, then every tensor the host wrote is
 * uploaded), and the GPU passes after them, forward then backward, are
 * recorded once and replayed with one launch, so the step costs the host
 * one call instead of one per kernel. Step 1 runs eagerly (libraries set
 * themselves up on first use), step 2 records and launches, later steps
 * replay. A replay changes device memory without the accesses that keep
 * the tensors' heads, so the prelude first marks every host copy stale
 * (the recording starts from that state each time) and the states the
 * recording left are set after each replay. Nets the recording cannot
 * reproduce (a host layer reading a GPU layer's output, or with a backward
 * pass) run eagerly and say why (cnn_net_graph_note). What the host draws
 * each pass for GPU layers (Dropout's seed) is drawn and uploaded in the
 * prelude (pass_begin_gpu); the recording reads it from device memory. */

static int graph_tensors(const cnn_net *n) { return n->n_blobs + n->n_params; }

static cnn_tensor *graph_tensor(const cnn_net *n, int k)
{
    return k < n->n_blobs ? n->blobs[k] : n->params[k - n->n_blobs];
}

/* Whether layer l reads a blob an earlier layer of the net writes on the GPU. */
static bool reads_gpu_output(const cnn_net *n, const cnn_layer *l)
{
    for (int i = 0; i < n->n_layers && n->layers[i] != l; i++) {
        const cnn_layer *p = n->layers[i];
        if (host_layer(p)) continue;
        for (int t = 0; t < p->n_top; t++)
            for (int b = 0; b < l->n_bottom; b++)
                if (p->top[t] == l->bottom[b]) return true;
    }
    return false;
}

/* Why this net's passes cannot be a graph, in buf; false when they can:
 * the prelude runs the host layers first, so none may read what a GPU layer
 * wrote (an Input layer after a Split may stand anywhere) or need a backward
 * pass. */
static bool graph_obstacle(const cnn_net *n, char *buf, size_t len)
{
    for (int i = 0; i < n->n_layers; i++) {
        const cnn_layer *l = n->layers[i];
        if (!host_layer(l)) continue;
        bool after = reads_gpu_output(n, l);
        if (after || l->need_backward) {
            snprintf(buf, len, "layer '%s' (%s) runs on the host %s", l->name, l->type->name,
                     after ? "on the output of GPU layers" : "in the backward pass");
            return true;
        }
    }
    return false;
}

/* Forgets any recording (after a reshape: shapes, buffers, fallbacks) and
 * makes room for the states of the next one. */
static cnn_status graph_reset(cnn_net *n)
{
    cnn_cuda_graph_free(n->graph);
    n->graph = NULL;
    n->graph_step = 0;
    n->graph_note[0] = 0;
    if (!n->graph_asked || !n->gpu || graph_obstacle(n, n->graph_note, sizeof n->graph_note))
        return CNN_OK;
    size_t k = (size_t)graph_tensors(n) + 1;
    if (!n->graph_pre) n->graph_pre = calloc(k, sizeof *n->graph_pre);
    if (!n->graph_post) n->graph_post = calloc(k, sizeof *n->graph_post);
    return n->graph_pre && n->graph_post ? CNN_OK : oom();
}

static void graph_states(const cnn_net *n, unsigned *out)
{
    for (int k = 0; k < graph_tensors(n); k++) out[k] = cnn_gpu_state(graph_tensor(n, k));
}

/* The host layers and the GPU layers' per-pass host work (in forward
 * order, so the generators draw as an eager step does), then every blob and
 * parameter device-current with a stale host copy: the state a recording
 * starts from. Ends with device 0's stream waiting for the others, so that
 * the graph, launched on device 0's stream, comes after all of it. */
static cnn_status graph_prelude(cnn_net *n)
{
    cnn_status st = CNN_OK;
    for (int d = 1; d < n->n_devices; d++) cnn_rng_seed(&n->dev_rng[d], cnn_rng_next(&n->rng));
    for (int i = 0; i < n->n_inputs; i++) cnn_host_wrote_data(n->inputs[i]);
    for (int i = 0; i < n->n_layers; i++) {
        cnn_layer *l = n->layers[i];
        if (host_layer(l)) {
            CNN_TRY(dispatch(l, false));
        } else if (l->type->pass_begin_gpu && l->phase == CNN_TRAIN) {
            CNN_TRY(cnn_cuda_ctx_use(l->cuda));
            CNN_TRY(l->type->pass_begin_gpu(l));
        }
    }
    for (int k = 0; k < graph_tensors(n); k++) {
        cnn_tensor *t = graph_tensor(n, k);
        CNN_TRY(cnn_cuda_ctx_use(cnn_tensor_ctx(t)));
        CNN_TRY(cnn_gpu_device_only(t));
    }
    CNN_TRY(join_end(n));
fail:
    return st;
}

/* The GPU passes of a step (the prelude ran the host layers). */
static cnn_status gpu_passes(cnn_net *n)
{
    n->skip_host = true;
    cnn_status st = run_pass(n, false);
    if (!st) st = seed_grads_gpu(n);
    if (!st) st = run_pass(n, true);
    n->skip_host = false;
    return st;
}

/* Records the passes and launches the recording; when recording fails,
 * says why, keeps running eagerly and runs this step eagerly. */
static cnn_status graph_record(cnn_net *n)
{
    cnn_cuda_ctx *c0 = n->cuda[0];
    unsigned *pre = n->graph_pre, *post = n->graph_post;
    graph_states(n, pre);
    cnn_status st = cnn_cuda_ctx_use(c0);
    if (!st) st = cnn_cuda_graph_begin(c0);
    if (!st) {
        st = gpu_passes(n);
        if (st) (void)join_end(n); /* a pass that stopped early: every stream rejoins */
        cnn_status end = cnn_cuda_graph_end(c0, &n->graph); /* always, to stop recording */
        if (!st) st = end;
    }
    if (st) {
        snprintf(n->graph_note, sizeof n->graph_note, "%s", cnn_error_message());
        cnn_cuda_graph_free(n->graph);
        n->graph = NULL;
        for (int k = 0; k < graph_tensors(n); k++) cnn_gpu_set_state(graph_tensor(n, k), pre[k]);
        return gpu_passes(n); /* nothing ran while recording */
    }
    graph_states(n, post);
    n->graph_step = 2;
    CNN_TRY(cnn_cuda_ctx_use(c0));
    return cnn_cuda_graph_launch(c0, n->graph);
fail:
    return st;
}

/* Replays the recording, or runs eagerly when the parameter gradients are
 * not all pending zeros as they were (the recorded ops overwrite them). */
static cnn_status graph_replay(cnn_net *n)
{
    cnn_status st = CNN_OK;
    for (int k = n->n_blobs; k < graph_tensors(n); k++)
        if (cnn_gpu_state_grad_zero(cnn_gpu_state(graph_tensor(n, k))) !=
            cnn_gpu_state_grad_zero(n->graph_pre[k]))
            return gpu_passes(n);
    CNN_TRY(cnn_cuda_ctx_use(n->cuda[0]));
    CNN_TRY(cnn_cuda_graph_launch(n->cuda[0], n->graph));
    for (int k = 0; k < graph_tensors(n); k++) cnn_gpu_set_state(graph_tensor(n, k), n->graph_post[k]);
fail:
    return st;
}

cnn_status cnn_net_forward_backward(cnn_net *n)
{
    cnn_status st = CNN_OK;
    if (!n->graph_asked || !n->gpu || n->graph_note[0]) {
        CNN_TRY(cnn_net_forward(n, NULL));
        return cnn_net_backward(n);
    }
    CNN_TRY(graph_prelude(n));
    if (n->graph_step == 1) return graph_record(n);
    if (n->graph_step == 2) return graph_replay(n);
    CNN_TRY(gpu_passes(n)); /* the eager warm-up */
    n->graph_step = 1;
fail:
    return st;
}

const char *cnn_net_graph_note(const cnn_net *n)
{
    if (!n->graph_asked) return "not asked for";
    if (!n->gpu) return "the net runs on the CPU";
    if (n->graph_note[0]) return n->graph_note;
    return n->graph_step == 2 ? "replayed" : "not recorded yet";
}

cnn_status cnn_net_zero_grads(cnn_net *n)
{
    cnn_status st = CNN_OK;
    for (int i = 0; i < n->n_params; i++) {
        if (n->gpu)
            CNN_TRY(cnn_gpu_zero_grad(n->params[i]));
        else
            memset(n->params[i]->grad, 0, n->params[i]->count * sizeof(float));
    }
fail:
    return st;
}

void cnn_net_zero_param_grads(cnn_net *n) { (void)cnn_net_zero_grads(n); }

bool cnn_net_on_gpu(const cnn_net *n) { return n->gpu; }

cnn_status cnn_net_check_gpu(cnn_net *n)
{
    cnn_status st = CNN_OK;
    if (!n->gpu) return CNN_OK;
    for (int i = 0; i < n->n_layers; i++) {
        cnn_layer *l = n->layers[i];
        if (!l->cuda || !l->type->check_gpu) continue;
        CNN_TRY(cnn_cuda_ctx_use(l->cuda));
        CNN_TRY(l->type->check_gpu(l));
    }
fail:
    return st;
}

cnn_status cnn_net_sync_host(cnn_net *n)
{
    cnn_status st = CNN_OK;
    if (!n->gpu) return CNN_OK;
    CNN_TRY(host_all(n->params, n->n_params, false));
    CNN_TRY(host_all(n->params, n->n_params, true));
    CNN_TRY(host_all(n->blobs, n->n_blobs, false));
    CNN_TRY(host_all(n->blobs, n->n_blobs, true));
fail:
    return st;
}

void cnn_net_params_changed(cnn_net *n)
{
    for (int i = 0; i < n->n_params; i++) cnn_host_wrote_data(n->params[i]);
}

/* ---- queries ------------------------------------------------------------- */

const char *cnn_net_name(const cnn_net *n) { return n->name; }
cnn_phase cnn_net_phase(const cnn_net *n) { return n->phase; }
cnn_tensor *cnn_net_blob(const cnn_net *n, const char *name) { return find_blob(n, name); }
cnn_rng *cnn_net_rng(cnn_net *n) { return &n->rng; }
int cnn_net_num_params(const cnn_net *n) { return n->n_info; }
const cnn_param_info *cnn_net_param_info(const cnn_net *n, int i) { return &n->info[i]; }
int cnn_net_num_layers(const cnn_net *n) { return n->n_layers; }
int cnn_net_num_devices(const cnn_net *n) { return n->n_devices; }
int cnn_net_layer_device(const cnn_net *n, int i) { return n->layers[i]->device; }
cnn_layer *cnn_net_layer(const cnn_net *n, int i) { return n->layers[i]; }
const char *cnn_net_layer_name(const cnn_net *n, int i) { return n->layers[i]->name; }
const char *cnn_net_layer_type(const cnn_net *n, int i) { return n->layers[i]->type->name; }
int cnn_net_layer_num_tops(const cnn_net *n, int i) { return n->layers[i]->n_top; }
cnn_tensor *cnn_net_layer_top(const cnn_net *n, int i, int t) { return n->layers[i]->top[t]; }
int cnn_net_layer_num_bottoms(const cnn_net *n, int i) { return n->layers[i]->n_bottom; }
int cnn_net_layer_num_params(const cnn_net *n, int i) { return n->layers[i]->n_param; }
int cnn_net_num_inputs(const cnn_net *n) { return n->n_inputs; }
cnn_tensor *cnn_net_input(const cnn_net *n, int i) { return n->inputs[i]; }
int cnn_net_num_outputs(const cnn_net *n) { return n->n_outputs; }
cnn_tensor *cnn_net_output(const cnn_net *n, int i) { return n->outputs[i]; }

cnn_tensor *cnn_net_layer_bottom(const cnn_net *n, int i, int b)
{
    return n->layers[i]->bottom[b];
}

cnn_tensor *cnn_net_layer_param(const cnn_net *n, int i, int p)
{
    return n->layers[i]->param[p];
}

double cnn_net_layer_flops(const cnn_net *n, int i)
{
    const cnn_layer *l = n->layers[i];
    return l->type->flops ? l->type->flops(l) : 0;
}

cnn_tensor *cnn_net_param(const cnn_net *n, const char *layer, int idx)
{
    for (int i = 0; i < n->n_layers; i++)
        if (!strcmp(n->layers[i]->name, layer))
            return idx >= 0 && idx < n->layers[i]->n_param ? n->layers[i]->param[idx] : NULL;
    return NULL;
}

cnn_status cnn_net_seek_data(cnn_net *n, uint64_t batch)
{
    cnn_status st = CNN_OK;
    for (int i = 0; i < n->n_layers; i++)
        if (n->layers[i]->type->seek) CNN_TRY(n->layers[i]->type->seek(n->layers[i], batch));
fail:
    return st;
}

/* dst's values = src's (same count): device to device when both have
 * mirrors (ordered after src's writers, and src's later writers after the
 * copy), else through the host. */
static cnn_status copy_values(cnn_net *dn, cnn_tensor *dst, const cnn_net *sn, cnn_tensor *src)
{
    cnn_status st = CNN_OK;
    cnn_cuda_ctx *cd = cnn_tensor_ctx(dst), *cs = cnn_tensor_ctx(src);
    if (!cd || !cs) {
        CNN_TRY(cnn_host_data(src));
        memcpy(dst->data, src->data, src->count * sizeof(float));
        cnn_host_wrote_data(dst);
        return CNN_OK;
    }
    const float *x = NULL;
    float *y = NULL;
    CNN_TRY(cnn_cuda_ctx_use(cs));
    CNN_TRY(cnn_gpu_read(src, &x));
    CNN_TRY(cnn_cuda_ctx_use(cd));
    CNN_TRY(cnn_gpu_write(dst, &y));
    CNN_TRY(cnn_cuda_event_record(cs, sn->joined[src->device]));
    CNN_TRY(cnn_cuda_wait_event(cd, sn->joined[src->device]));
    CNN_TRY(cnn_cuda_copy_peer(cd, y, cs, x, src->count * sizeof(float)));
    CNN_TRY(cnn_cuda_event_record(cd, dn->joined[dst->device]));
    CNN_TRY(cnn_cuda_wait_event(cs, dn->joined[dst->device]));
fail:
    return st;
}

cnn_status cnn_net_copy_params(cnn_net *dst, const cnn_net *src)
{
    cnn_status st = CNN_OK;
    char a[64], b[64];
    for (int i = 0; i < dst->n_layers; i++) {
        cnn_layer *d = dst->layers[i];
        for (int j = 0; j < src->n_layers; j++) {
            cnn_layer *s = src->layers[j];
            if (strcmp(d->name, s->name)) continue;
            for (int p = 0; p < d->n_param && p < s->n_param; p++) {
                if (!cnn_tensor_same_shape(d->param[p], s->param[p]))
                    return CNN_ERROR(CNN_ERR_SHAPE, "layer '%s' parameter %d: %s vs %s",
                                     d->name, p,
                                     cnn_tensor_shape_str(d->param[p], a, sizeof a),
                                     cnn_tensor_shape_str(s->param[p], b, sizeof b));
                if (d->param[p] == s->param[p]) continue;
                if (dst->gpu || src->gpu)
                    CNN_TRY(copy_values(dst, d->param[p], src, s->param[p]));
                else
                    memcpy(d->param[p]->data, s->param[p]->data,
                           s->param[p]->count * sizeof(float));
            }
            break;
        }
    }
fail:
    return st;
}
