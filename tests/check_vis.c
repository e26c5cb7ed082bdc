/* check_vis.c — tests of core/vis.c, core/adversarial.c and core/plot.c: the
 * input gradient against central differences (branches, in-place layers, a
 * train net whose scores go through a Split), saliency and occlusion on a
 * hand-set linear model whose class depends on one region, class-model ascent,
 * FGSM and the targeted attack, sample sources, and the drawing helpers. */
#include <unistd.h>

#include "core/adversarial.h"
#include "core/image.h"
#include "core/plot.h"
#include "core/vis.h"
#include "testutil.h"

/* Two branches from the input (a Split), an in-place TanH, average pooling,
 * concatenation; "side" is a branch that does not reach the scores. */
static const char *branchy =
    "layer { name: 'data' type: 'Input' top: 'data'\n"
    "        input_param { shape { dim: 2 dim: 2 dim: 6 dim: 6 } } }\n"
    "layer { name: 'c1' type: 'Convolution' bottom: 'data' top: 'c1'\n"
    "  convolution_param { num_output: 3 kernel_size: 3\n"
    "                      weight_filler { type: 'gaussian' std: 0.5 }\n"
    "                      bias_filler { type: 'gaussian' std: 0.1 } } }\n"
    "layer { name: 't1' type: 'TanH' bottom: 'c1' top: 'c1' }\n"
    "layer { name: 'p1' type: 'Pooling' bottom: 'c1' top: 'p1'\n"
    "        pooling_param { pool: AVE kernel_size: 2 stride: 2 } }\n"
    "layer { name: 'c2' type: 'Convolution' bottom: 'data' top: 'c2'\n"
    "  convolution_param { num_output: 2 kernel_size: 4 stride: 2\n"
    "                      weight_filler { type: 'gaussian' std: 0.5 } } }\n"
    "layer { name: 'side' type: 'Sigmoid' bottom: 'c2' top: 'side' }\n"
    "layer { name: 'cat' type: 'Concat' bottom: 'p1' bottom: 'c2' top: 'cat' }\n"
    "layer { name: 'ip' type: 'InnerProduct' bottom: 'cat' top: 'ip'\n"
    "  inner_product_param { num_output: 4 weight_filler { type: 'gaussian' std: 0.5 } } }\n"
    "layer { name: 'prob' type: 'Softmax' bottom: 'ip' top: 'prob' }\n";

/* sum(w * scores) after a forward pass from the input. */
static double objective(cnn_net *n, cnn_tensor *in, cnn_tensor *sc, const float *w)
{
    ck_assert_msg(cnn_vis_forward_from(n, in) == CNN_OK, "%s", cnn_error_message());
    double s = 0;
    for (size_t i = 0; i < sc->count; i++) s += (double)w[i] * sc->data[i];
    return s;
}

static void check_gradient(cnn_net *n, const char *input, const char *scores, double tol)
{
    cnn_tensor *in = cnn_net_blob(n, input), *sc = cnn_net_blob(n, scores);
    ck_assert(in && sc);
    cnn_test_fill_uniform(in, -1, 1, 7);
    ck_assert(cnn_vis_forward_from(n, in) == CNN_OK);
    float *w = malloc(sc->count * sizeof *w), *g = malloc(in->count * sizeof *g);
    cnn_rng r;
    cnn_rng_seed(&r, 3);
    for (size_t i = 0; i < sc->count; i++) w[i] = (float)cnn_rng_gaussian(&r);
    ck_assert_msg(cnn_input_gradient(n, scores, w, input, g) == CNN_OK, "%s",
                  cnn_error_message());
    /* The input's own grad holds the same values. */
    for (size_t i = 0; i < in->count; i++) ck_assert_float_eq(g[i], in->grad[i]);
    double worst = 0, gmax = 0;
    for (size_t i = 0; i < in->count; i++) {
        float saved = in->data[i];
        const double h = 1e-2;
        in->data[i] = (float)(saved + h);
        double lp = objective(n, in, sc, w);
        in->data[i] = (float)(saved - h);
        double lm = objective(n, in, sc, w);
        in->data[i] = saved;
        double num = (lp - lm) / (2 * h), err = fabs(num - g[i]);
        worst = err > worst ? err : worst;
        gmax = fabs(g[i]) > gmax ? fabs(g[i]) : gmax;
    }
    ck_assert_msg(gmax > 1e-3, "gradient is all zero");
    ck_assert_msg(worst <= tol * (gmax > 1 ? gmax : 1), "max error %g (max |grad| %g)", worst,
                  gmax);
    /* Repeating gives the same result (no stale gradients accumulate). */
    float *g2 = malloc(in->count * sizeof *g2);
    ck_assert(cnn_vis_forward_from(n, in) == CNN_OK);
    ck_assert(cnn_input_gradient(n, scores, w, input, g2) == CNN_OK);
    for (size_t i = 0; i < in->count; i++) ck_assert_float_eq(g[i], g2[i]);
    /* Parameter gradients are left at zero. */
    for (int p = 0; p < cnn_net_num_params(n); p++) {
        const cnn_tensor *t = cnn_net_param_info(n, p)->tensor;
        for (size_t i = 0; i < t->count; i++) ck_assert_float_eq(t->grad[i], 0.f);
    }
    free(w);
    free(g);
    free(g2);
}

START_TEST(test_input_gradient_finite_differences)
{
    cnn_net *n = cnn_test_net(branchy, CNN_TEST);
    check_gradient(n, "data", "ip", 2e-3);
    /* Through the Softmax too: probabilities as scores. */
    check_gradient(n, "data", "prob", 2e-3);
    cnn_tensor *sc = NULL;
    ck_assert(cnn_vis_find_scores(n, NULL, &sc) == CNN_OK);
    ck_assert_str_eq(sc->name, "ip");
    cnn_net_free(n);
}
END_TEST

/* A train/test net: labels from an Input, scores read by a loss and an
 * Accuracy through a Split; max pooling and an in-place ReLU. */
static const char *trainy =
    "layer { name: 'data' type: 'Input' top: 'data'\n"
    "        input_param { shape { dim: 3 dim: 1 dim: 8 dim: 8 } } }\n"
    "layer { name: 'label' type: 'Input' top: 'label' input_param { shape { dim: 3 } } }\n"
    "layer { name: 'c1' type: 'Convolution' bottom: 'data' top: 'c1'\n"
    "  convolution_param { num_output: 4 kernel_size: 3 weight_filler { type: 'xavier' } } }\n"
    "layer { name: 'r1' type: 'ReLU' bottom: 'c1' top: 'c1' }\n"
    "layer { name: 'p1' type: 'Pooling' bottom: 'c1' top: 'p1'\n"
    "        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }\n"
    "layer { name: 'ip' type: 'InnerProduct' bottom: 'p1' top: 'ip'\n"
    "  inner_product_param { num_output: 3 weight_filler { type: 'xavier' } } }\n"
    "layer { name: 'loss' type: 'SoftmaxWithLoss' bottom: 'ip' bottom: 'label' top: 'loss' }\n"
    "layer { name: 'acc' type: 'Accuracy' bottom: 'ip' bottom: 'label' top: 'acc' }\n";

START_TEST(test_input_gradient_train_net)
{
    cnn_net *n = cnn_test_net(trainy, CNN_TEST);
    cnn_tensor *sc = NULL, *in = NULL;
    ck_assert(cnn_vis_find_scores(n, NULL, &sc) == CNN_OK);
    ck_assert(cnn_vis_find_input(n, NULL, &in) == CNN_OK);
    ck_assert_str_eq(in->name, "data");
    /* Max pooling and ReLU have kinks: a larger tolerance, random inputs. */
    check_gradient(n, "data", sc->name, 3e-2);
    check_gradient(n, "data", "ip", 3e-2);
    /* The label does not depend on the data; the loss cannot be a score of
     * the label; unknown blobs are errors. */
    ck_assert(cnn_input_gradient(n, "ip", NULL, "label", NULL) != CNN_OK);
    ck_assert(strstr(cnn_error_message(), "not computed from"));
    ck_assert(cnn_input_gradient(n, "nope", NULL, "data", NULL) == CNN_ERR_ARG);
    ck_assert(cnn_input_gradient(n, "ip", NULL, "nope", NULL) == CNN_ERR_ARG);
    /* The loss gradient from SoftmaxWithLoss itself agrees with ours. */
    cnn_tensor *label = cnn_net_blob(n, "label"), *ip = cnn_net_blob(n, "ip");
    for (int i = 0; i < 3; i++) label->data[i] = (float)i;
    cnn_test_fill_uniform(in, 0, 1, 11);
    float *mine = malloc(in->count * sizeof *mine), *sign = malloc(in->count * sizeof *sign);
    float g[9];
    int labels[3] = {0, 1, 2};
    ck_assert(cnn_vis_forward_from(n, in) == CNN_OK);
    cnn_adv_loss_grad(ip->data, 3, 3, labels, g);
    ck_assert(cnn_input_gradient(n, "ip", g, "data", mine) == CNN_OK);
    ck_assert(cnn_adv_loss_sign(n, "data", "ip", labels, sign) == CNN_OK);
    for (size_t i = 0; i < in->count; i++)
        ck_assert_float_eq(sign[i], mine[i] > 0 ? 1.f : mine[i] < 0 ? -1.f : 0.f);
    /* Reference: the net's own backward with force_backward: the loss is
     * the mean over the 3 samples, ours the sum. */
    char *fb = malloc(strlen(trainy) + 32);
    sprintf(fb, "force_backward: true\n%s", trainy);
    cnn_net *ref = cnn_test_net(fb, CNN_TEST);
    free(fb);
    ck_assert(cnn_net_copy_params(ref, n) == CNN_OK);
    cnn_tensor *rin = cnn_net_blob(ref, "data");
    memcpy(rin->data, in->data, in->count * sizeof(float));
    for (int i = 0; i < 3; i++) cnn_net_blob(ref, "label")->data[i] = (float)i;
    ck_assert(cnn_net_forward(ref, NULL) == CNN_OK);
    ck_assert(cnn_net_backward(ref) == CNN_OK);
    for (size_t i = 0; i < in->count; i++)
        ck_assert_float_eq_tol(3.f * rin->grad[i], mine[i], 1e-5);
    cnn_net_free(ref);
    free(mine);
    free(sign);
    cnn_net_free(n);
}
END_TEST

/* A linear two-class model on 1 x 8 x 8 images: class 1 sums the top-left
 * 4 x 4 quadrant, class 0 is a constant bias. */
static const char *linear =
    "layer { name: 'data' type: 'Input' top: 'data'\n"
    "        input_param { shape { dim: 1 dim: 1 dim: 8 dim: 8 } } }\n"
    "layer { name: 'ip' type: 'InnerProduct' bottom: 'data' top: 'ip'\n"
    "        inner_product_param { num_output: 2 } }\n"
    "layer { name: 'prob' type: 'Softmax' bottom: 'ip' top: 'prob' }\n";

static cnn_net *linear_net(int batch)
{
    cnn_net *n = cnn_test_net(linear, CNN_TEST);
    cnn_tensor *w = cnn_net_param(n, "ip", 0), *b = cnn_net_param(n, "ip", 1);
    for (int y = 0; y < 8; y++)
        for (int x = 0; x < 8; x++) w->data[64 + y * 8 + x] = y < 4 && x < 4 ? 1.f : 0.f;
    b->data[0] = 4.f;
    cnn_tensor *in = cnn_net_blob(n, "data");
    ck_assert(cnn_tensor_reshape4(in, batch, 1, 8, 8) == CNN_OK);
    ck_assert(cnn_net_reshape(n) == CNN_OK);
    return n;
}

/* The fraction of map's mass in the top-left quadrant. */
static double quadrant_mass(const float *map)
{
    double in = 0, all = 0;
    for (int y = 0; y < 8; y++)
        for (int x = 0; x < 8; x++) {
            all += map[y * 8 + x];
            if (y < 4 && x < 4) in += map[y * 8 + x];
        }
    return in / all;
}

START_TEST(test_saliency_in_region)
{
    cnn_net *n = linear_net(1);
    cnn_tensor *in = cnn_net_blob(n, "data");
    cnn_test_fill_uniform(in, 0, 1, 5);
    float map[64];
    int cls = 1;
    ck_assert(cnn_vis_saliency(n, "data", "ip", &cls, map) == CNN_OK);
    ck_assert(quadrant_mass(map) > 0.999);
    ck_assert_float_eq_tol(map[0], 1.f, 1e-6);
    /* NULL classes: the predicted one (class 0 here: its score is 4 > sum). */
    for (int i = 0; i < 64; i++) in->data[i] = 0.f;
    ck_assert(cnn_vis_saliency(n, "data", "ip", NULL, map) == CNN_OK);
    for (int i = 0; i < 64; i++) ck_assert_float_eq(map[i], 0.f);
    cls = 2;
    ck_assert(cnn_vis_saliency(n, "data", "ip", &cls, map) == CNN_ERR_ARG);
    cnn_net_free(n);
}
END_TEST

START_TEST(test_occlusion_in_region)
{
    cnn_net *n = linear_net(4);
    float image[64], map[64], prob = 0;
    for (int i = 0; i < 64; i++) image[i] = 1.f; /* class 1: 16 > 4 */
    float fill = 0.f;
    cnn_occlusion_opts o = {.patch = 2, .stride = 2, .fill = &fill};
    ck_assert(cnn_vis_occlusion(n, "data", "ip", image, 1, &o, map, &prob) == CNN_OK);
    ck_assert_float_eq_tol(prob, 1.f / (1.f + expf(4.f - 16.f)), 1e-5);
    /* Occluding the quadrant lowers the class-1 probability; elsewhere not. */
    for (int y = 0; y < 8; y++)
        for (int x = 0; x < 8; x++)
            if (y < 4 && x < 4)
                ck_assert(map[y * 8 + x] < prob - 1e-6);
            else
                ck_assert_float_eq_tol(map[y * 8 + x], prob, 1e-6);
    /* Stride 3, patch 3: the last position is flush with the edge, all covered. */
    o.patch = 3;
    o.stride = 3;
    ck_assert(cnn_vis_occlusion(n, "data", "ip", image, 1, &o, map, NULL) == CNN_OK);
    for (int i = 0; i < 64; i++) ck_assert(isfinite(map[i]));
    o.patch = 9;
    ck_assert(cnn_vis_occlusion(n, "data", "ip", image, 1, &o, map, NULL) == CNN_ERR_ARG);
    cnn_net_free(n);
}
END_TEST

START_TEST(test_class_model_raises_score)
{
    cnn_net *n = cnn_test_net(branchy, CNN_TEST);
    cnn_tensor *in = cnn_net_blob(n, "data");
    ck_assert(cnn_tensor_reshape4(in, 1, 2, 6, 6) == CNN_OK);
    ck_assert(cnn_net_reshape(n) == CNN_OK);
    memset(in->data, 0, in->count * sizeof(float));
    int cls = 2;
    float lo[2] = {-1, -1}, hi[2] = {1, 1}, first, last;
    cnn_classmodel_opts o = {.iterations = 30, .lr = 0.1f, .l2 = 0.01f, .lo = lo, .hi = hi};
    ck_assert(cnn_vis_class_model(n, "data", "ip", &cls, &o, &first, &last) == CNN_OK);
    ck_assert_msg(last > first + 0.5f, "score %g -> %g", first, last);
    for (size_t i = 0; i < in->count; i++) ck_assert(in->data[i] >= -1 && in->data[i] <= 1);
    /* The reported last score is the net's score for the final input. */
    ck_assert(cnn_vis_forward_from(n, in) == CNN_OK);
    ck_assert_float_eq_tol(cnn_net_blob(n, "ip")->data[cls], last, 1e-5);
    cnn_net_free(n);
}
END_TEST

START_TEST(test_fgsm_and_targeted)
{
    cnn_net *n = linear_net(2);
    cnn_tensor *in = cnn_net_blob(n, "data"), *ip = cnn_net_blob(n, "ip");
    /* Sample 0: class 1 by a small margin (sum 4.8 vs 4); sample 1: class 0. */
    for (int i = 0; i < 64; i++) in->data[i] = 0.3f, in->data[64 + i] = 0.1f;
    int labels[2] = {1, 0};
    float lo = 0.f, hi = 1.f;
    float *x0 = malloc(128 * sizeof *x0);
    memcpy(x0, in->data, 128 * sizeof *x0);
    /* eps 0 changes nothing. */
    ck_assert(cnn_adv_fgsm(n, "data", "ip", labels, 0.f, &lo, &hi) == CNN_OK);
    for (int i = 0; i < 128; i++) ck_assert_float_eq(in->data[i], x0[i]);
    /* eps 0.1: sample 0's quadrant drops to 0.2 (sum 3.2 < 4): misclassified. */
    ck_assert(cnn_adv_fgsm(n, "data", "ip", labels, 0.1f, &lo, &hi) == CNN_OK);
    ck_assert_float_eq_tol(in->data[0], 0.2f, 1e-6);
    ck_assert_float_eq_tol(in->data[63], 0.3f, 1e-6); /* zero gradient: unchanged */
    ck_assert(cnn_vis_argmax(ip->data, 2) == 0);
    /* Sample 1 is pushed up towards class 1 but is clipped at most +0.1. */
    ck_assert_float_eq_tol(in->data[64], 0.2f, 1e-6);
    /* Clipping to [lo, hi]. */
    memcpy(in->data, x0, 128 * sizeof *x0);
    ck_assert(cnn_adv_fgsm(n, "data", "ip", labels, 5.f, &lo, &hi) == CNN_OK);
    ck_assert_float_eq(in->data[0], 0.f);
    ck_assert_float_eq(in->data[64], 1.f);
    /* Targeted: sample 1 (class 0) towards class 1 within eps 0.3, steps of
     * 0.05: needs sum > 4, i.e. +0.15 per pixel, 3 steps then stops. */
    memcpy(in->data, x0, 128 * sizeof *x0);
    int targets[2] = {1, 1}, steps = 0;
    cnn_adv_iter_opts o = {.eps = 0.3f, .alpha = 0.05f, .iterations = 50, .stop_early = true};
    ck_assert(cnn_adv_targeted(n, "data", "ip", targets, &o, &lo, &hi, &steps) == CNN_OK);
    ck_assert(cnn_vis_argmax(ip->data + 2, 2) == 1);
    ck_assert_int_eq(steps, 4);
    ck_assert_float_eq_tol(in->data[0], 0.3f, 1e-6);   /* already at its target */
    ck_assert_float_eq_tol(in->data[64], 0.3f, 1e-5);  /* 0.1 + 4 * 0.05 */
    /* Without early stopping the eps-ball holds. */
    memcpy(in->data, x0, 128 * sizeof *x0);
    o.stop_early = false;
    o.iterations = 20;
    ck_assert(cnn_adv_targeted(n, "data", "ip", targets, &o, &lo, &hi, &steps) == CNN_OK);
    ck_assert_int_eq(steps, 20);
    ck_assert_float_eq_tol(in->data[64], 0.4f, 1e-5);
    free(x0);
    cnn_net_free(n);
}
END_TEST

START_TEST(test_samples_from_files)
{
    char dir[] = "/tmp/check_vis_XXXXXX";
    ck_assert(mkdtemp(dir));
    cnn_net *n = cnn_test_net(
        "layer { name: 'data' type: 'Input' top: 'data'\n"
        "        input_param { shape { dim: 2 dim: 1 dim: 4 dim: 4 } }\n"
        "        transform_param { scale: 0.5 mean_value: 10 } }\n"
        "layer { name: 'ip' type: 'InnerProduct' bottom: 'data' top: 'ip'\n"
        "        inner_product_param { num_output: 2 } }\n",
        CNN_TEST);
    char *files[3];
    int labels[3] = {0, 1, 1};
    for (int i = 0; i < 3; i++) {
        cnn_image im;
        ck_assert(cnn_image_alloc(&im, 4, 4, 1) == CNN_OK);
        memset(im.data, 20 * (i + 1), 16);
        files[i] = malloc(64);
        snprintf(files[i], 64, "%s/%d.png", dir, i);
        ck_assert(cnn_image_write_png(files[i], &im) == CNN_OK);
        cnn_image_free(&im);
    }
    cnn_tensor *in = cnn_net_blob(n, "data");
    cnn_samples *s = NULL;
    ck_assert(cnn_samples_from_files(n, in, files, labels, 3, 2, false, &s) == CNN_OK);
    int count, lab[2];
    size_t first;
    ck_assert(cnn_samples_next(s, &count, lab, &first) == CNN_OK);
    ck_assert_int_eq(count, 2);
    ck_assert_int_eq(first, 0);
    ck_assert_float_eq(in->data[0], (20 - 10) * 0.5f);
    ck_assert_float_eq(in->data[16], (40 - 10) * 0.5f);
    ck_assert_int_eq(lab[1], 1);
    ck_assert(cnn_samples_next(s, &count, lab, &first) == CNN_OK);
    ck_assert_int_eq(count, 1);
    ck_assert_int_eq(first, 2);
    ck_assert_int_eq(in->shape[0], 1);
    ck_assert_str_eq(cnn_samples_file(s, 2), files[2]);
    ck_assert(cnn_samples_next(s, &count, lab, &first) == CNN_OK);
    ck_assert_int_eq(count, 0);
    /* Pixels back from input values, and the pixel bounds. */
    cnn_image back;
    ck_assert(cnn_vis_to_image(in->data, 1, 4, 4, cnn_samples_transform(s), false, &back) ==
              CNN_OK);
    ck_assert_int_eq(back.data[5], 60);
    cnn_image_free(&back);
    float lo, hi;
    cnn_vis_pixel_bounds(cnn_samples_transform(s), 1, &lo, &hi);
    ck_assert_float_eq(lo, -5.f);
    ck_assert_float_eq(hi, 122.5f);
    cnn_samples_free(s);
    /* An unreadable file is an error naming it. */
    unlink(files[1]);
    ck_assert(cnn_samples_from_files(n, in, files, NULL, 3, 2, false, &s) == CNN_OK);
    ck_assert(cnn_samples_next(s, &count, lab, &first) != CNN_OK);
    ck_assert(strstr(cnn_error_message(), "1.png"));
    cnn_samples_free(s);
    for (int i = 0; i < 3; i++) {
        unlink(files[i]);
        free(files[i]);
    }
    rmdir(dir);
    cnn_net_free(n);
}
END_TEST

START_TEST(test_grid_and_text)
{
    cnn_grid_opts o = cnn_grid_default_opts();
    o.zoom = 3;
    o.pad = 2;
    float maps[5 * 4 * 6];
    for (int i = 0; i < 5 * 24; i++) maps[i] = (float)(i % 24) * (i / 24 + 1);
    cnn_image im;
    ck_assert(cnn_plot_grid(maps, 5, 1, 4, 6, &o, &im) == CNN_OK);
    /* 3 columns, 2 rows of 12 x 18 tiles, 2-pixel gaps and border. */
    ck_assert_int_eq(im.w, 3 * 18 + 4 * 2);
    ck_assert_int_eq(im.h, 2 * 12 + 3 * 2);
    ck_assert_int_eq(im.c, 3);
    /* Per-map normalisation: each tile's first value black, last white. */
    ck_assert_int_eq(im.data[(2 * im.w + 2) * 3], 0);
    int lx = 2 + 18 - 1, ly = 2 + 12 - 1;
    ck_assert_int_eq(im.data[(ly * im.w + lx) * 3], 255);
    cnn_image_free(&im);
    /* Text: width, ink inside the box only. */
    ck_assert_int_eq(cnn_plot_text_width("0.5", 1), 17);
    ck_assert_int_eq(cnn_plot_text_width("", 2), 0);
    ck_assert(cnn_image_alloc(&im, 12, 30, 3) == CNN_OK);
    cnn_plot_text(&im, 1, 1, "Ab1", (cnn_rgb){255, 255, 255}, 1);
    int ink = 0;
    for (int y = 0; y < 12; y++)
        for (int x = 0; x < 30; x++) {
            bool on = im.data[(y * 30 + x) * 3] != 0;
            ink += on;
            if (on) ck_assert(y >= 1 && y < 8 && x >= 1 && x < 18);
        }
    ck_assert(ink > 20);
    cnn_image_free(&im);
    /* Colour map ends. */
    cnn_rgb c0 = cnn_plot_colormap(0), c1 = cnn_plot_colormap(1);
    ck_assert(c0.b > 100 && c0.r == 0 && c1.r > 100 && c1.b == 0);
}
END_TEST

START_TEST(test_chart)
{
    double step, first, last;
    cnn_plot_ticks(0.13, 2.31, 5, &step, &first, &last);
    ck_assert_double_eq_tol(step, 0.5, 1e-12);
    ck_assert_double_eq_tol(first, 0, 1e-12);
    ck_assert_double_eq_tol(last, 2.5, 1e-12);
    cnn_plot_ticks(0, 10000, 5, &step, &first, &last);
    ck_assert_double_eq_tol(step, 2000, 1e-9);
    double x[4] = {0, 100, 200, 300}, y[4] = {2.3, 0.9, NAN, 0.4}, a[4] = {.5, .7, .8, .85};
    cnn_plot_series s[2] = {
        {.label = "train loss", .x = x, .y = y, .n = 4, .color = {30, 90, 200}},
        {.label = "test accuracy", .x = x, .y = a, .n = 4, .color = {40, 160, 40},
         .right_axis = true, .markers = true}};
    cnn_plot_opts o = {.width = 640, .height = 400, .title = "LeNet", .xlabel = "iteration",
                       .ylabel = "loss", .y2label = "accuracy"};
    cnn_image im;
    ck_assert(cnn_plot_chart(s, 2, &o, &im) == CNN_OK);
    ck_assert_int_eq(im.w, 640);
    ck_assert_int_eq(im.h, 400);
    /* Some of each series' colour is drawn. */
    int blue = 0, green = 0;
    for (int i = 0; i < im.w * im.h; i++) {
        const uint8_t *p = im.data + i * 3;
        blue += p[0] == 30 && p[1] == 90 && p[2] == 200;
        green += p[0] == 40 && p[1] == 160 && p[2] == 40;
    }
    ck_assert(blue > 100 && green > 100);
    cnn_image_free(&im);
    cnn_plot_series empty = {.label = "x", .x = x, .y = (double[]){NAN, NAN, NAN, NAN}, .n = 4};
    ck_assert(cnn_plot_chart(&empty, 1, &o, &im) == CNN_ERR_ARG);
    o.width = 10;
    ck_assert(cnn_plot_chart(s, 2, &o, &im) == CNN_ERR_ARG);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("vis");
    TCase *tc = tcase_create("vis");
    tcase_add_test(tc, test_input_gradient_finite_differences);
    tcase_add_test(tc, test_input_gradient_train_net);
    tcase_add_test(tc, test_saliency_in_region);
    tcase_add_test(tc, test_occlusion_in_region);
    tcase_add_test(tc, test_class_model_raises_score);
    tcase_add_test(tc, test_fgsm_and_targeted);
    tcase_add_test(tc, test_samples_from_files);
    tcase_add_test(tc, test_grid_and_text);
    tcase_add_test(tc, test_chart);
    suite_add_tcase(s, tc);
    return cnn_test_run(s) != 0;
}
