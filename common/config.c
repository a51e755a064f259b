#include "config.h"

#include <math.h>

static int in_range(float x, float lo, float hi)
{
    return isfinite(x) && x >= lo && x <= hi;
}

int train_config_check(const TrainConfig *c, Err *e)
{
    const OptimConfig *o = &c->optim;
    if (model_config_check(&c->model, e) != 0)
        return -1;
    if ((unsigned)c->mode > MODE_WINDOW || (unsigned)o->kind > OPT_SGD || (unsigned)o->schedule > LR_COSINE)
        return err_set(e, "an enumerated setting is out of range");
    if (c->stateful && c->mode != MODE_SEQ)
        return err_set(e, "stateful streams need seq mode");
    if (c->seq_len < 1 || c->seq_len > MAX_SEQ_LEN || c->batch < 1 || c->batch > MAX_BATCH)
        return err_set(e, "batch shape %d x %d is outside 1..%d x 1..%d", c->seq_len, c->batch, MAX_SEQ_LEN, MAX_BATCH);
    if (c->steps < 1 || c->steps > MAX_STEPS || o->warmup < 0 || o->warmup > MAX_WARMUP)
        return err_set(e, "step count %ld or warmup %d is out of range", c->steps, o->warmup);
    if (!(in_range(o->lr, 0.0f, MAX_LR) && o->lr > 0.0f) || !in_range(o->min_lr, 0.0f, MAX_LR))
        return err_set(e, "learning rate %g (minimum %g) is outside (0, %g]", (double)o->lr, (double)o->min_lr,
                       (double)MAX_LR);
    if (!in_range(o->beta1, 0.0f, 1.0f) || o->beta1 >= 1.0f || !in_range(o->beta2, 0.0f, 1.0f) || o->beta2 >= 1.0f ||
        !in_range(o->momentum, 0.0f, 1.0f) || o->momentum >= 1.0f)
        return err_set(e, "betas %g/%g or momentum %g are outside [0, 1)", (double)o->beta1, (double)o->beta2,
                       (double)o->momentum);
    if (!(in_range(o->eps, 0.0f, 1.0f) && o->eps > 0.0f) || !in_range(o->weight_decay, 0.0f, 1.0f) ||
        !in_range(o->clip, 0.0f, 1e9f))
        return err_set(e, "eps %g, weight decay %g or clip %g is out of range", (double)o->eps, (double)o->weight_decay,
                       (double)o->clip);
    if (!in_range(c->val_fraction, 0.0f, MAX_VAL_FRACTION))
        return err_set(e, "validation fraction %g is outside [0, %g]", (double)c->val_fraction,
                       (double)MAX_VAL_FRACTION);
    return 0;
}

int run_settings_check(const RunSettings *r, Err *e)
{
    if (r->eval_every < 0 || r->eval_every > MAX_EVERY || r->eval_batches < 0 || r->eval_batches > MAX_EVERY ||
        r->save_every < 0 || r->save_every > MAX_EVERY)
        return err_set(e, "eval-every %d, eval-batches %d or save-every %d is outside 0..%d", r->eval_every,
                       r->eval_batches, r->save_every, MAX_EVERY);
    if (r->sample_length < 0 || r->sample_length > MAX_SAMPLE_LENGTH)
        return err_set(e, "sample length %d is outside 0..%d", r->sample_length, MAX_SAMPLE_LENGTH);
    if ((unsigned)r->on_nan > ON_NAN_SKIP)
        return err_set(e, "the on-nan setting %d is neither stop (0) nor skip (1)", (int)r->on_nan);
    return 0;
}
