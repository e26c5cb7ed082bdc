/* check_finetune.c — initial weights for fine-tuning (core/finetune.h):
 * parameters copied by name, reshaped / new ones keeping their fillers,
 * unused file tensors listed, strict mode refusing all of that without
 * touching the net, several files in order, legacy Caffe shapes, the printed
 * table, and lr_mult 0: frozen weights stay bit-identical through training
 * and the backward pass skips what nothing below needs. */
#include <unistd.h>

#include "core/finetune.h"
#include "core/net_internal.h"
#include "core/weights.h"
#include "solvers/solver.h"
#include "testutil.h"

#define INPUTS                                                                             \
    "layer { name: \"x\" type: \"Input\" top: \"x\" "                                      \
    "input_param { shape { dim: 4 dim: 1 dim: 6 dim: 6 } } }\n"                            \
    "layer { name: \"label\" type: \"Input\" top: \"label\" "                              \
    "input_param { shape { dim: 4 } } }\n"
#define FILL "weight_filler { type: \"gaussian\" std: 0.3 } bias_filler { type: \"gaussian\" " \
             "std: 0.1 }"

/* The pretrained net: conv1 -> relu1 -> ip1 -> ip2 (5) -> ip3 (4) -> loss. */
static const char *SRC =
    INPUTS
    "layer { name: \"conv1\" type: \"Convolution\" bottom: \"x\" top: \"c1\" "
    "convolution_param { num_output: 3 kernel_size: 3 " FILL " } }\n"
    "layer { name: \"relu1\" type: \"ReLU\" bottom: \"c1\" top: \"c1\" }\n"
    "layer { name: \"ip1\" type: \"InnerProduct\" bottom: \"c1\" top: \"h\" "
    "inner_product_param { num_output: 8 " FILL " } }\n"
    "layer { name: \"ip2\" type: \"InnerProduct\" bottom: \"h\" top: \"h2\" "
    "inner_product_param { num_output: 5 " FILL " } }\n"
    "layer { name: \"ip3\" type: \"InnerProduct\" bottom: \"h2\" top: \"y\" "
    "inner_product_param { num_output: 4 " FILL " } }\n"
    "layer { name: \"loss\" type: \"SoftmaxWithLoss\" bottom: \"y\" bottom: \"label\" }\n";

/* The fine-tuned net: conv1 (param specs %s), ip1 (%s), ip2 with 3 outputs,
 * a new head ip_new, no ip3. */
static char *dst_text(const char *conv_params, const char *ip1_params, const char *solver)
{
    static char buf[4096];
    snprintf(buf, sizeof buf,
             INPUTS
             "layer { name: \"conv1\" type: \"Convolution\" bottom: \"x\" top: \"c1\" %s "
             "convolution_param { num_output: 3 kernel_size: 3 " FILL " } }\n"
             "layer { name: \"relu1\" type: \"ReLU\" bottom: \"c1\" top: \"c1\" }\n"
             "layer { name: \"ip1\" type: \"InnerProduct\" bottom: \"c1\" top: \"h\" %s "
             "inner_product_param { num_output: 8 " FILL " } }\n"
             "layer { name: \"ip2\" type: \"InnerProduct\" bottom: \"h\" top: \"h2\" "
             "inner_product_param { num_output: 3 " FILL " } }\n"
             "layer { name: \"ip_new\" type: \"InnerProduct\" bottom: \"h2\" top: \"y\" "
             "inner_product_param { num_output: 2 " FILL " } }\n"
             "layer { name: \"loss\" type: \"SoftmaxWithLoss\" bottom: \"y\" "
             "bottom: \"label\" }\n%s",
             conv_params, ip1_params, solver);
    return buf;
}

static const char *FROZEN = "param { lr_mult: 0 } param { lr_mult: 0 }";

static char tmpdir[64];

static void setup_tmp(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/cnn_finetune_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown_tmp(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    ck_assert_int_eq(system(cmd), 0);
}

static const char *tmp_path(const char *name)
{
    static char buf[4][256];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
    return buf[k];
}

static cnn_net *net_seed(const char *text, uint64_t seed)
{
    cnn_net_opts o = cnn_net_default_opts();
    o.seed = seed;
    cnn_net *n = NULL;
    ck_assert_msg(cnn_net_from_string(text, &o, &n) == CNN_OK, "%s", cnn_error_message());
    return n;
}

/* Saves the pretrained net (seed 7) as a.safetensors; returns the net. */
static cnn_net *save_src(void)
{
    cnn_net *src = net_seed(SRC, 7);
    ck_assert_int_eq(cnn_weights_save(src, tmp_path("a.safetensors")), CNN_OK);
    return src;
}

static bool same_param(cnn_net *a, cnn_net *b, const char *layer, int idx)
{
    cnn_tensor *x = cnn_net_param(a, layer, idx), *y = cnn_net_param(b, layer, idx);
    ck_assert_ptr_nonnull(x);
    ck_assert_ptr_nonnull(y);
    return x->count == y->count && !memcmp(x->data, y->data, x->count * sizeof(float));
}

static const cnn_ft_param *find(const cnn_ft_report *r, const char *key)
{
    for (int i = 0; i < r->n_params; i++)
        if (!strcmp(r->param[i].key, key)) return &r->param[i];
    ck_abort_msg("no parameter %s in the report", key);
    return NULL;
}

START_TEST(loads_by_name_and_reports)
{
    cnn_net *src = save_src();
    cnn_net *fresh = net_seed(dst_text(FROZEN, "", ""), 3);
    cnn_net *n = net_seed(dst_text(FROZEN, "", ""), 3);
    const char *paths[1] = {tmp_path("a.safetensors")};
    cnn_ft_report *r = NULL;
    ck_assert_msg(cnn_finetune_load(n, paths, 1, false, &r) == CNN_OK, "%s",
                  cnn_error_message());
    ck_assert_int_eq(r->n_files, 1);
    ck_assert_str_eq(r->kinds[0], "safetensors");
    ck_assert_int_eq(r->counts[0], 8);
    ck_assert_int_eq(r->n_params, 8);
    for (int k = 0; k < 2; k++) {
        char key[32];
        snprintf(key, sizeof key, "conv1.%d", k);
        ck_assert_int_eq(find(r, key)->status, CNN_FT_LOADED);
        ck_assert_int_eq(find(r, key)->file, 0);
        ck_assert_float_eq(find(r, key)->lr_mult, 0.f);
        snprintf(key, sizeof key, "ip1.%d", k);
        ck_assert_int_eq(find(r, key)->status, CNN_FT_LOADED);
        ck_assert_float_eq(find(r, key)->lr_mult, 1.f);
        snprintf(key, sizeof key, "ip2.%d", k);
        ck_assert_int_eq(find(r, key)->status, CNN_FT_SHAPE);
        snprintf(key, sizeof key, "ip_new.%d", k);
        ck_assert_int_eq(find(r, key)->status, CNN_FT_MISSING);
        ck_assert_int_eq(find(r, key)->file, -1);
    }
    const cnn_ft_param *ip2 = find(r, "ip2.0");
    ck_assert_int_eq(ip2->file_ndim, 2);
    ck_assert_int_eq(ip2->file_shape[0], 5);
    ck_assert_int_eq(ip2->shape[0], 3);
    ck_assert_int_eq(r->n_unused, 2);
    ck_assert_str_eq(r->unused[0].name, "ip3.0");
    ck_assert_str_eq(r->unused[1].name, "ip3.1");
    ck_assert_str_eq(r->unused[0].reason, "no layer 'ip3' in the net");
    int loaded, reinit, unused;
    cnn_ft_report_counts(r, &loaded, &reinit, &unused);
    ck_assert_int_eq(loaded, 4);
    ck_assert_int_eq(reinit, 4);
    ck_assert_int_eq(unused, 2);
    /* Loaded ones hold the file's values, the others their fillers. */
    for (int k = 0; k < 2; k++) {
        ck_assert(same_param(n, src, "conv1", k));
        ck_assert(same_param(n, src, "ip1", k));
        ck_assert(!same_param(n, fresh, "conv1", k));
        ck_assert(same_param(n, fresh, "ip2", k));
        ck_assert(same_param(n, fresh, "ip_new", k));
    }

    /* The table. */
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    cnn_ft_report_print(r, n, f);
    fclose(f);
    const char *want[] = {
        "a.safetensors (safetensors, 8 tensors)",
        "conv1                    Convolution      2 blobs, loaded from a.safetensors; frozen "
        "(lr_mult 0)\n",
        "ip1                      InnerProduct     2 blobs, loaded from a.safetensors\n",
        "ip2                      InnerProduct     2 blobs, 0: re-initialised (5x8 in "
        "a.safetensors, 3x8 here); 1: re-initialised (5 in a.safetensors, 3 here)\n",
        "ip_new                   InnerProduct     2 blobs, re-initialised (not in the weights)\n",
        "ip3                                       2 tensors unused in a.safetensors: no layer "
        "'ip3' in the net\n",
        "4 parameter blobs loaded, 4 re-initialised, 2 tensors unused\n",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        ck_assert_msg(strstr(text, want[i]), "table lacks '%s':\n%s", want[i], text);
    free(text);
    cnn_ft_report_free(r);
    cnn_net_free(n);
    cnn_net_free(fresh);
    cnn_net_free(src);
}
END_TEST

START_TEST(strict_refuses_and_leaves_net)
{
    cnn_net *src = save_src();
    cnn_net *fresh = net_seed(dst_text("", "", ""), 3);
    cnn_net *n = net_seed(dst_text("", "", ""), 3);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    cnn_status st = cnn_finetune_load_list(n, tmp_path("a.safetensors"), true, f);
    fclose(f);
    ck_assert_int_eq(st, CNN_ERR_CONFIG);
    ck_assert_msg(strstr(cnn_error_message(), "strict weights: 6 mismatches; ip2.0 is 5x8 in "),
                  "%s", cnn_error_message());
    ck_assert_msg(strstr(cnn_error_message(), "ip_new.0 is in no weights file"), "%s",
                  cnn_error_message());
    ck_assert_msg(strstr(text, "re-initialised"), "the table is printed before the error");
    for (int k = 0; k < 2; k++) ck_assert(same_param(n, fresh, "conv1", k));
    free(text);
    /* The pretrained net itself loads strictly. */
    cnn_net *again = net_seed(SRC, 99);
    ck_assert_msg(cnn_finetune_load_list(again, tmp_path("a.safetensors"), true, NULL) == CNN_OK,
                  "%s", cnn_error_message());
    ck_assert(same_param(again, src, "ip3", 0));
    cnn_net_free(again);
    cnn_net_free(n);
    cnn_net_free(fresh);
    cnn_net_free(src);
}
END_TEST

/* b.safetensors overrides ip1.0 and brings ip2.1 with a legacy 1x1x1x3 shape;
 * its shape-mismatched ip1.1 is listed as unused since a.safetensors
 * provided that one. */
START_TEST(several_files_in_order)
{
    cnn_net *src = save_src();
    cnn_net *n = net_seed(dst_text("", "", ""), 3);
    float w[8 * 48], b3[3] = {1, 2, 3}, b9[9] = {0};
    for (int i = 0; i < 8 * 48; i++) w[i] = (float)i;
    const int s_w[2] = {8, 48}, s_b3[4] = {1, 1, 1, 3}, s_b9[1] = {9};
    cnn_safetensors_entry e[3] = {
        {"ip1.0", 2, s_w, w}, {"ip2.1", 4, s_b3, b3}, {"ip1.1", 1, s_b9, b9}};
    ck_assert_int_eq(cnn_safetensors_write(tmp_path("b.safetensors"), e, 3, NULL), CNN_OK);
    char list[600];
    snprintf(list, sizeof list, "%s,%s", tmp_path("a.safetensors"), tmp_path("b.safetensors"));
    const char *paths[2] = {tmp_path("a.safetensors"), tmp_path("b.safetensors")};
    cnn_ft_report *r = NULL;
    ck_assert_int_eq(cnn_finetune_load(n, paths, 2, false, &r), CNN_OK);
    ck_assert_int_eq(find(r, "ip1.0")->file, 1);
    ck_assert_int_eq(find(r, "ip1.1")->file, 0);
    ck_assert_int_eq(find(r, "ip2.1")->status, CNN_FT_LOADED);
    ck_assert_int_eq(find(r, "ip2.1")->file, 1);
    ck_assert_int_eq(find(r, "ip2.0")->status, CNN_FT_SHAPE);
    ck_assert(!memcmp(cnn_net_param(n, "ip1", 0)->data, w, sizeof w));
    ck_assert(same_param(n, src, "ip1", 1));
    ck_assert(!memcmp(cnn_net_param(n, "ip2", 1)->data, b3, sizeof b3));
    ck_assert_int_eq(r->n_unused, 3);
    ck_assert_str_eq(r->unused[2].name, "ip1.1");
    ck_assert_int_eq(r->unused[2].file, 1);
    ck_assert_str_eq(r->unused[2].reason, "shape 9, the net has 8");
    cnn_ft_report_free(r);
    /* Unknown names and unreadable files. */
    ck_assert_int_eq(cnn_finetune_load_list(n, tmp_path("nope.safetensors"), false, NULL),
                     CNN_ERR_IO);
    ck_assert(strstr(cnn_error_message(), "nope.safetensors"));
    ck_assert_int_eq(cnn_finetune_load_list(n, ",", false, NULL), CNN_ERR_ARG);
    const int s1[1] = {1};
    cnn_safetensors_entry odd[3] = {{"x", 1, s1, b3}, {"relu1.0", 1, s1, b3},
                                    {"ip1.7", 1, s1, b3}};
    ck_assert_int_eq(cnn_safetensors_write(tmp_path("c.safetensors"), odd, 3, NULL), CNN_OK);
    paths[0] = tmp_path("c.safetensors");
    ck_assert_int_eq(cnn_finetune_load(n, paths, 1, false, &r), CNN_OK);
    ck_assert_int_eq(r->n_unused, 3);
    ck_assert_str_eq(r->unused[0].reason, "not a <layer>.<index> name");
    ck_assert_str_eq(r->unused[1].reason, "layer 'relu1' (ReLU) has no parameters");
    ck_assert_str_eq(r->unused[2].reason, "layer 'ip1' has 2 parameter blobs");
    cnn_ft_report_free(r);
    cnn_net_free(n);
    cnn_net_free(src);
}
END_TEST

/* ---- freezing ------------------------------------------------------------------ */

static cnn_status feed(cnn_net *n, uint64_t batch, void *user)
{
    (void)user;
    cnn_rng r;
    cnn_rng_seed(&r, 1000 + batch);
    cnn_tensor *x = cnn_net_blob(n, "x"), *t = cnn_net_blob(n, "label");
    for (size_t i = 0; i < x->count; i++) x->data[i] = (float)cnn_rng_uniform(&r);
    for (size_t i = 0; i < t->count; i++) t->data[i] = (float)cnn_rng_below(&r, 2);
    return CNN_OK;
}

static float *copy_param(cnn_net *n, const char *layer, int idx)
{
    cnn_tensor *t = cnn_net_param(n, layer, idx);
    float *c = malloc(t->count * sizeof(float));
    memcpy(c, t->data, t->count * sizeof(float));
    return c;
}

static bool unchanged(cnn_net *n, const char *layer, int idx, const float *before)
{
    cnn_tensor *t = cnn_net_param(n, layer, idx);
    return !memcmp(t->data, before, t->count * sizeof(float));
}

static bool layer_backward(cnn_net *n, const char *name)
{
    return cnn_net_layer(n, cnn_test_layer_index(n, name))->need_backward;
}

static const char *SOLVER =
    "solver { base_lr: 0.1 momentum: 0.9 weight_decay: 0.01 max_iter: 10 random_seed: 5 }\n";

/* conv1 frozen at the bottom: no backward for conv1 and relu1, and its weights
 * survive pretrained-load + training bit for bit while ip1 learns. */
START_TEST(frozen_bottom_layer)
{
    cnn_net *src = save_src();
    cnn_solver *s = NULL;
    ck_assert_msg(cnn_solver_from_string(dst_text(FROZEN, "", SOLVER), "ft.cfg", NULL, &s) ==
                      CNN_OK, "%s", cnn_error_message());
    cnn_net *n = cnn_solver_net(s);
    ck_assert_int_eq(cnn_finetune_load_list(n, tmp_path("a.safetensors"), false, NULL), CNN_OK);
    ck_assert(!layer_backward(n, "conv1"));
    ck_assert(!layer_backward(n, "relu1"));
    ck_assert(layer_backward(n, "ip1"));
    ck_assert(!cnn_net_layer(n, cnn_test_layer_index(n, "ip1"))->propagate_down[0]);
    float *w = copy_param(n, "conv1", 0), *b = copy_param(n, "conv1", 1);
    float *ip = copy_param(n, "ip1", 0);
    cnn_solver_set_feed(s, feed, NULL);
    for (int i = 0; i < 5; i++) ck_assert_int_eq(cnn_solver_step(s, NULL), CNN_OK);
    ck_assert(unchanged(n, "conv1", 0, w));
    ck_assert(unchanged(n, "conv1", 1, b));
    ck_assert(same_param(n, src, "conv1", 0));
    ck_assert(!unchanged(n, "ip1", 0, ip));
    /* Its gradient was never computed. */
    cnn_tensor *g = cnn_net_param(n, "conv1", 0);
    for (size_t i = 0; i < g->count; i++) ck_assert(g->grad[i] == 0.f);
    free(w);
    free(b);
    free(ip);
    cnn_solver_free(s);
    cnn_net_free(src);
}
END_TEST

/* ip1 frozen above a learning conv1: ip1 still runs backward (conv1 needs the
 * gradient) but its weights stay as they were. */
START_TEST(frozen_middle_layer)
{
    cnn_solver *s = NULL;
    ck_assert_msg(cnn_solver_from_string(dst_text("", FROZEN, SOLVER), "ft.cfg", NULL, &s) ==
                      CNN_OK, "%s", cnn_error_message());
    cnn_net *n = cnn_solver_net(s);
    ck_assert(layer_backward(n, "conv1"));
    ck_assert(layer_backward(n, "ip1"));
    ck_assert(cnn_net_layer(n, cnn_test_layer_index(n, "ip1"))->propagate_down[0]);
    float *w = copy_param(n, "ip1", 0), *b = copy_param(n, "ip1", 1);
    float *c = copy_param(n, "conv1", 0);
    cnn_solver_set_feed(s, feed, NULL);
    for (int i = 0; i < 5; i++) ck_assert_int_eq(cnn_solver_step(s, NULL), CNN_OK);
    ck_assert(unchanged(n, "ip1", 0, w));
    ck_assert(unchanged(n, "ip1", 1, b));
    ck_assert(!unchanged(n, "conv1", 0, c));
    free(w);
    free(b);
    free(c);
    cnn_solver_free(s);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("finetune");
    TCase *c = tcase_create("finetune");
    tcase_add_checked_fixture(c, setup_tmp, teardown_tmp);
    tcase_add_test(c, loads_by_name_and_reports);
    tcase_add_test(c, strict_refuses_and_leaves_net);
    tcase_add_test(c, several_files_in_order);
    tcase_add_test(c, frozen_bottom_layer);
    tcase_add_test(c, frozen_middle_layer);
    suite_add_tcase(s, c);
    return s;
}

int main(void) { return cnn_test_run(suite()) != 0; }
