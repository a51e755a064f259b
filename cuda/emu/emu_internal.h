/* What the parts of the emulator share with each other; not for .cu files or tests. */
#ifndef CHARRNN_EMU_INTERNAL_H
#define CHARRNN_EMU_INTERNAL_H

#include "emu_kernel.h"

#include <functional>
#include <string>

namespace emu
{

/* ---- The emulated device: an H100 SXM (sm_90), whose limits the runtime enforces ---- */

constexpr int kComputeMajor = 9, kComputeMinor = 0;
constexpr int kMultiProcessors = 132;
constexpr int kMaxThreadsPerBlock = 1024;
constexpr int kMaxBlockDim[3] = {1024, 1024, 64};
constexpr int kMaxGridDim[3] = {2147483647, 65535, 65535};
constexpr int kMaxThreadsPerSM = 2048;
constexpr int kMaxBlocksPerSM = 32;
constexpr size_t kSharedPerBlockDefault = 48 * 1024; /* without cudaFuncSetAttribute */
constexpr size_t kSharedPerBlockOptin = 227 * 1024;  /* the most cudaFuncSetAttribute allows */
constexpr size_t kSharedPerSM = 228 * 1024;          /* shared memory of one SM */
constexpr size_t kSharedReservedPerBlock = 1024;     /* what the driver keeps per resident block */
constexpr size_t kTotalGlobalMem = 80ull << 30;      /* HBM3 of the 80 GB part */
constexpr int kRegsPerBlock = 65536;
constexpr int kL2CacheBytes = 50 * 1024 * 1024;
constexpr size_t kTotalConstMem = 64 * 1024;
constexpr int kMaxEmulatedDevices = 8; /* CHARRNN_EMU_DEVICES: an HGX node's GPUs */

/* ---- Scheduler (emu_scheduler.cpp) ---- */

/* Runs a validated launch to completion on the calling host thread. Returns cudaSuccess, or
 * cudaErrorLaunchFailure with a description of the fault in *fault. */
cudaError_t run_grid(const LaunchRequest &request, const std::function<void()> &body, std::string *fault);
bool inside_kernel();
void set_thread_order_reverse(bool reverse);

/* ---- Runtime (emu_runtime.cpp) ---- */

/* How many blocks of this shape one SM holds at once (threads, blocks and shared memory). */
int max_active_blocks_per_sm(int block_threads, size_t dynamic_shared_bytes);

/* Runs `op` now, or records it when `stream` is being captured. */
cudaError_t submit(cudaStream_t stream, std::function<cudaError_t()> op);
/* Whether [p, p + bytes) lies inside one live device allocation. */
bool is_device_range(const void *p, size_t bytes);
/* Records a device fault: it becomes the sticky error every later call returns. */
void set_device_fault(cudaError_t error, const std::string &what);
cudaError_t sticky_error();

} // namespace emu

#endif
