#!/usr/bin/env bash
# gpu_modelpar.sh — model parallelism on one GPU: the two-tower AlexNet
# (models/alexnet_2gpu.cfg, towers on logical devices 0 and 1) trained with
# --gpus 0,0 (both towers on GPU 0, one stream each; again with
# --cuda-graph) against the one-device CaffeNet (models/caffenet.cfg, the
# same layers with grouped convolutions) and against PyTorch's CaffeNet
# (bench/torch_gpu.py), at batch 128 (the paper's), synthetic 3x227x227
# data, fp32, training iteration = forward, softmax loss, backward.
#
# From cnntime's per-layer CUDA-event times it sums each tower's layers
# (forward + backward, Copy layers apart) and estimates what two real GPUs
# would give: max(tower 0, tower 1) + the copies. The copies here are
# device-to-device copies within one GPU; between two GPUs they cross
# NVLink or PCIe and take longer, so the estimate is a lower bound. The
# estimate also ignores that the towers wait for each other at each
# exchange (conv3, fc6, fc7), and the upload of the input batch, which the
# measured iterations include (cnn uploads its Input blobs at every forward
# pass): measured iterations are compared with PyTorch copying its batch in
# each iteration, the estimate with PyTorch's batch resident on the GPU.
# The last line sums it up.
#
#   bench/gpu_modelpar.sh [ITERATIONS] [BATCH]   (default 20, 128)
# Environment: PY (python3), CNNTIME (bin/cnntime), GPU (0), MODELPAR_ITERS
# and MODELPAR_BATCH (ITERATIONS and BATCH when not given).
set -u
cd "$(dirname "$0")/.."
ITERS=${1:-${MODELPAR_ITERS:-20}}
BATCH=${2:-${MODELPAR_BATCH:-128}}
PY=${PY:-python3}
CNNTIME=${CNNTIME:-bin/cnntime}
GPU=${GPU:-0}
. bench/gpu_nets.bash
[ -x "$CNNTIME" ] || { echo "gpu_modelpar.sh: $CNNTIME not built (run make)" >&2; exit 1; }
"$PY" -c 'import json' 2> /dev/null || { echo "gpu_modelpar.sh: needs $PY" >&2; exit 1; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
input_net models/alexnet_2gpu.cfg "$BATCH" > "$T/alexnet_2gpu.prototxt"
input_net models/caffenet.cfg "$BATCH" > "$T/caffenet.prototxt"

echo "gpu_modelpar.sh: $(date -u '+%Y-%m-%d %H:%M UTC'), cnn $(git rev-parse --short HEAD 2> /dev/null || echo '?')," \
    "batch $BATCH, $ITERS iterations"
status=0
$CNNTIME "$T/alexnet_2gpu.prototxt" --gpus "$GPU,$GPU" --iterations "$ITERS" --json \
    > "$T/towers.json" 2> "$T/towers.err" ||
    { echo "gpu_modelpar.sh: cnntime --gpus $GPU,$GPU failed: $(tail -3 "$T/towers.err")"; status=1; }
$CNNTIME "$T/alexnet_2gpu.prototxt" --gpus "$GPU,$GPU" --iterations "$ITERS" --json --cuda-graph \
    > "$T/towers_graph.json" 2> "$T/towers_graph.err" ||
    echo "gpu_modelpar.sh: cnntime --gpus $GPU,$GPU --cuda-graph failed: $(tail -3 "$T/towers_graph.err")"
$CNNTIME "$T/caffenet.prototxt" --gpu "$GPU" --iterations "$ITERS" --json \
    > "$T/caffenet.json" 2> "$T/caffenet.err" ||
    { echo "gpu_modelpar.sh: cnntime on caffenet failed: $(tail -3 "$T/caffenet.err")"; status=1; }
why=$("$PY" -c 'import torch, sys
sys.exit(0 if torch.cuda.is_available() else "torch.cuda.is_available() is False")' 2>&1)
if [ $? -eq 0 ]; then
    CUDA_VISIBLE_DEVICES=$GPU "$PY" bench/torch_gpu.py caffenet "$BATCH" "$ITERS" \
        > "$T/torch.json" 2> "$T/torch.err" ||
        echo "gpu_modelpar.sh: torch_gpu.py failed: $(tail -3 "$T/torch.err")"
else
    echo "gpu_modelpar.sh: PyTorch side skipped ($PY: $(echo "$why" | tail -1))"
fi

"$PY" - "$T" "$BATCH" << 'PYEOF'
import json, os, sys
d, batch = sys.argv[1], int(sys.argv[2])
def load(name):
    try:
        return json.load(open(os.path.join(d, name)))
    except (OSError, ValueError):
        return None
tw, cn, tor = load("towers.json"), load("caffenet.json"), load("torch.json")
twg = load("towers_graph.json")
def ratio(a, b):  # how much faster `b` ms is than `a` ms
    return "%.2fx faster" % (a / b) if a >= b else "%.2fx slower" % (b / a)
summary = []
if tw:
    tower, copies, host = {}, 0.0, 0.0
    for l in tw["layers"]:
        ms = l["forward_ms"] + (l["backward_ms"] or 0)
        if l["type"] == "Copy":
            copies += ms
        else:
            tower[l["device"]] = tower.get(l["device"], 0.0) + ms
            if l.get("where") == "host":
                host += ms
    print("\nalexnet_2gpu on %s, batch %d (per-layer CUDA events, each pass alone):"
          % (tw.get("device", "?"), tw["batch"]))
    for k in sorted(tower):
        print("  tower %d (logical device %d): %8.2f ms forward+backward" % (k, k, tower[k]))
    print("  copies between towers:       %8.2f ms (on one GPU)" % copies)
    if host >= 0.01:
        print("  of which layers without a GPU path (host): %.2f ms" % host)
    serial = sum(tower.values()) + copies
    est = max(tower.values()) + copies
    print("  sum of all passes:           %8.2f ms" % serial)
    print("  measured iteration, both towers on one GPU (two streams): %.2f ms" % tw["iteration_ms"])
    if twg and twg.get("cuda_graph") == "replayed":
        print("  the same, each iteration one CUDA graph (--cuda-graph):   %.2f ms"
              % twg["iteration_ms"])
    elif twg:
        print("  --cuda-graph: no graph (%s)" % twg.get("cuda_graph"))
    print("  estimate on two GPUs, max(towers) + copies:               %.2f ms" % est)
if cn:
    print("\ncaffenet on one device: %.2f ms per iteration (layers' sum %.2f ms)"
          % (cn["iteration_ms"], cn["forward_ms"] + cn["backward_ms"]))
if tor:
    print("PyTorch %s caffenet: %.2f ms forward+backward with the batch copied in, %.2f ms "
          "with it resident, %.2f ms with an SGD step"
          % (tor["torch"], tor["with_input_copy"]["mean_ms"], tor["forward_backward"]["mean_ms"],
             tor["with_sgd_step"]["mean_ms"]))
print()
if tw and cn:
    print("alexnet_2gpu --gpus 0,0 is %s than caffenet on one device"
          % ratio(cn["iteration_ms"], tw["iteration_ms"]))
    print("alexnet_2gpu on two GPUs (estimate) would be %s than caffenet on one"
          % ratio(cn["iteration_ms"], est))
if tw and tor:
    print("alexnet_2gpu --gpus 0,0 is %s than PyTorch's caffenet (batch copied in); the "
          "two-GPU estimate %s (batch resident)"
          % (ratio(tor["with_input_copy"]["mean_ms"], tw["iteration_ms"]),
             ratio(tor["forward_backward"]["mean_ms"], est)))
if cn and tor:
    print("caffenet: cnn is %s than PyTorch (batch copied in)"
          % ratio(tor["with_input_copy"]["mean_ms"], cn["iteration_ms"]))
parts = []
if tw:
    parts.append("towers 0,0 %.1f ms, 2-GPU est. %.1f ms" % (tw["iteration_ms"], est))
    if twg and twg.get("cuda_graph") == "replayed":
        parts.append("towers graph %.1f ms" % twg["iteration_ms"])
if cn:
    parts.append("caffenet %.1f ms" % cn["iteration_ms"])
if tor:
    parts.append("torch %.1f ms" % tor["with_input_copy"]["mean_ms"])
print("b%d: " % batch + (", ".join(parts) or "no figures (cnntime failed, see above)"))
PYEOF
exit $status
