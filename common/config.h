/* Everything that defines a training run; stored in every checkpoint. */
#ifndef CHARRNN_CONFIG_H
#define CHARRNN_CONFIG_H

#include <stdint.h>

#include "data.h"
#include "model.h"
#include "optim.h"

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

#endif
