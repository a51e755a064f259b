/* The CPU reference backend: the model's math as plain forward/backward functions on raw float
 * buffers (rnn.c), and the context that owns those buffers behind the backend interface. */
#ifndef CHARRNN_CPU_H
#define CHARRNN_CPU_H

#include <stddef.h>

#include "../common/backend.h"

extern const BackendOps cpu_backend_ops;

/* out: [rows, E] = embedding rows of x */
void embedding_forward(float *out, const token_t *x, const float *embedding, int rows, int E);
/* dembedding[x[i]] += dout[i], in row order (deterministic) */
void embedding_backward(float *dembedding, const token_t *x, const float *dout, int rows, int E);

/* One Elman layer over T steps. h: [T+1, B, H] time-major, h[0] = h_0 on entry; u: [T, B, I]; packed:
 * recurrence_packed_floats(H, H) floats of scratch for W_hh in the micro-kernel's layout.
 * rnn_forward = the input projections of all steps (one product) + rnn_recurrence_forward. */
void rnn_forward(float *h, const float *u, const float *w_xh, const float *w_hh, const float *b_h, float *packed, int T,
                 int B, int I, int H);
/* The recurrence alone: h_t = tanh(h_t + h_{t-1} W_hh) for t = 1..T, where h_t holds the projected input. */
void rnn_recurrence_forward(float *h, const float *w_hh, float *packed, int T, int B, int H);
/* The same one timestep at a time, a product and a tanh per step: the plain reference the tests hold
 * rnn_recurrence_forward to. */
void rnn_recurrence_forward_steps(float *h, const float *w_hh, int T, int B, int H);
/* Layer 0 with the embedding folded into its input projection (fewer multiply-adds whenever the
 * vocabulary has fewer entries than the batch has rows): ew [V, H] = Emb W_xh + b_h, then p[i] = ew[x[i]]
 * for the rows of p [rows, H]. */
void embedding_projection_forward(float *p, float *ew, const token_t *x, const float *embedding, const float *w_xh,
                                  const float *b_h, int rows, int V, int E, int H);

/* Full BPTT through the layer: dh [T, B, H] is the loss gradient arriving at h_1..h_T from above.
 * Writes da [T, B, H] (gradient at the pre-activations) and du [T, B, I] (for the layer below; skipped
 * when du is NULL; du may be dh itself, which is read before du is written), adds into dw_xh, dw_hh,
 * db_h. packed is scratch as for rnn_forward.
 * rnn_backward = rnn_recurrence_backward + dW_xh and du. */
void rnn_backward(float *du, float *dw_xh, float *dw_hh, float *db_h, float *da, float *packed, const float *dh,
                  const float *h, const float *u, const float *w_xh, const float *w_hh, int T, int B, int I, int H);
/* Backward through time to da, and dW_hh, db_h. */
void rnn_recurrence_backward(float *da, float *dw_hh, float *db_h, float *packed, const float *dh, const float *h,
                             const float *w_hh, int T, int B, int H);
/* da alone, one timestep at a time (carry: [B, H] scratch): the reference for rnn_recurrence_backward. */
void rnn_recurrence_backward_steps(float *da, float *carry, const float *dh, const float *h, const float *w_hh, int T,
                                   int B, int H);
/* The folded layer 0's input side: adds dW_xh and dEmbedding from da [rows, H]; g is [V, H] scratch. */
void embedding_projection_backward(float *dembedding, float *dw_xh, float *g, const token_t *x, const float *da,
                                   const float *embedding, const float *w_xh, int rows, int V, int E, int H);

/* The gated cells (gated.c), with PyTorch's equations and gate order (README.md). The input side of all T
 * steps is one product, input_projection_forward into act; the recurrence then takes one product per step
 * (recurrence.h, h_{t-1} W_hh [B, G H]) and the cell's element-wise work in the same pass over a row.
 * h: [T+1, B, H] time-major, h[0] = h_0 on entry; act: [T, B, G H] holds the input projections on entry
 * and the gates after their activations on return (LSTM i, f, g, o; GRU r, z, n); step_g: [B, G H] and
 * packed: max(recurrence_packed_floats(H, G H), recurrence_packed_floats(G H, H)) floats of scratch. */
/* c: [T+1, B, H], c[0] = c_0 on entry. */
void lstm_recurrence_forward(float *h, float *c, float *act, const float *w_hh, float *packed, float *step_g, int T,
                             int B, int H);
/* hn: [T, B, H] gets h_{t-1} W_hn + b_hn, the term the reset gate scales (the backward pass needs it). */
void gru_recurrence_forward(float *h, float *act, float *hn, const float *w_hh, const float *b_hn, float *packed,
                            float *step_g, int T, int B, int H);
/* Backward through time from dh [T, B, H] (the loss gradient arriving at h_1..h_T from above; nothing flows
 * in past h_T): writes da [T, B, G H], the gradient at the input projections, and adds dW_hh, db_h (and the
 * GRU's db_hn). The GRU's gradient at its recurrent product differs from da in the n block (scaled by r):
 * it goes to drec [T, B, 3H]. carry: scratch, [B, H] (the GRU's direct path z * dh) or [B, 2H] (the
 * LSTM's dc and tanh(c_t)). */
void lstm_recurrence_backward(float *da, float *dw_hh, float *db_h, float *packed, float *step_g, float *carry,
                              const float *dh, const float *h, const float *c, const float *act, const float *w_hh,
                              int T, int B, int H);
void gru_recurrence_backward(float *da, float *drec, float *dw_hh, float *db_h, float *db_hn, float *packed,
                             float *step_g, float *carry, const float *dh, const float *h, const float *act,
                             const float *hn, const float *w_hh, int T, int B, int H);
/* One step of one row, for generation: the state h (and the LSTM's c) in place, from px = u W_xh + b_h and
 * ph = h W_hh ([G H] each); act [G H] and hn [H] are scratch. */
void lstm_cell_step(float *h, float *c, const float *px, const float *ph, float *act, int H);
void gru_cell_step(float *h, const float *px, const float *ph, const float *b_hn, float *act, float *hn, int H);

/* p [rows, N] = u [rows, I] w_xh + b_h: the input side of a layer for all timesteps in one product. */
void input_projection_forward(float *p, const float *u, const float *w_xh, const float *b_h, int rows, int I, int N);
/* Adds dw_xh = u^T da; du [rows, I] = da w_xh^T unless du is NULL (du may be the buffer the recurrence
 * read its dh from). */
void input_projection_backward(float *du, float *dw_xh, const float *da, const float *u, const float *w_xh, int rows,
                               int I, int N);

/* Inverted dropout (dropout.h) of layer l's output for the batch b: dropout_draw sets keep [T, B, H] to
 * its mask, 1 where a unit is kept; dropout_apply computes out [n] = in * keep / (1 - p), the same mask
 * going forward and backward (out may be in). */
void dropout_draw(uint8_t *keep, const Batch *b, int l, int H);
void dropout_apply(float *out, const float *in, const uint8_t *keep, float p, size_t n);

/* out [rows, cols] = the row `row` repeated; sums [cols] += the column sums of m [rows, cols] (rows ld apart). */
void broadcast_rows(float *out, const float *row, int rows, int cols);
void add_column_sums(float *sums, const float *m, int rows, int cols, int ld);

/* logits [rows, V] = h [rows, H] w_hy + b_y */
void output_forward(float *logits, const float *h, const float *w_hy, const float *b_y, int rows, int H, int V);
/* Adds into dw_hy, db_y; writes dh [rows, H] = dlogits w_hy^T. */
void output_backward(float *dh, float *dw_hy, float *db_y, const float *dlogits, const float *h, const float *w_hy,
                     int rows, int H, int V);

/* Returns the summed cross-entropy (nats) of rows of logits against targets y; when scale != 0 it also
 * overwrites the logits with dlogits = (softmax - onehot(y)) * scale. */
double softmax_xent(float *logits, const token_t *y, int rows, int V, float scale);

/* x[0..n) = 0, split over threads when large. */
void zero_floats(float *x, size_t n);
/* The sum of x[i]^2 in double, the same for any thread count. */
double sum_of_squares(const float *x, size_t n);

/* Adam with bias correction and decoupled weight decay (AdamW; weight_decay 0 gives Adam). */
void adam_update(float *p, const float *g, float *m, float *v, size_t n, float lr, float beta1, float beta2, float eps,
                 float weight_decay, float grad_scale, long step);
/* SGD with momentum: v = momentum v + g; p -= lr v. */
void sgd_update(float *p, const float *g, float *v, size_t n, float lr, float momentum, float grad_scale);

#endif
