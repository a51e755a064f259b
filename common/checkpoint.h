/* The checkpoint: a versioned little-endian binary file, the same from either device. The byte-by-byte
 * layout is documented in README.md ("Checkpoint format"); the writer and reader below follow it. */
#ifndef CHARRNN_CHECKPOINT_H
#define CHARRNN_CHECKPOINT_H

#include <stdint.h>

#include "config.h"
#include "util.h"
#include "vocab.h"

#define CHECKPOINT_VERSION 1

typedef struct {
    int version; /* format version of the file read (checkpoint_save always writes CHECKPOINT_VERSION) */
    TrainConfig cfg;
    Vocab vocab;
    long step;        /* optimizer updates done */
    float train_loss; /* NaN when not measured */
    float val_loss;
    uint64_t data_bytes; /* identity of the training text */
    uint32_t data_crc;
    char *data_path; /* as given to train; may be empty */
    float *params;   /* [model_num_params] */
    /* Optional: optimizer moments (both NULL when absent). */
    float *m, *v;
    /* Optional resume state. */
    int has_resume;
    Rng rng;             /* the training batcher's RNG */
    uint64_t stream_pos; /* stateful stream offset */
    float *carry;        /* [L, B, H], stateful only, else NULL */
} Checkpoint;

int checkpoint_save(const char *path, const Checkpoint *ck, Err *e);
/* On failure *ck is left empty: nothing is ever half-loaded. */
int checkpoint_load(const char *path, Checkpoint *ck, Err *e);
/* Parses a checkpoint image already in memory (name labels errors). */
int checkpoint_parse(const uint8_t *buf, size_t len, const char *name, Checkpoint *ck, Err *e);
void checkpoint_free(Checkpoint *ck);

#endif
