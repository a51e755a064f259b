/* The charrnn program as a user meets it: every bad input gets one clear line and exit status 2, and
 * train -> info -> sample -> eval -> resume works end to end. */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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
}

/* This suite runs the plain build: either without the CUDA backend, or with it on a machine whose GPU
 * may be missing. Asking for cuda where it cannot run says which of the two it is. */
Test(cli, cuda_where_it_cannot_run_says_why, .init = setup, .fini = teardown)
{
    int rc = RUN("--device", "cuda", "train", "--data", "text.txt", "--steps", "1", "--hidden", "4", "--out", "x.ckpt");
    if (rc == 0)
        cr_skip_test("a CUDA device is usable here");
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
    cr_expect(strstr(out, "layers 3") && strstr(out, "cpu ") && !strstr(out, "cuda"), "%s", out);
    EXPECT_USAGE_ERROR("--tf32", "--device", "cpu", "selftest", "--tf32");
    EXPECT_USAGE_ERROR("--layers: expected a whole number from 1 to 16", "device", "--layers", "17");
}
