/* Turning logits into the next character (temperature, top-k or argmax, with our own seeded RNG), and
 * generating a stream of characters from a model one token at a time. */
#ifndef CHARRNN_SAMPLER_H
#define CHARRNN_SAMPLER_H

#include "backend.h"
#include "util.h"
#include "vocab.h"

typedef struct {
    float temperature; /* > 0; below 1 sharpens, above 1 flattens */
    int top_k;         /* 0: every token; k: only the k most likely (ties with the k-th included) */
    int argmax;        /* always the most likely token (deterministic) */
} SamplerConfig;

/* scratch needs room for 2 V floats. */
int sample_logits(const float *logits, int V, const SamplerConfig *s, Rng *rng, float *scratch);

/* Streams `length` sampled characters to emit(), starting from a zero hidden state: the prime is fed
 * first (and not emitted); without a prime, the model starts from token 0 (a newline in most texts).
 * An emit() that fails (its output cannot be written) returns -1 with *e set, and generation stops. */
typedef int (*EmitFn)(uint32_t codepoint, void *arg, Err *e);
int generate(Backend *be, const Vocab *vocab, const SamplerConfig *s, Rng *rng, const token_t *prime, size_t n_prime,
             long length, EmitFn emit, void *arg, Err *e);

#endif
