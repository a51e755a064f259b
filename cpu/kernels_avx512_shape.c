/* kernels_body.h with the AVX-512 set's vector width and tile (16 floats, 8 rows by 2 vectors) but
 * built for AVX2 (-mavx2 -mfma; the compiler splits each 16-float vector in two): the AVX-512 kernels'
 * logic on processors without AVX-512, so that the tests check it everywhere (CHARRNN_SIMD=avx512-shape).
 * Never chosen on its own. */
#define VW 16
#define MR 8
#define NV 2
#define KERNEL(f) f##_avx512_shape
#define KERNELS_NAME "AVX-512 shape on AVX2"
#include "kernels_body.h"
