#include "backend.h"

#include <string.h>

int backend_create(Backend *be, const BackendOps *ops, const ModelConfig *cfg, int max_T, int max_B, Err *e)
{
    memset(be, 0, sizeof *be);
    if (model_config_check(cfg, e) != 0)
        return -1;
    be->ctx = ops->create(cfg, max_T, max_B, e);
    if (!be->ctx)
        return -1;
    be->ops = ops;
    be->cfg = *cfg;
    be->max_T = max_T;
    be->max_B = max_B;
    return 0;
}

void backend_destroy(Backend *be)
{
    if (be->ops)
        be->ops->destroy(be->ctx);
    memset(be, 0, sizeof *be);
}
