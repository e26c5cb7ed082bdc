/* check_layers_spatial.c — Convolution, InnerProduct, Pooling and LRN:
 * finite-difference gradient checks in every mode, forward values against
 * hand-computed numbers, Caffe's output-size rounding, a batch large enough
 * to be split into GEMM chunks against a naive reference, and
 * configuration errors that name the layer. */
#include "testutil.h"

#include "kernels/kernels.h"

#define IN(dims)                                                                        \
    "layer { name: 'x' type: 'Input' top: 'x' input_param { shape { " dims " } } }\n"
#define D4 "dim: 2 dim: 4 dim: 6 dim: 5"
#define LAYER(type, params) \
    "layer { name: 'l' type: '" type "' bottom: 'x' top: 'y' " params " }\n"
#define FILLERS                                                                          \
    "weight_filler { type: 'gaussian' std: 0.5 } "                                       \
    "bias_filler { type: 'uniform' min: -1 max: 1 } "
#define CONV(params) LAYER("Convolution", "convolution_param { " params " " FILLERS "}")
#define IP(params) LAYER("InnerProduct", "inner_product_param { " params " " FILLERS "}")
#define POOL(params) LAYER("Pooling", "pooling_param { " params " }")
#define LRN(params) LAYER("LRN", "lrn_param { " params " }")

static void expect_near(float got, double want, double tol, const char *what, int i)
{
    ck_assert_msg(fabs(got - want) <= tol * fmax(1.0, fabs(want)),
                  "%s[%d]: got %.8g, want %.8g", what, i, got, want);
}

static void expect_values(const cnn_tensor *t, const double *want, size_t n, const char *what)
{
    ck_assert_uint_eq(t->count, n);
    for (size_t i = 0; i < n; i++) expect_near(t->data[i], want[i], 1e-5, what, (int)i);
}

static void set_values(cnn_tensor *t, const float *v, size_t count)
{
    ck_assert_ptr_nonnull(t);
    ck_assert_uint_eq(t->count, count);
    memcpy(t->data, v, count * sizeof(float));
}

static void gradcheck(const char *proto) { cnn_test_gradcheck(proto, "l", 1); }

/* ---- GEMM --------------------------------------------------------------- */

/* cnn_k_gemm against a double-precision loop, in every transpose mode and
 * with shapes large enough to be split across threads along m or along n. */
START_TEST(gemm_matches_naive)
{
    static const int shapes[3][3] = {{150, 40, 400}, {40, 150, 400}, {3, 5, 7}};
    for (int s = 0; s < 3; s++)
        for (int mode = 0; mode < 4; mode++) {
            int m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
            bool ta = mode & 1, tb = mode & 2;
            float *a = malloc(sizeof(float) * m * k), *b = malloc(sizeof(float) * k * n);
            float *c = malloc(sizeof(float) * m * n);
            cnn_rng r;
            cnn_rng_seed(&r, 9);
            for (int i = 0; i < m * k; i++) a[i] = (float)cnn_rng_uniform(&r) - 0.5f;
            for (int i = 0; i < k * n; i++) b[i] = (float)cnn_rng_uniform(&r) - 0.5f;
            for (int i = 0; i < m * n; i++) c[i] = (float)i / (m * n);
            cnn_k_gemm(ta, tb, m, n, k, 0.5f, a, b, 2.f, c);
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++) {
                    double want = 2.0 * (i * n + j) / (m * n);
                    for (int p = 0; p < k; p++)
                        want += 0.5 * (ta ? a[p * m + i] : a[i * k + p]) *
                                (tb ? b[j * k + p] : b[p * n + j]);
                    expect_near(c[i * n + j], want, 1e-4, ta ? (tb ? "TT" : "TN")
                                                            : (tb ? "NT" : "NN"), i * n + j);
                }
            free(a);
            free(b);
            free(c);
        }
}
END_TEST

/* ---- Convolution -------------------------------------------------------- */

START_TEST(conv_gradcheck_plain) { gradcheck(IN(D4) CONV("num_output: 3 kernel_size: 3")); }
END_TEST

START_TEST(conv_gradcheck_pad) { gradcheck(IN(D4) CONV("num_output: 3 kernel_size: 3 pad: 1")); }
END_TEST

START_TEST(conv_gradcheck_stride)
{
    gradcheck(IN(D4) CONV("num_output: 2 kernel_size: 2 stride: 2"));
    gradcheck(IN(D4) CONV("num_output: 2 kernel_size: 3 stride: 2 pad: 2"));
    gradcheck(IN(D4) CONV("num_output: 2 kernel_size: 2 stride: 3 stride: 1"));
}
END_TEST

START_TEST(conv_gradcheck_rect)
{
    gradcheck(IN(D4) CONV("num_output: 3 kernel_h: 3 kernel_w: 2 pad_h: 1 pad_w: 0 "
                          "stride_h: 1 stride_w: 2"));
    gradcheck(IN(D4) CONV("num_output: 2 kernel_size: 1 kernel_size: 3 pad: 0 pad: 1"));
}
END_TEST

START_TEST(conv_gradcheck_dilation)
{
    gradcheck(IN(D4) CONV("num_output: 3 kernel_size: 2 dilation: 2"));
    gradcheck(IN(D4) CONV("num_output: 2 kernel_size: 3 dilation: 2 pad: 2 stride: 2"));
}
END_TEST

START_TEST(conv_gradcheck_group)
{
    gradcheck(IN(D4) CONV("num_output: 4 kernel_size: 3 group: 2 pad: 1"));
    gradcheck(IN(D4) CONV("num_output: 4 kernel_size: 1 group: 4"));
}
END_TEST

START_TEST(conv_gradcheck_no_bias)
{
    gradcheck(IN(D4) CONV("num_output: 3 kernel_size: 3 bias_term: false"));
}
END_TEST

START_TEST(conv_gradcheck_1x1)
{
    gradcheck(IN(D4) CONV("num_output: 3 kernel_size: 1"));
    gradcheck(IN(D4) CONV("num_output: 4 kernel_size: 1 group: 2 bias_term: false"));
}
END_TEST

START_TEST(conv_gradcheck_single_image)
{
    gradcheck(IN("dim: 1 dim: 3 dim: 5 dim: 5") CONV("num_output: 2 kernel_size: 3 pad: 1"));
}
END_TEST

START_TEST(conv_gradcheck_two_bottoms)
{
    /* Two bottom/top pairs share one set of weights, as in Caffe. */
    cnn_test_gradcheck(
        "layer { name: 'x' type: 'Input' top: 'a' top: 'b' "
        "input_param { shape { dim: 2 dim: 2 dim: 4 dim: 4 } } }\n"
        "layer { name: 'l' type: 'Convolution' bottom: 'a' bottom: 'b' top: 'y' top: 'z' "
        "convolution_param { num_output: 2 kernel_size: 3 pad: 1 " FILLERS "} }\n",
        "l", 3);
}
END_TEST

static const float ramp16[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
static const float plus3x3[9] = {0, 1, 0, 1, 2, 1, 0, 1, 0};

/* A plus-shaped 3x3 stencil over the 4x4 ramp 1..16, bias 1, by hand. */
START_TEST(conv_forward_values)
{
    static const double pad1[16] = {10, 15, 20, 20, 27, 37, 43, 40,
                                    47, 61, 67, 60, 50, 67, 72, 60};
    static const double pad1_stride2[4] = {10, 20, 47, 67};
    static const double nopad[4] = {37, 43, 61, 67};
    const char *params[3] = {"pad: 1", "pad: 1 stride: 2", ""};
    const double *want[3] = {pad1, pad1_stride2, nopad};
    const size_t n[3] = {16, 4, 4};
    for (int c = 0; c < 3; c++) {
        char proto[512];
        snprintf(proto, sizeof proto,
                 IN("dim: 1 dim: 1 dim: 4 dim: 4")
                 LAYER("Convolution", "convolution_param { num_output: 1 kernel_size: 3 %s }"),
                 params[c]);
        cnn_net *net = cnn_test_net(proto, CNN_TEST);
        set_values(cnn_net_blob(net, "x"), ramp16, 16);
        set_values(cnn_net_param(net, "l", 0), plus3x3, 9);
        cnn_net_param(net, "l", 1)->data[0] = 1.f;
        ck_assert_int_eq(cnn_net_forward(net, NULL), CNN_OK);
        expect_values(cnn_net_blob(net, "y"), want[c], n[c], params[c]);
        cnn_net_free(net);
    }
}
END_TEST

START_TEST(conv_output_shapes)
{
    cnn_net *net = cnn_test_net(
        IN("dim: 1 dim: 3 dim: 227 dim: 227")
        "layer { name: 'c1' type: 'Convolution' bottom: 'x' top: 'c1' convolution_param { "
        "num_output: 4 kernel_size: 11 stride: 4 engine: CAFFE } }\n"
        "layer { name: 'c2' type: 'Convolution' bottom: 'c1' top: 'c2' convolution_param { "
        "num_output: 2 kernel_size: 5 pad: 2 group: 2 dilation: 2 } }\n",
        CNN_TEST);
    cnn_tensor *c1 = cnn_net_blob(net, "c1"), *c2 = cnn_net_blob(net, "c2");
    ck_assert_int_eq(c1->shape[1], 4);
    ck_assert_int_eq(c1->shape[2], 55);
    ck_assert_int_eq(c1->shape[3], 55);
    /* (55 + 4 - (2*4 + 1)) / 1 + 1 = 51 */
    ck_assert_int_eq(c2->shape[2], 51);
    ck_assert_int_eq(cnn_net_param(net, "c2", 0)->shape[1], 2);
    /* 2 * (outputs * C/group * kh * kw) + one bias add per output */
    double outs = 4.0 * 55 * 55;
    ck_assert(fabs(cnn_net_layer_flops(net, cnn_test_layer_index(net, "c1")) -
                   (2 * outs * 3 * 11 * 11 + outs)) < 1);
    cnn_net_free(net);
}
END_TEST

/* Naive direct convolution of x (n, c, h, w), for the chunked GEMM test. */
static double naive_conv(const float *x, const float *wt, int c, int h, int w, int k, int pad,
                         int img, int o, int oy, int ox)
{
    double s = 0;
    for (int ch = 0; ch < c; ch++)
        for (int i = 0; i < k; i++)
            for (int j = 0; j < k; j++) {
                int iy = oy - pad + i, ix = ox - pad + j;
                if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                s += (double)x[(((size_t)img * c + ch) * h + iy) * w + ix] *
                     wt[(((size_t)o * c + ch) * k + i) * k + j];
            }
    return s;
}

/* Fills the net's input x at random and checks the output y of its 3x3,
 * pad 1 convolution 'l' (o outputs) against direct loops: every step-th
 * position, and the whole first row (whose taps reach into the padding). */
static void expect_conv_forward(cnn_net *net, int n, int c, int h, int w, int o, int step,
                                uint64_t seed)
{
    cnn_tensor *x = cnn_net_blob(net, "x"), *y = cnn_net_blob(net, "y");
    cnn_tensor *wt = cnn_net_param(net, "l", 0), *b = cnn_net_param(net, "l", 1);
    cnn_test_fill_uniform(x, -1, 1, seed);
    ck_assert_int_eq(cnn_net_forward(net, NULL), CNN_OK);
    for (int img = 0; img < n; img++)
        for (int oc = 0; oc < o; oc++)
            for (int p = 0; p < h * w; p++) {
                if (p % step && p >= w) continue;
                double want = naive_conv(x->data, wt->data, c, h, w, 3, 1, img, oc, p / w,
                                         p % w) + b->data[oc];
                expect_near(y->data[((size_t)img * o + oc) * h * w + p], want, 1e-4, "y", p);
            }
}

/* Planes too big for im2col's padded stack copy (over 16384 floats padded)
 * take its tap-by-tap path. */
START_TEST(conv_large_plane)
{
    cnn_net *net = cnn_test_net(IN("dim: 1 dim: 2 dim: 130 dim: 130")
                                CONV("num_output: 2 kernel_size: 3 pad: 1"), CNN_TRAIN);
    expect_conv_forward(net, 1, 2, 130, 130, 2, 97, 6);
    cnn_net_free(net);
}
END_TEST

/* Images big enough that the batch is unfolded in several chunks: forward
 * and all gradients against direct loops. */
START_TEST(conv_chunked_batch)
{
    /* 144 x 784 floats of columns per image: the forward pass unfolds 9
     * images at a time (2^20 floats), so the batch of 10 runs as 9 and 1;
     * the backward pass 2 at a time (2^18), as 5 chunks of 2. */
    enum { N = 10, C = 16, H = 28, W = 28, K = 3, O = 2 };
    cnn_net *net = cnn_test_net(
        "force_backward: true\n" IN("dim: 10 dim: 16 dim: 28 dim: 28")
        CONV("num_output: 2 kernel_size: 3 pad: 1"), CNN_TRAIN);
    expect_conv_forward(net, N, C, H, W, O, 7, 5);
    cnn_tensor *x = cnn_net_blob(net, "x"), *y = cnn_net_blob(net, "y");
    cnn_tensor *wt = cnn_net_param(net, "l", 0), *b = cnn_net_param(net, "l", 1);
    /* With dy = 1 everywhere: db = N*H*W, dW[o][c][i][j] = sum of the shifted
     * input, dx[c][y][x] = sum over o of the weights that touch it. */
    for (size_t i = 0; i < y->count; i++) y->grad[i] = 1.f;
    memset(wt->grad, 0, wt->count * sizeof(float));
    memset(b->grad, 0, b->count * sizeof(float));
    int li = cnn_test_layer_index(net, "l");
    ck_assert_int_eq(cnn_net_layer_backward_all(net, li), CNN_OK);
    expect_near(b->grad[1], N * H * W, 1e-6, "db", 1);
    for (int ch = 0; ch < C; ch += 3)
        for (int i = 0; i < K; i++)
            for (int j = 0; j < K; j++) {
                double s = 0;
                for (int img = 0; img < N; img++)
                    for (int oy = 0; oy < H; oy++)
                        for (int ox = 0; ox < W; ox++) {
                            int iy = oy - 1 + i, ix = ox - 1 + j;
                            if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                            s += x->data[(((size_t)img * C + ch) * H + iy) * W + ix];
                        }
                int idx = ((1 * C + ch) * K + i) * K + j;
                expect_near(wt->grad[idx], s, 1e-3, "dW", idx);
            }
    for (int img = 0; img < N; img++)
        for (int ch = 0; ch < C; ch += 7)
            for (int p = 0; p < H * W; p += 5) {
                int iy = p / W, ix = p % W;
                double s = 0;
                for (int o = 0; o < O; o++)
                    for (int i = 0; i < K; i++)
                        for (int j = 0; j < K; j++) {
                            int oy = iy + 1 - i, ox = ix + 1 - j;
                            if (oy < 0 || oy >= H || ox < 0 || ox >= W) continue;
                            s += wt->data[((o * C + ch) * K + i) * K + j];
                        }
                expect_near(x->grad[(((size_t)img * C + ch) * H) * W + p], s, 1e-4, "dx", p);
            }
    cnn_net_free(net);
}
END_TEST

START_TEST(conv_errors)
{
    cnn_test_net_fails(IN(D4) CONV("num_output: 3 kernel_size: 3 group: 3"), CNN_ERR_CONFIG,
                       "layer 'l' (Convolution): 4 input channels are not divisible by group 3");
    cnn_test_net_fails(IN(D4) CONV("num_output: 3 kernel_size: 3 group: 2"), CNN_ERR_CONFIG,
                       "num_output 3 is not a multiple of group 2");
    cnn_test_net_fails(IN(D4) CONV("kernel_size: 3"), CNN_ERR_CONFIG, "layer 'l'");
    cnn_test_net_fails(IN(D4) CONV("num_output: 2"), CNN_ERR_CONFIG, "kernel_size");
    cnn_test_net_fails(IN(D4) CONV("num_output: 2 kernel_size: 3 stride: 0"), CNN_ERR_CONFIG,
                       "stride must be nonzero");
    cnn_test_net_fails(IN(D4) CONV("num_output: 2 kernel_h: 3"), CNN_ERR_CONFIG,
                       "kernel size must be nonzero");
    cnn_test_net_fails(IN(D4) CONV("num_output: 2 kernel_size: 3 kernel_h: 3 kernel_w: 3"),
                       CNN_ERR_CONFIG, "not both");
    cnn_test_net_fails(IN(D4) CONV("num_output: 2 kernel_size: 9"), CNN_ERR_SHAPE,
                       "larger than the padded input");
    cnn_test_net_fails(IN(D4) CONV("num_output: 2 kernel_size: 3 dilation: 3"), CNN_ERR_SHAPE,
                       "larger than the padded input");
    /* Values that overflowed 32-bit geometry (found by fuzzing: a crash). */
    cnn_test_net_fails(IN(D4) CONV("num_output: 2 kernel_size: 3 pad: 2147483647"),
                       CNN_ERR_SHAPE, "output of 4294967298x4294967297 is too large");
    cnn_test_net_fails(IN(D4) CONV("num_output: 2 kernel_size: 3 dilation: 2147483647"),
                       CNN_ERR_SHAPE, "kernel 4294967295x4294967295 (dilated) is larger than "
                       "the padded input 6x5");
    cnn_test_net_fails(IN(D4) CONV("num_output: 2 kernel_size: 3 stride_w: 2"), CNN_ERR_CONFIG,
                       "got 0 high, 2 wide: give stride, or both stride_h and stride_w");
    cnn_test_net_fails(IN(D4) CONV("num_output: 2 kernel_size: 3 axis: 2"),
                       CNN_ERR_UNSUPPORTED, "only axis 1");
    cnn_test_net_fails(IN(D4) CONV("num_output: 2 kernel_size: 3 kernel_size: 3 "
                                   "kernel_size: 3"), CNN_ERR_UNSUPPORTED, "2-d");
    cnn_test_net_fails(IN("dim: 2 dim: 4 dim: 6") CONV("num_output: 2 kernel_size: 3"),
                       CNN_ERR_UNSUPPORTED, "4-d input");
    cnn_test_net_fails(IN(D4) LAYER("Convolution", ""), CNN_ERR_CONFIG, "convolution_param");
}
END_TEST

/* ---- InnerProduct ------------------------------------------------------- */

START_TEST(ip_gradcheck_plain) { gradcheck(IN(D4) IP("num_output: 5")); }
END_TEST

START_TEST(ip_gradcheck_axis2)
{
    gradcheck(IN("dim: 2 dim: 3 dim: 4") IP("num_output: 5 axis: 2"));
    gradcheck(IN(D4) IP("num_output: 3 axis: -2"));
}
END_TEST

START_TEST(ip_gradcheck_transpose) { gradcheck(IN(D4) IP("num_output: 4 transpose: true")); }
END_TEST

START_TEST(ip_gradcheck_no_bias) { gradcheck(IN(D4) IP("num_output: 4 bias_term: false")); }
END_TEST

START_TEST(ip_forward_values)
{
    /* x (2, 3), W (2, 3), b (2): y = x W^T + b; the transposed layer holds
     * W^T (3, 2) and must give the same. */
    static const float x[6] = {1, 2, 3, -1, 0, 2};
    static const float w[6] = {1, 0, -1, 2, 1, 0.5f};
    static const float wt[6] = {1, 2, 0, 1, -1, 0.5f};
    static const float b[2] = {0.5f, -1};
    static const double want[4] = {1 - 3 + 0.5, 2 + 2 + 1.5 - 1, -1 - 2 + 0.5, -2 + 1 - 1};
    const char *protos[2] = {
        IN("dim: 2 dim: 3") LAYER("InnerProduct", "inner_product_param { num_output: 2 }"),
        IN("dim: 2 dim: 3")
        LAYER("InnerProduct", "inner_product_param { num_output: 2 transpose: true }")};
    for (int t = 0; t < 2; t++) {
        cnn_net *net = cnn_test_net(protos[t], CNN_TEST);
        set_values(cnn_net_blob(net, "x"), x, 6);
        set_values(cnn_net_param(net, "l", 0), t ? wt : w, 6);
        set_values(cnn_net_param(net, "l", 1), b, 2);
        ck_assert_int_eq(cnn_net_forward(net, NULL), CNN_OK);
        expect_values(cnn_net_blob(net, "y"), want, 4, t ? "transposed" : "plain");
        cnn_net_free(net);
    }
}
END_TEST

START_TEST(ip_shapes_and_errors)
{
    cnn_net *net = cnn_test_net(IN(D4) IP("num_output: 7 axis: 2"), CNN_TEST);
    cnn_tensor *y = cnn_net_blob(net, "y");
    ck_assert_int_eq(y->ndim, 3);
    ck_assert_int_eq(y->shape[0], 2);
    ck_assert_int_eq(y->shape[1], 4);
    ck_assert_int_eq(y->shape[2], 7);
    ck_assert_int_eq(cnn_net_param(net, "l", 0)->shape[1], 30);
    ck_assert(fabs(cnn_net_layer_flops(net, cnn_test_layer_index(net, "l")) -
                   (2.0 * 8 * 7 * 30 + 8 * 7)) < 1e-6);
    cnn_net_free(net);
    cnn_test_net_fails(IN(D4) IP("axis: 1"), CNN_ERR_CONFIG, "layer 'l' (InnerProduct)");
    cnn_test_net_fails(IN(D4) IP("num_output: 2 axis: 4"), CNN_ERR_CONFIG, "axis 4");
}
END_TEST

/* ---- Pooling ------------------------------------------------------------ */

/* Gives every input a distinct value (a shuffled grid) so that no window
 * has a near-tie that the finite-difference step could flip. */
static void distinct_inputs(cnn_net *n)
{
    cnn_tensor *x = cnn_net_blob(n, "x");
    cnn_rng r;
    cnn_rng_seed(&r, 3);
    for (size_t i = 0; i < x->count; i++) x->data[i] = -1.f + 2.f * (i + 0.5f) / x->count;
    for (size_t i = x->count; i > 1; i--) {
        size_t j = cnn_rng_below(&r, (uint32_t)i);
        float t = x->data[i - 1];
        x->data[i - 1] = x->data[j];
        x->data[j] = t;
    }
}

static void gradcheck_max(const char *proto)
{
    cnn_test_gradcheck_ex(proto, "l", 1, 1e-3, 1e-2, CNN_TRAIN, distinct_inputs);
}

START_TEST(pool_gradcheck_max)
{
    gradcheck_max(IN(D4) POOL("pool: MAX kernel_size: 2 stride: 2"));
    gradcheck_max(IN(D4) POOL("pool: MAX kernel_size: 3 stride: 2 pad: 1"));
    gradcheck_max(IN(D4) POOL("pool: MAX kernel_h: 3 kernel_w: 2 stride_h: 1 stride_w: 2"));
    gradcheck_max(IN(D4) POOL("pool: MAX kernel_size: 2 stride: 3"));
    gradcheck_max(IN(D4) POOL("pool: MAX global_pooling: true"));
    gradcheck_max(IN(D4) POOL("pool: MAX kernel_size: 3 stride: 2 round_mode: FLOOR"));
}
END_TEST

START_TEST(pool_gradcheck_max_mask_top)
{
    cnn_test_gradcheck_ex(IN(D4) "layer { name: 'l' type: 'Pooling' bottom: 'x' top: 'y' "
                          "top: 'mask' pooling_param { pool: MAX kernel_size: 3 stride: 2 } }\n",
                          "l", 1, 1e-3, 1e-2, CNN_TRAIN, distinct_inputs);
}
END_TEST

START_TEST(pool_gradcheck_ave)
{
    gradcheck(IN(D4) POOL("pool: AVE kernel_size: 2 stride: 2"));
    gradcheck(IN(D4) POOL("pool: AVE kernel_size: 3 stride: 2 pad: 1"));
    gradcheck(IN(D4) POOL("pool: AVE kernel_size: 3 pad: 2"));
    gradcheck(IN(D4) POOL("pool: AVE kernel_h: 2 kernel_w: 3 stride_h: 2 stride_w: 1"));
    gradcheck(IN(D4) POOL("pool: AVE kernel_size: 2 stride: 3"));
    gradcheck(IN(D4) POOL("pool: AVE global_pooling: true"));
    gradcheck(IN(D4) POOL("pool: AVE kernel_size: 3 stride: 2 pad: 1 round_mode: FLOOR"));
}
END_TEST

/* Runs one pooling layer over the 4x4 input below, returning the net. */
static cnn_net *pool_4x4(const char *params, bool mask_top)
{
    static const float x[16] = {1, 5, 2, 0, 3, 4, 8, 7, 9, 6, 1, 2, 0, 3, 4, 5};
    char proto[512];
    snprintf(proto, sizeof proto,
             IN("dim: 1 dim: 1 dim: 4 dim: 4")
             "layer { name: 'l' type: 'Pooling' bottom: 'x' top: 'y' %s "
             "pooling_param { %s } }\n", mask_top ? "top: 'mask'" : "", params);
    cnn_net *net = cnn_test_net(proto, CNN_TEST);
    set_values(cnn_net_blob(net, "x"), x, 16);
    ck_assert_int_eq(cnn_net_forward(net, NULL), CNN_OK);
    return net;
}

START_TEST(pool_forward_values)
{
    static const double max2[4] = {5, 8, 9, 5}, mask2[4] = {1, 6, 8, 15};
    static const double ave2[4] = {13 / 4., 17 / 4., 18 / 4., 12 / 4.};
    static const double max3[4] = {9, 8, 9, 8};
    /* Caffe's divisor: the window clipped to the padded input (9, 6 or 4). */
    static const double ave3p[9] = {13 / 9., 26 / 9., 7 / 6., 25 / 9., 40 / 9., 14 / 6.,
                                    3 / 6.,  12 / 6., 5 / 4.};
    static const double global[2] = {9, 60 / 16.};
    cnn_net *net = pool_4x4("pool: MAX kernel_size: 2 stride: 2", true);
    expect_values(cnn_net_blob(net, "y"), max2, 4, "max 2x2");
    expect_values(cnn_net_blob(net, "mask"), mask2, 4, "mask 2x2");
    cnn_net_free(net);
    net = pool_4x4("pool: AVE kernel_size: 2 stride: 2", false);
    expect_values(cnn_net_blob(net, "y"), ave2, 4, "ave 2x2");
    cnn_net_free(net);
    net = pool_4x4("kernel_size: 3", false);
    expect_values(cnn_net_blob(net, "y"), max3, 4, "max 3x3 stride 1");
    cnn_net_free(net);
    net = pool_4x4("pool: AVE kernel_size: 3 stride: 2 pad: 1", false);
    expect_values(cnn_net_blob(net, "y"), ave3p, 9, "ave 3x3 pad 1");
    cnn_net_free(net);
    net = pool_4x4("pool: MAX global_pooling: true", false);
    expect_values(cnn_net_blob(net, "y"), global, 1, "global max");
    cnn_net_free(net);
    net = pool_4x4("pool: AVE global_pooling: true engine: CAFFE", false);
    expect_values(cnn_net_blob(net, "y"), global + 1, 1, "global ave");
    cnn_net_free(net);
}
END_TEST

/* Output side of a pooling of a side x side input. */
static int pooled_side(int side, const char *params)
{
    char proto[512];
    snprintf(proto, sizeof proto,
             "layer { name: 'x' type: 'Input' top: 'x' input_param { shape { dim: 1 dim: 1 "
             "dim: %d dim: %d } } }\n" POOL("%s"), side, side, params);
    cnn_net *net = cnn_test_net(proto, CNN_TEST);
    cnn_tensor *y = cnn_net_blob(net, "y");
    ck_assert_int_eq(y->shape[2], y->shape[3]);
    int s = y->shape[2];
    cnn_net_free(net);
    return s;
}

START_TEST(pool_output_rounding)
{
    /* AlexNet's pool 3 stride 2. */
    ck_assert_int_eq(pooled_side(55, "pool: MAX kernel_size: 3 stride: 2"), 27);
    ck_assert_int_eq(pooled_side(27, "pool: MAX kernel_size: 3 stride: 2"), 13);
    ck_assert_int_eq(pooled_side(13, "pool: MAX kernel_size: 3 stride: 2"), 6);
    /* Ceil by default, floor on request. */
    ck_assert_int_eq(pooled_side(6, "pool: MAX kernel_size: 3 stride: 2"), 3);
    ck_assert_int_eq(pooled_side(6, "pool: MAX kernel_size: 3 stride: 2 round_mode: FLOOR"),
                     2);
    ck_assert_int_eq(pooled_side(32, "pool: AVE kernel_size: 3 stride: 2"), 16);
    /* Padding: the last window must start inside the image (Caffe clips). */
    ck_assert_int_eq(pooled_side(3, "pool: MAX kernel_size: 2 stride: 2 pad: 1"), 2);
    ck_assert_int_eq(pooled_side(4, "pool: MAX kernel_size: 2 stride: 2 pad: 1"), 3);
    ck_assert_int_eq(pooled_side(7, "pool: AVE kernel_size: 3 stride: 2 pad: 1"), 4);
    ck_assert_int_eq(pooled_side(7, "pool: AVE global_pooling: true"), 1);
}
END_TEST

START_TEST(pool_errors)
{
    cnn_test_net_fails(IN(D4) POOL("pool: MEDIAN kernel_size: 2"), CNN_ERR_CONFIG,
                       "layer 'l' (Pooling)");
    cnn_test_net_fails(IN(D4) POOL("pool: MEDIAN kernel_size: 2"), CNN_ERR_CONFIG, "MEDIAN");
    cnn_test_net_fails(IN(D4) POOL("pool: STOCHASTIC kernel_size: 2"), CNN_ERR_UNSUPPORTED,
                       "layer 'l' (Pooling): pool: STOCHASTIC is not supported");
    cnn_test_net_fails(IN(D4) POOL("pool: MAX"), CNN_ERR_CONFIG, "kernel_size");
    cnn_test_net_fails(IN(D4) POOL("kernel_h: 2"), CNN_ERR_CONFIG, "kernel_size");
    cnn_test_net_fails(IN(D4) POOL("kernel_size: 2 kernel_h: 2 kernel_w: 2"), CNN_ERR_CONFIG,
                       "not both");
    cnn_test_net_fails(IN(D4) POOL("global_pooling: true kernel_size: 2"), CNN_ERR_CONFIG,
                       "global_pooling");
    cnn_test_net_fails(IN(D4) POOL("kernel_size: 2 stride: 0"), CNN_ERR_CONFIG,
                       "stride must be nonzero");
    cnn_test_net_fails(IN(D4) POOL("kernel_size: 2 pad: 2"), CNN_ERR_CONFIG,
                       "smaller than the kernel");
    cnn_test_net_fails(IN(D4) POOL("kernel_size: 9"), CNN_ERR_SHAPE, "does not fit");
    cnn_test_net_fails(IN(D4) "layer { name: 'l' type: 'Pooling' bottom: 'x' top: 'y' "
                       "top: 'm' pooling_param { pool: AVE kernel_size: 2 } }\n",
                       CNN_ERR_CONFIG, "mask");
}
END_TEST

/* ---- LRN ---------------------------------------------------------------- */

START_TEST(lrn_gradcheck_across)
{
    gradcheck(IN(D4) LRN(""));
    gradcheck(IN("dim: 2 dim: 7 dim: 3 dim: 2") LRN("local_size: 3 alpha: 2 beta: 0.6 k: 2"));
}
END_TEST

START_TEST(lrn_gradcheck_within)
{
    gradcheck(IN(D4) LRN("norm_region: WITHIN_CHANNEL local_size: 3"));
    gradcheck(IN(D4) LRN("norm_region: WITHIN_CHANNEL local_size: 5 alpha: 3 beta: 0.6"));
}
END_TEST

/* LRN of x (1, c, h, w) by the definitions, in double. */
static double lrn_ref(const float *x, int c, int h, int w, int size, double alpha,
                      double beta, double k, bool within, int ch, int y, int xx)
{
    int pre = (size - 1) / 2;
    double s = 0;
    if (within) {
        for (int i = y - pre; i <= y + pre; i++)
            for (int j = xx - pre; j <= xx + pre; j++)
                if (i >= 0 && i < h && j >= 0 && j < w) {
                    double v = x[((size_t)ch * h + i) * w + j];
                    s += v * v;
                }
        s = 1 + alpha / (size * size) * s;
    } else {
        for (int j = ch - pre; j <= ch + pre; j++)
            if (j >= 0 && j < c) {
                double v = x[((size_t)j * h + y) * w + xx];
                s += v * v;
            }
        s = k + alpha / size * s;
    }
    return x[((size_t)ch * h + y) * w + xx] * pow(s, -beta);
}

START_TEST(lrn_forward_values)
{
    const char *params[3] = {"local_size: 3 alpha: 0.5 beta: 0.75 k: 2",
                             "local_size: 5 alpha: 1e-2 beta: 0.6",
                             "norm_region: WITHIN_CHANNEL local_size: 3 alpha: 0.5 k: 7"};
    const int size[3] = {3, 5, 3};
    const double alpha[3] = {0.5, 1e-2, 0.5}, beta[3] = {0.75, 0.6, 0.75}, k[3] = {2, 1, 7};
    for (int c = 0; c < 3; c++) {
        char proto[512];
        snprintf(proto, sizeof proto, IN("dim: 1 dim: 6 dim: 3 dim: 4") LRN("%s"), params[c]);
        cnn_net *net = cnn_test_net(proto, CNN_TEST);
        cnn_tensor *x = cnn_net_blob(net, "x"), *y = cnn_net_blob(net, "y");
        cnn_test_fill_uniform(x, -2, 2, 11);
        ck_assert_int_eq(cnn_net_forward(net, NULL), CNN_OK);
        for (int i = 0; i < 6 * 3 * 4; i++)
            expect_near(y->data[i],
                        lrn_ref(x->data, 6, 3, 4, size[c], alpha[c], beta[c], k[c], c == 2,
                                i / 12, i / 4 % 3, i % 4),
                        1e-5, params[c], i);
        cnn_net_free(net);
    }
}
END_TEST

START_TEST(lrn_errors)
{
    cnn_test_net_fails(IN(D4) LRN("local_size: 4"), CNN_ERR_CONFIG,
                       "layer 'l' (LRN): local_size must be odd");
    cnn_test_net_fails(IN("dim: 2 dim: 4") LRN(""), CNN_ERR_SHAPE, "4-d input");
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("layers_spatial");
    TCase *tc = tcase_create("gemm");
    tcase_add_test(tc, gemm_matches_naive);
    suite_add_tcase(s, tc);
    tc = tcase_create("conv");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, conv_gradcheck_plain);
    tcase_add_test(tc, conv_gradcheck_pad);
    tcase_add_test(tc, conv_gradcheck_stride);
    tcase_add_test(tc, conv_gradcheck_rect);
    tcase_add_test(tc, conv_gradcheck_dilation);
    tcase_add_test(tc, conv_gradcheck_group);
    tcase_add_test(tc, conv_gradcheck_no_bias);
    tcase_add_test(tc, conv_gradcheck_1x1);
    tcase_add_test(tc, conv_gradcheck_single_image);
    tcase_add_test(tc, conv_gradcheck_two_bottoms);
    tcase_add_test(tc, conv_forward_values);
    tcase_add_test(tc, conv_output_shapes);
    tcase_add_test(tc, conv_chunked_batch);
    tcase_add_test(tc, conv_large_plane);
    tcase_add_test(tc, conv_errors);
    suite_add_tcase(s, tc);
    tc = tcase_create("inner_product");
    tcase_add_test(tc, ip_gradcheck_plain);
    tcase_add_test(tc, ip_gradcheck_axis2);
    tcase_add_test(tc, ip_gradcheck_transpose);
    tcase_add_test(tc, ip_gradcheck_no_bias);
    tcase_add_test(tc, ip_forward_values);
    tcase_add_test(tc, ip_shapes_and_errors);
    suite_add_tcase(s, tc);
    tc = tcase_create("pooling");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, pool_gradcheck_max);
    tcase_add_test(tc, pool_gradcheck_max_mask_top);
    tcase_add_test(tc, pool_gradcheck_ave);
    tcase_add_test(tc, pool_forward_values);
    tcase_add_test(tc, pool_output_rounding);
    tcase_add_test(tc, pool_errors);
    suite_add_tcase(s, tc);
    tc = tcase_create("lrn");
    tcase_add_test(tc, lrn_gradcheck_across);
    tcase_add_test(tc, lrn_gradcheck_within);
    tcase_add_test(tc, lrn_forward_values);
    tcase_add_test(tc, lrn_errors);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return cnn_test_run(suite()) != 0; }
