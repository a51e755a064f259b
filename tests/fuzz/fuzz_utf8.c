/* libFuzzer target: the UTF-8 decoder and the vocabulary built on it.
 *
 * The input is a text. A small reference validator written from the Unicode standard's table of
 * well-formed byte sequences (Table 3-7) says what utf8_decode must accept; then vocab_build,
 * vocab_encode, vocab_to_utf8 / vocab_from_utf8 and dataset_from_text (its validation fraction,
 * k/100 with k = first byte % 51, taken from the input) are checked against it and against each
 * other. Any violated invariant aborts, so the fuzzer reports it with the input. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data.h"
#include "vocab.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_utf8: invariant violated: %s (line %d)\n", #cond, __LINE__); \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* Length of the well-formed sequence at s[0..n), with its code point in *cp, or 0 if ill-formed. */
static size_t ref_decode(const uint8_t *s, size_t n, uint32_t *cp)
{
    uint8_t c = s[0];
    size_t len;
    uint8_t lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c <= 0x7F) {
        *cp = c;
        return 1;
    } else if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0)
            lo = 0xA0;
        if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0)
            lo = 0x90;
        if (c == 0xF4)
            hi = 0x8F;
    } else {
        return 0;
    }
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t k = 2; k < len; k++)
        if (s[k] < 0x80 || s[k] > 0xBF)
            return 0;
    uint32_t v = c & (0xFF >> (len + 1));
    for (size_t k = 1; k < len; k++)
        v = (v << 6) | (s[k] & 0x3F);
    *cp = v;
    return len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n)
{
    /* Decode the whole input with the reference and with utf8_decode, side by side. */
    uint32_t *cps = malloc(sizeof(uint32_t) * (n ? n : 1));
    size_t chars = 0, bad_at = SIZE_MAX;
    for (size_t pos = 0; pos < n;) {
        uint32_t ref_cp = 0, cp = 0;
        size_t ref_len = ref_decode(data + pos, n - pos, &ref_cp), next = pos;
        const char *why = utf8_decode(data, n, &next, &cp);
        CHECK((why == NULL) == (ref_len != 0));
        if (why) {
            CHECK(next == pos); /* an error does not advance */
            bad_at = pos;
            break;
        }
        CHECK(next - pos == ref_len && cp == ref_cp);
        char enc[4];
        CHECK(utf8_encode(cp, enc) == (int)ref_len && memcmp(enc, data + pos, ref_len) == 0);
        cps[chars++] = cp;
        pos = next;
    }
    int valid = bad_at == SIZE_MAX;

    /* vocab_build: the exact set of code points, sorted, or an error naming the first bad offset. */
    Vocab v;
    Err e;
    int rc = vocab_build(&v, data, n, "fuzz", &e);
    CHECK((rc == 0) == valid);
    if (!valid) {
        char expect[48];
        snprintf(expect, sizeof expect, "at byte offset %zu (", bad_at);
        CHECK(strstr(e.msg, expect) != NULL);
        CHECK(v.codepoints == NULL && v.size == 0);
    } else {
        for (int i = 1; i < v.size; i++)
            CHECK(v.codepoints[i - 1] < v.codepoints[i]);
        CHECK((v.size == 0) == (chars == 0));

        /* vocab_encode gives one token per character, and the tokens spell the text again. */
        token_t *tokens = malloc(sizeof(token_t) * (n ? n : 1));
        uint8_t *used = calloc((size_t)v.size + 1, 1);
        size_t count = 0;
        CHECK(vocab_encode(&v, data, n, tokens, &count, "fuzz", &e) == 0);
        CHECK(count == chars);
        for (size_t i = 0; i < count; i++) {
            CHECK(tokens[i] < v.size && v.codepoints[tokens[i]] == cps[i]);
            CHECK(vocab_index(&v, cps[i]) == tokens[i]);
            used[tokens[i]] = 1;
        }
        for (int i = 0; i < v.size; i++)
            CHECK(used[i]); /* nothing in the vocabulary that is not in the text */

        /* Without one of its characters, the encoding fails at that character's first occurrence. */
        if (v.size > 0) {
            int drop = (int)(data[n - 1] % (unsigned)v.size);
            Vocab fewer = {v.size - 1, malloc(sizeof(uint32_t) * (size_t)v.size)};
            for (int i = 0, k = 0; i < v.size; i++)
                if (i != drop)
                    fewer.codepoints[k++] = v.codepoints[i];
            token_t *scratch = malloc(sizeof(token_t) * n);
            size_t first = 0, offset = 0, scratch_count = 0;
            while (cps[first] != v.codepoints[drop]) {
                char enc[4];
                offset += (size_t)utf8_encode(cps[first++], enc);
            }
            char expect[48];
            snprintf(expect, sizeof expect, "at byte offset %zu is not in", offset);
            CHECK(vocab_encode(&fewer, data, n, scratch, &scratch_count, "fuzz", &e) != 0);
            CHECK(strstr(e.msg, expect) != NULL);
            vocab_free(&fewer);
            free(scratch);
        }

        /* The vocabulary survives its checkpoint form. */
        uint8_t *stored;
        size_t stored_len;
        Vocab back;
        CHECK(vocab_to_utf8(&v, &stored, &stored_len, &e) == 0);
        CHECK(vocab_from_utf8(&back, stored, stored_len, &e) == 0);
        CHECK(vocab_equal(&v, &back));
        vocab_free(&back);
        free(stored);

        /* dataset_from_text: the same vocabulary and tokens, split at exactly k% of the characters. */
        unsigned k = n ? data[0] % 51u : 0;
        Dataset d;
        rc = dataset_from_text(&d, data, n, (float)k / 100.0f, "fuzz", &e);
        CHECK((rc == 0) == (n > 0 && v.size >= 2));
        if (rc == 0) {
            CHECK(vocab_equal(&d.vocab, &v));
            CHECK(d.n == count && memcmp(d.tokens, tokens, sizeof(token_t) * count) == 0); /* count > 0 here */
            CHECK(d.file_bytes == n && d.file_crc == crc32_update(0, data, n));
            CHECK(d.n_train == d.n * (100 - k) / 100);
            dataset_free(&d);
        } else {
            CHECK(d.tokens == NULL && d.vocab.codepoints == NULL);
        }
        free(used);
        free(tokens);
        vocab_free(&v);
    }

    /* vocab_from_utf8 on the raw input: accepted exactly when it is valid UTF-8 whose code points
     * strictly increase, and then written back byte for byte. */
    int increasing = valid;
    for (size_t i = 1; increasing && i < chars; i++)
        increasing = cps[i - 1] < cps[i];
    Vocab w;
    rc = vocab_from_utf8(&w, data, n, &e);
    CHECK((rc == 0) == (increasing && chars <= VOCAB_MAX_SIZE));
    if (rc != 0)
        CHECK(w.codepoints == NULL && w.size == 0);
    if (rc == 0) {
        uint8_t *stored;
        size_t stored_len;
        CHECK(w.size == (int)chars);
        CHECK(vocab_to_utf8(&w, &stored, &stored_len, &e) == 0);
        CHECK(stored_len == n && (n == 0 || memcmp(stored, data, n) == 0));
        free(stored);
        vocab_free(&w);
    }
    free(cps);
    return 0;
}
