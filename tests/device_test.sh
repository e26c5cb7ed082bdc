#!/usr/bin/env bash
# device_test.sh — the tools' device flags (tools/common/tool_device.{h,c}) where
# no GPU is visible (CUDA_VISIBLE_DEVICES= hides any): the default is the CPU
# and the tools say why, --cpu is accepted, --gpu/--gpus name the missing
# device and exit 1, malformed values and --gpu with --gpus exit 2, cnninfo
# --gpus shows physical devices without a GPU.
set -u
cd "$(dirname "$0")/.."
export CUDA_VISIBLE_DEVICES=
fails=0
ok() { echo "ok   $1"; }
bad() {
    echo "FAIL $1"
    fails=$((fails + 1))
}
for b in cnntrain cnntime cnntest cnnclassify cnninfo cnnrun cnnfeatures cnnvis cnnadv; do
    [ -x bin/$b ] || { echo "FAIL: bin/$b not built"; exit 1; }
done
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cat > "$T/tiny.cfg" << 'EOF'
name: "tiny"
layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 4 dim: 6 } } }
layer { name: "t" type: "Input" top: "t" input_param { shape { dim: 4 dim: 3 } } }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y"
        inner_product_param { num_output: 3 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "y" bottom: "t" top: "loss" }
solver { base_lr: 0.01 max_iter: 2 display: 1 random_seed: 3 }
EOF
why="(no CUDA device found|built without CUDA)"
cp docs/img/lenet_saliency.png "$T/x.png"

# ---- the default and --cpu ----------------------------------------------------------
out=$(bin/cnntime "$T/tiny.cfg" --iterations 1 2>&1)
echo "$out" | head -1 | grep -Eq "^cnntime: device CPU \\($why\\)" && ok "cnntime: default CPU, said why" ||
    bad "cnntime default: $out"
out=$(bin/cnntime "$T/tiny.cfg" --iterations 1 --json 2> /dev/null)
echo "$out" | grep -Eq "\"device\":\"CPU \\($why\\)\"" && echo "$out" | grep -q '"where":"cpu"' &&
    ok "cnntime --json: device and where" || bad "cnntime --json: $out"
out=$(bin/cnntime "$T/tiny.cfg" --iterations 1 --cpu 2>&1)
echo "$out" | head -1 | grep -q "^cnntime: device CPU (--cpu)" && ok "cnntime --cpu" ||
    bad "cnntime --cpu: $out"
out=$(bin/cnntrain "$T/tiny.cfg" --snapshot-prefix "$T/s" 2>&1)
rc=$?
[ $rc -eq 0 ] && echo "$out" | head -1 | grep -q "^cnntrain: device CPU; net 'tiny'" &&
    echo "$out" | sed -n 2p | grep -Eq "^cnntrain: on the CPU: $why" &&
    ok "cnntrain: default CPU, said why" || bad "cnntrain default: exit $rc: $out"
out=$(bin/cnntrain "$T/tiny.cfg" --cpu --snapshot-prefix "$T/s" 2>&1)
[ $? -eq 0 ] && ! echo "$out" | grep -q "on the CPU:" && ok "cnntrain --cpu: no reason line" ||
    bad "cnntrain --cpu: $out"

# ---- missing GPUs: exit 1 naming the flag ---------------------------------------------
missing="(CUDA device [0-9]+ does not exist \(0 found\): no CUDA device found|.*no CUDA support)"
for tool in "cnntrain $T/tiny.cfg" "cnntime $T/tiny.cfg" "cnntest $T/tiny.cfg --weights w" \
    "cnnrun $T/tiny.cfg --out $T/o.st" "cnnclassify --model $T/tiny.cfg --weights w $T/x.png" \
    "cnnfeatures --model $T/tiny.cfg --weights w --blob y $T/x.png"; do
    set -- $tool
    name=$1
    shift
    for flag in "--gpu 0" "--gpus 0,0"; do
        case "$name $flag" in cnnclassify\ --gpus* | cnnfeatures\ --gpus*) continue ;; esac
        out=$(bin/$name "$@" $flag 2>&1)
        rc=$?
        [ $rc -eq 1 ] && echo "$out" | grep -Eq "^$name: $flag: $missing" &&
            ok "$name $flag: exit 1, named" || bad "$name $flag: exit $rc: $out"
    done
done

# ---- usage errors exit 2 -----------------------------------------------------------------
for args in "--gpu x" "--gpus 0,x" "--gpus ,0" "--gpu 0 --gpus 0" "--workspace-mb -1" "--gpu"; do
    bin/cnntime "$T/tiny.cfg" $args > /dev/null 2>&1
    rc=$?
    [ $rc -eq 2 ] && ok "cnntime $args: exit 2" || bad "cnntime $args: exit $rc"
done
bin/cnntrain "$T/tiny.cfg" --gpus 0 --devices 2 > /dev/null 2>&1
[ $? -eq 2 ] && ok "cnntrain --gpus with --devices: exit 2" || bad "cnntrain --gpus --devices"
for t in cnnvis cnnadv; do
    sub=saliency
    [ $t = cnnadv ] && sub=fgsm
    out=$(bin/$t $sub --model "$T/tiny.cfg" --weights w --gpu 0 "$T/x.png" 2>&1)
    rc=$?
    [ $rc -eq 1 ] && echo "$out" | grep -Eq "^$t: --gpu 0: $missing" && ok "$t --gpu 0: exit 1, named" ||
        bad "$t --gpu 0: exit $rc: $out"
done

# ---- cnninfo --gpus: physical devices, no GPU needed -----------------------------------
out=$(bin/cnninfo "$T/tiny.cfg" --phase TRAIN --gpus 3 2>&1)
[ $? -eq 0 ] && echo "$out" | grep -Eq "^ip +InnerProduct +0 cuda:3 " &&
    echo "$out" | grep -Eq "^x +Input +0 host " && ok "cnninfo --gpus 3: cuda:3 and host" ||
    bad "cnninfo --gpus: $out"

[ $fails -eq 0 ] && echo "all passed" || echo "$fails failed"
[ $fails -eq 0 ]
