/* The CUDA backend's kernels. Each mirrors one function of cpu/rnn.c; where the CPU sums in a fixed
 * order, so does the kernel (one thread per output, looping in the same order), so that results do
 * not change from run to run. */
#include <string.h>

#include "kernels.cuh"

extern "C" {
#include "../common/dropout.h"
}

namespace kernels
{

static const int THREADS = 256;      /* elementwise kernels: a multiple of the warp, enough to hide latency */
static const int STEP_THREADS = 128; /* recurrence kernels: threads per block along H */
static const int MAX_BLOCKS = 4096;  /* grid-stride loops cover larger sizes */
static const int TILE = 32;          /* transpose tile: a warp's width */

static int blocks_for(size_t n)
{
    size_t b = (n + THREADS - 1) / THREADS;
    return b < 1 ? 1 : b > (size_t)MAX_BLOCKS ? MAX_BLOCKS : (int)b;
}

static cudaError_t launched()
{
    return cudaGetLastError();
}

/* Recurrence kernels: x covers H, y the batch (looping when B exceeds the grid's y limit). */
static const int MAX_GRID_Y = 65535;
static dim3 step_grid(int B, int H)
{
    return dim3((H + STEP_THREADS - 1) / STEP_THREADS, B < MAX_GRID_Y ? B : MAX_GRID_Y);
}

/* ---- embedding ---- */

__global__ void embedding_forward_kernel(float *out, const token_t *x, const float *embedding, int rows, int E)
{
    size_t n = (size_t)rows * E;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        out[i] = embedding[(size_t)x[i / E] * E + i % E];
}

cudaError_t embedding_forward(float *out, const token_t *x, const float *embedding, int rows, int E, cudaStream_t s)
{
    LAUNCH(embedding_forward_kernel, blocks_for((size_t)rows * E), THREADS, 0, s)(out, x, embedding, rows, E);
    return launched();
}

/* Segmented sums: thread (c, j) adds the at most TOKEN_CHUNK rows of chunk c, in row order, into
 * partial[c, j]; then thread (v, j) adds token v's chunk sums in chunk order. The same order every run:
 * deterministic, no atomics, and no thread sums more than TOKEN_CHUNK rows plus one token's chunks (the
 * space character alone is some 1,200 rows of a 8,192-row batch). */
__global__ void token_chunk_sums_kernel(float *partial, const float *in, TokenBuckets b, int W)
{
    const int V_chunks = b.max_chunks;
    const size_t n = (size_t)V_chunks * W;
    for (size_t k = blockIdx.x * (size_t)blockDim.x + threadIdx.x; k < n; k += (size_t)gridDim.x * blockDim.x) {
        const int c = (int)(k / W), j = (int)(k % W);
        const int v = b.chunk_token[c];
        if (v < 0)
            continue; /* past this batch's chunks */
        const int first = b.start[v] + (c - b.chunk_first[v]) * TOKEN_CHUNK;
        const int end = min(first + TOKEN_CHUNK, b.start[v + 1]);
        float acc = 0.0f;
        for (int r = first; r < end; r++)
            acc += in[(size_t)b.order[r] * W + j];
        partial[k] = acc;
    }
}

__global__ void token_row_sums_kernel(float *out, const float *partial, TokenBuckets b, int V, int W, int accumulate)
{
    const size_t n = (size_t)V * W;
    for (size_t k = blockIdx.x * (size_t)blockDim.x + threadIdx.x; k < n; k += (size_t)gridDim.x * blockDim.x) {
        const int v = (int)(k / W), j = (int)(k % W);
        float acc = accumulate ? out[k] : 0.0f;
        for (int c = b.chunk_first[v]; c < b.chunk_first[v + 1]; c++)
            acc += partial[(size_t)c * W + j];
        out[k] = acc;
    }
}

cudaError_t token_row_sums(float *out, float *partial, const float *in, const TokenBuckets *buckets, int V, int W,
                           int accumulate, cudaStream_t s)
{
    LAUNCH(token_chunk_sums_kernel, blocks_for((size_t)buckets->max_chunks * W), THREADS, 0, s)
    (partial, in, *buckets, W);
    cudaError_t status = launched();
    if (status != cudaSuccess)
        return status;
    LAUNCH(token_row_sums_kernel, blocks_for((size_t)V * W), THREADS, 0, s)(out, partial, *buckets, V, W, accumulate);
    return launched();
}

/* out [cols, rows] = in [rows, cols]^T, through a shared tile so that both the reads and the writes are
 * coalesced. */
__global__ void transpose_kernel(float *out, const float *in, int rows, int cols)
{
    __shared__ float tile[TILE][TILE + 1]; /* +1: no shared-memory bank conflicts on the column reads */
    int x = blockIdx.x * TILE + threadIdx.x, y = blockIdx.y * TILE + threadIdx.y;
    if (x < cols && y < rows)
        tile[threadIdx.y][threadIdx.x] = in[(size_t)y * cols + x];
    __syncthreads();
    x = blockIdx.y * TILE + threadIdx.x, y = blockIdx.x * TILE + threadIdx.y;
    if (x < rows && y < cols)
        out[(size_t)y * rows + x] = tile[threadIdx.x][threadIdx.y];
}

cudaError_t transpose(float *out, const float *in, int rows, int cols, cudaStream_t s)
{
    dim3 grid((cols + TILE - 1) / TILE, (rows + TILE - 1) / TILE), block(TILE, TILE);
    LAUNCH(transpose_kernel, grid, block, 0, s)(out, in, rows, cols);
    return launched();
}

/* ---- rows and columns ---- */

__global__ void broadcast_rows_kernel(float *out, const float *row, int rows, int cols)
{
    size_t n = (size_t)rows * cols;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        out[i] = row[i % cols];
}

cudaError_t broadcast_rows(float *out, const float *row, int rows, int cols, cudaStream_t s)
{
    LAUNCH(broadcast_rows_kernel, blocks_for((size_t)rows * cols), THREADS, 0, s)(out, row, rows, cols);
    return launched();
}

/* Block (32 columns, COLUMN_LANES row lanes): lane y sums rows y, y + COLUMN_LANES, ... of its column,
 * then the lanes' partial sums are added in lane order. The same pairing every run: deterministic. */
static const int COLUMN_LANES = 32;

__global__ void add_column_sums_kernel(float *sums, const float *m, int rows, int cols, int ld)
{
    __shared__ float partial[COLUMN_LANES][TILE + 1];
    const int j = blockIdx.x * TILE + threadIdx.x;
    float acc = 0.0f;
    if (j < cols)
        for (int i = threadIdx.y; i < rows; i += COLUMN_LANES)
            acc += m[(size_t)i * ld + j];
    partial[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && j < cols) {
        float total = sums[j];
        for (int y = 0; y < COLUMN_LANES; y++)
            total += partial[y][threadIdx.x];
        sums[j] = total;
    }
}

cudaError_t add_column_sums(float *sums, const float *m, int rows, int cols, int ld, cudaStream_t s)
{
    dim3 block(TILE, COLUMN_LANES);
    LAUNCH(add_column_sums_kernel, (cols + TILE - 1) / TILE, block, 0, s)(sums, m, rows, cols, ld);
    return launched();
}

/* ---- the recurrence ---- */

/* Thread (b, j): h_t[b, j] = tanh(p_t[b, j] + b_h[j] + sum_k h_prev[b, k] W_hh[k, j]). Threads of a
 * warp share b and read consecutive j, so the W_hh reads are coalesced. */
__global__ void rnn_step_forward_kernel(float *h_t, const float *__restrict__ h_prev, const float *__restrict__ w_hh,
                                        const float *__restrict__ b_h, int B, int H)
{
    const int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= H)
        return;
    for (int b = blockIdx.y; b < B; b += gridDim.y) {
        const float *hp = h_prev + (size_t)b * H;
        float acc = h_t[(size_t)b * H + j] + b_h[j];
        for (int k = 0; k < H; k++)
            acc += hp[k] * w_hh[(size_t)k * H + j];
        h_t[(size_t)b * H + j] = tanhf(acc);
    }
}

cudaError_t rnn_step_forward(float *h_t, const float *h_prev, const float *w_hh, const float *b_h, int B, int H,
                             cudaStream_t s)
{
    LAUNCH(rnn_step_forward_kernel, step_grid(B, H), STEP_THREADS, 0, s)(h_t, h_prev, w_hh, b_h, B, H);
    return launched();
}

/* Thread (b, j): da_t[b, j] = (dh_t[b, j] + sum_k da_next[b, k] W_hh[j, k]) * (1 - h_t[b, j]^2), reading
 * W_hh^T (w_hh_t[k, j]) so that the threads of a warp read consecutive addresses. */
__global__ void rnn_step_backward_kernel(float *da_t, const float *__restrict__ da_next, const float *__restrict__ dh_t,
                                         const float *__restrict__ h_t, const float *__restrict__ w_hh_t, int B, int H)
{
    const int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= H)
        return;
    for (int b = blockIdx.y; b < B; b += gridDim.y) {
        const size_t at = (size_t)b * H + j;
        float acc = dh_t[at];
        if (da_next) {
            const float *dn = da_next + (size_t)b * H;
            for (int k = 0; k < H; k++)
                acc += dn[k] * w_hh_t[(size_t)k * H + j];
        }
        da_t[at] = acc * (1.0f - h_t[at] * h_t[at]);
    }
}

cudaError_t rnn_step_backward(float *da_t, const float *da_next, const float *dh_t, const float *h_t,
                              const float *w_hh_t, int B, int H, cudaStream_t s)
{
    LAUNCH(rnn_step_backward_kernel, step_grid(B, H), STEP_THREADS, 0, s)(da_t, da_next, dh_t, h_t, w_hh_t, B, H);
    return launched();
}

/* ---- the gated cells: one fused kernel per timestep ---- */

/* The element-wise part of one unit of the two gated cells, shared by the per-timestep kernels, the
 * persistent kernel and generation. Equations as PyTorch's nn.LSTM and nn.GRU (README): pre-activations
 * x = u W_xh + b_h and r = h_{t-1} W_hh, in gate blocks (LSTM i, f, g, o; GRU r, z, n). */
__host__ __device__ inline float sigmoid(float x)
{
    return 1.0f / (1.0f + expf(-x));
}

/* pre[4] = x + r; act = (i, f, g, o) after their nonlinearities; c = f c_prev + i g; h = o tanh(c). */
__device__ inline void lstm_cell_forward(const float pre[4], float c_prev, float act[4], float *c, float *h)
{
    act[0] = sigmoid(pre[0]), act[1] = sigmoid(pre[1]), act[2] = tanhf(pre[2]), act[3] = sigmoid(pre[3]);
    *c = act[1] * c_prev + act[0] * act[2];
    *h = act[3] * tanhf(*c);
}

/* The gradient at the pre-activations, da[4], from dh (from above and from step t+1 through W_hh) and
 * dc_next (from step t+1 through f_{t+1}); *dc_prev the part that flows on to c_{t-1}. */
__device__ inline void lstm_cell_backward(float dh, float dc_next, const float act[4], float c_prev, float c, float da[4],
                                          float *dc_prev)
{
    const float i = act[0], f = act[1], g = act[2], o = act[3], tc = tanhf(c);
    const float dc = dh * o * (1.0f - tc * tc) + dc_next;
    da[0] = dc * g * i * (1.0f - i);
    da[1] = dc * c_prev * f * (1.0f - f);
    da[2] = dc * i * (1.0f - g * g);
    da[3] = dh * tc * o * (1.0f - o);
    *dc_prev = dc * f;
}

/* x[3] = u W_xh + b_h, r[3] = h_{t-1} W_hh; act = (r, z, n); *hn = r_n + b_hn (what the reset gate
 * scales, kept for the backward pass); h = (1 - z) n + z h_prev. */
__device__ inline void gru_cell_forward(const float x[3], const float r[3], float b_hn, float h_prev, float act[3],
                                        float *hn, float *h)
{
    act[0] = sigmoid(x[0] + r[0]);
    act[1] = sigmoid(x[1] + r[1]);
    *hn = r[2] + b_hn;
    act[2] = tanhf(x[2] + act[0] * *hn);
    *h = (1.0f - act[1]) * act[2] + act[1] * h_prev;
}

/* From dh: dx[3] at the input side's pre-activations, dr[3] at the recurrent product's (they differ in
 * the n block, which the reset gate scales), and *dh_prev the part that flows straight on to h_{t-1}
 * through z. */
__device__ inline void gru_cell_backward(float dh, const float act[3], float hn, float h_prev, float dx[3], float dr[3],
                                         float *dh_prev)
{
    const float r = act[0], z = act[1], n = act[2];
    const float dn = dh * (1.0f - z) * (1.0f - n * n);
    dx[0] = dr[0] = dn * hn * r * (1.0f - r);
    dx[1] = dr[1] = dh * (h_prev - n) * z * (1.0f - z);
    dx[2] = dn;
    dr[2] = dn * r;
    *dh_prev = dh * z;
}

/* acc[g] = sum_k v[k] W[k, g H + j]: unit j's G gate sums of the vector v [K] times W [K, G H], in k order. */
template <int G> __device__ inline void gate_sums(float acc[G], const float *v, const float *__restrict__ w, int K, int H,
                                                  int j)
{
    const size_t GH = (size_t)G * H;
#pragma unroll
    for (int g = 0; g < G; g++)
        acc[g] = 0.0f;
    for (int k = 0; k < K; k++) {
        const float vk = v[k];
#pragma unroll
        for (int g = 0; g < G; g++)
            acc[g] += vk * w[k * GH + (size_t)g * H + j];
    }
}

/* Thread (b, j), all four gates of unit j: gates_t [B, 4H] holds x W_xh on entry (b_h is added here)
 * and the activations (i, f, g, o) on return; c_t, h_t [B, H] written. Coalesced as rnn_step_forward. */
__global__ void lstm_step_forward_kernel(float *gates_t, float *h_t, float *c_t, const float *__restrict__ h_prev,
                                         const float *__restrict__ c_prev, const float *__restrict__ w_hh,
                                         const float *__restrict__ b_h, int B, int H)
{
    const int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= H)
        return;
    for (int b = blockIdx.y; b < B; b += gridDim.y) {
        float *g = gates_t + (size_t)b * 4 * H, pre[4], act[4];
        gate_sums<4>(pre, h_prev + (size_t)b * H, w_hh, H, H, j);
#pragma unroll
        for (int q = 0; q < 4; q++)
            pre[q] += g[q * H + j] + b_h[q * H + j];
        const size_t at = (size_t)b * H + j;
        lstm_cell_forward(pre, c_prev[at], act, c_t + at, h_t + at);
#pragma unroll
        for (int q = 0; q < 4; q++)
            g[q * H + j] = act[q];
    }
}

cudaError_t lstm_step_forward(float *gates_t, float *h_t, float *c_t, const float *h_prev, const float *c_prev,
                              const float *w_hh, const float *b_h, int B, int H, cudaStream_t s)
{
    LAUNCH(lstm_step_forward_kernel, step_grid(B, H), STEP_THREADS, 0, s)(gates_t, h_t, c_t, h_prev, c_prev, w_hh, b_h,
                                                                          B, H);
    return launched();
}

/* Thread (b, j): gates_t [B, 3H] holds x W_xh on entry, (r, z, n) on return; hn_t [B, H] = r_n + b_hn. */
__global__ void gru_step_forward_kernel(float *gates_t, float *hn_t, float *h_t, const float *__restrict__ h_prev,
                                        const float *__restrict__ w_hh, const float *__restrict__ b_h,
                                        const float *__restrict__ b_hn, int B, int H)
{
    const int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= H)
        return;
    for (int b = blockIdx.y; b < B; b += gridDim.y) {
        float *g = gates_t + (size_t)b * 3 * H, x[3], r[3], act[3];
        gate_sums<3>(r, h_prev + (size_t)b * H, w_hh, H, H, j);
#pragma unroll
        for (int q = 0; q < 3; q++)
            x[q] = g[q * H + j] + b_h[q * H + j];
        const size_t at = (size_t)b * H + j;
        gru_cell_forward(x, r, b_hn[j], h_prev[at], act, hn_t + at, h_t + at);
#pragma unroll
        for (int q = 0; q < 3; q++)
            g[q * H + j] = act[q];
    }
}

cudaError_t gru_step_forward(float *gates_t, float *hn_t, float *h_t, const float *h_prev, const float *w_hh,
                             const float *b_h, const float *b_hn, int B, int H, cudaStream_t s)
{
    LAUNCH(gru_step_forward_kernel, step_grid(B, H), STEP_THREADS, 0, s)(gates_t, hn_t, h_t, h_prev, w_hh, b_h, b_hn,
                                                                         B, H);
    return launched();
}

/* dh_t[b, j] plus, after the last timestep, sum_k dr_next[b, k] W_hh[j, k] over the G H columns of the
 * next step's recurrent gradient, read from W_hh^T (w_hh_t [G H, H]) for coalescing. */
__device__ inline float gated_dh(const float *dh_t, const float *dr_next, const float *__restrict__ w_hh_t, int G, int B,
                                 int H, int b, int j)
{
    float acc = dh_t[(size_t)b * H + j];
    if (dr_next) {
        const float *dn = dr_next + (size_t)b * G * H;
        for (int k = 0; k < G * H; k++)
            acc += dn[k] * w_hh_t[(size_t)k * H + j];
    }
    return acc;
}

/* Thread (b, j): da_t [B, 4H] (the pre-activations' gradient, which is also the recurrent product's) and
 * dc_prev [B, H] (the gradient on to c_{t-1}) from dh_t, the next step's da_next and dc_next (NULL at
 * t = T: nothing flows in past h_T). */
__global__ void lstm_step_backward_kernel(float *da_t, float *dc_prev, const float *__restrict__ da_next,
                                          const float *__restrict__ dc_next, const float *__restrict__ dh_t,
                                          const float *__restrict__ gates_t, const float *__restrict__ c_t,
                                          const float *__restrict__ c_prev, const float *__restrict__ w_hh_t, int B,
                                          int H)
{
    const int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= H)
        return;
    for (int b = blockIdx.y; b < B; b += gridDim.y) {
        const size_t at = (size_t)b * H + j, row = (size_t)b * 4 * H;
        const float dh = gated_dh(dh_t, da_next, w_hh_t, 4, B, H, b, j);
        float act[4], da[4];
#pragma unroll
        for (int q = 0; q < 4; q++)
            act[q] = gates_t[row + q * H + j];
        lstm_cell_backward(dh, dc_next ? dc_next[at] : 0.0f, act, c_prev[at], c_t[at], da, dc_prev + at);
#pragma unroll
        for (int q = 0; q < 4; q++)
            da_t[row + q * H + j] = da[q];
    }
}

cudaError_t lstm_step_backward(float *da_t, float *dc_prev, const float *da_next, const float *dc_next,
                               const float *dh_t, const float *gates_t, const float *c_t, const float *c_prev,
                               const float *w_hh_t, int B, int H, cudaStream_t s)
{
    LAUNCH(lstm_step_backward_kernel, step_grid(B, H), STEP_THREADS, 0, s)
    (da_t, dc_prev, da_next, dc_next, dh_t, gates_t, c_t, c_prev, w_hh_t, B, H);
    return launched();
}

/* Thread (b, j): da_t and dr_t [B, 3H] (input side and recurrent product) and dh_prev [B, H] (what flows
 * straight on to h_{t-1} through z) from dh_t and the next step's dr_next and dh_next (NULL at t = T). */
__global__ void gru_step_backward_kernel(float *da_t, float *dr_t, float *dh_prev, const float *__restrict__ dr_next,
                                         const float *__restrict__ dh_next, const float *__restrict__ dh_t,
                                         const float *__restrict__ gates_t, const float *__restrict__ hn_t,
                                         const float *__restrict__ h_prev, const float *__restrict__ w_hh_t, int B,
                                         int H)
{
    const int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= H)
        return;
    for (int b = blockIdx.y; b < B; b += gridDim.y) {
        const size_t at = (size_t)b * H + j, row = (size_t)b * 3 * H;
        const float dh = gated_dh(dh_t, dr_next, w_hh_t, 3, B, H, b, j) + (dh_next ? dh_next[at] : 0.0f);
        float act[3], dx[3], dr[3];
#pragma unroll
        for (int q = 0; q < 3; q++)
            act[q] = gates_t[row + q * H + j];
        gru_cell_backward(dh, act, hn_t[at], h_prev[at], dx, dr, dh_prev + at);
#pragma unroll
        for (int q = 0; q < 3; q++) {
            da_t[row + q * H + j] = dx[q];
            dr_t[row + q * H + j] = dr[q];
        }
    }
}

cudaError_t gru_step_backward(float *da_t, float *dr_t, float *dh_prev, const float *dr_next, const float *dh_next,
                              const float *dh_t, const float *gates_t, const float *hn_t, const float *h_prev,
                              const float *w_hh_t, int B, int H, cudaStream_t s)
{
    LAUNCH(gru_step_backward_kernel, step_grid(B, H), STEP_THREADS, 0, s)
    (da_t, dr_t, dh_prev, dr_next, dh_next, dh_t, gates_t, hn_t, h_prev, w_hh_t, B, H);
    return launched();
}

/* ---- dropout ---- */

/* out [T, B, H] = in times layer's mask (inverted dropout: kept values times 1 / (1 - p)); out may be in,
 * which is the backward pass, the same mask on the gradient. Thread (t, b, four units): one Philox block
 * of common/dropout.h's counter, the very function the CPU calls, serves the four units that share it.
 * The seed and step come from device memory, so that a captured graph draws each step's own masks. */
__global__ void dropout_apply_kernel(float *out, const float *in, const DropoutArgs *d, int layer, int T, int B, int H)
{
    const int groups = (H + 3) / 4;
    const size_t n = (size_t)T * B * groups;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        const int j4 = (int)(i % groups), b = (int)(i / groups % B), t = (int)(i / ((size_t)groups * B));
        uint32_t ctr[4], key[2], r[4];
        dropout_counter(ctr, key, d->seed, (long)d->step, layer, t, b + d->row0, j4);
        philox4x32_10(ctr, key, r);
        const size_t row = ((size_t)t * B + b) * H;
#pragma unroll
        for (int q = 0; q < 4; q++) {
            const int j = 4 * j4 + q;
            if (j < H)
                out[row + j] = r[q] >= d->threshold ? in[row + j] * d->scale : 0.0f;
        }
    }
}

cudaError_t dropout_apply(float *out, const float *in, const DropoutArgs *d, int layer, int T, int B, int H,
                          cudaStream_t s)
{
    LAUNCH(dropout_apply_kernel, blocks_for((size_t)T * B * ((H + 3) / 4)), THREADS, 0, s)(out, in, d, layer, T, B, H);
    return launched();
}

/* ---- the recurrence in one persistent kernel ---- */

static const int PERSIST_THREADS = 128; /* 4 warps */
static const int PERSIST_COLS = 32;     /* a block's columns: a warp's width, one column per lane */
static const int PERSIST_WARPS = PERSIST_THREADS / PERSIST_COLS; /* each sums a quarter of k */
static const int PERSIST_EPILOGUE = 2;  /* rows per thread when the warps' partial sums are added: 8 / 4 */
/* The sums run over k < K = H rounded up to a multiple of 4, for float4 reads; the extra k hold zeros
 * in both operands, which leave every sum exactly as it was. */
__host__ __device__ inline int padded_k(int H)
{
    return (H + 3) / 4 * 4;
}

/* A shared row holds `width` values (K, or 2K for [input | previous state]) rounded up to 8, plus 4
 * floats: an odd number of float4s, so that the 8 lanes of a quarter-warp's float4 reads of 8
 * consecutive rows fall in distinct banks. */
__host__ __device__ inline int shared_stride(int width)
{
    return (width + 7) / 8 * 8 + 4;
}

/* Copies `rows` rows of H values from src (row-major, H apart; NULL: zeros) to dst (ld apart), zeros
 * past H (to K) and past B: with 16-byte loads and stores when the rows are 16-byte aligned (H a
 * multiple of 4 and src itself aligned, as the backend's buffers are, each starting on 256 bytes; a
 * caller's pointer into one is checked all the same). The state was written by other blocks in
 * this launch: plain loads, not the read-only path (__ldg), which is not coherent with writes made during
 * the kernel. */
__device__ void stage_rows(float *dst, int ld, const float *src, int r0, int rows, int B, int H)
{
    const int K = padded_k(H);
    if ((H & 3) == 0 && ((uintptr_t)src & 15) == 0) {
        const int quads = K / 4;
        for (int i = threadIdx.x; i < rows * quads; i += blockDim.x) {
            const int r = i / quads, k = i % quads * 4;
            float4 v = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            if (src && r0 + r < B)
                v = *(const float4 *)(src + (size_t)(r0 + r) * H + k);
            *(float4 *)(dst + r * ld + k) = v;
        }
    } else {
        for (int i = threadIdx.x; i < rows * K; i += blockDim.x) {
            const int r = i / K, k = i % K;
            dst[r * ld + k] = src && r0 + r < B && k < H ? src[(size_t)(r0 + r) * H + k] : 0.0f;
        }
    }
}

/* Copies a block's 32-wide slice of W [H, N] into shared rows w_s[c * ld + k]: forward the columns
 * W[k, c0 + c] over k < H (read along c; zeros from column `end` on), backward the rows W[c0 + c, k]
 * over k < N (read along k; zeros from row H on); both coalesced, zeros past the inner dimension. */
template <bool BACKWARD> __device__ void stage_weights(float *w_s, int ld, const float *w, int c0, int end, int H, int N)
{
    const int K = padded_k(BACKWARD ? N : H);
    for (int i = threadIdx.x; i < PERSIST_COLS * K; i += blockDim.x) {
        const int k = BACKWARD ? i % K : i / PERSIST_COLS, c = BACKWARD ? i / K : i % PERSIST_COLS;
        const size_t at = BACKWARD ? (size_t)(c0 + c) * N + k : (size_t)k * N + c0 + c;
        w_s[c * ld + k] = BACKWARD ? c0 + c < H && k < N ? w[at] : 0.0f : c0 + c < end && k < H ? w[at] : 0.0f;
    }
}

/* The k of the inner dimension [lo, hi) that warp `warp` sums: a quarter, in whole float4s. */
__device__ inline void warp_share(int lo, int hi, int warp, int *k0, int *k1)
{
    const int per_warp = ((hi - lo) / 4 + PERSIST_WARPS - 1) / PERSIST_WARPS * 4;
    *k0 = lo + warp * per_warp;
    *k1 = min(hi, *k0 + per_warp);
}

/* part[q 32] = sum over k in [k0, k1) of v_s[q * ld + k] wc[k], for the ROWS staged rows, in k order; wc
 * is the thread's shared weight row, part its first partial sum in shared memory. Float4 reads: a quarter-warp's 8 lanes read 8 rows in distinct banks. */
template <int ROWS> __device__ inline void tile_sums(float *part, const float *wc, const float *v_s, int ld, int k0, int k1)
{
    float acc[ROWS];
#pragma unroll
    for (int q = 0; q < ROWS; q++)
        acc[q] = 0.0f;
    for (int k = k0; k < k1; k += 4) {
        const float4 wv = *(const float4 *)(wc + k);
#pragma unroll
        for (int q = 0; q < ROWS; q++) {
            const float4 v = *(const float4 *)(v_s + q * ld + k);
            acc[q] += v.x * wv.x;
            acc[q] += v.y * wv.y;
            acc[q] += v.z * wv.z;
            acc[q] += v.w * wv.w;
        }
    }
#pragma unroll
    for (int q = 0; q < ROWS; q++)
        part[q * PERSIST_COLS] = acc[q];
}

/* Block (layer li, tile) of one launch; thread (lane, warp) sums column c0 + lane of the tile's ROWS
 * rows over its warp's quarter of k, then adds the four quarters of rows warp, warp + 4 (in warp order).
 * Shared memory: the weights [32][ld] (each row [W_link slice | W_hh slice] when the launch has several
 * layers), the staged vectors [ROWS][ld] in the same layout, and the partial sums [4][ROWS][32].
 *
 * Forward, layer li at wave step s computes h_t, t = s - li + 1:
 *   h_t = tanh(p_t + b + h_{t-1} W_hh)          the launch's first layer (p_t from the product before it)
 *   h_t = tanh(b + h^{l-1}_t W_xh + h_{t-1} W_hh)  the layers above it
 * Backward, t = T - (s - depth), depth counted from the launch's top layer:
 *   da_t = (dh_t + da_{t+1} W_hh^T) (1 - h_t^2)                   the top layer (dh from the logits)
 *   da_t = (da^{l+1}_t W_xh^{l+1}^T + da_{t+1} W_hh^T) (1 - h_t^2)  the layers below it
 * What the epilogue adds (p_t + b, dh_t and h_t) is loaded into registers before the grid-wide barrier
 * that precedes its step, so its latency hides behind the wait. The arguments stay in parameter memory
 * (__grid_constant__: indexing the layers at run time would otherwise copy them to the stack), and the
 * launch bounds' minimum of one block per SM lets ptxas use the registers the unrolled sums want
 * (without it ptxas kept to 64 and spilled; the plan counts the registers per SM). */
template <int ROWS, bool BACKWARD>
__global__ void __launch_bounds__(PERSIST_THREADS, 1) rnn_recurrence_kernel(const __grid_constant__ RecurrenceArgs a)
{
    EXTERN_SHARED(float, shared);
    const int H = a.H, B = a.B, T = a.T, K = padded_k(H), linked = a.layers > 1;
    const int ld = shared_stride(linked ? 2 * K : K), prev_at = linked ? K : 0;
    float *w_s = shared, *v_s = w_s + PERSIST_COLS * ld, *part_s = v_s + ROWS * ld;
    const int tiles = a.row_tiles * a.col_tiles, li = blockIdx.x / tiles, tile = blockIdx.x % tiles;
    const int r0 = tile / a.col_tiles * ROWS, c0 = tile % a.col_tiles * PERSIST_COLS;
    const int lane = threadIdx.x % PERSIST_COLS, warp = threadIdx.x / PERSIST_COLS, j = c0 + lane;
    const RecurrenceLayer layer = a.layer[li];
    /* forward: the layer below feeds this one; backward: the layer above does */
    const bool has_link = BACKWARD ? li + 1 < a.layers : li > 0;
    const RecurrenceLayer *link = has_link ? &a.layer[BACKWARD ? li + 1 : li - 1] : NULL;
    const int depth = BACKWARD ? a.layers - 1 - li : li;
    const size_t BH = (size_t)B * H;

    stage_weights<BACKWARD>(w_s + prev_at, ld, layer.w_hh, c0, H, H, H);
    if (has_link)
        stage_weights<BACKWARD>(w_s, ld, layer.w_link, c0, H, H, H);

    /* What the epilogue of this layer's step u adds, for its rows (warp + e * 4): forward p_t + b (or b),
     * backward dh_t (or 0) and h_t. */
    float add[PERSIST_EPILOGUE], h_t[PERSIST_EPILOGUE];
    auto prefetch = [&](int u) {
        const int t = BACKWARD ? T - u : u + 1;
#pragma unroll
        for (int e = 0; e < PERSIST_EPILOGUE; e++) {
            const int b = r0 + warp + e * PERSIST_WARPS;
            add[e] = h_t[e] = 0.0f;
            if (u >= T || warp + e * PERSIST_WARPS >= ROWS || b >= B || j >= H)
                continue;
            const size_t at = (size_t)b * H + j;
            if (BACKWARD) {
                add[e] = layer.dh ? layer.dh[(size_t)(t - 1) * BH + at] : 0.0f;
                h_t[e] = layer.h[(size_t)t * BH + at];
            } else {
                add[e] = (has_link ? 0.0f : layer.state[(size_t)t * BH + at]) + layer.b_h[j];
            }
        }
    };
    prefetch(0);

    cooperative_groups::grid_group grid = cooperative_groups::this_grid();
    const int steps = T + a.layers - 1;
    for (int s = 0; s < steps; s++) {
        const int u = s - depth;
        if (u >= 0 && u < T) {
            const int t = BACKWARD ? T - u : u + 1;
            float *out = layer.state + (size_t)(BACKWARD ? t - 1 : t) * BH;
            const float *prev = BACKWARD ? (t < T ? layer.state + (size_t)t * BH : NULL) : layer.state + (size_t)(t - 1) * BH;
            /* forward: h^{l-1}_t; backward: da^{l+1}_t */
            const float *in = link ? link->state + (size_t)(BACKWARD ? t - 1 : t) * BH : NULL;
            if (prev)
                stage_rows(v_s + prev_at, ld, prev, r0, ROWS, B, H);
            if (in)
                stage_rows(v_s, ld, in, r0, ROWS, B, H);
            __syncthreads();
            /* k runs over [lo, hi) of the row layout: the linked part [0, K) when there is an input, the
             * recurrent part [prev_at, prev_at + K) when there is a previous state */
            int k0, k1;
            warp_share(in ? 0 : prev_at, prev ? prev_at + K : (in ? K : 0), warp, &k0, &k1);
            tile_sums<ROWS>(part_s + warp * ROWS * PERSIST_COLS + lane, w_s + lane * ld, v_s, ld, k0, k1);
            __syncthreads();
#pragma unroll
            for (int e = 0; e < PERSIST_EPILOGUE; e++) {
                const int q = warp + e * PERSIST_WARPS, b = r0 + q;
                if (q >= ROWS || b >= B || j >= H)
                    continue;
                float total = add[e];
#pragma unroll
                for (int w = 0; w < PERSIST_WARPS; w++)
                    total += part_s[(w * ROWS + q) * PERSIST_COLS + lane];
                out[(size_t)b * H + j] = BACKWARD ? total * (1.0f - h_t[e] * h_t[e]) : tanhf(total);
            }
            prefetch(u + 1);
        }
        if (s + 1 < steps) /* the same for every block: all of them meet at each barrier */
            grid.sync();   /* every block's tile of this step is written before any block reads it */
    }
}

/* The element-wise end of gated_recurrence_kernel's timestep t for unit j of batch row b, forward: r the
 * G gates' recurrent sums; the input projections in gates_t become the activations, h_t and the LSTM's
 * c_t or the GRU's hn_t are written. */
template <int G>
__device__ inline void gated_unit_forward(const RecurrenceLayer &layer, const float r[4], int t, int B, int H, int b, int j)
{
    const size_t BH = (size_t)B * H, at = (size_t)b * H + j, now = (size_t)(t - 1) * BH;
    float *gates = layer.gates + (size_t)(t - 1) * B * G * H + (size_t)b * G * H + j;
    float x[4] = {0.0f, 0.0f, 0.0f, 0.0f}, act[4], h;
#pragma unroll
    for (int g = 0; g < G; g++)
        x[g] = gates[g * H] + layer.b_h[g * H + j];
    if (G == 4) {
        const float pre[4] = {x[0] + r[0], x[1] + r[1], x[2] + r[2], x[3] + r[3]};
        lstm_cell_forward(pre, layer.c[now + at], act, layer.c + now + BH + at, &h);
    } else {
        gru_cell_forward(x, r, layer.b_hn[j], layer.state[now + at], act, layer.hn + now + at, &h);
    }
    layer.state[now + BH + at] = h;
#pragma unroll
    for (int g = 0; g < G; g++)
        gates[g * H] = act[g];
}

/* Backward: dh_rec the gradient through W_hh; with dh_t from above and what step t+1 carries element-wise
 * (none at t = T), da_t (the GRU also drec_t) and dstate_{t-1} are written. */
template <int G>
__device__ inline void gated_unit_backward(const RecurrenceLayer &layer, float dh_rec, int t, int T, int B, int H, int b,
                                           int j)
{
    const size_t BH = (size_t)B * H, at = (size_t)b * H + j, now = (size_t)(t - 1) * BH;
    const size_t row = (size_t)(t - 1) * B * G * H + (size_t)b * G * H + j;
    float act[4], dx[4];
#pragma unroll
    for (int g = 0; g < G; g++)
        act[g] = layer.gates[row + g * H];
    const float carried = t < T ? layer.dstate[now + BH + at] : 0.0f; /* LSTM dc_{t+1}, GRU dh_{t+1} */
    const float dh = layer.dh[now + at] + dh_rec;
    if (G == 4) {
        lstm_cell_backward(dh, carried, act, layer.c[now + at], layer.c[now + BH + at], dx, layer.dstate + now + at);
    } else {
        float dr[4];
        gru_cell_backward(dh + carried, act, layer.hn[now + at], layer.h[now + at], dx, dr, layer.dstate + now + at);
#pragma unroll
        for (int g = 0; g < G; g++)
            layer.drec[row + g * H] = dr[g];
    }
#pragma unroll
    for (int g = 0; g < G; g++)
        layer.state[row + g * H] = dx[g];
}

/* A gated cell's layer (G = 3: GRU, 4: LSTM), one block per tile of ROWS batch rows by 32 units; thread
 * (lane, warp) sums unit c0 + lane of the tile's rows over its warp's quarter of k, the quarters then
 * added in warp order by the thread that owns the row (rows warp, warp + 4) in the epilogue, which does
 * the unit's element-wise work with the very functions the per-timestep kernels call.
 *
 * Forward, t = u + 1: r_g = h_{t-1} W_hh's gate g column of the unit (G x 32 shared weight rows, one
 * per gate and unit), then the cell: the LSTM's c_t from c_{t-1}, the GRU's hn_t; gates_t's input
 * projections are replaced by the activations, as lstm/gru_step_forward do. Shared memory: the weights
 * [G 32][ld], h_{t-1}'s rows [ROWS][ld] (ld from K = H), the partial sums [4][G][ROWS][32].
 *
 * Backward, t = T - u: dh = dh_t + drec_{t+1} W_hh^T, the inner dimension the G H columns of the next
 * step's recurrent gradient (32 shared weight rows: W_hh's rows of the block's units), then the cell's
 * gradients da_t (the GRU also drec_t) and dstate_{t-1}, from dstate_t (the LSTM's dc, the GRU's direct
 * dh); at t = T nothing flows in. Shared memory: the weights [32][ld], drec_{t+1}'s rows [ROWS][ld] (ld
 * from K = G H), the partial sums [4][ROWS][32].
 *
 * What the epilogue reads of its own unit (c, hn, dstate) the same thread wrote the step before; what
 * it stages (h_{t-1}, drec_{t+1}) the other blocks wrote before the grid-wide barrier. */
template <int G, int ROWS, bool BACKWARD>
__global__ void __launch_bounds__(PERSIST_THREADS, 1) gated_recurrence_kernel(const __grid_constant__ RecurrenceArgs a)
{
    EXTERN_SHARED(float, shared);
    const int H = a.H, B = a.B, T = a.T, GH = G * H, K = padded_k(BACKWARD ? GH : H), ld = shared_stride(K);
    const int SUMS = BACKWARD ? 1 : G; /* weight rows (of 32) and sums per unit and batch row: forward one per gate */
    float *w_s = shared, *v_s = w_s + SUMS * PERSIST_COLS * ld, *part_s = v_s + ROWS * ld;
    const int r0 = blockIdx.x / a.col_tiles * ROWS, c0 = blockIdx.x % a.col_tiles * PERSIST_COLS;
    const int lane = threadIdx.x % PERSIST_COLS, warp = threadIdx.x / PERSIST_COLS, j = c0 + lane;
    const RecurrenceLayer &layer = a.layer[0];
    const size_t BH = (size_t)B * H, BGH = (size_t)B * GH;

    if (BACKWARD)
        stage_weights<true>(w_s, ld, layer.w_hh, c0, H, H, GH);
    else
        for (int g = 0; g < G; g++)
            stage_weights<false>(w_s + g * PERSIST_COLS * ld, ld, layer.w_hh, g * H + c0, (g + 1) * H, H, GH);

    cooperative_groups::grid_group grid = cooperative_groups::this_grid();
    for (int u = 0; u < T; u++) {
        const int t = BACKWARD ? T - u : u + 1;
        /* forward h_{t-1}; backward drec_{t+1}, none at t = T */
        const float *in = BACKWARD ? (t < T ? layer.drec + (size_t)t * BGH : NULL) : layer.state + (size_t)(t - 1) * BH;
        if (in)
            stage_rows(v_s, ld, in, r0, ROWS, B, BACKWARD ? GH : H);
        __syncthreads();
        int k0, k1;
        warp_share(0, in ? K : 0, warp, &k0, &k1);
        for (int g = 0; g < SUMS; g++)
            tile_sums<ROWS>(part_s + (warp * SUMS + g) * ROWS * PERSIST_COLS + lane,
                            w_s + (g * PERSIST_COLS + lane) * ld, v_s, ld, k0, k1);
        __syncthreads();
#pragma unroll
        for (int e = 0; e < PERSIST_EPILOGUE; e++) {
            const int q = warp + e * PERSIST_WARPS, b = r0 + q;
            if (q >= ROWS || b >= B || j >= H)
                continue;
            float r[4] = {0.0f, 0.0f, 0.0f, 0.0f}; /* forward the gates' sums; backward r[0], dh through W_hh */
#pragma unroll
            for (int g = 0; g < SUMS; g++)
#pragma unroll
                for (int w = 0; w < PERSIST_WARPS; w++)
                    r[g] += part_s[((w * SUMS + g) * ROWS + q) * PERSIST_COLS + lane];
            if (BACKWARD)
                gated_unit_backward<G>(layer, r[0], t, T, B, H, b, j);
            else
                gated_unit_forward<G>(layer, r, t, B, H, b, j);
        }
        if (u + 1 < T) /* the same for every block: all of them meet at each barrier */
            grid.sync(); /* every block's units of this step are written before any block stages them */
    }
}

/* Per block, the larger of the two directions: the tanh cell's weights (32 rows, [W_link | W_hh] when
 * linked), staged rows and partial sums; a gated cell's as gated_recurrence_kernel lays them out. */
static size_t persistent_shared_bytes(int rows, int H, int layers, int gates)
{
    const size_t partials = (size_t)PERSIST_WARPS * rows * PERSIST_COLS;
    if (gates == 1)
        return sizeof(float) * ((size_t)(PERSIST_COLS + rows) * shared_stride((layers > 1 ? 2 : 1) * padded_k(H)) +
                                partials);
    const size_t forward = (size_t)(gates * PERSIST_COLS + rows) * shared_stride(padded_k(H)) + gates * partials;
    const size_t backward = (size_t)(PERSIST_COLS + rows) * shared_stride(padded_k(gates * H)) + partials;
    return sizeof(float) * (forward > backward ? forward : backward);
}

/* The persistent kernel of a cell (G gates) and tile height, forward or backward. */
typedef void (*RecurrenceKernel)(const RecurrenceArgs);
template <int ROWS, bool BACKWARD> static RecurrenceKernel recurrence_kernel_of(int gates)
{
    return gates == 4   ? gated_recurrence_kernel<4, ROWS, BACKWARD>
           : gates == 3 ? gated_recurrence_kernel<3, ROWS, BACKWARD>
                        : rnn_recurrence_kernel<ROWS, BACKWARD>;
}
template <bool BACKWARD> static RecurrenceKernel recurrence_kernel(int gates, int rows)
{
    switch (rows) {
    case 1:
        return recurrence_kernel_of<1, BACKWARD>(gates);
    case 2:
        return recurrence_kernel_of<2, BACKWARD>(gates);
    case 4:
        return recurrence_kernel_of<4, BACKWARD>(gates);
    default:
        return recurrence_kernel_of<8, BACKWARD>(gates);
    }
}

/* Both directions of one cell and tile height: shared memory beyond the default 48 KiB allowed, how many
 * blocks an SM holds (registers, shared memory, threads) and the registers per thread. */
static cudaError_t occupancy(int gates, int rows, int *per_sm, int *registers, size_t shared, int optin)
{
    const RecurrenceKernel forward = recurrence_kernel<false>(gates, rows), backward = recurrence_kernel<true>(gates, rows);
    cudaError_t status;
    int fb = 0, bb = 0;
    cudaFuncAttributes fa, ba;
    if ((status = cudaFuncSetAttribute(forward, cudaFuncAttributeMaxDynamicSharedMemorySize, optin)) != cudaSuccess ||
        (status = cudaFuncSetAttribute(backward, cudaFuncAttributeMaxDynamicSharedMemorySize, optin)) != cudaSuccess ||
        (status = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&fb, forward, PERSIST_THREADS, shared)) != cudaSuccess ||
        (status = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&bb, backward, PERSIST_THREADS, shared)) !=
            cudaSuccess ||
        (status = cudaFuncGetAttributes(&fa, forward)) != cudaSuccess ||
        (status = cudaFuncGetAttributes(&ba, backward)) != cudaSuccess)
        return status;
    *per_sm = fb < bb ? fb : bb;
    *registers = fa.numRegs > ba.numRegs ? fa.numRegs : ba.numRegs;
    return cudaSuccess;
}

/* The best tile height for `layers` layers per launch, or blocks == 0 with why_not. The height comes
 * from a model of one timestep's time on an SM: shared-memory reads bound the inner loop (per 4 values
 * of k a warp reads its 32 rows of weights as float4, 4 wavefronts, and one broadcast float4 per batch
 * row), times the blocks an SM runs side by side, plus staging the vectors. More rows per block means
 * fewer weight reads per multiply-add but fewer blocks to spread over the SMs. A model to be checked
 * against the device, not a measurement. */
static cudaError_t plan_layers(RecurrencePlan *plan, const RecurrenceRequest *r, int layers, int sms, int optin)
{
    memset(plan, 0, sizeof *plan);
    plan->why_not = "W_hh's columns do not fit in shared memory";
    const int K = padded_k(r->H), width = (layers > 1 ? 2 : 1) * K;
    double best = 0.0;
    for (int rows = 1; rows <= 8; rows *= 2) {
        if (r->only_rows && rows != r->only_rows)
            continue;
        const size_t shared = persistent_shared_bytes(rows, r->H, layers, r->gates);
        if (shared > (size_t)optin)
            continue;
        const int row_tiles = (r->B + rows - 1) / rows, col_tiles = (r->H + PERSIST_COLS - 1) / PERSIST_COLS;
        const int blocks = layers * row_tiles * col_tiles;
        int per_sm = 0, registers = 0;
        cudaError_t status = occupancy(r->gates, rows, &per_sm, &registers, shared, optin);
        if (status != cudaSuccess)
            return status;
        if (blocks > per_sm * sms) {
            plan->why_not = "there are more tiles than blocks the device holds at once";
            continue;
        }
        const int side_by_side = (blocks + sms - 1) / sms;
        const double cost = (double)side_by_side * (width / 4) * (4 + rows) + (double)rows * width / 32;
        if (plan->blocks == 0 || cost < best) {
            best = cost;
            *plan = RecurrencePlan{layers, r->gates, rows, row_tiles, col_tiles, blocks, shared, per_sm, registers, NULL,
                                   NULL};
        }
    }
    return cudaSuccess;
}

const char GATED_NO_WAVEFRONT[] = "the wavefront runs the tanh cell only; gru and lstm run one persistent launch per "
                                  "layer";

/* A wavefront of all the layers when it fits on the device at once (T + L - 1 grid-wide barriers per
 * direction instead of L T), else one launch per layer, else none. */
cudaError_t plan_recurrence(RecurrencePlan *plan, const RecurrenceRequest *request)
{
    memset(plan, 0, sizeof *plan);
    int device = 0, sms = 0, cooperative = 0, optin = 0;
    cudaError_t status;
    if ((status = cudaGetDevice(&device)) != cudaSuccess ||
        (status = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device)) != cudaSuccess ||
        (status = cudaDeviceGetAttribute(&cooperative, cudaDevAttrCooperativeLaunch, device)) != cudaSuccess ||
        (status = cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device)) != cudaSuccess)
        return status;
    if (!cooperative) {
        plan->why_not = "the device has no cooperative launch";
        return cudaSuccess;
    }
    const char *why_not_wavefront = request->gates > 1 ? GATED_NO_WAVEFRONT : NULL;
    if (request->layers > 1 && request->wavefront && request->gates == 1) {
        if ((status = plan_layers(plan, request, request->layers, sms, optin)) != cudaSuccess || plan->blocks)
            return status;
        why_not_wavefront = plan->why_not;
    }
    if ((status = plan_layers(plan, request, 1, sms, optin)) != cudaSuccess)
        return status;
    plan->why_not_wavefront = request->layers > 1 && request->wavefront ? why_not_wavefront : NULL;
    return cudaSuccess;
}

template <bool BACKWARD>
static cudaError_t launch_persistent(const RecurrenceArgs *args, const RecurrencePlan *p, cudaStream_t s)
{
    RecurrenceArgs a = *args;
    a.row_tiles = p->row_tiles;
    a.col_tiles = p->col_tiles;
    const int blocks = a.layers * p->row_tiles * p->col_tiles;
    return LAUNCH_COOPERATIVE(recurrence_kernel<BACKWARD>(p->gates, p->rows), blocks, PERSIST_THREADS, p->shared_bytes,
                              s)(a);
}

cudaError_t rnn_forward_persistent(const RecurrenceArgs *args, const RecurrencePlan *plan, cudaStream_t s)
{
    return launch_persistent<false>(args, plan, s);
}

cudaError_t rnn_backward_persistent(const RecurrenceArgs *args, const RecurrencePlan *plan, cudaStream_t s)
{
    return launch_persistent<true>(args, plan, s);
}

/* ---- reductions ---- */

/* Tree reduction over the block in shared memory: the same pairing every time, so deterministic. */
template <class T, class Op> __device__ T block_reduce(T value, Op op)
{
    __shared__ T partial[THREADS];
    const int t = threadIdx.x;
    partial[t] = value;
    __syncthreads();
    for (int stride = THREADS / 2; stride > 0; stride >>= 1) {
        if (t < stride)
            partial[t] = op(partial[t], partial[t + stride]);
        __syncthreads();
    }
    T result = partial[0];
    __syncthreads(); /* partial is reused by the next call */
    return result;
}

struct Max {
    __device__ float operator()(float a, float b) const { return a > b ? a : b; }
};
template <class T> struct Add {
    __device__ T operator()(T a, T b) const { return a + b; }
};

/* One block per row: the max and the sum of exponentials by block reductions, then the row's loss and,
 * when scale != 0, its gradient in place. */
__global__ void softmax_xent_kernel(float *logits, const token_t *y, float *row_loss, int V, float scale)
{
    float *z = logits + (size_t)blockIdx.x * V;
    const int target = y[blockIdx.x];
    float zmax = -INFINITY;
    for (int j = threadIdx.x; j < V; j += THREADS)
        zmax = fmaxf(zmax, z[j]);
    zmax = block_reduce(zmax, Max());
    float total = 0.0f;
    for (int j = threadIdx.x; j < V; j += THREADS)
        total += expf(z[j] - zmax);
    /* log-sum-exp less the maximum: the maximum is never added back to a small term it would absorb
     * (logits of 3e38 plus ln V is 3e38 in float32), so the loss is right for any finite logits. */
    const float log_sum = logf(block_reduce(total, Add<float>()));
    if (threadIdx.x == 0)
        row_loss[blockIdx.x] = (zmax - z[target]) + log_sum;
    if (scale == 0.0f)
        return;
    __syncthreads(); /* z[target] is read above before any thread overwrites it */
    for (int j = threadIdx.x; j < V; j += THREADS)
        z[j] = expf((z[j] - zmax) - log_sum) * scale;
    __syncthreads();
    if (threadIdx.x == 0)
        z[target] -= scale;
}

cudaError_t softmax_xent(float *logits, const token_t *y, float *row_loss, int rows, int V, float scale, cudaStream_t s)
{
    LAUNCH(softmax_xent_kernel, rows, THREADS, 0, s)(logits, y, row_loss, V, scale);
    return launched();
}

/* Block b sums x[i] for i = b * THREADS + t, stepping by the whole grid, into partial[b]; then one block
 * sums the partials. A grid fixed by n, so a fixed order: deterministic. */
static const int SUM_PER_THREAD = 16;
__global__ void sum_partial_kernel(double *partial, const float *x, size_t n, int squares)
{
    double acc = 0.0;
    for (size_t i = blockIdx.x * (size_t)THREADS + threadIdx.x; i < n; i += (size_t)gridDim.x * THREADS)
        acc += squares ? (double)x[i] * x[i] : (double)x[i];
    acc = block_reduce(acc, Add<double>());
    if (threadIdx.x == 0)
        partial[blockIdx.x] = acc;
}

__global__ void sum_final_kernel(double *out, const double *partial, int n)
{
    double acc = 0.0;
    for (int i = threadIdx.x; i < n; i += THREADS)
        acc += partial[i];
    acc = block_reduce(acc, Add<double>());
    if (threadIdx.x == 0)
        *out = acc;
}

cudaError_t sum(double *out, double *partial, const float *x, size_t n, int squares, cudaStream_t s)
{
    /* At least SUM_PER_THREAD values per thread: a few blocks for a small n, SUM_BLOCKS for a large one.
     * The grid depends on n alone, so the order does too. */
    const size_t per_block = (size_t)THREADS * SUM_PER_THREAD;
    const int blocks = n >= per_block * SUM_BLOCKS ? SUM_BLOCKS : (int)((n + per_block - 1) / per_block) + (n == 0);
    LAUNCH(sum_partial_kernel, blocks, THREADS, 0, s)(partial, x, n, squares);
    cudaError_t status = launched();
    if (status != cudaSuccess)
        return status;
    LAUNCH(sum_final_kernel, 1, THREADS, 0, s)(out, partial, blocks);
    return launched();
}

/* ---- generation: one character, one launch of one block ---- */

static const int SAMPLE_WARPS = SAMPLE_THREADS / 32;

/* y[j] = add[j] + sum_k x[k] W[k, j] for j < N (W [K, N] row-major; add NULL: 0; y may be add), by
 * every thread of the block: warp w takes columns 32 (w % tiles) .. and, when there are fewer column
 * tiles than warps, slice w / tiles of k, the slices' partial sums then added in slice order. x is in
 * shared memory; W is read from device memory, where the model stays (in L2) from character to
 * character. Ends with a barrier: y is complete and x may be overwritten. */
__device__ void block_matvec(const float *x, int K, const float *__restrict__ W, int N, const float *add, float *y,
                             float *part)
{
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, tiles = (N + 31) / 32;
    const int slices = tiles >= SAMPLE_WARPS ? 1 : SAMPLE_WARPS / tiles;
    const int per_slice = (K + slices - 1) / slices;
    if (slices == 1) {
        for (int tile = warp; tile < tiles; tile += SAMPLE_WARPS) {
            const int j = tile * 32 + lane;
            if (j >= N)
                continue;
            float acc = 0.0f;
            for (int k = 0; k < K; k++)
                acc += x[k] * W[(size_t)k * N + j];
            y[j] = (add ? add[j] : 0.0f) + acc;
        }
        __syncthreads();
        return;
    }
    if (warp < tiles * slices) {
        const int tile = warp % tiles, slice = warp / tiles, j = tile * 32 + lane;
        const int k0 = slice * per_slice, k1 = min(K, k0 + per_slice);
        float acc = 0.0f;
        if (j < N)
            for (int k = k0; k < k1; k++)
                acc += x[k] * W[(size_t)k * N + j];
        part[warp * 32 + lane] = acc;
    }
    __syncthreads();
    for (int j = threadIdx.x; j < N; j += SAMPLE_THREADS) {
        float total = add ? add[j] : 0.0f;
        for (int slice = 0; slice < slices; slice++)
            total += part[(slice * tiles + j / 32) * 32 + j % 32];
        y[j] = total;
    }
    __syncthreads();
}

/* The block's largest z[j] with its lowest index (sample_logits' "best"), or the smallest z[j]
 * (smallest = true), over j < n; every thread gets it. Ends with a barrier. */
__device__ void block_extreme(const float *z, int n, bool smallest, const bool *eligible, float *value_s, int *index_s,
                              float *value, int *index)
{
    const int t = threadIdx.x;
    float v = smallest ? INFINITY : -INFINITY;
    int at = n;
    for (int j = t; j < n; j += SAMPLE_THREADS) {
        if (eligible && !eligible[j])
            continue;
        if (at == n || (smallest ? z[j] < v : z[j] > v))
            v = z[j], at = j;
    }
    value_s[t] = v;
    index_s[t] = at;
    __syncthreads();
    for (int stride = SAMPLE_THREADS / 2; stride > 0; stride >>= 1) {
        if (t < stride) {
            const float o = value_s[t + stride];
            const int oi = index_s[t + stride];
            const bool better = oi < n && (index_s[t] == n || (smallest ? o < value_s[t] : o > value_s[t]) ||
                                           (o == value_s[t] && oi < index_s[t]));
            if (better)
                value_s[t] = o, index_s[t] = oi;
        }
        __syncthreads();
    }
    *value = value_s[0];
    *index = index_s[0];
    __syncthreads();
}

/* One character: the input row, every layer's step (h = tanh(u W_xh + b + h W_hh), or a gated cell's,
 * whose input and recurrent products are kept apart as the GRU's reset gate needs), the logits b_y +
 * h W_hy, and with draw.sample the next character by sample_logits' rule: the most likely with argmax;
 * else, among the logits at least the top-k-th largest (all without top-k), p_j = exp((z_j - z_best) /
 * T), and the first j whose running sum (in double, in index order) exceeds u times the total. */
__global__ void __launch_bounds__(SAMPLE_THREADS) sample_step_kernel(SampleModel m, int token, SampleDraw draw,
                                                                       token_t *out)
{
    EXTERN_SHARED(float, shared);
    __shared__ float value_s[SAMPLE_THREADS];
    __shared__ int index_s[SAMPLE_THREADS];
    const int H = m.H, E = m.E, V = m.V, I_max = E > H ? E : H, G = gates_of(m.cell), GH = G * H;
    float *in_s = shared, *prev_s = in_s + I_max, *acc_s = prev_s + H, *rec_s = acc_s + GH;
    float *part_s = rec_s + (G > 1 ? GH : 0);
    float *p_s = part_s + SAMPLE_WARPS * 32; /* [V] when drawing */
    bool *keep_s = (bool *)(p_s + V);

    /* Layer 0's input: a row of Emb W_xh when the backend keeps it, else the embedding row. */
    const int folded = m.vocab_rows != NULL;
    if (folded)
        for (int k = threadIdx.x; k < GH; k += SAMPLE_THREADS)
            acc_s[k] = m.vocab_rows[(size_t)token * GH + k];
    else
        for (int k = threadIdx.x; k < E; k += SAMPLE_THREADS)
            in_s[k] = m.embedding[(size_t)token * E + k];
    for (int l = 0; l < m.L; l++) {
        float *h = m.h + (size_t)l * H;
        for (int k = threadIdx.x; k < H; k += SAMPLE_THREADS)
            prev_s[k] = h[k];
        __syncthreads();
        if (!(l == 0 && folded))
            block_matvec(in_s, l == 0 ? E : H, m.w_xh[l], GH, NULL, acc_s, part_s);
        for (int k = threadIdx.x; k < GH; k += SAMPLE_THREADS)
            acc_s[k] += m.b_h[l][k];
        __syncthreads();
        if (G == 1) {
            block_matvec(prev_s, H, m.w_hh[l], H, acc_s, acc_s, part_s);
            for (int k = threadIdx.x; k < H; k += SAMPLE_THREADS) {
                const float v = tanhf(acc_s[k]);
                h[k] = v;
                in_s[k] = v; /* the next layer's input */
            }
        } else {
            block_matvec(prev_s, H, m.w_hh[l], GH, NULL, rec_s, part_s);
            const float *b_hn = m.b_h[l] + GH; /* the GRU's (SampleModel) */
            for (int k = threadIdx.x; k < H; k += SAMPLE_THREADS) {
                float act[4], v;
                if (G == 4) {
                    const float pre[4] = {acc_s[k] + rec_s[k], acc_s[H + k] + rec_s[H + k],
                                          acc_s[2 * H + k] + rec_s[2 * H + k], acc_s[3 * H + k] + rec_s[3 * H + k]};
                    float *c = m.c + (size_t)l * H + k;
                    lstm_cell_forward(pre, *c, act, c, &v);
                } else {
                    const float x[3] = {acc_s[k], acc_s[H + k], acc_s[2 * H + k]};
                    const float r[3] = {rec_s[k], rec_s[H + k], rec_s[2 * H + k]};
                    float hn;
                    gru_cell_forward(x, r, b_hn[k], prev_s[k], act, &hn, &v);
                }
                h[k] = v;
                in_s[k] = v;
            }
        }
        __syncthreads();
    }
    block_matvec(in_s, H, m.w_hy, V, m.b_y, m.logits, part_s);
    if (!draw.sample)
        return;

    const float *z = m.logits; /* written by this block above, read back after the barrier */
    float best_value;
    int best;
    block_extreme(z, V, false, NULL, value_s, index_s, &best_value, &best);
    if (draw.argmax) {
        if (threadIdx.x == 0)
            *out = (token_t)best;
        return;
    }
    /* top-k: keep z_j when fewer than k logits exceed it; the threshold is the smallest kept */
    float threshold = -INFINITY;
    if (draw.top_k > 0 && draw.top_k < V) {
        for (int j = threadIdx.x; j < V; j += SAMPLE_THREADS) {
            int above = 0;
            for (int i = 0; i < V; i++)
                above += z[i] > z[j];
            keep_s[j] = above < draw.top_k;
        }
        __syncthreads();
        int ignored;
        block_extreme(z, V, true, keep_s, value_s, index_s, &threshold, &ignored);
    }
    for (int j = threadIdx.x; j < V; j += SAMPLE_THREADS)
        p_s[j] = z[j] >= threshold ? expf((z[j] - best_value) / draw.temperature) : 0.0f;
    __syncthreads();
    if (threadIdx.x == 0) { /* in index order, in double, as the host's sampler adds them */
        double total = 0.0;
        for (int j = 0; j < V; j++)
            total += p_s[j];
        const double r = (double)draw.u * total;
        double acc = 0.0;
        int pick = best;
        for (int j = 0; j < V; j++) {
            if (p_s[j] == 0.0f)
                continue;
            acc += p_s[j];
            pick = j;
            if (r < acc)
                break;
        }
        *out = (token_t)pick;
    }
}

static size_t sample_shared_bytes(const SampleModel *m, int drawing)
{
    const int I_max = m->E > m->H ? m->E : m->H, G = gates_of(m->cell);
    return sizeof(float) * ((size_t)I_max + m->H + (G > 1 ? 2 * G : 1) * (size_t)m->H + SAMPLE_WARPS * 32 +
                            (drawing ? m->V : 0)) +
           (drawing ? (size_t)m->V : 0);
}

cudaError_t sample_prepare(const SampleModel *model)
{
    const size_t shared = sample_shared_bytes(model, 1);
    return cudaFuncSetAttribute(sample_step_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)shared);
}

cudaError_t sample_step(const SampleModel *model, int token, const SampleDraw *draw, token_t *out, cudaStream_t s)
{
    LAUNCH(sample_step_kernel, 1, SAMPLE_THREADS, sample_shared_bytes(model, draw->sample), s)(*model, token, *draw, out);
    return launched();
}

/* ---- optimizers ---- */

__global__ void adam_update_kernel(float *p, const float *g, float *m, float *v, size_t n, float lr, float beta1,
                                   float beta2, float eps, float weight_decay, float grad_scale, float c1, float c2)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float gi = g[i] * grad_scale;
        m[i] = beta1 * m[i] + (1.0f - beta1) * gi;
        v[i] = beta2 * v[i] + (1.0f - beta2) * gi * gi;
        float mhat = m[i] / c1, vhat = v[i] / c2;
        p[i] -= lr * (mhat / (sqrtf(vhat) + eps) + weight_decay * p[i]);
    }
}

cudaError_t adam_update(float *p, const float *g, float *m, float *v, size_t n, float lr, float beta1, float beta2,
                        float eps, float weight_decay, float grad_scale, float c1, float c2, cudaStream_t s)
{
    LAUNCH(adam_update_kernel, blocks_for(n), THREADS, 0, s)
    (p, g, m, v, n, lr, beta1, beta2, eps, weight_decay, grad_scale, c1, c2);
    return launched();
}

__global__ void sgd_update_kernel(float *p, const float *g, float *v, size_t n, float lr, float momentum,
                                  float grad_scale)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        v[i] = momentum * v[i] + g[i] * grad_scale;
        p[i] -= lr * v[i];
    }
}

cudaError_t sgd_update(float *p, const float *g, float *v, size_t n, float lr, float momentum, float grad_scale,
                       cudaStream_t s)
{
    LAUNCH(sgd_update_kernel, blocks_for(n), THREADS, 0, s)(p, g, v, n, lr, momentum, grad_scale);
    return launched();
}

} // namespace kernels
