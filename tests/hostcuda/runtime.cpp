/* runtime.cpp (tests/hostcuda) — the CUDA runtime of include/cuda_runtime.h
 * on the CPU, so that the .cu files of kernels/cuda, compiled as C++ by the host
 * compiler, runs in `make test` (lib/libcnn_hostcuda.a, the GPU suites as
 * build/tests/hostcuda/check_gpu_*).
 *
 * Streams run their work in issue order, as late as they can: only when
 * the host waits for it (a sync, an event sync, a copy to pageable memory,
 * cudaFree), and another stream's work only as far as an event wait
 * demands, so a missing event wait shows as a wrong result
 * (CNN_HOSTCUDA_EAGER=1: every op runs when issued). A kernel runs block by
 * block; the threads of a block are fibers that switch at __syncthreads
 * (a kernel whose thread 0 reaches no barrier runs its threads as plain
 * calls). Blocks, and threads between barriers, run forward, reversed or
 * shuffled, changing at each launch. What real hardware would reject or
 * leave undefined fails here loudly, naming the kernel or call:
 *   - device memory is filled with NaN bytes when allocated, and guarded:
 *     a write past either end of an allocation aborts after the op, a read
 *     past its end faults at once (the op is named);
 *   - every pointer argument of a kernel, and every copy's range, must lie
 *     in live device memory of the stream's device (or of a peer whose
 *     access was enabled); host pointers abort;
 *   - a kernel or library call on a stream of another device than the
 *     current one fails, as it does on a GPU;
 *   - threads of one block that disagree on reaching __syncthreads abort;
 *   - bad launch geometry is reported by cudaGetLastError;
 *   - stream capture records work instead of running it (by value, as a
 *     graph does) and checks the CUDA rules: no synchronisation of a
 *     capturing stream or query of a captured event, no wait on an event
 *     recorded outside the capture, no copy from or to pageable host
 *     memory, streams that joined the capture through an event joined back
 *     before it ends (and cuDNN's Find or a cuBLAS handle without a
 *     workspace of its own refuse to run in a capture).
 * Environment: CNN_HOSTCUDA_DEVICES (number of devices, 2 by default),
 * CNN_HOSTCUDA_PROFILE=1 (time per kernel and call, printed at exit). */
#include <signal.h>
#include <sys/mman.h>

#include <algorithm>
#include <cstdarg>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "cuda_runtime.h"
#include "tests/stub_counts.h"

cnn_hc_where cnn_hc_at;

namespace {

std::recursive_mutex big; /* one lock for the whole runtime */
#define LOCKED std::lock_guard<std::recursive_mutex> lock_(big)

[[noreturn]] __attribute__((format(printf, 1, 2))) void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fflush(stdout);
    fprintf(stderr, "hostcuda: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    abort();
}

/* ---- devices --------------------------------------------------------------- */

cnn_stub_counts counts; /* what the host did (tests/stub_counts.h) */

thread_local int current_device = 0;
thread_local cudaError_t last_error = cudaSuccess;
std::set<std::pair<int, int>> peers; /* (device, peer it may read) */

int device_count()
{
    const char *v = getenv("CNN_HOSTCUDA_DEVICES");
    int n = v && *v ? atoi(v) : 2;
    return n < 0 ? 0 : n;
}

bool valid_device(int d) { return d >= 0 && d < device_count(); }

/* ---- memory ---------------------------------------------------------------- */

/* Device allocations are 256-byte aligned, as CUDA's, and end against an
 * inaccessible page, so that a read past the end faults; the bytes before
 * the start (GUARD) and the alignment slack after the end are guard bytes,
 * checked after every op. */
constexpr size_t ALIGN = 256, GUARD = 256, PAGE = 4096;
constexpr unsigned char GUARD_BYTE = 0xA5, POISON_BYTE = 0xFF; /* 0xFF..: NaN */

size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }

struct allocation {
    size_t bytes;
    int device; /* -1: pinned host memory */
    char *map = nullptr; /* device memory: the mapping, map_bytes long */
    size_t map_bytes = 0;
};
std::map<const char *, allocation> allocations; /* by user address */

/* The allocation holding [p, p + bytes), or null. */
const std::pair<const char *const, allocation> *find_allocation(const void *p, size_t bytes)
{
    const char *c = (const char *)p;
    auto it = allocations.upper_bound(c);
    if (it == allocations.begin()) return nullptr;
    --it;
    if (c + bytes > it->first + it->second.bytes) return nullptr;
    return &*it;
}

int device_of(const void *p, size_t bytes)
{
    auto *a = find_allocation(p, bytes);
    return a ? a->second.device : -1;
}

bool guards_intact(const char *base, size_t bytes)
{
    for (size_t i = 0; i < GUARD; i++)
        if ((unsigned char)base[-1 - (long)i] != GUARD_BYTE) return false;
    for (size_t i = bytes; i < round_up(bytes, ALIGN); i++)
        if ((unsigned char)base[i] != GUARD_BYTE) return false;
    return true;
}

void check_guards(const char *what)
{
    for (auto &a : allocations)
        if (a.second.device >= 0 && !guards_intact(a.first, a.second.bytes))
            die("%s wrote outside a %zu-byte allocation of device %d", what, a.second.bytes,
                a.second.device);
}

/* ---- streams, events, capture ----------------------------------------------- */

struct capture;

/* Work queued on a stream and not run yet: an op, or a wait for another
 * stream to have run `upto` entries (cudaStreamWaitEvent). */
struct entry {
    const char *what;
    std::function<void()> op;
    cudaStream_t wait_for = nullptr;
    long upto = 0;
};

struct stream_state {
    explicit stream_state(int d = 0) : device(d) {}
    int device;
    capture *cap = nullptr;
    long cap_ops = 0, rejoined_at = 0; /* ops since joining; joined back up to */
    std::deque<entry> queue;           /* issued, not run yet */
    long done = 0;
};

struct capture {
    cudaStream_t origin;
    std::vector<std::pair<const char *, std::function<void()>>> ops;
    std::set<cudaStream_t> members;
    bool invalid = false;
};

struct event_state {
    int device;
    bool timing, recorded = false;
    double ms = 0;
    cudaStream_t stream = nullptr;
    capture *cap = nullptr;
    long ops_at = 0;
    long queued_at = 0; /* entries of `stream` issued when recorded */
};

std::map<cudaStream_t, stream_state> streams;
std::map<cudaEvent_t, event_state> events;
std::set<cudaGraph_t> graphs;
std::set<cudaGraphExec_t> execs;
thread_local cudaStream_t null_stream[64]; /* per-device legacy stream handles */

stream_state *stream_of(cudaStream_t s)
{
    if (!s) {
        /* The legacy default stream of the current device. */
        cudaStream_t &n = null_stream[current_device & 63];
        if (!n) {
            n = (cudaStream_t) new char;
            streams[n] = stream_state(current_device);
        }
        s = n;
    }
    auto it = streams.find(s);
    return it == streams.end() ? nullptr : &it->second;
}

cudaStream_t resolve(cudaStream_t s)
{
    if (s) return s;
    stream_of(nullptr);
    return null_stream[current_device & 63];
}

double now_ms()
{
    using namespace std::chrono;
    return duration<double, std::milli>(steady_clock::now().time_since_epoch()).count();
}

/* CNN_HOSTCUDA_PROFILE=1: calls and seconds per op name, on stderr at exit. */
struct op_time {
    long calls = 0;
    double ms = 0;
};
std::map<std::string, op_time> *profile;

void print_profile()
{
    std::vector<std::pair<std::string, op_time>> v(profile->begin(), profile->end());
    std::sort(v.begin(), v.end(), [](auto &a, auto &b) { return a.second.ms > b.second.ms; });
    for (auto &e : v)
        fprintf(stderr, "hostcuda profile: %10.1f ms %8ld calls  %s\n", e.second.ms,
                e.second.calls, e.first.c_str());
}

/* The op running, named when it faults (a read past the end of device
 * memory reaches the inaccessible page after it). */
const char *volatile running_op;

void on_fault(int sig, siginfo_t *si, void *)
{
    signal(sig, SIG_DFL);
    if (!running_op) return; /* not ours: fault again, by default */
    fprintf(stderr, "hostcuda: %s touched memory outside its device allocations (address %p)\n",
            running_op, si->si_addr);
    abort();
}

struct fault_handler {
    fault_handler()
    {
        struct sigaction sa = {};
        sa.sa_sigaction = on_fault;
        sa.sa_flags = SA_SIGINFO;
        sigaction(SIGSEGV, &sa, nullptr);
    }
} install_fault_handler;

void run_op(const char *what, const std::function<void()> &op)
{
    static bool on = getenv("CNN_HOSTCUDA_PROFILE") && atoi(getenv("CNN_HOSTCUDA_PROFILE"));
    double t0 = on ? now_ms() : 0;
    running_op = what;
    op();
    running_op = nullptr;
    check_guards(what);
    if (on) {
        if (!profile) {
            profile = new std::map<std::string, op_time>;
            atexit(print_profile);
        }
        op_time &t = (*profile)[what];
        t.calls++;
        t.ms += now_ms() - t0;
    }
}

bool is_copy(const char *what) { return !strncmp(what, "cudaMem", 7); }

/* Streams run their work only when the host waits for it (a stream or
 * event sync, a copy to pageable memory, cudaFree), each as late as it
 * can, so that streams' work interleaves as unfavourably as their events
 * allow: a missing event wait shows as a wrong result. CNN_HOSTCUDA_EAGER=1
 * runs every op when it is issued instead. */
bool eager()
{
    static bool e = getenv("CNN_HOSTCUDA_EAGER") && atoi(getenv("CNN_HOSTCUDA_EAGER"));
    return e;
}

long issued(const stream_state *st) { return st->done + (long)st->queue.size(); }

/* Runs stream s's queued entries until `upto` have run (a wait entry first
 * runs the stream it waits for far enough). */
void flush(cudaStream_t s, long upto)
{
    stream_state *st = stream_of(s);
    while (st && st->done < upto && !st->queue.empty()) {
        entry e = std::move(st->queue.front());
        st->queue.pop_front();
        if (e.wait_for)
            flush(e.wait_for, e.upto);
        else
            run_op(e.what, e.op);
        st->done++;
    }
}

void flush_all()
{
    for (auto &s : streams) flush(s.first, issued(&s.second));
}

/* ---- fibers: the threads of one block ------------------------------------ */

constexpr size_t FIBER_STACK = 256 << 10;

/* A fiber switch saves the callee-saved registers on the current stack and
 * swaps stack pointers (x86-64 System V; swapcontext would also make a
 * signal-mask system call per switch, and blocks switch millions of times). */
extern "C" void cnn_hc_switch(void **save_sp, void *load_sp);
asm(R"(
    .text
    .globl cnn_hc_switch
    .type cnn_hc_switch, @function
cnn_hc_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size cnn_hc_switch, .-cnn_hc_switch
)");

/* What fibers and the scheduler share across a switch is volatile: GCC
 * (-O2, its IPA reference analysis) otherwise assumes a file-local
 * variable survives the external call unchanged. */
struct fiber {
    void *sp = nullptr;
    char *stack = nullptr;
    volatile bool done = false, waiting = false;
};

void *scheduler_sp;
std::vector<fiber> &fibers = *new std::vector<fiber>; /* stacks kept to the end */
fiber *volatile running = nullptr; /* null outside fiber mode */
const std::function<void()> *volatile thread_body;
const char *kernel_name;

[[noreturn]] void fiber_main()
{
    (*thread_body)();
    running->done = true;
    cnn_hc_switch(&running->sp, scheduler_sp);
    die("a finished fiber was resumed");
}

uint3 thread_index(unsigned t, dim3 b)
{
    return uint3{t % b.x, t / b.x % b.y, t / (b.x * b.y)};
}

void resume(unsigned t, dim3 b)
{
    running = &fibers[t];
    running->waiting = false;
    cnn_hc_at.thread = thread_index(t, b);
    cnn_hc_switch(&scheduler_sp, running->sp);
    running = nullptr;
}

/* A fresh stack whose first switch "returns" into fiber_main with the
 * alignment of a call: six zeroed registers, then fiber_main's address. */
void start_fiber(unsigned t)
{
    fiber &f = fibers[t];
    if (!f.stack) f.stack = (char *)malloc(FIBER_STACK);
    if (!f.stack) die("no memory for the fiber stacks of %s", kernel_name);
    void **top = (void **)(((uintptr_t)f.stack + FIBER_STACK) & ~(uintptr_t)15);
    top[-1] = nullptr; /* fiber_main's return address: it never returns */
    top[-2] = (void *)fiber_main;
    for (int r = 3; r <= 8; r++) top[-r] = nullptr;
    f.sp = top - 8;
    f.done = f.waiting = false;
}

/* The order threads and blocks run in changes from one launch of a kernel
 * to the next: reversed (first), shuffled, forward, and again, so that a
 * kernel relying on one order (a missing barrier, blocks that assume
 * others ran first) fails, deterministically, even when launched once. */
std::vector<unsigned> run_order(unsigned n, unsigned long launch)
{
    std::vector<unsigned> o(n);
    for (unsigned i = 0; i < n; i++) o[i] = launch % 3 == 0 ? n - 1 - i : i;
    if (launch % 3 == 1) {
        uint64_t x = 0x9e3779b97f4a7c15ull * (launch + 1);
        for (unsigned i = n; i > 1; i--) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            std::swap(o[i - 1], o[x % i]);
        }
    }
    return o;
}

std::set<std::string> barrier_kernels; /* kernels seen reaching __syncthreads */

/* Runs the threads of a block that reach barriers: rounds in which each
 * thread, in `order`, runs to its next barrier, until all have returned.
 * Thread `started` (if below n) has run its first round already. */
void run_fibers(unsigned n, dim3 b, const std::vector<unsigned> &order, unsigned started)
{
    for (unsigned t : order)
        if (t != started) {
            start_fiber(t);
            resume(t, b);
        }
    for (;;) {
        unsigned done = 0;
        for (unsigned t = 0; t < n; t++) done += fibers[t].done;
        if (done == n) return;
        if (done)
            die("kernel %s: %u threads of block %u returned while others wait at "
                "__syncthreads", kernel_name, done, cnn_hc_at.block.x);
        for (unsigned t : order) resume(t, b);
    }
}

/* A kernel not yet known to use barriers runs thread 0 first as a fiber:
 * if it meets none, the others run as plain calls. */
void run_block(dim3 b, const std::function<void()> &body, const std::vector<unsigned> &order)
{
    unsigned n = b.x * b.y * b.z;
    /* Grown only here, with no fiber suspended. */
    if (fibers.size() < n) fibers.resize(n);
    thread_body = &body;
    if (barrier_kernels.count(kernel_name)) {
        run_fibers(n, b, order, n);
        return;
    }
    start_fiber(0);
    resume(0, b);
    if (!fibers[0].done) {
        barrier_kernels.insert(kernel_name);
        run_fibers(n, b, order, 0);
        return;
    }
    for (unsigned t : order)
        if (t != 0) {
            cnn_hc_at.thread = thread_index(t, b);
            body();
        }
}

cudaError_t fail(cudaError_t e)
{
    last_error = e;
    return e;
}

} // namespace

void __syncthreads(void)
{
    if (!running)
        die("kernel %s: a thread reached __syncthreads that thread 0 of its block never "
            "reached", kernel_name);
    running->waiting = true;
    cnn_hc_switch(&running->sp, scheduler_sp);
}

void cnn_hc_run_grid(const char *name, dim3 grid, dim3 block, const std::function<void()> &body)
{
    static std::map<std::string, unsigned long> launches; /* per kernel */
    unsigned long launch = launches[name]++;
    kernel_name = name;
    cnn_hc_at.grid_dim = grid;
    cnn_hc_at.block_dim = block;
    std::vector<unsigned> threads = run_order(block.x * block.y * block.z, launch);
    for (unsigned k : run_order(grid.x * grid.y * grid.z, launch)) {
        cnn_hc_at.block = uint3{k % grid.x, k / grid.x % grid.y, k / (grid.x * grid.y)};
        run_block(block, body, threads);
    }
}

void cnn_hc_set_launch_error(cudaError_t e) { last_error = e; }

extern "C" void cnn_stub_get_counts(cnn_stub_counts *out)
{
    LOCKED;
    *out = counts;
}

extern "C" size_t cnn_stub_live_device_bytes(void)
{
    LOCKED;
    size_t total = 0;
    for (auto &a : allocations)
        if (a.second.device >= 0) total += a.second.bytes ? a.second.bytes : 1;
    return total;
}

bool cnn_hc_capturing(cudaStream_t s)
{
    LOCKED;
    stream_state *st = stream_of(s);
    return st && st->cap;
}

void cnn_hc_check_device_pointer(cudaStream_t s, const char *what, int arg, const void *p)
{
    LOCKED;
    if (!p) return;
    stream_state *st = stream_of(s);
    if (!st) die("%s: not a live stream", what);
    int d = device_of(p, 0);
    if (d < 0) die("%s: argument %d (%p) is not device memory", what, arg, p);
    if (d != st->device && !peers.count({st->device, d}))
        die("%s: argument %d (%p) lies on device %d, the stream on %d, without peer access",
            what, arg, p, d, st->device);
}

cudaError_t cnn_hc_enqueue(cudaStream_t s, const char *what, std::function<void()> op)
{
    LOCKED;
    s = resolve(s);
    stream_state *st = stream_of(s);
    if (!st) return fail(cudaErrorInvalidResourceHandle);
    if (!is_copy(what) && st->device != current_device) return fail(cudaErrorInvalidResourceHandle);
    if (st->cap) {
        st->cap->ops.emplace_back(what, std::move(op));
        st->cap_ops++;
        return cudaSuccess;
    }
    if (eager()) {
        run_op(what, op);
        return cudaSuccess;
    }
    st->queue.push_back(entry{what, std::move(op)});
    return cudaSuccess;
}

/* ---- the runtime API ---------------------------------------------------------- */

const char *cudaGetErrorString(cudaError_t e)
{
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorNotReady: return "device not ready";
    case cudaErrorIllegalAddress: return "an illegal memory access was encountered";
    case cudaErrorPeerAccessAlreadyEnabled: return "peer access is already enabled";
    case cudaErrorPeerAccessNotEnabled: return "peer access has not been enabled";
    case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing";
    case cudaErrorStreamCaptureInvalidated: return "operation failed due to a previous error during capture";
    case cudaErrorStreamCaptureUnjoined: return "capture sequence contains a fork that was not joined to the primary stream";
    case cudaErrorStreamCaptureIsolation: return "dependency created on uncaptured work in another stream";
    case cudaErrorCapturedEvent: return "operation not permitted on an event last recorded in a capturing stream";
    case cudaErrorStreamCaptureWrongThread: return "attempt to terminate a thread-local capture sequence from another thread";
    case cudaErrorIllegalState: return "the operation is not permitted in the current state";
    }
    return "unknown error";
}

cudaError_t cudaGetLastError(void)
{
    cudaError_t e = last_error;
    last_error = cudaSuccess;
    return e;
}

cudaError_t cudaGetDeviceCount(int *n)
{
    *n = device_count();
    return cudaSuccess;
}

cudaError_t cudaGetDevice(int *d)
{
    *d = current_device;
    return cudaSuccess;
}

cudaError_t cudaSetDevice(int d)
{
    if (!valid_device(d)) return fail(cudaErrorInvalidDevice);
    current_device = d;
    return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int d)
{
    if (!valid_device(d)) return fail(cudaErrorInvalidDevice);
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "hostcuda CPU stand-in %d", d);
    p->totalGlobalMem = (size_t)16 << 30;
    p->major = 9;
    p->minor = 0;
    p->multiProcessorCount = 1;
    return cudaSuccess;
}

cudaError_t cudaDeviceCanAccessPeer(int *can, int d, int peer)
{
    if (!valid_device(d) || !valid_device(peer)) return fail(cudaErrorInvalidDevice);
    *can = d != peer;
    return cudaSuccess;
}

cudaError_t cudaDeviceEnablePeerAccess(int peer, unsigned flags)
{
    LOCKED;
    if (!valid_device(peer) || peer == current_device || flags) return fail(cudaErrorInvalidDevice);
    if (!peers.insert({current_device, peer}).second) return fail(cudaErrorPeerAccessAlreadyEnabled);
    return cudaSuccess;
}

cudaError_t cudaMalloc(void **p, size_t bytes)
{
    LOCKED;
    *p = nullptr;
    if (!valid_device(current_device)) return fail(cudaErrorInvalidDevice);
    size_t user = round_up(bytes, ALIGN), map_bytes = round_up(GUARD + user, PAGE) + PAGE;
    void *m = mmap(nullptr, map_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return fail(cudaErrorMemoryAllocation);
    char *map = (char *)m, *base = map + map_bytes - PAGE - user;
    mprotect(map + map_bytes - PAGE, PAGE, PROT_NONE);
    memset(base - GUARD, GUARD_BYTE, GUARD);
    memset(base, POISON_BYTE, bytes);
    memset(base + bytes, GUARD_BYTE, user - bytes);
    allocations[base] = allocation{bytes, current_device, map, map_bytes};
    counts.allocs++;
    *p = base;
    return cudaSuccess;
}

cudaError_t cudaFree(void *p)
{
    LOCKED;
    if (!p) return cudaSuccess;
    flush_all(); /* cudaFree waits for the device */
    auto it = allocations.find((const char *)p);
    if (it == allocations.end() || it->second.device < 0) return fail(cudaErrorInvalidValue);
    if (!guards_intact(it->first, it->second.bytes))
        die("cudaFree: something wrote outside this %zu-byte allocation", it->second.bytes);
    munmap(it->second.map, it->second.map_bytes);
    allocations.erase(it);
    counts.frees++;
    return cudaSuccess;
}

cudaError_t cudaMallocHost(void **p, size_t bytes)
{
    LOCKED;
    *p = malloc(bytes ? bytes : 1);
    if (!*p) return fail(cudaErrorMemoryAllocation);
    allocations[(const char *)*p] = allocation{bytes, -1};
    counts.allocs++;
    return cudaSuccess;
}

cudaError_t cudaFreeHost(void *p)
{
    LOCKED;
    if (!p) return cudaSuccess;
    flush_all(); /* so does cudaFreeHost */
    auto it = allocations.find((const char *)p);
    if (it == allocations.end() || it->second.device >= 0) return fail(cudaErrorInvalidValue);
    allocations.erase(it);
    free(p);
    counts.frees++;
    return cudaSuccess;
}

namespace {

/* Whether [p, p + bytes) is device memory (dev) or host memory (!dev). */
bool region_ok(const void *p, size_t bytes, bool dev)
{
    if (!bytes) return true;
    if (!p) return false;
    int d = device_of(p, bytes);
    if (dev) return d >= 0;
    /* host: not inside any device allocation */
    auto *a = find_allocation(p, 0);
    return !a || a->second.device < 0;
}

bool pinned(const void *p, size_t bytes)
{
    auto *a = find_allocation(p, bytes);
    return a && a->second.device < 0;
}

/* A graph cannot hold a copy from or to pageable host memory (the driver
 * stages those synchronously): only pinned memory in a capture. */
cudaError_t check_capture_copy(cudaStream_t s, const void *dst, size_t dbytes, const void *src,
                               size_t sbytes)
{
    stream_state *st = stream_of(s);
    if (!st || !st->cap) return cudaSuccess;
    bool ok = (device_of(dst, dbytes) >= 0 || pinned(dst, dbytes)) &&
              (device_of(src, sbytes) >= 0 || pinned(src, sbytes));
    if (ok) return cudaSuccess;
    st->cap->invalid = true;
    return fail(cudaErrorStreamCaptureUnsupported);
}

cudaError_t check_copy(void *dst, size_t dbytes, const void *src, size_t sbytes,
                       cudaMemcpyKind kind)
{
    bool ddev, sdev;
    switch (kind) {
    case cudaMemcpyHostToDevice: ddev = true, sdev = false; break;
    case cudaMemcpyDeviceToHost: ddev = false, sdev = true; break;
    case cudaMemcpyDeviceToDevice: ddev = sdev = true; break;
    case cudaMemcpyHostToHost: ddev = sdev = false; break;
    default:
        ddev = device_of(dst, 0) >= 0;
        sdev = device_of(src, 0) >= 0;
    }
    if (!region_ok(dst, dbytes, ddev) || !region_ok(src, sbytes, sdev))
        return fail(cudaErrorInvalidValue);
    if (sdev && !ddev && dbytes) counts.downloads++;
    if (ddev && !sdev && sbytes && !pinned(src, sbytes)) counts.pageable_uploads++;
    return cudaSuccess;
}

} // namespace

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t s)
{
    LOCKED;
    cudaError_t e = check_copy(dst, bytes, src, bytes, kind);
    if (e == cudaSuccess) e = check_capture_copy(s, dst, bytes, src, bytes);
    if (e != cudaSuccess || !bytes) return e;
    /* CUDA stages a copy from pageable memory before returning (the host
     * may reuse it at once), and a copy into pageable memory is done when
     * the call returns. */
    if (device_of(src, bytes) < 0 && !pinned(src, bytes)) {
        auto staged = std::make_shared<std::vector<char>>((const char *)src,
                                                          (const char *)src + bytes);
        return cnn_hc_enqueue(s, "cudaMemcpyAsync",
                              [=] { memmove(dst, staged->data(), bytes); });
    }
    e = cnn_hc_enqueue(s, "cudaMemcpyAsync", [=] { memmove(dst, src, bytes); });
    stream_state *st = stream_of(s);
    if (e == cudaSuccess && device_of(dst, bytes) < 0 && !pinned(dst, bytes) && !st->cap)
        flush(resolve(s), issued(st));
    return e;
}

cudaError_t cudaMemcpy2DAsync(void *dst, size_t dpitch, const void *src, size_t spitch,
                              size_t width, size_t height, cudaMemcpyKind kind, cudaStream_t s)
{
    LOCKED;
    if (width > dpitch || width > spitch) return fail(cudaErrorInvalidValue);
    if (!width || !height) return cudaSuccess;
    size_t dbytes = dpitch * (height - 1) + width, sbytes = spitch * (height - 1) + width;
    cudaError_t e = check_copy(dst, dbytes, src, sbytes, kind);
    if (e == cudaSuccess) e = check_capture_copy(s, dst, dbytes, src, sbytes);
    if (e != cudaSuccess) return e;
    return cnn_hc_enqueue(s, "cudaMemcpy2DAsync", [=] {
        for (size_t r = 0; r < height; r++)
            memmove((char *)dst + r * dpitch, (const char *)src + r * spitch, width);
    });
}

cudaError_t cudaMemcpyPeerAsync(void *dst, int ddev, const void *src, int sdev, size_t bytes,
                                cudaStream_t s)
{
    LOCKED;
    if (!bytes) return cudaSuccess;
    if (device_of(dst, bytes) != ddev || device_of(src, bytes) != sdev)
        return fail(cudaErrorInvalidValue);
    return cnn_hc_enqueue(s, "cudaMemcpyPeerAsync", [=] { memmove(dst, src, bytes); });
}

cudaError_t cudaMemsetAsync(void *p, int value, size_t bytes, cudaStream_t s)
{
    LOCKED;
    if (!bytes) return cudaSuccess;
    if (device_of(p, bytes) < 0) return fail(cudaErrorInvalidValue);
    return cnn_hc_enqueue(s, "cudaMemsetAsync", [=] { memset(p, value, bytes); });
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags)
{
    LOCKED;
    (void)flags;
    *s = (cudaStream_t) new char;
    streams[*s] = stream_state(current_device);
    return cudaSuccess;
}

cudaError_t cudaStreamDestroy(cudaStream_t s)
{
    LOCKED;
    auto it = streams.find(s);
    if (!s || it == streams.end()) return fail(cudaErrorInvalidResourceHandle);
    if (it->second.cap) return fail(cudaErrorStreamCaptureUnsupported);
    flush(s, issued(&it->second));
    streams.erase(it);
    delete (char *)s;
    return cudaSuccess;
}

namespace {

/* Synchronising with a capturing stream is illegal: it ends the capture. */
cudaError_t sync_with(stream_state *st)
{
    if (!st) return fail(cudaErrorInvalidResourceHandle);
    if (st->cap) {
        st->cap->invalid = true;
        return fail(cudaErrorStreamCaptureUnsupported);
    }
    return cudaSuccess;
}

} // namespace

cudaError_t cudaStreamSynchronize(cudaStream_t s)
{
    LOCKED;
    counts.stream_syncs++;
    stream_state *st = stream_of(s);
    cudaError_t e = sync_with(st);
    if (e == cudaSuccess) flush(resolve(s), issued(st));
    return e;
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned flags)
{
    LOCKED;
    *e = (cudaEvent_t) new char;
    event_state st;
    st.device = current_device;
    st.timing = !(flags & cudaEventDisableTiming);
    events[*e] = st;
    return cudaSuccess;
}

cudaError_t cudaEventDestroy(cudaEvent_t e)
{
    LOCKED;
    if (!events.erase(e)) return fail(cudaErrorInvalidResourceHandle);
    delete (char *)e;
    return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s)
{
    LOCKED;
    s = resolve(s);
    auto it = events.find(e);
    stream_state *st = stream_of(s);
    if (it == events.end() || !st) return fail(cudaErrorInvalidResourceHandle);
    event_state &ev = it->second;
    if (ev.device != st->device) return fail(cudaErrorInvalidResourceHandle);
    ev.stream = s;
    ev.cap = st->cap;
    ev.ops_at = st->cap_ops;
    if (!st->cap) {
        ev.recorded = true;
        ev.ms = now_ms();
        /* The time the stream reaches the event, when work runs late. */
        if (!eager() && ev.timing)
            st->queue.push_back(entry{"cudaEventRecord", [e] {
                auto at = events.find(e);
                if (at != events.end()) at->second.ms = now_ms();
            }});
    }
    ev.queued_at = issued(st);
    return cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t e)
{
    LOCKED;
    auto it = events.find(e);
    if (it == events.end()) return fail(cudaErrorInvalidResourceHandle);
    if (it->second.cap) return fail(cudaErrorCapturedEvent);
    counts.event_syncs++;
    if (it->second.recorded) flush(it->second.stream, it->second.queued_at);
    return cudaSuccess;
}

cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t end)
{
    LOCKED;
    auto a = events.find(start), b = events.find(end);
    if (a == events.end() || b == events.end() || !a->second.timing || !b->second.timing)
        return fail(cudaErrorInvalidResourceHandle);
    if (!a->second.recorded || !b->second.recorded) return fail(cudaErrorInvalidResourceHandle);
    flush(a->second.stream, a->second.queued_at);
    flush(b->second.stream, b->second.queued_at);
    *ms = (float)(b->second.ms - a->second.ms);
    return cudaSuccess;
}

cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned flags)
{
    LOCKED;
    s = resolve(s);
    auto it = events.find(e);
    stream_state *st = stream_of(s);
    if (it == events.end() || !st || flags) return fail(cudaErrorInvalidResourceHandle);
    event_state &ev = it->second;
    capture *cap = ev.cap;
    if (!cap && !st->cap && ev.recorded && ev.stream != s && !eager()) {
        st->queue.push_back(entry{"cudaStreamWaitEvent", nullptr, ev.stream, ev.queued_at});
        return cudaSuccess;
    }
    if (!cap && st->cap && ev.recorded) {
        /* CUDA: waiting on an event recorded outside the capture is invalid
         * (without cudaEventWaitExternal). */
        st->cap->invalid = true;
        return fail(cudaErrorStreamCaptureIsolation);
    }
    if (!cap || ev.stream == s) return cudaSuccess;
    if (!st->cap) {
        /* A stream waiting on work being captured joins the capture. */
        st->cap = cap;
        st->cap_ops = st->rejoined_at = 0;
        cap->members.insert(s);
    } else if (st->cap == cap) {
        stream_state *from = stream_of(ev.stream);
        if (from) from->rejoined_at = std::max(from->rejoined_at, ev.ops_at);
    } else {
        cap->invalid = true; /* two captures merged */
        return fail(cudaErrorStreamCaptureUnsupported);
    }
    return cudaSuccess;
}

namespace {
struct graph_ops {
    std::vector<std::pair<const char *, std::function<void()>>> ops;
};
} // namespace

cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode mode)
{
    LOCKED;
    stream_state *st = stream_of(s);
    if (!s || !st) return fail(cudaErrorInvalidResourceHandle); /* not the legacy stream */
    if (st->cap) return fail(cudaErrorIllegalState);
    (void)mode;
    capture *cap = new capture;
    cap->origin = s;
    cap->members.insert(s);
    st->cap = cap;
    st->cap_ops = st->rejoined_at = 0;
    return cudaSuccess;
}

cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t *g)
{
    LOCKED;
    *g = nullptr;
    stream_state *st = stream_of(s);
    if (!st || !st->cap) return fail(cudaErrorIllegalState);
    capture *cap = st->cap;
    if (cap->origin != s) return fail(cudaErrorStreamCaptureUnjoined);
    bool unjoined = false;
    for (cudaStream_t m : cap->members) {
        stream_state *ms = stream_of(m);
        if (m != s && ms->cap_ops > ms->rejoined_at) unjoined = true;
        ms->cap = nullptr;
    }
    for (auto &ev : events)
        if (ev.second.cap == cap) ev.second.cap = nullptr;
    cudaError_t e = cap->invalid ? cudaErrorStreamCaptureInvalidated
                    : unjoined   ? cudaErrorStreamCaptureUnjoined
                                 : cudaSuccess;
    if (e == cudaSuccess) {
        graph_ops *ops = new graph_ops{std::move(cap->ops)};
        *g = (cudaGraph_t)ops;
        graphs.insert(*g);
    }
    delete cap;
    return e == cudaSuccess ? e : fail(e);
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t g, unsigned long long flags)
{
    LOCKED;
    if (!graphs.count(g) || flags) return fail(cudaErrorInvalidValue);
    *exec = (cudaGraphExec_t) new graph_ops(*(graph_ops *)g);
    execs.insert(*exec);
    return cudaSuccess;
}

cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t s)
{
    LOCKED;
    stream_state *st = stream_of(s);
    if (!execs.count(exec) || !st) return fail(cudaErrorInvalidResourceHandle);
    if (st->cap) return fail(cudaErrorStreamCaptureUnsupported);
    const graph_ops *g = (const graph_ops *)exec;
    auto run = [g] {
        for (auto &op : g->ops) run_op(op.first, op.second);
    };
    if (eager()) {
        run();
        return cudaSuccess;
    }
    st->queue.push_back(entry{"cudaGraphLaunch", run});
    return cudaSuccess;
}

cudaError_t cudaGraphDestroy(cudaGraph_t g)
{
    LOCKED;
    if (!graphs.erase(g)) return fail(cudaErrorInvalidValue);
    delete (graph_ops *)g;
    return cudaSuccess;
}

cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec)
{
    LOCKED;
    if (!execs.erase(exec)) return fail(cudaErrorInvalidValue);
    delete (graph_ops *)exec;
    return cudaSuccess;
}
