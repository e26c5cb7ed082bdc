/* loader_bench.c — images/s of the ImageData loader, for bench/loader.sh.
 * Builds a net holding one ImageData layer (TRAIN: resize of the shorter
 * side to 256, random 227 crop, mirror, PCA lighting, mean subtraction,
 * shuffled) over SOURCE (a list file or a folder of class folders), pulls
 * WARMUP batches (every ring buffer touched once), then times BATCHES
 * batches. Prints one line:
 *   images_per_s cpu_ms_per_image
 * (process CPU time, worker threads included, per image delivered).
 *
 *   loader_bench SOURCE THREADS BATCHES [BATCH_SIZE] */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "core/cnn.h"

#define WARMUP 6 /* prefetch 4, plus margin */

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: loader_bench SOURCE THREADS BATCHES [BATCH_SIZE]\n");
        return 2;
    }
    int threads = atoi(argv[2]), batches = atoi(argv[3]), bs = argc > 4 ? atoi(argv[4]) : 64;
    char proto[2048];
    snprintf(proto, sizeof proto,
             "layer { name: 'data' type: 'ImageData' top: 'data' top: 'label'\n"
             "  transform_param { resize_shorter: 256 crop_size: 227 mirror: true\n"
             "    lighting_std: 0.1 mean_value: 123 mean_value: 117 mean_value: 104 }\n"
             "  image_data_param { source: '%s' batch_size: %d shuffle: true threads: %d\n"
             "    prefetch: 4 } }\n",
             argv[1], bs, threads);
    cnn_net_opts o = cnn_net_default_opts();
    o.phase = CNN_TRAIN;
    cnn_net *n = NULL;
    cnn_status st = cnn_net_from_string(proto, &o, &n);
    for (int b = 0; b < WARMUP && st == CNN_OK; b++) st = cnn_net_forward(n, NULL);
    if (st) {
        fprintf(stderr, "loader_bench: %s\n", cnn_error_message());
        cnn_net_free(n);
        return 1;
    }
    double w0 = clock_s(CLOCK_MONOTONIC), c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
    for (int b = 0; b < batches; b++)
        if (cnn_net_forward(n, NULL)) {
            fprintf(stderr, "loader_bench: %s\n", cnn_error_message());
            cnn_net_free(n);
            return 1;
        }
    double w1 = clock_s(CLOCK_MONOTONIC), c1 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
    double images = (double)batches * bs;
    printf("%.1f %.3f\n", images / (w1 - w0), 1e3 * (c1 - c0) / images);
    cnn_net_free(n);
    return 0;
}
