#!/usr/bin/env python3
"""make_subsets.py — the Fashion-MNIST subsets of the transfer-learning
example (docs/finetune.md), as IDX files, with only the standard library.

  python3 models/transfer/make_subsets.py [--src DIR] [--out DIR] [--per-class N]

From the four Fashion-MNIST files in DIR (default: Debian's
/usr/share/datasets/fashion-mnist, package dataset-fashion-mnist) it writes
to --out (default data/transfer):

  old-train-{images,labels}.idx  training images of classes 0-4 (T-shirt,
                                 Trouser, Pullover, Dress, Coat), labels 0-4
  old-test-{images,labels}.idx   their test images
  new-train-{images,labels}.idx  the first N (default 100) training images
                                 of each of classes 5-9 (Sandal, Shirt,
                                 Sneaker, Bag, Ankle boot), relabelled 0-4
  new-test-{images,labels}.idx   every test image of classes 5-9, relabelled
"""
import argparse
import gzip
import os
import struct
import sys


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    magic, = struct.unpack(">I", data[:4])
    if magic >> 8 != 0x08:
        sys.exit("make_subsets.py: %s is not an unsigned-byte IDX file" % path)
    nd = magic & 0xFF
    dims = struct.unpack(">%dI" % nd, data[4:4 + 4 * nd])
    return dims, data[4 + 4 * nd:]


def write_idx(path, dims, payload):
    with open(path, "wb") as f:
        f.write(struct.pack(">I", 0x0800 | len(dims)))
        f.write(struct.pack(">%dI" % len(dims), *dims))
        f.write(payload)


def subset(images, labels, keep, relabel, per_class=None):
    (n, h, w), pix = images
    _, lab = labels
    size = h * w
    out_img, out_lab, seen = [], [], {}
    for i in range(n):
        c = lab[i]
        if c not in keep:
            continue
        if per_class is not None:
            if seen.get(c, 0) >= per_class:
                continue
            seen[c] = seen.get(c, 0) + 1
        out_img.append(pix[i * size:(i + 1) * size])
        out_lab.append(c - relabel)
    return (len(out_lab), h, w), b"".join(out_img), bytes(out_lab)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--src", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--out", default="data/transfer")
    p.add_argument("--per-class", type=int, default=100)
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    sets = {}
    for split, stem in (("train", "train"), ("test", "t10k")):
        sets[split] = (read_idx(os.path.join(a.src, stem + "-images-idx3-ubyte.gz")),
                       read_idx(os.path.join(a.src, stem + "-labels-idx1-ubyte.gz")))
    jobs = [("old-train", "train", range(0, 5), 0, None),
            ("old-test", "test", range(0, 5), 0, None),
            ("new-train", "train", range(5, 10), 5, a.per_class),
            ("new-test", "test", range(5, 10), 5, None)]
    for name, split, keep, relabel, per in jobs:
        dims, img, lab = subset(*sets[split], set(keep), relabel, per)
        write_idx(os.path.join(a.out, name + "-images.idx"), dims, img)
        write_idx(os.path.join(a.out, name + "-labels.idx"), dims[:1], lab)
        print("%s: %d images" % (os.path.join(a.out, name), dims[0]))


if __name__ == "__main__":
    main()
