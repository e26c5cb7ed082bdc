/* cnnfeatures — "CNN features off the shelf": runs a model on images and
 * writes the activations of a named blob (fc7, pool5, ...) per image as a
 * NumPy .npy array (N x blob shape) and a CSV file (file name, values).
 * Images are prepared as cnnclassify prepares them (core/preprocess.h).
 * Runs on CUDA device 0 when there is one (--gpu N, --cpu choose), saying
 * where on stderr. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/caffemodel.h"
#include "core/cnn.h"
#include "core/gpu.h"
#include "core/preprocess.h"
#include "common/tool_device.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: cnnfeatures --model DEPLOY --weights W --blob B [--out PREFIX]\n"
            "                   [--format npy|csv|both] [--bgr] [--batch N] [--root DIR]\n"
            "                   IMAGE|DIR|LIST ...\n"
            "Writes blob B's activations for every image: PREFIX.npy (float32, one row per\n"
            "image, shape N x the blob's per-image shape) and PREFIX.csv (\"file,v0,v1,...\").\n"
            "  --model DEPLOY  model file with an Input layer (built in the TEST phase)\n"
            "  --weights W     .safetensors or Caffe .caffemodel weights\n"
            "  --blob B        the blob to write (a layer's top, e.g. fc7)\n"
            "  --out PREFIX    output path without extension (default: B, '/' -> '_')\n"
            "  --format F      npy, csv or both (default both)\n"
            "  --bgr           feed channels as B,G,R (Caffe models trained with OpenCV)\n"
            "  --batch N       images per forward pass (default: the model's input N)\n"
            "  --root DIR      prefix for relative paths read from LIST files\n"
            "A DIR means its *.png, *.jpg, *.jpeg files (sorted); any other file that is not\n"
            "a PNG or JPEG is a LIST: one image path per line, further words ignored (Caffe's\n"
            "\"path label\" lists work), '#' lines skipped.\n"
            "%s", cnn_tool_dev_usage(false));
}

typedef struct {
    char **v;
    int n, cap;
} strlist;

static int strlist_push(strlist *l, const char *s)
{
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 16;
        char **v = realloc(l->v, (size_t)cap * sizeof *v);
        if (!v) return -1;
        l->v = v;
        l->cap = cap;
    }
    if (!(l->v[l->n] = strdup(s))) return -1;
    l->n++;
    return 0;
}

static void strlist_free(strlist *l)
{
    for (int i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
    *l = (strlist){0};
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool is_image_name(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (!dot || dot == name) return false;
    char ext[8];
    size_t k = 0;
    for (dot++; *dot && k < sizeof ext - 1; dot++) ext[k++] = (char)tolower((unsigned char)*dot);
    if (*dot) return false;
    ext[k] = 0;
    return !strcmp(ext, "png") || !strcmp(ext, "jpg") || !strcmp(ext, "jpeg");
}

/* Appends the image files of directory `dir` (sorted, not recursive);
 * -1 out of memory, 1 unreadable. */
static int add_dir(strlist *files, const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "cnnfeatures: %s: %s\n", dir, strerror(errno));
        return 1;
    }
    strlist found = {0};
    struct dirent *e;
    int rc = 0;
    size_t dl = strlen(dir);
    bool slash = dl > 0 && dir[dl - 1] == '/';
    while ((e = readdir(d)) && rc == 0) {
        if (e->d_name[0] == '.' || !is_image_name(e->d_name)) continue;
        char *path = malloc(dl + strlen(e->d_name) + 2);
        if (!path) {
            rc = -1;
            break;
        }
        sprintf(path, "%s%s%s", dir, slash ? "" : "/", e->d_name);
        struct stat sb;
        if (stat(path, &sb) == 0 && !S_ISDIR(sb.st_mode)) rc = strlist_push(&found, path);
        free(path);
    }
    closedir(d);
    if (rc == 0) {
        if (found.n == 0) fprintf(stderr, "cnnfeatures: %s: no PNG or JPEG files\n", dir);
        qsort(found.v, (size_t)found.n, sizeof *found.v, cmp_str);
        for (int i = 0; i < found.n && rc == 0; i++) rc = strlist_push(files, found.v[i]);
    }
    strlist_free(&found);
    return rc;
}

/* Whether the file starts like a PNG or a JPEG. */
static bool looks_like_image(const char *path)
{
    unsigned char h[4] = {0};
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    size_t n = fread(h, 1, 4, f);
    fclose(f);
    return n == 4 && ((h[0] == 0x89 && h[1] == 'P' && h[2] == 'N' && h[3] == 'G') ||
                      (h[0] == 0xff && h[1] == 0xd8));
}

/* Appends the first word of each line of a list file (with `root` before
 * relative paths); -1 out of memory, 1 unreadable. */
static int add_list(strlist *files, const char *path, const char *root)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "cnnfeatures: %s: %s\n", path, strerror(errno));
        return 1;
    }
    char *line = NULL;
    size_t cap = 0;
    int rc = 0, count = 0;
    while (getline(&line, &cap, f) > 0 && rc == 0) {
        char *save = NULL, *w = strtok_r(line, " \t\r\n", &save);
        if (!w || w[0] == '#') continue;
        if (root && w[0] != '/') {
            size_t n = strlen(root) + strlen(w) + 2;
            char *p = malloc(n);
            if (!p) {
                rc = -1;
                break;
            }
            snprintf(p, n, "%s%s%s", root, root[strlen(root) - 1] == '/' ? "" : "/", w);
            rc = strlist_push(files, p);
            free(p);
        } else {
            rc = strlist_push(files, w);
        }
        count++;
    }
    if (rc == 0 && ferror(f)) {
        fprintf(stderr, "cnnfeatures: %s: read failed\n", path);
        rc = 1;
    }
    if (rc == 0 && count == 0) fprintf(stderr, "cnnfeatures: %s: no image paths\n", path);
    free(line);
    fclose(f);
    return rc;
}

/* The .npy header for `rows` x per-image shape, padded to `len` bytes. */
#define NPY_HEADER 256
static void npy_header(char *buf, long rows, const cnn_tensor *t)
{
    char shape[160];
    size_t at = (size_t)snprintf(shape, sizeof shape, "(%ld,", rows);
    for (int d = 1; d < t->ndim && at < sizeof shape; d++)
        at += (size_t)snprintf(shape + at, sizeof shape - at, "%s%d", d > 1 ? ", " : " ",
                               t->shape[d]);
    if (at < sizeof shape) snprintf(shape + at, sizeof shape - at, ")");
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    int hl = NPY_HEADER - 10;
    buf[8] = (char)(hl & 0xff);
    buf[9] = (char)(hl >> 8);
    int n = snprintf(buf + 10, (size_t)hl, "{'descr': '<f4', 'fortran_order': False, "
                     "'shape': %s, }", shape);
    memset(buf + 10 + n, ' ', (size_t)(hl - n - 1));
    buf[NPY_HEADER - 1] = '\n';
}

static int parse_pos_int(const char *flag, const char *s, int *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 1 || v > 1000000) {
        fprintf(stderr, "cnnfeatures: %s needs a positive number, got '%s'\n", flag, s);
        return 2;
    }
    *out = (int)v;
    return 0;
}

int main(int argc, char **argv)
{
    const char *model = NULL, *weights = NULL, *blob_name = NULL, *prefix = NULL;
    const char *format = "both", *root = NULL;
    bool bgr = false;
    int batch_opt = 0, rc = 0;
    strlist args = {0}, files = {0};
    cnn_net *net = NULL;
    FILE *npy = NULL, *csv = NULL;
    char *npy_path = NULL, *csv_path = NULL, *def_prefix = NULL;
    int *slot = NULL;
    cnn_tool_dev dev;
    cnn_tool_dev_init(&dev, "cnnfeatures", false);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_val = i + 1 < argc;
        int d = cnn_tool_dev_arg(&dev, argc, argv, &i);
        if (d < 0) {
            strlist_free(&args);
            return 2;
        }
        if (d > 0) continue;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--model") && has_val) {
            model = argv[++i];
        } else if (!strcmp(a, "--weights") && has_val) {
            weights = argv[++i];
        } else if (!strcmp(a, "--blob") && has_val) {
            blob_name = argv[++i];
        } else if (!strcmp(a, "--out") && has_val) {
            prefix = argv[++i];
        } else if (!strcmp(a, "--format") && has_val) {
            format = argv[++i];
        } else if (!strcmp(a, "--root") && has_val) {
            root = argv[++i];
        } else if (!strcmp(a, "--batch") && has_val) {
            if (parse_pos_int(a, argv[++i], &batch_opt)) return 2;
        } else if (!strcmp(a, "--bgr")) {
            bgr = true;
        } else if (!strcmp(a, "--")) {
            for (i++; i < argc; i++)
                if (strlist_push(&args, argv[i])) goto oom;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "cnnfeatures: unknown option or missing value: %s\n", a);
            usage(stderr);
            strlist_free(&args);
            return 2;
        } else if (strlist_push(&args, a)) {
            goto oom;
        }
    }
    bool want_npy = !strcmp(format, "npy") || !strcmp(format, "both");
    bool want_csv = !strcmp(format, "csv") || !strcmp(format, "both");
    if (!model || !weights || !blob_name || args.n == 0 || (!want_npy && !want_csv)) {
        fprintf(stderr, "cnnfeatures: %s\n",
                !model ? "--model is required" : !weights ? "--weights is required"
                : !blob_name ? "--blob is required" : args.n == 0 ? "no images given"
                : "--format must be npy, csv or both");
        usage(stderr);
        strlist_free(&args);
        return 2;
    }
    for (int i = 0; i < args.n; i++) {
        struct stat sb;
        int r = 0;
        if (stat(args.v[i], &sb) != 0) {
            fprintf(stderr, "cnnfeatures: %s: %s\n", args.v[i], strerror(errno));
            r = 1;
        } else if (S_ISDIR(sb.st_mode)) {
            r = add_dir(&files, args.v[i]);
        } else if (looks_like_image(args.v[i])) {
            r = strlist_push(&files, args.v[i]);
        } else {
            r = add_list(&files, args.v[i], root);
        }
        if (r < 0) goto oom;
        rc |= r;
    }
    if (files.n == 0) {
        fprintf(stderr, "cnnfeatures: no images to process\n");
        rc = 1;
        goto done;
    }

    cnn_net_opts o = cnn_net_default_opts();
    o.phase = CNN_TEST;
    if (cnn_tool_dev_resolve(&dev, &o)) {
        rc = 1;
        goto done;
    }
    char desc[512];
    fprintf(stderr, "cnnfeatures: device %s\n", cnn_tool_dev_describe(&dev, desc, sizeof desc));
    if (cnn_net_from_file(model, &o, &net) != CNN_OK ||
        cnn_weights_load_any(net, weights, false) != CNN_OK) {
        fprintf(stderr, "cnnfeatures: %s\n", cnn_error_message());
        rc = 1;
        goto done;
    }
    cnn_net_params_changed(net);
    if (cnn_net_num_inputs(net) < 1) {
        fprintf(stderr, "cnnfeatures: %s: the model has no Input layer to feed images to\n",
                model);
        rc = 1;
        goto done;
    }
    cnn_tensor *in = cnn_net_input(net, 0), *feat = cnn_net_blob(net, blob_name);
    if (!feat) {
        fprintf(stderr, "cnnfeatures: %s: no blob '%s' (blobs are layer tops)\n", model,
                blob_name);
        rc = 1;
        goto done;
    }
    if (in->ndim != 4 || (in->shape[1] != 1 && in->shape[1] != 3)) {
        char s[64];
        fprintf(stderr, "cnnfeatures: %s: input '%s' is %s; images need N x 1|3 x H x W\n",
                model, in->name, cnn_tensor_shape_str(in, s, sizeof s));
        rc = 1;
        goto done;
    }
    int c = in->shape[1], h = in->shape[2], w = in->shape[3];
    int max_batch = batch_opt ? batch_opt : in->shape[0] > 0 ? in->shape[0] : 1;
    cnn_transform tf = {.scale = 1};
    cnn_net_input_transform(net, in->name, &tf);
    if (cnn_preprocess_check(&tf, c) != CNN_OK) {
        fprintf(stderr, "cnnfeatures: %s: %s\n", model, cnn_error_message());
        rc = 1;
        goto done;
    }

    if (!prefix) {
        if (!(def_prefix = strdup(blob_name))) goto oom;
        for (char *p = def_prefix; *p; p++)
            if (*p == '/') *p = '_';
        prefix = def_prefix;
    }
    size_t pl = strlen(prefix) + 8;
    if (!(npy_path = malloc(pl)) || !(csv_path = malloc(pl))) goto oom;
    snprintf(npy_path, pl, "%s.npy", prefix);
    snprintf(csv_path, pl, "%s.csv", prefix);
    if (want_npy && !(npy = fopen(npy_path, "wb"))) {
        fprintf(stderr, "cnnfeatures: cannot write %s: %s\n", npy_path, strerror(errno));
        rc = 1;
        goto done;
    }
    if (want_csv && !(csv = fopen(csv_path, "w"))) {
        fprintf(stderr, "cnnfeatures: cannot write %s: %s\n", csv_path, strerror(errno));
        rc = 1;
        goto done;
    }
    char header[NPY_HEADER];
    if (npy) { /* a placeholder: the row count is known at the end */
        npy_header(header, 0, feat);
        fwrite(header, 1, NPY_HEADER, npy);
    }
    if (!(slot = malloc((size_t)max_batch * sizeof *slot))) goto oom;
    long rows = 0;
    size_t per = 0;
    int cur_batch = in->shape[0];
    for (int next = 0; next < files.n;) {
        int nb = 0;
        while (next < files.n && nb < max_batch) {
            if (cur_batch != max_batch) {
                int shape[4] = {max_batch, c, h, w};
                if (cnn_tensor_reshape(in, 4, shape) != CNN_OK) goto net_error;
                cur_batch = max_batch;
            }
            float *dst = in->data + (size_t)nb * c * h * w;
            if (cnn_preprocess_file(files.v[next], &tf, c, h, w, bgr, dst) != CNN_OK) {
                fprintf(stderr, "cnnfeatures: %s (skipped)\n", cnn_error_message());
                rc = 1;
            } else {
                slot[nb++] = next;
            }
            next++;
        }
        if (nb == 0) break;
        if (nb != cur_batch) {
            int shape[4] = {nb, c, h, w};
            if (cnn_tensor_reshape(in, 4, shape) != CNN_OK) goto net_error;
            cur_batch = nb;
        }
        cnn_host_wrote_data(in);
        if (cnn_net_reshape(net) != CNN_OK || cnn_net_forward(net, NULL) != CNN_OK ||
            cnn_host_data(feat) != CNN_OK)
            goto net_error;
        if (feat->ndim < 1 || feat->shape[0] != nb || feat->count % (size_t)nb) {
            char s[64];
            fprintf(stderr, "cnnfeatures: blob '%s' is %s, not one row per image\n", blob_name,
                    cnn_tensor_shape_str(feat, s, sizeof s));
            rc = 1;
            goto done;
        }
        if (!per) {
            per = feat->count / (size_t)nb;
            if (csv) {
                fputs("file", csv);
                for (size_t k = 0; k < per; k++) fprintf(csv, ",v%zu", k);
                fputc('\n', csv);
            }
        }
        for (int b = 0; b < nb; b++) {
            const float *row = feat->data + (size_t)b * per;
            if (npy && fwrite(row, sizeof(float), per, npy) != per) goto write_error;
            if (csv) {
                const char *name = files.v[slot[b]];
                bool quote = strpbrk(name, ",\"\n") != NULL;
                if (quote) {
                    fputc('"', csv);
                    for (const char *p = name; *p; p++) {
                        if (*p == '"') fputc('"', csv);
                        fputc(*p, csv);
                    }
                    fputc('"', csv);
                } else {
                    fputs(name, csv);
                }
                for (size_t k = 0; k < per; k++) fprintf(csv, ",%.9g", row[k]);
                fputc('\n', csv);
            }
            rows++;
        }
    }
    if (npy) {
        npy_header(header, rows, feat);
        if (fseek(npy, 0, SEEK_SET) || fwrite(header, 1, NPY_HEADER, npy) != NPY_HEADER)
            goto write_error;
    }
    if ((npy && fflush(npy)) || (csv && fflush(csv))) goto write_error;
    printf("%ld image%s, blob '%s' (%zu value%s each) -> %s%s%s\n", rows, rows == 1 ? "" : "s",
           blob_name, per, per == 1 ? "" : "s", npy ? npy_path : "", npy && csv ? ", " : "",
           csv ? csv_path : "");
    goto done;

write_error:
    fprintf(stderr, "cnnfeatures: write failed: %s\n", strerror(errno));
    rc = 1;
    goto done;
net_error:
    fprintf(stderr, "cnnfeatures: %s\n", cnn_error_message());
    rc = 1;
    goto done;
oom:
    fprintf(stderr, "cnnfeatures: out of memory\n");
    rc = 1;
done:
    if (npy && fclose(npy) && !rc) {
        fprintf(stderr, "cnnfeatures: write failed: %s\n", strerror(errno));
        rc = 1;
    }
    if (csv && fclose(csv) && !rc) {
        fprintf(stderr, "cnnfeatures: write failed: %s\n", strerror(errno));
        rc = 1;
    }
    free(slot);
    free(npy_path);
    free(csv_path);
    free(def_prefix);
    cnn_net_free(net);
    strlist_free(&files);
    strlist_free(&args);
    return rc;
}
