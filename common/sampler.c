#include "sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int descending(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

int sample_logits(const float *logits, int V, const SamplerConfig *s, Rng *rng, float *scratch)
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
    double r = (double)rng_uniform(rng) * total;
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
    for (size_t i = 0; rc == 0 && i < (n_prime ? n_prime : 1); i++)
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
