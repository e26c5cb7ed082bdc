/* input.c — the Input layer: tops whose shapes the model file gives and
 * whose values the caller writes (input_param { shape { dim … } }). */
#include <string.h>

#include "../core/net_internal.h"
#include "../core/transform.h"
#include "layer.h"

typedef struct {
    int n_shapes;
    int ndim[8];
    int shape[8][CNN_MAX_DIMS];
    bool has_transform;
    cnn_transform transform; /* for tools that feed images */
} input_priv;

static cnn_status input_setup(cnn_layer *l, cnn_cfg *cfg)
{
    cnn_status st = CNN_OK;
    cnn_cfg *p = NULL;
    CNN_TRY(cnn_layer_alloc_priv(l, sizeof(input_priv)));
    input_priv *ip = l->priv;
    ip->has_transform = cnn_cfg_count(cfg, "transform_param") > 0;
    CNN_TRY(cnn_transform_parse(cfg, !l->shapes_only, &ip->transform));
    CNN_TRY(cnn_cfg_message(cfg, "input_param", &p));
    if (!p) return cnn_layer_error(l, CNN_ERR_CONFIG, "input_param { shape { dim … } } missing");
    ip->n_shapes = cnn_cfg_count(p, "shape");
    if (ip->n_shapes != 1 && ip->n_shapes != l->n_top)
        return cnn_layer_error(l, CNN_ERR_CONFIG, "%d shapes for %d tops (give one, or one per top)",
                               ip->n_shapes, l->n_top);
    if (ip->n_shapes > 8) return cnn_layer_error(l, CNN_ERR_CONFIG, "too many shapes");
    for (int s = 0; s < ip->n_shapes; s++) {
        cnn_cfg *sh = cnn_cfg_nth(p, "shape", s);
        int nd = cnn_cfg_count(sh, "dim");
        if (sh->kind != CNN_CFG_MESSAGE || nd > CNN_MAX_DIMS)
            return cnn_cfg_error(sh, CNN_ERR_CONFIG, "shape must be a message of at most %d dims",
                                 CNN_MAX_DIMS);
        ip->ndim[s] = nd;
        for (int d = 0; d < nd; d++) {
            cnn_cfg *f = cnn_cfg_nth(sh, "dim", d);
            CNN_TRY(cnn_cfg_as_int(f, &ip->shape[s][d]));
            if (ip->shape[s][d] < 0) return cnn_cfg_error(f, CNN_ERR_CONFIG, "negative dim");
        }
    }
fail:
    return st;
}

static cnn_status input_reshape(cnn_layer *l)
{
    /* Shapes are set once; afterwards callers may reshape inputs freely. */
    input_priv *ip = l->priv;
    cnn_status st = CNN_OK;
    for (int t = 0; t < l->n_top; t++) {
        int s = ip->n_shapes == 1 ? 0 : t;
        if (l->top[t]->ndim == 0 && l->top[t]->count == 0)
            CNN_TRY(cnn_tensor_reshape(l->top[t], ip->ndim[s], ip->shape[s]));
    }
fail:
    return st;
}

static cnn_status input_forward(cnn_layer *l) { return CNN_OK; }

const cnn_layer_type cnn_layer_Input = {
    .name = "Input",
    .min_bottoms = 0,
    .max_bottoms = 0,
    .min_tops = 1,
    .max_tops = -1,
    .setup = input_setup,
    .reshape = input_reshape,
    .forward = input_forward,
};

bool cnn_net_input_transform(const cnn_net *n, const char *blob, cnn_transform *out)
{
    for (int i = 0; i < cnn_net_num_layers(n); i++) {
        const cnn_layer *l = cnn_net_layer(n, i);
        if (l->type != &cnn_layer_Input) continue;
        const input_priv *ip = l->priv;
        for (int t = 0; t < l->n_top; t++)
            if (!strcmp(l->top[t]->name, blob) && ip->has_transform) {
                *out = ip->transform;
                return true;
            }
    }
    return false;
}
