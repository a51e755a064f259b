/* The CUDA backend, as the rest of the program sees it (C linkage; no CUDA header needed). */
#ifndef CHARRNN_CUDA_BACKEND_H
#define CHARRNN_CUDA_BACKEND_H

#ifdef __cplusplus
extern "C" {
#endif

#include "../common/backend.h"

extern const BackendOps cuda_backend_ops;

/* 0 when a CUDA device can be used; otherwise -1 and why (no device, no driver, ...). */
int cuda_device_usable(Err *e);

/* What the CUDA backend has done so far, for tests and benchmarks: which paths really ran. */
typedef struct {
    long graph_captures;     /* step shapes captured into a graph */
    long graph_replays;      /* steps run by replaying a graph */
    long eager_steps;        /* steps launched one call at a time */
    long persistent_layers;  /* layer recurrences (forward or backward) run by the persistent kernel */
    long wavefront_launches; /* ... of which in launches that ran every layer of a deep model at once */
    long stepped_layers;     /* layer recurrences run by one kernel per timestep */
    long dropout_layers;     /* persistent ones run one launch per layer, not as the planned wavefront, because
                                the step dropped out */
    long sample_launches;    /* generation steps run by the one-block sampling kernel */
    long host_draws;         /* characters drawn on the host from copied-back logits (sample_token) */
    const char *graphs_note; /* why graphs are off, or NULL */
} CudaStats;
void cuda_backend_stats(void *ctx, CudaStats *stats);

/* "the GPU's name" or "emulated device" in the emulated build, for messages. */
const char *cuda_device_name(void);

#ifdef __cplusplus
}
#endif

#endif
