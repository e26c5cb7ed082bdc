/* cnnconvert — converts weights from other frameworks to cnn's .safetensors:
 * Caffe .caffemodel files (tensors "<layer>.<index>", as Caffe names them),
 * and PyTorch state dicts saved as .safetensors, renamed through a map file.
 * --list prints what a weights file (or a .binaryproto mean image) holds. */
#include <errno.h>
#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/caffemodel.h"
#include "core/cnn.h"
#include "core/weights.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: cnnconvert IN OUT.safetensors [--map MAP] [--model MODEL]\n"
            "       cnnconvert --list IN\n"
            "Converts IN to cnn's weights format (.safetensors, tensors \"<layer>.<index>\").\n"
            "  IN is a Caffe .caffemodel (V1 or V2; decided by content) or a .safetensors\n"
            "  file (a PyTorch state dict: give --map).\n"
            "  --map MAP      rename tensors: lines \"SOURCE DEST\" (e.g.\n"
            "                 \"features.0.weight conv1.0\"), \"SOURCE -\" to drop (SOURCE may\n"
            "                 be a pattern such as *.num_batches_tracked), \"=VALUE DEST\" for\n"
            "                 a one-element tensor (BatchNorm's scale factor: =1 bn1.2);\n"
            "                 '#' starts a comment. Every tensor of IN must be mapped or\n"
            "                 dropped.\n"
            "  --model MODEL  check every tensor against MODEL's parameters and store it\n"
            "                 with the model's shape (Caffe's legacy 4-d blob shapes such\n"
            "                 as 1x1x4096x9216 become 4096x9216); without it legacy shapes\n"
            "                 lose their leading 1s\n"
            "  --list         print the tensors of IN (name, shape, layer type) and exit;\n"
            "                 for a Caffe mean image (.binaryproto), its shape and\n"
            "                 channel averages\n");
}

/* One output tensor. */
typedef struct {
    char *name;
    int ndim;
    int shape[CNN_MAX_DIMS];
    const float *data; /* borrowed from the input, or `own` */
    float own;         /* value of a constant from the map */
    int line;          /* map line, 0 without a map */
} out_tensor;

/* One line of a map file. */
typedef struct {
    char *src, *dst; /* dst NULL: drop; src NULL: constant */
    float value;
    int line;
    int uses;
} map_line;

typedef struct {
    map_line *l;
    int n;
} name_map;

static void map_free(name_map *m)
{
    for (int i = 0; i < m->n; i++) {
        free(m->l[i].src);
        free(m->l[i].dst);
    }
    free(m->l);
}

static int err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int err(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("cnnconvert: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

static int read_map(const char *path, name_map *m)
{
    FILE *f = fopen(path, "r");
    if (!f) return err("%s: cannot open: %s", path, strerror(errno));
    char buf[4096];
    int line = 0, cap = 0, rc = 0;
    while (fgets(buf, sizeof buf, f)) {
        line++;
        if (!strchr(buf, '\n') && !feof(f)) {
            rc = err("%s:%d: line too long", path, line);
            break;
        }
        char *hash = strchr(buf, '#');
        if (hash) *hash = 0;
        char *save = NULL, *a = strtok_r(buf, " \t\r\n", &save);
        if (!a) continue;
        char *b = strtok_r(NULL, " \t\r\n", &save), *c = strtok_r(NULL, " \t\r\n", &save);
        if (!b || c) {
            rc = err("%s:%d: expected two names, \"SOURCE DEST\"", path, line);
            break;
        }
        map_line ml = {.line = line};
        if (a[0] == '=') {
            char *end = NULL;
            errno = 0;
            ml.value = strtof(a + 1, &end);
            if (errno || end == a + 1 || *end) {
                rc = err("%s:%d: '%s' is not =NUMBER", path, line, a);
                break;
            }
            if (!strcmp(b, "-")) {
                rc = err("%s:%d: a constant cannot be dropped", path, line);
                break;
            }
        } else if (!(ml.src = strdup(a))) {
            rc = err("out of memory");
            break;
        }
        if (strcmp(b, "-") && !(ml.dst = strdup(b))) {
            free(ml.src);
            rc = err("out of memory");
            break;
        }
        if (m->n == cap) {
            cap = cap ? 2 * cap : 64;
            map_line *nl = realloc(m->l, (size_t)cap * sizeof *nl);
            if (!nl) {
                free(ml.src);
                free(ml.dst);
                rc = err("out of memory");
                break;
            }
            m->l = nl;
        }
        m->l[m->n++] = ml;
    }
    if (!rc && ferror(f)) rc = err("%s: read failed", path);
    fclose(f);
    if (!rc && m->n == 0) rc = err("%s: no mappings", path);
    for (int i = 0; !rc && i < m->n; i++)
        for (int j = 0; !rc && j < i; j++)
            if (m->l[i].dst && m->l[j].dst && !strcmp(m->l[i].dst, m->l[j].dst))
                rc = err("%s:%d: '%s' is already the destination of line %d", path,
                         m->l[i].line, m->l[i].dst, m->l[j].line);
    return rc;
}

static void shape_text(const int *shape, int ndim, char *buf, size_t n)
{
    size_t at = 0;
    buf[0] = 0;
    if (ndim == 0) snprintf(buf, n, "scalar");
    for (int i = 0; i < ndim && at < n; i++)
        at += (size_t)snprintf(buf + at, n - at, i ? "x%d" : "%d", shape[i]);
}

/* A .binaryproto (a Caffe mean image): its shape and per-channel averages,
 * which show its channel order (Caffe's ImageNet mean: B 104, G 117, R 123). */
static int list_blobproto(const char *path)
{
    cnn_caffemodel_blob b;
    if (cnn_blobproto_read(path, &b) != CNN_OK) return err("%s", cnn_error_message());
    char s[128];
    shape_text(b.shape, b.ndim, s, sizeof s);
    printf("%s: binaryproto, %s\n", path, s);
    int c = b.ndim >= 3 ? b.shape[b.ndim - 3] : 1;
    size_t plane = c > 0 ? b.count / (size_t)c : 0;
    if (plane && b.count == (size_t)c * plane && (b.ndim < 4 || b.shape[0] == 1)) {
        printf("  channel averages:");
        for (int ch = 0; ch < c; ch++) {
            double sum = 0;
            for (size_t i = 0; i < plane; i++) sum += b.data[ch * plane + i];
            printf(" %.3f", sum / (double)plane);
        }
        printf("\n");
    }
    cnn_caffemodel_blob_clear(&b);
    return 0;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

static int list(const char *path)
{
    cnn_weights_file *f = NULL;
    cnn_caffemodel *cm = NULL;
    if (ends_with(path, ".binaryproto")) return list_blobproto(path);
    if (cnn_weights_is_safetensors(path)) {
        if (cnn_weights_file_open(path, &f) != CNN_OK) return err("%s", cnn_error_message());
    } else if (cnn_caffemodel_read(path, &cm) != CNN_OK) {
        return err("%s", cnn_error_message());
    }
    if (cm) {
        printf("%s: caffemodel, net '%s', %d layers with blobs, %d blobs\n", path, cm->net_name,
               cm->n_layers, cm->n);
        for (int i = 0; i < cm->n; i++) {
            char s[128];
            shape_text(cm->blob[i].shape, cm->blob[i].ndim, s, sizeof s);
            printf("  %-32s %-20s %s%s\n", cm->blob[i].name, s, cm->blob[i].type,
                   cm->blob[i].legacy ? " (legacy 4-d shape)" : "");
        }
        cnn_caffemodel_free(cm);
        return 0;
    }
    int n = cnn_weights_file_count(f);
    printf("%s: safetensors, %d tensors\n", path, n);
    for (int i = 0; i < n; i++) {
        int nd, shape[CNN_MAX_DIMS];
        const float *d;
        char s[128];
        if (cnn_weights_file_get(f, i, &nd, shape, &d) == CNN_OK) {
            shape_text(shape, nd, s, sizeof s);
            printf("  %-32s %s\n", cnn_weights_file_name(f, i), s);
        } else {
            printf("  %-32s (%s)\n", cnn_weights_file_name(f, i), cnn_error_message());
        }
    }
    cnn_weights_file_close(f);
    return 0;
}

/* Index of the net's parameter called key ("<layer>.<index>"), as a tensor. */
static cnn_tensor *net_param(cnn_net *n, const char *key)
{
    const char *dot = strrchr(key, '.');
    if (!dot || dot == key) return NULL;
    char *end = NULL;
    long idx = strtol(dot + 1, &end, 10);
    if (end == dot + 1 || *end || idx < 0 || idx > 1000) return NULL;
    char layer[512];
    snprintf(layer, sizeof layer, "%.*s", (int)(dot - key), key);
    return cnn_net_param(n, layer, (int)idx);
}

/* Applies --model: the net's shape for every tensor, and a note on each
 * parameter of the net that the output lacks. */
static int fit_model(const char *model, out_tensor *o, int n)
{
    cnn_net_opts opts = cnn_net_default_opts();
    opts.phase = CNN_TEST;
    opts.shapes_only = true;
    cnn_net *net = NULL;
    if (cnn_net_from_file(model, &opts, &net) != CNN_OK) return err("%s", cnn_error_message());
    int rc = 0, missing = 0;
    for (int i = 0; i < n && !rc; i++) {
        cnn_tensor *t = net_param(net, o[i].name);
        char fs[128], ns[128];
        if (!t) {
            fprintf(stderr, "cnnconvert: warning: %s: %s matches no parameter of the model\n",
                    model, o[i].name);
            continue;
        }
        if (!cnn_shape_compatible(o[i].shape, o[i].ndim, t->shape, t->ndim)) {
            shape_text(o[i].shape, o[i].ndim, fs, sizeof fs);
            shape_text(t->shape, t->ndim, ns, sizeof ns);
            rc = err("%s: %s is %s, but the model's parameter is %s", model, o[i].name, fs, ns);
            break;
        }
        o[i].ndim = t->ndim;
        memcpy(o[i].shape, t->shape, sizeof o[i].shape);
    }
    for (int li = 0; li < cnn_net_num_layers(net) && !rc; li++)
        for (int k = 0; k < cnn_net_layer_num_params(net, li); k++) {
            char key[600];
            snprintf(key, sizeof key, "%s.%d", cnn_net_layer_name(net, li), k);
            bool found = false;
            for (int i = 0; i < n && !found; i++) found = !strcmp(o[i].name, key);
            if (!found && missing++ < 20)
                fprintf(stderr, "cnnconvert: warning: the model's %s is not in the output\n",
                        key);
        }
    cnn_net_free(net);
    return rc;
}

/* Builds the output list from a .caffemodel. */
static int from_caffemodel(const cnn_caffemodel *cm, out_tensor **out, int *n)
{
    out_tensor *o = calloc((size_t)cm->n + 1, sizeof *o);
    if (!o) return err("out of memory");
    *out = o;
    *n = cm->n;
    for (int i = 0; i < cm->n; i++) {
        const cnn_caffemodel_blob *b = &cm->blob[i];
        if (!(o[i].name = strdup(b->name))) return err("out of memory");
        o[i].data = b->data;
        if (b->legacy) {
            o[i].ndim = cnn_caffemodel_squeeze(b->shape, b->ndim, o[i].shape);
        } else {
            o[i].ndim = b->ndim;
            memcpy(o[i].shape, b->shape, sizeof o[i].shape);
        }
    }
    return 0;
}

/* Builds the output list from a safetensors file through the map. */
static int from_mapped(cnn_weights_file *f, name_map *m, const char *map_path, out_tensor **out,
                       int *n)
{
    int nt = cnn_weights_file_count(f), rc = 0, no = 0, unmapped = 0;
    out_tensor *o = calloc((size_t)m->n + 1, sizeof *o);
    if (!o) return err("out of memory");
    /* Every tensor of the file: mapped (maybe several times) or dropped. */
    for (int ti = 0; ti < nt && !rc; ti++) {
        const char *name = cnn_weights_file_name(f, ti);
        bool any = false;
        for (int k = 0; k < m->n && !rc; k++) {
            map_line *ml = &m->l[k];
            if (!ml->src) continue;
            bool exact = !strcmp(ml->src, name);
            bool pattern = !ml->dst && strpbrk(ml->src, "*?[") && !fnmatch(ml->src, name, 0);
            if (!exact && !pattern) continue;
            any = true;
            ml->uses++;
            if (!ml->dst) continue;
            out_tensor *t = &o[no++];
            const float *d = NULL;
            if (cnn_weights_file_get(f, ti, &t->ndim, t->shape, &d) != CNN_OK) {
                rc = err("%s (map line %d)", cnn_error_message(), ml->line);
                break;
            }
            t->data = d;
            t->line = ml->line;
            if (!(t->name = strdup(ml->dst))) rc = err("out of memory");
        }
        if (!any && unmapped++ < 20)
            fprintf(stderr, "cnnconvert: %s: tensor '%s' is not in the map %s (map it, or drop "
                    "it with \"%s -\")\n", cnn_weights_file_path(f), name, map_path, name);
    }
    if (!rc && unmapped)
        rc = err("%d tensor%s of %s not mapped", unmapped, unmapped == 1 ? "" : "s",
                 cnn_weights_file_path(f));
    for (int k = 0; k < m->n && !rc; k++) {
        map_line *ml = &m->l[k];
        if (!ml->src) {
            out_tensor *t = &o[no++];
            t->ndim = 1;
            t->shape[0] = 1;
            t->own = ml->value;
            t->line = ml->line;
            if (!(t->name = strdup(ml->dst))) rc = err("out of memory");
        } else if (!ml->uses && !strpbrk(ml->src, "*?[")) {
            rc = err("%s:%d: no tensor '%s' in %s", map_path, ml->line, ml->src,
                     cnn_weights_file_path(f));
        }
    }
    *out = o;
    *n = no;
    return rc;
}

int main(int argc, char **argv)
{
    const char *in = NULL, *outp = NULL, *map_path = NULL, *model = NULL;
    bool do_list = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_val = i + 1 < argc;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--list")) {
            do_list = true;
        } else if (!strcmp(a, "--map") && has_val) {
            map_path = argv[++i];
        } else if (!strcmp(a, "--model") && has_val) {
            model = argv[++i];
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "cnnconvert: unknown option or missing value: %s\n", a);
            usage(stderr);
            return 2;
        } else if (!in) {
            in = a;
        } else if (!outp) {
            outp = a;
        } else {
            fprintf(stderr, "cnnconvert: too many arguments ('%s')\n", a);
            return 2;
        }
    }
    if (do_list) {
        if (!in || outp || map_path || model) {
            fprintf(stderr, "cnnconvert: --list takes one file and no other option\n");
            return 2;
        }
        return list(in);
    }
    if (!in || !outp) {
        usage(stderr);
        return 2;
    }
    bool st_in = cnn_weights_is_safetensors(in);
    if (st_in && !map_path) {
        fprintf(stderr, "cnnconvert: %s is a .safetensors file: give --map to rename its "
                        "tensors (see models/maps/)\n", in);
        return 2;
    }
    if (!st_in && map_path) {
        fprintf(stderr, "cnnconvert: --map is for .safetensors input; a .caffemodel already "
                        "names its blobs by layer\n");
        return 2;
    }

    int rc = 0, n = 0;
    cnn_caffemodel *cm = NULL;
    cnn_weights_file *f = NULL;
    name_map m = {0};
    out_tensor *o = NULL;
    cnn_safetensors_entry *e = NULL;
    if (st_in) {
        if ((rc = read_map(map_path, &m))) goto done;
        if (cnn_weights_file_open(in, &f) != CNN_OK) {
            rc = err("%s", cnn_error_message());
            goto done;
        }
        if ((rc = from_mapped(f, &m, map_path, &o, &n))) goto done;
    } else {
        if (cnn_caffemodel_read(in, &cm) != CNN_OK) {
            rc = err("%s", cnn_error_message());
            goto done;
        }
        if ((rc = from_caffemodel(cm, &o, &n))) goto done;
    }
    if (model && (rc = fit_model(model, o, n))) goto done;
    for (int i = 0; i < n && !rc; i++)
        for (int j = 0; j < i; j++)
            if (!strcmp(o[i].name, o[j].name)) {
                rc = err("two tensors would be called '%s'", o[i].name);
                break;
            }
    if (rc) goto done;
    if (!(e = calloc((size_t)n + 1, sizeof *e))) {
        rc = err("out of memory");
        goto done;
    }
    for (int i = 0; i < n; i++)
        e[i] = (cnn_safetensors_entry){o[i].name, o[i].ndim, o[i].shape,
                                       o[i].data ? o[i].data : &o[i].own};
    const char *meta[] = {"source", in, "converter", "cnnconvert", NULL, NULL, NULL};
    if (cm && cm->net_name[0]) {
        meta[4] = "net";
        meta[5] = cm->net_name;
    }
    if (cnn_safetensors_write(outp, e, n, meta) != CNN_OK) {
        rc = err("%s", cnn_error_message());
        goto done;
    }
    size_t values = 0;
    for (int i = 0; i < n; i++) {
        size_t c = 1;
        for (int d = 0; d < o[i].ndim; d++) c *= (size_t)o[i].shape[d];
        values += c;
    }
    printf("%s: %d tensors, %zu values (%s%s) -> %s\n", in, n, values,
           cm ? "caffemodel" : "mapped with ", cm ? "" : map_path, outp);
done:
    for (int i = 0; o && i < n; i++) free(o[i].name);
    free(o);
    free(e);
    map_free(&m);
    cnn_weights_file_close(f);
    cnn_caffemodel_free(cm);
    return rc;
}
