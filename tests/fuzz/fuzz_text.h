/* Shared by fuzz_utf8.c and fuzz_dataset.c: a reference UTF-8 decoder written from the Unicode
 * standard's table of well-formed byte sequences (Table 3-7), independent of common/vocab.c, and the
 * check of dataset_from_text against it. Static functions: include it in one file per fuzzer. */
#ifndef CHARRNN_FUZZ_TEXT_H
#define CHARRNN_FUZZ_TEXT_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data.h"
#include "vocab.h"

/* Aborts, so that libFuzzer reports the input, when an invariant does not hold. */
#define CHECK(cond)                                                                                                    \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            fprintf(stderr, "%s: invariant violated: %s (line %d)\n", __FILE__, #cond, __LINE__);                      \
            abort();                                                                                                   \
        }                                                                                                              \
    } while (0)

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

#endif
