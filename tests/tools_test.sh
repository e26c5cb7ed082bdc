#!/usr/bin/env bash
# tools_test.sh — end-to-end tests of bin/cnntime (tables, JSON, label inputs
# through Split copies, phases) and the argument handling of cnntime and
# cnntest: usage errors exit 2, a missing model exits 1 naming the file;
# cnninfo on a Caffe solver file.
set -u
cd "$(dirname "$0")/.."
for b in bin/cnntime bin/cnntest; do
    [ -x "$b" ] || { echo "FAIL: $b not built"; exit 1; }
done
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
have_py=1
command -v python3 > /dev/null || { have_py=0; echo "SKIP: JSON checks (python3 not found)"; }

# The label blob feeds both the loss and Accuracy, so the net inserts a
# Split: labels must still be valid class indices after it.
cat > "$T/small.prototxt" << 'EOF'
name: "small"
layer { name: "data" type: "Input" top: "data"
        input_param { shape { dim: 4 dim: 1 dim: 8 dim: 8 } } }
layer { name: "label" type: "Input" top: "label" input_param { shape { dim: 4 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 4 kernel_size: 3 weight_filler { type: "xavier" } } }
layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "ip" type: "InnerProduct" bottom: "pool" top: "ip"
        inner_product_param { num_output: 5 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
layer { name: "acc" type: "Accuracy" bottom: "ip" bottom: "label" top: "acc" }
EOF

out=$(bin/cnntime "$T/small.prototxt" --iterations 3 2>&1)
rc=$?
[ $rc -eq 0 ] && ok "cnntime table exit 0" || bad "cnntime: exit $rc: $out"
for want in "conv .*Convolution" "pool .*Pooling" "ip .*InnerProduct" "loss .*SoftmaxWithLoss" \
    "average forward:" "average backward:" "average forward-backward: .* images/s" "batch 4"; do
    echo "$out" | grep -q "$want" && ok "table has '$want'" || bad "table lacks '$want': $out"
done
# Accuracy has no backward: its backward column is "-".
echo "$out" | grep -Eq "^acc +Accuracy +[0-9.]+ +-$" && ok "no backward shown as -" ||
    bad "Accuracy backward column: $out"

bin/cnntime "$T/small.prototxt" --iterations 2 --json > "$T/time.json" 2> "$T/err"
rc=$?
[ $rc -eq 0 ] && ok "cnntime --json exit 0" || bad "cnntime --json: exit $rc: $(cat "$T/err")"
if [ $have_py -eq 1 ]; then
    python3 -m json.tool "$T/time.json" > /dev/null && ok "cnntime --json is valid JSON" ||
        bad "invalid JSON: $(cat "$T/time.json")"
    python3 - "$T/time.json" << 'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["iterations"] == 2 and r["batch"] == 4 and r["phase"] == "TRAIN", r
names = [l["name"] for l in r["layers"]]
for n in ("data", "label", "conv", "pool", "ip", "loss", "acc"):
    assert n in names, names
conv = r["layers"][names.index("conv")]
assert conv["type"] == "Convolution" and conv["forward_ms"] >= 0 and conv["backward_ms"] >= 0
assert r["layers"][names.index("acc")]["backward_ms"] is None
assert abs(sum(l["forward_ms"] for l in r["layers"]) - r["forward_ms"]) < 1e-6
assert r["iteration_ms"] > 0 and r["images_per_s"] > 0
EOF
    [ $? -eq 0 ] && ok "cnntime JSON fields" || bad "cnntime JSON fields: $(cat "$T/time.json")"
fi

out=$(bin/cnntime "$T/small.prototxt" --phase TEST --iterations 1 2>&1)
[ $? -eq 0 ] && echo "$out" | grep -q "phase TEST" && ok "cnntime --phase TEST" ||
    bad "cnntime --phase TEST: $out"

# A Caffe deploy file, when the shared copies are there.
if [ -f ../shared/caffe-models/mnist_lenet.prototxt ]; then
    out=$(bin/cnntime ../shared/caffe-models/mnist_lenet.prototxt --iterations 1 2>&1)
    [ $? -eq 0 ] && echo "$out" | grep -q "average forward-backward" && ok "cnntime on LeNet" ||
        bad "cnntime LeNet: $out"
else
    echo "SKIP: LeNet case (../shared/caffe-models absent)"
fi

# ---- usage errors exit 2 -----------------------------------------------------
usage_case() { # $1: description, rest: command
    local what=$1; shift
    "$@" > /dev/null 2>&1
    local rc=$?
    [ $rc -eq 2 ] && ok "usage: $what" || bad "usage: $what: exit $rc, want 2"
}
usage_case "cnntime without a model" bin/cnntime
usage_case "cnntime --iterations 0" bin/cnntime "$T/small.prototxt" --iterations 0
usage_case "cnntime --iterations x" bin/cnntime "$T/small.prototxt" --iterations x
usage_case "cnntime --phase FOO" bin/cnntime "$T/small.prototxt" --phase FOO
usage_case "cnntime unknown flag" bin/cnntime "$T/small.prototxt" --bogus
usage_case "cnntime two models" bin/cnntime "$T/small.prototxt" "$T/small.prototxt"
usage_case "cnntest without a model" bin/cnntest --weights w.safetensors
usage_case "cnntest without --weights" bin/cnntest "$T/small.prototxt"
usage_case "cnntest --iterations -1" bin/cnntest "$T/small.prototxt" --weights w --iterations -1

# ---- a missing model: non-zero, file named ----------------------------------
err=$(bin/cnntime "$T/absent.prototxt" 2>&1)
rc=$?
[ $rc -ne 0 ] && [ $rc -ne 2 ] && echo "$err" | grep -q "absent.prototxt" &&
    ok "cnntime missing model named" || bad "cnntime missing model: exit $rc: $err"
err=$(bin/cnntest "$T/absent.prototxt" --weights "$T/w.safetensors" 2>&1)
rc=$?
[ $rc -eq 1 ] && echo "$err" | grep -q "absent.prototxt" && ok "cnntest missing model named" ||
    bad "cnntest missing model: exit $rc: $err"
err=$(bin/cnntest "$T/small.prototxt" --weights "$T/w.safetensors" 2>&1)
rc=$?
[ $rc -eq 1 ] && echo "$err" | grep -q "w.safetensors" && ok "cnntest missing weights named" ||
    bad "cnntest missing weights: exit $rc: $err"

# cnninfo on a Caffe solver file describes the net it names (relative to
# the solver's folder), and names a net file that is missing.
mkdir -p "$T/solver"
cp "$T/small.prototxt" "$T/solver/net.prototxt"
printf 'net: "net.prototxt"\nbase_lr: 0.01\nmax_iter: 10\n' > "$T/solver/solver.prototxt"
out=$(bin/cnninfo "$T/solver/solver.prototxt" 2>&1)
rc=$?
[ $rc -eq 0 ] && echo "$out" | grep -q "net 'small' from .*net.prototxt" &&
    echo "$out" | grep -q "conv .*Convolution" && ok "cnninfo follows a solver's net" ||
    bad "cnninfo solver: exit $rc: $out"
printf 'net: "gone.prototxt"\nbase_lr: 0.01\n' > "$T/solver/bad.prototxt"
err=$(bin/cnninfo "$T/solver/bad.prototxt" 2>&1)
rc=$?
[ $rc -eq 1 ] && echo "$err" | grep -q "gone.prototxt" && ok "cnninfo names a solver's missing net" ||
    bad "cnninfo solver with a missing net: exit $rc: $err"

[ $fails -eq 0 ] || { echo "$fails failed"; exit 1; }
echo "all passed"
