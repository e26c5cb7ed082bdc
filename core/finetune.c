/* finetune.c — initial weights by name for fine-tuning (finetune.h): plans
 * the copy from every file first (so a strict failure changes nothing),
 * copies, and prints the per-layer table cnntrain shows at start. */
#include <stdlib.h>
#include <string.h>

#include "caffemodel.h"
#include "finetune.h"
#include "gpu.h"
#include "net_internal.h"

static void shape_text(const int *shape, int ndim, char *buf, size_t n)
{
    size_t at = 0;
    buf[0] = 0;
    if (ndim == 0) snprintf(buf, n, "scalar");
    for (int i = 0; i < ndim && at < n; i++)
        at += (size_t)snprintf(buf + at, n - at, i ? "x%d" : "%d", shape[i]);
}

void cnn_ft_report_free(cnn_ft_report *r)
{
    if (!r) return;
    for (int i = 0; i < r->n_files; i++) {
        if (r->files) free(r->files[i]);
        if (r->kinds) free(r->kinds[i]);
    }
    free(r->files);
    free(r->kinds);
    free(r->counts);
    for (int i = 0; i < r->n_params; i++) {
        free(r->param[i].key);
        free(r->param[i].layer);
    }
    free(r->param);
    for (int i = 0; i < r->n_unused; i++) {
        free(r->unused[i].name);
        free(r->unused[i].reason);
    }
    free(r->unused);
    free(r);
}

/* The net's parameters once each, in layer order, with their tensors. */
static cnn_status collect(const cnn_net *n, cnn_ft_report *r, cnn_tensor ***tensors)
{
    int cap = 0;
    for (int i = 0; i < cnn_net_num_layers(n); i++) cap += cnn_net_layer_num_params(n, i);
    r->param = calloc((size_t)cap + 1, sizeof *r->param);
    cnn_tensor **t = *tensors = calloc((size_t)cap + 1, sizeof *t);
    if (!r->param || !t) return CNN_ERROR(CNN_ERR_MEMORY, "out of memory");
    for (int i = 0; i < cnn_net_num_layers(n); i++) {
        const cnn_layer *l = cnn_net_layer(n, i);
        for (int k = 0; k < cnn_net_layer_num_params(n, i); k++) {
            cnn_tensor *p = cnn_net_layer_param(n, i, k);
            bool seen = false;
            for (int j = 0; j < r->n_params && !seen; j++) seen = t[j] == p;
            if (!p || seen) continue;
            cnn_ft_param *q = &r->param[r->n_params];
            size_t len = strlen(l->name) + 16;
            q->layer = strdup(l->name);
            q->key = malloc(len);
            if (!q->layer || !q->key) {
                free(q->layer);
                free(q->key);
                return CNN_ERROR(CNN_ERR_MEMORY, "out of memory");
            }
            snprintf(q->key, len, "%s.%d", l->name, k);
            q->index = k;
            q->status = CNN_FT_MISSING;
            q->file = -1;
            q->ndim = p->ndim;
            memcpy(q->shape, p->shape, sizeof q->shape);
            q->lr_mult = k < l->n_spec ? l->spec[k].lr_mult : 1.f;
            t[r->n_params++] = p;
        }
    }
    return CNN_OK;
}

static cnn_status add_unused(cnn_ft_report *r, int *cap, int file, const char *name,
                             const char *reason)
{
    if (r->n_unused == *cap) {
        int c = *cap ? 2 * *cap : 16;
        cnn_ft_unused *u = realloc(r->unused, (size_t)c * sizeof *u);
        if (!u) return CNN_ERROR(CNN_ERR_MEMORY, "out of memory");
        r->unused = u;
        *cap = c;
    }
    cnn_ft_unused *u = &r->unused[r->n_unused];
    u->file = file;
    u->name = strdup(name);
    u->reason = strdup(reason);
    r->n_unused++;
    if (!u->name || !u->reason) return CNN_ERROR(CNN_ERR_MEMORY, "out of memory");
    return CNN_OK;
}

/* Why tensor `name` of a file matches no parameter of the net. */
static void unused_reason(const cnn_net *n, const char *name, char *buf, size_t len)
{
    const char *dot = strrchr(name, '.');
    char *end = NULL;
    long idx = dot ? strtol(dot + 1, &end, 10) : -1;
    if (!dot || dot == name || !end || *end || end == dot + 1 || idx < 0) {
        snprintf(buf, len, "not a <layer>.<index> name");
        return;
    }
    int lname = (int)(dot - name);
    for (int i = 0; i < cnn_net_num_layers(n); i++) {
        const char *ln = cnn_net_layer_name(n, i);
        if ((int)strlen(ln) != lname || strncmp(ln, name, (size_t)lname)) continue;
        int np = cnn_net_layer_num_params(n, i);
        if (np == 0) snprintf(buf, len, "layer '%s' (%s) has no parameters", ln,
                              cnn_net_layer_type(n, i));
        else snprintf(buf, len, "layer '%s' has %d parameter blob%s", ln, np,
                      np == 1 ? "" : "s");
        return;
    }
    snprintf(buf, len, "no layer '%.*s' in the net", lname, name);
}

/* Plans the copy: src[i] for each parameter to load (NULL otherwise). */
static cnn_status plan(const cnn_net *n, cnn_weights_file **files, int nf, cnn_ft_report *r,
                       const float **src)
{
    cnn_status st = CNN_OK;
    int cap = 0;
    for (int fi = 0; fi < nf; fi++) {
        cnn_weights_file *f = files[fi];
        for (int ti = 0; ti < cnn_weights_file_count(f); ti++) {
            const char *name = cnn_weights_file_name(f, ti);
            char reason[320];
            int pi = -1;
            for (int j = 0; j < r->n_params && pi < 0; j++)
                if (!strcmp(r->param[j].key, name)) pi = j;
            int ndim = 0, shape[CNN_MAX_DIMS];
            const float *data = NULL;
            if (cnn_weights_file_get(f, ti, &ndim, shape, &data) != CNN_OK) {
                snprintf(reason, sizeof reason, "%s", cnn_error_message());
                char *colon = strstr(reason, ": ");
                if (colon && !strncmp(reason, cnn_weights_file_path(f), (size_t)(colon - reason)))
                    memmove(reason, colon + 2, strlen(colon + 2) + 1);
                CNN_TRY(add_unused(r, &cap, fi, name, reason));
                continue;
            }
            if (pi < 0) {
                unused_reason(n, name, reason, sizeof reason);
                CNN_TRY(add_unused(r, &cap, fi, name, reason));
                continue;
            }
            cnn_ft_param *p = &r->param[pi];
            if (!cnn_shape_compatible(shape, ndim, p->shape, p->ndim)) {
                char fs[128], ns[128];
                shape_text(shape, ndim, fs, sizeof fs);
                shape_text(p->shape, p->ndim, ns, sizeof ns);
                if (p->status == CNN_FT_LOADED) {
                    snprintf(reason, sizeof reason, "shape %s, the net has %s", fs, ns);
                    CNN_TRY(add_unused(r, &cap, fi, name, reason));
                } else {
                    p->status = CNN_FT_SHAPE;
                    p->file = fi;
                    p->file_ndim = ndim;
                    memcpy(p->file_shape, shape, sizeof(int) * (size_t)ndim);
                }
                continue;
            }
            p->status = CNN_FT_LOADED;
            p->file = fi;
            src[pi] = data;
        }
    }
fail:
    return st;
}

/* The strict-mode error: the first few problems, and how many in all. */
static cnn_status strict_error(const cnn_ft_report *r)
{
    char msg[700];
    size_t at = 0;
    int shown = 0, total = 0;
    for (int i = 0; i < r->n_params; i++) {
        const cnn_ft_param *p = &r->param[i];
        if (p->status == CNN_FT_LOADED) continue;
        total++;
        if (shown++ >= 4 || at >= sizeof msg) continue;
        if (p->status == CNN_FT_MISSING) {
            at += (size_t)snprintf(msg + at, sizeof msg - at, "; %s is in no weights file",
                                   p->key);
        } else {
            char fs[64], ns[64];
            shape_text(p->file_shape, p->file_ndim, fs, sizeof fs);
            shape_text(p->shape, p->ndim, ns, sizeof ns);
            at += (size_t)snprintf(msg + at, sizeof msg - at, "; %s is %s in %s, %s in the net",
                                   p->key, fs, r->files[p->file], ns);
        }
    }
    for (int i = 0; i < r->n_unused; i++) {
        total++;
        if (shown++ >= 4 || at >= sizeof msg) continue;
        at += (size_t)snprintf(msg + at, sizeof msg - at, "; %s in %s is unused (%s)",
                               r->unused[i].name, r->files[r->unused[i].file],
                               r->unused[i].reason);
    }
    return CNN_ERROR(CNN_ERR_CONFIG, "strict weights: %d mismatch%s%s%s", total,
                     total == 1 ? "" : "es", msg, shown > 4 ? "; ..." : "");
}

cnn_status cnn_finetune_load(cnn_net *n, const char *const *paths, int n_paths, bool strict,
                             cnn_ft_report **out)
{
    cnn_status st = CNN_OK;
    cnn_weights_file **files = NULL;
    cnn_tensor **tensors = NULL;
    const float **src = NULL;
    cnn_ft_report *r = calloc(1, sizeof *r);
    if (out) *out = NULL;
    if (!r || !(files = calloc((size_t)n_paths + 1, sizeof *files)) ||
        !(r->files = calloc((size_t)n_paths + 1, sizeof *r->files)) ||
        !(r->kinds = calloc((size_t)n_paths + 1, sizeof *r->kinds)) ||
        !(r->counts = calloc((size_t)n_paths + 1, sizeof *r->counts))) {
        st = CNN_ERROR(CNN_ERR_MEMORY, "out of memory");
        goto fail;
    }
    for (int i = 0; i < n_paths; i++) {
        CNN_TRY(cnn_weights_file_open(paths[i], &files[i]));
        r->files[i] = strdup(paths[i]);
        r->kinds[i] = strdup(cnn_weights_file_kind(files[i]));
        r->counts[i] = cnn_weights_file_count(files[i]);
        r->n_files++;
        if (!r->files[i] || !r->kinds[i]) {
            st = CNN_ERROR(CNN_ERR_MEMORY, "out of memory");
            goto fail;
        }
    }
    CNN_TRY(collect(n, r, &tensors));
    if (!(src = calloc((size_t)r->n_params + 1, sizeof *src))) {
        st = CNN_ERROR(CNN_ERR_MEMORY, "out of memory");
        goto fail;
    }
    CNN_TRY(plan(n, files, n_paths, r, src));
    int loaded, reinit, unused;
    cnn_ft_report_counts(r, &loaded, &reinit, &unused);
    if (strict && (reinit || unused)) {
        st = strict_error(r);
    } else {
        for (int i = 0; i < r->n_params; i++)
            if (src[i] && tensors[i]->count) {
                memcpy(tensors[i]->data, src[i], tensors[i]->count * sizeof(float));
                cnn_host_wrote_data(tensors[i]); /* a GPU net uploads it before use */
            }
    }
    if (out) {
        *out = r;
        r = NULL;
    }
fail:
    for (int i = 0; files && i < n_paths; i++) cnn_weights_file_close(files[i]);
    free(files);
    free(tensors);
    free(src);
    cnn_ft_report_free(r);
    return st;
}

void cnn_ft_report_counts(const cnn_ft_report *r, int *loaded, int *reinit, int *unused)
{
    *loaded = *reinit = 0;
    for (int i = 0; i < r->n_params; i++) {
        if (r->param[i].status == CNN_FT_LOADED) (*loaded)++;
        else (*reinit)++;
    }
    *unused = r->n_unused;
}

/* Base name of a path, for compact table lines. */
static const char *base(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* One parameter's status as text. */
static void param_text(const cnn_ft_report *r, const cnn_ft_param *p, char *buf, size_t n)
{
    char fs[64], ns[64];
    switch (p->status) {
    case CNN_FT_LOADED: snprintf(buf, n, "loaded from %s", base(r->files[p->file])); break;
    case CNN_FT_MISSING: snprintf(buf, n, "re-initialised (not in the weights)"); break;
    case CNN_FT_SHAPE:
        shape_text(p->file_shape, p->file_ndim, fs, sizeof fs);
        shape_text(p->shape, p->ndim, ns, sizeof ns);
        snprintf(buf, n, "re-initialised (%s in %s, %s here)", fs, base(r->files[p->file]), ns);
        break;
    }
}

static int layer_type_index(const cnn_net *n, const char *layer)
{
    for (int i = 0; n && i < cnn_net_num_layers(n); i++)
        if (!strcmp(cnn_net_layer_name(n, i), layer)) return i;
    return -1;
}

void cnn_ft_report_print(const cnn_ft_report *r, const cnn_net *n, FILE *f)
{
    int loaded, reinit, unused;
    cnn_ft_report_counts(r, &loaded, &reinit, &unused);
    fprintf(f, "weights:");
    for (int i = 0; i < r->n_files; i++)
        fprintf(f, "%s %s (%s, %d tensors)", i ? "," : "", r->files[i], r->kinds[i],
                r->counts[i]);
    fprintf(f, "\n  %-24s %-16s %s\n", "layer", "type", "parameters");
    for (int i = 0; i < r->n_params;) {
        int j = i;
        while (j < r->n_params && !strcmp(r->param[j].layer, r->param[i].layer)) j++;
        /* One line when every blob of the layer has the same fate, else one per blob. */
        char first[256], text[256], line[600];
        param_text(r, &r->param[i], first, sizeof first);
        bool same = true, frozen = true;
        for (int k = i; k < j; k++) {
            param_text(r, &r->param[k], text, sizeof text);
            same &= !strcmp(text, first);
            frozen &= r->param[k].lr_mult == 0;
        }
        int li = layer_type_index(n, r->param[i].layer);
        const char *type = li >= 0 ? cnn_net_layer_type(n, li) : "";
        if (!strcmp(type, "BatchNorm")) frozen = false; /* statistics, never learned */
        size_t at = 0;
        if (same) {
            at = (size_t)snprintf(line, sizeof line, "%s", first);
        } else {
            for (int k = i; k < j && at < sizeof line; k++) {
                param_text(r, &r->param[k], text, sizeof text);
                at += (size_t)snprintf(line + at, sizeof line - at, "%s%d: %s",
                                       k > i ? "; " : "", r->param[k].index, text);
            }
        }
        fprintf(f, "  %-24s %-16s %d blob%s %s%s\n", r->param[i].layer, type, j - i,
                j - i == 1 ? ", " : "s,", line, frozen ? "; frozen (lr_mult 0)" : "");
        i = j;
    }
    for (int i = 0; i < r->n_unused;) {
        /* Group consecutive tensors of one file with the same layer part and reason. */
        const cnn_ft_unused *u = &r->unused[i];
        const char *dot = strrchr(u->name, '.');
        size_t plen = dot ? (size_t)(dot - u->name) : strlen(u->name);
        int j = i + 1;
        while (dot && j < r->n_unused && r->unused[j].file == u->file &&
               !strcmp(r->unused[j].reason, u->reason) &&
               !strncmp(r->unused[j].name, u->name, plen) && r->unused[j].name[plen] == '.')
            j++;
        if (j - i == 1)
            fprintf(f, "  %-24s %-16s unused in %s: %s\n", u->name, "", base(r->files[u->file]),
                    u->reason);
        else
            fprintf(f, "  %-24.*s %-16s %d tensors unused in %s: %s\n", (int)plen, u->name, "",
                    j - i, base(r->files[u->file]), u->reason);
        i = j;
    }
    fprintf(f, "  %d parameter blob%s loaded, %d re-initialised, %d tensor%s unused\n", loaded,
            loaded == 1 ? "" : "s", reinit, unused, unused == 1 ? "" : "s");
}

cnn_status cnn_finetune_load_list(cnn_net *n, const char *list, bool strict, FILE *table)
{
    cnn_status st = CNN_OK;
    cnn_ft_report *r = NULL;
    char *copy = strdup(list), *save = NULL;
    const char **paths = NULL;
    int np = 0;
    if (!copy || !(paths = calloc(strlen(list) + 1, sizeof *paths))) {
        st = CNN_ERROR(CNN_ERR_MEMORY, "out of memory");
        goto fail;
    }
    for (char *w = strtok_r(copy, ",", &save); w; w = strtok_r(NULL, ",", &save))
        paths[np++] = w;
    if (np == 0) {
        st = CNN_ERROR(CNN_ERR_ARG, "no weights file in '%s'", list);
        goto fail;
    }
    st = cnn_finetune_load(n, paths, np, strict, &r);
    if (r && table) {
        cnn_ft_report_print(r, n, table);
        fflush(table);
    }
fail:
    cnn_ft_report_free(r);
    free(paths);
    free(copy);
    return st;
}
