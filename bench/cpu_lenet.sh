#!/usr/bin/env bash
# cpu_lenet.sh — CPU benchmark, cnn against PyTorch on the same machine in one
# run: a LeNet training iteration at batch 64 and a cifar10-quick one at batch
# 100 (forward, softmax loss, backward). cnn is timed with bin/cnntime (mean of
# N iterations after a warm-up), PyTorch with bench/torch_lenet.py (Debian's
# /usr/bin/python3 with python3-torch, 2 threads). The two alternate for
# ROUNDS rounds and each side's median round is reported, so that load from
# other processes hits both alike. Prints cnn's per-layer times, then a table
# and "cnn is X.XXx faster" (PyTorch time / cnn time). The headline compares
# means (what sets training throughput; cnntime reports means); PyTorch's
# iteration times vary a lot from one to the next, so its median is shown too.
#
#   bench/cpu_lenet.sh [ITERATIONS]    (default 50; ROUNDS=3, THREADS=2)
set -u
cd "$(dirname "$0")/.."
ITERS=${1:-50}
ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-2}
PY=/usr/bin/python3
[ -x bin/cnntime ] || { echo "cpu_lenet.sh: bin/cnntime not built (run make)" >&2; exit 1; }
"$PY" -c "import torch" 2> /dev/null ||
    { echo "cpu_lenet.sh: $PY cannot import torch (apt install python3-torch)" >&2; exit 1; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

# conv NAME BOTTOM OUT PAD, pool NAME BOTTOM MAX|AVE K, ip NAME BOTTOM OUT, relu NAME BLOB
conv() {
    echo "layer { name: \"$1\" type: \"Convolution\" bottom: \"$2\" top: \"$1\""
    echo "  convolution_param { num_output: $3 kernel_size: 5 pad: $4"
    echo "    weight_filler { type: \"xavier\" } } }"
}
pool() {
    echo "layer { name: \"$1\" type: \"Pooling\" bottom: \"$2\" top: \"$1\""
    echo "  pooling_param { pool: $3 kernel_size: $4 stride: 2 } }"
}
ip() {
    echo "layer { name: \"$1\" type: \"InnerProduct\" bottom: \"$2\" top: \"$1\""
    echo "  inner_product_param { num_output: $3 weight_filler { type: \"xavier\" } } }"
}
relu() { echo "layer { name: \"$1\" type: \"ReLU\" bottom: \"$2\" top: \"$2\" }"; }
inputs() {
    echo "layer { name: \"data\" type: \"Input\" top: \"data\""
    echo "  input_param { shape { dim: $1 dim: $2 dim: $3 dim: $3 } } }"
    echo "layer { name: \"label\" type: \"Input\" top: \"label\""
    echo "  input_param { shape { dim: $1 } } }"
}
loss() {
    echo "layer { name: \"loss\" type: \"SoftmaxWithLoss\" bottom: \"$1\" bottom: \"label\""
    echo "  top: \"loss\" }"
}
{
    echo 'name: "LeNet"'
    inputs 64 1 28
    conv conv1 data 20 0; pool pool1 conv1 MAX 2; conv conv2 pool1 50 0; pool pool2 conv2 MAX 2
    ip ip1 pool2 500; relu relu1 ip1; ip ip2 ip1 10; loss ip2
} > "$T/lenet.prototxt"
{
    echo 'name: "CIFAR10_quick"'
    inputs 100 3 32
    conv conv1 data 32 2; pool pool1 conv1 MAX 3; relu relu1 pool1
    conv conv2 pool1 32 2; relu relu2 conv2; pool pool2 conv2 AVE 3
    conv conv3 pool2 64 2; relu relu3 conv3; pool pool3 conv3 AVE 3
    ip ip1 pool3 64; ip ip2 ip1 10; loss ip2
} > "$T/cifar10_quick.prototxt"

echo "cpu_lenet.sh: $(date -u '+%Y-%m-%d %H:%M UTC'), $(lscpu | sed -n 's/^Model name: *//p')," \
    "$(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "cnn $(git rev-parse --short HEAD 2> /dev/null || echo '?'), OMP_NUM_THREADS=$THREADS;" \
    "PyTorch $("$PY" -c 'import torch; print(torch.__version__)'), $THREADS threads;" \
    "$ITERS iterations, $ROUNDS rounds"
for net in "lenet 64" "cifar10_quick 100"; do
    set -- $net
    for r in $(seq "$ROUNDS"); do
        OMP_NUM_THREADS=$THREADS bin/cnntime "$T/$1.prototxt" --iterations "$ITERS" --json \
            > "$T/$1.cnn.$r" || { echo "cpu_lenet.sh: cnntime failed on $1" >&2; exit 1; }
        "$PY" bench/torch_lenet.py "$1" "$2" "$ITERS" "$THREADS" > "$T/$1.torch.$r" ||
            { echo "cpu_lenet.sh: torch_lenet.py failed on $1" >&2; exit 1; }
    done
done

"$PY" - "$T" "$ROUNDS" << 'PYEOF'
import json, statistics, sys
d, rounds = sys.argv[1], int(sys.argv[2])
rows = []
for net in ("lenet", "cifar10_quick"):
    cnn = [json.load(open("%s/%s.cnn.%d" % (d, net, r))) for r in range(1, rounds + 1)]
    tor = [json.load(open("%s/%s.torch.%d" % (d, net, r))) for r in range(1, rounds + 1)]
    med = sorted(cnn, key=lambda c: c["iteration_ms"])[(rounds - 1) // 2]
    print("\ncnn %s, batch %d (median round), ms per iteration:" % (net, med["batch"]))
    print("  %-10s %-16s %10s %10s" % ("layer", "type", "forward", "backward"))
    for l in med["layers"]:
        if l["forward_ms"] < 0.005 and not l["backward_ms"]:
            continue
        b = "%10.3f" % l["backward_ms"] if l["backward_ms"] is not None else "%10s" % "-"
        print("  %-10s %-16s %10.3f %s" % (l["name"], l["type"], l["forward_ms"], b))
    cnn_ms = statistics.median(c["iteration_ms"] for c in cnn)
    fb = statistics.median(t["forward_backward"]["mean_ms"] for t in tor)
    fb_med = statistics.median(t["forward_backward"]["median_ms"] for t in tor)
    step = statistics.median(t["with_sgd_step"]["mean_ms"] for t in tor)
    rows.append((net, med["batch"], cnn_ms, fb, fb_med, step))
print("\n%-14s %5s %10s %14s %16s %14s" % ("net", "batch", "cnn ms", "torch fwd+bwd",
                                            "(torch median)", "torch +SGD step"))
for net, batch, c, fb, fbm, step in rows:
    print("%-14s %5d %10.2f %14.2f %16.2f %14.2f" % (net, batch, c, fb, fbm, step))
def ratio(t, c):
    return "%.2fx faster" % (t / c) if t >= c else "%.2fx slower" % (c / t)
for net, batch, c, fb, fbm, step in rows:
    print("%s: cnn is %s than PyTorch (forward+backward, means); %s against PyTorch's"
          " median iteration" % (net, ratio(fb, c), ratio(fbm, c)))
PYEOF
