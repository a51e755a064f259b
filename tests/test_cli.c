/* The charrnn program as a user meets it: every bad input gets one clear line and exit status 2, and
 * train -> info -> sample -> eval -> resume works end to end. */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint.h"
#include "testutil.h"

static char out[1 << 16], err[1 << 16];
static char dir[64];

static const char *TEXT = "It is a truth universally acknowledged, that a single man in possession\n"
                          "of a good fortune, must be in want of a wife.\n";

static void setup(void)
{
    make_temp_dir(dir, sizeof dir);
    write_repeated_file(dir, "text.txt", TEXT, 40);
}

static void teardown(void)
{
    remove_tree(dir);
}

/* A few quick steps of a tiny model; extra arguments are appended. */
#define TRAIN_TINY(...)                                                                                                \
    RUN("--device", "cpu", "train", "--data", "text.txt", "--hidden", "12", "--layers", "2", "--embed", "5",           \
        "--seq-len", "8", "--batch", "4", "--eval-every", "5", "--eval-batches", "2", "--sample-length", "20",         \
        __VA_ARGS__)

Test(cli, help_on_every_command, .init = setup, .fini = teardown)
{
    const char *commands[] = {"train", "sample", "eval", "info", "device", "selftest"};
    for (int i = 0; i < 6; i++) {
        cr_assert_eq(RUN((char *)commands[i], "--help"), 0, "%s --help", commands[i]);
        cr_assert(strstr(out, "usage: charrnn"), "%s --help printed: %s", commands[i], out);
        cr_assert_eq(RUN("help", (char *)commands[i]), 0);
        cr_assert(strstr(out, "usage: charrnn"));
    }
    cr_assert_eq(RUN("--help"), 0);
    cr_assert(strstr(out, "commands:"));
    cr_assert_eq(RUN("--version"), 0);
    cr_assert(strstr(out, "charrnn "));
}

Test(cli, bad_arguments_are_one_line_errors_with_status_2, .init = setup, .fini = teardown)
{
    EXPECT_USAGE_ERROR("unknown command 'trian'", "trian");
    EXPECT_USAGE_ERROR("unknown option '--hiden'", "train", "--hiden", "12");
    EXPECT_USAGE_ERROR("--hidden needs a value", "train", "--hidden");
    EXPECT_USAGE_ERROR("--hidden: expected a whole number from 1 to 8192, got '0'", "train", "--hidden", "0");
    EXPECT_USAGE_ERROR("--hidden: expected a whole number from 1 to 8192, got '12x'", "train", "--hidden", "12x");
    EXPECT_USAGE_ERROR("--lr: expected a number", "train", "--lr", "fast");
    EXPECT_USAGE_ERROR("--lr: expected a number", "train", "--lr", "nan");
    EXPECT_USAGE_ERROR("--optimizer: expected one of adam, adamw, sgd, got 'rmsprop'", "train", "--optimizer",
                       "rmsprop");
    EXPECT_USAGE_ERROR("--seed: expected a non-negative whole number", "train", "--seed", "-1");
    EXPECT_USAGE_ERROR("--batch given more than once", "train", "--batch", "2", "--batch", "3");
    EXPECT_USAGE_ERROR("unexpected argument 'extra'", "sample", "extra");
    EXPECT_USAGE_ERROR("--argmax takes no value", "sample", "--argmax=1");
    EXPECT_USAGE_ERROR("--temperature: expected a number", "sample", "--temperature", "0");
    EXPECT_USAGE_ERROR("--device: expected one of auto, cpu, cuda, got 'gpu'", "--device", "gpu", "train");
    EXPECT_USAGE_ERROR("unknown global option '--verbose'", "--verbose", "train");
    EXPECT_USAGE_ERROR("--weight-decay applies to --optimizer adamw only", "train", "--weight-decay", "0.1");
    EXPECT_USAGE_ERROR("--stateful works with --mode seq only", "train", "--mode", "window", "--stateful");
    EXPECT_USAGE_ERROR("--cell: expected one of rnn, gru, lstm, got 'LSTM'", "train", "--cell", "LSTM");
    EXPECT_USAGE_ERROR("--dropout: expected a number from 0 to 1, got '-0.1'", "train", "--dropout", "-0.1");
    EXPECT_USAGE_ERROR("--dropout 1: expected a probability in [0, 1) (1 would drop every unit)", "train", "--dropout",
                       "1");
    EXPECT_USAGE_ERROR("--dropout: expected a number", "train", "--dropout", "half");
}

/* Numbers as a person writes them, and nothing else: strtod alone would take hexadecimal, blanks and values
 * that become 0 in float32. */
Test(cli, numbers_are_parsed_strictly, .init = setup, .fini = teardown)
{
    EXPECT_USAGE_ERROR("--hidden: expected a whole number from 1 to 8192, got '0x10'", "train", "--hidden", "0x10");
    EXPECT_USAGE_ERROR("--hidden: expected a whole number from 1 to 8192, got ' 12'", "train", "--hidden", " 12");
    EXPECT_USAGE_ERROR("--hidden: expected a whole number from 1 to 8192, got '+12'", "train", "--hidden", "+12");
    EXPECT_USAGE_ERROR("--lr: expected a number from 1e-09 to 10, got '0x1p-9'", "train", "--lr", "0x1p-9");
    EXPECT_USAGE_ERROR("--lr: expected a number from 1e-09 to 10, got ' 0.1'", "train", "--lr", " 0.1");
    EXPECT_USAGE_ERROR("--lr: expected a number from 1e-09 to 10, got 'inf'", "train", "--lr", "inf");
    EXPECT_USAGE_ERROR("--clip: '1e-50' is too small for a float32 (it would be 0)", "train", "--clip", "1e-50");
    EXPECT_USAGE_ERROR("--min-lr: '1e-46' is too small for a float32", "train", "--min-lr", "1e-46");
    EXPECT_USAGE_ERROR("--seed: expected a non-negative whole number, got ' 5'", "train", "--seed", " 5");
    EXPECT_USAGE_ERROR("--length: expected a whole number from 0 to 1e+12, got '1e3'", "sample", "--length", "1e3");
}

Test(cli, settings_that_contradict_each_other_are_refused, .init = setup, .fini = teardown)
{
    EXPECT_USAGE_ERROR("train: --min-lr 0.01 is above --lr 0.002", "train", "--lr", "0.002", "--min-lr", "0.01");
    EXPECT_USAGE_ERROR("charrnn: --device given more than once", "--device", "cpu", "--device", "cuda", "train");
    EXPECT_USAGE_ERROR("train: --device given more than once (before and after the command)", "--device", "cpu",
                       "train", "--device", "cpu");
    EXPECT_USAGE_ERROR("eval: --device given more than once", "--device", "cpu", "eval", "--device=cuda");
}

/* A batch whose activations the backends cannot index is bad input (exit 2), found before any training. */
Test(cli, a_batch_too_large_for_the_model_is_bad_input, .init = setup, .fini = teardown)
{
    EXPECT_USAGE_ERROR("is too large for this model", "--device", "cpu", "train", "--data", "text.txt", "--hidden",
                       "1024", "--seq-len", "4000", "--batch", "1024");
}

/* This suite runs the plain build: either without the CUDA backend, or with it on a machine whose GPU
 * may be missing. Asking for cuda where it cannot run says which of the two it is. */
Test(cli, cuda_where_it_cannot_run_says_why, .init = setup, .fini = teardown)
{
    int rc = RUN("--device", "cuda", "train", "--data", "text.txt", "--steps", "1", "--hidden", "4", "--out", "x.ckpt");
    if (rc == 0)
        SKIP_REMOVING(dir, "a CUDA device is usable here");
    cr_expect_eq(rc, 2, "%s", err);
    cr_expect(strstr(err, "--device cuda: this charrnn was built without CUDA support") ||
                  strstr(err, "--device cuda: no CUDA device found") ||
                  strstr(err, "--device cuda: no usable CUDA device"),
              "%s", err);
    cr_expect_eq(count_lines(err), 1, "%s", err);
}

Test(cli, bad_data_files_are_named, .init = setup, .fini = teardown)
{
    EXPECT_USAGE_ERROR("missing.txt: cannot open", "--device", "cpu", "train", "--data", "missing.txt");
    EXPECT_USAGE_ERROR("is a directory", "--device", "cpu", "train", "--data", ".");
    char path[128];
    snprintf(path, sizeof path, "%s/empty.txt", dir);
    write_text_file(path, "", 0);
    EXPECT_USAGE_ERROR("empty.txt: is empty", "--device", "cpu", "train", "--data", "empty.txt");
    snprintf(path, sizeof path, "%s/bin.dat", dir);
    write_text_file(path, "abc\xff\xfe\x00\x01", 7);
    EXPECT_USAGE_ERROR("bin.dat: invalid UTF-8 at byte offset 3", "--device", "cpu", "train", "--data", "bin.dat");
    snprintf(path, sizeof path, "%s/nul.bin", dir);
    write_text_file(path, "abc\0def", 7);
    EXPECT_USAGE_ERROR("nul.bin: NUL byte at offset 3; this looks like a binary file", "--device", "cpu", "train",
                       "--data", "nul.bin");
    snprintf(path, sizeof path, "%s/same.txt", dir);
    write_text_file(path, "zzzzzzzz", 8);
    EXPECT_USAGE_ERROR("only one distinct character", "--device", "cpu", "train", "--data", "same.txt");
    EXPECT_USAGE_ERROR("--seq-len 5000", "--device", "cpu", "train", "--data", "text.txt", "--seq-len", "5000");
}

Test(cli, tf32_on_the_cpu_is_refused, .init = setup, .fini = teardown)
{
    EXPECT_USAGE_ERROR("--tf32: TF32 is a tensor-core format of --device cuda", "--device", "cpu", "train", "--data",
                       "text.txt", "--tf32");
    EXPECT_USAGE_ERROR("--tf32: TF32 is a tensor-core format of --device cuda", "--device", "cpu", "eval",
                       "--checkpoint", "missing.ckpt", "--tf32");
    EXPECT_USAGE_ERROR("--tf32: TF32 is a tensor-core format of --device cuda", "--device", "cpu", "sample",
                       "--checkpoint", "missing.ckpt", "--tf32");
}

Test(cli, bad_checkpoints_are_refused, .init = setup, .fini = teardown)
{
    EXPECT_USAGE_ERROR("nothere.ckpt: cannot open", "--device", "cpu", "sample", "--checkpoint", "nothere.ckpt");
    EXPECT_USAGE_ERROR("train a model first", "--device", "cpu", "sample");
    char path[128];
    snprintf(path, sizeof path, "%s/junk.ckpt", dir);
    write_text_file(path, "not a checkpoint", 16);
    EXPECT_USAGE_ERROR("junk.ckpt: not a charrnn checkpoint", "--device", "cpu", "sample", "--checkpoint", "junk.ckpt");
    EXPECT_USAGE_ERROR("junk.ckpt: not a charrnn checkpoint", "info", "--checkpoint", "junk.ckpt");
    EXPECT_USAGE_ERROR("junk.ckpt: not a charrnn checkpoint", "eval", "--checkpoint", "junk.ckpt");
    EXPECT_USAGE_ERROR("junk.ckpt: not a charrnn checkpoint", "train", "--resume", "junk.ckpt");
}

static long file_size(const char *name)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

Test(cli, train_info_sample_eval_resume_end_to_end, .init = setup, .fini = teardown)
{
    int rc = TRAIN_TINY("--steps", "10", "--out", "m.ckpt", "--log", "run.csv");
    cr_assert_eq(rc, 0, "train failed: %s", err);
    cr_assert(strstr(err, "saved checkpoint m.ckpt"), "%s", err);
    cr_assert(strstr(err, "--- sample ---"), "an evaluation prints a sample: %s", err);
    cr_assert_gt(file_size("m.ckpt"), 0);

    char path[128];
    snprintf(path, sizeof path, "%s/run.csv", dir);
    FILE *f = fopen(path, "r");
    char line[256];
    cr_assert(fgets(line, sizeof line, f));
    cr_assert_str_eq(line, "step,seconds,tokens_per_s,train_loss,val_loss,lr,grad_norm\n");
    int rows = 0;
    while (fgets(line, sizeof line, f))
        rows++;
    fclose(f);
    cr_assert_eq(rows, 10);

    cr_assert_eq(RUN("info", "--checkpoint", "m.ckpt"), 0, "%s", err);
    cr_assert(strstr(out, "hidden 12, layers 2"), "%s", out);
    cr_assert(strstr(out, "step 10 of 10"), "%s", out);

    cr_assert_eq(RUN("--device", "cpu", "sample", "--checkpoint", "m.ckpt", "--length", "50", "--prime", "It is"), 0,
                 "%s", err);
    cr_assert_eq(strncmp(out, "It is", 5), 0, "the prime comes first: %s", out);
    char first[sizeof out];
    strcpy(first, out);
    cr_assert_eq(RUN("--device", "cpu", "sample", "--checkpoint", "m.ckpt", "--length", "50", "--prime", "It is"), 0);
    cr_assert_str_eq(out, first, "the same seed gives the same text");
    cr_assert_eq(RUN("--device", "cpu", "sample", "--checkpoint", "m.ckpt", "--length", "30", "--top-k", "3",
                     "--temperature", "0.5", "--seed", "9"),
                 0);
    cr_assert_eq(RUN("--device", "cpu", "sample", "--checkpoint", "m.ckpt", "--length", "30", "--argmax"), 0);
    EXPECT_USAGE_ERROR("--prime: character 'Q'", "--device", "cpu", "sample", "--checkpoint", "m.ckpt", "--prime",
                       "Quite");

    cr_assert_eq(RUN("--device", "cpu", "eval", "--checkpoint", "m.ckpt"), 0, "%s", err);
    cr_assert(strstr(out, "nats/char") && strstr(out, "bits/char") && strstr(out, "validation split"), "%s", out);
    cr_assert_eq(RUN("--device", "cpu", "eval", "--checkpoint", "m.ckpt", "--data", "text.txt"), 0, "%s", err);

    /* resume: extends the run to 15 steps and appends to the log */
    rc = RUN("--device", "cpu", "train", "--resume", "m.ckpt", "--steps", "15", "--log", "run.csv");
    cr_assert_eq(rc, 0, "resume failed: %s", err);
    cr_assert_eq(RUN("info", "--checkpoint", "m.ckpt"), 0);
    cr_assert(strstr(out, "step 15 of 15"), "%s", out);
    EXPECT_USAGE_ERROR("already at step 15", "--device", "cpu", "train", "--resume", "m.ckpt");
    EXPECT_USAGE_ERROR("--hidden differs from the run in the checkpoint", "--device", "cpu", "train", "--resume",
                       "m.ckpt", "--steps", "20", "--hidden", "13");
    EXPECT_USAGE_ERROR("--optimizer differs", "--device", "cpu", "train", "--resume", "m.ckpt", "--steps", "20",
                       "--optimizer", "sgd");
    EXPECT_USAGE_ERROR("--mode differs", "--device", "cpu", "train", "--resume", "m.ckpt", "--steps", "20", "--mode",
                       "window");
    EXPECT_USAGE_ERROR("--lr-schedule differs", "--device", "cpu", "train", "--resume", "m.ckpt", "--steps", "20",
                       "--lr-schedule", "constant");
    EXPECT_USAGE_ERROR("--weight-decay differs", "--device", "cpu", "train", "--resume", "m.ckpt", "--steps", "20",
                       "--weight-decay", "0.1");
    EXPECT_USAGE_ERROR("--steps 12: m.ckpt is already at step 15", "--device", "cpu", "train", "--resume", "m.ckpt",
                       "--steps", "12");
    /* the same value as the checkpoint's is fine */
    cr_assert_eq(
        RUN("--device", "cpu", "train", "--resume", "m.ckpt", "--steps", "16", "--hidden", "12", "--eval-every", "0"),
        0, "%s", err);
    snprintf(path, sizeof path, "%s/other.txt", dir);
    f = fopen(path, "w");
    for (int i = 0; i < 40; i++)
        fputs(TEXT, f);
    fputs("extra\n", f);
    fclose(f);
    EXPECT_USAGE_ERROR("differs from the data the run was trained on", "--device", "cpu", "train", "--resume", "m.ckpt",
                       "--steps", "20", "--data", "other.txt");
}

Test(cli, default_paths_train_then_sample_as_typed, .init = setup, .fini = teardown)
{
    char path[160];
    snprintf(path, sizeof path, "%s/data", dir);
    mkdir(path, 0777);
    snprintf(path, sizeof path, "%s/data/tinyshakespeare", dir);
    mkdir(path, 0777);
    write_repeated_file(dir, "data/tinyshakespeare/input.txt", TEXT, 40);
    int rc = RUN("--device", "cpu", "train", "--hidden", "8", "--layers", "1", "--seq-len", "8", "--batch", "2",
                 "--steps", "3");
    cr_assert_eq(rc, 0, "%s", err);
    cr_assert(strstr(err, "checkpoints/charrnn.ckpt"), "the default checkpoint path is printed: %s", err);
    cr_assert_gt(file_size("checkpoints/charrnn.ckpt"), 0);
    cr_assert_eq(RUN("--device", "cpu", "sample", "--length", "20"), 0, "%s", err);
    cr_assert_geq(strlen(out), 20u);
    cr_assert_eq(RUN("--device", "auto", "sample", "--length", "5"), 0, "%s", err);
    cr_assert(strstr(err, "device auto: using cpu") || strstr(err, "device auto: using cuda"),
              "auto says which device it picked: %s", err);
}

Test(cli, interactive_sampling_continues_every_prompt, .init = setup, .fini = teardown)
{
    cr_assert_eq(TRAIN_TINY("--steps", "3", "--out", "m.ckpt"), 0, "%s", err);
    char path[128];
    snprintf(path, sizeof path, "%s/prompts.txt", dir);
    const char *prompts = "It is\nQuite ~ wrong\n\na wife";
    write_text_file(path, prompts, strlen(prompts));
    int rc = run_charrnn_stdin(
        dir, (char *[]){"--device", "cpu", "sample", "--checkpoint", "m.ckpt", "--interactive", "--length", "15", NULL},
        path, out, sizeof out, err, sizeof err);
    cr_assert_eq(rc, 0, "%s", err);
    cr_assert_eq(strncmp(out, "It is", 5), 0, "the first prompt is continued: %s", out);
    cr_assert(strstr(out, "a wife"), "the last prompt (no newline) too: %s", out);
    cr_assert(strstr(err, "sample: prompt: character 'Q'"), "the bad prompt is named: %s", err);
    cr_assert_eq(count_lines(err), 1, "%s", err);
    EXPECT_USAGE_ERROR("--prime and --interactive", "--device", "cpu", "sample", "--checkpoint", "m.ckpt", "--prime",
                       "It", "--interactive");
}

Test(cli, window_mode_and_stateful_runs_train, .init = setup, .fini = teardown)
{
    cr_assert_eq(TRAIN_TINY("--steps", "6", "--mode", "window", "--out", "w.ckpt"), 0, "%s", err);
    cr_assert_eq(TRAIN_TINY("--steps", "6", "--stateful", "--optimizer", "sgd", "--lr", "0.1", "--out", "s.ckpt"), 0,
                 "%s", err);
    cr_assert_eq(TRAIN_TINY("--steps", "6", "--optimizer", "adamw", "--lr-schedule", "cosine", "--warmup", "2", "--out",
                            "c.ckpt"),
                 0, "%s", err);
    cr_assert_eq(RUN("--device", "cpu", "train", "--resume", "s.ckpt", "--steps", "9"), 0, "%s", err);
    cr_assert_eq(RUN("--device", "cpu", "eval", "--checkpoint", "w.ckpt"), 0, "%s", err);
    /* A stateful run is evaluated as it trains, with the state carried; --state picks either way. */
    cr_assert_eq(RUN("--device", "cpu", "eval", "--checkpoint", "s.ckpt", "--data", "text.txt"), 0, "%s", err);
    cr_expect(strstr(out, "state carried"), "%s", out);
    cr_assert_eq(RUN("--device", "cpu", "eval", "--checkpoint", "s.ckpt", "--data", "text.txt", "--state", "zero"), 0,
                 "%s", err);
    cr_expect(!strstr(out, "state carried"), "%s", out);
    cr_assert_eq(RUN("--device", "cpu", "eval", "--checkpoint", "c.ckpt", "--data", "text.txt", "--state", "carried"),
                 0, "%s", err);
    cr_expect(strstr(out, "state carried"), "%s", out);
    EXPECT_USAGE_ERROR("--state carried needs a seq-mode model", "--device", "cpu", "eval", "--checkpoint", "w.ckpt",
                       "--state", "carried");
    EXPECT_USAGE_ERROR("--state: expected one of zero, carried, got 'warm'", "--device", "cpu", "eval", "--checkpoint",
                       "s.ckpt", "--state", "warm");
}

Test(cli, unwritable_checkpoint_path_is_refused_before_training, .init = setup, .fini = teardown)
{
    char path[128];
    snprintf(path, sizeof path, "%s/taken", dir);
    write_text_file(path, "x", 1);
    /* the parent of the checkpoint is a file, so the directory cannot be created */
    EXPECT_USAGE_ERROR("taken: exists and is not a directory", "--device", "cpu", "train", "--data", "text.txt",
                       "--out", "taken/m.ckpt");
    EXPECT_USAGE_ERROR("is a directory", "--device", "cpu", "train", "--data", "text.txt", "--out", ".");
    cr_assert_null(strstr(err, "step"), "nothing was trained: %s", err);
}

/* The CPU checked against itself (every core against one thread), and the device report, on any build. */
Test(cli, selftest_and_device_run_on_the_cpu, .init = setup, .fini = teardown)
{
    cr_assert_eq(RUN("--device", "cpu", "selftest"), 0, "%s%s", out, err);
    cr_expect(strstr(out, "selftest: passed") && strstr(out, "W_hy") && strstr(out, "carried state"), "%s", out);
    cr_assert_eq(RUN("--device", "cpu", "device", "--layers", "3"), 0, "%s", err);
    cr_expect(strstr(out, "rnn cell") && strstr(out, "layers 3") && strstr(out, "cpu ") && !strstr(out, "cuda") &&
                  !strstr(out, "train's defaults"),
              "%s", out);
    /* a gated cell: its parameters, and sampling modelled over its 4 gates' weights (the tanh cell's
     * recurrent multiply-adds 4 times over, the output projection once: 3.5 times the time here) */
    double us[2] = {0, 0};
    char *cells[2] = {"rnn", "lstm"};
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(RUN("--device", "cpu", "device", "--cell", cells[i], "--hidden", "100"), 0, "%s", err);
        const char *at = strstr(out, "sampling modelled at ");
        cr_assert(at && sscanf(at, "sampling modelled at %lf", &us[i]) == 1, "%s", out);
    }
    cr_expect(strstr(out, "lstm cell") && strstr(out, "(157,125 parameters)"), "%s", out);
    cr_expect(us[1] > 3.0 * us[0] && us[1] < 4.0 * us[0], "rnn %g us, lstm %g us", us[0], us[1]);
    cr_assert_eq(RUN("--device", "cpu", "device"), 0, "%s", err);
    cr_expect(strstr(out, "(train's defaults)"), "%s", out);
    EXPECT_USAGE_ERROR("--cell: expected one of rnn, gru, lstm", "device", "--cell", "elman");
    EXPECT_USAGE_ERROR("--tf32", "--device", "cpu", "selftest", "--tf32");
    EXPECT_USAGE_ERROR("--layers: expected a whole number from 1 to 16", "device", "--layers", "17");
}

/* ---- never replace what is not the run's own ---- */

static char *in_dir(const char *name)
{
    return join_path(dir, name);
}

/* The file's bytes, to check that a refusal left them alone. */
static char *contents(const char *name, size_t *len)
{
    uint8_t *data = NULL;
    Err e;
    *len = 0;
    cr_assert_eq(read_file(in_dir(name), &data, len, &e), 0, "%s", e.msg);
    return (char *)data;
}

Test(cli, outputs_that_are_not_the_runs_own_are_refused, .init = setup, .fini = teardown)
{
    size_t text_len, notes_len;
    char *text = contents("text.txt", &text_len);
    write_text_file(in_dir("notes.txt"), "my notes\n", 9);
    cr_assert_eq(mkfifo(in_dir("fifo"), 0600), 0);
#define TRAIN_TO(...) "--device", "cpu", "train", "--data", "text.txt", "--steps", "2", "--hidden", "4", __VA_ARGS__
    EXPECT_USAGE_ERROR("--out ./text.txt is the training text itself", TRAIN_TO("--out", "./text.txt"));
    EXPECT_USAGE_ERROR("--out /dev/null: is a character device, not a checkpoint file", TRAIN_TO("--out", "/dev/null"));
    EXPECT_USAGE_ERROR("--out fifo: is a FIFO (named pipe), not a checkpoint file", TRAIN_TO("--out", "fifo"));
    EXPECT_USAGE_ERROR("--out notes.txt: exists and is not a charrnn checkpoint", TRAIN_TO("--out", "notes.txt"));
    EXPECT_USAGE_ERROR("--out notes.txt: exists and is not a charrnn checkpoint",
                       TRAIN_TO("--out", "notes.txt", "--overwrite"));
    EXPECT_USAGE_ERROR("--log text.txt is the training text itself", TRAIN_TO("--out", "m.ckpt", "--log", "text.txt"));
    EXPECT_USAGE_ERROR("--log fifo: is a FIFO (named pipe), not a log file", TRAIN_TO("--out", "m.ckpt", "--log", "fifo"));
    EXPECT_USAGE_ERROR("--log /dev/null: is a character device", TRAIN_TO("--out", "m.ckpt", "--log", "/dev/null"));
    EXPECT_USAGE_ERROR("--log notes.txt: exists and is not a charrnn training log",
                       TRAIN_TO("--out", "m.ckpt", "--log", "notes.txt"));
    EXPECT_USAGE_ERROR("--log ./m.ckpt is the checkpoint's path too", TRAIN_TO("--out", "m.ckpt", "--log", "./m.ckpt"));
#undef TRAIN_TO
    size_t len;
    char *after = contents("text.txt", &len);
    cr_expect(len == text_len && memcmp(after, text, len) == 0, "the training text changed");
    free(after);
    after = contents("notes.txt", &notes_len);
    cr_expect(notes_len == 9 && memcmp(after, "my notes\n", 9) == 0, "notes.txt changed");
    free(after);
    free(text);
    struct stat st;
    cr_expect(stat(in_dir("fifo"), &st) == 0 && S_ISFIFO(st.st_mode), "the FIFO is still a FIFO");
    cr_expect_neq(access(in_dir("m.ckpt"), F_OK), 0, "nothing was trained");
    cr_expect_neq(access(in_dir("m.ckpt.lock"), F_OK), 0, "no lock file is left behind");
}

static void set_total_steps(const char *name, long steps)
{
    Checkpoint ck;
    Err e;
    cr_assert_eq(checkpoint_load(in_dir(name), &ck, &e), 0, "%s", e.msg);
    ck.cfg.steps = steps;
    cr_assert_eq(checkpoint_save(in_dir(name), &ck, &e), 0, "%s", e.msg);
    checkpoint_free(&ck);
}

/* A new run over the checkpoint of another (an interrupted one, typically, after retyping the command
 * that started it) would throw that run away: refused, naming both ways on. */
Test(cli, a_new_run_never_replaces_another_runs_checkpoint, .init = setup, .fini = teardown)
{
    cr_assert_eq(TRAIN_TINY("--steps", "10", "--out", "m.ckpt"), 0, "%s", err);
    set_total_steps("m.ckpt", 50); /* as if it had stopped at step 10 of 50 */
    size_t before_len, len;
    char *before = contents("m.ckpt", &before_len);
    int rc = TRAIN_TINY("--steps", "10", "--out", "m.ckpt");
    cr_expect_eq(rc, 2, "%s", err);
    cr_expect(strstr(err, "m.ckpt holds an unfinished run (step 10 of 50); continue it with `") &&
                  strstr(err, "charrnn train --resume m.ckpt`, or pass --overwrite to start over"),
              "%s", err);
    cr_expect_eq(count_lines(err), 1, "%s", err);
    char *after = contents("m.ckpt", &len);
    cr_expect(len == before_len && memcmp(before, after, len) == 0, "the interrupted run's checkpoint changed");
    free(after);
    free(before);
    set_total_steps("m.ckpt", 10);
    rc = TRAIN_TINY("--steps", "10", "--out", "m.ckpt");
    cr_expect_eq(rc, 2, "%s", err);
    cr_expect(strstr(err, "m.ckpt holds a finished run (step 10 of 10); pass --overwrite to replace it"), "%s", err);
    cr_assert_eq(TRAIN_TINY("--steps", "3", "--out", "m.ckpt", "--overwrite"), 0, "%s", err);
    cr_assert_eq(RUN("info", "--checkpoint", "m.ckpt"), 0, "%s", err);
    cr_expect(strstr(out, "step 3 of 3"), "the new run replaced the old one: %s", out);
}

/* ---- standard output that fails ---- */

Test(cli, output_that_cannot_be_written_is_a_failure, .init = setup, .fini = teardown, .timeout = 60)
{
    cr_assert_eq(TRAIN_TINY("--steps", "2", "--out", "m.ckpt"), 0, "%s", err);
    /* generation stops at once (the length would take hours), with the reason */
    int rc = run_charrnn_stdout(dir, (char *[]){"--device", "cpu", "sample", "--checkpoint", "m.ckpt", "--length",
                                                "1000000000000", NULL},
                                "/dev/full", err, sizeof err);
    cr_expect_eq(rc, 1, "%s", err);
    cr_expect(strstr(err, "sample: writing to standard output failed: No space left on device"), "%s", err);
    cr_expect_eq(count_lines(err), 1, "%s", err);
    rc = run_charrnn_stdout(dir, (char *[]){"--device", "cpu", "sample", "--checkpoint", "m.ckpt", "--length",
                                            "1000000000000", NULL},
                            NULL, err, sizeof err);
    cr_expect_eq(rc, 1, "%s", err);
    cr_expect(strstr(err, "sample: writing to standard output failed: Broken pipe"), "%s", err);
    /* what the other commands print must arrive too */
    char *const commands[][6] = {
        {"info", "--checkpoint", "m.ckpt", NULL},
        {"--device", "cpu", "eval", "--checkpoint", "m.ckpt", NULL},
        {"train", "--help", NULL},
        {"--help", NULL},
        {"--version", NULL},
    };
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        rc = run_charrnn_stdout(dir, commands[i], "/dev/full", err, sizeof err);
        cr_expect_eq(rc, 1, "%s: exit %d, %s", commands[i][0], rc, err);
        cr_expect(strstr(err, "writing to standard output failed: No space left on device"), "%s: %s",
                  commands[i][0], err);
    }
}

Test(cli, sample_output_ends_with_a_newline, .init = setup, .fini = teardown)
{
    cr_assert_eq(TRAIN_TINY("--steps", "2", "--out", "m.ckpt"), 0, "%s", err);
    for (int length = 0; length < 40; length += 13) {
        char n[16];
        snprintf(n, sizeof n, "%d", length);
        cr_assert_eq(RUN("--device", "cpu", "sample", "--checkpoint", "m.ckpt", "--length", n, "--prime", "It"), 0,
                     "%s", err);
        size_t len = strlen(out);
        cr_expect(len >= 2 + (size_t)length && out[len - 1] == '\n', "--length %d: '%s'", length, out);
        cr_expect(len <= 3 + (size_t)length, "one newline at most is added: '%s'", out);
    }
}

/* ---- bounded reads ---- */

Test(cli, a_prompt_line_longer_than_the_limit_is_skipped_with_a_line, .init = setup, .fini = teardown)
{
    cr_assert_eq(TRAIN_TINY("--steps", "2", "--out", "m.ckpt"), 0, "%s", err);
    const size_t long_line = 70000; /* beyond the 64 KiB a prompt may have */
    FILE *f = fopen(in_dir("prompts.txt"), "w");
    fputs("It is\n", f);
    for (size_t i = 0; i < long_line; i++)
        fputc('a', f);
    fputs("\na wife\n", f);
    fclose(f);
    int rc = run_charrnn_stdin(
        dir, (char *[]){"--device", "cpu", "sample", "--checkpoint", "m.ckpt", "--interactive", "--length", "5", NULL},
        "prompts.txt", out, sizeof out, err, sizeof err);
    cr_assert_eq(rc, 0, "%s", err);
    cr_expect(strstr(err, "sample: prompt 2: longer than 65536 bytes; skipped"), "%s", err);
    cr_expect_eq(count_lines(err), 1, "%s", err);
    cr_expect(strncmp(out, "It is", 5) == 0 && strstr(out, "\na wife"), "the other prompts are answered: %s", out);
    cr_expect_null(strstr(out, "aaaa"), "the long prompt is not continued");
}

Test(cli, special_files_are_refused_without_blocking, .init = setup, .fini = teardown, .timeout = 60)
{
    cr_assert_eq(mkfifo(in_dir("fifo"), 0600), 0);
    EXPECT_USAGE_ERROR("fifo: is a FIFO (named pipe), expected a charrnn checkpoint", "info", "--checkpoint", "fifo");
    EXPECT_USAGE_ERROR("fifo: is a FIFO (named pipe), expected a charrnn checkpoint", "--device", "cpu", "sample",
                       "--checkpoint", "fifo");
    EXPECT_USAGE_ERROR("fifo: is a FIFO (named pipe), expected a charrnn checkpoint", "--device", "cpu", "train",
                       "--resume", "fifo");
    EXPECT_USAGE_ERROR("fifo: is a FIFO (named pipe), expected a text file", "--device", "cpu", "train", "--data",
                       "fifo");
    EXPECT_USAGE_ERROR("/dev/zero: is a character device, expected a text file", "--device", "cpu", "train", "--data",
                       "/dev/zero");
    EXPECT_USAGE_ERROR("fifo: is a FIFO (named pipe), expected a training log", "plot", "fifo");
}

/* ---- memory ---- */

/* Parses "--batch N would fit" out of a refusal. */
static int suggested_batch(const char *msg)
{
    const char *at = strstr(msg, "--batch ");
    return at && strstr(at, "would fit") ? atoi(at + 8) : 0;
}

Test(cli, a_run_too_large_for_the_memory_is_refused_naming_one_that_fits, .init = setup, .fini = teardown)
{
    /* 160 GiB of activations: more than any machine this runs on */
    int rc = RUN("--device", "cpu", "train", "--data", "text.txt", "--hidden", "1024", "--layers", "16", "--seq-len",
                 "4000", "--batch", "512", "--out", "m.ckpt");
    cr_expect_eq(rc, 2, "%s", err);
    cr_expect(strstr(err, "needs an estimated") && strstr(err, "GiB of memory") && strstr(err, "is available"), "%s",
              err);
    cr_expect_gt(suggested_batch(err), 0, "a smaller batch is named: %s", err);
    cr_expect_eq(count_lines(err), 1, "%s", err);
    /* Under a stated limit: the named batch does fit (and trains) */
    setenv("CHARRNN_MEMORY_LIMIT", "64M", 1);
    rc = RUN("--device", "cpu", "train", "--data", "text.txt", "--seq-len", "64", "--batch", "512", "--steps", "1",
             "--eval-every", "0", "--out", "a.ckpt");
    cr_expect_eq(rc, 2, "%s", err);
    cr_expect(strstr(err, "64.0 MiB is available"), "%s", err);
    int batch = suggested_batch(err);
    cr_assert(batch > 0 && batch < 512, "%s", err);
    char b[16];
    snprintf(b, sizeof b, "%d", batch);
    rc = RUN("--device", "cpu", "train", "--data", "text.txt", "--seq-len", "64", "--batch", b, "--steps", "1",
             "--eval-every", "0", "--out", "b.ckpt");
    cr_expect_eq(rc, 0, "the suggested --batch %d: %s", batch, err);
    snprintf(b, sizeof b, "%d", batch + 1);
    rc = RUN("--device", "cpu", "train", "--data", "text.txt", "--seq-len", "64", "--batch", b, "--steps", "1",
             "--eval-every", "0", "--out", "c.ckpt");
    cr_expect_eq(rc, 2, "the suggestion is the largest that fits: %s", err);
    /* Where the parameters alone are too many, a narrower model is named */
    setenv("CHARRNN_MEMORY_LIMIT", "20G", 1);
    rc = RUN("--device", "cpu", "train", "--data", "text.txt", "--hidden", "8192", "--layers", "16", "--embed", "8192",
             "--out", "d.ckpt");
    cr_expect_eq(rc, 2, "%s", err);
    cr_expect(strstr(err, "--hidden ") && strstr(err, "--embed ") && strstr(err, "would fit"), "%s", err);
    setenv("CHARRNN_MEMORY_LIMIT", "lots", 1);
    EXPECT_USAGE_ERROR("CHARRNN_MEMORY_LIMIT=lots: expected a number of bytes", "--device", "cpu", "train", "--data",
                       "text.txt", "--out", "other.ckpt");
    unsetenv("CHARRNN_MEMORY_LIMIT");
}

/* ---- numbers that are always right ---- */

/* A checkpoint of the tiny run with its output layer changed: every bias set to `bias`, or the weights to
 * +-`weight` (0: left as they are). */
static void make_extreme_checkpoint(const char *name, float bias, float weight)
{
    cr_assert_eq(TRAIN_TINY("--steps", "2", "--out", (char *)name), 0, "%s", err);
    Checkpoint ck;
    Err e;
    cr_assert_eq(checkpoint_load(in_dir(name), &ck, &e), 0, "%s", e.msg);
    ParamTensor t[MODEL_MAX_TENSORS];
    int n = model_tensors(&ck.cfg.model, t);
    const ParamTensor *w_hy = &t[n - 2], *b_y = &t[n - 1];
    for (size_t i = 0; bias != 0.0f && i < b_y->cols; i++)
        ck.params[b_y->offset + i] = bias;
    for (size_t i = 0; weight != 0.0f && i < w_hy->rows * w_hy->cols; i++)
        ck.params[w_hy->offset + i] = i % 2 ? -weight : weight;
    cr_assert_eq(checkpoint_save(in_dir(name), &ck, &e), 0, "%s", e.msg);
    checkpoint_free(&ck);
}

Test(cli, the_loss_is_right_for_any_finite_logits, .init = setup, .fini = teardown)
{
    make_extreme_checkpoint("big.ckpt", 3e38f, 0.0f);
    cr_assert_eq(RUN("--device", "cpu", "eval", "--checkpoint", "big.ckpt"), 0, "%s", err);
    char expected[32];
    snprintf(expected, sizeof expected, "%.4f nats/char", log(27.0)); /* every logit equal: ln V, V = 27 */
    cr_expect(strncmp(out, expected, strlen(expected)) == 0, "expected %s, got %s", expected, out);
    make_extreme_checkpoint("inf.ckpt", 0.0f, 3e38f);
    int rc = RUN("--device", "cpu", "eval", "--checkpoint", "inf.ckpt");
    cr_expect_eq(rc, 1, "%s", err);
    cr_expect(strstr(err, "the evaluation loss is") && strstr(err, "not finite"), "%s", err);
}

/* ---- resume and first use ---- */

Test(cli, a_stream_position_outside_the_data_is_bad_input, .init = setup, .fini = teardown)
{
    cr_assert_eq(TRAIN_TINY("--steps", "3", "--stateful", "--out", "s.ckpt"), 0, "%s", err);
    Checkpoint ck;
    Err e;
    cr_assert_eq(checkpoint_load(in_dir("s.ckpt"), &ck, &e), 0, "%s", e.msg);
    ck.cfg.steps = 10;
    ck.stream_pos = 1064; /* a multiple of T = 8 past the 4 streams of 1062 characters */
    cr_assert_eq(checkpoint_save(in_dir("s.ckpt"), &ck, &e), 0, "%s", e.msg);
    checkpoint_free(&ck);
    EXPECT_USAGE_ERROR("s.ckpt: corrupted: its stream position 1064 is outside the streams of /", "--device", "cpu",
                       "train", "--resume", "s.ckpt");
}

static int count_in(const char *s, const char *needle)
{
    int n = 0;
    for (const char *p = s; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

/* A resumed run evaluates, samples, saves and logs as the run did; an option given again replaces the
 * stored one and says so. */
Test(cli, a_resumed_run_goes_on_as_it_was_configured, .init = setup, .fini = teardown)
{
    cr_assert_eq(RUN("--device", "cpu", "train", "--data", "text.txt", "--hidden", "8", "--layers", "1", "--seq-len",
                     "8", "--batch", "2", "--steps", "4", "--eval-every", "2", "--eval-batches", "1",
                     "--sample-length", "7", "--save-every", "3", "--on-nan", "skip", "--log", "run.csv", "--out",
                     "m.ckpt"),
                 0, "%s", err);
    cr_assert_eq(RUN("info", "--checkpoint", "m.ckpt"), 0, "%s", err);
    cr_expect(strstr(out, "eval every 2 (1 batches), sample length 7, save every 3, on-nan skip, log /"), "%s", out);
    cr_expect(strstr(out, "run.csv\n"), "%s", out);
    cr_expect(strstr(out, "val loss") && strstr(out, "measured at step 4"), "%s", out);
    cr_assert_eq(RUN("--device", "cpu", "train", "--resume", "m.ckpt", "--steps", "8"), 0, "%s", err);
    cr_expect(strstr(err, "step 6: train") && strstr(err, "step 8: train"), "evaluates every 2 steps: %s", err);
    cr_expect_eq(count_in(err, "--- sample ---"), 2, "%s", err);
    cr_expect_null(strstr(err, "replaces"), "nothing was replaced: %s", err);
    size_t len;
    char *log = contents("run.csv", &len);
    cr_expect_eq(count_in(log, "step,seconds"), 2, "the log goes on: %s", log);
    cr_expect(strstr(log, "\n8,"), "%s", log);
    free(log);
    cr_assert_eq(RUN("--device", "cpu", "train", "--resume", "m.ckpt", "--steps", "10", "--eval-every", "5",
                     "--on-nan", "stop"),
                 0, "%s", err);
    cr_expect(strstr(err, "charrnn: --eval-every 5 replaces the run's 2"), "%s", err);
    cr_expect(strstr(err, "charrnn: --on-nan stop replaces the run's skip"), "%s", err);
    cr_expect(strstr(err, "step 10: train"), "%s", err);
    cr_expect_null(strstr(err, "step 9: train"), "%s", err);
}

/* The checkpoint records its text's absolute path: it is used from any directory; when the text is gone
 * the message says where the path came from. */
Test(cli, a_checkpoint_is_used_from_another_directory, .init = setup, .fini = teardown)
{
    cr_assert_eq(TRAIN_TINY("--steps", "3", "--out", "m.ckpt"), 0, "%s", err);
    char ckpt[256];
    snprintf(ckpt, sizeof ckpt, "%s", in_dir("m.ckpt"));
    cr_assert_eq(run_charrnn("/", (char *[]){"--device", "cpu", "eval", "--checkpoint", ckpt, NULL}, out, sizeof out,
                             err, sizeof err),
                 0, "%s", err);
    cr_assert_eq(run_charrnn("/", (char *[]){"--device", "cpu", "train", "--resume", ckpt, "--steps", "5", NULL}, out,
                             sizeof out, err, sizeof err),
                 0, "%s", err);
    cr_assert_eq(rename(in_dir("text.txt"), in_dir("moved.txt")), 0);
    int rc = run_charrnn("/", (char *[]){"--device", "cpu", "eval", "--checkpoint", ckpt, NULL}, out, sizeof out, err,
                         sizeof err);
    cr_expect_eq(rc, 2, "%s", err);
    cr_expect(strstr(err, "the training text recorded in") && strstr(err, "/text.txt, cannot be found") &&
                  strstr(err, "that path came from the checkpoint: pass --data FILE"),
              "%s", err);
    cr_expect_eq(count_lines(err), 1, "%s", err);
}

/* The train loss shown is a moving average of recent steps (about 50), not the mean since the last
 * evaluation, which lags behind a falling loss. */
Test(cli, the_train_loss_is_an_average_of_recent_steps, .init = setup, .fini = teardown)
{
    cr_assert_eq(RUN("--device", "cpu", "train", "--data", "text.txt", "--hidden", "12", "--embed", "5", "--seq-len",
                     "8", "--batch", "4", "--steps", "40", "--eval-every", "0", "--log", "run.csv", "--out", "m.ckpt"),
                 0, "%s", err);
    size_t len;
    char *log = contents("run.csv", &len);
    const double keep = 1.0 - 1.0 / 50.0;
    double ema = 0.0, weight = 0.0;
    int rows = 0;
    for (char *line = strchr(log, '\n') + 1; *line; line = strchr(line, '\n') + 1, rows++) {
        double loss;
        cr_assert_eq(sscanf(line, "%*d,%*f,%*f,%lf,", &loss), 1, "%s", line);
        ema = keep * ema + (1.0 - keep) * loss;
        weight = keep * weight + (1.0 - keep);
    }
    free(log);
    cr_assert_eq(rows, 40);
    const char *at = strstr(err, "train loss ");
    cr_assert(at, "%s", err);
    double shown = atof(at + strlen("train loss "));
    cr_expect(fabs(shown - ema / weight) <= 1e-4, "shown %.4f, the average of recent steps is %.4f", shown,
              ema / weight); /* printed with 4 decimals */
}

/* Every cell trains, resumes, samples, evaluates and describes itself; a resumed run keeps its cell. */
Test(cli, every_cell_trains_samples_evaluates_and_resumes, .init = setup, .fini = teardown)
{
    const char *cells[] = {"rnn", "gru", "lstm"};
    for (int i = 0; i < 3; i++) {
        char *cell = (char *)cells[i];
        cr_assert_eq(TRAIN_TINY("--steps", "4", "--cell", cell, "--dropout", "0.25", "--stateful", "--out", "m.ckpt",
                                "--overwrite"),
                     0, "%s: %s", cell, err);
        char expect[64];
        snprintf(expect, sizeof expect, "(%s cell, vocab", cell);
        cr_expect(strstr(err, expect) && strstr(err, "dropout 0.25)"), "%s", err);
        cr_assert_eq(RUN("info", "--checkpoint", "m.ckpt"), 0, "%s", err);
        snprintf(expect, sizeof expect, "model          %s cell, vocab", cell);
        cr_expect(strstr(out, expect) && strstr(out, "layers 2, dropout 0.25:"), "%s", out);
        cr_expect(strstr(out, "(checkpoint format 3)"), "%s", out);
        /* the default peak rate: 2e-3 for the tanh cell, 5e-3 for the gated ones */
        cr_expect(strstr(out, i == 0 ? "adam, lr 0.002 (cosine to 0.0002)" : "adam, lr 0.005 (cosine to 0.0005)"),
                  "%s: %s", cell, out);
        cr_assert_eq(RUN("--device", "cpu", "sample", "--checkpoint", "m.ckpt", "--length", "30", "--prime", "It"), 0,
                     "%s: %s", cell, err);
        cr_expect_eq(strncmp(out, "It", 2), 0, "%s", out);
        cr_assert_eq(RUN("--device", "cpu", "eval", "--checkpoint", "m.ckpt"), 0, "%s: %s", cell, err);
        cr_expect(strstr(out, "nats/char"), "%s", out);
        EXPECT_USAGE_ERROR("--cell differs from the run in the checkpoint", "--device", "cpu", "train", "--resume",
                           "m.ckpt", "--steps", "6", "--cell", i == 2 ? "gru" : "lstm");
        EXPECT_USAGE_ERROR("--dropout differs from the run in the checkpoint", "--device", "cpu", "train", "--resume",
                           "m.ckpt", "--steps", "6", "--dropout", "0.5");
        cr_assert_eq(RUN("--device", "cpu", "train", "--resume", "m.ckpt", "--steps", "6", "--cell", cell), 0, "%s: %s",
                     cell, err);
        cr_expect(strstr(err, "trained to step 6"), "%s", err);
    }
    /* a rate that is given is the rate, whatever the cell */
    cr_assert_eq(TRAIN_TINY("--steps", "1", "--cell", "lstm", "--lr", "0.001", "--out", "m.ckpt", "--overwrite"), 0, "%s",
                 err);
    cr_assert_eq(RUN("info", "--checkpoint", "m.ckpt"), 0, "%s", err);
    cr_expect(strstr(out, "adam, lr 0.001 (cosine to 0.0001)"), "%s", out);
}
