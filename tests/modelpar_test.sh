#!/usr/bin/env bash
# modelpar_test.sh — model parallelism end to end: a small two-tower net
# (AlexNet's structure: towers, a layer reading both, fully connected halves
# with cross-connections) on two logical CPU devices, reading PNGs through
# ImageData. Checks cnninfo's device column and inserted Copy layers; that
# `cnntrain --devices 2` and the same model without device fields on one
# device write bit-identical weights; a few hundred iterations on exported
# Fashion-MNIST images reaching a test accuracy bar; and the errors (a
# device beyond --devices, bad --devices/--gpus, GPUs that do not exist).
# The training parts skip without the data set.
set -u
cd "$(dirname "$0")/.."
for b in cnntrain cnninfo cnnexport; do
    [ -x "bin/$b" ] || { echo "FAIL: bin/$b not built"; exit 1; }
done
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }

# ---- the model ------------------------------------------------------------------
# $1: batch size of TRAIN. Tower a on device 0, tower b on device 1.
model() {
    cat << EOF
name: "towers"
layer { name: "data" type: "ImageData" top: "data" top: "label" include { phase: TRAIN }
  transform_param { scale: 0.00390625 }
  image_data_param { source: "$T/fmnist_train.txt" batch_size: $1 is_color: false shuffle: true } }
layer { name: "data" type: "ImageData" top: "data" top: "label" include { phase: TEST }
  transform_param { scale: 0.00390625 }
  image_data_param { source: "$T/fmnist_test.txt" batch_size: 100 is_color: false } }
layer { name: "conv1_a" type: "Convolution" bottom: "data" top: "conv1_a" device: 0
  convolution_param { num_output: 8 kernel_size: 5 weight_filler { type: "xavier" } } }
layer { name: "conv1_b" type: "Convolution" bottom: "data" top: "conv1_b" device: 1
  convolution_param { num_output: 8 kernel_size: 5 weight_filler { type: "xavier" } } }
layer { name: "relu1_a" type: "ReLU" bottom: "conv1_a" top: "conv1_a" }
layer { name: "relu1_b" type: "ReLU" bottom: "conv1_b" top: "conv1_b" }
layer { name: "pool1_a" type: "Pooling" bottom: "conv1_a" top: "pool1_a"
  pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "pool1_b" type: "Pooling" bottom: "conv1_b" top: "pool1_b"
  pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "cat2_a" type: "Concat" bottom: "pool1_a" bottom: "pool1_b" top: "cat2_a" device: 0 }
layer { name: "cat2_b" type: "Concat" bottom: "pool1_a" bottom: "pool1_b" top: "cat2_b" device: 1 }
layer { name: "conv2_a" type: "Convolution" bottom: "cat2_a" top: "conv2_a"
  convolution_param { num_output: 12 kernel_size: 5 weight_filler { type: "xavier" } } }
layer { name: "conv2_b" type: "Convolution" bottom: "cat2_b" top: "conv2_b"
  convolution_param { num_output: 12 kernel_size: 5 weight_filler { type: "xavier" } } }
layer { name: "relu2_a" type: "ReLU" bottom: "conv2_a" top: "conv2_a" }
layer { name: "relu2_b" type: "ReLU" bottom: "conv2_b" top: "conv2_b" }
layer { name: "pool2_a" type: "Pooling" bottom: "conv2_a" top: "pool2_a"
  pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "pool2_b" type: "Pooling" bottom: "conv2_b" top: "pool2_b"
  pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "cat3_a" type: "Concat" bottom: "pool2_a" bottom: "pool2_b" top: "cat3_a" device: 0 }
layer { name: "cat3_b" type: "Concat" bottom: "pool2_a" bottom: "pool2_b" top: "cat3_b" device: 1 }
layer { name: "fc3_a" type: "InnerProduct" bottom: "cat3_a" top: "fc3_a"
  inner_product_param { num_output: 32 weight_filler { type: "xavier" } } }
layer { name: "fc3_b" type: "InnerProduct" bottom: "cat3_b" top: "fc3_b"
  inner_product_param { num_output: 32 weight_filler { type: "xavier" } } }
layer { name: "relu3_a" type: "ReLU" bottom: "fc3_a" top: "fc3_a" }
layer { name: "relu3_b" type: "ReLU" bottom: "fc3_b" top: "fc3_b" }
layer { name: "cat4" type: "Concat" bottom: "fc3_a" bottom: "fc3_b" top: "cat4" device: 0 }
layer { name: "fc4" type: "InnerProduct" bottom: "cat4" top: "fc4"
  inner_product_param { num_output: 10 weight_filler { type: "xavier" } } }
layer { name: "accuracy" type: "Accuracy" bottom: "fc4" bottom: "label" top: "accuracy"
  include { phase: TEST } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc4" bottom: "label" top: "loss" }
solver { base_lr: 0.02 momentum: 0.9 weight_decay: 0.0005 lr_policy: "fixed"
  max_iter: 400 test_iter: 10 test_interval: 400 test_initialization: false
  display: 100 random_seed: 3 snapshot_prefix: "$T/towers" }
EOF
}

data=/usr/share/datasets/fashion-mnist
have_data=0
if [ -f "$data/t10k-images-idx3-ubyte.gz" ]; then
    if bin/cnnexport "$data/t10k-images-idx3-ubyte.gz" "$data/t10k-labels-idx1-ubyte.gz" \
        "$T/png" --count 3000 > "$T/export.out" 2>&1; then
        have_data=1
        sed "s|^|$T/png/|" "$T/png/list.txt" > "$T/all.txt"
        head -n 2500 "$T/all.txt" > "$T/fmnist_train.txt"
        tail -n 500 "$T/all.txt" > "$T/fmnist_test.txt"
    else
        bad "cnnexport: $(cat "$T/export.out")"
    fi
else
    echo "SKIP: training checks ($data not found)"
    # One black 28x28 image (IDX written by hand) for the shape checks.
    printf '\x00\x00\x08\x03\x00\x00\x00\x01\x00\x00\x00\x1c\x00\x00\x00\x1c' > "$T/x.idx"
    head -c 784 /dev/zero >> "$T/x.idx"
    printf '\x00\x00\x08\x01\x00\x00\x00\x01\x00' > "$T/y.idx"
    bin/cnnexport "$T/x.idx" "$T/y.idx" "$T/png" > /dev/null 2>&1 || bad "cnnexport of one image"
    sed "s|^|$T/png/|" "$T/png/list.txt" > "$T/fmnist_train.txt"
    cp "$T/fmnist_train.txt" "$T/fmnist_test.txt"
fi
model 32 > "$T/towers.cfg"
sed 's/ device: [0-9]//' "$T/towers.cfg" > "$T/plain.cfg"

# ---- cnninfo ----------------------------------------------------------------------
out=$(bin/cnninfo "$T/towers.cfg" --phase TRAIN 2>&1)
rc=$?
[ $rc -eq 0 ] && ok "cnninfo exit 0" || bad "cnninfo: exit $rc: $out"
echo "$out" | head -1 | grep -q "phase TRAIN, 2 logical devices" && ok "cnninfo: 2 devices" ||
    bad "cnninfo header: $(echo "$out" | head -1)"
echo "$out" | grep -Eq "^data_to_dev1 +Copy +1 +32x1x28x28" &&
    ok "cnninfo: data_to_dev1 copy on 1" ||
    bad "cnninfo: no data_to_dev1 row: $out"
[ "$(echo "$out" | grep -c " Copy ")" -eq 6 ] && ok "cnninfo: 6 copies" ||
    bad "cnninfo: copies: $(echo "$out" | grep " Copy ")"
echo "$out" | grep -Eq "^conv2_b +Convolution +1 " && ok "cnninfo: conv2_b inherits device 1" ||
    bad "cnninfo: conv2_b row: $(echo "$out" | grep conv2_b)"
echo "$out" | grep -q "^device 1: " && ok "cnninfo: per-device totals" || bad "cnninfo totals: $out"
out=$(bin/cnninfo "$T/towers.cfg" --devices 1 2>&1)
rc=$?
want="towers.cfg:10:[0-9]*: layer 'conv1_b': device 1, but this run has 1 logical device"
[ $rc -eq 1 ] && echo "$out" | grep -q "$want" &&
    ok "cnninfo --devices 1 refused with file:line" || bad "cnninfo --devices 1: exit $rc: $out"

# ---- cnntrain errors ----------------------------------------------------------------
out=$(bin/cnntrain "$T/towers.cfg" --iterations 1 2>&1)
rc=$?
[ $rc -eq 1 ] && echo "$out" | grep -q "$want (cnntrain: --devices N" &&
    ok "one device by default: device 1 refused" || bad "default devices: exit $rc: $out"
for args in "--devices 0" "--devices x" "--gpus 0,a" "--gpus ,1" "--gpus 0 --devices 2"; do
    out=$(bin/cnntrain "$T/towers.cfg" $args 2>&1)
    rc=$?
    [ $rc -eq 2 ] && ok "cnntrain $args: usage error" || bad "cnntrain $args: exit $rc: $out"
done
for g in 0,1 0,0; do
    out=$(bin/cnntrain "$T/towers.cfg" --gpus $g 2>&1)
    rc=$?
    # No GPU: the device is missing; a GPU: not supported yet.
    msg="CUDA device 0 does not exist \(0 found\)|.*no CUDA support|.*not supported yet"
    if [ $rc -eq 1 ] && echo "$out" | grep -Eq "^cnntrain: --gpus $g: ($msg)"; then
        ok "cnntrain --gpus $g: $(echo "$out" | head -1 | cut -c1-70)"
    else
        bad "cnntrain --gpus $g: exit $rc: $out"
    fi
done

if [ $have_data -eq 0 ]; then
    [ $fails -eq 0 ] && echo "all passed" || echo "$fails failed"
    [ $fails -eq 0 ]
    exit
fi

# ---- two devices equal one device ---------------------------------------------------------
# Each device thread gets OMP_NUM_THREADS / devices OpenMP threads, and a few
# kernels sum in an order that depends on the thread count: give each layer
# one thread on both sides.
out2=$(OMP_NUM_THREADS=2 bin/cnntrain "$T/towers.cfg" --devices 2 --iterations 20 --quiet \
    --snapshot-prefix "$T/two" 2>&1)
rc2=$?
out1=$(OMP_NUM_THREADS=1 bin/cnntrain "$T/plain.cfg" --iterations 20 --quiet \
    --snapshot-prefix "$T/one" 2>&1)
rc1=$?
if [ $rc2 -eq 0 ] && [ $rc1 -eq 0 ]; then
    cmp -s "$T/two_iter_20.safetensors" "$T/one_iter_20.safetensors" &&
        ok "20 iterations on 2 devices: weights bit-identical to 1 device" ||
        bad "weights differ between 2 devices and 1"
    # The states' metadata differ (model, and the generator, which two
    # devices draw from to seed device 1's); the history tensors must not.
    if command -v python3 > /dev/null; then
        python3 - "$T/two_iter_20.solverstate" "$T/one_iter_20.solverstate" << 'EOF' &&
import json, struct, sys
def tensors(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    h.pop("__metadata__", None)
    return {k: b[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]] for k, v in h.items()}
a, b = tensors(sys.argv[1]), tensors(sys.argv[2])
assert a.keys() == b.keys() and len(a) > 0, (sorted(a), sorted(b))
assert all(a[k] == b[k] for k in a), [k for k in a if a[k] != b[k]]
EOF
            ok "solver history bit-identical too" || bad "solver histories differ"
    fi
else
    bad "short runs: exit $rc2/$rc1: $out2 $out1"
fi

# ---- training to an accuracy bar ---------------------------------------------------------
start=$SECONDS
out=$(bin/cnntrain "$T/towers.cfg" --devices 2 --log "$T/log.jsonl" 2>&1)
rc=$?
took=$((SECONDS - start))
[ $rc -eq 0 ] && ok "400 iterations on 2 devices in ${took}s" || bad "training: exit $rc: $out"
echo "$out" | head -1 | grep -q "device CPU (2 logical devices, one thread each)" &&
    ok "summary names the devices" || bad "summary: $(echo "$out" | head -1)"
acc=$(echo "$out" | sed -n 's/^test at iteration 400: loss [0-9.e+-]*  accuracy \([0-9.]*\).*/\1/p')
if [ -n "$acc" ] && awk -v a="$acc" 'BEGIN { exit !(a >= 0.72) }'; then
    ok "test accuracy $acc >= 0.72 (500 held-out images)"
else
    bad "test accuracy '${acc}' below 0.72: $out"
fi
[ $fails -eq 0 ] && echo "all passed" || echo "$fails failed"
[ $fails -eq 0 ]
