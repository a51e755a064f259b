/* The training loop's parts, device-independent: one optimizer step, evaluation, and the state a
 * checkpoint needs to continue a run exactly where it stopped. With several ranks (the backend's
 * dist), every rank draws the same global batch, computes its share of the rows, and the step's
 * gradients and loss are reduced over the ranks before the one update every rank makes alike. */
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
    token_t *x, *y;    /* [T, B] batch buffers: the global batch */
    Share share;       /* the batch rows this rank computes (all of them in a single process) */
    token_t *xs, *ys;  /* [T, share.count]: those rows (x and y themselves in a single process) */
    float *zero_carry; /* [S, L, B, H] zeros: the state after a diverged batch */
    float *replica;    /* [P] several ranks: the parameters, for the check that every rank holds the same */
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
 * finite (the batch is consumed, nothing is updated, *e says what), or TRAIN_STEP_REPLICAS_DIFFER when
 * the ranks' parameters are found to differ (checked every REPLICA_CHECK_EVERY steps), or -1 on a
 * failure. The first two happen on every rank at the same step; -1 may be this rank's alone. */
#define TRAIN_STEP_DIVERGED 1
#define TRAIN_STEP_REPLICAS_DIFFER 2
#define REPLICA_CHECK_EVERY 200 /* a CRC-32 of the parameters per rank: cheap next to 200 steps */
int trainer_step(Trainer *tr, StepStats *s, Err *e);
/* Several ranks: 0 when every rank holds the same parameters, else TRAIN_STEP_REPLICAS_DIFFER naming one
 * that does not (on every rank), or -1. */
int trainer_check_replicas(Trainer *tr, Err *e);
/* Fills ck with everything needed to resume (ck owns the copies; free with checkpoint_free). Refuses
 * parameters or moments that are not all finite: no NaN ever reaches a checkpoint. With several ranks
 * every rank calls it (the carried state of every rank's streams is gathered), and rank 0's ck is the
 * whole run's. */
int trainer_snapshot(const Trainer *tr, float train_loss, float val_loss, Checkpoint *ck, Err *e);
void trainer_free(Trainer *tr);

/* Mean loss (nats/char) over a text's evaluation examples (see eval_examples): all of them when
 * max_batches <= 0, else max_batches batches of B spread evenly over the text. With `carried` (seq mode)
 * the text is instead B contiguous streams read with the state carried (see eval_stream_chunks), the
 * first max_batches chunks of each when max_batches > 0; the backend's own carried state is left as it
 * was. A loss that is not finite is an error. With several ranks (be->dist) each batch's rows are shared
 * among them as in training, and every rank gets the mean. */
int evaluate(Backend *be, BatchMode mode, int carried, const token_t *tokens, size_t n, int T, int B,
             long max_batches, double *loss, Err *e);

#endif
