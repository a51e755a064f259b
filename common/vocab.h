/* The vocabulary: the sorted set of Unicode code points of a UTF-8 text; a token is an index into it. */
#ifndef CHARRNN_VOCAB_H
#define CHARRNN_VOCAB_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

typedef uint16_t token_t;    /* two bytes per character of text held in memory */
#define VOCAB_MAX_SIZE 65536 /* every token_t value */

typedef struct {
    int size;
    uint32_t *codepoints; /* [size], strictly increasing; token i is codepoints[i] */
} Vocab;

/* Decodes one code point at s[*pos] (strict UTF-8: no overlong forms, no surrogates, <= U+10FFFF) and
 * advances *pos. Returns NULL on success or a short reason the bytes are invalid; UTF8_CUT_SHORT when
 * the bytes end in the middle of a sequence (which more bytes may complete). */
extern const char UTF8_CUT_SHORT[];
const char *utf8_decode(const uint8_t *s, size_t n, size_t *pos, uint32_t *cp);
/* Writes cp as UTF-8 into out (room for 4 bytes) and returns the byte count. */
int utf8_encode(uint32_t cp, char *out);

/* The set of characters seen in a text, one bit per code point (136 KiB), for building a vocabulary
 * while the text streams past. */
typedef struct {
    uint8_t *seen;
    int distinct;
} CharSet;
int charset_init(CharSet *s, Err *e);
void charset_add(CharSet *s, uint32_t cp);
void charset_free(CharSet *s);
int vocab_from_charset(Vocab *v, const CharSet *s, const char *name, Err *e);

/* name labels errors, e.g. the file name: "x.txt: invalid UTF-8 at byte offset 12 (...)". */
int vocab_build(Vocab *v, const uint8_t *text, size_t n, const char *name, Err *e);
/* Rebuilds a vocabulary from its characters in index order, as stored in a checkpoint. */
int vocab_from_utf8(Vocab *v, const uint8_t *chars, size_t n, Err *e);
/* The characters in index order as UTF-8 into a fresh buffer. */
int vocab_to_utf8(const Vocab *v, uint8_t **out, size_t *n, Err *e);
int vocab_equal(const Vocab *a, const Vocab *b);
void vocab_free(Vocab *v);

int vocab_index(const Vocab *v, uint32_t cp); /* -1 when cp is not in the vocabulary */

/* Encodes a UTF-8 text into tokens (out needs room for n tokens; *count gets the number written).
 * A character outside the vocabulary is an error naming it and its byte offset. */
int vocab_encode(const Vocab *v, const uint8_t *text, size_t n, token_t *out, size_t *count, const char *name, Err *e);

/* A printable description of a code point for messages: 'a', '\n', U+00E9 'é'. */
void describe_codepoint(uint32_t cp, char *out, size_t outlen);

#endif
