#!/usr/bin/env bash
# classify_test.sh — end-to-end tests of bin/cnnclassify (and, once the Data
# layer exists, bin/cnntest): tiny models with hand-written weights (a
# .safetensors file written by python3's standard library), PNGs and a
# baseline JPEG written the same way, and a corrupt PNG.
# The expected class of every image is known from the weights.
set -u
cd "$(dirname "$0")/.."
command -v python3 > /dev/null || { echo "SKIP: python3 not found"; exit 0; }
for b in bin/cnnclassify bin/cnntest; do
    [ -x "$b" ] || { echo "FAIL: $b not built"; exit 1; }
done
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }

# ---- fixtures ---------------------------------------------------------------
python3 - "$T" << 'EOF'
import json, os, struct, sys, zlib
T = sys.argv[1]

def safetensors(path, tensors):
    """tensors: list of (name, shape, flat float list)."""
    header, blobs, off = {}, b"", 0
    for name, shape, vals in tensors:
        data = struct.pack("<%df" % len(vals), *vals)
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [off, off + len(data)]}
        blobs += data
        off += len(data)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + blobs)

def png(path, w, h, channels, pixel):
    """pixel(x, y) -> tuple of `channels` bytes; gray (1) or RGB (3)."""
    raw = b"".join(b"\0" + bytes(v for x in range(w) for v in pixel(x, y)) for y in range(h))
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0 if channels == 1 else 2, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw))
                + chunk(b"IEND", b""))

# Gray model: 8x8 input scaled to [0, 1], 3 classes.
#   dark:   constant logit 2
#   bright: 0.1 per pixel (white: 6.4)
#   left:   +0.2 on the left half, -0.2 on the right (left-white: 6.4)
w = [0.0] * 64 + [0.1] * 64 + [0.2 if (i % 8) < 4 else -0.2 for i in range(64)]
safetensors(f"{T}/gray.safetensors", [("ip.0", [3, 64], w), ("ip.1", [3], [2.0, 0.0, 0.0])])
# The same weights as a Caffe .caffemodel (protobuf NetParameter, layer = 100:
# LayerParameter { name = 1, type = 2, blobs = 7: BlobProto { data = 5 packed,
# shape = 7: BlobShape { dim = 1 packed } } }).
def varint(v):
    out = b""
    while True:
        out += bytes([(v & 0x7F) | (0x80 if v > 0x7F else 0)])
        v >>= 7
        if not v:
            return out
def field(num, body):
    return varint(num << 3 | 2) + varint(len(body)) + body
def blob(shape, vals):
    return field(7, field(1, b"".join(varint(d) for d in shape))) + \
        field(5, struct.pack("<%df" % len(vals), *vals))
layer = field(1, b"ip") + field(2, b"InnerProduct") + field(7, blob([3, 64], w)) + \
    field(7, blob([3], [2.0, 0.0, 0.0]))
with open(f"{T}/gray.caffemodel", "wb") as f:
    f.write(field(1, b"tiny") + field(100, layer))
# Colour model: a 1x1 RGB input, mean (50, 60, 70), scale 0.1, identity weights.
safetensors(f"{T}/rgb.safetensors", [("ip.0", [3, 3], [1, 0, 0, 0, 1, 0, 0, 0, 1]),
                                     ("ip.1", [3], [0, 0, 0])])
with open(f"{T}/labels.txt", "w") as f:
    f.write("dark\nbright\nleft\n")

os.mkdir(f"{T}/img")
png(f"{T}/img/a_black.png", 8, 8, 1, lambda x, y: (0,))
png(f"{T}/img/c_left.png", 16, 16, 1, lambda x, y: (255 if x < 8 else 0,))
png(f"{T}/img/d_white.png", 8, 8, 3, lambda x, y: (255, 255, 255))
png(f"{T}/img/e_left.PNG", 8, 8, 1, lambda x, y: (255 if x < 4 else 0,))
with open(f"{T}/img/b_bad.png", "wb") as f:
    f.write(b"\x89PNG\r\n\x1a\n" + b"this is not a png at all" * 4)
with open(f"{T}/img/notes.txt", "w") as f:
    f.write("not an image\n")
png(f"{T}/red.png", 4, 3, 3, lambda x, y: (255, 0, 0))

# An 8x8 all-white baseline JPEG, written by hand: one block whose only
# coefficient is DC = 8 * (255 - 128) = 1016 (quantiser 1, category 10), and
# one-symbol Huffman tables (DC: category 10 -> "0"; AC: end-of-block -> "0").
def seg(marker, body):
    return b"\xff" + bytes([marker]) + struct.pack(">H", len(body) + 2) + body
bits = "0" + format(1016, "010b") + "0"
bits += "1" * (-len(bits) % 8)
with open(f"{T}/white.jpg", "wb") as f:
    f.write(b"\xff\xd8" + seg(0xDB, b"\x00" + b"\x01" * 64)
            + seg(0xC0, struct.pack(">BHHB", 8, 8, 8, 1) + b"\x01\x11\x00")
            + seg(0xC4, b"\x00" + bytes([1] + [0] * 15) + b"\x0a")
            + seg(0xC4, b"\x10" + bytes([1] + [0] * 15) + b"\x00")
            + seg(0xDA, b"\x01\x01\x00\x00\x3f\x00")
            + bytes(int(bits[i:i + 8], 2) for i in range(0, len(bits), 8)) + b"\xff\xd9")
png(f"{T}/white.png", 8, 8, 1, lambda x, y: (255,))
EOF
[ $? -eq 0 ] || { echo "FAIL: fixtures"; exit 1; }

ip_net() { # $1: input dims, $2: transform_param body, $3: extra layers
    cat << EOF
name: "tiny"
layer { name: "data" type: "Input" top: "data"
        input_param { shape { $1 } } transform_param { $2 } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
        inner_product_param { num_output: 3 } }
$3
EOF
}
ip_net "dim: 2 dim: 1 dim: 8 dim: 8" "scale: 0.00390625" \
    'layer { name: "prob" type: "Softmax" bottom: "ip" top: "prob" }' > "$T/gray.prototxt"
ip_net "dim: 2 dim: 1 dim: 8 dim: 8" "scale: 0.00390625" "" > "$T/logits.prototxt"
ip_net "dim: 1 dim: 3 dim: 1 dim: 1" "mean_value: 50 mean_value: 60 mean_value: 70 scale: 0.1" \
    'layer { name: "prob" type: "Softmax" bottom: "ip" top: "prob" }' > "$T/rgb.prototxt"

C="bin/cnnclassify --model $T/gray.prototxt --weights $T/gray.safetensors"

# ---- a directory: sorted, the corrupt file reported, the others classified ---
$C --labels "$T/labels.txt" --top 2 "$T/img" > "$T/out" 2> "$T/err"
rc=$?
[ $rc -eq 1 ] && ok "corrupt image gives exit 1" || bad "corrupt image: exit $rc, want 1"
grep -q "^cnnclassify: .*b_bad.png: " "$T/err" && ok "corrupt image named on stderr" ||
    bad "corrupt image not named: $(cat "$T/err")"
python3 - "$T" << 'EOF'
import re, sys
T = sys.argv[1]
lines = open(f"{T}/out").read().splitlines()
want = [("a_black.png", "dark"), ("c_left.png", "left"), ("d_white.png", "bright"),
        ("e_left.PNG", "left")]
assert len(lines) == 3 * len(want), lines
for k, (name, label) in enumerate(want):
    assert lines[3 * k] == f"{T}/img/{name}", lines[3 * k]
    m = re.fullmatch(r"  (\d\.\d{4})  (\d) (\w+)", lines[3 * k + 1])
    assert m and m.group(3) == label, (name, lines[3 * k + 1])
    assert re.fullmatch(r"  \d\.\d{4}  \d \w+", lines[3 * k + 2]), lines[3 * k + 2]
EOF
[ $? -eq 0 ] && ok "top-1 labels, order, format" || bad "text output: $(cat "$T/out")"

# ---- JSON, without a final Softmax (the tool applies it) ---------------------
bin/cnnclassify --model "$T/logits.prototxt" --weights "$T/gray.safetensors" --json --top 3 \
    "$T/img/a_black.png" "$T/img/d_white.png" "$T/img/c_left.png" > "$T/json" 2> "$T/err"
rc=$?
[ $rc -eq 0 ] && ok "--json exit 0" || bad "--json: exit $rc: $(cat "$T/err")"
python3 - "$T/json" << 'EOF'
import json, math, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert [r["top"][0]["index"] for r in rows] == [0, 1, 2], rows
for r in rows:
    assert r["file"].endswith(".png") and len(r["top"]) == 3
    assert all("label" not in t for t in r["top"])
    assert abs(sum(t["prob"] for t in r["top"]) - 1) < 1e-4, r
    assert r["top"][0]["prob"] >= r["top"][1]["prob"] >= r["top"][2]["prob"]
# black: logits (2, 0, 0)
p = math.exp(2) / (math.exp(2) + 2)
assert abs(rows[0]["top"][0]["prob"] - p) < 1e-4, rows[0]
EOF
[ $? -eq 0 ] && ok "--json lines parse, softmax applied" || bad "--json: $(cat "$T/json")"

# ---- Caffe .caffemodel weights ----------------------------------------------
out=$(bin/cnnclassify --model "$T/gray.prototxt" --weights "$T/gray.caffemodel" \
    --labels "$T/labels.txt" --top 1 "$T/img/c_left.png" "$T/img/d_white.png" 2>&1)
[ "$(echo "$out" | grep -c '^  ')" = 2 ] && echo "$out" | grep -q " left$" &&
    echo "$out" | grep -q " bright$" && ok ".caffemodel weights" || bad ".caffemodel: $out"

# ---- colour: channel means and --bgr ----------------------------------------
R="bin/cnnclassify --model $T/rgb.prototxt --weights $T/rgb.safetensors --json --top 1"
top1() { python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())["top"][0]["index"])'; }
[ "$($R "$T/red.png" | top1)" = 0 ] && ok "RGB red is class 0" || bad "RGB red"
[ "$($R --bgr "$T/red.png" | top1)" = 2 ] && ok "--bgr red is class 2" || bad "--bgr red"

# ---- JPEG -------------------------------------------------------------------
out=$($C --labels "$T/labels.txt" --top 1 --json "$T/white.jpg" 2>&1)
echo "$out" | python3 -c '
import json, math, sys
r = json.loads(sys.stdin.read())
assert r["top"][0]["label"] == "bright", r
b = math.exp(6.4 * 255 / 256)  # logits (2, 6.4 * 255/256, 0)
assert abs(r["top"][0]["prob"] - b / (b + math.exp(2) + 1)) < 1e-4, r
' && ok "JPEG decoded and classified" || bad "JPEG: $out"

# ---- errors ------------------------------------------------------------------
bin/cnnclassify --weights "$T/gray.safetensors" "$T/white.png" > /dev/null 2>&1
[ $? -eq 2 ] && ok "missing --model exits 2" || bad "missing --model"
bin/cnnclassify --model "$T/gray.prototxt" --weights "$T/gray.safetensors" > /dev/null 2>&1
[ $? -eq 2 ] && ok "no images exits 2" || bad "no images"
$C --top 0 "$T/white.png" > /dev/null 2>&1
[ $? -eq 2 ] && ok "--top 0 exits 2" || bad "--top 0"
$C --frobnicate "$T/white.png" > /dev/null 2>&1
[ $? -eq 2 ] && ok "unknown flag exits 2" || bad "unknown flag"
err=$(bin/cnnclassify --model "$T/gray.prototxt" --weights "$T/nope.safetensors" \
    "$T/white.png" 2>&1)
[ $? -eq 1 ] && echo "$err" | grep -q "nope.safetensors" && ok "missing weights named" ||
    bad "missing weights: $err"
err=$(bin/cnnclassify --model "$T/gray.prototxt" --weights "$T/rgb.safetensors" \
    "$T/white.png" 2>&1)
[ $? -eq 1 ] && echo "$err" | grep -q "rgb.safetensors" && ok "weight shape mismatch named" ||
    bad "shape mismatch: $err"
err=$($C --labels "$T/img/notes.txt" "$T/white.png" 2>&1)
[ $? -eq 1 ] && echo "$err" | grep -q "notes.txt has 1 labels" && ok "label count checked" ||
    bad "label count: $err"
err=$($C "$T/missing.png" "$T/white.png" 2>&1)
[ $? -eq 1 ] && echo "$err" | grep -q "missing.png" && echo "$err" | grep -q "white.png" &&
    ok "missing image reported, others classified" || bad "missing image: $err"

# ---- cnntest on an IDX test set (needs the Data layer) -----------------------
if [ ! -f layers/data.c ]; then
    echo "SKIP: cnntest case (layers/data.c not present)"
else
    python3 - "$T" << 'EOF'
import gzip, struct, sys
T = sys.argv[1]
# 10 images 8x8: label 0 black, 1 white, 2 left half white; the model gets
# images 0..8 right and calls image 9 (black, labelled 2) "dark".
kinds = [0, 1, 2, 0, 1, 2, 0, 1, 2, 0]
labels = [0, 1, 2, 0, 1, 2, 0, 1, 2, 2]
px = {0: lambda x: 0, 1: lambda x: 255, 2: lambda x: 255 if x < 4 else 0}
img = b"".join(bytes(px[k](x) for y in range(8) for x in range(8)) for k in kinds)
with gzip.open(f"{T}/test-images.idx3-ubyte.gz", "wb") as f:
    f.write(struct.pack(">IIII", 0x803, 10, 8, 8) + img)
with gzip.open(f"{T}/test-labels.idx1-ubyte.gz", "wb") as f:
    f.write(struct.pack(">II", 0x801, 10) + bytes(labels))
EOF
    cat > "$T/test.prototxt" << EOF
name: "tiny"
solver { test_iter: 5 }
layer { name: "data" type: "Data" top: "data" top: "label"
        transform_param { scale: 0.00390625 }
        data_param { source: "$T/test-images.idx3-ubyte.gz" backend: IDX batch_size: 2
                     label_source: "$T/test-labels.idx1-ubyte.gz" } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
        inner_product_param { num_output: 3 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
layer { name: "accuracy" type: "Accuracy" bottom: "ip" bottom: "label" top: "accuracy" }
EOF
    bin/cnntest "$T/test.prototxt" --weights "$T/gray.safetensors" --json > "$T/ct" 2> "$T/err"
    rc=$?
    [ $rc -eq 0 ] && ok "cnntest exit 0" || bad "cnntest: exit $rc: $(cat "$T/err")"
    python3 - "$T/ct" << 'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["iterations"] == 5 and r["scores"] == "ip" and r["samples"] == 10, r
assert abs(r["accuracy"] - 0.9) < 1e-6, r
assert abs(r["outputs"]["accuracy"] - 0.9) < 1e-6, r
assert r["confusion"] == [[3, 0, 0], [0, 3, 0], [1, 0, 3]], r["confusion"]
assert abs(r["per_class_accuracy"][2] - 0.75) < 1e-6, r
assert r["outputs"]["loss"] > 0
EOF
    [ $? -eq 0 ] && ok "cnntest accuracy, confusion matrix" ||
        bad "cnntest json: $(cat "$T/ct") $(cat "$T/err")"
    bin/cnntest "$T/test.prototxt" --weights "$T/gray.safetensors" --iterations 2 > "$T/ct" 2>&1
    grep -q "confusion" "$T/ct" && grep -q "accuracy" "$T/ct" && ok "cnntest text output" ||
        bad "cnntest text: $(cat "$T/ct")"
    bin/cnntest "$T/test.prototxt" > /dev/null 2>&1
    [ $? -eq 2 ] && ok "cnntest without --weights exits 2" || bad "cnntest without --weights"
fi

[ $fails -eq 0 ] || { echo "$fails failed"; exit 1; }
echo "all passed"
