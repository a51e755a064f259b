/* The CUDA kernel language for the emulated device: qualifiers, built-in variables, shared memory,
 * math functions and intrinsics, atomics, barriers, warp intrinsics, cooperative groups and the
 * launch templates. Kernels become ordinary C++ functions that the emulator runs once per CUDA
 * thread, each thread on its own fiber; see README.md for the execution model.
 *
 * To add an intrinsic: write it here with CUDA's signature; a pure function (math, bit tricks) is
 * a one-line inline function, anything that exchanges data between threads goes through
 * emu::warp_exchange (warp scope) or a barrier (block scope) so the scheduler sees it. */
#ifndef CHARRNN_EMU_KERNEL_H
#define CHARRNN_EMU_KERNEL_H

#include "emu_runtime.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <tuple>
#include <type_traits>
#include <utility>

/* ---- Qualifiers ---- */

#define __global__
#define __device__
#define __host__
#define __constant__
#define __forceinline__ inline __attribute__((always_inline))
#define __align__(n) alignas(n)
#define __launch_bounds__(...)
#define __grid_constant__
/* __restrict__ is already a keyword of GCC and Clang. __noinline__ is left undefined: libstdc++
 * spells an attribute with that name, which a macro would break. */
/* One instance per emulated block: every block runs on one host thread at a time, and the blocks of
 * a cooperative launch each run on their own host thread, so thread-local storage is per block. */
#define __shared__ static thread_local
/* `extern __shared__ T name[];` has no host C++ equivalent; .cu files write EXTERN_SHARED(T, name). */
#define EXTERN_SHARED(T, name) T *const name = static_cast<T *>(::emu::dynamic_shared())

/* ---- Built-in variables ---- */

namespace emu
{
/* Set by the scheduler before it resumes a thread; one set per host thread running a block. */
extern __thread uint3 current_thread_idx, current_block_idx;
extern __thread dim3 current_block_dim, current_grid_dim;
} // namespace emu

#define threadIdx (static_cast<const uint3 &>(::emu::current_thread_idx))
#define blockIdx (static_cast<const uint3 &>(::emu::current_block_idx))
#define blockDim (static_cast<const dim3 &>(::emu::current_block_dim))
#define gridDim (static_cast<const dim3 &>(::emu::current_grid_dim))
static const int warpSize = 32;

/* ---- Scheduler entry points (emu_scheduler.cpp) ---- */

namespace emu
{
enum WarpOpKind {
    WARP_SHFL_IDX,
    WARP_SHFL_UP,
    WARP_SHFL_DOWN,
    WARP_SHFL_XOR,
    WARP_BALLOT,
    WARP_ANY,
    WARP_ALL,
    WARP_SYNC
};

void *dynamic_shared();
void block_barrier(const char *file, int line);
void grid_barrier(const char *file, int line);
bool in_cooperative_launch();
unsigned active_lanes();
/* Waits until every non-exited lane named in `mask` reaches the same operation, then gives each
 * lane its result: the exchanged `value` for shuffles, the vote for ballot/any/all. */
unsigned long long warp_exchange(WarpOpKind kind, unsigned mask, unsigned long long value, int lane_arg, int width);
[[noreturn]] void trap(const char *file, int line);

template <class T> unsigned long long to_bits(T v)
{
    static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "warp shuffles move up to 8 bytes");
    unsigned long long bits = 0;
    std::memcpy(&bits, &v, sizeof(T));
    return bits;
}
template <class T> T from_bits(unsigned long long bits)
{
    T v;
    std::memcpy(&v, &bits, sizeof(T));
    return v;
}
template <class T> struct same_type {
    typedef T type;
};
} // namespace emu

/* ---- Barriers and warp intrinsics ---- */

inline void __syncthreads(const char *file = __builtin_FILE(), int line = __builtin_LINE())
{
    emu::block_barrier(file, line);
}
inline void __syncwarp(unsigned mask = 0xffffffffu)
{
    emu::warp_exchange(emu::WARP_SYNC, mask, 0, 0, warpSize);
}
inline unsigned __activemask()
{
    return emu::active_lanes();
}
inline void __threadfence() {}
inline void __threadfence_block() {}
[[noreturn]] inline void __trap(const char *file = __builtin_FILE(), int line = __builtin_LINE())
{
    emu::trap(file, line);
}

template <class T> T __shfl_sync(unsigned mask, T var, int src_lane, int width = warpSize)
{
    return emu::from_bits<T>(emu::warp_exchange(emu::WARP_SHFL_IDX, mask, emu::to_bits(var), src_lane, width));
}
template <class T> T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = warpSize)
{
    return emu::from_bits<T>(emu::warp_exchange(emu::WARP_SHFL_UP, mask, emu::to_bits(var), (int)delta, width));
}
template <class T> T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = warpSize)
{
    return emu::from_bits<T>(emu::warp_exchange(emu::WARP_SHFL_DOWN, mask, emu::to_bits(var), (int)delta, width));
}
template <class T> T __shfl_xor_sync(unsigned mask, T var, int lane_mask, int width = warpSize)
{
    return emu::from_bits<T>(emu::warp_exchange(emu::WARP_SHFL_XOR, mask, emu::to_bits(var), lane_mask, width));
}
inline unsigned __ballot_sync(unsigned mask, int predicate)
{
    return (unsigned)emu::warp_exchange(emu::WARP_BALLOT, mask, predicate != 0, 0, warpSize);
}
inline int __any_sync(unsigned mask, int predicate)
{
    return (int)emu::warp_exchange(emu::WARP_ANY, mask, predicate != 0, 0, warpSize);
}
inline int __all_sync(unsigned mask, int predicate)
{
    return (int)emu::warp_exchange(emu::WARP_ALL, mask, predicate != 0, 0, warpSize);
}

/* ---- Atomics: every emulated thread of a launch runs on one host thread at a time, so a plain
 * read-modify-write between two scheduling points is atomic. They are left out of the race detector's
 * instrumentation (EMU_ATOMIC): atomic accesses to one word never race. ---- */

#if defined(__GNUC__) && !defined(__clang__)
#define EMU_ATOMIC __attribute__((no_sanitize_thread, noinline))
#else
#define EMU_ATOMIC __attribute__((no_sanitize("thread"), noinline))
#endif

template <class T> EMU_ATOMIC T atomicAdd(T *address, typename emu::same_type<T>::type val)
{
    static_assert(std::is_arithmetic<T>::value, "atomicAdd takes an int, unsigned, float or double");
    T old = *address;
    *address = old + val;
    return old;
}
template <class T> EMU_ATOMIC T atomicSub(T *address, typename emu::same_type<T>::type val)
{
    static_assert(std::is_integral<T>::value, "atomicSub takes an integer");
    T old = *address;
    *address = old - val;
    return old;
}
template <class T> EMU_ATOMIC T atomicMax(T *address, typename emu::same_type<T>::type val)
{
    static_assert(std::is_integral<T>::value, "atomicMax takes an integer");
    T old = *address;
    *address = old > val ? old : val;
    return old;
}
template <class T> EMU_ATOMIC T atomicMin(T *address, typename emu::same_type<T>::type val)
{
    static_assert(std::is_integral<T>::value, "atomicMin takes an integer");
    T old = *address;
    *address = old < val ? old : val;
    return old;
}
template <class T> EMU_ATOMIC T atomicExch(T *address, typename emu::same_type<T>::type val)
{
    T old = *address;
    *address = val;
    return old;
}
template <class T>
EMU_ATOMIC T atomicCAS(T *address, typename emu::same_type<T>::type compare, typename emu::same_type<T>::type val)
{
    static_assert(std::is_integral<T>::value, "atomicCAS takes an integer");
    T old = *address;
    if (old == compare)
        *address = val;
    return old;
}

/* ---- Math functions and intrinsics (the fast intrinsics are computed exactly here) ---- */

/* One line per function reads as a table. */
/* clang-format off */
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline float __expf(float x) { return expf(x); }
inline float __logf(float x) { return logf(x); }
inline float __powf(float x, float y) { return powf(x, y); }
inline float __sinf(float x) { return sinf(x); }
inline float __cosf(float x) { return cosf(x); }
inline float __tanf(float x) { return tanf(x); }
inline float __fdividef(float x, float y) { return x / y; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __fsqrt_rn(float x) { return sqrtf(x); }
inline float __fmaf_rn(float x, float y, float z) { return fmaf(x, y, z); }
inline float __fadd_rn(float x, float y) { return x + y; }
inline float __fmul_rn(float x, float y) { return x * y; }
inline float __saturatef(float x) { return x > 0.0f ? (x < 1.0f ? x : 1.0f) : 0.0f; }
inline int __float_as_int(float x) { return emu::from_bits<int>(emu::to_bits(x)); }
inline unsigned __float_as_uint(float x) { return emu::from_bits<unsigned>(emu::to_bits(x)); }
inline float __int_as_float(int x) { return emu::from_bits<float>(emu::to_bits(x)); }
inline float __uint_as_float(unsigned x) { return emu::from_bits<float>(emu::to_bits(x)); }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz((unsigned)x); }
inline int __ffs(int x) { return __builtin_ffs(x); }
template <class T> T __ldg(const T *p) { return *p; }

inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline float min(float a, float b) { return fminf(a, b); }
inline float max(float a, float b) { return fmaxf(a, b); }
inline double min(double a, double b) { return fmin(a, b); }
inline double max(double a, double b) { return fmax(a, b); }

inline float2 make_float2(float x, float y) { return float2{x, y}; }
inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }
inline int2 make_int2(int x, int y) { return int2{x, y}; }
inline int4 make_int4(int x, int y, int z, int w) { return int4{x, y, z, w}; }
inline uint2 make_uint2(unsigned x, unsigned y) { return uint2{x, y}; }
inline uint3 make_uint3(unsigned x, unsigned y, unsigned z) { return uint3{x, y, z}; }
/* clang-format on */

/* ---- Cooperative groups (the block and grid groups) ---- */

namespace cooperative_groups
{
class thread_block
{
  public:
    void sync(const char *file = __builtin_FILE(), int line = __builtin_LINE()) const
    {
        emu::block_barrier(file, line);
    }
    unsigned thread_rank() const { return (threadIdx.z * blockDim.y + threadIdx.y) * blockDim.x + threadIdx.x; }
    unsigned num_threads() const { return blockDim.x * blockDim.y * blockDim.z; }
    unsigned size() const { return num_threads(); }
    dim3 group_index() const { return blockIdx; }
    dim3 thread_index() const { return threadIdx; }
    dim3 dim_threads() const { return blockDim; }
};
class grid_group
{
  public:
    /* Valid only inside a kernel launched with cudaLaunchCooperativeKernel. */
    bool is_valid() const { return emu::in_cooperative_launch(); }
    void sync(const char *file = __builtin_FILE(), int line = __builtin_LINE()) const { emu::grid_barrier(file, line); }
    unsigned long long block_rank() const { return (blockIdx.z * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x; }
    unsigned long long num_blocks() const { return (unsigned long long)gridDim.x * gridDim.y * gridDim.z; }
    unsigned long long thread_rank() const
    {
        return block_rank() * (blockDim.x * blockDim.y * blockDim.z) + this_block_rank();
    }
    unsigned long long num_threads() const { return num_blocks() * (blockDim.x * blockDim.y * blockDim.z); }
    unsigned long long size() const { return num_threads(); }

  private:
    unsigned this_block_rank() const { return (threadIdx.z * blockDim.y + threadIdx.y) * blockDim.x + threadIdx.x; }
};
inline thread_block this_thread_block()
{
    return thread_block();
}
inline grid_group this_grid()
{
    return grid_group();
}
inline void sync(const thread_block &g, const char *file = __builtin_FILE(), int line = __builtin_LINE())
{
    g.sync(file, line);
}
inline void sync(const grid_group &g, const char *file = __builtin_FILE(), int line = __builtin_LINE())
{
    g.sync(file, line);
}
} // namespace cooperative_groups

/* ---- Launches ---- */

namespace emu
{
/* What LAUNCH(kernel, grid, block, smem, stream) yields; calling it with the kernel's arguments
 * converts them to the parameter types (as a `<<<>>>` call does) and runs the launch, whose error
 * is left for cudaGetLastError. */
template <class... Params> struct Launcher {
    void (*kernel)(Params...);
    LaunchRequest request;

    template <class... Args> cudaError_t submit(Args &&...args) const
    {
        static_assert(sizeof...(Args) == sizeof...(Params), "wrong number of kernel arguments");
        auto kernel_fn = kernel;
        std::tuple<Params...> params(std::forward<Args>(args)...);
        return launch(request, [kernel_fn, params]() { std::apply(kernel_fn, params); });
    }
    template <class... Args> void operator()(Args &&...args) const { submit(std::forward<Args>(args)...); }
};
/* LAUNCH_COOPERATIVE's object: cudaLaunchKernelEx with the cooperative attribute, as under nvcc;
 * it returns the launch's error. */
template <class... Params> struct CooperativeLauncher : Launcher<Params...> {
    template <class... Args> cudaError_t operator()(Args &&...args) const
    {
        static_assert(sizeof...(Args) == sizeof...(Params), "wrong number of kernel arguments");
        cudaLaunchAttribute attribute;
        const LaunchRequest &r = this->request;
        const cudaLaunchConfig_t config = cooperative_config(r.grid, r.block, r.shared_bytes, r.stream, &attribute);
        auto kernel_fn = this->kernel;
        std::tuple<Params...> params(std::forward<Args>(args)...);
        return launch_with_config(&config, r.func, r.name, [kernel_fn, params]() { std::apply(kernel_fn, params); });
    }
};
template <class... Params>
Launcher<Params...> make_launcher(void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared_bytes,
                                  cudaStream_t stream, const char *name)
{
    const void *id = reinterpret_cast<const void *>(kernel);
    return Launcher<Params...>{kernel, {id, name, grid, block, shared_bytes, stream, false, false}};
}
template <class... Params>
CooperativeLauncher<Params...> make_cooperative_launcher(void (*kernel)(Params...), dim3 grid, dim3 block,
                                                         size_t shared_bytes, cudaStream_t stream, const char *name)
{
    const void *id = reinterpret_cast<const void *>(kernel);
    return CooperativeLauncher<Params...>{{kernel, {id, name, grid, block, shared_bytes, stream, true, true}}};
}
template <class... Params, size_t... I> std::tuple<Params...> unpack_args(void **args, std::index_sequence<I...>)
{
    return std::tuple<Params...>(*static_cast<Params *>(args[I])...);
}
} // namespace emu

/* CUDA's C++ overload: `args` points at each argument, in parameter order. */
template <class... Params>
cudaError_t cudaLaunchCooperativeKernel(void (*kernel)(Params...), dim3 grid, dim3 block, void **args,
                                        size_t shared_bytes = 0, cudaStream_t stream = 0)
{
    if (sizeof...(Params) > 0 && !args)
        return cudaErrorInvalidValue;
    std::tuple<Params...> params = emu::unpack_args<Params...>(args, std::index_sequence_for<Params...>());
    emu::LaunchRequest request{
        reinterpret_cast<const void *>(kernel), "cooperative kernel", grid, block, shared_bytes, stream, true, false};
    return emu::launch(request, [kernel, params]() { std::apply(kernel, params); });
}

/* CUDA's C++ overload: the arguments are converted to the kernel's parameter types, as a `<<<>>>` call
 * converts them. Of the attributes, cudaLaunchAttributeCooperative (nonzero: a cooperative launch) and
 * cudaLaunchAttributeIgnore are known; any other is cudaErrorInvalidValue here. */
template <class... Params, class... Args>
cudaError_t cudaLaunchKernelEx(const cudaLaunchConfig_t *config, void (*kernel)(Params...), Args &&...args)
{
    static_assert(sizeof...(Args) == sizeof...(Params), "wrong number of kernel arguments");
    std::tuple<Params...> params(std::forward<Args>(args)...);
    return emu::launch_with_config(config, reinterpret_cast<const void *>(kernel), "kernel of cudaLaunchKernelEx",
                                   [kernel, params]() { std::apply(kernel, params); });
}

#endif
