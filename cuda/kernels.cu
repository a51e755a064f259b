/* The CUDA backend's kernels. Each mirrors one function of cpu/rnn.c; where the CPU sums in a fixed
 * order, so does the kernel (one thread per output, looping in the same order), so that results do
 * not change from run to run. */
#include <string.h>

#include "kernels.cuh"

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

/* out[v] (+)= the sum of the rows of `in` whose token is v, for every token v. The rows come grouped by
 * token (order[start[v] .. start[v+1]) lists token v's rows in row order), so thread (v, j) adds exactly
 * its rows in the same order every run: deterministic, no atomics, work proportional to the batch. */
__global__ void token_row_sums_kernel(float *out, const float *in, const int *order, const int *start, int V, int W,
                                      int accumulate)
{
    size_t n = (size_t)V * W;
    for (size_t k = blockIdx.x * (size_t)blockDim.x + threadIdx.x; k < n; k += (size_t)gridDim.x * blockDim.x) {
        const int v = (int)(k / W), j = (int)(k % W);
        float acc = accumulate ? out[k] : 0.0f;
        for (int r = start[v]; r < start[v + 1]; r++)
            acc += in[(size_t)order[r] * W + j];
        out[k] = acc;
    }
}

cudaError_t token_row_sums(float *out, const float *in, const int *order, const int *start, int V, int W,
                           int accumulate, cudaStream_t s)
{
    LAUNCH(token_row_sums_kernel, blocks_for((size_t)V * W), THREADS, 0, s)(out, in, order, start, V, W, accumulate);
    return launched();
}

/* out [H, H] = in^T, through a shared tile so that both the reads and the writes are coalesced. */
__global__ void transpose_kernel(float *out, const float *in, int H)
{
    __shared__ float tile[TILE][TILE + 1]; /* +1: no shared-memory bank conflicts on the column reads */
    int x = blockIdx.x * TILE + threadIdx.x, y = blockIdx.y * TILE + threadIdx.y;
    if (x < H && y < H)
        tile[threadIdx.y][threadIdx.x] = in[(size_t)y * H + x];
    __syncthreads();
    x = blockIdx.y * TILE + threadIdx.x, y = blockIdx.x * TILE + threadIdx.y;
    if (x < H && y < H)
        out[(size_t)y * H + x] = tile[threadIdx.x][threadIdx.y];
}

cudaError_t transpose(float *out, const float *in, int H, cudaStream_t s)
{
    dim3 grid((H + TILE - 1) / TILE, (H + TILE - 1) / TILE), block(TILE, TILE);
    LAUNCH(transpose_kernel, grid, block, 0, s)(out, in, H);
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

__global__ void add_column_sums_kernel(float *sums, const float *m, int rows, int cols)
{
    __shared__ float partial[COLUMN_LANES][TILE + 1];
    const int j = blockIdx.x * TILE + threadIdx.x;
    float acc = 0.0f;
    if (j < cols)
        for (int i = threadIdx.y; i < rows; i += COLUMN_LANES)
            acc += m[(size_t)i * cols + j];
    partial[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && j < cols) {
        float total = sums[j];
        for (int y = 0; y < COLUMN_LANES; y++)
            total += partial[y][threadIdx.x];
        sums[j] = total;
    }
}

cudaError_t add_column_sums(float *sums, const float *m, int rows, int cols, cudaStream_t s)
{
    dim3 block(TILE, COLUMN_LANES);
    LAUNCH(add_column_sums_kernel, (cols + TILE - 1) / TILE, block, 0, s)(sums, m, rows, cols);
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

/* ---- the recurrence in one persistent kernel ---- */

static const int PERSIST_THREADS = 128; /* 4 warps */
static const int PERSIST_COLS = 32;     /* a block's columns: a warp's width, so a warp's lanes share rows */
static const int PERSIST_GROUPS = PERSIST_THREADS / PERSIST_COLS;
/* The sums run over k < K = H rounded up to a multiple of 4, for float4 reads; the extra k hold zeros
 * in both operands, which leave every sum exactly as it was. */
__host__ __device__ inline int padded_k(int H)
{
    return (H + 3) / 4 * 4;
}

/* Shared rows are K rounded up to 8, plus 4 floats: an odd number of float4s, so the 8 lanes of a
 * quarter-warp's float4 reads of 8 consecutive rows fall in distinct banks. */
__host__ __device__ inline int shared_stride(int H)
{
    return (padded_k(H) + 7) / 8 * 8 + 4;
}

/* Thread (lane, group) computes column c0 + lane of rows r0 + group + q * PERSIST_GROUPS, q < ROWS, of
 * every timestep, summing k = 0..H-1 in order as the step kernels do (the same numbers). Shared
 * memory holds the block's slice of W along k, [32][stride], for the whole launch, and the previous
 * state's rows, [tile rows][stride], restaged each timestep after the grid-wide barrier. The previous
 * state was written by other blocks, so it is read with plain loads (no __restrict__/__ldg: the
 * read-only path is not coherent with writes made during the kernel). */
template <int ROWS, bool BACKWARD>
__global__ void rnn_persistent_kernel(float *state, const float *__restrict__ dh, const float *__restrict__ h,
                                      const float *__restrict__ w, const float *__restrict__ b_h, int T, int B, int H)
{
    EXTERN_SHARED(float, shared);
    const int K = padded_k(H), ld = shared_stride(H), tile_rows = ROWS * PERSIST_GROUPS;
    float *w_s = shared; /* w_s[c * ld + k] = W_hh[k, c0 + c] forward, W_hh[c0 + c, k] backward */
    float *prev_s = shared + PERSIST_COLS * ld; /* prev_s[r * ld + k] = prev[r0 + r, k] */
    const int col_tiles = (H + PERSIST_COLS - 1) / PERSIST_COLS;
    const int r0 = blockIdx.x / col_tiles * tile_rows, c0 = blockIdx.x % col_tiles * PERSIST_COLS;
    const int lane = threadIdx.x % PERSIST_COLS, group = threadIdx.x / PERSIST_COLS, j = c0 + lane;
    /* Forward sums h_prev[k] W_hh[k, j]: W_hh's columns c0.., read along c. Backward sums
     * da_next[k] W_hh[j, k]: W_hh's rows c0.., read along k. Both coalesced, no transposed copy. */
    for (int i = threadIdx.x; i < PERSIST_COLS * K; i += PERSIST_THREADS) {
        const int k = BACKWARD ? i % K : i / PERSIST_COLS, c = BACKWARD ? i / K : i % PERSIST_COLS;
        const size_t at = BACKWARD ? (size_t)(c0 + c) * H + k : (size_t)k * H + c0 + c;
        w_s[c * ld + k] = c0 + c < H && k < H ? w[at] : 0.0f;
    }
    cooperative_groups::grid_group grid = cooperative_groups::this_grid();
    const size_t BH = (size_t)B * H;
    for (int step = 0; step < T; step++) {
        /* forward: h_t from h_{t-1}, t = 1..T; backward: da_t (stored at t - 1) from da_{t+1}, t = T..1 */
        const int t = BACKWARD ? T - step : step + 1;
        float *out = state + (size_t)(BACKWARD ? t - 1 : t) * BH;
        const float *prev = BACKWARD ? (t < T ? state + (size_t)t * BH : NULL) : state + (size_t)(t - 1) * BH;
        if (prev)
            for (int i = threadIdx.x; i < tile_rows * K; i += PERSIST_THREADS) {
                const int r = i / K, k = i % K;
                prev_s[r * ld + k] = r0 + r < B && k < H ? prev[(size_t)(r0 + r) * H + k] : 0.0f;
            }
        __syncthreads();
        float acc[ROWS];
#pragma unroll
        for (int q = 0; q < ROWS; q++) {
            const int b = r0 + group + q * PERSIST_GROUPS;
            const size_t at = (size_t)b * H + j;
            acc[q] = b >= B || j >= H ? 0.0f : BACKWARD ? dh[(size_t)(t - 1) * BH + at] : out[at] + b_h[j];
        }
        if (prev) {
            const float *wc = w_s + lane * ld;
            for (int k = 0; k < K; k += 4) {
                const float4 wv = *(const float4 *)(wc + k);
#pragma unroll
                for (int q = 0; q < ROWS; q++) {
                    const float4 pv = *(const float4 *)(prev_s + (group + q * PERSIST_GROUPS) * ld + k);
                    acc[q] += pv.x * wv.x;
                    acc[q] += pv.y * wv.y;
                    acc[q] += pv.z * wv.z;
                    acc[q] += pv.w * wv.w;
                }
            }
        }
#pragma unroll
        for (int q = 0; q < ROWS; q++) {
            const int b = r0 + group + q * PERSIST_GROUPS;
            if (b >= B || j >= H)
                continue;
            const size_t at = (size_t)b * H + j;
            if (BACKWARD) {
                const float ht = h[(size_t)t * BH + at];
                out[at] = acc[q] * (1.0f - ht * ht);
            } else {
                out[at] = tanhf(acc[q]);
            }
        }
        if (step + 1 < T) /* the same for every block: all of them meet at each barrier */
            grid.sync();  /* every block's tile of this timestep is written before any block reads it */
    }
}

static size_t persistent_shared_bytes(int rows_per_thread, int H)
{
    return sizeof(float) * (size_t)(PERSIST_COLS + rows_per_thread * PERSIST_GROUPS) * shared_stride(H);
}

/* Both directions of one ROWS: shared memory beyond the default 48 KiB allowed, and how many blocks
 * an SM holds. */
template <int ROWS> static cudaError_t persistent_occupancy(int *per_sm, size_t shared, int optin)
{
    cudaError_t status;
    if ((status = cudaFuncSetAttribute(rnn_persistent_kernel<ROWS, false>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       optin)) != cudaSuccess ||
        (status = cudaFuncSetAttribute(rnn_persistent_kernel<ROWS, true>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       optin)) != cudaSuccess)
        return status;
    int forward = 0, backward = 0;
    if ((status = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&forward, rnn_persistent_kernel<ROWS, false>,
                                                                PERSIST_THREADS, shared)) != cudaSuccess ||
        (status = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&backward, rnn_persistent_kernel<ROWS, true>,
                                                                PERSIST_THREADS, shared)) != cudaSuccess)
        return status;
    *per_sm = forward < backward ? forward : backward;
    return cudaSuccess;
}

static cudaError_t occupancy(int rows_per_thread, int *per_sm, size_t shared, int optin)
{
    switch (rows_per_thread) {
    case 1:
        return persistent_occupancy<1>(per_sm, shared, optin);
    case 2:
        return persistent_occupancy<2>(per_sm, shared, optin);
    case 4:
        return persistent_occupancy<4>(per_sm, shared, optin);
    default:
        return persistent_occupancy<8>(per_sm, shared, optin);
    }
}

/* Picks rows per thread by a model of one timestep's time on an SM: shared-memory reads bound the
 * inner loop (per 4 values of k a warp reads its columns of W as float4, 4 wavefronts, and one
 * broadcast float4 per row), times the blocks an SM must run one after another, plus staging the
 * previous state. More rows per thread means fewer W reads per multiply-add but fewer blocks to
 * spread over the SMs. A model to be checked against the device, not a measurement. */
cudaError_t plan_recurrence(RecurrencePlan *plan, int B, int H, int only_rows)
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
    plan->why_not = "W_hh's columns do not fit in shared memory";
    double best = 0.0;
    for (int rows = 1; rows <= 8; rows *= 2) {
        if (only_rows && rows != only_rows)
            continue;
        const size_t shared = persistent_shared_bytes(rows, H);
        if (shared > (size_t)optin)
            continue;
        const int tile_rows = rows * PERSIST_GROUPS;
        const int blocks = (B + tile_rows - 1) / tile_rows * ((H + PERSIST_COLS - 1) / PERSIST_COLS);
        int per_sm = 0;
        if ((status = occupancy(rows, &per_sm, shared, optin)) != cudaSuccess)
            return status;
        if (blocks > per_sm * sms) {
            plan->why_not = "there are more tiles than blocks the device holds at once";
            continue;
        }
        const int rounds = (blocks + sms - 1) / sms; /* blocks per SM, one after another */
        const double cost =
            (double)rounds * PERSIST_GROUPS * (padded_k(H) / 4) * (4 + rows) + (double)tile_rows * H / 16;
        if (plan->blocks == 0 || cost < best) {
            best = cost;
            *plan = RecurrencePlan{rows, tile_rows, blocks, shared, NULL};
        }
    }
    return cudaSuccess;
}

template <bool BACKWARD>
static cudaError_t launch_persistent(float *state, const float *dh, const float *h, const float *w, const float *b_h,
                                     int T, int B, int H, const RecurrencePlan *p, cudaStream_t s)
{
    switch (p->rows_per_thread) {
    case 1:
        return LAUNCH_COOPERATIVE((rnn_persistent_kernel<1, BACKWARD>), p->blocks, PERSIST_THREADS, p->shared_bytes,
                                  s)(state, dh, h, w, b_h, T, B, H);
    case 2:
        return LAUNCH_COOPERATIVE((rnn_persistent_kernel<2, BACKWARD>), p->blocks, PERSIST_THREADS, p->shared_bytes,
                                  s)(state, dh, h, w, b_h, T, B, H);
    case 4:
        return LAUNCH_COOPERATIVE((rnn_persistent_kernel<4, BACKWARD>), p->blocks, PERSIST_THREADS, p->shared_bytes,
                                  s)(state, dh, h, w, b_h, T, B, H);
    default:
        return LAUNCH_COOPERATIVE((rnn_persistent_kernel<8, BACKWARD>), p->blocks, PERSIST_THREADS, p->shared_bytes,
                                  s)(state, dh, h, w, b_h, T, B, H);
    }
}

cudaError_t rnn_forward_persistent(float *h, const float *w_hh, const float *b_h, int T, int B, int H,
                                   const RecurrencePlan *plan, cudaStream_t s)
{
    return launch_persistent<false>(h, NULL, NULL, w_hh, b_h, T, B, H, plan, s);
}

cudaError_t rnn_backward_persistent(float *da, const float *dh, const float *h, const float *w_hh, int T, int B, int H,
                                    const RecurrencePlan *plan, cudaStream_t s)
{
    return launch_persistent<true>(da, dh, h, w_hh, NULL, T, B, H, plan, s);
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
