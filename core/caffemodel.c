/* caffemodel.c — a bounds-checked protobuf wire-format reader for Caffe's
 * .caffemodel files (NetParameter with V2 `layer`, V1 `layers` and V0
 * layers inside V1 ones), the weights-file interface over .safetensors and
 * .caffemodel, and cnn_weights_load_any. See caffemodel.h for the fields.
 *
 * Every message is read in two passes over its byte range: the first counts
 * and validates, the second copies. A count only ever comes from bytes that
 * are present (a packed float array of L bytes holds L / 4 values), so an
 * allocation is never larger than the input. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "caffemodel.h"
#include "gpu.h"
#include "net_internal.h"
#include "weights.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "caffemodel.c assumes a little-endian host"
#endif

enum { WIRE_VARINT = 0, WIRE_I64 = 1, WIRE_LEN = 2, WIRE_I32 = 5 };

/* A byte range of the input being read; positions are absolute offsets. */
typedef struct {
    const unsigned char *buf;
    size_t pos, end;
    const char *src;
    const char *kind; /* what the file should be, for messages: ".caffemodel" */
} pb_reader;

static cnn_status pb_fail(const pb_reader *r, size_t at, const char *what)
{
    return CNN_ERROR(CNN_ERR_FORMAT, "%s: byte %zu: %s (truncated or not a %s?)", r->src, at,
                     what, r->kind);
}

static cnn_status pb_varint(pb_reader *r, uint64_t *out)
{
    uint64_t v = 0;
    size_t start = r->pos;
    for (int shift = 0; shift < 70; shift += 7) {
        if (r->pos >= r->end) return pb_fail(r, start, "varint runs past the end");
        unsigned char b = r->buf[r->pos++];
        if (shift == 63 && (b & 0x7e)) return pb_fail(r, start, "varint overflows 64 bits");
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = v;
            return CNN_OK;
        }
    }
    return pb_fail(r, start, "varint longer than 10 bytes");
}

/* Reads a field key; wire types 3 and 4 (groups) are refused. */
static cnn_status pb_key(pb_reader *r, uint32_t *field, int *wire)
{
    cnn_status st = CNN_OK;
    size_t at = r->pos;
    uint64_t k = 0;
    CNN_TRY(pb_varint(r, &k));
    *field = (uint32_t)(k >> 3);
    *wire = (int)(k & 7);
    if (k >> 3 == 0 || k >> 3 > 0x1fffffff) return pb_fail(r, at, "invalid field number");
    if (*wire != WIRE_VARINT && *wire != WIRE_I64 && *wire != WIRE_LEN && *wire != WIRE_I32)
        return pb_fail(r, at, "unsupported wire type (groups or garbage)");
fail:
    return st;
}

/* A length-delimited field's range [*b, *e). */
static cnn_status pb_len(pb_reader *r, size_t *b, size_t *e)
{
    cnn_status st = CNN_OK;
    size_t at = r->pos;
    uint64_t n = 0;
    CNN_TRY(pb_varint(r, &n));
    if (n > r->end - r->pos) return pb_fail(r, at, "length runs past the end of its message");
    *b = r->pos;
    *e = r->pos + (size_t)n;
    r->pos = *e;
fail:
    return st;
}

static cnn_status pb_skip(pb_reader *r, int wire)
{
    cnn_status st = CNN_OK;
    size_t b = 0, e = 0, at = r->pos;
    uint64_t v;
    switch (wire) {
    case WIRE_VARINT: CNN_TRY(pb_varint(r, &v)); break;
    case WIRE_LEN: CNN_TRY(pb_len(r, &b, &e)); break;
    case WIRE_I64:
    case WIRE_I32: {
        size_t n = wire == WIRE_I64 ? 8 : 4;
        if (r->end - r->pos < n) return pb_fail(r, at, "fixed-size value runs past the end");
        r->pos += n;
        break;
    }
    }
fail:
    return st;
}

static pb_reader pb_sub(const pb_reader *r, size_t b, size_t e)
{
    return (pb_reader){r->buf, b, e, r->src, r->kind};
}

static cnn_status pb_wire(const pb_reader *r, size_t at, int wire, int want, const char *field)
{
    char msg[128];
    if (wire == want) return CNN_OK;
    snprintf(msg, sizeof msg, "field %s has wire type %d, expected %d", field, wire, want);
    return pb_fail(r, at, msg);
}

/* ---- BlobProto ------------------------------------------------------------ */

/* Counts the dims of a BlobShape (and, when dims != NULL, stores them). */
static cnn_status read_shape(pb_reader r, int64_t *dims, int *n)
{
    cnn_status st = CNN_OK;
    while (r.pos < r.end) {
        uint32_t f;
        int wire;
        size_t at = r.pos;
        CNN_TRY(pb_key(&r, &f, &wire));
        if (f != 1) {
            CNN_TRY(pb_skip(&r, wire));
            continue;
        }
        uint64_t v;
        if (wire == WIRE_VARINT) {
            CNN_TRY(pb_varint(&r, &v));
            if (dims && *n < CNN_MAX_DIMS) dims[*n] = (int64_t)v;
            (*n)++;
        } else if (wire == WIRE_LEN) {
            size_t b, e;
            CNN_TRY(pb_len(&r, &b, &e));
            pb_reader p = pb_sub(&r, b, e);
            while (p.pos < p.end) {
                CNN_TRY(pb_varint(&p, &v));
                if (dims && *n < CNN_MAX_DIMS) dims[*n] = (int64_t)v;
                (*n)++;
            }
        } else {
            return pb_wire(&r, at, wire, WIRE_LEN, "BlobShape.dim");
        }
    }
fail:
    return st;
}

typedef struct {
    bool legacy;
    int64_t legacy_dim[4];
    int n_dims;
    int64_t dims[CNN_MAX_DIMS];
    size_t n_float, n_double;
} blob_info;

static size_t load_le(const unsigned char *p, int n)
{
    size_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* Pass 1 (out == NULL): counts and checks. Pass 2: copies values into out. */
static cnn_status blob_pass(pb_reader r, blob_info *bi, float *out)
{
    cnn_status st = CNN_OK;
    size_t nf = 0, nd = 0;
    bool use_double = out && bi->n_double > 0;
    while (r.pos < r.end) {
        uint32_t f;
        int wire;
        size_t at = r.pos, b = 0, e = 0;
        uint64_t v;
        CNN_TRY(pb_key(&r, &f, &wire));
        if (f >= 1 && f <= 4) { /* num, channels, height, width */
            CNN_TRY(pb_wire(&r, at, wire, WIRE_VARINT, "BlobProto.num/channels/height/width"));
            CNN_TRY(pb_varint(&r, &v));
            if (!out) {
                bi->legacy = true;
                bi->legacy_dim[f - 1] = (int64_t)(int32_t)(uint32_t)v;
            }
        } else if (f == 5 || f == 8) { /* data (float), double_data */
            int size = f == 5 ? 4 : 8;
            size_t *cnt = f == 5 ? &nf : &nd;
            bool take = out && (f == 8) == use_double;
            if (wire == WIRE_LEN) {
                CNN_TRY(pb_len(&r, &b, &e));
                if ((e - b) % (size_t)size)
                    return pb_fail(&r, at, "packed array length is not a multiple of the "
                                           "value size");
            } else {
                CNN_TRY(pb_wire(&r, at, wire, f == 5 ? WIRE_I32 : WIRE_I64,
                                f == 5 ? "BlobProto.data" : "BlobProto.double_data"));
                b = r.pos;
                CNN_TRY(pb_skip(&r, wire));
                e = r.pos;
            }
            for (size_t p = b; take && p < e; p += (size_t)size) {
                if (size == 4) {
                    uint32_t u = (uint32_t)load_le(r.buf + p, 4);
                    memcpy(&out[*cnt + (p - b) / 4], &u, 4);
                } else {
                    uint64_t u = (uint64_t)load_le(r.buf + p, 8);
                    double d;
                    memcpy(&d, &u, 8);
                    out[*cnt + (p - b) / 8] = (float)d;
                }
            }
            *cnt += (e - b) / (size_t)size;
        } else if (f == 7) { /* shape */
            CNN_TRY(pb_wire(&r, at, wire, WIRE_LEN, "BlobProto.shape"));
            CNN_TRY(pb_len(&r, &b, &e));
            if (!out) CNN_TRY(read_shape(pb_sub(&r, b, e), bi->dims, &bi->n_dims));
        } else {
            CNN_TRY(pb_skip(&r, wire));
        }
    }
    if (!out) {
        bi->n_float = nf;
        bi->n_double = nd;
    }
fail:
    return st;
}

/* Parses one BlobProto in [b, e) into blob (name and layer already set). */
static cnn_status read_blob(const pb_reader *parent, size_t b, size_t e, cnn_caffemodel_blob *bl)
{
    cnn_status st = CNN_OK;
    blob_info bi;
    memset(&bi, 0, sizeof bi);
    pb_reader r = pb_sub(parent, b, e);
    CNN_TRY(blob_pass(r, &bi, NULL));
    const int64_t *dims = bi.legacy ? bi.legacy_dim : bi.dims;
    int nd = bi.legacy ? 4 : bi.n_dims;
    if (nd > CNN_MAX_DIMS)
        return CNN_ERROR(CNN_ERR_UNSUPPORTED, "%s: blob '%s' (byte %zu) has %d dimensions; at "
                         "most %d are supported", parent->src, bl->name, b, nd, CNN_MAX_DIMS);
    size_t count = 1;
    for (int i = 0; i < nd; i++) {
        if (dims[i] < 0 || dims[i] > INT_MAX)
            return CNN_ERROR(CNN_ERR_FORMAT, "%s: blob '%s' (byte %zu): dimension %d is %lld",
                             parent->src, bl->name, b, i, (long long)dims[i]);
        bl->shape[i] = (int)dims[i];
        if (dims[i] && count > SIZE_MAX / (size_t)dims[i]) count = SIZE_MAX;
        else count *= (size_t)dims[i];
    }
    bl->ndim = nd;
    bl->legacy = bi.legacy;
    size_t have = bi.n_double ? bi.n_double : bi.n_float;
    if (count != have)
        return CNN_ERROR(CNN_ERR_FORMAT, "%s: blob '%s' (byte %zu): its shape holds %zu values "
                         "but it has %zu%s", parent->src, bl->name, b, count, have,
                         bi.n_double ? " double_data values" : " data values");
    bl->count = count;
    if (!(bl->data = malloc((count ? count : 1) * sizeof(float))))
        return CNN_ERROR(CNN_ERR_MEMORY, "%s: out of memory for blob '%s'", parent->src,
                         bl->name);
    CNN_TRY(blob_pass(r, &bi, bl->data));
fail:
    return st;
}

/* ---- layers ---------------------------------------------------------------- */

/* Field numbers of one layer message version. */
typedef struct {
    uint32_t name, type, blobs, v0; /* v0: nested V0 layer (V1 only), else 0 */
    bool type_enum;
} layer_fields;

static const layer_fields V2_FIELDS = {1, 2, 7, 0, false};
static const layer_fields V1_FIELDS = {4, 5, 6, 1, true};
static const layer_fields V0_FIELDS = {1, 2, 50, 0, false};

static const char *const v1_types[] = {
    "", "Accuracy", "BNLL", "Concat", "Convolution", "Data", "Dropout", "EuclideanLoss",
    "Flatten", "HDF5Data", "HDF5Output", "Im2col", "ImageData", "InfogainLoss",
    "InnerProduct", "LRN", "MultinomialLogisticLoss", "Pooling", "ReLU", "Sigmoid", "Softmax",
    "SoftmaxWithLoss", "Split", "TanH", "WindowData", "Eltwise", "Power",
    "SigmoidCrossEntropyLoss", "HingeLoss", "MemoryData", "ArgMax", "Threshold", "DummyData",
    "Slice", "MVN", "AbsVal", "Silence", "ContrastiveLoss", "Exp", "Deconvolution",
};
#define N_V1_TYPES ((int)(sizeof v1_types / sizeof v1_types[0]))

static cnn_status copy_string(const pb_reader *r, size_t b, size_t e, const char *what,
                              char **out)
{
    if (memchr(r->buf + b, 0, e - b)) {
        char msg[96];
        snprintf(msg, sizeof msg, "%s contains a NUL byte", what);
        return pb_fail(r, b, msg);
    }
    char *s = malloc(e - b + 1);
    if (!s) return CNN_ERROR(CNN_ERR_MEMORY, "%s: out of memory", r->src);
    memcpy(s, r->buf + b, e - b);
    s[e - b] = 0;
    free(*out);
    *out = s;
    return CNN_OK;
}

typedef struct {
    cnn_caffemodel *m;
    int cap;
} model_builder;

static cnn_status add_blob(model_builder *mb, const pb_reader *r, cnn_caffemodel_blob **out)
{
    cnn_caffemodel *m = mb->m;
    if (m->n == mb->cap) {
        int cap = mb->cap ? 2 * mb->cap : 64;
        cnn_caffemodel_blob *nb = realloc(m->blob, (size_t)cap * sizeof *nb);
        if (!nb) return CNN_ERROR(CNN_ERR_MEMORY, "%s: out of memory", r->src);
        m->blob = nb;
        mb->cap = cap;
    }
    *out = &m->blob[m->n++];
    memset(*out, 0, sizeof **out);
    return CNN_OK;
}

/* Reads one layer message of version `lf` in [b, e). */
static cnn_status read_layer(model_builder *mb, const pb_reader *parent, size_t b, size_t e,
                             const layer_fields *lf)
{
    cnn_status st = CNN_OK;
    char *name = NULL, *type = NULL;
    int n_blobs = 0;
    size_t v0_b = 0, v0_e = 0;
    bool has_v0 = false;
    pb_reader r = pb_sub(parent, b, e);
    while (r.pos < r.end) { /* pass 1: name, type, blob count */
        uint32_t f;
        int wire;
        size_t at = r.pos, fb = 0, fe = 0;
        CNN_TRY(pb_key(&r, &f, &wire));
        if (f == lf->name) {
            CNN_TRY(pb_wire(&r, at, wire, WIRE_LEN, "layer name"));
            CNN_TRY(pb_len(&r, &fb, &fe));
            CNN_TRY(copy_string(&r, fb, fe, "a layer name", &name));
        } else if (f == lf->type && lf->type_enum) {
            uint64_t v;
            CNN_TRY(pb_wire(&r, at, wire, WIRE_VARINT, "V1 layer type"));
            CNN_TRY(pb_varint(&r, &v));
            char buf[32];
            snprintf(buf, sizeof buf, "V1 type %llu", (unsigned long long)v);
            const char *t = v < (uint64_t)N_V1_TYPES ? v1_types[v] : buf;
            free(type);
            if (!(type = strdup(t))) {
                st = CNN_ERROR(CNN_ERR_MEMORY, "%s: out of memory", r.src);
                goto fail;
            }
        } else if (f == lf->type) {
            CNN_TRY(pb_wire(&r, at, wire, WIRE_LEN, "layer type"));
            CNN_TRY(pb_len(&r, &fb, &fe));
            CNN_TRY(copy_string(&r, fb, fe, "a layer type", &type));
        } else if (f == lf->blobs) {
            CNN_TRY(pb_wire(&r, at, wire, WIRE_LEN, "layer blobs"));
            CNN_TRY(pb_len(&r, &fb, &fe));
            n_blobs++;
        } else if (lf->v0 && f == lf->v0) {
            CNN_TRY(pb_wire(&r, at, wire, WIRE_LEN, "V1 layer's V0 layer"));
            CNN_TRY(pb_len(&r, &v0_b, &v0_e));
            has_v0 = true;
        } else {
            CNN_TRY(pb_skip(&r, wire));
        }
    }
    /* A V1 layer that only wraps a V0 one (the oldest files): read that. */
    if (has_v0 && !name && n_blobs == 0) {
        st = read_layer(mb, &r, v0_b, v0_e, &V0_FIELDS);
        goto fail;
    }
    if (n_blobs == 0) goto fail;
    if (!name || !*name) {
        st = pb_fail(&r, b, "a layer with blobs has no name");
        goto fail;
    }
    for (int i = 0; i < mb->m->n; i++)
        if (!strcmp(mb->m->blob[i].layer, name)) {
            st = CNN_ERROR(CNN_ERR_FORMAT, "%s: byte %zu: layer '%s' appears twice with blobs",
                           r.src, b, name);
            goto fail;
        }
    mb->m->n_layers++;
    int k = 0;
    r.pos = b;
    while (r.pos < r.end) { /* pass 2: the blobs */
        uint32_t f;
        int wire;
        size_t fb = 0, fe = 0;
        CNN_TRY(pb_key(&r, &f, &wire));
        if (f != lf->blobs) {
            CNN_TRY(pb_skip(&r, wire));
            continue;
        }
        CNN_TRY(pb_len(&r, &fb, &fe));
        cnn_caffemodel_blob *bl = NULL;
        CNN_TRY(add_blob(mb, &r, &bl));
        size_t len = strlen(name) + 16;
        bl->layer = strdup(name);
        bl->type = strdup(type ? type : "");
        bl->name = malloc(len);
        if (!bl->layer || !bl->type || !bl->name) {
            st = CNN_ERROR(CNN_ERR_MEMORY, "%s: out of memory", r.src);
            goto fail;
        }
        snprintf(bl->name, len, "%s.%d", name, k);
        bl->index = k++;
        CNN_TRY(read_blob(&r, fb, fe, bl));
    }
fail:
    free(name);
    free(type);
    return st;
}

void cnn_caffemodel_free(cnn_caffemodel *m)
{
    if (!m) return;
    for (int i = 0; i < m->n; i++) cnn_caffemodel_blob_clear(&m->blob[i]);
    free(m->blob);
    free(m->source);
    free(m->net_name);
    free(m);
}

cnn_status cnn_caffemodel_parse(const void *buf, size_t size, const char *name,
                                cnn_caffemodel **out)
{
    cnn_status st = CNN_OK;
    *out = NULL;
    cnn_caffemodel *m = calloc(1, sizeof *m);
    model_builder mb = {m, 0};
    if (!m || !(m->source = strdup(name ? name : "<buffer>")) || !(m->net_name = strdup(""))) {
        cnn_caffemodel_free(m);
        return CNN_ERROR(CNN_ERR_MEMORY, "%s: out of memory", name ? name : "<buffer>");
    }
    pb_reader r = {buf, 0, size, m->source, ".caffemodel"};
    bool any_layer = false;
    while (r.pos < r.end) {
        uint32_t f;
        int wire;
        size_t at = r.pos, b = 0, e = 0;
        CNN_TRY(pb_key(&r, &f, &wire));
        if (f == 1) {
            CNN_TRY(pb_wire(&r, at, wire, WIRE_LEN, "NetParameter.name"));
            CNN_TRY(pb_len(&r, &b, &e));
            CNN_TRY(copy_string(&r, b, e, "the net name", &m->net_name));
        } else if (f == 2 || f == 100) {
            CNN_TRY(pb_wire(&r, at, wire, WIRE_LEN, f == 2 ? "NetParameter.layers"
                                                           : "NetParameter.layer"));
            CNN_TRY(pb_len(&r, &b, &e));
            CNN_TRY(read_layer(&mb, &r, b, e, f == 2 ? &V1_FIELDS : &V2_FIELDS));
            any_layer = true;
        } else {
            CNN_TRY(pb_skip(&r, wire));
        }
    }
    if (!any_layer) {
        st = CNN_ERROR(CNN_ERR_FORMAT, "%s: no layers (not a .caffemodel: a NetParameter "
                       "with layer or layers fields was expected)", m->source);
        goto fail;
    }
    *out = m;
    return CNN_OK;
fail:
    cnn_caffemodel_free(m);
    return st;
}

/* Reads a whole file into memory. */
static cnn_status read_file(const char *path, unsigned char **buf, size_t *size)
{
    FILE *f = fopen(path, "rb");
    struct stat sb;
    *buf = NULL;
    if (!f || fstat(fileno(f), &sb)) {
        cnn_status st = CNN_ERROR(CNN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        if (f) fclose(f);
        return st;
    }
    if (!S_ISREG(sb.st_mode)) {
        fclose(f);
        return CNN_ERROR(CNN_ERR_IO, "%s: not a regular file", path);
    }
    size_t n = (size_t)sb.st_size;
    unsigned char *b = malloc(n ? n : 1);
    if (!b) {
        fclose(f);
        return CNN_ERROR(CNN_ERR_MEMORY, "%s: cannot allocate %zu bytes", path, n);
    }
    if (n && fread(b, 1, n, f) != n) {
        cnn_status st = CNN_ERROR(CNN_ERR_IO, "%s: read failed: %s", path,
                                  ferror(f) ? strerror(errno) : "file shrank");
        free(b);
        fclose(f);
        return st;
    }
    fclose(f);
    *buf = b;
    *size = n;
    return CNN_OK;
}

cnn_status cnn_caffemodel_read(const char *path, cnn_caffemodel **out)
{
    unsigned char *buf = NULL;
    size_t size = 0;
    *out = NULL;
    cnn_status st = read_file(path, &buf, &size);
    if (st == CNN_OK) st = cnn_caffemodel_parse(buf, size, path, out);
    free(buf);
    return st;
}

cnn_status cnn_blobproto_read(const char *path, cnn_caffemodel_blob *out)
{
    unsigned char *buf = NULL;
    size_t size = 0;
    memset(out, 0, sizeof *out);
    cnn_status st = read_file(path, &buf, &size);
    if (st) return st;
    if (!(out->name = strdup("BlobProto"))) {
        free(buf);
        return CNN_ERROR(CNN_ERR_MEMORY, "%s: out of memory", path);
    }
    pb_reader r = {buf, 0, size, path, ".binaryproto"};
    st = size ? read_blob(&r, 0, size, out)
              : CNN_ERROR(CNN_ERR_FORMAT, "%s: empty file (not a .binaryproto?)", path);
    free(buf);
    if (st) cnn_caffemodel_blob_clear(out);
    return st;
}

void cnn_caffemodel_blob_clear(cnn_caffemodel_blob *b)
{
    free(b->name);
    free(b->layer);
    free(b->type);
    free(b->data);
    memset(b, 0, sizeof *b);
}

int cnn_caffemodel_squeeze(const int *shape, int ndim, int *out)
{
    int k = 0;
    while (k < ndim && shape[k] == 1) k++;
    for (int i = k; i < ndim; i++) out[i - k] = shape[i];
    return ndim - k;
}

bool cnn_shape_compatible(const int *a, int na, const int *b, int nb)
{
    int sa[CNN_MAX_DIMS], sb[CNN_MAX_DIMS];
    na = cnn_caffemodel_squeeze(a, na, sa);
    nb = cnn_caffemodel_squeeze(b, nb, sb);
    if (na != nb) return false;
    for (int i = 0; i < na; i++)
        if (sa[i] != sb[i]) return false;
    return true;
}

/* ---- weights files of either kind ---------------------------------------- */

struct cnn_weights_file {
    char *path;
    cnn_safetensors *st;  /* one of these two */
    cnn_caffemodel *cm;
};

bool cnn_weights_is_safetensors(const char *path)
{
    unsigned char h[9];
    struct stat sb;
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    bool ok = !fstat(fileno(f), &sb) && fread(h, 1, 9, f) == 9;
    fclose(f);
    if (!ok || sb.st_size < 9) return false;
    uint64_t n = (uint64_t)load_le(h, 8);
    return n >= 2 && n <= (uint64_t)sb.st_size - 8 && h[8] == '{';
}

void cnn_weights_file_close(cnn_weights_file *f)
{
    if (!f) return;
    cnn_safetensors_close(f->st);
    cnn_caffemodel_free(f->cm);
    free(f->path);
    free(f);
}

cnn_status cnn_weights_file_open(const char *path, cnn_weights_file **out)
{
    cnn_status st = CNN_OK;
    *out = NULL;
    cnn_weights_file *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(path))) {
        free(f);
        return CNN_ERROR(CNN_ERR_MEMORY, "%s: out of memory", path);
    }
    if (cnn_weights_is_safetensors(path)) CNN_TRY(cnn_safetensors_open(path, &f->st));
    else CNN_TRY(cnn_caffemodel_read(path, &f->cm));
    *out = f;
    return CNN_OK;
fail:
    cnn_weights_file_close(f);
    return st;
}

const char *cnn_weights_file_kind(const cnn_weights_file *f)
{
    return f->st ? "safetensors" : "caffemodel";
}

const char *cnn_weights_file_path(const cnn_weights_file *f) { return f->path; }

int cnn_weights_file_count(const cnn_weights_file *f)
{
    return f->st ? cnn_safetensors_count(f->st) : f->cm->n;
}

const char *cnn_weights_file_name(const cnn_weights_file *f, int i)
{
    return f->st ? cnn_safetensors_name(f->st, i) : f->cm->blob[i].name;
}

int cnn_weights_file_find(const cnn_weights_file *f, const char *name)
{
    if (f->st) return cnn_safetensors_find(f->st, name);
    for (int i = 0; i < f->cm->n; i++)
        if (!strcmp(f->cm->blob[i].name, name)) return i;
    return -1;
}

cnn_status cnn_weights_file_get(const cnn_weights_file *f, int i, int *ndim, int *shape,
                                const float **data)
{
    if (f->st) return cnn_safetensors_get(f->st, cnn_safetensors_name(f->st, i), ndim, shape,
                                          data);
    const cnn_caffemodel_blob *b = &f->cm->blob[i];
    *ndim = b->ndim;
    memcpy(shape, b->shape, sizeof(int) * (size_t)b->ndim);
    *data = b->data;
    return CNN_OK;
}

static void shape_text(const int *shape, int ndim, char *buf, size_t n)
{
    size_t at = 0;
    buf[0] = 0;
    if (ndim == 0) snprintf(buf, n, "scalar");
    for (int i = 0; i < ndim && at < n; i++)
        at += (size_t)snprintf(buf + at, n - at, i ? "x%d" : "%d", shape[i]);
}

cnn_status cnn_weights_load_any(cnn_net *n, const char *path, bool partial)
{
    cnn_status st = CNN_OK;
    cnn_weights_file *f = NULL;
    const float **src = NULL;
    cnn_tensor **dst = NULL;
    int np = 0, cap = 0;
    CNN_TRY(cnn_weights_file_open(path, &f));
    for (int i = 0; i < cnn_net_num_layers(n); i++) cap += cnn_net_layer_num_params(n, i);
    src = calloc((size_t)cap + 1, sizeof *src);
    dst = calloc((size_t)cap + 1, sizeof *dst);
    if (!src || !dst) {
        st = CNN_ERROR(CNN_ERR_MEMORY, "%s: out of memory", path);
        goto fail;
    }
    /* Check everything before touching the net, so a failed load changes nothing. */
    for (int li = 0; li < cnn_net_num_layers(n); li++) {
        const char *lname = cnn_net_layer_name(n, li);
        for (int k = 0; k < cnn_net_layer_num_params(n, li); k++) {
            cnn_tensor *t = cnn_net_layer_param(n, li, k);
            bool seen = false;
            for (int j = 0; j < np && !seen; j++) seen = dst[j] == t;
            if (!t || seen) continue;
            char key[512];
            snprintf(key, sizeof key, "%s.%d", lname, k);
            int idx = cnn_weights_file_find(f, key);
            if (idx < 0) {
                if (partial) continue;
                st = CNN_ERROR(CNN_ERR_FORMAT, "%s: no tensor '%s' for layer '%s' (load with "
                               "partial to keep its current values)", path, key, lname);
                goto fail;
            }
            int ndim, shape[CNN_MAX_DIMS];
            CNN_TRY(cnn_weights_file_get(f, idx, &ndim, shape, &src[np]));
            if (!cnn_shape_compatible(shape, ndim, t->shape, t->ndim)) {
                char fs[128], ns[128];
                shape_text(shape, ndim, fs, sizeof fs);
                shape_text(t->shape, t->ndim, ns, sizeof ns);
                st = CNN_ERROR(CNN_ERR_SHAPE, "%s: %s: file has %s, net has %s", path, key, fs,
                               ns);
                goto fail;
            }
            dst[np++] = t;
        }
    }
    for (int i = 0; i < np; i++)
        if (dst[i]->count) {
            memcpy(dst[i]->data, src[i], dst[i]->count * sizeof(float));
            cnn_host_wrote_data(dst[i]); /* a GPU net uploads it before use */
        }
fail:
    free(src);
    free(dst);
    cnn_weights_file_close(f);
    return st;
}
