/* Row-major single-precision matrix products for the CPU reference. C is [M, N]; with accumulate the
 * product is added to C, otherwise it replaces C. The suffix names the operands: n as stored, t
 * transposed. */
#ifndef CHARRNN_MATMUL_H
#define CHARRNN_MATMUL_H

/* C = A B, A [M, K], B [K, N] */
void matmul_nn(float *C, const float *A, const float *B, int M, int N, int K, int accumulate);
/* C = A^T B, A [K, M], B [K, N]: the weight gradients, summed over all timesteps at once */
void matmul_tn(float *C, const float *A, const float *B, int M, int N, int K, int accumulate);
/* C = A B^T, A [M, K], B [N, K]: gradients flowing back through a weight matrix */
void matmul_nt(float *C, const float *A, const float *B, int M, int N, int K, int accumulate);

#endif
