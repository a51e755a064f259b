#include "train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The batches' RNG is seeded apart from the parameters' so that changing one never shifts the other. */
#define BATCH_SEED_SALT 0x62617463686573ull /* "batches" */

/* The carried state is carry_slices(m) slices of [B, H], one row per stream in each ([S, L, B, H]: the
 * LSTM's h and c, model_state_sets): ranks share it out and gather it back by rows of those slices. */
static int carry_slices(const ModelConfig *m)
{
    return model_state_sets(m) * m->layers;
}

static int trainer_setup(Trainer *tr, const TrainConfig *cfg, const Dataset *d, const char *data_path, Backend *be,
                         Err *e)
{
    memset(tr, 0, sizeof *tr);
    tr->cfg = *cfg;
    tr->data = d;
    tr->data_path = data_path;
    tr->be = be;
    const Dist *dist = be->dist;
    if (cfg->batch < dist->size)
        return err_set(e, "a batch of %d sequences cannot be shared among %d ranks", cfg->batch, dist->size);
    tr->share = dist_share(cfg->batch, dist->rank, dist->size);
    if (be->max_T != cfg->seq_len || be->max_B != tr->share.count)
        return err_set(e, "the backend was created for %d x %d batches, the run uses %d x %d", be->max_T, be->max_B,
                       cfg->seq_len, tr->share.count);
    if (cfg->model.vocab != d->vocab.size)
        return err_set(e, "the model's vocabulary has %d characters, the data's %d", cfg->model.vocab, d->vocab.size);
    if (batcher_init(&tr->batcher, cfg->mode, cfg->stateful, cfg->seq_len, cfg->batch, d->tokens, d->n_train,
                     cfg->seed ^ BATCH_SEED_SALT, e) != 0)
        return -1;
    size_t n = (size_t)cfg->seq_len * (size_t)cfg->batch;
    tr->x = malloc(sizeof(token_t) * n);
    tr->y = malloc(sizeof(token_t) * n);
    tr->xs = tr->x, tr->ys = tr->y;
    int ok = tr->x && tr->y;
    if (dist->size > 1) {
        const size_t mine = (size_t)cfg->seq_len * (size_t)tr->share.count;
        tr->xs = malloc(sizeof(token_t) * mine);
        tr->ys = malloc(sizeof(token_t) * mine);
        tr->replica = malloc(sizeof(float) * model_num_params(&cfg->model));
        ok = ok && tr->xs && tr->ys && tr->replica;
    }
    /* set_carry takes the backend's whole carry, [S, L, max_B, H] */
    tr->zero_carry =
        calloc((size_t)carry_slices(&cfg->model) * (size_t)be->max_B * (size_t)cfg->model.hidden, sizeof(float));
    if (!ok || !tr->zero_carry) {
        trainer_free(tr);
        return err_set(e, "out of memory for the batch buffers");
    }
    return 0;
}

int trainer_start(Trainer *tr, const TrainConfig *cfg, const Dataset *d, const char *data_path, Backend *be, Err *e)
{
    if (trainer_setup(tr, cfg, d, data_path, be, e) != 0)
        return -1;
    size_t P = model_num_params(&cfg->model);
    float *params = malloc(sizeof(float) * P);
    float *zeros = calloc(P, sizeof(float));
    int rc = -1;
    if (!params || !zeros) {
        err_set(e, "out of memory initialising %zu parameters", P);
    } else {
        model_init_params(&cfg->model, params, cfg->seed);
        rc = be->ops->set_params(be->ctx, params, e);
        if (rc == 0)
            rc = be->ops->set_moments(be->ctx, zeros, zeros, e);
        if (rc == 0)
            rc = be->ops->set_carry(be->ctx, tr->zero_carry, e);
    }
    free(params);
    free(zeros);
    if (rc != 0)
        trainer_free(tr);
    return rc;
}

/* The carried state of this rank's streams, from the whole run's [S, L, B, H] (zero_carry is the scratch). */
static int set_carry_share(Trainer *tr, const float *all, Err *e)
{
    const size_t H = (size_t)tr->cfg.model.hidden, B = (size_t)tr->cfg.batch, mine = (size_t)tr->share.count;
    const size_t slices = (size_t)carry_slices(&tr->cfg.model);
    for (size_t l = 0; l < slices; l++)
        memcpy(tr->zero_carry + l * mine * H, all + (l * B + (size_t)tr->share.first) * H, sizeof(float) * mine * H);
    int rc = tr->be->ops->set_carry(tr->be->ctx, tr->zero_carry, e);
    memset(tr->zero_carry, 0, sizeof(float) * slices * mine * H);
    return rc;
}

int trainer_resume(Trainer *tr, const Checkpoint *ck, const Dataset *d, const char *data_path, Backend *be, Err *e)
{
    if (!ck->has_resume || !ck->m)
        return err_set(e, "the checkpoint holds no optimizer and data state to resume from");
    if (trainer_setup(tr, &ck->cfg, d, data_path, be, e) != 0)
        return -1;
    const TrainConfig *c = &ck->cfg;
    if (c->stateful ? !batcher_stream_pos_fits(c->seq_len, c->batch, d->n_train, ck->stream_pos)
                    : ck->stream_pos != 0) {
        trainer_free(tr);
        return err_set(e, "the checkpoint's stream position %llu does not fit this data",
                       (unsigned long long)ck->stream_pos);
    }
    tr->step = ck->step;
    tr->batcher.rng = ck->rng;
    tr->batcher.stream_pos = ck->stream_pos;
    int rc = be->ops->set_params(be->ctx, ck->params, e);
    if (rc == 0)
        rc = be->ops->set_moments(be->ctx, ck->m, ck->v, e);
    if (rc == 0 && ck->carry)
        rc = set_carry_share(tr, ck->carry, e);
    if (rc != 0)
        trainer_free(tr);
    return rc;
}

/* This rank's rows of the global batch, [T, share.count] out of [T, B]. */
static void take_share(Trainer *tr)
{
    const int T = tr->cfg.seq_len, B = tr->cfg.batch, first = tr->share.first, count = tr->share.count;
    if (tr->xs == tr->x)
        return;
    for (int t = 0; t < T; t++) {
        memcpy(tr->xs + (size_t)t * count, tr->x + (size_t)t * B + first, sizeof(token_t) * (size_t)count);
        memcpy(tr->ys + (size_t)t * count, tr->y + (size_t)t * B + first, sizeof(token_t) * (size_t)count);
    }
}

int trainer_check_replicas(Trainer *tr, Err *e)
{
    char what[64];
    if (tr->be->ops->get_params(tr->be->ctx, tr->replica, e) != 0)
        return -1;
    snprintf(what, sizeof what, "the parameters after step %ld", tr->step);
    if (dist_same(tr->be->dist, tr->replica, sizeof(float) * model_num_params(&tr->cfg.model), what, e) != 0)
        return TRAIN_STEP_REPLICAS_DIFFER;
    return 0;
}

int trainer_step(Trainer *tr, StepStats *s, Err *e)
{
    const TrainConfig *c = &tr->cfg;
    const BackendOps *ops = tr->be->ops;
    void *ctx = tr->be->ctx;
    int carry = batcher_next(&tr->batcher, tr->x, tr->y);
    take_share(tr);
    Batch b = {
        .x = tr->xs,
        .y = tr->ys,
        .T = c->seq_len,
        .B = tr->share.count,
        .loss_from_t = c->mode == MODE_WINDOW ? c->seq_len - 1 : 0,
        .carry_in = c->stateful && carry,
        .carry_out = c->stateful,
        .dropout = c->dropout,
        .dropout_seed = c->seed,
        .dropout_step = tr->step + 1,
        .dropout_row0 = tr->share.first, /* the masks are the global batch's, whichever rank computes a row */
    };
    if (ops->forward_backward(ctx, &b, &s->loss, e) != 0)
        return -1;
    /* Every rank counts the same positions per row, so its share of the loss's positions is its share
     * of the rows. */
    const int ranks = tr->be->dist->size;
    if (ranks > 1 && ops->allreduce_grads(ctx, (float)tr->share.count / (float)c->batch, &s->loss, e) != 0)
        return -1;
    if (ops->grad_norm(ctx, &s->grad_norm, e) != 0)
        return -1;
    /* A non-finite loss or gradient would poison every parameter: no update; the hidden state it left is
     * not carried into the next batch either (nor saved): the streams go on from a zero state. */
    if (!isfinite(s->loss) || !isfinite(s->grad_norm)) {
        if (c->stateful && ops->set_carry(ctx, tr->zero_carry, e) != 0)
            return -1;
        err_set(e, "step %ld: the %s is %g (no update was made)", tr->step + 1,
                isfinite(s->loss) ? "gradient norm" : "loss", (double)(isfinite(s->loss) ? s->grad_norm : s->loss));
        return TRAIN_STEP_DIVERGED;
    }
    float scale = c->optim.clip > 0.0f && s->grad_norm > c->optim.clip ? c->optim.clip / s->grad_norm : 1.0f;
    s->lr = lr_at(&c->optim, tr->step, c->steps);
    if (ops->update(ctx, &c->optim, s->lr, tr->step + 1, scale, e) != 0)
        return -1;
    tr->step++;
    if (ranks > 1 && tr->step % REPLICA_CHECK_EVERY == 0)
        return trainer_check_replicas(tr, e);
    return 0;
}

static int vocab_copy(Vocab *dst, const Vocab *src, Err *e)
{
    dst->codepoints = malloc(sizeof(uint32_t) * (size_t)src->size);
    if (!dst->codepoints)
        return err_set(e, "out of memory");
    memcpy(dst->codepoints, src->codepoints, sizeof(uint32_t) * (size_t)src->size);
    dst->size = src->size;
    return 0;
}

int trainer_snapshot(const Trainer *tr, float train_loss, float val_loss, Checkpoint *ck, Err *e)
{
    const BackendOps *ops = tr->be->ops;
    void *ctx = tr->be->ctx;
    memset(ck, 0, sizeof *ck);
    ck->cfg = tr->cfg;
    ck->step = tr->step;
    ck->train_loss = train_loss;
    ck->val_loss = val_loss;
    ck->data_bytes = tr->data->file_bytes;
    ck->data_crc = tr->data->file_crc;
    ck->has_resume = 1;
    ck->rng = tr->batcher.rng;
    ck->stream_pos = tr->batcher.stream_pos;
    size_t P = model_num_params(&tr->cfg.model);
    size_t path_len = tr->data_path ? strlen(tr->data_path) : 0;
    ck->data_path = malloc(path_len + 1);
    ck->params = malloc(sizeof(float) * P);
    ck->m = malloc(sizeof(float) * P);
    ck->v = malloc(sizeof(float) * P);
    if (!ck->data_path || !ck->params || !ck->m || !ck->v)
        goto oom;
    memcpy(ck->data_path, tr->data_path ? tr->data_path : "", path_len + 1);
    if (vocab_copy(&ck->vocab, &tr->data->vocab, e) != 0)
        goto fail;
    if (ops->get_params(ctx, ck->params, e) != 0 || ops->get_moments(ctx, ck->m, ck->v, e) != 0)
        goto fail;
    for (size_t i = 0; i < P; i++) {
        if (!isfinite(ck->params[i]) || !isfinite(ck->m[i]) || !isfinite(ck->v[i])) {
            err_set(e, "the model has a non-finite %s at index %zu; refusing to save it",
                    !isfinite(ck->params[i]) ? "parameter" : "optimizer moment", i);
            goto fail;
        }
    }
    if (tr->cfg.stateful) {
        const int L = carry_slices(&tr->cfg.model), H = tr->cfg.model.hidden;
        const size_t nc = (size_t)L * tr->cfg.batch * H;
        ck->carry = calloc(nc, sizeof(float));
        if (!ck->carry)
            goto oom;
        /* Several ranks: each rank's streams, gathered into rank 0's [S, L, B, H]. */
        const int gather = tr->xs != tr->x;
        float *mine = gather ? malloc(sizeof(float) * (size_t)L * tr->share.count * H) : ck->carry;
        if (!mine)
            goto oom;
        int rc = ops->get_carry(ctx, mine, e);
        if (gather) {
            if (rc == 0)
                rc = dist_gather_rows(tr->be->dist, mine, ck->carry, L, tr->cfg.batch, (size_t)H, e);
            free(mine);
        }
        if (rc != 0)
            goto fail;
        for (size_t i = 0; i < nc && tr->be->dist->rank == 0; i++) /* the other ranks hold no whole state */
            if (!isfinite(ck->carry[i])) {
                err_set(e, "the carried hidden state is not finite; refusing to save it");
                goto fail;
            }
    }
    return 0;
oom:
    err_set(e, "out of memory taking a checkpoint");
fail:
    checkpoint_free(ck);
    return -1;
}

void trainer_free(Trainer *tr)
{
    if (tr->xs != tr->x) {
        free(tr->xs);
        free(tr->ys);
    }
    free(tr->x);
    free(tr->y);
    free(tr->zero_carry);
    free(tr->replica);
    tr->x = tr->y = tr->xs = tr->ys = NULL;
    tr->zero_carry = tr->replica = NULL;
}

/* One evaluation batch's forward pass; its loss, summed over the counted positions, and their number
 * are added to sums. */
static int eval_forward(Backend *be, const Batch *b, double sums[2], Err *e)
{
    float batch_loss;
    if (be->ops->forward(be->ctx, b, &batch_loss, e) != 0)
        return -1;
    double rows = (double)(b->T - b->loss_from_t) * (double)b->B;
    sums[0] += (double)batch_loss * rows;
    sums[1] += rows;
    return 0;
}

/* Independent examples, each from a zero state: seq mode's chunks or window mode's positions. */
static int eval_examples_apart(Backend *be, BatchMode mode, const token_t *tokens, size_t n, int T, int B,
                               long max_batches, token_t *x, token_t *y, double sums[2], Err *e)
{
    size_t total = eval_examples(mode, n, T);
    if (total == 0)
        return err_set(e, "the text is too short to evaluate (%zu characters for --seq-len %d)", n, T);
    size_t used = eval_used(mode, n, T, B, max_batches);
    const Dist *dist = be->dist;
    for (size_t first = 0; first < used; first += (size_t)B) {
        int count = used - first < (size_t)B ? (int)(used - first) : B;
        Share s = dist_share(count, dist->rank, dist->size);
        if (s.count == 0) /* a last batch smaller than the number of ranks */
            continue;
        eval_batch(mode, tokens, T, total, used, first + (size_t)s.first, s.count, x, y);
        Batch b = {.x = x, .y = y, .T = T, .B = s.count, .loss_from_t = mode == MODE_WINDOW ? T - 1 : 0};
        if (eval_forward(be, &b, sums, e) != 0)
            return -1;
    }
    return 0;
}

/* B contiguous streams with the state carried from one chunk to the next. The backend's carried state
 * belongs to the training run: it is kept aside and put back. */
static int eval_streams(Backend *be, const token_t *tokens, size_t n, int T, int B, long max_batches, token_t *x,
                        token_t *y, double sums[2], Err *e)
{
    size_t chunks = eval_stream_chunks(n, T, B, max_batches);
    if (chunks == 0)
        return err_set(e, "the text is too short to evaluate with the state carried (%zu characters for %d streams)",
                       n, B);
    Share s = dist_share(B, be->dist->rank, be->dist->size);
    size_t carry_floats =
        (size_t)model_state_sets(&be->cfg) * (size_t)be->cfg.layers * (size_t)be->max_B * (size_t)be->cfg.hidden;
    float *kept = malloc(sizeof(float) * carry_floats);
    if (!kept)
        return err_set(e, "out of memory");
    int rc = be->ops->get_carry(be->ctx, kept, e);
    for (size_t k = 0; k < chunks && rc == 0; k++) {
        int len = eval_stream_batch(tokens, n, T, B, k, s.first, s.count, x, y);
        Batch b = {.x = x, .y = y, .T = len, .B = s.count, .carry_in = k > 0, .carry_out = 1};
        rc = eval_forward(be, &b, sums, e);
    }
    Err put_back;
    if (be->ops->set_carry(be->ctx, kept, &put_back) != 0 && rc == 0) {
        *e = put_back;
        rc = -1;
    }
    free(kept);
    return rc;
}

int evaluate(Backend *be, BatchMode mode, int carried, const token_t *tokens, size_t n, int T, int B,
             long max_batches, double *loss, Err *e)
{
    token_t *x = malloc(sizeof(token_t) * (size_t)T * (size_t)B);
    token_t *y = malloc(sizeof(token_t) * (size_t)T * (size_t)B);
    if (!x || !y) {
        free(x);
        free(y);
        return err_set(e, "out of memory");
    }
    double sums[2] = {0.0, 0.0}; /* the loss summed over the counted positions, and their number */
    int rc = carried && mode == MODE_SEQ ? eval_streams(be, tokens, n, T, B, max_batches, x, y, sums, e)
                                         : eval_examples_apart(be, mode, tokens, n, T, B, max_batches, x, y, sums, e);
    free(x);
    free(y);
    if (rc != 0 || dist_sum_doubles(be->dist, sums, 2, e) != 0)
        return -1;
    *loss = sums[0] / sums[1];
    /* The loss of finite logits is finite (softmax_xent is stable); only logits that overflowed are not. */
    if (!isfinite(*loss))
        return err_set(e,
                       "the evaluation loss is %g: the model's outputs are not finite (its weights overflow float32)",
                       *loss);
    return 0;
}
