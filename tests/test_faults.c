/* Never lose a run: interruptions save and say how to resume, divergence stops before it can reach a
 * checkpoint, and a failed write leaves the previous checkpoint as it was. */
#define _DEFAULT_SOURCE /* usleep */
#include <criterion/criterion.h>
#include <dirent.h>
#include <sys/stat.h>
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

/* A run long enough to be interrupted, of the shape the options give; extra options are appended. */
#define ENDLESS_RUN(...)                                                                                               \
    (char *[])                                                                                                         \
    {                                                                                                                  \
        "--device", "cpu", "train", "--data", "text.txt", "--steps", "100000000", "--eval-every", "0", "--out",        \
            "m.ckpt", __VA_ARGS__, NULL                                                                                \
    }
/* The same with a tiny model, whose steps take about a millisecond. */
#define LONG_RUN(...) ENDLESS_RUN("--hidden", "16", "--layers", "1", "--seq-len", "16", "--batch", "4", __VA_ARGS__)

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

/* The terminal went away (an ssh session closed): the run is saved as for SIGTERM. */
Test(faults, sighup_saves_and_exits_129, .init = setup, .fini = teardown)
{
    interrupt_with(SIGHUP, 129, "interrupted (SIGHUP)");
}

/* Whether a signal sent to the process is still pending, not yet delivered to one of its threads (Linux:
 * the process-wide pending set, ShdPnd, of /proc/PID/status). */
static int signal_pending(int pid, int sig)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    unsigned long long set = 0;
    int found = 0;
    while (f && !found && fgets(line, sizeof line, f))
        found = sscanf(line, "ShdPnd: %llx", &set) == 1;
    if (f)
        fclose(f);
    return found && (set >> (sig - 1) & 1);
}

Test(faults, second_sigint_exits_at_once_and_keeps_a_whole_checkpoint, .init = setup, .fini = teardown)
{
    Child c;
    /* A checkpoint every step, so that the second signal may well land in the middle of a write; steps
     * long enough (a tenth of a second or more) that the run is still in one when the second arrives. */
    cr_assert_eq(start_charrnn(&c, dir,
                               ENDLESS_RUN("--hidden", "384", "--seq-len", "128", "--batch", "64", "--threads", "1",
                                           "--save-every", "1"),
                               0),
                 0);
    cr_assert(wait_for_stderr(&c, "step "), "%s", c.err);
    for (int tries = 0; access(path_in_dir("m.ckpt"), F_OK) != 0 && tries < 1000; tries++)
        usleep(10000); /* until the first checkpoint exists: that is the one that must stay whole */
    kill(c.pid, SIGINT);
    /* Two signals sent back to back can merge into one pending signal, which saves and exits with the
     * same status: the second is sent once the first has been delivered, so that the run sees two. */
    for (int tries = 0; signal_pending(c.pid, SIGINT) && tries < 10000; tries++)
        usleep(100);
    kill(c.pid, SIGINT);
    int status = finish_charrnn(&c);
    cr_assert_eq(status, 130, "status %d: %s", status, c.err);
    cr_expect_null(strstr(c.err, "continue with"), "the second signal leaves at once, without saving: %s", c.err);
    expect_valid_checkpoint(100000000);
    cr_expect_eq(temp_files_left(), 0, "the abandoned write's temporary file is removed");
}

/* Continues the run in m.ckpt for `more` steps; steps (if not NULL) gets the new total. */
static void resume_for_more_steps(long more, char steps[32])
{
    Checkpoint ck;
    Err e;
    char total[32];
    cr_assert_eq(checkpoint_load(path_in_dir("m.ckpt"), &ck, &e), 0, "%s", e.msg);
    snprintf(total, sizeof total, "%ld", ck.step + more);
    checkpoint_free(&ck);
    cr_assert_eq(RUN("--device", "cpu", "train", "--resume", "m.ckpt", "--steps", total), 0, "%s", err);
    if (steps)
        memcpy(steps, total, sizeof total);
}

Test(faults, an_interrupted_run_resumes, .init = setup, .fini = teardown)
{
    Child c;
    cr_assert_eq(start_charrnn(&c, dir, LONG_RUN("--save-every", "0"), 0), 0);
    cr_assert(wait_for_stderr(&c, "step "), "%s", c.err);
    kill(c.pid, SIGINT);
    cr_assert_eq(finish_charrnn(&c), 130, "%s", c.err);
    char steps[32];
    resume_for_more_steps(3, steps);
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
/* The peak memory of a run, and its stderr (in a buffer of the caller's, or NULL). */
static long peak_kib(char *const args[], char *err_text, size_t cap)
{
    Child c;
    cr_assert_eq(start_charrnn(&c, dir, args, 0), 0);
    cr_assert_eq(finish_charrnn(&c), 0, "%s", c.err);
    if (err_text)
        snprintf(err_text, cap, "%s", c.err);
    return c.max_rss_kb;
}

static long peak_memory_kb(const char *data)
{
    char *args[] = {"--device", "cpu",       "train",  "--data",  (char *)data, "--hidden", "8", "--layers",
                    "1",        "--seq-len", "8",      "--batch", "2",          "--steps",  "1", "--eval-every",
                    "0",        "--out",     "m.ckpt", "--overwrite", NULL};
    return peak_kib(args, NULL, 0);
}

Test(faults, large_text_takes_two_bytes_per_character, .init = setup, .fini = teardown)
{
#if defined(__SANITIZE_ADDRESS__)
    SKIP_REMOVING(dir, "AddressSanitizer's own memory (redzones, shadow) would count against the budget");
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

/* ---- one writer per checkpoint ---- */

static void wait_for_file(const char *name)
{
    for (int tries = 0; access(path_in_dir(name), F_OK) != 0 && tries < 2000; tries++)
        usleep(10000);
}

Test(faults, one_writer_per_checkpoint, .init = setup, .fini = teardown, .timeout = 120)
{
    Child c;
    cr_assert_eq(start_charrnn(&c, dir, LONG_RUN("--save-every", "1"), 0), 0);
    cr_assert(wait_for_stderr(&c, "step "), "%s", c.err);
    wait_for_file("m.ckpt");
    char pid[32];
    snprintf(pid, sizeof pid, "(PID %d)", c.pid);
    char *const others[][16] = {
        {"--device", "cpu", "train", "--data", "text.txt", "--hidden", "8", "--steps", "2", "--out", "m.ckpt", NULL},
        {"--device", "cpu", "train", "--data", "text.txt", "--hidden", "8", "--steps", "2", "--out", "./m.ckpt",
         "--overwrite", NULL},
        {"--device", "cpu", "train", "--resume", "m.ckpt", NULL},
    };
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
        int rc = run_charrnn(dir, others[i], out, sizeof out, err, sizeof err);
        cr_expect_eq(rc, 2, "%s", err);
        cr_expect(strstr(err, "m.ckpt is being written by another charrnn process") && strstr(err, pid), "%s", err);
        cr_expect_eq(count_lines(err), 1, "%s", err);
    }
    cr_expect_eq(RUN("info", "--checkpoint", "m.ckpt"), 0, "readers take no lock: %s", err);
    kill(c.pid, SIGINT);
    cr_assert_eq(finish_charrnn(&c), 130, "%s", c.err);
    cr_expect_neq(access(path_in_dir("m.ckpt.lock"), F_OK), 0, "the lock file is removed with the lock");
    resume_for_more_steps(1, NULL); /* the next writer takes the lock */
}

/* What kill -9 leaves in the middle of a save: the temporary file (this version's name, and the random
 * names of earlier ones) and the dead writer's lock file. The next writer removes them, and only them. */
Test(faults, the_files_of_a_killed_writer_are_removed, .init = setup, .fini = teardown, .timeout = 120)
{
    const char *stale[] = {"m.ckpt.tmp", "m.ckpt.tmpA1b2C3", "m.ckpt.lock"};
    const char *kept[] = {"keep.tmp", "m.ckpt.tmp-notes", "m.ckpt.tmpA1b2C3D4"};
    for (int i = 0; i < 3; i++)
        write_text_file(path_in_dir(stale[i]), "CHARRNN\0cut short", 17);
    for (int i = 0; i < 3; i++)
        write_text_file(path_in_dir(kept[i]), "not charrnn's", 13);
    cr_assert_eq(RUN("--device", "cpu", "train", "--data", "text.txt", "--hidden", "8", "--layers", "1", "--seq-len",
                     "8", "--batch", "2", "--steps", "2", "--eval-every", "0", "--out", "m.ckpt"),
                 0, "%s", err);
    for (int i = 0; i < 3; i++)
        cr_expect_neq(access(path_in_dir(stale[i]), F_OK), 0, "%s is left", stale[i]);
    for (int i = 0; i < 3; i++)
        cr_expect_eq(access(path_in_dir(kept[i]), F_OK), 0, "%s was removed", kept[i]);
    for (int i = 0; i < 3; i++)
        unlink(path_in_dir(kept[i]));
    /* Killed again and again while saving every step: one temporary name, so at most one file is left. */
    for (int kills = 0; kills < 3; kills++) {
        Child c;
        cr_assert_eq(start_charrnn(&c, dir, LONG_RUN("--save-every", "1", "--overwrite"), 0), 0);
        cr_assert(wait_for_stderr(&c, "step "), "%s", c.err);
        usleep(20000 * (useconds_t)kills);
        kill(c.pid, SIGKILL);
        finish_charrnn(&c);
        cr_expect_leq(temp_files_left(), 1, "after %d kills", kills + 1);
    }
    resume_for_more_steps(1, NULL);
    cr_expect_eq(temp_files_left(), 0);
}

/* A log that cannot be written stops the run at the step it failed (saving it), not after the run. */
Test(faults, a_log_that_cannot_be_written_stops_the_run_where_it_failed, .init = setup, .fini = teardown,
     .timeout = 120)
{
    Child c;
    /* A file-size limit that the checkpoint fits under and the log outgrows after a few thousand rows. */
    cr_assert_eq(start_charrnn(&c, dir, LONG_RUN("--save-every", "0", "--log", "run.csv"), 256 << 10), 0);
    int status = finish_charrnn(&c);
    cr_assert_eq(status, 1, "status %d: %s", status, c.err);
    const char *at = strstr(c.err, "--log run.csv: write failed at step ");
    cr_assert(at && strstr(c.err, "File too large; training stopped and m.ckpt was saved at step "), "%s", c.err);
    long step = atol(at + strlen("--log run.csv: write failed at step "));
    Checkpoint ck;
    Err e;
    cr_assert_eq(checkpoint_load(path_in_dir("m.ckpt"), &ck, &e), 0, "%s", e.msg);
    cr_expect_eq(ck.step, step, "saved where it stopped");
    checkpoint_free(&ck);
}

/* The command printed on an interruption works when pasted into a shell, even for a path with a space. */
Test(faults, the_printed_resume_command_works_as_typed, .init = setup, .fini = teardown, .timeout = 120)
{
    cr_assert_eq(mkdir(path_in_dir("my run"), 0777), 0);
    Child c;
    char *args[] = {"--device", "cpu",     "train", "--data",    "text.txt",   "--hidden",     "16",
                    "--layers", "1",       "--seq-len", "16",   "--steps", "100000000", "--eval-every", "0",
                    "--out",    "my run/m.ckpt", NULL};
    cr_assert_eq(start_charrnn(&c, dir, args, 0), 0);
    cr_assert(wait_for_stderr(&c, "step "), "%s", c.err);
    kill(c.pid, SIGINT);
    cr_assert_eq(finish_charrnn(&c), 130, "%s", c.err);
    const char *at = strstr(c.err, "continue with: ");
    cr_assert(at, "%s", c.err);
    char command[512];
    snprintf(command, sizeof command, "%.*s", (int)strcspn(at + 15, "\n"), at + 15);
    cr_expect(strstr(command, CHARRNN_BIN " train --resume 'my run/m.ckpt'"), "%s", command);
    cr_assert_eq(start_shell(&c, dir, command), 0);
    cr_assert(wait_for_stderr(&c, "resuming training"), "the command failed: %s: %s", command, c.err);
    cr_assert(wait_for_stderr(&c, "tok/s"), "%s", c.err);
    kill(-c.pid, SIGINT); /* Ctrl-C: the whole job */
    cr_expect_eq(finish_charrnn(&c), 130, "%s", c.err);
    cr_expect(strstr(c.err, "interrupted (SIGINT)"), "the resumed run saved: %s", c.err);
}

/* ---- the memory estimate ---- */

static long estimate_kib(const char *err_text)
{
    const char *at = strstr(err_text, "an estimated ");
    cr_assert(at, "%s", err_text);
    double x = atof(at + 13);
    const char *unit = strchr(at + 13, ' ') + 1;
    return (long)(x * (strncmp(unit, "GiB", 3) == 0 ? 1048576.0 : strncmp(unit, "MiB", 3) == 0 ? 1024.0 : 1.0));
}

static long train_peak_kib(const char *cell, const char *batch, const char *dropout, long *estimated)
{
    char *args[] = {"--device", "cpu", "train", "--data", "text.txt", "--cell", (char *)cell, "--seq-len", "64", "--batch",
                    (char *)batch, "--dropout", (char *)dropout, "--steps", "2", "--eval-every", "0", "--out", "m.ckpt",
                    "--overwrite", NULL};
    long peak = peak_kib(args, err, sizeof err);
    *estimated = estimate_kib(err);
    return peak;
}

/* Between two runs that differ only in their batch, the peak memory grows by what the estimate says:
 * never by more (the estimate is what a refusal is based on), nor by much less; for each cell, without
 * dropout and with it (its masks, a byte per unit, counted only then). The gated cells' wider input
 * products are the ones OpenBLAS would pack whole into memory of its own that grows with the batch. */
Test(faults, the_memory_estimate_matches_what_a_run_uses, .init = setup, .fini = teardown, .timeout = 240)
{
#if defined(__SANITIZE_ADDRESS__)
    SKIP_REMOVING(dir, "AddressSanitizer's own memory (redzones, shadow) would count against the estimate");
#endif
    const char *cells[] = {"rnn", "gru", "lstm"}, *dropouts[] = {"0", "0.3"};
    for (int c = 0; c < 3; c++)
        for (int d = 0; d < 2; d++) {
            long small_estimate, big_estimate;
            long small = train_peak_kib(cells[c], "4", dropouts[d], &small_estimate);
            long big = train_peak_kib(cells[c], "260", dropouts[d], &big_estimate);
            const long grown = big - small, estimated = big_estimate - small_estimate;
            const long rounding_kib = 2 * 52; /* each estimate is printed to 0.1 MiB */
            cr_expect_leq(grown, estimated + rounding_kib, "%s, dropout %s: grew by %ld KiB, estimated %ld KiB",
                          cells[c], dropouts[d], grown, estimated);
            /* the estimate counts buffers a run may not touch (the embedding's rows when layer 0 is folded) */
            cr_expect_geq(grown, estimated * 3 / 4, "%s, dropout %s: grew by %ld KiB, estimated %ld KiB", cells[c],
                          dropouts[d], grown, estimated);
        }
}
