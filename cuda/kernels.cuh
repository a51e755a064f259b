/* The CUDA backend's kernels, each named after the CPU function of cpu/rnn.c it mirrors, and a host
 * launcher for each that queues it on a stream and returns the launch error. Shapes as in cpu/cpu.h:
 * row-major, time-major [T, B, ...]. */
#ifndef CHARRNN_CUDA_KERNELS_CUH
#define CHARRNN_CUDA_KERNELS_CUH

#include "emu/charrnn_cuda.h"

#include <stdint.h>

extern "C" {
#include "../common/model.h"
}

typedef uint16_t token_t;

namespace kernels
{

/* model.h's cell_gates, callable in kernels too: G, the gate blocks of H columns of W_xh, W_hh and b_h. */
__host__ __device__ inline int gates_of(CellKind cell)
{
    return cell == CELL_LSTM ? 4 : cell == CELL_GRU ? 3 : 1;
}

/* out [rows, E] = the rows x of a [V, E] table: the embedding, or layer 0's Emb W_xh when folded */
cudaError_t embedding_forward(float *out, const token_t *x, const float *embedding, int rows, int E, cudaStream_t s);
/* The batch's rows grouped by token, as the host stages them (cuda_backend.cu: stage_buckets):
 * order[start[v] .. start[v+1]) are token v's rows, ascending; each token's rows are cut into chunks of
 * at most TOKEN_CHUNK, chunk_first[v] .. chunk_first[v+1] being token v's chunks and chunk_token[c]
 * the token of chunk c. The chunk count, chunk_first[V], changes from batch to batch; the grids do not
 * (max_chunks), so that a captured graph serves every batch. */
static const int TOKEN_CHUNK = 32; /* rows one thread adds: the longest serial sum is 32 + rows / 32 */
struct TokenBuckets {
    const int *order, *start, *chunk_first, *chunk_token;
    int max_chunks; /* rows / TOKEN_CHUNK + V, rounded up: no batch has more */
};
/* out [V, W] (+)= per token v, the sum of the rows of in [rows, W] whose token is v, as a deterministic
 * segmented reduction: each chunk's rows summed in row order into partial [max_chunks, W], then each
 * token's chunks in chunk order. The embedding's gradient, and layer 0's per-token gradient. */
cudaError_t token_row_sums(float *out, float *partial, const float *in, const TokenBuckets *buckets, int V, int W,
                           int accumulate, cudaStream_t s);
/* out [cols, rows] = in [rows, cols]^T */
cudaError_t transpose(float *out, const float *in, int rows, int cols, cudaStream_t s);
/* every row of out [rows, cols] = row */
cudaError_t broadcast_rows(float *out, const float *row, int rows, int cols, cudaStream_t s);
/* sums [cols] += column sums of m [rows, cols] (rows ld apart: a block of columns of a wider matrix) */
cudaError_t add_column_sums(float *sums, const float *m, int rows, int cols, int ld, cudaStream_t s);

/* The fused recurrence step: h_t = tanh(p_t + b + h_prev W_hh), all [B, H]; h_t holds p_t on entry
 * (the input projection) and h_t on return. */
cudaError_t rnn_step_forward(float *h_t, const float *h_prev, const float *w_hh, const float *b_h, int B, int H,
                             cudaStream_t s);
/* The recurrence of one or more stacked layers in one grid-synchronised (cooperative) launch, all T
 * timesteps. The [B, H] state of each layer is cut into tiles of 32 columns (a warp's width) by `rows`
 * batch rows; a block owns one tile of one layer and keeps that layer's weights for its 32 columns
 * (forward; its 32 rows backward) in shared memory for the whole launch. Each timestep it stages the
 * vectors it multiplies, the 4 warps each sum a quarter of the inner dimension, and the quarters are
 * added in warp order (deterministic). The blocks meet at a grid-wide barrier between timesteps.
 *
 * Several layers run as a wavefront: layer l at timestep t alongside layer l+1 at timestep t-1
 * (backward: l+1 ahead of l), so a launch of L layers has T + L - 1 steps, not L T. A layer above the
 * launch's first then computes its input projection in the kernel (forward: h^{l-1}_t W_xh^l; backward
 * the gradient from the layer above, da^{l+1}_t W_xh^{l+1}^T), the linking weights in shared memory
 * beside W_hh.
 *
 * The gated cells run one layer per launch. A block owns whole units: forward it keeps the G gate
 * columns of W_hh of its 32 units (G x 32 columns), so that every gate of a unit is summed in the block
 * and the cell's element-wise work follows in the same step; backward the 32 rows of W_hh [H, G H] of
 * its units, the inner dimension being the G H columns of the next step's recurrent gradient. */
static const int RECURRENCE_MAX_LAYERS = 16; /* model.h's MODEL_MAX_LAYERS */
struct RecurrenceLayer {
    /* forward: h [T+1, B, H], h[0] = h_0; for the launch's first layer h[t] holds p_t (input projection,
     * without the bias) on entry; h_t on return. backward: da [T, B, H], written. */
    float *state;
    const float *w_hh; /* [H, H] */
    /* forward: this layer's W_xh [H, H] (layers above the launch's first); backward: the W_xh of the layer
     * above [H, H] (layers below the launch's top); else unused */
    const float *w_link;
    const float *b_h; /* forward: [H] */
    const float *h;   /* backward: this layer's forward states [T+1, B, H] */
    const float *dh;  /* backward, the launch's top layer: the gradient from above [T, B, H] */
    /* The gated cells (one layer per launch), as the per-timestep kernels below keep them: */
    float *gates;      /* [T, B, G H]: forward the input projections on entry, the activations on return */
    float *c;          /* LSTM [T+1, B, H], c[0] = c_0 */
    float *hn;         /* GRU [T, B, H]: h_{t-1} W_hn + b_hn */
    const float *b_hn; /* GRU, forward [H] */
    float *drec;       /* backward [T, B, G H]: the recurrent product's gradient (the GRU's own, the LSTM's da) */
    float *dstate;     /* backward [T, B, H]: what flows element-wise to the state at t-1 (LSTM c, GRU h) */
};
struct RecurrenceArgs {
    RecurrenceLayer layer[RECURRENCE_MAX_LAYERS]; /* bottom to top */
    int layers, T, B, H;
    int row_tiles, col_tiles; /* of one layer */
};

/* How the recurrence runs on this device for a batch of B rows: blocks == 0 means the persistent kernel
 * cannot run (why_not says why) and the caller steps one kernel per timestep instead. */
struct RecurrencePlan {
    int layers_per_launch; /* the model's L (a wavefront) or 1 (one launch per layer) */
    int gates;             /* the cell's G: which kernel runs */
    int rows;              /* batch rows per block; each thread carries this many sums */
    int row_tiles, col_tiles;
    int blocks;          /* per launch: layers_per_launch x row_tiles x col_tiles */
    size_t shared_bytes; /* per block */
    int blocks_per_sm;   /* the most the device holds at once (occupancy), for the report */
    int registers;       /* per thread, of the chosen kernel */
    const char *why_not;           /* when blocks == 0 */
    const char *why_not_wavefront; /* when the model has several layers but they run one launch each */
};
/* What the plan is asked for. gates is 1 for the tanh cell; a gated cell (GRU 3, LSTM 4) multiplies the
 * weights a block keeps by it, and runs one launch per layer (GATED_NO_WAVEFRONT). only_rows (tests) is 0
 * or the one tile height to consider; wavefront 0 plans one launch per layer. */
extern const char GATED_NO_WAVEFRONT[];
struct RecurrenceRequest {
    int B, H, layers, gates, only_rows, wavefront;
};
cudaError_t plan_recurrence(RecurrencePlan *plan, const RecurrenceRequest *request);
/* Forward (h_t, t = 1..T) or backward (da_t, t = T..1) through the layers of args, as planned; for a
 * gated cell also its gates, c or hn forward, drec and dstate backward, as the per-timestep kernels. */
cudaError_t rnn_forward_persistent(const RecurrenceArgs *args, const RecurrencePlan *plan, cudaStream_t s);
cudaError_t rnn_backward_persistent(const RecurrenceArgs *args, const RecurrencePlan *plan, cudaStream_t s);

/* The fused backward step: da_t = (dh_t + da_next W_hh^T) * (1 - h_t^2); da_next NULL at t = T. Takes
 * W_hh already transposed (w_hh_t), for coalesced reads. */
cudaError_t rnn_step_backward(float *da_t, const float *da_next, const float *dh_t, const float *h_t,
                              const float *w_hh_t, int B, int H, cudaStream_t s);

/* ---- the gated cells, one fused kernel per timestep (the recurrent product and every gate) ----
 * Per layer: gates [T, B, G H] holds the input projections x W_xh of all timesteps (one product, without
 * b_h) on entry and each step's gate activations on return (LSTM i, f, g, o; GRU r, z, n), which the
 * backward steps read. The LSTM keeps c [T+1, B, H] (c[0] = c_0); the GRU hn [T, B, H] = h_{t-1} W_hn +
 * b_hn, what its reset gate scales. */
cudaError_t lstm_step_forward(float *gates_t, float *h_t, float *c_t, const float *h_prev, const float *c_prev,
                              const float *w_hh, const float *b_h, int B, int H, cudaStream_t s);
cudaError_t gru_step_forward(float *gates_t, float *hn_t, float *h_t, const float *h_prev, const float *w_hh,
                             const float *b_h, const float *b_hn, int B, int H, cudaStream_t s);
/* Backward, t = T..1: da_t [B, G H] at the pre-activations (the GRU also dr_t, at its recurrent product,
 * which differs in the n block; for the LSTM the two are one) and what flows on to the state at t-1
 * element-wise (LSTM dc_prev through f, GRU dh_prev through z), from dh_t (from above), the next step's
 * recurrent gradient (times W_hh^T, taken transposed as w_hh_t [G H, H]) and its element-wise carry; both
 * NULL at t = T. */
cudaError_t lstm_step_backward(float *da_t, float *dc_prev, const float *da_next, const float *dc_next,
                               const float *dh_t, const float *gates_t, const float *c_t, const float *c_prev,
                               const float *w_hh_t, int B, int H, cudaStream_t s);
cudaError_t gru_step_backward(float *da_t, float *dr_t, float *dh_prev, const float *dr_next, const float *dh_next,
                              const float *dh_t, const float *gates_t, const float *hn_t, const float *h_prev,
                              const float *w_hh_t, int B, int H, cudaStream_t s);

/* Dropout's mask parameters (common/dropout.h), in device memory so that a captured graph reads each
 * step's own: the run's seed, the step, the global row of local row 0, p as a threshold, 1 / (1 - p). */
struct DropoutArgs {
    uint64_t seed;
    int64_t step;
    int row0;
    uint32_t threshold;
    float scale;
};
/* out [T, B, H] = in with layer's mask applied (inverted dropout), as cpu/gated.c's dropout_apply: the
 * layer's output going forward, its gradient in place (out = in) going backward. */
cudaError_t dropout_apply(float *out, const float *in, const DropoutArgs *d, int layer, int T, int B, int H,
                          cudaStream_t s);

/* Per row of logits [rows, V]: row_loss = logsumexp - z[y]; with scale != 0 the row is overwritten by
 * dlogits = (softmax - onehot(y)) * scale. */
cudaError_t softmax_xent(float *logits, const token_t *y, float *row_loss, int rows, int V, float scale,
                         cudaStream_t s);
/* *out = sum of x[i] (squares: of x[i]^2) over n values, in double, in a fixed order (deterministic):
 * up to SUM_BLOCKS blocks (as many as n needs) each sum a fixed part into partial[], then one block
 * sums those. */
static const int SUM_BLOCKS = 256;
cudaError_t sum(double *out, double *partial, const float *x, size_t n, int squares, cudaStream_t s);

/* ---- Generation: one character, one launch of one block ---- */

/* The model as the sampling kernel reads it, every matrix row-major as in model.h. */
struct SampleModel {
    const float *embedding;  /* [V, E] */
    const float *vocab_rows; /* [V, G H]: Emb W_xh^0, or NULL: layer 0 multiplies the embedding row itself */
    /* b_h [G H]; the GRU's b_hn [H] follows it, as in the parameter buffer (model.h) */
    const float *w_xh[RECURRENCE_MAX_LAYERS], *w_hh[RECURRENCE_MAX_LAYERS], *b_h[RECURRENCE_MAX_LAYERS];
    const float *w_hy, *b_y; /* [H, V], [V] */
    float *h;                /* [L, H]: the generation state, read and updated */
    float *c;                /* [L, H]: the LSTM's cell state, likewise */
    float *logits;           /* [V]: where the logits go */
    int V, E, H, L;
    CellKind cell;
};
/* What to do after the step: draw the next character by sample_logits' rule (common/sampler.c) from
 * the uniform number u in [0, 1), or not (feeding a prime). */
struct SampleDraw {
    int sample;
    float temperature, u;
    int top_k, argmax;
};
static const int SAMPLE_THREADS = 512;  /* one block: 16 warps share each matrix-vector product */
static const int SAMPLE_MAX_VOCAB = 1024; /* drawn on the device up to this vocabulary (the draw is serial in V) */
/* Feeds `token` (the embedding row, every layer's step, the logits into model.logits) and, with
 * draw.sample, writes the drawn character to *out. Only that token (or the logits) leave the device. */
cudaError_t sample_step(const SampleModel *model, int token, const SampleDraw *draw, token_t *out, cudaStream_t s);
/* Once, before the first sample_step: allows the kernel the shared memory this model's steps take. */
cudaError_t sample_prepare(const SampleModel *model);

/* Adam/AdamW (weight_decay 0: Adam) and SGD with momentum; c1, c2 are Adam's bias corrections. */
cudaError_t adam_update(float *p, const float *g, float *m, float *v, size_t n, float lr, float beta1, float beta2,
                        float eps, float weight_decay, float grad_scale, float c1, float c2, cudaStream_t s);
cudaError_t sgd_update(float *p, const float *g, float *v, size_t n, float lr, float momentum, float grad_scale,
                       cudaStream_t s);

} // namespace kernels

#endif
