/* What the parts of the emulator share with each other; not for .cu files or tests. */
#ifndef CHARRNN_EMU_INTERNAL_H
#define CHARRNN_EMU_INTERNAL_H

#include "emu_kernel.h"

#include <cstdint>
#include <functional>
#include <string>
#include <thread>
#include <vector>

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
constexpr int kRegsPerBlock = 65536; /* a block may use the whole register file of its SM */
constexpr int kRegsPerSM = 65536;
constexpr int kRegisterUnit = 256;        /* registers are allocated per warp in units of 256 */
constexpr int kMaxRegistersPerThread = 255;
constexpr int kL2CacheBytes = 50 * 1024 * 1024;
constexpr size_t kTotalConstMem = 64 * 1024;
constexpr int kMaxEmulatedDevices = 8; /* CHARRNN_EMU_DEVICES: an HGX node's GPUs */

/* ---- Kernel resources (emu_resources.cpp) ---- */

/* What the sm_90 build of a kernel uses, from the table generated from nvcc --resource-usage
 * (README.md); `known` is false for a kernel the table lacks, which is then given the conservative
 * figures: kMaxRegistersPerThread registers, no stack, no static shared memory. */
struct KernelResources {
    int registers;
    size_t stack, spill_stores, spill_loads, static_shared;
    bool known;
};
KernelResources kernel_resources(const void *func);

/* ---- Shared-memory race detector (emu_racecheck.cpp) ---- */

/* Whether blocks are checked: the detector is built in (emu.cmake) and switched on
 * (CHARRNN_EMU_RACECHECK=1 or emu_set_racecheck). */
bool racecheck_on();

/* Per block: who last wrote and who read each 4-byte word of its shared memory in the current interval
 * between barriers. The scheduler starts a block, starts an interval at each barrier the block passes,
 * and enters a thread before resuming its fiber (and leaves after); the instrumentation calls access. */
class RaceShadow
{
  public:
    void start_block(void *dynamic_shared, size_t bytes);
    void new_interval(const char *file, int line); /* the barrier at file:line released the block */
    void enter(unsigned thread);
    static void leave();
    void access(uintptr_t p, size_t bytes, bool write, void *pc);

  private:
    /* Per 4-byte word, who wrote and who read each of its bytes in the interval: a thread, -1 none, -2
     * several readers. Byte by byte, since two threads storing different bytes of one word do not race
     * on a GPU. */
    struct Word {
        uint32_t interval;
        int16_t writer[4], reader[4];
    };
    void check(std::vector<Word> &words, size_t offset, size_t bytes, bool write, const char *memory, void *pc);
    uintptr_t dynamic_begin_ = 0, dynamic_end_ = 0, tls_begin_ = 0, tls_end_ = 0;
    std::thread::id tls_owner_;
    std::vector<Word> dynamic_words_, tls_words_;
    uint32_t interval_ = 0;
    int32_t thread_ = 0;
    const char *file_ = nullptr;
    int line_ = 0;
};

/* ---- Scheduler (emu_scheduler.cpp) ---- */

/* For the race detector, from inside a kernel: the name "(x,y,z)" of a thread of the running block,
 * and ending the launch with a fault that names the running thread. */
std::string thread_name(unsigned linear);
[[noreturn]] void fail_running_thread(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Runs a validated launch to completion on the calling host thread. Returns cudaSuccess, or
 * cudaErrorLaunchFailure with a description of the fault in *fault. */
cudaError_t run_grid(const LaunchRequest &request, const std::function<void()> &body, std::string *fault);
bool inside_kernel();
void set_thread_order_reverse(bool reverse);

/* ---- Runtime (emu_runtime.cpp) ---- */

/* How many blocks of this kernel and shape one SM holds at once (threads, blocks, shared memory and
 * registers). */
int max_active_blocks_per_sm(const KernelResources &kernel, int block_threads, size_t dynamic_shared_bytes);

/* Queues `op` for the worker thread, or records it as a graph node of `type` when `stream` is being
 * captured. */
cudaError_t submit(cudaStream_t stream, std::function<cudaError_t()> op, cudaGraphNodeType type,
                   bool cooperative = false);
/* Runs the queued work and returns when it is done; how many operations are queued. */
void wait_for_queued_work();
size_t queued_work();
/* Whether [p, p + bytes) lies inside one live device allocation. */
bool is_device_range(const void *p, size_t bytes);
/* Records a device fault: it becomes the sticky error every later call returns. */
void set_device_fault(cudaError_t error, const std::string &what);
cudaError_t sticky_error();

} // namespace emu

#endif
