#!/usr/bin/env bash
# run.sh — every GPU check in one go, for a machine with one NVIDIA H100 or
# H200 and no network: build, the GPU suites (build/tests/gpu/check_*:
# check_gpu_device, check_gpu_ops, check_gpu_net), then the GPU benchmarks
# (bench/gpu_*.sh: gpu_train, gpu_modelpar), then a short table, last.
# The whole run stays under 5 minutes (TOTAL_LIMIT, 290 s): each step gets
# its own limit, cut to what is left, and a step with no time left is
# skipped and shown so.
#
# Building: `make` for the library, the tools and (where Check exists) the
# suites, when nvcc and the C libraries (cJSON, libpng, libjpeg, OpenBLAS,
# zlib) are there; --no-make skips it. A GPU machine without Check headers
# (or without those libraries) cannot build the suites: build them where
# Check exists and ship them:
#
#   here:  tests/gpu/pack.sh          -> build/gpu-pack.tgz (suites, bin/, libs)
#   there: tests/gpu/run.sh           (unpacks build/gpu-pack.tgz when present)
#
# CUDA libraries come from the machine: the CUDA toolkit's lib64, or the
# nvidia-* wheels beside PyTorch when cuDNN or cuBLAS is not found there.
# SANITIZE=1 runs the suites under compute-sanitizer (memcheck; slower).
# Logs go to build/gpu-logs/. Exit status: 0 when every suite and benchmark
# passed (a suite's SKIP counts as a failure here: this script is for GPUs).
#
# --rehearse runs this script where there is no GPU, after `make`: the
# suites and tools built on hostcuda (our CUDA sources run by the CPU,
# tests/hostcuda), the benchmarks at toy sizes (their figures mean
# nothing), so that the script itself is tried before a GPU session.
set -u
cd "$(dirname "$0")/../.."
root=$(pwd)
logs=build/gpu-logs
TOTAL_LIMIT=${TOTAL_LIMIT:-290}
SUITE_LIMIT=${SUITE_LIMIT:-120}
BENCH_LIMIT=${BENCH_LIMIT:-100}
BENCH_RESERVE=${BENCH_RESERVE:-130} # seconds kept for the benchmarks while suites run
mkdir -p "$logs"

rows=()
status=0
row() { rows+=("$(printf '%-26s %-5s %s' "$1" "$2" "$3")"); }
# limit WANTED KEEP: seconds a step may take, leaving KEEP for later steps.
limit() {
    local left=$((TOTAL_LIMIT - SECONDS - $2))
    echo $(($1 < left ? $1 : left))
}

# Unpack the shipped build unless what is here was built after it.
if [ "${1:-}" != --rehearse ] && [ -f build/gpu-pack.tgz ] &&
    [ build/gpu-pack.tgz -nt build/tests/gpu/check_gpu_ops ]; then
    tar -xzf build/gpu-pack.tgz -C "$root" && echo "unpacked build/gpu-pack.tgz"
fi
# Build what this machine can: the library and tools, and the suites when
# Check is there too.
nvcc=${NVCC:-/usr/local/cuda/bin/nvcc}
rehearse=0
if [ "${1:-}" = "--rehearse" ]; then
    rehearse=1
    export CNNTIME=build/hostcuda/bin/cnntime CAFFENET_BATCH=2 GPU_TRAIN_ITERS=3 \
        MODELPAR_ITERS=2 MODELPAR_BATCH=2 OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
    TOTAL_LIMIT=${REHEARSE_LIMIT:-900} SUITE_LIMIT=300 BENCH_LIMIT=300 # the CPU is slow
    row build SKIP "--rehearse: hostcuda builds of make"
elif [ "${1:-}" = "--no-make" ]; then
    row build SKIP "--no-make"
elif [ -x "$nvcc" ] && pkg-config --exists libcjson libpng libjpeg openblas zlib 2>/dev/null; then
    start=$SECONDS
    targets="lib/libcnn.a $(ls tools/*.c | sed 's|tools/\(.*\)\.c|bin/\1|')"
    what="library and tools"
    if pkg-config --exists check 2>/dev/null; then
        targets="$targets $(ls tests/gpu/check_*.c | sed 's|tests/gpu/\(.*\)\.c|build/tests/gpu/\1|')"
        what="library, tools and GPU suites"
    fi
    if timeout "$(limit 150 0)" make -j"$(nproc)" $targets > "$logs/make.log" 2>&1; then
        row build PASS "$what, $((SECONDS - start))s"
    else
        echo "make failed (see $logs/make.log):"
        tail -n 20 "$logs/make.log"
        row build FAIL "make failed (gpu-logs/make.log), $((SECONDS - start))s"
        status=1
    fi
else
    row build SKIP "no nvcc or C libraries here: shipped binaries used"
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
[ $rehearse = 1 ] && suites=(build/tests/hostcuda/check_gpu_*)
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
    lim=$(limit "$SUITE_LIMIT" "$BENCH_RESERVE")
    if [ "$lim" -lt 5 ]; then
        echo "SKIP $name: out of time"
        row "$name" SKIP "out of time (TOTAL_LIMIT ${TOTAL_LIMIT}s)"
        status=1
        continue
    fi
    CK_FORK=no timeout "$lim" "${wrap[@]}" "$t" >"$log" 2>&1
    rc=$?
    secs=$((SECONDS - start))
    # A suite's own skip line (not a skipped check inside a run).
    if grep -Eq "^$name: SKIP" "$log"; then
        res=SKIP status=1
    elif [ $rc -eq 0 ]; then
        res=PASS
    else
        res=FAIL status=1
        [ $rc -eq 124 ] && echo "$name: timed out after ${lim}s"
    fi
    echo "$res $name (${secs}s)"
    [ "$res" = PASS ] || tail -n 40 "$log"
    row "$name" "$res" "$(suite_figures "$log"), ${secs}s"
done

# Benchmarks: each prints its figures; the last line goes in the table.
for b in bench/gpu_*.sh; do
    name=$(basename "$b" .sh) log="$logs/$name.log" start=$SECONDS
    lim=$(limit "$BENCH_LIMIT" 0)
    if [ "$lim" -lt 10 ]; then
        row "$name" SKIP "out of time (TOTAL_LIMIT ${TOTAL_LIMIT}s)"
        status=1
        continue
    fi
    timeout "$lim" bash "$b" >"$log" 2>&1
    rc=$?
    cat "$log"
    if [ $rc -eq 0 ]; then res=PASS; else res=FAIL status=1; fi
    [ $rc -eq 124 ] && echo "$name: timed out after ${lim}s"
    row "$name" "$res" "$(grep -v '^\s*$' "$log" | tail -1 | cut -c1-100), $((SECONDS - start))s"
done

echo
echo "== tests/gpu/run.sh summary ($(date -u '+%Y-%m-%d %H:%M UTC'), ${SECONDS}s) =="
printf '%-26s %-5s %s\n' suite result "key figures"
for r in "${rows[@]}"; do echo "$r"; done
exit $status
