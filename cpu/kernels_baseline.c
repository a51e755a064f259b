/* kernels_body.h for any processor (SSE2 on x86-64): 4 rows by 2 vectors of 4, 8 of the 16 vector
 * registers accumulating. */
#define VW 4
#define MR 4
#define NV 2
#define KERNEL(f) f##_baseline
#define KERNELS_NAME "baseline"
#include "kernels_body.h"
