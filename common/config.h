/* Everything that defines a training run; stored in every checkpoint. */
#ifndef CHARRNN_CONFIG_H
#define CHARRNN_CONFIG_H

#include <stdint.h>

#include "data.h"
#include "model.h"
#include "optim.h"
#include "util.h"

/* Limits of a run, shared by the command line and the checkpoint reader. */
#define MAX_SEQ_LEN 65536
#define MAX_BATCH 65536
#define MAX_STEPS 1000000000000L /* 1e12: far beyond any real run, far below overflow */
#define MAX_WARMUP 1000000000
#define MAX_LR 10.0f
#define MAX_VAL_FRACTION 0.5f

typedef struct {
    ModelConfig model;
    BatchMode mode;
    int stateful; /* seq mode: carry the hidden state across batches (truncated BPTT) */
    int seq_len;  /* T */
    int batch;    /* B */
    OptimConfig optim;
    long steps;         /* total optimizer updates of the run (sets the cosine schedule's length) */
    uint64_t seed;      /* parameters, batches and samples all derive from it */
    float val_fraction; /* the last part of the text held out for validation */
} TrainConfig;

/* Checks every setting's range and the combinations that make no sense (stateful window mode). */
int train_config_check(const TrainConfig *c, Err *e);

#define MAX_EVERY 1000000000      /* --eval-every, --eval-batches, --save-every */
#define MAX_SAMPLE_LENGTH 1000000 /* --sample-length */
typedef enum { ON_NAN_STOP = 0, ON_NAN_SKIP = 1 } OnNan;

/* How a run evaluates, samples, saves and meets a non-finite step: not what it computes, but stored in
 * the checkpoint too, so that a resumed run goes on as it was configured. */
typedef struct {
    int eval_every;    /* evaluate (and sample) every N steps and at the end; 0: never */
    int eval_batches;  /* validation batches per evaluation, spread over the split; 0: all of it */
    int save_every;    /* also write the checkpoint every N steps; 0: at the end only */
    int sample_length; /* characters sampled at each evaluation */
    OnNan on_nan;
} RunSettings;

int run_settings_check(const RunSettings *r, Err *e);

#endif
