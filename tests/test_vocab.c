/* Vocabulary: sorted code points of UTF-8 text, strict decoding, encode/decode. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data.h"
#include "testutil.h"
#include "vocab.h"

static Vocab build(const char *text)
{
    Vocab v;
    Err e;
    cr_assert_eq(vocab_build(&v, (const uint8_t *)text, strlen(text), "text", &e), 0, "%s", e.msg);
    return v;
}

Test(vocab, is_the_sorted_set_of_characters)
{
    Vocab v = build("hello world");
    const char *expected = " dehlorw";
    cr_assert_eq(v.size, (int)strlen(expected));
    for (int i = 0; i < v.size; i++)
        cr_assert_eq(v.codepoints[i], (uint32_t)expected[i]);
    vocab_free(&v);
}

Test(vocab, shakespeare_characters_have_the_seed_indices)
{
    Vocab v = build(SHAKESPEARE_CHARS "First Citizen:\n");
    cr_assert_eq(v.size, 65);
    cr_assert_eq(vocab_index(&v, '\n'), 0);
    cr_assert_eq(vocab_index(&v, 'F'), 18);
    cr_assert_eq(vocab_index(&v, 'i'), 47);
    cr_assert_eq(vocab_index(&v, 'r'), 56);
    cr_assert_eq(vocab_index(&v, 's'), 57);
    cr_assert_eq(vocab_index(&v, '~'), -1);
    vocab_free(&v);
}

Test(vocab, tiny_shakespeare_file_gives_the_seed_vocabulary)
{
    if (!have_shakespeare())
        cr_skip_test("tiny shakespeare is not installed (data/get_tinyshakespeare.sh)");
    Dataset d;
    Err e;
    cr_assert_eq(dataset_load(&d, CHARRNN_TEST_DATA, 0.1f, &e), 0, "%s", e.msg);
    cr_assert_eq(d.vocab.size, 65);
    const char *chars = SHAKESPEARE_CHARS;
    for (int i = 0; i < 65; i++)
        cr_assert_eq(d.vocab.codepoints[i], (uint32_t)(unsigned char)chars[i], "index %d", i);
    cr_assert_eq(d.n, 1115394u);
    cr_assert_eq(d.n_train, 1003854u);
    cr_assert_eq(d.n - d.n_train, 111540u);
    cr_assert_eq(d.tokens[0], 18); /* 'F' */
    dataset_free(&d);
}

Test(vocab, multibyte_utf8_round_trips)
{
    const char *text = "na\xc3\xafve caf\xc3\xa9 \xe2\x82\xac 5 \xf0\x9f\x98\x80"; /* naïve café € 5 😀 */
    Vocab v = build(text);
    cr_assert_eq(v.codepoints[v.size - 1], 0x1F600u);
    cr_assert_neq(vocab_index(&v, 0x20AC), -1);
    cr_assert_neq(vocab_index(&v, 0xE9), -1);
    size_t n = strlen(text), count;
    token_t *tokens = malloc(sizeof(token_t) * n);
    Err e;
    cr_assert_eq(vocab_encode(&v, (const uint8_t *)text, n, tokens, &count, "text", &e), 0);
    cr_assert_eq(count, 16u); /* characters, not bytes */
    char back[64];
    size_t k = 0;
    for (size_t i = 0; i < count; i++)
        k += (size_t)utf8_encode(v.codepoints[tokens[i]], back + k);
    back[k] = 0;
    cr_assert_str_eq(back, text);

    uint8_t *chars;
    size_t len;
    Vocab again;
    cr_assert_eq(vocab_to_utf8(&v, &chars, &len, &e), 0);
    cr_assert_eq(vocab_from_utf8(&again, chars, len, &e), 0, "%s", e.msg);
    cr_assert(vocab_equal(&v, &again));
    free(chars);
    free(tokens);
    vocab_free(&again);
    vocab_free(&v);
}

static void expect_invalid(const char *bytes, size_t n, size_t offset)
{
    Vocab v;
    Err e;
    cr_assert_eq(vocab_build(&v, (const uint8_t *)bytes, n, "bad.txt", &e), -1);
    char expected[64];
    snprintf(expected, sizeof expected, "bad.txt: invalid UTF-8 at byte offset %zu", offset);
    cr_assert(strstr(e.msg, expected), "message '%s' should contain '%s'", e.msg, expected);
}

Test(vocab, invalid_utf8_names_the_byte_offset)
{
    expect_invalid("ab\xff"
                   "c",
                   4, 2);                       /* never valid */
    expect_invalid("abc\x80", 4, 3);            /* stray continuation */
    expect_invalid("x\xc3", 2, 1);              /* cut short by the end */
    expect_invalid("xy\xe2\x82z", 5, 2);        /* cut short by a non-continuation */
    expect_invalid("\xc0\xaf", 2, 0);           /* overlong '/' */
    expect_invalid("ok\xe0\x80\xaf", 5, 2);     /* overlong 3-byte */
    expect_invalid("a\xed\xa0\x80", 4, 1);      /* UTF-16 surrogate */
    expect_invalid("ab\xf4\x90\x80\x80", 6, 2); /* above U+10FFFF */
}

Test(vocab, encoding_a_character_outside_the_vocabulary_names_it)
{
    Vocab v = build("abc");
    token_t out[8];
    size_t count;
    Err e;
    cr_assert_eq(vocab_encode(&v, (const uint8_t *)"abz", 3, out, &count, "--prime", &e), -1);
    cr_assert(strstr(e.msg, "'z'") && strstr(e.msg, "byte offset 2"), "%s", e.msg);
    vocab_free(&v);
}

Test(vocab, stored_vocabulary_must_be_strictly_increasing)
{
    Vocab v;
    Err e;
    cr_assert_eq(vocab_from_utf8(&v, (const uint8_t *)"abca", 4, &e), -1);
    cr_assert_eq(vocab_from_utf8(&v, (const uint8_t *)"ba", 2, &e), -1);
}
