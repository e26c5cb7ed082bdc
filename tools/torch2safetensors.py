#!/usr/bin/env python3
"""torch2safetensors.py — writes a PyTorch state dict as a .safetensors file,
using only the standard library and torch (Debian's python3-torch; the
`safetensors` package is not needed). cnnconvert then renames the tensors
to cnn's "<layer>.<index>" through a map file (models/maps/).

  torch2safetensors.py IN.pth OUT.safetensors
      IN is what torch.save wrote: a state dict, a dict holding one under
      "state_dict" or "model", or a whole nn.Module.
  torch2safetensors.py --torchvision NAME OUT.safetensors [--pretrained] [--seed S]
      a torchvision model (alexnet, resnet18, ...): random weights from seed S
      (default 0), or with --pretrained the published ImageNet weights
      (torchvision downloads them to ~/.cache/torch on first use).

Floating-point tensors are written as F32; integer ones (BatchNorm's
num_batches_tracked) keep their type (I64), and the map drops them. Example:

  python3 tools/torch2safetensors.py --torchvision resnet18 --pretrained r18.safetensors
  bin/cnnconvert r18.safetensors resnet18.safetensors \\
      --map models/maps/torchvision_resnet18.map --model models/resnet18.cfg
"""
import argparse
import json
import struct
import sys

import torch

DTYPES = {
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
    torch.uint8: "U8", torch.bool: "BOOL",
}


def tensor_bytes(t):
    """Little-endian bytes of t (F32 for floating point) and the dtype name."""
    t = t.detach().cpu().contiguous()
    if t.is_floating_point():
        t = t.to(torch.float32)
        name = "F32"
    elif t.dtype in DTYPES:
        name = DTYPES[t.dtype]
    else:
        raise SystemExit("torch2safetensors.py: unsupported dtype %s" % t.dtype)
    if sys.byteorder != "little":
        raise SystemExit("torch2safetensors.py: needs a little-endian machine")
    try:
        raw = t.numpy().tobytes()
    except (RuntimeError, TypeError, ImportError):
        code = {"F32": "f", "I64": "q", "I32": "i", "I16": "h", "I8": "b", "U8": "B",
                "BOOL": "?"}[name]
        flat = t.flatten().tolist()
        raw = struct.pack("<%d%s" % (len(flat), code), *flat)
    return raw, name


def save(tensors, path, meta):
    """Writes {name: tensor} in the safetensors layout."""
    header, blobs, at = {"__metadata__": meta}, [], 0
    for name, t in tensors.items():
        raw, dtype = tensor_bytes(t)
        header[name] = {"dtype": dtype, "shape": list(t.shape),
                        "data_offsets": [at, at + len(raw)]}
        blobs.append(raw)
        at += len(raw)
    text = json.dumps(header).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def state_dict_of(obj, path):
    if isinstance(obj, torch.nn.Module):
        return obj.state_dict()
    if isinstance(obj, dict):
        for key in ("state_dict", "model"):
            if isinstance(obj.get(key), (dict, torch.nn.Module)):
                return state_dict_of(obj[key], path)
        if all(isinstance(v, torch.Tensor) for v in obj.values()):
            return obj
    raise SystemExit("torch2safetensors.py: %s holds no state dict" % path)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("input", nargs="?", help="a file written by torch.save")
    p.add_argument("output", help="the .safetensors file to write")
    p.add_argument("--torchvision", metavar="NAME", help="a torchvision model instead of IN")
    p.add_argument("--pretrained", action="store_true", help="torchvision's trained weights")
    p.add_argument("--seed", type=int, default=0, help="seed for random weights (default 0)")
    a = p.parse_args()
    if bool(a.torchvision) == bool(a.input):
        p.error("give either IN or --torchvision NAME")
    if a.torchvision:
        import torchvision
        torch.manual_seed(a.seed)
        ctor = getattr(torchvision.models, a.torchvision, None)
        if ctor is None:
            p.error("torchvision has no model %r" % a.torchvision)
        model = ctor(weights="DEFAULT") if a.pretrained else ctor(weights=None)
        sd = model.state_dict()
        source = "torchvision." + a.torchvision + (" (pretrained)" if a.pretrained else "")
    else:
        obj = torch.load(a.input, map_location="cpu")
        sd = state_dict_of(obj, a.input)
        source = a.input
    save(sd, a.output, {"format": "pt", "source": source})
    print("%s: %d tensors -> %s" % (source, len(sd), a.output))


if __name__ == "__main__":
    main()
