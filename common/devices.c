/* The devices this executable was built with. */
#include <stdio.h>

#include "../cpu/cpu.h"
#include "device.h"

const char *const DEVICE_NAMES[] = {"auto", "cpu", "cuda", NULL};

int device_select(DeviceChoice choice, const BackendOps **ops, Err *e)
{
    switch (choice) {
    case DEVICE_CPU:
        *ops = &cpu_backend_ops;
        return 0;
    case DEVICE_CUDA:
        return err_set(e, "--device cuda: this charrnn was built without CUDA support (the CUDA backend is "
                          "not part of this build); use --device cpu");
    case DEVICE_AUTO:
        fprintf(stderr, "charrnn: device auto: using cpu (this build has no CUDA backend)\n");
        *ops = &cpu_backend_ops;
        return 0;
    }
    return err_set(e, "unknown device");
}
