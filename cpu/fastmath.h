/* Elementwise math the CPU backend needs many millions of times per step, written so that loops
 * calling it vectorise (no branches, no library calls). The polynomials are macros over the arithmetic
 * operators alone, so that the vector kernels (kernels_body.h) evaluate the very same expressions on
 * whole vector registers. */
#ifndef CHARRNN_FASTMATH_H
#define CHARRNN_FASTMATH_H

#include <stdint.h>
#include <string.h>

/* tanh as the rational function Eigen uses for float (a 13th/6th-degree odd/even polynomial pair,
 * clamped where tanh rounds to +-1): within FAST_TANH_ERROR of tanh everywhere (about 7 ulp at worst,
 * near 5.83, found by checking every float), several times faster than libm's tanhf. */
#define FAST_TANH_ERROR 4.2e-7
#define TANH_CLAMP 7.90531110763549805f /* tanh of this is 1 in float */
#define TANH_LINEAR 0.0004f             /* below this, tanh(a) = a in float */
/* p / q approximates tanh(x) for x clamped to +-TANH_CLAMP, x2 = x * x (float or vector alike). */
#define TANH_RATIONAL(p, q, x, x2)                                                                                     \
    p = (x2) * -2.76076847742355e-16f + 2.00018790482477e-13f;                                                         \
    p = p * (x2) + -8.60467152213735e-11f;                                                                             \
    p = p * (x2) + 5.12229709037114e-08f;                                                                              \
    p = p * (x2) + 1.48572235717979e-05f;                                                                              \
    p = p * (x2) + 6.37261928875436e-04f;                                                                              \
    p = p * (x2) + 4.89352455891786e-03f;                                                                              \
    p = p * (x);                                                                                                       \
    q = (x2)*1.19825839466702e-06f + 1.18534705686654e-04f;                                                            \
    q = q * (x2) + 2.26843463243900e-03f;                                                                              \
    q = q * (x2) + 4.89352518554385e-03f

static inline float fast_tanhf(float a)
{
    /* Comparisons false for NaN leave it in place, so a NaN stays NaN (the trainer looks for it). */
    float x = a > TANH_CLAMP ? TANH_CLAMP : a;
    x = x < -TANH_CLAMP ? -TANH_CLAMP : x;
    const float x2 = x * x;
    float p, q;
    TANH_RATIONAL(p, q, x, x2);
    const float r = p / q; /* computed either way: no branch */
    return (a < TANH_LINEAR && a > -TANH_LINEAR) ? a : r;
}

/* exp as Cephes' expf computes it: 2^n exp(r) with n = round(x / ln 2) and |r| <= ln 2 / 2, exp(r) from
 * a degree-7 polynomial. Within FAST_EXP_ERROR of exp, relatively (measured 8.5e-8 over every float in
 * [EXP_LOWEST, EXP_HIGHEST]); inputs are clamped to that range, so the result is never 0 or infinite
 * (a NaN stays NaN). Softmax only ever needs it below 0. */
#define FAST_EXP_ERROR 1e-7
#define EXP_LOWEST -87.33654f /* exp of this is FLT_MIN, the smallest normal float */
#define EXP_HIGHEST 88.0f     /* keeps 2^n finite */
#define EXP_ROUND 12582912.0f /* 1.5 * 2^23: adding it rounds to an integer, kept in the low mantissa bits */
#define EXP_ROUND_BITS 0x4B400000
#define EXP_LN2_HI 0.693359375f /* ln 2 in two parts: n * LN2_HI is exact */
#define EXP_LN2_LO -2.12194440e-4f
/* e = exp(r) for |r| <= ln 2 / 2 (float or vector alike) */
#define EXP_POLYNOMIAL(e, r)                                                                                           \
    e = 1.9875691500e-4f * (r) + 1.3981999507e-3f;                                                                     \
    e = e * (r) + 8.3334519073e-3f;                                                                                    \
    e = e * (r) + 4.1665795894e-2f;                                                                                    \
    e = e * (r) + 1.6666665459e-1f;                                                                                    \
    e = e * (r) + 5.0000001201e-1f;                                                                                    \
    e = e * ((r) * (r)) + (r) + 1.0f

static inline float fast_expf(float a)
{
    float x = a > EXP_HIGHEST ? EXP_HIGHEST : a;
    x = x < EXP_LOWEST ? EXP_LOWEST : x;
    const float t = x * 1.44269504088896341f + EXP_ROUND;
    const float n = t - EXP_ROUND;
    const float r = (x - n * EXP_LN2_HI) - n * EXP_LN2_LO;
    uint32_t bits;
    memcpy(&bits, &t, sizeof bits);
    bits = (bits - EXP_ROUND_BITS + 127u) << 23; /* 2^n as a float's bits */
    float scale, e;
    memcpy(&scale, &bits, sizeof scale);
    EXP_POLYNOMIAL(e, r);
    return e * scale;
}

#endif
