/* cnninfo — prints a model's layers with their logical device, output
 * shapes, parameter counts and forward FLOPs, then totals: how a user checks
 * a model file (including the Split and Copy layers the net inserts). With
 * --gpus (or --gpu) it also shows the physical CUDA device each layer would
 * run on, or "host" for a layer type without a GPU path; nothing runs, so
 * no GPU is needed. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cnn.h"
#include "core/net_internal.h"
#include "common/tool_device.h"
#include "core/config.h"
#include "solvers/solver.h"
#include "solvers/solver_internal.h"

static void usage(void)
{
    fprintf(stderr, "usage: cnninfo MODEL|SOLVER [--phase TRAIN|TEST]\n"
                    "               [--devices N | --gpus L | --gpu N]\n"
                    "Prints each layer's device, top shapes, parameters and forward FLOPs\n"
                    "(of the net a Caffe solver file names with net: or train_net:).\n"
                    "  --devices N   logical devices of the run (default: as many as the\n"
                    "                model's device: fields name); a layer's device must\n"
                    "                be below N\n"
                    "  --gpus L      logical devices on CUDA devices L (\"0,1\", \"0,0\"): adds\n"
                    "                the physical device of each layer (cuda:K, or host for a\n"
                    "                layer without a GPU path); no GPU is needed\n"
                    "  --gpu N       the same with every logical device on CUDA device N\n");
}

static const char *human(double v, char *buf, size_t n)
{
    const char *units[] = {"", "K", "M", "G", "T"};
    int u = 0;
    while (v >= 1000 && u < 4) {
        v /= 1000;
        u++;
    }
    snprintf(buf, n, u ? "%.2f%s" : "%.0f%s", v, units[u]);
    return buf;
}

static size_t layer_param_count(const cnn_net *n, int i)
{
    size_t c = 0;
    for (int p = 0; p < cnn_net_layer_num_params(n, i); p++)
        c += cnn_net_layer_param(n, i, p)->count;
    return c;
}

/* Where layer i would run on the GPUs of `dev`: logical device k runs on
 * gpu[min(k, n - 1)]; a type without a GPU path runs on the host. */
static const char *physical(const cnn_net *n, int i, const cnn_tool_dev *dev, char *buf,
                            size_t len)
{
    int k = cnn_net_layer_device(n, i);
    if (!cnn_net_layer(n, i)->type->forward_gpu)
        snprintf(buf, len, "host");
    else
        snprintf(buf, len, "cuda:%d", dev->gpu[k < dev->n ? k : dev->n - 1]);
    return buf;
}

static void print_net(const cnn_net *n, const cnn_tool_dev *dev)
{
    char shapes[256], a[32], b[32], g[32];
    bool gpu = dev->mode == CNN_TOOL_DEV_GPU;
    double flops = 0, act_bytes = 0, dev_flops[CNN_MAX_DEVICES] = {0};
    size_t params = 0, dev_params[CNN_MAX_DEVICES] = {0};
    printf("%-24s %-22s %3s ", "layer", "type", "dev");
    if (gpu) printf("%-7s ", "gpu");
    printf("%-34s %12s %12s\n", "top shapes", "params", "FLOPs");
    for (int i = 0; i < cnn_net_num_layers(n); i++) {
        size_t at = 0;
        shapes[0] = 0;
        for (int t = 0; t < cnn_net_layer_num_tops(n, i); t++) {
            cnn_tensor *top = cnn_net_layer_top(n, i, t);
            char s[96];
            at += (size_t)snprintf(shapes + at, sizeof shapes - at, "%s%s", t ? " " : "",
                                   cnn_tensor_shape_str(top, s, sizeof s));
            if (at >= sizeof shapes) at = sizeof shapes - 1;
            bool in_place = false;
            for (int k = 0; k < cnn_net_layer_num_bottoms(n, i); k++)
                in_place |= cnn_net_layer_bottom(n, i, k) == top;
            if (!in_place) act_bytes += (double)top->count * sizeof(float);
        }
        size_t pc = layer_param_count(n, i);
        double f = cnn_net_layer_flops(n, i);
        printf("%-24s %-22s %3d ", cnn_net_layer_name(n, i), cnn_net_layer_type(n, i),
               cnn_net_layer_device(n, i));
        if (gpu) printf("%-7s ", physical(n, i, dev, g, sizeof g));
        printf("%-34s %12s %12s\n", shapes, pc ? human((double)pc, a, sizeof a) : "-",
               f > 0 ? human(f, b, sizeof b) : "-");
        params += pc;
        flops += f;
        dev_params[cnn_net_layer_device(n, i)] += pc;
        dev_flops[cnn_net_layer_device(n, i)] += f;
    }
    printf("\ntotal: %zu parameters (%s), %s FLOPs forward, activations %.1f MiB "
           "(x2 with gradients when training)\n",
           params, human((double)params, a, sizeof a), human(flops, b, sizeof b),
           act_bytes / 1048576.0);
    for (int d = 0; d < cnn_net_num_devices(n) && cnn_net_num_devices(n) > 1; d++)
        printf("device %d: %zu parameters (%s), %s FLOPs forward\n", d, dev_params[d],
               human((double)dev_params[d], a, sizeof a), human(dev_flops[d], b, sizeof b));
}

/* A Caffe solver file (no layers; net: or train_net:) gives the net it
 * names in *out, resolved as cnntrain does; "" for a model file. */
static cnn_status solver_net(const char *path, char *out, size_t n)
{
    cnn_status st = CNN_OK;
    cnn_cfg *root = NULL;
    cnn_solver_config c;
    char dir[CNN_SOLVER_PATH_MAX];
    out[0] = 0;
    CNN_TRY(cnn_cfg_parse_file(path, &root));
    if (cnn_cfg_count(root, "layer") || cnn_cfg_count(root, "layers") ||
        (!cnn_cfg_count(root, "net") && !cnn_cfg_count(root, "train_net")))
        goto fail;
    cnn_solver_path_dir(path, dir, sizeof dir);
    CNN_TRY(cnn_solver_config_read(root, dir, &c));
    snprintf(out, n, "%s", c.train_net);
fail:
    cnn_cfg_free(root);
    return st;
}

int main(int argc, char **argv)
{
    const char *model = NULL;
    cnn_net_opts o = cnn_net_default_opts();
    cnn_tool_dev dev;
    cnn_tool_dev_init(&dev, "cnninfo", true);
    o.phase = CNN_TEST;
    o.shapes_only = true;
    for (int i = 1; i < argc; i++) {
        if ((!strcmp(argv[i], "--gpus") || !strcmp(argv[i], "--gpu")) && i + 1 < argc) {
            if (cnn_tool_dev_arg(&dev, argc, argv, &i) != 1) return 2;
        } else if (!strcmp(argv[i], "--phase") && i + 1 < argc) {
            const char *p = argv[++i];
            if (!strcmp(p, "TRAIN") || !strcmp(p, "train"))
                o.phase = CNN_TRAIN;
            else if (!strcmp(p, "TEST") || !strcmp(p, "test"))
                o.phase = CNN_TEST;
            else {
                fprintf(stderr, "cnninfo: --phase must be TRAIN or TEST, not '%s'\n", p);
                return 2;
            }
        } else if (!strcmp(argv[i], "--devices") && i + 1 < argc) {
            char *end = NULL;
            errno = 0;
            long v = strtol(argv[++i], &end, 10);
            if (errno || end == argv[i] || *end || v < 1 || v > CNN_MAX_DEVICES) {
                fprintf(stderr, "cnninfo: --devices needs a number from 1 to %d, not '%s'\n",
                        CNN_MAX_DEVICES, argv[i]);
                return 2;
            }
            o.devices = (int)v;
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage();
            return 0;
        } else if (argv[i][0] == '-' || model) {
            usage();
            return 2;
        } else {
            model = argv[i];
        }
    }
    if (!model) {
        usage();
        return 2;
    }
    if (dev.list && o.devices) {
        fprintf(stderr, "cnninfo: --devices is for the CPU; with GPUs the --gpus list gives "
                        "the logical devices\n");
        return 2;
    }
    if (dev.list) o.devices = dev.n;
    static char net_file[CNN_SOLVER_PATH_MAX];
    if (solver_net(model, net_file, sizeof net_file) != CNN_OK) {
        fprintf(stderr, "cnninfo: %s\n", cnn_error_message());
        return 1;
    }
    if (net_file[0]) model = net_file;
    cnn_net *net = NULL;
    if (cnn_net_from_file(model, &o, &net) != CNN_OK) {
        fprintf(stderr, "cnninfo: %s\n", cnn_error_message());
        return 1;
    }
    int nd = cnn_net_num_devices(net);
    printf("net '%s' from %s, phase %s, %d logical device%s", cnn_net_name(net), model,
           o.phase == CNN_TRAIN ? "TRAIN" : "TEST", nd, nd == 1 ? "" : "s");
    if (dev.mode == CNN_TOOL_DEV_GPU) {
        printf(" on CUDA device%s", dev.n > 1 ? "s" : "");
        for (int k = 0; k < dev.n; k++) printf("%s%d", k ? "," : " ", dev.gpu[k]);
    }
    printf("\n\n");
    print_net(net, &dev);
    if (dev.mode == CNN_TOOL_DEV_GPU)
        printf("gpu: the physical device of the layer's logical one; host: no GPU path, the "
               "layer runs on the CPU\n     on host copies of its blobs\n");
    cnn_net_free(net);
    return 0;
}
