/* charrnn train: the training loop with progress, evaluation, samples, logging and checkpoints. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint.h"
#include "cli.h"
#include "memory.h"
#include "options.h"
#include "plot.h"
#include "sampler.h"
#include "train.h"

static const char *const MODES[] = {"seq", "window", NULL};
static const char *const OPTIMIZERS[] = {"adam", "adamw", "sgd", NULL};
static const char *const SCHEDULES[] = {"constant", "cosine", NULL};
static const char *const ON_NAN[] = {"stop", "skip", NULL}; /* indexed by OnNan */

#define ADAMW_DEFAULT_DECAY 0.01f  /* PyTorch's AdamW default */
#define MIN_LR_FRACTION 0.1f       /* cosine decays to a tenth of --lr unless --min-lr says otherwise */
/* The gated cells' default peak rate: they learn far faster at 5e-3 than at the tanh cell's 2e-3 (after 500
 * steps of an LSTM, 1.555 against 1.786), and 8e-3 is already too much (bench/RESULTS.md). */
#define GATED_DEFAULT_LR 5e-3f
#define TTY_REFRESH_SECONDS 0.1    /* progress line redraws on a terminal */
#define PLAIN_REFRESH_SECONDS 10.0 /* progress lines when stderr is a file or pipe */

#define MAX_SKIPPED_IN_A_ROW 20 /* --on-nan skip: this many non-finite batches in a row is divergence */
#define TRAIN_LOSS_EMA_STEPS 50 /* the train loss shown is an exponential moving average over about this many
                                 * steps: recent enough to follow the run, smooth enough to read */

/* The options that steer a run without changing what it computes. */
typedef struct {
    const char *data, *out, *resume, *log;
    RunSettings settings;
    const char *data_as_given; /* the path the run recorded for its text (when data is the file it names) */
    int overwrite;             /* may replace the checkpoint of another run */
    int threads;
    int tf32;
} RunOptions;

/* Ctrl-C, SIGTERM and SIGHUP (the terminal went away): the first asks the loop to save and stop after the
 * step in flight; a second one leaves at once (the last checkpoint is whole: checkpoints are renamed into
 * place). */
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
    sigaction(SIGHUP, &sa, NULL);
}

static const char *signal_name(int sig)
{
    return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : sig == SIGHUP ? "SIGHUP" : "a signal";
}

/* Live progress on stderr: one redrawn line on a terminal, a line every few seconds otherwise. */
typedef struct {
    int tty;
    double start, last_draw;
    long first_step;   /* step the run (or resume) started from */
    double ema;        /* moving average of the train loss, each step weighing 1/TRAIN_LOSS_EMA_STEPS */
    double ema_weight; /* the weight in it so far (1 - a^n after n steps): ema / ema_weight is an average */
    float val_loss;
    long val_step; /* the step val_loss was measured at */
    int quiet;     /* ranks other than 0 print nothing */
} Progress;

static void progress_add_loss(Progress *p, float loss)
{
    const double keep = 1.0 - 1.0 / TRAIN_LOSS_EMA_STEPS;
    p->ema = keep * p->ema + (1.0 - keep) * (double)loss;
    p->ema_weight = keep * p->ema_weight + (1.0 - keep);
}

/* The train loss of recent steps; NaN before the first. */
static float recent_train_loss(const Progress *p)
{
    return p->ema_weight > 0.0 ? (float)(p->ema / p->ema_weight) : NAN;
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

/* The samples of training go to the progress stream, whose failures never stop a run. */
static int emit_stderr(uint32_t cp, void *arg, Err *e)
{
    (void)arg, (void)e;
    print_codepoint(stderr, cp);
    return 0;
}

/* Everything a run needs besides the trainer: its options and where its text and log are. */
typedef struct {
    const RunOptions *run;
    const char *data_abs; /* the training text's absolute path */
    const char *log_abs;  /* the log's, or NULL */
} RunFiles;

static char *dup_or_empty(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s ? s : "", n);
        d[n] = 0;
    }
    return d;
}

/* With several ranks every rank takes the snapshot (the carried states are gathered), rank 0 alone writes
 * it, and every rank goes on or stops with rank 0's outcome (*shared). */
static int save(const Trainer *tr, const RunFiles *f, const Progress *p, int *shared, Err *e)
{
    const Dist *dist = tr->be->dist;
    Checkpoint ck;
    *shared = 0;
    if (trainer_snapshot(tr, recent_train_loss(p), p->val_loss, &ck, e) != 0)
        return -1;
    int rc = 0;
    if (dist->rank == 0) {
        ck.val_step = isnan(p->val_loss) ? 0 : p->val_step;
        ck.has_run = 1;
        ck.run = f->run->settings;
        ck.data_path_abs = dup_or_empty(f->data_abs);
        ck.log_path = dup_or_empty(f->log_abs);
        rc = !ck.data_path_abs || !ck.log_path ? err_set(e, "out of memory")
             : make_parent_dirs(f->run->out, e) != 0 ? -1
                                                      : checkpoint_save(f->run->out, &ck, e);
    }
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
enum { RESUME_CHOICES = 4 }; /* the choice options a resumed run keeps: --mode, --optimizer, --lr-schedule, --cell */
static int check_resume_options(const Option *opts, int n, const TrainConfig *given, const TrainConfig *ck,
                                const int choices[RESUME_CHOICES], Err *e)
{
    const char *const choice_names[RESUME_CHOICES] = {"--mode", "--optimizer", "--lr-schedule", "--cell"};
    const int ck_choices[RESUME_CHOICES] = {(int)ck->mode, (int)ck->optim.kind, (int)ck->optim.schedule,
                                            (int)ck->model.cell};
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
        for (int k = 0; k < RESUME_CHOICES; k++)
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

/* A resumed run goes on as it was configured: the settings stored in the checkpoint apply, and one given
 * again with another value replaces the stored one, with a note. */
static void apply_stored_settings(const Option *opts, int n_opts, RunOptions *r, int *on_nan, const Checkpoint *ck)
{
    if (!ck->has_run) /* a version 1 checkpoint: the defaults, as before */
        return;
    const int say = !cli_quiet(); /* every rank applies them, rank 0 tells */
    const struct {
        const char *name;
        int *value;
        int stored;
    } settings[] = {
        {"--eval-every", &r->settings.eval_every, ck->run.eval_every},
        {"--eval-batches", &r->settings.eval_batches, ck->run.eval_batches},
        {"--save-every", &r->settings.save_every, ck->run.save_every},
        {"--sample-length", &r->settings.sample_length, ck->run.sample_length},
        {"--on-nan", on_nan, (int)ck->run.on_nan},
    };
    for (size_t i = 0; i < sizeof settings / sizeof settings[0]; i++) {
        const int is_on_nan = settings[i].value == on_nan;
        if (!option_find(opts, n_opts, settings[i].name)->given)
            *settings[i].value = settings[i].stored;
        else if (say && *settings[i].value != settings[i].stored && is_on_nan)
            fprintf(stderr, "charrnn: --on-nan %s replaces the run's %s\n", ON_NAN[*on_nan], ON_NAN[settings[i].stored]);
        else if (say && *settings[i].value != settings[i].stored)
            fprintf(stderr, "charrnn: %s %d replaces the run's %d\n", settings[i].name, *settings[i].value,
                    settings[i].stored);
    }
    if (!option_find(opts, n_opts, "--log")->given)
        r->log = ck->log_path[0] ? ck->log_path : NULL;
    else if (say && ck->log_path[0] && !same_file(r->log, ck->log_path))
        fprintf(stderr, "charrnn: --log %s replaces the run's log %s\n", r->log, ck->log_path);
}

/* Parses the options into *s. Returns 1 to go on, else 0 with *status set (help printed, or an error). */
static int parse_train_options(int argc, char **argv, const GlobalOptions *g, TrainSetup *s, int *status)
{
    TrainConfig c = {
        .model = {.vocab = 0, .embed = DEFAULT_EMBED, .hidden = DEFAULT_HIDDEN, .layers = DEFAULT_LAYERS},
        .mode = MODE_SEQ,
        .seq_len = DEFAULT_SEQ_LEN,
        .batch = DEFAULT_BATCH,
        .optim = optim_defaults(),
        .steps = 2000,
        .seed = 1337,
        .val_fraction = 0.1f,
    };
    RunOptions r = {.data = DEFAULT_DATA,
                    .settings = {.eval_every = 250, .eval_batches = 16, .save_every = 1000, .sample_length = 200},
                    .threads = cli_default_threads()};
    c.optim.schedule = LR_COSINE;
    int dev = (int)g->device, mode = (int)c.mode, opt = (int)c.optim.kind, sched = (int)c.optim.schedule;
    int cell = (int)c.model.cell;
    int on_nan = ON_NAN_STOP;
    Option opts[] = {
        {"--data", ARG_STRING, &r.data, 0, 0, NULL, "FILE", "UTF-8 text to train on"},
        {"--hidden", ARG_INT, &c.model.hidden, 1, MODEL_MAX_WIDTH, NULL, "H", "hidden units per layer"},
        {"--layers", ARG_INT, &c.model.layers, 1, MODEL_MAX_LAYERS, NULL, "L", "stacked recurrent layers"},
        {"--embed", ARG_INT, &c.model.embed, 1, MODEL_MAX_WIDTH, NULL, "E", "character embedding width"},
        {"--cell", ARG_CHOICE, &cell, 0, 0, CELL_NAMES, "CELL",
         "rnn (tanh), gru or lstm, with PyTorch's equations and gate order"},
        {"--dropout", ARG_FLOAT, &c.dropout, 0, 1, NULL, "P",
         "inverted dropout on every layer's output in training, 0 <= P < 1; 0: off"},
        {"--seq-len", ARG_INT, &c.seq_len, 1, MAX_SEQ_LEN, NULL, "T", "timesteps per sequence (BPTT length)"},
        {"--batch", ARG_INT, &c.batch, 1, MAX_BATCH, NULL, "B", "sequences per batch"},
        {"--mode", ARG_CHOICE, &mode, 0, 0, MODES, "MODE",
         "seq: loss at every step of random sequences; window: one target per T-token context"},
        {"--stateful", ARG_FLAG, &c.stateful, 0, 0, NULL, NULL,
         "seq mode: B contiguous streams, hidden state carried between batches"},
        {"--steps", ARG_LONG, &c.steps, 1, (double)MAX_STEPS, NULL, "N", "total optimizer steps of the run"},
        {"--optimizer", ARG_CHOICE, &opt, 0, 0, OPTIMIZERS, "NAME", "adam, adamw or sgd (with momentum)"},
        {"--lr", ARG_FLOAT, &c.optim.lr, 1e-9, MAX_LR, NULL, "RATE",
         "peak learning rate (default: 0.002 for rnn, 0.005 for gru and lstm)"},
        {"--lr-schedule", ARG_CHOICE, &sched, 0, 0, SCHEDULES, "NAME", "constant, or cosine decay to --min-lr"},
        {"--warmup", ARG_INT, &c.optim.warmup, 0, MAX_WARMUP, NULL, "N", "steps of linear learning-rate warmup"},
        {"--min-lr", ARG_FLOAT, &c.optim.min_lr, 0, MAX_LR, NULL, "RATE",
         "cosine: final rate, at most --lr (default: --lr / 10)"},
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
        {"--eval-every", ARG_INT, &r.settings.eval_every, 0, MAX_EVERY, NULL, "N",
         "evaluate (and sample) every N steps; 0: never"},
        {"--eval-batches", ARG_INT, &r.settings.eval_batches, 0, MAX_EVERY, NULL, "N",
         "validation batches per evaluation, spread over the split; 0: all"},
        {"--sample-length", ARG_INT, &r.settings.sample_length, 0, MAX_SAMPLE_LENGTH, NULL, "N",
         "characters sampled at each evaluation"},
        {"--save-every", ARG_INT, &r.settings.save_every, 0, MAX_EVERY, NULL, "N",
         "write the checkpoint every N steps; 0: at the end only"},
        {"--out", ARG_STRING, &r.out, 0, 0, NULL, "FILE",
         "checkpoint to write (default: " DEFAULT_CHECKPOINT ", or the --resume file)"},
        {"--overwrite", ARG_FLAG, &r.overwrite, 0, 0, NULL, NULL,
         "start over in an --out that holds another run's checkpoint (otherwise refused)"},
        {"--resume", ARG_STRING, &r.resume, 0, 0, NULL, "FILE",
         "continue the run saved in FILE exactly where it stopped, as it was configured (--steps may extend it)"},
        {"--log", ARG_STRING, &r.log, 0, 0, NULL, "FILE",
         "append a CSV row per step: step, seconds, tokens/s, train loss, val loss, lr, grad norm"},
        {"--on-nan", ARG_CHOICE, &on_nan, 0, 0, ON_NAN, "WHAT",
         "a step with a non-finite loss or gradient: stop (keeping the last checkpoint) or skip its batch"},
        DEVICE_OPTIONS(&dev, &r.threads, &r.tf32),
    };
    const int n_opts = (int)(sizeof opts / sizeof opts[0]);
    memset(s, 0, sizeof *s);
    if (!cli_parse(opts, n_opts, argc, argv, "train", "charrnn [--device DEVICE] train [options]",
                   "Trains a character-level RNN on a UTF-8 text and writes a checkpoint.", g, status))
        return 0;
    Err e;
    *status = EXIT_USAGE;
    s->device = (DeviceChoice)dev;
    if (r.tf32 && s->device == DEVICE_CPU)
        return !cli_fail(EXIT_USAGE, TF32_ON_CPU);
    if (c.dropout >= 1.0f) { /* the table's range is closed; 1 would drop every unit */
        err_set(&e, "train: --dropout %g: expected a probability in [0, 1) (1 would drop every unit)", (double)c.dropout);
        return !cli_fail(EXIT_USAGE, e.msg);
    }
    if (r.resume) {
        Checkpoint *ck = &s->resume;
        const int choices[RESUME_CHOICES] = {mode, opt, sched, cell};
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
        if (!bad && !option_find(opts, n_opts, "--data")->given && cli_stored_data(ck, r.resume, "train", &r.data, &e) != 0)
            bad = -1;
        if (bad) {
            checkpoint_free(ck);
            return !cli_fail(EXIT_USAGE, e.msg);
        }
        if (!option_find(opts, n_opts, "--data")->given)
            r.data_as_given = ck->data_path;
        long steps = steps_given ? c.steps : ck->cfg.steps;
        c = ck->cfg;
        c.steps = steps;
        apply_stored_settings(opts, n_opts, &r, &on_nan, ck);
        if (!r.out)
            r.out = r.resume;
    } else {
        c.mode = (BatchMode)mode;
        c.model.cell = (CellKind)cell;
        if (c.model.cell != CELL_RNN && !option_find(opts, n_opts, "--lr")->given)
            c.optim.lr = GATED_DEFAULT_LR;
        c.optim.kind = (OptimizerKind)opt;
        c.optim.schedule = (LrSchedule)sched;
        int decay_given = option_find(opts, n_opts, "--weight-decay")->given;
        if (decay_given && c.optim.kind != OPT_ADAMW)
            return !cli_fail(EXIT_USAGE, "train: --weight-decay applies to --optimizer adamw only");
        if (!decay_given && c.optim.kind == OPT_ADAMW)
            c.optim.weight_decay = ADAMW_DEFAULT_DECAY;
        if (!option_find(opts, n_opts, "--min-lr")->given)
            c.optim.min_lr = c.optim.lr * MIN_LR_FRACTION;
        else if (c.optim.min_lr > c.optim.lr) {
            err_set(&e, "train: --min-lr %g is above --lr %g; the cosine schedule decays from --lr down to --min-lr",
                    (double)c.optim.min_lr, (double)c.optim.lr);
            return !cli_fail(EXIT_USAGE, e.msg);
        }
        if (c.stateful && c.mode == MODE_WINDOW)
            return !cli_fail(EXIT_USAGE,
                             "train: --stateful works with --mode seq only (window examples are independent)");
    }
    r.settings.on_nan = (OnNan)on_nan;
    if (!r.data_as_given)
        r.data_as_given = r.data;
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
static int check_resume_data(const Dataset *d, const Checkpoint *ck, const char *path, const char *ckpt_path,
                             Err *e)
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
    const TrainConfig *c = &ck->cfg;
    if (c->stateful && !batcher_stream_pos_fits(c->seq_len, c->batch, d->n_train, ck->stream_pos))
        return err_set(e, "%s: corrupted: its stream position %llu is outside the streams of %s", ckpt_path,
                       (unsigned long long)ck->stream_pos, path);
    return 0;
}

/* 1 when the file at path begins with the header line of a charrnn log. */
static int is_charrnn_log(const char *path)
{
    Err e;
    int fd = open_regular(path, O_RDONLY, "a training log", &e);
    if (fd < 0)
        return 0;
    char head[sizeof PLOT_LOG_HEADER];
    ssize_t n = read(fd, head, sizeof head);
    close(fd);
    return n == (ssize_t)sizeof head && memcmp(head, PLOT_LOG_HEADER "\n", sizeof head) == 0;
}

/* What may not be replaced whatever the run: the training text, and a special file (a device, a FIFO). */
static int refuse_special_outputs(const RunOptions *r, Err *e)
{
    struct stat st;
    const char *kind;
    if (same_file(r->out, r->data))
        return err_set(e, "train: --out %s is the training text itself; choose another path for the checkpoint",
                       r->out);
    if (stat(r->out, &st) == 0 && (kind = special_file_kind(st.st_mode)))
        return err_set(e, "train: --out %s: is %s, not a checkpoint file; choose a file path", r->out, kind);
    if (!r->log)
        return 0;
    if (same_file(r->log, r->data))
        return err_set(e, "train: --log %s is the training text itself; choose another path for the log", r->log);
    if (same_file(r->log, r->out) || (r->resume && same_file(r->log, r->resume)))
        return err_set(e, "train: --log %s is the checkpoint's path too; choose another path for the log", r->log);
    if (stat(r->log, &st) == 0 && (kind = special_file_kind(st.st_mode)))
        return err_set(e, "train: --log %s: is %s, not a log file; choose a file path", r->log, kind);
    if (stat(r->log, &st) == 0 && st.st_size > 0 && !is_charrnn_log(r->log))
        return err_set(e,
                       "train: --log %s: exists and is not a charrnn training log (its first line is not '%s'); "
                       "choose another path",
                       r->log, PLOT_LOG_HEADER);
    return 0;
}

/* What --out holds, checked once this run holds its lock: only a charrnn checkpoint is ever replaced, and
 * another run's only with --overwrite (an interrupted run is continued with --resume, not lost). */
static int check_existing_checkpoint(const RunOptions *r, Err *e)
{
    struct stat st;
    if (stat(r->out, &st) != 0 || (r->resume && same_file(r->out, r->resume)))
        return 0;
    CheckpointSummary sum;
    Err why;
    char out[4200];
    shell_quote(r->out, out, sizeof out);
    int peek = checkpoint_peek(r->out, &sum, &why);
    if (peek == PEEK_NOT_CHECKPOINT)
        return err_set(e,
                       "train: --out %s: exists and is not a charrnn checkpoint; charrnn replaces only its own "
                       "checkpoints, so choose another path",
                       r->out);
    if (r->overwrite)
        return 0;
    if (peek == PEEK_DAMAGED)
        return err_set(e, "train: %s; pass --overwrite to replace it", why.msg);
    if (sum.step < sum.steps)
        return err_set(e,
                       "train: %s holds an unfinished run (step %ld of %ld); continue it with `%s train --resume %s`, "
                       "or pass --overwrite to start over",
                       r->out, sum.step, sum.steps, program_name(), out);
    return err_set(e,
                   "train: %s holds a finished run (step %ld of %ld); pass --overwrite to replace it, choose another "
                   "--out, or train it further with `%s train --resume %s --steps N`",
                   r->out, sum.step, sum.steps, program_name(), out);
}

static int fits(const BackendOps *ops, const TrainConfig *c, const MemoryNeed *avail)
{
    MemoryNeed need = train_memory(ops, c);
    return memory_fits(ops, &need, avail, NULL) == 0;
}

/* Refuses, before anything large is allocated, a run that would not fit in memory, naming the largest
 * batch that would, or where even one sequence is too many, the widest model that would. */
static int check_memory(const BackendOps *ops, const TrainConfig *c, Err *e)
{
    MemoryNeed avail, need = train_memory(ops, c);
    Err why;
    if (memory_available(ops, &avail, e) != 0)
        return -1;
    if (memory_fits(ops, &need, &avail, &why) == 0)
        return 0;
    TrainConfig t = *c;
    char hint[128];
    int lo = 0, hi = c->batch - 1; /* the need grows with the batch: the largest that fits, by bisection */
    while (lo < hi) {
        t.batch = (lo + hi + 1) / 2;
        if (fits(ops, &t, &avail))
            lo = t.batch;
        else
            hi = t.batch - 1;
    }
    t.batch = c->batch;
    int width = c->model.hidden > c->model.embed ? c->model.hidden : c->model.embed, w_lo = 0, w_hi = width - 1;
    while (lo == 0 && w_lo < w_hi) { /* the same for --hidden and --embed, both capped at a width */
        const int w = (w_lo + w_hi + 1) / 2;
        t.model.hidden = c->model.hidden < w ? c->model.hidden : w;
        t.model.embed = c->model.embed < w ? c->model.embed : w;
        if (fits(ops, &t, &avail))
            w_lo = w;
        else
            w_hi = w - 1;
    }
    if (lo > 0)
        snprintf(hint, sizeof hint, "--batch %d would fit", lo);
    else if (w_lo > 0 && c->model.hidden > w_lo && c->model.embed > w_lo)
        snprintf(hint, sizeof hint, "--hidden %d --embed %d would fit", w_lo, w_lo);
    else if (w_lo > 0)
        snprintf(hint, sizeof hint, "--%s %d would fit", c->model.hidden > w_lo ? "hidden" : "embed", w_lo);
    else
        snprintf(hint, sizeof hint, "even one hidden unit would not fit: fewer --layers or a shorter --seq-len");
    return err_set(e, "train: the run (hidden %d, embed %d, layers %d, seq-len %d, batch %d) %s; %s", c->model.hidden,
                   c->model.embed, c->model.layers, c->seq_len, c->batch, why.msg, hint);
}

/* A row of the log, on disk before the next step: a failure is reported at the step it happens. */
static int write_log_row(FILE *log, const char *path, const Trainer *tr, const Progress *p, const StepStats *s,
                         double tokens_per_s, int evaluated, Err *e)
{
    errno = 0;
    fprintf(log, "%ld,%.3f,%.1f,%.6f,", tr->step, now_seconds() - p->start, tokens_per_s, (double)s->loss);
    if (evaluated)
        fprintf(log, "%.6f", (double)p->val_loss);
    fprintf(log, ",%.6g,%.6g\n", (double)s->lr, (double)s->grad_norm);
    if (fflush(log) != 0 || ferror(log))
        return err_set(e, "train: --log %s: write failed at step %ld: %s", path, tr->step,
                       errno ? strerror(errno) : "an I/O error");
    return 0;
}

/* Evaluation, the log row and the sample after a step. Returns 0; -1 on a failure; LOG_FAILED when the
 * log could not be written (the run stops, but saves first). */
#define LOG_FAILED 2
static int after_step(Trainer *tr, const Dataset *d, const RunOptions *r, Progress *p, FILE *log, const StepStats *s,
                      double tokens_per_s, Err *e)
{
    const TrainConfig *c = &tr->cfg;
    const RunSettings *rs = &r->settings;
    size_t n_val = d->n - d->n_train;
    int can_eval = rs->eval_every > 0 && eval_predictions(c->mode, c->stateful, n_val, c->seq_len, c->batch, 0) > 0;
    int eval_now = can_eval && (tr->step % rs->eval_every == 0 || tr->step == c->steps);
    if (eval_now) {
        double v;
        if (evaluate(tr->be, c->mode, c->stateful, d->tokens + d->n_train, n_val, c->seq_len, c->batch,
                     rs->eval_batches, &v, e) != 0)
            return -1;
        p->val_loss = (float)v;
        p->val_step = tr->step;
    }
    if (log && write_log_row(log, r->log, tr, p, s, tokens_per_s, eval_now, e) != 0)
        return LOG_FAILED;
    if (!eval_now) {
        progress_draw(p, tr->step, c->steps, tokens_per_s, tr->step == c->steps);
        return 0;
    }
    progress_clear(p);
    if (!p->quiet)
        fprintf(stderr, "step %ld: train %.4f, val %.4f nats/char (%.4f bits/char)\n", tr->step,
                (double)recent_train_loss(p), (double)p->val_loss, (double)p->val_loss / LN2);
    if (rs->sample_length > 0 && !p->quiet) {
        SamplerConfig sc = {.temperature = 1.0f};
        Rng rng;
        rng_seed(&rng, c->seed + (uint64_t)tr->step);
        fprintf(stderr, "--- sample ---\n");
        if (generate(tr->be, &d->vocab, &sc, &rng, NULL, 0, rs->sample_length, emit_stderr, NULL, e) != 0)
            return -1;
        fprintf(stderr, "\n--------------\n");
    }
    progress_draw(p, tr->step, c->steps, tokens_per_s, 1);
    return 0;
}

/* Why the ranks stop besides a signal: rank 0 could not write the log (above every signal's number). */
#define STOP_LOG_FAILED 1000

/* The loop. Returns 0 when the run is complete, 128 + signal after an interruption (saved), or -1, with
 * *shared set when every rank failed alike (rank 0 reports it). The ranks agree before each step whether
 * to stop: a signal one of them saw, or rank 0's log failing, stops every rank after the same step. */
static int train_loop(Trainer *tr, const Dataset *d, const RunFiles *f, Progress *p, FILE *log, int *shared, Err *e)
{
    const TrainConfig *c = &tr->cfg;
    const RunOptions *r = f->run;
    const double tokens_per_step = (double)c->seq_len * (double)c->batch;
    int skipped_in_a_row = 0, sig, log_failed = 0;
    char log_error[sizeof e->msg] = "";
    while (!(sig = dist_max(tr->be->dist, log_failed ? STOP_LOG_FAILED : stop_signal)) && tr->step < c->steps) {
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
            if (r->settings.on_nan == ON_NAN_STOP || ++skipped_in_a_row >= MAX_SKIPPED_IN_A_ROW) {
                char why[sizeof e->msg];
                memcpy(why, e->msg, sizeof why);
                if (r->settings.on_nan == ON_NAN_SKIP)
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
        progress_add_loss(p, s.loss);
        rc = after_step(tr, d, r, p, log, &s, tokens_per_step / (seconds > 0 ? seconds : 1e-9), e);
        if (rc == LOG_FAILED) { /* stop, but save first: with every rank, once they have agreed to */
            log_failed = 1;
            memcpy(log_error, e->msg, sizeof log_error);
            continue;
        }
        if (rc != 0)
            return -1;
        if (r->settings.save_every > 0 && tr->step % r->settings.save_every == 0 && tr->step < c->steps &&
            save(tr, f, p, shared, e) != 0)
            return -1;
    }
    progress_clear(p);
    if (sig == STOP_LOG_FAILED) {
        char out[4200];
        Err save_error;
        if (save(tr, f, p, shared, &save_error) != 0)
            return err_set(e, "%s; training stopped, and the checkpoint could not be saved either: %s", log_error,
                           save_error.msg);
        *shared = 1; /* the failure is rank 0's log, and rank 0 reports it */
        return err_set(e, "%s; training stopped and %s was saved at step %ld (continue with `%s train --resume %s`)",
                       log_error, r->out, tr->step, program_name(), shell_quote(r->out, out, sizeof out));
    }
    if (save(tr, f, p, shared, e) != 0)
        return -1;
    return sig && tr->step < c->steps ? 128 + sig : 0; /* a finished run is just finished */
}

/* Opens the log for appending: a special file that appeared since it was checked is refused without
 * blocking on it. */
static FILE *open_log(const char *path, Err *e)
{
    int fd = open_regular(path, O_WRONLY | O_APPEND | O_CREAT, "a training log", e);
    if (fd < 0)
        return NULL;
    FILE *f = fdopen(fd, "a");
    if (!f) {
        close(fd);
        err_set(e, "train: --log %s: cannot open for appending", path);
    }
    return f;
}

/* What every rank of a run must agree on: the run, its data, the step it starts from, the device, and how
 * often it evaluates and saves (both are collective). */
static uint32_t run_fingerprint(const TrainConfig *c, const RunSettings *rs, const Dataset *d, long step,
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
                             (double)step,    rs->eval_every,   rs->eval_batches,
                             rs->save_every,  rs->on_nan,       (double)d->file_bytes,
                             c->model.cell,   c->dropout};
    uint32_t crc = crc32_update(0, values, sizeof values);
    crc = crc32_update(crc, &c->seed, sizeof c->seed);
    crc = crc32_update(crc, &d->file_crc, sizeof d->file_crc);
    return crc32_update(crc, device, strlen(device));
}

static int train(int argc, char **argv, const GlobalOptions *g, const Dist *dist)
{
    TrainSetup s;
    int status;
    if (!parse_train_options(argc, argv, g, &s, &status))
        return cli_agree(status);
    const TrainConfig *c = &s.cfg;
    const RunOptions *r = &s.run;
    const int resuming = r->resume != NULL;
    Err e;
    Dataset d;
    Backend be;
    Trainer tr;
    OutputLock lock;
    FILE *log = NULL;
    Progress p = {.tty = isatty(STDERR_FILENO), .quiet = dist->rank != 0};
    const BackendOps *ops;
    char *data_abs = NULL, *log_abs = NULL;
    int agreed = 0, shared = 0;
    memset(&be, 0, sizeof be);
    memset(&tr, 0, sizeof tr);
    memset(&d, 0, sizeof d);
    lock.fd = -1;
    status = EXIT_USAGE;
    /* Rank 0 alone writes the checkpoints and the log; each rank computes its share of every batch. */
    const int writes = dist->rank == 0;
    if (!writes)
        s.run.log = NULL;
    const Share share = dist_share(c->batch, dist->rank, dist->size);
    TrainConfig mine = *c; /* this rank's part of the run, for the memory it needs */
    mine.batch = share.count;

    /* Everything that can be checked before the first step is checked here, so that a mistake never
     * costs a training run: the device, the outputs (one writer each, nothing replaced that is not the
     * run's own), the data, the shape against it and against the memory there is. */
    const char *device_note;
    if (c->batch < dist->size) {
        err_set(&e,
                "train: --batch %d is smaller than the %d ranks: each rank computes at least one sequence of "
                "every batch (use --batch %d or more, or fewer ranks)",
                c->batch, dist->size, dist->size);
        goto done;
    }
    if (device_select(s.device, &ops, &device_note, &e) != 0 ||
        (writes && (refuse_special_outputs(r, &e) != 0 || make_parent_dirs(r->out, &e) != 0 ||
                    (r->log && make_parent_dirs(r->log, &e) != 0))))
        goto done;
    if (writes && output_lock(r->out, &lock, &e) != 0) {
        char why[sizeof e.msg];
        memcpy(why, e.msg, sizeof why);
        err_set(&e, "train: --out %s", why);
        goto done;
    }
    if ((writes && check_existing_checkpoint(r, &e) != 0) || load_data(&d, r->data, c->val_fraction, &e) != 0)
        goto done;
    s.cfg.model.vocab = d.vocab.size;
    mine.model.vocab = d.vocab.size;
    if (resuming && check_resume_data(&d, &s.resume, r->data, r->resume, &e) != 0)
        goto done;
    if (batcher_check(c->mode, c->stateful, c->seq_len, c->batch, d.n_train, &e) != 0 ||
        backend_shape_check(&c->model, c->seq_len, share.count, &e) != 0) {
        char why[sizeof e.msg];
        memcpy(why, e.msg, sizeof why);
        err_set(&e, "train: %s (data %s)", why, r->data);
        goto done;
    }
    if (check_memory(ops, &mine, &e) != 0)
        goto done;
    data_abs = absolute_path(r->data);
    log_abs = r->log ? absolute_path(r->log) : NULL;
    if (!data_abs || (r->log && !log_abs)) {
        err_set(&e, "train: %s: its directory cannot be resolved", !data_abs ? r->data : r->log);
        goto done;
    }
    if (r->log && (drop_unfinished_row(r->log, &e) != 0 || !(log = open_log(r->log, &e))))
        goto done;
    /* Every invocation starts its rows with the header, so a log of a resumed run reads as the logs of
     * its runs one after another (charrnn plot starts a new segment there). */
    if (log && (fprintf(log, PLOT_LOG_HEADER "\n") < 0 || fflush(log) != 0)) {
        err_set(&e, "train: --log %s: write failed: %s", r->log, strerror(errno));
        goto done;
    }

    status = EXIT_ERROR;
    if (writes)
        device_announce(device_note);
    BackendOptions backend_opts = {.threads = r->threads,
                                   .tf32 = r->tf32,
                                   .note = writes ? device_print_note : NULL,
                                   .note_arg = (void *)ops->name,
                                   .dist = dist};
    if (backend_create(&be, ops, &c->model, c->seq_len, share.count, &backend_opts, &e) != 0)
        goto done;
    if ((resuming ? trainer_resume(&tr, &s.resume, &d, r->data_as_given, &be, &e)
                  : trainer_start(&tr, c, &d, r->data_as_given, &be, &e)) != 0)
        goto done;
    checkpoint_drop_arrays(&s.resume); /* on the device now; the memory is the saves' */
    tr.cfg.steps = c->steps;
    int others = cli_agree(EXIT_OK); /* every rank is ready, or every rank stops here */
    agreed = 1;
    if (others != EXIT_OK) {
        status = others;
        goto cleanup;
    }
    /* The ranks compare what they were started with, and the model itself (a --resume file that differs
     * between machines). */
    const uint32_t fingerprint = run_fingerprint(c, &r->settings, &d, tr.step, ops->name);
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

    char n1[32], n2[32], n3[32], host[32], device[32];
    const MemoryNeed need = train_memory(ops, &mine);
    if (dist->size > 1 && !p.quiet) {
        const int fewest = dist_share(c->batch, dist->size - 1, dist->size).count;
        fprintf(stderr, "charrnn: data parallel over %d ranks (%s, %s): %d%s sequences of each batch per rank\n",
                dist->size, dist_library(), ops->name, fewest, c->batch % dist->size ? " or one more" : "");
    }
    if (!p.quiet)
        fprintf(stderr,
            "charrnn: %s on %s: %s parameters (%s cell, vocab %d, embed %d, hidden %d, layers %d, dropout %g), "
            "%s mode%s, seq-len %d, batch %d; an estimated %s of memory%s%s%s\n",
            resuming ? "resuming training" : "training", ops->name,
            fmt_count(model_num_params(&c->model), n1, sizeof n1), cell_name(c->model.cell), c->model.vocab,
            c->model.embed, c->model.hidden, c->model.layers, (double)c->dropout, MODES[c->mode],
            c->stateful ? " (stateful)" : "", c->seq_len, c->batch,
            fmt_bytes(need.host, host, sizeof host), need.device ? " and " : "",
            need.device ? fmt_bytes(need.device, device, sizeof device) : "", need.device ? " on the device" : "");
    if (!p.quiet)
        fprintf(stderr, "charrnn: data %s: %s train / %s validation characters; steps %ld to %ld; checkpoint %s%s%s\n",
                r->data, fmt_count(d.n_train, n2, sizeof n2), fmt_count(d.n - d.n_train, n3, sizeof n3), tr.step + 1,
                c->steps, r->out, log ? "; log " : "", log ? r->log : "");
    if (!p.quiet && r->settings.eval_every > 0 && c->val_fraction > 0.0f &&
        eval_predictions(c->mode, c->stateful, d.n - d.n_train, c->seq_len, c->batch, 0) == 0)
        fprintf(stderr, "charrnn: the validation split is too short to evaluate; training without validation\n");

    p.start = now_seconds();
    p.first_step = tr.step;
    p.val_loss = resuming ? s.resume.val_loss : NAN;
    p.val_step = resuming ? s.resume.val_step : 0;
    if (resuming && !isnan(s.resume.train_loss)) { /* the saved average goes on from where it was */
        p.ema = s.resume.train_loss;
        p.ema_weight = 1.0;
    }
    RunFiles files = {.run = r, .data_abs = data_abs, .log_abs = log_abs};
    catch_stop_signals();
    int stopped = train_loop(&tr, &d, &files, &p, log, &shared, &e);
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
        char out[4200];
        fprintf(stderr, "charrnn: interrupted (%s) at step %ld of %ld; continue with: %s%s train --resume %s\n",
                signal_name(stopped - 128), tr.step, c->steps, launch, program_name(),
                shell_quote(r->out, out, sizeof out));
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
    free(data_abs);
    free(log_abs);
    if (lock.fd >= 0)
        output_unlock(&lock);
    return status;
}

int cmd_train(int argc, char **argv, const GlobalOptions *g)
{
    return cli_on_ranks(train, argc, argv, g);
}
