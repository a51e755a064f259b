/* Choosing a backend by name. The list of compiled-in devices lives in the executable (devices.c),
 * so the common library itself knows no device. */
#ifndef CHARRNN_DEVICE_H
#define CHARRNN_DEVICE_H

#include "backend.h"

typedef enum { DEVICE_AUTO = 0, DEVICE_CPU = 1, DEVICE_CUDA = 2 } DeviceChoice;
extern const char *const DEVICE_NAMES[]; /* "auto", "cpu", "cuda", NULL */

/* Resolves the choice to a backend. For auto, *note says which device it picked and why; the command
 * prints it (device_announce) once the rest of its input has been checked, so that a bad input still
 * gets a one-line error. */
int device_select(DeviceChoice choice, const BackendOps **ops, const char **note, Err *e);
void device_announce(const char *note);
/* Before a command that computes: unless the choice is cuda, lets the CPU backend check that its matrix
 * library runs the kernels this processor has; a fix runs the program again (argv), with a note on
 * stderr. */
void device_prepare(DeviceChoice choice, char **argv);

#endif
