/* charrnn info: what a checkpoint holds. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "options.h"

static void print_loss(const char *label, float loss)
{
    if (isnan(loss))
        printf("  %-14s not measured\n", label);
    else
        printf("  %-14s %.4f nats/char (%.4f bits/char)\n", label, (double)loss, (double)loss / LN2);
}

int cmd_info(int argc, char **argv, DeviceChoice device)
{
    (void)device;
    const char *path = DEFAULT_CHECKPOINT;
    Option opts[] = {
        {"--checkpoint", ARG_STRING, &path, 0, 0, NULL, "FILE", "checkpoint to describe"},
    };
    const int n_opts = (int)(sizeof opts / sizeof opts[0]);
    int status;
    if (!cli_parse(opts, n_opts, argc, argv, "info", "charrnn info [options]",
                   "Describes a checkpoint: model, training settings, progress, losses and vocabulary.", &status))
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
    print_loss("train loss", ck.train_loss);
    print_loss("val loss", ck.val_loss);
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
    printf("  %-14s %s (%s bytes, CRC-32 %08x)\n", "data", ck.data_path[0] ? ck.data_path : "(not recorded)",
           fmt_count(ck.data_bytes, n2, sizeof n2), ck.data_crc);
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
