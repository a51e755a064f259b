/* A text file as tokens, its train/validation split, and the batches drawn from it. */
#ifndef CHARRNN_DATA_H
#define CHARRNN_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"
#include "vocab.h"

typedef struct {
    Vocab vocab;     /* built from the whole text */
    token_t *tokens; /* [n]: the whole text */
    size_t n;
    size_t n_train; /* tokens[0, n_train) train, tokens[n_train, n) validation */
    uint64_t file_bytes;
    uint32_t file_crc; /* CRC-32 of the file's bytes: identifies the data a checkpoint was trained on */
} Dataset;

/* The first (1 - val_fraction) of the characters train, the rest validate. */
int dataset_load(Dataset *d, const char *path, float val_fraction, Err *e);
int dataset_from_text(Dataset *d, const uint8_t *text, size_t n, float val_fraction, const char *name, Err *e);
void dataset_free(Dataset *d);
/* Reads a file as tokens of an existing vocabulary (e.g. a checkpoint's), into a fresh buffer. */
int tokens_load(const char *path, const Vocab *v, token_t **tokens, size_t *n, Err *e);

typedef enum {
    MODE_SEQ = 0,    /* B sequences of T+1 tokens; loss at every timestep */
    MODE_WINDOW = 1, /* each position a target with its T previous tokens as context; loss at the last step */
} BatchMode;

/* Draws training batches from one split. Batches are time-major: x[t * B + b], y likewise. */
typedef struct {
    BatchMode mode;
    int stateful; /* seq mode only: B contiguous streams whose hidden state carries over */
    int T, B;
    const token_t *tokens;
    size_t n;
    Rng rng;             /* random offsets (seq) or positions (window) */
    uint64_t stream_pos; /* stateful: offset of the next batch inside every stream */
} Batcher;

/* Checks that a split of n tokens is long enough for the batch shape (called before anything big is
 * allocated, so a mistake in the shape is reported as such). */
int batcher_check(BatchMode mode, int stateful, int T, int B, size_t n, Err *e);
/* batcher_check, then prepares the batcher. */
int batcher_init(Batcher *bt, BatchMode mode, int stateful, int T, int B, const token_t *tokens, size_t n,
                 uint64_t seed, Err *e);
/* Fills x and y ([T, B] each). Returns 1 when the hidden state carries into this batch from the last
 * one (stateful streams that did not just wrap around), else 0. */
int batcher_next(Batcher *bt, token_t *x, token_t *y);
/* Stateful streams: the last offset a batch may start at in every stream. */
size_t batcher_last_stream_pos(const Batcher *bt);
/* Whether a saved stream position continues streams of a split of n tokens: a multiple of T at most one
 * batch past the last start (the next batch then starts the streams over). Needs batcher_check's n. */
int batcher_stream_pos_fits(int T, int B, size_t n, uint64_t pos);

/* Window mode: the context of the target tokens[p] is tokens[p-T .. p-1], with positions before the
 * start of the split reading as token 0. Fills column b of x ([T, B]) and y[(T-1) * B + b]. */
void window_example(const token_t *tokens, size_t p, int T, int B, int b, token_t *x, token_t *y);
/* Seq mode: column b of x and y ([T, B]) from tokens[start .. start+T], y one token ahead of x. */
void seq_example(const token_t *tokens, size_t start, int T, int B, int b, token_t *x, token_t *y);

/* Evaluation walks a split deterministically: seq mode uses its non-overlapping (T+1)-token chunks
 * starting every T tokens, window mode every position. eval_examples says how many there are. */
size_t eval_examples(BatchMode mode, size_t n, int T);
/* How many of them an evaluation of at most max_batches batches of B uses (0: all). */
size_t eval_used(BatchMode mode, size_t n, int T, int B, long max_batches);
/* Fills a batch of `count` examples: numbers first .. first+count-1 of `used` examples spread evenly
 * over the `total` a split has (used <= total). */
void eval_batch(BatchMode mode, const token_t *tokens, int T, size_t total, size_t used, size_t first, int count,
                token_t *x, token_t *y);

/* Evaluation with the state carried (seq mode, as a --stateful run trains): the text is cut into B
 * contiguous streams of (n - 1) / B predictions, each read from a zero state once, T characters at a
 * time (the last chunk may be shorter). eval_stream_chunks says how many chunks every stream gives (at
 * most max_chunks when that is positive: the first ones); eval_stream_batch fills chunk k of streams
 * first .. first+count-1 and returns its length. */
size_t eval_stream_chunks(size_t n, int T, int B, long max_chunks);
int eval_stream_batch(const token_t *tokens, size_t n, int T, int B, size_t k, int first, int count, token_t *x,
                      token_t *y);
/* How many predictions an evaluation counts (0: the text is too short to evaluate that way). */
size_t eval_predictions(BatchMode mode, int carried, size_t n, int T, int B, long max_batches);

#endif
