/* Row-major single-precision matrix products for the CPU backend. C is [M, N]; with accumulate the
 * product is added to C, otherwise it replaces C. The suffix names the operands: n as stored, t
 * transposed. They run on OpenBLAS (through CBLAS) when the build found it, else on the loops of
 * matmul.c; both are tested against a naive loop. */
#ifndef CHARRNN_MATMUL_H
#define CHARRNN_MATMUL_H

/* C = A B, A [M, K], B [K, N] */
void matmul_nn(float *C, const float *A, const float *B, int M, int N, int K, int accumulate);
/* C = A^T B, A [K, M], B [K, N]: the weight gradients, summed over all timesteps at once */
void matmul_tn(float *C, const float *A, const float *B, int M, int N, int K, int accumulate);
/* C = A B^T, A [M, K], B [N, K]: gradients flowing back through a weight matrix */
void matmul_nt(float *C, const float *A, const float *B, int M, int N, int K, int accumulate);

/* The loops of matmul.c, whichever path matmul_* take (so that tests can compare the two). */
void own_matmul_nn(float *C, const float *A, const float *B, int M, int N, int K, int accumulate);
void own_matmul_tn(float *C, const float *A, const float *B, int M, int N, int K, int accumulate);
void own_matmul_nt(float *C, const float *A, const float *B, int M, int N, int K, int accumulate);

/* "AVX2/FMA" or "portable": which of the built-in loops this process runs. The portable ones can be
 * forced with the environment variable CHARRNN_PORTABLE_LOOPS=1 (read at the first product). */
const char *matmul_loops(void);
/* "OpenBLAS" or "built-in loops": what matmul_* run on. */
const char *matmul_backend(void);
/* Threads for the products and the loops: OpenBLAS's pool and OpenMP's. */
void matmul_set_threads(int threads);

#endif
