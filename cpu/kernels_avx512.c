/* kernels_body.h for AVX-512 (F, VL, BW, DQ; built with those flags): 8 rows by 2 vectors of 16, 16 of
 * the 32 vector registers accumulating. */
#define VW 16
#define MR 8
#define NV 2
#define KERNEL(f) f##_avx512
#define KERNELS_NAME "AVX-512"
#include "kernels_body.h"
