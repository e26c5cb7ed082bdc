#!/usr/bin/env bash
# run.sh — the whole transfer-learning experiment of docs/finetune.md: makes
# the Fashion-MNIST subsets, pretrains LeNet on classes 0-4, then trains the
# classes-5-9 net (100 images per class) from scratch, fine-tuned, and
# fine-tuned with frozen conv layers, once per seed, and prints the final
# test accuracies (all 5000 test images of classes 5-9).
#   models/transfer/run.sh [WORKDIR]        (default: transfer-run)
#   SEEDS="1 2 3" models/transfer/run.sh    seeds of the second step (default 1 2 3)
set -eu
R=$(cd "$(dirname "$0")/../.." && pwd)
W=${1:-transfer-run}
SEEDS=${SEEDS:-1 2 3}
mkdir -p "$W"
cd "$W"
python3 "$R/models/transfer/make_subsets.py"
echo "pretraining on classes 0-4 ..."
"$R/bin/cnntrain" "$R/models/transfer/lenet_old.cfg" --quiet --log old.jsonl
OLD=snapshots/transfer_old_iter_2000.safetensors
for s in $SEEDS; do
    for v in new new_frozen; do
        sed "s/random_seed: 1\$/random_seed: $s/" "$R/models/transfer/lenet_$v.cfg" > "${v}_$s.cfg"
    done
    echo "seed $s: scratch, fine-tuned, fine-tuned with frozen conv1/conv2 ..."
    "$R/bin/cnntrain" "new_$s.cfg" --quiet --log "scratch_$s.jsonl" \
        --snapshot-prefix "snapshots/scratch_$s"
    "$R/bin/cnntrain" "new_$s.cfg" --quiet --log "finetune_$s.jsonl" --weights "$OLD" \
        --snapshot-prefix "snapshots/finetune_$s" > /dev/null
    "$R/bin/cnntrain" "new_frozen_$s.cfg" --quiet --log "frozen_$s.jsonl" --weights "$OLD" \
        --snapshot-prefix "snapshots/frozen_$s" > /dev/null
done
python3 - $SEEDS << 'PY'
import json, sys
def last_acc(path):
    acc = [json.loads(l)["test_accuracy"] for l in open(path) if "test_accuracy" in l]
    return acc[-1]
seeds = sys.argv[1:]
print("pretrained net, classes 0-4 test accuracy: %.4f" % last_acc("old.jsonl"))
print("%-34s %s  %s" % ("classes 5-9, 500 training images",
                         "  ".join("seed %-3s" % s for s in seeds), "mean"))
for name, label in (("scratch", "from scratch"), ("finetune", "fine-tuned"),
                    ("frozen", "fine-tuned, conv1+conv2 frozen")):
    accs = [last_acc("%s_%s.jsonl" % (name, s)) for s in seeds]
    print("%-34s %s  %.4f" % (label, "  ".join("%.4f  " % a for a in accs), sum(accs) / len(accs)))
PY
