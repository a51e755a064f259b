/* Row-major single-precision matrix products for the CPU backend. C is [M, N]; with accumulate the
 * product is added to C, otherwise it replaces C. The suffix names the operands: n as stored, t
 * transposed. They run on OpenBLAS (through CBLAS) when the build found it and the product is large,
 * else on the loops of matmul.c; both are tested against a naive loop. */
#ifndef CHARRNN_MATMUL_H
#define CHARRNN_MATMUL_H

#include "kernels.h"

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

/* The kernel set the built-in loops run ("AVX-512", "AVX2/FMA", "baseline"; see kernels.h). */
const char *matmul_loops(void);
/* "OpenBLAS" or "built-in loops": what matmul_* run the large products on (CHARRNN_BLAS=0 at run time
 * sends them to the loops too). */
const char *matmul_backend(void);
/* Threads for the products and the loops (OpenMP's; each thread's OpenBLAS calls run on it). */
void matmul_set_threads(int threads);

/* For a program about to compute on the CPU, before it does anything: when OpenBLAS chose kernels for
 * less than the processor runs and OPENBLAS_CORETYPE is not set, says so once on stderr and runs the
 * program again (argv) with OPENBLAS_CORETYPE naming the right ones. Returns when there is nothing to
 * do, or when running again failed (said on stderr). `quiet` leaves the note unsaid (the ranks of a
 * data-parallel run other than the first each run again too, and one note is enough). The environment
 * variable CHARRNN_TEST_BLAS_CORENAME stands in for OpenBLAS's answer, for the tests. */
void matmul_check_blas(char **argv, int quiet);
/* The OPENBLAS_CORETYPE for a processor that runs `level` when OpenBLAS chose `corename`, or NULL when
 * that choice is as good (or not known here). */
const char *blas_coretype_for(const char *corename, SimdLevel level);

#endif
