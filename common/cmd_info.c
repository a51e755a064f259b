/* charrnn info: what a checkpoint holds. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "options.h"

/* A stored loss and what it was measured on: `about` (the train loss), or the step (the validation loss;
 * 0 when a version 1 checkpoint did not say). */
static void print_loss(const char *label, float loss, const char *about, long step)
{
    if (isnan(loss)) {
        printf("  %-14s not measured\n", label);
        return;
    }
    printf("  %-14s %.4f nats/char (%.4f bits/char)", label, (double)loss, (double)loss / LN2);
    if (about)
        printf(", %s\n", about);
    else if (step > 0)
        printf(", measured at step %ld\n", step);
    else
        printf(", measured at a step not recorded (format 1)\n");
}

int cmd_info(int argc, char **argv, const GlobalOptions *g)
{
    const char *path = DEFAULT_CHECKPOINT;
    Option opts[] = {
        {"--checkpoint", ARG_STRING, &path, 0, 0, NULL, "FILE", "checkpoint to describe"},
    };
    const int n_opts = (int)(sizeof opts / sizeof opts[0]);
    int status;
    if (!cli_parse(opts, n_opts, argc, argv, "info", "charrnn info [options]",
                   "Describes a checkpoint: model, training settings, progress, losses and vocabulary.", g, &status))
        return status;
    Err e;
    Checkpoint ck;
    if (cli_load_checkpoint(path, &ck, &e) != 0)
        return cli_fail(EXIT_USAGE, e.msg);
    const TrainConfig *c = &ck.cfg;
    const OptimConfig *o = &c->optim;
    char n1[32], n2[32];
    printf("%s (checkpoint format %d)\n", path, ck.version);
    printf("  %-14s vocab %d, embed %d, hidden %d, layers %d: %s parameters\n", "model", c->model.vocab, c->model.embed,
           c->model.hidden, c->model.layers, fmt_count(model_num_params(&c->model), n1, sizeof n1));
    printf("  %-14s step %ld of %ld\n", "progress", ck.step, c->steps);
    print_loss("train loss", ck.train_loss,
               ck.version >= 2 ? "recent steps' average" : "mean since the evaluation before it (format 1)", 0);
    print_loss("val loss", ck.val_loss, NULL, ck.val_step);
    printf("  %-14s mode %s%s, seq-len %d, batch %d, seed %llu, val-fraction %g\n", "batches",
           c->mode == MODE_SEQ ? "seq" : "window", c->stateful ? " (stateful)" : "", c->seq_len, c->batch,
           (unsigned long long)c->seed, (double)c->val_fraction);
    printf("  %-14s %s, lr %g (%s", "optimizer", optimizer_name(o->kind), (double)o->lr, schedule_name(o->schedule));
    if (o->schedule == LR_COSINE)
        printf(" to %g", (double)o->min_lr);
    if (o->warmup)
        printf(", warmup %d", o->warmup);
    printf(")");
    if (o->kind == OPT_SGD)
        printf(", momentum %g", (double)o->momentum);
    else
        printf(", betas %g/%g, eps %g", (double)o->beta1, (double)o->beta2, (double)o->eps);
    if (o->kind == OPT_ADAMW)
        printf(", weight decay %g", (double)o->weight_decay);
    printf(", clip %g\n", (double)o->clip);
    printf("  %-14s %s (%s%s%s bytes, CRC-32 %08x)\n", "data", ck.data_path[0] ? ck.data_path : "(not recorded)",
           ck.data_path_abs[0] ? ck.data_path_abs : "", ck.data_path_abs[0] ? "; " : "",
           fmt_count(ck.data_bytes, n2, sizeof n2), ck.data_crc);
    if (ck.has_run) {
        const RunSettings *r = &ck.run;
        printf("  %-14s eval every %d (%d batches), sample length %d, save every %d, on-nan %s, log %s\n", "run",
               r->eval_every, r->eval_batches, r->sample_length, r->save_every,
               r->on_nan == ON_NAN_SKIP ? "skip" : "stop", ck.log_path[0] ? ck.log_path : "none");
    }
    printf("  %-14s optimizer moments %s, resume state %s\n", "contents", ck.m ? "yes" : "no",
           ck.has_resume ? "yes" : "no");
    printf("  %-14s %d characters: ", "vocabulary", ck.vocab.size);
    for (int i = 0; i < ck.vocab.size; i++) {
        uint32_t cp = ck.vocab.codepoints[i];
        if (cp == '\n')
            fputs("\\n", stdout);
        else if (cp == '\t')
            fputs("\\t", stdout);
        else if (cp < 0x20 || cp == 0x7F)
            printf("\\x%02x", (unsigned)cp);
        else
            print_codepoint(stdout, cp);
    }
    putchar('\n');
    checkpoint_free(&ck);
    return EXIT_OK;
}
