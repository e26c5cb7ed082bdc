#!/usr/bin/env bash
# train_e2e_test.sh — end-to-end tests of bin/cnntrain: the JSON-lines log,
# snapshots, SIGINT/SIGTERM (snapshot, exit 130/143) and resuming from that
# snapshot, error exits; then a LeNet-like net trained on Fashion-MNIST with
# the Data layer for a few hundred CPU iterations must reach a test accuracy
# bar (skipped when the data set is not installed).
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
expect_fail 1 "folder .* does not exist" "$T/tiny.cfg" --snapshot-prefix "$T/no/such/dir/p"
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

echo "cnntrain CLI: $fails failure(s)"
[ $fails -eq 0 ]
