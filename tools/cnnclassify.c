/* cnnclassify — runs a deploy model on image files and prints the top-K
 * classes of each: decode (PNG/JPEG), resize to the input size, apply the
 * Input layer's transform_param, forward in batches, softmax if the net does
 * not end in one. Unreadable images are reported and skipped (exit 1).
 * Runs on CUDA device 0 when there is one (--gpu N, --cpu choose), saying
 * where on stderr unless --json. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cJSON.h>

#include "core/caffemodel.h"
#include "core/cnn.h"
#include "core/gpu.h"
#include "core/preprocess.h"
#include "common/tool_device.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: cnnclassify --model DEPLOY --weights W [--labels FILE] [--top K] [--json]\n"
            "                   [--bgr] [--batch N] IMAGE|DIR ...\n"
            "Classifies PNG/JPEG images (a DIR means its *.png, *.jpg, *.jpeg files).\n"
            "  --weights W    .safetensors or Caffe .caffemodel weights\n"
            "  --labels FILE  class names, one per line (line i names class i)\n"
            "  --top K        classes printed per image (default 5)\n"
            "  --json         one JSON object per image and line\n"
            "  --bgr          feed channels as B,G,R (Caffe models trained with OpenCV)\n"
            "  --batch N      images per forward pass (default: the model's input N)\n"
            "%s", cnn_tool_dev_usage(false));
}

/* A growable list of strings. */
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

/* Appends the image files of directory `dir` (sorted, not recursive). */
static int add_dir(strlist *files, const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "cnnclassify: %s: %s\n", dir, strerror(errno));
        return 1;
    }
    strlist found = {0};
    struct dirent *e;
    int rc = 0;
    size_t dl = strlen(dir);
    bool slash = dl > 0 && dir[dl - 1] == '/';
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || !is_image_name(e->d_name)) continue;
        char *path = malloc(dl + strlen(e->d_name) + 2);
        if (!path) {
            rc = -1;
            break;
        }
        sprintf(path, "%s%s%s", dir, slash ? "" : "/", e->d_name);
        struct stat sb;
        int bad = stat(path, &sb) == 0 && S_ISDIR(sb.st_mode) ? 0 : strlist_push(&found, path);
        free(path);
        if (bad) {
            rc = -1;
            break;
        }
    }
    closedir(d);
    if (rc == 0) {
        if (found.n == 0) fprintf(stderr, "cnnclassify: %s: no PNG or JPEG files\n", dir);
        qsort(found.v, (size_t)found.n, sizeof *found.v, cmp_str);
        for (int i = 0; i < found.n && rc == 0; i++) rc = strlist_push(files, found.v[i]);
    }
    strlist_free(&found);
    return rc;
}

/* Reads one label per line (trailing CR/LF and blanks removed). */
static int read_labels(const char *path, strlist *labels)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "cnnclassify: %s: cannot open: %s\n", path, strerror(errno));
        return 1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int rc = 0;
    while ((len = getline(&line, &cap, f)) >= 0) {
        while (len > 0 && isspace((unsigned char)line[len - 1])) line[--len] = 0;
        if (strlist_push(labels, line)) {
            fprintf(stderr, "cnnclassify: %s: out of memory\n", path);
            rc = 1;
            break;
        }
    }
    if (rc == 0 && ferror(f)) {
        fprintf(stderr, "cnnclassify: %s: read error\n", path);
        rc = 1;
    }
    free(line);
    fclose(f);
    return rc;
}

/* The blob to read class scores from: the only output, or the one named
 * "prob". NULL (and a message) otherwise. */
static cnn_tensor *pick_output(const cnn_net *net)
{
    int n = cnn_net_num_outputs(net);
    if (n == 1) return cnn_net_output(net, 0);
    for (int i = 0; i < n; i++)
        if (!strcmp(cnn_net_output(net, i)->name, "prob")) return cnn_net_output(net, i);
    fprintf(stderr, "cnnclassify: the model has %d outputs and none is called 'prob':", n);
    for (int i = 0; i < n; i++) fprintf(stderr, " %s", cnn_net_output(net, i)->name);
    fprintf(stderr, "\n");
    return NULL;
}

/* True when the layer that writes `out` last is a Softmax. */
static bool ends_in_softmax(const cnn_net *net, const cnn_tensor *out)
{
    for (int i = cnn_net_num_layers(net) - 1; i >= 0; i--)
        for (int t = 0; t < cnn_net_layer_num_tops(net, i); t++)
            if (cnn_net_layer_top(net, i, t) == out)
                return !strcmp(cnn_net_layer_type(net, i), "Softmax");
    return false;
}

static void softmax(float *p, int k)
{
    float mx = p[0];
    for (int j = 1; j < k; j++) mx = p[j] > mx ? p[j] : mx;
    double sum = 0;
    for (int j = 0; j < k; j++) sum += (p[j] = expf(p[j] - mx));
    for (int j = 0; j < k; j++) p[j] = (float)(p[j] / sum);
}

typedef struct {
    bool json;
    int top;
    const strlist *labels;
} print_opts;

/* Prints the top classes of one image's probabilities p (k of them). */
static int print_result(const char *file, float *p, int k, int *order, const print_opts *o)
{
    for (int j = 0; j < k; j++) order[j] = j;
    int top = o->top < k ? o->top : k;
    for (int a = 0; a < top; a++) { /* partial selection sort, ties by index */
        int best = a;
        for (int j = a + 1; j < k; j++)
            if (p[order[j]] > p[order[best]]) best = j;
        int t = order[a];
        order[a] = order[best];
        order[best] = t;
    }
    if (!o->json) {
        printf("%s\n", file);
        for (int a = 0; a < top; a++) {
            int c = order[a];
            if (o->labels)
                printf("  %.4f  %d %s\n", p[c], c, o->labels->v[c]);
            else
                printf("  %.4f  %d\n", p[c], c);
        }
        return 0;
    }
    cJSON *obj = cJSON_CreateObject(), *arr = NULL;
    if (!obj || !cJSON_AddStringToObject(obj, "file", file) ||
        !(arr = cJSON_AddArrayToObject(obj, "top")))
        goto oom;
    for (int a = 0; a < top; a++) {
        int c = order[a];
        cJSON *e = cJSON_CreateObject();
        if (!e) goto oom;
        cJSON_AddItemToArray(arr, e);
        char num[32];
        snprintf(num, sizeof num, "%.6g", p[c]);
        if ((o->labels && !cJSON_AddStringToObject(e, "label", o->labels->v[c])) ||
            !cJSON_AddNumberToObject(e, "index", c) ||
            !cJSON_AddNumberToObject(e, "prob", strtod(num, NULL)))
            goto oom;
    }
    char *s = cJSON_PrintUnformatted(obj);
    if (!s) goto oom;
    printf("%s\n", s);
    free(s);
    cJSON_Delete(obj);
    return 0;
oom:
    cJSON_Delete(obj);
    fprintf(stderr, "cnnclassify: out of memory\n");
    return 1;
}

static int parse_pos_int(const char *flag, const char *s, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < 1 || v > 1000000) {
        fprintf(stderr, "cnnclassify: %s wants a positive integer, not '%s'\n", flag, s);
        return 2;
    }
    *out = (int)v;
    return 0;
}

int main(int argc, char **argv)
{
    const char *model = NULL, *weights = NULL, *labels_path = NULL;
    int top = 5, batch_opt = 0;
    bool json = false, bgr = false;
    strlist args = {0}, files = {0}, labels = {0};
    cnn_net *net = NULL;
    float *probs = NULL;
    int *order = NULL, *slot = NULL;
    int rc = 0;
    cnn_tool_dev dev;
    cnn_tool_dev_init(&dev, "cnnclassify", false);

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
        } else if (!strcmp(a, "--labels") && has_val) {
            labels_path = argv[++i];
        } else if (!strcmp(a, "--top") && has_val) {
            if (parse_pos_int(a, argv[++i], &top)) return 2;
        } else if (!strcmp(a, "--batch") && has_val) {
            if (parse_pos_int(a, argv[++i], &batch_opt)) return 2;
        } else if (!strcmp(a, "--json")) {
            json = true;
        } else if (!strcmp(a, "--bgr")) {
            bgr = true;
        } else if (!strcmp(a, "--")) {
            for (i++; i < argc; i++)
                if (strlist_push(&args, argv[i])) goto oom;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "cnnclassify: unknown option or missing value: %s\n", a);
            usage(stderr);
            strlist_free(&args);
            return 2;
        } else if (strlist_push(&args, a)) {
            goto oom;
        }
    }
    if (!model || !weights || args.n == 0) {
        fprintf(stderr, "cnnclassify: %s\n",
                !model ? "--model is required" : !weights ? "--weights is required"
                                                          : "no images given");
        usage(stderr);
        strlist_free(&args);
        return 2;
    }

    /* Images first: a typo in a path should not wait for a large model. */
    for (int i = 0; i < args.n; i++) {
        struct stat sb;
        if (stat(args.v[i], &sb) != 0) {
            fprintf(stderr, "cnnclassify: %s: %s\n", args.v[i], strerror(errno));
            rc = 1;
        } else if (S_ISDIR(sb.st_mode)) {
            int r = add_dir(&files, args.v[i]);
            if (r < 0) goto oom;
            rc |= r;
        } else if (strlist_push(&files, args.v[i])) {
            goto oom;
        }
    }
    if (labels_path && read_labels(labels_path, &labels)) {
        rc = 1;
        goto done;
    }

    cnn_net_opts o = cnn_net_default_opts();
    o.phase = CNN_TEST;
    if (cnn_tool_dev_resolve(&dev, &o)) {
        rc = 1;
        goto done;
    }
    if (!json) {
        char desc[512];
        fprintf(stderr, "cnnclassify: device %s\n", cnn_tool_dev_describe(&dev, desc, sizeof desc));
    }
    if (cnn_net_from_file(model, &o, &net) != CNN_OK ||
        cnn_weights_load_any(net, weights, false) != CNN_OK) {
        fprintf(stderr, "cnnclassify: %s\n", cnn_error_message());
        rc = 1;
        goto done;
    }
    cnn_net_params_changed(net);
    if (cnn_net_num_inputs(net) < 1) {
        fprintf(stderr, "cnnclassify: %s: the model has no Input layer to feed images to\n",
                model);
        rc = 1;
        goto done;
    }
    cnn_tensor *in = cnn_net_input(net, 0);
    if (in->ndim != 4 || (in->shape[1] != 1 && in->shape[1] != 3)) {
        char s[64];
        fprintf(stderr, "cnnclassify: %s: input '%s' is %s; images need N x 1|3 x H x W\n",
                model, in->name, cnn_tensor_shape_str(in, s, sizeof s));
        rc = 1;
        goto done;
    }
    int c = in->shape[1], h = in->shape[2], w = in->shape[3];
    int max_batch = batch_opt ? batch_opt : in->shape[0] > 0 ? in->shape[0] : 1;
    cnn_transform tf = {.scale = 1};
    cnn_net_input_transform(net, in->name, &tf);
    if (cnn_preprocess_check(&tf, c) != CNN_OK) {
        fprintf(stderr, "cnnclassify: %s: %s\n", model, cnn_error_message());
        rc = 1;
        goto done;
    }
    cnn_tensor *out = pick_output(net);
    if (!out) {
        rc = 1;
        goto done;
    }
    bool is_prob = ends_in_softmax(net, out);

    slot = malloc((size_t)max_batch * sizeof *slot);
    if (!slot) goto oom;
    print_opts po = {.json = json, .top = top, .labels = labels_path ? &labels : NULL};
    int cur_batch = in->shape[0];
    for (int next = 0; next < files.n;) {
        /* Decode up to max_batch readable images straight into the input. */
        int nb = 0;
        while (next < files.n && nb < max_batch) {
            if (cur_batch != max_batch) {
                int shape[4] = {max_batch, c, h, w};
                if (cnn_tensor_reshape(in, 4, shape) != CNN_OK) goto net_error;
                cur_batch = max_batch;
            }
            float *dst = in->data + (size_t)nb * c * h * w;
            if (cnn_preprocess_file(files.v[next], &tf, c, h, w, bgr, dst) != CNN_OK) {
                fprintf(stderr, "cnnclassify: %s\n", cnn_error_message());
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
            cnn_host_data(out) != CNN_OK)
            goto net_error;
        if (out->ndim < 1 || out->shape[0] != nb || out->count % (size_t)nb) {
            char s[64];
            fprintf(stderr, "cnnclassify: output '%s' is %s, not one row per image\n",
                    out->name, cnn_tensor_shape_str(out, s, sizeof s));
            rc = 1;
            goto done;
        }
        int k = (int)(out->count / (size_t)nb);
        if (labels_path && labels.n != k) {
            fprintf(stderr, "cnnclassify: %s has %d labels but output '%s' has %d classes\n",
                    labels_path, labels.n, out->name, k);
            rc = 1;
            goto done;
        }
        if (!probs) {
            probs = malloc((size_t)k * sizeof *probs);
            order = malloc((size_t)k * sizeof *order);
            if (!probs || !order) goto oom;
        }
        for (int b = 0; b < nb; b++) {
            memcpy(probs, out->data + (size_t)b * k, (size_t)k * sizeof *probs);
            if (!is_prob) softmax(probs, k);
            if (print_result(files.v[slot[b]], probs, k, order, &po)) {
                rc = 1;
                goto done;
            }
        }
        fflush(stdout);
    }
    goto done;

net_error:
    fprintf(stderr, "cnnclassify: %s\n", cnn_error_message());
    rc = 1;
    goto done;
oom:
    fprintf(stderr, "cnnclassify: out of memory\n");
    rc = 1;
done:
    cnn_net_free(net);
    free(probs);
    free(order);
    free(slot);
    strlist_free(&args);
    strlist_free(&files);
    strlist_free(&labels);
    return rc;
}
