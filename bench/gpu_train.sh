#!/usr/bin/env bash
# gpu_train.sh — GPU benchmark, cnn against PyTorch on the same GPU in one
# run: a training iteration (forward, softmax loss, backward) of LeNet at
# batch 64, cifar10-quick at batch 100 and CaffeNet at batch 256 (Caffe's
# bvlc_reference_caffenet, from models/caffenet.cfg with Input layers and
# synthetic 3x227x227 data), all fp32 with TF32 off on both sides.
#
# cnn: bin/cnntime --gpu 0 --json (per-layer CUDA-event times, and the
# iteration as training runs it: cnn_net_forward + cnn_net_backward between
# drained streams, mean of N after a warm-up). PyTorch: bench/torch_gpu.py
# (eager, cuDNN autotuning on, mean of N between torch.cuda.synchronize()
# calls after 10 warm-ups; also with an SGD momentum step). cnn uploads its
# Input blobs from host memory at every forward pass (as training uploads
# each batch), so the headline ratio is against PyTorch doing the same
# (copying the batch from pageable host memory each iteration); the ratio
# against PyTorch with the batch resident on the GPU is printed too. Without a
# PyTorch that sees the GPU the PyTorch side is skipped, and said so.
# Each net runs a second time with --cuda-graph (each step replayed as one
# CUDA graph).
# Prints CaffeNet's per-layer times, a table, and "cnn is X.XXx faster" (or
# slower) per net; the last line sums it up (tests/gpu/run.sh's table).
# About a minute on an H100/H200.
#
#   bench/gpu_train.sh [ITERATIONS]   (default 100 for LeNet and cifar10-quick,
#                                      a fifth of it, at least 10, for CaffeNet)
# Environment: PY (python3), CNNTIME (bin/cnntime), CNN_DEVICE ("--gpu 0";
# "--cpu" tries the script without a GPU), CAFFENET_BATCH (256),
# GPU_TRAIN_ITERS (ITERATIONS when not given).
set -u
cd "$(dirname "$0")/.."
ITERS=${1:-${GPU_TRAIN_ITERS:-100}}
BIG=$((ITERS / 5 > 10 ? ITERS / 5 : 10))
PY=${PY:-python3}
CNNTIME=${CNNTIME:-bin/cnntime}
CNN_DEVICE=${CNN_DEVICE:---gpu 0}
CB=${CAFFENET_BATCH:-256}
. bench/gpu_nets.bash
[ -x "$CNNTIME" ] || { echo "gpu_train.sh: $CNNTIME not built (run make)" >&2; exit 1; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

lenet_net 64 > "$T/lenet.prototxt"
cifar10_quick_net 100 > "$T/cifar10_quick.prototxt"
input_net models/caffenet.cfg "$CB" > "$T/caffenet.prototxt"

torch_ok=1
why=$("$PY" -c 'import torch, sys
sys.exit(0 if torch.cuda.is_available() else "torch.cuda.is_available() is False")' 2>&1) || {
    torch_ok=0
    echo "gpu_train.sh: PyTorch side skipped ($PY: $(echo "$why" | tail -1))"
}
echo "gpu_train.sh: $(date -u '+%Y-%m-%d %H:%M UTC'), cnn $(git rev-parse --short HEAD 2> /dev/null || echo '?')"
command -v nvidia-smi > /dev/null &&
    nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | head -1 | sed 's/^/GPU: /'

status=0
for net in "lenet 64 $ITERS" "cifar10_quick 100 $ITERS" "caffenet $CB $BIG"; do
    set -- $net
    $CNNTIME "$T/$1.prototxt" $CNN_DEVICE --iterations "$3" --json > "$T/$1.cnn" 2> "$T/$1.err" || {
        echo "gpu_train.sh: cnntime failed on $1: $(tail -3 "$T/$1.err")"
        rm -f "$T/$1.cnn"
        status=1
    }
    $CNNTIME "$T/$1.prototxt" $CNN_DEVICE --iterations "$3" --json --cuda-graph \
        > "$T/$1.graph" 2> "$T/$1.gerr" || {
        echo "gpu_train.sh: cnntime --cuda-graph failed on $1: $(tail -3 "$T/$1.gerr")"
        rm -f "$T/$1.graph"
    }
    if [ $torch_ok = 1 ]; then
        "$PY" bench/torch_gpu.py "$1" "$2" "$3" > "$T/$1.torch" 2> "$T/$1.terr" || {
            echo "gpu_train.sh: torch_gpu.py failed on $1: $(tail -3 "$T/$1.terr")"
            rm -f "$T/$1.torch"
        }
    fi
done

if ! "$PY" -c 'import json' 2> /dev/null; then
    for f in "$T"/*.cnn; do
        echo "$(basename "$f" .cnn): $(grep -o '"iteration_ms":[0-9.e+-]*' "$f")"
    done
    exit $status
fi
"$PY" - "$T" << 'PYEOF'
import json, os, sys
d = sys.argv[1]
def load(name):
    try:
        return json.load(open(os.path.join(d, name)))
    except (OSError, ValueError):
        return None
nets = ("lenet", "cifar10_quick", "caffenet")
cnn = {n: load(n + ".cnn") for n in nets}
graph = {n: load(n + ".graph") for n in nets}
tor = {n: load(n + ".torch") for n in nets}
c = cnn["caffenet"]
if c:
    print("\ncnn caffenet, batch %d, ms per pass (CUDA events; 'host': no GPU path):" % c["batch"])
    print("  %-10s %-16s %-7s %10s %10s" % ("layer", "type", "where", "forward", "backward"))
    for l in c["layers"]:
        if l["forward_ms"] < 0.005 and not l["backward_ms"]:
            continue
        b = "%10.3f" % l["backward_ms"] if l["backward_ms"] is not None else "%10s" % "-"
        print("  %-10s %-16s %-7s %10.3f %s" % (l["name"], l["type"], l.get("where", "?"),
                                              l["forward_ms"], b))
    print("  layers' sum: forward %.2f ms, backward %.2f ms" % (c["forward_ms"], c["backward_ms"]))
t = next((x for x in tor.values() if x), None)
if t:
    print("\nPyTorch %s, cuDNN %s, %s" % (t["torch"], t["cudnn"], t["device"]))
some = next((x for x in cnn.values() if x), None)
if some:
    print("cnn on %s" % some.get("device", "?"))
print("\n%-14s %5s %10s %10s %12s %12s %12s %10s %10s" % (
    "net", "batch", "cnn ms", "cnn graph", "torch +copy", "torch resid.", "torch +SGD",
    "cnn img/s", "cnn host"))
def ratio(t, c):
    return "%.2fx faster" % (t / c) if t >= c else "%.2fx slower" % (c / t)
def tms(t, key):
    return t[key]["mean_ms"] if t and key in t else None
summary = []
for n in nets:
    c, t = cnn[n], tor[n]
    g = graph[n]
    replayed = g and g.get("cuda_graph") == "replayed"
    cells = ["%10.2f" % c["iteration_ms"] if c else "%10s" % "failed",
             "%10.2f" % g["iteration_ms"] if replayed else "%10s" % "-"]
    for key in ("with_input_copy", "forward_backward", "with_sgd_step"):
        v = tms(t, key)
        cells.append("%12.2f" % v if v is not None else "%12s" % "-")
    cells.append("%10.0f" % c["images_per_s"] if c else "%10s" % "-")
    cells.append("%10.2f" % c["host_queue_ms"] if c and "host_queue_ms" in c else "%10s" % "-")
    batch = c["batch"] if c else (t["batch"] if t else 0)
    print("%-14s %5d %s" % (n, batch, " ".join(cells)))
print("(cnn graph: --cuda-graph, each iteration one CUDA graph; torch +copy: batch copied "
      "from host memory each iteration, as cnn does; resid.: batch kept on the GPU; cnn host: "
      "ms the host takes to queue an iteration, near 'cnn ms' when launches set the pace)")
for n in nets:
    g = graph[n]
    if g and g.get("cuda_graph") != "replayed":
        print("%s --cuda-graph: no graph: %s" % (n, g.get("cuda_graph")))
for n in nets:
    c, t = cnn[n], tor[n]
    if c and t:
        same, resid = tms(t, "with_input_copy"), tms(t, "forward_backward")
        print("%s: cnn is %s than PyTorch (forward+backward with the batch copied in, fp32, "
              "means); %s against PyTorch with the batch resident"
              % (n, ratio(same, c["iteration_ms"]), ratio(resid, c["iteration_ms"])))
        g = graph[n]
        if g and g.get("cuda_graph") == "replayed":
            print("%s with --cuda-graph: cnn is %s than PyTorch (batch copied in)"
                  % (n, ratio(same, g["iteration_ms"])))
            summary.append("%s %.2fx (graph %.2fx)" % (n, same / c["iteration_ms"],
                                                       same / g["iteration_ms"]))
        else:
            summary.append("%s %.2fx" % (n, same / c["iteration_ms"]))
    elif c:
        summary.append("%s %.1f ms" % (n, c["iteration_ms"]))
        print("%s: cnn %.2f ms (no PyTorch figure)" % (n, c["iteration_ms"]))
    else:
        summary.append("%s failed" % n)
print("\ncnn speed / PyTorch's (>1: cnn faster): " + ", ".join(summary))
PYEOF
exit $status
