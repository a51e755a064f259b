/* Choosing a backend by name. The list of compiled-in devices lives in the executable (devices.c),
 * so the common library itself knows no device. */
#ifndef CHARRNN_DEVICE_H
#define CHARRNN_DEVICE_H

#include "backend.h"

typedef enum { DEVICE_AUTO = 0, DEVICE_CPU = 1, DEVICE_CUDA = 2 } DeviceChoice;
extern const char *const DEVICE_NAMES[]; /* "auto", "cpu", "cuda", NULL */

/* Resolves the choice to a backend; auto says on stderr which device it picked and why. */
int device_select(DeviceChoice choice, const BackendOps **ops, Err *e);

#endif
