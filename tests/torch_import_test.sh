#!/usr/bin/env bash
# torch_import_test.sh — importing weights from other frameworks:
#   1. bin/cnnconvert on small hand-made inputs (python3 standard library):
#      a PyTorch-style .safetensors through a map (renames, constants,
#      dropped patterns, and every error: unmapped or missing tensors, bad map
#      lines, non-F32 data), a V1 .caffemodel with legacy 4-d blobs reshaped by
#      --model, and --list; bin/cnnfeatures on a tiny net with a LIST file and
#      the .caffemodel as weights, against values computed by hand;
#   2. with Debian's python3-torch and python3-torchvision (skipped without):
#      random torchvision AlexNet and ResNet-18 (BatchNorm statistics
#      randomised too) in eval mode, written by tools/torch2safetensors.py,
#      converted with the shipped maps, run by bin/cnnrun on the same input:
#      logits agree to a relative error under 1e-4 (max |diff| / max |ref|).
#      The converted files also go unchanged through bin/cnnclassify (top-1
#      and its probability) and bin/cnnfeatures (fc7 / pool5 vs torch).
set -u
cd "$(dirname "$0")/.."
PY=/usr/bin/python3
for b in bin/cnnconvert bin/cnnrun bin/cnnclassify bin/cnnfeatures; do
    [ -x "$b" ] || { echo "FAIL: $b not built"; exit 1; }
done
[ -x "$PY" ] || { echo "SKIP: $PY not found"; exit 0; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
# expect_fail NEEDLE CMD...: the command exits 1 and stderr holds NEEDLE.
expect_fail() {
    local needle=$1; shift
    if "$@" > "$T/out" 2> "$T/err"; then
        bad "$* succeeded"
    elif ! grep -qF -- "$needle" "$T/err"; then
        bad "$*: stderr lacks '$needle': $(cat "$T/err")"
    else
        ok "$* fails: $(head -c 150 "$T/err" | head -n 1)"
    fi
}

# ---- 1. hand-made inputs ----------------------------------------------------
"$PY" - "$T" << 'EOF'
import json, struct, sys
T = sys.argv[1]

def safetensors(path, tensors):
    """tensors: list of (name, dtype, shape, raw bytes)."""
    header, blobs, off = {"__metadata__": {"format": "pt"}}, b"", 0
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(raw)]}
        blobs += raw
        off += len(raw)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + blobs)

def f32(vals):
    return struct.pack("<%df" % len(vals), *vals)

w = [i * 0.25 - 1 for i in range(2 * 3 * 2 * 2)]
safetensors(T + "/torch.safetensors", [
    ("conv.weight", "F32", [2, 3, 2, 2], f32(w)),
    ("conv.bias", "F32", [2], f32([0.5, -0.5])),
    ("bn.running_mean", "F32", [2], f32([1, 2])),
    ("bn.running_var", "F32", [2], f32([3, 4])),
    ("bn.num_batches_tracked", "I64", [], struct.pack("<q", 7)),
    ("fc.weight", "F32", [3, 2], f32([1, 2, 3, 4, 5, 6])),
])
with open(T + "/good.map", "w") as f:
    f.write("# comment\nconv.weight conv1.0\nconv.bias conv1.1   # trailing comment\n"
            "bn.running_mean bn1.0\nbn.running_var bn1.1\n=1 bn1.2\n"
            "*.num_batches_tracked -\nfc.weight ip1.0\n")
with open(T + "/unmapped.map", "w") as f:
    f.write("conv.weight conv1.0\nconv.bias conv1.1\n")
with open(T + "/missing.map", "w") as f:
    f.write("conv.weight conv1.0\nconv.bias conv1.1\nbn.running_mean bn1.0\n"
            "bn.running_var bn1.1\n*.num_batches_tracked -\nfc.weight ip1.0\nfc.bias ip1.1\n")
with open(T + "/badline.map", "w") as f:
    f.write("conv.weight conv1.0 extra\n")
with open(T + "/dup.map", "w") as f:
    f.write("conv.weight conv1.0\nconv.bias conv1.0\n")
with open(T + "/int.map", "w") as f:
    f.write("conv.weight conv1.0\nconv.bias conv1.1\nbn.running_mean bn1.0\n"
            "bn.running_var bn1.1\nbn.num_batches_tracked bn1.2\nfc.weight ip1.0\n")

# A V1 .caffemodel: conv1 weight 2x3x2x2 and bias 1x1x1x2, ip1 weight 1x1x3x8,
# all as legacy num/channels/height/width blobs.
def varint(v):
    out = b""
    while True:
        c = v & 0x7F
        v >>= 7
        out += bytes([c | (0x80 if v else 0)])
        if not v:
            return out
def key(f, wire): return varint(f << 3 | wire)
def ld(f, payload): return key(f, 2) + varint(len(payload)) + payload
def blob(dims, vals):
    return b"".join(key(i + 1, 0) + varint(d) for i, d in enumerate(dims)) + ld(5, f32(vals))
ipw = [i / 10 for i in range(24)]
layers = [
    ld(4, b"conv1") + key(5, 0) + varint(4) + ld(6, blob([2, 3, 2, 2], w)) +
    ld(6, blob([1, 1, 1, 2], [0.5, -0.5])),
    ld(4, b"relu1") + key(5, 0) + varint(18),
    ld(4, b"ip1") + key(5, 0) + varint(14) + ld(6, blob([1, 1, 3, 8], ipw)),
]
with open(T + "/v1.caffemodel", "wb") as f:
    f.write(ld(1, b"tiny") + b"".join(ld(2, l) for l in layers))
# A Caffe mean image (BGR averages 104, 117, 123 over a 2x2 image).
with open(T + "/mean.binaryproto", "wb") as f:
    f.write(blob([1, 3, 2, 2], [103, 105, 104, 104, 117, 117, 116, 118, 123, 123, 123, 123]))
with open(T + "/expect.json", "w") as f:
    json.dump({"w": w, "ipw": ipw}, f)
EOF

cat > "$T/tiny.cfg" << 'EOF'
layer { name: "data" type: "Input" top: "data"
        input_param { shape { dim: 1 dim: 3 dim: 3 dim: 3 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "c"
        convolution_param { num_output: 2 kernel_size: 2 } }
layer { name: "relu1" type: "ReLU" bottom: "c" top: "c" }
layer { name: "ip1" type: "InnerProduct" bottom: "c" top: "y"
        inner_product_param { num_output: 3 bias_term: false } }
EOF

if bin/cnnconvert "$T/torch.safetensors" "$T/mapped.safetensors" --map "$T/good.map" \
        > "$T/out" 2> "$T/err"; then
    ok "cnnconvert with a map: $(cat "$T/out")"
else
    bad "cnnconvert with a map: $(cat "$T/err")"
fi
bin/cnnconvert --list "$T/mapped.safetensors" > "$T/list" 2>&1
for want in "conv1.0  *2x3x2x2" "bn1.2  *1\$" "ip1.0  *3x2"; do
    grep -q "$want" "$T/list" && ok "--list shows '$want'" \
        || bad "--list lacks '$want': $(cat "$T/list")"
done
grep -q "num_batches" "$T/list" && bad "dropped tensor written" || ok "dropped pattern not written"
"$PY" - "$T" << 'EOF' && ok "mapped values exact" || bad "mapped values differ"
import json, struct, sys
T = sys.argv[1]
b = open(T + "/mapped.safetensors", "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
d = b[8 + n:]
def get(k):
    s, e = h[k]["data_offsets"]
    return list(struct.unpack("<%df" % ((e - s) // 4), d[s:e]))
exp = json.load(open(T + "/expect.json"))
assert h["__metadata__"]["format"] == "cnn", h["__metadata__"]
assert get("conv1.0") == exp["w"] and get("conv1.1") == [0.5, -0.5]
assert get("bn1.0") == [1, 2] and get("bn1.1") == [3, 4] and get("bn1.2") == [1.0]
assert get("ip1.0") == [1, 2, 3, 4, 5, 6] and h["ip1.0"]["shape"] == [3, 2]
assert len([k for k in h if k != "__metadata__"]) == 6
EOF
expect_fail "tensor 'bn.running_mean' is not in the map" \
    bin/cnnconvert "$T/torch.safetensors" "$T/x.safetensors" --map "$T/unmapped.map"
expect_fail "no tensor 'fc.bias'" \
    bin/cnnconvert "$T/torch.safetensors" "$T/x.safetensors" --map "$T/missing.map"
expect_fail "badline.map:1: expected two names" \
    bin/cnnconvert "$T/torch.safetensors" "$T/x.safetensors" --map "$T/badline.map"
expect_fail "dup.map:2: 'conv1.0' is already the destination of line 1" \
    bin/cnnconvert "$T/torch.safetensors" "$T/x.safetensors" --map "$T/dup.map"
expect_fail "dtype I64" \
    bin/cnnconvert "$T/torch.safetensors" "$T/x.safetensors" --map "$T/int.map"
expect_fail "absent.caffemodel: cannot open: No such file" \
    bin/cnnconvert "$T/absent.caffemodel" "$T/x.safetensors"
[ -e "$T/x.safetensors" ] && bad "a failed conversion left its output" || ok "no output on failure"
bin/cnnconvert "$T/torch.safetensors" "$T/x.safetensors" > /dev/null 2>&1
[ $? -eq 2 ] && ok "safetensors input without --map is a usage error" || bad "no usage error"

bin/cnnconvert --list "$T/mean.binaryproto" > "$T/list" 2>&1
grep -q "binaryproto, 1x3x2x2" "$T/list" && grep -q "channel averages: 104.000 117.000 123.000" \
    "$T/list" && ok "--list of a mean image" || bad "--list of a mean image: $(cat "$T/list")"
head -c 20 "$T/mean.binaryproto" > "$T/cut.binaryproto"
expect_fail "cut.binaryproto: byte" bin/cnnconvert --list "$T/cut.binaryproto"

# The V1 .caffemodel: legacy shapes squeezed, or the model's shapes with --model.
bin/cnnconvert --list "$T/v1.caffemodel" > "$T/list" 2>&1
grep -q "ip1.0  *1x1x3x8 *InnerProduct (legacy 4-d shape)" "$T/list" \
    && ok "--list of a V1 caffemodel" || bad "--list: $(cat "$T/list")"
if bin/cnnconvert "$T/v1.caffemodel" "$T/v1.safetensors" --model "$T/tiny.cfg" \
        > "$T/out" 2> "$T/err"; then
    ok "caffemodel with --model: $(cat "$T/out")"
else
    bad "caffemodel with --model: $(cat "$T/err")"
fi
bin/cnnconvert "$T/v1.caffemodel" "$T/v1plain.safetensors" > /dev/null 2>&1 \
    || bad "caffemodel without --model"
"$PY" - "$T" << 'EOF' && ok "caffemodel values exact, model's shapes" || bad "caffemodel conversion"
import json, struct, sys
T = sys.argv[1]
def load(p):
    b = open(p, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    return json.loads(b[8:8 + n]), b[8 + n:]
exp = json.load(open(T + "/expect.json"))
for name, shapes in (("v1", {"conv1.0": [2, 3, 2, 2], "conv1.1": [2], "ip1.0": [3, 8]}),
                     ("v1plain", {"conv1.0": [2, 3, 2, 2], "conv1.1": [2], "ip1.0": [3, 8]})):
    h, d = load("%s/%s.safetensors" % (T, name))
    assert h["__metadata__"]["net"] == "tiny"
    for k, s in shapes.items():
        assert h[k]["shape"] == s, (name, k, h[k]["shape"])
    s, e = h["ip1.0"]["data_offsets"]
    assert struct.unpack("<24f", d[s:e]) == struct.unpack("<24f", struct.pack("<24f", *exp["ipw"]))
EOF
# --model catches a model whose shapes disagree.
sed 's/num_output: 3/num_output: 4/' "$T/tiny.cfg" > "$T/tiny4.cfg"
expect_fail "ip1.0 is 3x8, but the model's parameter is 4x8" \
    bin/cnnconvert "$T/v1.caffemodel" "$T/x.safetensors" --model "$T/tiny4.cfg"
# A truncated caffemodel is a clean error naming the file.
head -c 60 "$T/v1.caffemodel" > "$T/cut.caffemodel"
expect_fail "cut.caffemodel: byte" bin/cnnconvert "$T/cut.caffemodel" "$T/x.safetensors"

# cnnfeatures on the tiny net with the .caffemodel itself as weights (legacy
# shapes accepted): a LIST file with a comment, a missing image (reported,
# skipped, exit 1), values checked against a direct computation.
"$PY" - "$T" << 'EOF'
import struct, sys, zlib
T = sys.argv[1]
def png(path, pix):
    raw = b"".join(b"\0" + bytes(v for x in range(3) for v in pix(x, y)) for y in range(3))
    def chunk(t, d):
        c = t + d
        return struct.pack(">I", len(d)) + c + struct.pack(">I", zlib.crc32(c) & 0xFFFFFFFF)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 3, 3, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
png(T + "/a.png", lambda x, y: (x * 10, y * 20, 5))
png(T + "/b,c.png", lambda x, y: (200 - x * y, 3, 100 + x))
with open(T + "/list.txt", "w") as f:
    f.write("a.png 0\n# a comment\nb,c.png 1\nmissing.png 2\n")
EOF
bin/cnnfeatures --model "$T/tiny.cfg" --weights "$T/v1.caffemodel" --blob y --root "$T" \
    --out "$T/feat" "$T/list.txt" > "$T/out" 2> "$T/err"
rc=$?
[ $rc -eq 1 ] && grep -q "missing.png" "$T/err" && grep -q "2 images, blob 'y' (3 values each)" \
    "$T/out" && ok "cnnfeatures: LIST, missing image skipped (exit 1)" \
    || bad "cnnfeatures LIST: rc $rc $(cat "$T/out" "$T/err")"
"$PY" - "$T" << 'EOF' && ok "cnnfeatures values (npy and csv) match a direct computation" \
    || bad "cnnfeatures values"
import csv, json, struct, sys
T = sys.argv[1]
exp = json.load(open(T + "/expect.json"))
f32 = lambda v: struct.unpack("<%df" % len(v), struct.pack("<%df" % len(v), *v))
w, ipw, bias = f32(exp["w"]), f32(exp["ipw"]), (0.5, -0.5)
def feat(pix):  # pix[c][y][x]; conv 2x3x2x2 + bias, ReLU, ip 3x8
    c1 = []
    for o in range(2):
        for y in range(2):
            for x in range(2):
                s = bias[o] + sum(w[((o * 3 + c) * 2 + ky) * 2 + kx] * pix[c][y + ky][x + kx]
                                  for c in range(3) for ky in range(2) for kx in range(2))
                c1.append(max(s, 0.0))
    return [sum(ipw[j * 8 + i] * c1[i] for i in range(8)) for j in range(3)]
imgs = [[[[x * 10 for x in range(3)] for y in range(3)], [[y * 20] * 3 for y in range(3)],
         [[5] * 3 for y in range(3)]],
        [[[200 - x * y for x in range(3)] for y in range(3)], [[3] * 3 for y in range(3)],
         [[100 + x for x in range(3)] for y in range(3)]]]
want = [feat(p) for p in imgs]
raw = open(T + "/feat.npy", "rb").read()
assert raw[:8] == b"\x93NUMPY\x01\x00"
hl = struct.unpack("<H", raw[8:10])[0]
header = raw[10:10 + hl].decode()
assert (10 + hl) % 64 == 0 and "'descr': '<f4'" in header and "'shape': (2, 3)" in header, header
got = struct.unpack("<6f", raw[10 + hl:])
rows = list(csv.reader(open(T + "/feat.csv")))
assert rows[0] == ["file", "v0", "v1", "v2"] and rows[2][0] == T + "/b,c.png", rows
for i in range(2):
    for j in range(3):
        assert abs(got[i * 3 + j] - want[i][j]) <= 1e-4 * max(1, abs(want[i][j])), (got, want)
        assert f32([float(rows[i + 1][j + 1])])[0] == got[i * 3 + j]  # %.9g round-trips
EOF
expect_fail "no blob 'nope'" bin/cnnfeatures --model "$T/tiny.cfg" --weights "$T/v1.caffemodel" \
    --blob nope "$T/a.png"
bin/cnnfeatures --model "$T/tiny.cfg" --weights "$T/v1.caffemodel" --blob y --format csv \
    --out "$T/only" "$T/a.png" > /dev/null 2>&1 && [ -f "$T/only.csv" ] && [ ! -e "$T/only.npy" ] \
    && ok "cnnfeatures --format csv" || bad "cnnfeatures --format csv"

# ---- 2. PyTorch parity ------------------------------------------------------------
if ! "$PY" -c "import torch, torchvision" > /dev/null 2>&1; then
    echo "SKIP: PyTorch parity: $PY cannot import torch and torchvision" \
         "(apt-get install python3-torchvision)"
    [ "$fails" -eq 0 ] && echo "all passed" || echo "$fails failed"
    [ "$fails" -eq 0 ]
    exit
fi

"$PY" - "$T" << 'EOF'
"""Random torchvision nets, one 224x224 RGB image (PNG) and its tensor, the
reference logits and features."""
import json, struct, sys, zlib
import torch, torchvision
sys.path.insert(0, "tools")
from torch2safetensors import save
T = sys.argv[1]
torch.manual_seed(0)
img = torch.randint(0, 256, (224, 224, 3), dtype=torch.uint8)
raw = b"".join(b"\0" + bytes(img[y].flatten().tolist()) for y in range(224))
def chunk(t, d):
    c = t + d
    return struct.pack(">I", len(d)) + c + struct.pack(">I", zlib.crc32(c) & 0xFFFFFFFF)
with open(T + "/img.png", "wb") as f:
    f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 224, 224, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
# What the models' transform_param makes of it: (pixel - mean[c]) * scale.
mean = torch.tensor([123.675, 116.28, 103.53]).view(3, 1, 1)
x = ((img.permute(2, 0, 1).float() - mean) * 0.017352).unsqueeze(0)
save({"data": x}, T + "/in.safetensors", {"format": "pt"})
ref = {}
for name in ("alexnet", "resnet18"):
    torch.manual_seed(1)
    m = getattr(torchvision.models, name)(weights=None)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.normal_(0, 0.2)
                mod.running_var.uniform_(0.5, 2.0)
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.normal_(0, 0.2)
    m.eval()
    with torch.no_grad():
        if name == "alexnet":
            h = torch.flatten(m.avgpool(m.features(x)), 1)
            feat = m.classifier[:6](h)          # fc7 after its ReLU
            logits = m.classifier[6](feat)
            assert torch.allclose(logits, m(x))
        else:
            f = m.layer4(m.layer3(m.layer2(m.layer1(m.maxpool(m.relu(m.bn1(m.conv1(x))))))))
            feat = torch.flatten(m.avgpool(f), 1)
            logits = m.fc(feat)
            assert torch.allclose(logits, m(x))
    torch.save(m.state_dict(), "%s/%s.pth" % (T, name))
    ref[name] = {"logits": logits[0].tolist(), "feat": feat[0].tolist(),
                 "prob": torch.softmax(logits[0], 0).tolist()}
json.dump(ref, open(T + "/ref.json", "w"))
EOF
[ $? -eq 0 ] || { bad "PyTorch reference"; exit 1; }

for net in alexnet resnet18; do
    if [ $net = alexnet ]; then cfg=models/torchvision_alexnet.cfg out=fc8 feat=fc7
    else cfg=models/resnet18.cfg out=fc1000 feat=pool5; fi
    map=models/maps/torchvision_$net.map
    "$PY" tools/torch2safetensors.py "$T/$net.pth" "$T/${net}_pt.safetensors" > /dev/null \
        || { bad "$net: torch2safetensors.py"; continue; }
    rm -f "$T/$net.pth"
    if ! bin/cnnconvert "$T/${net}_pt.safetensors" "$T/$net.safetensors" --map "$map" \
            --model "$cfg" > "$T/out" 2> "$T/err"; then
        bad "$net: cnnconvert: $(cat "$T/err")"
        continue
    fi
    rm -f "$T/${net}_pt.safetensors"
    ok "$net: $(cat "$T/out")"
    bin/cnnrun "$cfg" --weights "$T/$net.safetensors" --inputs "$T/in.safetensors" \
        --out "$T/${net}_out.safetensors" 2> "$T/err" \
        || { bad "$net: cnnrun: $(cat "$T/err")"; continue; }
    bin/cnnclassify --model "$cfg" --weights "$T/$net.safetensors" --json --top 1 "$T/img.png" \
        > "$T/${net}_cls.json" 2> "$T/err" || bad "$net: cnnclassify: $(cat "$T/err")"
    bin/cnnfeatures --model "$cfg" --weights "$T/$net.safetensors" --blob $feat \
        --out "$T/${net}_feat" "$T/img.png" "$T/img.png" > /dev/null 2> "$T/err" \
        || bad "$net: cnnfeatures: $(cat "$T/err")"
    "$PY" - "$T" $net $out << 'EOF'
import json, struct, sys
import numpy as np
T, net, out = sys.argv[1:4]
ref = json.load(open(T + "/ref.json"))[net]
b = open("%s/%s_out.safetensors" % (T, net), "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
s, e = h[out]["data_offsets"]
got = np.frombuffer(b[8 + n + s:8 + n + e], dtype="<f4").astype(np.float64)
want = np.array(ref["logits"])
rel = np.abs(got - want).max() / np.abs(want).max()
print("%s: logits relative error %.3g (max |logit| %.3g)" % (net, rel, np.abs(want).max()))
assert got.shape == want.shape and rel < 1e-4, "logits differ"
cls = json.loads(open("%s/%s_cls.json" % (T, net)).read())
top = cls["top"][0]
# The top class up to rounding (random AlexNet's logits are close together).
assert ref["prob"][top["index"]] >= max(ref["prob"]) - 1e-6, (top, int(np.argmax(want)))
assert abs(top["prob"] - ref["prob"][top["index"]]) < 1e-4, (top, ref["prob"][top["index"]])
print("%s: cnnclassify top-1 %d, p %.6f (torch %.6f)" % (net, top["index"], top["prob"],
                                                        ref["prob"][top["index"]]))
f = np.load("%s/%s_feat.npy" % (T, net))
fw = np.array(ref["feat"])
assert f.dtype == np.float32 and f.shape[0] == 2, (f.dtype, f.shape)
f = f.reshape(2, -1).astype(np.float64)
frel = np.abs(f - fw).max() / np.abs(fw).max()
assert frel < 1e-4, frel
rows = open("%s/%s_feat.csv" % (T, net)).read().splitlines()
assert len(rows) == 3 and rows[0].startswith("file,v0,v1,")
vals = np.array([float(v) for v in rows[1].split(",")[1:]])
assert np.abs(vals - f[0]).max() <= 1e-6 * np.abs(f[0]).max(), "csv differs from npy"
print("%s: cnnfeatures %s relative error %.3g (npy %s, csv %d rows)" % (
    net, "fc7" if net == "alexnet" else "pool5", frel, f.shape, len(rows) - 1))
EOF
    [ $? -eq 0 ] && ok "$net parity" || bad "$net parity"
    rm -f "$T/$net.safetensors"
done

[ "$fails" -eq 0 ] && echo "all passed" || echo "$fails failed"
[ "$fails" -eq 0 ]
