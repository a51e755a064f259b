/* Dropout masks from a counter-based generator, the same on the CPU and on the GPU: each element's
 * keep/drop decision is a pure function of the run's seed, the step, and the element's layer, timestep,
 * batch row and unit, so that both backends (and a resumed run) draw the very same masks without
 * sharing any generator state. Plain C99; compiled by nvcc the functions run on host and device.
 *
 * The generator is Philox4x32-10 (Salmon, Moraes, Dror and Shaw, "Parallel random numbers: as easy as
 * 1, 2, 3", SC 2011), checked against the published known-answer vectors (tests/test_dropout.c). */
#ifndef CHARRNN_DROPOUT_H
#define CHARRNN_DROPOUT_H

#include <stdint.h>

#ifdef __CUDACC__
#define DROPOUT_FN static inline __host__ __device__
#else
#define DROPOUT_FN static inline
#endif

/* Philox4x32's round multipliers and key increments (the golden ratio and sqrt(3) - 1 in 32 bits), as
 * the paper defines them. */
#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u
#define PHILOX_ROUNDS 10
/* The counter holds a timestep in 16 bits (MAX_SEQ_LEN is 65536). */
#define DROPOUT_MAX_T 65536

/* out = Philox4x32-10(ctr, key): ten rounds of two 32x32 -> 64-bit products, the key bumped between. */
DROPOUT_FN void philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4])
{
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3], k0 = key[0], k1 = key[1];
    for (int round = 0; round < PHILOX_ROUNDS; round++) {
        const uint64_t p0 = (uint64_t)PHILOX_M0 * c0, p1 = (uint64_t)PHILOX_M1 * c2;
        const uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0, n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        c0 = n0;
        c1 = (uint32_t)p1;
        c2 = n2;
        c3 = (uint32_t)p0;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    out[0] = c0, out[1] = c1, out[2] = c2, out[3] = c3;
}

/* A uniform 32-bit r is dropped when r < threshold: p 2^32 rounded down, computed in double (exact for
 * a float p), and kept below 2^32 so that it fits. */
DROPOUT_FN uint32_t dropout_threshold(float p)
{
    const double t = (double)p * 4294967296.0;
    return t >= 4294967295.0 ? 0xFFFFFFFFu : (uint32_t)t;
}

/* Inverted dropout: a kept value is scaled by 1 / (1 - p), in float, so that the expected output is the
 * undropped one and evaluation needs no scaling. */
DROPOUT_FN float dropout_scale(float p)
{
    return 1.0f / (1.0f - p);
}

/* The generator's input for units 4 j4 .. 4 j4 + 3 of batch row `row` (global: the local row plus
 * Batch.dropout_row0) at timestep t of layer l's output, at training step `step`: the counter spells out
 * the element (the group of four units, the row, and t, l and step's high bits packed into one word,
 * step's low bits in the last); the key is the seed. Distinct for t < 2^16, l < 16, step < 2^44. */
DROPOUT_FN void dropout_counter(uint32_t ctr[4], uint32_t key[2], uint64_t seed, long step, int l, int t, int row,
                                int j4)
{
    const uint64_t s = (uint64_t)step;
    ctr[0] = (uint32_t)j4;
    ctr[1] = (uint32_t)row;
    ctr[2] = (uint32_t)t | (uint32_t)l << 16 | ((uint32_t)(s >> 32) & 0xFFFu) << 20;
    ctr[3] = (uint32_t)s;
    key[0] = (uint32_t)seed;
    key[1] = (uint32_t)(seed >> 32);
}

/* 1 when unit j of that element is kept: it takes output j % 4 of the block of its group j / 4. */
DROPOUT_FN int dropout_keep(uint64_t seed, long step, int l, int t, int row, int j, uint32_t threshold)
{
    uint32_t ctr[4], key[2], r[4];
    dropout_counter(ctr, key, seed, step, l, t, row, j / 4);
    philox4x32_10(ctr, key, r);
    return r[j % 4] >= threshold;
}

#undef DROPOUT_FN
#endif
