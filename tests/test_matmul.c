/* The CPU products against a naive triple loop, on odd sizes that exercise the 4-row blocks, their
 * remainders and the 8-wide dot-product tails. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>

#include "../cpu/matmul.h"
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

static void check(int ta, int tb, int M, int N, int K, int accumulate)
{
    Rng r;
    rng_seed(&r, (uint64_t)(M * 1000 + N * 10 + K + ta * 7 + tb * 13));
    float *A = random_matrix(&r, M, K), *B = random_matrix(&r, K, N), *C = random_matrix(&r, M, N);
    float *C0 = malloc(sizeof(float) * (size_t)M * N);
    for (int i = 0; i < M * N; i++)
        C0[i] = C[i];
    if (!ta && !tb)
        matmul_nn(C, A, B, M, N, K, accumulate);
    else if (ta && !tb)
        matmul_tn(C, A, B, M, N, K, accumulate);
    else
        matmul_nt(C, A, B, M, N, K, accumulate);
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

static const int SIZES[][3] = {{1, 1, 1}, {3, 5, 7}, {13, 11, 9}, {4, 8, 16}, {17, 33, 65}, {65, 13, 129}};

Test(matmul, nn_matches_naive_loop)
{
    for (size_t s = 0; s < sizeof SIZES / sizeof SIZES[0]; s++)
        for (int acc = 0; acc < 2; acc++)
            check(0, 0, SIZES[s][0], SIZES[s][1], SIZES[s][2], acc);
}

Test(matmul, tn_matches_naive_loop)
{
    for (size_t s = 0; s < sizeof SIZES / sizeof SIZES[0]; s++)
        for (int acc = 0; acc < 2; acc++)
            check(1, 0, SIZES[s][0], SIZES[s][1], SIZES[s][2], acc);
}

Test(matmul, nt_matches_naive_loop)
{
    for (size_t s = 0; s < sizeof SIZES / sizeof SIZES[0]; s++)
        for (int acc = 0; acc < 2; acc++)
            check(0, 1, SIZES[s][0], SIZES[s][1], SIZES[s][2], acc);
}
