/* The devices this executable was built with: the CPU always, CUDA when built with it (on a real GPU,
 * or, in charrnn-emu, on the emulated device of cuda/emu/). */
#include <stdio.h>

#include "../cpu/cpu.h"
#include "device.h"
#ifdef CHARRNN_WITH_CUDA
#include "../cuda/cuda.h"
#endif

const char *const DEVICE_NAMES[] = {"auto", "cpu", "cuda", NULL};

#ifdef CHARRNN_CUDA_EMULATED
#define CUDA_KIND "emulated CUDA device"
#else
#define CUDA_KIND "CUDA device"
#endif

int device_select(DeviceChoice choice, const BackendOps **ops, const char **note, Err *e)
{
    static char why_auto[sizeof(Err) + 64];
    *note = NULL;
    if (choice == DEVICE_CPU) {
        *ops = &cpu_backend_ops;
        return 0;
    }
#ifdef CHARRNN_WITH_CUDA
    Err why;
    if (cuda_device_usable(&why) == 0) {
        snprintf(why_auto, sizeof why_auto, "device auto: using cuda (%s: %s)", CUDA_KIND, cuda_device_name());
        *note = choice == DEVICE_AUTO ? why_auto : NULL;
        *ops = &cuda_backend_ops;
        return 0;
    }
    if (choice == DEVICE_CUDA)
        return err_set(e, "%s", why.msg);
    snprintf(why_auto, sizeof why_auto, "device auto: using cpu (%s)", why.msg + sizeof "--device cuda: " - 1);
#else
    if (choice == DEVICE_CUDA)
        return err_set(e, "--device cuda: this charrnn was built without CUDA support (no CUDA compiler was "
                          "found when it was built); use --device cpu");
    snprintf(why_auto, sizeof why_auto, "device auto: using cpu (this build has no CUDA backend)");
#endif
    *note = why_auto;
    *ops = &cpu_backend_ops;
    return 0;
}

void device_announce(const char *note)
{
    if (note)
        fprintf(stderr, "charrnn: %s\n", note);
}
