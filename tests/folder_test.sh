#!/usr/bin/env bash
# folder_test.sh — an image-folder data set end to end: Fashion-MNIST PNGs
# exported into one sub-folder per class, a small net trained on it through
# ImageData's folder source with a corrupt PNG and a junk JPEG among the
# training images (skipped with a warning naming them, counted, the run goes
# on), the class-name file it writes used by cnnclassify, and
# `max_bad_images: 0` making the first unreadable image fatal. Skips without
# the data set.
set -u
cd "$(dirname "$0")/.."
for b in cnntrain cnnexport cnnclassify; do
    [ -x "bin/$b" ] || { echo "FAIL: bin/$b not built"; exit 1; }
done
data=/usr/share/datasets/fashion-mnist
[ -f "$data/train-images-idx3-ubyte.gz" ] || { echo "SKIP: $data not found"; exit 0; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }

export_set() { # IMAGES LABELS OUT COUNT
    bin/cnnexport "$data/$1" "$data/$2" "$T/$3" --count "$4" \
        --labels-file models/fashion_mnist_labels.txt > "$T/$3.out" 2>&1 ||
        { echo "FAIL cnnexport $3: $(cat "$T/$3.out")"; exit 1; }
    rm "$T/$3/list.txt"
}
export_set train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz train 3000
export_set t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz test 500
# One truncated PNG and one file that only claims to be a JPEG.
bad_png=$(ls "$T/train/Coat/"*.png | head -1)
head -c 60 "$bad_png" > "$T/cut" && mv "$T/cut" "$bad_png"
echo "not a jpeg" > "$T/train/Bag/junk.jpg"

body() { # the layers between the data and the loss
    cat << EOF
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 16 kernel_size: 5 weight_filler { type: "xavier" } } }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
  pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "relu1" type: "ReLU" bottom: "pool1" top: "pool1" }
layer { name: "fc1" type: "InnerProduct" bottom: "pool1" top: "fc1"
  inner_product_param { num_output: 64 weight_filler { type: "xavier" } } }
layer { name: "relu2" type: "ReLU" bottom: "fc1" top: "fc1" }
layer { name: "fc2" type: "InnerProduct" bottom: "fc1" top: "fc2"
  inner_product_param { num_output: 10 weight_filler { type: "xavier" } } }
EOF
}
model() { # MAX_BAD_IMAGES
    cat << EOF
name: "folders"
layer { name: "data" type: "ImageData" top: "data" top: "label" include { phase: TRAIN }
  transform_param { scale: 0.00390625 mirror: true }
  image_data_param { source: "$T/train" labels_file: "$T/classes.txt" batch_size: 32
    is_color: false shuffle: true max_bad_images: $1 } }
layer { name: "data" type: "ImageData" top: "data" top: "label" include { phase: TEST }
  transform_param { scale: 0.00390625 }
  image_data_param { source: "$T/test" batch_size: 100 is_color: false } }
$(body)
layer { name: "accuracy" type: "Accuracy" bottom: "fc2" bottom: "label" top: "accuracy"
  include { phase: TEST } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc2" bottom: "label" top: "loss" }
solver { base_lr: 0.02 momentum: 0.9 weight_decay: 0.0005 lr_policy: "fixed"
  max_iter: 300 test_iter: 5 test_interval: 300 test_initialization: false
  display: 100 random_seed: 5 snapshot_prefix: "$T/folders" }
EOF
}
deploy() {
    cat << EOF
name: "folders"
layer { name: "data" type: "Input" top: "data"
  transform_param { scale: 0.00390625 }
  input_param { shape { dim: 1 dim: 1 dim: 28 dim: 28 } } }
$(body)
layer { name: "prob" type: "Softmax" bottom: "fc2" top: "prob" }
EOF
}

# ---- training with two unreadable images among 3002 ------------------------------
model -1 > "$T/folders.cfg"
out=$(bin/cnntrain "$T/folders.cfg" 2>&1)
rc=$?
[ $rc -eq 0 ] && ok "cnntrain on class folders: exit 0" || bad "cnntrain: exit $rc: $(echo "$out" | tail -5)"
echo "$out" | grep -q "Coat/$(basename "$bad_png")" && ok "warning names the truncated PNG" ||
    bad "no warning naming $bad_png: $(echo "$out" | grep -i -m3 "warn\|skip")"
echo "$out" | grep -q "Bag/junk.jpg" && ok "warning names the junk JPEG" ||
    bad "no warning naming junk.jpg"
echo "$out" | grep -q "skipping an unreadable image (2 so far)" && ok "both counted" ||
    bad "unreadable images not counted to 2: $(echo "$out" | grep -m3 "unreadable")"
acc=$(echo "$out" | sed -n 's/^test at iteration 300: .*accuracy \([0-9.]*\) .*/\1/p')
if [ -n "$acc" ] && awk -v a="$acc" 'BEGIN { exit !(a >= 0.70) }'; then
    ok "test accuracy $acc >= 0.70 after 300 iterations"
else
    bad "test accuracy '$acc' (want >= 0.70): $(echo "$out" | tail -3)"
fi
want=$(printf '%s\n' Ankle_boot Bag Coat Dress Pullover Sandal Shirt Sneaker T-shirt_top Trouser)
[ "$(cat "$T/classes.txt" 2> /dev/null)" = "$want" ] && ok "labels_file: the 10 folders, sorted" ||
    bad "labels_file: $(cat "$T/classes.txt" 2>&1)"

# ---- cnnclassify with the written class names ---------------------------------------
deploy > "$T/deploy.cfg"
img=$(ls "$T/test/Trouser/"*.png | head -1)
out=$(bin/cnnclassify --model "$T/deploy.cfg" --weights "$T/folders_iter_300.safetensors" \
    --labels "$T/classes.txt" --top 1 "$img" 2>&1)
rc=$?
[ $rc -eq 0 ] && echo "$out" | grep -Eq "^ +[01]\.[0-9]+ +[0-9] +(Ankle_boot|Bag|Coat|Dress|Pullover|Sandal|Shirt|Sneaker|T-shirt_top|Trouser)$" &&
    ok "cnnclassify prints a folder class name" || bad "cnnclassify: exit $rc: $out"

# ---- max_bad_images: 0 makes the first one fatal ------------------------------------
model 0 > "$T/strict.cfg"
out=$(bin/cnntrain "$T/strict.cfg" --iterations 200 2>&1)
rc=$?
[ $rc -ne 0 ] && echo "$out" | grep -Eq "(Coat/$(basename "$bad_png")|Bag/junk.jpg)" &&
    ok "max_bad_images 0: exit $rc naming the image" ||
    bad "max_bad_images 0: exit $rc: $(echo "$out" | tail -3)"
[ "$(echo "$out" | grep -c "Segmentation\|Aborted\|core dumped")" -eq 0 ] && ok "no crash" ||
    bad "crashed: $out"

[ "$fails" -eq 0 ] && echo "folder_test: all passed" || echo "folder_test: $fails failed"
[ "$fails" -eq 0 ]
