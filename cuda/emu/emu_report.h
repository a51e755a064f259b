/* What the emulated device offers beyond CUDA, for tests (callable from C and C++). */
#ifndef CHARRNN_EMU_REPORT_H
#define CHARRNN_EMU_REPORT_H

#include <stddef.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Device and pinned host allocations (cudaMalloc, cudaMallocHost) not yet freed, and their bytes. */
size_t emu_live_allocations(void);
size_t emu_live_bytes(void);
/* Writes one line per live allocation to `out` and returns how many there are. */
size_t emu_report_leaks(FILE *out);

/* What the last kernel fault was (a divergent barrier, a bad warp mask, __trap, ...), or "" if none
 * happened since the last cudaDeviceReset. The fault itself is reported as cudaErrorLaunchFailure. */
const char *emu_last_fault(void);

/* The order in which the threads of a block run between two scheduling points. Forward order
 * exposes a read of a value that a higher thread writes before a missing barrier, reverse order one
 * that a lower thread writes; running a suite in both orders finds both. The environment variable
 * CHARRNN_EMU_ORDER=reverse selects reverse order at start-up. */
enum emu_thread_order { EMU_ORDER_FORWARD = 0, EMU_ORDER_REVERSE = 1 };
void emu_set_thread_order(enum emu_thread_order order);

/* Kernel launches and cooperative launches run since start-up (tests use them to say which path ran).
 * A launch is counted when its kernel runs: an eager launch when it is submitted, a launch recorded
 * by stream capture each time cudaGraphLaunch replays it, never at capture. A launch refused before
 * it ran (configuration, residency, sticky error) is not counted; one that faults is. A cooperative
 * launch counts in both. cuBLAS calls run no emulated kernel and are not counted. */
unsigned long emu_launch_count(void);
unsigned long emu_cooperative_launch_count(void);

/* Operations (kernels, copies, memsets, products, graph launches) queued and not yet run: queued work
 * runs on the device's worker thread when the host waits for it (README.md). */
size_t emu_queued_operations(void);

/* The shared-memory race detector: 1 when it is built in (not in AddressSanitizer builds); switched on
 * by CHARRNN_EMU_RACECHECK=1 at start-up or by emu_set_racecheck(1). A race ends the launch with
 * cudaErrorLaunchFailure and emu_last_fault() naming both threads. */
int emu_racecheck_available(void);
void emu_set_racecheck(int on);

/* The registers per thread the emulated device counts for a kernel (its __global__ function), and
 * whether they come from the sm_90 table (*in_table = 1) or are the conservative 255 of a kernel the
 * table lacks; and the table itself, entry by entry (NULL past the end): the kernel's symbol name, with
 * its registers, stack frame, spill stores and loads, and static shared memory in bytes. */
int emu_kernel_registers(const void *kernel, int *in_table);
size_t emu_resource_table_size(void);
const char *emu_resource_table_entry(size_t i, int *registers, size_t *stack, size_t *spill_stores,
                                     size_t *spill_loads, size_t *static_shared);

/* The workspace cublasSetWorkspace gave a cuBLAS handle: 1 with *workspace and *bytes filled in
 * (either may be NULL), 0 while the handle uses cuBLAS's default pool (never set, or reset by
 * cublasSetStream), -1 for a handle that is not live. */
struct cublasContext;
int emu_cublas_workspace(struct cublasContext *handle, void **workspace, size_t *bytes);

#ifdef __cplusplus
}
#endif

#endif
