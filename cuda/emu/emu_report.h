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

/* The workspace cublasSetWorkspace gave a cuBLAS handle: 1 with *workspace and *bytes filled in
 * (either may be NULL), 0 while the handle uses cuBLAS's default pool (never set, or reset by
 * cublasSetStream), -1 for a handle that is not live. */
struct cublasContext;
int emu_cublas_workspace(struct cublasContext *handle, void **workspace, size_t *bytes);

#ifdef __cplusplus
}
#endif

#endif
