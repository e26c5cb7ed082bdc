#!/usr/bin/env bash
# run.sh — runs every test: the Check suites in build/tests (GPU suites skip
# themselves without a device), the GPU suites again on the CPU emulator of
# the CUDA op layer (build/tests/emu, linked with lib/libcnn_emu.a), on the
# CUDA sources run by the CPU (build/tests/hostcuda), then the shell
# end-to-end tests in tests/.
# Prints a summary line "N passed, N failed".
set -u
cd "$(dirname "$0")/.."
passed=0 failed=0 failures=()
run() {
    local name=$1; shift
    local start=$SECONDS
    if "$@" > "build/tests/$name.log" 2>&1; then
        passed=$((passed + 1)); echo "PASS $name ($((SECONDS - start))s)"
    else
        failed=$((failed + 1)); failures+=("$name"); echo "FAIL $name ($((SECONDS - start))s)"
        tail -n 30 "build/tests/$name.log"
    fi
    grep -h "SKIP" "build/tests/$name.log" | sed 's/^/    /'
}
mkdir -p build/tests
for t in build/tests/check_* build/tests/gpu/check_*; do
    [ -x "$t" ] || continue
    # CUDA cannot be used in a child forked after the parent touched it.
    case "$t" in */gpu/*) run "$(basename "$t")" env CK_FORK=no "$t" ;; *) run "$(basename "$t")" "$t" ;; esac
done
# The emulator's own checks, then the whole GPU path (device mirrors,
# layers' GPU code, solver updates) with the CUDA ops emulated on the CPU:
# the GPU suites never skip there. One OpenMP thread: the results do not
# depend on it, and on a busy machine it runs 4x faster.
[ -x build/tests/emu/check_emu ] && run check_emu build/tests/emu/check_emu
for t in build/tests/emu/check_gpu_*; do
    [ -x "$t" ] || continue
    run "$(basename "$t")_gpu_path_on_cpu_emulator" env CK_FORK=no OMP_NUM_THREADS=1 "$t"
done
# The GPU suites once more on our CUDA sources themselves, compiled by the
# host compiler and run on the CPU (tests/hostcuda): the kernels' indexing,
# reductions, launch geometry and cuBLAS/cuDNN arguments.
[ -x build/tests/hostcuda/check_hostcuda ] && run check_hostcuda build/tests/hostcuda/check_hostcuda
for t in build/tests/hostcuda/check_gpu_*; do
    [ -x "$t" ] || continue
    run "$(basename "$t")_cuda_sources_on_cpu" env CK_FORK=no OMP_NUM_THREADS=1 "$t"
done
# The end-to-end tests check CPU figures: hide any GPU from them (the tools
# would default to it); tests/gpu/run.sh covers the tools on a GPU.
for t in tests/*_test.sh; do
    [ -f "$t" ] || continue
    run "$(basename "$t" .sh)" env CUDA_VISIBLE_DEVICES= bash "$t"
done
echo "${failures[*]:+failed: ${failures[*]}}"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
