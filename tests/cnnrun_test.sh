#!/usr/bin/env bash
# cnnrun_test.sh — end-to-end tests of bin/cnnrun: outputs, --all, reshaping
# from the inputs file, --backward gradients and loss metadata, force_backward
# input gradients, and its errors (usage exits 2; a missing input, a stray
# tensor, a missing weights file exit 1 with a message naming them). Files are
# written and read with python3's standard library; skips those checks without it.
set -u
cd "$(dirname "$0")/.."
[ -x bin/cnnrun ] || { echo "FAIL: bin/cnnrun not built"; exit 1; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }

# expect RC PATTERN CMD...: CMD exits RC and its output matches PATTERN.
expect() {
    local rc=$1 pat=$2 out got
    shift 2
    out=$("$@" 2>&1)
    got=$?
    if [ $got -eq "$rc" ] && echo "$out" | grep -q -- "$pat"; then
        ok "$* -> $rc /$pat/"
    else
        bad "$*: exit $got (want $rc), output: $out"
    fi
}

# y = x W^T with W all ones: each output is the row sum of x.
cat > "$T/sum.prototxt" << 'EOF2'
name: "sum"
layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y"
        inner_product_param { num_output: 2 weight_filler { type: "constant" value: 1 } } }
layer { name: "relu" type: "ReLU" bottom: "y" top: "y" }
EOF2
{ sed '$d' "$T/sum.prototxt"; echo 'layer { name: "label" type: "Input" top: "label"'
  echo '        input_param { shape { dim: 2 } } }'
  echo 'layer { name: "loss" type: "SoftmaxWithLoss" bottom: "y" bottom: "label" top: "loss" }'
} > "$T/loss.prototxt"
{ echo "force_backward: true"; cat "$T/loss.prototxt"; } > "$T/force.prototxt"

expect 2 "usage: cnnrun" bin/cnnrun
expect 2 "no --out given" bin/cnnrun "$T/sum.prototxt"
expect 2 "phase must be TRAIN or TEST" bin/cnnrun "$T/sum.prototxt" --out "$T/o" --phase x
expect 2 "seed wants" bin/cnnrun "$T/sum.prototxt" --out "$T/o" --seed -1
expect 2 "unexpected argument: --bogus" bin/cnnrun "$T/sum.prototxt" --bogus
expect 0 "usage: cnnrun" bin/cnnrun --help
expect 1 "give them with --inputs" bin/cnnrun "$T/sum.prototxt" --out "$T/o"
expect 1 "nope.prototxt" bin/cnnrun "$T/nope.prototxt" --out "$T/o"

if ! command -v python3 > /dev/null; then
    echo "SKIP: safetensors checks (python3 not found)"
    [ $fails -eq 0 ] && echo "cnnrun tests: all passed" || echo "cnnrun tests: $fails failed"
    exit $((fails > 0))
fi

# st.py write FILE name=v,v,..:d0xd1 ... | read FILE: prints "name shape values" lines
# and the metadata as "meta key value" (-0 shown as 0).
cat > "$T/st.py" << 'EOF2'
import json, struct, sys
if sys.argv[1] == "write":
    header, blobs, at = {}, [], 0
    for arg in sys.argv[3:]:
        name, rest = arg.split("=")
        vals, shape = rest.split(":")
        vals = [float(v) for v in vals.split(",")]
        raw = struct.pack("<%df" % len(vals), *vals)
        header[name] = {"dtype": "F32", "shape": [int(d) for d in shape.split("x")],
                        "data_offsets": [at, at + len(raw)]}
        blobs.append(raw)
        at += len(raw)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    open(sys.argv[2], "wb").write(struct.pack("<Q", len(text)) + text + b"".join(blobs))
else:
    buf = open(sys.argv[2], "rb").read()
    (n,) = struct.unpack("<Q", buf[:8])
    h = json.loads(buf[8:8 + n])
    for k, v in sorted(h.pop("__metadata__", {}).items()):
        print("meta", k, v)
    for name in sorted(h):
        b, e = h[name]["data_offsets"]
        vals = struct.unpack("<%df" % ((e - b) // 4), buf[8 + n + b:8 + n + e])
        print(name, "x".join(map(str, h[name]["shape"])), ",".join("%g" % (v + 0.0) for v in vals))
EOF2
st() { python3 "$T/st.py" "$@"; }
# has FILE LINE: the listing of FILE contains LINE exactly.
has() {
    local list
    list=$(st read "$1")
    if grep -qxF -- "$2" <<< "$list"; then ok "$(basename "$1") has '$2'"
    else bad "$(basename "$1") lacks '$2': $(tr '\n' ';' <<< "$list")"; fi
}
lacks() {
    local list
    list=$(st read "$1")
    if grep -q -- "$2" <<< "$list"; then bad "$(basename "$1") has /$2/"
    else ok "$(basename "$1") has no /$2/"; fi
}

st write "$T/x.st" "x=1,2,3,-4,-5,-6:2x3"
expect 0 "" bin/cnnrun "$T/sum.prototxt" --inputs "$T/x.st" --out "$T/o.st"
has "$T/o.st" "y 2x2 6,6,0,0"
has "$T/o.st" "meta phase TEST"
lacks "$T/o.st" "^x "

# --all writes the inputs too; the in-place ReLU top is written once.
expect 0 "" bin/cnnrun "$T/sum.prototxt" --inputs "$T/x.st" --out "$T/all.st" --all
has "$T/all.st" "x 2x3 1,2,3,-4,-5,-6"
[ "$(st read "$T/all.st" | grep -c '^y ')" -eq 1 ] && ok "in-place top once" ||
    bad "y listed $(st read "$T/all.st" | grep -c '^y ') times"

# A different batch size in the inputs file reshapes the net.
st write "$T/x3.st" "x=1,1,1,2,2,2,3,3,3:3x3"
expect 0 "" bin/cnnrun "$T/sum.prototxt" --inputs "$T/x3.st" --out "$T/o3.st"
has "$T/o3.st" "y 3x2 3,3,6,6,9,9"

st write "$T/stray.st" "x=1,2,3,4,5,6:2x3" "z=1:1"
expect 1 "tensor 'z' is not an input blob" \
    bin/cnnrun "$T/sum.prototxt" --inputs "$T/stray.st" --out "$T/o"
expect 1 "no tensor for input blob 'label'" \
    bin/cnnrun "$T/loss.prototxt" --inputs "$T/x.st" --out "$T/o"
expect 1 "missing.st" bin/cnnrun "$T/sum.prototxt" --inputs "$T/x.st" --out "$T/o" \
    --weights "$T/missing.st"

# Weights from a file; softmax of (1, 1) is (0.5, 0.5): loss log 2, and the
# gradient of W row 0 is sum over the batch of (p0 - [label = 0]) x / 2.
st write "$T/w.st" "ip.0=1,0,0,0,1,0:2x3" "ip.1=0,0:2"
st write "$T/xl.st" "x=1,1,0,1,1,0:2x3" "label=0,1:2"
expect 0 "" bin/cnnrun "$T/loss.prototxt" --inputs "$T/xl.st" --weights "$T/w.st" \
    --out "$T/b.st" --backward --phase TRAIN
has "$T/b.st" "meta loss 0.693147182"
has "$T/b.st" "meta phase TRAIN"
has "$T/b.st" "grad.ip.0 2x3 0,0,0,0,0,0"
has "$T/b.st" "grad.ip.1 2 0,0"
lacks "$T/b.st" "grad.x"
st write "$T/xl0.st" "x=1,1,0,1,1,0:2x3" "label=0,0:2"
expect 0 "" bin/cnnrun "$T/force.prototxt" --inputs "$T/xl0.st" --weights "$T/w.st" \
    --out "$T/f.st" --backward
has "$T/f.st" "grad.ip.0 2x3 -0.5,-0.5,0,0.5,0.5,0"
has "$T/f.st" "grad.ip.1 2 -0.5,0.5"
has "$T/f.st" "grad.x 2x3 -0.25,0.25,0,-0.25,0.25,0"

[ $fails -eq 0 ] && echo "cnnrun tests: all passed" || echo "cnnrun tests: $fails failed"
exit $((fails > 0))
