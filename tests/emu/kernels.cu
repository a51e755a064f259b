/* Small kernels that exercise each feature of the emulated device, with host wrappers. Written as
 * ordinary CUDA: the only emulator-specific spellings are those of charrnn_cuda.h. */
#include "kernels.h"

namespace cg = cooperative_groups;

/* ---- Host helpers ---- */

/* A device array freed when it goes out of scope. */
template <class T> struct DeviceArray {
    T *p = nullptr;
    cudaError_t error;
    explicit DeviceArray(size_t n) { error = cudaMalloc(&p, n * sizeof(T)); }
    ~DeviceArray() { cudaFree(p); }
    DeviceArray(const DeviceArray &) = delete;
    DeviceArray &operator=(const DeviceArray &) = delete;
};

#define TRY(call)                                                                                                      \
    do {                                                                                                               \
        cudaError_t try_error = (call);                                                                                \
        if (try_error != cudaSuccess)                                                                                  \
            return try_error;                                                                                          \
    } while (0)

/* A launch's own error, else whatever running it reported. */
static cudaError_t launched()
{
    TRY(cudaGetLastError());
    return cudaDeviceSynchronize();
}

/* ---- Kernels ---- */

__global__ void vector_add_kernel(const float *__restrict__ a, const float *__restrict__ b, float *__restrict__ c,
                                  int n)
{
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x)
        c[i] = a[i] + b[i];
}

template <int BLOCK, bool BARRIER> __global__ void block_sum_kernel(const float *x, int n, float *sums)
{
    __shared__ float partial[BLOCK];
    const int t = threadIdx.x, i = blockIdx.x * BLOCK + t;
    partial[t] = i < n ? x[i] : 0.0f;
    if (BARRIER)
        __syncthreads();
    for (int stride = BLOCK / 2; stride > 0; stride >>= 1) {
        if (t < stride)
            partial[t] += partial[t + stride];
        __syncthreads();
    }
    if (t == 0)
        sums[blockIdx.x] = partial[0];
}

__global__ void block_sum_dynamic_kernel(const float *x, int n, float *sums, int with_barrier)
{
    EXTERN_SHARED(float, partial);
    const int t = threadIdx.x, i = blockIdx.x * blockDim.x + t;
    partial[t] = i < n ? x[i] : 0.0f;
    if (with_barrier)
        __syncthreads();
    for (int stride = blockDim.x / 2; stride > 0; stride >>= 1) {
        if (t < stride)
            partial[t] += partial[t + stride];
        __syncthreads();
    }
    if (t == 0)
        sums[blockIdx.x] = partial[0];
}

__global__ void warp_ops_kernel(const float *x, int n, float *down, float *xor_all, float *scan, float *bcast,
                                unsigned *ballot)
{
    const unsigned full = 0xffffffffu;
    const int i = blockIdx.x * blockDim.x + threadIdx.x, lane = threadIdx.x % warpSize;
    if (i >= n)
        return;
    const float v = x[i];
    float sum = v;
    for (int offset = warpSize / 2; offset > 0; offset /= 2)
        sum += __shfl_down_sync(full, sum, offset);
    float all = v;
    for (int mask = 1; mask < warpSize; mask *= 2)
        all += __shfl_xor_sync(full, all, mask);
    float prefix = v;
    for (int offset = 1; offset < warpSize; offset *= 2) {
        float up = __shfl_up_sync(full, prefix, offset);
        if (lane >= offset)
            prefix += up;
    }
    const unsigned votes = __ballot_sync(full, v > 0.0f);
    bcast[i] = __shfl_sync(full, v, 0);
    xor_all[i] = all;
    scan[i] = prefix;
    if (lane == 0) {
        down[i / warpSize] = sum;
        ballot[i / warpSize] = votes;
    }
}

__global__ void shuffle_widths_kernel(float *idx, float *down, float *up, float *xr)
{
    const unsigned full = 0xffffffffu;
    const int t = threadIdx.x;
    const float v = (float)(t % warpSize);
    idx[t] = __shfl_sync(full, v, 3, 8);
    down[t] = __shfl_down_sync(full, v, 2, 8);
    up[t] = __shfl_up_sync(full, v, 2, 8);
    xr[t] = __shfl_xor_sync(full, v, 4, 8);
}

__global__ void shuffle_past_block_end_kernel(float *out)
{
    out[threadIdx.x] = __shfl_down_sync(0xffffffffu, (float)(threadIdx.x % warpSize), 16);
}

__global__ void atomics_kernel(int n, float *fsum, int *isum, int *imax)
{
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) {
        atomicAdd(fsum, 0.5f);
        atomicAdd(isum, i);
        atomicMax(imax, (int)((long long)i * 7919 % n));
    }
}

__global__ void reverse_in_blocks_kernel(const float *in, float *out, int n)
{
    EXTERN_SHARED(float, tile);
    const int t = threadIdx.x, base = blockIdx.x * blockDim.x;
    if (base + t < n)
        tile[t] = in[base + t];
    __syncthreads();
    const int from = blockDim.x - 1 - t;
    if (base + t < n && base + from < n)
        out[base + t] = tile[from];
}

__global__ void read_fresh_shared_kernel(float *out)
{
    EXTERN_SHARED(float, s);
    out[blockIdx.x * blockDim.x + threadIdx.x] = s[threadIdx.x];
    s[threadIdx.x] = 1.0f;
}

__global__ void neighbour_without_barrier_kernel(const float *in, float *out)
{
    EXTERN_SHARED(float, s);
    const int t = threadIdx.x;
    s[t] = in[t];
    out[t] = t > 0 ? s[t - 1] : 0.0f;
}

__global__ void barrier_after_early_exit_kernel(float *out)
{
    if (threadIdx.x % 2)
        return;
    __syncthreads();
    out[threadIdx.x] = 1.0f;
}

__global__ void two_different_barriers_kernel(float *out)
{
    if (threadIdx.x < 16) {
        out[threadIdx.x] = 1.0f;
        __syncthreads();
    } else {
        __syncthreads();
        out[threadIdx.x] = 2.0f;
    }
}

__global__ void shuffle_while_others_wait_kernel(float *out)
{
    float v = threadIdx.x;
    if (threadIdx.x < 16)
        v = __shfl_xor_sync(0xffffffffu, v, 1);
    else
        __syncthreads();
    out[threadIdx.x] = v;
}

__global__ void shuffle_mask_leaves_out_caller_kernel(float *out)
{
    out[threadIdx.x] = __shfl_sync(0x0000ffffu, (float)threadIdx.x, 0);
}

__global__ void write_past_end_kernel(float *out, int n)
{
    out[n + threadIdx.x] = 1.0f;
}

__global__ void grid_sum_kernel(const float *x, int n, float *partials, float *out)
{
    __shared__ float partial[kBlockSumThreads];
    __shared__ float own_sum;
    cg::grid_group grid = cg::this_grid();
    const int t = threadIdx.x, i = blockIdx.x * kBlockSumThreads + t;
    partial[t] = i < n ? x[i] : 0.0f;
    __syncthreads();
    for (int stride = kBlockSumThreads / 2; stride > 0; stride >>= 1) {
        if (t < stride)
            partial[t] += partial[t + stride];
        __syncthreads();
    }
    if (t == 0) {
        own_sum = partial[0];
        partials[blockIdx.x] = partial[0];
    }
    grid.sync();
    if (t == 0) {
        float total = 0.0f;
        for (unsigned b = 0; b < gridDim.x; ++b)
            total += partials[b];
        out[blockIdx.x] = total + own_sum;
    }
}

__global__ void grid_tile_sum_kernel(const float *x, float *partials, float *out)
{
    EXTERN_SHARED(float, tile);
    cg::grid_group grid = cg::this_grid();
    const float *block_x = x + (size_t)blockIdx.x * kGridTile;
    for (int i = threadIdx.x; i < kGridTile; i += blockDim.x)
        tile[i] = block_x[i];
    __syncthreads();
    if (threadIdx.x == 0) {
        float sum = 0.0f;
        for (int i = 0; i < kGridTile; ++i)
            sum += tile[i];
        partials[blockIdx.x] = sum;
    }
    grid.sync();
    if (threadIdx.x == 0) {
        float total = 0.0f;
        for (unsigned b = 0; b < gridDim.x; ++b)
            total += partials[b];
        out[blockIdx.x] = total + tile[kGridTile - 1];
    }
}

/* Each block's threads pass values around through `scratch`, a global buffer that every block uses as
 * if it were its own (the bug: it should be shared memory, or offset by block). */
__global__ void global_scratch_kernel(float *scratch, float *out)
{
    const unsigned t = threadIdx.x;
    scratch[t] = (float)(blockIdx.x * 1000 + t);
    __syncthreads();
    out[blockIdx.x * blockDim.x + t] = scratch[(t + 1) % blockDim.x];
}

/* Enough independent accumulators that the sm_90 build needs more than 64 registers per thread. */
__global__ void register_heavy_kernel(const float *x, float *out, int n)
{
    float acc[kHeavyAccumulators];
#pragma unroll
    for (int a = 0; a < kHeavyAccumulators; ++a)
        acc[a] = x[(threadIdx.x + a) % n];
    for (int i = 0; i < n; ++i)
#pragma unroll
        for (int a = 0; a < kHeavyAccumulators; ++a)
            acc[a] = acc[a] * x[i] + acc[(a + 1) % kHeavyAccumulators];
    float total = 0.0f;
#pragma unroll
    for (int a = 0; a < kHeavyAccumulators; ++a)
        total += acc[a];
    out[blockIdx.x * blockDim.x + threadIdx.x] = total;
}

/* ---- Wrappers ---- */

cudaError_t run_vector_add(const float *a, const float *b, float *c, int n, unsigned blocks, unsigned threads)
{
    DeviceArray<float> da(n), db(n), dc(n);
    TRY(da.error);
    TRY(db.error);
    TRY(dc.error);
    TRY(cudaMemcpy(da.p, a, n * sizeof(float), cudaMemcpyHostToDevice));
    TRY(cudaMemcpy(db.p, b, n * sizeof(float), cudaMemcpyHostToDevice));
    LAUNCH(vector_add_kernel, blocks, threads, 0, 0)(da.p, db.p, dc.p, n);
    TRY(launched());
    return cudaMemcpy(c, dc.p, n * sizeof(float), cudaMemcpyDeviceToHost);
}

static cudaError_t block_sum(const float *x, int n, float *sums, bool with_barrier, bool dynamic)
{
    const int blocks = (n + kBlockSumThreads - 1) / kBlockSumThreads;
    DeviceArray<float> dx(n), dsums(blocks);
    TRY(dx.error);
    TRY(dsums.error);
    TRY(cudaMemcpy(dx.p, x, n * sizeof(float), cudaMemcpyHostToDevice));
    if (dynamic)
        LAUNCH(block_sum_dynamic_kernel, blocks, kBlockSumThreads, kBlockSumThreads * sizeof(float), 0)
    (dx.p, n, dsums.p, with_barrier);
    else if (with_barrier)
        LAUNCH((block_sum_kernel<kBlockSumThreads, true>), blocks, kBlockSumThreads, 0, 0)(dx.p, n, dsums.p);
    else LAUNCH((block_sum_kernel<kBlockSumThreads, false>), blocks, kBlockSumThreads, 0, 0)(dx.p, n, dsums.p);
    TRY(launched());
    return cudaMemcpy(sums, dsums.p, blocks * sizeof(float), cudaMemcpyDeviceToHost);
}

cudaError_t run_block_sum(const float *x, int n, float *sums, bool with_barrier)
{
    return block_sum(x, n, sums, with_barrier, false);
}

cudaError_t run_block_sum_dynamic(const float *x, int n, float *sums, bool with_barrier)
{
    return block_sum(x, n, sums, with_barrier, true);
}

cudaError_t run_warp_ops(const float *x, int n, float *down, float *xor_all, float *scan, float *bcast,
                         unsigned *ballot)
{
    const int threads = 128, warps = n / 32;
    DeviceArray<float> dx(n), ddown(warps), dxor(n), dscan(n), dbcast(n);
    DeviceArray<unsigned> dballot(warps);
    TRY(dx.error);
    TRY(ddown.error);
    TRY(dxor.error);
    TRY(dscan.error);
    TRY(dbcast.error);
    TRY(dballot.error);
    TRY(cudaMemcpy(dx.p, x, n * sizeof(float), cudaMemcpyHostToDevice));
    LAUNCH(warp_ops_kernel, (n + threads - 1) / threads, threads, 0, 0)
    (dx.p, n, ddown.p, dxor.p, dscan.p, dbcast.p, dballot.p);
    TRY(launched());
    TRY(cudaMemcpy(down, ddown.p, warps * sizeof(float), cudaMemcpyDeviceToHost));
    TRY(cudaMemcpy(xor_all, dxor.p, n * sizeof(float), cudaMemcpyDeviceToHost));
    TRY(cudaMemcpy(scan, dscan.p, n * sizeof(float), cudaMemcpyDeviceToHost));
    TRY(cudaMemcpy(bcast, dbcast.p, n * sizeof(float), cudaMemcpyDeviceToHost));
    return cudaMemcpy(ballot, dballot.p, warps * sizeof(unsigned), cudaMemcpyDeviceToHost);
}

cudaError_t run_shuffle_widths(float *idx, float *down, float *up, float *xr, float *partial_down)
{
    const int threads = 64, partial_threads = 48;
    DeviceArray<float> didx(threads), ddown(threads), dup(threads), dxr(threads), dpartial(partial_threads);
    TRY(didx.error);
    TRY(ddown.error);
    TRY(dup.error);
    TRY(dxr.error);
    TRY(dpartial.error);
    LAUNCH(shuffle_widths_kernel, 1, threads, 0, 0)(didx.p, ddown.p, dup.p, dxr.p);
    TRY(launched());
    LAUNCH(shuffle_past_block_end_kernel, 1, partial_threads, 0, 0)(dpartial.p);
    TRY(launched());
    TRY(cudaMemcpy(idx, didx.p, threads * sizeof(float), cudaMemcpyDeviceToHost));
    TRY(cudaMemcpy(down, ddown.p, threads * sizeof(float), cudaMemcpyDeviceToHost));
    TRY(cudaMemcpy(up, dup.p, threads * sizeof(float), cudaMemcpyDeviceToHost));
    TRY(cudaMemcpy(xr, dxr.p, threads * sizeof(float), cudaMemcpyDeviceToHost));
    return cudaMemcpy(partial_down, dpartial.p, partial_threads * sizeof(float), cudaMemcpyDeviceToHost);
}

cudaError_t run_atomics(int n, unsigned blocks, unsigned threads, float *fsum, int *isum, int *imax)
{
    DeviceArray<float> dfsum(1);
    DeviceArray<int> dints(2);
    TRY(dfsum.error);
    TRY(dints.error);
    TRY(cudaMemset(dfsum.p, 0, sizeof(float)));
    TRY(cudaMemset(dints.p, 0, 2 * sizeof(int)));
    LAUNCH(atomics_kernel, blocks, threads, 0, 0)(n, dfsum.p, dints.p, dints.p + 1);
    TRY(launched());
    TRY(cudaMemcpy(fsum, dfsum.p, sizeof(float), cudaMemcpyDeviceToHost));
    TRY(cudaMemcpy(isum, dints.p, sizeof(int), cudaMemcpyDeviceToHost));
    return cudaMemcpy(imax, dints.p + 1, sizeof(int), cudaMemcpyDeviceToHost);
}

cudaError_t run_reverse_in_blocks(const float *in, float *out, int n, unsigned threads, size_t shared_bytes,
                                  int optin_bytes)
{
    if (optin_bytes)
        TRY(cudaFuncSetAttribute(reverse_in_blocks_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, optin_bytes));
    DeviceArray<float> din(n), dout(n);
    TRY(din.error);
    TRY(dout.error);
    TRY(cudaMemcpy(din.p, in, n * sizeof(float), cudaMemcpyHostToDevice));
    LAUNCH(reverse_in_blocks_kernel, (n + threads - 1) / threads, threads, shared_bytes, 0)(din.p, dout.p, n);
    TRY(launched());
    return cudaMemcpy(out, dout.p, n * sizeof(float), cudaMemcpyDeviceToHost);
}

cudaError_t run_read_fresh_shared(float *out, unsigned blocks, unsigned threads)
{
    DeviceArray<float> dout(blocks * threads);
    TRY(dout.error);
    LAUNCH(read_fresh_shared_kernel, blocks, threads, threads * sizeof(float), 0)(dout.p);
    TRY(launched());
    return cudaMemcpy(out, dout.p, blocks * threads * sizeof(float), cudaMemcpyDeviceToHost);
}

cudaError_t run_neighbour_without_barrier(const float *in, float *out, unsigned threads)
{
    DeviceArray<float> din(threads), dout(threads);
    TRY(din.error);
    TRY(dout.error);
    TRY(cudaMemcpy(din.p, in, threads * sizeof(float), cudaMemcpyHostToDevice));
    LAUNCH(neighbour_without_barrier_kernel, 1, threads, threads * sizeof(float), 0)(din.p, dout.p);
    TRY(launched());
    return cudaMemcpy(out, dout.p, threads * sizeof(float), cudaMemcpyDeviceToHost);
}

static cudaError_t run_faulty(void (*kernel)(float *), unsigned threads)
{
    DeviceArray<float> dout(threads);
    TRY(dout.error);
    LAUNCH(kernel, 1, threads, 0, 0)(dout.p);
    return launched();
}

cudaError_t run_barrier_after_early_exit(unsigned threads)
{
    return run_faulty(barrier_after_early_exit_kernel, threads);
}
cudaError_t run_two_different_barriers(unsigned threads)
{
    return run_faulty(two_different_barriers_kernel, threads);
}
cudaError_t run_shuffle_while_others_wait_at_barrier()
{
    return run_faulty(shuffle_while_others_wait_kernel, 32);
}
cudaError_t run_shuffle_with_mask_leaving_out_caller()
{
    return run_faulty(shuffle_mask_leaves_out_caller_kernel, 32);
}

cudaError_t run_grid_sync_in_ordinary_launch()
{
    DeviceArray<float> dx(kBlockSumThreads), dpartials(2), dout(2);
    TRY(cudaMemset(dx.p, 0, kBlockSumThreads * sizeof(float)));
    LAUNCH(grid_sum_kernel, 2, kBlockSumThreads, 0, 0)(dx.p, kBlockSumThreads, dpartials.p, dout.p);
    return launched();
}

cudaError_t run_write_past_end()
{
    DeviceArray<float> dout(10);
    TRY(dout.error);
    LAUNCH(write_past_end_kernel, 1, 1, 0, 0)(dout.p, 10);
    return launched();
}

cudaError_t run_grid_sum(const float *x, int n, unsigned blocks, float *out)
{
    DeviceArray<float> dx(n), dpartials(blocks), dout(blocks);
    TRY(dx.error);
    TRY(dpartials.error);
    TRY(dout.error);
    TRY(cudaMemcpy(dx.p, x, n * sizeof(float), cudaMemcpyHostToDevice));
    TRY(LAUNCH_COOPERATIVE(grid_sum_kernel, blocks, kBlockSumThreads, 0, 0)(dx.p, n, dpartials.p, dout.p));
    TRY(cudaDeviceSynchronize());
    return cudaMemcpy(out, dout.p, blocks * sizeof(float), cudaMemcpyDeviceToHost);
}

/* Captures what record(stream) submits to a new stream into a graph, then for each of `rounds`
 * rounds calls before(round), launches the graph, waits for it and calls after(round). Returns the
 * first error, that of a call made during capture included. */
template <class Record, class Before, class After>
static cudaError_t capture_and_replay(Record record, int rounds, Before before, After after)
{
    cudaStream_t stream;
    TRY(cudaStreamCreate(&stream));
    cudaGraph_t graph = nullptr;
    cudaGraphExec_t exec = nullptr;
    cudaError_t e = cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal);
    if (e == cudaSuccess) {
        cudaError_t recorded = record(stream);
        e = cudaStreamEndCapture(stream, &graph);
        if (recorded != cudaSuccess)
            e = recorded;
    }
    if (e == cudaSuccess)
        e = cudaGraphInstantiate(&exec, graph, 0);
    for (int round = 0; round < rounds && e == cudaSuccess; ++round) {
        e = before(round);
        if (e == cudaSuccess)
            e = cudaGraphLaunch(exec, stream);
        if (e == cudaSuccess)
            e = cudaStreamSynchronize(stream);
        if (e == cudaSuccess)
            e = after(round);
    }
    if (exec)
        cudaGraphExecDestroy(exec);
    if (graph)
        cudaGraphDestroy(graph);
    cudaStreamDestroy(stream);
    return e;
}

cudaError_t run_vector_add_graph(float *a, float *b, float *c, int n, int rounds, void (*refill)(int round))
{
    DeviceArray<float> da(n), db(n), dc(n);
    TRY(da.error);
    TRY(db.error);
    TRY(dc.error);
    const size_t bytes = n * sizeof(float);
    return capture_and_replay(
        [&](cudaStream_t stream) {
            TRY(cudaMemcpyAsync(da.p, a, bytes, cudaMemcpyHostToDevice, stream));
            TRY(cudaMemcpyAsync(db.p, b, bytes, cudaMemcpyHostToDevice, stream));
            LAUNCH(vector_add_kernel, (n + 127) / 128, 128, 0, stream)(da.p, db.p, dc.p, n);
            TRY(cudaGetLastError());
            return cudaMemcpyAsync(c, dc.p, bytes, cudaMemcpyDeviceToHost, stream);
        },
        rounds,
        [&](int round) {
            refill(round);
            return cudaSuccess;
        },
        [](int) { return cudaSuccess; });
}

cudaError_t run_grid_tile_sum_graph(const float *x, unsigned blocks, int rounds, bool opt_in, float *out)
{
    const size_t n = (size_t)blocks * kGridTile;
    if (opt_in)
        TRY(cudaFuncSetAttribute(grid_tile_sum_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kGridTileBytes));
    DeviceArray<float> dx(n), dpartials(blocks), dout(blocks);
    TRY(dx.error);
    TRY(dpartials.error);
    TRY(dout.error);
    return capture_and_replay(
        [&](cudaStream_t stream) {
            return LAUNCH_COOPERATIVE(grid_tile_sum_kernel, blocks, kBlockSumThreads, kGridTileBytes,
                                      stream)(dx.p, dpartials.p, dout.p);
        },
        rounds,
        [&](int round) {
            TRY(cudaMemcpy(dx.p, x + round * n, n * sizeof(float), cudaMemcpyHostToDevice));
            return cudaMemset(dout.p, 0xFF, blocks * sizeof(float));
        },
        [&](int round) {
            return cudaMemcpy(out + round * blocks, dout.p, blocks * sizeof(float), cudaMemcpyDeviceToHost);
        });
}

cudaError_t run_global_scratch_cooperative(float *out, unsigned blocks, unsigned threads)
{
    DeviceArray<float> scratch(threads), dout(blocks * threads);
    TRY(scratch.error);
    TRY(dout.error);
    TRY(LAUNCH_COOPERATIVE(global_scratch_kernel, blocks, threads, 0, 0)(scratch.p, dout.p));
    TRY(cudaDeviceSynchronize());
    return cudaMemcpy(out, dout.p, blocks * threads * sizeof(float), cudaMemcpyDeviceToHost);
}

const void *register_heavy_kernel_address(void)
{
    return reinterpret_cast<const void *>(register_heavy_kernel);
}

cudaError_t register_heavy_occupancy(int threads, int *blocks_per_sm, cudaFuncAttributes *attributes)
{
    TRY(cudaFuncGetAttributes(attributes, register_heavy_kernel));
    return cudaOccupancyMaxActiveBlocksPerMultiprocessor(blocks_per_sm, register_heavy_kernel, threads, 0);
}

cudaError_t run_register_heavy(unsigned blocks, unsigned threads, bool cooperative)
{
    const int n = 8;
    DeviceArray<float> dx(n), dout(blocks * threads);
    TRY(dx.error);
    TRY(dout.error);
    TRY(cudaMemset(dx.p, 0, n * sizeof(float)));
    if (cooperative)
        TRY(LAUNCH_COOPERATIVE(register_heavy_kernel, blocks, threads, 0, 0)(dx.p, dout.p, n));
    else
        LAUNCH(register_heavy_kernel, blocks, threads, 0, 0)(dx.p, dout.p, n);
    return launched();
}

/* Captures one launch of grid_sum_kernel over `blocks` blocks, by LAUNCH_COOPERATIVE (cudaLaunchKernelEx
 * with the cooperative attribute) or by a plain cudaLaunchCooperativeKernel, and reports the kernel
 * node's cooperative attribute; then replays the graph and returns the replay's error. */
cudaError_t run_captured_grid_sum(const float *x, int n, unsigned blocks, bool through_attribute, int *cooperative,
                                  float *out)
{
    DeviceArray<float> dx(n), dpartials(blocks), dout(blocks);
    TRY(dx.error);
    TRY(dpartials.error);
    TRY(dout.error);
    TRY(cudaMemcpy(dx.p, x, n * sizeof(float), cudaMemcpyHostToDevice));
    cudaStream_t stream;
    TRY(cudaStreamCreate(&stream));
    cudaGraph_t graph = nullptr;
    cudaGraphExec_t exec = nullptr;
    TRY(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal));
    cudaError_t e;
    if (through_attribute) {
        e = LAUNCH_COOPERATIVE(grid_sum_kernel, blocks, kBlockSumThreads, 0, stream)(dx.p, n, dpartials.p, dout.p);
    } else {
        const float *x_arg = dx.p;
        float *partials_arg = dpartials.p, *out_arg = dout.p;
        void *args[] = {&x_arg, &n, &partials_arg, &out_arg};
        e = cudaLaunchCooperativeKernel(grid_sum_kernel, blocks, kBlockSumThreads, args, 0, stream);
    }
    cudaError_t ended = cudaStreamEndCapture(stream, &graph);
    TRY(e);
    TRY(ended);
    cudaGraphNode_t node;
    size_t count = 1;
    cudaGraphNodeType type;
    cudaKernelNodeAttrValue value;
    e = cudaGraphGetNodes(graph, &node, &count);
    if (e == cudaSuccess)
        e = cudaGraphNodeGetType(node, &type);
    if (e == cudaSuccess && (count != 1 || type != cudaGraphNodeTypeKernel))
        e = cudaErrorInvalidValue;
    if (e == cudaSuccess)
        e = cudaGraphKernelNodeGetAttribute(node, cudaKernelNodeAttributeCooperative, &value);
    if (e == cudaSuccess) {
        *cooperative = value.cooperative;
        e = cudaGraphInstantiate(&exec, graph, 0);
    }
    if (e == cudaSuccess)
        e = cudaGraphLaunch(exec, stream);
    if (e == cudaSuccess)
        e = cudaStreamSynchronize(stream);
    if (e == cudaSuccess)
        e = cudaMemcpy(out, dout.p, blocks * sizeof(float), cudaMemcpyDeviceToHost);
    if (exec)
        cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);
    cudaStreamDestroy(stream);
    return e;
}
