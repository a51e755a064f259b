#include "data.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int dataset_from_text(Dataset *d, const uint8_t *text, size_t n, float val_fraction, const char *name, Err *e)
{
    memset(d, 0, sizeof *d);
    if (n == 0)
        return err_set(e, "%s: is empty; training needs a text file", name);
    if (vocab_build(&d->vocab, text, n, name, e) != 0)
        return -1;
    if (d->vocab.size < 2) {
        vocab_free(&d->vocab);
        return err_set(e, "%s: contains only one distinct character; there is nothing to learn", name);
    }
    d->tokens = malloc(sizeof(token_t) * n);
    if (!d->tokens) {
        vocab_free(&d->vocab);
        return err_set(e, "%s: out of memory for %zu tokens", name, n);
    }
    if (vocab_encode(&d->vocab, text, n, d->tokens, &d->n, name, e) != 0) {
        dataset_free(d);
        return -1;
    }
    /* The fraction arrives as a float (0.1f is 0.10000000149...); read it as the decimal it was written as,
     * so that 10% of 1000 characters is 100, not 101. */
    double fraction = round((double)val_fraction * 1e6) / 1e6;
    d->n_train = (size_t)floor((double)d->n * (1.0 - fraction));
    d->file_bytes = n;
    d->file_crc = crc32_update(0, text, n);
    return 0;
}

int dataset_load(Dataset *d, const char *path, float val_fraction, Err *e)
{
    uint8_t *text;
    size_t n;
    memset(d, 0, sizeof *d);
    if (read_file(path, &text, &n, e) != 0)
        return -1;
    int rc = dataset_from_text(d, text, n, val_fraction, path, e);
    free(text);
    return rc;
}

void dataset_free(Dataset *d)
{
    vocab_free(&d->vocab);
    free(d->tokens);
    memset(d, 0, sizeof *d);
}

int tokens_load(const char *path, const Vocab *v, token_t **tokens, size_t *n, Err *e)
{
    uint8_t *text;
    size_t len;
    *tokens = NULL;
    *n = 0;
    if (read_file(path, &text, &len, e) != 0)
        return -1;
    token_t *t = malloc(sizeof(token_t) * (len ? len : 1));
    int rc = -1;
    if (!t)
        err_set(e, "%s: out of memory for %zu tokens", path, len);
    else
        rc = vocab_encode(v, text, len, t, n, path, e);
    free(text);
    if (rc != 0)
        free(t);
    else
        *tokens = t;
    return rc;
}

int batcher_check(BatchMode mode, int stateful, int T, int B, size_t n, Err *e)
{
    if (mode == MODE_WINDOW) {
        if (stateful)
            return err_set(e, "--stateful works with --mode seq only (window examples are independent)");
        if (n < 1)
            return err_set(e, "the training split is empty");
        return 0;
    }
    size_t need = stateful ? (size_t)B * ((size_t)T + 1) : (size_t)T + 1;
    if (n < need)
        return err_set(e, "--seq-len %d%s needs a training split of at least %zu characters, this one has %zu", T,
                       stateful ? " with --stateful and this --batch" : "", need, n);
    return 0;
}

int batcher_init(Batcher *bt, BatchMode mode, int stateful, int T, int B, const token_t *tokens, size_t n,
                 uint64_t seed, Err *e)
{
    memset(bt, 0, sizeof *bt);
    bt->mode = mode;
    bt->stateful = stateful;
    bt->T = T;
    bt->B = B;
    bt->tokens = tokens;
    bt->n = n;
    rng_seed(&bt->rng, seed);
    return batcher_check(mode, stateful, T, B, n, e);
}

size_t batcher_last_stream_pos(const Batcher *bt)
{
    return bt->n / (size_t)bt->B - (size_t)bt->T - 1;
}

int batcher_next(Batcher *bt, token_t *x, token_t *y)
{
    const int T = bt->T, B = bt->B;
    if (bt->mode == MODE_WINDOW) {
        memset(y, 0, sizeof(token_t) * (size_t)T * (size_t)B);
        for (int b = 0; b < B; b++)
            window_example(bt->tokens, rng_below(&bt->rng, bt->n), T, B, b, x, y);
        return 0;
    }
    int carry = 0;
    size_t stream_len = bt->n / (size_t)B;
    for (int b = 0; b < B; b++) {
        size_t start;
        if (bt->stateful) {
            if (b == 0) {
                if (bt->stream_pos > batcher_last_stream_pos(bt))
                    bt->stream_pos = 0; /* wrap: every stream starts over together, with a fresh state */
                carry = bt->stream_pos != 0;
            }
            start = (size_t)b * stream_len + bt->stream_pos;
        } else {
            start = rng_below(&bt->rng, bt->n - (size_t)T);
        }
        for (int t = 0; t < T; t++) {
            x[t * B + b] = bt->tokens[start + (size_t)t];
            y[t * B + b] = bt->tokens[start + (size_t)t + 1];
        }
    }
    if (bt->stateful)
        bt->stream_pos += (uint64_t)T;
    return carry;
}

void window_example(const token_t *tokens, size_t p, int T, int B, int b, token_t *x, token_t *y)
{
    for (int t = 0; t < T; t++) {
        size_t back = (size_t)(T - t); /* x at step t is the token `back` places before the target */
        x[t * B + b] = p >= back ? tokens[p - back] : 0;
    }
    y[(T - 1) * B + b] = tokens[p];
}

size_t eval_examples(BatchMode mode, size_t n, int T)
{
    if (mode == MODE_WINDOW)
        return n;
    return n > 1 ? (n - 1) / (size_t)T : 0;
}

void eval_batch(BatchMode mode, const token_t *tokens, int T, size_t total, size_t used, size_t first, int count,
                token_t *x, token_t *y)
{
    const int B = count;
    if (mode == MODE_WINDOW)
        memset(y, 0, sizeof(token_t) * (size_t)T * (size_t)B);
    for (int b = 0; b < B; b++) {
        size_t k = (size_t)((uint64_t)(first + (size_t)b) * total / used); /* spread evenly */
        if (mode == MODE_WINDOW) {
            window_example(tokens, k, T, B, b, x, y);
            continue;
        }
        size_t start = k * (size_t)T;
        for (int t = 0; t < T; t++) {
            x[t * B + b] = tokens[start + (size_t)t];
            y[t * B + b] = tokens[start + (size_t)t + 1];
        }
    }
}
