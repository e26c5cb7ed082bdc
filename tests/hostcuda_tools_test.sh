#!/usr/bin/env bash
# hostcuda_tools_test.sh — the tools on the GPU path, with our CUDA sources
# run by the CPU (build/hostcuda/bin, linked with lib/libcnn_hostcuda.a;
# see tests/hostcuda/runtime.cpp): cnntrain on LeNet (GPU losses against
# the CPU's, CUDA graph replay equal to eager steps), a two-tower net on two
# GPUs against two logical devices of one GPU and against one device,
# cnnclassify's output equal to the CPU's, and cnntime's per-layer table.
# Skips without Debian's Fashion-MNIST.
set -u
cd "$(dirname "$0")/.."
H=build/hostcuda/bin
for b in cnntrain cnnclassify cnntime cnnexport; do
    [ -x "$H/$b" ] && [ -x "bin/$b" ] || { echo "FAIL: $H/$b or bin/$b not built"; exit 1; }
done
D=/usr/share/datasets/fashion-mnist
[ -f "$D/train-images-idx3-ubyte.gz" ] || { echo "SKIP: no Fashion-MNIST in $D"; exit 0; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
export OMP_NUM_THREADS=2 CNN_HOSTCUDA_DEVICES=2
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }

# The loss cnntrain printed at iteration $1 in log file $2.
loss_at() {
    awk -v it="$1" '$1 == "iteration" && index($2, it "/") == 1 {
        for (i = 3; i < NF; i++) if ($i == "loss") print $(i + 1) }' "$2"
}
# Whether $1 and $2 agree within relative tolerance $3.
near() {
    awk -v a="$1" -v b="$2" -v t="$3" \
        'BEGIN { d = a - b; if (d < 0) d = -d; m = a < 0 ? -a : a; exit !(a != "" && d <= t * m) }'
}

# ---- LeNet: CPU, GPU eager, GPU with CUDA graphs ------------------------------------
sed -e 's/display: 100/display: 20/' -e "s|snapshots/lenet|$T/lenet|" models/lenet.cfg > "$T/lenet.cfg"
bin/cnntrain "$T/lenet.cfg" --cpu --iterations 60 --snapshot-prefix "$T/cpu" > "$T/cpu.log" 2>&1
$H/cnntrain "$T/lenet.cfg" --gpu 0 --iterations 60 --snapshot-prefix "$T/gpu" > "$T/gpu.log" 2>&1
$H/cnntrain "$T/lenet.cfg" --gpu 0 --iterations 60 --cuda-graph --snapshot-prefix "$T/graph" \
    > "$T/graph.log" 2>&1
grep -q "device CUDA 0: hostcuda" "$T/gpu.log" && ok "cnntrain runs on the hostcuda GPU" ||
    bad "cnntrain did not run on the hostcuda GPU: $(head -2 "$T/gpu.log")"
for it in 20 40 60; do
    c=$(loss_at $it "$T/cpu.log") g=$(loss_at $it "$T/gpu.log") r=$(loss_at $it "$T/graph.log")
    near "$c" "$g" 0.02 && ok "LeNet iteration $it: GPU loss $g, CPU $c" ||
        bad "LeNet iteration $it: GPU loss '$g' vs CPU '$c' (2% allowed)"
    [ -n "$g" ] && [ "$g" = "$r" ] && ok "LeNet iteration $it: CUDA graph loss = eager loss ($r)" ||
        bad "LeNet iteration $it: CUDA graph loss '$r' vs eager '$g'"
done
grep -q "CUDA graph: replayed" "$T/graph.log" && ok "the CUDA graph replayed" ||
    bad "no CUDA graph replay: $(grep -i graph "$T/graph.log")"

# ---- two towers: --gpus 0,1 = --gpus 0,0 = one device ---------------------------------
# $1: device field of tower b ("" on one device).
towers() {
    local b=$1
    cat << EOF
name: "towers"
layer { name: "data" type: "Data" top: "data" top: "label"
  transform_param { scale: 0.00390625 }
  data_param { source: "$D/train-images-idx3-ubyte.gz" label_source: "$D/train-labels-idx1-ubyte.gz"
               backend: IDX batch_size: 32 } }
layer { name: "conv_a" type: "Convolution" bottom: "data" top: "conv_a"
  convolution_param { num_output: 8 kernel_size: 5 stride: 2 weight_filler { type: "xavier" } } }
layer { name: "conv_b" type: "Convolution" bottom: "data" top: "conv_b" $b
  convolution_param { num_output: 8 kernel_size: 5 stride: 2 weight_filler { type: "xavier" } } }
layer { name: "relu_b" type: "ReLU" bottom: "conv_b" top: "conv_b" }
layer { name: "pool_b" type: "Pooling" bottom: "conv_b" top: "pool_b"
  pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "relu_a" type: "ReLU" bottom: "conv_a" top: "conv_a" }
layer { name: "pool_a" type: "Pooling" bottom: "conv_a" top: "pool_a"
  pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "cat" type: "Concat" bottom: "pool_a" bottom: "pool_b" top: "cat" }
layer { name: "fc_a" type: "InnerProduct" bottom: "cat" top: "fc_a"
  inner_product_param { num_output: 32 weight_filler { type: "xavier" } } }
layer { name: "fc_b" type: "InnerProduct" bottom: "cat" top: "fc_b" $b
  inner_product_param { num_output: 32 weight_filler { type: "xavier" } } }
layer { name: "fc" type: "Concat" bottom: "fc_a" bottom: "fc_b" top: "fc" }
layer { name: "relu" type: "ReLU" bottom: "fc" top: "fc" }
layer { name: "out" type: "InnerProduct" bottom: "fc" top: "out"
  inner_product_param { num_output: 10 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "out" bottom: "label" top: "loss" }
solver { base_lr: 0.01 momentum: 0.9 weight_decay: 0.0005 lr_policy: "fixed" display: 10
         max_iter: 30 random_seed: 3 snapshot_prefix: "$T/towers" }
EOF
}
towers "device: 1" > "$T/two.cfg"
towers "" > "$T/one.cfg"
$H/cnntrain "$T/two.cfg" --gpus 0,1 > "$T/t01.log" 2>&1
$H/cnntrain "$T/two.cfg" --gpus 0,0 > "$T/t00.log" 2>&1
$H/cnntrain "$T/one.cfg" --gpu 0 > "$T/t0.log" 2>&1
for it in 10 20 30; do
    a=$(loss_at $it "$T/t01.log") b=$(loss_at $it "$T/t00.log") c=$(loss_at $it "$T/t0.log")
    [ -n "$a" ] && [ "$a" = "$b" ] && near "$a" "$c" 1e-4 &&
        ok "towers iteration $it: --gpus 0,1 $a, --gpus 0,0 $b, one device $c" ||
        bad "towers iteration $it: --gpus 0,1 '$a', --gpus 0,0 '$b', one device '$c'"
done

# ---- cnnclassify: the GPU's output is the CPU's --------------------------------------
bin/cnnexport "$D/t10k-images-idx3-ubyte.gz" "$D/t10k-labels-idx1-ubyte.gz" "$T/img" --count 16 \
    > /dev/null
w="$T/cpu_iter_60.safetensors"
bin/cnnclassify --cpu --model models/lenet_deploy.cfg --weights "$w" --top 3 "$T/img" 2>&1 |
    tail -n +2 > "$T/classify_cpu.txt"
$H/cnnclassify --gpu 0 --model models/lenet_deploy.cfg --weights "$w" --top 3 "$T/img" 2>&1 |
    tail -n +2 > "$T/classify_gpu.txt"
[ -s "$T/classify_cpu.txt" ] && cmp -s "$T/classify_cpu.txt" "$T/classify_gpu.txt" &&
    ok "cnnclassify on the GPU prints the CPU's labels and scores ($(grep -c png "$T/classify_gpu.txt") images)" ||
    bad "cnnclassify GPU output differs from the CPU's: $(diff "$T/classify_cpu.txt" "$T/classify_gpu.txt" | head -4)"

# ---- cnntime: per-layer CUDA event times ---------------------------------------------
out=$($H/cnntime "$T/lenet.cfg" --gpu 0 --iterations 1 2>&1)
for l in conv1 pool1 conv2 ip1 ip2 loss; do
    echo "$out" | grep -Eq "^$l +[A-Za-z]+ +[0-9.]+" || bad "cnntime: no row for $l"
done
echo "$out" | grep -q "host queueing:" && ok "cnntime on the GPU: per-layer rows and host queueing" ||
    bad "cnntime on the GPU: no host queueing line: $out"

[ $fails -eq 0 ] && echo "all hostcuda tool checks passed" || echo "$fails failed"
[ $fails -eq 0 ]
