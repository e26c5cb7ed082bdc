#!/usr/bin/env bash
# run.sh — every GPU check in one go, for a machine with one NVIDIA H100 or
# H200 and no network: the GPU suites (build/tests/gpu/check_*), then the
# GPU benchmarks (bench/gpu_*.sh, when there are any), then a short table.
# Fits in 5 minutes (each suite and benchmark has its own time limit).
#
# Building: the GPU machine has nvcc 13, cuDNN 9 and PyTorch but no Check
# headers (and perhaps not OpenBLAS, libpng, libjpeg or cJSON), so the Check
# suites cannot be built there. Build them where Check exists and ship them:
#
#   here:  tests/gpu/pack.sh          -> build/gpu-pack.tgz (suites, bin/, libs)
#   there: tests/gpu/run.sh           (unpacks build/gpu-pack.tgz when present)
#
# On a machine that has everything, `make -j && tests/gpu/run.sh` works too
# (run.sh itself never builds the Check suites; with --make it runs `make
# lib/libcnn.a` and the tools, for benchmarks, when their libraries exist).
# CUDA libraries come from the machine: the CUDA toolkit's lib64, or the
# nvidia-* wheels beside PyTorch when cuDNN or cuBLAS is not found there.
# SANITIZE=1 runs the suites under compute-sanitizer (memcheck; slower).
# Logs go to build/gpu-logs/. Exit status: 0 when every suite and benchmark
# passed (a suite's SKIP counts as a failure here: this script is for GPUs).
set -u
cd "$(dirname "$0")/../.."
root=$(pwd)
logs=build/gpu-logs
SUITE_LIMIT=${SUITE_LIMIT:-150}
BENCH_LIMIT=${BENCH_LIMIT:-240}
mkdir -p "$logs"

# Unpack the shipped build unless what is here was built after it.
if [ -f build/gpu-pack.tgz ] && [ build/gpu-pack.tgz -nt build/tests/gpu/check_gpu_ops ]; then
    tar -xzf build/gpu-pack.tgz -C "$root" && echo "unpacked build/gpu-pack.tgz"
fi
if [ "${1:-}" = "--make" ] && pkg-config --exists libcjson libpng libjpeg openblas zlib 2>/dev/null; then
    make -j"$(nproc)" lib/libcnn.a $(ls tools/*.c | sed 's|tools/\(.*\)\.c|bin/\1|') >"$logs/make.log" 2>&1 ||
        echo "make failed (see $logs/make.log)"
fi

# Library search path: shipped libraries, then CUDA's, then PyTorch's wheels.
libpath="$root/build/gpu-libs"
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
    [ -d "$d" ] && libpath="$libpath:$d"
done
if command -v python3 >/dev/null; then
    wheels=$(python3 - <<'PY' 2>/dev/null
import glob, os
try:
    import nvidia
    for base in nvidia.__path__:
        for d in sorted(glob.glob(os.path.join(base, "*", "lib"))):
            print(d)
except Exception:
    pass
PY
)
    for d in $wheels; do libpath="$libpath:$d"; done
fi
export LD_LIBRARY_PATH="$libpath${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

rows=()
status=0
row() { rows+=("$(printf '%-26s %-5s %s' "$1" "$2" "$3")"); }

command -v nvidia-smi >/dev/null &&
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null |
    sed 's/^/GPU: /'

# Key figures of a suite's log: Check's summary and the worst relative error.
suite_figures() {
    local log=$1 sum worst
    sum=$(grep -Eo '[0-9]+%: Checks: [0-9]+, Failures: [0-9]+, Errors: [0-9]+' "$log" | tail -1)
    worst=$(grep -Eo 'rel err [0-9.e+-]+' "$log" | awk '{print $3}' | sort -g | tail -1)
    echo "${sum:-no summary}${worst:+, worst rel err $worst}"
}

shopt -s nullglob
suites=(build/tests/gpu/check_*)
[ ${#suites[@]} -eq 0 ] && {
    echo "no GPU suites in build/tests/gpu: run tests/gpu/pack.sh on the build machine and carry build/gpu-pack.tgz"
    status=1
}
for t in "${suites[@]}"; do
    [ -x "$t" ] || continue
    name=$(basename "$t") log="$logs/$name.log" start=$SECONDS
    missing=$(ldd "$t" 2>/dev/null | awk '/not found/{print $1}' | tr '\n' ' ')
    if [ -n "$missing" ]; then
        echo "FAIL $name: libraries not found: $missing"
        row "$name" FAIL "missing libraries: $missing"
        status=1
        continue
    fi
    wrap=()
    [ "${SANITIZE:-0}" = 1 ] && command -v compute-sanitizer >/dev/null &&
        wrap=(compute-sanitizer --error-exitcode 1)
    CK_FORK=no timeout "$SUITE_LIMIT" "${wrap[@]}" "$t" >"$log" 2>&1
    rc=$?
    secs=$((SECONDS - start))
    if grep -q SKIP "$log"; then
        res=SKIP status=1
    elif [ $rc -eq 0 ]; then
        res=PASS
    else
        res=FAIL status=1
        [ $rc -eq 124 ] && echo "$name: timed out after ${SUITE_LIMIT}s"
    fi
    echo "$res $name (${secs}s)"
    [ "$res" = PASS ] || tail -n 40 "$log"
    row "$name" "$res" "$(suite_figures "$log"), ${secs}s"
done

# Benchmarks: each prints its figures; the last line goes in the table.
for b in bench/gpu_*.sh; do
    name=$(basename "$b" .sh) log="$logs/$name.log" start=$SECONDS
    timeout "$BENCH_LIMIT" bash "$b" >"$log" 2>&1
    rc=$?
    cat "$log"
    if [ $rc -eq 0 ]; then res=PASS; else res=FAIL status=1; fi
    row "$name" "$res" "$(grep -v '^\s*$' "$log" | tail -1 | cut -c1-90), $((SECONDS - start))s"
done

echo
echo "== tests/gpu/run.sh summary ($(date -u '+%Y-%m-%d %H:%M UTC')) =="
printf '%-26s %-5s %s\n' suite result "key figures"
for r in "${rows[@]}"; do echo "$r"; done
exit $status
