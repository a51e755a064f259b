#include "train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The batches' RNG is seeded apart from the parameters' so that changing one never shifts the other. */
#define BATCH_SEED_SALT 0x62617463686573ull /* "batches" */

static int trainer_setup(Trainer *tr, const TrainConfig *cfg, const Dataset *d, const char *data_path, Backend *be,
                         Err *e)
{
    memset(tr, 0, sizeof *tr);
    tr->cfg = *cfg;
    tr->data = d;
    tr->data_path = data_path;
    tr->be = be;
    if (be->max_T != cfg->seq_len || be->max_B != cfg->batch)
        return err_set(e, "the backend was created for %d x %d batches, the run uses %d x %d", be->max_T, be->max_B,
                       cfg->seq_len, cfg->batch);
    if (cfg->model.vocab != d->vocab.size)
        return err_set(e, "the model's vocabulary has %d characters, the data's %d", cfg->model.vocab, d->vocab.size);
    if (batcher_init(&tr->batcher, cfg->mode, cfg->stateful, cfg->seq_len, cfg->batch, d->tokens, d->n_train,
                     cfg->seed ^ BATCH_SEED_SALT, e) != 0)
        return -1;
    size_t n = (size_t)cfg->seq_len * (size_t)cfg->batch;
    tr->x = malloc(sizeof(token_t) * n);
    tr->y = malloc(sizeof(token_t) * n);
    /* set_carry takes the backend's whole carry, [S, L, max_B, H] */
    tr->zero_carry = calloc((size_t)model_state_sets(&cfg->model) * (size_t)cfg->model.layers * (size_t)be->max_B *
                                (size_t)cfg->model.hidden,
                            sizeof(float));
    if (!tr->x || !tr->y || !tr->zero_carry) {
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
        rc = be->ops->set_carry(be->ctx, ck->carry, e);
    if (rc != 0)
        trainer_free(tr);
    return rc;
}

int trainer_step(Trainer *tr, StepStats *s, Err *e)
{
    const TrainConfig *c = &tr->cfg;
    const BackendOps *ops = tr->be->ops;
    void *ctx = tr->be->ctx;
    int carry = batcher_next(&tr->batcher, tr->x, tr->y);
    Batch b = {
        .x = tr->x,
        .y = tr->y,
        .T = c->seq_len,
        .B = c->batch,
        .loss_from_t = c->mode == MODE_WINDOW ? c->seq_len - 1 : 0,
        .carry_in = c->stateful && carry,
        .carry_out = c->stateful,
        .dropout = c->dropout,
        .dropout_seed = c->seed,
        .dropout_step = tr->step + 1,
    };
    if (ops->forward_backward(ctx, &b, &s->loss, e) != 0 || ops->grad_norm(ctx, &s->grad_norm, e) != 0)
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
        const size_t nc = (size_t)model_state_sets(&tr->cfg.model) * (size_t)tr->cfg.model.layers *
                          (size_t)tr->cfg.batch * (size_t)tr->cfg.model.hidden;
        ck->carry = malloc(sizeof(float) * nc);
        if (!ck->carry)
            goto oom;
        if (ops->get_carry(ctx, ck->carry, e) != 0)
            goto fail;
        for (size_t i = 0; i < nc; i++)
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
    free(tr->x);
    free(tr->y);
    free(tr->zero_carry);
    tr->x = tr->y = NULL;
    tr->zero_carry = NULL;
}

int evaluate(Backend *be, BatchMode mode, const token_t *tokens, size_t n, int T, int B, long max_batches, double *loss,
             Err *e)
{
    size_t total = eval_examples(mode, n, T);
    if (total == 0)
        return err_set(e, "the text is too short to evaluate (%zu characters for --seq-len %d)", n, T);
    size_t used = eval_used(mode, n, T, B, max_batches);
    token_t *x = malloc(sizeof(token_t) * (size_t)T * (size_t)B);
    token_t *y = malloc(sizeof(token_t) * (size_t)T * (size_t)B);
    if (!x || !y) {
        free(x);
        free(y);
        return err_set(e, "out of memory");
    }
    double sum = 0.0;
    size_t counted = 0;
    int rc = 0;
    for (size_t first = 0; first < used && rc == 0; first += (size_t)B) {
        int count = used - first < (size_t)B ? (int)(used - first) : B;
        eval_batch(mode, tokens, T, total, used, first, count, x, y);
        Batch b = {.x = x, .y = y, .T = T, .B = count, .loss_from_t = mode == MODE_WINDOW ? T - 1 : 0};
        float batch_loss;
        if ((rc = be->ops->forward(be->ctx, &b, &batch_loss, e)) != 0)
            break;
        size_t rows = (size_t)(T - b.loss_from_t) * (size_t)count;
        sum += (double)batch_loss * (double)rows;
        counted += rows;
    }
    free(x);
    free(y);
    if (rc != 0)
        return -1;
    *loss = sum / (double)counted;
    /* The loss of finite logits is finite (softmax_xent is stable); only logits that overflowed are not. */
    if (!isfinite(*loss))
        return err_set(e,
                       "the evaluation loss is %g: the model's outputs are not finite (its weights overflow float32)",
                       *loss);
    return 0;
}
