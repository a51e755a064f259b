#include "backend.h"

#include <limits.h>
#include <string.h>

#include "dropout.h"

int backend_shape_check(const ModelConfig *cfg, int max_T, int max_B, Err *e)
{
    if (model_config_check(cfg, e) != 0)
        return -1;
    /* Backends index activations with int: the largest, [T+1, B, max(E, G H, V)], must fit. */
    const int gates_width = cell_gates(cfg->cell) * cfg->hidden;
    int width = cfg->embed > gates_width ? cfg->embed : gates_width;
    width = cfg->vocab > width ? cfg->vocab : width;
    if (max_T < 1 || max_B < 1 || ((double)max_T + 1) * max_B * width > INT_MAX)
        return err_set(e,
                       "a batch of %d x %d is too large for this model (at most %d values per activation buffer: "
                       "(seq-len + 1) x batch x %d must stay below it)",
                       max_T, max_B, INT_MAX, width);
    return 0;
}

int backend_create(Backend *be, const BackendOps *ops, const ModelConfig *cfg, int max_T, int max_B,
                   const BackendOptions *opts, Err *e)
{
    static const BackendOptions defaults = {.threads = 1};
    static const Dist alone = {.rank = 0, .size = 1, .local_rank = 0, .local_size = 1};
    memset(be, 0, sizeof *be);
    if (backend_shape_check(cfg, max_T, max_B, e) != 0)
        return -1;
    be->ctx = ops->create(cfg, max_T, max_B, opts ? opts : &defaults, e);
    if (!be->ctx)
        return -1;
    be->ops = ops;
    be->cfg = *cfg;
    be->max_T = max_T;
    be->max_B = max_B;
    be->dist = opts && opts->dist ? opts->dist : &alone;
    return 0;
}

int batch_check(const Batch *b, int max_T, int max_B, Err *e)
{
    if (b->T < 1 || b->T > max_T || b->B < 1 || b->B > max_B)
        return err_set(e, "batch of %d x %d does not fit the %d x %d the model was created for", b->T, b->B, max_T,
                       max_B);
    if (b->loss_from_t < 0 || b->loss_from_t >= b->T)
        return err_set(e, "loss_from_t %d is outside 0..%d", b->loss_from_t, b->T - 1);
    if (!(b->dropout >= 0.0f && b->dropout < 1.0f))
        return err_set(e, "dropout %g is outside [0, 1)", (double)b->dropout);
    if (b->dropout > 0.0f && (b->T > DROPOUT_MAX_T || b->dropout_step < 0 || b->dropout_row0 < 0))
        return err_set(e, "dropout masks are drawn for up to %d timesteps, steps >= 0 and rows >= 0 (T %d, step %ld, row %d)",
                       DROPOUT_MAX_T, b->T, b->dropout_step, b->dropout_row0);
    return 0;
}

void backend_destroy(Backend *be)
{
    if (be->ops)
        be->ops->destroy(be->ctx);
    memset(be, 0, sizeof *be);
}
