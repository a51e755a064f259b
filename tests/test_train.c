/* The training loop: exact resume, learning, and evaluation. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../cpu/cpu.h"
#include "checkpoint.h"
#include "testutil.h"
#include "train.h"

static const char *const PERIODIC = "the quick brown fox jumps over the lazy dog. ";

static Dataset periodic_dataset(int repeats)
{
    size_t k = strlen(PERIODIC);
    char *text = malloc(k * (size_t)repeats + 1);
    for (int i = 0; i < repeats; i++)
        memcpy(text + k * (size_t)i, PERIODIC, k);
    text[k * (size_t)repeats] = 0;
    Dataset d;
    Err e;
    cr_assert_eq(dataset_from_text(&d, (const uint8_t *)text, strlen(text), 0.1f, "periodic", &e), 0, "%s", e.msg);
    free(text);
    return d;
}

static TrainConfig small_config(const Dataset *d, BatchMode mode, int stateful)
{
    TrainConfig c = {
        .model = {.vocab = d->vocab.size, .embed = 5, .hidden = 11, .layers = 2},
        .mode = mode,
        .stateful = stateful,
        .seq_len = 7,
        .batch = 3,
        .optim = optim_defaults(),
        .steps = 12,
        .seed = 4242,
        .val_fraction = 0.1f,
    };
    c.optim.schedule = LR_COSINE; /* the rate depends on the step, so the step must resume exactly */
    c.optim.warmup = 3;
    return c;
}

static void run_steps(Trainer *tr, long n)
{
    Err e;
    for (long i = 0; i < n; i++) {
        StepStats s;
        cr_assert_eq(trainer_step(tr, &s, &e), 0, "%s", e.msg);
        cr_assert(isfinite(s.loss));
    }
}

/* Starts a small seq-mode run on `repeats` periods of the periodic text (the caller frees tr, be and d
 * with stop_small). */
static void start_cell_run(Dataset *d, TrainConfig *c, Backend *be, Trainer *tr, int repeats, int stateful,
                           CellKind cell)
{
    Err e;
    *d = periodic_dataset(repeats);
    *c = small_config(d, MODE_SEQ, stateful);
    c->model.cell = cell;
    cr_assert_eq(backend_create(be, &cpu_backend_ops, &c->model, c->seq_len, c->batch, NULL, &e), 0);
    cr_assert_eq(trainer_start(tr, c, d, "periodic", be, &e), 0, "%s", e.msg);
}

static void start_seq_run(Dataset *d, TrainConfig *c, Backend *be, Trainer *tr, int repeats, int stateful)
{
    start_cell_run(d, c, be, tr, repeats, stateful, CELL_RNN);
}

static void start_small(Dataset *d, TrainConfig *c, Backend *be, Trainer *tr)
{
    start_seq_run(d, c, be, tr, 20, 0);
}

static void stop_small(Dataset *d, Backend *be, Trainer *tr)
{
    trainer_free(tr);
    backend_destroy(be);
    dataset_free(d);
}

static void check_resume_of(BatchMode mode, int stateful, OptimizerKind opt, CellKind cell, float dropout)
{
    Dataset d = periodic_dataset(40);
    TrainConfig c = small_config(&d, mode, stateful);
    c.optim.kind = opt;
    c.model.cell = cell;
    c.dropout = dropout;
    if (opt == OPT_ADAMW)
        c.optim.weight_decay = 0.1f;
    Err e;
    size_t P = model_num_params(&c.model);

    Backend straight_be;
    Trainer straight;
    cr_assert_eq(backend_create(&straight_be, &cpu_backend_ops, &c.model, c.seq_len, c.batch, NULL, &e), 0);
    cr_assert_eq(trainer_start(&straight, &c, &d, "periodic", &straight_be, &e), 0, "%s", e.msg);
    run_steps(&straight, 2 * 6);

    char dir[64], path[128];
    make_temp_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/half.ckpt", dir);
    Backend first_be;
    Trainer first;
    cr_assert_eq(backend_create(&first_be, &cpu_backend_ops, &c.model, c.seq_len, c.batch, NULL, &e), 0);
    cr_assert_eq(trainer_start(&first, &c, &d, "periodic", &first_be, &e), 0);
    run_steps(&first, 6);
    Checkpoint ck;
    cr_assert_eq(trainer_snapshot(&first, 1.0f, NAN, &ck, &e), 0, "%s", e.msg);
    cr_assert_eq(checkpoint_save(path, &ck, &e), 0, "%s", e.msg);
    checkpoint_free(&ck);
    trainer_free(&first);
    backend_destroy(&first_be);

    Backend second_be;
    Trainer second;
    cr_assert_eq(checkpoint_load(path, &ck, &e), 0, "%s", e.msg);
    cr_assert_eq(backend_create(&second_be, &cpu_backend_ops, &ck.cfg.model, c.seq_len, c.batch, NULL, &e), 0);
    cr_assert_eq(trainer_resume(&second, &ck, &d, "periodic", &second_be, &e), 0, "%s", e.msg);
    cr_assert_eq(second.step, 6);
    run_steps(&second, 6);
    if (stateful) { /* the state carried on (the LSTM's c too) */
        const size_t nc = (size_t)model_state_sets(&c.model) * c.model.layers * c.batch * c.model.hidden;
        float *ca = malloc(sizeof(float) * nc), *cb = malloc(sizeof(float) * nc);
        straight_be.ops->get_carry(straight_be.ctx, ca, &e);
        second_be.ops->get_carry(second_be.ctx, cb, &e);
        cr_assert(memcmp(ca, cb, sizeof(float) * nc) == 0, "carried state after 2N steps differs");
        free(ca), free(cb);
    }

    float *a = malloc(sizeof(float) * P), *b = malloc(sizeof(float) * P);
    float *am = malloc(sizeof(float) * P), *av = malloc(sizeof(float) * P);
    float *bm = malloc(sizeof(float) * P), *bv = malloc(sizeof(float) * P);
    straight_be.ops->get_params(straight_be.ctx, a, &e);
    second_be.ops->get_params(second_be.ctx, b, &e);
    straight_be.ops->get_moments(straight_be.ctx, am, av, &e);
    second_be.ops->get_moments(second_be.ctx, bm, bv, &e);
    cr_assert(memcmp(a, b, sizeof(float) * P) == 0, "parameters after 2N steps differ from N + resume + N");
    cr_assert(memcmp(am, bm, sizeof(float) * P) == 0 && memcmp(av, bv, sizeof(float) * P) == 0, "moments differ");
    free(a), free(b), free(am), free(av), free(bm), free(bv);
    checkpoint_free(&ck);
    remove_tree(dir);
    trainer_free(&straight);
    trainer_free(&second);
    backend_destroy(&straight_be);
    backend_destroy(&second_be);
    dataset_free(&d);
}

static void check_resume(BatchMode mode, int stateful, OptimizerKind opt)
{
    check_resume_of(mode, stateful, opt, CELL_RNN, 0.0f);
}

Test(train, resume_is_bit_identical_seq_mode)
{
    check_resume(MODE_SEQ, 0, OPT_ADAM);
}
Test(train, resume_is_bit_identical_stateful)
{
    check_resume(MODE_SEQ, 1, OPT_ADAMW);
}
Test(train, resume_is_bit_identical_window_mode)
{
    check_resume(MODE_WINDOW, 0, OPT_SGD);
}
/* With dropout the masks depend on the step: a resumed run draws the very masks the straight one did. */
Test(train, resume_is_bit_identical_with_dropout_every_cell)
{
    for (int cell = 0; cell < CELL_KINDS; cell++)
        check_resume_of(MODE_SEQ, 1, OPT_ADAM, (CellKind)cell, 0.3f);
    check_resume_of(MODE_WINDOW, 0, OPT_ADAMW, CELL_GRU, 0.3f);
}

Test(train, learns_a_periodic_text)
{
    Dataset d = periodic_dataset(200);
    TrainConfig c = {
        .model = {.vocab = d.vocab.size, .embed = 16, .hidden = 48, .layers = 1},
        .mode = MODE_SEQ,
        .seq_len = 32,
        .batch = 16,
        .optim = optim_defaults(),
        .steps = 300,
        .seed = 1,
        .val_fraction = 0.1f,
    };
    c.optim.lr = 1e-2f;
    Backend be;
    Trainer tr;
    Err e;
    cr_assert_eq(backend_create(&be, &cpu_backend_ops, &c.model, c.seq_len, c.batch, NULL, &e), 0);
    cr_assert_eq(trainer_start(&tr, &c, &d, "periodic", &be, &e), 0, "%s", e.msg);
    double before, after;
    cr_assert_eq(evaluate(&be, c.mode, 0, d.tokens + d.n_train, d.n - d.n_train, c.seq_len, c.batch, 0, &before, &e), 0);
    run_steps(&tr, c.steps);
    cr_assert_eq(evaluate(&be, c.mode, 0, d.tokens + d.n_train, d.n - d.n_train, c.seq_len, c.batch, 0, &after, &e), 0);
    cr_assert_gt(before, 2.5, "an untrained model should be near uniform (ln 27 = 3.3), got %f", before);
    cr_assert_lt(after, 0.05, "validation loss %f after %ld steps, expected under 0.05", after, c.steps);
    trainer_free(&tr);
    backend_destroy(&be);
    dataset_free(&d);
}

Test(train, evaluate_weights_batches_by_their_predictions)
{
    Dataset d;
    TrainConfig c;
    Backend be;
    Trainer tr;
    Err e;
    start_small(&d, &c, &be, &tr);
    /* 20 chunks of 7 in a 141-token text: 6 full batches of 3 and one of 2 */
    size_t n = 141;
    double all;
    cr_assert_eq(evaluate(&be, MODE_SEQ, 0, d.tokens, n, 7, 3, 0, &all, &e), 0);
    double sum = 0.0;
    token_t x[21], y[21];
    for (size_t k = 0; k < 20; k++) {
        eval_batch(MODE_SEQ, d.tokens, 7, 20, 20, k, 1, x, y);
        Batch b = {.x = x, .y = y, .T = 7, .B = 1};
        float loss;
        cr_assert_eq(be.ops->forward(be.ctx, &b, &loss, &e), 0);
        sum += loss;
    }
    cr_assert_float_eq(all, sum / 20, 1e-5);
    stop_small(&d, &be, &tr);
}

/* With the state carried, evaluation reads B streams as B whole sequences: its loss is the mean of the
 * streams' losses, each in one pass from a zero state, whatever the chunking (7, 7 and 3 here), and the
 * training run's own carried state is left as it was. */
static void check_carried_evaluation(CellKind cell)
{
    Dataset d;
    TrainConfig c;
    Backend be, whole;
    Trainer tr;
    Err e;
    start_cell_run(&d, &c, &be, &tr, 20, 1, cell);
    run_steps(&tr, 2); /* a carried state that is not zero */
    const int T = c.seq_len, B = c.batch, len = 2 * T + 3;
    const size_t n = (size_t)B * (size_t)len + 1, P = model_num_params(&c.model);
    const size_t nh = (size_t)model_state_sets(&c.model) * c.model.layers * B * c.model.hidden;
    cr_assert_eq(eval_stream_chunks(n, T, B, 0), 3);
    cr_assert_eq(eval_predictions(MODE_SEQ, 1, n, T, B, 0), (size_t)B * len);
    cr_assert_eq(eval_predictions(MODE_SEQ, 1, n, T, B, 2), (size_t)B * 2 * T);
    float *kept = malloc(sizeof(float) * nh), *after = malloc(sizeof(float) * nh), *params = malloc(sizeof(float) * P);
    cr_assert_eq(be.ops->get_carry(be.ctx, kept, &e), 0, "%s", e.msg);
    double carried, apart;
    cr_assert_eq(evaluate(&be, MODE_SEQ, 1, d.tokens, n, T, B, 0, &carried, &e), 0, "%s", e.msg);
    cr_assert_eq(be.ops->get_carry(be.ctx, after, &e), 0, "%s", e.msg);
    cr_expect(memcmp(kept, after, sizeof(float) * nh) == 0, "%s: evaluation changed the run's carried state",
              cell_name(cell));

    cr_assert_eq(backend_create(&whole, &cpu_backend_ops, &c.model, len, 1, NULL, &e), 0, "%s", e.msg);
    cr_assert_eq(be.ops->get_params(be.ctx, params, &e), 0, "%s", e.msg);
    cr_assert_eq(whole.ops->set_params(whole.ctx, params, &e), 0, "%s", e.msg);
    double sum = 0.0;
    token_t x[64], y[64];
    for (int b = 0; b < B; b++) {
        seq_example(d.tokens, (size_t)b * (size_t)len, len, 1, 0, x, y);
        Batch one = {.x = x, .y = y, .T = len, .B = 1};
        float loss;
        cr_assert_eq(whole.ops->forward(whole.ctx, &one, &loss, &e), 0, "%s", e.msg);
        sum += loss;
    }
    cr_expect_float_eq(carried, sum / B, 1e-5, "%s: carried %.7f, whole streams %.7f", cell_name(cell), carried,
                       sum / B);
    /* The same text in zero-state chunks is another number: the state did carry. */
    cr_assert_eq(evaluate(&be, MODE_SEQ, 0, d.tokens, n, T, B, 0, &apart, &e), 0, "%s", e.msg);
    cr_expect(fabs(apart - carried) > 1e-4, "%s: zero-state chunks %.7f, carried %.7f", cell_name(cell), apart,
              carried);
    free(kept), free(after), free(params);
    backend_destroy(&whole);
    stop_small(&d, &be, &tr);
}

Test(train, evaluation_with_the_state_carried_reads_whole_streams)
{
    check_carried_evaluation(CELL_RNN);
    check_carried_evaluation(CELL_GRU);
    check_carried_evaluation(CELL_LSTM);
}

static void check_stepwise_sampling(CellKind cell)
{
    Dataset d;
    TrainConfig c;
    Backend be;
    Trainer tr;
    Err e;
    start_cell_run(&d, &c, &be, &tr, 20, 0, cell);
    run_steps(&tr, 3);
    /* The loss of the first t steps of a batch of one, for t = 1..5, gives each step's loss; the sampler's
     * one-token-at-a-time recurrence must give the same number at every step. */
    token_t x[5] = {1, 2, 3, 4, 5}, y[5] = {2, 3, 4, 5, 6};
    float *logits = malloc(sizeof(float) * (size_t)c.model.vocab);
    be.ops->sample_reset(be.ctx, &e);
    double previous = 0.0;
    for (int t = 1; t <= 5; t++) {
        Batch b = {.x = x, .y = y, .T = t, .B = 1};
        float mean;
        cr_assert_eq(be.ops->forward(be.ctx, &b, &mean, &e), 0);
        double batched = (double)mean * t - previous;
        previous = (double)mean * t;
        cr_assert_eq(be.ops->sample_step(be.ctx, x[t - 1], logits, &e), 0);
        double max = logits[0], sum = 0.0;
        for (int v = 1; v < c.model.vocab; v++)
            max = fmax(max, logits[v]);
        for (int v = 0; v < c.model.vocab; v++)
            sum += exp(logits[v] - max);
        double stepwise = max + log(sum) - logits[y[t - 1]];
        cr_assert_float_eq(stepwise, batched, 2e-5, "%s step %d: one token at a time %.6f, batched %.6f",
                           cell_name(cell), t, stepwise, batched);
    }
    free(logits);
    stop_small(&d, &be, &tr);
}

Test(train, stepwise_sampling_matches_the_batched_forward)
{
    check_stepwise_sampling(CELL_RNN);
}
/* The gated cells' generation carries the state (the LSTM's c too) as the batched forward does. */
Test(train, stepwise_sampling_matches_the_batched_forward_gated_cells)
{
    check_stepwise_sampling(CELL_GRU);
    check_stepwise_sampling(CELL_LSTM);
}

/* Evaluation never drops: its loss is the forward pass without dropout, whatever the run's dropout. */
Test(train, evaluation_is_without_dropout)
{
    Dataset d;
    TrainConfig c;
    Backend be;
    Trainer tr;
    Err e;
    start_cell_run(&d, &c, &be, &tr, 20, 0, CELL_LSTM);
    tr.cfg.dropout = 0.5f;
    run_steps(&tr, 2);
    const size_t n = (size_t)c.seq_len * c.batch;
    double eval;
    cr_assert_eq(evaluate(&be, MODE_SEQ, 0, d.tokens, n + 1, c.seq_len, c.batch, 0, &eval, &e), 0, "%s", e.msg);
    token_t *x = malloc(sizeof(token_t) * n), *y = malloc(sizeof(token_t) * n);
    eval_batch(MODE_SEQ, d.tokens, c.seq_len, eval_examples(MODE_SEQ, n + 1, c.seq_len), c.batch, 0, c.batch, x, y);
    Batch b = {.x = x, .y = y, .T = c.seq_len, .B = c.batch};
    float plain, dropped;
    cr_assert_eq(be.ops->forward(be.ctx, &b, &plain, &e), 0);
    b.dropout = 0.5f;
    b.dropout_step = 3;
    cr_assert_eq(be.ops->forward(be.ctx, &b, &dropped, &e), 0);
    cr_assert_float_eq(eval, plain, 1e-6, "evaluate %.7f, the forward pass without dropout %.7f", eval, (double)plain);
    cr_assert(fabsf(dropped - plain) > 1e-3f, "dropout changes the forward pass: %.7f vs %.7f", (double)dropped,
              (double)plain);
    free(x), free(y);
    stop_small(&d, &be, &tr);
}

Test(train, clipping_limits_the_update_norm)
{
    Dataset d;
    TrainConfig c;
    Backend be;
    Trainer tr;
    Err e;
    start_small(&d, &c, &be, &tr);
    size_t P = model_num_params(&c.model);
    float *before = malloc(sizeof(float) * P), *after = malloc(sizeof(float) * P);
    /* Plain SGD with lr 1: the update is the (scaled) gradient itself. */
    tr.cfg.optim.kind = OPT_SGD;
    tr.cfg.optim.momentum = 0.0f;
    tr.cfg.optim.lr = 1.0f;
    tr.cfg.optim.schedule = LR_CONSTANT;
    tr.cfg.optim.warmup = 0;
    for (int clipped = 0; clipped < 2; clipped++) {
        tr.cfg.optim.clip = clipped ? 0.01f : 0.0f;
        be.ops->get_params(be.ctx, before, &e);
        StepStats s;
        cr_assert_eq(trainer_step(&tr, &s, &e), 0, "%s", e.msg);
        be.ops->get_params(be.ctx, after, &e);
        double sq = 0.0;
        for (size_t i = 0; i < P; i++)
            sq += ((double)after[i] - before[i]) * ((double)after[i] - before[i]);
        double expected = clipped ? 0.01 : s.grad_norm;
        cr_assert_gt(s.grad_norm, 0.01f, "the gradient must exceed the clip for this test to mean anything");
        cr_assert_float_eq(sqrt(sq), expected, 1e-5 * expected, "%s: update norm %.6g, expected %.6g",
                           clipped ? "clipped" : "unclipped", sqrt(sq), expected);
    }
    free(before);
    free(after);
    stop_small(&d, &be, &tr);
}

Test(train, divergence_stops_before_the_update)
{
    Dataset d;
    TrainConfig c;
    Backend be;
    Trainer tr;
    Err e;
    start_small(&d, &c, &be, &tr);
    size_t P = model_num_params(&c.model);
    float *params = malloc(sizeof(float) * P), *after = malloc(sizeof(float) * P);
    be.ops->get_params(be.ctx, params, &e);
    params[P - 1] = INFINITY; /* one output bias: every loss becomes non-finite */
    be.ops->set_params(be.ctx, params, &e);
    StepStats s;
    cr_assert_eq(trainer_step(&tr, &s, &e), TRAIN_STEP_DIVERGED);
    cr_assert(strstr(e.msg, "no update was made"), "%s", e.msg);
    be.ops->get_params(be.ctx, after, &e);
    cr_assert(memcmp(params, after, sizeof(float) * P) == 0, "no update may follow a non-finite loss");
    cr_assert_eq(tr.step, 0);
    Checkpoint ck;
    cr_assert_eq(trainer_snapshot(&tr, NAN, NAN, &ck, &e), -1, "a non-finite model may not be saved");
    cr_assert(strstr(e.msg, "non-finite parameter"), "%s", e.msg);
    cr_assert_null(ck.params);
    free(params);
    free(after);
    stop_small(&d, &be, &tr);
}

/* A diverged batch of a stateful run leaves no state behind: the streams go on from zeros, and that is
 * what a checkpoint taken then holds. */
Test(train, diverged_stateful_batch_leaves_a_zero_state)
{
    Dataset d;
    TrainConfig c;
    Backend be;
    Trainer tr;
    Err e;
    start_seq_run(&d, &c, &be, &tr, 40, 1);
    run_steps(&tr, 2);
    size_t P = model_num_params(&c.model), nh = (size_t)c.model.layers * c.batch * c.model.hidden;
    float *params = malloc(sizeof(float) * P), *carry = malloc(sizeof(float) * nh);
    be.ops->get_carry(be.ctx, carry, &e);
    double before = 0.0;
    for (size_t i = 0; i < nh; i++)
        before += fabs(carry[i]);
    cr_assert_gt(before, 0.0, "a stateful run carries a state");
    be.ops->get_params(be.ctx, params, &e);
    params[P - 1] = INFINITY; /* the hidden states stay finite; the loss does not */
    be.ops->set_params(be.ctx, params, &e);
    StepStats st;
    cr_assert_eq(trainer_step(&tr, &st, &e), TRAIN_STEP_DIVERGED);
    be.ops->get_carry(be.ctx, carry, &e);
    for (size_t i = 0; i < nh; i++)
        cr_assert_eq(carry[i], 0.0f, "carried state [%zu] = %f after a diverged batch", i, carry[i]);
    free(params), free(carry);
    stop_small(&d, &be, &tr);
}

Test(train, resume_refuses_a_stream_position_outside_the_data)
{
    Dataset d;
    TrainConfig c;
    Backend be;
    Trainer tr;
    Err e;
    start_seq_run(&d, &c, &be, &tr, 40, 1);
    Checkpoint ck;
    cr_assert_eq(trainer_snapshot(&tr, NAN, NAN, &ck, &e), 0);
    trainer_free(&tr);
    ck.stream_pos = UINT64_MAX - 3;
    cr_assert_eq(trainer_resume(&tr, &ck, &d, "periodic", &be, &e), -1);
    cr_assert(strstr(e.msg, "stream position"), "%s", e.msg);
    checkpoint_free(&ck);
    backend_destroy(&be);
    dataset_free(&d);
}

/* A stateful run saved after the batch that reached the end of its streams (the next one starts them over)
 * resumes: its stream position is one batch past the last start, which is where the streams wrap. */
Test(train, resume_continues_a_run_saved_where_its_streams_wrap)
{
    Dataset d;
    TrainConfig c;
    Backend be;
    Trainer tr;
    Err e;
    start_seq_run(&d, &c, &be, &tr, 4, 1); /* 3 streams of 54 characters: they wrap within 7 steps */
    StepStats s;
    while (tr.batcher.stream_pos <= batcher_last_stream_pos(&tr.batcher))
        cr_assert_eq(trainer_step(&tr, &s, &e), 0, "%s", e.msg);
    Checkpoint ck;
    cr_assert_eq(trainer_snapshot(&tr, NAN, NAN, &ck, &e), 0, "%s", e.msg);
    trainer_free(&tr);
    cr_assert_eq(trainer_resume(&tr, &ck, &d, "periodic", &be, &e), 0, "%s", e.msg);
    cr_assert_eq(trainer_step(&tr, &s, &e), 0, "%s", e.msg);
    cr_expect_eq(tr.batcher.stream_pos, (uint64_t)c.seq_len, "the streams started over");
    checkpoint_free(&ck);
    stop_small(&d, &be, &tr);
}
