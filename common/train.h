/* The training loop's parts, device-independent: one optimizer step, evaluation, and the state a
 * checkpoint needs to continue a run exactly where it stopped. */
#ifndef CHARRNN_TRAIN_H
#define CHARRNN_TRAIN_H

#include "backend.h"
#include "checkpoint.h"
#include "config.h"
#include "data.h"

typedef struct {
    TrainConfig cfg;
    const Dataset *data;
    const char *data_path; /* recorded in checkpoints */
    Backend *be;
    Batcher batcher;
    long step;         /* optimizer updates done */
    token_t *x, *y;    /* [T, B] batch buffers */
    float *zero_carry; /* [S, L, B, H] zeros: the state after a diverged batch */
} Trainer;

typedef struct {
    float loss;      /* mean cross-entropy of the batch, nats/char */
    float grad_norm; /* before clipping */
    float lr;
} StepStats;

/* A fresh run: parameters initialised from cfg->seed, zero optimizer moments. */
int trainer_start(Trainer *tr, const TrainConfig *cfg, const Dataset *d, const char *data_path, Backend *be, Err *e);
/* Continues the run saved in ck (which must hold the resume state) on data d. */
int trainer_resume(Trainer *tr, const Checkpoint *ck, const Dataset *d, const char *data_path, Backend *be, Err *e);
/* One optimizer step on the next batch: 0, or TRAIN_STEP_DIVERGED when the loss or gradient norm was not
 * finite (the batch is consumed, nothing is updated, *e says what), or -1 on a failure. */
#define TRAIN_STEP_DIVERGED 1
int trainer_step(Trainer *tr, StepStats *s, Err *e);
/* Fills ck with everything needed to resume (ck owns the copies; free with checkpoint_free). Refuses
 * parameters or moments that are not all finite: no NaN ever reaches a checkpoint. */
int trainer_snapshot(const Trainer *tr, float train_loss, float val_loss, Checkpoint *ck, Err *e);
void trainer_free(Trainer *tr);

/* Mean loss (nats/char) over a text's evaluation examples (see eval_examples): all of them when
 * max_batches <= 0, else max_batches batches of B spread evenly over the text. A loss that is not finite
 * is an error. */
int evaluate(Backend *be, BatchMode mode, const token_t *tokens, size_t n, int T, int B, long max_batches, double *loss,
             Err *e);

#endif
