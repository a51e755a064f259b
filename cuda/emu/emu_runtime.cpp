/* The runtime API of the emulated device: device properties, tracked allocations, copies, streams,
 * events, stream capture and graphs, launch validation and CUDA's error reporting (a per-thread
 * last error, and a sticky error after a device fault that every later call returns until
 * cudaDeviceReset). Device memory is host memory from posix_memalign, allocated to the exact size
 * so AddressSanitizer reports accesses past its end, and filled with 0xFF bytes (NaN floats) so
 * that reading memory nobody wrote shows up in results. Of its 80 GiB, no more is free than the host
 * has available. */
#include "emu_internal.h"
#include "emu_report.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <unistd.h>
#include <unordered_map>
#include <vector>

/* A node of a captured graph: what it is, and the work it replays. */
struct CUgraphNode_st {
    cudaGraphNodeType type;
    bool cooperative; /* a kernel node's cudaLaunchAttributeCooperative */
    std::function<cudaError_t()> op;
};

/* Handles are pointers to these; the runtime keeps the set of live ones to reject stale handles. */
struct CUstream_st {
    unsigned flags;
    bool capturing;
    bool capture_invalidated;
    std::vector<std::unique_ptr<CUgraphNode_st>> captured;
};
struct CUevent_st {
    unsigned flags;
    bool recorded;
    std::chrono::steady_clock::time_point when;
};
struct CUgraph_st {
    std::vector<std::unique_ptr<CUgraphNode_st>> nodes;
};
struct CUgraphExec_st {
    std::vector<std::function<cudaError_t()>> ops;
};

namespace
{

/* ---- Types ---- */

constexpr size_t kDeviceAlign = 256;          /* cudaMalloc's alignment guarantee */
constexpr unsigned char kMemoryPoison = 0xFF; /* fresh device memory: NaN floats, -1 ints */

struct Allocation {
    size_t bytes;
    bool pinned_host; /* cudaMallocHost: host memory, not a valid device side of a copy */
    unsigned long serial;
};

struct Device {
    std::mutex mutex;
    std::map<uintptr_t, Allocation> allocations;
    size_t live_bytes = 0;
    unsigned long next_serial = 1;
    std::set<CUstream_st *> streams;
    std::set<CUevent_st *> events;
    std::set<CUgraph_st *> graphs;
    std::set<CUgraphExec_st *> execs;
    std::unordered_map<const void *, int> max_dynamic_shared;
    cudaError_t sticky = cudaSuccess;
    std::string fault;
};

Device &device()
{
    static Device d;
    return d;
}
thread_local cudaError_t last_error = cudaSuccess;
std::atomic<unsigned long> launches{0}, cooperative_launches{0};

/* ---- The device's worker thread ---- */

/* Runs queued work: the host hands over everything queued so far when it waits (flush) and blocks
 * until the worker has run it. Work therefore runs as late as a GPU may run it, so that a host read
 * before the wait, or a host buffer changed while its copy is queued, gives a wrong answer every time
 * rather than now and then. One queue for all streams: work runs in submission order. */
class Worker
{
  public:
    void run(std::vector<std::function<cudaError_t()>> &ops)
    {
        std::unique_lock<std::mutex> lock(mutex_);
        start();
        batch_ = &ops;
        wake_.notify_one();
        done_.wait(lock, [this] { return batch_ == nullptr; });
    }
    bool on_worker() const { return started_ && std::this_thread::get_id() == id_; }

  private:
    /* Started on first use and never stopped (the process exits with it waiting). A child of fork()
     * has no worker thread: it starts its own. */
    void start()
    {
        if (started_ && pid_ == getpid())
            return;
        pid_ = getpid();
        std::thread t([this] { loop(); });
        id_ = t.get_id();
        t.detach();
        started_ = true;
    }
    void loop()
    {
        std::unique_lock<std::mutex> lock(mutex_);
        for (;;) {
            wake_.wait(lock, [this] { return batch_ != nullptr; });
            lock.unlock();
            for (auto &op : *batch_) {
                cudaError_t e = op();
                if (e != cudaSuccess)
                    emu::set_device_fault(e, std::string("queued work failed: ") + cudaGetErrorString(e));
            }
            lock.lock();
            batch_ = nullptr;
            done_.notify_one();
        }
    }
    std::mutex mutex_;
    std::condition_variable wake_, done_;
    std::vector<std::function<cudaError_t()>> *batch_ = nullptr;
    bool started_ = false;
    pid_t pid_ = 0;
    std::thread::id id_;
};

struct Queue {
    std::mutex mutex;
    std::vector<std::function<cudaError_t()>> pending;
    Worker *worker = new Worker(); /* never destroyed: its thread may still wait at exit */
};

Queue &queue()
{
    static Queue q;
    return q;
}

/* Runs everything queued so far and returns when it is done (every wait of the runtime API). */
void flush()
{
    Queue &q = queue();
    std::vector<std::function<cudaError_t()>> ops;
    {
        std::lock_guard<std::mutex> lock(q.mutex);
        ops.swap(q.pending);
    }
    if (ops.empty())
        return;
    if (q.worker->on_worker()) { /* a wait from queued work itself: run it here */
        for (auto &op : ops)
            op();
        return;
    }
    q.worker->run(ops);
}

/* Drops queued work that has not run (cudaDeviceReset). */
void discard_queued()
{
    std::lock_guard<std::mutex> lock(queue().mutex);
    queue().pending.clear();
}

/* ---- Helpers ---- */

/* Every API call returns through here, as CUDA records each failure as the thread's last error. */
cudaError_t finish(cudaError_t e)
{
    if (e != cudaSuccess)
        last_error = e;
    return e;
}

/* The allocation that holds [p, p + bytes), or null. Caller holds the mutex. */
const Allocation *find_allocation(const void *p, size_t bytes)
{
    auto &allocs = device().allocations;
    auto it = allocs.upper_bound((uintptr_t)p);
    if (it == allocs.begin())
        return nullptr;
    --it;
    const uintptr_t offset = (uintptr_t)p - it->first;
    if (offset >= it->second.bytes || bytes > it->second.bytes - offset)
        return nullptr;
    return &it->second;
}

bool on_device(const void *p, size_t bytes)
{
    std::lock_guard<std::mutex> lock(device().mutex);
    const Allocation *a = find_allocation(p, bytes);
    return a && !a->pinned_host;
}

/* Whether [p, p + bytes) lies inside one allocation: device memory or cudaMallocHost memory. */
bool tracked(const void *p, size_t bytes)
{
    std::lock_guard<std::mutex> lock(device().mutex);
    return find_allocation(p, bytes) != nullptr;
}

/* Default streams are null here; a created stream must still be live. */
cudaError_t resolve_stream(cudaStream_t s, CUstream_st **out)
{
    *out = nullptr;
    if (s == nullptr || s == cudaStreamLegacy || s == cudaStreamPerThread)
        return cudaSuccess;
    std::lock_guard<std::mutex> lock(device().mutex);
    if (!device().streams.count(s))
        return cudaErrorInvalidResourceHandle;
    *out = s;
    return cudaSuccess;
}

/* Deletes a live handle of one kind; a handle that is not live is an error. */
template <class T> cudaError_t destroy_handle(std::set<T *> &live, T *handle)
{
    std::lock_guard<std::mutex> lock(device().mutex);
    if (!live.erase(handle))
        return cudaErrorInvalidResourceHandle;
    delete handle;
    return cudaSuccess;
}

template <class T> void destroy_all(std::set<T *> &live)
{
    for (T *handle : live)
        delete handle;
    live.clear();
}

bool live_event(cudaEvent_t e)
{
    std::lock_guard<std::mutex> lock(device().mutex);
    return e && device().events.count(e);
}

/* The created stream `s` if it is being captured, else null. */
CUstream_st *capturing_stream(cudaStream_t s)
{
    CUstream_st *st = nullptr;
    return resolve_stream(s, &st) == cudaSuccess && st && st->capturing ? st : nullptr;
}

/* A failed call on a capturing stream invalidates the capture, as in CUDA. */
cudaError_t fail_in_capture(cudaStream_t s, cudaError_t e)
{
    if (CUstream_st *st = capturing_stream(s))
        st->capture_invalidated = true;
    return e;
}

cudaError_t check_copy(void *dst, const void *src, size_t count, cudaMemcpyKind kind)
{
    if (!dst || !src)
        return cudaErrorInvalidValue;
    switch (kind) {
    case cudaMemcpyHostToHost:
    case cudaMemcpyDefault:
        return cudaSuccess;
    case cudaMemcpyHostToDevice:
        return on_device(dst, count) && !on_device(src, 1) ? cudaSuccess : cudaErrorInvalidValue;
    case cudaMemcpyDeviceToHost:
        return on_device(src, count) && !on_device(dst, 1) ? cudaSuccess : cudaErrorInvalidValue;
    case cudaMemcpyDeviceToDevice:
        return on_device(src, count) && on_device(dst, count) ? cudaSuccess : cudaErrorInvalidValue;
    }
    return cudaErrorInvalidMemcpyDirection;
}

/* A captured copy runs at every graph launch, long after the call, so the emulator wants its host
 * side to be a cudaMallocHost buffer (CUDA does not document capturing pageable copies; see
 * README): both sides must lie inside allocations the runtime tracks. */
cudaError_t check_captured_copy(void *dst, const void *src, size_t count)
{
    return tracked(dst, count) && tracked(src, count) ? cudaSuccess : cudaErrorStreamCaptureUnsupported;
}

cudaError_t validate_launch(const emu::LaunchRequest &r)
{
    const unsigned block[3] = {r.block.x, r.block.y, r.block.z}, grid[3] = {r.grid.x, r.grid.y, r.grid.z};
    for (int d = 0; d < 3; ++d) {
        if (block[d] == 0 || block[d] > (unsigned)emu::kMaxBlockDim[d])
            return cudaErrorInvalidConfiguration;
        if (grid[d] == 0 || grid[d] > (unsigned)emu::kMaxGridDim[d])
            return cudaErrorInvalidConfiguration;
    }
    const size_t threads = (size_t)block[0] * block[1] * block[2];
    if (threads > (size_t)emu::kMaxThreadsPerBlock)
        return cudaErrorInvalidConfiguration;
    size_t shared_limit = emu::kSharedPerBlockDefault;
    {
        std::lock_guard<std::mutex> lock(device().mutex);
        auto it = device().max_dynamic_shared.find(r.func);
        if (it != device().max_dynamic_shared.end())
            shared_limit = (size_t)it->second;
    }
    /* Drivers reject a launch above the function's dynamic shared memory limit as an invalid argument. */
    const emu::KernelResources k = emu::kernel_resources(r.func);
    if (r.shared_bytes > shared_limit || r.shared_bytes + k.static_shared > emu::kSharedPerBlockOptin)
        return cudaErrorInvalidValue;
    /* A block needs all its registers at once: more than an SM's 64 K is refused before it runs. */
    const size_t warps = (threads + warpSize - 1) / warpSize;
    const size_t regs_per_warp =
        ((size_t)k.registers * warpSize + emu::kRegisterUnit - 1) / emu::kRegisterUnit * emu::kRegisterUnit;
    if (warps * regs_per_warp > (size_t)emu::kRegsPerBlock)
        return cudaErrorLaunchOutOfResources;
    CUstream_st *st;
    if (resolve_stream(r.stream, &st) != cudaSuccess)
        return cudaErrorInvalidResourceHandle;
    if (r.cooperative) {
        size_t resident =
            (size_t)emu::max_active_blocks_per_sm(k, (int)threads, r.shared_bytes) * emu::kMultiProcessors;
        if ((size_t)grid[0] * grid[1] * grid[2] > resident)
            return cudaErrorCooperativeLaunchTooLarge;
    }
    return cudaSuccess;
}

cudaError_t execute_launch(const emu::LaunchRequest &r, const std::function<void()> &body)
{
    if (emu::sticky_error() != cudaSuccess)
        return emu::sticky_error();
    launches++;
    if (r.cooperative)
        cooperative_launches++;
    std::string fault;
    cudaError_t e = emu::run_grid(r, body, &fault);
    if (e == cudaErrorLaunchFailure)
        emu::set_device_fault(e, fault);
    return e;
}

struct ErrorInfo {
    cudaError_t code;
    const char *name, *text;
};
const ErrorInfo kErrors[] = {
    {cudaSuccess, "cudaSuccess", "no error"},
    {cudaErrorInvalidValue, "cudaErrorInvalidValue", "invalid argument"},
    {cudaErrorMemoryAllocation, "cudaErrorMemoryAllocation", "out of memory"},
    {cudaErrorInvalidConfiguration, "cudaErrorInvalidConfiguration", "invalid configuration argument"},
    {cudaErrorInvalidDevicePointer, "cudaErrorInvalidDevicePointer", "invalid device pointer"},
    {cudaErrorInvalidMemcpyDirection, "cudaErrorInvalidMemcpyDirection", "invalid copy direction for memcpy"},
    {cudaErrorInsufficientDriver, "cudaErrorInsufficientDriver",
     "CUDA driver version is insufficient for CUDA runtime version"},
    {cudaErrorInvalidDeviceFunction, "cudaErrorInvalidDeviceFunction", "invalid device function"},
    {cudaErrorNoDevice, "cudaErrorNoDevice", "no CUDA-capable device is detected"},
    {cudaErrorInvalidDevice, "cudaErrorInvalidDevice", "invalid device ordinal"},
    {cudaErrorInvalidResourceHandle, "cudaErrorInvalidResourceHandle", "invalid resource handle"},
    {cudaErrorIllegalState, "cudaErrorIllegalState", "the operation cannot be performed in the present state"},
    {cudaErrorNotReady, "cudaErrorNotReady", "device not ready"},
    {cudaErrorIllegalAddress, "cudaErrorIllegalAddress", "an illegal memory access was encountered"},
    {cudaErrorLaunchOutOfResources, "cudaErrorLaunchOutOfResources", "too many resources requested for launch"},
    {cudaErrorAssert, "cudaErrorAssert", "device-side assert triggered"},
    {cudaErrorLaunchFailure, "cudaErrorLaunchFailure", "unspecified launch failure"},
    {cudaErrorCooperativeLaunchTooLarge, "cudaErrorCooperativeLaunchTooLarge", "too many blocks in cooperative launch"},
    {cudaErrorNotSupported, "cudaErrorNotSupported", "operation not supported"},
    {cudaErrorStreamCaptureUnsupported, "cudaErrorStreamCaptureUnsupported",
     "operation not permitted when stream is capturing"},
    {cudaErrorStreamCaptureInvalidated, "cudaErrorStreamCaptureInvalidated",
     "operation failed due to a previous error during capture"},
};

const ErrorInfo *error_info(cudaError_t e)
{
    for (const ErrorInfo &info : kErrors)
        if (info.code == e)
            return &info;
    return nullptr;
}

/* The device's memory is the host's: what the kernel counts as available (MemAvailable in
 * /proc/meminfo), or, where that cannot be read, the free physical pages. */
size_t host_memory_available()
{
    size_t kib = 0;
    if (FILE *f = fopen("/proc/meminfo", "r")) {
        char line[256];
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "MemAvailable: %zu kB", &kib) == 1)
                break;
        fclose(f);
    }
    if (kib > 0)
        return kib << 10;
    long pages = sysconf(_SC_AVPHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    return pages > 0 && page > 0 ? (size_t)pages * (size_t)page : 0;
}

/* What a cudaMalloc may take now: the device's memory less what is allocated, and no more than the
 * host has available, so that an allocation the host cannot hold fails as cudaMalloc does instead of
 * meeting the host's out-of-memory killer when its pages are poisoned. */
size_t device_free_bytes(size_t live_bytes)
{
    return std::min(emu::kTotalGlobalMem - live_bytes, host_memory_available());
}

} // namespace

/* ---- Shared with the scheduler and cuBLAS ---- */

namespace emu
{

cudaError_t submit(cudaStream_t stream, std::function<cudaError_t()> op, cudaGraphNodeType type, bool cooperative)
{
    CUstream_st *st;
    cudaError_t e = resolve_stream(stream, &st);
    if (e != cudaSuccess)
        return e;
    if (st && st->capturing) {
        st->captured.emplace_back(new CUgraphNode_st{type, cooperative, std::move(op)});
        return cudaSuccess;
    }
    std::lock_guard<std::mutex> lock(queue().mutex);
    queue().pending.push_back(std::move(op));
    return cudaSuccess;
}

void wait_for_queued_work()
{
    flush();
}

size_t queued_work()
{
    std::lock_guard<std::mutex> lock(queue().mutex);
    return queue().pending.size();
}

bool is_device_range(const void *p, size_t bytes)
{
    return on_device(p, bytes);
}

void set_device_fault(cudaError_t error, const std::string &what)
{
    std::lock_guard<std::mutex> lock(device().mutex);
    if (device().sticky == cudaSuccess) {
        device().sticky = error;
        device().fault = what;
    }
    last_error = error;
}

cudaError_t sticky_error()
{
    std::lock_guard<std::mutex> lock(device().mutex);
    return device().sticky;
}

cudaError_t launch(const LaunchRequest &request, std::function<void()> body)
{
    if (inside_kernel())
        return finish(cudaErrorNotSupported);
    if (sticky_error() != cudaSuccess)
        return finish(sticky_error());
    cudaError_t e = validate_launch(request);
    if (e != cudaSuccess)
        return finish(fail_in_capture(request.stream, e));
    LaunchRequest r = request;
    /* A graph node is cooperative only through the launch attribute, which CUDA documents for graph
     * nodes. CHARRNN_EMU_DROP_COOPERATIVE=1 drops it from every captured node, as a driver might, so
     * that a caller's check of the captured graph can be tested. */
    if (capturing_stream(request.stream) && r.cooperative) {
        const char *drop = getenv("CHARRNN_EMU_DROP_COOPERATIVE");
        if (!r.cooperative_attribute || (drop && strcmp(drop, "1") == 0))
            r.cooperative = false;
    }
    return finish(submit(
        request.stream, [r, body]() { return execute_launch(r, body); }, cudaGraphNodeTypeKernel, r.cooperative));
}

cudaError_t launch_with_config(const cudaLaunchConfig_t *config, const void *func, const char *name,
                               std::function<void()> body)
{
    if (!config || (config->numAttrs && !config->attrs))
        return finish(cudaErrorInvalidValue);
    bool cooperative = false;
    for (unsigned i = 0; i < config->numAttrs; ++i) {
        if (config->attrs[i].id == cudaLaunchAttributeCooperative)
            cooperative = config->attrs[i].val.cooperative != 0;
        else if (config->attrs[i].id != cudaLaunchAttributeIgnore)
            return finish(cudaErrorInvalidValue);
    }
    const LaunchRequest request{
        func, name, config_grid(config), config_block(config), config->dynamicSmemBytes, config->stream, cooperative,
        cooperative};
    return launch(request, std::move(body));
}

cudaError_t set_function_attribute(const void *func, cudaFuncAttribute attr, int value)
{
    if (!func)
        return finish(cudaErrorInvalidDeviceFunction);
    if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize || value < 0 || (size_t)value > kSharedPerBlockOptin)
        return finish(cudaErrorInvalidValue);
    std::lock_guard<std::mutex> lock(device().mutex);
    device().max_dynamic_shared[func] = value;
    return cudaSuccess;
}

cudaError_t max_active_blocks(int *num_blocks, const void *func, int block_size, size_t dynamic_shared_bytes)
{
    if (!num_blocks || block_size <= 0 || block_size > kMaxThreadsPerBlock)
        return finish(cudaErrorInvalidValue);
    if (!func)
        return finish(cudaErrorInvalidDeviceFunction);
    *num_blocks = max_active_blocks_per_sm(kernel_resources(func), block_size, dynamic_shared_bytes);
    return cudaSuccess;
}

/* As the CUDA occupancy calculator counts for compute capability 9.0: threads in whole warps, at most
 * 32 blocks, shared memory (static, dynamic and the 1 KiB the driver keeps per block), and registers,
 * allocated per warp in units of 256. */
int max_active_blocks_per_sm(const KernelResources &k, int block_threads, size_t dynamic_shared_bytes)
{
    const int warps = (block_threads + warpSize - 1) / warpSize;
    const int by_threads = kMaxThreadsPerSM / (warps * warpSize);
    const size_t by_shared = kSharedPerSM / (dynamic_shared_bytes + k.static_shared + kSharedReservedPerBlock);
    const int regs_per_warp = (k.registers * warpSize + kRegisterUnit - 1) / kRegisterUnit * kRegisterUnit;
    const int by_registers = kRegsPerSM / regs_per_warp / warps;
    return (int)std::min<size_t>(std::min<size_t>(std::min(kMaxBlocksPerSM, by_threads), by_shared),
                                 (size_t)by_registers);
}

cudaError_t function_attributes(cudaFuncAttributes *a, const void *func)
{
    if (!a)
        return finish(cudaErrorInvalidValue);
    if (!func)
        return finish(cudaErrorInvalidDeviceFunction);
    const KernelResources k = kernel_resources(func);
    *a = cudaFuncAttributes();
    a->sharedSizeBytes = k.static_shared;
    a->localSizeBytes = k.stack;
    a->numRegs = k.registers;
    const int regs_per_warp = (k.registers * warpSize + kRegisterUnit - 1) / kRegisterUnit * kRegisterUnit;
    a->maxThreadsPerBlock = std::min(kMaxThreadsPerBlock, kRegsPerBlock / regs_per_warp * warpSize);
    a->ptxVersion = a->binaryVersion = kComputeMajor * 10 + kComputeMinor;
    std::lock_guard<std::mutex> lock(device().mutex);
    auto it = device().max_dynamic_shared.find(func);
    a->maxDynamicSharedSizeBytes = it != device().max_dynamic_shared.end()
                                       ? it->second
                                       : (int)(kSharedPerBlockDefault - std::min(k.static_shared, kSharedPerBlockDefault));
    return cudaSuccess;
}

} // namespace emu

/* ---- Device and errors ---- */

/* One emulated device, or CHARRNN_EMU_DEVICES of them (1 to kMaxEmulatedDevices), so that the ranks of a
 * data-parallel run on one machine each take a device of their own. They are one and the same device
 * underneath: the process that runs the emulator is the GPU. */
static int emulated_devices()
{
    static const int count = [] {
        const char *v = std::getenv("CHARRNN_EMU_DEVICES");
        const int n = v && *v ? std::atoi(v) : 1;
        return n >= 1 && n <= emu::kMaxEmulatedDevices ? n : 1;
    }();
    return count;
}
static std::atomic<int> current_device{0};

cudaError_t cudaGetDeviceCount(int *count)
{
    if (!count)
        return finish(cudaErrorInvalidValue);
    *count = emulated_devices();
    return cudaSuccess;
}

static const int EMULATED_CUDA_VERSION = 13000; /* CUDA 13.0, the toolkit the project builds with */

cudaError_t cudaRuntimeGetVersion(int *version)
{
    if (!version)
        return finish(cudaErrorInvalidValue);
    *version = EMULATED_CUDA_VERSION;
    return cudaSuccess;
}

cudaError_t cudaDriverGetVersion(int *version) { return cudaRuntimeGetVersion(version); }

cudaError_t cudaGetDevice(int *dev)
{
    if (!dev)
        return finish(cudaErrorInvalidValue);
    *dev = current_device;
    return cudaSuccess;
}

cudaError_t cudaSetDevice(int dev)
{
    if (dev < 0 || dev >= emulated_devices())
        return finish(cudaErrorInvalidDevice);
    current_device = dev;
    return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int dev)
{
    if (!p)
        return finish(cudaErrorInvalidValue);
    if (dev < 0 || dev >= emulated_devices())
        return finish(cudaErrorInvalidDevice);
    *p = cudaDeviceProp();
    snprintf(p->name, sizeof p->name, "charrnn emulated CUDA device (sm_90 limits, runs on the CPU)");
    p->totalGlobalMem = emu::kTotalGlobalMem;
    p->sharedMemPerBlock = emu::kSharedPerBlockDefault;
    p->regsPerBlock = emu::kRegsPerBlock;
    p->warpSize = warpSize;
    p->maxThreadsPerBlock = emu::kMaxThreadsPerBlock;
    for (int d = 0; d < 3; ++d) {
        p->maxThreadsDim[d] = emu::kMaxBlockDim[d];
        p->maxGridSize[d] = emu::kMaxGridDim[d];
    }
    p->totalConstMem = emu::kTotalConstMem;
    p->major = emu::kComputeMajor;
    p->minor = emu::kComputeMinor;
    p->multiProcessorCount = emu::kMultiProcessors;
    p->concurrentKernels = 1;
    p->asyncEngineCount = 2;
    p->unifiedAddressing = 1;
    p->l2CacheSize = emu::kL2CacheBytes;
    p->maxThreadsPerMultiProcessor = emu::kMaxThreadsPerSM;
    p->sharedMemPerMultiprocessor = emu::kSharedPerSM;
    p->regsPerMultiprocessor = emu::kRegsPerBlock;
    p->cooperativeLaunch = 1;
    p->sharedMemPerBlockOptin = emu::kSharedPerBlockOptin;
    p->maxBlocksPerMultiProcessor = emu::kMaxBlocksPerSM;
    p->reservedSharedMemPerBlock = emu::kSharedReservedPerBlock;
    return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int *value, cudaDeviceAttr attr, int dev)
{
    cudaDeviceProp p;
    if (!value)
        return finish(cudaErrorInvalidValue);
    cudaError_t e = cudaGetDeviceProperties(&p, dev);
    if (e != cudaSuccess)
        return e;
    const struct {
        cudaDeviceAttr attr;
        int value;
    } attributes[] = {
        {cudaDevAttrMaxThreadsPerBlock, p.maxThreadsPerBlock},
        {cudaDevAttrMaxSharedMemoryPerBlock, (int)p.sharedMemPerBlock},
        {cudaDevAttrWarpSize, p.warpSize},
        {cudaDevAttrMultiProcessorCount, p.multiProcessorCount},
        {cudaDevAttrMaxThreadsPerMultiProcessor, p.maxThreadsPerMultiProcessor},
        {cudaDevAttrComputeCapabilityMajor, p.major},
        {cudaDevAttrComputeCapabilityMinor, p.minor},
        {cudaDevAttrMaxSharedMemoryPerMultiprocessor, (int)p.sharedMemPerMultiprocessor},
        {cudaDevAttrCooperativeLaunch, p.cooperativeLaunch},
        {cudaDevAttrMaxSharedMemoryPerBlockOptin, (int)p.sharedMemPerBlockOptin},
        {cudaDevAttrMaxBlocksPerMultiprocessor, p.maxBlocksPerMultiProcessor},
    };
    for (const auto &a : attributes)
        if (a.attr == attr) {
            *value = a.value;
            return cudaSuccess;
        }
    return finish(cudaErrorInvalidValue);
}

cudaError_t cudaDeviceSynchronize(void)
{
    flush();
    return finish(emu::sticky_error());
}

cudaError_t cudaDeviceReset(void)
{
    discard_queued();
    Device &d = device();
    std::lock_guard<std::mutex> lock(d.mutex);
    for (auto &a : d.allocations)
        free((void *)a.first);
    d.allocations.clear();
    d.live_bytes = 0;
    destroy_all(d.streams);
    destroy_all(d.events);
    destroy_all(d.graphs);
    destroy_all(d.execs);
    d.max_dynamic_shared.clear();
    d.sticky = cudaSuccess;
    d.fault.clear();
    last_error = cudaSuccess;
    return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes)
{
    if (!free_bytes || !total_bytes)
        return finish(cudaErrorInvalidValue);
    std::lock_guard<std::mutex> lock(device().mutex);
    *total_bytes = emu::kTotalGlobalMem;
    *free_bytes = device_free_bytes(device().live_bytes);
    return cudaSuccess;
}

cudaError_t cudaGetLastError(void)
{
    cudaError_t e = last_error;
    last_error = cudaSuccess;
    return e != cudaSuccess ? e : emu::sticky_error();
}

cudaError_t cudaPeekAtLastError(void)
{
    return last_error != cudaSuccess ? last_error : emu::sticky_error();
}

const char *cudaGetErrorString(cudaError_t e)
{
    const ErrorInfo *info = error_info(e);
    return info ? info->text : "unrecognized error code";
}

const char *cudaGetErrorName(cudaError_t e)
{
    const ErrorInfo *info = error_info(e);
    return info ? info->name : "unrecognized error code";
}

/* ---- Memory ---- */

static cudaError_t allocate(void **ptr, size_t size, bool pinned_host)
{
    if (!ptr)
        return finish(cudaErrorInvalidValue);
    if (emu::sticky_error() != cudaSuccess)
        return finish(emu::sticky_error());
    if (size == 0) {
        *ptr = nullptr;
        return cudaSuccess;
    }
    Device &d = device();
    std::lock_guard<std::mutex> lock(d.mutex);
    void *p = nullptr;
    if (size > device_free_bytes(d.live_bytes) || posix_memalign(&p, kDeviceAlign, size) != 0)
        return finish(cudaErrorMemoryAllocation);
    if (!pinned_host)
        memset(p, kMemoryPoison, size);
    d.allocations[(uintptr_t)p] = Allocation{size, pinned_host, d.next_serial++};
    d.live_bytes += size;
    *ptr = p;
    return cudaSuccess;
}

/* Waits for the queued work first, as cudaFree does: the work may still use the memory. */
static cudaError_t release(void *ptr, bool pinned_host)
{
    if (!ptr)
        return cudaSuccess;
    flush();
    if (emu::sticky_error() != cudaSuccess)
        return finish(emu::sticky_error());
    Device &d = device();
    std::lock_guard<std::mutex> lock(d.mutex);
    auto it = d.allocations.find((uintptr_t)ptr);
    if (it == d.allocations.end() || it->second.pinned_host != pinned_host)
        return finish(cudaErrorInvalidValue);
    d.live_bytes -= it->second.bytes;
    d.allocations.erase(it);
    free(ptr);
    return cudaSuccess;
}

cudaError_t cudaMalloc(void **dev_ptr, size_t size)
{
    return allocate(dev_ptr, size, false);
}
cudaError_t cudaFree(void *dev_ptr)
{
    return release(dev_ptr, false);
}
cudaError_t cudaMallocHost(void **ptr, size_t size)
{
    return allocate(ptr, size, true);
}
cudaError_t cudaFreeHost(void *ptr)
{
    return release(ptr, true);
}

/* How a copy runs, as the CUDA runtime documents its synchronisation: one between device memory and
 * pinned host memory, or within the device, is queued; one from pageable memory takes the source at
 * the call (it is staged) and queues the rest; one into pageable memory, or between two host buffers,
 * waits for the queued work and copies before returning. cudaMemcpy waits for everything but a copy
 * within the device. */
static cudaError_t copy(void *dst, const void *src, size_t count, cudaMemcpyKind kind, cudaStream_t stream,
                        bool wait_for_host)
{
    if (emu::sticky_error() != cudaSuccess)
        return finish(emu::sticky_error());
    if (count == 0)
        return cudaSuccess;
    cudaError_t e = check_copy(dst, src, count, kind);
    const bool capturing = capturing_stream(stream) != nullptr;
    if (e == cudaSuccess && capturing)
        e = check_captured_copy(dst, src, count);
    if (e != cudaSuccess)
        return finish(fail_in_capture(stream, e));
    auto copy_now = [dst, src, count]() {
        memcpy(dst, src, count);
        return cudaSuccess;
    };
    if (capturing)
        return finish(emu::submit(stream, copy_now, cudaGraphNodeTypeMemcpy));
    const bool from_device = on_device(src, count), to_device = on_device(dst, count);
    const bool host_side_pinned = from_device ? tracked(dst, count) : tracked(src, count);
    if (!to_device && (!from_device || !host_side_pinned || wait_for_host)) {
        flush(); /* into host memory that the caller may read at once */
        if (emu::sticky_error() != cudaSuccess)
            return finish(emu::sticky_error());
        memcpy(dst, src, count);
        return cudaSuccess;
    }
    if (!from_device && (!host_side_pinned || wait_for_host)) {
        std::shared_ptr<std::vector<char>> staged(new std::vector<char>((const char *)src, (const char *)src + count));
        e = emu::submit(
            stream,
            [dst, staged]() {
                memcpy(dst, staged->data(), staged->size());
                return cudaSuccess;
            },
            cudaGraphNodeTypeMemcpy);
        if (e == cudaSuccess && wait_for_host)
            flush();
        return finish(e);
    }
    return finish(emu::submit(stream, copy_now, cudaGraphNodeTypeMemcpy));
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t count, cudaMemcpyKind kind, cudaStream_t stream)
{
    return copy(dst, src, count, kind, stream, false);
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t count, cudaMemcpyKind kind)
{
    return copy(dst, src, count, kind, 0, true);
}

cudaError_t cudaMemsetAsync(void *dev_ptr, int value, size_t count, cudaStream_t stream)
{
    if (emu::sticky_error() != cudaSuccess)
        return finish(emu::sticky_error());
    if (count == 0)
        return cudaSuccess;
    if (!on_device(dev_ptr, count))
        return finish(fail_in_capture(stream, cudaErrorInvalidValue));
    return finish(emu::submit(
        stream,
        [dev_ptr, value, count]() {
            memset(dev_ptr, value, count);
            return cudaSuccess;
        },
        cudaGraphNodeTypeMemset));
}

/* Asynchronous with respect to the host, as CUDA documents for device memory. */
cudaError_t cudaMemset(void *dev_ptr, int value, size_t count)
{
    return cudaMemsetAsync(dev_ptr, value, count, 0);
}

/* ---- Streams and events ---- */

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *stream, unsigned int flags)
{
    if (!stream || (flags & ~(unsigned)cudaStreamNonBlocking))
        return finish(cudaErrorInvalidValue);
    std::lock_guard<std::mutex> lock(device().mutex);
    *stream = new CUstream_st{flags, false, false, {}};
    device().streams.insert(*stream);
    return cudaSuccess;
}

cudaError_t cudaStreamCreate(cudaStream_t *stream)
{
    return cudaStreamCreateWithFlags(stream, cudaStreamDefault);
}

cudaError_t cudaStreamDestroy(cudaStream_t stream)
{
    return finish(destroy_handle(device().streams, stream));
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream)
{
    CUstream_st *st;
    cudaError_t e = resolve_stream(stream, &st);
    if (e != cudaSuccess)
        return finish(e);
    if (st && st->capturing)
        return finish(fail_in_capture(stream, cudaErrorStreamCaptureUnsupported));
    flush();
    return finish(emu::sticky_error());
}

cudaError_t cudaStreamQuery(cudaStream_t stream)
{
    return cudaStreamSynchronize(stream);
}

cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned int flags)
{
    CUstream_st *st;
    if (resolve_stream(stream, &st) != cudaSuccess || !live_event(event))
        return finish(cudaErrorInvalidResourceHandle);
    return finish(flags == 0 ? cudaSuccess : cudaErrorInvalidValue);
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t *event, unsigned int flags)
{
    if (!event || (flags & ~(unsigned)(cudaEventBlockingSync | cudaEventDisableTiming)))
        return finish(cudaErrorInvalidValue);
    std::lock_guard<std::mutex> lock(device().mutex);
    *event = new CUevent_st{flags, false, {}};
    device().events.insert(*event);
    return cudaSuccess;
}

cudaError_t cudaEventCreate(cudaEvent_t *event)
{
    return cudaEventCreateWithFlags(event, cudaEventDefault);
}

cudaError_t cudaEventDestroy(cudaEvent_t event)
{
    return finish(destroy_handle(device().events, event));
}

/* The time an event records is the host time at which the work before it finished. */
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream)
{
    if (!live_event(event))
        return finish(cudaErrorInvalidResourceHandle);
    return finish(emu::submit(
        stream,
        [event]() {
            if (live_event(event)) { /* it may have been destroyed while the record was queued */
                event->recorded = true;
                event->when = std::chrono::steady_clock::now();
            }
            return cudaSuccess;
        },
        cudaGraphNodeTypeEventRecord));
}

cudaError_t cudaEventSynchronize(cudaEvent_t event)
{
    if (!live_event(event))
        return finish(cudaErrorInvalidResourceHandle);
    flush();
    return finish(emu::sticky_error());
}

cudaError_t cudaEventQuery(cudaEvent_t event)
{
    return cudaEventSynchronize(event);
}

cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t end)
{
    if (!ms)
        return finish(cudaErrorInvalidValue);
    if (!live_event(start) || !live_event(end) || !start->recorded || !end->recorded ||
        ((start->flags | end->flags) & cudaEventDisableTiming))
        return finish(cudaErrorInvalidResourceHandle);
    *ms = std::chrono::duration<float, std::milli>(end->when - start->when).count();
    return cudaSuccess;
}

/* ---- Stream capture and graphs ---- */

cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode mode)
{
    CUstream_st *st;
    if (resolve_stream(stream, &st) != cudaSuccess)
        return finish(cudaErrorInvalidResourceHandle);
    if (!st)
        return finish(cudaErrorStreamCaptureUnsupported); /* the legacy default stream cannot be captured */
    if (st->capturing || (unsigned)mode > cudaStreamCaptureModeRelaxed)
        return finish(cudaErrorInvalidValue);
    st->capturing = true;
    st->capture_invalidated = false;
    st->captured.clear();
    return cudaSuccess;
}

cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t *graph)
{
    CUstream_st *st;
    if (!graph)
        return finish(cudaErrorInvalidValue);
    if (resolve_stream(stream, &st) != cudaSuccess)
        return finish(cudaErrorInvalidResourceHandle);
    if (!st || !st->capturing)
        return finish(cudaErrorIllegalState);
    st->capturing = false;
    *graph = nullptr;
    /* Fault injection, for tests of a caller's fallback: CHARRNN_EMU_REFUSE_CAPTURE=1 ends every
     * capture as one that a refused call invalidated. */
    const char *refuse = getenv("CHARRNN_EMU_REFUSE_CAPTURE");
    if (refuse && strcmp(refuse, "1") == 0)
        st->capture_invalidated = true;
    if (st->capture_invalidated) {
        st->captured.clear();
        return finish(cudaErrorStreamCaptureInvalidated);
    }
    std::lock_guard<std::mutex> lock(device().mutex);
    *graph = new CUgraph_st{std::move(st->captured)};
    st->captured.clear();
    device().graphs.insert(*graph);
    return cudaSuccess;
}

cudaError_t cudaStreamIsCapturing(cudaStream_t stream, cudaStreamCaptureStatus *status)
{
    CUstream_st *st;
    if (!status)
        return finish(cudaErrorInvalidValue);
    if (resolve_stream(stream, &st) != cudaSuccess)
        return finish(cudaErrorInvalidResourceHandle);
    *status = !st || !st->capturing     ? cudaStreamCaptureStatusNone
              : st->capture_invalidated ? cudaStreamCaptureStatusInvalidated
                                        : cudaStreamCaptureStatusActive;
    return cudaSuccess;
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t graph, unsigned long long flags)
{
    if (!exec || flags != 0)
        return finish(cudaErrorInvalidValue);
    std::lock_guard<std::mutex> lock(device().mutex);
    if (!device().graphs.count(graph))
        return finish(cudaErrorInvalidResourceHandle);
    *exec = new CUgraphExec_st{};
    for (const auto &node : graph->nodes)
        (*exec)->ops.push_back(node->op);
    device().execs.insert(*exec);
    return cudaSuccess;
}

/* The graph that holds `node`, or null. Caller holds the mutex. */
static const CUgraph_st *graph_of(cudaGraphNode_t node)
{
    for (const CUgraph_st *g : device().graphs)
        for (const auto &n : g->nodes)
            if (n.get() == node)
                return g;
    return nullptr;
}

cudaError_t cudaGraphGetNodes(cudaGraph_t graph, cudaGraphNode_t *nodes, size_t *count)
{
    if (!count)
        return finish(cudaErrorInvalidValue);
    std::lock_guard<std::mutex> lock(device().mutex);
    if (!device().graphs.count(graph))
        return finish(cudaErrorInvalidResourceHandle);
    if (!nodes) {
        *count = graph->nodes.size();
        return cudaSuccess;
    }
    size_t n = std::min(*count, graph->nodes.size());
    for (size_t i = 0; i < n; ++i)
        nodes[i] = graph->nodes[i].get();
    *count = n;
    return cudaSuccess;
}

cudaError_t cudaGraphNodeGetType(cudaGraphNode_t node, cudaGraphNodeType *type)
{
    if (!type)
        return finish(cudaErrorInvalidValue);
    std::lock_guard<std::mutex> lock(device().mutex);
    if (!graph_of(node))
        return finish(cudaErrorInvalidValue);
    *type = node->type;
    return cudaSuccess;
}

cudaError_t cudaGraphKernelNodeGetAttribute(cudaGraphNode_t node, cudaKernelNodeAttrID attr,
                                            cudaKernelNodeAttrValue *value)
{
    if (!value)
        return finish(cudaErrorInvalidValue);
    std::lock_guard<std::mutex> lock(device().mutex);
    if (!graph_of(node) || node->type != cudaGraphNodeTypeKernel || attr != cudaLaunchAttributeCooperative)
        return finish(cudaErrorInvalidValue);
    *value = cudaKernelNodeAttrValue();
    value->cooperative = node->cooperative ? 1 : 0;
    return cudaSuccess;
}

cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream)
{
    {
        std::lock_guard<std::mutex> lock(device().mutex);
        if (!device().execs.count(exec))
            return finish(cudaErrorInvalidResourceHandle);
    }
    if (emu::sticky_error() != cudaSuccess)
        return finish(emu::sticky_error());
    std::vector<std::function<cudaError_t()>> ops = exec->ops;
    return finish(emu::submit(
        stream,
        [ops]() {
            for (const auto &op : ops) {
                cudaError_t e = op();
                if (e != cudaSuccess)
                    return e;
            }
            return cudaSuccess;
        },
        cudaGraphNodeTypeKernel));
}

cudaError_t cudaGraphDestroy(cudaGraph_t graph)
{
    return finish(destroy_handle(device().graphs, graph));
}

cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec)
{
    return finish(destroy_handle(device().execs, exec));
}

/* ---- Emulator reports ---- */

size_t emu_live_allocations(void)
{
    std::lock_guard<std::mutex> lock(device().mutex);
    return device().allocations.size();
}

size_t emu_live_bytes(void)
{
    std::lock_guard<std::mutex> lock(device().mutex);
    return device().live_bytes;
}

size_t emu_report_leaks(FILE *out)
{
    std::lock_guard<std::mutex> lock(device().mutex);
    for (const auto &a : device().allocations)
        fprintf(out, "emulated device: %s allocation #%lu of %zu bytes at %p was never freed\n",
                a.second.pinned_host ? "pinned host" : "device", a.second.serial, a.second.bytes, (void *)a.first);
    return device().allocations.size();
}

const char *emu_last_fault(void)
{
    std::lock_guard<std::mutex> lock(device().mutex);
    return device().fault.c_str();
}

size_t emu_queued_operations(void)
{
    return emu::queued_work();
}

unsigned long emu_launch_count(void)
{
    return launches.load();
}
unsigned long emu_cooperative_launch_count(void)
{
    return cooperative_launches.load();
}
