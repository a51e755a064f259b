/* The devices this executable was built with: the CPU always; CUDA when built with it, either linked in
 * (charrnn-emu, on the emulated device of cuda/emu/) or as the module charrnn-cuda.so beside the
 * program, loaded the first time a command asks for the GPU. */
#define _DEFAULT_SOURCE /* readlink */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../cpu/cpu.h"
#include "device.h"
#include "sampler.h"
#ifdef CHARRNN_WITH_CUDA
#include "../cuda/cuda.h"
#endif
#ifdef CHARRNN_CUDA_MODULE
#include <dlfcn.h>
#endif

const char *const DEVICE_NAMES[] = {"auto", "cpu", "cuda", NULL};

#ifdef CHARRNN_CUDA_EMULATED
#define CUDA_KIND "emulated CUDA device"
#else
#define CUDA_KIND "CUDA device"
#endif

#ifdef CHARRNN_WITH_CUDA
/* The CUDA backend's three entry points, linked in or found in the module. */
typedef struct {
    const BackendOps *ops;
    int (*usable)(Err *e);
    const char *(*name)(void);
} CudaEntry;

#ifdef CHARRNN_CUDA_MODULE
static int cuda_entry(CudaEntry *c, Err *e)
{
    static CudaEntry loaded;
    if (!loaded.ops) {
        char path[4096];
        ssize_t n = readlink("/proc/self/exe", path, sizeof path - sizeof CHARRNN_CUDA_MODULE - 1);
        if (n <= 0 || n >= (ssize_t)(sizeof path - sizeof CHARRNN_CUDA_MODULE - 1))
            return err_set(e, "--device cuda: cannot locate the program to find %s beside it", CHARRNN_CUDA_MODULE);
        path[n] = 0;
        char *slash = strrchr(path, '/');
        strcpy(slash ? slash + 1 : path, CHARRNN_CUDA_MODULE);
        void *module = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (!module)
            return err_set(e, "--device cuda: the CUDA backend could not be loaded (%s)", dlerror());
        loaded.ops = dlsym(module, "cuda_backend_ops");
        *(void **)&loaded.usable = dlsym(module, "cuda_device_usable");
        *(void **)&loaded.name = dlsym(module, "cuda_device_name");
        if (!loaded.ops || !loaded.usable || !loaded.name) {
            loaded.ops = NULL;
            return err_set(e, "--device cuda: %s is not a charrnn CUDA backend", path);
        }
    }
    *c = loaded;
    return 0;
}
#else
static int cuda_entry(CudaEntry *c, Err *e)
{
    (void)e;
    *c = (CudaEntry){&cuda_backend_ops, cuda_device_usable, cuda_device_name};
    return 0;
}
#endif
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
    CudaEntry cuda = {0};
    if (cuda_entry(&cuda, &why) == 0 && cuda.usable(&why) == 0) {
        snprintf(why_auto, sizeof why_auto, "device auto: using cuda (%s: %s)", CUDA_KIND, cuda.name());
        *note = choice == DEVICE_AUTO ? why_auto : NULL;
        *ops = cuda.ops;
        return 0;
    }
    if (choice == DEVICE_CUDA)
        return err_set(e, "%s", why.msg);
    const char *prefix = "--device cuda: ", *reason = why.msg;
    if (strncmp(reason, prefix, strlen(prefix)) == 0)
        reason += strlen(prefix);
    snprintf(why_auto, sizeof why_auto, "device auto: using cpu (%s)", reason);
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

void device_prefer_for_sampling(DeviceChoice choice, const ModelConfig *cfg, const BackendOps **ops,
                                const char **note)
{
    static char why[256];
    if (choice != DEVICE_AUTO || *ops == &cpu_backend_ops)
        return;
    const double cpu = sample_seconds_cpu(cfg), gpu = sample_seconds_gpu(cfg);
    if (cpu >= gpu)
        return;
    snprintf(why, sizeof why,
             "device auto: using cpu for this model's sampling (modelled %.1f us per character against %.1f us on "
             "cuda; --device cuda to use it anyway)",
             cpu * 1e6, gpu * 1e6);
    *ops = &cpu_backend_ops;
    *note = why;
}

const char *device_hardware(const BackendOps *ops)
{
    static char cpu[128];
#ifdef CHARRNN_WITH_CUDA
    CudaEntry cuda = {0};
    Err e;
    if (ops != &cpu_backend_ops && cuda_entry(&cuda, &e) == 0 && ops == cuda.ops)
        return cuda.name();
#endif
    if (!cpu[0]) {
        snprintf(cpu, sizeof cpu, "unknown processor");
        FILE *f = fopen("/proc/cpuinfo", "r");
        char line[256];
        while (f && fgets(line, sizeof line, f))
            if (strncmp(line, "model name", 10) == 0 && strchr(line, ':')) {
                snprintf(cpu, sizeof cpu, "%s", strchr(line, ':') + 2);
                cpu[strcspn(cpu, "\n")] = 0;
                break;
            }
        if (f)
            fclose(f);
    }
    return cpu;
}

const BackendOps *device_cpu(void)
{
    return &cpu_backend_ops;
}

void device_print_note(void *device_name, const char *text)
{
    /* On a terminal a progress line may be half drawn: clear it first. */
    fprintf(stderr, "%scharrnn: %s: %s\n", isatty(STDERR_FILENO) ? "\r\033[K" : "", (const char *)device_name, text);
}
