#!/usr/bin/env bash
# setup-debian.sh — installs the Debian packages cnn needs that are missing.
#   tools/setup-debian.sh          build dependencies and the Fashion-MNIST data
#   tools/setup-debian.sh --test   also what the tests use (Check, PyTorch)
set -eu
pkgs="build-essential pkg-config libpng-dev libjpeg62-turbo-dev libopenblas-dev libcjson-dev
      zlib1g-dev dataset-fashion-mnist"
if [ "${1:-}" = "--test" ]; then
    pkgs="$pkgs check python3 python3-numpy python3-torch python3-torchvision"
fi
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "setup: installing$missing"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing
fi
