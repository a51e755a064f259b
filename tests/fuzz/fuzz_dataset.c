/* libFuzzer target: dataset_from_text's streaming read.
 *
 * dataset_from_text reads its text in chunks of 1 MiB (data.c's READ_CHUNK) and finishes a UTF-8
 * sequence split between two chunks with the next one. The input K C TEXT puts TEXT after 1 MiB of
 * filler so that the chunk boundary falls C % (len(TEXT) + 1) bytes into it, and checks the dataset of
 * the whole against the reference decoder of fuzz_text.h, with a validation fraction of (K % 51)/100.
 * Each run walks a megabyte, so this fuzzer is slow (tens of runs a second); fuzz_utf8 covers the
 * decoding of short texts quickly. */
#include "fuzz_text.h"

#define CHUNK (1u << 20) /* data.c's READ_CHUNK */

/* The text placed so that a chunk boundary of dataset_from_text falls `cut` bytes into it. The filler
 * is mostly 4-byte characters (U+10000), a quarter as many characters to walk as bytes, then 0-3 'x'. */
static void check_straddle(const uint8_t *text, size_t n, unsigned k, size_t cut)
{
    static const uint8_t wide[4] = {0xF0, 0x90, 0x80, 0x80};
    size_t filler = CHUNK - cut, total = filler + n;
    uint8_t *buf = malloc(total);
    for (size_t i = 0; i + 4 <= filler; i += 4)
        memcpy(buf + i, wide, 4);
    memset(buf + filler / 4 * 4, 'x', filler % 4);
    memcpy(buf + filler, text, n);
    check_dataset(buf, total, k);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n)
{
    if (n < 2)
        return 0;
    check_straddle(data + 2, n - 2, data[0] % 51u, data[1] % (n - 2 + 1));
    return 0;
}
