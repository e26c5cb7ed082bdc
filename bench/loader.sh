#!/usr/bin/env bash
# loader.sh — throughput of the ImageData loader against PyTorch's DataLoader
# on the same machine, in one run. Writes N random-ish 256x256 JPEGs (smooth
# colour fields plus noise, quality 90, about 30 KB each; PIL) into a folder
# of 4 class folders, then times the AlexNet training input pipeline: shorter
# side resized to 256, random 227 crop, mirror, PCA lighting (std 0.1), mean
# subtraction, batches of 64, shuffled. cnn: bench/loader_bench.c (an
# ImageData layer with THREADS loader threads); PyTorch: bench/torch_loader.py
# (PIL + torch, DataLoader with the same number of worker processes;
# torchvision is not installed, so its steps are written out). The two
# alternate for ROUNDS rounds and each side's median is reported.
#
# Columns: images/s delivered (wall clock) and CPU milliseconds per image
# (all threads / worker processes). On a busy machine the wall-clock figures
# fall with the CPU share the benchmark gets; CPU ms per image does not.
#
#   bench/loader.sh [N_IMAGES] [BATCHES]     (default 512 and 24; ROUNDS=3)
set -u
cd "$(dirname "$0")/.."
N=${1:-512}
BATCHES=${2:-24}
ROUNDS=${ROUNDS:-3}
PY=/usr/bin/python3
[ -f lib/libcnn.so ] || { echo "loader.sh: lib/libcnn.so not built (run make)" >&2; exit 1; }
mkdir -p build/bench
cc -std=gnu11 -O2 -Wall -Wextra -I. -Icore bench/loader_bench.c -o build/bench/loader_bench \
    -Llib -lcnn -Wl,-rpath,"$PWD/lib" -lm -lpthread || exit 1
"$PY" -c "import torch, PIL, numpy" 2> /dev/null ||
    { echo "loader.sh: $PY needs torch, PIL and numpy (python3-torch, python3-pil)" >&2; exit 1; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

"$PY" - "$T/images" "$N" << 'PYEOF' || exit 1
import os, sys
import numpy as np
from PIL import Image
root, n = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(1)
for i in range(n):
    d = os.path.join(root, "class%d" % (i % 4))
    os.makedirs(d, exist_ok=True)
    low = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    field = Image.fromarray(low).resize((256, 256), Image.BICUBIC)
    a = np.asarray(field, dtype=np.float32) + rng.normal(0, 12, (256, 256, 3))
    Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)).save(
        os.path.join(d, "%05d.jpg" % i), quality=90)
PYEOF
echo "loader.sh: $N JPEGs of 256x256 ($(du -sk "$T/images" | cut -f1) KB), $BATCHES batches of" \
     "64 per run, $ROUNDS rounds; $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"

median() { sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
for t in 1 2; do
    for r in $(seq "$ROUNDS"); do
        build/bench/loader_bench "$T/images" "$t" "$BATCHES" >> "$T/cnn_$t" || exit 1
        "$PY" bench/torch_loader.py "$T/images" "$t" "$BATCHES" >> "$T/torch_$t" || exit 1
    done
done
printf "\n%-8s %14s %14s %8s %14s %14s\n" threads "cnn img/s" "torch img/s" ratio \
    "cnn CPU ms/img" "torch CPU ms/img"
for t in 1 2; do
    ci=$(cut -d' ' -f1 "$T/cnn_$t" | median)
    ti=$(cut -d' ' -f1 "$T/torch_$t" | median)
    cc=$(cut -d' ' -f2 "$T/cnn_$t" | median)
    tc=$(cut -d' ' -f2 "$T/torch_$t" | median)
    printf "%-8s %14s %14s %7.2fx %14s %14s\n" "$t" "$ci" "$ti" "$(echo "$ci $ti" |
        awk '{print $1 / $2}')" "$cc" "$tc"
done
echo "(ratio: cnn images/s over PyTorch's; 'threads' is loader threads for cnn, DataLoader" \
     "worker processes for PyTorch; medians of $ROUNDS rounds)"
