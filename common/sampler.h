/* Turning logits into the next character (temperature, top-k or argmax, with our own seeded RNG), and
 * generating a stream of characters from a model one token at a time. */
#ifndef CHARRNN_SAMPLER_H
#define CHARRNN_SAMPLER_H

#include "backend.h"
#include "util.h"
#include "vocab.h"

typedef struct SamplerConfig {
    float temperature; /* > 0; below 1 sharpens, above 1 flattens */
    int top_k;         /* 0: every token; k: only the k most likely (ties with the k-th included) */
    int argmax;        /* always the most likely token (deterministic) */
} SamplerConfig;

/* The next token from the logits: the most likely with argmax; else, among the logits at least the k-th
 * largest (all without top-k), p_j = exp((z_j - z_max) / temperature), and the first j whose running
 * sum (in double, in index order) exceeds u times the total. scratch needs room for 2 V floats. */
int sample_from_uniform(const float *logits, int V, const SamplerConfig *s, float u, float *scratch);
/* The same with u drawn from rng (one draw, none with argmax). */
int sample_logits(const float *logits, int V, const SamplerConfig *s, Rng *rng, float *scratch);

/* The modelled time to generate one character with this model on the CPU backend (one thread) and on
 * the CUDA backend (one launch of its one-block kernel), in seconds; `sample --device auto` takes the
 * faster. The CPU's figure is the multiply-adds per character at the rate measured on the development
 * machine; the GPU's, the launch and the two-byte copy back, plus reading every weight from L2 at one
 * SM's bandwidth (bench/floor.py prints the same model for the tanh cell; the first GPU run measures both
 * terms). A gated cell's G gates multiply its recurrent weights, and so both figures' part for them. */
double sample_seconds_cpu(const ModelConfig *cfg);
double sample_seconds_gpu(const ModelConfig *cfg);

/* Streams `length` sampled characters to emit(), starting from a zero hidden state: the prime is fed
 * first (and not emitted); without a prime, the model starts from token 0 (a newline in most texts).
 * An emit() that fails (its output cannot be written) returns -1 with *e set, and generation stops. */
typedef int (*EmitFn)(uint32_t codepoint, void *arg, Err *e);
int generate(Backend *be, const Vocab *vocab, const SamplerConfig *s, Rng *rng, const token_t *prime, size_t n_prime,
             long length, EmitFn emit, void *arg, Err *e);

#endif
