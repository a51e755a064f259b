/* The CPU products against a naive triple loop, on odd sizes that exercise the 4-row blocks, their
 * remainders and the 8-wide dot-product tails. */
#define _POSIX_C_SOURCE 200809L /* setenv */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../cpu/fastmath.h"
#include "../cpu/kernels.h"
#include "../cpu/matmul.h"
#include <criterion/logging.h>
#include "util.h"

#define MATMUL_TOL 1e-5 /* relative to the sum of |terms|: float reassociation error is ~K * 6e-8 */

static float *random_matrix(Rng *r, int rows, int cols)
{
    float *m = malloc(sizeof(float) * (size_t)rows * cols);
    for (int i = 0; i < rows * cols; i++)
        m[i] = 2.0f * rng_uniform(r) - 1.0f;
    return m;
}

/* at(A, i, k) for A stored [M, K] (trans = 0) or [K, M] (trans = 1) */
static double at(const float *m, int trans, int i, int k, int M, int K)
{
    return trans ? m[(size_t)k * M + i] : m[(size_t)i * K + k];
}

typedef void (*Product)(float *, const float *, const float *, int, int, int, int);

static void check(int ta, int tb, int M, int N, int K, int accumulate, const Product products[3])
{
    Rng r;
    rng_seed(&r, (uint64_t)(M * 1000 + N * 10 + K + ta * 7 + tb * 13));
    float *A = random_matrix(&r, M, K), *B = random_matrix(&r, K, N), *C = random_matrix(&r, M, N);
    float *C0 = malloc(sizeof(float) * (size_t)M * N);
    for (int i = 0; i < M * N; i++)
        C0[i] = C[i];
    products[ta ? 1 : tb ? 2 : 0](C, A, B, M, N, K, accumulate);
    for (int i = 0; i < M; i++) {
        for (int j = 0; j < N; j++) {
            double ref = accumulate ? C0[i * N + j] : 0.0, mag = fabs(ref);
            for (int k = 0; k < K; k++) {
                /* B is [K, N] as stored, or [N, K] when transposed */
                double term = at(A, ta, i, k, M, K) * (tb ? B[(size_t)j * K + k] : B[(size_t)k * N + j]);
                ref += term;
                mag += fabs(term);
            }
            cr_assert(fabs(C[i * N + j] - ref) <= MATMUL_TOL * (mag + 1.0), "C[%d,%d] = %.7f, expected %.7f (%s%s)", i,
                      j, C[i * N + j], ref, ta ? "t" : "n", tb ? "t" : "n");
        }
    }
    free(A), free(B), free(C), free(C0);
}

/* The vectorisable tanh against libm's, in double, over the whole useful range. */
Test(fastmath, tanh_is_within_its_stated_error_of_tanh)
{
    double worst = 0.0;
    float at = 0.0f;
    /* every float in [5.7, 6.0], where the error peaks (an exhaustive search over all floats finds the
     * worst, 4.1e-7, at 5.8278761), and a fine grid elsewhere */
    for (float x = 5.7f; x < 6.0f; x = nextafterf(x, 7.0f)) {
        double err = fabs((double)fast_tanhf(x) - tanh((double)x));
        if (err > worst)
            worst = err, at = x;
    }
    for (float x = -12.0f; x < 12.0f; x += 1e-5f) {
        double err = fabs((double)fast_tanhf(x) - tanh((double)x));
        if (err > worst)
            worst = err, at = x;
    }
    cr_assert_leq(worst, FAST_TANH_ERROR, "fast_tanhf is %.3g away from tanh at %.9g", worst, at);
    cr_assert_eq(fast_tanhf(0.0f), 0.0f);
    cr_assert_eq(fast_tanhf(100.0f), 1.0f);
    cr_assert_eq(fast_tanhf(-100.0f), -1.0f);
}

/* The vectorisable exp against libm's, relatively, over the range softmax uses and beyond. */
Test(fastmath, exp_is_within_its_stated_error_of_exp)
{
    double worst = 0.0;
    float at = 0.0f;
    /* every float in [26.6, 26.8], where the error peaks (every float in [-87.3, 88] was checked once:
     * 8.5e-8 at 26.690403), and a fine grid elsewhere */
    for (float x = 26.6f; x < 26.8f; x = nextafterf(x, 30.0f)) {
        double err = fabs((double)fast_expf(x) / exp((double)x) - 1.0);
        if (err > worst)
            worst = err, at = x;
    }
    for (float x = EXP_LOWEST; x < EXP_HIGHEST; x += 1e-4f) {
        double err = fabs((double)fast_expf(x) / exp((double)x) - 1.0);
        if (err > worst)
            worst = err, at = x;
    }
    cr_assert_leq(worst, FAST_EXP_ERROR, "fast_expf is %.3g (relatively) away from exp at %.9g", worst, at);
    cr_assert_eq(fast_expf(0.0f), 1.0f);
    cr_assert(isnan(fast_expf(NAN)), "exp(NaN) must stay NaN");
    cr_assert_gt(fast_expf(-1000.0f), 0.0f, "clamped below: never 0");
}

/* Odd sizes for the tiles of every kernel set (4 to 8 rows, 8 to 32 columns) and their remainders,
 * vector-matrix products, sums longer than a block of k (256), products split over threads, and
 * products large enough to go to OpenBLAS when it is built in. */
static const int SIZES[][3] = {{1, 1, 1},     {3, 5, 7},    {13, 11, 9},  {4, 8, 16},     {17, 33, 65},
                               {65, 13, 129}, {1, 300, 65}, {3, 513, 17}, {70, 130, 129}, {29, 45, 600}};

static void check_all(int ta, int tb, const Product products[3])
{
    for (size_t s = 0; s < sizeof SIZES / sizeof SIZES[0]; s++)
        for (int acc = 0; acc < 2; acc++)
            check(ta, tb, SIZES[s][0], SIZES[s][1], SIZES[s][2], acc, products);
}

static const Product DISPATCHED[3] = {matmul_nn, matmul_tn, matmul_nt};
static const Product OWN[3] = {own_matmul_nn, own_matmul_tn, own_matmul_nt};

/* What the backend calls (OpenBLAS for large products when built with it, else the loops). */
Test(matmul, nn_matches_naive_loop)
{
    check_all(0, 0, DISPATCHED);
}
Test(matmul, tn_matches_naive_loop)
{
    check_all(1, 0, DISPATCHED);
}
Test(matmul, nt_matches_naive_loop)
{
    check_all(0, 1, DISPATCHED);
}

/* The built-in loops with each kernel set the processor runs, and the AVX-512 set's logic built for
 * AVX2 (CHARRNN_SIMD is read at the first product; every test runs in a process of its own). */
static void check_own_loops(const Kernels *set, const char *name)
{
    if (!set)
        cr_skip_test("this processor does not run the %s kernels", name);
    setenv("CHARRNN_SIMD", name, 1);
    cr_assert_str_eq(matmul_loops(), set->name);
    check_all(0, 0, OWN);
    check_all(1, 0, OWN);
    check_all(0, 1, OWN);
}

Test(matmul, own_loops_match_naive_loop_avx512)
{
    check_own_loops(kernels_at(SIMD_AVX512), "avx512");
}
Test(matmul, own_loops_match_naive_loop_avx2)
{
    check_own_loops(kernels_at(SIMD_AVX2), "avx2");
}
Test(matmul, own_loops_match_naive_loop_avx512_shape)
{
    check_own_loops(kernels_avx512_shape_on_avx2(), "avx512-shape");
}
Test(matmul, own_loops_match_naive_loop_baseline)
{
    check_own_loops(kernels_at(SIMD_BASELINE), "baseline");
}

/* CHARRNN_BLAS=0 sends the products of every size to the built-in loops. */
Test(matmul, blas_off_at_run_time_uses_the_built_in_loops)
{
    setenv("CHARRNN_BLAS", "0", 1);
    cr_assert_str_eq(matmul_backend(), "built-in loops");
    check_all(0, 0, DISPATCHED);
    check_all(1, 0, DISPATCHED);
    check_all(0, 1, DISPATCHED);
}

/* Both paths agree with each other, not only each with the naive loop. */
Test(matmul, dispatched_and_own_products_agree)
{
    if (strcmp(matmul_backend(), "OpenBLAS") != 0)
        cr_skip_test("built without OpenBLAS: matmul_nn is own_matmul_nn");
    Rng r;
    rng_seed(&r, 5);
    const int M = 70, N = 130, K = 129;
    float *A = random_matrix(&r, M, K), *B = random_matrix(&r, K, N);
    float *C1 = calloc((size_t)M * N, sizeof(float)), *C2 = calloc((size_t)M * N, sizeof(float));
    matmul_nn(C1, A, B, M, N, K, 0);
    own_matmul_nn(C2, A, B, M, N, K, 0);
    for (int i = 0; i < M * N; i++)
        cr_assert_float_eq(C1[i], C2[i], 1e-4, "C[%d]: %s %.7f, own %.7f", i, matmul_backend(), C1[i], C2[i]);
    free(A), free(B), free(C1), free(C2);
}
