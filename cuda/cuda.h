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

/* "the GPU's name" or "emulated device" in the emulated build, for messages. */
const char *cuda_device_name(void);

#ifdef __cplusplus
}
#endif

#endif
