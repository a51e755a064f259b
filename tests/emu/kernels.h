/* Host entry points of the emulator's test kernels (kernels.cu). Each copies its inputs to the
 * device, runs one kernel, copies the results back, frees what it allocated and returns the first
 * CUDA error it met (a kernel fault shows up as cudaErrorLaunchFailure). The same source is valid
 * CUDA: the build compiles it with nvcc too, when nvcc is installed. */
#ifndef CHARRNN_TESTS_EMU_KERNELS_H
#define CHARRNN_TESTS_EMU_KERNELS_H

#include "charrnn_cuda.h"

/* c = a + b over n elements with a grid-stride loop. */
cudaError_t run_vector_add(const float *a, const float *b, float *c, int n, unsigned blocks, unsigned threads);

/* One sum per block of kBlockSumThreads elements of x (zero past n), by a shared-memory tree
 * reduction in static shared memory; with_barrier = false leaves out the barrier between storing
 * each thread's element and reading its partner's. */
enum { kBlockSumThreads = 256 };
cudaError_t run_block_sum(const float *x, int n, float *sums, bool with_barrier);
/* The same reduction in dynamic shared memory. */
cudaError_t run_block_sum_dynamic(const float *x, int n, float *sums, bool with_barrier);

/* Per warp of 32 elements: the sum by __shfl_down_sync (down[warp]), the sum every lane gets by
 * __shfl_xor_sync (xor_all[i]), the inclusive prefix sum by __shfl_up_sync (scan[i]), lane 0's
 * value broadcast by __shfl_sync (bcast[i]) and __ballot_sync(x > 0) (ballot[warp]). n is a
 * multiple of 32. */
cudaError_t run_warp_ops(const float *x, int n, float *down, float *xor_all, float *scan, float *bcast,
                         unsigned *ballot);

/* For each of 64 threads (two warps) with value v = lane id, width-8 shuffles: idx[t] from source
 * lane 3, down[t] by 2, up[t] by 2, xor[t] with 4; partial_down[t] = __shfl_down_sync(full, v, 16)
 * in a block of 48 threads, whose second warp has only 16 lanes. */
cudaError_t run_shuffle_widths(float *idx, float *down, float *up, float *xr, float *partial_down);

/* n contributions from blocks x threads threads: fsum += 0.5 each, isum += i, imax = max(i * 7919 % n). */
cudaError_t run_atomics(int n, unsigned blocks, unsigned threads, float *fsum, int *isum, int *imax);

/* Reverses each block of `threads` elements through dynamic shared memory of shared_bytes bytes,
 * after raising the kernel's dynamic shared memory limit to optin_bytes when that is not 0. */
cudaError_t run_reverse_in_blocks(const float *in, float *out, int n, unsigned threads, size_t shared_bytes,
                                  int optin_bytes);
/* out[b * threads + t] = what thread t of block b finds in dynamic shared memory before writing it. */
cudaError_t run_read_fresh_shared(float *out, unsigned blocks, unsigned threads);
/* out[t] = in[t - 1] passed through dynamic shared memory without a barrier (out[0] = 0). */
cudaError_t run_neighbour_without_barrier(const float *in, float *out, unsigned threads);

/* Kernels that would hang or misbehave on a GPU; each returns the launch's error. */
cudaError_t run_barrier_after_early_exit(unsigned threads);
cudaError_t run_two_different_barriers(unsigned threads);
cudaError_t run_shuffle_while_others_wait_at_barrier();
cudaError_t run_shuffle_with_mask_leaving_out_caller();
cudaError_t run_grid_sync_in_ordinary_launch();
/* Writes one element past the end of a device array: AddressSanitizer stops the program. */
cudaError_t run_write_past_end();

/* Cooperative launch: each block sums its kBlockSumThreads elements, grid sync, then every block
 * writes the grand total plus its own sum, kept in static shared memory across the grid sync, to
 * out[block]. */
cudaError_t run_grid_sum(const float *x, int n, unsigned blocks, float *out);

/* Captures copy-in, vector add and copy-out on a stream into a graph, then for each of `rounds`
 * rounds calls refill(round) to change the host inputs and launches the graph. a, b and c are
 * pinned host buffers (cudaMallocHost), as the emulator requires of a captured copy. */
cudaError_t run_vector_add_graph(float *a, float *b, float *c, int n, int rounds, void (*refill)(int round));

/* A cooperative kernel with 64 KiB of dynamic shared memory, above the 48 KiB default: each block
 * of kBlockSumThreads threads loads its kGridTile elements of x into shared memory and sums them,
 * grid sync, then out[block] = the sum of all of x plus the block's last tile element, read from
 * shared memory after the grid sync. */
enum { kGridTile = 16384, kGridTileBytes = kGridTile * sizeof(float) };
/* Raises the kernel's dynamic shared memory limit when opt_in, captures one launch of `blocks`
 * blocks into a graph, then for each of `rounds` rounds copies round r's blocks * kGridTile inputs
 * (x + r * blocks * kGridTile) to the device, poisons the output, launches the graph and copies the
 * result to out + r * blocks. Returns the captured launch's error if it had one. */
cudaError_t run_grid_tile_sum_graph(const float *x, unsigned blocks, int rounds, bool opt_in, float *out);

/* A cooperative launch whose blocks all use one global buffer of `threads` floats as if it were their
 * own shared memory: out[b * threads + t] should be b * 1000 + (t + 1) % threads, and is only when the
 * blocks run one after another. */
cudaError_t run_global_scratch_cooperative(float *out, unsigned blocks, unsigned threads);

/* A kernel whose sm_90 build uses more than 64 registers per thread: its address, its attributes and
 * occupancy at `threads` threads per block, and a launch of it (cooperative or not); returns the
 * launch's error. */
enum { kHeavyAccumulators = 72 };
const void *register_heavy_kernel_address(void);
cudaError_t register_heavy_occupancy(int threads, int *blocks_per_sm, cudaFuncAttributes *attributes);
cudaError_t run_register_heavy(unsigned blocks, unsigned threads, bool cooperative);

/* Captures a cooperative launch of the grid_sum kernel (run_grid_sum) into a graph, through the launch
 * attribute (LAUNCH_COOPERATIVE) or through a plain cudaLaunchCooperativeKernel; *cooperative is the
 * captured kernel node's cudaLaunchAttributeCooperative. Returns the graph replay's error (out holds
 * run_grid_sum's result when it is cudaSuccess). */
cudaError_t run_captured_grid_sum(const float *x, int n, unsigned blocks, bool through_attribute, int *cooperative,
                                  float *out);

#endif
