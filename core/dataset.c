/* dataset.c — readers for IDX (raw or gzip), CIFAR-10 binary and image list
 * files. Every check a malformed file can fail gives an error naming the
 * file: bad magic, unsupported element types, truncation, count mismatches,
 * labels out of range, missing images. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <glob.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "dataset.h"
#include "image.h"

#define CIFAR_SIDE 32
#define CIFAR_PIXELS (3 * CIFAR_SIDE * CIFAR_SIDE)
#define CIFAR_RECORD (1 + CIFAR_PIXELS)
#define CIFAR_CLASSES 10

void cnn_dataset_free(cnn_dataset *d)
{
    if (!d) return;
    if (d->paths)
        for (size_t i = 0; i < d->n; i++) free(d->paths[i]);
    free(d->paths);
    free(d->lines);
    free(d->pixels);
    free(d->labels);
    free(d->source);
    if (d->class_names)
        for (int i = 0; i < d->num_classes; i++) free(d->class_names[i]);
    free(d->class_names);
    free(d);
}

static cnn_status new_dataset(cnn_dataset_kind kind, const char *source, cnn_dataset **out)
{
    cnn_dataset *d = calloc(1, sizeof *d);
    if (d) d->source = strdup(source);
    if (!d || !d->source) {
        free(d);
        return CNN_ERROR(CNN_ERR_MEMORY, "%s: out of memory", source);
    }
    d->kind = kind;
    *out = d;
    return CNN_OK;
}

/* ---- compressed or raw streams ------------------------------------------------ */

/* Opens a raw or gzip file (told apart by the 0x1f 0x8b magic) for gzread. */
static cnn_status open_stream(const char *path, gzFile *out, bool *gz)
{
    FILE *f = fopen(path, "rb");
    if (!f) return CNN_ERROR(CNN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    unsigned char m[2] = {0, 0};
    size_t got = fread(m, 1, 2, f);
    fclose(f);
    *gz = got == 2 && m[0] == 0x1f && m[1] == 0x8b;
    gzFile g = gzopen(path, "rb");
    if (!g) return CNN_ERROR(CNN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    gzbuffer(g, 1 << 18);
    *out = g;
    return CNN_OK;
}

/* Reads up to n bytes; *got says how many. Only corrupt data is an error. */
static cnn_status read_stream(gzFile g, const char *path, void *buf, size_t n, size_t *got)
{
    size_t done = 0;
    *got = 0;
    while (done < n) {
        size_t chunk = n - done > (1u << 30) ? (1u << 30) : n - done;
        int r = gzread(g, (char *)buf + done, (unsigned)chunk);
        if (r < 0) {
            int code = 0;
            const char *msg = gzerror(g, &code);
            /* A gzip stream cut short: report it as the short read it is. */
            if (code == Z_BUF_ERROR) break;
            return CNN_ERROR(CNN_ERR_FORMAT, "%s: corrupt gzip data: %s", path, msg);
        }
        if (r == 0) break;
        done += (size_t)r;
    }
    *got = done;
    return CNN_OK;
}

/* Reads a whole raw or gzip file into memory. */
static cnn_status read_all(const char *path, uint8_t **out, size_t *size)
{
    cnn_status st = CNN_OK;
    gzFile g = NULL;
    bool gz;
    uint8_t *buf = NULL;
    size_t cap = 1 << 20, len = 0;
    CNN_TRY(open_stream(path, &g, &gz));
    for (;;) {
        uint8_t *nb = realloc(buf, cap);
        if (!nb) {
            st = CNN_ERROR(CNN_ERR_MEMORY, "%s: cannot allocate %zu bytes", path, cap);
            goto fail;
        }
        buf = nb;
        size_t got = 0;
        CNN_TRY(read_stream(g, path, buf + len, cap - len, &got));
        len += got;
        if (len < cap) break;
        cap *= 2;
    }
    gzclose(g);
    *out = buf;
    *size = len;
    return CNN_OK;
fail:
    if (g) gzclose(g);
    free(buf);
    return st;
}

/* ---- IDX ------------------------------------------------------------------ */

static const char *idx_type_name(int t)
{
    switch (t) {
    case 0x08: return "unsigned byte";
    case 0x09: return "signed byte";
    case 0x0b: return "short";
    case 0x0c: return "int";
    case 0x0d: return "float";
    case 0x0e: return "double";
    default: return "unknown";
    }
}

/* Reads magic and dimensions from an open stream. */
static cnn_status idx_read_header(gzFile g, const char *path, int *type, int *ndim,
                                  int dims[4])
{
    unsigned char h[4 + 4 * 4];
    size_t got = 0;
    cnn_status st = read_stream(g, path, h, 4, &got);
    if (st) return st;
    if (got < 4) return CNN_ERROR(CNN_ERR_FORMAT, "%s: truncated IDX header", path);
    if (h[0] || h[1])
        return CNN_ERROR(CNN_ERR_FORMAT, "%s: not an IDX file (magic %02x%02x%02x%02x)", path,
                         h[0], h[1], h[2], h[3]);
    *type = h[2];
    *ndim = h[3];
    if (*ndim < 1 || *ndim > 4)
        return CNN_ERROR(CNN_ERR_FORMAT, "%s: IDX file with %d dimensions (1 to 4 supported)",
                         path, *ndim);
    if ((st = read_stream(g, path, h + 4, 4 * (size_t)*ndim, &got))) return st;
    if (got < 4 * (size_t)*ndim)
        return CNN_ERROR(CNN_ERR_FORMAT, "%s: truncated IDX header", path);
    for (int i = 0; i < *ndim; i++) {
        const unsigned char *p = h + 4 + 4 * i;
        uint32_t v = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
        if (v == 0 || v > INT_MAX)
            return CNN_ERROR(CNN_ERR_FORMAT, "%s: IDX dimension %d is %u", path, i,
                             (unsigned)v);
        dims[i] = (int)v;
    }
    return CNN_OK;
}

cnn_status cnn_idx_header(const char *path, int *ndim, int dims[4])
{
    gzFile g;
    bool gz;
    int type;
    cnn_status st = open_stream(path, &g, &gz);
    if (st) return st;
    st = idx_read_header(g, path, &type, ndim, dims);
    gzclose(g);
    return st;
}

/* Reads an unsigned-byte IDX file of `want_ndim` dimensions ("images" or
 * "labels" in messages) into *data with its dimensions in dims. */
static cnn_status idx_read(const char *path, int want_ndim, const char *what, uint8_t **data,
                           int dims[4])
{
    cnn_status st = CNN_OK;
    gzFile g = NULL;
    bool gz;
    int type, ndim;
    uint8_t *buf = NULL;
    CNN_TRY(open_stream(path, &g, &gz));
    CNN_TRY(idx_read_header(g, path, &type, &ndim, dims));
    if (type != 0x08) {
        st = CNN_ERROR(CNN_ERR_FORMAT, "%s: IDX element type 0x%02x (%s) is not supported; "
                       "%s must be unsigned bytes (0x08)", path, type, idx_type_name(type),
                       what);
        goto fail;
    }
    if (ndim != want_ndim) {
        st = CNN_ERROR(CNN_ERR_FORMAT, "%s: IDX file has %d dimensions; %s need %d (idx%d)",
                       path, ndim, what, want_ndim, want_ndim);
        goto fail;
    }
    size_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (n > ((size_t)1 << 40) / (size_t)dims[i]) {
            st = CNN_ERROR(CNN_ERR_FORMAT, "%s: IDX dimensions too large", path);
            goto fail;
        }
        n *= (size_t)dims[i];
    }
    if (!(buf = malloc(n))) {
        st = CNN_ERROR(CNN_ERR_MEMORY, "%s: cannot allocate %zu bytes of %s", path, n, what);
        goto fail;
    }
    size_t got = 0;
    CNN_TRY(read_stream(g, path, buf, n, &got));
    if (got < n) {
        st = CNN_ERROR(CNN_ERR_FORMAT, "%s: truncated: expected %zu bytes of %s, got %zu", path,
                       n, what, got);
        goto fail;
    }
    unsigned char extra;
    CNN_TRY(read_stream(g, path, &extra, 1, &got));
    if (got) {
        st = CNN_ERROR(CNN_ERR_FORMAT, "%s: unexpected data after %zu bytes of %s (the header "
                       "says %d %s)", path, n, what, dims[0], what);
        goto fail;
    }
    gzclose(g);
    *data = buf;
    return CNN_OK;
fail:
    if (g) gzclose(g);
    free(buf);
    return st;
}

cnn_status cnn_dataset_load_idx(const char *images, const char *labels, cnn_dataset **out)
{
    cnn_status st = CNN_OK;
    cnn_dataset *d = NULL;
    uint8_t *lab = NULL;
    int dims[4], ldims[4];
    *out = NULL;
    CNN_TRY(new_dataset(CNN_DATASET_MEMORY, images, &d));
    CNN_TRY(idx_read(images, 3, "images", &d->pixels, dims));
    d->n = (size_t)dims[0];
    d->c = 1;
    d->h = dims[1];
    d->w = dims[2];
    if (labels) {
        CNN_TRY(idx_read(labels, 1, "labels", &lab, ldims));
        if ((size_t)ldims[0] != d->n) {
            st = CNN_ERROR(CNN_ERR_FORMAT, "%s: %d labels, but %s holds %zu images", labels,
                           ldims[0], images, d->n);
            goto fail;
        }
        if (!(d->labels = malloc(d->n * sizeof *d->labels))) {
            st = CNN_ERROR(CNN_ERR_MEMORY, "%s: out of memory", labels);
            goto fail;
        }
        for (size_t i = 0; i < d->n; i++) d->labels[i] = lab[i];
        free(lab);
    }
    *out = d;
    return CNN_OK;
fail:
    free(lab);
    cnn_dataset_free(d);
    return st;
}

/* ---- CIFAR-10 ------------------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

cnn_status cnn_dataset_load_cifar(const char *source, cnn_dataset **out)
{
    cnn_status st = CNN_OK;
    cnn_dataset *d = NULL;
    glob_t gl;
    bool globbed = false;
    const char *single[1] = {source};
    char **files = (char **)single;
    size_t nfiles = 1;
    uint8_t *buf = NULL;
    *out = NULL;
    if (strpbrk(source, "*?[")) {
        int r = glob(source, 0, NULL, &gl);
        if (r == GLOB_NOMATCH)
            return CNN_ERROR(CNN_ERR_IO, "%s: no CIFAR files match this pattern", source);
        if (r != 0) return CNN_ERROR(CNN_ERR_IO, "%s: cannot expand the pattern", source);
        globbed = true;
        files = gl.gl_pathv;
        nfiles = gl.gl_pathc;
        qsort(files, nfiles, sizeof *files, cmp_str);
    }
    CNN_TRY(new_dataset(CNN_DATASET_MEMORY, source, &d));
    d->c = 3;
    d->h = d->w = CIFAR_SIDE;
    d->num_classes = CIFAR_CLASSES;
    for (size_t f = 0; f < nfiles; f++) {
        size_t size = 0;
        CNN_TRY(read_all(files[f], &buf, &size));
        if (size == 0 || size % CIFAR_RECORD) {
            st = CNN_ERROR(CNN_ERR_FORMAT, "%s: %zu bytes is not a whole number of %d-byte "
                           "CIFAR-10 records", files[f], size, CIFAR_RECORD);
            goto fail;
        }
        size_t m = size / CIFAR_RECORD, n = d->n + m;
        uint8_t *px = realloc(d->pixels, n * CIFAR_PIXELS);
        if (px) d->pixels = px;
        int *lb = px ? realloc(d->labels, n * sizeof *lb) : NULL;
        if (lb) d->labels = lb;
        if (!px || !lb) {
            st = CNN_ERROR(CNN_ERR_MEMORY, "%s: cannot allocate %zu records", files[f], n);
            goto fail;
        }
        for (size_t i = 0; i < m; i++) {
            const uint8_t *r = buf + i * CIFAR_RECORD;
            if (r[0] >= CIFAR_CLASSES) {
                st = CNN_ERROR(CNN_ERR_FORMAT, "%s: record %zu has label %d; CIFAR-10 labels "
                               "are 0..9", files[f], i, r[0]);
                goto fail;
            }
            d->labels[d->n + i] = r[0];
            memcpy(d->pixels + (d->n + i) * CIFAR_PIXELS, r + 1, CIFAR_PIXELS);
        }
        d->n = n;
        free(buf);
        buf = NULL;
    }
    if (globbed) globfree(&gl);
    *out = d;
    return CNN_OK;
fail:
    if (globbed) globfree(&gl);
    free(buf);
    cnn_dataset_free(d);
    return st;
}

/* ---- image lists ---------------------------------------------------------- */

static char *join_path(const char *dir, size_t dirlen, const char *rel)
{
    bool slash = dirlen && dir[dirlen - 1] != '/';
    size_t n = dirlen + slash + strlen(rel) + 1;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%.*s%s%s", (int)dirlen, dir, slash ? "/" : "", rel);
    return p;
}

/* Appends one entry, growing the arrays. */
static cnn_status list_push(cnn_dataset *d, size_t *cap, char *path, int label, int line)
{
    if (d->n == *cap) {
        size_t nc = *cap ? 2 * *cap : 1024;
        char **p = realloc(d->paths, nc * sizeof *p);
        if (p) d->paths = p;
        int *lb = p ? realloc(d->labels, nc * sizeof *lb) : NULL;
        if (lb) d->labels = lb;
        int *ln = lb ? realloc(d->lines, nc * sizeof *ln) : NULL;
        if (ln) d->lines = ln;
        if (!ln) {
            free(path);
            return CNN_ERROR(CNN_ERR_MEMORY, "%s: out of memory", d->source);
        }
        *cap = nc;
    }
    d->paths[d->n] = path;
    d->labels[d->n] = label;
    d->lines[d->n] = line;
    d->n++;
    return CNN_OK;
}

cnn_status cnn_dataset_load_list(const char *list, const char *root_folder, bool check_files,
                                 cnn_dataset **out)
{
    cnn_status st = CNN_OK;
    cnn_dataset *d = NULL;
    char *line = NULL;
    size_t linecap = 0, cap = 0;
    int lineno = 0;
    *out = NULL;
    bool root = root_folder && root_folder[0];
    const char *slash = strrchr(list, '/');
    size_t listdir = slash ? (size_t)(slash - list) + 1 : 0;
    FILE *f = fopen(list, "r");
    if (!f) return CNN_ERROR(CNN_ERR_IO, "%s: cannot open: %s", list, strerror(errno));
    CNN_TRY(new_dataset(CNN_DATASET_LIST, list, &d));
    ssize_t len;
    while ((len = getline(&line, &linecap, f)) >= 0) {
        lineno++;
        while (len > 0 && isspace((unsigned char)line[len - 1])) line[--len] = 0;
        char *s = line;
        while (isspace((unsigned char)*s)) s++;
        if (!*s || *s == '#') continue;
        char *sep = s + strlen(s);
        while (sep > s && !isspace((unsigned char)sep[-1])) sep--;
        char *end = NULL;
        errno = 0;
        long label = strtol(sep, &end, 10);
        if (sep == s || !*sep || *end || errno || label < INT_MIN || label > INT_MAX) {
            st = CNN_ERROR(CNN_ERR_FORMAT, "%s:%d: expected 'path label', got '%s'", list,
                           lineno, s);
            goto fail;
        }
        char *pe = sep;
        while (pe > s && isspace((unsigned char)pe[-1])) pe--;
        *pe = 0;
        char *path = root ? join_path(root_folder, strlen(root_folder), s) : strdup(s);
        if (path && !root && s[0] != '/' && listdir && access(path, F_OK) != 0) {
            char *alt = join_path(list, listdir, s);
            if (alt && access(alt, F_OK) == 0) {
                free(path);
                path = alt;
            } else {
                free(alt);
            }
        }
        if (!path) {
            st = CNN_ERROR(CNN_ERR_MEMORY, "%s: out of memory", list);
            goto fail;
        }
        if (check_files && access(path, R_OK) != 0) {
            st = CNN_ERROR(CNN_ERR_IO, "%s:%d: cannot read image '%s': %s", list, lineno, path,
                           strerror(errno));
            free(path);
            goto fail;
        }
        CNN_TRY(list_push(d, &cap, path, (int)label, lineno));
    }
    if (ferror(f)) {
        st = CNN_ERROR(CNN_ERR_IO, "%s: read error: %s", list, strerror(errno));
        goto fail;
    }
    if (d->n == 0) {
        st = CNN_ERROR(CNN_ERR_FORMAT, "%s: the list names no images", list);
        goto fail;
    }
    free(line);
    fclose(f);
    *out = d;
    return CNN_OK;
fail:
    free(line);
    fclose(f);
    cnn_dataset_free(d);
    return st;
}

/* ---- class folders ---------------------------------------------------------- */

/* A growable array of owned strings. */
typedef struct str_list {
    char **v;
    size_t n, cap;
} str_list;

static void str_list_free(str_list *l)
{
    for (size_t i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

/* Appends s (owned; freed on failure); s == NULL means strdup failed. */
static cnn_status str_push(str_list *l, char *s, const char *where)
{
    if (s && l->n == l->cap) {
        size_t nc = l->cap ? 2 * l->cap : 64;
        char **v = realloc(l->v, nc * sizeof *v);
        if (!v) {
            free(s);
            s = NULL;
        } else {
            l->v = v;
            l->cap = nc;
        }
    }
    if (!s) return CNN_ERROR(CNN_ERR_MEMORY, "%s: out of memory", where);
    l->v[l->n++] = s;
    return CNN_OK;
}

static void str_sort(str_list *l)
{
    if (l->n) qsort(l->v, l->n, sizeof *l->v, cmp_str);
}

static bool is_image_name(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot && (!strcasecmp(dot, ".png") || !strcasecmp(dot, ".jpg") ||
                   !strcasecmp(dot, ".jpeg"));
}

bool cnn_path_is_dir(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* Sorted names in `dir` (hidden ones skipped) that are folders (`dirs`) or
 * image files (!dirs); symbolic links are followed. */
static cnn_status list_dir(const char *dir, bool dirs, str_list *out)
{
    cnn_status st = CNN_OK;
    DIR *dh = opendir(dir);
    if (!dh) return CNN_ERROR(CNN_ERR_IO, "%s: cannot open the folder: %s", dir, strerror(errno));
    struct dirent *e;
    while ((e = readdir(dh))) {
        if (e->d_name[0] == '.') continue;
        char *full = join_path(dir, strlen(dir), e->d_name);
        if (!full) {
            st = CNN_ERROR(CNN_ERR_MEMORY, "%s: out of memory", dir);
            break;
        }
        struct stat sb;
        bool ok = stat(full, &sb) == 0 &&
                  (dirs ? S_ISDIR(sb.st_mode) : S_ISREG(sb.st_mode) && is_image_name(full));
        free(full);
        if (ok && (st = str_push(out, strdup(e->d_name), dir))) break;
    }
    closedir(dh);
    str_sort(out);
    return st;
}

/* Appends the images under `dir` (its files, then its sub-folders, each in
 * sorted order, at most `depth` levels down) to `files` as full paths. */
static cnn_status collect_images(const char *dir, int depth, str_list *files)
{
    str_list names = {0}, subs = {0};
    cnn_status st = list_dir(dir, false, &names);
    for (size_t i = 0; st == CNN_OK && i < names.n; i++)
        st = str_push(files, join_path(dir, strlen(dir), names.v[i]), dir);
    if (st == CNN_OK && depth > 0) st = list_dir(dir, true, &subs);
    for (size_t i = 0; st == CNN_OK && i < subs.n; i++) {
        char *sub = join_path(dir, strlen(dir), subs.v[i]);
        st = sub ? collect_images(sub, depth - 1, files)
                 : CNN_ERROR(CNN_ERR_MEMORY, "%s: out of memory", dir);
        free(sub);
    }
    str_list_free(&names);
    str_list_free(&subs);
    return st;
}

#define FOLDER_DEPTH 8

cnn_status cnn_dataset_load_folder(const char *dir, bool check_files, cnn_dataset **out)
{
    cnn_status st = CNN_OK;
    cnn_dataset *d = NULL;
    str_list classes = {0}, files = {0};
    size_t cap = 0;
    *out = NULL;
    CNN_TRY(list_dir(dir, true, &classes));
    if (classes.n == 0) {
        st = CNN_ERROR(CNN_ERR_FORMAT, "%s: no class sub-folders (expected one folder of "
                       "images per class)", dir);
        goto fail;
    }
    if (classes.n > INT_MAX / 2) {
        st = CNN_ERROR(CNN_ERR_FORMAT, "%s: too many class folders", dir);
        goto fail;
    }
    CNN_TRY(new_dataset(CNN_DATASET_LIST, dir, &d));
    for (size_t k = 0; k < classes.n; k++) {
        char *cdir = join_path(dir, strlen(dir), classes.v[k]);
        st = cdir ? collect_images(cdir, FOLDER_DEPTH, &files)
                  : CNN_ERROR(CNN_ERR_MEMORY, "%s: out of memory", dir);
        if (st == CNN_OK && files.n == 0)
            st = CNN_ERROR(CNN_ERR_FORMAT, "%s: class folder '%s' holds no .png, .jpg or "
                           ".jpeg files", dir, classes.v[k]);
        free(cdir);
        if (st) goto fail;
        for (size_t i = 0; i < files.n; i++) {
            if (check_files && access(files.v[i], R_OK) != 0) {
                st = CNN_ERROR(CNN_ERR_IO, "%s: cannot read image: %s", files.v[i],
                               strerror(errno));
                goto fail;
            }
            char *path = files.v[i];
            files.v[i] = NULL; /* owned by d from here (list_push frees it on failure) */
            CNN_TRY(list_push(d, &cap, path, (int)k, 0));
        }
        str_list_free(&files);
    }
    d->num_classes = (int)classes.n;
    d->class_names = classes.v; /* ownership moves to d */
    *out = d;
    return CNN_OK;
fail:
    str_list_free(&classes);
    str_list_free(&files);
    cnn_dataset_free(d);
    return st;
}

cnn_status cnn_dataset_load_images(const char *source, const char *root_folder,
                                   bool check_files, cnn_dataset **out)
{
    *out = NULL;
    if (!cnn_path_is_dir(source))
        return cnn_dataset_load_list(source, root_folder, check_files, out);
    if (root_folder && root_folder[0])
        return CNN_ERROR(CNN_ERR_CONFIG, "%s: root_folder applies to list files, not to a "
                         "folder of class folders", source);
    return cnn_dataset_load_folder(source, check_files, out);
}

cnn_status cnn_dataset_write_labels(const cnn_dataset *d, const char *path)
{
    if (!d->class_names)
        return CNN_ERROR(CNN_ERR_ARG, "%s: class names are only known for a folder of class "
                         "folders", d->source);
    FILE *f = fopen(path, "w");
    if (!f) return CNN_ERROR(CNN_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    bool ok = true;
    for (int i = 0; i < d->num_classes; i++) ok &= fprintf(f, "%s\n", d->class_names[i]) >= 0;
    if (fclose(f) != 0 || !ok)
        return CNN_ERROR(CNN_ERR_IO, "%s: write error: %s", path, strerror(errno));
    return CNN_OK;
}

/* ---- export ----------------------------------------------------------------- */

/* A class name usable as one path component. */
static void safe_name(const char *name, char *out, size_t n)
{
    size_t i = 0;
    for (; name[i] && i + 1 < n; i++) {
        unsigned char ch = (unsigned char)name[i];
        out[i] = ch == '/' || isspace(ch) || ch == '\\' ? '_' : (char)ch;
    }
    out[i] = 0;
    if (!strcmp(out, ".") || !strcmp(out, "..") || !out[0]) snprintf(out, n, "class");
}

/* mkdir -p: path and any missing parents. */
static cnn_status make_dir(const char *path)
{
    char part[4096];
    size_t n = strlen(path);
    if (n >= sizeof part) return CNN_ERROR(CNN_ERR_ARG, "%s: path too long", path);
    memcpy(part, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (part[i] != '/' && part[i] != 0) continue;
        char keep = part[i];
        part[i] = 0;
        if (mkdir(part, 0777) != 0 && errno != EEXIST)
            return CNN_ERROR(CNN_ERR_IO, "%s: cannot create the folder %s: %s", path, part,
                             strerror(errno));
        part[i] = keep;
    }
    return CNN_OK;
}

cnn_status cnn_dataset_export_png(const cnn_dataset *d, const char *outdir, size_t count,
                                  const char *const *names, int n_names)
{
    cnn_status st = CNN_OK;
    cnn_image im = {0};
    FILE *list = NULL;
    char path[4096], rel[1024], dir[256];
    if (d->kind != CNN_DATASET_MEMORY || !d->labels || (d->c != 1 && d->c != 3))
        return CNN_ERROR(CNN_ERR_ARG, "%s: only labelled gray or RGB image sets can be "
                         "exported", d->source);
    if (count == 0 || count > d->n) count = d->n;
    int digits = 5;
    for (size_t m = count ? count - 1 : 0; m >= 100000; m /= 10) digits++;
    CNN_TRY(make_dir(outdir));
    if (names)
        for (int i = 0; i < n_names; i++) {
            safe_name(names[i], dir, sizeof dir);
            snprintf(path, sizeof path, "%s/%s", outdir, dir);
            CNN_TRY(make_dir(path));
        }
    snprintf(path, sizeof path, "%s/list.txt", outdir);
    if (!(list = fopen(path, "w")))
        return CNN_ERROR(CNN_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    CNN_TRY(cnn_image_alloc(&im, d->h, d->w, d->c));
    size_t plane = (size_t)d->h * d->w;
    for (size_t i = 0; i < count; i++) {
        int label = d->labels[i];
        if (names && (label < 0 || label >= n_names)) {
            st = CNN_ERROR(CNN_ERR_FORMAT, "%s: image %zu has label %d, but only %d class "
                           "names were given", d->source, i, label, n_names);
            goto fail;
        }
        if (names) safe_name(names[label], dir, sizeof dir);
        int r1 = snprintf(rel, sizeof rel, "%s%s%0*zu.png", names ? dir : "",
                          names ? "/" : "", digits, i);
        int r2 = snprintf(path, sizeof path, "%s/%s", outdir, rel);
        if (r1 < 0 || (size_t)r1 >= sizeof rel || r2 < 0 || (size_t)r2 >= sizeof path) {
            st = CNN_ERROR(CNN_ERR_ARG, "%s: output path too long", outdir);
            goto fail;
        }
        /* Planar (C, H, W) samples become interleaved (H, W, C) pixels. */
        const uint8_t *src = d->pixels + i * plane * d->c;
        for (size_t p = 0; p < plane; p++)
            for (int ch = 0; ch < d->c; ch++) im.data[p * d->c + ch] = src[ch * plane + p];
        CNN_TRY(cnn_image_write_png(path, &im));
        if (fprintf(list, "%s %d\n", rel, label) < 0) {
            st = CNN_ERROR(CNN_ERR_IO, "%s/list.txt: write error: %s", outdir, strerror(errno));
            goto fail;
        }
    }
    cnn_image_free(&im);
    if (fclose(list) != 0)
        return CNN_ERROR(CNN_ERR_IO, "%s/list.txt: write error: %s", outdir, strerror(errno));
    return CNN_OK;
fail:
    cnn_image_free(&im);
    if (list) fclose(list);
    return st;
}
