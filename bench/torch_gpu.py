#!/usr/bin/env python3
"""torch_gpu.py — PyTorch (CUDA) side of bench/gpu_train.sh and gpu_modelpar.sh.

  torch_gpu.py NET BATCH ITERATIONS

NET is lenet or cifar10_quick (the layers of bench/torch_lenet.py, as the CPU
benchmark uses) or caffenet (Caffe's bvlc_reference_caffenet train_val: conv1
96x11x11/4, pool, LRN, conv2 256x5x5 group 2, pool, LRN, conv3 384, conv4 384
group 2, conv5 256 group 2, pool, fc6 4096, dropout, fc7 4096, dropout, fc8
1000; 3x227x227 inputs). Plain fp32 on cuda:0: TF32 off for convolutions and
matrix products (as cnn computes), cuDNN autotuning on (cnn also picks its
algorithms by measuring them). Random data resident on the GPU. Times a
training iteration: forward, softmax cross entropy, backward (grads zeroed
first) — the work `cnntime` times —, the same after copying the batch from
pageable host memory (cnn uploads its Input blobs at every forward pass, as
training uploads each batch), and the same plus an SGD momentum step.
10 warm-up iterations, then ITERATIONS timed ones between
torch.cuda.synchronize() calls. Prints one JSON object (mean ms)."""
import json
import os
import sys
import time

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_lenet import cifar10_quick, lenet  # noqa: E402


def caffenet():
    def conv(cin, cout, k, stride=1, pad=0, groups=1):
        return [nn.Conv2d(cin, cout, k, stride, pad, groups=groups), nn.ReLU(inplace=True)]

    pool = lambda: nn.MaxPool2d(3, 2)  # noqa: E731
    lrn = lambda: nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)  # noqa: E731
    return nn.Sequential(
        *conv(3, 96, 11, 4), pool(), lrn(),
        *conv(96, 256, 5, pad=2, groups=2), pool(), lrn(),
        *conv(256, 384, 3, pad=1),
        *conv(384, 384, 3, pad=1, groups=2),
        *conv(384, 256, 3, pad=1, groups=2), pool(),
        nn.Flatten(),
        nn.Linear(256 * 6 * 6, 4096), nn.ReLU(inplace=True), nn.Dropout(0.5),
        nn.Linear(4096, 4096), nn.ReLU(inplace=True), nn.Dropout(0.5),
        nn.Linear(4096, 1000)), (3, 227, 227)


NETS = {"lenet": lenet, "cifar10_quick": cifar10_quick, "caffenet": caffenet}


def timed(fn, warmup, iters):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    torch.cuda.synchronize()
    return {"mean_ms": (time.perf_counter() - t0) * 1e3 / iters}


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in NETS:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    name, batch, iters = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    if not torch.cuda.is_available():
        print("torch_gpu.py: torch.cuda.is_available() is False", file=sys.stderr)
        return 1
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    torch.manual_seed(1)
    dev = torch.device("cuda:0")
    net, shape = NETS[name]()
    net = net.to(dev).train()
    classes = net[-1].out_features
    x_host = torch.rand((batch,) + shape)
    y_host = torch.randint(0, classes, (batch,))
    x, y = x_host.to(dev), y_host.to(dev)
    opt = torch.optim.SGD(net.parameters(), lr=0.001, momentum=0.9)

    def fwd_bwd():
        opt.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()

    def copy_fwd_bwd():
        opt.zero_grad()
        nn.functional.cross_entropy(net(x_host.to(dev)), y_host.to(dev)).backward()

    def train_step():
        fwd_bwd()
        opt.step()

    out = {"net": name, "batch": batch, "iterations": iters, "torch": torch.__version__,
           "device": torch.cuda.get_device_name(0),
           "cudnn": torch.backends.cudnn.version(),
           "forward_backward": timed(fwd_bwd, 10, iters),
           "with_input_copy": timed(copy_fwd_bwd, 10, iters),
           "with_sgd_step": timed(train_step, 10, iters)}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
