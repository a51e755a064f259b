/* The CUDA backend's kernels, each named after the CPU function of cpu/rnn.c it mirrors, and a host
 * launcher for each that queues it on a stream and returns the launch error. Shapes as in cpu/cpu.h:
 * row-major, time-major [T, B, ...]. */
#ifndef CHARRNN_CUDA_KERNELS_CUH
#define CHARRNN_CUDA_KERNELS_CUH

#include "emu/charrnn_cuda.h"

#include <stdint.h>

typedef uint16_t token_t;

namespace kernels
{

/* out [rows, E] = embedding rows of x */
cudaError_t embedding_forward(float *out, const token_t *x, const float *embedding, int rows, int E, cudaStream_t s);
/* out [V, W] (+)= per token v, the sum of the rows of in [rows, W] whose token is v; order and start
 * group the rows by token (order[start[v]..start[v+1]) are token v's rows, ascending), so the sums run
 * in a fixed order (deterministic). The embedding's gradient, and layer 0's per-token gradient. */
cudaError_t token_row_sums(float *out, const float *in, const int *order, const int *start, int V, int W,
                           int accumulate, cudaStream_t s);
/* out [rows, H] = table[x[i]]: layer 0's input projection through the vocabulary */
cudaError_t gather_rows(float *out, const token_t *x, const float *table, int rows, int H, cudaStream_t s);
/* out [H, H] = in^T */
cudaError_t transpose(float *out, const float *in, int H, cudaStream_t s);
/* every row of out [rows, cols] = row */
cudaError_t broadcast_rows(float *out, const float *row, int rows, int cols, cudaStream_t s);
/* sums [cols] += column sums of m [rows, cols] */
cudaError_t add_column_sums(float *sums, const float *m, int rows, int cols, cudaStream_t s);

/* The fused recurrence step: h_t = tanh(p_t + b + h_prev W_hh), all [B, H]; h_t holds p_t on entry
 * (the input projection) and h_t on return. */
cudaError_t rnn_step_forward(float *h_t, const float *h_prev, const float *w_hh, const float *b_h, int B, int H,
                             cudaStream_t s);
/* The fused backward step: da_t = (dh_t + da_next W_hh^T) * (1 - h_t^2); da_next NULL at t = T. Takes
 * W_hh already transposed (w_hh_t), for coalesced reads. */
cudaError_t rnn_step_backward(float *da_t, const float *da_next, const float *dh_t, const float *h_t,
                              const float *w_hh_t, int B, int H, cudaStream_t s);

/* Per row of logits [rows, V]: row_loss = logsumexp - z[y]; with scale != 0 the row is overwritten by
 * dlogits = (softmax - onehot(y)) * scale. */
cudaError_t softmax_xent(float *logits, const token_t *y, float *row_loss, int rows, int V, float scale,
                         cudaStream_t s);
/* *out = sum of x[i] (squares: of x[i]^2) over n values, in double, in a fixed order (deterministic). */
cudaError_t sum(double *out, const float *x, size_t n, int squares, cudaStream_t s);

/* Adam/AdamW (weight_decay 0: Adam) and SGD with momentum; c1, c2 are Adam's bias corrections. */
cudaError_t adam_update(float *p, const float *g, float *m, float *v, size_t n, float lr, float beta1, float beta2,
                        float eps, float weight_decay, float grad_scale, float c1, float c2, cudaStream_t s);
cudaError_t sgd_update(float *p, const float *g, float *v, size_t n, float lr, float momentum, float grad_scale,
                       cudaStream_t s);

} // namespace kernels

#endif
