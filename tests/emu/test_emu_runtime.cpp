/* The runtime API of the emulated device: sm_90 properties, launch-configuration errors as the
 * CUDA runtime reports them, tracked allocations (bad frees, leaks), copy checks, error strings,
 * streams and events, work that runs only when the host waits for it, and which copies stream capture
 * accepts. */
#include "emu_report.h"
#include "kernels.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <criterion/criterion.h>
#include <cstring>
#include <string>
#include <vector>

static void reset_device(void)
{
    cudaDeviceReset();
}

TestSuite(emu_runtime, .fini = reset_device);

Test(emu_runtime, device_has_the_limits_of_an_sm_90_gpu)
{
    int count = 0;
    cr_assert_eq(cudaGetDeviceCount(&count), cudaSuccess);
    cr_assert_eq(count, 1);
    cudaDeviceProp p;
    cr_assert_eq(cudaGetDeviceProperties(&p, 0), cudaSuccess);
    cr_assert_eq(p.major, 9);
    cr_assert_eq(p.minor, 0);
    cr_assert_eq(p.multiProcessorCount, 132);
    cr_assert_eq(p.maxThreadsPerBlock, 1024);
    cr_assert_eq(p.warpSize, 32);
    cr_assert_eq(p.sharedMemPerBlock, 48u * 1024);
    cr_assert_eq(p.sharedMemPerBlockOptin, 227u * 1024);
    cr_assert_eq(p.maxGridSize[1], 65535);
    cr_assert_eq(cudaGetDeviceProperties(&p, 1), cudaErrorInvalidDevice);
    int optin = 0;
    cr_assert_eq(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, 0), cudaSuccess);
    cr_assert_eq(optin, 227 * 1024);
}

Test(emu_runtime, block_of_1025_threads_is_an_invalid_configuration)
{
    std::vector<float> a(2048, 1.0f), c(2048);
    cr_assert_eq(run_vector_add(a.data(), a.data(), c.data(), 2048, 2, 1025), cudaErrorInvalidConfiguration);
    cr_assert_eq(std::string(cudaGetErrorString(cudaErrorInvalidConfiguration)), "invalid configuration argument");
    cr_assert_eq(std::string(cudaGetErrorName(cudaErrorInvalidConfiguration)), "cudaErrorInvalidConfiguration");
    cr_assert_eq(run_vector_add(a.data(), a.data(), c.data(), 2048, 2, 1024), cudaSuccess, "1024 threads are allowed");
}

Test(emu_runtime, empty_grid_or_empty_block_is_an_invalid_configuration)
{
    std::vector<float> a(16, 1.0f), c(16);
    cr_assert_eq(run_vector_add(a.data(), a.data(), c.data(), 16, 0, 32), cudaErrorInvalidConfiguration);
    cr_assert_eq(run_vector_add(a.data(), a.data(), c.data(), 16, 1, 0), cudaErrorInvalidConfiguration);
}

Test(emu_runtime, failed_call_is_the_last_error_until_read)
{
    std::vector<float> a(16, 1.0f), c(16);
    run_vector_add(a.data(), a.data(), c.data(), 16, 1, 2048);
    cr_assert_eq(cudaGetLastError(), cudaSuccess, "the wrapper already read it");
    cudaFree((void *)0x1234);
    cr_assert_eq(cudaPeekAtLastError(), cudaErrorInvalidValue);
    cr_assert_eq(cudaGetLastError(), cudaErrorInvalidValue);
    cr_assert_eq(cudaGetLastError(), cudaSuccess, "reading the last error resets it");
}

Test(emu_runtime, freeing_a_pointer_that_cudaMalloc_did_not_return_is_an_error)
{
    float host = 0.0f;
    void *p = nullptr;
    cr_assert_eq(cudaFree(&host), cudaErrorInvalidValue);
    cr_assert_eq(cudaMalloc(&p, 64), cudaSuccess);
    cr_assert_eq(cudaFree((char *)p + 4), cudaErrorInvalidValue, "an interior pointer is not an allocation");
    cr_assert_eq(cudaFreeHost(p), cudaErrorInvalidValue, "device memory is not pinned host memory");
    cr_assert_eq(cudaFree(p), cudaSuccess);
    cr_assert_eq(cudaFree(p), cudaErrorInvalidValue, "a second free of the same pointer");
    cr_assert_eq(cudaFree(nullptr), cudaSuccess);
}

Test(emu_runtime, live_allocations_are_counted_and_reported_as_leaks)
{
    void *a = nullptr, *b = nullptr, *h = nullptr;
    const size_t before = emu_live_allocations();
    cr_assert_eq(cudaMalloc(&a, 1000), cudaSuccess);
    cr_assert_eq(cudaMalloc(&b, 24), cudaSuccess);
    cr_assert_eq(cudaMallocHost(&h, 8), cudaSuccess);
    cr_assert_eq(emu_live_allocations(), before + 3);
    cr_assert_eq(cudaFree(a), cudaSuccess);
    cr_assert_eq(cudaFreeHost(h), cudaSuccess);
    cr_assert_eq(emu_live_allocations(), before + 1);
    cr_assert_eq(emu_live_bytes(), 24u);
    FILE *report = tmpfile();
    cr_assert_eq(emu_report_leaks(report), 1u);
    rewind(report);
    char line[256] = "";
    cr_assert(fgets(line, sizeof line, report));
    fclose(report);
    cr_assert(std::strstr(line, "24 bytes") && std::strstr(line, "never freed"), "%s", line);
    cr_assert_eq(cudaFree(b), cudaSuccess);
    cr_assert_eq(emu_live_allocations(), 0u);
}

Test(emu_runtime, fresh_device_memory_reads_as_nan_until_written)
{
    float *d = nullptr, host[4];
    cr_assert_eq(cudaMalloc(&d, sizeof host), cudaSuccess);
    cr_assert_eq(cudaMemcpy(host, d, sizeof host, cudaMemcpyDeviceToHost), cudaSuccess);
    for (float v : host)
        cr_assert(std::isnan(v));
    cr_assert_eq(cudaMemset(d, 0, sizeof host), cudaSuccess);
    cr_assert_eq(cudaMemcpy(host, d, sizeof host, cudaMemcpyDeviceToHost), cudaSuccess);
    cr_assert_eq(host[3], 0.0f);
    cr_assert_eq(cudaFree(d), cudaSuccess);
}

Test(emu_runtime, copies_must_stay_inside_device_allocations_in_the_stated_direction)
{
    float *d = nullptr, host[8] = {0};
    cr_assert_eq(cudaMalloc(&d, 4 * sizeof(float)), cudaSuccess);
    cr_assert_eq(cudaMemcpy(d, host, 4 * sizeof(float), cudaMemcpyHostToDevice), cudaSuccess);
    cr_assert_eq(cudaMemcpy(d, host, 8 * sizeof(float), cudaMemcpyHostToDevice), cudaErrorInvalidValue, "overrun");
    cr_assert_eq(cudaMemcpy(host, d, 4 * sizeof(float), cudaMemcpyHostToDevice), cudaErrorInvalidValue, "swapped");
    cr_assert_eq(cudaMemcpy(d + 2, d, 2 * sizeof(float), cudaMemcpyDeviceToDevice), cudaSuccess);
    cr_assert_eq(cudaMemcpy(host, d, sizeof(float), (cudaMemcpyKind)7), cudaErrorInvalidMemcpyDirection);
    cr_assert_eq(cudaMemset(host, 0, sizeof host), cudaErrorInvalidValue, "memset of host memory");
    cr_assert_eq(cudaFree(d), cudaSuccess);
}

Test(emu_runtime, allocation_beyond_the_80_GiB_of_the_device_fails)
{
    void *p = nullptr;
    cr_assert_eq(cudaMalloc(&p, (size_t)81 << 30), cudaErrorMemoryAllocation);
    size_t free_bytes = 0, total = 0;
    cr_assert_eq(cudaMemGetInfo(&free_bytes, &total), cudaSuccess);
    cr_assert_eq(total, (size_t)80 << 30);
}

/* The host's MemAvailable, in bytes (0 where /proc/meminfo cannot be read). */
static size_t host_available()
{
    size_t kib = 0;
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %zu kB", &kib) == 1)
            break;
    if (f)
        fclose(f);
    return kib << 10;
}

Test(emu_runtime, free_memory_is_no_more_than_the_host_has)
{
    const size_t before = host_available();
    if (before == 0)
        cr_skip_test("/proc/meminfo has no MemAvailable");
    size_t free_bytes = 0, total = 0;
    cr_assert_eq(cudaMemGetInfo(&free_bytes, &total), cudaSuccess);
    const size_t after = host_available(), slack = (size_t)256 << 20;
    cr_assert_leq(free_bytes, std::max(before, after) + slack, "free %zu, the host has %zu", free_bytes, after);
    if (after + ((size_t)2 << 30) >= total)
        cr_skip_test("the host has more memory available than the device has");
    void *p = nullptr;
    cr_assert_eq(cudaMalloc(&p, after + ((size_t)1 << 30)), cudaErrorMemoryAllocation,
                 "an allocation beyond the host's memory must fail, not be poisoned into the OOM killer");
    cr_assert_eq(cudaGetLastError(), cudaErrorMemoryAllocation);
}

Test(emu_runtime, streams_and_events_follow_cuda_handle_rules)
{
    cudaStream_t s;
    cudaEvent_t start, stop, untimed;
    cr_assert_eq(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), cudaSuccess);
    cr_assert_eq(cudaEventCreate(&start), cudaSuccess);
    cr_assert_eq(cudaEventCreate(&stop), cudaSuccess);
    cr_assert_eq(cudaEventCreateWithFlags(&untimed, cudaEventDisableTiming), cudaSuccess);
    float ms = -1.0f;
    cr_assert_eq(cudaEventElapsedTime(&ms, start, stop), cudaErrorInvalidResourceHandle, "not recorded yet");
    cr_assert_eq(cudaEventRecord(start, s), cudaSuccess);
    cr_assert_eq(cudaEventRecord(stop, s), cudaSuccess);
    cr_assert_eq(cudaEventRecord(untimed, s), cudaSuccess);
    cr_assert_eq(cudaEventSynchronize(stop), cudaSuccess);
    cr_assert_eq(cudaEventElapsedTime(&ms, start, stop), cudaSuccess);
    cr_assert(ms >= 0.0f);
    cr_assert_eq(cudaEventElapsedTime(&ms, start, untimed), cudaErrorInvalidResourceHandle);
    cr_assert_eq(cudaStreamSynchronize(s), cudaSuccess);
    cr_assert_eq(cudaStreamDestroy(s), cudaSuccess);
    cr_assert_eq(cudaStreamSynchronize(s), cudaErrorInvalidResourceHandle, "a destroyed stream");
    cr_assert_eq(cudaEventDestroy(start), cudaSuccess);
    cr_assert_eq(cudaEventDestroy(stop), cudaSuccess);
    cr_assert_eq(cudaEventDestroy(untimed), cudaSuccess);
}

/* Begins a capture on `s`, makes one copy, and returns the copy's error; *status is the capture's
 * status after it and *end_error what cudaStreamEndCapture then returns. */
static cudaError_t captured_copy(cudaStream_t s, void *dst, const void *src, size_t bytes, cudaMemcpyKind kind,
                                 cudaStreamCaptureStatus *status, cudaError_t *end_error)
{
    cr_assert_eq(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal), cudaSuccess);
    cudaError_t e = cudaMemcpyAsync(dst, src, bytes, kind, s);
    cr_assert_eq(cudaStreamIsCapturing(s, status), cudaSuccess);
    cudaGraph_t graph = nullptr;
    *end_error = cudaStreamEndCapture(s, &graph);
    if (graph)
        cudaGraphDestroy(graph);
    cr_assert((*end_error == cudaSuccess) == (graph != nullptr), "a graph exactly when the capture succeeded");
    return e;
}

Test(emu_runtime, captured_copy_with_pageable_host_memory_is_refused_and_invalidates_the_capture)
{
    float pageable[8] = {0}, *pinned = nullptr, *d = nullptr;
    cudaStream_t s;
    cudaStreamCaptureStatus status;
    cudaError_t end_error;
    cr_assert_eq(cudaStreamCreate(&s), cudaSuccess);
    cr_assert_eq(cudaMalloc(&d, sizeof pageable), cudaSuccess);
    cr_assert_eq(cudaMallocHost(&pinned, 4 * sizeof(float)), cudaSuccess);
    cr_assert_eq(cudaMemcpyAsync(d, pageable, sizeof pageable, cudaMemcpyHostToDevice, s), cudaSuccess,
                 "outside a capture a pageable copy is fine");
    const struct {
        void *dst;
        const void *src;
        size_t bytes;
        cudaMemcpyKind kind;
        const char *what;
    } refused[] = {
        {d, pageable, sizeof pageable, cudaMemcpyHostToDevice, "from pageable memory"},
        {pageable, d, sizeof pageable, cudaMemcpyDeviceToHost, "into pageable memory"},
        {d, pageable, sizeof pageable, cudaMemcpyDefault, "from pageable memory, direction inferred"},
        {d, pinned, 8 * sizeof(float), cudaMemcpyHostToDevice, "past the end of a pinned buffer"},
        {pinned, pageable, 4 * sizeof(float), cudaMemcpyHostToHost, "one host side pageable"},
    };
    for (const auto &c : refused) {
        cr_assert_eq(captured_copy(s, c.dst, c.src, c.bytes, c.kind, &status, &end_error),
                     cudaErrorStreamCaptureUnsupported, "%s", c.what);
        cr_assert_eq(status, cudaStreamCaptureStatusInvalidated, "%s", c.what);
        cr_assert_eq(end_error, cudaErrorStreamCaptureInvalidated, "%s", c.what);
    }
    cr_assert_eq(captured_copy(s, d, pinned, 4 * sizeof(float), cudaMemcpyHostToDevice, &status, &end_error),
                 cudaSuccess);
    cr_assert_eq(status, cudaStreamCaptureStatusActive);
    cr_assert_eq(end_error, cudaSuccess, "the same copy from a pinned buffer is captured");
    cudaFreeHost(pinned);
    cudaFree(d);
    cudaStreamDestroy(s);
}

Test(emu_runtime, captured_pinned_copies_read_the_host_buffer_at_each_graph_launch)
{
    const int n = 13;
    float *in = nullptr, *out = nullptr, *d = nullptr;
    cudaStream_t s;
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    cr_assert_eq(cudaStreamCreate(&s), cudaSuccess);
    cr_assert_eq(cudaMallocHost(&in, n * sizeof(float)), cudaSuccess);
    cr_assert_eq(cudaMallocHost(&out, n * sizeof(float)), cudaSuccess);
    cr_assert_eq(cudaMalloc(&d, n * sizeof(float)), cudaSuccess);
    for (int i = 0; i < n; ++i)
        in[i] = out[i] = -1.0f;
    cr_assert_eq(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal), cudaSuccess);
    cr_assert_eq(cudaMemcpyAsync(d, in, n * sizeof(float), cudaMemcpyHostToDevice, s), cudaSuccess);
    cr_assert_eq(cudaMemcpyAsync(out, d, n * sizeof(float), cudaMemcpyDeviceToHost, s), cudaSuccess);
    cr_assert_eq(cudaStreamEndCapture(s, &graph), cudaSuccess);
    cr_assert_eq(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
    for (int round = 1; round <= 2; ++round) {
        for (int i = 0; i < n; ++i)
            in[i] = (float)(round * 100 + i);
        cr_assert_eq(out[0], round == 1 ? -1.0f : 100.0f, "nothing copies until the graph is launched");
        cr_assert_eq(cudaGraphLaunch(exec, s), cudaSuccess);
        cr_assert_eq(cudaStreamSynchronize(s), cudaSuccess);
        for (int i = 0; i < n; ++i)
            cr_assert_eq(out[i], (float)(round * 100 + i), "round %d, element %d", round, i);
    }
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);
    cudaFree(d);
    cudaFreeHost(in);
    cudaFreeHost(out);
    cudaStreamDestroy(s);
}

Test(emu_runtime, every_error_has_cuda_name_and_message)
{
    cr_assert_eq(std::string(cudaGetErrorString(cudaSuccess)), "no error");
    cr_assert_eq(std::string(cudaGetErrorString(cudaErrorInvalidValue)), "invalid argument");
    cr_assert_eq(std::string(cudaGetErrorName(cudaErrorMemoryAllocation)), "cudaErrorMemoryAllocation");
    cr_assert_eq(std::string(cudaGetErrorString(cudaErrorLaunchFailure)), "unspecified launch failure");
    cr_assert_eq(std::string(cudaGetErrorString(cudaErrorCooperativeLaunchTooLarge)),
                 "too many blocks in cooperative launch");
    cr_assert_eq(std::string(cudaGetErrorString((cudaError_t)12345)), "unrecognized error code");
}

Test(emu_runtime, device_reset_clears_a_sticky_fault_and_frees_everything)
{
    void *p = nullptr;
    cr_assert_eq(cudaMalloc(&p, 16), cudaSuccess);
    cr_assert_eq(run_barrier_after_early_exit(32), cudaErrorLaunchFailure);
    cr_assert_eq(cudaMalloc(&p, 16), cudaErrorLaunchFailure, "every call returns the sticky error");
    cr_assert_eq(cudaDeviceReset(), cudaSuccess);
    cr_assert_eq(emu_live_allocations(), 0u);
    cr_assert_eq(std::string(emu_last_fault()), "");
    cr_assert_eq(cudaMalloc(&p, 16), cudaSuccess);
    cr_assert_eq(cudaFree(p), cudaSuccess);
}

/* Work on a stream runs when the host waits for it, not when it is queued: a host read of a pinned
 * buffer before the wait sees what was there before the copy. */
Test(emu_runtime, host_read_before_the_stream_is_synchronised_sees_the_old_data)
{
    const int n = 16;
    float *pinned = nullptr, *d = nullptr, host[n];
    cudaStream_t s;
    cr_assert_eq(cudaStreamCreate(&s), cudaSuccess);
    cr_assert_eq(cudaMallocHost(&pinned, n * sizeof(float)), cudaSuccess);
    cr_assert_eq(cudaMalloc(&d, n * sizeof(float)), cudaSuccess);
    for (int i = 0; i < n; ++i)
        host[i] = (float)i, pinned[i] = -1.0f;
    cr_assert_eq(cudaMemcpyAsync(d, host, sizeof host, cudaMemcpyHostToDevice, s), cudaSuccess);
    cr_assert_eq(cudaMemcpyAsync(pinned, d, sizeof host, cudaMemcpyDeviceToHost, s), cudaSuccess);
    cr_assert_eq(emu_queued_operations(), 2u);
    cr_assert_eq(pinned[5], -1.0f, "read before cudaStreamSynchronize: the copy has not run");
    cr_assert_eq(cudaStreamSynchronize(s), cudaSuccess);
    cr_assert_eq(emu_queued_operations(), 0u);
    cr_assert_eq(pinned[5], 5.0f);
    cudaFree(d);
    cudaFreeHost(pinned);
    cudaStreamDestroy(s);
}

/* A pinned source is read when the copy runs: changing it before the wait changes what arrives. A
 * pageable source is staged at the call, as CUDA stages it, so changing it afterwards does not. */
Test(emu_runtime, pinned_buffer_changed_while_its_copy_is_queued_changes_what_arrives)
{
    float *pinned = nullptr, *d = nullptr, pageable = 1.0f, back[2];
    cudaStream_t s;
    cr_assert_eq(cudaStreamCreate(&s), cudaSuccess);
    cr_assert_eq(cudaMallocHost(&pinned, sizeof(float)), cudaSuccess);
    cr_assert_eq(cudaMalloc(&d, 2 * sizeof(float)), cudaSuccess);
    *pinned = 1.0f;
    cr_assert_eq(cudaMemcpyAsync(d, pinned, sizeof(float), cudaMemcpyHostToDevice, s), cudaSuccess);
    cr_assert_eq(cudaMemcpyAsync(d + 1, &pageable, sizeof(float), cudaMemcpyHostToDevice, s), cudaSuccess);
    *pinned = 2.0f; /* the bug: the staging buffer is reused before the stream is synchronised */
    pageable = 2.0f;
    cr_assert_eq(cudaMemcpy(back, d, sizeof back, cudaMemcpyDeviceToHost), cudaSuccess, "waits for the queue");
    cr_assert_eq(back[0], 2.0f, "the pinned copy ran late and sent the new value");
    cr_assert_eq(back[1], 1.0f, "the pageable copy was staged at the call");
    cudaFree(d);
    cudaFreeHost(pinned);
    cudaStreamDestroy(s);
}

/* A kernel runs on the worker thread once the host waits; its fault is reported by the wait. */
Test(emu_runtime, kernels_run_when_the_host_waits_and_their_faults_are_reported_there)
{
    std::vector<float> a(64, 1.0f), c(64, 0.0f);
    const unsigned long before = emu_launch_count();
    cr_assert_eq(run_vector_add(a.data(), a.data(), c.data(), 64, 1, 64), cudaSuccess);
    cr_assert_eq(emu_launch_count(), before + 1);
    cr_assert_eq(c[63], 2.0f);
    cr_assert_eq(run_barrier_after_early_exit(32), cudaErrorLaunchFailure, "the launch returns, the wait reports");
    cr_assert_eq(cudaStreamSynchronize(0), cudaErrorLaunchFailure, "and the fault is sticky");
}
