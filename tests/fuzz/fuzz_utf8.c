/* libFuzzer target: the UTF-8 decoder and the vocabulary and dataset built on it.
 *
 * The input is a text. The reference decoder of fuzz_text.h says what utf8_decode must accept; then
 * vocab_build, vocab_encode, vocab_to_utf8 / vocab_from_utf8 and dataset_from_text are checked against
 * it and against each other. dataset_from_text's validation fraction is k/100 with k = first byte % 51.
 * Any violated invariant aborts, so the fuzzer reports it with the input. */
#include "fuzz_text.h"

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
    check_vocab(data, n);
    check_dataset(data, n, n ? data[0] % 51u : 0);
    return 0;
}
