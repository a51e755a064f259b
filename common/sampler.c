#include "sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* One thread of the 2-core EPYC development machine generates 21 to 23 G multiply-adds per second
 * (bench/RESULTS.md: 516,773 characters/s at 41 K multiply-adds per character, 84,010 at 279 K, 38,891
 * at 558 K). */
#define CPU_SAMPLE_MACS_PER_S 2.0e10
/* Assumed until a GPU run measures them: a launch, a two-byte copy back and the wait for it; and the
 * bytes per second one SM reads from L2 (about 64 bytes per cycle at 1.7 GHz). */
#define GPU_SAMPLE_LAUNCH_S 8e-6
#define GPU_SAMPLE_L2_BYTES_PER_S 1.0e11

double sample_seconds_cpu(const ModelConfig *cfg)
{
    const double E = cfg->embed, H = cfg->hidden, L = cfg->layers, V = cfg->vocab, G = cell_gates(cfg->cell);
    return (G * (E * H + H * H + (L - 1) * 2 * H * H) + H * V) / CPU_SAMPLE_MACS_PER_S;
}

/* Layer 0's input is a gathered row of Emb W_xh (the CUDA backend keeps it when V H is small), so the
 * kernel reads W_hh of every layer, W_xh above the first, and W_hy, once each. */
double sample_seconds_gpu(const ModelConfig *cfg)
{
    const double H = cfg->hidden, L = cfg->layers, V = cfg->vocab, G = cell_gates(cfg->cell);
    const double bytes = sizeof(float) * (G * (H * H + (L - 1) * 2 * H * H) + H * V + H);
    return GPU_SAMPLE_LAUNCH_S + bytes / GPU_SAMPLE_L2_BYTES_PER_S;
}

static int descending(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

int sample_logits(const float *logits, int V, const SamplerConfig *s, Rng *rng, float *scratch)
{
    return sample_from_uniform(logits, V, s, s->argmax ? 0.0f : rng_uniform(rng), scratch);
}

int sample_from_uniform(const float *logits, int V, const SamplerConfig *s, float u, float *scratch)
{
    int best = 0;
    for (int j = 1; j < V; j++)
        if (logits[j] > logits[best])
            best = j;
    if (s->argmax)
        return best;

    float threshold = -INFINITY;
    if (s->top_k > 0 && s->top_k < V) {
        float *sorted = scratch + V;
        memcpy(sorted, logits, sizeof(float) * (size_t)V);
        qsort(sorted, (size_t)V, sizeof(float), descending);
        threshold = sorted[s->top_k - 1];
    }
    float *p = scratch;
    double total = 0.0;
    for (int j = 0; j < V; j++) {
        p[j] = logits[j] >= threshold ? expf((logits[j] - logits[best]) / s->temperature) : 0.0f;
        total += p[j];
    }
    double r = (double)u * total;
    double acc = 0.0;
    int last = best;
    for (int j = 0; j < V; j++) {
        if (p[j] == 0.0f)
            continue;
        acc += p[j];
        last = j;
        if (r < acc)
            return j;
    }
    return last; /* r landed on the rounding slack at the very end */
}

int generate(Backend *be, const Vocab *vocab, const SamplerConfig *s, Rng *rng, const token_t *prime, size_t n_prime,
             long length, EmitFn emit, void *arg, Err *e)
{
    const int V = be->cfg.vocab;
    float *logits = malloc(sizeof(float) * 3 * (size_t)V); /* logits, then the sampler's scratch */
    if (!logits)
        return err_set(e, "out of memory");
    int rc = be->ops->sample_reset(be->ctx, e);
    const size_t fed = n_prime ? n_prime : 1;
    if (be->ops->sample_token) { /* the device draws: one token each way per character */
        int token = 0;
        for (size_t i = 0; rc == 0 && i < fed; i++) { /* the prime's last character draws the first */
            const int draw = i + 1 == fed && length > 0;
            rc = be->ops->sample_token(be->ctx, n_prime ? prime[i] : 0, draw ? s : NULL,
                                       draw && !s->argmax ? rng_uniform(rng) : 0.0f, &token, e);
        }
        for (long i = 0; rc == 0 && i < length; i++) {
            rc = emit(vocab->codepoints[token], arg, e);
            if (rc == 0 && i + 1 < length)
                rc = be->ops->sample_token(be->ctx, token, s, s->argmax ? 0.0f : rng_uniform(rng), &token, e);
        }
        free(logits);
        return rc;
    }
    for (size_t i = 0; rc == 0 && i < fed; i++)
        rc = be->ops->sample_step(be->ctx, n_prime ? prime[i] : 0, logits, e);
    for (long i = 0; rc == 0 && i < length; i++) {
        int token = sample_logits(logits, V, s, rng, logits + V);
        rc = emit(vocab->codepoints[token], arg, e);
        if (rc == 0 && i + 1 < length)
            rc = be->ops->sample_step(be->ctx, token, logits, e);
    }
    free(logits);
    return rc;
}
