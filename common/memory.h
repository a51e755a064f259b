/* Memory: what a command will need, estimated before it allocates anything large, against what the
 * machine has, so that a run too large is refused up front instead of driving the machine out of
 * memory. The backends size their own buffers (BackendOps.memory); this adds up the rest. */
#ifndef CHARRNN_MEMORY_H
#define CHARRNN_MEMORY_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "config.h"

/* What this process may use: host memory (MemAvailable, or what the cgroup's limit leaves where that is
 * lower; UINT64_MAX where neither is known) and, for a backend with a device of its own, the device's free
 * memory (else 0; ops may be NULL for the host alone). CHARRNN_MEMORY_LIMIT and CHARRNN_DEVICE_MEMORY_LIMIT (bytes, with an optional K, M, G
 * or T suffix) lower them; a bad value is an error naming the variable. */
int memory_available(const BackendOps *ops, MemoryNeed *avail, Err *e);

/* Training: the backend's buffers for batches of T x B, the trainer's batch buffers, and the checkpoint
 * taken at every save (its copy of the parameters, moments and carried state, and the file's image). */
MemoryNeed train_memory(const BackendOps *ops, const TrainConfig *c);
/* Evaluation at the checkpoint's batch shape (T x B) and generation (one character at a time). */
MemoryNeed eval_memory(const BackendOps *ops, const ModelConfig *m, int T, int B);
MemoryNeed sample_memory(const BackendOps *ops, const ModelConfig *m);

/* 0 when need fits in avail; else -1 and "needs an estimated N of memory, M is available" (or of device
 * memory) in *e, for the caller to prefix with what needs it and to follow with what would fit. */
int memory_fits(const BackendOps *ops, const MemoryNeed *need, const MemoryNeed *avail, Err *e);

/* "1.5 GiB", "320.0 MiB", "12 KiB" */
const char *fmt_bytes(uint64_t bytes, char *buf, size_t len);

#endif
