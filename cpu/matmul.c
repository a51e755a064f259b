/* Plain loops ordered so that the innermost loop runs along contiguous rows (which compilers
 * vectorise), with four rows of C in flight so each row of B is reused from cache. */
#include "matmul.h"

#include <string.h>

#define ROWS 4 /* rows of C computed together: each B row loaded once serves four of them */

/* C += A' B, where A'[i][k] = A[i * rs + k * cs]: rs = K, cs = 1 reads A [M, K] as stored, rs = 1, cs = M
 * reads A [K, M] transposed. Each row of C is a sum of rows of B, so the inner loop is contiguous. */
static void add_row_products(float *C, const float *A, size_t rs, size_t cs, const float *B, int M, int N, int K)
{
    int i = 0;
    for (; i + ROWS <= M; i += ROWS) {
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
    for (; i < M; i++) {
        float *c = C + (size_t)i * N;
        for (int k = 0; k < K; k++) {
            const float x = A[(size_t)i * rs + (size_t)k * cs];
            const float *b = B + (size_t)k * N;
            for (int j = 0; j < N; j++)
                c[j] += x * b[j];
        }
    }
}

void matmul_nn(float *C, const float *A, const float *B, int M, int N, int K, int accumulate)
{
    if (!accumulate)
        memset(C, 0, sizeof(float) * (size_t)M * (size_t)N);
    add_row_products(C, A, (size_t)K, 1, B, M, N, K);
}

void matmul_tn(float *C, const float *A, const float *B, int M, int N, int K, int accumulate)
{
    if (!accumulate)
        memset(C, 0, sizeof(float) * (size_t)M * (size_t)N);
    add_row_products(C, A, 1, (size_t)M, B, M, N, K);
}

void matmul_nt(float *C, const float *A, const float *B, int M, int N, int K, int accumulate)
{
    for (int i = 0; i < M; i++) {
        const float *a = A + (size_t)i * K;
        float *c = C + (size_t)i * N;
        for (int j = 0; j < N; j++) {
            const float *b = B + (size_t)j * K;
            /* eight partial sums: independent chains the compiler can keep in vector lanes */
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
}
