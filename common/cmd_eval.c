/* charrnn eval: a checkpoint's loss on its validation split, or on any text of its vocabulary; under
 * mpirun every batch's rows are shared among the ranks and rank 0 prints the result. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "memory.h"
#include "options.h"
#include "train.h"

static const char *const STATES[] = {"zero", "carried", NULL};

static int eval(int argc, char **argv, const GlobalOptions *g, const Dist *dist)
{
    const char *path = DEFAULT_CHECKPOINT, *data = NULL;
    long batches = 0;
    int state = -1; /* STATES index; -1: as the model was trained */
    int dev = (int)g->device, threads = cli_default_threads(), tf32 = 0;
    Option opts[] = {
        {"--checkpoint", ARG_STRING, &path, 0, 0, NULL, "FILE", "checkpoint to evaluate"},
        {"--data", ARG_STRING, &data, 0, 0, NULL, "FILE",
         "evaluate on all of FILE (default: the validation split of the training text)"},
        {"--batches", ARG_LONG, &batches, 0, 1e12, NULL, "N",
         "at most N batches spread over the text (with the state carried: the first N chunks of every stream); "
         "0: all"},
        {"--state", ARG_CHOICE, &state, 0, 0, STATES, "STATE",
         "zero: every chunk from a zero state; carried: B contiguous streams, the state carried from chunk to "
         "chunk (seq mode) [default: carried for a --stateful run, else zero]"},
        DEVICE_OPTIONS(&dev, &threads, &tf32),
    };
    const int n_opts = (int)(sizeof opts / sizeof opts[0]);
    int status;
    if (!cli_parse(opts, n_opts, argc, argv, "eval", "charrnn [--device DEVICE] eval [options]",
                   "Prints a checkpoint's mean cross-entropy in nats and bits per character, with the\n"
                   "batch shape and mode it was trained with (seq: chunks of --seq-len characters from a\n"
                   "zero state, or with --stateful runs the text as --batch contiguous streams with the state\n"
                   "carried from chunk to chunk; window: every position with its --seq-len context).",
                   g, &status))
        return cli_agree(status);
    if (tf32 && dev == DEVICE_CPU)
        return cli_agree(cli_fail(EXIT_USAGE, TF32_ON_CPU));
    Err e;
    const BackendOps *ops;
    const char *device_note;
    Checkpoint ck;
    if (cli_open(dev, path, &ops, &device_note, &ck) != 0)
        return cli_agree(EXIT_USAGE);

    status = EXIT_USAGE;
    Backend be;
    Dataset d;
    int agreed = 0;
    token_t *file_tokens = NULL;
    const token_t *tokens;
    size_t n;
    memset(&be, 0, sizeof be);
    memset(&d, 0, sizeof d);
    if (data) {
        if (tokens_load(data, &ck.vocab, &file_tokens, &n, &e) != 0)
            goto done;
        tokens = file_tokens;
    } else {
        if (cli_stored_data(&ck, path, "eval", &data, &e) != 0 || dataset_load(&d, data, ck.cfg.val_fraction, &e) != 0)
            goto done;
        if (d.file_bytes != ck.data_bytes || d.file_crc != ck.data_crc || !vocab_equal(&d.vocab, &ck.vocab)) {
            err_set(&e,
                    "eval: %s has changed since %s was trained on it, so its validation split is not the one "
                    "the run held out; pass --data FILE to evaluate on a file as a whole",
                    data, path);
            goto done;
        }
        tokens = d.tokens + d.n_train;
        n = d.n - d.n_train;
        if (n == 0) {
            err_set(&e, "eval: %s held out no validation text (trained with --val-fraction 0); pass --data FILE", path);
            goto done;
        }
    }
    const TrainConfig *c = &ck.cfg;
    if (c->batch < dist->size) {
        err_set(&e, "eval: %s was trained with batches of %d, fewer than the %d ranks; start at most %d", path,
                c->batch, dist->size, c->batch);
        goto done;
    }
    const int carried = state < 0 ? c->stateful : state == 1;
    if (carried && c->mode != MODE_SEQ) {
        err_set(&e, "eval: --state carried needs a seq-mode model; %s was trained in window mode, whose examples are "
                    "independent", path);
        goto done;
    }
    if (eval_predictions(c->mode, carried, n, c->seq_len, c->batch, 0) == 0) {
        if (carried)
            err_set(&e, "eval: %s: %zu characters is too short to evaluate as %d streams with the state carried "
                        "(at least %d needed)", data, n, c->batch, c->batch + 1);
        else
            err_set(&e, "eval: %s: %zu characters is too short to evaluate with seq-len %d", data, n, c->seq_len);
        goto done;
    }
    /* Each rank holds its share of every batch. */
    const int rows = dist_share(c->batch, dist->rank, dist->size).count;
    MemoryNeed need = eval_memory(ops, &c->model, c->seq_len, rows);
    if (backend_shape_check(&c->model, c->seq_len, rows, &e) != 0 ||
        cli_check_memory(ops, &need, "eval", "evaluating the model", ops->device_memory ? "try --device cpu" : "",
                         &e) != 0) {
        char why[sizeof e.msg];
        memcpy(why, e.msg, sizeof why);
        err_set(&e, "%s: %s", path, why);
        goto done;
    }
    status = EXIT_ERROR;
    if (dist->rank == 0)
        device_announce(device_note);
    double loss;
    /* rank 0 alone tells the slower paths */
    BackendOptions backend_opts = {.threads = threads,
                                   .tf32 = tf32,
                                   .note = dist->rank == 0 ? device_print_note : NULL,
                                   .note_arg = (void *)ops->name,
                                   .dist = dist};
    if (backend_create(&be, ops, &c->model, c->seq_len, rows, &backend_opts, &e) != 0 ||
        ops->set_params(be.ctx, ck.params, &e) != 0)
        goto done;
    agreed = 1;
    if ((status = cli_agree(EXIT_OK)) != EXIT_OK)
        goto cleanup;
    status = EXIT_ERROR;
    if (evaluate(&be, c->mode, carried, tokens, n, c->seq_len, c->batch, batches, &loss, &e) != 0)
        goto done;
    char count[32];
    size_t predictions = eval_predictions(c->mode, carried, n, c->seq_len, c->batch, batches);
    if (dist->rank == 0)
        printf("%.4f nats/char  %.4f bits/char  (%s predictions on %s%s%s, step %ld)\n", loss, loss / LN2,
               fmt_count(predictions, count, sizeof count), file_tokens ? "" : "the validation split of ", data,
               carried ? ", state carried" : "", ck.step);
    status = EXIT_OK;
done:
    if (status != EXIT_OK)
        status = agreed ? cli_fail_alone(status, e.msg) : cli_agree(cli_fail(status, e.msg));
cleanup:
    backend_destroy(&be);
    dataset_free(&d);
    free(file_tokens);
    checkpoint_free(&ck);
    return status;
}

int cmd_eval(int argc, char **argv, const GlobalOptions *g)
{
    return cli_on_ranks(eval, argc, argv, g);
}
