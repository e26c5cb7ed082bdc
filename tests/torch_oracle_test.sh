#!/usr/bin/env bash
# torch_oracle_test.sh — compares cnn with PyTorch on LeNet and cifar10-quick:
# every blob, the loss, every parameter gradient and the data gradient, via
# bin/cnnrun and tests/torch_oracle.py (see there). Uses Debian's
# /usr/bin/python3 with python3-torch; skips when torch cannot be imported.
set -u
cd "$(dirname "$0")/.."
PY=/usr/bin/python3
[ -x bin/cnnrun ] || { echo "FAIL: bin/cnnrun not built"; exit 1; }
if ! "$PY" -c "import torch" > /dev/null 2>&1; then
    echo "SKIP: PyTorch not available ($PY cannot import torch)"
    exit 0
fi
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
"$PY" tests/torch_oracle.py bin/cnnrun "$T"
