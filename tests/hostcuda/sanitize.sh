#!/usr/bin/env bash
# sanitize.sh — the GPU suites on hostcuda under AddressSanitizer (with
# LeakSanitizer) and UndefinedBehaviorSanitizer: the library's C code, our
# CUDA sources and the hostcuda runtime all instrumented, in
# build/sanitize/. Catches what the runtime's own checks cannot: host-side
# overflows and leaks on the GPU path (feeds, graphs, contexts), undefined
# integer arithmetic in kernels. Not part of `make test` (a few minutes on
# two cores); run it after changing kernels/cuda, core/gpu.c or core/net.c.
#
#   tests/hostcuda/sanitize.sh        (exit status 0: both suites clean)
set -u
cd "$(dirname "$0")/../.."
B=build/sanitize
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
PKG="$(pkg-config --cflags libcjson libpng libjpeg openblas zlib)"
LIBS="$(pkg-config --libs check libcjson libpng libjpeg openblas zlib) -lz -lm -lpthread -lstdc++"
mkdir -p "$B"

# Compiles $2 into $B/<path>.o with compiler $1 and the rest as flags.
compile() {
    local cc=$1 src=$2 obj
    shift 2
    obj="$B/$(echo "$src" | tr / _).o"
    [ "$obj" -nt "$src" ] || "$cc" "$@" -c "$src" -o "$obj" || return 1
}
export -f compile
export B SAN PKG
jobs=$(nproc)
ls core/*.c kernels/cpu/*.c layers/*.c solvers/*.c |
    xargs -P "$jobs" -I{} bash -c \
        'compile gcc {} -std=gnu11 -O1 -g -fopenmp $SAN -DCNN_WITH_CUDA -I. -Icore $PKG' ||
    exit 1
ls kernels/cuda/*.cu tests/hostcuda/cublas.cpp tests/hostcuda/cudnn.cpp tests/hostcuda/runtime.cpp |
    xargs -P "$jobs" -I{} bash -c \
        'compile g++ {} -x c++ -std=c++17 -O1 -g -ffp-contract=off -fopenmp $SAN -DCNN_HOSTCUDA \
         -Itests/hostcuda/include -I. -Icore $PKG' || exit 1

status=0
for t in check_gpu_ops check_gpu_net; do
    gcc -std=gnu11 -O1 -g -fopenmp $SAN -I. -Icore $(pkg-config --cflags check) \
        "tests/gpu/$t.c" "$B"/*.o -o "$B/$t" $LIBS || exit 1
    start=$SECONDS
    if CK_FORK=no OMP_NUM_THREADS=1 "$B/$t" > "$B/$t.log" 2>&1; then
        echo "PASS $t under ASan+UBSan ($((SECONDS - start))s)"
    else
        echo "FAIL $t under ASan+UBSan (log: $B/$t.log)"
        grep -E "ERROR|runtime error|SUMMARY|%:" "$B/$t.log" | head -20
        status=1
    fi
done
exit $status
