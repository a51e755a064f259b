/* Data: the split, the two batch modes, stateful streams and determinism. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "data.h"
#include "testutil.h"

static Dataset text_dataset(const char *text, float val_fraction)
{
    Dataset d;
    Err e;
    cr_assert_eq(dataset_from_text(&d, (const uint8_t *)text, strlen(text), val_fraction, "text", &e), 0, "%s", e.msg);
    return d;
}

static char *periodic_text(size_t n)
{
    char *s = malloc(n + 1);
    for (size_t i = 0; i < n; i++)
        s[i] = (char)('a' + (i * 7 + i / 13) % 26);
    s[n] = 0;
    return s;
}

Test(data, window_contexts_of_first_match_the_seed)
{
    Vocab v;
    Err e;
    const char *chars = SHAKESPEARE_CHARS;
    cr_assert_eq(vocab_build(&v, (const uint8_t *)chars, strlen(chars), "chars", &e), 0);
    token_t tokens[5];
    size_t n;
    cr_assert_eq(vocab_encode(&v, (const uint8_t *)"First", 5, tokens, &n, "First", &e), 0);
    enum { T = 3, B = 5 };
    token_t x[T * B], y[T * B];
    memset(y, 0xFF, sizeof y);
    for (int b = 0; b < B; b++)
        window_example(tokens, (size_t)b, T, B, b, x, y);
    const int contexts[B][T] = {{0, 0, 0}, {0, 0, 18}, {0, 18, 47}, {18, 47, 56}, {47, 56, 57}};
    const int targets[B] = {18, 47, 56, 57, 58};
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++)
            cr_assert_eq(x[t * B + b], contexts[b][t], "example %d, step %d (time-major x[t * B + b])", b, t);
        cr_assert_eq(y[(T - 1) * B + b], targets[b]);
    }
    vocab_free(&v);
}

Test(data, split_is_first_part_train_last_part_validation)
{
    char *text = periodic_text(1000);
    Dataset d = text_dataset(text, 0.1f);
    cr_assert_eq(d.n, 1000u);
    cr_assert_eq(d.n_train, 900u);
    dataset_free(&d);
    d = text_dataset(text, 0.25f);
    cr_assert_eq(d.n_train, 750u);
    dataset_free(&d);
    d = text_dataset(text, 0.0f);
    cr_assert_eq(d.n_train, 1000u);
    dataset_free(&d);
    d = text_dataset(text, 0.07f); /* floating point would give 929 (found by fuzzing) */
    cr_assert_eq(d.n_train, 930u);
    dataset_free(&d);
    text[90] = 0;
    d = text_dataset(text, 0.3f);
    cr_assert_eq(d.n_train, 63u);
    dataset_free(&d);
    free(text);
}

Test(data, seq_batches_are_text_windows_shifted_by_one)
{
    char *text = periodic_text(5000);
    Dataset d = text_dataset(text, 0.1f);
    enum { T = 9, B = 7 };
    Batcher bt;
    Err e;
    cr_assert_eq(batcher_init(&bt, MODE_SEQ, 0, T, B, d.tokens, d.n_train, 3, &e), 0);
    token_t x[T * B], y[T * B];
    for (int k = 0; k < 20; k++) {
        cr_assert_eq(batcher_next(&bt, x, y), 0, "random sequences never carry state");
        for (int b = 0; b < B; b++) {
            /* find where column b starts: the text must contain x[., b] followed by y[T-1, b] */
            int found = 0;
            for (size_t s = 0; s + T < d.n_train && !found; s++) {
                int ok = 1;
                for (int t = 0; t < T && ok; t++)
                    ok = d.tokens[s + t] == x[t * B + b] && d.tokens[s + t + 1] == y[t * B + b];
                found = ok;
            }
            cr_assert(found, "column %d is not a window of the training split", b);
        }
    }
    dataset_free(&d);
    free(text);
}

Test(data, stateful_streams_are_contiguous_and_wrap_with_a_fresh_state)
{
    char *text = periodic_text(1000);
    Dataset d = text_dataset(text, 0.0f);
    enum { T = 10, B = 4 };
    Batcher bt;
    Err e;
    cr_assert_eq(batcher_init(&bt, MODE_SEQ, 1, T, B, d.tokens, d.n, 1, &e), 0);
    token_t x[T * B], y[T * B];
    const size_t stream = d.n / B; /* 250: batches at offsets 0, 10, ..., 230, then wrap */
    for (int k = 0; k < 30; k++) {
        int carry = batcher_next(&bt, x, y);
        size_t pos = (size_t)(k % 24) * T; /* 24 batches of T+1 tokens fit in a stream of 250 */
        cr_assert_eq(carry, k % 24 != 0, "batch %d", k);
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++) {
                cr_assert_eq(x[t * B + b], d.tokens[(size_t)b * stream + pos + (size_t)t]);
                cr_assert_eq(y[t * B + b], d.tokens[(size_t)b * stream + pos + (size_t)t + 1]);
            }
    }
    dataset_free(&d);
    free(text);
}

static void draw(uint64_t seed, BatchMode mode, token_t *x, token_t *y, const Dataset *d)
{
    Batcher bt;
    Err e;
    cr_assert_eq(batcher_init(&bt, mode, 0, 8, 5, d->tokens, d->n_train, seed, &e), 0);
    for (int k = 0; k < 3; k++)
        batcher_next(&bt, x + k * 40, y + k * 40);
}

Test(data, batches_are_deterministic_for_a_seed)
{
    char *text = periodic_text(3000);
    Dataset d = text_dataset(text, 0.1f);
    for (int mode = MODE_SEQ; mode <= MODE_WINDOW; mode++) {
        token_t x1[120], y1[120], x2[120], y2[120], x3[120], y3[120];
        draw(11, (BatchMode)mode, x1, y1, &d);
        draw(11, (BatchMode)mode, x2, y2, &d);
        draw(12, (BatchMode)mode, x3, y3, &d);
        cr_assert(memcmp(x1, x2, sizeof x1) == 0 && memcmp(y1, y2, sizeof y1) == 0, "same seed, same batches");
        cr_assert(memcmp(x1, x3, sizeof x1) != 0, "another seed, other batches");
    }
    dataset_free(&d);
    free(text);
}

Test(data, evaluation_visits_every_chunk_once_when_unlimited)
{
    char *text = periodic_text(101);
    Dataset d = text_dataset(text, 0.0f);
    const int T = 10;
    size_t total = eval_examples(MODE_SEQ, d.n, T);
    cr_assert_eq(total, 10u); /* (101 - 1) / 10 */
    token_t x[10 * 4], y[10 * 4];
    for (size_t first = 0; first < total; first += 4) {
        int count = total - first < 4 ? (int)(total - first) : 4;
        eval_batch(MODE_SEQ, d.tokens, T, total, total, first, count, x, y);
        for (int b = 0; b < count; b++)
            for (int t = 0; t < T; t++) {
                cr_assert_eq(x[t * count + b], d.tokens[(first + (size_t)b) * T + (size_t)t]);
                cr_assert_eq(y[t * count + b], d.tokens[(first + (size_t)b) * T + (size_t)t + 1]);
            }
    }
    cr_assert_eq(eval_examples(MODE_WINDOW, d.n, T), d.n);
    dataset_free(&d);
    free(text);
}

Test(data, rejects_empty_and_single_character_texts)
{
    Dataset d;
    Err e;
    cr_assert_eq(dataset_from_text(&d, (const uint8_t *)"", 0, 0.1f, "empty.txt", &e), -1);
    cr_assert(strstr(e.msg, "empty.txt: is empty"), "%s", e.msg);
    cr_assert_eq(dataset_from_text(&d, (const uint8_t *)"aaaa", 4, 0.1f, "a.txt", &e), -1);
    cr_assert(strstr(e.msg, "only one distinct character"), "%s", e.msg);
}

Test(data, sequence_longer_than_the_split_is_refused)
{
    Dataset d = text_dataset("abcdefghij", 0.0f);
    Batcher bt;
    Err e;
    cr_assert_eq(batcher_init(&bt, MODE_SEQ, 0, 10, 2, d.tokens, d.n, 1, &e), -1);
    cr_assert(strstr(e.msg, "--seq-len 10"), "%s", e.msg);
    cr_assert_eq(batcher_init(&bt, MODE_SEQ, 0, 9, 2, d.tokens, d.n, 1, &e), 0);
    dataset_free(&d);
}
