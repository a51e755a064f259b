/* The checkpoint: a versioned little-endian binary file, the same from either device. The byte-by-byte
 * layout is documented in README.md ("Checkpoint format"); the writer and reader below follow it.
 * Version 2 added the step of the validation loss, the run settings, the training text's absolute path
 * and the log's path; version 1 files load with those unknown. */
#ifndef CHARRNN_CHECKPOINT_H
#define CHARRNN_CHECKPOINT_H

#include <stdint.h>

#include "config.h"
#include "util.h"
#include "vocab.h"

#define CHECKPOINT_VERSION 2
#define MAX_STORED_PATH 4096 /* bytes of a path stored in a checkpoint (PATH_MAX) */

typedef struct {
    int version; /* format version of the file read (checkpoint_save always writes CHECKPOINT_VERSION) */
    TrainConfig cfg;
    Vocab vocab;
    long step;        /* optimizer updates done */
    float train_loss; /* NaN when not measured */
    float val_loss;
    long val_step;       /* the step val_loss was measured at; 0 when not measured or not known (version 1) */
    uint64_t data_bytes; /* identity of the training text */
    uint32_t data_crc;
    char *data_path;     /* as given to train; may be empty */
    char *data_path_abs; /* its absolute path; empty when unknown (version 1) */
    int has_run;         /* the run settings and log path are stored (not in version 1) */
    RunSettings run;
    char *log_path; /* the run's --log, absolute; empty for none */
    float *params;  /* [model_num_params] */
    /* Optional: optimizer moments (both NULL when absent). */
    float *m, *v;
    /* Optional resume state. */
    int has_resume;
    Rng rng;             /* the training batcher's RNG */
    uint64_t stream_pos; /* stateful stream offset */
    float *carry;        /* [L, B, H], stateful only, else NULL */
} Checkpoint;

int checkpoint_save(const char *path, const Checkpoint *ck, Err *e);
/* Refuses a special file (FIFO, device) without blocking, and a file whose length differs from what its
 * header describes or that would not fit in memory, before reading its body. On failure *ck is left
 * empty: nothing is ever half-loaded. */
int checkpoint_load(const char *path, Checkpoint *ck, Err *e);
/* Parses a checkpoint image already in memory (name labels errors). */
int checkpoint_parse(const uint8_t *buf, size_t len, const char *name, Checkpoint *ck, Err *e);
void checkpoint_free(Checkpoint *ck);
/* Frees the parameters, moments and carried state (once they are on a device), keeping the rest. */
void checkpoint_drop_arrays(Checkpoint *ck);

/* What a file at path says about the run it holds, from its first bytes only (nothing else is read or
 * checked): enough to decide whether a new run may replace it. */
typedef struct {
    long step, steps; /* updates done, of the run's total */
} CheckpointSummary;
enum { PEEK_OK = 0, PEEK_DAMAGED = 1, PEEK_NOT_CHECKPOINT = -1 };
/* PEEK_OK with *s filled; PEEK_DAMAGED for a charrnn checkpoint whose header cannot be read (cut short,
 * damaged, a newer version); PEEK_NOT_CHECKPOINT for any other file or one that cannot be read (*e says). */
int checkpoint_peek(const char *path, CheckpointSummary *s, Err *e);

/* The most a checkpoint of this run can take, in bytes (with optimizer moments and resume state). */
uint64_t checkpoint_size_estimate(const TrainConfig *c);

#endif
