/* cudnn.cpp (tests/hostcuda) — cuDNN's legacy convolution API on the CPU
 * for the hostcuda build: NCHW fp32 tensors and filters, 2-d convolutions
 * with groups, padding, stride, dilation, cross-correlation or true
 * convolution; forward, backward data, backward filter and AddTensor with
 * cuDNN's alpha/beta blending (the output is not read when beta is 0),
 * sums accumulated in double (cross-correlation without TF32 goes through
 * im2col and OpenBLAS, in float, for speed). Arguments are validated as strictly as cuDNN
 * does; device pointers are checked at call time and the arithmetic is
 * enqueued on the handle's stream (run now, or recorded into a graph).
 *
 * Find reports three algorithms per direction, fastest first, to exercise
 * the caller's choice: a TF32 tensor-op one (it refuses to run under
 * CUDNN_FMA_MATH, and rounds its inputs to TF32 when it runs), one that
 * needs an im2col-sized workspace (non-deterministic for the backward
 * passes, like the real *_ALGO_0), and a deterministic FMA one with no
 * workspace. Other algorithms are CUDNN_STATUS_NOT_SUPPORTED. */
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <utility>
#include <vector>

#include "cuda_runtime.h"
#include "libs.h"
#include "cudnn.h"

struct cudnnContext {
    int device;          /* current device at cudnnCreate */
    cudaStream_t stream; /* NULL until cudnnSetStream */
};

struct cudnnTensorStruct {
    bool set;
    int n, c, h, w;
};

struct cudnnFilterStruct {
    bool set;
    int k, c, h, w;
};

struct cudnnConvolutionStruct {
    bool set;
    int ph, pw, sh, sw, dh, dw;
    cudnnConvolutionMode_t mode;
    int groups;
    cudnnMathType_t math;
};

/* ---- handles and descriptors ------------------------------------------ */

const char *cudnnGetErrorString(cudnnStatus_t status)
{
    switch (status) {
    case CUDNN_STATUS_SUCCESS: return "CUDNN_STATUS_SUCCESS";
    case CUDNN_STATUS_NOT_INITIALIZED: return "CUDNN_STATUS_NOT_INITIALIZED";
    case CUDNN_STATUS_SUBLIBRARY_VERSION_MISMATCH:
        return "CUDNN_STATUS_SUBLIBRARY_VERSION_MISMATCH";
    case CUDNN_STATUS_BAD_PARAM: return "CUDNN_STATUS_BAD_PARAM";
    case CUDNN_STATUS_INVALID_VALUE: return "CUDNN_STATUS_INVALID_VALUE";
    case CUDNN_STATUS_BAD_PARAM_NULL_POINTER: return "CUDNN_STATUS_BAD_PARAM_NULL_POINTER";
    case CUDNN_STATUS_BAD_PARAM_SHAPE_MISMATCH: return "CUDNN_STATUS_BAD_PARAM_SHAPE_MISMATCH";
    case CUDNN_STATUS_NOT_SUPPORTED: return "CUDNN_STATUS_NOT_SUPPORTED";
    case CUDNN_STATUS_NOT_SUPPORTED_SHAPE: return "CUDNN_STATUS_NOT_SUPPORTED_SHAPE";
    case CUDNN_STATUS_NOT_SUPPORTED_DATA_TYPE: return "CUDNN_STATUS_NOT_SUPPORTED_DATA_TYPE";
    case CUDNN_STATUS_NOT_SUPPORTED_LAYOUT: return "CUDNN_STATUS_NOT_SUPPORTED_LAYOUT";
    case CUDNN_STATUS_ARCH_MISMATCH: return "CUDNN_STATUS_ARCH_MISMATCH";
    case CUDNN_STATUS_INTERNAL_ERROR: return "CUDNN_STATUS_INTERNAL_ERROR";
    case CUDNN_STATUS_ALLOC_FAILED: return "CUDNN_STATUS_ALLOC_FAILED";
    case CUDNN_STATUS_MAPPING_ERROR: return "CUDNN_STATUS_MAPPING_ERROR";
    case CUDNN_STATUS_EXECUTION_FAILED: return "CUDNN_STATUS_EXECUTION_FAILED";
    }
    return "CUDNN_UNKNOWN_STATUS_FOUND";
}

cudnnStatus_t cudnnCreate(cudnnHandle_t *handle)
{
    if (!handle) return CUDNN_STATUS_BAD_PARAM;
    int dev;
    if (cudaGetDevice(&dev) != cudaSuccess) return CUDNN_STATUS_NOT_INITIALIZED;
    *handle = new cudnnContext{dev, nullptr};
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnDestroy(cudnnHandle_t handle)
{
    if (!handle) return CUDNN_STATUS_BAD_PARAM;
    delete handle;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetStream(cudnnHandle_t handle, cudaStream_t streamId)
{
    if (!handle) return CUDNN_STATUS_BAD_PARAM;
    handle->stream = streamId;
    return CUDNN_STATUS_SUCCESS;
}

/* Common checks of a 4-d tensor or filter: NCHW fp32, positive sizes, at
 * most 2^31-1 elements. */
static cudnnStatus_t check_4d(cudnnTensorFormat_t format, cudnnDataType_t type, int n, int c,
                              int h, int w)
{
    if (format != CUDNN_TENSOR_NCHW && format != CUDNN_TENSOR_NHWC &&
        format != CUDNN_TENSOR_NCHW_VECT_C)
        return CUDNN_STATUS_BAD_PARAM;
    if (n <= 0 || c <= 0 || h <= 0 || w <= 0) return CUDNN_STATUS_BAD_PARAM;
    if (format != CUDNN_TENSOR_NCHW || type != CUDNN_DATA_FLOAT) return CUDNN_STATUS_NOT_SUPPORTED;
    if ((double)n * c * h * w > std::numeric_limits<int>::max()) return CUDNN_STATUS_NOT_SUPPORTED;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnCreateTensorDescriptor(cudnnTensorDescriptor_t *tensorDesc)
{
    if (!tensorDesc) return CUDNN_STATUS_BAD_PARAM;
    *tensorDesc = new cudnnTensorStruct{};
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetTensor4dDescriptor(cudnnTensorDescriptor_t tensorDesc,
                                         cudnnTensorFormat_t format, cudnnDataType_t dataType,
                                         int n, int c, int h, int w)
{
    if (!tensorDesc) return CUDNN_STATUS_BAD_PARAM;
    cudnnStatus_t st = check_4d(format, dataType, n, c, h, w);
    if (st == CUDNN_STATUS_SUCCESS) *tensorDesc = cudnnTensorStruct{true, n, c, h, w};
    return st;
}

cudnnStatus_t cudnnDestroyTensorDescriptor(cudnnTensorDescriptor_t tensorDesc)
{
    delete tensorDesc;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnCreateFilterDescriptor(cudnnFilterDescriptor_t *filterDesc)
{
    if (!filterDesc) return CUDNN_STATUS_BAD_PARAM;
    *filterDesc = new cudnnFilterStruct{};
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetFilter4dDescriptor(cudnnFilterDescriptor_t filterDesc,
                                         cudnnDataType_t dataType, cudnnTensorFormat_t format,
                                         int k, int c, int h, int w)
{
    if (!filterDesc) return CUDNN_STATUS_BAD_PARAM;
    cudnnStatus_t st = check_4d(format, dataType, k, c, h, w);
    if (st == CUDNN_STATUS_SUCCESS) *filterDesc = cudnnFilterStruct{true, k, c, h, w};
    return st;
}

cudnnStatus_t cudnnDestroyFilterDescriptor(cudnnFilterDescriptor_t filterDesc)
{
    delete filterDesc;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnCreateConvolutionDescriptor(cudnnConvolutionDescriptor_t *convDesc)
{
    if (!convDesc) return CUDNN_STATUS_BAD_PARAM;
    *convDesc = new cudnnConvolutionStruct{};
    (*convDesc)->groups = 1;
    (*convDesc)->math = CUDNN_DEFAULT_MATH;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetConvolution2dDescriptor(cudnnConvolutionDescriptor_t convDesc, int pad_h,
                                              int pad_w, int u, int v, int dilation_h,
                                              int dilation_w, cudnnConvolutionMode_t mode,
                                              cudnnDataType_t computeType)
{
    if (!convDesc || pad_h < 0 || pad_w < 0 || u <= 0 || v <= 0 || dilation_h <= 0 ||
        dilation_w <= 0 || (mode != CUDNN_CONVOLUTION && mode != CUDNN_CROSS_CORRELATION))
        return CUDNN_STATUS_BAD_PARAM;
    if (computeType != CUDNN_DATA_FLOAT) return CUDNN_STATUS_NOT_SUPPORTED; /* fp32 data only */
    convDesc->set = true;
    convDesc->ph = pad_h, convDesc->pw = pad_w, convDesc->sh = u, convDesc->sw = v;
    convDesc->dh = dilation_h, convDesc->dw = dilation_w, convDesc->mode = mode;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetConvolutionGroupCount(cudnnConvolutionDescriptor_t convDesc, int groupCount)
{
    if (!convDesc || groupCount < 1) return CUDNN_STATUS_BAD_PARAM;
    convDesc->groups = groupCount;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetConvolutionMathType(cudnnConvolutionDescriptor_t convDesc,
                                          cudnnMathType_t mathType)
{
    if (!convDesc || mathType < CUDNN_DEFAULT_MATH || mathType > CUDNN_FMA_MATH)
        return CUDNN_STATUS_BAD_PARAM;
    convDesc->math = mathType;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnDestroyConvolutionDescriptor(cudnnConvolutionDescriptor_t convDesc)
{
    delete convDesc;
    return CUDNN_STATUS_SUCCESS;
}

/* ---- convolution geometry ---------------------------------------------- */

/* Everything the arithmetic needs, copied into the enqueued work. */
struct geom {
    int n, c, h, w;       /* x */
    int k, cg, kh, kw;    /* filter: k outputs, cg = c / groups inputs each */
    int oh, ow;           /* y (n x k x oh x ow) */
    int ph, pw, sh, sw, dh, dw, groups;
    bool flip;            /* CUDNN_CONVOLUTION: the filter is applied flipped */
    bool tf32;            /* inputs rounded to TF32 (tensor-op algorithm) */
};

/* Output size of one dimension; <= 0 when the dilated filter does not fit. */
static int out_len(int in, int pad, int filter, int stride, int dilation)
{
    int span = (filter - 1) * dilation + 1;
    return in + 2 * pad < span ? 0 : (in + 2 * pad - span) / stride + 1;
}

/* Geometry of x convolved with w; BAD_PARAM on mismatched channels. */
static cudnnStatus_t make_geom(const cudnnConvolutionStruct *cv, const cudnnTensorStruct *x,
                               const cudnnFilterStruct *w, geom *g)
{
    if (!cv || !x || !w || !cv->set || !x->set || !w->set) return CUDNN_STATUS_BAD_PARAM;
    if (x->c != w->c * cv->groups || w->k % cv->groups != 0) return CUDNN_STATUS_BAD_PARAM;
    *g = geom{x->n, x->c, x->h, x->w, w->k, w->c, w->h, w->w,
              out_len(x->h, cv->ph, w->h, cv->sh, cv->dh),
              out_len(x->w, cv->pw, w->w, cv->sw, cv->dw),
              cv->ph, cv->pw, cv->sh, cv->sw, cv->dh, cv->dw, cv->groups,
              cv->mode == CUDNN_CONVOLUTION, false};
    return g->oh > 0 && g->ow > 0 ? CUDNN_STATUS_SUCCESS : CUDNN_STATUS_BAD_PARAM;
}

/* Same, and y must be exactly the forward output. */
static cudnnStatus_t make_geom_y(const cudnnConvolutionStruct *cv, const cudnnTensorStruct *x,
                                 const cudnnFilterStruct *w, const cudnnTensorStruct *y, geom *g)
{
    cudnnStatus_t st = make_geom(cv, x, w, g);
    if (st != CUDNN_STATUS_SUCCESS) return st;
    if (!y || !y->set || y->n != g->n || y->c != g->k || y->h != g->oh || y->w != g->ow)
        return CUDNN_STATUS_BAD_PARAM;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetConvolution2dForwardOutputDim(const cudnnConvolutionDescriptor_t convDesc,
                                                    const cudnnTensorDescriptor_t inputTensorDesc,
                                                    const cudnnFilterDescriptor_t filterDesc,
                                                    int *n, int *c, int *h, int *w)
{
    geom g;
    cudnnStatus_t st = make_geom(convDesc, inputTensorDesc, filterDesc, &g);
    if (st != CUDNN_STATUS_SUCCESS) return st;
    if (!n || !c || !h || !w) return CUDNN_STATUS_BAD_PARAM;
    *n = g.n, *c = g.k, *h = g.oh, *w = g.ow;
    return CUDNN_STATUS_SUCCESS;
}

/* ---- algorithms ---------------------------------------------------------- */

/* One algorithm as Find reports it, fastest first. */
struct algo_row {
    int algo;
    cudnnMathType_t math;
    bool deterministic, workspace;
    float ms;
};

static const algo_row fwd_algos[] = {
    {CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM, CUDNN_TENSOR_OP_MATH, true, false, 0.02f},
    {CUDNN_CONVOLUTION_FWD_ALGO_GEMM, CUDNN_FMA_MATH, true, true, 0.05f},
    {CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, CUDNN_FMA_MATH, true, false, 0.1f},
};
static const algo_row data_algos[] = {
    {CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD_NONFUSED, CUDNN_TENSOR_OP_MATH, true, false, 0.02f},
    {CUDNN_CONVOLUTION_BWD_DATA_ALGO_0, CUDNN_FMA_MATH, false, true, 0.05f},
    {CUDNN_CONVOLUTION_BWD_DATA_ALGO_1, CUDNN_FMA_MATH, true, false, 0.1f},
};
static const algo_row filter_algos[] = {
    {CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD_NONFUSED, CUDNN_TENSOR_OP_MATH, true, false, 0.02f},
    {CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0, CUDNN_FMA_MATH, false, true, 0.05f},
    {CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1, CUDNN_FMA_MATH, true, false, 0.1f},
};
static const int n_rows = 3;

/* Workspace of an algorithm: one image's im2col matrix, or none. */
static size_t ws_bytes(const algo_row &r, const geom &g)
{
    return r.workspace ? (size_t)g.c * g.kh * g.kw * g.oh * g.ow * sizeof(float) : 0;
}

/* The row of `algo` runnable under the descriptor's math type: BAD_PARAM
 * for a value outside the enum, NOT_SUPPORTED for one not offered here or a
 * tensor-op algorithm under CUDNN_FMA_MATH. */
static cudnnStatus_t pick_row(const algo_row *rows, int algo, int count,
                              const cudnnConvolutionStruct *cv, const algo_row **out)
{
    if (algo < 0 || algo >= count) return CUDNN_STATUS_BAD_PARAM;
    for (int i = 0; i < n_rows; i++)
        if (rows[i].algo == algo) {
            if (rows[i].math == CUDNN_TENSOR_OP_MATH && cv->math == CUDNN_FMA_MATH) break;
            *out = &rows[i];
            return CUDNN_STATUS_SUCCESS;
        }
    return CUDNN_STATUS_NOT_SUPPORTED;
}

/* ---- shared call-time checks ---------------------------------------------- */

/* A handle belongs to the device current at its creation. */
static void check_device(const cudnnContext *h, const char *what)
{
    cnn_hc_check_handle_device("cuDNN", h->device, what);
}

/* Aborts unless each (argument index, pointer) is device memory. */
static void check_ptrs(const cudnnContext *h, const char *what,
                       std::initializer_list<std::pair<int, const void *>> ptrs)
{
    for (const auto &p : ptrs) cnn_hc_check_device_pointer(h->stream, what, p.first, p.second);
}

/* The workspace argument of a call that needs `need` bytes. */
static cudnnStatus_t check_ws(const void *ws, size_t size, size_t need)
{
    if (need > size || (need && !ws) || (size && !ws)) return CUDNN_STATUS_BAD_PARAM;
    return CUDNN_STATUS_SUCCESS;
}

/* Runs body on the handle's stream after scribbling over the workspace (as
 * a real algorithm's scratch use would). */
template <class F>
static cudnnStatus_t enqueue(const cudnnContext *h, const char *what, void *ws, size_t ws_used,
                             F body)
{
    cudaError_t e = cnn_hc_enqueue(h->stream, what, [=] {
        if (ws_used) memset(ws, 0xff, ws_used);
        body();
    });
    return e == cudaSuccess ? CUDNN_STATUS_SUCCESS : CUDNN_STATUS_EXECUTION_FAILED;
}

/* ---- arithmetic ----------------------------------------------------------- */

static double in(const geom &g, float v) { return g.tf32 ? cnn_hc_to_tf32(v) : v; }

static size_t x_at(const geom &g, int b, int c, int y, int x)
{
    return (((size_t)b * g.c + c) * g.h + y) * g.w + x;
}

static size_t y_at(const geom &g, int b, int k, int y, int x)
{
    return (((size_t)b * g.k + k) * g.oh + y) * g.ow + x;
}

/* Filter element applied at tap (ky, kx): flipped for CUDNN_CONVOLUTION. */
static size_t w_at(const geom &g, int k, int ic, int ky, int kx)
{
    if (g.flip) ky = g.kh - 1 - ky, kx = g.kw - 1 - kx;
    return (((size_t)k * g.cg + ic) * g.kh + ky) * g.kw + kx;
}

/* First input channel of output channel k's group. */
static int group_c0(const geom &g, int k) { return k / (g.k / g.groups) * g.cg; }

/* ---- the common case through im2col and OpenBLAS -------------------------- */

/* Cross-correlation without TF32 (what the suites run) as cuDNN's GEMM
 * algorithms compute it, fast enough for whole nets: per image and group,
 * the receptive fields as columns (rows cg*kh*kw, columns oh*ow). */
static int gemm_rows(const geom &g) { return g.cg * g.kh * g.kw; }

static void im2col(const geom &g, const float *x, float *cols)
{
    int ohw = g.oh * g.ow;
    for (int r = 0; r < gemm_rows(g); r++) {
        int ic = r / (g.kh * g.kw), ky = r / g.kw % g.kh, kx = r % g.kw;
        for (int oy = 0; oy < g.oh; oy++) {
            int iy = oy * g.sh - g.ph + ky * g.dh;
            for (int ox = 0; ox < g.ow; ox++) {
                int ix = ox * g.sw - g.pw + kx * g.dw;
                bool in = iy >= 0 && iy < g.h && ix >= 0 && ix < g.w;
                cols[(size_t)r * ohw + oy * g.ow + ox] =
                    in ? x[((size_t)ic * g.h + iy) * g.w + ix] : 0.f;
            }
        }
    }
}

/* dx += the columns scattered back to the image (the adjoint of im2col). */
static void col2im_add(const geom &g, const float *cols, float *dx)
{
    int ohw = g.oh * g.ow;
    for (int r = 0; r < gemm_rows(g); r++) {
        int ic = r / (g.kh * g.kw), ky = r / g.kw % g.kh, kx = r % g.kw;
        for (int oy = 0; oy < g.oh; oy++) {
            int iy = oy * g.sh - g.ph + ky * g.dh;
            if (iy < 0 || iy >= g.h) continue;
            for (int ox = 0; ox < g.ow; ox++) {
                int ix = ox * g.sw - g.pw + kx * g.dw;
                if (ix >= 0 && ix < g.w)
                    dx[((size_t)ic * g.h + iy) * g.w + ix] += cols[(size_t)r * ohw + oy * g.ow + ox];
            }
        }
    }
}

static void store_all(float *out, const float *acc, size_t n, float alpha, float beta)
{
    for (size_t i = 0; i < n; i++) cnn_hc_blend(&out[i], acc[i], alpha, beta);
}

static void forward_gemm(const geom &g, float alpha, const float *x, const float *w, float beta,
                         float *y)
{
    int kg = g.k / g.groups, rows = gemm_rows(g), ohw = g.oh * g.ow;
    std::vector<float> cols((size_t)rows * ohw), out((size_t)g.k * ohw);
    for (int b = 0; b < g.n; b++) {
        for (int grp = 0; grp < g.groups; grp++) {
            im2col(g, x + ((size_t)b * g.c + (size_t)grp * g.cg) * g.h * g.w, cols.data());
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, kg, ohw, rows, 1.f,
                        w + (size_t)grp * kg * rows, rows, cols.data(), ohw, 0.f,
                        out.data() + (size_t)grp * kg * ohw, ohw);
        }
        store_all(y + (size_t)b * g.k * ohw, out.data(), out.size(), alpha, beta);
    }
}

static void backward_data_gemm(const geom &g, float alpha, const float *w, const float *dy,
                               float beta, float *dx)
{
    int kg = g.k / g.groups, rows = gemm_rows(g), ohw = g.oh * g.ow;
    size_t image = (size_t)g.c * g.h * g.w;
    std::vector<float> cols((size_t)rows * ohw), acc(image);
    for (int b = 0; b < g.n; b++) {
        std::fill(acc.begin(), acc.end(), 0.f);
        for (int grp = 0; grp < g.groups; grp++) {
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, rows, ohw, kg, 1.f,
                        w + (size_t)grp * kg * rows, rows,
                        dy + ((size_t)b * g.k + (size_t)grp * kg) * ohw, ohw, 0.f, cols.data(),
                        ohw);
            col2im_add(g, cols.data(), acc.data() + (size_t)grp * g.cg * g.h * g.w);
        }
        store_all(dx + b * image, acc.data(), image, alpha, beta);
    }
}

static void backward_filter_gemm(const geom &g, float alpha, const float *x, const float *dy,
                                 float beta, float *dw)
{
    int kg = g.k / g.groups, rows = gemm_rows(g), ohw = g.oh * g.ow;
    std::vector<float> cols((size_t)rows * ohw), acc((size_t)g.k * rows, 0.f);
    for (int b = 0; b < g.n; b++)
        for (int grp = 0; grp < g.groups; grp++) {
            im2col(g, x + ((size_t)b * g.c + (size_t)grp * g.cg) * g.h * g.w, cols.data());
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, kg, rows, ohw, 1.f,
                        dy + ((size_t)b * g.k + (size_t)grp * kg) * ohw, ohw, cols.data(), ohw,
                        1.f, acc.data() + (size_t)grp * kg * rows, rows);
        }
    store_all(dw, acc.data(), acc.size(), alpha, beta);
}

/* y = alpha conv(x, w) + beta y. */
static void forward(const geom &g, float alpha, const float *x, const float *w, float beta,
                    float *y)
{
    if (!g.flip && !g.tf32) return forward_gemm(g, alpha, x, w, beta, y);
    for (int b = 0; b < g.n; b++)
        for (int k = 0; k < g.k; k++)
            for (int oy = 0; oy < g.oh; oy++)
                for (int ox = 0; ox < g.ow; ox++) {
                    double acc = 0;
                    for (int ic = 0, c0 = group_c0(g, k); ic < g.cg; ic++)
                        for (int ky = 0; ky < g.kh; ky++) {
                            int iy = oy * g.sh - g.ph + ky * g.dh;
                            if (iy < 0 || iy >= g.h) continue;
                            for (int kx = 0; kx < g.kw; kx++) {
                                int ix = ox * g.sw - g.pw + kx * g.dw;
                                if (ix < 0 || ix >= g.w) continue;
                                acc += in(g, x[x_at(g, b, c0 + ic, iy, ix)]) *
                                       in(g, w[w_at(g, k, ic, ky, kx)]);
                            }
                        }
                    cnn_hc_blend(&y[y_at(g, b, k, oy, ox)], acc, alpha, beta);
                }
}

/* Output index o such that o * stride + off == i, or -1. */
static int tap_out(int i, int off, int stride, int n)
{
    int t = i - off;
    if (t < 0 || t % stride) return -1;
    return t / stride < n ? t / stride : -1;
}

/* dx = alpha conv^T(w, dy) + beta dx: each dx element gathers the outputs
 * it fed. */
static void backward_data(const geom &g, float alpha, const float *w, const float *dy,
                          float beta, float *dx)
{
    if (!g.flip && !g.tf32) return backward_data_gemm(g, alpha, w, dy, beta, dx);
    int kg = g.k / g.groups;
    for (int b = 0; b < g.n; b++)
        for (int c = 0; c < g.c; c++)
            for (int iy = 0; iy < g.h; iy++)
                for (int ix = 0; ix < g.w; ix++) {
                    double acc = 0;
                    int grp = c / g.cg, ic = c % g.cg;
                    for (int k = grp * kg; k < (grp + 1) * kg; k++)
                        for (int ky = 0; ky < g.kh; ky++) {
                            int oy = tap_out(iy, ky * g.dh - g.ph, g.sh, g.oh);
                            if (oy < 0) continue;
                            for (int kx = 0; kx < g.kw; kx++) {
                                int ox = tap_out(ix, kx * g.dw - g.pw, g.sw, g.ow);
                                if (ox < 0) continue;
                                acc += in(g, dy[y_at(g, b, k, oy, ox)]) *
                                       in(g, w[w_at(g, k, ic, ky, kx)]);
                            }
                        }
                    cnn_hc_blend(&dx[x_at(g, b, c, iy, ix)], acc, alpha, beta);
                }
}

/* dw = alpha corr(x, dy) + beta dw. */
static void backward_filter(const geom &g, float alpha, const float *x, const float *dy,
                            float beta, float *dw)
{
    if (!g.flip && !g.tf32) return backward_filter_gemm(g, alpha, x, dy, beta, dw);
    for (int k = 0; k < g.k; k++)
        for (int ic = 0; ic < g.cg; ic++)
            for (int ky = 0; ky < g.kh; ky++)
                for (int kx = 0; kx < g.kw; kx++) {
                    double acc = 0;
                    for (int b = 0; b < g.n; b++)
                        for (int oy = 0; oy < g.oh; oy++) {
                            int iy = oy * g.sh - g.ph + ky * g.dh;
                            if (iy < 0 || iy >= g.h) continue;
                            for (int ox = 0; ox < g.ow; ox++) {
                                int ix = ox * g.sw - g.pw + kx * g.dw;
                                if (ix < 0 || ix >= g.w) continue;
                                acc += in(g, x[x_at(g, b, group_c0(g, k) + ic, iy, ix)]) *
                                       in(g, dy[y_at(g, b, k, oy, ox)]);
                            }
                        }
                    cnn_hc_blend(&dw[w_at(g, k, ic, ky, kx)], acc, alpha, beta);
                }
}

/* ---- execution -------------------------------------------------------------- */

/* Checks common to the three executions once the geometry is known. */
static cudnnStatus_t prepare(const cudnnConvolutionStruct *cv, const algo_row *rows, int algo,
                             int count, const void *ws, size_t ws_size, geom *g, size_t *need)
{
    const algo_row *r = nullptr;
    cudnnStatus_t st = pick_row(rows, algo, count, cv, &r);
    if (st != CUDNN_STATUS_SUCCESS) return st;
    *need = ws_bytes(*r, *g);
    g->tf32 = r->math == CUDNN_TENSOR_OP_MATH;
    return check_ws(ws, ws_size, *need);
}

cudnnStatus_t cudnnConvolutionForward(cudnnHandle_t handle, const void *alpha,
                                      const cudnnTensorDescriptor_t xDesc, const void *x,
                                      const cudnnFilterDescriptor_t wDesc, const void *w,
                                      const cudnnConvolutionDescriptor_t convDesc,
                                      cudnnConvolutionFwdAlgo_t algo, void *workSpace,
                                      size_t workSpaceSizeInBytes, const void *beta,
                                      const cudnnTensorDescriptor_t yDesc, void *y)
{
    geom g;
    size_t need;
    if (!handle || !alpha || !beta || !x || !w || !y) return CUDNN_STATUS_BAD_PARAM;
    cudnnStatus_t st = make_geom_y(convDesc, xDesc, wDesc, yDesc, &g);
    if (st == CUDNN_STATUS_SUCCESS)
        st = prepare(convDesc, fwd_algos, algo,
                     CUDNN_CONVOLUTION_FWD_ALGO_COUNT, workSpace, workSpaceSizeInBytes, &g, &need);
    if (st != CUDNN_STATUS_SUCCESS) return st;
    const char *what = "cudnnConvolutionForward";
    check_device(handle, what);
    check_ptrs(handle, what, {{3, x}, {5, w}, {8, need ? workSpace : nullptr}, {12, y}});
    const float al = *(const float *)alpha, be = *(const float *)beta;
    const float *xf = (const float *)x, *wf = (const float *)w;
    float *yf = (float *)y;
    return enqueue(handle, what, workSpace, need, [=] { forward(g, al, xf, wf, be, yf); });
}

cudnnStatus_t cudnnConvolutionBackwardData(cudnnHandle_t handle, const void *alpha,
                                           const cudnnFilterDescriptor_t wDesc, const void *w,
                                           const cudnnTensorDescriptor_t dyDesc, const void *dy,
                                           const cudnnConvolutionDescriptor_t convDesc,
                                           cudnnConvolutionBwdDataAlgo_t algo, void *workSpace,
                                           size_t workSpaceSizeInBytes, const void *beta,
                                           const cudnnTensorDescriptor_t dxDesc, void *dx)
{
    geom g;
    size_t need;
    if (!handle || !alpha || !beta || !w || !dy || !dx) return CUDNN_STATUS_BAD_PARAM;
    cudnnStatus_t st = make_geom_y(convDesc, dxDesc, wDesc, dyDesc, &g);
    if (st == CUDNN_STATUS_SUCCESS)
        st = prepare(convDesc, data_algos, algo,
                     CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, workSpace, workSpaceSizeInBytes, &g,
                     &need);
    if (st != CUDNN_STATUS_SUCCESS) return st;
    const char *what = "cudnnConvolutionBackwardData";
    check_device(handle, what);
    check_ptrs(handle, what, {{3, w}, {5, dy}, {8, need ? workSpace : nullptr}, {12, dx}});
    const float al = *(const float *)alpha, be = *(const float *)beta;
    const float *wf = (const float *)w, *dyf = (const float *)dy;
    float *dxf = (float *)dx;
    return enqueue(handle, what, workSpace, need,
                   [=] { backward_data(g, al, wf, dyf, be, dxf); });
}

cudnnStatus_t cudnnConvolutionBackwardFilter(cudnnHandle_t handle, const void *alpha,
                                             const cudnnTensorDescriptor_t xDesc, const void *x,
                                             const cudnnTensorDescriptor_t dyDesc, const void *dy,
                                             const cudnnConvolutionDescriptor_t convDesc,
                                             cudnnConvolutionBwdFilterAlgo_t algo,
                                             void *workSpace, size_t workSpaceSizeInBytes,
                                             const void *beta,
                                             const cudnnFilterDescriptor_t dwDesc, void *dw)
{
    geom g;
    size_t need;
    if (!handle || !alpha || !beta || !x || !dy || !dw) return CUDNN_STATUS_BAD_PARAM;
    cudnnStatus_t st = make_geom_y(convDesc, xDesc, dwDesc, dyDesc, &g);
    if (st == CUDNN_STATUS_SUCCESS)
        st = prepare(convDesc, filter_algos, algo,
                     CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, workSpace, workSpaceSizeInBytes,
                     &g, &need);
    if (st != CUDNN_STATUS_SUCCESS) return st;
    const char *what = "cudnnConvolutionBackwardFilter";
    check_device(handle, what);
    check_ptrs(handle, what, {{3, x}, {5, dy}, {8, need ? workSpace : nullptr}, {12, dw}});
    const float al = *(const float *)alpha, be = *(const float *)beta;
    const float *xf = (const float *)x, *dyf = (const float *)dy;
    float *dwf = (float *)dw;
    return enqueue(handle, what, workSpace, need,
                   [=] { backward_filter(g, al, xf, dyf, be, dwf); });
}

/* ---- Find ----------------------------------------------------------------- */

/* Fills perf (successes first, in table order, then those whose workspace
 * does not fit: CUDNN_STATUS_ALLOC_FAILED) and returns the most workspace
 * a fitting algorithm uses. */
template <class Perf, class Algo>
static size_t report(const algo_row *rows, const geom &g, size_t ws_size, int requested,
                     int *returned, Perf *perf)
{
    int n = 0;
    size_t used = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < n_rows && n < requested; i++) {
            size_t mem = ws_bytes(rows[i], g);
            bool fits = mem <= ws_size;
            if (fits != (pass == 0)) continue;
            if (fits && mem > used) used = mem;
            perf[n++] = Perf{(Algo)rows[i].algo,
                             fits ? CUDNN_STATUS_SUCCESS : CUDNN_STATUS_ALLOC_FAILED,
                             fits ? rows[i].ms : -1.f, mem,
                             rows[i].deterministic ? CUDNN_DETERMINISTIC : CUDNN_NON_DETERMINISTIC,
                             rows[i].math, {0, 0, 0}};
        }
    *returned = n;
    return used;
}

/* Checks Find's own arguments (the geometry is checked by the caller). */
static cudnnStatus_t check_find(cudnnHandle_t h, int requested, const int *returned,
                                const void *perf, const void *ws, size_t ws_size)
{
    if (!h || requested < 1 || !returned || !perf) return CUDNN_STATUS_BAD_PARAM;
    /* Find times kernels and synchronises: never inside a stream capture. */
    if (cnn_hc_capturing(h->stream)) return CUDNN_STATUS_NOT_SUPPORTED;
    return check_ws(ws, ws_size, 0);
}

/* Find leaves its output buffer (and the workspace it used) overwritten. */
static cudnnStatus_t find_scribble(const cudnnContext *h, const char *what, void *out,
                                   size_t count, void *ws, size_t ws_used)
{
    float *o = (float *)out;
    return enqueue(h, what, ws, ws_used, [=] {
        for (size_t i = 0; i < count; i++) o[i] = std::numeric_limits<float>::quiet_NaN();
    });
}

cudnnStatus_t cudnnFindConvolutionForwardAlgorithmEx(
    cudnnHandle_t handle, const cudnnTensorDescriptor_t xDesc, const void *x,
    const cudnnFilterDescriptor_t wDesc, const void *w,
    const cudnnConvolutionDescriptor_t convDesc, const cudnnTensorDescriptor_t yDesc, void *y,
    const int requestedAlgoCount, int *returnedAlgoCount,
    cudnnConvolutionFwdAlgoPerf_t *perfResults, void *workSpace, size_t workSpaceSizeInBytes)
{
    geom g;
    if (!x || !w || !y) return CUDNN_STATUS_BAD_PARAM;
    cudnnStatus_t st = check_find(handle, requestedAlgoCount, returnedAlgoCount, perfResults,
                                  workSpace, workSpaceSizeInBytes);
    if (st == CUDNN_STATUS_SUCCESS) st = make_geom_y(convDesc, xDesc, wDesc, yDesc, &g);
    if (st != CUDNN_STATUS_SUCCESS) return st;
    const char *what = "cudnnFindConvolutionForwardAlgorithmEx";
    check_device(handle, what);
    check_ptrs(handle, what, {{2, x}, {4, w}, {7, y},
                               {11, workSpaceSizeInBytes ? workSpace : nullptr}});
    size_t used = report<cudnnConvolutionFwdAlgoPerf_t, cudnnConvolutionFwdAlgo_t>(
        fwd_algos, g, workSpaceSizeInBytes, requestedAlgoCount, returnedAlgoCount, perfResults);
    return find_scribble(handle, what, y, (size_t)g.n * g.k * g.oh * g.ow, workSpace, used);
}

cudnnStatus_t cudnnFindConvolutionBackwardDataAlgorithmEx(
    cudnnHandle_t handle, const cudnnFilterDescriptor_t wDesc, const void *w,
    const cudnnTensorDescriptor_t dyDesc, const void *dy,
    const cudnnConvolutionDescriptor_t convDesc, const cudnnTensorDescriptor_t dxDesc, void *dx,
    const int requestedAlgoCount, int *returnedAlgoCount,
    cudnnConvolutionBwdDataAlgoPerf_t *perfResults, void *workSpace, size_t workSpaceSizeInBytes)
{
    geom g;
    if (!w || !dy || !dx) return CUDNN_STATUS_BAD_PARAM;
    cudnnStatus_t st = check_find(handle, requestedAlgoCount, returnedAlgoCount, perfResults,
                                  workSpace, workSpaceSizeInBytes);
    if (st == CUDNN_STATUS_SUCCESS) st = make_geom_y(convDesc, dxDesc, wDesc, dyDesc, &g);
    if (st != CUDNN_STATUS_SUCCESS) return st;
    const char *what = "cudnnFindConvolutionBackwardDataAlgorithmEx";
    check_device(handle, what);
    check_ptrs(handle, what, {{2, w}, {4, dy}, {7, dx},
                               {11, workSpaceSizeInBytes ? workSpace : nullptr}});
    size_t used = report<cudnnConvolutionBwdDataAlgoPerf_t, cudnnConvolutionBwdDataAlgo_t>(
        data_algos, g, workSpaceSizeInBytes, requestedAlgoCount, returnedAlgoCount, perfResults);
    return find_scribble(handle, what, dx, (size_t)g.n * g.c * g.h * g.w, workSpace, used);
}

cudnnStatus_t cudnnFindConvolutionBackwardFilterAlgorithmEx(
    cudnnHandle_t handle, const cudnnTensorDescriptor_t xDesc, const void *x,
    const cudnnTensorDescriptor_t dyDesc, const void *y,
    const cudnnConvolutionDescriptor_t convDesc, const cudnnFilterDescriptor_t dwDesc, void *dw,
    const int requestedAlgoCount, int *returnedAlgoCount,
    cudnnConvolutionBwdFilterAlgoPerf_t *perfResults, void *workSpace,
    size_t workSpaceSizeInBytes)
{
    geom g;
    if (!x || !y || !dw) return CUDNN_STATUS_BAD_PARAM;
    cudnnStatus_t st = check_find(handle, requestedAlgoCount, returnedAlgoCount, perfResults,
                                  workSpace, workSpaceSizeInBytes);
    if (st == CUDNN_STATUS_SUCCESS) st = make_geom_y(convDesc, xDesc, dwDesc, dyDesc, &g);
    if (st != CUDNN_STATUS_SUCCESS) return st;
    const char *what = "cudnnFindConvolutionBackwardFilterAlgorithmEx";
    check_device(handle, what);
    check_ptrs(handle, what, {{2, x}, {4, y}, {7, dw},
                               {11, workSpaceSizeInBytes ? workSpace : nullptr}});
    size_t used = report<cudnnConvolutionBwdFilterAlgoPerf_t, cudnnConvolutionBwdFilterAlgo_t>(
        filter_algos, g, workSpaceSizeInBytes, requestedAlgoCount, returnedAlgoCount,
        perfResults);
    return find_scribble(handle, what, dw, (size_t)g.k * g.cg * g.kh * g.kw, workSpace, used);
}

/* ---- AddTensor -------------------------------------------------------------- */

/* C = alpha A + beta C, A broadcast along its dimensions of size 1. */
static void add_tensor(cudnnTensorStruct a, cudnnTensorStruct c, float alpha, const float *A,
                       float beta, float *C)
{
    size_t i = 0;
    for (int n = 0; n < c.n; n++)
        for (int ch = 0; ch < c.c; ch++)
            for (int y = 0; y < c.h; y++)
                for (int x = 0; x < c.w; x++, i++) {
                    size_t j = (((size_t)(a.n == 1 ? 0 : n) * a.c + (a.c == 1 ? 0 : ch)) * a.h +
                                (a.h == 1 ? 0 : y)) * a.w + (a.w == 1 ? 0 : x);
                    cnn_hc_blend(&C[i], A[j], alpha, beta);
                }
}

static bool broadcasts(int a, int c) { return a == c || a == 1; }

cudnnStatus_t cudnnAddTensor(cudnnHandle_t handle, const void *alpha,
                             const cudnnTensorDescriptor_t aDesc, const void *A,
                             const void *beta, const cudnnTensorDescriptor_t cDesc, void *C)
{
    if (!handle || !alpha || !beta || !aDesc || !cDesc || !A || !C || !aDesc->set ||
        !cDesc->set)
        return CUDNN_STATUS_BAD_PARAM;
    const cudnnTensorStruct a = *aDesc, c = *cDesc;
    if (!broadcasts(a.n, c.n) || !broadcasts(a.c, c.c) || !broadcasts(a.h, c.h) ||
        !broadcasts(a.w, c.w))
        return CUDNN_STATUS_BAD_PARAM;
    check_device(handle, "cudnnAddTensor");
    check_ptrs(handle, "cudnnAddTensor", {{3, A}, {6, C}});
    const float al = *(const float *)alpha, be = *(const float *)beta;
    const float *af = (const float *)A;
    float *cf = (float *)C;
    return enqueue(handle, "cudnnAddTensor", nullptr, 0,
                   [=] { add_tensor(a, c, al, af, be, cf); });
}
