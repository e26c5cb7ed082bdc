/* cnnexport — turns an IDX image set (MNIST, Fashion-MNIST; raw or gzip)
 * into PNG files plus a list file, so the same data can be read by an
 * ImageData layer or looked at:
 *   cnnexport IMAGES.idx[.gz] LABELS.idx[.gz] OUTDIR [--count N] [--labels-file NAMES]
 * writes OUTDIR/00000.png, ... and OUTDIR/list.txt ("relative/path label"). */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cnn.h"
#include "core/dataset.h"

static void usage(void)
{
    fprintf(stderr,
            "usage: cnnexport IMAGES.idx[.gz] LABELS.idx[.gz] OUTDIR [--count N]\n"
            "                 [--labels-file NAMES]\n"
            "Writes OUTDIR/00000.png, ... and OUTDIR/list.txt with \"path label\" lines.\n"
            "  --count N            export only the first N images\n"
            "  --labels-file NAMES  class names, one per line (line i names class i);\n"
            "                       images then go to OUTDIR/<class name>/\n");
}

/* Reads non-empty lines (trailing blanks removed) into a growing array. */
static int read_names(const char *path, char ***out, int *n)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "cnnexport: %s: cannot open: %s\n", path, strerror(errno));
        return 1;
    }
    char *line = NULL, **v = NULL;
    size_t cap = 0;
    ssize_t len;
    int count = 0, rc = 0;
    while ((len = getline(&line, &cap, f)) >= 0) {
        while (len > 0 && isspace((unsigned char)line[len - 1])) line[--len] = 0;
        if (!len) continue;
        char **nv = realloc(v, ((size_t)count + 1) * sizeof *v);
        if (!nv || !(nv[count] = strdup(line))) {
            v = nv ? nv : v;
            fprintf(stderr, "cnnexport: %s: out of memory\n", path);
            rc = 1;
            break;
        }
        v = nv;
        count++;
    }
    if (!rc && ferror(f)) {
        fprintf(stderr, "cnnexport: %s: read error\n", path);
        rc = 1;
    }
    if (!rc && count == 0) {
        fprintf(stderr, "cnnexport: %s: no class names\n", path);
        rc = 1;
    }
    free(line);
    fclose(f);
    *out = v;
    *n = count;
    return rc;
}

int main(int argc, char **argv)
{
    const char *pos[3] = {NULL, NULL, NULL}, *names_path = NULL;
    int npos = 0;
    long long count = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--count") && i + 1 < argc) {
            char *end;
            errno = 0;
            count = strtoll(argv[++i], &end, 10);
            if (*end || errno || count <= 0) {
                fprintf(stderr, "cnnexport: --count needs a positive number, not '%s'\n",
                        argv[i]);
                return 2;
            }
        } else if (!strcmp(argv[i], "--labels-file") && i + 1 < argc) {
            names_path = argv[++i];
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage();
            return 0;
        } else if (argv[i][0] == '-' || npos == 3) {
            usage();
            return 2;
        } else {
            pos[npos++] = argv[i];
        }
    }
    if (npos != 3) {
        usage();
        return 2;
    }
    char **names = NULL;
    int n_names = 0, rc = 0;
    cnn_dataset *d = NULL;
    if (names_path && read_names(names_path, &names, &n_names)) {
        rc = 1;
    } else if (cnn_dataset_load_idx(pos[0], pos[1], &d) != CNN_OK ||
               cnn_dataset_export_png(d, pos[2], (size_t)count, (const char *const *)names,
                                      n_names) != CNN_OK) {
        fprintf(stderr, "cnnexport: %s\n", cnn_error_message());
        rc = 1;
    } else {
        size_t written = count > 0 && (size_t)count < d->n ? (size_t)count : d->n;
        printf("wrote %zu images (%dx%d) and %s/list.txt\n", written, d->h, d->w, pos[2]);
    }
    cnn_dataset_free(d);
    for (int i = 0; i < n_names; i++) free(names[i]);
    free(names);
    return rc;
}
