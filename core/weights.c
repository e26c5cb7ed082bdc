/* weights.c — the .safetensors reader and writer (core/weights.h), and the
 * net's weights files on top of them: cnn_weights_save / cnn_weights_load.
 *
 * Tensors are keyed "<layer>.<index>"; a tensor shared by several layers is
 * stored once, under the first layer that has it. Byte order: the host must
 * be little-endian (float32 bytes are written and read as they lie in
 * memory); the build refuses big-endian targets below. */
#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cnn.h"
#include "gpu.h"
#include "weights.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "weights.c assumes a little-endian host"
#endif

/* safetensors' own limit on the JSON header. */
#define HEADER_CAP 100000000ull
/* Dimensions kept per tensor while parsing (more is a format error). */
#define ST_MAX_NDIM 32
/* Largest integer a JSON number (a double) holds exactly. */
#define JSON_INT_MAX 9007199254740992.0

typedef struct {
    const char *name;
    int size; /* bytes per element */
} st_dtype;

static const st_dtype dtypes[] = {
    {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"F64", 8}, {"I64", 8},  {"I32", 4},
    {"I16", 2}, {"I8", 1},  {"U64", 8},  {"U32", 4}, {"U16", 2},  {"U8", 1},
    {"BOOL", 1}, {"F8_E5M2", 1}, {"F8_E4M3", 1},
};
#define N_DTYPES ((int)(sizeof dtypes / sizeof dtypes[0]))

typedef struct {
    char *name;
    int dtype; /* index into dtypes */
    int ndim;
    uint64_t shape[ST_MAX_NDIM]; /* (ndim) */
    uint64_t begin, end;         /* byte offsets into the data area */
    float *aligned;              /* aligned copy of an F32 tensor, or NULL */
} st_tensor;

struct cnn_safetensors {
    char *source;
    unsigned char *buf; /* the whole file */
    size_t size;
    const unsigned char *data; /* the data area: buf + 8 + header length */
    size_t data_size;
    int n;
    st_tensor *t; /* (n) in file order */
    int n_meta;
    char **meta; /* (2 * n_meta) key, value pairs */
};

/* ---- reading ------------------------------------------------------------ */

/* A JSON number that is a non-negative integer a double holds exactly. */
static bool json_uint(const cJSON *j, uint64_t *out)
{
    if (!cJSON_IsNumber(j)) return false;
    double v = j->valuedouble;
    if (!(v >= 0 && v <= JSON_INT_MAX) || floor(v) != v) return false;
    *out = (uint64_t)v;
    return true;
}

static void shape_str_u64(const uint64_t *shape, int ndim, char *buf, size_t n)
{
    size_t at = 0;
    buf[0] = 0;
    if (ndim == 0) snprintf(buf, n, "scalar");
    for (int i = 0; i < ndim && at < n; i++)
        at += (size_t)snprintf(buf + at, n - at, i ? "x%llu" : "%llu",
                               (unsigned long long)shape[i]);
}

/* Fills t from one header entry (key `name`, value `j`). */
static cnn_status parse_entry(const char *src, const char *name, const cJSON *j,
                              st_tensor *t)
{
    if (!cJSON_IsObject(j))
        return CNN_ERROR(CNN_ERR_FORMAT, "%s: header entry '%s' is not an object", src, name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(j, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(j, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(j, "data_offsets");
    if (!cJSON_IsString(dt))
        return CNN_ERROR(CNN_ERR_FORMAT, "%s: tensor '%s' has no dtype string", src, name);
    t->dtype = -1;
    for (int i = 0; i < N_DTYPES; i++)
        if (!strcmp(dt->valuestring, dtypes[i].name)) t->dtype = i;
    if (t->dtype < 0)
        return CNN_ERROR(CNN_ERR_FORMAT, "%s: tensor '%s' has unknown dtype '%s'", src, name,
                         dt->valuestring);
    if (!cJSON_IsArray(sh))
        return CNN_ERROR(CNN_ERR_FORMAT, "%s: tensor '%s' has no shape array", src, name);
    int nd = cJSON_GetArraySize(sh);
    if (nd > ST_MAX_NDIM)
        return CNN_ERROR(CNN_ERR_FORMAT, "%s: tensor '%s' has %d dimensions (at most %d)", src,
                         name, nd, ST_MAX_NDIM);
    t->ndim = nd;
    /* Element count with overflow checks: the byte span bounds it anyway. */
    uint64_t count = 1;
    bool overflow = false;
    for (int i = 0; i < nd; i++) {
        if (!json_uint(cJSON_GetArrayItem(sh, i), &t->shape[i]))
            return CNN_ERROR(CNN_ERR_FORMAT,
                             "%s: tensor '%s': shape[%d] is not a non-negative integer", src,
                             name, i);
        if (t->shape[i] && count > UINT64_MAX / t->shape[i]) overflow = true;
        else count *= t->shape[i];
    }
    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2 ||
        !json_uint(cJSON_GetArrayItem(off, 0), &t->begin) ||
        !json_uint(cJSON_GetArrayItem(off, 1), &t->end))
        return CNN_ERROR(CNN_ERR_FORMAT,
                         "%s: tensor '%s': data_offsets is not a pair of non-negative integers",
                         src, name);
    if (t->begin > t->end)
        return CNN_ERROR(CNN_ERR_FORMAT, "%s: tensor '%s': data_offsets [%llu, %llu] run "
                         "backwards", src, name, (unsigned long long)t->begin,
                         (unsigned long long)t->end);
    uint64_t esize = (uint64_t)dtypes[t->dtype].size;
    char sbuf[256];
    shape_str_u64(t->shape, nd, sbuf, sizeof sbuf);
    if (overflow || count > UINT64_MAX / esize || count * esize != t->end - t->begin)
        return CNN_ERROR(CNN_ERR_FORMAT,
                         "%s: tensor '%s': shape %s of %s needs %s%llu bytes but data_offsets "
                         "span %llu", src, name, sbuf, dtypes[t->dtype].name,
                         overflow ? "over " : "",
                         overflow ? (unsigned long long)UINT64_MAX
                                  : (unsigned long long)(count * esize),
                         (unsigned long long)(t->end - t->begin));
    return CNN_OK;
}

static cnn_status parse_metadata(cnn_safetensors *st, const cJSON *j)
{
    if (!cJSON_IsObject(j))
        return CNN_ERROR(CNN_ERR_FORMAT, "%s: __metadata__ is not an object", st->source);
    int n = cJSON_GetArraySize(j);
    st->meta = calloc((size_t)(2 * n + 1), sizeof(char *));
    if (!st->meta) return CNN_ERROR(CNN_ERR_MEMORY, "%s: out of memory", st->source);
    const cJSON *it;
    cJSON_ArrayForEach(it, j)
    {
        if (!cJSON_IsString(it))
            return CNN_ERROR(CNN_ERR_FORMAT, "%s: __metadata__ value '%s' is not a string",
                             st->source, it->string);
        char *k = strdup(it->string), *v = strdup(it->valuestring);
        st->meta[2 * st->n_meta] = k;
        st->meta[2 * st->n_meta + 1] = v;
        st->n_meta++;
        if (!k || !v) return CNN_ERROR(CNN_ERR_MEMORY, "%s: out of memory", st->source);
    }
    return CNN_OK;
}

/* Parses and validates st->buf (st->size bytes). */
static cnn_status parse(cnn_safetensors *st)
{
    cnn_status st_ = CNN_OK;
    const char *src = st->source;
    cJSON *root = NULL;
    if (st->size < 8)
        return CNN_ERROR(CNN_ERR_FORMAT,
                         "%s: %zu bytes is too short for a safetensors file (truncated?)", src,
                         st->size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | st->buf[i];
    if (hlen > HEADER_CAP)
        return CNN_ERROR(CNN_ERR_FORMAT,
                         "%s: header length %llu is over the %llu-byte limit (not a "
                         "safetensors file?)", src, (unsigned long long)hlen, HEADER_CAP);
    if (hlen > st->size - 8)
        return CNN_ERROR(CNN_ERR_FORMAT,
                         "%s: header length %llu runs past the end of the %zu-byte file "
                         "(truncated?)", src, (unsigned long long)hlen, st->size);
    const char *hdr = (const char *)st->buf + 8, *end = NULL;
    st->data = st->buf + 8 + hlen;
    st->data_size = st->size - 8 - (size_t)hlen;
    root = cJSON_ParseWithLengthOpts(hdr, (size_t)hlen, &end, 0);
    if (!root) {
        size_t at = end && end >= hdr ? (size_t)(end - hdr) : 0;
        return CNN_ERROR(CNN_ERR_FORMAT, "%s: header is not valid JSON (at header byte %zu)",
                         src, at);
    }
    for (const char *p = end; p < hdr + hlen; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            st_ = CNN_ERROR(CNN_ERR_FORMAT, "%s: stray bytes after the JSON header (at header "
                            "byte %zu)", src, (size_t)(p - hdr));
            goto fail;
        }
    if (!cJSON_IsObject(root)) {
        st_ = CNN_ERROR(CNN_ERR_FORMAT, "%s: header is not a JSON object", src);
        goto fail;
    }
    int n = cJSON_GetArraySize(root);
    st->t = calloc((size_t)n + 1, sizeof *st->t);
    if (!st->t) {
        st_ = CNN_ERROR(CNN_ERR_MEMORY, "%s: out of memory", src);
        goto fail;
    }
    const cJSON *it;
    bool seen_meta = false;
    cJSON_ArrayForEach(it, root)
    {
        if (!strcmp(it->string, "__metadata__")) {
            if (seen_meta) {
                st_ = CNN_ERROR(CNN_ERR_FORMAT, "%s: __metadata__ appears twice", src);
                goto fail;
            }
            seen_meta = true;
            if ((st_ = parse_metadata(st, it))) goto fail;
            continue;
        }
        for (int i = 0; i < st->n; i++)
            if (!strcmp(st->t[i].name, it->string)) {
                st_ = CNN_ERROR(CNN_ERR_FORMAT, "%s: tensor '%s' appears twice", src,
                                it->string);
                goto fail;
            }
        st_tensor *t = &st->t[st->n];
        if (!(t->name = strdup(it->string))) {
            st_ = CNN_ERROR(CNN_ERR_MEMORY, "%s: out of memory", src);
            goto fail;
        }
        st->n++;
        if ((st_ = parse_entry(src, t->name, it, t))) goto fail;
        if (t->end > st->data_size) {
            st_ = CNN_ERROR(CNN_ERR_FORMAT,
                            "%s: tensor '%s': data_offsets [%llu, %llu] run past the %zu-byte "
                            "data area (truncated?)", src, t->name,
                            (unsigned long long)t->begin, (unsigned long long)t->end,
                            st->data_size);
            goto fail;
        }
        /* F32 data must be 4-byte aligned to be handed out as floats. */
        size_t nbytes = (size_t)(t->end - t->begin);
        if (t->dtype == 0 && nbytes && ((uintptr_t)(st->data + t->begin) & 3)) {
            if (!(t->aligned = malloc(nbytes))) {
                st_ = CNN_ERROR(CNN_ERR_MEMORY, "%s: out of memory", src);
                goto fail;
            }
            memcpy(t->aligned, st->data + t->begin, nbytes);
        }
    }
fail:
    cJSON_Delete(root);
    return st_;
}

static cnn_status st_new(const char *name, cnn_safetensors **out)
{
    cnn_safetensors *st = calloc(1, sizeof *st);
    if (!st || !(st->source = strdup(name ? name : "<buffer>"))) {
        free(st);
        return CNN_ERROR(CNN_ERR_MEMORY, "%s: out of memory", name ? name : "<buffer>");
    }
    *out = st;
    return CNN_OK;
}

cnn_status cnn_safetensors_open_buffer(const void *buf, size_t size, const char *name,
                                       cnn_safetensors **out)
{
    cnn_status st_ = CNN_OK;
    cnn_safetensors *st = NULL;
    *out = NULL;
    if ((st_ = st_new(name, &st))) return st_;
    if (!(st->buf = malloc(size ? size : 1))) {
        st_ = CNN_ERROR(CNN_ERR_MEMORY, "%s: cannot allocate %zu bytes", st->source, size);
        goto fail;
    }
    if (size) memcpy(st->buf, buf, size);
    st->size = size;
    if ((st_ = parse(st))) goto fail;
    *out = st;
    return CNN_OK;
fail:
    cnn_safetensors_close(st);
    return st_;
}

cnn_status cnn_safetensors_open(const char *path, cnn_safetensors **out)
{
    cnn_status st_ = CNN_OK;
    cnn_safetensors *st = NULL;
    FILE *f = NULL;
    *out = NULL;
    if ((st_ = st_new(path, &st))) return st_;
    struct stat sb;
    if (!(f = fopen(path, "rb")) || fstat(fileno(f), &sb)) {
        st_ = CNN_ERROR(CNN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(sb.st_mode)) {
        st_ = CNN_ERROR(CNN_ERR_IO, "%s: not a regular file", path);
        goto fail;
    }
    size_t size = (size_t)sb.st_size;
    if (!(st->buf = malloc(size ? size : 1))) {
        st_ = CNN_ERROR(CNN_ERR_MEMORY, "%s: cannot allocate %zu bytes", path, size);
        goto fail;
    }
    if (fread(st->buf, 1, size, f) != size || ferror(f)) {
        st_ = CNN_ERROR(CNN_ERR_IO, "%s: read failed: %s", path,
                        ferror(f) ? strerror(errno) : "file shrank while reading");
        goto fail;
    }
    st->size = size;
    fclose(f);
    f = NULL;
    if ((st_ = parse(st))) goto fail;
    *out = st;
    return CNN_OK;
fail:
    if (f) fclose(f);
    cnn_safetensors_close(st);
    return st_;
}

void cnn_safetensors_close(cnn_safetensors *st)
{
    if (!st) return;
    for (int i = 0; i < st->n; i++) {
        free(st->t[i].name);
        free(st->t[i].aligned);
    }
    for (int i = 0; i < 2 * st->n_meta; i++) free(st->meta[i]);
    free(st->meta);
    free(st->t);
    free(st->buf);
    free(st->source);
    free(st);
}

int cnn_safetensors_count(const cnn_safetensors *st) { return st->n; }

const char *cnn_safetensors_name(const cnn_safetensors *st, int i)
{
    return i >= 0 && i < st->n ? st->t[i].name : NULL;
}

const char *cnn_safetensors_dtype(const cnn_safetensors *st, int i)
{
    return i >= 0 && i < st->n ? dtypes[st->t[i].dtype].name : NULL;
}

const char *cnn_safetensors_source(const cnn_safetensors *st) { return st->source; }

int cnn_safetensors_find(const cnn_safetensors *st, const char *name)
{
    for (int i = 0; i < st->n; i++)
        if (!strcmp(st->t[i].name, name)) return i;
    return -1;
}

cnn_status cnn_safetensors_get(const cnn_safetensors *st, const char *name, int *ndim,
                               int *shape, const float **data)
{
    int i = cnn_safetensors_find(st, name);
    if (i < 0)
        return CNN_ERROR(CNN_ERR_ARG, "%s: no tensor '%s'", st->source, name);
    const st_tensor *t = &st->t[i];
    if (t->dtype != 0)
        return CNN_ERROR(CNN_ERR_UNSUPPORTED,
                         "%s: tensor '%s' has dtype %s; only F32 is supported for now",
                         st->source, name, dtypes[t->dtype].name);
    if (t->ndim > CNN_MAX_DIMS)
        return CNN_ERROR(CNN_ERR_UNSUPPORTED, "%s: tensor '%s' has %d dimensions (at most %d)",
                         st->source, name, t->ndim, CNN_MAX_DIMS);
    for (int d = 0; d < t->ndim; d++) {
        if (t->shape[d] > INT_MAX)
            return CNN_ERROR(CNN_ERR_UNSUPPORTED, "%s: tensor '%s': dimension %d is %llu, "
                             "too large", st->source, name, d,
                             (unsigned long long)t->shape[d]);
        shape[d] = (int)t->shape[d];
    }
    *ndim = t->ndim;
    *data = t->aligned ? t->aligned : (const float *)(const void *)(st->data + t->begin);
    return CNN_OK;
}

const char *cnn_safetensors_meta(const cnn_safetensors *st, const char *key)
{
    for (int i = 0; i < st->n_meta; i++)
        if (!strcmp(st->meta[2 * i], key)) return st->meta[2 * i + 1];
    return NULL;
}

/* ---- writing ------------------------------------------------------------ */

static size_t entry_bytes(const cnn_safetensors_entry *e)
{
    size_t c = 1;
    for (int d = 0; d < e->ndim; d++) c *= (size_t)e->shape[d];
    return c * sizeof(float);
}

/* The JSON header (unpadded), or NULL with the error set. */
static char *build_header(const char *path, const cnn_safetensors_entry *e, int n,
                          const char *const *meta)
{
    char *json = NULL;
    cJSON *root = cJSON_CreateObject(), *md = cJSON_CreateObject();
    if (!root || !md) goto oom;
    cJSON_AddItemToObject(root, "__metadata__", md);
    if (!cJSON_AddStringToObject(md, "format", "cnn")) goto oom;
    for (int i = 0; meta && meta[i] && meta[i + 1]; i += 2)
        if (strcmp(meta[i], "format") && !cJSON_AddStringToObject(md, meta[i], meta[i + 1]))
            goto oom;
    uint64_t at = 0;
    for (int i = 0; i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON *shape = e[i].ndim ? cJSON_CreateIntArray(e[i].shape, e[i].ndim)
                                 : cJSON_CreateArray();
        if (!o || !shape) {
            cJSON_Delete(o);
            cJSON_Delete(shape);
            goto oom;
        }
        cJSON_AddItemToObject(root, e[i].name, o);
        uint64_t nb = entry_bytes(&e[i]);
        char offs[64];
        snprintf(offs, sizeof offs, "[%llu,%llu]", (unsigned long long)at,
                 (unsigned long long)(at + nb));
        at += nb;
        if (!cJSON_AddStringToObject(o, "dtype", "F32")) {
            cJSON_Delete(shape);
            goto oom;
        }
        cJSON_AddItemToObject(o, "shape", shape);
        if (!cJSON_AddRawToObject(o, "data_offsets", offs)) goto oom;
    }
    if (!(json = cJSON_PrintUnformatted(root))) goto oom;
    cJSON_Delete(root);
    return json;
oom:
    cJSON_Delete(root);
    CNN_ERROR(CNN_ERR_MEMORY, "%s: out of memory building the header", path);
    return NULL;
}

static cnn_status check_entries(const char *path, const cnn_safetensors_entry *e, int n)
{
    for (int i = 0; i < n; i++) {
        if (!e[i].name || !strcmp(e[i].name, "__metadata__"))
            return CNN_ERROR(CNN_ERR_ARG, "%s: tensor %d has no usable name", path, i);
        if (e[i].ndim < 0 || e[i].ndim > CNN_MAX_DIMS || (e[i].ndim && !e[i].shape))
            return CNN_ERROR(CNN_ERR_ARG, "%s: tensor '%s' has a bad shape", path, e[i].name);
        for (int d = 0; d < e[i].ndim; d++)
            if (e[i].shape[d] < 0)
                return CNN_ERROR(CNN_ERR_ARG, "%s: tensor '%s' has a negative dimension",
                                 path, e[i].name);
        if (entry_bytes(&e[i]) && !e[i].data)
            return CNN_ERROR(CNN_ERR_ARG, "%s: tensor '%s' has no data", path, e[i].name);
        for (int j = 0; j < i; j++)
            if (!strcmp(e[i].name, e[j].name))
                return CNN_ERROR(CNN_ERR_ARG, "%s: tensor name '%s' used twice", path,
                                 e[i].name);
    }
    return CNN_OK;
}

/* Flushes the directory holding `path` so a rename survives a crash. */
static void sync_parent_dir(const char *path)
{
    char *dir = strdup(path);
    if (!dir) return;
    char *slash = strrchr(dir, '/');
    const char *d = slash ? (slash == dir ? "/" : (*slash = 0, dir)) : ".";
    int fd = open(d, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync(fd); /* best effort: some file systems refuse directory fsync */
        close(fd);
    }
    free(dir);
}

cnn_status cnn_safetensors_write(const char *path, const cnn_safetensors_entry *e, int n,
                                 const char *const *meta)
{
    cnn_status st = CNN_OK;
    char *json = NULL, *tmp = NULL;
    FILE *f = NULL;
    if (n < 0 || (n && !e)) return CNN_ERROR(CNN_ERR_ARG, "%s: no tensors given", path);
    CNN_TRY(check_entries(path, e, n));
    if (!(json = build_header(path, e, n, meta))) {
        st = CNN_ERR_MEMORY;
        goto fail;
    }
    size_t len = strlen(json), padded = (len + 7) & ~(size_t)7;
    unsigned char lenbytes[8];
    for (int i = 0; i < 8; i++) lenbytes[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    size_t tlen = strlen(path) + 32;
    if (!(tmp = malloc(tlen))) {
        st = CNN_ERROR(CNN_ERR_MEMORY, "%s: out of memory", path);
        goto fail;
    }
    snprintf(tmp, tlen, "%s.tmp.%ld", path, (long)getpid());
    if (!(f = fopen(tmp, "wb"))) {
        st = CNN_ERROR(CNN_ERR_IO, "%s: cannot create %s: %s", path, tmp, strerror(errno));
        goto fail;
    }
    bool ok = fwrite(lenbytes, 1, 8, f) == 8 && fwrite(json, 1, len, f) == len;
    for (size_t i = len; ok && i < padded; i++) ok = fputc(' ', f) != EOF;
    for (int i = 0; ok && i < n; i++) {
        size_t nb = entry_bytes(&e[i]);
        ok = !nb || fwrite(e[i].data, 1, nb, f) == nb;
    }
    if (!ok || fflush(f) || fsync(fileno(f))) {
        st = CNN_ERROR(CNN_ERR_IO, "%s: write failed: %s", path, strerror(errno));
        goto fail;
    }
    int rc = fclose(f);
    f = NULL;
    if (rc) {
        st = CNN_ERROR(CNN_ERR_IO, "%s: write failed: %s", path, strerror(errno));
        goto fail;
    }
    if (rename(tmp, path)) {
        st = CNN_ERROR(CNN_ERR_IO, "%s: cannot rename %s into place: %s", path, tmp,
                       strerror(errno));
        goto fail;
    }
    sync_parent_dir(path);
    free(tmp);
    cJSON_free(json);
    return CNN_OK;
fail:
    if (f) fclose(f);
    if (tmp) unlink(tmp);
    free(tmp);
    cJSON_free(json);
    return st;
}

/* ---- net weights -------------------------------------------------------- */

/* One unique parameter tensor of a net and its key. */
typedef struct {
    cnn_tensor *t;
    char *key;
    const char *layer;
} net_param;

static void free_params(net_param *p, int n)
{
    for (int i = 0; i < n && p; i++) free(p[i].key);
    free(p);
}

/* Every parameter tensor of n once, keyed by its first owner "<layer>.<idx>". */
static cnn_status collect_params(const cnn_net *n, const char *path, net_param **out,
                                 int *count)
{
    int cap = 0, np = 0;
    net_param *p = NULL;
    for (int i = 0; i < cnn_net_num_layers(n); i++) cap += cnn_net_layer_num_params(n, i);
    if (!(p = calloc((size_t)cap + 1, sizeof *p)))
        return CNN_ERROR(CNN_ERR_MEMORY, "%s: out of memory", path);
    for (int i = 0; i < cnn_net_num_layers(n); i++) {
        const char *lname = cnn_net_layer_name(n, i);
        for (int k = 0; k < cnn_net_layer_num_params(n, i); k++) {
            cnn_tensor *t = cnn_net_layer_param(n, i, k);
            bool seen = false;
            for (int j = 0; j < np && !seen; j++) seen = p[j].t == t;
            if (!t || seen) continue;
            size_t len = strlen(lname) + 16;
            if (!(p[np].key = malloc(len))) {
                free_params(p, np);
                return CNN_ERROR(CNN_ERR_MEMORY, "%s: out of memory", path);
            }
            snprintf(p[np].key, len, "%s.%d", lname, k);
            p[np].t = t;
            p[np].layer = lname;
            np++;
        }
    }
    *out = p;
    *count = np;
    return CNN_OK;
}

cnn_status cnn_weights_save(const cnn_net *n, const char *path)
{
    cnn_status st = CNN_OK;
    net_param *p = NULL;
    cnn_safetensors_entry *e = NULL;
    int np = 0;
    CNN_TRY(collect_params(n, path, &p, &np));
    if (!(e = calloc((size_t)np + 1, sizeof *e))) {
        st = CNN_ERROR(CNN_ERR_MEMORY, "%s: out of memory", path);
        goto fail;
    }
    for (int i = 0; i < np; i++) {
        CNN_TRY(cnn_host_data(p[i].t)); /* a GPU net's newest values */
        e[i] = (cnn_safetensors_entry){p[i].key, p[i].t->ndim, p[i].t->shape, p[i].t->data};
    }
    const char *name = cnn_net_name(n);
    const char *meta[] = {"net", name, NULL};
    if (!name || !*name) meta[0] = NULL;
    CNN_TRY(cnn_safetensors_write(path, e, np, meta));
fail:
    free(e);
    free_params(p, np);
    return st;
}

cnn_status cnn_weights_load(cnn_net *n, const char *path, bool partial)
{
    cnn_status st = CNN_OK;
    cnn_safetensors *sf = NULL;
    net_param *p = NULL;
    const float **src = NULL;
    int np = 0;
    CNN_TRY(cnn_safetensors_open(path, &sf));
    for (int i = 0; i < cnn_safetensors_count(sf); i++)
        if (strcmp(cnn_safetensors_dtype(sf, i), "F32")) {
            st = CNN_ERROR(CNN_ERR_UNSUPPORTED,
                           "%s: tensor '%s' has dtype %s; only F32 is supported for now",
                           path, cnn_safetensors_name(sf, i), cnn_safetensors_dtype(sf, i));
            goto fail;
        }
    CNN_TRY(collect_params(n, path, &p, &np));
    if (!(src = calloc((size_t)np + 1, sizeof *src))) {
        st = CNN_ERROR(CNN_ERR_MEMORY, "%s: out of memory", path);
        goto fail;
    }
    /* Check everything before touching the net, so a failed load changes nothing. */
    for (int i = 0; i < np; i++) {
        if (cnn_safetensors_find(sf, p[i].key) < 0) {
            if (partial) continue;
            st = CNN_ERROR(CNN_ERR_FORMAT, "%s: no tensor '%s' for layer '%s' (load with "
                           "partial to keep its current values)", path, p[i].key, p[i].layer);
            goto fail;
        }
        int ndim, shape[CNN_MAX_DIMS];
        CNN_TRY(cnn_safetensors_get(sf, p[i].key, &ndim, shape, &src[i]));
        cnn_tensor *t = p[i].t;
        bool same = ndim == t->ndim;
        for (int d = 0; same && d < ndim; d++) same = shape[d] == t->shape[d];
        if (!same) {
            char fs[128], ns[128];
            uint64_t s64[CNN_MAX_DIMS];
            for (int d = 0; d < ndim; d++) s64[d] = (uint64_t)shape[d];
            shape_str_u64(s64, ndim, fs, sizeof fs);
            if (t->ndim) cnn_tensor_shape_str(t, ns, sizeof ns);
            else snprintf(ns, sizeof ns, "scalar");
            st = CNN_ERROR(CNN_ERR_SHAPE, "%s: %s: file has %s, net has %s", path, p[i].key,
                           fs, ns);
            goto fail;
        }
    }
    for (int i = 0; i < np; i++)
        if (src[i] && p[i].t->count) {
            memcpy(p[i].t->data, src[i], p[i].t->count * sizeof(float));
            cnn_host_wrote_data(p[i].t);
        }
fail:
    free(src);
    free_params(p, np);
    cnn_safetensors_close(sf);
    return st;
}
