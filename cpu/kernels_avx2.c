/* kernels_body.h for AVX2 and FMA (built with -mavx2 -mfma): 6 rows by 2 vectors of 8, 12 of the 16
 * vector registers accumulating. */
#define VW 8
#define MR 6
#define NV 2
#define KERNEL(f) f##_avx2
#define KERNELS_NAME "AVX2/FMA"
#include "kernels_body.h"
