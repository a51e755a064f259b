/* Which kernel set runs (the processor's features, checked once) and the packing of matrices into
 * the micro-kernel's panels. */
#include "kernels.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const Kernels kernels_baseline;
#if defined(__x86_64__) && defined(CHARRNN_X86_KERNELS)
extern const Kernels kernels_avx2, kernels_avx512, kernels_avx512_shape;
#endif

static const char *const LEVEL_NAMES[SIMD_LEVELS] = {"baseline", "avx2", "avx512"};
#define AVX512_SHAPE "avx512-shape"

static int supported(SimdLevel level)
{
#if defined(__x86_64__) && defined(CHARRNN_X86_KERNELS)
    __builtin_cpu_init();
    if (level == SIMD_AVX512) /* the compiler's checks include the operating system's support */
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
               __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq");
    if (level == SIMD_AVX2)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
    return level == SIMD_BASELINE;
}

const Kernels *kernels_at(SimdLevel level)
{
    if (!supported(level))
        return NULL;
#if defined(__x86_64__) && defined(CHARRNN_X86_KERNELS)
    if (level == SIMD_AVX512)
        return &kernels_avx512;
    if (level == SIMD_AVX2)
        return &kernels_avx2;
#endif
    return &kernels_baseline;
}

const Kernels *kernels_avx512_shape_on_avx2(void)
{
#if defined(__x86_64__) && defined(CHARRNN_X86_KERNELS)
    if (supported(SIMD_AVX2))
        return &kernels_avx512_shape;
#endif
    return NULL;
}

static const Kernels *chosen;

/* The highest supported level, capped by CHARRNN_SIMD. A value that names no set is reported on stderr
 * and ignored (it is a developer's switch; the program runs either way). */
static void choose(void)
{
    SimdLevel cap = SIMD_LEVELS - 1;
    const char *asked = getenv("CHARRNN_SIMD");
    if (asked && *asked) {
        SimdLevel l = 0;
        while (l < SIMD_LEVELS && strcmp(asked, LEVEL_NAMES[l]) != 0)
            l++;
        if (l < SIMD_LEVELS)
            cap = l;
        else if (strcmp(asked, AVX512_SHAPE) == 0 && kernels_avx512_shape_on_avx2())
            chosen = kernels_avx512_shape_on_avx2();
        else
            fprintf(stderr, "charrnn: CHARRNN_SIMD=%s is not a kernel set (avx512, avx2, baseline, %s); ignored\n",
                    asked, AVX512_SHAPE);
    }
    while (cap > SIMD_BASELINE && !supported(cap))
        cap--;
    if (!chosen)
        chosen = kernels_at(cap);
}

const Kernels *kernels(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, choose);
    return chosen;
}

void kernels_pack_panel(float *dst, const float *b, size_t b_row, size_t b_col, int k0, int kc, int j0, int N, int nr)
{
    const int n = N - j0 < nr ? N - j0 : nr;
    if (b_col == 1) { /* rows of B are contiguous: copy them (a loop the compiler vectorises, not a call) */
        for (int k = 0; k < kc; k++) {
            const float *row = b + (size_t)(k0 + k) * b_row + j0;
            float *to = dst + (size_t)k * nr;
            if (n == nr)
                for (int j = 0; j < nr; j++)
                    to[j] = row[j];
            else
                for (int j = 0; j < nr; j++)
                    to[j] = j < n ? row[j] : 0.0f;
        }
        return;
    }
    for (int j = 0; j < nr; j++) { /* columns of B are contiguous: read along them */
        const float *col = j < n ? b + (size_t)(j0 + j) * b_col + (size_t)k0 * b_row : NULL;
        for (int k = 0; k < kc; k++)
            dst[(size_t)k * nr + j] = col ? col[(size_t)k * b_row] : 0.0f;
    }
}

void kernels_pack(float *dst, const float *w, int K, int N, int nr, int transposed)
{
    for (int j0 = 0; j0 < N; j0 += nr, dst += (size_t)K * nr)
        kernels_pack_panel(dst, w, transposed ? 1 : (size_t)N, transposed ? (size_t)K : 1, 0, K, j0, N, nr);
}
