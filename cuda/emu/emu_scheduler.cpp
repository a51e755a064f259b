/* Runs kernels: every CUDA thread of a block is a fiber on the host thread that runs the block.
 * Fibers switch only at __syncthreads(), warp intrinsics, grid sync and exit, so between two such
 * points each thread runs alone, in thread order (or reverse order). A barrier releases only
 * when every thread of the block waits at it; a warp intrinsic completes only when every
 * non-exited lane of its mask has reached it. When no thread can run and neither can complete, the
 * kernel would hang on a GPU: the block is abandoned and the launch fails with a description.
 *
 * Blocks of an ordinary launch run one after another on the host thread that runs the launch. The
 * blocks of a cooperative launch must all be resident at once for grid.sync(), so each gets its own
 * host thread; one runs at a time, and they take turns interval by interval (each block runs until
 * its threads next meet at a barrier, then the next block, in block order or reverse), so that the
 * blocks' work between two grid syncs interleaves as on a GPU and a missing grid sync shows. One at a
 * time keeps atomics plain and the run deterministic. Static __shared__ variables are thread_local,
 * hence per block in both cases. With the race detector on, each block records its threads' shared
 * memory accesses per interval between barriers (emu_racecheck.cpp). */

/* Fibers switch stacks with siglongjmp; glibc's fortified longjmp would take that for a corrupt
 * stack, so fortification is off in this file (it must be undefined before any header). */
#ifdef _FORTIFY_SOURCE
#undef _FORTIFY_SOURCE
#endif

#include "emu_internal.h"
#include "emu_report.h"

#include <atomic>
#include <condition_variable>
#include <csetjmp>
#include <cstdarg>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <sys/mman.h>
#include <thread>
#include <ucontext.h>
#include <unistd.h>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#define EMU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define EMU_ASAN 1
#endif
#endif
#ifdef EMU_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

namespace emu
{

__thread uint3 current_thread_idx, current_block_idx;
__thread dim3 current_block_dim, current_grid_dim;

namespace
{

/* ---- Types ---- */

constexpr size_t kStackBytes = 128 * 1024; /* per emulated thread: kernels, printf and ASan frames fit */
constexpr size_t kCanaryBytes = 64;        /* pattern at the low end of a stack */
constexpr unsigned char kCanaryByte = 0xC5;
/* Checked at each switch: the top 16 bytes of the pattern, which a stack growing down into it
 * overwrites first (all 64 would cost more than the switch). */
constexpr size_t kCanaryChecked = 16;
constexpr uint64_t kCanaryWord = 0xC5C5C5C5C5C5C5C5ull;
constexpr unsigned char kSharedPoison = 0xFF; /* every float a NaN, every int -1: unwritten data shows */
constexpr size_t kSharedAlign = 16;           /* dynamic shared memory alignment, as nvcc's __align__(16) */
constexpr unsigned kWarpLanes = 32;
constexpr unsigned long long kShuffleUndefined = ~0ull; /* a shuffle from a lane that is not taking part */

enum class State { runnable, at_barrier, at_warp, at_grid, exited };
/* How a block's run ended: every thread exited; every live thread waits at grid sync; a barrier
 * released the block and it gave up its turn (interleaved cooperative blocks); a fault. */
enum class Outcome { done, parked_at_grid, yielded, fault };

/* A fiber is created once (makecontext, entered with setcontext) and then runs kernel bodies in a
 * loop, one per block it is given; switches save and restore registers with sigsetjmp/siglongjmp,
 * which unlike swapcontext make no system call. */
struct Fiber {
    ucontext_t context; /* the entry point, used once */
    sigjmp_buf env;     /* where the fiber continues when resumed */
    bool needs_start;   /* new, or abandoned in the middle of a kernel */
    char *stack;
    uint3 idx;
    unsigned linear;
    State state;
    const char *file; /* barrier site while at_barrier or at_grid */
    int line;
    WarpOpKind kind; /* warp operation while at_warp */
    unsigned mask;
    int lane_arg, width;
    unsigned long long value, result;
#ifdef EMU_ASAN
    void *fake_stack;
#endif
};

/* One block in execution, owned by the host thread that runs it. */
struct BlockRun {
    const LaunchRequest *request = nullptr;
    const std::function<void()> *body = nullptr;
    uint3 block_idx = {0, 0, 0};
    std::vector<Fiber> fibers;
    char *stacks = nullptr;
    size_t stack_count = 0;
    void *dynamic_shared = nullptr;
    sigjmp_buf host_env; /* where the scheduler continues when a fiber yields */
    Fiber *current = nullptr;
    std::string fault;
    bool stacks_dirty = false; /* fibers were abandoned on these stacks */
    bool checking = false;     /* the race detector watches this block */
    RaceShadow race;
#ifdef EMU_ASAN
    const void *host_stack_bottom = nullptr;
    size_t host_stack_size = 0;
#endif

    BlockRun() = default;
    BlockRun(const BlockRun &) = delete;
    BlockRun &operator=(const BlockRun &) = delete;
    ~BlockRun();

    void prepare(const LaunchRequest &r, const std::function<void()> &b, void *shared);
    void start_block(uint3 idx);
    Outcome run(bool one_interval);
    void release_grid();

    /* Out of line, so the registers sigsetjmp saves belong to these small frames alone. */
    __attribute__((noinline)) void resume(Fiber &f);
    __attribute__((noinline)) void yield(Fiber &f);
    [[noreturn]] void fail(Fiber &f, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
    void set_fault(const char *fmt, ...) __attribute__((format(printf, 2, 3)));
    std::string where(const Fiber &f) const;
    bool complete_warp_ops();
    void complete_warp_op(size_t first, unsigned participants, WarpOpKind kind);
    void describe_deadlock();
};

__thread BlockRun *current_run;
std::atomic<bool> reverse_order{std::getenv("CHARRNN_EMU_ORDER") &&
                                std::strcmp(std::getenv("CHARRNN_EMU_ORDER"), "reverse") == 0};

/* ---- Lifecycle ---- */

BlockRun::~BlockRun()
{
    if (stacks)
        munmap(stacks, stack_count * kStackBytes);
}

/* Sizes the fibers and stacks for the launch's block shape; stacks are kept for the next launch. */
void BlockRun::prepare(const LaunchRequest &r, const std::function<void()> &b, void *shared)
{
    request = &r;
    body = &b;
    dynamic_shared = shared;
    size_t threads = (size_t)r.block.x * r.block.y * r.block.z;
    if (threads > stack_count) {
        if (stacks)
            munmap(stacks, stack_count * kStackBytes);
        void *m = mmap(nullptr, threads * kStackBytes, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
        stacks = m == MAP_FAILED ? nullptr : static_cast<char *>(m);
        stack_count = stacks ? threads : 0;
        fibers.clear();
    }
    if (fibers.size() != threads && stacks) {
        fibers.assign(threads, Fiber());
        for (size_t i = 0; i < threads; ++i) {
            fibers[i].stack = stacks + i * kStackBytes;
            fibers[i].needs_start = true;
        }
    }
}

void fiber_main();

/* Points the fiber at the start of fiber_main on its own stack. Out of line because the compiler
 * treats getcontext like setjmp, which would make it distrust the caller's loop variables. */
__attribute__((noinline)) void make_entry(Fiber &f)
{
    std::memset(f.stack, kCanaryByte, kCanaryBytes);
    getcontext(&f.context);
    f.context.uc_stack.ss_sp = f.stack;
    f.context.uc_stack.ss_size = kStackBytes;
    f.context.uc_link = nullptr;
    makecontext(&f.context, fiber_main, 0);
    f.needs_start = true;
}

/* Starts every thread of block `idx` afresh at the kernel's entry. */
void BlockRun::start_block(uint3 idx)
{
    block_idx = idx;
    fault.clear();
#ifdef EMU_ASAN
    if (stacks_dirty)
        ASAN_UNPOISON_MEMORY_REGION(stacks, stack_count * kStackBytes);
#endif
    stacks_dirty = false;
    const dim3 bd = request->block;
    if (dynamic_shared)
        std::memset(dynamic_shared, kSharedPoison, request->shared_bytes);
    checking = racecheck_on();
    if (checking)
        race.start_block(dynamic_shared, request->shared_bytes);
    for (size_t i = 0; i < fibers.size(); ++i) {
        Fiber &f = fibers[i];
        if (f.state != State::exited || f.needs_start)
            make_entry(f); /* new, or abandoned mid-kernel by a fault: start over */
        f.linear = (unsigned)i;
        f.idx = uint3{(unsigned)(i % bd.x), (unsigned)(i / bd.x % bd.y), (unsigned)(i / ((size_t)bd.x * bd.y))};
        f.state = State::runnable;
    }
}

/* ---- Switching ---- */

void BlockRun::resume(Fiber &f)
{
    current = &f;
    current_thread_idx = f.idx;
#ifdef EMU_ASAN
    void *host_fake = nullptr;
    __sanitizer_start_switch_fiber(&host_fake, f.stack, kStackBytes);
#endif
    if (checking)
        race.enter(f.linear);
    if (sigsetjmp(host_env, 0) == 0) {
        if (f.needs_start) {
            f.needs_start = false;
            setcontext(&f.context);
        }
        siglongjmp(f.env, 1);
    }
#ifdef EMU_ASAN
    __sanitizer_finish_switch_fiber(host_fake, nullptr, nullptr);
#endif
    RaceShadow::leave();
    current = nullptr;
    uint64_t top[kCanaryChecked / sizeof(uint64_t)];
    std::memcpy(top, f.stack + kCanaryBytes - kCanaryChecked, kCanaryChecked);
    for (uint64_t word : top)
        if (word != kCanaryWord) {
            set_fault("thread %s overflowed its %zu KiB stack", where(f).c_str(), kStackBytes / 1024);
            break;
        }
}

/* Called on a fiber's stack: back to the scheduler until the fiber is resumed. */
void BlockRun::yield(Fiber &f)
{
#ifdef EMU_ASAN
    __sanitizer_start_switch_fiber(&f.fake_stack, host_stack_bottom, host_stack_size);
#endif
    if (sigsetjmp(f.env, 0) == 0)
        siglongjmp(host_env, 1);
#ifdef EMU_ASAN
    __sanitizer_finish_switch_fiber(f.fake_stack, &host_stack_bottom, &host_stack_size);
#endif
}

/* A fiber's whole life: run the kernel for its thread, then wait to be given the next block. */
void fiber_main()
{
#ifdef EMU_ASAN
    __sanitizer_finish_switch_fiber(nullptr, &current_run->host_stack_bottom, &current_run->host_stack_size);
#endif
    for (;;) {
        BlockRun *run = current_run;
        (*run->body)();
        run->current->state = State::exited;
        run->yield(*run->current);
    }
}

/* Ends the kernel for this block from inside a fiber: the fiber is abandoned, never resumed. */
void BlockRun::fail(Fiber &f, const char *fmt, ...)
{
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    set_fault("thread %s: %s", where(f).c_str(), text);
    stacks_dirty = true;
#ifdef EMU_ASAN
    __sanitizer_start_switch_fiber(nullptr, host_stack_bottom, host_stack_size);
#endif
    siglongjmp(host_env, 1);
}

/* Describes what went wrong, naming the kernel and the block. */
void BlockRun::set_fault(const char *fmt, ...)
{
    char text[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    char head[256];
    snprintf(head, sizeof head, "kernel %s, block (%u,%u,%u): ", request->name, block_idx.x, block_idx.y, block_idx.z);
    fault = std::string(head) + text;
}

std::string BlockRun::where(const Fiber &f) const
{
    char s[64];
    snprintf(s, sizeof s, "(%u,%u,%u)", f.idx.x, f.idx.y, f.idx.z);
    return s;
}

/* ---- Scheduling ---- */

/* Runs the block until every thread exited, every live thread waits at a grid sync, or a fault; with
 * one_interval, also until a barrier or warp intrinsic completes (the block yields its turn). */
Outcome BlockRun::run(bool one_interval)
{
    current_run = this;
    current_block_idx = block_idx;
    current_block_dim = request->block;
    current_grid_dim = request->grid;
    const size_t n = fibers.size();
    for (;;) {
        bool reverse = reverse_order.load(std::memory_order_relaxed);
        for (size_t k = 0; k < n && fault.empty(); ++k) {
            Fiber &f = fibers[reverse ? n - 1 - k : k];
            if (f.state == State::runnable)
                resume(f);
        }
        if (!fault.empty())
            break;
        if (complete_warp_ops()) {
            if (one_interval) {
                current_run = nullptr;
                return Outcome::yielded;
            }
            continue;
        }
        if (!fault.empty())
            break;

        size_t exited = 0, at_barrier = 0, at_grid = 0;
        const Fiber *first_exited = nullptr, *first_waiting = nullptr;
        for (const Fiber &f : fibers) {
            if (f.state == State::exited) {
                exited++;
                first_exited = first_exited ? first_exited : &f;
            } else if (f.state == State::at_barrier || f.state == State::at_grid) {
                (f.state == State::at_barrier ? at_barrier : at_grid)++;
                first_waiting = first_waiting ? first_waiting : &f;
            }
        }
        if (exited == n) {
            current_run = nullptr;
            return Outcome::done;
        }
        if (at_barrier + at_grid + exited == n && (at_barrier == 0 || at_grid == 0)) {
            const char *what = at_barrier ? "__syncthreads()" : "grid sync";
            if (exited) {
                set_fault("thread %s exited while %zu threads wait at %s (%s:%d)", where(*first_exited).c_str(),
                          at_barrier + at_grid, what, first_waiting->file, first_waiting->line);
                break;
            }
            for (const Fiber &f : fibers)
                if (f.line != first_waiting->line ||
                    (f.file != first_waiting->file && std::strcmp(f.file, first_waiting->file) != 0)) {
                    set_fault("threads wait at different %s calls: %s at %s:%d, %s at %s:%d", what,
                              where(*first_waiting).c_str(), first_waiting->file, first_waiting->line, where(f).c_str(),
                              f.file, f.line);
                    break;
                }
            if (!fault.empty())
                break;
            if (at_grid) {
                current_run = nullptr;
                return Outcome::parked_at_grid;
            }
            for (Fiber &f : fibers)
                f.state = State::runnable;
            if (checking)
                race.new_interval(first_waiting->file, first_waiting->line);
            if (one_interval) {
                current_run = nullptr;
                return Outcome::yielded;
            }
            continue;
        }
        describe_deadlock();
        break;
    }
    stacks_dirty = true;
    current_run = nullptr;
    return Outcome::fault;
}

void BlockRun::release_grid()
{
    const Fiber *site = nullptr;
    for (Fiber &f : fibers)
        if (f.state == State::at_grid) {
            f.state = State::runnable;
            site = site ? site : &f;
        }
    if (checking && site)
        race.new_interval(site->file, site->line);
}

/* No thread can run and no barrier or warp operation can complete: say who waits where. */
void BlockRun::describe_deadlock()
{
    std::string parts;
    bool seen[5] = {false, false, false, false, false};
    static const char *const names[] = {"runs", "waits at __syncthreads()", "waits at a warp intrinsic",
                                        "waits at grid sync", "has exited"};
    for (const Fiber &f : fibers) {
        int s = (int)f.state;
        if (seen[s])
            continue;
        seen[s] = true;
        char part[256];
        if (f.state == State::at_warp)
            snprintf(part, sizeof part, "%sthread %s %s (mask 0x%08x)", parts.empty() ? "" : ", ", where(f).c_str(),
                     names[s], f.mask);
        else if (f.state == State::at_barrier || f.state == State::at_grid)
            snprintf(part, sizeof part, "%sthread %s %s (%s:%d)", parts.empty() ? "" : ", ", where(f).c_str(), names[s],
                     f.file, f.line);
        else
            snprintf(part, sizeof part, "%sthread %s %s", parts.empty() ? "" : ", ", where(f).c_str(), names[s]);
        parts += part;
    }
    set_fault("divergent synchronisation would hang the block: %s", parts.c_str());
}

/* Completes every warp operation whose non-exited lanes have all arrived; true if any did. */
bool BlockRun::complete_warp_ops()
{
    bool progressed = false;
    const size_t n = fibers.size();
    for (size_t first = 0; first < n; first += kWarpLanes) {
        const size_t lanes = std::min<size_t>(kWarpLanes, n - first);
        for (size_t l = 0; l < lanes; ++l) {
            const Fiber &f = fibers[first + l];
            if (f.state != State::at_warp)
                continue;
            unsigned participants = 0;
            bool complete = true;
            for (unsigned j = 0; j < lanes && complete; ++j) {
                const Fiber &g = fibers[first + j];
                if (!(f.mask >> j & 1u) || g.state == State::exited)
                    continue;
                if (g.state != State::at_warp || g.mask != f.mask) {
                    complete = false;
                } else if (g.kind != f.kind) {
                    set_fault("lanes %u and %u of warp %zu call different warp intrinsics with mask 0x%08x",
                              (unsigned)l, j, first / kWarpLanes, f.mask);
                    return false;
                } else {
                    participants |= 1u << j;
                }
            }
            if (complete) {
                complete_warp_op(first, participants, f.kind);
                progressed = true;
            }
        }
    }
    return progressed;
}

/* Gives every participating lane its result, following the PTX description of shfl.sync: lanes
 * are split into segments of `width`; a source outside the caller's segment (or, for shfl.up,
 * below it) yields the caller's own value; a source lane that takes no part yields an undefined
 * value, here all bits set. */
void BlockRun::complete_warp_op(size_t first, unsigned participants, WarpOpKind kind)
{
    unsigned votes = 0;
    for (unsigned j = 0; j < kWarpLanes; ++j)
        if ((participants >> j & 1u) && fibers[first + j].value)
            votes |= 1u << j;
    for (unsigned i = 0; i < kWarpLanes; ++i) {
        if (!(participants >> i & 1u))
            continue;
        Fiber &f = fibers[first + i];
        const unsigned seg_mask = (kWarpLanes - (unsigned)f.width) & (kWarpLanes - 1);
        const unsigned b = (unsigned)f.lane_arg & (kWarpLanes - 1);
        const int min_lane = (int)(i & seg_mask);
        const int max_lane = kind == WARP_SHFL_UP ? min_lane : (int)(min_lane | (~seg_mask & (kWarpLanes - 1)));
        int j = (int)i;
        bool in_segment = true;
        switch (kind) {
        case WARP_SHFL_IDX:
            j = min_lane | (int)(b & ~seg_mask);
            in_segment = j <= max_lane;
            break;
        case WARP_SHFL_UP:
            j = (int)i - (int)b;
            in_segment = j >= max_lane;
            break;
        case WARP_SHFL_DOWN:
            j = (int)(i + b);
            in_segment = j <= max_lane;
            break;
        case WARP_SHFL_XOR:
            j = (int)(i ^ b);
            in_segment = j <= max_lane;
            break;
        case WARP_BALLOT:
            f.result = votes;
            break;
        case WARP_ANY:
            f.result = votes != 0;
            break;
        case WARP_ALL:
            f.result = votes == participants;
            break;
        case WARP_SYNC:
            f.result = 0;
            break;
        }
        if (kind <= WARP_SHFL_XOR) {
            if (!in_segment)
                j = (int)i;
            f.result = (participants >> j & 1u) ? fibers[first + j].value : kShuffleUndefined;
        }
        f.state = State::runnable;
    }
}

/* ---- Launch execution ---- */

/* Dynamic shared memory of one block, allocated to its exact size so ASan sees overruns. */
struct SharedBuffer {
    void *p = nullptr;
    explicit SharedBuffer(size_t bytes)
    {
        if (bytes && posix_memalign(&p, kSharedAlign, bytes) != 0)
            p = nullptr;
    }
    ~SharedBuffer() { free(p); }
    SharedBuffer(const SharedBuffer &) = delete;
    SharedBuffer &operator=(const SharedBuffer &) = delete;
};

uint3 block_index(const dim3 &grid, size_t linear)
{
    return uint3{(unsigned)(linear % grid.x), (unsigned)(linear / grid.x % grid.y),
                 (unsigned)(linear / ((size_t)grid.x * grid.y))};
}

cudaError_t run_ordinary(const LaunchRequest &request, const std::function<void()> &body, std::string *fault)
{
    static thread_local BlockRun run;
    SharedBuffer shared(request.shared_bytes);
    run.prepare(request, body, shared.p);
    if (run.fibers.empty() || (request.shared_bytes && !shared.p))
        return cudaErrorMemoryAllocation;
    const size_t blocks = (size_t)request.grid.x * request.grid.y * request.grid.z;
    for (size_t b = 0; b < blocks; ++b) {
        run.start_block(block_index(request.grid, b));
        if (run.run(false) != Outcome::done) {
            *fault = run.fault;
            return cudaErrorLaunchFailure;
        }
    }
    return cudaSuccess;
}

/* The blocks of a cooperative launch, each on its own host thread; `turn` says which may run (one
 * interval between barriers at a time). Each block thread sleeps on its own condition variable, so
 * handing over wakes one thread, not all. The threads, with their fibers and stacks, are kept from
 * launch to launch (a persistent kernel is launched twice per layer and step): one is added whenever a
 * launch has more blocks than ever before, none is stopped (the process exits with them waiting). */
class Cooperative
{
  public:
    static Cooperative &instance()
    {
        static Cooperative *c = new Cooperative(); /* never destroyed: its threads outlive static destructors */
        return *c;
    }
    /* The BlockRun of block b, for a launch of `blocks` blocks. */
    BlockRun &prepare(size_t blocks, size_t b)
    {
        std::lock_guard<std::mutex> lock(mutex_);
        if (pid_ != getpid()) { /* a child of fork() has none of its parent's threads */
            runs_.clear(), wake_.clear(), outcomes_.clear();
            pid_ = getpid();
        }
        while (runs_.size() < blocks) {
            const size_t n = runs_.size();
            runs_.emplace_back(new BlockRun());
            wake_.emplace_back(new std::condition_variable());
            outcomes_.push_back(Outcome::done);
            std::thread([this, n] { block_thread(n); }).detach();
        }
        return *runs_[b];
    }
    /* Runs block b for one interval on its thread and returns how it ended. */
    Outcome give_turn(size_t b)
    {
        std::unique_lock<std::mutex> lock(mutex_);
        turn_ = b;
        wake_[b]->notify_one();
        handed_back_.wait(lock, [&] { return turn_ == kNobody; });
        return outcomes_[b];
    }

  private:
    static constexpr size_t kNobody = ~(size_t)0;
    void block_thread(size_t b)
    {
        std::unique_lock<std::mutex> lock(mutex_);
        for (;;) {
            std::condition_variable *wake = wake_[b].get();
            BlockRun *run = runs_[b].get();
            wake->wait(lock, [&] { return turn_ == b; });
            lock.unlock();
            const Outcome o = run->run(true);
            lock.lock();
            outcomes_[b] = o;
            turn_ = kNobody;
            handed_back_.notify_one();
        }
    }
    std::mutex mutex_;
    std::condition_variable handed_back_; /* the launching thread waits on it */
    std::vector<std::unique_ptr<std::condition_variable>> wake_;
    std::vector<std::unique_ptr<BlockRun>> runs_;
    std::vector<Outcome> outcomes_;
    size_t turn_ = kNobody;
    pid_t pid_ = getpid();
};

cudaError_t run_cooperative(const LaunchRequest &request, const std::function<void()> &body, std::string *fault)
{
    const size_t blocks = (size_t)request.grid.x * request.grid.y * request.grid.z;
    Cooperative &c = Cooperative::instance();
    std::vector<std::unique_ptr<SharedBuffer>> shared;
    for (size_t b = 0; b < blocks; ++b) {
        shared.emplace_back(new SharedBuffer(request.shared_bytes));
        BlockRun &run = c.prepare(blocks, b);
        run.prepare(request, body, shared[b]->p);
        if (run.fibers.empty() || (request.shared_bytes && !shared[b]->p))
            return cudaErrorMemoryAllocation;
        run.start_block(block_index(request.grid, b));
    }
    /* Rounds: every block still running gets one interval, in block order (or reverse); when all wait
     * at the grid sync (or have exited), the grid is released. */
    cudaError_t result = cudaSuccess;
    std::vector<Outcome> state(blocks, Outcome::yielded);
    for (;;) {
        const bool reverse = reverse_order.load(std::memory_order_relaxed);
        size_t running = 0, parked = 0, done = 0, first_done = 0, first_parked = 0;
        for (size_t k = 0; k < blocks; ++k) {
            const size_t b = reverse ? blocks - 1 - k : k;
            if (state[b] == Outcome::yielded)
                state[b] = c.give_turn(b);
            if (state[b] == Outcome::fault) {
                *fault = c.prepare(blocks, b).fault;
                result = cudaErrorLaunchFailure;
                break;
            }
            running += state[b] == Outcome::yielded;
            if (state[b] == Outcome::done && done++ == 0)
                first_done = b;
            if (state[b] == Outcome::parked_at_grid && parked++ == 0)
                first_parked = b;
        }
        if (result != cudaSuccess || (running == 0 && parked == 0))
            break;
        if (running)
            continue;
        if (done) {
            char text[256];
            uint3 d = block_index(request.grid, first_done), p = block_index(request.grid, first_parked);
            snprintf(text, sizeof text, "kernel %s: block (%u,%u,%u) exited while block (%u,%u,%u) waits at grid sync",
                     request.name, d.x, d.y, d.z, p.x, p.y, p.z);
            *fault = text;
            result = cudaErrorLaunchFailure;
            break;
        }
        for (size_t b = 0; b < blocks; ++b) {
            c.prepare(blocks, b).release_grid();
            state[b] = Outcome::yielded;
        }
    }
    return result;
}

/* The fiber calling into the scheduler, or null (with a recorded fault) outside a kernel. */
Fiber *calling_fiber(const char *what)
{
    if (current_run && current_run->current)
        return current_run->current;
    set_device_fault(cudaErrorLaunchFailure, std::string(what) + " called outside a kernel");
    return nullptr;
}

} // namespace

/* ---- Entry points ---- */

cudaError_t run_grid(const LaunchRequest &request, const std::function<void()> &body, std::string *fault)
{
    return request.cooperative ? run_cooperative(request, body, fault) : run_ordinary(request, body, fault);
}

bool inside_kernel()
{
    return current_run != nullptr;
}

void set_thread_order_reverse(bool reverse)
{
    reverse_order.store(reverse);
}

void *dynamic_shared()
{
    return current_run ? current_run->dynamic_shared : nullptr;
}

void block_barrier(const char *file, int line)
{
    Fiber *f = calling_fiber("__syncthreads()");
    if (!f)
        return;
    f->state = State::at_barrier;
    f->file = file;
    f->line = line;
    current_run->yield(*f);
}

void grid_barrier(const char *file, int line)
{
    Fiber *f = calling_fiber("grid sync");
    if (!f)
        return;
    if (!current_run->request->cooperative)
        current_run->fail(*f, "grid sync at %s:%d in a kernel not launched with cudaLaunchCooperativeKernel", file,
                          line);
    f->state = State::at_grid;
    f->file = file;
    f->line = line;
    current_run->yield(*f);
}

bool in_cooperative_launch()
{
    return current_run && current_run->request->cooperative;
}

unsigned active_lanes()
{
    Fiber *f = calling_fiber("__activemask()");
    if (!f)
        return 0;
    const size_t first = f->linear / kWarpLanes * kWarpLanes;
    unsigned mask = 0;
    for (size_t j = 0; j < kWarpLanes && first + j < current_run->fibers.size(); ++j)
        if (current_run->fibers[first + j].state != State::exited)
            mask |= 1u << j;
    return mask;
}

unsigned long long warp_exchange(WarpOpKind kind, unsigned mask, unsigned long long value, int lane_arg, int width)
{
    Fiber *f = calling_fiber("a warp intrinsic");
    if (!f)
        return value;
    const unsigned lane = f->linear % kWarpLanes;
    if (!(mask >> lane & 1u))
        current_run->fail(*f, "lane %u calls a warp intrinsic with mask 0x%08x, which leaves it out", lane, mask);
    if (width < 1 || width > (int)kWarpLanes || (width & (width - 1)) != 0)
        current_run->fail(*f, "shuffle width %d is not a power of two from 1 to 32", width);
    f->state = State::at_warp;
    f->kind = kind;
    f->mask = mask;
    f->lane_arg = lane_arg;
    f->width = width;
    f->value = value;
    current_run->yield(*f);
    return f->result;
}

std::string thread_name(unsigned linear)
{
    if (!current_run)
        return "?";
    const dim3 bd = current_run->request->block;
    char s[64];
    snprintf(s, sizeof s, "(%u,%u,%u)", linear % bd.x, linear / bd.x % bd.y, linear / (bd.x * bd.y));
    return s;
}

void fail_running_thread(const char *fmt, ...)
{
    char text[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    Fiber *f = calling_fiber("the race detector");
    if (f)
        current_run->fail(*f, "%s", text);
    std::abort();
}

void trap(const char *file, int line)
{
    Fiber *f = calling_fiber("__trap()");
    if (f)
        current_run->fail(*f, "__trap() at %s:%d", file, line);
    std::abort();
}

} // namespace emu

extern "C" void emu_set_thread_order(enum emu_thread_order order)
{
    emu::set_thread_order_reverse(order == EMU_ORDER_REVERSE);
}
