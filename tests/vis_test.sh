#!/usr/bin/env bash
# vis_test.sh — end-to-end tests of bin/cnnvis and bin/cnnadv on a small conv
# net trained here (CPU, a few seconds) on a synthetic data set: 16x16 grey
# images whose class is 1 exactly when a bright square lies in the top-left
# quadrant (squares elsewhere are distractors). Checks: every command writes a
# valid PNG of the documented size; saliency puts most of its mass in the
# top-left quadrant; occlusion finds it; class-model ascent raises the score;
# FGSM at epsilon 0 leaves the accuracy (as cnntest reports it) unchanged and
# at 32 lowers it sharply; the targeted attack reaches its target within its
# epsilon; training curves plot; bad usage and bad files exit 2 / 1.
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
for b in bin/cnnvis bin/cnnadv bin/cnntrain bin/cnntest bin/cnnexport; do
    [ -x "$b" ] || { echo "FAIL: $b not built"; exit 1; }
done
command -v python3 > /dev/null || { echo "SKIP: python3 not found"; exit 0; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
VIS=$ROOT/bin/cnnvis
ADV=$ROOT/bin/cnnadv
cd "$T"

# ---- data, model, training ---------------------------------------------------
python3 - << 'EOF'
import gzip, random, struct
def image(rng, cls):
    px = [rng.randrange(0, 80) for _ in range(256)]
    def square(qy, qx):
        y0, x0 = qy * 8 + rng.randrange(0, 5), qx * 8 + rng.randrange(0, 5)
        v = rng.randrange(110, 150)
        for y in range(y0, y0 + 4):
            for x in range(x0, x0 + 4):
                px[y * 16 + x] = v
    if cls: square(0, 0)
    for q in ((0, 1), (1, 0), (1, 1)):
        if rng.random() < 0.5: square(*q)
    return px
def write(prefix, n, seed):
    rng = random.Random(seed)
    labels = [rng.randrange(2) for _ in range(n)]
    with gzip.open(prefix + "-images.idx.gz", "wb") as f:
        f.write(struct.pack(">IIII", 0x803, n, 16, 16))
        for c in labels: f.write(bytes(image(rng, c)))
    with gzip.open(prefix + "-labels.idx.gz", "wb") as f:
        f.write(struct.pack(">II", 0x801, n))
        f.write(bytes(labels))
write("train", 2000, 1)
write("test", 200, 2)
EOF

layers='
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 8 kernel_size: 3 pad: 1 weight_filler { type: "xavier" } } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "conv2" type: "Convolution" bottom: "pool1" top: "conv2"
        convolution_param { num_output: 8 kernel_size: 3 pad: 1 weight_filler { type: "xavier" } } }
layer { name: "relu2" type: "ReLU" bottom: "conv2" top: "conv2" }
layer { name: "pool2" type: "Pooling" bottom: "conv2" top: "pool2"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "ip" type: "InnerProduct" bottom: "pool2" top: "ip"
        inner_product_param { num_output: 2 weight_filler { type: "xavier" } } }'
cat > net.cfg << EOF
name: "squares"
layer { name: "d" type: "Data" top: "data" top: "label" include { phase: TRAIN }
        transform_param { scale: 0.00390625 }
        data_param { source: "train-images.idx.gz" label_source: "train-labels.idx.gz"
                     backend: IDX batch_size: 32 shuffle: true } }
layer { name: "d" type: "Data" top: "data" top: "label" include { phase: TEST }
        transform_param { scale: 0.00390625 }
        data_param { source: "test-images.idx.gz" label_source: "test-labels.idx.gz"
                     backend: IDX batch_size: 50 } }
$layers
layer { name: "acc" type: "Accuracy" bottom: "ip" bottom: "label" top: "accuracy"
        include { phase: TEST } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
solver { base_lr: 0.02 momentum: 0.9 weight_decay: 0.0005 lr_policy: "fixed"
         max_iter: 150 display: 25 test_iter: 4 test_interval: 50
         snapshot_prefix: "sq" random_seed: 3 }
EOF
cat > deploy.cfg << EOF
name: "squares"
layer { name: "data" type: "Input" top: "data"
        input_param { shape { dim: 8 dim: 1 dim: 16 dim: 16 } }
        transform_param { scale: 0.00390625 } }
$layers
layer { name: "prob" type: "Softmax" bottom: "ip" top: "prob" }
EOF
printf 'no square\nsquare\n' > names.txt

if "$ROOT/bin/cnntrain" net.cfg --log log.jsonl --quiet > train.out 2>&1; then
    ok "trained the squares net"
else
    bad "cnntrain: $(cat train.out)"
    exit 1
fi
W=sq_iter_150.safetensors
"$ROOT/bin/cnnexport" test-images.idx.gz test-labels.idx.gz png --count 40 > /dev/null ||
    { bad "cnnexport failed"; exit 1; }

# PNG reader (signature, CRCs, IHDR, unfiltered rows) for the checks below.
cat > png.py << 'EOF'
import struct, sys, zlib
def read_png(path):
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path + ": not a PNG"
    pos, idat, ihdr = 8, b"", None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        crc, = struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])
        assert zlib.crc32(kind + body) & 0xffffffff == crc, path + ": bad CRC"
        if kind == b"IHDR": ihdr = struct.unpack(">IIBBBBB", body)
        if kind == b"IDAT": idat += body
        pos += 12 + n
        if kind == b"IEND": break
    w, h, depth, ctype, _, _, interlace = ihdr
    assert depth == 8 and interlace == 0 and ctype in (0, 2, 6), ihdr
    ch = {0: 1, 2: 3, 6: 4}[ctype]
    raw, stride, rows, prev = zlib.decompress(idat), w * ch, [], bytearray(w * ch)
    assert len(raw) == h * (stride + 1), path + ": wrong data size"
    for y in range(h):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - ch] if i >= ch else 0
            b, c = prev[i], prev[i - ch] if i >= ch else 0
            if f == 1: line[i] = (line[i] + a) & 255
            elif f == 2: line[i] = (line[i] + b) & 255
            elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(line)
        prev = line
    return w, h, ch, rows
if __name__ == "__main__":
    w, h, ch, _ = read_png(sys.argv[1])
    print("%dx%dx%d" % (w, h, ch))
EOF
# check WHAT ARGS... << 'EOF': the Python script on stdin passes with ARGS.
check() {
    local what=$1 out; shift
    if out=$(python3 - "$@" 2>&1); then ok "$what${out:+: $out}"; else bad "$what: $out"; fi
}
# png_is FILE WxHxC: the file is a valid PNG of that size.
png_is() {
    local got
    got=$(python3 png.py "$1" 2>&1)
    [ "$got" = "$2" ] && ok "$1 is a ${2} PNG" || bad "$1: want $2, got $got"
}
# run NAME CMD...: runs, expects exit 0, keeps stdout in NAME.out.
run() {
    local name=$1; shift
    if "$@" > "$name.out" 2> "$name.err"; then ok "$name"; else
        bad "$name: exit $?: $(cat "$name.err")"; fi
}

# ---- cnnvis: every command writes its PNG ------------------------------------
M=(--model deploy.cfg --weights $W)
run filters1 "$VIS" filters "${M[@]}" --out f1.png
png_is f1.png 107x107x3   # 8 filters 3x3: 3x3 grid of 33-pixel tiles, 2-pixel gaps
grep -q "conv1: 8 filters of 1x3x3" filters1.out && ok "filters summary" ||
    bad "filters summary: $(cat filters1.out)"
run filters2 "$VIS" filters "${M[@]}" --layer conv2 --out f2.png
png_is f2.png 282x282x3   # 8 rows (filters) x 8 columns (input channels)
run activations "$VIS" activations "${M[@]}" --blob conv1 png/00003.png --out a.png
png_is a.png 200x200x3    # 8 maps 16x16 at zoom 4
run activations_ip "$VIS" activations "${M[@]}" --blob ip png/00003.png --out a2.png --zoom 8
png_is a2.png 16x8x3      # a 2-value vector as one strip
run saliency "$VIS" saliency "${M[@]}" png/00003.png --out s.png --raw sr.png --labels names.txt
png_is s.png 128x128x3
png_is sr.png 128x128x1
grep -q "^class 1 square score" saliency.out && ok "saliency names the class" ||
    bad "saliency output: $(cat saliency.out)"
run saliency_zoom "$VIS" saliency "${M[@]}" png/00003.png --zoom 2 --out s2.png
png_is s2.png 32x32x3
run classmodel "$VIS" classmodel "${M[@]}" --class 1 --out cm.png
png_is cm.png 128x128x3
run classmodels "$VIS" classmodel "${M[@]}" --classes all --iterations 20 --out cms.png
png_is cms.png 134x68x3   # one 64-pixel tile per class
run occlusion "$VIS" occlusion "${M[@]}" png/00005.png --fill 0 --out o.png --raw or.png
png_is o.png 128x128x3
png_is or.png 128x128x3
run top_files "$VIS" top-images "${M[@]}" --blob conv2 --channel 3 --k 4 png --out t.png
png_is t.png 134x134x3    # 2x2 tiles of 64 pixels
run top_data "$VIS" top-images --model net.cfg --weights $W --blob conv2 --channel 3 --k 5 \
    --out t2.png
png_is t2.png 200x134x3
run curves "$VIS" curves log.jsonl --width 640 --height 400 --title squares --out c.png
png_is c.png 640x400x3

# top-images: 5 of the 200 test samples, activations in decreasing order.
check "top-images ranks the data layer's samples" top_data.out << 'EOF'
import sys
lines = open(sys.argv[1]).read().splitlines()
assert "top 5 of 200 samples" in lines[0], lines[0]
acts = [float(l.split()[1]) for l in lines[2:7]]
assert acts == sorted(acts, reverse=True), acts
assert all(l.split()[3].startswith("#") for l in lines[2:7])
EOF

# ---- what the pictures say -----------------------------------------------------
# Saliency of class 1 on every class-1 test image: mass in the top-left quadrant.
: > mass.txt
for f in $(awk '$2 == 1 {print $1}' png/list.txt | head -12); do
    "$VIS" saliency "${M[@]}" "png/$f" --class 1 --out x.png --raw xr.png > /dev/null 2>&1 ||
        bad "saliency on $f"
    python3 - xr.png >> mass.txt << 'EOF'
import sys; from png import read_png
w, h, ch, rows = read_png(sys.argv[1])
total = sum(sum(r) for r in rows)
print(sum(sum(r[:w // 2]) for r in rows[:h // 2]) / total)
EOF
done
check "saliency mass in the square's quadrant" mass.txt << 'EOF'
import sys
m = [float(x) for x in open(sys.argv[1])]
assert len(m) >= 10, m
assert sum(m) / len(m) > 0.55 and min(m) > 0.4, m   # a uniform map gives 0.25
print("mean %.3f, min %.3f over %d images" % (sum(m) / len(m), min(m), len(m)))
EOF
# Occlusion (black patches): the lowest class probability is in that quadrant.
check "occlusion finds the square" occlusion.out << 'EOF'
import re, sys
t = open(sys.argv[1]).read()
m = re.search(r"prob ([0-9.]+);.*lowest ([0-9.]+) at \((\d+), (\d+)\)", t)
p, low, x, y = float(m[1]), float(m[2]), int(m[3]), int(m[4])
assert x < 8 and y < 8 and low < p - 0.3, t
EOF
# Class model: the class score rises.
check "class model raises the score" classmodel.out << 'EOF'
import re, sys
t = open(sys.argv[1]).read()
a, b = map(float, re.search(r"score (-?[0-9.]+) -> (-?[0-9.]+)", t).groups())
assert b > a + 5, t
print("%g -> %g" % (a, b))
EOF

# ---- cnnadv ----------------------------------------------------------------------
"$ROOT/bin/cnntest" net.cfg --weights $W --iterations 4 --json > cnntest.json ||
    bad "cnntest failed"
run robust_data "$ADV" robustness --model net.cfg --weights $W --epsilons 0,32 --json
check "FGSM: eps 0 keeps cnntest's accuracy, eps 32 lowers it" robust_data.out cnntest.json \
    << 'EOF'
import json, sys
r = json.load(open(sys.argv[1])); t = json.load(open(sys.argv[2]))
assert r["samples"] == 200 and r["labelled"] == 200, r
e0, e32 = r["results"]
assert e0["epsilon"] == 0 and e0["changed"] == 0, r
assert abs(e0["accuracy"] - t["accuracy"]) < 1e-9, (e0, t["accuracy"])
assert e0["accuracy"] >= 0.95 and e32["accuracy"] <= e0["accuracy"] - 0.4, r
assert abs(e32["epsilon_input"] - 0.125) < 1e-9
print("accuracy %.3f -> %.3f" % (e0["accuracy"], e32["accuracy"]))
EOF
run robust_text "$ADV" robustness --model net.cfg --weights $W --batches 2
grep -q "100 samples, accuracy against labels" robust_text.out && ok "robustness table" ||
    bad "robustness table: $(cat robust_text.out)"
run robust_list "$ADV" robustness --model deploy.cfg --weights $W --list png/list.txt \
    --root png/ --epsilons 0,32 --json
run robust_dir "$ADV" robustness --model deploy.cfg --weights $W png --epsilons 0 --json
check "robustness on image files (a list with labels, a dir without)" robust_list.out \
    robust_dir.out << 'EOF'
import json, sys
a = json.loads(open(sys.argv[1]).read()); b = json.loads(open(sys.argv[2]).read())
assert a["samples"] == 40 and a["labelled"] == 40 and a["results"][0]["changed"] == 0, a
assert a["results"][1]["accuracy"] < a["results"][0]["accuracy"], a
assert b["labelled"] == 0 and b["results"][0]["accuracy"] == 1, b  # against clean predictions
EOF

run fgsm "$ADV" fgsm "${M[@]}" png/00005.png --epsilon 16 --label 1 --out adv.png \
    --perturbation pert.png --json
png_is adv.png 16x16x1
png_is pert.png 16x16x1
check "FGSM lowers the label's probability within epsilon" fgsm.out png/00005.png adv.png \
    pert.png << 'EOF'
import json, sys; from png import read_png
r = json.loads(open(sys.argv[1]).read())
assert r["epsilon"] == 16 and r["label"] == 1 and r["linf_pixels"] <= 16.001, r
assert r["after"]["prob_label"] < r["before"]["prob_label"], r
a, b, p = (read_png(f)[3] for f in sys.argv[2:5])
d = [abs(x - y) for ra, rb in zip(a, b) for x, y in zip(ra, rb)]
assert max(d) <= 16 and max(d) >= 15, max(d)
# The perturbation image: 128 +- 127 where a pixel moved by the full epsilon.
assert max(v for r in p for v in r) == 255 or min(v for r in p for v in r) == 1
EOF
run fgsm0 "$ADV" fgsm "${M[@]}" png/00005.png --epsilon 0 --json
python3 -c "
import json; r = json.load(open('fgsm0.out'))
assert r['after'] == r['before'] and r['linf_pixels'] == 0, r" && ok "FGSM eps 0 changes nothing" ||
    bad "fgsm eps 0: $(cat fgsm0.out)"
run fgsm_text "$ADV" fgsm "${M[@]}" png/00005.png --epsilon 8 --labels names.txt
grep -q "^before  class 1 square" fgsm_text.out && ok "fgsm text output" ||
    bad "fgsm text: $(cat fgsm_text.out)"
run targeted "$ADV" targeted "${M[@]}" png/00000.png --target 1 --epsilon 48 --alpha 2 \
    --out tadv.png --json
png_is tadv.png 16x16x1
check "targeted attack reaches its target" targeted.out << 'EOF'
import json, sys
r = json.loads(open(sys.argv[1]).read())
assert r["before"]["class"] == 0 and r["success"] and r["after"]["class"] == 1, r
assert r["linf_pixels"] <= 48.001 and r["steps"] <= 48, r
EOF

# ---- errors: usage 2, bad files 1 -----------------------------------------------
expect() {
    local want=$1 what=$2 needle=$3; shift 3
    "$@" > err.out 2>&1
    local rc=$?
    if [ $rc -eq "$want" ] && grep -q -- "$needle" err.out; then ok "$what (exit $rc)"; else
        bad "$what: exit $rc, want $want with '$needle': $(head -3 err.out)"; fi
}
expect 2 "cnnvis without a command" "usage" "$VIS"
expect 2 "cnnvis unknown command" "unknown command" "$VIS" paint
expect 2 "unknown option" "unknown option --lr" "$VIS" saliency "${M[@]}" --lr 1 png/00000.png
expect 2 "missing --model" "--model is required" "$VIS" filters --weights $W
expect 2 "bad number" "wants a non-negative integer" "$VIS" saliency "${M[@]}" --class x a.png
expect 2 "classmodel without a class" "give --class K or --classes" "$VIS" classmodel "${M[@]}"
expect 2 "class out of range" "the model has 2 classes" "$VIS" saliency "${M[@]}" --class 5 \
    png/00000.png
expect 1 "missing image" "nope.png" "$VIS" saliency "${M[@]}" nope.png
expect 1 "missing weights" "missing.safetensors" "$VIS" filters --model deploy.cfg \
    --weights missing.safetensors
expect 1 "unknown blob" "no blob 'nope'" "$VIS" activations "${M[@]}" --blob nope png/00000.png
printf '{"iter":0,"loss":1}\nnot json\n' > bad.jsonl
expect 1 "curves: bad log line" "bad.jsonl:2" "$VIS" curves bad.jsonl --out c2.png
printf '{"iter":0,"loss":1}\n{"iter":5,"lo' > partial.jsonl
expect 0 "curves: a half-written last line is skipped" "incomplete last line" "$VIS" curves \
    partial.jsonl --out c3.png
expect 2 "cnnadv: --epsilon required" "--epsilon is required" "$ADV" fgsm "${M[@]}" png/00000.png
expect 2 "cnnadv: bad epsilon list" "--epsilons wants" "$ADV" robustness "${M[@]}" png \
    --epsilons 1,x
expect 2 "cnnadv: no data" "has no data layer" "$ADV" robustness "${M[@]}"
expect 1 "cnnadv: data model and an image" "Input layer" "$ADV" fgsm --model net.cfg \
    --weights $W png/00000.png --epsilon 1
printf 'png/00000.png 0\npng/00001.png\n' > bad_list.txt
expect 1 "cnnadv: bad list line" "bad_list.txt:2" "$ADV" robustness "${M[@]}" --list bad_list.txt

echo "$fails failed"
[ $fails -eq 0 ]
