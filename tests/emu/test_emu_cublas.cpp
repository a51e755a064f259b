/* The emulated cuBLAS against a naive column-major triple loop written here from the cuBLAS
 * definition: every transpose combination, odd non-square sizes, padded leading dimensions,
 * non-trivial alpha and beta, strided batches, GemmEx, the documented argument errors, and the
 * workspace that cublasSetWorkspace sets. */
#include "charrnn_cuda.h"
#include "emu_report.h"

#include <cmath>
#include <criterion/criterion.h>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

static void reset_device(void)
{
    cudaDeviceReset();
}

TestSuite(emu_cublas, .fini = reset_device);

/* Sizes and paddings chosen so that every dimension differs and no leading dimension equals a row count. */
static const int M = 7, N = 5, K = 3, PAD = 2;
static const float ALPHA = 1.5f, BETA = -0.75f;
/* The inputs are multiples of 1/8 and alpha, beta are 1.5 and -0.75: every product, sum and scaling is
 * exact in float, so results must equal the reference exactly. */
static const float TOLERANCE = 0.0f;

/* Element (i, j) of op(X) for a column-major X with leading dimension ld. */
static float op_at(const std::vector<float> &X, int ld, bool trans, int i, int j)
{
    return trans ? X[j + (size_t)i * ld] : X[i + (size_t)j * ld];
}

/* C = alpha op(A) op(B) + beta C, the plain definition. */
static void reference_gemm(bool ta, bool tb, int m, int n, int k, float alpha, const std::vector<float> &A, int lda,
                           const std::vector<float> &B, int ldb, float beta, std::vector<float> &C, int ldc)
{
    for (int i = 0; i < m; ++i)
        for (int j = 0; j < n; ++j) {
            double sum = 0.0;
            for (int l = 0; l < k; ++l)
                sum += (double)op_at(A, lda, ta, i, l) * op_at(B, ldb, tb, l, j);
            C[i + (size_t)j * ldc] = (float)(alpha * sum + beta * C[i + (size_t)j * ldc]);
        }
}

static std::vector<float> filled(size_t n, int seed)
{
    std::vector<float> v(n);
    for (size_t i = 0; i < n; ++i)
        v[i] = (float)(((int)i * 29 + seed * 13) % 17 - 8) / 8.0f;
    return v;
}

template <class T> static T *to_device(const std::vector<T> &host)
{
    T *d = nullptr;
    cr_assert_eq(cudaMalloc(&d, host.size() * sizeof(T)), cudaSuccess);
    cr_assert_eq(cudaMemcpy(d, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice), cudaSuccess);
    return d;
}

template <class T> static std::vector<T> to_host(const T *d, size_t n)
{
    std::vector<T> host(n);
    cr_assert_eq(cudaMemcpy(host.data(), d, n * sizeof(T), cudaMemcpyDeviceToHost), cudaSuccess);
    return host;
}

/* The stored shape of A (rows x cols) for op(A) of m x k. */
struct Layout {
    int rows, cols, ld;
};
static Layout stored(bool trans, int op_rows, int op_cols)
{
    Layout l = {trans ? op_cols : op_rows, trans ? op_rows : op_cols, 0};
    l.ld = l.rows + PAD;
    return l;
}

static void check_close(const std::vector<float> &got, const std::vector<float> &want, const char *what)
{
    cr_assert_eq(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i)
        cr_assert(std::fabs(got[i] - want[i]) <= TOLERANCE, "%s: element %zu is %g, expected %g", what, i, got[i],
                  want[i]);
}

Test(emu_cublas, sgemm_matches_the_definition_for_every_transpose_combination)
{
    cublasHandle_t h;
    cr_assert_eq(cublasCreate(&h), CUBLAS_STATUS_SUCCESS);
    const cublasOperation_t ops[] = {CUBLAS_OP_N, CUBLAS_OP_T, CUBLAS_OP_C};
    for (cublasOperation_t opa : ops)
        for (cublasOperation_t opb : ops) {
            const bool ta = opa != CUBLAS_OP_N, tb = opb != CUBLAS_OP_N;
            const Layout a = stored(ta, M, K), b = stored(tb, K, N);
            const int ldc = M + PAD + 1;
            std::vector<float> A = filled((size_t)a.ld * a.cols, 1), B = filled((size_t)b.ld * b.cols, 2);
            std::vector<float> C = filled((size_t)ldc * N, 3), want = C;
            reference_gemm(ta, tb, M, N, K, ALPHA, A, a.ld, B, b.ld, BETA, want, ldc);
            float *dA = to_device(A), *dB = to_device(B), *dC = to_device(C);
            cr_assert_eq(cublasSgemm(h, opa, opb, M, N, K, &ALPHA, dA, a.ld, dB, b.ld, &BETA, dC, ldc),
                         CUBLAS_STATUS_SUCCESS);
            char what[64];
            snprintf(what, sizeof what, "op(A)=%d op(B)=%d", (int)opa, (int)opb);
            check_close(to_host(dC, C.size()), want, what);
            for (float *d : {dA, dB, dC})
                cudaFree(d);
        }
    cr_assert_eq(cublasDestroy(h), CUBLAS_STATUS_SUCCESS);
}

Test(emu_cublas, sgemm_leaves_the_padding_rows_of_c_untouched)
{
    cublasHandle_t h;
    cublasCreate(&h);
    const int ldc = M + PAD;
    std::vector<float> A = filled((size_t)M * K, 4), B = filled((size_t)K * N, 5), C((size_t)ldc * N, 42.0f);
    float *dA = to_device(A), *dB = to_device(B), *dC = to_device(C);
    cr_assert_eq(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, M, N, K, &ALPHA, dA, M, dB, K, &BETA, dC, ldc),
                 CUBLAS_STATUS_SUCCESS);
    std::vector<float> got = to_host(dC, C.size());
    for (int j = 0; j < N; ++j)
        for (int i = M; i < ldc; ++i)
            cr_assert_eq(got[i + (size_t)j * ldc], 42.0f, "padding row %d of column %d", i, j);
    cublasDestroy(h);
}

Test(emu_cublas, beta_zero_overwrites_c_without_reading_it)
{
    cublasHandle_t h;
    cublasCreate(&h);
    const float zero = 0.0f;
    std::vector<float> A = filled((size_t)M * K, 6), B = filled((size_t)K * N, 7), C((size_t)M * N, NAN);
    std::vector<float> want((size_t)M * N, 0.0f);
    reference_gemm(false, false, M, N, K, ALPHA, A, M, B, K, 0.0f, want, M);
    float *dA = to_device(A), *dB = to_device(B), *dC = to_device(C);
    cr_assert_eq(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, M, N, K, &ALPHA, dA, M, dB, K, &zero, dC, M),
                 CUBLAS_STATUS_SUCCESS);
    check_close(to_host(dC, C.size()), want, "beta = 0 with NaN in C");
    cublasDestroy(h);
}

Test(emu_cublas, strided_batched_multiplies_each_batch_at_its_own_offsets)
{
    cublasHandle_t h;
    cublasCreate(&h);
    const int batch = 3;
    const Layout a = stored(true, M, K), b = stored(false, K, N);
    const int ldc = M + PAD;
    const long long sa = (long long)a.ld * a.cols + 3, sb = (long long)b.ld * b.cols + 1, sc = (long long)ldc * N + 2;
    std::vector<float> A = filled(sa * batch, 8), B = filled(sb * batch, 9), C = filled(sc * batch, 10), want = C;
    for (int i = 0; i < batch; ++i) {
        std::vector<float> Ai(A.begin() + i * sa, A.begin() + (i + 1) * sa);
        std::vector<float> Bi(B.begin() + i * sb, B.begin() + (i + 1) * sb);
        std::vector<float> Ci(want.begin() + i * sc, want.begin() + (i + 1) * sc);
        reference_gemm(true, false, M, N, K, ALPHA, Ai, a.ld, Bi, b.ld, BETA, Ci, ldc);
        std::copy(Ci.begin(), Ci.end(), want.begin() + i * sc);
    }
    float *dA = to_device(A), *dB = to_device(B), *dC = to_device(C);
    cr_assert_eq(cublasSgemmStridedBatched(h, CUBLAS_OP_T, CUBLAS_OP_N, M, N, K, &ALPHA, dA, a.ld, sa, dB, b.ld, sb,
                                           &BETA, dC, ldc, sc, batch),
                 CUBLAS_STATUS_SUCCESS);
    check_close(to_host(dC, C.size()), want, "strided batched");
    cublasDestroy(h);
}

Test(emu_cublas, gemm_ex_with_float32_operands_equals_sgemm)
{
    cublasHandle_t h;
    cublasCreate(&h);
    const Layout a = stored(false, M, K), b = stored(true, K, N);
    std::vector<float> A = filled((size_t)a.ld * a.cols, 11), B = filled((size_t)b.ld * b.cols, 12);
    std::vector<float> C = filled((size_t)M * N, 13);
    float *dA = to_device(A), *dB = to_device(B), *dC1 = to_device(C), *dC2 = to_device(C);
    cr_assert_eq(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_T, M, N, K, &ALPHA, dA, a.ld, dB, b.ld, &BETA, dC1, M),
                 CUBLAS_STATUS_SUCCESS);
    cr_assert_eq(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_T, M, N, K, &ALPHA, dA, CUDA_R_32F, a.ld, dB, CUDA_R_32F, b.ld,
                              &BETA, dC2, CUDA_R_32F, M, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                 CUBLAS_STATUS_SUCCESS);
    std::vector<float> c1 = to_host(dC1, C.size()), c2 = to_host(dC2, C.size());
    for (size_t i = 0; i < c1.size(); ++i)
        cr_assert_eq(c1[i], c2[i], "element %zu", i);
    cr_assert_eq(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_T, M, N, K, &ALPHA, dA, CUDA_R_16F, a.ld, dB, CUDA_R_32F, b.ld,
                              &BETA, dC2, CUDA_R_32F, M, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                 CUBLAS_STATUS_NOT_SUPPORTED, "only float32 operands are emulated");
    cublasDestroy(h);
}

Test(emu_cublas, tf32_compute_rounds_the_inputs_to_ten_mantissa_bits)
{
    cublasHandle_t h;
    cublasCreate(&h);
    const float one = 1.0f, zero = 0.0f, a = 1.0f + 1.0f / 4096.0f; /* 2^-12 is below TF32's 2^-10 step */
    float *dA = to_device(std::vector<float>{a}), *dB = to_device(std::vector<float>{1.0f});
    float *dC = to_device(std::vector<float>{0.0f});
    cr_assert_eq(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, 1, 1, 1, &one, dA, CUDA_R_32F, 1, dB, CUDA_R_32F, 1, &zero,
                              dC, CUDA_R_32F, 1, CUBLAS_COMPUTE_32F_FAST_TF32, CUBLAS_GEMM_DEFAULT),
                 CUBLAS_STATUS_SUCCESS);
    cr_assert_eq(to_host(dC, 1)[0], 1.0f);
    cr_assert_eq(cublasSetMathMode(h, CUBLAS_TF32_TENSOR_OP_MATH), CUBLAS_STATUS_SUCCESS);
    cr_assert_eq(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 1, 1, 1, &one, dA, 1, dB, 1, &zero, dC, 1),
                 CUBLAS_STATUS_SUCCESS);
    cr_assert_eq(to_host(dC, 1)[0], 1.0f, "the TF32 math mode applies to Sgemm");
    cr_assert_eq(cublasSetMathMode(h, CUBLAS_DEFAULT_MATH), CUBLAS_STATUS_SUCCESS);
    cr_assert_eq(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 1, 1, 1, &one, dA, 1, dB, 1, &zero, dC, 1),
                 CUBLAS_STATUS_SUCCESS);
    cr_assert_eq(to_host(dC, 1)[0], a);
    cublasDestroy(h);
}

Test(emu_cublas, documented_invalid_arguments_are_rejected)
{
    cublasHandle_t h;
    cublasCreate(&h);
    std::vector<float> host((size_t)(M + PAD) * (M + PAD), 1.0f);
    float *dA = to_device(host), *dB = to_device(host), *dC = to_device(host);
    const cublasStatus_t invalid = CUBLAS_STATUS_INVALID_VALUE;
    cr_assert_eq(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, -1, N, K, &ALPHA, dA, M, dB, K, &BETA, dC, M), invalid);
    cr_assert_eq(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, M, N, K, &ALPHA, dA, M - 1, dB, K, &BETA, dC, M), invalid,
                 "lda < m for op N");
    cr_assert_eq(cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, M, N, K, &ALPHA, dA, K - 1, dB, K, &BETA, dC, M), invalid,
                 "lda < k for op T");
    cr_assert_eq(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_T, M, N, K, &ALPHA, dA, M, dB, N - 1, &BETA, dC, M), invalid,
                 "ldb < n for op T");
    cr_assert_eq(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, M, N, K, &ALPHA, dA, M, dB, K, &BETA, dC, M - 1), invalid,
                 "ldc < m");
    cr_assert_eq(cublasSgemm(h, (cublasOperation_t)9, CUBLAS_OP_N, M, N, K, &ALPHA, dA, M, dB, K, &BETA, dC, M),
                 invalid);
    cr_assert_eq(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, M, N, K, nullptr, dA, M, dB, K, &BETA, dC, M), invalid);
    cr_assert_eq(cublasSgemmStridedBatched(h, CUBLAS_OP_N, CUBLAS_OP_N, M, N, K, &ALPHA, dA, M, 0, dB, K, 0, &BETA, dC,
                                           M, 0, -1),
                 invalid, "negative batch count");
    cr_assert_eq(cublasSgemm(nullptr, CUBLAS_OP_N, CUBLAS_OP_N, M, N, K, &ALPHA, dA, M, dB, K, &BETA, dC, M),
                 CUBLAS_STATUS_NOT_INITIALIZED);
    cr_assert_eq(cublasDestroy(h), CUBLAS_STATUS_SUCCESS);
    cr_assert_eq(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, M, N, K, &ALPHA, dA, M, dB, K, &BETA, dC, M),
                 CUBLAS_STATUS_NOT_INITIALIZED, "a destroyed handle");
    cr_assert_eq(std::string(cublasGetStatusName(invalid)), "CUBLAS_STATUS_INVALID_VALUE");
    cr_assert(std::strlen(cublasGetStatusString(invalid)) > 0);
}

Test(emu_cublas, leading_dimension_that_runs_past_the_allocation_is_a_device_fault)
{
    cublasHandle_t h;
    cublasCreate(&h);
    std::vector<float> A((size_t)M * K, 1.0f), B((size_t)K * N, 1.0f), C((size_t)M * N, 0.0f);
    float *dA = to_device(A), *dB = to_device(B), *dC = to_device(C);
    cr_assert_eq(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, M, N, K, &ALPHA, dA, M + 1, dB, K, &BETA, dC, M),
                 CUBLAS_STATUS_EXECUTION_FAILED, "A is M x K stored with lda = M, read with lda = M + 1");
    cr_assert(std::strstr(emu_last_fault(), "matrix A"), "%s", emu_last_fault());
    cr_assert_eq(cudaDeviceSynchronize(), cudaErrorIllegalAddress);
    cublasDestroy(h);
}

Test(emu_cublas, gemm_on_a_captured_stream_runs_when_the_graph_is_launched)
{
    cublasHandle_t h;
    cublasCreate(&h);
    cudaStream_t s;
    cudaStreamCreate(&s);
    cr_assert_eq(cublasSetStream(h, s), CUBLAS_STATUS_SUCCESS);
    const float one = 1.0f, zero = 0.0f;
    float *dA = to_device(std::vector<float>{3.0f}), *dB = to_device(std::vector<float>{4.0f});
    float *dC = to_device(std::vector<float>{0.0f});
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    cr_assert_eq(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal), cudaSuccess);
    cr_assert_eq(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 1, 1, 1, &one, dA, 1, dB, 1, &zero, dC, 1),
                 CUBLAS_STATUS_SUCCESS);
    cr_assert_eq(cudaStreamEndCapture(s, &graph), cudaSuccess);
    cr_assert_eq(to_host(dC, 1)[0], 0.0f, "capture does not run the product");
    cr_assert_eq(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
    cr_assert_eq(cudaGraphLaunch(exec, s), cudaSuccess);
    cr_assert_eq(cudaStreamSynchronize(s), cudaSuccess);
    cr_assert_eq(to_host(dC, 1)[0], 12.0f);
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);
    cublasDestroy(h);
    cudaStreamDestroy(s);
}

/* A cuBLAS workspace as cuBLAS recommends before graph capture: 256-byte aligned device memory. */
static const size_t WORKSPACE_BYTES = 4096, WORKSPACE_ALIGN = 256;

Test(emu_cublas, workspace_of_aligned_device_memory_is_kept_until_the_stream_changes)
{
    cublasHandle_t h;
    cublasCreate(&h);
    char *ws = nullptr;
    void *got = nullptr;
    size_t bytes = 0;
    cr_assert_eq(cudaMalloc(&ws, WORKSPACE_BYTES), cudaSuccess);
    cr_assert_eq(emu_cublas_workspace(h, &got, &bytes), 0, "a new handle uses the default pool");
    cr_assert_eq(cublasSetWorkspace(h, ws, WORKSPACE_BYTES), CUBLAS_STATUS_SUCCESS);
    cr_assert_eq(emu_cublas_workspace(h, &got, &bytes), 1);
    cr_assert_eq(got, (void *)ws);
    cr_assert_eq(bytes, WORKSPACE_BYTES);
    cr_assert_eq(cublasSetWorkspace(h, ws + WORKSPACE_ALIGN, WORKSPACE_BYTES - WORKSPACE_ALIGN),
                 CUBLAS_STATUS_SUCCESS, "an aligned part of an allocation");
    cr_assert_eq(cublasSetWorkspace(h, nullptr, 0), CUBLAS_STATUS_SUCCESS);
    cr_assert_eq(emu_cublas_workspace(h, &got, &bytes), 1, "an empty workspace still replaces the default pool");
    cr_assert_eq(got, nullptr);
    cr_assert_eq(cublasSetWorkspace(h, ws, WORKSPACE_BYTES), CUBLAS_STATUS_SUCCESS);
    cr_assert_eq(cublasSetStream(h, nullptr), CUBLAS_STATUS_SUCCESS);
    cr_assert_eq(emu_cublas_workspace(h, &got, &bytes), 0, "cublasSetStream resets the workspace to the default pool");
    cublasDestroy(h);
    cr_assert_eq(emu_cublas_workspace(h, &got, &bytes), -1, "a destroyed handle");
    cudaFree(ws);
}

Test(emu_cublas, workspace_that_is_misaligned_or_not_inside_device_memory_is_refused)
{
    cublasHandle_t h;
    cublasCreate(&h);
    char *ws = nullptr, *freed = nullptr, *pinned = nullptr;
    void *pageable = nullptr;
    cr_assert_eq(cudaMalloc(&ws, WORKSPACE_BYTES), cudaSuccess);
    cr_assert_eq(cudaMalloc(&freed, WORKSPACE_BYTES), cudaSuccess);
    cr_assert_eq(cudaMallocHost(&pinned, WORKSPACE_BYTES), cudaSuccess);
    cr_assert_eq(posix_memalign(&pageable, WORKSPACE_ALIGN, WORKSPACE_BYTES), 0);
    cr_assert_eq(cudaFree(freed), cudaSuccess); /* after the others, so that none reuses its address */
    cr_assert_eq(cublasSetWorkspace(h, ws, WORKSPACE_BYTES), CUBLAS_STATUS_SUCCESS);
    const struct {
        void *p;
        size_t bytes;
        const char *what;
    } refused[] = {
        {ws + 128, WORKSPACE_BYTES - 128, "aligned to 128 bytes only"},
        {ws, WORKSPACE_BYTES + 1, "one byte past the allocation"},
        {ws + WORKSPACE_ALIGN, WORKSPACE_BYTES, "past the allocation from an interior pointer"},
        {pinned, WORKSPACE_BYTES, "pinned host memory"},
        {pageable, WORKSPACE_BYTES, "pageable host memory"},
        {freed, WORKSPACE_BYTES, "a freed allocation"},
        {nullptr, WORKSPACE_BYTES, "NULL with a size"},
    };
    for (const auto &c : refused)
        cr_assert_eq(cublasSetWorkspace(h, c.p, c.bytes), CUBLAS_STATUS_INVALID_VALUE, "%s", c.what);
    void *got = nullptr;
    size_t bytes = 0;
    cr_assert_eq(emu_cublas_workspace(h, &got, &bytes), 1);
    cr_assert(got == ws && bytes == WORKSPACE_BYTES, "a refused call leaves the workspace as it was");
    cublasDestroy(h);
    cr_assert_eq(cublasSetWorkspace(h, ws, WORKSPACE_BYTES), CUBLAS_STATUS_NOT_INITIALIZED, "a destroyed handle");
    cr_assert_eq(cublasSetWorkspace(nullptr, ws, WORKSPACE_BYTES), CUBLAS_STATUS_NOT_INITIALIZED);
    free(pageable);
    cudaFreeHost(pinned);
    cudaFree(ws);
}
