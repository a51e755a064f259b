/* Never lose a run: interruptions save and say how to resume, divergence stops before it can reach a
 * checkpoint, and a failed write leaves the previous checkpoint as it was. */
#define _DEFAULT_SOURCE /* usleep */
#include <criterion/criterion.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint.h"
#include "testutil.h"

static char dir[64];
static char out[1 << 16], err[1 << 16];

static void setup(void)
{
    make_temp_dir(dir, sizeof dir);
    write_repeated_file(dir, "text.txt",
                        "To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n", 200);
}

static void teardown(void)
{
    remove_tree(dir);
}

/* A run long enough to be interrupted; extra options are appended. */
#define LONG_RUN(...)                                                                                                  \
    (char *[])                                                                                                         \
    {                                                                                                                  \
        "--device", "cpu", "train", "--data", "text.txt", "--hidden", "16", "--layers", "1", "--seq-len", "16",        \
            "--batch", "4", "--steps", "100000000", "--eval-every", "0", "--out", "m.ckpt", __VA_ARGS__, NULL          \
    }

static char *path_in_dir(const char *name)
{
    static char path[160];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return path;
}

static int temp_files_left(void)
{
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *de; (de = readdir(d));)
        n += strstr(de->d_name, ".tmp") != NULL;
    closedir(d);
    return n;
}

static void expect_valid_checkpoint(long max_step)
{
    Checkpoint ck;
    Err e;
    cr_assert_eq(checkpoint_load(path_in_dir("m.ckpt"), &ck, &e), 0, "%s", e.msg);
    cr_expect(ck.step >= 1 && ck.step <= max_step, "step %ld", ck.step);
    cr_expect(ck.has_resume);
    checkpoint_free(&ck);
}

static void interrupt_with(int sig, int expected_status, const char *name)
{
    Child c;
    cr_assert_eq(start_charrnn(&c, dir, LONG_RUN("--save-every", "0"), 0), 0);
    cr_assert(wait_for_stderr(&c, "step "), "training never started: %s", c.err);
    kill(c.pid, sig);
    int status = finish_charrnn(&c);
    cr_assert_eq(status, expected_status, "status %d: %s", status, c.err);
    cr_expect(strstr(c.err, name) && strstr(c.err, "charrnn train --resume m.ckpt"), "%s", c.err);
    cr_expect_null(strstr(c.err, "charrnn: charrnn"), "no stray error line: %s", c.err);
    expect_valid_checkpoint(100000000);
    cr_expect_eq(temp_files_left(), 0);
}

Test(faults, sigint_saves_and_says_how_to_resume, .init = setup, .fini = teardown)
{
    interrupt_with(SIGINT, 130, "interrupted (SIGINT)");
}

Test(faults, sigterm_saves_and_exits_143, .init = setup, .fini = teardown)
{
    interrupt_with(SIGTERM, 143, "interrupted (SIGTERM)");
}

Test(faults, second_sigint_exits_at_once_and_keeps_a_whole_checkpoint, .init = setup, .fini = teardown)
{
    Child c;
    /* A checkpoint every step, so that the second signal may well land in the middle of a write. */
    cr_assert_eq(start_charrnn(&c, dir, LONG_RUN("--save-every", "1"), 0), 0);
    cr_assert(wait_for_stderr(&c, "step "), "%s", c.err);
    for (int tries = 0; access(path_in_dir("m.ckpt"), F_OK) != 0 && tries < 1000; tries++)
        usleep(10000); /* until the first checkpoint exists: that is the one that must stay whole */
    kill(c.pid, SIGINT);
    kill(c.pid, SIGINT);
    int status = finish_charrnn(&c);
    cr_assert_eq(status, 130, "status %d: %s", status, c.err);
    expect_valid_checkpoint(100000000);
    cr_expect_eq(temp_files_left(), 0, "the abandoned write's temporary file is removed");
}

Test(faults, an_interrupted_run_resumes, .init = setup, .fini = teardown)
{
    Child c;
    cr_assert_eq(start_charrnn(&c, dir, LONG_RUN("--save-every", "0"), 0), 0);
    cr_assert(wait_for_stderr(&c, "step "), "%s", c.err);
    kill(c.pid, SIGINT);
    cr_assert_eq(finish_charrnn(&c), 130, "%s", c.err);
    Checkpoint ck;
    Err e;
    cr_assert_eq(checkpoint_load(path_in_dir("m.ckpt"), &ck, &e), 0, "%s", e.msg);
    char steps[32];
    snprintf(steps, sizeof steps, "%ld", ck.step + 3);
    checkpoint_free(&ck);
    cr_assert_eq(RUN("--device", "cpu", "train", "--resume", "m.ckpt", "--steps", steps), 0, "%s", err);
    cr_assert_eq(RUN("info", "--checkpoint", "m.ckpt"), 0);
    char expected[96];
    snprintf(expected, sizeof expected, "step %s of %s", steps, steps);
    cr_assert(strstr(out, expected), "%s", out);
}

/* A checkpoint whose output weights are so large that the next gradient overflows float32. */
static void make_exploding_checkpoint(uint8_t **bytes, size_t *len)
{
    cr_assert_eq(RUN("--device", "cpu", "train", "--data", "text.txt", "--hidden", "16", "--layers", "1", "--seq-len",
                     "16", "--batch", "4", "--steps", "2", "--eval-every", "0", "--out", "m.ckpt"),
                 0, "%s", err);
    Checkpoint ck;
    Err e;
    cr_assert_eq(checkpoint_load(path_in_dir("m.ckpt"), &ck, &e), 0, "%s", e.msg);
    ParamTensor t[MODEL_MAX_TENSORS];
    int n = model_tensors(&ck.cfg.model, t);
    const ParamTensor *w_hy = &t[n - 2];
    for (size_t i = 0; i < w_hy->rows * w_hy->cols; i++)
        ck.params[w_hy->offset + i] = (i % 2 ? -1.0f : 1.0f) * 3e38f;
    ck.cfg.steps = 50;
    cr_assert_eq(checkpoint_save(path_in_dir("m.ckpt"), &ck, &e), 0, "%s", e.msg);
    checkpoint_free(&ck);
    cr_assert_eq(read_file(path_in_dir("m.ckpt"), bytes, len, &e), 0);
}

static void expect_unchanged(const uint8_t *before, size_t len)
{
    uint8_t *after;
    size_t after_len;
    Err e;
    cr_assert_eq(read_file(path_in_dir("m.ckpt"), &after, &after_len, &e), 0);
    cr_expect(after_len == len && memcmp(before, after, len) == 0, "the last checkpoint changed");
    free(after);
}

Test(faults, divergence_stops_and_keeps_the_last_checkpoint, .init = setup, .fini = teardown)
{
    uint8_t *before;
    size_t len;
    make_exploding_checkpoint(&before, &len);
    int status = RUN("--device", "cpu", "train", "--resume", "m.ckpt");
    cr_assert_eq(status, 1, "status %d: %s", status, err);
    cr_expect(strstr(err, "step 3: the") && strstr(err, "training diverged"), "%s", err);
    cr_expect(strstr(err, "--on-nan skip"), "the message says what else to try: %s", err);
    cr_expect_eq(count_lines(err), 3, "two header lines and one error: %s", err);
    expect_unchanged(before, len);
    free(before);
}

Test(faults, on_nan_skip_skips_batches_then_gives_up, .init = setup, .fini = teardown)
{
    uint8_t *before;
    size_t len;
    make_exploding_checkpoint(&before, &len);
    int status = RUN("--device", "cpu", "train", "--resume", "m.ckpt", "--on-nan", "skip");
    cr_assert_eq(status, 1, "status %d: %s", status, err);
    cr_expect(strstr(err, "batch skipped (--on-nan skip)"), "%s", err);
    cr_expect(strstr(err, "20 batches in a row diverged") && !strstr(err, "or --on-nan skip"), "%s", err);
    expect_unchanged(before, len);
    free(before);
}

Test(faults, full_disk_keeps_the_previous_checkpoint, .init = setup, .fini = teardown)
{
    cr_assert_eq(RUN("--device", "cpu", "train", "--data", "text.txt", "--hidden", "16", "--layers", "1", "--seq-len",
                     "16", "--batch", "4", "--steps", "2", "--eval-every", "0", "--out", "m.ckpt"),
                 0, "%s", err);
    uint8_t *before;
    size_t len;
    Err e;
    cr_assert_eq(read_file(path_in_dir("m.ckpt"), &before, &len, &e), 0);
    /* Resume under a file-size limit smaller than the checkpoint: every write fails as on a full disk. */
    Child c;
    char *args[] = {"--device", "cpu", "train", "--resume", "m.ckpt", "--steps", "4", NULL};
    cr_assert_eq(start_charrnn(&c, dir, args, (long)len / 2), 0);
    int status = finish_charrnn(&c);
    cr_assert_eq(status, 1, "status %d: %s", status, c.err);
    cr_expect(strstr(c.err, "m.ckpt: write failed") && strstr(c.err, "File too large"), "%s", c.err);
    expect_unchanged(before, len);
    cr_expect_eq(temp_files_left(), 0);
    free(before);
}

/* A run killed while writing its log leaves half a row; the next run cuts it off and starts its rows
 * (after a header) on a line of their own, so that the log still plots. */
Test(faults, an_unfinished_log_row_is_cut_off, .init = setup, .fini = teardown)
{
    const char *broken = "step,seconds,tokens_per_s,train_loss,val_loss,lr,grad_norm\n1,0.1,100,4.1,,0.002,1\n2,0.2,1";
    write_text_file(path_in_dir("run.csv"), broken, strlen(broken));
    cr_assert_eq(RUN("--device", "cpu", "train", "--data", "text.txt", "--hidden", "8", "--layers", "1", "--seq-len",
                     "8", "--batch", "2", "--steps", "2", "--eval-every", "0", "--out", "m.ckpt", "--log", "run.csv"),
                 0, "%s", err);
    uint8_t *log;
    size_t len;
    Err e;
    cr_assert_eq(read_file(path_in_dir("run.csv"), &log, &len, &e), 0);
    cr_assert(strstr((char *)log, "1,0.1,100,4.1,,0.002,1\nstep,seconds,"), "%s", (char *)log);
    cr_assert_null(strstr((char *)log, "2,0.2,1step"), "%s", (char *)log);
    free(log);
    cr_assert_eq(RUN("plot", "run.csv"), 0, "%s", err);
}

/* A large text costs two bytes per character of memory (the tokens) and nothing more: the file is read
 * in chunks, twice, never whole. Compared with a small text so that the program's own size cancels. */
static long peak_memory_kb(const char *data)
{
    Child c;
    char *args[] = {"--device", "cpu",       "train",  "--data",  (char *)data, "--hidden", "8", "--layers",
                    "1",        "--seq-len", "8",      "--batch", "2",          "--steps",  "1", "--eval-every",
                    "0",        "--out",     "m.ckpt", NULL};
    cr_assert_eq(start_charrnn(&c, dir, args, 0), 0);
    cr_assert_eq(finish_charrnn(&c), 0, "%s", c.err);
    return c.max_rss_kb;
}

Test(faults, large_text_takes_two_bytes_per_character, .init = setup, .fini = teardown)
{
#if defined(__SANITIZE_ADDRESS__)
    cr_skip_test("AddressSanitizer's own memory (redzones, shadow) would count against the budget");
#endif
    const size_t chars = 24u << 20; /* 24 Mi characters */
    FILE *f = fopen(path_in_dir("big.txt"), "w");
    const char *line = "All the world's a stage, and all the men and women merely players;\n";
    for (size_t written = 0; written < chars; written += strlen(line))
        fputs(line, f);
    fclose(f);
    long small = peak_memory_kb("text.txt"), big = peak_memory_kb("big.txt");
    long grown_kb = big - small, budget_kb = (long)(2.25 * (double)chars / 1024.0); /* tokens, plus 1/8 slack */
    cr_expect_leq(grown_kb, budget_kb, "a %zu-character text grew the peak memory by %ld KiB (budget %ld KiB)", chars,
                  grown_kb, budget_kb);
}
