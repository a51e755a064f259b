/* The fused recurrence: a chain of dependent steps over a batch whose rows never mix, so that each
 * thread takes its own rows for every step. No thread waits for another between steps; the weight
 * matrix is packed once into the micro-kernel's panels (kernels.h); every step is one pass of the
 * micro-kernel over the thread's rows, and the cell's activation is applied as the tile leaves the
 * registers.
 *
 * Step s turns the state a_{s-1} [B, K] into a_s through one product with a fixed W [K, N]:
 *     g_s = in_s + a_{s-1} W        [B, N]
 *     a_s = epilogue(g_s)
 * The Elman cell (K = N = H) applies tanh going forward and tanh's derivative going backward, in
 * registers. A gated cell gives a function instead (GRU: N = 3H, LSTM: N = 4H), which is called once
 * per step with the thread's rows of g_s, and computes those rows of a_s. */
#ifndef CHARRNN_RECURRENCE_H
#define CHARRNN_RECURRENCE_H

#include <stddef.h>

#include "kernels.h"

typedef struct {
    int B, K, N;
    int first, last;  /* the steps run, first..last; step 0 has no product: a_0 = epilogue(in_0) */
    const float *w;   /* W, packed by recurrence_pack */
    float *a;         /* a_s = a + s * a_step, [B, K]; a_{first-1} is given when first > 0 */
    ptrdiff_t a_step; /* (negative for a chain that runs backward through memory) */
    const float *in;  /* in_s = in + s * in_step, [B, N]; NULL: zero (it may be a_s itself) */
    ptrdiff_t in_step;
    const float *y; /* TILE_TANH_BACKWARD: y_s = y + s * y_step, [B, N] */
    ptrdiff_t y_step;
    TileEpilogue epilogue; /* TILE_TANH or TILE_TANH_BACKWARD (N = K), when cell is NULL */
    /* A gated cell: g_s is written into g [B, N] and cell computes rows row0 .. row0 + rows - 1 of a_s. */
    void (*cell)(void *ctx, int s, int row0, int rows, const float *g, float *a_s);
    void *ctx;
    float *g;
} Recurrence;

/* Floats of a packed W [K, N], for any kernel set. */
size_t recurrence_packed_floats(int K, int N);
/* W [K, N], or W^T from w stored [N, K] when transposed, into the panels of the kernels() set. */
void recurrence_pack(float *packed, const float *w, int K, int N, int transposed);
void recurrence_run(const Recurrence *r);

/* The Elman layer's recurrence, h: [T+1, B, H] time-major.
 * Forward: h_t = tanh(h_t + h_{t-1} W_hh) for t = 1..T, where h_t holds the input projection on entry;
 * packed is W_hh packed as stored. */
void recurrence_tanh_forward(float *h, const float *packed, int T, int B, int H);
/* Backward: da_t = (dh_t + da_{t+1} W_hh^T) (1 - h_t^2) for t = T..1 with nothing past T; da, dh:
 * [T, B, H] (da_t at da[t-1]); packed is W_hh packed transposed. */
void recurrence_tanh_backward(float *da, const float *dh, const float *h, const float *packed, int T, int B, int H);

#endif
