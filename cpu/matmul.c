/* The products, on OpenBLAS when the build found it, else on the loops below: AVX2/FMA kernels when the
 * processor has them (checked once at run time), otherwise portable C loops ordered so that the
 * innermost loop runs along contiguous rows. */
#include "matmul.h"

#include <stdlib.h>
#include <string.h>
#ifdef CHARRNN_WITH_OPENBLAS
#include <cblas.h>
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

/* Threads split a product by rows of C (each element is summed by one thread, in the same order: the
 * result does not depend on the thread count), when it has the rows and the work to pay for them. */
#define PARALLEL_WORK (1L << 16) /* multiply-adds below which starting threads costs more than it gains */
static int worth_threads(int M, int N, int K)
{
    return M >= 8 && (long)M * N * K >= PARALLEL_WORK;
}

/* ---- portable loops ---- */

#define ROWS 4 /* rows of C computed together: each B row loaded once serves four of them */

/* Rows i..i+ROWS-1 of C += A' B, where A'[i][k] = A[i * rs + k * cs] (rs = K, cs = 1 reads A [M, K] as
 * stored; rs = 1, cs = M reads A [K, M] transposed): each row of C is a sum of rows of B, so the inner
 * loop is contiguous. */
static void row_block_portable(float *C, const float *A, size_t rs, size_t cs, const float *B, int N, int K, int i)
{
    float *c0 = C + (size_t)i * N, *c1 = c0 + N, *c2 = c1 + N, *c3 = c2 + N;
    for (int k = 0; k < K; k++) {
        const float *a = A + (size_t)i * rs + (size_t)k * cs;
        const float *b = B + (size_t)k * N;
        const float x0 = a[0], x1 = a[rs], x2 = a[2 * rs], x3 = a[3 * rs];
        for (int j = 0; j < N; j++) {
            c0[j] += x0 * b[j];
            c1[j] += x1 * b[j];
            c2[j] += x2 * b[j];
            c3[j] += x3 * b[j];
        }
    }
}

/* C += A' B: rs = K, cs = 1 reads A [M, K] as stored, rs = 1, cs = M reads A [K, M] transposed. */
static void add_row_products_portable(float *C, const float *A, size_t rs, size_t cs, const float *B, int M, int N,
                                      int K)
{
    const int blocks = M / ROWS;
    if (worth_threads(M, N, K)) {
#pragma omp parallel for schedule(static)
        for (int blk = 0; blk < blocks; blk++)
            row_block_portable(C, A, rs, cs, B, N, K, ROWS * blk);
    } else {
        for (int blk = 0; blk < blocks; blk++)
            row_block_portable(C, A, rs, cs, B, N, K, ROWS * blk);
    }
    for (int i = ROWS * blocks; i < M; i++) {
        float *c = C + (size_t)i * N;
        for (int k = 0; k < K; k++) {
            const float x = A[(size_t)i * rs + (size_t)k * cs];
            const float *b = B + (size_t)k * N;
            for (int j = 0; j < N; j++)
                c[j] += x * b[j];
        }
    }
}

/* Row i of C = A B^T: dot products with eight partial sums (independent chains the compiler can keep in
 * vector lanes). */
static void nt_row_portable(float *C, const float *A, const float *B, int N, int K, int accumulate, int i)
{
    const float *a = A + (size_t)i * K;
    float *c = C + (size_t)i * N;
    for (int j = 0; j < N; j++) {
        const float *b = B + (size_t)j * K;
        float s[8] = {0};
        int k = 0;
        for (; k + 8 <= K; k += 8)
            for (int u = 0; u < 8; u++)
                s[u] += a[k + u] * b[k + u];
        float sum = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
        for (; k < K; k++)
            sum += a[k] * b[k];
        c[j] = accumulate ? c[j] + sum : sum;
    }
}

static void matmul_nt_portable(float *C, const float *A, const float *B, int M, int N, int K, int accumulate)
{
    if (worth_threads(M, N, K)) {
#pragma omp parallel for schedule(static)
        for (int i = 0; i < M; i++)
            nt_row_portable(C, A, B, N, K, accumulate, i);
    } else {
        for (int i = 0; i < M; i++)
            nt_row_portable(C, A, B, N, K, accumulate, i);
    }
}

/* ---- AVX2 and FMA: blocks of C summed in vector registers across all of k ---- */

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_AVX2_KERNELS 1
#define AVX2 __attribute__((target("avx2,fma")))
#define WIDE_ROW 256 /* columns beyond which row_product streams B instead of blocking C in registers */

/* C[i0..i0+4, j0..j0+16) += A' B: 8 accumulators, per k one broadcast of A per row and two loads of B. */
AVX2 static void block_4x16(float *C, const float *A, size_t rs, size_t cs, const float *B, int N, int K, int i0,
                            int j0)
{
    float *c = C + (size_t)i0 * N + j0;
    __m256 c00 = _mm256_loadu_ps(c), c01 = _mm256_loadu_ps(c + 8);
    __m256 c10 = _mm256_loadu_ps(c + N), c11 = _mm256_loadu_ps(c + N + 8);
    __m256 c20 = _mm256_loadu_ps(c + 2 * N), c21 = _mm256_loadu_ps(c + 2 * N + 8);
    __m256 c30 = _mm256_loadu_ps(c + 3 * N), c31 = _mm256_loadu_ps(c + 3 * N + 8);
    const float *a = A + (size_t)i0 * rs;
    for (int k = 0; k < K; k++, a += cs) {
        const float *b = B + (size_t)k * N + j0;
        const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
        __m256 x = _mm256_broadcast_ss(a);
        c00 = _mm256_fmadd_ps(x, b0, c00), c01 = _mm256_fmadd_ps(x, b1, c01);
        x = _mm256_broadcast_ss(a + rs);
        c10 = _mm256_fmadd_ps(x, b0, c10), c11 = _mm256_fmadd_ps(x, b1, c11);
        x = _mm256_broadcast_ss(a + 2 * rs);
        c20 = _mm256_fmadd_ps(x, b0, c20), c21 = _mm256_fmadd_ps(x, b1, c21);
        x = _mm256_broadcast_ss(a + 3 * rs);
        c30 = _mm256_fmadd_ps(x, b0, c30), c31 = _mm256_fmadd_ps(x, b1, c31);
    }
    _mm256_storeu_ps(c, c00), _mm256_storeu_ps(c + 8, c01);
    _mm256_storeu_ps(c + N, c10), _mm256_storeu_ps(c + N + 8, c11);
    _mm256_storeu_ps(c + 2 * N, c20), _mm256_storeu_ps(c + 2 * N + 8, c21);
    _mm256_storeu_ps(c + 3 * N, c30), _mm256_storeu_ps(c + 3 * N + 8, c31);
}

/* One row of C from column j0 on: 32 columns at a time (four independent accumulators keep both FMA
 * units busy, which matters for the vector-matrix products of generation), then 8, then one. */
AVX2 static void row_product(float *c, const float *a, size_t cs, const float *B, int N, int K, int j0)
{
    if (N - j0 > WIDE_ROW) {
        /* A wide B does not stay in cache: read it once, row after row, adding into C's row in L1. */
        const int n8 = j0 + (N - j0) / 8 * 8;
        for (int k = 0; k < K; k++) {
            const float *b = B + (size_t)k * N;
            const __m256 x = _mm256_broadcast_ss(a + (size_t)k * cs);
            int j = j0;
            for (; j < n8; j += 8)
                _mm256_storeu_ps(c + j, _mm256_fmadd_ps(x, _mm256_loadu_ps(b + j), _mm256_loadu_ps(c + j)));
            for (; j < N; j++)
                c[j] += a[(size_t)k * cs] * b[j];
        }
        return;
    }
    int j = j0;
    for (; j + 32 <= N; j += 32) {
        __m256 s0 = _mm256_loadu_ps(c + j), s1 = _mm256_loadu_ps(c + j + 8);
        __m256 s2 = _mm256_loadu_ps(c + j + 16), s3 = _mm256_loadu_ps(c + j + 24);
        for (int k = 0; k < K; k++) {
            const float *b = B + (size_t)k * N + j;
            const __m256 x = _mm256_broadcast_ss(a + (size_t)k * cs);
            s0 = _mm256_fmadd_ps(x, _mm256_loadu_ps(b), s0);
            s1 = _mm256_fmadd_ps(x, _mm256_loadu_ps(b + 8), s1);
            s2 = _mm256_fmadd_ps(x, _mm256_loadu_ps(b + 16), s2);
            s3 = _mm256_fmadd_ps(x, _mm256_loadu_ps(b + 24), s3);
        }
        _mm256_storeu_ps(c + j, s0), _mm256_storeu_ps(c + j + 8, s1);
        _mm256_storeu_ps(c + j + 16, s2), _mm256_storeu_ps(c + j + 24, s3);
    }
    for (; j + 8 <= N; j += 8) {
        __m256 s0 = _mm256_loadu_ps(c + j);
        for (int k = 0; k < K; k++)
            s0 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + (size_t)k * cs), _mm256_loadu_ps(B + (size_t)k * N + j), s0);
        _mm256_storeu_ps(c + j, s0);
    }
    for (; j < N; j++) {
        float s = c[j];
        for (int k = 0; k < K; k++)
            s += a[(size_t)k * cs] * B[(size_t)k * N + j];
        c[j] = s;
    }
}

/* Rows i..i+3 of C. */
AVX2 static void four_rows(float *C, const float *A, size_t rs, size_t cs, const float *B, int N, int K, int i)
{
    int j = 0;
    for (; j + 16 <= N; j += 16)
        block_4x16(C, A, rs, cs, B, N, K, i, j);
    for (int r = i; r < i + 4 && j < N; r++)
        row_product(C + (size_t)r * N, A + (size_t)r * rs, cs, B, N, K, j);
}

AVX2 static void add_row_products_avx2(float *C, const float *A, size_t rs, size_t cs, const float *B, int M, int N,
                                       int K)
{
    const int blocks = M / 4;
    if (worth_threads(M, N, K)) { /* tested outside the pragma: an idle parallel region still costs a call */
#pragma omp parallel for schedule(static)
        for (int blk = 0; blk < blocks; blk++)
            four_rows(C, A, rs, cs, B, N, K, 4 * blk);
    } else {
        for (int blk = 0; blk < blocks; blk++)
            four_rows(C, A, rs, cs, B, N, K, 4 * blk);
    }
    for (int i = 4 * blocks; i < M; i++)
        row_product(C + (size_t)i * N, A + (size_t)i * rs, cs, B, N, K, 0);
}

AVX2 static float horizontal_sum(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* Row i of C = A B^T: dot products, four rows of B against row i of A at a time. */
AVX2 static void nt_row_avx2(float *C, const float *A, const float *B, int N, int K, int accumulate, int i)
{
    const int k8 = K - K % 8;
    const float *a = A + (size_t)i * K;
    float *c = C + (size_t)i * N;
    int j = 0;
    for (; j + 4 <= N; j += 4) {
        const float *b0 = B + (size_t)j * K, *b1 = b0 + K, *b2 = b1 + K, *b3 = b2 + K;
        __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
        for (int k = 0; k < k8; k += 8) {
            const __m256 x = _mm256_loadu_ps(a + k);
            s0 = _mm256_fmadd_ps(x, _mm256_loadu_ps(b0 + k), s0);
            s1 = _mm256_fmadd_ps(x, _mm256_loadu_ps(b1 + k), s1);
            s2 = _mm256_fmadd_ps(x, _mm256_loadu_ps(b2 + k), s2);
            s3 = _mm256_fmadd_ps(x, _mm256_loadu_ps(b3 + k), s3);
        }
        float d[4] = {horizontal_sum(s0), horizontal_sum(s1), horizontal_sum(s2), horizontal_sum(s3)};
        for (int k = k8; k < K; k++) {
            d[0] += a[k] * b0[k], d[1] += a[k] * b1[k];
            d[2] += a[k] * b2[k], d[3] += a[k] * b3[k];
        }
        for (int q = 0; q < 4; q++)
            c[j + q] = accumulate ? c[j + q] + d[q] : d[q];
    }
    for (; j < N; j++) {
        const float *b = B + (size_t)j * K;
        __m256 s0 = _mm256_setzero_ps();
        for (int k = 0; k < k8; k += 8)
            s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + k), _mm256_loadu_ps(b + k), s0);
        float d = horizontal_sum(s0);
        for (int k = k8; k < K; k++)
            d += a[k] * b[k];
        c[j] = accumulate ? c[j] + d : d;
    }
}

AVX2 static void matmul_nt_avx2(float *C, const float *A, const float *B, int M, int N, int K, int accumulate)
{
    if (worth_threads(M, N, K)) {
#pragma omp parallel for schedule(static)
        for (int i = 0; i < M; i++)
            nt_row_avx2(C, A, B, N, K, accumulate, i);
    } else {
        for (int i = 0; i < M; i++)
            nt_row_avx2(C, A, B, N, K, accumulate, i);
    }
}

/* The AVX2 kernels when the processor has AVX2 and FMA, unless CHARRNN_PORTABLE_LOOPS is set (which the
 * tests use to check the portable loops on any machine). */
static int use_avx2(void)
{
    static int cached = -1;
    if (cached < 0) {
        __builtin_cpu_init();
        const char *portable = getenv("CHARRNN_PORTABLE_LOOPS");
        cached = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                 !(portable && *portable && strcmp(portable, "0") != 0);
    }
    return cached;
}
#endif

/* ---- the loops' entry points ---- */

const char *matmul_loops(void)
{
#ifdef HAVE_AVX2_KERNELS
    if (use_avx2())
        return "AVX2/FMA";
#endif
    return "portable";
}

static void add_row_products(float *C, const float *A, size_t rs, size_t cs, const float *B, int M, int N, int K)
{
#ifdef HAVE_AVX2_KERNELS
    if (use_avx2()) {
        add_row_products_avx2(C, A, rs, cs, B, M, N, K);
        return;
    }
#endif
    add_row_products_portable(C, A, rs, cs, B, M, N, K);
}

void own_matmul_nn(float *C, const float *A, const float *B, int M, int N, int K, int accumulate)
{
    if (!accumulate)
        memset(C, 0, sizeof(float) * (size_t)M * (size_t)N);
    add_row_products(C, A, (size_t)K, 1, B, M, N, K);
}

void own_matmul_tn(float *C, const float *A, const float *B, int M, int N, int K, int accumulate)
{
    if (!accumulate)
        memset(C, 0, sizeof(float) * (size_t)M * (size_t)N);
    add_row_products(C, A, 1, (size_t)M, B, M, N, K);
}

void own_matmul_nt(float *C, const float *A, const float *B, int M, int N, int K, int accumulate)
{
#ifdef HAVE_AVX2_KERNELS
    if (use_avx2()) {
        matmul_nt_avx2(C, A, B, M, N, K, accumulate);
        return;
    }
#endif
    matmul_nt_portable(C, A, B, M, N, K, accumulate);
}

/* ---- what matmul_* run on ---- */

#ifdef CHARRNN_WITH_OPENBLAS
/* Below this many multiply-adds a library call costs more than it saves (the generation step's
 * vector-matrix products, the small recurrence products): the loops run them. */
#ifndef SMALL_PRODUCT
#define SMALL_PRODUCT (1L << 19)
#endif
static int small(int M, int N, int K)
{
    return (long)M * N * K < SMALL_PRODUCT;
}

void matmul_nn(float *C, const float *A, const float *B, int M, int N, int K, int accumulate)
{
    if (small(M, N, K)) {
        own_matmul_nn(C, A, B, M, N, K, accumulate);
        return;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, A, K, B, N, accumulate ? 1.0f : 0.0f, C, N);
}

void matmul_tn(float *C, const float *A, const float *B, int M, int N, int K, int accumulate)
{
    if (small(M, N, K)) {
        own_matmul_tn(C, A, B, M, N, K, accumulate);
        return;
    }
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, M, N, K, 1.0f, A, M, B, N, accumulate ? 1.0f : 0.0f, C, N);
}

void matmul_nt(float *C, const float *A, const float *B, int M, int N, int K, int accumulate)
{
    if (small(M, N, K)) {
        own_matmul_nt(C, A, B, M, N, K, accumulate);
        return;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, A, K, B, K, accumulate ? 1.0f : 0.0f, C, N);
}

const char *matmul_backend(void)
{
    return "OpenBLAS";
}

void openblas_set_num_threads(int threads); /* OpenBLAS's own, not in every cblas.h */

void matmul_set_threads(int threads)
{
    openblas_set_num_threads(threads); /* the large products */
#ifdef _OPENMP
    omp_set_num_threads(threads); /* the built-in loops, for the small ones and the elementwise work */
#endif
}
#else
void matmul_nn(float *C, const float *A, const float *B, int M, int N, int K, int accumulate)
{
    own_matmul_nn(C, A, B, M, N, K, accumulate);
}

void matmul_tn(float *C, const float *A, const float *B, int M, int N, int K, int accumulate)
{
    own_matmul_tn(C, A, B, M, N, K, accumulate);
}

void matmul_nt(float *C, const float *A, const float *B, int M, int N, int K, int accumulate)
{
    own_matmul_nt(C, A, B, M, N, K, accumulate);
}

const char *matmul_backend(void)
{
    return "built-in loops";
}

void matmul_set_threads(int threads)
{
#ifdef _OPENMP
    omp_set_num_threads(threads);
#else
    (void)threads;
#endif
}
#endif
