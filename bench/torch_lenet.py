#!/usr/bin/python3
"""torch_lenet.py — PyTorch (CPU) side of bench/cpu_lenet.sh.

  torch_lenet.py NET BATCH ITERATIONS [THREADS]

NET is lenet (mnist_lenet.prototxt's layers, 1x28x28 inputs) or cifar10_quick
(cifar10_cifar10_quick.prototxt's layers, 3x32x32, Caffe's ceil-rounded
pooling). Times one training iteration on random data: forward, softmax cross
entropy, backward (grads zeroed first) — the work `cnntime` times — and
separately the same plus an SGD momentum step. Warm-up of 5 iterations, then
ITERATIONS timed ones. Prints one JSON object with mean and median ms."""
import json
import statistics
import sys
import time

import torch
from torch import nn


def lenet():
    return nn.Sequential(
        nn.Conv2d(1, 20, 5), nn.MaxPool2d(2, 2),
        nn.Conv2d(20, 50, 5), nn.MaxPool2d(2, 2),
        nn.Flatten(), nn.Linear(800, 500), nn.ReLU(), nn.Linear(500, 10)), (1, 28, 28)


def cifar10_quick():
    # Caffe's pooling rounds the output size up; for these sizes (32, 16, 8)
    # with no padding PyTorch's ceil_mode gives the same windows and divisors.
    return nn.Sequential(
        nn.Conv2d(3, 32, 5, padding=2), nn.MaxPool2d(3, 2, ceil_mode=True), nn.ReLU(),
        nn.Conv2d(32, 32, 5, padding=2), nn.ReLU(), nn.AvgPool2d(3, 2, ceil_mode=True),
        nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.AvgPool2d(3, 2, ceil_mode=True),
        nn.Flatten(), nn.Linear(1024, 64), nn.Linear(64, 10)), (3, 32, 32)


def timed(fn, warmup, iters):
    for _ in range(warmup):
        fn()
    ms = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        ms.append((time.perf_counter() - t0) * 1e3)
    return {"mean_ms": statistics.mean(ms), "median_ms": statistics.median(ms)}


def main():
    if len(sys.argv) not in (4, 5) or sys.argv[1] not in ("lenet", "cifar10_quick"):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    name, batch, iters = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    threads = int(sys.argv[4]) if len(sys.argv) == 5 else 2
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    net, shape = lenet() if name == "lenet" else cifar10_quick()
    x = torch.rand((batch,) + shape)
    y = torch.randint(0, 10, (batch,))
    opt = torch.optim.SGD(net.parameters(), lr=0.001, momentum=0.9)

    def fwd_bwd():
        opt.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()

    def train_step():
        fwd_bwd()
        opt.step()

    out = {"net": name, "batch": batch, "iterations": iters, "threads": threads,
           "torch": torch.__version__,
           "forward_backward": timed(fwd_bwd, 5, iters),
           "with_sgd_step": timed(train_step, 5, iters)}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
