#include "vocab.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define UNICODE_LIMIT 0x110000u

const char UTF8_CUT_SHORT[] = "sequence cut short by the end of the text";

const char *utf8_decode(const uint8_t *s, size_t n, size_t *pos, uint32_t *cp)
{
    size_t i = *pos;
    uint8_t c = s[i];
    if (c < 0x80) {
        *cp = c;
        *pos = i + 1;
        return NULL;
    }
    int len;
    uint32_t min, value;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2, min = 0x80, value = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3, min = 0x800, value = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4, min = 0x10000, value = c & 0x07;
    } else if (c >= 0x80 && c <= 0xBF) {
        return "unexpected continuation byte";
    } else {
        return "byte that never appears in UTF-8";
    }
    if (n - i < (size_t)len)
        return UTF8_CUT_SHORT;
    for (int k = 1; k < len; k++) {
        if ((s[i + k] & 0xC0) != 0x80)
            return "sequence cut short by a non-continuation byte";
        value = (value << 6) | (s[i + k] & 0x3F);
    }
    if (value < min)
        return "overlong encoding";
    if (value >= 0xD800 && value <= 0xDFFF)
        return "encoded UTF-16 surrogate";
    if (value >= UNICODE_LIMIT)
        return "code point above U+10FFFF";
    *cp = value;
    *pos = i + (size_t)len;
    return NULL;
}

int utf8_encode(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

void describe_codepoint(uint32_t cp, char *out, size_t outlen)
{
    static const char *const names[] = {['\n'] = "\\n", ['\t'] = "\\t", ['\r'] = "\\r", [' '] = "space"};
    if (cp < sizeof names / sizeof names[0] && names[cp]) {
        snprintf(out, outlen, "'%s'", names[cp]);
    } else if (cp >= 0x21 && cp < 0x7F) {
        snprintf(out, outlen, "'%c'", (char)cp);
    } else if (cp < 0x20 || cp == 0x7F) {
        snprintf(out, outlen, "U+%04X (control character)", (unsigned)cp);
    } else {
        char buf[5] = {0};
        utf8_encode(cp, buf);
        snprintf(out, outlen, "U+%04X '%s'", (unsigned)cp, buf);
    }
}

static int invalid_utf8(Err *e, const char *name, size_t offset, const char *why)
{
    return err_set(e, "%s: invalid UTF-8 at byte offset %zu (%s)", name, offset, why);
}

int charset_init(CharSet *s, Err *e)
{
    s->distinct = 0;
    s->seen = calloc(UNICODE_LIMIT / 8, 1); /* one bit per code point */
    return s->seen ? 0 : err_set(e, "out of memory for the character set");
}

void charset_add(CharSet *s, uint32_t cp)
{
    if (!(s->seen[cp >> 3] & (1u << (cp & 7)))) {
        s->seen[cp >> 3] |= (uint8_t)(1u << (cp & 7));
        s->distinct++;
    }
}

void charset_free(CharSet *s)
{
    free(s->seen);
    s->seen = NULL;
}

int vocab_from_charset(Vocab *v, const CharSet *s, const char *name, Err *e)
{
    memset(v, 0, sizeof *v);
    if (s->distinct > VOCAB_MAX_SIZE)
        return err_set(e, "%s: %d distinct characters, more than the %d a vocabulary can hold", name, s->distinct,
                       VOCAB_MAX_SIZE);
    v->codepoints = malloc(sizeof(uint32_t) * (size_t)(s->distinct ? s->distinct : 1));
    if (!v->codepoints)
        return err_set(e, "%s: out of memory building the vocabulary", name);
    for (uint32_t cp = 0; cp < UNICODE_LIMIT; cp++)
        if (s->seen[cp >> 3] & (1u << (cp & 7)))
            v->codepoints[v->size++] = cp;
    return 0;
}

int vocab_build(Vocab *v, const uint8_t *text, size_t n, const char *name, Err *e)
{
    CharSet set;
    memset(v, 0, sizeof *v);
    if (charset_init(&set, e) != 0)
        return -1;
    for (size_t pos = 0; pos < n;) {
        uint32_t cp;
        size_t at = pos;
        const char *why = utf8_decode(text, n, &pos, &cp);
        if (why) {
            charset_free(&set);
            return invalid_utf8(e, name, at, why);
        }
        charset_add(&set, cp);
    }
    int rc = vocab_from_charset(v, &set, name, e);
    charset_free(&set);
    return rc;
}

int vocab_from_utf8(Vocab *v, const uint8_t *chars, size_t n, Err *e)
{
    memset(v, 0, sizeof *v);
    v->codepoints = malloc(sizeof(uint32_t) * (n ? n : 1));
    if (!v->codepoints)
        return err_set(e, "out of memory reading the vocabulary");
    for (size_t pos = 0; pos < n;) {
        uint32_t cp;
        size_t at = pos;
        const char *why = utf8_decode(chars, n, &pos, &cp);
        if (why) {
            vocab_free(v);
            return err_set(e, "vocabulary: invalid UTF-8 at byte offset %zu (%s)", at, why);
        }
        if (v->size > 0 && cp <= v->codepoints[v->size - 1]) {
            vocab_free(v);
            return err_set(e, "vocabulary: characters are not in strictly increasing order at byte %zu", at);
        }
        if (v->size == VOCAB_MAX_SIZE) {
            vocab_free(v);
            return err_set(e, "vocabulary: more than %d characters", VOCAB_MAX_SIZE);
        }
        v->codepoints[v->size++] = cp;
    }
    return 0;
}

int vocab_to_utf8(const Vocab *v, uint8_t **out, size_t *n, Err *e)
{
    uint8_t *buf = malloc(4 * (size_t)v->size + 1);
    if (!buf)
        return err_set(e, "out of memory");
    size_t k = 0;
    for (int i = 0; i < v->size; i++)
        k += (size_t)utf8_encode(v->codepoints[i], (char *)buf + k);
    *out = buf;
    *n = k;
    return 0;
}

int vocab_equal(const Vocab *a, const Vocab *b)
{
    return a->size == b->size && memcmp(a->codepoints, b->codepoints, sizeof(uint32_t) * (size_t)a->size) == 0;
}

void vocab_free(Vocab *v)
{
    free(v->codepoints);
    memset(v, 0, sizeof *v);
}

int vocab_index(const Vocab *v, uint32_t cp)
{
    int lo = 0, hi = v->size - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        if (v->codepoints[mid] == cp)
            return mid;
        if (v->codepoints[mid] < cp)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

int vocab_encode(const Vocab *v, const uint8_t *text, size_t n, token_t *out, size_t *count, const char *name, Err *e)
{
    size_t k = 0;
    for (size_t pos = 0; pos < n;) {
        uint32_t cp;
        size_t at = pos;
        const char *why = utf8_decode(text, n, &pos, &cp);
        if (why)
            return invalid_utf8(e, name, at, why);
        int id = vocab_index(v, cp);
        if (id < 0) {
            char desc[48];
            describe_codepoint(cp, desc, sizeof desc);
            return err_set(e, "%s: character %s at byte offset %zu is not in the model's vocabulary", name, desc, at);
        }
        out[k++] = (token_t)id;
    }
    *count = k;
    return 0;
}
