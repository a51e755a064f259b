/* The CPU backend's innermost loops, one set per vector instruction set: AVX-512, AVX2/FMA and a
 * baseline (SSE2 on x86-64, the compiler's generic vectors elsewhere). All are compiled from one
 * source, kernels_body.h; kernels() picks the best set the processor runs, once. Every set computes
 * the same things in the same order within a vector lane; they differ only in vector width.
 *
 * The micro-kernel computes one tile of a matrix product, at most mr rows by nr columns, with the
 * sum over k for every element held in registers from start to end:
 *     C[i][j] = epilogue(in[i][j] + sum_k A[i][k] B[k][j])
 * where B is a panel of nr columns, [k, nr], packed by kernels_pack (or any block with nr readable
 * columns per row). */
#ifndef CHARRNN_KERNELS_H
#define CHARRNN_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "../common/vocab.h"

typedef enum {
    TILE_ADD,           /* C = in + A B */
    TILE_TANH,          /* C = tanh(in + A B): the forward recurrence */
    TILE_TANH_BACKWARD, /* C = (in + A B) * (1 - y^2), y = tanh's output: the backward recurrence */
} TileEpilogue;

typedef struct {
    const float *a;
    size_t a_row, a_col; /* A[i][k] = a[i * a_row + k * a_col]: A as stored (K, 1) or transposed (1, M) */
    const float *b;
    size_t ldb; /* B[k][j] = b[k * ldb + j] */
    int k;      /* the length of the sums (0: C = epilogue(in)) */
    const float *in;
    size_t ld_in; /* NULL: 0 */
    const float *y;
    size_t ldy; /* TILE_TANH_BACKWARD only */
    float *c;
    size_t ldc;
    int m, n; /* rows <= mr, columns <= nr; B has nr readable columns either way (packed) */
    TileEpilogue epilogue;
} Tile;

/* Adam's scalars for one step (see adam_update in cpu.h). */
typedef struct {
    float lr, beta1, beta2, eps, weight_decay, grad_scale;
    float c1, c2; /* bias corrections 1 - beta^step */
} AdamStep;

typedef struct {
    const char *name; /* "AVX-512", "AVX2/FMA", "baseline" */
    int mr, nr;       /* the micro-kernel's tile */
    void (*tile)(const Tile *t);
    /* c [N] = (accumulate ? c : 0) + a B for one row a[k * a_col] and B[k][j] = b[k * ldb + j]: the
     * vector-matrix products of generation. */
    void (*row)(float *c, const float *a, size_t a_col, const float *b, size_t ldb, int K, int N, int accumulate);
    /* Rows i0..i1-1 of C [M, N] = A [M, K] B^T (B [N, K]), added to C when accumulate. */
    void (*nt_rows)(float *C, const float *A, const float *B, int N, int K, int accumulate, int i0, int i1);
    void (*tanh)(float *x, size_t n); /* in place */
    /* softmax_xent (cpu.h) for `rows` rows; the summed loss of those rows, added in row order. */
    double (*softmax_xent)(float *logits, const token_t *y, int rows, int V, float scale);
    void (*adam)(float *p, const float *g, float *m, float *v, size_t n, const AdamStep *s);
    void (*sgd)(float *p, const float *g, float *v, size_t n, float lr, float momentum, float grad_scale);
    double (*sum_squares)(const float *x, size_t n);
    /* keep[j] (0 or 1) for units 0..H-1 of one row of a layer's output: common/dropout.h's decision, with
     * that row's counter (its first word, the group of four units, is ignored), key and threshold. */
    void (*dropout_keep)(uint8_t *keep, int H, const uint32_t ctr[4], const uint32_t key[2], uint32_t threshold);
} Kernels;

typedef enum { SIMD_BASELINE, SIMD_AVX2, SIMD_AVX512, SIMD_LEVELS } SimdLevel;

#define KERNELS_MAX_NR 32 /* the widest tile of any set (AVX-512's), for sizing packed buffers up front */

/* The set this process runs: the best the processor supports, or a lower one named by the
 * environment variable CHARRNN_SIMD (avx512, avx2, baseline; read once). */
const Kernels *kernels(void);
/* The set of a level, or NULL where the processor (or this build) does not have it: tests run each. */
const Kernels *kernels_at(SimdLevel level);
/* For the tests: the AVX-512 set's source, vector width and tile built for AVX2 instead, so that its
 * logic runs on processors without AVX-512 (CHARRNN_SIMD=avx512-shape); NULL without AVX2. */
const Kernels *kernels_avx512_shape_on_avx2(void);

/* Rows k0..k0+kc-1 and columns j0..j0+nr-1 of B [K, N], B[k][j] = b[k * b_row + j * b_col] (as stored:
 * b_row = N, b_col = 1; transposed from [N, K]: b_row = 1, b_col = K), into dst [kc, nr], zero beyond N. */
void kernels_pack_panel(float *dst, const float *b, size_t b_row, size_t b_col, int k0, int kc, int j0, int N, int nr);
/* W [K, N] (transposed: W^T, from w stored [N, K]) as column panels of nr: panel p holds columns
 * p*nr .. p*nr+nr-1 row after row, [K, nr], zero beyond N. dst has K * round_up(N, nr) floats. */
void kernels_pack(float *dst, const float *w, int K, int N, int nr, int transposed);

#endif
