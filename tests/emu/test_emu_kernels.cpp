/* The kernel language of the emulated device: launches over many blocks, barriers with real
 * semantics (a missing one gives a wrong answer, a divergent one is reported instead of hanging, and
 * the race detector reports the two threads), warp intrinsics, atomics, shared memory, cooperative
 * launches (blocks interleaved between grid syncs, co-residency counting registers), graphs
 * (cooperative launches and opted-in shared memory captured and replayed, the cooperative node
 * attribute) and the launch counters. The suite runs with the race detector on (CTest sets
 * CHARRNN_EMU_RACECHECK=1); the tests of what thread order alone exposes turn it off. */
#include "emu_report.h"
#include "kernels.h"

#include <cmath>
#include <criterion/criterion.h>
#include <cstring>
#include <string>
#include <vector>

static void reset_device(void)
{
    cudaDeviceReset();
}

TestSuite(emu_kernels, .fini = reset_device);

/* Values that sum exactly in float in any order: multiples of 1/4 of small magnitude. */
static std::vector<float> exact_values(int n, int seed)
{
    std::vector<float> v(n);
    for (int i = 0; i < n; ++i)
        v[i] = (float)((i * 37 + seed * 11) % 23 - 11) * 0.25f;
    return v;
}

static float reference_block_sum(const std::vector<float> &x, int block)
{
    float s = 0.0f;
    for (int i = block * kBlockSumThreads; i < (block + 1) * kBlockSumThreads && i < (int)x.size(); ++i)
        s += x[i];
    return s;
}

Test(emu_kernels, vector_add_covers_every_element_with_a_grid_stride_loop)
{
    const int n = 100003;
    std::vector<float> a = exact_values(n, 1), b = exact_values(n, 2), c(n);
    const unsigned shapes[][2] = {{1, 1}, {7, 33}, {64, 256}, {1000, 128}};
    for (const auto &shape : shapes) {
        std::fill(c.begin(), c.end(), 0.0f);
        cr_assert_eq(run_vector_add(a.data(), b.data(), c.data(), n, shape[0], shape[1]), cudaSuccess);
        for (int i = 0; i < n; ++i)
            cr_assert_eq(c[i], a[i] + b[i], "grid %u x %u, element %d", shape[0], shape[1], i);
    }
}

Test(emu_kernels, block_reduction_with_syncthreads_gives_each_block_sum)
{
    const int n = 10 * kBlockSumThreads + 77, blocks = 11;
    std::vector<float> x = exact_values(n, 3), sums(blocks);
    cr_assert_eq(run_block_sum(x.data(), n, sums.data(), true), cudaSuccess);
    for (int b = 0; b < blocks; ++b)
        cr_assert_eq(sums[b], reference_block_sum(x, b), "block %d", b);
    cr_assert_eq(run_block_sum_dynamic(x.data(), n, sums.data(), true), cudaSuccess);
    for (int b = 0; b < blocks; ++b)
        cr_assert_eq(sums[b], reference_block_sum(x, b), "block %d (dynamic shared memory)", b);
}

Test(emu_kernels, reduction_missing_a_barrier_gives_wrong_sums)
{
    const int n = 4 * kBlockSumThreads, blocks = 4;
    std::vector<float> x(n), sums(blocks);
    for (int i = 0; i < n; ++i)
        x[i] = (float)(i + 1);               /* every partial sum differs from every other */
    emu_set_racecheck(0);                    /* what thread order alone shows */
    emu_set_thread_order(EMU_ORDER_FORWARD); /* thread t runs before its partner t + stride stores */
    cr_assert_eq(run_block_sum(x.data(), n, sums.data(), false), cudaSuccess);
    for (int b = 0; b < blocks; ++b)
        cr_assert_neq(sums[b], reference_block_sum(x, b), "block %d reads partner elements before they are stored", b);
}

Test(emu_kernels, reduction_missing_a_barrier_reads_poisoned_dynamic_shared_memory)
{
    const int n = 3 * kBlockSumThreads, blocks = 3;
    std::vector<float> x = exact_values(n, 5), sums(blocks);
    emu_set_racecheck(0);
    emu_set_thread_order(EMU_ORDER_FORWARD);
    cr_assert_eq(run_block_sum_dynamic(x.data(), n, sums.data(), false), cudaSuccess);
    for (int b = 0; b < blocks; ++b)
        cr_assert(std::isnan(sums[b]), "block %d: %g should be NaN from unwritten shared memory", b, sums[b]);
}

Test(emu_kernels, dynamic_shared_memory_is_poisoned_at_every_block_start)
{
    const unsigned blocks = 3, threads = 64;
    std::vector<float> out(blocks * threads, 0.0f);
    cr_assert_eq(run_read_fresh_shared(out.data(), blocks, threads), cudaSuccess);
    for (float v : out)
        cr_assert(std::isnan(v));
}

Test(emu_kernels, missing_barrier_hidden_in_forward_order_shows_in_reverse_order)
{
    const unsigned threads = 64;
    std::vector<float> in = exact_values(threads, 6), out(threads);
    emu_set_racecheck(0);
    emu_set_thread_order(EMU_ORDER_FORWARD);
    cr_assert_eq(run_neighbour_without_barrier(in.data(), out.data(), threads), cudaSuccess);
    for (unsigned t = 1; t < threads; ++t)
        cr_assert_eq(out[t], in[t - 1], "forward order: the lower thread has already stored");
    emu_set_thread_order(EMU_ORDER_REVERSE);
    cr_assert_eq(run_neighbour_without_barrier(in.data(), out.data(), threads), cudaSuccess);
    emu_set_thread_order(EMU_ORDER_FORWARD);
    for (unsigned t = 1; t < threads; ++t)
        cr_assert(std::isnan(out[t]), "reverse order: thread %u reads before thread %u stores", t, t - 1);
}

/* The race detector reports what thread order hides: the neighbour exchange gives the right answer
 * in forward order, and the detector still names the two threads (dynamic shared memory). */
Test(emu_kernels, race_detector_reports_a_missing_barrier_that_forward_order_hides)
{
    if (!emu_racecheck_available())
        cr_skip_test("the race detector is not built into this build (AddressSanitizer)");
    const unsigned threads = 64;
    std::vector<float> in = exact_values(threads, 6), out(threads);
    emu_set_thread_order(EMU_ORDER_FORWARD);
    emu_set_racecheck(0);
    cr_assert_eq(run_neighbour_without_barrier(in.data(), out.data(), threads), cudaSuccess);
    cr_assert_eq(out[1], in[0], "forward order alone gives the right answer");
    emu_set_racecheck(1);
    cr_assert_eq(run_neighbour_without_barrier(in.data(), out.data(), threads), cudaErrorLaunchFailure);
    cr_assert(std::strstr(emu_last_fault(), "shared-memory race") &&
                  std::strstr(emu_last_fault(), "thread (1,0,0)") && std::strstr(emu_last_fault(), "thread (0,0,0)") &&
                  std::strstr(emu_last_fault(), "dynamic shared memory"),
              "%s", emu_last_fault());
}

/* The same for a static __shared__ array: the tree reduction without its first barrier. */
Test(emu_kernels, race_detector_reports_a_race_on_static_shared_memory)
{
    if (!emu_racecheck_available())
        cr_skip_test("the race detector is not built into this build (AddressSanitizer)");
    const int n = 2 * kBlockSumThreads;
    std::vector<float> x = exact_values(n, 4), sums(2);
    emu_set_racecheck(1);
    cr_assert_eq(run_block_sum(x.data(), n, sums.data(), true), cudaSuccess, "with the barrier: no race");
    cr_assert_eq(run_block_sum(x.data(), n, sums.data(), false), cudaErrorLaunchFailure);
    cr_assert(std::strstr(emu_last_fault(), "shared-memory race") && std::strstr(emu_last_fault(), "static shared memory"),
              "%s", emu_last_fault());
}

Test(emu_kernels, warp_shuffles_and_ballot_exchange_between_the_32_lanes)
{
    const int n = 256, warps = n / 32;
    std::vector<float> x = exact_values(n, 7), down(warps), xor_all(n), scan(n), bcast(n);
    std::vector<unsigned> ballot(warps);
    cr_assert_eq(run_warp_ops(x.data(), n, down.data(), xor_all.data(), scan.data(), bcast.data(), ballot.data()),
                 cudaSuccess);
    for (int w = 0; w < warps; ++w) {
        float sum = 0.0f, prefix = 0.0f;
        unsigned votes = 0;
        for (int l = 0; l < 32; ++l)
            sum += x[w * 32 + l];
        cr_assert_eq(down[w], sum, "warp %d: __shfl_down_sync sum", w);
        for (int l = 0; l < 32; ++l) {
            const int i = w * 32 + l;
            prefix += x[i];
            votes |= (x[i] > 0.0f ? 1u : 0u) << l;
            cr_assert_eq(xor_all[i], sum, "lane %d of warp %d: __shfl_xor_sync sum", l, w);
            cr_assert_eq(scan[i], prefix, "lane %d of warp %d: __shfl_up_sync prefix", l, w);
            cr_assert_eq(bcast[i], x[w * 32], "lane %d of warp %d: __shfl_sync broadcast", l, w);
        }
        cr_assert_eq(ballot[w], votes, "warp %d: ballot %08x, expected %08x", w, ballot[w], votes);
    }
}

Test(emu_kernels, shuffle_width_splits_the_warp_into_independent_segments)
{
    float idx[64], down[64], up[64], xr[64], partial_down[48];
    cr_assert_eq(run_shuffle_widths(idx, down, up, xr, partial_down), cudaSuccess);
    for (int t = 0; t < 64; ++t) {
        const int lane = t % 32, segment = lane / 8 * 8, in_segment = lane % 8;
        cr_assert_eq(idx[t], (float)(segment + 3), "thread %d: source lane 3 of its segment", t);
        cr_assert_eq(down[t], (float)(in_segment + 2 < 8 ? lane + 2 : lane), "thread %d: down stays in segment", t);
        cr_assert_eq(up[t], (float)(in_segment >= 2 ? lane - 2 : lane), "thread %d: up stays in segment", t);
        cr_assert_eq(xr[t], (float)(lane ^ 4), "thread %d", t);
    }
    for (int t = 0; t < 48; ++t) {
        const int lane = t % 32;
        if (t < 16)
            cr_assert_eq(partial_down[t], (float)(lane + 16), "thread %d", t);
        else if (t < 32)
            cr_assert_eq(partial_down[t], (float)lane, "thread %d: lane %d is past the warp", t, lane + 16);
        else
            cr_assert(std::isnan(partial_down[t]), "thread %d reads lane %d, which the 48-thread block lacks", t,
                      lane + 16);
    }
}

Test(emu_kernels, atomics_from_many_threads_lose_no_update)
{
    const int n = 50000;
    float fsum = 0.0f;
    int isum = 0, imax = 0;
    cr_assert_eq(run_atomics(n, 40, 96, &fsum, &isum, &imax), cudaSuccess);
    cr_assert_eq(fsum, 0.5f * n);
    cr_assert_eq(isum, (int)((long long)n * (n - 1) / 2));
    cr_assert_eq(imax, n - 1);
}

Test(emu_kernels, dynamic_shared_memory_sized_at_launch_reverses_each_block)
{
    const unsigned threads = 200;
    const int n = 5 * threads;
    std::vector<float> in = exact_values(n, 8), out(n);
    cr_assert_eq(run_reverse_in_blocks(in.data(), out.data(), n, threads, threads * sizeof(float), 0), cudaSuccess);
    for (int i = 0; i < n; ++i) {
        const int base = i / threads * threads;
        cr_assert_eq(out[i], in[base + threads - 1 - (i - base)], "element %d", i);
    }
}

Test(emu_kernels, dynamic_shared_memory_above_48_KiB_needs_the_opt_in_attribute)
{
    const unsigned threads = 64;
    const int n = threads;
    const size_t big = 64 * 1024;
    std::vector<float> in = exact_values(n, 9), out(n);
    cr_assert_eq(run_reverse_in_blocks(in.data(), out.data(), n, threads, big, 0), cudaErrorInvalidValue);
    cr_assert_eq(run_reverse_in_blocks(in.data(), out.data(), n, threads, big, (int)big), cudaSuccess);
    cr_assert_eq(out[0], in[threads - 1]);
    cr_assert_eq(run_reverse_in_blocks(in.data(), out.data(), n, threads, big, 228 * 1024), cudaErrorInvalidValue,
                 "the opt-in limit of sm_90 is 227 KiB");
}

Test(emu_kernels, barrier_after_some_threads_exited_is_reported_not_hung)
{
    cr_assert_eq(run_barrier_after_early_exit(64), cudaErrorLaunchFailure);
    cr_assert(std::strstr(emu_last_fault(), "exited while 32 threads wait at __syncthreads()"), "%s", emu_last_fault());
    cr_assert(std::strstr(emu_last_fault(), "kernels.cu"), "the fault names the barrier's source line");
    cr_assert_eq(cudaDeviceSynchronize(), cudaErrorLaunchFailure, "a kernel fault is sticky, as on a GPU");
}

Test(emu_kernels, threads_at_two_different_barriers_are_reported)
{
    cr_assert_eq(run_two_different_barriers(32), cudaErrorLaunchFailure);
    cr_assert(std::strstr(emu_last_fault(), "different __syncthreads() calls"), "%s", emu_last_fault());
}

Test(emu_kernels, shuffle_while_other_lanes_wait_at_a_barrier_is_reported)
{
    cr_assert_eq(run_shuffle_while_others_wait_at_barrier(), cudaErrorLaunchFailure);
    cr_assert(std::strstr(emu_last_fault(), "would hang"), "%s", emu_last_fault());
}

Test(emu_kernels, shuffle_whose_mask_leaves_out_the_caller_is_reported)
{
    cr_assert_eq(run_shuffle_with_mask_leaving_out_caller(), cudaErrorLaunchFailure);
    cr_assert(std::strstr(emu_last_fault(), "leaves it out"), "%s", emu_last_fault());
}

Test(emu_kernels, cooperative_launch_synchronises_the_grid_and_keeps_shared_memory_per_block)
{
    const unsigned blocks = 6;
    const int n = blocks * kBlockSumThreads - 5;
    std::vector<float> x = exact_values(n, 10), out(blocks);
    float total = 0.0f;
    for (float v : x)
        total += v;
    const unsigned long before = emu_cooperative_launch_count();
    cr_assert_eq(run_grid_sum(x.data(), n, blocks, out.data()), cudaSuccess);
    cr_assert_eq(emu_cooperative_launch_count(), before + 1, "the cooperative path ran");
    for (unsigned b = 0; b < blocks; ++b)
        cr_assert_eq(out[b], total + reference_block_sum(x, (int)b), "block %u", b);
}

/* Blocks that share one global buffer as if it were their own: run one after another (as the emulator
 * once ran cooperative blocks) they give the right answer in any order; interleaved between barriers, as
 * on a GPU, they overwrite each other's values. Reverse order interleaves the other way. */
Test(emu_kernels, cooperative_blocks_interleave_so_a_cross_block_race_shows)
{
    const unsigned blocks = 3, threads = 32;
    std::vector<float> out(blocks * threads);
    for (int order = 0; order < 2; ++order) {
        emu_set_thread_order(order ? EMU_ORDER_REVERSE : EMU_ORDER_FORWARD);
        cr_assert_eq(run_global_scratch_cooperative(out.data(), blocks, threads), cudaSuccess);
        unsigned wrong = 0;
        for (unsigned b = 0; b < blocks; ++b)
            for (unsigned t = 0; t < threads; ++t)
                wrong += out[b * threads + t] != (float)(b * 1000 + (t + 1) % threads);
        cr_assert_geq(wrong, (blocks - 1) * threads, "%s order: every block but the last to write reads another's",
                      order ? "reverse" : "forward");
    }
    emu_set_thread_order(EMU_ORDER_FORWARD);
}

Test(emu_kernels, cooperative_launch_larger_than_the_device_holds_is_refused)
{
    const int n = kBlockSumThreads;
    std::vector<float> x(n, 1.0f), out(2000);
    cr_assert_eq(run_grid_sum(x.data(), n, 2000, out.data()), cudaErrorCooperativeLaunchTooLarge,
                 "132 SMs x 8 blocks of 256 threads is the most an sm_90 device holds at once");
}

/* Co-residency counts registers as an sm_90 device does, from the kernel's sm_90 build: at 256 threads
 * per block the register-heavy kernel fits fewer blocks per SM than threads and shared memory allow, and
 * a cooperative grid one block larger than that is refused before it runs; at 1024 threads a block
 * needs more registers than an SM has. */
Test(emu_kernels, occupancy_and_cooperative_residency_count_registers_per_thread)
{
    int in_table = 0;
    const int registers = emu_kernel_registers(register_heavy_kernel_address(), &in_table);
    cr_assert(in_table, "the kernel is in the sm_90 resource table");
    cr_assert_gt(registers, 64);
    const int threads = 256, warps = threads / 32;
    const int per_warp = (registers * 32 + 255) / 256 * 256;
    const int by_registers = 65536 / per_warp / warps, by_threads = 2048 / threads;
    cr_assert_lt(by_registers, by_threads, "registers, not threads, limit this kernel");
    int per_sm = 0;
    cudaFuncAttributes attributes;
    cr_assert_eq(register_heavy_occupancy(threads, &per_sm, &attributes), cudaSuccess);
    cr_assert_eq(per_sm, by_registers);
    cr_assert_eq(attributes.numRegs, registers);
    const unsigned long before = emu_cooperative_launch_count();
    cr_assert_eq(run_register_heavy(132 * by_registers + 1, threads, true), cudaErrorCooperativeLaunchTooLarge);
    cr_assert_eq(emu_cooperative_launch_count(), before, "refused before it ran");
    cr_assert_eq(run_register_heavy(1, 1024, false), cudaErrorLaunchOutOfResources,
                 "%d registers x 1024 threads exceed the 64 K registers of an SM", registers);
    cr_assert_eq(run_register_heavy(2, threads, false), cudaSuccess);
}

/* The table holds the CUDA backend's kernels, and none of them spills registers or keeps a stack frame
 * (an array indexed at run time, or a parameter whose address is taken) in the sm_90 build. */
Test(emu_kernels, backend_kernels_are_in_the_resource_table_and_do_not_spill)
{
    size_t backend = 0;
    for (size_t i = 0; i < emu_resource_table_size(); ++i) {
        int registers;
        size_t stack, stores, loads, shared;
        const char *name = emu_resource_table_entry(i, &registers, &stack, &stores, &loads, &shared);
        if (std::strncmp(name, "_ZN7kernels", 11) != 0)
            continue;
        backend++;
        cr_expect(stores == 0 && loads == 0 && stack == 0, "%s: %zu bytes of stack, spills %zu/%zu bytes", name, stack,
                  stores, loads);
        cr_expect(registers <= 255, "%s uses %d registers", name, registers);
    }
    cr_assert_gt(backend, 10, "the table holds the backend's kernels");
}

/* A captured LAUNCH_COOPERATIVE (cudaLaunchKernelEx with the cooperative attribute) is a cooperative
 * kernel node and replays; a captured plain cudaLaunchCooperativeKernel is an ordinary node here, whose
 * grid sync faults at replay, as it would on a GPU that captured it so. */
Test(emu_kernels, captured_cooperative_launch_keeps_its_attribute_only_through_cudaLaunchKernelEx)
{
    const unsigned blocks = 4;
    const int n = blocks * kBlockSumThreads;
    std::vector<float> x = exact_values(n, 13), out(blocks);
    float total = 0.0f;
    for (float v : x)
        total += v;
    int cooperative = -1;
    cr_assert_eq(run_captured_grid_sum(x.data(), n, blocks, true, &cooperative, out.data()), cudaSuccess);
    cr_assert_eq(cooperative, 1);
    cr_assert_eq(out[0], total + reference_block_sum(x, 0));
    cr_assert_eq(run_captured_grid_sum(x.data(), n, blocks, false, &cooperative, out.data()), cudaErrorLaunchFailure);
    cr_assert_eq(cooperative, 0);
    cr_assert(std::strstr(emu_last_fault(), "grid sync"), "%s", emu_last_fault());
}

Test(emu_kernels, grid_sync_in_an_ordinary_launch_is_reported)
{
    cr_assert_eq(run_grid_sync_in_ordinary_launch(), cudaErrorLaunchFailure);
    cr_assert(std::strstr(emu_last_fault(), "not launched with cudaLaunchCooperativeKernel"), "%s", emu_last_fault());
}

#if defined(__SANITIZE_ADDRESS__)
#define EMU_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define EMU_TEST_ASAN 1
#endif
#endif
#ifdef EMU_TEST_ASAN
/* AddressSanitizer exits with status 1 after its report. */
Test(emu_kernels, out_of_bounds_device_write_is_caught_by_address_sanitizer, .exit_code = 1)
{
    run_write_past_end();
}
#endif

static float *graph_a, *graph_b;
static const int graph_n = 1000;
static void refill_graph_inputs(int round)
{
    for (int i = 0; i < graph_n; ++i) {
        graph_a[i] = (float)(i + round);
        graph_b[i] = (float)(2 * round);
    }
}

Test(emu_kernels, captured_graph_replays_copies_and_kernel_with_new_pinned_host_data)
{
    float *c = nullptr;
    cr_assert_eq(cudaMallocHost(&graph_a, graph_n * sizeof(float)), cudaSuccess);
    cr_assert_eq(cudaMallocHost(&graph_b, graph_n * sizeof(float)), cudaSuccess);
    cr_assert_eq(cudaMallocHost(&c, graph_n * sizeof(float)), cudaSuccess);
    const unsigned long before = emu_launch_count();
    cr_assert_eq(run_vector_add_graph(graph_a, graph_b, c, graph_n, 3, refill_graph_inputs), cudaSuccess);
    cr_assert_eq(emu_launch_count(), before + 3, "capture records the kernel, each graph launch runs it");
    for (int i = 0; i < graph_n; ++i)
        cr_assert_eq(c[i], (float)(i + 2 + 4), "element %d after the third replay", i);
    cudaFreeHost(graph_a);
    cudaFreeHost(graph_b);
    cudaFreeHost(c);
}

/* The inputs of `rounds` rounds of run_grid_tile_sum_graph and what each block should output. */
struct TileSumCase {
    unsigned blocks;
    int rounds;
    std::vector<float> x, want;
};
static TileSumCase tile_sum_case(unsigned blocks, int rounds)
{
    TileSumCase c{blocks, rounds, exact_values((int)(rounds * blocks * kGridTile), 12), {}};
    for (int r = 0; r < rounds; ++r) {
        const float *x = c.x.data() + (size_t)r * blocks * kGridTile;
        float total = 0.0f;
        for (size_t i = 0; i < (size_t)blocks * kGridTile; ++i)
            total += x[i];
        for (unsigned b = 0; b < blocks; ++b)
            c.want.push_back(total + x[(size_t)(b + 1) * kGridTile - 1]);
    }
    return c;
}

Test(emu_kernels, captured_cooperative_launch_with_64_KiB_of_shared_memory_replays_with_grid_sync)
{
    TileSumCase c = tile_sum_case(3, 2);
    std::vector<float> out(c.want.size());
    const unsigned long launches = emu_launch_count(), cooperative = emu_cooperative_launch_count();
    cr_assert_eq(run_grid_tile_sum_graph(c.x.data(), c.blocks, c.rounds, true, out.data()), cudaSuccess);
    cr_assert_eq(emu_cooperative_launch_count(), cooperative + 2, "each replay is a cooperative launch");
    cr_assert_eq(emu_launch_count(), launches + 2);
    cr_assert_neq(c.want[0], c.want[c.blocks], "the two rounds have different inputs");
    for (size_t i = 0; i < out.size(); ++i)
        cr_assert_eq(out[i], c.want[i], "round %zu, block %zu", i / c.blocks, i % c.blocks);
}

Test(emu_kernels, captured_launch_above_48_KiB_of_shared_memory_needs_the_opt_in_attribute)
{
    TileSumCase c = tile_sum_case(1, 1);
    std::vector<float> out(1);
    cr_assert_eq(run_grid_tile_sum_graph(c.x.data(), 1, 1, false, out.data()), cudaErrorInvalidValue);
}

Test(emu_kernels, captured_cooperative_launch_larger_than_the_device_holds_is_refused)
{
    /* 64 KiB and the 1 KiB the driver reserves: 3 blocks fit in the 228 KiB of an SM, 396 in 132 SMs. */
    const unsigned blocks = 3 * 132 + 1;
    std::vector<float> x((size_t)blocks * kGridTile, 1.0f), out(blocks);
    const unsigned long before = emu_cooperative_launch_count();
    cr_assert_eq(run_grid_tile_sum_graph(x.data(), blocks - 1, 0, true, out.data()), cudaSuccess);
    cr_assert_eq(run_grid_tile_sum_graph(x.data(), blocks, 1, true, out.data()), cudaErrorCooperativeLaunchTooLarge);
    cr_assert_eq(emu_cooperative_launch_count(), before, "nothing ran: no round, then a refused launch");
}

Test(emu_kernels, launch_counters_count_kernels_that_ran_not_launches_refused)
{
    std::vector<float> a(64, 1.0f), c(64), x(kBlockSumThreads, 1.0f), out(2000);
    const unsigned long launches = emu_launch_count(), cooperative = emu_cooperative_launch_count();
    cr_assert_eq(run_vector_add(a.data(), a.data(), c.data(), 64, 1, 64), cudaSuccess);
    cr_assert_eq(emu_launch_count(), launches + 1);
    cr_assert_eq(emu_cooperative_launch_count(), cooperative, "an ordinary launch");
    cr_assert_eq(run_grid_sum(x.data(), kBlockSumThreads, 1, out.data()), cudaSuccess);
    cr_assert_eq(emu_launch_count(), launches + 2, "a cooperative launch is also a launch");
    cr_assert_eq(emu_cooperative_launch_count(), cooperative + 1);
    cr_assert_eq(run_vector_add(a.data(), a.data(), c.data(), 64, 1, 2048), cudaErrorInvalidConfiguration);
    cr_assert_eq(run_grid_sum(x.data(), kBlockSumThreads, 2000, out.data()), cudaErrorCooperativeLaunchTooLarge);
    cr_assert_eq(emu_launch_count(), launches + 2, "refused launches did not run");
    cr_assert_eq(emu_cooperative_launch_count(), cooperative + 1);
}
