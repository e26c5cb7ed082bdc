#!/usr/bin/env bash
# train_e2e_test.sh — end-to-end tests of bin/cnntrain: the JSON-lines log,
# snapshots, SIGINT/SIGTERM (snapshot, exit 130/143) and resuming from that
# snapshot, error exits; then, on Fashion-MNIST through the Data layer,
# bit-identical resume through the CLI and a LeNet trained for 300 CPU
# iterations reaching a test accuracy bar (skipped without the data set).
set -u
cd "$(dirname "$0")/.."
[ -x bin/cnntrain ] || { echo "FAIL: bin/cnntrain not built"; exit 1; }
T=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2> /dev/null; done; rm -rf "$T"' EXIT
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
have_py=1
command -v python3 > /dev/null || { have_py=0; echo "SKIP: JSON checks (python3 not found)"; }

# ---- a small net on Input blobs --------------------------------------------------
cat > "$T/tiny.cfg" << 'EOF'
name: "tiny"
layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 8 dim: 16 } } }
layer { name: "t" type: "Input" top: "t" input_param { shape { dim: 8 dim: 4 } } }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y"
        inner_product_param { num_output: 4 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "y" bottom: "t" top: "loss" }
solver { base_lr: 0.01 momentum: 0.9 max_iter: 20 display: 5 snapshot: 10
         random_seed: 5 }
EOF
out=$(bin/cnntrain "$T/tiny.cfg" --log "$T/log.jsonl" 2>&1)
rc=$?
[ $rc -eq 0 ] && ok "cnntrain exit 0" || bad "cnntrain: exit $rc: $out"
echo "$out" | head -1 | grep -q "device CPU; net 'tiny'.*parameters, batch 8" &&
    ok "first line names device and net" || bad "first line: $out"
for n in 10 20; do
    [ -f "$T/tiny_iter_$n.safetensors" ] && [ -f "$T/tiny_iter_$n.solverstate" ] &&
        ok "snapshot $n written" || bad "snapshot $n missing: $(ls "$T")"
done
[ "$(ls "$T" | grep -c tmp)" -eq 0 ] && ok "no temporary files left" || bad "tmp: $(ls "$T")"
[ "$(wc -l < "$T/log.jsonl")" -eq 4 ] && ok "4 display records" || bad "log: $(cat "$T/log.jsonl")"
if [ $have_py -eq 1 ]; then
    python3 - "$T/log.jsonl" << 'EOF' && ok "log records are JSON" || bad "log JSON"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert [r["iter"] for r in rows] == [5, 10, 15, 20], rows
for r in rows:
    assert set(r) >= {"iter", "loss", "lr", "images_per_sec"}, r
    assert r["lr"] == 0.01 and r["images_per_sec"] > 0, r
EOF
fi

# --resume continues; --iterations replaces max_iter; the log is appended.
out=$(bin/cnntrain "$T/tiny.cfg" --resume "$T/tiny_iter_10.solverstate" --iterations 25 \
    --log "$T/log.jsonl" --snapshot-prefix "$T/more" 2>&1)
rc=$?
[ $rc -eq 0 ] && ok "resume exit 0" || bad "resume: exit $rc: $out"
echo "$out" | grep -q "resumed from .* at iteration 10" && ok "resume announced" ||
    bad "resume line: $out"
[ -f "$T/more_iter_25.solverstate" ] && ok "final snapshot at 25" || bad "no more_iter_25"
[ "$(wc -l < "$T/log.jsonl")" -eq 7 ] && ok "log appended" || bad "log: $(cat "$T/log.jsonl")"

# ---- signals: finish the iteration, snapshot, exit 128 + signal ------------------
cat > "$T/long.cfg" << 'EOF'
name: "long"
layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 64 dim: 256 } } }
layer { name: "t" type: "Input" top: "t" input_param { shape { dim: 64 dim: 256 } } }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y"
        inner_product_param { num_output: 256 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "y" bottom: "t" top: "loss" }
solver { base_lr: 0.01 max_iter: 100000000 display: 1 random_seed: 1 }
EOF
for sig in INT TERM; do
    want=$([ $sig = INT ] && echo 130 || echo 143)
    rm -f "$T/sig"*
    bin/cnntrain "$T/long.cfg" --quiet --log "$T/sig.jsonl" --snapshot-prefix "$T/sig" \
        > "$T/sig.out" 2>&1 &
    pid=$!
    pids+=("$pid")
    for _ in $(seq 100); do
        [ -s "$T/sig.jsonl" ] && break
        sleep 0.1
    done
    kill -$sig "$pid"
    wait "$pid"
    rc=$?
    [ $rc -eq "$want" ] && ok "SIG$sig exit $want" || bad "SIG$sig: exit $rc: $(cat "$T/sig.out")"
    state=$(ls "$T"/sig_iter_*.solverstate 2> /dev/null | head -1)
    [ -n "$state" ] && ok "SIG$sig snapshot $state" || bad "SIG$sig: no snapshot: $(ls "$T")"
    grep -q "cnntrain: .* at iteration [0-9]*; snapshot written to $state" "$T/sig.out" &&
        ok "SIG$sig message names the snapshot" || bad "SIG$sig message: $(cat "$T/sig.out")"
done
iter=$(echo "$state" | sed 's/.*_iter_\([0-9]*\)\.solverstate/\1/')
out=$(bin/cnntrain "$T/long.cfg" --quiet --resume "$state" --iterations $((iter + 3)) \
    --snapshot-prefix "$T/after" 2>&1)
rc=$?
[ $rc -eq 0 ] && [ -f "$T/after_iter_$((iter + 3)).solverstate" ] &&
    ok "resumed from the signal snapshot" || bad "resume after signal: exit $rc: $out"

# ---- errors: "cnntrain: message", non-zero exit -----------------------------------
expect_fail() { # want_rc needle args...
    local want=$1 needle=$2
    shift 2
    out=$(bin/cnntrain "$@" 2>&1)
    rc=$?
    if [ $rc -eq "$want" ] && echo "$out" | grep -q "^cnntrain: .*$needle"; then
        ok "error exit $want: $needle"
    else
        bad "expected exit $want with '$needle': exit $rc: $out"
    fi
}
expect_fail 1 "nope.cfg" "$T/nope.cfg"
expect_fail 2 "unknown option" "$T/tiny.cfg" --bogus
expect_fail 2 "" "$T/tiny.cfg" --iterations
expect_fail 1 "iterations needs a positive number" "$T/tiny.cfg" --iterations -3
expect_fail 1 "--gpu 7" "$T/tiny.cfg" --gpu 7
expect_fail 1 "not both" "$T/tiny.cfg" --weights a --resume b
expect_fail 1 "missing.safetensors" "$T/tiny.cfg" --weights "$T/missing.safetensors"
expect_fail 1 "missing.solverstate" "$T/tiny.cfg" --resume "$T/missing.solverstate"
sed 's/random_seed: 5/random_seed: 5 bogus: 1/' "$T/tiny.cfg" > "$T/bad.cfg"
expect_fail 1 "bad.cfg:8:.*bogus" "$T/bad.cfg"
echo x > "$T/plainfile"
expect_fail 1 "cannot create folder" "$T/tiny.cfg" --snapshot-prefix "$T/plainfile/dir/p"
# NaN loss stops training.
cat > "$T/nan.cfg" << 'EOF'
name: "nan"
layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "t" type: "Input" top: "t" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "sc" type: "Scale" bottom: "x" top: "y"
        scale_param { bias_term: true bias_filler { value: inf } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "y" bottom: "t" top: "loss" }
solver { base_lr: 0.01 max_iter: 5 }
EOF
expect_fail 1 "loss is .* at iteration 0" "$T/nan.cfg"

# ---- Fashion-MNIST through the Data layer -----------------------------------------
D=/usr/share/datasets/fashion-mnist
if [ ! -f "$D/train-images-idx3-ubyte.gz" ] || [ ! -f "$D/t10k-labels-idx1-ubyte.gz" ]; then
    echo "SKIP: Fashion-MNIST training ($D absent; package dataset-fashion-mnist)"
    echo "cnntrain: $fails failure(s)"
    [ $fails -eq 0 ]
    exit
fi
data_layers() { # train batch, test batch
    cat << EOF
layer { name: "data" type: "Data" top: "data" top: "label" include { phase: TRAIN }
        transform_param { scale: 0.00390625 }
        data_param { source: "$D/train-images-idx3-ubyte.gz" backend: IDX batch_size: $1
                     label_source: "$D/train-labels-idx1-ubyte.gz" shuffle: true } }
layer { name: "data" type: "Data" top: "data" top: "label" include { phase: TEST }
        transform_param { scale: 0.00390625 }
        data_param { source: "$D/t10k-images-idx3-ubyte.gz" backend: IDX batch_size: $2
                     label_source: "$D/t10k-labels-idx1-ubyte.gz" } }
EOF
}

# Resume through the CLI continues the shuffled data stream exactly: 40
# iterations straight and 20 + resume + 20 write the same weights file.
{
    echo 'name: "softmax"'
    data_layers 32 100
    cat << 'EOF'
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
        inner_product_param { num_output: 10 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
solver { base_lr: 0.05 momentum: 0.9 lr_policy: "inv" gamma: 0.001 power: 0.75
         max_iter: 40 random_seed: 9 }
EOF
} > "$T/softmax.cfg"
bin/cnntrain "$T/softmax.cfg" --quiet --snapshot-prefix "$T/straight" > "$T/out" 2>&1 &&
    bin/cnntrain "$T/softmax.cfg" --quiet --iterations 20 --snapshot-prefix "$T/first" \
        >> "$T/out" 2>&1 &&
    bin/cnntrain "$T/softmax.cfg" --quiet --resume "$T/first_iter_20.solverstate" \
        --snapshot-prefix "$T/second" >> "$T/out" 2>&1
rc=$?
[ $rc -eq 0 ] && ok "straight and resumed runs" || bad "runs: exit $rc: $(cat "$T/out")"
cmp -s "$T/straight_iter_40.safetensors" "$T/second_iter_40.safetensors" &&
    ok "resumed weights are bit-identical" || bad "resumed weights differ"

# A LeNet trained for 300 iterations must beat a test accuracy bar.
{
    echo 'name: "LeNet"'
    data_layers 64 100
    cat << 'EOF'
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 20 kernel_size: 5 weight_filler { type: "xavier" } } }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "conv2" type: "Convolution" bottom: "pool1" top: "conv2"
        convolution_param { num_output: 50 kernel_size: 5 weight_filler { type: "xavier" } } }
layer { name: "pool2" type: "Pooling" bottom: "conv2" top: "pool2"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "ip1" type: "InnerProduct" bottom: "pool2" top: "ip1"
        inner_product_param { num_output: 500 weight_filler { type: "xavier" } } }
layer { name: "relu1" type: "ReLU" bottom: "ip1" top: "ip1" }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2"
        inner_product_param { num_output: 10 weight_filler { type: "xavier" } } }
layer { name: "accuracy" type: "Accuracy" bottom: "ip2" bottom: "label" top: "accuracy"
        include { phase: TEST } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }
solver { base_lr: 0.01 momentum: 0.9 weight_decay: 0.0005 lr_policy: "inv" gamma: 0.0001
         power: 0.75 test_iter: 20 test_interval: 150 display: 50 max_iter: 300
         random_seed: 1 }
EOF
} > "$T/lenet.cfg"
out=$(bin/cnntrain "$T/lenet.cfg" --log "$T/lenet.jsonl" 2>&1)
rc=$?
[ $rc -eq 0 ] && ok "LeNet training exit 0" || bad "LeNet: exit $rc: $out"
echo "$out" | grep "^test at iteration"
acc=$(echo "$out" | sed -n 's/^test at iteration 300: .*accuracy \([0-9.]*\) .*/\1/p')
if [ -n "$acc" ] && awk -v a="$acc" 'BEGIN { exit !(a > 0.75) }'; then
    ok "test accuracy $acc > 0.75 after 300 iterations"
else
    bad "test accuracy '$acc' not above 0.75: $out"
fi
[ "$(grep -c test_accuracy "$T/lenet.jsonl")" -eq 3 ] && ok "3 test records logged" ||
    bad "test records: $(cat "$T/lenet.jsonl")"
[ -f "$T/lenet_iter_300.safetensors" ] && ok "final weights written" || bad "no final weights"

echo "cnntrain: $fails failure(s)"
[ $fails -eq 0 ]
