/* charrnn train: the training loop with progress, evaluation, samples, logging and checkpoints. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint.h"
#include "cli.h"
#include "options.h"
#include "sampler.h"
#include "train.h"

static const char *const MODES[] = {"seq", "window", NULL};
static const char *const OPTIMIZERS[] = {"adam", "adamw", "sgd", NULL};
static const char *const SCHEDULES[] = {"constant", "cosine", NULL};
static const char *const ON_NAN[] = {"stop", "skip", NULL};
enum { ON_NAN_STOP = 0, ON_NAN_SKIP = 1 };

#define ADAMW_DEFAULT_DECAY 0.01f  /* PyTorch's AdamW default */
#define MIN_LR_FRACTION 0.1f       /* cosine decays to a tenth of --lr unless --min-lr says otherwise */
#define TTY_REFRESH_SECONDS 0.1    /* progress line redraws on a terminal */
#define PLAIN_REFRESH_SECONDS 10.0 /* progress lines when stderr is a file or pipe */

#define MAX_SKIPPED_IN_A_ROW 20 /* --on-nan skip: this many non-finite batches in a row is divergence */

/* The options that steer a run without changing what it computes. */
typedef struct {
    const char *data, *out, *resume, *log;
    int eval_every, eval_batches, save_every, sample_length;
    int on_nan;
    int threads;
    int tf32;
} RunOptions;

/* Ctrl-C and SIGTERM: the first asks the loop to save and stop after the step in flight; a second one
 * leaves at once (the last checkpoint is whole: checkpoints are renamed into place). */
static volatile sig_atomic_t stop_signal;

static void on_stop_signal(int sig)
{
    if (stop_signal) {
        write_file_atomic_abandon();
        _exit(128 + sig);
    }
    stop_signal = sig;
}

static void catch_stop_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sa.sa_flags = SA_RESTART; /* output interrupted by the first signal goes on */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* Live progress on stderr: one redrawn line on a terminal, a line every few seconds otherwise. */
typedef struct {
    int tty;
    double start, last_draw;
    long first_step; /* step the run (or resume) started from */
    double loss_sum; /* train loss since the last evaluation */
    long loss_count;
    float last_train; /* the mean of the previous interval, until this one has a step */
    float val_loss;
    int quiet; /* ranks other than 0 print nothing */
} Progress;

static float recent_train_loss(const Progress *p)
{
    return p->loss_count ? (float)(p->loss_sum / (double)p->loss_count) : p->last_train;
}

static void progress_draw(Progress *p, long step, long total, double tokens_per_s, int force)
{
    double now = now_seconds();
    double every = p->tty ? TTY_REFRESH_SECONDS : PLAIN_REFRESH_SECONDS;
    if (p->quiet || (!force && now - p->last_draw < every))
        return;
    p->last_draw = now;
    double elapsed = now - p->start;
    long done = step - p->first_step;
    double eta = done > 0 ? elapsed / (double)done * (double)(total - step) : -1.0;
    char el[32], et[32], val[32];
    if (isnan(p->val_loss))
        snprintf(val, sizeof val, "-");
    else
        snprintf(val, sizeof val, "%.4f", (double)p->val_loss);
    fprintf(stderr, "%sstep %ld/%ld %5.1f%% | %s elapsed, ETA %s | %.0f tok/s | train %.4f | val %s%s",
            p->tty ? "\r" : "", step, total, 100.0 * (double)step / (double)total, fmt_duration(elapsed, el, sizeof el),
            fmt_duration(eta, et, sizeof et), tokens_per_s, (double)recent_train_loss(p), val,
            p->tty ? "\033[K" : "\n");
    fflush(stderr);
}

static void progress_clear(const Progress *p)
{
    if (p->tty && !p->quiet)
        fprintf(stderr, "\r\033[K");
}

static void emit_stderr(uint32_t cp, void *arg)
{
    (void)arg;
    print_codepoint(stderr, cp);
}

/* With several ranks every rank takes the snapshot (the carried states are gathered), rank 0 alone writes
 * it, and every rank goes on or stops with rank 0's outcome (*shared). */
static int save(const Trainer *tr, const char *path, float train_loss, float val_loss, int *shared, Err *e)
{
    const Dist *dist = tr->be->dist;
    Checkpoint ck;
    *shared = 0;
    if (trainer_snapshot(tr, train_loss, val_loss, &ck, e) != 0)
        return -1;
    int rc = dist->rank == 0 && (make_parent_dirs(path, e) != 0 || checkpoint_save(path, &ck, e) != 0) ? -1 : 0;
    checkpoint_free(&ck);
    if (dist->size > 1) {
        Err why;
        if (dist_broadcast(dist, &rc, sizeof rc, 0, &why) != 0 || dist_broadcast(dist, e, sizeof *e, 0, &why) != 0) {
            *e = why;
            return -1;
        }
        *shared = rc != 0;
    }
    return rc;
}

/* A run killed in the middle of writing its log leaves a partial last row; cut it off before appending,
 * so that the next rows (and charrnn plot) start on a line of their own. */
static int drop_unfinished_row(const char *path, Err *e)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0; /* a new log */
    char tail[4096];
    long size = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    long from = size > (long)sizeof tail ? size - (long)sizeof tail : 0;
    size_t n = size > 0 && fseek(f, from, SEEK_SET) == 0 ? fread(tail, 1, (size_t)(size - from), f) : 0;
    fclose(f);
    if (n == 0 || tail[n - 1] == '\n')
        return 0;
    while (n > 0 && tail[n - 1] != '\n')
        n--;
    if (n == 0 && from > 0)
        return 0; /* no line end in the last 4 KiB: not a charrnn log; leave it alone */
    if (truncate(path, from + (long)n) != 0)
        return err_set(e, "train: --log %s: cannot cut off its unfinished last row: %s", path, strerror(errno));
    return 0;
}

/* Everything a train command works from, once its options are parsed. */
typedef struct {
    TrainConfig cfg;
    RunOptions run;
    DeviceChoice device;
    Checkpoint resume; /* the run to continue; empty for a fresh run */
} TrainSetup;

/* Refuses run-defining options that differ from the resumed run's: a resumed run keeps its settings.
 * The numeric options' targets lie inside `given`, so the same offset in the checkpoint's config holds
 * the value to compare; the choice options are compared through `choices`. */
static int check_resume_options(const Option *opts, int n, const TrainConfig *given, const TrainConfig *ck,
                                const int choices[3], Err *e)
{
    const char *const choice_names[3] = {"--mode", "--optimizer", "--lr-schedule"};
    const int ck_choices[3] = {(int)ck->mode, (int)ck->optim.kind, (int)ck->optim.schedule};
    const char *base = (const char *)given;
    for (int i = 0; i < n; i++) {
        const Option *o = &opts[i];
        const char *t = o->target;
        int differs = 0;
        if (!o->given || t == (const char *)&given->steps)
            continue;
        if (t >= base && t < base + sizeof *given) {
            size_t size = o->type == ARG_U64 ? sizeof(uint64_t) : o->type == ARG_LONG ? sizeof(long) : sizeof(int);
            differs = memcmp(t, (const char *)ck + (t - base), size) != 0;
        }
        for (int k = 0; k < 3; k++)
            if (strcmp(o->name, choice_names[k]) == 0)
                differs = choices[k] != ck_choices[k];
        if (differs)
            return err_set(e,
                           "train: %s differs from the run in the checkpoint; a resumed run keeps its settings "
                           "(see charrnn info), so drop %s or start a new run",
                           o->name, o->name);
    }
    return 0;
}

/* Parses the options into *s. Returns 1 to go on, else 0 with *status set (help printed, or an error). */
static int parse_train_options(int argc, char **argv, DeviceChoice device, TrainSetup *s, int *status)
{
    TrainConfig c = {
        .model = {.vocab = 0, .embed = 64, .hidden = 256, .layers = 2},
        .mode = MODE_SEQ,
        .seq_len = 128,
        .batch = 64,
        .optim = optim_defaults(),
        .steps = 2000,
        .seed = 1337,
        .val_fraction = 0.1f,
    };
    RunOptions r = {.data = DEFAULT_DATA,
                    .eval_every = 250,
                    .eval_batches = 16,
                    .save_every = 1000,
                    .sample_length = 200,
                    .threads = cli_default_threads()};
    c.optim.schedule = LR_COSINE;
    int dev = (int)device, mode = (int)c.mode, opt = (int)c.optim.kind, sched = (int)c.optim.schedule;
    Option opts[] = {
        {"--data", ARG_STRING, &r.data, 0, 0, NULL, "FILE", "UTF-8 text to train on"},
        {"--hidden", ARG_INT, &c.model.hidden, 1, MODEL_MAX_WIDTH, NULL, "H", "hidden units per layer"},
        {"--layers", ARG_INT, &c.model.layers, 1, MODEL_MAX_LAYERS, NULL, "L", "stacked recurrent layers"},
        {"--embed", ARG_INT, &c.model.embed, 1, MODEL_MAX_WIDTH, NULL, "E", "character embedding width"},
        {"--seq-len", ARG_INT, &c.seq_len, 1, MAX_SEQ_LEN, NULL, "T", "timesteps per sequence (BPTT length)"},
        {"--batch", ARG_INT, &c.batch, 1, MAX_BATCH, NULL, "B", "sequences per batch"},
        {"--mode", ARG_CHOICE, &mode, 0, 0, MODES, "MODE",
         "seq: loss at every step of random sequences; window: one target per T-token context"},
        {"--stateful", ARG_FLAG, &c.stateful, 0, 0, NULL, NULL,
         "seq mode: B contiguous streams, hidden state carried between batches"},
        {"--steps", ARG_LONG, &c.steps, 1, (double)MAX_STEPS, NULL, "N", "total optimizer steps of the run"},
        {"--optimizer", ARG_CHOICE, &opt, 0, 0, OPTIMIZERS, "NAME", "adam, adamw or sgd (with momentum)"},
        {"--lr", ARG_FLOAT, &c.optim.lr, 1e-9, MAX_LR, NULL, "RATE", "peak learning rate"},
        {"--lr-schedule", ARG_CHOICE, &sched, 0, 0, SCHEDULES, "NAME", "constant, or cosine decay to --min-lr"},
        {"--warmup", ARG_INT, &c.optim.warmup, 0, MAX_WARMUP, NULL, "N", "steps of linear learning-rate warmup"},
        {"--min-lr", ARG_FLOAT, &c.optim.min_lr, 0, MAX_LR, NULL, "RATE", "cosine: final rate (default: --lr / 10)"},
        {"--weight-decay", ARG_FLOAT, &c.optim.weight_decay, 0, 1, NULL, "W",
         "adamw: decoupled decay of the matrices (default with adamw: 0.01)"},
        {"--momentum", ARG_FLOAT, &c.optim.momentum, 0, 0.9999, NULL, "M", "sgd: momentum"},
        {"--beta1", ARG_FLOAT, &c.optim.beta1, 0, 0.9999, NULL, "B1", "adam/adamw: first-moment decay"},
        {"--beta2", ARG_FLOAT, &c.optim.beta2, 0, 0.999999, NULL, "B2", "adam/adamw: second-moment decay"},
        {"--eps", ARG_FLOAT, &c.optim.eps, 1e-30, 1, NULL, "EPS", "adam/adamw: denominator epsilon"},
        {"--clip", ARG_FLOAT, &c.optim.clip, 0, 1e9, NULL, "NORM", "global gradient-norm clip; 0 disables"},
        {"--seed", ARG_U64, &c.seed, 0, 0, NULL, "N", "seed for parameters, batches and samples"},
        {"--val-fraction", ARG_FLOAT, &c.val_fraction, 0, MAX_VAL_FRACTION, NULL, "F",
         "last fraction of the text held out for validation"},
        {"--eval-every", ARG_INT, &r.eval_every, 0, 1e9, NULL, "N", "evaluate (and sample) every N steps; 0: never"},
        {"--eval-batches", ARG_INT, &r.eval_batches, 0, 1e9, NULL, "N",
         "validation batches per evaluation, spread over the split; 0: all"},
        {"--sample-length", ARG_INT, &r.sample_length, 0, 1e6, NULL, "N", "characters sampled at each evaluation"},
        {"--save-every", ARG_INT, &r.save_every, 0, 1e9, NULL, "N",
         "write the checkpoint every N steps; 0: at the end only"},
        {"--out", ARG_STRING, &r.out, 0, 0, NULL, "FILE",
         "checkpoint to write (default: " DEFAULT_CHECKPOINT ", or the --resume file)"},
        {"--resume", ARG_STRING, &r.resume, 0, 0, NULL, "FILE",
         "continue the run saved in FILE exactly where it stopped (--steps may extend it)"},
        {"--log", ARG_STRING, &r.log, 0, 0, NULL, "FILE",
         "append a CSV row per step: step, seconds, tokens/s, train loss, val loss, lr, grad norm"},
        {"--on-nan", ARG_CHOICE, &r.on_nan, 0, 0, ON_NAN, "WHAT",
         "a step with a non-finite loss or gradient: stop (keeping the last checkpoint) or skip its batch"},
        DEVICE_OPTIONS(&dev, &r.threads, &r.tf32),
    };
    const int n_opts = (int)(sizeof opts / sizeof opts[0]);
    memset(s, 0, sizeof *s);
    if (!cli_parse(opts, n_opts, argc, argv, "train", "charrnn [--device DEVICE] train [options]",
                   "Trains a character-level RNN on a UTF-8 text and writes a checkpoint.", status))
        return 0;
    Err e;
    *status = EXIT_USAGE;
    s->device = (DeviceChoice)dev;
    if (r.tf32 && s->device == DEVICE_CPU)
        return !cli_fail(EXIT_USAGE, TF32_ON_CPU);
    if (r.resume) {
        Checkpoint *ck = &s->resume;
        const int choices[3] = {mode, opt, sched};
        if (checkpoint_load(r.resume, ck, &e) != 0)
            return !cli_fail(EXIT_USAGE, e.msg);
        int steps_given = option_find(opts, n_opts, "--steps")->given, bad = 0;
        if (!ck->has_resume || !ck->m)
            bad = err_set(&e, "train: --resume %s: the checkpoint has no optimizer and data state to resume from",
                          r.resume);
        else if (check_resume_options(opts, n_opts, &c, &ck->cfg, choices, &e) != 0)
            bad = -1;
        else if (steps_given && c.steps <= ck->step)
            bad = err_set(&e, "train: --steps %ld: %s is already at step %ld", c.steps, r.resume, ck->step);
        else if (!steps_given && ck->cfg.steps <= ck->step)
            bad = err_set(&e, "train: %s is already at step %ld of %ld; pass --steps N with N > %ld to train further",
                          r.resume, ck->step, ck->cfg.steps, ck->step);
        if (bad) {
            checkpoint_free(ck);
            return !cli_fail(EXIT_USAGE, e.msg);
        }
        long steps = steps_given ? c.steps : ck->cfg.steps;
        c = ck->cfg;
        c.steps = steps;
        if (!option_find(opts, n_opts, "--data")->given && ck->data_path[0])
            r.data = ck->data_path;
        if (!r.out)
            r.out = r.resume;
    } else {
        c.mode = (BatchMode)mode;
        c.optim.kind = (OptimizerKind)opt;
        c.optim.schedule = (LrSchedule)sched;
        int decay_given = option_find(opts, n_opts, "--weight-decay")->given;
        if (decay_given && c.optim.kind != OPT_ADAMW)
            return !cli_fail(EXIT_USAGE, "train: --weight-decay applies to --optimizer adamw only");
        if (!decay_given && c.optim.kind == OPT_ADAMW)
            c.optim.weight_decay = ADAMW_DEFAULT_DECAY;
        if (!option_find(opts, n_opts, "--min-lr")->given)
            c.optim.min_lr = c.optim.lr * MIN_LR_FRACTION;
        if (c.stateful && c.mode == MODE_WINDOW)
            return !cli_fail(EXIT_USAGE,
                             "train: --stateful works with --mode seq only (window examples are independent)");
    }
    if (!r.out)
        r.out = DEFAULT_CHECKPOINT;
    s->cfg = c;
    s->run = r;
    return 1;
}

static int load_data(Dataset *d, const char *path, float val_fraction, Err *e)
{
    if (dataset_load(d, path, val_fraction, e) != 0) {
        if (strcmp(path, DEFAULT_DATA) == 0 && access(path, F_OK) != 0)
            snprintf(e->msg + strlen(e->msg), sizeof e->msg - strlen(e->msg),
                     " (get tiny shakespeare with data/get_tinyshakespeare.sh, or pass --data FILE)");
        return -1;
    }
    return 0;
}

/* A resumed run must continue on the very text it was trained on. */
static int check_resume_data(const Dataset *d, const Checkpoint *ck, const char *path, Err *e)
{
    if (!vocab_equal(&d->vocab, &ck->vocab))
        return err_set(e,
                       "train: --resume: %s differs from the data the run was trained on: its vocabulary (%d "
                       "characters) is not the checkpoint's (%d characters)",
                       path, d->vocab.size, ck->vocab.size);
    if (d->file_bytes != ck->data_bytes || d->file_crc != ck->data_crc)
        return err_set(e,
                       "train: --resume: %s differs from the data the run was trained on: its content (%llu bytes, "
                       "CRC-32 %08x) is not the training text's (%llu bytes, CRC-32 %08x)",
                       path, (unsigned long long)d->file_bytes, d->file_crc, (unsigned long long)ck->data_bytes,
                       ck->data_crc);
    return 0;
}

/* Evaluation, the log row and the sample after a step. Returns -1 on a failure. */
static int after_step(Trainer *tr, const Dataset *d, const RunOptions *r, Progress *p, FILE *log, const StepStats *s,
                      double tokens_per_s, Err *e)
{
    const TrainConfig *c = &tr->cfg;
    size_t n_val = d->n - d->n_train;
    int can_eval = r->eval_every > 0 && eval_examples(c->mode, n_val, c->seq_len) > 0;
    int eval_now = can_eval && (tr->step % r->eval_every == 0 || tr->step == c->steps);
    if (eval_now) {
        double v;
        if (evaluate(tr->be, c->mode, d->tokens + d->n_train, n_val, c->seq_len, c->batch, r->eval_batches, &v, e) != 0)
            return -1;
        p->val_loss = (float)v;
    }
    if (log) {
        fprintf(log, "%ld,%.3f,%.1f,%.6f,", tr->step, now_seconds() - p->start, tokens_per_s, (double)s->loss);
        if (eval_now)
            fprintf(log, "%.6f", (double)p->val_loss);
        fprintf(log, ",%.6g,%.6g\n", (double)s->lr, (double)s->grad_norm);
    }
    if (!eval_now) {
        progress_draw(p, tr->step, c->steps, tokens_per_s, tr->step == c->steps);
        return 0;
    }
    progress_clear(p);
    if (!p->quiet)
        fprintf(stderr, "step %ld: train %.4f, val %.4f nats/char (%.4f bits/char)\n", tr->step,
                (double)recent_train_loss(p), (double)p->val_loss, (double)p->val_loss / LN2);
    if (r->sample_length > 0 && !p->quiet) {
        SamplerConfig sc = {.temperature = 1.0f};
        Rng rng;
        rng_seed(&rng, c->seed + (uint64_t)tr->step);
        fprintf(stderr, "--- sample ---\n");
        if (generate(tr->be, &d->vocab, &sc, &rng, NULL, 0, r->sample_length, emit_stderr, NULL, e) != 0)
            return -1;
        fprintf(stderr, "\n--------------\n");
    }
    p->last_train = recent_train_loss(p);
    p->loss_sum = 0;
    p->loss_count = 0;
    if (log)
        fflush(log);
    progress_draw(p, tr->step, c->steps, tokens_per_s, 1);
    return 0;
}

/* The loop. Returns 0 when the run is complete, 128 + signal after an interruption (saved), or -1, with
 * *shared set when every rank failed alike (the same message on each). A signal seen by any rank stops
 * every rank after the same step. */
static int train_loop(Trainer *tr, const Dataset *d, const RunOptions *r, Progress *p, FILE *log, int *shared, Err *e)
{
    const TrainConfig *c = &tr->cfg;
    const double tokens_per_step = (double)c->seq_len * (double)c->batch;
    int skipped_in_a_row = 0, sig = 0;
    while (tr->step < c->steps && !(sig = dist_max(tr->be->dist, stop_signal))) {
        StepStats s;
        double t0 = now_seconds();
        int rc = trainer_step(tr, &s, e);
        *shared = rc == TRAIN_STEP_DIVERGED || rc == TRAIN_STEP_REPLICAS_DIFFER;
        if (rc == TRAIN_STEP_REPLICAS_DIFFER) {
            char why[sizeof e->msg];
            memcpy(why, e->msg, sizeof why);
            return err_set(e,
                           "train: %s: the ranks no longer hold the same model (a fault on one machine?); training "
                           "stopped, the last checkpoint written is kept",
                           why);
        }
        if (rc == TRAIN_STEP_DIVERGED) {
            progress_clear(p);
            if (r->on_nan == ON_NAN_STOP || ++skipped_in_a_row >= MAX_SKIPPED_IN_A_ROW) {
                char why[sizeof e->msg];
                memcpy(why, e->msg, sizeof why);
                if (r->on_nan == ON_NAN_SKIP)
                    return err_set(e,
                                   "train: %s; %d batches in a row diverged, so training stopped; the last "
                                   "checkpoint written is kept (try a lower --lr)",
                                   why, MAX_SKIPPED_IN_A_ROW);
                return err_set(e,
                               "train: %s; training diverged and stopped, the last checkpoint written is kept "
                               "(try a lower --lr, or --on-nan skip)",
                               why);
            }
            if (!p->quiet)
                fprintf(stderr, "charrnn: %s; batch skipped (--on-nan skip)\n", e->msg);
            continue;
        }
        if (rc != 0)
            return -1;
        skipped_in_a_row = 0;
        double seconds = now_seconds() - t0;
        p->loss_sum += s.loss;
        p->loss_count++;
        if (after_step(tr, d, r, p, log, &s, tokens_per_step / (seconds > 0 ? seconds : 1e-9), e) != 0)
            return -1;
        if (r->save_every > 0 && tr->step % r->save_every == 0 && tr->step < c->steps &&
            save(tr, r->out, recent_train_loss(p), p->val_loss, shared, e) != 0)
            return -1;
    }
    progress_clear(p);
    if (save(tr, r->out, recent_train_loss(p), p->val_loss, shared, e) != 0)
        return -1;
    return sig && tr->step < c->steps ? 128 + sig : 0; /* a finished run is just finished */
}

/* What every rank of a run must agree on: the run, its data, the step it starts from, the device, and how
 * often it evaluates and saves (both are collective). */
static uint32_t run_fingerprint(const TrainConfig *c, const RunOptions *r, const Dataset *d, long step,
                                const char *device)
{
    const OptimConfig *o = &c->optim;
    const double values[] = {c->model.vocab,  c->model.embed,   c->model.hidden,
                             c->model.layers, c->mode,          c->stateful,
                             c->seq_len,      c->batch,         o->kind,
                             o->lr,           o->beta1,         o->beta2,
                             o->eps,          o->weight_decay,  o->momentum,
                             o->clip,         o->schedule,      o->warmup,
                             o->min_lr,       (double)c->steps, c->val_fraction,
                             (double)step,    r->eval_every,    r->eval_batches,
                             r->save_every,   r->on_nan,        (double)d->file_bytes};
    uint32_t crc = crc32_update(0, values, sizeof values);
    crc = crc32_update(crc, &c->seed, sizeof c->seed);
    crc = crc32_update(crc, &d->file_crc, sizeof d->file_crc);
    return crc32_update(crc, device, strlen(device));
}

static int train(int argc, char **argv, DeviceChoice device, const Dist *dist)
{
    TrainSetup s;
    int status;
    if (!parse_train_options(argc, argv, device, &s, &status))
        return cli_agree(status);
    const TrainConfig *c = &s.cfg;
    const RunOptions *r = &s.run;
    const int resuming = r->resume != NULL;
    Err e;
    Dataset d;
    Backend be;
    Trainer tr;
    FILE *log = NULL;
    Progress p = {.tty = isatty(STDERR_FILENO), .quiet = dist->rank != 0};
    const BackendOps *ops;
    int agreed = 0, shared = 0;
    memset(&d, 0, sizeof d);
    memset(&be, 0, sizeof be);
    memset(&tr, 0, sizeof tr);
    status = EXIT_USAGE;
    if (dist->rank != 0) /* rank 0 alone writes the log and the checkpoints */
        s.run.log = NULL;

    /* Everything that can be checked before the first step is checked here, so that a mistake never
     * costs a training run: the device, the data, the shape against it, the checkpoint and log paths. */
    const char *device_note;
    if (c->batch < dist->size) {
        err_set(&e,
                "train: --batch %d is smaller than the %d ranks: each rank computes at least one sequence of "
                "every batch (use --batch %d or more, or fewer ranks)",
                c->batch, dist->size, dist->size);
        goto done;
    }
    if (device_select(s.device, &ops, &device_note, &e) != 0 || load_data(&d, r->data, c->val_fraction, &e) != 0)
        goto done;
    s.cfg.model.vocab = d.vocab.size;
    if (resuming && check_resume_data(&d, &s.resume, r->data, &e) != 0)
        goto done;
    if (batcher_check(c->mode, c->stateful, c->seq_len, c->batch, d.n_train, &e) != 0) {
        char why[sizeof e.msg];
        memcpy(why, e.msg, sizeof why);
        err_set(&e, "train: %s (data %s)", why, r->data);
        goto done;
    }
    if (dist->rank == 0 && check_writable(r->out, &e) != 0)
        goto done;
    if (r->log && drop_unfinished_row(r->log, &e) != 0)
        goto done;
    if (r->log && !(log = fopen(r->log, "a"))) {
        err_set(&e, "train: --log %s: cannot open for appending", r->log);
        goto done;
    }
    /* Every invocation starts its rows with the header, so a log of a resumed run reads as the logs of
     * its runs one after another (charrnn plot starts a new segment there). */
    if (log)
        fprintf(log, "step,seconds,tokens_per_s,train_loss,val_loss,lr,grad_norm\n");

    status = EXIT_ERROR;
    if (dist->rank == 0)
        device_announce(device_note);
    /* Each rank's backend holds its share of every batch. */
    BackendOptions backend_opts = {.threads = r->threads, .tf32 = r->tf32, .dist = dist};
    const Share share = dist_share(c->batch, dist->rank, dist->size);
    if (backend_create(&be, ops, &c->model, c->seq_len, share.count, &backend_opts, &e) != 0)
        goto done;
    if ((resuming ? trainer_resume(&tr, &s.resume, &d, r->data, &be, &e)
                  : trainer_start(&tr, c, &d, r->data, &be, &e)) != 0)
        goto done;
    tr.cfg.steps = c->steps;
    int others = cli_agree(EXIT_OK); /* every rank is ready, or every rank stops here */
    agreed = 1;
    if (others != EXIT_OK) {
        status = others;
        goto cleanup;
    }
    const uint32_t fingerprint = run_fingerprint(c, r, &d, tr.step, ops->name);
    /* and the model itself (a --resume file that differs between machines) */
    const char *what = "the options, data or checkpoint it was started with";
    const int differs = dist_same(dist, &fingerprint, sizeof fingerprint, what, &e) != 0 ? 1
                        : dist->size > 1 ? trainer_check_replicas(&tr, &e)
                                         : 0;
    if (differs < 0) /* this rank alone could not read its parameters */
        goto done;
    if (differs) {
        char why[sizeof e.msg];
        memcpy(why, e.msg, sizeof why);
        err_set(&e, "train: %s; start every rank with the same options on the same files", why);
        status = EXIT_USAGE;
        shared = 1;
        goto done;
    }

    char n1[32], n2[32], n3[32];
    if (dist->size > 1 && !p.quiet) {
        const int fewest = dist_share(c->batch, dist->size - 1, dist->size).count;
        fprintf(stderr, "charrnn: data parallel over %d ranks (%s, %s): %d%s sequences of each batch per rank\n",
                dist->size, dist_library(), ops->name, fewest, c->batch % dist->size ? " or one more" : "");
    }
    if (!p.quiet)
        fprintf(stderr,
                "charrnn: %s on %s: %s parameters (vocab %d, embed %d, hidden %d, layers %d), %s mode%s, "
                "seq-len %d, batch %d\n",
                resuming ? "resuming training" : "training", ops->name,
                fmt_count(model_num_params(&c->model), n1, sizeof n1), c->model.vocab, c->model.embed, c->model.hidden,
                c->model.layers, MODES[c->mode], c->stateful ? " (stateful)" : "", c->seq_len, c->batch);
    if (!p.quiet)
        fprintf(stderr, "charrnn: data %s: %s train / %s validation characters; steps %ld to %ld; checkpoint %s\n",
                r->data, fmt_count(d.n_train, n2, sizeof n2), fmt_count(d.n - d.n_train, n3, sizeof n3), tr.step + 1,
                c->steps, r->out);
    if (!p.quiet && r->eval_every > 0 && c->val_fraction > 0.0f &&
        eval_examples(c->mode, d.n - d.n_train, c->seq_len) == 0)
        fprintf(stderr, "charrnn: the validation split is too short to evaluate; training without validation\n");

    p.start = now_seconds();
    p.first_step = tr.step;
    p.val_loss = resuming ? s.resume.val_loss : NAN;
    p.last_train = resuming ? s.resume.train_loss : NAN;
    catch_stop_signals();
    int stopped = train_loop(&tr, &d, r, &p, log, &shared, &e);
    if (stopped < 0)
        goto done;
    if (log && fclose(log) != 0) {
        log = NULL;
        err_set(&e, "train: --log %s: write failed", r->log);
        goto done;
    }
    log = NULL;
    char el[32], launch[32] = "";
    if (dist->size > 1)
        snprintf(launch, sizeof launch, "mpirun -np %d ", dist->size);
    if (!p.quiet) {
        fprintf(stderr, "charrnn: trained to step %ld in %s; train loss %.4f", tr.step,
                fmt_duration(now_seconds() - p.start, el, sizeof el), (double)recent_train_loss(&p));
        if (!isnan(p.val_loss))
            fprintf(stderr, ", val loss %.4f", (double)p.val_loss);
        fprintf(stderr, " nats/char\ncharrnn: saved checkpoint %s\n", r->out);
    }
    if (stopped && !p.quiet) {
        fprintf(stderr, "charrnn: interrupted (%s) at step %ld of %ld; continue with: %scharrnn train --resume %s\n",
                stopped == 128 + SIGINT ? "SIGINT" : "SIGTERM", tr.step, c->steps, launch, r->out);
    }
    status = stopped ? stopped : EXIT_OK;
done:
    if (status == EXIT_USAGE || status == EXIT_ERROR) {
        progress_clear(&p);
        if (!agreed) /* set-up: the ranks agree, and rank 0 reports the first failure */
            status = cli_agree(cli_fail(status, e.msg));
        else if (shared)
            cli_fail(status, e.msg);
        else
            cli_fail_alone(status, e.msg);
    }
cleanup:
    if (log)
        fclose(log);
    trainer_free(&tr);
    backend_destroy(&be);
    dataset_free(&d);
    checkpoint_free(&s.resume);
    return status;
}

int cmd_train(int argc, char **argv, DeviceChoice device)
{
    return cli_on_ranks(train, argc, argv, device);
}
