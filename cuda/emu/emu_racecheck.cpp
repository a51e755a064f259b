/* A shared-memory race detector in the spirit of compute-sanitizer's racecheck: two threads of a block
 * touching the same 4-byte word of its shared memory between two barriers, one of them writing, is a
 * fault of the launch (cudaErrorLaunchFailure) that names both threads, the memory and the barrier the
 * interval began at. On a GPU such a pair races; the emulator's fixed thread order would only ever show
 * one outcome of it.
 *
 * It sees the accesses through the thread sanitizer's compiler instrumentation, which emu.cmake turns
 * on for the emulated .cu sources: every load and store calls __tsan_readN / __tsan_writeN, defined
 * here (the sanitizer's own runtime is not linked). Outside a checked block each call returns at once.
 * Shared memory is the block's dynamic buffer and, for static __shared__ variables (thread_local), the
 * program's thread-local block on the host thread that runs the block; kernel code writes no other
 * thread-local data. Atomics are not instrumented (EMU_ATOMIC), and accesses that only a warp-level
 * sync (__syncwarp) orders are reported as races, which charrnn's kernels have none of. */
#include "emu_internal.h"
#include "emu_report.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <cxxabi.h>
#include <dlfcn.h>
#include <link.h>
#include <string>
#include <thread>

namespace emu
{
namespace
{

#ifdef CHARRNN_EMU_RACECHECK_BUILT
constexpr bool kBuilt = true;
#else
constexpr bool kBuilt = false;
#endif
constexpr size_t kWord = 4;
constexpr int32_t kNobody = -1, kSeveral = -2;

std::atomic<bool> enabled{std::getenv("CHARRNN_EMU_RACECHECK") && std::strcmp(std::getenv("CHARRNN_EMU_RACECHECK"), "1") == 0};
thread_local RaceShadow *active;

/* The calling thread's instance of the program's thread-local storage. */
struct TlsRange {
    uintptr_t begin = 0, end = 0;
};
int find_program_tls(struct dl_phdr_info *info, size_t, void *data)
{
    for (int i = 0; i < info->dlpi_phnum; ++i)
        if (info->dlpi_phdr[i].p_type == PT_TLS && info->dlpi_tls_data) {
            TlsRange *r = static_cast<TlsRange *>(data);
            r->begin = (uintptr_t)info->dlpi_tls_data;
            r->end = r->begin + info->dlpi_phdr[i].p_memsz;
        }
    return 1; /* the program is the first object: stop there */
}
TlsRange program_tls()
{
    thread_local TlsRange range;
    thread_local bool found = false;
    if (!found) {
        dl_iterate_phdr(find_program_tls, &range);
        found = true;
    }
    return range;
}

/* "function+offset" of a code address, for the report. */
std::string where_in_code(void *pc)
{
    Dl_info info;
    if (!pc || !dladdr(pc, &info) || !info.dli_sname)
        return "";
    int status = 0;
    char *name = abi::__cxa_demangle(info.dli_sname, nullptr, nullptr, &status);
    std::string s = std::string(" in ") + (status == 0 && name ? name : info.dli_sname);
    std::free(name);
    char offset[32];
    snprintf(offset, sizeof offset, "+0x%zx", (size_t)((char *)pc - (char *)info.dli_saddr));
    return s + offset;
}

} // namespace

bool racecheck_on()
{
    return kBuilt && enabled.load(std::memory_order_relaxed);
}

void RaceShadow::start_block(void *dynamic_shared, size_t bytes)
{
    dynamic_begin_ = (uintptr_t)dynamic_shared;
    dynamic_end_ = dynamic_begin_ + (dynamic_shared ? bytes : 0);
    if (dynamic_words_.size() < bytes / kWord + 1)
        dynamic_words_.resize(bytes / kWord + 1);
    new_interval(nullptr, 0);
}

void RaceShadow::new_interval(const char *file, int line)
{
    interval_++;
    file_ = file;
    line_ = line;
}

void RaceShadow::enter(unsigned thread)
{
    if (tls_owner_ != std::this_thread::get_id()) {
        const TlsRange r = program_tls();
        tls_begin_ = r.begin;
        tls_end_ = r.end;
        tls_words_.assign((tls_end_ - tls_begin_) / kWord + 1, Word());
        tls_owner_ = std::this_thread::get_id();
    }
    thread_ = (int32_t)thread;
    active = this;
}

void RaceShadow::leave()
{
    active = nullptr;
}

void RaceShadow::access(uintptr_t p, size_t n, bool write, void *pc)
{
    if (p >= dynamic_begin_ && p < dynamic_end_)
        check(dynamic_words_, p - dynamic_begin_, n, write, "dynamic shared memory", pc);
    else if (p >= tls_begin_ && p < tls_end_)
        check(tls_words_, p - tls_begin_, n, write, "static shared memory", pc);
}

void RaceShadow::check(std::vector<Word> &words, size_t offset, size_t n, bool write, const char *memory, void *pc)
{
    const size_t end = offset + (n ? n : 1);
    for (size_t at = offset; at < end && at / kWord < words.size(); ++at) {
        Word &s = words[at / kWord];
        if (s.interval != interval_)
            s = Word{interval_, {kNobody, kNobody, kNobody, kNobody}, {kNobody, kNobody, kNobody, kNobody}};
        int16_t &writer = s.writer[at % kWord], &reader = s.reader[at % kWord];
        int32_t other = kNobody;
        const char *what = nullptr;
        if (writer != kNobody && writer != thread_) {
            other = writer;
            what = "wrote";
        } else if (write && reader != kNobody && reader != thread_) {
            other = reader;
            what = "read";
        }
        if (what) {
            char since[160];
            if (file_)
                snprintf(since, sizeof since, "since the barrier at %s:%d", file_, line_);
            else
                snprintf(since, sizeof since, "since the block started");
            std::string others = other == kSeveral ? std::string("other threads") : "thread " + thread_name(other);
            fail_running_thread("shared-memory race: it %s byte %zu of %s%s, which %s %s %s, with no barrier between",
                                write ? "writes" : "reads", at, memory, where_in_code(pc).c_str(), others.c_str(),
                                what, since);
        }
        if (write)
            writer = (int16_t)thread_;
        else
            reader = reader == kNobody || reader == thread_ ? (int16_t)thread_ : (int16_t)kSeveral;
    }
}

} // namespace emu

extern "C" {

void emu_set_racecheck(int on)
{
    emu::enabled.store(on != 0);
}

int emu_racecheck_available(void)
{
    return emu::kBuilt;
}

#ifdef CHARRNN_EMU_RACECHECK_BUILT /* else nothing is instrumented, and another sanitizer may own these names */

/* ---- The thread sanitizer's instrumentation calls: memory accesses ---- */

#define EMU_TSAN_ACCESS(kind, bytes, write)                                                                            \
    void __tsan_##kind##bytes(void *p)                                                                                 \
    {                                                                                                                  \
        if (emu::RaceShadow *r = emu::active)                                                                          \
            r->access((uintptr_t)p, bytes, write, __builtin_return_address(0));                                        \
    }                                                                                                                  \
    void __tsan_unaligned_##kind##bytes(void *p) { __tsan_##kind##bytes(p); }                                          \
    void __tsan_volatile_##kind##bytes(void *p) { __tsan_##kind##bytes(p); }
EMU_TSAN_ACCESS(read, 1, false)
EMU_TSAN_ACCESS(read, 2, false)
EMU_TSAN_ACCESS(read, 4, false)
EMU_TSAN_ACCESS(read, 8, false)
EMU_TSAN_ACCESS(read, 16, false)
EMU_TSAN_ACCESS(write, 1, true)
EMU_TSAN_ACCESS(write, 2, true)
EMU_TSAN_ACCESS(write, 4, true)
EMU_TSAN_ACCESS(write, 8, true)
EMU_TSAN_ACCESS(write, 16, true)
#undef EMU_TSAN_ACCESS

void __tsan_read_range(void *p, unsigned long size)
{
    if (emu::RaceShadow *r = emu::active)
        r->access((uintptr_t)p, size, false, __builtin_return_address(0));
}
void __tsan_write_range(void *p, unsigned long size)
{
    if (emu::RaceShadow *r = emu::active)
        r->access((uintptr_t)p, size, true, __builtin_return_address(0));
}

/* ---- ... and the rest, which the detector has no use for ---- */

void __tsan_init(void) {}
void __tsan_func_entry(void *) {}
void __tsan_func_exit(void) {}
void __tsan_vptr_update(void **, void *) {}
void __tsan_vptr_read(void **) {}
void __tsan_atomic_thread_fence(int) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
void __tsan_atomic_signal_fence(int) { __atomic_signal_fence(__ATOMIC_SEQ_CST); }

/* Atomic operations of std::atomic and the __atomic builtins in instrumented host code: performed
 * sequentially consistent, whatever order was asked. */
#define EMU_TSAN_ATOMICS(bits, T)                                                                                      \
    T __tsan_atomic##bits##_load(const volatile T *a, int) { return __atomic_load_n(a, __ATOMIC_SEQ_CST); }           \
    void __tsan_atomic##bits##_store(volatile T *a, T v, int) { __atomic_store_n(a, v, __ATOMIC_SEQ_CST); }           \
    T __tsan_atomic##bits##_exchange(volatile T *a, T v, int) { return __atomic_exchange_n(a, v, __ATOMIC_SEQ_CST); } \
    T __tsan_atomic##bits##_fetch_add(volatile T *a, T v, int) { return __atomic_fetch_add(a, v, __ATOMIC_SEQ_CST); } \
    T __tsan_atomic##bits##_fetch_sub(volatile T *a, T v, int) { return __atomic_fetch_sub(a, v, __ATOMIC_SEQ_CST); } \
    T __tsan_atomic##bits##_fetch_and(volatile T *a, T v, int) { return __atomic_fetch_and(a, v, __ATOMIC_SEQ_CST); } \
    T __tsan_atomic##bits##_fetch_or(volatile T *a, T v, int) { return __atomic_fetch_or(a, v, __ATOMIC_SEQ_CST); }   \
    T __tsan_atomic##bits##_fetch_xor(volatile T *a, T v, int) { return __atomic_fetch_xor(a, v, __ATOMIC_SEQ_CST); } \
    T __tsan_atomic##bits##_fetch_nand(volatile T *a, T v, int)                                                       \
    {                                                                                                                  \
        return __atomic_fetch_nand(a, v, __ATOMIC_SEQ_CST);                                                            \
    }                                                                                                                  \
    int __tsan_atomic##bits##_compare_exchange_strong(volatile T *a, T *c, T v, int, int)                             \
    {                                                                                                                  \
        return __atomic_compare_exchange_n(a, c, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);                        \
    }                                                                                                                  \
    int __tsan_atomic##bits##_compare_exchange_weak(volatile T *a, T *c, T v, int, int)                               \
    {                                                                                                                  \
        return __atomic_compare_exchange_n(a, c, v, true, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);                         \
    }                                                                                                                  \
    T __tsan_atomic##bits##_compare_exchange_val(volatile T *a, T c, T v, int, int)                                   \
    {                                                                                                                  \
        __atomic_compare_exchange_n(a, &c, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);                              \
        return c;                                                                                                      \
    }
EMU_TSAN_ATOMICS(8, unsigned char)
EMU_TSAN_ATOMICS(16, unsigned short)
EMU_TSAN_ATOMICS(32, unsigned int)
EMU_TSAN_ATOMICS(64, unsigned long long)
#undef EMU_TSAN_ATOMICS

#endif
} // extern "C"
