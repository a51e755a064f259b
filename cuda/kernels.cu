/* The CUDA backend's kernels. Each mirrors one function of cpu/rnn.c; where the CPU sums in a fixed
 * order, so does the kernel (one thread per output, looping in the same order), so that results do
 * not change from run to run. */
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

/* out [rows, H] = table[x[i]] row by row: layer 0's input projection through the vocabulary */
__global__ void gather_rows_kernel(float *out, const token_t *x, const float *table, int rows, int H)
{
    size_t n = (size_t)rows * H;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        out[i] = table[(size_t)x[i / H] * H + i % H];
}

cudaError_t gather_rows(float *out, const token_t *x, const float *table, int rows, int H, cudaStream_t s)
{
    LAUNCH(gather_rows_kernel, blocks_for((size_t)rows * H), THREADS, 0, s)(out, x, table, rows, H);
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

__global__ void add_column_sums_kernel(float *sums, const float *m, int rows, int cols)
{
    for (int j = blockIdx.x * blockDim.x + threadIdx.x; j < cols; j += gridDim.x * blockDim.x) {
        float acc = sums[j];
        for (int i = 0; i < rows; i++)
            acc += m[(size_t)i * cols + j];
        sums[j] = acc;
    }
}

cudaError_t add_column_sums(float *sums, const float *m, int rows, int cols, cudaStream_t s)
{
    LAUNCH(add_column_sums_kernel, blocks_for((size_t)cols), THREADS, 0, s)(sums, m, rows, cols);
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
    const float lse = zmax + logf(block_reduce(total, Add<float>()));
    if (threadIdx.x == 0)
        row_loss[blockIdx.x] = lse - z[target];
    if (scale == 0.0f)
        return;
    __syncthreads(); /* z[target] is read above before any thread overwrites it */
    for (int j = threadIdx.x; j < V; j += THREADS)
        z[j] = expf(z[j] - lse) * scale;
    __syncthreads();
    if (threadIdx.x == 0)
        z[target] -= scale;
}

cudaError_t softmax_xent(float *logits, const token_t *y, float *row_loss, int rows, int V, float scale, cudaStream_t s)
{
    LAUNCH(softmax_xent_kernel, rows, THREADS, 0, s)(logits, y, row_loss, V, scale);
    return launched();
}

__global__ void sum_kernel(double *out, const float *x, size_t n, int squares)
{
    double acc = 0.0;
    for (size_t i = threadIdx.x; i < n; i += THREADS)
        acc += squares ? (double)x[i] * x[i] : (double)x[i];
    acc = block_reduce(acc, Add<double>());
    if (threadIdx.x == 0)
        *out = acc;
}

cudaError_t sum(double *out, const float *x, size_t n, int squares, cudaStream_t s)
{
    LAUNCH(sum_kernel, 1, THREADS, 0, s)(out, x, n, squares);
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
