/* activation.c — the point-wise activation layers, with Caffe's semantics:
 * ReLU (relu_param negative_slope), PReLU (prelu_param channel_shared and
 * filler, a learned slope per channel), Sigmoid, TanH and ELU (elu_param
 * alpha). All may run in place (top == bottom). Every type has a GPU path
 * on the ops of kernels/cuda_ops.h with the same semantics. */
#include <stdlib.h>

#include "../core/gpu.h"
#include "../kernels/kernels.h"
#include "layer.h"

static const char *const engine_names[] = {"DEFAULT", "CAFFE", "CUDNN", NULL};

/* Reads `<key> { engine }` (and nothing else) when present; *p gets the
 * message (NULL when absent) so callers can read their own fields. */
static cnn_status read_param(cnn_cfg *cfg, const char *key, bool has_engine, cnn_cfg **p)
{
    cnn_status st = CNN_OK;
    int engine = 0;
    CNN_TRY(cnn_cfg_message(cfg, key, p));
    if (*p && has_engine) CNN_TRY(cnn_cfg_enum(*p, "engine", engine_names, 0, &engine));
fail:
    return st;
}

static cnn_status same_shape_reshape(cnn_layer *l)
{
    return cnn_tensor_reshape_like(l->top[0], l->bottom[0]);
}

static double count_flops(const cnn_layer *l) { return (double)l->bottom[0]->count; }

/* ---- ReLU --------------------------------------------------------------- */

typedef struct {
    float slope;
} relu_priv;

static cnn_status relu_setup(cnn_layer *l, cnn_cfg *cfg)
{
    cnn_status st = CNN_OK;
    cnn_cfg *p = NULL;
    CNN_TRY(cnn_layer_alloc_priv(l, sizeof(relu_priv)));
    relu_priv *r = l->priv;
    CNN_TRY(read_param(cfg, "relu_param", true, &p));
    if (p) CNN_TRY(cnn_cfg_float(p, "negative_slope", 0.f, &r->slope));
fail:
    return st;
}

static cnn_status relu_forward(cnn_layer *l)
{
    const relu_priv *r = l->priv;
    cnn_k_relu_forward(l->bottom[0]->count, r->slope, l->bottom[0]->data, l->top[0]->data);
    return CNN_OK;
}

static cnn_status relu_backward(cnn_layer *l)
{
    /* Like Caffe, this reads the bottom data, which in place is the output:
     * for slope >= 0 its sign is the input's. */
    const relu_priv *r = l->priv;
    if (l->propagate_down[0])
        cnn_k_relu_backward(l->bottom[0]->count, r->slope, l->bottom[0]->data,
                            l->top[0]->grad, l->bottom[0]->grad);
    return CNN_OK;
}

static cnn_status relu_forward_gpu(cnn_layer *l)
{
    cnn_status st = CNN_OK;
    const relu_priv *r = l->priv;
    const float *x;
    float *y;
    CNN_TRY(cnn_layer_gpu_io(l, false, &x, &y));
    CNN_TRY(cnn_cuda_relu_forward(l->cuda, l->bottom[0]->count, r->slope, x, y));
fail:
    return st;
}

static cnn_status relu_backward_gpu(cnn_layer *l)
{
    cnn_status st = CNN_OK;
    const relu_priv *r = l->priv;
    const float *x, *dy;
    float *dx;
    if (!l->propagate_down[0]) return CNN_OK;
    CNN_TRY(cnn_gpu_read(l->bottom[0], &x));
    CNN_TRY(cnn_layer_gpu_io(l, true, &dy, &dx));
    CNN_TRY(cnn_cuda_relu_backward(l->cuda, l->bottom[0]->count, r->slope, x, dy, dx));
fail:
    return st;
}

const cnn_layer_type cnn_layer_ReLU = {
    .name = "ReLU",
    .min_bottoms = 1,
    .max_bottoms = 1,
    .min_tops = 1,
    .max_tops = 1,
    .setup = relu_setup,
    .reshape = same_shape_reshape,
    .forward = relu_forward,
    .backward = relu_backward,
    .flops = count_flops,
    .forward_gpu = relu_forward_gpu,
    .backward_gpu = relu_backward_gpu,
};

/* ---- PReLU -------------------------------------------------------------- */

typedef struct {
    bool shared;
    cnn_filler filler;
    cnn_tensor *saved; /* (bottom shape) the input, kept when running in place */
    int n, c;          /* batch, channels */
    size_t dim;        /* values per (n, c) */
} prelu_priv;

static void prelu_destroy(cnn_layer *l)
{
    prelu_priv *p = l->priv;
    if (p) cnn_tensor_free(p->saved);
    free(p);
    l->priv = NULL;
}

static cnn_status prelu_setup(cnn_layer *l, cnn_cfg *cfg)
{
    cnn_status st = CNN_OK;
    cnn_cfg *p = NULL;
    CNN_TRY(cnn_layer_alloc_priv(l, sizeof(prelu_priv)));
    prelu_priv *r = l->priv;
    CNN_TRY(read_param(cfg, "prelu_param", false, &p));
    CNN_TRY(cnn_filler_parse(p, "filler", 0.25f, &r->filler));
    if (p) CNN_TRY(cnn_cfg_bool(p, "channel_shared", false, &r->shared));
fail:
    return st;
}

static cnn_status prelu_reshape(cnn_layer *l)
{
    cnn_status st = CNN_OK;
    prelu_priv *r = l->priv;
    const cnn_tensor *x = l->bottom[0];
    if (x->ndim < 2)
        return cnn_layer_error(l, CNN_ERR_SHAPE, "bottom needs at least 2 axes (N, C, ...), "
                                                 "has %d", x->ndim);
    r->n = x->shape[0];
    r->c = x->shape[1];
    r->dim = cnn_tensor_count_range(x, 2, x->ndim);
    int c = r->c;
    CNN_TRY(cnn_layer_param(l, 0, r->shared ? 0 : 1, &c, &r->filler, NULL));
    CNN_TRY(cnn_tensor_reshape_like(l->top[0], x));
    if (l->top[0] == l->bottom[0]) {
        if (!r->saved && !(r->saved = cnn_tensor_create(NULL)))
            return cnn_layer_error(l, CNN_ERR_MEMORY, "out of memory");
        CNN_TRY(cnn_tensor_reshape_like(r->saved, x));
        if (l->cuda) CNN_TRY(cnn_tensor_attach(r->saved, l->cuda));
    }
fail:
    return st;
}

static cnn_status prelu_forward(cnn_layer *l)
{
    const prelu_priv *r = l->priv;
    const cnn_tensor *x = l->bottom[0];
    if (r->saved && l->top[0] == l->bottom[0]) cnn_k_copy(x->count, x->data, r->saved->data);
    cnn_k_prelu_forward(r->n, r->c, r->dim, l->param[0]->data, r->shared, x->data,
                        l->top[0]->data);
    return CNN_OK;
}

static cnn_status prelu_backward(cnn_layer *l)
{
    const prelu_priv *r = l->priv;
    const float *x = l->top[0] == l->bottom[0] ? r->saved->data : l->bottom[0]->data;
    const float *dy = l->top[0]->grad;
    /* The slope gradient first: in place, dx overwrites dy. */
    cnn_k_prelu_slope_grad(r->n, r->c, r->dim, r->shared, x, dy, l->param[0]->grad);
    if (l->propagate_down[0])
        cnn_k_prelu_backward(r->n, r->c, r->dim, l->param[0]->data, r->shared, x, dy,
                             l->bottom[0]->grad);
    return CNN_OK;
}

static cnn_status prelu_forward_gpu(cnn_layer *l)
{
    cnn_status st = CNN_OK;
    const prelu_priv *r = l->priv;
    const float *x, *slope;
    float *y, *saved;
    CNN_TRY(cnn_gpu_read(l->param[0], &slope));
    CNN_TRY(cnn_layer_gpu_io(l, false, &x, &y));
    if (r->saved && l->top[0] == l->bottom[0]) {
        CNN_TRY(cnn_gpu_write(r->saved, &saved));
        CNN_TRY(cnn_cuda_copy(l->cuda, l->bottom[0]->count, x, saved));
    }
    CNN_TRY(cnn_cuda_prelu_forward(l->cuda, r->n, r->c, r->dim, slope, r->shared, x, y));
fail:
    return st;
}

static cnn_status prelu_backward_gpu(cnn_layer *l)
{
    cnn_status st = CNN_OK;
    const prelu_priv *r = l->priv;
    const float *x, *slope, *dy;
    float *dslope, *dx = NULL;
    CNN_TRY(cnn_gpu_read(l->top[0] == l->bottom[0] ? r->saved : l->bottom[0], &x));
    CNN_TRY(cnn_gpu_read(l->param[0], &slope));
    CNN_TRY(cnn_gpu_modify_grad(l->param[0], &dslope));
    if (l->propagate_down[0])
        CNN_TRY(cnn_layer_gpu_io(l, true, &dy, &dx));
    else
        CNN_TRY(cnn_gpu_read_grad(l->top[0], &dy));
    /* The slope gradient first: in place, dx overwrites dy. */
    CNN_TRY(cnn_cuda_prelu_slope_grad(l->cuda, r->n, r->c, r->dim, r->shared, x, dy, dslope));
    if (dx)
        CNN_TRY(cnn_cuda_prelu_backward(l->cuda, r->n, r->c, r->dim, slope, r->shared, x, dy,
                                        dx));
fail:
    return st;
}

static double prelu_flops(const cnn_layer *l) { return 2.0 * (double)l->bottom[0]->count; }

const cnn_layer_type cnn_layer_PReLU = {
    .name = "PReLU",
    .min_bottoms = 1,
    .max_bottoms = 1,
    .min_tops = 1,
    .max_tops = 1,
    .setup = prelu_setup,
    .reshape = prelu_reshape,
    .forward = prelu_forward,
    .backward = prelu_backward,
    .destroy = prelu_destroy,
    .flops = prelu_flops,
    .forward_gpu = prelu_forward_gpu,
    .backward_gpu = prelu_backward_gpu,
};

/* ---- Sigmoid and TanH ------------------------------------------------------ */

static cnn_status sigmoid_setup(cnn_layer *l, cnn_cfg *cfg)
{
    cnn_cfg *p = NULL;
    return read_param(cfg, "sigmoid_param", true, &p);
}

static cnn_status sigmoid_forward(cnn_layer *l)
{
    cnn_k_sigmoid_forward(l->bottom[0]->count, l->bottom[0]->data, l->top[0]->data);
    return CNN_OK;
}

static cnn_status sigmoid_backward(cnn_layer *l)
{
    if (l->propagate_down[0])
        cnn_k_sigmoid_backward(l->top[0]->count, l->top[0]->data, l->top[0]->grad,
                               l->bottom[0]->grad);
    return CNN_OK;
}

static double exp_flops(const cnn_layer *l) { return 4.0 * (double)l->bottom[0]->count; }

/* GPU passes of the activations whose gradient comes from their output
 * (Sigmoid, TanH): y = f(x), and dx from y and dy. */
typedef cnn_status (*cuda_unary_fn)(cnn_cuda_ctx *, size_t, const float *, float *);
typedef cnn_status (*cuda_unary_grad_fn)(cnn_cuda_ctx *, size_t, const float *, const float *,
                                         float *);

static cnn_status unary_forward_gpu(cnn_layer *l, cuda_unary_fn f)
{
    cnn_status st = CNN_OK;
    const float *x;
    float *y;
    CNN_TRY(cnn_layer_gpu_io(l, false, &x, &y));
    CNN_TRY(f(l->cuda, l->bottom[0]->count, x, y));
fail:
    return st;
}

static cnn_status unary_backward_gpu(cnn_layer *l, cuda_unary_grad_fn f)
{
    cnn_status st = CNN_OK;
    const float *y, *dy;
    float *dx;
    if (!l->propagate_down[0]) return CNN_OK;
    CNN_TRY(cnn_gpu_read(l->top[0], &y));
    CNN_TRY(cnn_layer_gpu_io(l, true, &dy, &dx));
    CNN_TRY(f(l->cuda, l->top[0]->count, y, dy, dx));
fail:
    return st;
}

static cnn_status sigmoid_forward_gpu(cnn_layer *l)
{
    return unary_forward_gpu(l, cnn_cuda_sigmoid_forward);
}

static cnn_status sigmoid_backward_gpu(cnn_layer *l)
{
    return unary_backward_gpu(l, cnn_cuda_sigmoid_backward);
}

const cnn_layer_type cnn_layer_Sigmoid = {
    .name = "Sigmoid",
    .min_bottoms = 1,
    .max_bottoms = 1,
    .min_tops = 1,
    .max_tops = 1,
    .setup = sigmoid_setup,
    .reshape = same_shape_reshape,
    .forward = sigmoid_forward,
    .backward = sigmoid_backward,
    .flops = exp_flops,
    .forward_gpu = sigmoid_forward_gpu,
    .backward_gpu = sigmoid_backward_gpu,
};

static cnn_status tanh_setup(cnn_layer *l, cnn_cfg *cfg)
{
    cnn_cfg *p = NULL;
    return read_param(cfg, "tanh_param", true, &p);
}

static cnn_status tanh_forward(cnn_layer *l)
{
    cnn_k_tanh_forward(l->bottom[0]->count, l->bottom[0]->data, l->top[0]->data);
    return CNN_OK;
}

static cnn_status tanh_backward(cnn_layer *l)
{
    if (l->propagate_down[0])
        cnn_k_tanh_backward(l->top[0]->count, l->top[0]->data, l->top[0]->grad,
                            l->bottom[0]->grad);
    return CNN_OK;
}

static cnn_status tanh_forward_gpu(cnn_layer *l)
{
    return unary_forward_gpu(l, cnn_cuda_tanh_forward);
}

static cnn_status tanh_backward_gpu(cnn_layer *l)
{
    return unary_backward_gpu(l, cnn_cuda_tanh_backward);
}

const cnn_layer_type cnn_layer_TanH = {
    .name = "TanH",
    .min_bottoms = 1,
    .max_bottoms = 1,
    .min_tops = 1,
    .max_tops = 1,
    .setup = tanh_setup,
    .reshape = same_shape_reshape,
    .forward = tanh_forward,
    .backward = tanh_backward,
    .flops = exp_flops,
    .forward_gpu = tanh_forward_gpu,
    .backward_gpu = tanh_backward_gpu,
};

/* ---- ELU ---------------------------------------------------------------- */

typedef struct {
    float alpha;
} elu_priv;

static cnn_status elu_setup(cnn_layer *l, cnn_cfg *cfg)
{
    cnn_status st = CNN_OK;
    cnn_cfg *p = NULL;
    CNN_TRY(cnn_layer_alloc_priv(l, sizeof(elu_priv)));
    elu_priv *e = l->priv;
    e->alpha = 1.f;
    CNN_TRY(read_param(cfg, "elu_param", false, &p));
    if (p) CNN_TRY(cnn_cfg_float(p, "alpha", 1.f, &e->alpha));
fail:
    return st;
}

static cnn_status elu_forward(cnn_layer *l)
{
    const elu_priv *e = l->priv;
    cnn_k_elu_forward(l->bottom[0]->count, e->alpha, l->bottom[0]->data, l->top[0]->data);
    return CNN_OK;
}

static cnn_status elu_backward(cnn_layer *l)
{
    /* As in Caffe: the bottom data is the output when in place, which has
     * the input's sign for alpha > 0. */
    const elu_priv *e = l->priv;
    if (l->propagate_down[0])
        cnn_k_elu_backward(l->bottom[0]->count, e->alpha, l->bottom[0]->data,
                           l->top[0]->data, l->top[0]->grad, l->bottom[0]->grad);
    return CNN_OK;
}

static cnn_status elu_forward_gpu(cnn_layer *l)
{
    cnn_status st = CNN_OK;
    const elu_priv *e = l->priv;
    const float *x;
    float *y;
    CNN_TRY(cnn_layer_gpu_io(l, false, &x, &y));
    CNN_TRY(cnn_cuda_elu_forward(l->cuda, l->bottom[0]->count, e->alpha, x, y));
fail:
    return st;
}

static cnn_status elu_backward_gpu(cnn_layer *l)
{
    cnn_status st = CNN_OK;
    const elu_priv *e = l->priv;
    const float *x, *y, *dy;
    float *dx;
    if (!l->propagate_down[0]) return CNN_OK;
    CNN_TRY(cnn_gpu_read(l->bottom[0], &x));
    CNN_TRY(cnn_gpu_read(l->top[0], &y));
    CNN_TRY(cnn_layer_gpu_io(l, true, &dy, &dx));
    CNN_TRY(cnn_cuda_elu_backward(l->cuda, l->bottom[0]->count, e->alpha, x, y, dy, dx));
fail:
    return st;
}

const cnn_layer_type cnn_layer_ELU = {
    .name = "ELU",
    .min_bottoms = 1,
    .max_bottoms = 1,
    .min_tops = 1,
    .max_tops = 1,
    .setup = elu_setup,
    .reshape = same_shape_reshape,
    .forward = elu_forward,
    .backward = elu_backward,
    .flops = exp_flops,
    .forward_gpu = elu_forward_gpu,
    .backward_gpu = elu_backward_gpu,
};
