/* tool_device.h — the device options the tools share: --gpu N, --gpus LIST,
 * --cpu, --workspace-mb N, --deterministic; the default device (the first
 * CUDA device when there is one, else the CPU) and the line that names it.
 * A tool parses its arguments with cnn_tool_dev_arg, then calls
 * cnn_tool_dev_resolve before building its net. */
#ifndef CNN_TOOL_DEVICE_H
#define CNN_TOOL_DEVICE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/cnn.h"

typedef enum { CNN_TOOL_DEV_DEFAULT = 0, CNN_TOOL_DEV_CPU, CNN_TOOL_DEV_GPU } cnn_tool_dev_mode;

typedef struct cnn_tool_dev {
    const char *tool;         /* program name, for messages */
    cnn_tool_dev_mode mode;   /* as asked; resolve turns DEFAULT into CPU or GPU */
    bool multi;               /* --gpus allowed (the tool runs model-parallel nets) */
    bool list;                /* the GPUs came from --gpus (one logical device each) */
    int n;                    /* entries in gpu[] (GPU mode) */
    int gpu[CNN_MAX_DEVICES]; /* physical CUDA devices of the logical ones */
    char flag[80];            /* "--gpu 1", "--gpus 0,0": the option as given */
    long workspace_mb;        /* --workspace-mb; < 0: the default budget */
    bool deterministic;       /* --deterministic */
    char why_cpu[64];         /* after resolve on the CPU: "--cpu", "no CUDA device found", ... */
} cnn_tool_dev;

/* Starts with the defaults for program `tool`; `multi` allows --gpus. */
void cnn_tool_dev_init(cnn_tool_dev *d, const char *tool, bool multi);
/* If argv[*i] is a device option, consumes it (and its value, advancing *i)
 * and returns 1; 0 when it is not one; -1 after printing why a value is bad
 * (the tool exits 2). */
int cnn_tool_dev_arg(cnn_tool_dev *d, int argc, char **argv, int *i);
/* Picks the default device, checks the asked ones exist and fills o's gpus,
 * gpu[], workspace_bytes and deterministic. Returns 0, or 1 after printing
 * the error (no such device, a build without CUDA). */
int cnn_tool_dev_resolve(cnn_tool_dev *d, cnn_net_opts *o);
/* One line naming where the net runs, without a newline: "CUDA 0: NVIDIA
 * H200, 139.8 GiB, compute capability 9.0", "CPU (no CUDA device found)". */
const char *cnn_tool_dev_describe(const cnn_tool_dev *d, char *buf, size_t n);
/* Whether the resolved choice is a GPU. */
bool cnn_tool_dev_gpu(const cnn_tool_dev *d);
/* Help text for the options, to append to a tool's usage. */
const char *cnn_tool_dev_usage(bool multi);

#endif
