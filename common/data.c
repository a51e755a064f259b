#define _POSIX_C_SOURCE 200809L
#include "data.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- reading a text as it streams past ---- */

#define READ_CHUNK (1u << 20) /* bytes read at a time: a text is never held whole in memory */

/* Bytes from a file (fd >= 0) or from memory. */
typedef struct {
    int fd;
    const uint8_t *mem;
    size_t mem_len, mem_pos;
    const char *name;
} Source;

static ssize_t source_read(Source *s, uint8_t *dst, size_t max)
{
    if (s->fd < 0) {
        size_t n = s->mem_len - s->mem_pos < max ? s->mem_len - s->mem_pos : max;
        memcpy(dst, s->mem + s->mem_pos, n);
        s->mem_pos += n;
        return (ssize_t)n;
    }
    ssize_t r;
    do
        r = read(s->fd, dst, max);
    while (r < 0 && errno == EINTR);
    return r;
}

static int source_rewind(Source *s, Err *e)
{
    s->mem_pos = 0;
    if (s->fd >= 0 && lseek(s->fd, 0, SEEK_SET) != 0)
        return err_set(e, "%s: cannot read it a second time: %s", s->name, strerror(errno));
    return 0;
}

typedef int (*VisitFn)(void *ctx, uint32_t cp, uint64_t at, Err *e);

/* Decodes the whole source, calling visit for every character with its byte offset; a sequence split
 * between two reads is finished with the next one. Also returns the byte count and their CRC-32. */
static int walk_text(Source *s, VisitFn visit, void *ctx, uint64_t *bytes, uint32_t *crc, Err *e)
{
    *bytes = 0;
    *crc = 0;
    uint8_t *buf = malloc(READ_CHUNK + 4);
    if (!buf)
        return err_set(e, "%s: out of memory", s->name);
    size_t have = 0;   /* an unfinished sequence carried to the front of buf */
    uint64_t base = 0; /* byte offset of buf[0] */
    int rc = 0;
    for (;;) {
        ssize_t r = source_read(s, buf + have, READ_CHUNK);
        if (r < 0) {
            rc = err_set(e, "%s: read failed at byte %llu: %s", s->name, (unsigned long long)(base + have),
                         strerror(errno));
            break;
        }
        *crc = crc32_update(*crc, buf + have, (size_t)r);
        const size_t n = have + (size_t)r;
        const int at_end = r == 0;
        size_t pos = 0;
        while (pos < n && rc == 0) {
            size_t at = pos;
            uint32_t cp;
            const char *why = utf8_decode(buf, n, &pos, &cp);
            if (why == UTF8_CUT_SHORT && !at_end)
                break;
            if (why)
                rc = err_set(e, "%s: invalid UTF-8 at byte offset %llu (%s)", s->name, (unsigned long long)(base + at),
                             why);
            else
                rc = visit(ctx, cp, base + at, e);
        }
        if (rc != 0 || at_end)
            break;
        have = n - pos;
        memmove(buf, buf + pos, have);
        base += pos;
    }
    *bytes = base + have;
    free(buf);
    return rc;
}

typedef struct {
    CharSet set;
    size_t chars;
    const char *name;
} FirstPass;

static int first_pass_visit(void *ctx, uint32_t cp, uint64_t at, Err *e)
{
    FirstPass *f = ctx;
    if (cp == 0)
        return err_set(e, "%s: NUL byte at offset %llu; this looks like a binary file, not text", f->name,
                       (unsigned long long)at);
    charset_add(&f->set, cp);
    f->chars++;
    return 0;
}

typedef struct {
    const Vocab *vocab;
    token_t *tokens;
    size_t n, max;
    const char *name;
    int second_pass; /* the vocabulary came from this very file: an unknown character means it changed */
} Encoder;

static int encode_visit(void *ctx, uint32_t cp, uint64_t at, Err *e)
{
    Encoder *en = ctx;
    int id = vocab_index(en->vocab, cp);
    if (id < 0 && en->second_pass)
        return err_set(e, "%s: the file changed while it was being read", en->name);
    if (id < 0) {
        char desc[48];
        describe_codepoint(cp, desc, sizeof desc);
        return err_set(e, "%s: character %s at byte offset %llu is not in the model's vocabulary", en->name, desc,
                       (unsigned long long)at);
    }
    if (en->n == en->max)
        return err_set(e, "%s: the file grew while it was being read", en->name);
    en->tokens[en->n++] = (token_t)id;
    return 0;
}

/* Two passes over the source: the vocabulary, then the tokens (2 bytes per character). */
static int dataset_read(Dataset *d, Source *src, float val_fraction, Err *e)
{
    const char *name = src->name;
    FirstPass first = {.name = name};
    uint64_t bytes, bytes_again;
    uint32_t crc, crc_again;
    memset(d, 0, sizeof *d);
    if (charset_init(&first.set, e) != 0)
        return -1;
    int rc = walk_text(src, first_pass_visit, &first, &bytes, &crc, e);
    if (rc == 0 && bytes == 0)
        rc = err_set(e, "%s: is empty; training needs a text file", name);
    if (rc == 0)
        rc = vocab_from_charset(&d->vocab, &first.set, name, e);
    charset_free(&first.set);
    if (rc != 0)
        return -1;
    if (d->vocab.size < 2) {
        vocab_free(&d->vocab);
        return err_set(e, "%s: contains only one distinct character; there is nothing to learn", name);
    }
    Encoder en = {.vocab = &d->vocab, .max = first.chars, .name = name, .second_pass = 1};
    en.tokens = malloc(sizeof(token_t) * first.chars);
    if (!en.tokens) {
        vocab_free(&d->vocab);
        return err_set(e, "%s: out of memory for %zu tokens (%.1f MiB)", name, first.chars,
                       2.0 * (double)first.chars / 1048576.0);
    }
    d->tokens = en.tokens;
    if (source_rewind(src, e) != 0 || walk_text(src, encode_visit, &en, &bytes_again, &crc_again, e) != 0) {
        dataset_free(d);
        return -1;
    }
    if (bytes_again != bytes || crc_again != crc || en.n != first.chars) {
        dataset_free(d);
        return err_set(e, "%s: the file changed while it was being read", name);
    }
    d->n = en.n;
    /* The fraction arrives as a float (0.1f is 0.10000000149...): read it as the decimal it was written as
     * (to a millionth) and split in integers, so that 30% of 90 characters is exactly 27. */
    const uint64_t millionths = (uint64_t)llround((double)val_fraction * 1e6);
    d->n_train = (size_t)((uint64_t)d->n * (1000000u - millionths) / 1000000u);
    d->file_bytes = bytes;
    d->file_crc = crc;
    return 0;
}

int dataset_from_text(Dataset *d, const uint8_t *text, size_t n, float val_fraction, const char *name, Err *e)
{
    Source src = {.fd = -1, .mem = text, .mem_len = n, .name = name};
    return dataset_read(d, &src, val_fraction, e);
}

/* Opens a regular file for reading, with clear messages for the usual mistakes. */
static int open_text(const char *path, Source *src, off_t *size, Err *e)
{
    memset(src, 0, sizeof *src);
    src->name = path;
    src->fd = open_regular(path, O_RDONLY, "a text file", e);
    if (src->fd < 0)
        return -1;
    struct stat st;
    if (fstat(src->fd, &st) != 0) {
        int err = errno;
        close(src->fd);
        return err_set(e, "%s: cannot stat: %s", path, strerror(err));
    }
    *size = st.st_size;
    return 0;
}

int dataset_load(Dataset *d, const char *path, float val_fraction, Err *e)
{
    Source src;
    off_t size;
    memset(d, 0, sizeof *d);
    if (open_text(path, &src, &size, e) != 0)
        return -1;
    int rc = dataset_read(d, &src, val_fraction, e);
    close(src.fd);
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
    Source src;
    off_t size = 0;
    *tokens = NULL;
    *n = 0;
    if (open_text(path, &src, &size, e) != 0)
        return -1;
    /* A character is at least one byte: the file's size bounds the token count. */
    Encoder en = {.vocab = v, .max = (size_t)size, .name = path};
    en.tokens = malloc(sizeof(token_t) * (en.max ? en.max : 1));
    uint64_t bytes;
    uint32_t crc;
    int rc = en.tokens ? walk_text(&src, encode_visit, &en, &bytes, &crc, e)
                       : err_set(e, "%s: out of memory for %zu tokens", path, en.max);
    close(src.fd);
    if (rc != 0) {
        free(en.tokens);
        return -1;
    }
    *tokens = en.tokens;
    *n = en.n;
    return 0;
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

int batcher_stream_pos_fits(int T, int B, size_t n, uint64_t pos)
{
    const uint64_t last = (uint64_t)(n / (size_t)B) - (uint64_t)T - 1;
    return pos % (uint64_t)T == 0 && pos <= last + (uint64_t)T;
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
    if (bt->stateful) {
        if (bt->stream_pos > batcher_last_stream_pos(bt))
            bt->stream_pos = 0; /* wrap: every stream starts over together, with a fresh state */
        carry = bt->stream_pos != 0;
    }
    for (int b = 0; b < B; b++) {
        size_t start = bt->stateful ? (size_t)b * stream_len + bt->stream_pos : rng_below(&bt->rng, bt->n - (size_t)T);
        seq_example(bt->tokens, start, T, B, b, x, y);
    }
    if (bt->stateful)
        bt->stream_pos += (uint64_t)T;
    return carry;
}

void seq_example(const token_t *tokens, size_t start, int T, int B, int b, token_t *x, token_t *y)
{
    for (int t = 0; t < T; t++) {
        x[t * B + b] = tokens[start + (size_t)t];
        y[t * B + b] = tokens[start + (size_t)t + 1];
    }
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

size_t eval_used(BatchMode mode, size_t n, int T, int B, long max_batches)
{
    size_t total = eval_examples(mode, n, T);
    if (max_batches > 0 && (size_t)max_batches * (size_t)B < total)
        return (size_t)max_batches * (size_t)B;
    return total;
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
        seq_example(tokens, k * (size_t)T, T, B, b, x, y);
    }
}

/* Predictions per stream of an evaluation with the state carried. */
static size_t stream_length(size_t n, int B)
{
    return n > 1 ? (n - 1) / (size_t)B : 0;
}

size_t eval_stream_chunks(size_t n, int T, int B, long max_chunks)
{
    size_t stream_len = stream_length(n, B);
    size_t chunks = (stream_len + (size_t)T - 1) / (size_t)T;
    if (max_chunks > 0 && (size_t)max_chunks < chunks)
        return (size_t)max_chunks;
    return chunks;
}

int eval_stream_batch(const token_t *tokens, size_t n, int T, int B, size_t k, int first, int count, token_t *x,
                      token_t *y)
{
    const size_t stream_len = stream_length(n, B), start = k * (size_t)T;
    const int len = stream_len - start < (size_t)T ? (int)(stream_len - start) : T;
    for (int b = 0; b < count; b++)
        seq_example(tokens, (size_t)(first + b) * stream_len + start, len, count, b, x, y);
    return len;
}

size_t eval_predictions(BatchMode mode, int carried, size_t n, int T, int B, long max_batches)
{
    if (carried && mode == MODE_SEQ) {
        size_t stream_len = stream_length(n, B), chunks = eval_stream_chunks(n, T, B, max_batches);
        return (chunks * (size_t)T < stream_len ? chunks * (size_t)T : stream_len) * (size_t)B;
    }
    size_t used = eval_used(mode, n, T, B, max_batches);
    return mode == MODE_WINDOW ? used : used * (size_t)T;
}
