#!/usr/bin/env bash
# pack.sh — run HERE (the build machine), before tests/gpu/run.sh on the GPU
# machine. The GPU machine has nvcc, cuDNN and PyTorch but no Check headers
# and maybe not our C libraries (OpenBLAS, libpng, libjpeg, cJSON), so the
# test binaries and tools are built here and shipped with the shared
# libraries they need that a CUDA image may lack, in one archive:
#
#   tests/gpu/pack.sh            # make, then build/gpu-pack.tgz
#   (carry build/gpu-pack.tgz to the GPU machine; run tests/gpu/run.sh there)
#
# CUDA's own libraries (cudart, cuBLAS, cuDNN) and glibc are not shipped:
# run.sh finds the GPU machine's (CUDA toolkit or PyTorch's nvidia wheels).
# The archive also carries the GPU benchmarks and the model files they read,
# so that a checkout without them still runs everything.
set -euo pipefail
cd "$(dirname "$0")/../.."
nice -n 19 make -j2 >/dev/null
stage=build/gpu-pack
rm -rf "$stage" build/gpu-pack.tgz
mkdir -p "$stage/build/tests/gpu" "$stage/bin" "$stage/build/gpu-libs"
cp build/tests/gpu/check_* "$stage/build/tests/gpu/"
rm -f "$stage"/build/tests/gpu/*.d
cp bin/* "$stage/bin/" 2>/dev/null || true
mkdir -p "$stage/bench" "$stage/models"
cp bench/gpu_* bench/torch_gpu.py bench/torch_lenet.py "$stage/bench/"
cp models/caffenet.cfg models/alexnet_2gpu.cfg "$stage/models/"
# Shared libraries outside glibc and CUDA that the binaries load.
for f in "$stage"/build/tests/gpu/* "$stage"/bin/*; do
    ldd "$f" 2>/dev/null | awk '/=> \//{print $3}'
done | sort -u | while read -r lib; do
    case "$(basename "$lib")" in
        libc.so*|libm.so*|libdl.so*|librt.so*|libpthread.so*|ld-linux*|libstdc++.so*|libgcc_s.so*) continue ;;
        libcuda.so*|libcudart.so*|libcublas*|libcudnn*|libnccl*) continue ;;
    esac
    cp -L "$lib" "$stage/build/gpu-libs/"
done
tar -C "$stage" -czf build/gpu-pack.tgz .
rm -rf "$stage"
echo "build/gpu-pack.tgz: $(du -h build/gpu-pack.tgz | cut -f1) (carry it; then tests/gpu/run.sh)"
