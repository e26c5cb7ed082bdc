#!/usr/bin/env python3
"""safetensors_torch.py — the PyTorch side of check_weights' interop test.

  read FILE REF   parse FILE (a .safetensors file cnn wrote) with only the
                  standard library and torch, check the layout rules, and
                  compare every tensor with REF, a text file of lines
                  "name ndim d0 .. dn-1 v0 v1 ..." (values as %.9g).
  write FILE      write a .safetensors file the way other tools do, for cnn
                  to read: a.0 = arange(24).reshape(2,3,4) * 0.25 - 3,
                  b.1 = linspace(-1, 1, 5), h.0 = [1, 2, 3] as F16.

When the `safetensors` package is installed it is used as well (loading in
read mode, saving in write mode); otherwise the format is handled by hand.
Exits non-zero with a message on any mismatch."""
import json
import struct
import sys

import torch


def fail(msg):
    print("safetensors_torch.py: " + msg, file=sys.stderr)
    sys.exit(1)


def parse(path):
    with open(path, "rb") as f:
        buf = f.read()
    (n,) = struct.unpack("<Q", buf[:8])
    if n % 8:
        fail("header length %d is not a multiple of 8" % n)
    header = json.loads(buf[8:8 + n].decode("utf-8"))
    data = buf[8 + n:]
    meta = header.pop("__metadata__", {})
    if meta.get("format") != "cnn":
        fail("metadata format is %r" % meta.get("format"))
    spans = sorted(tuple(e["data_offsets"]) for e in header.values())
    at = 0
    for b, e in spans:
        if b != at:
            fail("data is not contiguous at byte %d" % b)
        at = e
    if at != len(data):
        fail("data area is %d bytes, tensors cover %d" % (len(data), at))
    out = {}
    for name, e in header.items():
        if e["dtype"] != "F32":
            fail("%s has dtype %s" % (name, e["dtype"]))
        b, end = e["data_offsets"]
        raw = bytearray(data[b:end])
        t = torch.frombuffer(raw, dtype=torch.float32) if raw else torch.empty(0)
        out[name] = t.reshape(e["shape"])
    return out


def read_ref(path):
    ref = {}
    with open(path) as f:
        for line in f:
            tok = line.split()
            name, nd = tok[0], int(tok[1])
            shape = [int(x) for x in tok[2:2 + nd]]
            vals = [float(x) for x in tok[2 + nd:]]
            ref[name] = torch.tensor(vals, dtype=torch.float32).reshape(shape)
    return ref


def compare(got, ref, how):
    if sorted(got) != sorted(ref):
        fail("%s: names %s, expected %s" % (how, sorted(got), sorted(ref)))
    for name, want in ref.items():
        t = got[name]
        if list(t.shape) != list(want.shape):
            fail("%s: %s has shape %s, expected %s" % (how, name, list(t.shape),
                                                      list(want.shape)))
        if not torch.equal(t, want):
            fail("%s: %s values differ" % (how, name))


def write(path):
    tensors = {
        "a.0": torch.arange(24, dtype=torch.float32).reshape(2, 3, 4) * 0.25 - 3,
        "b.1": torch.linspace(-1, 1, 5, dtype=torch.float32),
        "h.0": torch.tensor([1, 2, 3], dtype=torch.float16),
    }
    try:
        from safetensors.torch import save_file
        save_file(tensors, path, metadata={"format": "pt"})
        return "safetensors"
    except ImportError:
        pass
    header, blobs, at = {"__metadata__": {"format": "pt"}}, [], 0
    for name, t in tensors.items():
        flat = t.flatten().tolist()
        code = "e" if t.dtype == torch.float16 else "f"
        raw = struct.pack("<%d%s" % (len(flat), code), *flat)
        header[name] = {"dtype": "F16" if code == "e" else "F32", "shape": list(t.shape),
                        "data_offsets": [at, at + len(raw)]}
        blobs.append(raw)
        at += len(raw)
    text = json.dumps(header).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))
    return "struct"


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "read":
        ref = read_ref(sys.argv[3])
        compare(parse(sys.argv[2]), ref, "struct+torch.frombuffer")
        try:
            from safetensors.torch import load_file
        except ImportError:
            load_file = None
        if load_file:
            compare(load_file(sys.argv[2]), ref, "safetensors.torch")
        print("torch read %d tensors: ok" % len(ref))
    elif len(sys.argv) == 3 and sys.argv[1] == "write":
        print("written with " + write(sys.argv[2]))
    else:
        fail("usage: safetensors_torch.py read FILE REF | write FILE")


if __name__ == "__main__":
    main()
