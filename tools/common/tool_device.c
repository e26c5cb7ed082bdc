/* tool_device.c — the device options the tools share (see tool_device.h):
 * parsing --gpu/--gpus/--cpu/--workspace-mb/--deterministic, the default
 * device, the checks that an asked GPU exists, and the line naming it. */
#include "tool_device.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/device.h"

void cnn_tool_dev_init(cnn_tool_dev *d, const char *tool, bool multi)
{
    memset(d, 0, sizeof *d);
    d->tool = tool;
    d->multi = multi;
    d->workspace_mb = -1;
}

const char *cnn_tool_dev_usage(bool multi)
{
    return multi ? "  --gpu N               run on CUDA device N (default: device 0 when there\n"
                   "                        is one, else the CPU)\n"
                   "  --gpus L              logical devices on CUDA devices L (\"0,1\": two GPUs,\n"
                   "                        \"0,0\": two logical devices on GPU 0)\n"
                   "  --cpu                 run on the CPU\n"
                   "  --workspace-mb N      cuDNN workspace budget per device in MiB (default\n"
                   "                        256; 0: only algorithms that need none)\n"
                   "  --deterministic       deterministic cuDNN algorithms only\n"
                 : "  --gpu N               run on CUDA device N (default: device 0 when there\n"
                   "                        is one, else the CPU)\n"
                   "  --cpu                 run on the CPU\n"
                   "  --workspace-mb N      cuDNN workspace budget in MiB (default 256; 0:\n"
                   "                        only algorithms that need none)\n"
                   "  --deterministic       deterministic cuDNN algorithms only\n";
}

/* A non-negative integer up to max; false when malformed. */
static bool parse_nonneg(const char *s, long max, long *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 0 || v > max) return false;
    *out = v;
    return true;
}

/* Parses a --gpus list ("0,1") into d->gpu; false when malformed. */
static bool parse_list(cnn_tool_dev *d, const char *s)
{
    d->n = 0;
    for (const char *p = s;; p++) {
        char *end = NULL;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (errno || end == p || *p == '-' || *p == '+' || v > 1000000 ||
            d->n == CNN_MAX_DEVICES)
            return false;
        d->gpu[d->n++] = (int)v;
        p = end;
        if (*p == '\0') return true;
        if (*p != ',') return false;
    }
}

/* Records a GPU choice; --gpu and --gpus together are a usage error. */
static int set_gpu(cnn_tool_dev *d, bool list, const char *opt, const char *val)
{
    if (d->mode == CNN_TOOL_DEV_GPU && d->list != list) {
        fprintf(stderr, "%s: give --gpu or --gpus, not both\n", d->tool);
        return -1;
    }
    d->mode = CNN_TOOL_DEV_GPU;
    d->list = list;
    snprintf(d->flag, sizeof d->flag, "%s %s", opt, val);
    if (list && parse_list(d, val)) return 1;
    long v;
    if (!list && parse_nonneg(val, 1000000, &v)) {
        d->n = 1;
        d->gpu[0] = (int)v;
        return 1;
    }
    if (list)
        fprintf(stderr, "%s: --gpus needs a list of CUDA device numbers such as 0,1 (at most "
                        "%d), not '%s'\n", d->tool, CNN_MAX_DEVICES, val);
    else
        fprintf(stderr, "%s: --gpu needs a CUDA device number, not '%s'\n", d->tool, val);
    return -1;
}

int cnn_tool_dev_arg(cnn_tool_dev *d, int argc, char **argv, int *i)
{
    const char *a = argv[*i];
    bool has_val = *i + 1 < argc;
    if (!strcmp(a, "--cpu")) {
        d->mode = CNN_TOOL_DEV_CPU;
        d->n = 0;
        d->list = false;
        return 1;
    }
    if (!strcmp(a, "--deterministic")) {
        d->deterministic = true;
        return 1;
    }
    if (!has_val) return 0;
    if (!strcmp(a, "--gpu")) return set_gpu(d, false, a, argv[++*i]);
    if (!strcmp(a, "--gpus") && d->multi) return set_gpu(d, true, a, argv[++*i]);
    if (!strcmp(a, "--workspace-mb")) {
        if (parse_nonneg(argv[++*i], 1 << 20, &d->workspace_mb)) return 1;
        fprintf(stderr, "%s: --workspace-mb needs a number of MiB (0 or more), not '%s'\n",
                d->tool, argv[*i]);
        return -1;
    }
    return 0;
}

/* Checks that CUDA device `dev` exists; prints why not. */
static bool check_device(const cnn_tool_dev *d, int dev)
{
    char buf[256];
    cnn_status st = cnn_cuda_describe(dev, buf, sizeof buf);
    if (st == CNN_OK) return true;
    fprintf(stderr, "%s: %s: %s%s\n", d->tool, d->flag, cnn_error_message(),
            st != CNN_ERR_UNSUPPORTED && cnn_cuda_device_count() == 0
                ? ": no CUDA device found (no GPU, or no driver)"
                : "");
    return false;
}

int cnn_tool_dev_resolve(cnn_tool_dev *d, cnn_net_opts *o)
{
    if (d->mode == CNN_TOOL_DEV_DEFAULT) {
        char buf[256];
        if (cnn_cuda_device_count() > 0) {
            d->mode = CNN_TOOL_DEV_GPU;
            d->n = 1;
            d->gpu[0] = 0;
            snprintf(d->flag, sizeof d->flag, "CUDA device 0 (the default)");
        } else {
            d->mode = CNN_TOOL_DEV_CPU;
            bool built = cnn_cuda_describe(0, buf, sizeof buf) != CNN_ERR_UNSUPPORTED;
            snprintf(d->why_cpu, sizeof d->why_cpu, "%s",
                     built ? "no CUDA device found" : "built without CUDA");
        }
    } else if (d->mode == CNN_TOOL_DEV_CPU) {
        snprintf(d->why_cpu, sizeof d->why_cpu, "--cpu");
    }
    if (d->mode == CNN_TOOL_DEV_GPU)
        for (int k = 0; k < d->n; k++)
            if (!check_device(d, d->gpu[k])) return 1;
    o->gpus = d->mode == CNN_TOOL_DEV_GPU ? d->n : 0;
    if (d->list) o->devices = d->n;
    for (int k = 0; k < o->gpus; k++) o->gpu[k] = d->gpu[k];
    /* net opts read a budget of 0 as "the default": 1 byte admits only
     * algorithms that need no workspace. */
    if (d->workspace_mb == 0)
        o->workspace_bytes = 1;
    else if (d->workspace_mb > 0)
        o->workspace_bytes = (size_t)d->workspace_mb << 20;
    o->deterministic = d->deterministic;
    return 0;
}

bool cnn_tool_dev_gpu(const cnn_tool_dev *d) { return d->mode == CNN_TOOL_DEV_GPU; }

/* The device's description without cnn_cuda_describe's "GPU k: " prefix. */
static const char *gpu_name(int dev, char *buf, size_t n)
{
    if (cnn_cuda_describe(dev, buf, n) != CNN_OK) {
        snprintf(buf, n, "?");
        return buf;
    }
    const char *colon = strncmp(buf, "GPU ", 4) ? NULL : strstr(buf, ": ");
    return colon ? colon + 2 : buf;
}

const char *cnn_tool_dev_describe(const cnn_tool_dev *d, char *buf, size_t n)
{
    if (d->mode != CNN_TOOL_DEV_GPU) {
        snprintf(buf, n, "CPU (%s)", d->why_cpu[0] ? d->why_cpu : "--cpu");
        return buf;
    }
    char list[96] = "", name[256];
    size_t at = 0;
    bool same = true;
    for (int k = 0; k < d->n; k++) {
        at += (size_t)snprintf(list + at, sizeof list - at, "%s%d", k ? "," : "", d->gpu[k]);
        if (at >= sizeof list) at = sizeof list - 1;
        same &= d->gpu[k] == d->gpu[0];
    }
    at = (size_t)snprintf(buf, n, "CUDA %s: ", list);
    for (int k = 0; k < d->n && at < n; k++) {
        if (k && same) break;
        bool seen = false;
        for (int j = 0; j < k; j++) seen |= d->gpu[j] == d->gpu[k];
        if (seen) continue;
        at += (size_t)snprintf(buf + at, n - at, "%s%s", k ? "; " : "",
                               gpu_name(d->gpu[k], name, sizeof name));
    }
    if (same && d->n > 1 && at < n)
        snprintf(buf + at, n - at, " (%d logical devices, one stream each)", d->n);
    return buf;
}
