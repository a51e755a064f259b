/* The kernels of kernels.h, written once with the compiler's vector extensions and compiled once per
 * instruction set: kernels_avx512.c, kernels_avx2.c and kernels_baseline.c each define
 *   VW          floats per vector register (16, 8, 4)
 *   MR, NV      the micro-kernel's tile: MR rows by NV vectors (NR = NV * VW columns), as many
 *               accumulators as leave registers for the operands
 *   KERNEL(f)   this set's name for f (f_avx2, ...) and KERNELS_NAME, its printable name
 * and include this file, built with that instruction set's compiler flags. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "../common/dropout.h"
#include "fastmath.h"
#include "kernels.h"
#if defined(__SSE2__)
#include <immintrin.h>
#endif

#define NR (NV * VW)
#define INLINE static inline __attribute__((always_inline))

typedef float vf __attribute__((vector_size(VW * sizeof(float))));
typedef int32_t vi __attribute__((vector_size(VW * sizeof(float))));
typedef uint32_t vu __attribute__((vector_size(VW * sizeof(float))));
typedef uint64_t vu2 __attribute__((vector_size(VW * sizeof(float)))); /* the same bits as VW / 2 pairs */

/* ---- vectors ---- */

INLINE vf load(const float *p)
{
    vf v;
    memcpy(&v, p, sizeof v);
    return v;
}

INLINE void store(float *p, vf v)
{
    memcpy(p, &v, sizeof v);
}

INLINE vf splat(float x)
{
    return x - (vf){0}; /* x - 0 is x for every x, so the compiler broadcasts x as it is */
}

INLINE vf pick(vi mask, vf a, vf b) /* a where mask is set, else b */
{
    return (vf)((mask & (vi)a) | (~mask & (vi)b));
}

INLINE float sum_lanes(vf v)
{
    float s = 0.0f;
    for (int l = 0; l < VW; l++)
        s += v[l];
    return s;
}

/* fast_tanhf and fast_expf (fastmath.h) on every lane: the same expressions in the same order, so that
 * the scalar functions, compiled here with the same flags, finish a row's last few elements with the
 * same results. */
INLINE vf tanh_lanes(vf a)
{
    const vf clamp = splat(TANH_CLAMP);
    vf x = pick(a > clamp, clamp, a);
    x = pick(x < -clamp, -clamp, x);
    const vf x2 = x * x;
    vf p, q;
    TANH_RATIONAL(p, q, x, x2);
    const vf r = p / q;
    return pick((a < splat(TANH_LINEAR)) & (a > splat(-TANH_LINEAR)), a, r);
}

INLINE vf exp_lanes(vf a)
{
    const vf highest = splat(EXP_HIGHEST), lowest = splat(EXP_LOWEST);
    vf x = pick(a > highest, highest, a);
    x = pick(x < lowest, lowest, x);
    const vf t = x * 1.44269504088896341f + EXP_ROUND;
    const vf n = t - EXP_ROUND;
    const vf r = (x - n * EXP_LN2_HI) - n * EXP_LN2_LO;
    const vu bits = ((vu)t - EXP_ROUND_BITS + 127u) << 23;
    vf e;
    EXP_POLYNOMIAL(e, r);
    return e * (vf)bits;
}

/* ---- the micro-kernel ---- */

/* A tile of m rows (a constant where it is inlined, so that the loops unroll into registers) and
 * all NR columns: the accumulators gather the k products, `in` is added to their sums, and the epilogue
 * is applied on the way out. (Summing the products apart from `in` keeps their rounding at their own
 * scale when `in` is the larger: the gradient arriving from above, going backward.) */
INLINE void full_tile(const Tile *t, const int m)
{
    vf acc[MR][NV];
#pragma GCC unroll 16
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++)
            if (r < m)
                acc[r][v] = (vf){0};
    const float *a = t->a, *b = t->b;
    for (int k = 0; k < t->k; k++, a += t->a_col, b += t->ldb) {
        vf bk[NV];
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++)
            bk[v] = load(b + v * VW);
#pragma GCC unroll 16
        for (int r = 0; r < MR; r++)
            if (r < m) {
                const float x = a[r * t->a_row];
#pragma GCC unroll 4
                for (int v = 0; v < NV; v++)
                    acc[r][v] += x * bk[v];
            }
    }
    if (t->in) {
#pragma GCC unroll 16
        for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++)
                if (r < m)
                    acc[r][v] = load(t->in + r * t->ld_in + v * VW) + acc[r][v];
    }
    switch (t->epilogue) {
    case TILE_TANH:
#pragma GCC unroll 16
        for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++)
                if (r < m)
                    acc[r][v] = tanh_lanes(acc[r][v]);
        break;
    case TILE_TANH_BACKWARD:
#pragma GCC unroll 16
        for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++)
                if (r < m) {
                    const vf y = load(t->y + r * t->ldy + v * VW);
                    acc[r][v] *= 1.0f - y * y;
                }
        break;
    case TILE_ADD:
        break;
    }
#pragma GCC unroll 16
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++)
            if (r < m)
                store(t->c + r * t->ldc + v * VW, acc[r][v]);
}

/* One copy of full_tile per row count, each unrolled for its rows. */
static void KERNEL(tile_rows)(const Tile *t)
{
    switch (t->m) {
    case 1:
        full_tile(t, 1);
        break;
    case 2:
        full_tile(t, 2);
        break;
    case 3:
        full_tile(t, 3);
        break;
    case 4:
        full_tile(t, 4);
        break;
#if MR > 4
    case 5:
        full_tile(t, 5);
        break;
    case 6:
        full_tile(t, 6);
        break;
#endif
#if MR > 6
    case 7:
        full_tile(t, 7);
        break;
    case 8:
        full_tile(t, 8);
        break;
#endif
    }
}

/* A tile narrower than NR (the last columns of a matrix whose width is not a multiple of NR) runs as a
 * full one on copies of its rows padded with zeros (B is packed, so it has NR columns to read): the
 * same instructions for every column. */
static void KERNEL(tile)(const Tile *t)
{
    if (t->n == NR) {
        KERNEL(tile_rows)(t);
        return;
    }
    float c[MR * NR], y[MR * NR];
    Tile padded = *t;
    padded.c = c, padded.ldc = NR;
    padded.in = t->in ? c : NULL, padded.ld_in = NR;
    padded.y = t->y ? y : NULL, padded.ldy = NR;
    for (int r = 0; r < t->m; r++)
        for (int j = 0; j < NR; j++) {
            c[r * NR + j] = t->in && j < t->n ? t->in[r * t->ld_in + j] : 0.0f;
            y[r * NR + j] = t->y && j < t->n ? t->y[r * t->ldy + j] : 0.0f;
        }
    KERNEL(tile_rows)(&padded);
    for (int r = 0; r < t->m; r++)
        memcpy(t->c + r * t->ldc, c + r * NR, sizeof(float) * (size_t)t->n);
}

/* One row: c [N] = (accumulate ? c : 0) + sum_k a[k * a_col] B[k], eight vectors of columns at a time
 * (eight independent sums in flight, enough to hide the latency of a multiply-add, where a tile of one
 * row would have NV), each element summed in the same order as in a tile and then added to c. */
#define ROW_VECTORS 8
static void KERNEL(row)(float *c, const float *a, size_t a_col, const float *b, size_t ldb, int K, int N,
                        int accumulate)
{
    int j = 0;
    for (; j + ROW_VECTORS * VW <= N; j += ROW_VECTORS * VW) {
        vf s[ROW_VECTORS];
#pragma GCC unroll 8
        for (int v = 0; v < ROW_VECTORS; v++)
            s[v] = (vf){0};
        for (int k = 0; k < K; k++) {
            const float x = a[k * a_col];
            const float *bk = b + k * ldb + j;
#pragma GCC unroll 8
            for (int v = 0; v < ROW_VECTORS; v++)
                s[v] += x * load(bk + v * VW);
        }
#pragma GCC unroll 8
        for (int v = 0; v < ROW_VECTORS; v++)
            store(c + j + v * VW, accumulate ? load(c + j + v * VW) + s[v] : s[v]);
    }
    for (; j + VW <= N; j += VW) {
        vf s = {0};
        for (int k = 0; k < K; k++)
            s += a[k * a_col] * load(b + k * ldb + j);
        store(c + j, accumulate ? load(c + j) + s : s);
    }
    for (; j < N; j++) {
        float s = 0.0f;
        for (int k = 0; k < K; k++)
            s += a[k * a_col] * b[k * ldb + j];
        c[j] = accumulate ? c[j] + s : s;
    }
}

/* ---- C = A B^T: dot products of rows ---- */

static void KERNEL(nt_rows)(float *C, const float *A, const float *B, int N, int K, int accumulate, int i0, int i1)
{
    const int kv = K - K % VW;
    for (int i = i0; i < i1; i++) {
        const float *a = A + (size_t)i * K;
        float *c = C + (size_t)i * N;
        int j = 0;
        for (; j + 4 <= N; j += 4) { /* four rows of B against one of A: four independent sums */
            const float *b0 = B + (size_t)j * K, *b1 = b0 + K, *b2 = b1 + K, *b3 = b2 + K;
            vf s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0};
            for (int k = 0; k < kv; k += VW) {
                const vf x = load(a + k);
                s0 += x * load(b0 + k), s1 += x * load(b1 + k);
                s2 += x * load(b2 + k), s3 += x * load(b3 + k);
            }
            float d[4] = {sum_lanes(s0), sum_lanes(s1), sum_lanes(s2), sum_lanes(s3)};
            for (int k = kv; k < K; k++)
                d[0] += a[k] * b0[k], d[1] += a[k] * b1[k], d[2] += a[k] * b2[k], d[3] += a[k] * b3[k];
            for (int q = 0; q < 4; q++)
                c[j + q] = accumulate ? c[j + q] + d[q] : d[q];
        }
        for (; j < N; j++) {
            const float *b = B + (size_t)j * K;
            vf s = {0};
            for (int k = 0; k < kv; k += VW)
                s += load(a + k) * load(b + k);
            float d = sum_lanes(s);
            for (int k = kv; k < K; k++)
                d += a[k] * b[k];
            c[j] = accumulate ? c[j] + d : d;
        }
    }
}

/* ---- elementwise ---- */

static void KERNEL(tanh)(float *x, size_t n)
{
    size_t i = 0;
    for (; i + VW <= n; i += VW)
        store(x + i, tanh_lanes(load(x + i)));
    for (; i < n; i++)
        x[i] = fast_tanhf(x[i]);
}

/* Per row: the maximum, then exp(z - max) once per logit, kept in place and summed; the loss is
 * log(sum) + max - z_y, and the gradient the kept exponentials times scale / sum, minus scale at y. */
static double KERNEL(softmax_xent)(float *logits, const token_t *y, int rows, int V, float scale)
{
    const int vv = V - V % VW;
    double loss = 0.0;
    for (int i = 0; i < rows; i++) {
        float *z = logits + (size_t)i * V;
        const float target = z[y[i]];
        vf top = splat(-INFINITY);
        for (int j = 0; j < vv; j += VW) {
            const vf zj = load(z + j);
            top = pick(zj > top, zj, top);
        }
        float max = top[0];
        for (int l = 1; l < VW; l++)
            max = top[l] > max ? top[l] : max;
        for (int j = vv; j < V; j++)
            max = z[j] > max ? z[j] : max;
        vf sum = {0};
        for (int j = 0; j < vv; j += VW) {
            const vf e = exp_lanes(load(z + j) - max);
            store(z + j, e);
            sum += e;
        }
        float total = sum_lanes(sum);
        for (int j = vv; j < V; j++) {
            z[j] = fast_expf(z[j] - max);
            total += z[j];
        }
        /* the maximum kept apart from log(total), which it would absorb (3e38 + ln V is 3e38 in float) */
        loss += ((double)max - (double)target) + (double)logf(total);
        if (scale == 0.0f)
            continue;
        const float factor = scale / total;
        for (int j = 0; j < vv; j += VW)
            store(z + j, load(z + j) * factor);
        for (int j = vv; j < V; j++)
            z[j] *= factor;
        z[y[i]] -= scale;
    }
    return loss;
}

/* The optimizers and the squared norm are plain loops: the compiler vectorises them for this
 * instruction set (the tests look for the vector instructions in the compiled code). */
static void KERNEL(adam)(float *p, const float *g, float *m, float *v, size_t n, const AdamStep *s)
{
    for (size_t i = 0; i < n; i++) {
        const float gi = g[i] * s->grad_scale;
        m[i] = s->beta1 * m[i] + (1.0f - s->beta1) * gi;
        v[i] = s->beta2 * v[i] + (1.0f - s->beta2) * gi * gi;
        const float mhat = m[i] / s->c1, vhat = v[i] / s->c2;
        p[i] -= s->lr * (mhat / (sqrtf(vhat) + s->eps) + s->weight_decay * p[i]);
    }
}

static void KERNEL(sgd)(float *p, const float *g, float *v, size_t n, float lr, float momentum, float grad_scale)
{
    for (size_t i = 0; i < n; i++) {
        v[i] = momentum * v[i] + g[i] * grad_scale;
        p[i] -= lr * v[i];
    }
}

static double KERNEL(sum_squares)(const float *x, size_t n)
{
    double sum = 0.0;
#pragma omp simd reduction(+ : sum)
    for (size_t i = 0; i < n; i++)
        sum += (double)x[i] * x[i];
    return sum;
}

/* ---- dropout masks ---- */

/* The 64-bit products m a of every lane, as their high and low 32 bits: one unsigned 32 x 32 -> 64
 * multiply of the even lanes and one of the odd lanes (shifted down), put back in lane order. */
INLINE void mulhilo_lanes(vu a, uint32_t m, vu *hi, vu *lo)
{
    const vu2 w = (vu2)a, odd = w >> 32, mm = (vu2){0} + m;
    vu2 pe, po;
#if defined(__AVX512F__) && VW == 16
    pe = (vu2)_mm512_mul_epu32((__m512i)w, (__m512i)mm);
    po = (vu2)_mm512_mul_epu32((__m512i)odd, (__m512i)mm);
#elif defined(__AVX2__) && VW == 8
    pe = (vu2)_mm256_mul_epu32((__m256i)w, (__m256i)mm);
    po = (vu2)_mm256_mul_epu32((__m256i)odd, (__m256i)mm);
#elif defined(__SSE2__) && VW == 4
    pe = (vu2)_mm_mul_epu32((__m128i)w, (__m128i)mm);
    po = (vu2)_mm_mul_epu32((__m128i)odd, (__m128i)mm);
#else
    for (int l = 0; l < VW / 2; l++)
        pe[l] = (w[l] & 0xFFFFFFFFu) * mm[l], po[l] = odd[l] * mm[l];
#endif
    *hi = (vu)((pe >> 32) | (po & 0xFFFFFFFF00000000u));
    *lo = (vu)((pe & 0xFFFFFFFFu) | (po << 32));
}

/* dropout.h's philox4x32_10 on VW counters at once, one per lane. */
INLINE void philox_lanes(vu c[4], uint32_t k0, uint32_t k1)
{
    vu c0 = c[0], c1 = c[1], c2 = c[2], c3 = c[3];
    for (int round = 0; round < PHILOX_ROUNDS; round++) {
        vu hi0, lo0, hi1, lo1;
        mulhilo_lanes(c0, PHILOX_M0, &hi0, &lo0);
        mulhilo_lanes(c2, PHILOX_M1, &hi1, &lo1);
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    c[0] = c0, c[1] = c1, c[2] = c2, c[3] = c3;
}

/* keep[j] = dropout_keep(...) (dropout.h) for the H units of one row: unit j takes output j % 4 of the
 * Philox block whose counter is ctr with its first word, the group, j / 4. VW groups at a time, one per
 * lane; the decisions are those of the scalar generator, bit for bit. */
static void KERNEL(dropout_keep)(uint8_t *keep, int H, const uint32_t ctr[4], const uint32_t key[2],
                                 uint32_t threshold)
{
    const int groups = (H + 3) / 4;
    vu lane;
    for (int l = 0; l < VW; l++)
        lane[l] = (uint32_t)l;
    for (int g0 = 0; g0 < groups; g0 += VW) {
        vu c[4] = {lane + (uint32_t)g0, (vu){0} + ctr[1], (vu){0} + ctr[2], (vu){0} + ctr[3]};
        philox_lanes(c, key[0], key[1]);
        const int n = groups - g0 < VW ? groups - g0 : VW;
        uint8_t *out = keep + 4 * (size_t)g0;
        for (int l = 0; l < n; l++)
            for (int k = 0; k < 4; k++)
                if (4 * (g0 + l) + k < H)
                    out[4 * l + k] = c[k][l] >= threshold;
    }
}

const Kernels KERNEL(kernels) = {
    .name = KERNELS_NAME,
    .mr = MR,
    .nr = NR,
    .tile = KERNEL(tile),
    .row = KERNEL(row),
    .nt_rows = KERNEL(nt_rows),
    .tanh = KERNEL(tanh),
    .softmax_xent = KERNEL(softmax_xent),
    .adam = KERNEL(adam),
    .sgd = KERNEL(sgd),
    .sum_squares = KERNEL(sum_squares),
    .dropout_keep = KERNEL(dropout_keep),
};
