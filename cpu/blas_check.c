/* OpenBLAS picks its kernels when it loads, from a table of the processors it knows. A processor newer
 * than the library is taken for an old one: Debian's 0.3.21 runs its SSE3 "Prescott" kernels on recent
 * Intel processors with AVX-512, at a third of their speed. OPENBLAS_CORETYPE, read when the library
 * loads, names the kernels instead, so a wrong choice is fixed by running the program again with it
 * set, once, before it has done anything. A value the user or the machine already set is never
 * overridden: some processors need it on purpose. */
#define _DEFAULT_SOURCE /* setenv, unsetenv */
#include "matmul.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The kernels of each OpenBLAS core type, by the widest vector instructions they use. Names missing
 * here (a library newer than this table) are left alone. */
static const struct {
    const char *corename;
    SimdLevel level;
} CORES[] = {
    {"Katmai", SIMD_BASELINE},
    {"Coppermine", SIMD_BASELINE},
    {"Northwood", SIMD_BASELINE},
    {"Prescott", SIMD_BASELINE},
    {"Banias", SIMD_BASELINE},
    {"Atom", SIMD_BASELINE},
    {"Core2", SIMD_BASELINE},
    {"Penryn", SIMD_BASELINE},
    {"Dunnington", SIMD_BASELINE},
    {"Nehalem", SIMD_BASELINE},
    {"Athlon", SIMD_BASELINE},
    {"Opteron", SIMD_BASELINE},
    {"Opteron(SSE3)", SIMD_BASELINE},
    {"Barcelona", SIMD_BASELINE},
    {"Nano", SIMD_BASELINE},
    {"Bobcat", SIMD_BASELINE},
    /* AVX without AVX2 kernels: a step below what AVX2 processors run */
    {"Sandybridge", SIMD_BASELINE},
    {"Bulldozer", SIMD_BASELINE},
    {"Piledriver", SIMD_BASELINE},
    {"Steamroller", SIMD_BASELINE},
    {"Excavator", SIMD_BASELINE},
    {"Haswell", SIMD_AVX2},
    {"Zen", SIMD_AVX2},
    {"SkylakeX", SIMD_AVX512},
    {"Cooperlake", SIMD_AVX512},
    {"SapphireRapids", SIMD_AVX512},
};

/* What to ask for on a processor that runs `level`. */
static const char *const CORETYPE_FOR[SIMD_LEVELS] = {NULL, "Haswell", "SkylakeX"};

const char *blas_coretype_for(const char *corename, SimdLevel level)
{
    for (size_t i = 0; i < sizeof CORES / sizeof CORES[0]; i++)
        if (strcmp(corename, CORES[i].corename) == 0)
            return CORES[i].level < level ? CORETYPE_FOR[level] : NULL;
    return NULL;
}

#ifdef CHARRNN_WITH_OPENBLAS
char *openblas_get_corename(void); /* OpenBLAS's own, not in every cblas.h */
char *openblas_get_config(void);

/* The widest vector instructions this processor (and its operating system) runs. */
static SimdLevel processor_level(void)
{
    SimdLevel level = SIMD_LEVELS - 1;
    while (level > SIMD_BASELINE && !kernels_at(level))
        level--;
    return level;
}

void matmul_check_blas(char **argv, int quiet)
{
    const char *set = getenv("OPENBLAS_CORETYPE");
    if (set && *set)
        return; /* the user's or the machine's choice */
    if (!strstr(openblas_get_config(), "DYNAMIC_ARCH"))
        return; /* a library built for one processor has no other kernels to choose */
    /* The tests pretend OpenBLAS answered this (no machine they run on is taken for another). */
    const char *test = getenv("CHARRNN_TEST_BLAS_CORENAME");
    const char *corename = test && *test ? test : openblas_get_corename();
    const SimdLevel level = processor_level();
    const char *coretype = blas_coretype_for(corename, level);
    if (!coretype)
        return;
    static const char *const FEATURES[SIMD_LEVELS] = {"SSE2", "AVX2", "AVX-512"};
    if (!quiet)
        fprintf(stderr,
                "charrnn: OpenBLAS chose its %s kernels for this processor, which has %s; running with "
                "OPENBLAS_CORETYPE=%s (set OPENBLAS_CORETYPE to choose otherwise)\n",
                corename, FEATURES[level], coretype);
    setenv("OPENBLAS_CORETYPE", coretype, 1);
    execv("/proc/self/exe", argv);
    fprintf(stderr, "charrnn: could not run again with OPENBLAS_CORETYPE=%s (%s); going on with the %s kernels\n",
            coretype, strerror(errno), corename);
    unsetenv("OPENBLAS_CORETYPE");
}
#else
void matmul_check_blas(char **argv, int quiet)
{
    (void)argv;
    (void)quiet;
}
#endif
