#!/usr/bin/env python3
"""torch_loader.py — PyTorch's equivalent of bench/loader_bench.c, for
bench/loader.sh: a DataLoader over the same folder of class folders with
PIL decoding, the shorter side resized to 256 (bilinear), a random 227 crop,
a random horizontal flip, AlexNet PCA lighting (std 0.1, the same ImageNet
eigenvalues and eigenvectors), mean subtraction, batches of 64 from
num_workers worker processes (torchvision is not installed; these are the
same steps written with PIL, numpy and torch). WARMUP batches, then
BATCHES timed batches. Prints one line: images_per_s cpu_ms_per_image
(CPU time of this process and its workers, read from /proc, per image).

    torch_loader.py FOLDER WORKERS BATCHES [BATCH_SIZE]
"""
import os
import random
import sys
import time

import numpy as np
import torch
from PIL import Image

EIGVAL = torch.tensor([0.2175, 0.0188, 0.0045])
EIGVEC = torch.tensor([[-0.5675, 0.7192, 0.4009],
                       [-0.5808, -0.0045, -0.8140],
                       [-0.5836, -0.6948, 0.4203]])
WARMUP = 6  # batches before timing, as loader_bench.c
MEAN = torch.tensor([123.0, 117.0, 104.0]).view(3, 1, 1)


class Folder(torch.utils.data.Dataset):
    def __init__(self, root):
        classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
        self.items = []
        for k, c in enumerate(classes):
            for f in sorted(os.listdir(os.path.join(root, c))):
                if f.lower().endswith((".png", ".jpg", ".jpeg")):
                    self.items.append((os.path.join(root, c, f), k))

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        path, label = self.items[i]
        im = Image.open(path).convert("RGB")
        w, h = im.size
        s = 256 / min(w, h)
        if (w, h) != (round(w * s), round(h * s)):
            im = im.resize((round(w * s), round(h * s)), Image.BILINEAR)
        w, h = im.size
        x0, y0 = random.randint(0, w - 227), random.randint(0, h - 227)
        im = im.crop((x0, y0, x0 + 227, y0 + 227))
        if random.random() < 0.5:
            im = im.transpose(Image.FLIP_LEFT_RIGHT)
        t = torch.from_numpy(np.array(im, dtype=np.uint8)).permute(2, 0, 1).float()
        alpha = torch.randn(3) * 0.1
        offset = 255.0 * (EIGVEC * alpha.view(1, 3) * EIGVAL.view(1, 3)).sum(1)
        return t + offset.view(3, 1, 1) - MEAN, label


def worker_init(_):
    torch.set_num_threads(1)


def cpu_seconds(pids):
    """CPU seconds (user + system) of the processes `pids` so far."""
    total = 0
    for pid in pids:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def main():
    root, workers, batches = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    bs = int(sys.argv[4]) if len(sys.argv) > 4 else 64
    torch.set_num_threads(1)
    loader = torch.utils.data.DataLoader(Folder(root), batch_size=bs, shuffle=True,
                                         num_workers=workers, worker_init_fn=worker_init,
                                         drop_last=True, persistent_workers=workers > 0)
    done, it = 0, iter(loader)
    for _ in range(WARMUP):
        next(it)
    pids = [os.getpid()] + [w.pid for w in getattr(it, "_workers", [])]
    c0, w0 = cpu_seconds(pids), time.monotonic()
    while done < batches:
        try:
            next(it)
            done += 1
        except StopIteration:
            it = iter(loader)
    w1 = time.monotonic()
    c1 = cpu_seconds(pids)
    n = batches * bs
    print("%.1f %.3f" % (n / (w1 - w0), 1e3 * (c1 - c0) / n))


if __name__ == "__main__":
    main()
