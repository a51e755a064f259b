/* Optimizer settings and the learning-rate schedule. The update itself runs inside each backend. */
#ifndef CHARRNN_OPTIM_H
#define CHARRNN_OPTIM_H

typedef enum { OPT_ADAM = 0, OPT_ADAMW = 1, OPT_SGD = 2 } OptimizerKind;
typedef enum { LR_CONSTANT = 0, LR_COSINE = 1 } LrSchedule;

typedef struct {
    OptimizerKind kind;
    float lr;           /* peak learning rate */
    float beta1, beta2; /* Adam/AdamW moment decay */
    float eps;
    float weight_decay; /* AdamW: decoupled, matrices only */
    float momentum;     /* SGD */
    float clip;         /* global gradient-norm limit; 0 disables clipping */
    LrSchedule schedule;
    int warmup;   /* steps of linear warmup from lr/warmup to lr (either schedule) */
    float min_lr; /* cosine: the rate reached at the last step */
} OptimConfig;

/* Defaults: Adam, lr 2e-3, betas 0.9/0.999, eps 1e-8, clip 5, constant rate. */
OptimConfig optim_defaults(void);

/* Learning rate for update number `step` (0-based) of a run of total_steps updates. */
float lr_at(const OptimConfig *o, long step, long total_steps);

const char *optimizer_name(OptimizerKind k);
const char *schedule_name(LrSchedule s);

#endif
