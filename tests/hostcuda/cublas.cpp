/* cublas.cpp (tests/hostcuda) — cuBLAS on the CPU for the hostcuda build:
 * handles, stream, workspace and math mode, and single-precision GEMM and
 * GEMV with cuBLAS's semantics: column-major, host pointer mode (alpha and
 * beta read at call time), arguments validated as cuBLAS does, C not read
 * when beta is 0, products accumulated in double (GEMM without TF32 goes
 * through OpenBLAS, in float, for speed). Every device pointer is checked
 * at call time; the arithmetic is enqueued on the handle's stream
 * (so that it runs in order with kernels, or is recorded into a graph).
 * With CUBLAS_TF32_TENSOR_OP_MATH, GEMM rounds its factors to TF32 first,
 * as tensor cores do (GEMV, memory-bound, stays fp32 as on a GPU). */
#include <cblas.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "cuda_runtime.h"
#include "libs.h"
#include "cublas_v2.h"

struct cublasContext {
    int device;          /* current device at cublasCreate */
    cudaStream_t stream; /* NULL until cublasSetStream */
    void *workspace;     /* user workspace (never used by this stand-in) */
    size_t workspace_bytes;
    cublasMath_t math;
};

/* A handle belongs to the device current at its creation. */
static void check_device(const cublasContext *h, const char *what)
{
    cnn_hc_check_handle_device("cuBLAS", h->device, what);
}

static int max1(int v) { return v > 1 ? v : 1; }

static bool valid_op(cublasOperation_t op) { return op == CUBLAS_OP_N || op == CUBLAS_OP_T; }

cublasStatus_t cublasCreate(cublasHandle_t *handle)
{
    if (!handle) return CUBLAS_STATUS_INVALID_VALUE;
    int dev;
    if (cudaGetDevice(&dev) != cudaSuccess) return CUBLAS_STATUS_NOT_INITIALIZED;
    *handle = new cublasContext{dev, nullptr, nullptr, 0, CUBLAS_DEFAULT_MATH};
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasDestroy(cublasHandle_t handle)
{
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    delete handle;
    return CUBLAS_STATUS_SUCCESS;
}

/* Like cuBLAS, also drops a user workspace back to the default pool. */
cublasStatus_t cublasSetStream(cublasHandle_t handle, cudaStream_t streamId)
{
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    handle->stream = streamId;
    handle->workspace = nullptr;
    handle->workspace_bytes = 0;
    return CUBLAS_STATUS_SUCCESS;
}

/* The workspace must be device memory. (cuBLAS also wants it 256-byte
 * aligned, which real cudaMalloc guarantees; not checked here.) */
cublasStatus_t cublasSetWorkspace(cublasHandle_t handle, void *workspace,
                                  size_t workspaceSizeInBytes)
{
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!workspace && workspaceSizeInBytes) return CUBLAS_STATUS_INVALID_VALUE;
    if ((uintptr_t)workspace % 256) return CUBLAS_STATUS_INVALID_VALUE; /* cuBLAS: 256-byte aligned */
    cnn_hc_check_device_pointer(handle->stream, "cublasSetWorkspace", 1, workspace);
    handle->workspace = workspace;
    handle->workspace_bytes = workspaceSizeInBytes;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode)
{
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (mode != CUBLAS_DEFAULT_MATH && mode != CUBLAS_TF32_TENSOR_OP_MATH)
        return CUBLAS_STATUS_INVALID_VALUE;
    handle->math = mode;
    return CUBLAS_STATUS_SUCCESS;
}

/* Column-major GEMM body, run by the stream. */
static void gemm_body(bool ta, bool tb, int m, int n, int k, float alpha, const float *A,
                      int lda, const float *B, int ldb, float beta, float *C, int ldc, bool tf32)
{
    if (!tf32 && alpha != 0.f && k > 0) {
        /* OpenBLAS in float, for speed; C zeroed first so that beta 0 never reads it. */
        if (beta == 0.f)
            for (int j = 0; j < n; j++) memset(C + (size_t)j * ldc, 0, (size_t)m * sizeof(float));
        cblas_sgemm(CblasColMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                    m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    for (int j = 0; j < n; j++)
        for (int i = 0; i < m; i++) {
            double acc = 0;
            if (alpha != 0.f) /* A and B are not read when alpha is 0 */
                for (int l = 0; l < k; l++) {
                    float a = ta ? A[l + (size_t)i * lda] : A[i + (size_t)l * lda];
                    float b = tb ? B[j + (size_t)l * ldb] : B[l + (size_t)j * ldb];
                    if (tf32) a = cnn_hc_to_tf32(a), b = cnn_hc_to_tf32(b);
                    acc += (double)a * b;
                }
            cnn_hc_blend(&C[i + (size_t)j * ldc], acc, alpha, beta);
        }
}

cublasStatus_t cublasSgemm(cublasHandle_t handle, cublasOperation_t transa,
                           cublasOperation_t transb, int m, int n, int k, const float *alpha,
                           const float *A, int lda, const float *B, int ldb, const float *beta,
                           float *C, int ldc)
{
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!valid_op(transa) || !valid_op(transb) || m < 0 || n < 0 || k < 0 ||
        lda < max1(transa == CUBLAS_OP_N ? m : k) || ldb < max1(transb == CUBLAS_OP_N ? k : n) ||
        ldc < max1(m) || !alpha || !beta)
        return CUBLAS_STATUS_INVALID_VALUE;
    if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
    /* Without a workspace of ours cuBLAS allocates one, which a graph
     * being recorded cannot hold. */
    if (cnn_hc_capturing(handle->stream) && !handle->workspace) return CUBLAS_STATUS_NOT_SUPPORTED;
    check_device(handle, "cublasSgemm");
    cudaStream_t s = handle->stream;
    cnn_hc_check_device_pointer(s, "cublasSgemm", 7, A);
    cnn_hc_check_device_pointer(s, "cublasSgemm", 9, B);
    cnn_hc_check_device_pointer(s, "cublasSgemm", 12, C);
    const float al = *alpha, be = *beta;
    const bool ta = transa == CUBLAS_OP_T, tb = transb == CUBLAS_OP_T;
    const bool tf32 = handle->math == CUBLAS_TF32_TENSOR_OP_MATH;
    cudaError_t e = cnn_hc_enqueue(s, "cublasSgemm", [=] {
        gemm_body(ta, tb, m, n, k, al, A, lda, B, ldb, be, C, ldc, tf32);
    });
    return e == cudaSuccess ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_EXECUTION_FAILED;
}

/* Index of element i of a strided vector of len elements (BLAS: a negative
 * increment walks it from the end). */
static size_t vec_at(int i, int len, int inc)
{
    return inc > 0 ? (size_t)i * inc : (size_t)(len - 1 - i) * (size_t)-inc;
}

/* Column-major GEMV body: A is m x n; y has op(A)'s rows. */
static void gemv_body(bool t, int m, int n, float alpha, const float *A, int lda,
                      const float *x, int incx, float beta, float *y, int incy)
{
    int ny = t ? n : m, nx = t ? m : n;
    for (int i = 0; i < ny; i++) {
        double acc = 0;
        if (alpha != 0.f)
            for (int l = 0; l < nx; l++) {
                float a = t ? A[l + (size_t)i * lda] : A[i + (size_t)l * lda];
                acc += (double)a * x[vec_at(l, nx, incx)];
            }
        cnn_hc_blend(&y[vec_at(i, ny, incy)], acc, alpha, beta);
    }
}

cublasStatus_t cublasSgemv(cublasHandle_t handle, cublasOperation_t trans, int m, int n,
                           const float *alpha, const float *A, int lda, const float *x, int incx,
                           const float *beta, float *y, int incy)
{
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!valid_op(trans) || m < 0 || n < 0 || lda < max1(m) || incx == 0 || incy == 0 ||
        !alpha || !beta)
        return CUBLAS_STATUS_INVALID_VALUE;
    if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
    check_device(handle, "cublasSgemv");
    cudaStream_t s = handle->stream;
    cnn_hc_check_device_pointer(s, "cublasSgemv", 5, A);
    cnn_hc_check_device_pointer(s, "cublasSgemv", 7, x);
    cnn_hc_check_device_pointer(s, "cublasSgemv", 10, y);
    const float al = *alpha, be = *beta;
    const bool t = trans == CUBLAS_OP_T;
    cudaError_t e = cnn_hc_enqueue(s, "cublasSgemv", [=] {
        gemv_body(t, m, n, al, A, lda, x, incx, be, y, incy);
    });
    return e == cudaSuccess ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_EXECUTION_FAILED;
}
