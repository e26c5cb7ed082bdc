/* config.h — the protobuf text tree of a model file, and typed accessors
 * that remember which fields were read so unused ones can be reported. */
#ifndef CNN_CONFIG_H
#define CNN_CONFIG_H

#include "cnn.h"

typedef enum {
    CNN_CFG_MESSAGE, /* field { ... } */
    CNN_CFG_STRING,  /* field: "text" (escapes decoded) */
    CNN_CFG_NUMBER,  /* field: 12, -3.5e-2, inf, nan */
    CNN_CFG_IDENT    /* field: MAX, true, TRAIN */
} cnn_cfg_kind;

/* One field. A message's fields form the `child` list, linked by `next`. */
struct cnn_cfg {
    char *key;
    cnn_cfg_kind kind;
    char *text;        /* scalar value as written (decoded for strings) */
    struct cnn_cfg *child, *next, *parent;
    const char *file;  /* shared, owned by the root */
    int line, col;
    bool used;
};

/* Number of fields called `key` in message `m`. */
int cnn_cfg_count(const cnn_cfg *m, const char *key);
/* The i-th field called `key` (marking it used), or NULL. */
cnn_cfg *cnn_cfg_nth(cnn_cfg *m, const char *key, int i);
/* The first field called `key`, marked used, or NULL. */
cnn_cfg *cnn_cfg_get(cnn_cfg *m, const char *key);

/* Typed getters: absent fields give `def`; wrong kinds or values that do not
 * fit are errors naming file:line:col. Each marks its field used. */
cnn_status cnn_cfg_int(cnn_cfg *m, const char *key, int def, int *out);
cnn_status cnn_cfg_int64(cnn_cfg *m, const char *key, long long def, long long *out);
cnn_status cnn_cfg_uint(cnn_cfg *m, const char *key, unsigned def, unsigned *out);
cnn_status cnn_cfg_float(cnn_cfg *m, const char *key, float def, float *out);
cnn_status cnn_cfg_double(cnn_cfg *m, const char *key, double def, double *out);
cnn_status cnn_cfg_bool(cnn_cfg *m, const char *key, bool def, bool *out);
/* *out points into the tree (or is `def`); not copied. */
cnn_status cnn_cfg_string(cnn_cfg *m, const char *key, const char *def, const char **out);
/* An enum identifier; `names` is NULL-terminated, *out gets its index. */
cnn_status cnn_cfg_enum(cnn_cfg *m, const char *key, const char *const *names, int def,
                        int *out);
/* Scalar conversions of a single field (used for repeated fields). */
cnn_status cnn_cfg_as_int(cnn_cfg *f, int *out);
cnn_status cnn_cfg_as_float(cnn_cfg *f, float *out);
cnn_status cnn_cfg_as_double(cnn_cfg *f, double *out);
/* A sub-message field; NULL when absent; error when present but scalar. */
cnn_status cnn_cfg_message(cnn_cfg *m, const char *key, cnn_cfg **out);

/* Error if any field in m (recursively) was never read: names the first one
 * with file:line:col, and `what` (e.g. "layer 'conv1'"). */
cnn_status cnn_cfg_check_used(const cnn_cfg *m, const char *what);
/* Marks m and everything below it used (for blocks handled elsewhere). */
void cnn_cfg_mark_used(cnn_cfg *m);
/* Error with this field's location prefixed: "file:line:col: ...". */
cnn_status cnn_cfg_error(const cnn_cfg *f, cnn_status s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
