#include "optim.h"

#include <math.h>

OptimConfig optim_defaults(void)
{
    OptimConfig o = {
        .kind = OPT_ADAM,
        .lr = 2e-3f,
        .beta1 = 0.9f,
        .beta2 = 0.999f,
        .eps = 1e-8f,
        .weight_decay = 0.0f,
        .momentum = 0.9f,
        .clip = 5.0f,
        .schedule = LR_CONSTANT,
        .warmup = 0,
        .min_lr = 2e-4f,
    };
    return o;
}

float lr_at(const OptimConfig *o, long step, long total_steps)
{
    if (step < o->warmup)
        return o->lr * (float)(step + 1) / (float)o->warmup;
    if (o->schedule == LR_CONSTANT)
        return o->lr;
    long span = total_steps - o->warmup;
    double progress = span > 1 ? (double)(step - o->warmup) / (double)(span - 1) : 1.0;
    if (progress > 1.0)
        progress = 1.0;
    double cosine = 0.5 * (1.0 + cos(3.14159265358979323846 * progress));
    return (float)(o->min_lr + (o->lr - o->min_lr) * cosine);
}

const char *optimizer_name(OptimizerKind k)
{
    static const char *const names[] = {"adam", "adamw", "sgd"};
    return names[k];
}

const char *schedule_name(LrSchedule s)
{
    static const char *const names[] = {"constant", "cosine"};
    return names[s];
}
