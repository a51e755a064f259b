/* What the sm_90 build of each kernel uses (registers per thread, stack, spills, static shared memory),
 * so that occupancy, cooperative co-residency and launch limits count registers as an H100 does. The
 * figures come from nvcc --resource-usage: generated into the build directory from the .cu sources
 * when nvcc is installed, else from the copy committed beside this file (README.md). A kernel is found
 * by its symbol name, which the host compiler mangles exactly as nvcc does (dladdr: the program is
 * linked with -rdynamic). */
#include "emu_internal.h"
#include "emu_report.h"

#include <dlfcn.h>
#include <mutex>
#include <string>
#include <unordered_map>

namespace
{

struct Entry {
    const char *name;
    int registers;
    size_t stack, spill_stores, spill_loads, static_shared;
};

const Entry kTable[] = {
#define EMU_KERNEL(name, registers, stack, spill_stores, spill_loads, static_shared)                                  \
    {name, registers, stack, spill_stores, spill_loads, static_shared},
#include <sm90_resources.inc> /* the build directory's, when generated, else the committed copy */
#undef EMU_KERNEL
    {nullptr, 0, 0, 0, 0, 0},
};
constexpr size_t kEntries = sizeof kTable / sizeof kTable[0] - 1;

const Entry *find(const char *name)
{
    for (size_t i = 0; name && i < kEntries; ++i)
        if (std::string(kTable[i].name) == name)
            return &kTable[i];
    return nullptr;
}

} // namespace

namespace emu
{

KernelResources kernel_resources(const void *func)
{
    static std::mutex mutex;
    static std::unordered_map<const void *, KernelResources> known;
    std::lock_guard<std::mutex> lock(mutex);
    auto it = known.find(func);
    if (it != known.end())
        return it->second;
    Dl_info info;
    const Entry *e = dladdr(func, &info) && info.dli_saddr == func ? find(info.dli_sname) : nullptr;
    KernelResources r = e ? KernelResources{e->registers, e->stack, e->spill_stores, e->spill_loads, e->static_shared,
                                            true}
                          : KernelResources{kMaxRegistersPerThread, 0, 0, 0, 0, false};
    known[func] = r;
    return r;
}

} // namespace emu

int emu_kernel_registers(const void *func, int *in_table)
{
    const emu::KernelResources r = emu::kernel_resources(func);
    if (in_table)
        *in_table = r.known;
    return r.registers;
}

size_t emu_resource_table_size(void)
{
    return kEntries;
}

const char *emu_resource_table_entry(size_t i, int *registers, size_t *stack, size_t *spill_stores,
                                     size_t *spill_loads, size_t *static_shared)
{
    if (i >= kEntries)
        return nullptr;
    const Entry &e = kTable[i];
    *registers = e.registers;
    *stack = e.stack;
    *spill_stores = e.spill_stores;
    *spill_loads = e.spill_loads;
    *static_shared = e.static_shared;
    return e.name;
}
