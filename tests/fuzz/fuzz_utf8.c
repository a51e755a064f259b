/* libFuzzer target: the UTF-8 decoder, the vocabulary and the dataset built on it.
 *
 * The input is a text. A small reference decoder written from the Unicode standard's table of
 * well-formed byte sequences (Table 3-7) says what utf8_decode must accept; then vocab_build,
 * vocab_encode, vocab_to_utf8 / vocab_from_utf8 and dataset_from_text are checked against it and
 * against each other. dataset_from_text's validation fraction is k/100 with k = first byte % 51.
 *
 * dataset_from_text reads its text in chunks of 1 MiB (data.c's READ_CHUNK), finishing a sequence split
 * between two chunks with the next one. An input that starts with 0xF8 (a byte UTF-8 never uses) tests
 * that: F8 K C TEXT puts TEXT after 'x' filler so that the chunk boundary falls C % (len(TEXT) + 1)
 * bytes into it, and checks the dataset of the whole (k = K % 51).
 *
 * Any violated invariant aborts, so the fuzzer reports it with the input. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data.h"
#include "vocab.h"

#define CHECK(cond)                                                                                                    \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            fprintf(stderr, "fuzz_utf8: invariant violated: %s (line %d)\n", #cond, __LINE__);                         \
            abort();                                                                                                   \
        }                                                                                                              \
    } while (0)

#define CHUNK (1u << 20) /* data.c's READ_CHUNK */
#define STRADDLE_MARKER 0xF8
#define UNICODE_LIMIT 0x110000u

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

/* A text decoded by the reference: its code points up to the first ill-formed byte. */
typedef struct {
    uint32_t *cps; /* [chars] */
    size_t chars;
    size_t bad_at; /* byte offset of the first ill-formed sequence, SIZE_MAX if none */
    size_t nul_at; /* byte offset of the first U+0000 before it, SIZE_MAX if none */
} Decoded;

static Decoded decode(const uint8_t *s, size_t n)
{
    Decoded d = {malloc(sizeof(uint32_t) * (n ? n : 1)), 0, SIZE_MAX, SIZE_MAX};
    for (size_t pos = 0; pos < n;) {
        uint32_t cp;
        size_t len = ref_decode(s + pos, n - pos, &cp);
        if (!len) {
            d.bad_at = pos;
            break;
        }
        if (cp == 0 && d.nul_at == SIZE_MAX)
            d.nul_at = pos;
        d.cps[d.chars++] = cp;
        pos += len;
    }
    return d;
}

static void check_message(const Err *e, const char *fmt, size_t offset)
{
    char expect[96];
    snprintf(expect, sizeof expect, fmt, offset);
    CHECK(strstr(e->msg, expect) != NULL);
}

/* dataset_from_text: refuses an ill-formed text, a NUL character, an empty text or a single distinct
 * character, each with the right offset; else holds exactly the text's characters, split at k%. */
static void check_dataset(const uint8_t *text, size_t n, unsigned k)
{
    Decoded ref = decode(text, n);
    Dataset d;
    Err e;
    int rc = dataset_from_text(&d, text, n, (float)k / 100.0f, "fuzz", &e);
    if (ref.bad_at != SIZE_MAX && ref.nul_at == SIZE_MAX) {
        CHECK(rc != 0);
        check_message(&e, "at byte offset %zu (", ref.bad_at);
    } else if (ref.nul_at != SIZE_MAX) {
        CHECK(rc != 0);
        check_message(&e, "NUL byte at offset %zu;", ref.nul_at);
    } else if (n == 0) {
        CHECK(rc != 0);
    } else {
        uint8_t *seen = calloc(UNICODE_LIMIT / 8, 1);
        int distinct = 0;
        for (size_t i = 0; i < ref.chars; i++) {
            uint32_t cp = ref.cps[i];
            distinct += !(seen[cp >> 3] & (1u << (cp & 7)));
            seen[cp >> 3] |= (uint8_t)(1u << (cp & 7));
        }
        CHECK((rc == 0) == (distinct >= 2));
        if (rc == 0) {
            CHECK(d.vocab.size == distinct);
            for (int i = 0; i < d.vocab.size; i++) {
                uint32_t cp = d.vocab.codepoints[i];
                CHECK(cp < UNICODE_LIMIT && (seen[cp >> 3] & (1u << (cp & 7))));
                CHECK(i == 0 || d.vocab.codepoints[i - 1] < cp);
            }
            CHECK(d.n == ref.chars);
            for (size_t i = 0; i < d.n; i++)
                CHECK(d.tokens[i] < d.vocab.size && d.vocab.codepoints[d.tokens[i]] == ref.cps[i]);
            CHECK(d.file_bytes == n && d.file_crc == crc32_update(0, text, n));
            /* k% read as the decimal it was written as: the last ceil(n k / 100) characters validate. */
            CHECK(d.n_train == d.n * (100 - k) / 100);
            dataset_free(&d);
        }
        free(seen);
    }
    if (rc != 0)
        CHECK(d.tokens == NULL && d.vocab.codepoints == NULL);
    free(ref.cps);
}

/* The text placed so that a chunk boundary of dataset_from_text falls `cut` bytes into it. */
static void check_straddle(const uint8_t *text, size_t n, unsigned k, size_t cut)
{
    size_t filler = CHUNK - cut, total = filler + n;
    uint8_t *buf = malloc(total);
    memset(buf, 'x', filler);
    memcpy(buf + filler, text, n);
    check_dataset(buf, total, k);
    free(buf);
}

/* utf8_decode and utf8_encode against the reference, then the vocabulary functions. */
static void check_vocab(const uint8_t *data, size_t n)
{
    Decoded ref = decode(data, n);
    for (size_t pos = 0, i = 0; pos < n; i++) {
        uint32_t cp = 0;
        size_t next = pos;
        const char *why = utf8_decode(data, n, &next, &cp);
        if (pos == ref.bad_at) {
            CHECK(why != NULL && next == pos); /* an error does not advance */
            break;
        }
        CHECK(why == NULL && cp == ref.cps[i]);
        char enc[4];
        CHECK(utf8_encode(cp, enc) == (int)(next - pos) && memcmp(enc, data + pos, next - pos) == 0);
        pos = next;
    }
    int valid = ref.bad_at == SIZE_MAX;

    /* vocab_build: the exact set of code points, sorted, or an error naming the first bad offset. */
    Vocab v;
    Err e;
    int rc = vocab_build(&v, data, n, "fuzz", &e);
    CHECK((rc == 0) == valid);
    if (!valid) {
        check_message(&e, "at byte offset %zu (", ref.bad_at);
        CHECK(v.codepoints == NULL && v.size == 0);
    } else {
        for (int i = 1; i < v.size; i++)
            CHECK(v.codepoints[i - 1] < v.codepoints[i]);
        CHECK((v.size == 0) == (ref.chars == 0));

        /* vocab_encode gives one token per character, and the tokens spell the text again. */
        token_t *tokens = malloc(sizeof(token_t) * (n ? n : 1));
        uint8_t *used = calloc((size_t)v.size + 1, 1);
        size_t count = 0;
        CHECK(vocab_encode(&v, data, n, tokens, &count, "fuzz", &e) == 0);
        CHECK(count == ref.chars);
        for (size_t i = 0; i < count; i++) {
            CHECK(tokens[i] < v.size && v.codepoints[tokens[i]] == ref.cps[i]);
            CHECK(vocab_index(&v, ref.cps[i]) == tokens[i]);
            used[tokens[i]] = 1;
        }
        for (int i = 0; i < v.size; i++)
            CHECK(used[i]); /* nothing in the vocabulary that is not in the text */

        /* Without one of its characters, the encoding fails at that character's first occurrence. */
        if (v.size > 0) {
            int drop = (int)(data[n - 1] % (unsigned)v.size);
            Vocab fewer = {v.size - 1, malloc(sizeof(uint32_t) * (size_t)v.size)};
            for (int i = 0, j = 0; i < v.size; i++)
                if (i != drop)
                    fewer.codepoints[j++] = v.codepoints[i];
            size_t first = 0, offset = 0;
            while (ref.cps[first] != v.codepoints[drop]) {
                char enc[4];
                offset += (size_t)utf8_encode(ref.cps[first++], enc);
            }
            token_t *scratch = malloc(sizeof(token_t) * n);
            size_t scratch_count = 0;
            CHECK(vocab_encode(&fewer, data, n, scratch, &scratch_count, "fuzz", &e) != 0);
            check_message(&e, "at byte offset %zu is not in", offset);
            free(scratch);
            vocab_free(&fewer);
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
        free(used);
        free(tokens);
        vocab_free(&v);
    }

    /* vocab_from_utf8 on the raw input: accepted exactly when it is valid UTF-8 whose code points
     * strictly increase, and then written back byte for byte. */
    int increasing = valid && ref.chars <= VOCAB_MAX_SIZE;
    for (size_t i = 1; increasing && i < ref.chars; i++)
        increasing = ref.cps[i - 1] < ref.cps[i];
    Vocab w;
    rc = vocab_from_utf8(&w, data, n, &e);
    CHECK((rc == 0) == increasing);
    if (rc == 0) {
        uint8_t *stored;
        size_t stored_len;
        CHECK(w.size == (int)ref.chars);
        CHECK(vocab_to_utf8(&w, &stored, &stored_len, &e) == 0);
        CHECK(stored_len == n && (n == 0 || memcmp(stored, data, n) == 0));
        free(stored);
        vocab_free(&w);
    } else {
        CHECK(w.codepoints == NULL && w.size == 0);
    }
    free(ref.cps);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n)
{
    if (n >= 3 && data[0] == STRADDLE_MARKER) {
        check_straddle(data + 3, n - 3, data[1] % 51u, data[2] % (n - 3 + 1));
        return 0;
    }
    check_vocab(data, n);
    check_dataset(data, n, n ? data[0] % 51u : 0);
    return 0;
}
