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
 * stderr. Called before MPI starts: under mpirun every rank runs itself again the same way, and the
 * first alone says so. */
void device_prepare(DeviceChoice choice, char **argv);
/* `sample --device auto`: when auto chose cuda but this model generates faster on the CPU by
 * sample_seconds_cpu/gpu (sampler.h), switches *ops to the CPU and *note to say why. */
void device_prefer_for_sampling(DeviceChoice choice, const ModelConfig *cfg, const BackendOps **ops,
                                const char **note);
/* What the backend runs on, for messages: the CPU's model name, or the GPU's ("emulated ..." on the
 * emulated device). */
const char *device_hardware(const BackendOps *ops);
/* The CPU backend (the reference that `charrnn selftest` compares the others with). */
const BackendOps *device_cpu(void);
/* BackendOptions.note for the commands: "charrnn: <device>: text" on stderr, on a line of its own. */
void device_print_note(void *device_name, const char *text);

#endif
