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

/* out [rows, E] = the rows x of a [V, E] table: the embedding, or layer 0's Emb W_xh when folded */
cudaError_t embedding_forward(float *out, const token_t *x, const float *embedding, int rows, int E, cudaStream_t s);
/* out [V, W] (+)= per token v, the sum of the rows of in [rows, W] whose token is v; order and start
 * group the rows by token (order[start[v]..start[v+1]) are token v's rows, ascending), so the sums run
 * in a fixed order (deterministic). The embedding's gradient, and layer 0's per-token gradient. */
cudaError_t token_row_sums(float *out, const float *in, const int *order, const int *start, int V, int W,
                           int accumulate, cudaStream_t s);
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
/* The whole recurrence of one layer in one grid-synchronised (cooperative) launch: each block keeps a
 * 32-column slice of W_hh (its 32 rows going backward) in shared memory for all T steps and computes its tile of every
 * h_t (or da_t), the blocks meeting at a grid-wide barrier between timesteps. A plan says how the
 * [B, H] state is tiled; blocks == 0 means the persistent kernel cannot run (no cooperative launch,
 * W_hh's slice too large for shared memory, or more tiles than can be resident at once), and the
 * caller steps one kernel per timestep instead. */
struct RecurrencePlan {
    int rows_per_thread; /* 1, 2, 4 or 8: the batch rows each thread carries through the sum */
    int tile_rows;       /* a block's batch rows; its columns are 32, a warp's width */
    int blocks;
    size_t shared_bytes;
    const char *why_not; /* when blocks == 0 */
};
/* only_rows: 0, or the one rows_per_thread to consider (for tests) */
cudaError_t plan_recurrence(RecurrencePlan *plan, int B, int H, int only_rows);
/* h [T+1, B, H]: h[0] holds h_0 and h[t] holds p_t on entry, h_t on return (rnn_step_forward, t = 1..T) */
cudaError_t rnn_forward_persistent(float *h, const float *w_hh, const float *b_h, int T, int B, int H,
                                   const RecurrencePlan *plan, cudaStream_t s);
/* da [T, B, H] from dh [T, B, H] and h [T+1, B, H] (rnn_step_backward, t = T..1); reads W_hh itself, not
 * a transposed copy */
cudaError_t rnn_backward_persistent(float *da, const float *dh, const float *h, const float *w_hh, int T, int B,
                                    int H, const RecurrencePlan *plan, cudaStream_t s);

/* The fused backward step: da_t = (dh_t + da_next W_hh^T) * (1 - h_t^2); da_next NULL at t = T. Takes
 * W_hh already transposed (w_hh_t), for coalesced reads. */
cudaError_t rnn_step_backward(float *da_t, const float *da_next, const float *dh_t, const float *h_t,
                              const float *w_hh_t, int B, int H, cudaStream_t s);

/* Per row of logits [rows, V]: row_loss = logsumexp - z[y]; with scale != 0 the row is overwritten by
 * dlogits = (softmax - onehot(y)) * scale. */
cudaError_t softmax_xent(float *logits, const token_t *y, float *row_loss, int rows, int V, float scale,
                         cudaStream_t s);
/* *out = sum of x[i] (squares: of x[i]^2) over n values, in double, in a fixed order (deterministic):
 * up to SUM_BLOCKS blocks (as many as n needs) each sum a fixed part into partial[], then one block
 * sums those. */
static const int SUM_BLOCKS = 256;
cudaError_t sum(double *out, double *partial, const float *x, size_t n, int squares, cudaStream_t s);

/* Adam/AdamW (weight_decay 0: Adam) and SGD with momentum; c1, c2 are Adam's bias corrections. */
cudaError_t adam_update(float *p, const float *g, float *m, float *v, size_t n, float lr, float beta1, float beta2,
                        float eps, float weight_decay, float grad_scale, float c1, float c2, cudaStream_t s);
cudaError_t sgd_update(float *p, const float *g, float *v, size_t n, float lr, float momentum, float grad_scale,
                       cudaStream_t s);

} // namespace kernels

#endif
