/* cuBLAS subset: column-major GEMM as the cuBLAS documentation defines it,
 *   C = alpha op(A) op(B) + beta C,  op(A) m x k,  op(B) k x n,  C m x n,
 * with element (i, j) of a matrix X of leading dimension ldx at X[i + j * ldx], and op(X) = X for
 * CUBLAS_OP_N, X^T for CUBLAS_OP_T and CUBLAS_OP_C (real data). Each product is a plain triple
 * loop accumulating in float, in order of k. When beta is 0, C is written without being read (so a
 * NaN in C does not propagate), and when alpha is 0, A and B are not read, as BLAS specifies. */
#include "emu_cublas.h"
#include "emu_internal.h"
#include "emu_report.h"

#include <algorithm>
#include <cstdio>
#include <mutex>
#include <set>
#include <vector>

struct cublasContext {
    cudaStream_t stream;
    cublasMath_t math_mode;
    bool user_workspace; /* false: cuBLAS's default pool */
    void *workspace;
    size_t workspace_bytes;
};

namespace
{

/* ---- Types ---- */

/* TF32 keeps 10 of float's 23 mantissa bits: adding half of the dropped part and clearing it rounds
 * to nearest, ties away from zero, as the cvt.rna.tf32.f32 instruction does. */
constexpr uint32_t kTf32DroppedBits = 0x1FFF;
constexpr uint32_t kTf32Half = 0x1000;
constexpr int kEmulatedVersion = 130000; /* cuBLAS 13.0.0, of the CUDA 13.0 toolkit the project builds with */
/* cublasSetWorkspace's documented alignment for the workspace pointer. */
constexpr uintptr_t kWorkspaceAlign = 256;

struct Gemm {
    cublasOperation_t transa, transb;
    int m, n, k;
    float alpha;
    const float *A;
    int lda;
    long long strideA;
    const float *B;
    int ldb;
    long long strideB;
    float beta;
    float *C;
    int ldc;
    long long strideC;
    int batch;
    bool tf32;
};

std::mutex handles_mutex;
std::set<cublasContext *> handles;

/* ---- Helpers ---- */

bool live(cublasHandle_t h)
{
    std::lock_guard<std::mutex> lock(handles_mutex);
    return h && handles.count(h);
}

bool valid_op(cublasOperation_t op)
{
    return op == CUBLAS_OP_N || op == CUBLAS_OP_T || op == CUBLAS_OP_C;
}

float to_tf32(float x)
{
    if (!std::isfinite(x))
        return x;
    uint32_t bits;
    std::memcpy(&bits, &x, sizeof bits);
    bits = (bits + kTf32Half) & ~kTf32DroppedBits;
    std::memcpy(&x, &bits, sizeof bits);
    return x;
}

/* Elements from the first to the last one a column-major rows x cols matrix touches. */
long long extent(int rows, int cols, int ld)
{
    return rows == 0 || cols == 0 ? 0 : (long long)(cols - 1) * ld + rows;
}

bool inside_device_memory(const float *p, long long elements, long long stride, int batch)
{
    if (elements == 0 || batch == 0)
        return true;
    long long span = (long long)(batch - 1) * stride + elements;
    return stride >= 0 && emu::is_device_range(p, (size_t)span * sizeof(float));
}

/* op(X) as a contiguous column-major rows x cols copy, each element rounded to TF32 when asked, so that
 * the product's inner loop runs over consecutive memory. */
void gather(std::vector<float> &out, const float *X, cublasOperation_t op, int rows, int cols, int ld, bool tf32)
{
    out.resize((size_t)rows * cols);
    for (int c = 0; c < cols; ++c)
        for (int r = 0; r < rows; ++r) {
            const float x = op == CUBLAS_OP_N ? X[r + (long long)c * ld] : X[c + (long long)r * ld];
            out[r + (size_t)c * rows] = tf32 ? to_tf32(x) : x;
        }
}

/* For each column j of C, the sums of all its elements at once, l in order 0..k-1 for each: the same
 * additions in the same order as a loop per element, with the inner loop over i contiguous. */
void run_gemm(const Gemm &g)
{
    std::vector<float> a, b, sum(g.m);
    for (int batch = 0; batch < g.batch; ++batch) {
        const float *A = g.A + batch * g.strideA, *B = g.B + batch * g.strideB;
        float *C = g.C + batch * g.strideC;
        if (g.alpha != 0.0f) {
            gather(a, A, g.transa, g.m, g.k, g.lda, g.tf32);
            gather(b, B, g.transb, g.k, g.n, g.ldb, g.tf32);
        }
        for (int j = 0; j < g.n; ++j) {
            std::fill(sum.begin(), sum.end(), 0.0f);
            if (g.alpha != 0.0f)
                for (int l = 0; l < g.k; ++l) {
                    const float x = b[l + (size_t)j * g.k], *column = &a[(size_t)l * g.m];
                    for (int i = 0; i < g.m; ++i)
                        sum[i] += column[i] * x;
                }
            for (int i = 0; i < g.m; ++i) {
                float &c = C[i + (long long)j * g.ldc];
                c = g.beta == 0.0f ? g.alpha * sum[i] : g.alpha * sum[i] + g.beta * c;
            }
        }
    }
}

/* The argument checks cuBLAS documents for gemm, then the emulator's check that the matrices lie
 * inside device allocations, then the product on the handle's stream. */
cublasStatus_t gemm(cublasHandle_t handle, const Gemm &g, const float *alpha, const float *beta, const char *name)
{
    if (!live(handle))
        return CUBLAS_STATUS_NOT_INITIALIZED;
    const int a_rows = g.transa == CUBLAS_OP_N ? g.m : g.k, a_cols = g.transa == CUBLAS_OP_N ? g.k : g.m;
    const int b_rows = g.transb == CUBLAS_OP_N ? g.k : g.n, b_cols = g.transb == CUBLAS_OP_N ? g.n : g.k;
    if (g.m < 0 || g.n < 0 || g.k < 0 || g.batch < 0 || !valid_op(g.transa) || !valid_op(g.transb) ||
        g.lda < std::max(1, a_rows) || g.ldb < std::max(1, b_rows) || g.ldc < std::max(1, g.m) || !alpha || !beta ||
        (!g.C && g.m > 0 && g.n > 0))
        return CUBLAS_STATUS_INVALID_VALUE;
    if (g.m == 0 || g.n == 0 || g.batch == 0)
        return CUBLAS_STATUS_SUCCESS;
    Gemm run = g;
    run.alpha = *alpha;
    run.beta = *beta;
    const char *bad = nullptr;
    if (!inside_device_memory(g.C, extent(g.m, g.n, g.ldc), g.strideC, g.batch))
        bad = "C";
    else if (run.alpha != 0.0f && !inside_device_memory(g.A, extent(a_rows, a_cols, g.lda), g.strideA, g.batch))
        bad = "A";
    else if (run.alpha != 0.0f && !inside_device_memory(g.B, extent(b_rows, b_cols, g.ldb), g.strideB, g.batch))
        bad = "B";
    if (bad) {
        char what[256];
        snprintf(what, sizeof what,
                 "%s (m=%d n=%d k=%d lda=%d ldb=%d ldc=%d batch=%d): matrix %s is not inside one "
                 "device allocation",
                 name, g.m, g.n, g.k, g.lda, g.ldb, g.ldc, g.batch, bad);
        emu::set_device_fault(cudaErrorIllegalAddress, what);
        return CUBLAS_STATUS_EXECUTION_FAILED;
    }
    if (emu::sticky_error() != cudaSuccess)
        return CUBLAS_STATUS_EXECUTION_FAILED;
    cudaError_t e = emu::submit(
        handle->stream,
        [run]() {
            run_gemm(run);
            return cudaSuccess;
        },
        cudaGraphNodeTypeKernel);
    return e == cudaSuccess ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_EXECUTION_FAILED;
}

bool tf32_math(cublasHandle_t h)
{
    /* CUBLAS_TENSOR_OP_MATH allows half-precision inputs, whose 10-bit mantissa TF32 shares. */
    int mode = h->math_mode & 0xf;
    return mode == CUBLAS_TF32_TENSOR_OP_MATH || mode == CUBLAS_TENSOR_OP_MATH;
}

} // namespace

/* ---- Handles ---- */

cublasStatus_t cublasCreate(cublasHandle_t *handle)
{
    if (!handle)
        return CUBLAS_STATUS_INVALID_VALUE;
    std::lock_guard<std::mutex> lock(handles_mutex);
    *handle = new cublasContext{nullptr, CUBLAS_DEFAULT_MATH, false, nullptr, 0};
    handles.insert(*handle);
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasDestroy(cublasHandle_t handle)
{
    std::lock_guard<std::mutex> lock(handles_mutex);
    if (!handles.erase(handle))
        return CUBLAS_STATUS_NOT_INITIALIZED;
    delete handle;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream(cublasHandle_t handle, cudaStream_t stream)
{
    if (!live(handle))
        return CUBLAS_STATUS_NOT_INITIALIZED;
    handle->stream = stream;
    handle->user_workspace = false;
    handle->workspace = nullptr;
    handle->workspace_bytes = 0;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGetStream(cublasHandle_t handle, cudaStream_t *stream)
{
    if (!live(handle))
        return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!stream)
        return CUBLAS_STATUS_INVALID_VALUE;
    *stream = handle->stream;
    return CUBLAS_STATUS_SUCCESS;
}

/* cuBLAS documents the handle check and the 256-byte alignment. Beyond that the emulator wants the
 * whole buffer inside one device allocation, so that a host pointer, a wrong size or a freed buffer
 * is caught here rather than by a GPU kernel writing through it. NULL with 0 bytes is accepted: it
 * is a workspace of no bytes, which per the documentation also keeps cuBLAS off its default pool. */
cublasStatus_t cublasSetWorkspace(cublasHandle_t handle, void *workspace, size_t workspaceSizeInBytes)
{
    if (!live(handle))
        return CUBLAS_STATUS_NOT_INITIALIZED;
    if ((uintptr_t)workspace % kWorkspaceAlign != 0)
        return CUBLAS_STATUS_INVALID_VALUE;
    if ((workspace || workspaceSizeInBytes) && !emu::is_device_range(workspace, workspaceSizeInBytes))
        return CUBLAS_STATUS_INVALID_VALUE;
    handle->user_workspace = true;
    handle->workspace = workspace;
    handle->workspace_bytes = workspaceSizeInBytes;
    return CUBLAS_STATUS_SUCCESS;
}

int emu_cublas_workspace(struct cublasContext *handle, void **workspace, size_t *bytes)
{
    if (!live(handle))
        return -1;
    if (workspace)
        *workspace = handle->workspace;
    if (bytes)
        *bytes = handle->workspace_bytes;
    return handle->user_workspace ? 1 : 0;
}

cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode)
{
    if (!live(handle))
        return CUBLAS_STATUS_NOT_INITIALIZED;
    int base = mode & 0xf, flags = mode & ~0xf;
    if (base > CUBLAS_TF32_TENSOR_OP_MATH || (flags & ~CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION))
        return CUBLAS_STATUS_INVALID_VALUE;
    handle->math_mode = mode;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGetMathMode(cublasHandle_t handle, cublasMath_t *mode)
{
    if (!live(handle))
        return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!mode)
        return CUBLAS_STATUS_INVALID_VALUE;
    *mode = handle->math_mode;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGetVersion(cublasHandle_t handle, int *version)
{
    if (!live(handle))
        return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!version)
        return CUBLAS_STATUS_INVALID_VALUE;
    *version = kEmulatedVersion;
    return CUBLAS_STATUS_SUCCESS;
}

/* Each status's name and the meaning the cuBLAS documentation gives it. */
static const struct {
    cublasStatus_t status;
    const char *name, *text;
} kStatuses[] = {
    {CUBLAS_STATUS_SUCCESS, "CUBLAS_STATUS_SUCCESS", "the operation completed successfully"},
    {CUBLAS_STATUS_NOT_INITIALIZED, "CUBLAS_STATUS_NOT_INITIALIZED", "the cuBLAS library was not initialized"},
    {CUBLAS_STATUS_ALLOC_FAILED, "CUBLAS_STATUS_ALLOC_FAILED", "resource allocation failed inside the cuBLAS library"},
    {CUBLAS_STATUS_INVALID_VALUE, "CUBLAS_STATUS_INVALID_VALUE",
     "an unsupported value or parameter was passed to the function"},
    {CUBLAS_STATUS_ARCH_MISMATCH, "CUBLAS_STATUS_ARCH_MISMATCH",
     "the function requires a feature absent from the device architecture"},
    {CUBLAS_STATUS_MAPPING_ERROR, "CUBLAS_STATUS_MAPPING_ERROR", "an access to GPU memory space failed"},
    {CUBLAS_STATUS_EXECUTION_FAILED, "CUBLAS_STATUS_EXECUTION_FAILED", "the GPU program failed to execute"},
    {CUBLAS_STATUS_INTERNAL_ERROR, "CUBLAS_STATUS_INTERNAL_ERROR", "an internal cuBLAS operation failed"},
    {CUBLAS_STATUS_NOT_SUPPORTED, "CUBLAS_STATUS_NOT_SUPPORTED", "the functionality requested is not supported"},
    {CUBLAS_STATUS_LICENSE_ERROR, "CUBLAS_STATUS_LICENSE_ERROR", "the functionality requested requires some license"},
};

const char *cublasGetStatusName(cublasStatus_t status)
{
    for (const auto &s : kStatuses)
        if (s.status == status)
            return s.name;
    return "CUBLAS_STATUS_UNKNOWN";
}

const char *cublasGetStatusString(cublasStatus_t status)
{
    for (const auto &s : kStatuses)
        if (s.status == status)
            return s.text;
    return "unknown cuBLAS status";
}

/* ---- GEMM ---- */

cublasStatus_t cublasSgemm(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n,
                           int k, const float *alpha, const float *A, int lda, const float *B, int ldb,
                           const float *beta, float *C, int ldc)
{
    Gemm g{transa, transb, m, n, k, 0.0f, A, lda, 0, B, ldb, 0, 0.0f, C, ldc, 0, 1, live(handle) && tf32_math(handle)};
    return gemm(handle, g, alpha, beta, "cublasSgemm");
}

cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb,
                                         int m, int n, int k, const float *alpha, const float *A, int lda,
                                         long long int strideA, const float *B, int ldb, long long int strideB,
                                         const float *beta, float *C, int ldc, long long int strideC, int batchCount)
{
    Gemm g{transa, transb, m,       n,    k, 0.0f, A,       lda,        strideA,
           B,      ldb,    strideB, 0.0f, C, ldc,  strideC, batchCount, live(handle) && tf32_math(handle)};
    return gemm(handle, g, alpha, beta, "cublasSgemmStridedBatched");
}

cublasStatus_t cublasGemmEx(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n,
                            int k, const void *alpha, const void *A, cudaDataType Atype, int lda, const void *B,
                            cudaDataType Btype, int ldb, const void *beta, void *C, cudaDataType Ctype, int ldc,
                            cublasComputeType_t computeType, cublasGemmAlgo_t algo)
{
    (void)algo;
    if (!live(handle))
        return CUBLAS_STATUS_NOT_INITIALIZED;
    bool tf32;
    switch (computeType) {
    case CUBLAS_COMPUTE_32F:
        tf32 = tf32_math(handle);
        break;
    case CUBLAS_COMPUTE_32F_PEDANTIC:
        tf32 = false;
        break;
    case CUBLAS_COMPUTE_32F_FAST_TF32:
    case CUBLAS_COMPUTE_32F_FAST_16F:
    case CUBLAS_COMPUTE_32F_FAST_16BF:
        tf32 = true;
        break;
    default:
        return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    if (Atype != CUDA_R_32F || Btype != CUDA_R_32F || Ctype != CUDA_R_32F)
        return CUBLAS_STATUS_NOT_SUPPORTED;
    Gemm g{transa,
           transb,
           m,
           n,
           k,
           0.0f,
           static_cast<const float *>(A),
           lda,
           0,
           static_cast<const float *>(B),
           ldb,
           0,
           0.0f,
           static_cast<float *>(C),
           ldc,
           0,
           1,
           tf32};
    return gemm(handle, g, static_cast<const float *>(alpha), static_cast<const float *>(beta), "cublasGemmEx");
}
