#!/usr/bin/env bash
# finetune_test.sh — fine-tuning end to end with the transfer-learning example
# (models/transfer, docs/finetune.md), shortened: Fashion-MNIST subsets made by
# make_subsets.py, LeNet pretrained briefly on classes 0-4, then
#   * cnntrain --weights prints the table: conv1, conv2, ip1 loaded, ip2_new
#     re-initialised, the old ip2 unused; training runs and learns;
#   * --strict-weights refuses the same load (exit 1, the mismatches named);
#   * the frozen variant (conv1, conv2 lr_mult 0) ends with conv1 and conv2
#     bit-identical to the pretrained weights while ip1 and ip2_new changed;
#   * several files: a later file overrides an earlier one.
# Needs Debian's dataset-fashion-mnist (skips without it) and python3.
set -u
cd "$(dirname "$0")/.."
R=$(pwd)
SRC=/usr/share/datasets/fashion-mnist
[ -x bin/cnntrain ] || { echo "FAIL: bin/cnntrain not built"; exit 1; }
[ -f "$SRC/train-images-idx3-ubyte.gz" ] || { echo "SKIP: $SRC not installed"; exit 0; }
command -v python3 > /dev/null || { echo "SKIP: python3 not found"; exit 0; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
has() { grep -qE -- "$2" "$1" && ok "$3" || bad "$3: no /$2/ in: $(cat "$1")"; }

cd "$T"
python3 "$R/models/transfer/make_subsets.py" --src "$SRC" > subsets.log \
    || { bad "make_subsets.py: $(cat subsets.log)"; exit 1; }
grep -q "new-train: 500 images" subsets.log && grep -q "new-test: 5000 images" subsets.log \
    && grep -q "old-train: 30000 images" subsets.log && ok "subsets: $(tr '\n' ' ' < subsets.log)" \
    || bad "subsets: $(cat subsets.log)"

# The example's model files, testing on 500 images instead of 5000 to keep it short.
M="$T/models"
mkdir -p "$M"
for f in lenet_old lenet_new lenet_new_frozen; do
    sed 's/test_iter: 50$/test_iter: 5/' "$R/models/transfer/$f.cfg" > "$M/$f.cfg"
done
"$R/bin/cnntrain" "$M/lenet_old.cfg" --iterations 100 --quiet > old.log 2>&1 \
    || { bad "pretraining: $(cat old.log)"; exit 1; }
OLD=snapshots/transfer_old_iter_100.safetensors
[ -f "$OLD" ] && ok "pretrained: $(tail -n 1 old.log)" || { bad "no $OLD"; exit 1; }

# Fine-tuning: the table, then training.
"$R/bin/cnntrain" "$M/lenet_new.cfg" --weights "$OLD" --iterations 60 > ft.log 2>&1 \
    || bad "fine-tuning failed: $(cat ft.log)"
has ft.log "^weights: $OLD \(safetensors, 8 tensors\)" "table names the file"
for l in conv1 conv2 ip1; do
    has ft.log "^  $l +(Convolution|InnerProduct) +2 blobs, loaded from transfer_old_iter_100" \
        "$l loaded"
done
has ft.log "^  ip2_new +InnerProduct +2 blobs, re-initialised \(not in the weights\)" \
    "ip2_new re-initialised"
has ft.log "^  ip2 +2 tensors unused in transfer_old_iter_100.safetensors: no layer 'ip2'" \
    "old ip2 listed as unused"
has ft.log "6 parameter blobs loaded, 2 re-initialised, 2 tensors unused" "table totals"
"$R/bin/cnntest" "$M/lenet_new.cfg" --weights snapshots/transfer_new_iter_60.safetensors \
    --iterations 10 > ft_test.log 2>&1 || bad "cnntest: $(cat ft_test.log)"
has ft_test.log "accuracy.* 0\.[6-9]" "fine-tuned net learns (accuracy >= 0.6 on 1000 test images)"

# Strict: the same load is refused.
"$R/bin/cnntrain" "$M/lenet_new.cfg" --weights "$OLD" --strict-weights --iterations 5 \
    > strict.log 2>&1
rc=$?
[ $rc -eq 1 ] && ok "--strict-weights exits 1" || bad "--strict-weights exit $rc"
has strict.log "cnntrain: strict weights: 4 mismatches; ip2_new.0 is in no weights file" \
    "--strict-weights names the mismatches"
ls snapshots/transfer_new_* > /dev/null 2>&1 && \
    grep -q "iter_5\." <(ls snapshots) && bad "strict failure trained anyway" || true
"$R/bin/cnntrain" "$M/lenet_old.cfg" --weights "$OLD" --strict-weights --iterations 1 \
    --quiet > strict_ok.log 2>&1 && ok "--strict-weights accepts the matching net" \
    || bad "--strict-weights on the same net: $(cat strict_ok.log)"

# Frozen conv layers stay bit-identical; the rest learns.
"$R/bin/cnntrain" "$M/lenet_new_frozen.cfg" --weights "$OLD" --iterations 30 > fr.log 2>&1 \
    || bad "frozen fine-tuning failed: $(cat fr.log)"
has fr.log "^  conv1 +Convolution +2 blobs, loaded from [^;]*; frozen \(lr_mult 0\)" \
    "table marks conv1 frozen"
python3 - "$OLD" snapshots/transfer_frozen_iter_30.safetensors << 'EOF' \
    && ok "frozen conv1/conv2 bit-identical, ip1 changed" || bad "frozen weights"
import json, struct, sys
def load(p):
    b = open(p, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    return {k: b[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]]
            for k, v in h.items() if k != "__metadata__"}
a, b = load(sys.argv[1]), load(sys.argv[2])
for k in ("conv1.0", "conv1.1", "conv2.0", "conv2.1"):
    assert a[k] == b[k], k + " changed"
assert a["ip1.0"] != b["ip1.0"], "ip1 did not learn"
assert "ip2_new.0" in b and "ip2.0" not in b
EOF

# Several files: b.safetensors (ip1 only, from the frozen run) overrides the
# pretrained ip1.
python3 - snapshots/transfer_frozen_iter_30.safetensors b.safetensors << 'EOF'
import json, struct, sys
raw = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
h = json.loads(raw[8:8 + n])
keep = {"ip1.0": h["ip1.0"]}
s, e = h["ip1.0"]["data_offsets"]
keep["ip1.0"] = dict(h["ip1.0"], data_offsets=[0, e - s])
text = json.dumps(keep).encode()
text += b" " * (-len(text) % 8)
open(sys.argv[2], "wb").write(struct.pack("<Q", len(text)) + text + raw[8 + n + s:8 + n + e])
EOF
"$R/bin/cnntrain" "$M/lenet_new.cfg" --weights "$OLD,b.safetensors" --iterations 1 > two.log 2>&1 \
    || bad "two weights files: $(cat two.log)"
has two.log "^  ip1 +InnerProduct +2 blobs, 0: loaded from b.safetensors; 1: loaded from tr" \
    "a later file overrides an earlier one"

cd "$R"
[ "$fails" -eq 0 ] && echo "all passed" || echo "$fails failed"
[ "$fails" -eq 0 ]
