#!/usr/bin/python3
"""torch_oracle.py — checks cnn against PyTorch, a reference nobody here wrote.

  torch_oracle.py CNNRUN WORKDIR

For LeNet (mnist_lenet.prototxt's layers) and cifar10-quick
(cifar10_cifar10_quick.prototxt's layers), each ending in SoftmaxWithLoss:
writes random weights (cnn's names "<layer>.<index>", Caffe's shapes) and
random inputs and labels as .safetensors (standard library only), writes the
cnn model file, runs `CNNRUN MODEL --weights W --inputs IN --out OUT
--backward --all --phase TRAIN`, and compares with the same net computed by
torch in float64: every blob, the loss, every parameter gradient and the data
gradient. The error of a tensor is max |cnn - torch| / max |torch|; every one
must stay below TOL. Prints the worst error per tensor; exits 1 on failure.

Caffe's pooling rounds the output size up (ceil), and its average pooling
divides each window by its size clipped to the padded image; the reference
computes that divisor explicitly instead of relying on torch's AvgPool2d
border rules."""
import json
import math
import os
import struct
import subprocess
import sys

import torch
import torch.nn.functional as F

TOL = 1e-4
BATCH = 4


# ---- safetensors with the standard library ---------------------------------

def st_write(path, tensors):
    header, blobs, at = {"__metadata__": {"format": "pt"}}, [], 0
    for name, t in tensors.items():
        flat = t.detach().to(torch.float32).flatten().tolist()
        raw = struct.pack("<%df" % len(flat), *flat)
        header[name] = {"dtype": "F32", "shape": list(t.shape),
                        "data_offsets": [at, at + len(raw)]}
        blobs.append(raw)
        at += len(raw)
    text = json.dumps(header).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def st_read(path):
    with open(path, "rb") as f:
        buf = f.read()
    (n,) = struct.unpack("<Q", buf[:8])
    header = json.loads(buf[8:8 + n].decode("utf-8"))
    data = buf[8 + n:]
    meta = header.pop("__metadata__", {})
    out = {}
    for name, e in header.items():
        assert e["dtype"] == "F32", (name, e["dtype"])
        b, end = e["data_offsets"]
        count = (end - b) // 4
        vals = struct.unpack("<%df" % count, data[b:end])
        out[name] = torch.tensor(vals, dtype=torch.float64).reshape(e["shape"])
    return out, meta


# ---- Caffe's layers in torch ------------------------------------------------

def pooled(size, k, s, p):
    """Caffe's output size: rounded up, and the last window starts inside."""
    out = int(math.ceil((size + 2 * p - k) / s)) + 1
    if p > 0 and (out - 1) * s >= size + p:
        out -= 1
    return out


def max_pool(x, k, s):
    h, w = x.shape[2:]
    y = F.max_pool2d(x, k, s, ceil_mode=True)
    assert tuple(y.shape[2:]) == (pooled(h, k, s, 0), pooled(w, k, s, 0)), y.shape
    return y


def ave_pool(x, k, s, p=0):
    """Caffe's AVE pooling: window sums over the zero-padded input divided by
    (min(start + k, size + pad) - start) in each direction."""
    h, w = x.shape[2:]
    oh, ow = pooled(h, k, s, p), pooled(w, k, s, p)
    xp = F.pad(x, (p, p + k, p, p + k))  # room for windows that run past the end
    sums = torch.zeros(x.shape[0], x.shape[1], oh, ow, dtype=x.dtype)
    div = torch.zeros(oh, ow, dtype=x.dtype)
    for i in range(oh):
        for j in range(ow):
            hs, ws = i * s - p, j * s - p
            he, we = min(hs + k, h + p), min(ws + k, w + p)
            div[i, j] = (he - hs) * (we - ws)
            hs0, ws0, he0, we0 = max(hs, 0), max(ws, 0), min(he, h), min(we, w)
            sums[:, :, i, j] = xp[:, :, hs0 + p:he0 + p, ws0 + p:we0 + p].sum((2, 3))
    return sums / div


# ---- the two nets -------------------------------------------------------------
# Each net: input shape, classes, and layers as (name, type, args, bottom, top).

LENET = ((1, 28, 28), 10, [
    ("conv1", "conv", dict(cin=1, cout=20, k=5, pad=0), "data", "conv1"),
    ("pool1", "max", dict(k=2, s=2), "conv1", "pool1"),
    ("conv2", "conv", dict(cin=20, cout=50, k=5, pad=0), "pool1", "conv2"),
    ("pool2", "max", dict(k=2, s=2), "conv2", "pool2"),
    ("ip1", "ip", dict(k=800, n=500), "pool2", "ip1"),
    ("relu1", "relu", {}, "ip1", "ip1"),
    ("ip2", "ip", dict(k=500, n=10), "ip1", "ip2"),
])

CIFAR10_QUICK = ((3, 32, 32), 10, [
    ("conv1", "conv", dict(cin=3, cout=32, k=5, pad=2), "data", "conv1"),
    ("pool1", "max", dict(k=3, s=2), "conv1", "pool1"),
    ("relu1", "relu", {}, "pool1", "pool1"),
    ("conv2", "conv", dict(cin=32, cout=32, k=5, pad=2), "pool1", "conv2"),
    ("relu2", "relu", {}, "conv2", "conv2"),
    ("pool2", "ave", dict(k=3, s=2), "conv2", "pool2"),
    ("conv3", "conv", dict(cin=32, cout=64, k=5, pad=2), "pool2", "conv3"),
    ("relu3", "relu", {}, "conv3", "conv3"),
    ("pool3", "ave", dict(k=3, s=2), "conv3", "pool3"),
    ("ip1", "ip", dict(k=1024, n=64), "pool3", "ip1"),
    ("ip2", "ip", dict(k=64, n=10), "ip1", "ip2"),
])


def model_text(name, net):
    (c, h, w), _, layers = net
    out = ['name: "%s"' % name, "force_backward: true",
           'layer { name: "data" type: "Input" top: "data" input_param { shape { '
           'dim: %d dim: %d dim: %d dim: %d } } }' % (BATCH, c, h, w),
           'layer { name: "label" type: "Input" top: "label" '
           'input_param { shape { dim: %d } } }' % BATCH]
    for lname, kind, a, bottom, top in layers:
        head = 'layer { name: "%s" bottom: "%s" top: "%s" ' % (lname, bottom, top)
        if kind == "conv":
            out.append(head + 'type: "Convolution" convolution_param { num_output: %d '
                       'kernel_size: %d pad: %d } }' % (a["cout"], a["k"], a["pad"]))
        elif kind in ("max", "ave"):
            out.append(head + 'type: "Pooling" pooling_param { pool: %s kernel_size: %d '
                       'stride: %d } }' % (kind.upper(), a["k"], a["s"]))
        elif kind == "relu":
            out.append(head + 'type: "ReLU" }')
        elif kind == "ip":
            out.append(head + 'type: "InnerProduct" inner_product_param { '
                       'num_output: %d } }' % a["n"])
    out.append('layer { name: "loss" type: "SoftmaxWithLoss" bottom: "%s" bottom: "label" '
               'top: "loss" }' % layers[-1][4])
    return "\n".join(out) + "\n"


def random_weights(net, gen):
    w = {}
    for lname, kind, a, _, _ in net[2]:
        if kind == "conv":
            shape, fan_in = (a["cout"], a["cin"], a["k"], a["k"]), a["cin"] * a["k"] ** 2
            bias = a["cout"]
        elif kind == "ip":
            shape, fan_in, bias = (a["n"], a["k"]), a["k"], a["n"]
        else:
            continue
        lim = math.sqrt(3.0 / fan_in)
        w[lname + ".0"] = (torch.rand(shape, generator=gen) * 2 - 1) * lim
        w[lname + ".1"] = (torch.rand(bias, generator=gen) * 2 - 1) * 0.1
    return w


def reference(net, weights, data, label):
    """Forward and backward in float64: blobs, loss, gradients by name."""
    params = {k: v.to(torch.float64).requires_grad_() for k, v in weights.items()}
    x = data.to(torch.float64).requires_grad_()
    blobs = {"data": x}
    for lname, kind, a, bottom, top in net[2]:
        b = blobs[bottom]
        if kind == "conv":
            y = F.conv2d(b, params[lname + ".0"], params[lname + ".1"], padding=a["pad"])
        elif kind == "max":
            y = max_pool(b, a["k"], a["s"])
        elif kind == "ave":
            y = ave_pool(b, a["k"], a["s"])
            builtin = F.avg_pool2d(b, a["k"], a["s"], ceil_mode=True, count_include_pad=True)
            same = builtin.shape == y.shape and torch.allclose(builtin, y, rtol=0, atol=1e-12)
            print("note %s: torch's AvgPool2d(ceil_mode=True) %s Caffe's %s -> %s" % (
                lname, "matches" if same else "differs from", tuple(b.shape[2:]),
                tuple(y.shape[2:])))
        elif kind == "relu":
            y = F.relu(b)
        elif kind == "ip":
            y = F.linear(b.flatten(1), params[lname + ".0"], params[lname + ".1"])
        blobs[top] = y
    logits = blobs[net[2][-1][4]]
    loss = F.cross_entropy(logits, label.long(), reduction="mean")
    loss.backward()
    out = {k: v.detach() for k, v in blobs.items() if k != "data"}
    out["loss"] = loss.detach()  # Caffe's loss top has shape ()
    for k, v in params.items():
        out["grad." + k] = v.grad
    out["grad.data"] = x.grad
    return out


def check(name, net, cnnrun, work, seed):
    gen = torch.Generator().manual_seed(seed)
    (c, h, w), classes, _ = net
    weights = random_weights(net, gen)
    data = torch.rand((BATCH, c, h, w), generator=gen) * 2 - 1
    label = torch.randint(0, classes, (BATCH,), generator=gen).to(torch.float32)
    paths = {k: os.path.join(work, "%s.%s" % (name, k))
             for k in ("prototxt", "weights.safetensors", "in.safetensors",
                       "out.safetensors")}
    with open(paths["prototxt"], "w") as f:
        f.write(model_text(name, net))
    st_write(paths["weights.safetensors"], weights)
    st_write(paths["in.safetensors"], {"data": data, "label": label})
    cmd = [cnnrun, paths["prototxt"], "--weights", paths["weights.safetensors"],
           "--inputs", paths["in.safetensors"], "--out", paths["out.safetensors"],
           "--backward", "--all", "--phase", "TRAIN"]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True)
    if r.returncode != 0:
        print("FAIL %s: %s exited %d: %s" % (name, cnnrun, r.returncode, r.stdout.strip()))
        return False
    got, meta = st_read(paths["out.safetensors"])
    want = reference(net, weights, data, label)
    ok = True
    got["loss (metadata)"] = torch.tensor([float(meta.get("loss", "nan"))],
                                          dtype=torch.float64)
    want["loss (metadata)"] = want["loss"].reshape(1)
    for key, ref in want.items():
        if key not in got:
            print("FAIL %s: cnnrun wrote no '%s' (it wrote %s)" % (name, key, sorted(got)))
            ok = False
            continue
        t = got[key]
        if tuple(t.shape) != tuple(ref.shape):
            print("FAIL %s: %s has shape %s, torch %s" % (name, key, tuple(t.shape),
                                                         tuple(ref.shape)))
            ok = False
            continue
        scale = ref.abs().max().item()
        err = (t - ref).abs().max().item() / (scale if scale > 0 else 1.0)
        good = err < TOL and not math.isnan(err)
        ok &= good
        print("%s %-14s %-18s %-20s max|ref| %.3e  rel err %.2e" % (
            "ok  " if good else "FAIL", name, key, "x".join(map(str, ref.shape)) or "scalar", scale, err))
    return ok


def main():
    if len(sys.argv) != 3:
        print("usage: torch_oracle.py CNNRUN WORKDIR", file=sys.stderr)
        return 2
    cnnrun, work = sys.argv[1], sys.argv[2]
    torch.set_num_threads(2)
    ok = check("lenet", LENET, cnnrun, work, 1)
    ok &= check("cifar10_quick", CIFAR10_QUICK, cnnrun, work, 2)
    print("torch oracle: %s" % ("all tensors within %g" % TOL if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
