/* Data-parallel training under mpirun: two ranks train what one process trains with the same global
 * batch (on the CPU and on the emulated CUDA device, through its NCCL and through MPI on the host), a
 * two-rank run resumes exactly, rank 0 alone writes, and a rank that fails or dies ends the job at once
 * with a message naming it. Runs `mpirun --oversubscribe -np 2` (Open MPI), as root where needed. */
#define _DEFAULT_SOURCE /* setenv, usleep */
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "checkpoint.h"
#include "model.h"
#include "testutil.h"

static char dir[64];
static char out[1 << 16], err[1 << 16];

/* The ranks add their partial sums in another order than one process does: the models after a few steps
 * differ by a relative 1e-8 (measured), far inside this. */
#define SAME_RUN_RTOL 1e-5
/* A job that ends within this is not hanging (a start of mpirun takes about half a second here). */
#define ENDS_WITHIN_SECONDS 20.0

#ifndef CHARRNN_MPIEXEC
#define CHARRNN_MPIEXEC NULL
#endif
#define MPIRUN(n) ((char *[]){CHARRNN_MPIEXEC, "--oversubscribe", "-np", n, NULL})
#define MPIRUN2 MPIRUN("2")

/* For any test that starts mpirun. */
static void setup_launcher(void)
{
    if (!CHARRNN_MPIEXEC)
        cr_skip_test("no mpirun was found when charrnn was built (Debian: openmpi-bin)");
    /* Open MPI refuses to run as root unless told it may (containers and CI run as root). */
    setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
    setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
    make_temp_dir(dir, sizeof dir);
    write_repeated_file(dir, "text.txt",
                        "Tomorrow, and tomorrow, and tomorrow,\nCreeps in this petty pace from day to day,\n", 40);
}

/* For the data-parallel runs themselves. */
static void setup(void)
{
#ifndef CHARRNN_BUILT_WITH_MPI
    cr_skip_test("charrnn was built without MPI (CHARRNN_MPI=OFF, or MPI not found): no data-parallel runs");
#endif
    setup_launcher();
}

static void teardown(void)
{
    remove_tree(dir);
}

/* A small run; the device and the rest of the options follow. */
#define SMALL_RUN(...)                                                                                                 \
    ((char *[]){"train", "--data",          "text.txt", "--hidden",  "13", "--layers",     "2", "--embed",             \
                "7",     "--seq-len",       "9",        "--batch",   "5",  "--eval-every", "3", "--eval-batches",      \
                "2",     "--sample-length", "12",       "--threads", "1",  __VA_ARGS__,    NULL})

static int run(char *const launch[], const char *program, char *const args[])
{
    return run_launched(launch, program, dir, args, "/dev/null", out, sizeof out, err, sizeof err);
}

static char *in_dir(const char *name)
{
    return join_path(dir, name);
}

static void load(const char *name, Checkpoint *ck)
{
    Err e;
    cr_assert_eq(checkpoint_load(in_dir(name), ck, &e), 0, "%s", e.msg);
}

/* Every parameter tensor of b within SAME_RUN_RTOL of a's: in relative L2, and entry by entry against the
 * tensor's largest entry. */
static void expect_same_model(const char *name_a, const char *name_b)
{
    Checkpoint a, b;
    load(name_a, &a);
    load(name_b, &b);
    cr_assert_eq(a.step, b.step);
    ParamTensor t[MODEL_MAX_TENSORS];
    const int n = model_tensors(&a.cfg.model, t);
    for (int k = 0; k < n; k++) {
        double diff = 0.0, norm = 0.0, largest = 0.0, worst = 0.0;
        for (size_t i = t[k].offset; i < t[k].offset + t[k].rows * t[k].cols; i++) {
            const double d = (double)a.params[i] - b.params[i];
            diff += d * d;
            norm += (double)a.params[i] * a.params[i];
            largest = fmax(largest, fabs(a.params[i]));
            worst = fmax(worst, fabs(d));
        }
        cr_expect(sqrt(diff) <= SAME_RUN_RTOL * sqrt(norm), "%s: relative L2 difference %g", t[k].name,
                  sqrt(diff / norm));
        cr_expect(worst <= SAME_RUN_RTOL * largest, "%s: an entry differs by %g, the largest is %g", t[k].name, worst,
                  largest);
    }
    checkpoint_free(&a);
    checkpoint_free(&b);
}

/* The resume state and every tensor, bit for bit (the recent-loss field differs: each run averages its own steps). */
static void expect_identical_run(const char *name_a, const char *name_b)
{
    Checkpoint a, b;
    load(name_a, &a);
    load(name_b, &b);
    const size_t P = model_num_params(&a.cfg.model);
    const size_t carry = (size_t)model_state_sets(&a.cfg.model) * a.cfg.model.layers * a.cfg.batch * a.cfg.model.hidden;
    cr_assert_eq(a.step, b.step);
    cr_expect_eq(memcmp(a.params, b.params, P * sizeof(float)), 0, "parameters differ");
    cr_expect_eq(memcmp(a.m, b.m, P * sizeof(float)), 0, "first moments differ");
    cr_expect_eq(memcmp(a.v, b.v, P * sizeof(float)), 0, "second moments differ");
    cr_expect_eq(memcmp(&a.rng, &b.rng, sizeof a.rng), 0, "batch generators differ");
    cr_expect_eq(a.stream_pos, b.stream_pos);
    cr_assert(a.carry && b.carry, "a stateful run carries its state");
    cr_expect_eq(memcmp(a.carry, b.carry, carry * sizeof(float)), 0, "carried states differ");
    checkpoint_free(&a);
    checkpoint_free(&b);
}

static int count_of(const char *haystack, const char *needle)
{
    int n = 0;
    for (const char *p = haystack; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

static double seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

TestSuite(dist, .timeout = 60);

Test(dist, collectives_and_the_replica_check_hold_on_two_ranks, .init = setup, .fini = teardown)
{
#ifdef DIST_PROBE_BIN
    int rc =
        run_launched(MPIRUN2, DIST_PROBE_BIN, dir, (char *[]){NULL}, "/dev/null", out, sizeof out, err, sizeof err);
    cr_assert_eq(rc, 0, "status %d: %s%s", rc, out, err);
    cr_expect(strstr(out, "every check held on every rank"), "%s", out);
#endif
}

Test(dist, a_rank_failing_alone_ends_the_job_naming_it, .init = setup, .fini = teardown)
{
#ifdef DIST_PROBE_BIN
    const double start = seconds();
    int rc = run_launched(MPIRUN2, DIST_PROBE_BIN, dir, (char *[]){"abort", NULL}, "/dev/null", out, sizeof out, err,
                          sizeof err);
    cr_expect_eq(rc, 3, "the status rank 1 gave: %d, %s", rc, err);
    cr_expect(strstr(err, "charrnn: rank 1: a failure of this rank alone"), "%s", err);
    cr_expect_lt(seconds() - start, ENDS_WITHIN_SECONDS);
#endif
}

/* A batch of 5 is shared 3 + 2: the weights differ, and so do the ranks' streams. */
Test(dist, two_ranks_train_what_one_process_trains_on_the_cpu, .init = setup, .fini = teardown)
{
    cr_assert_eq(run(NULL, NULL, SMALL_RUN("--device", "cpu", "--steps", "6", "--stateful", "--out", "one.ckpt")), 0,
                 "%s", err);
    cr_assert_eq(run(MPIRUN2, NULL, SMALL_RUN("--device", "cpu", "--steps", "6", "--stateful", "--out", "two.ckpt")), 0,
                 "%s", err);
    cr_expect(strstr(err, "data parallel over 2 ranks"), "%s", err);
    expect_same_model("one.ckpt", "two.ckpt");
}

/* With dropout each rank draws its rows' masks of the global batch, and the LSTM's carried h and c are
 * shared out and gathered like the tanh cell's h. */
Test(dist, two_ranks_train_what_one_process_trains_an_lstm_with_dropout, .init = setup, .fini = teardown)
{
    cr_assert_eq(run(NULL, NULL,
                     SMALL_RUN("--device", "cpu", "--steps", "6", "--stateful", "--cell", "lstm", "--dropout", "0.3",
                               "--out", "one.ckpt")),
                 0, "%s", err);
    cr_assert_eq(run(MPIRUN2, NULL,
                     SMALL_RUN("--device", "cpu", "--steps", "6", "--stateful", "--cell", "lstm", "--dropout", "0.3",
                               "--out", "two.ckpt")),
                 0, "%s", err);
    expect_same_model("one.ckpt", "two.ckpt");
}

Test(dist, two_ranks_train_what_one_process_trains_in_window_mode_with_sgd, .init = setup, .fini = teardown)
{
    cr_assert_eq(run(NULL, NULL,
                     SMALL_RUN("--device", "cpu", "--steps", "5", "--mode", "window", "--optimizer", "sgd", "--out",
                               "one.ckpt")),
                 0, "%s", err);
    cr_assert_eq(run(MPIRUN2, NULL,
                     SMALL_RUN("--device", "cpu", "--steps", "5", "--mode", "window", "--optimizer", "sgd", "--out",
                               "two.ckpt")),
                 0, "%s", err);
    expect_same_model("one.ckpt", "two.ckpt");
}

/* OpenBLAS taken to have chosen old kernels (cpu/blas_check.c): every rank runs itself again on the right
 * ones before MPI starts, the job trains, and the note is said once. */
Test(dist, every_rank_runs_on_the_fixed_openblas_kernels_and_one_says_so, .init = setup, .fini = teardown)
{
    const char *why, *fix = blas_fix_of_prescott(&why);
    if (!fix)
        SKIP_REMOVING(dir, "%s", why);
    unsetenv("OPENBLAS_CORETYPE");
    setenv("CHARRNN_TEST_BLAS_CORENAME", "Prescott", 1);
    setenv("OPENBLAS_VERBOSE", "2", 1); /* each process names the kernels it loads: "Core: Haswell" */
    int rc = run(MPIRUN2, NULL, SMALL_RUN("--device", "cpu", "--steps", "2", "--out", "two.ckpt"));
    unsetenv("CHARRNN_TEST_BLAS_CORENAME");
    unsetenv("OPENBLAS_VERBOSE");
    cr_assert_eq(rc, 0, "%s", err);
    char core[64];
    snprintf(core, sizeof core, "Core: %s", fix);
    cr_expect_eq(count_of(err, "OpenBLAS chose its Prescott kernels"), 1, "one note: %s", err);
    cr_expect_eq(count_of(err, core), 2, "both ranks ran again on the %s kernels: %s", fix, err);
}

#ifdef CHARRNN_EMU_BIN
/* Each rank has an emulated device of its own; the gradients go through the emulated NCCL, or MPI on the host. */
static void two_emulated_gpus_train_as_one(const char *allreduce)
{
    setenv("CHARRNN_EMU_DEVICES", "2", 1);
    setenv("CHARRNN_CUDA_ALLREDUCE", allreduce, 1);
    cr_assert_eq(
        run(NULL, CHARRNN_EMU_BIN, SMALL_RUN("--device", "cuda", "--steps", "4", "--stateful", "--out", "one.ckpt")), 0,
        "%s", err);
    cr_assert_eq(
        run(MPIRUN2, CHARRNN_EMU_BIN, SMALL_RUN("--device", "cuda", "--steps", "4", "--stateful", "--out", "two.ckpt")),
        0, "%s", err);
    cr_expect(strstr(err, "data parallel over 2 ranks") && strstr(err, "cuda"), "%s", err);
    expect_same_model("one.ckpt", "two.ckpt");
}

Test(dist, two_emulated_gpus_train_what_one_trains_through_nccl, .init = setup, .fini = teardown)
{
    two_emulated_gpus_train_as_one("nccl");
}

Test(dist, two_emulated_gpus_train_what_one_trains_through_mpi_on_the_host, .init = setup, .fini = teardown)
{
    two_emulated_gpus_train_as_one("host");
}

Test(dist, more_ranks_than_gpus_and_a_bad_allreduce_setting_are_refused, .init = setup, .fini = teardown)
{
    setenv("CHARRNN_EMU_DEVICES", "1", 1);
    int rc = run(MPIRUN2, CHARRNN_EMU_BIN, SMALL_RUN("--device", "cuda", "--steps", "2", "--out", "m.ckpt"));
    cr_expect_eq(rc, 1, "status %d: %s", rc, err);
    cr_expect(strstr(err, "charrnn: --device cuda: 2 ranks run on this machine but it has 1 GPU"), "%s", err);
    cr_expect_eq(count_of(err, "charrnn:"), 1, "one line, from rank 0: %s", err);
    cr_expect_eq(access(in_dir("m.ckpt"), F_OK), -1, "nothing was written");
    setenv("CHARRNN_EMU_DEVICES", "2", 1);
    setenv("CHARRNN_CUDA_ALLREDUCE", "nvlink", 1);
    rc = run(MPIRUN2, CHARRNN_EMU_BIN, SMALL_RUN("--device", "cuda", "--steps", "2", "--out", "m.ckpt"));
    cr_expect_eq(rc, 1, "status %d: %s", rc, err);
    cr_expect(strstr(err, "charrnn: CHARRNN_CUDA_ALLREDUCE=nvlink: expected nccl or host"), "%s", err);
}
#endif

/* On a machine with two GPUs or more, the real thing: NCCL between two GPUs. Elsewhere the run is refused
 * for want of GPUs (none, one, too old, or a build without CUDA) and the test reports itself skipped,
 * saying why; any other failure fails it. */
Test(dist, two_gpus_train_what_one_trains_through_nccl, .init = setup, .fini = teardown)
{
    static const char *const no_two_gpus[] = {"no CUDA device found", "no usable CUDA device",
                                              "ranks run on this machine but it has", "built without CUDA support",
                                              "has compute capability"};
    int rc = run(MPIRUN2, NULL, SMALL_RUN("--device", "cuda", "--steps", "4", "--stateful", "--out", "two.ckpt"));
    for (size_t i = 0; rc != 0 && i < sizeof no_two_gpus / sizeof no_two_gpus[0]; i++) {
        const char *line = strstr(err, no_two_gpus[i]);
        if (line)
            SKIP_REMOVING(dir, "needs two GPUs: %.*s", (int)strcspn(line, "\n"), line);
    }
    cr_assert_eq(rc, 0, "%s", err);
    cr_assert_eq(run(NULL, NULL, SMALL_RUN("--device", "cuda", "--steps", "4", "--stateful", "--out", "one.ckpt")), 0,
                 "%s", err);
    expect_same_model("one.ckpt", "two.ckpt");
}

/* Stateful streams carry their state across the save: the resumed run gathers and shares it out again,
 * here with two threads per rank instead of one. */
Test(dist, a_two_rank_run_resumes_exactly, .init = setup, .fini = teardown)
{
#define STATEFUL_RUN(steps, out_file)                                                                                  \
    SMALL_RUN("--device", "cpu", "--stateful", "--lr-schedule", "constant", "--steps", steps, "--out", out_file)
    cr_assert_eq(run(MPIRUN2, NULL, STATEFUL_RUN("8", "whole.ckpt")), 0, "%s", err);
    cr_assert_eq(run(MPIRUN2, NULL, STATEFUL_RUN("4", "half.ckpt")), 0, "%s", err);
    cr_assert_eq(
        run(MPIRUN2, NULL,
            (char *[]){"--device", "cpu", "train", "--resume", "half.ckpt", "--steps", "8", "--threads", "2", NULL}),
        0, "%s", err);
    cr_expect(strstr(err, "resuming training"), "%s", err);
    expect_identical_run("whole.ckpt", "half.ckpt");
}

Test(dist, rank_0_alone_prints_and_writes, .init = setup, .fini = teardown)
{
    cr_assert_eq(run(MPIRUN2, NULL,
                     SMALL_RUN("--device", "cpu", "--steps", "6", "--log", "run.csv", "--out", "sub/m.ckpt",
                               "--save-every", "2")),
                 0, "%s", err);
    cr_expect_eq(count_of(err, "charrnn: training on cpu"), 1, "%s", err);
    cr_expect_eq(count_of(err, "--- sample ---"), 2, "one sample per evaluation: %s", err);
    cr_expect_eq(count_of(err, "saved checkpoint"), 1, "%s", err);
    char *log;
    size_t len;
    Err e;
    cr_assert_eq(read_file(in_dir("run.csv"), (uint8_t **)&log, &len, &e), 0, "%s", e.msg);
    cr_expect_eq(count_lines(log), 7, "one header and 6 rows, written once: %s", log);
    free(log);
    /* Nothing else anywhere: no second log, checkpoint or temporary file. */
    DIR *d = opendir(dir);
    int entries = 0;
    for (struct dirent *de; (de = readdir(d));)
        entries += de->d_name[0] != '.';
    closedir(d);
    cr_expect_eq(entries, 3, "text.txt, run.csv and sub/");
    d = opendir(in_dir("sub"));
    entries = 0;
    for (struct dirent *de; (de = readdir(d));)
        entries += de->d_name[0] != '.';
    closedir(d);
    cr_expect_eq(entries, 1, "sub/m.ckpt alone");
}

Test(dist, evaluation_across_ranks_is_the_one_process_evaluation, .init = setup, .fini = teardown)
{
    cr_assert_eq(run(NULL, NULL, SMALL_RUN("--device", "cpu", "--steps", "3", "--out", "m.ckpt")), 0, "%s", err);
    char *const args[] = {"--device", "cpu", "eval", "--checkpoint", "m.ckpt", NULL};
    cr_assert_eq(run(NULL, NULL, args), 0, "%s", err);
    static char alone[sizeof out];
    memcpy(alone, out, sizeof out);
    cr_assert_eq(run(MPIRUN2, NULL, args), 0, "%s", err);
    cr_expect_str_eq(out, alone, "rank 0 prints the same evaluation, once");
}

Test(dist, a_rank_that_fails_its_set_up_ends_the_job_naming_it, .init = setup, .fini = teardown)
{
    const double start = seconds();
    int rc = run(MPIRUN("1"), NULL,
                 (char *[]){"--device", "cpu", "train", "--data", "text.txt", "--out", "m.ckpt", ":", "-np", "1",
                            CHARRNN_BIN, "--device", "cpu", "train", "--data", "missing.txt", "--out", "m.ckpt", NULL});
    cr_expect_eq(rc, 2, "status %d: %s", rc, err);
    cr_expect(strstr(err, "charrnn: rank 1: missing.txt: cannot open"), "%s", err);
    cr_expect_eq(count_of(err, "charrnn:"), 1, "one line, from rank 0: %s", err);
    cr_expect_lt(seconds() - start, ENDS_WITHIN_SECONDS);
}

Test(dist, ranks_started_with_other_options_are_refused, .init = setup, .fini = teardown)
{
    int rc = run(MPIRUN("1"), NULL,
                 (char *[]){"--device", "cpu", "train", "--data", "text.txt", "--steps", "2", ":", "-np", "1",
                            CHARRNN_BIN, "--device", "cpu", "train", "--data", "text.txt", "--steps", "3", NULL});
    cr_expect_eq(rc, 2, "status %d: %s", rc, err);
    cr_expect(strstr(err, "rank 1 differs from rank 0 in the options, data or checkpoint it was started with"), "%s",
              err);
}

#ifdef CHARRNN_EMU_BIN
/* The same run trained on two devices: the same settings, step and data, models apart by rounding. */
Test(dist, ranks_resuming_other_models_are_refused, .init = setup, .fini = teardown)
{
    cr_assert_eq(run(NULL, NULL, SMALL_RUN("--device", "cpu", "--steps", "2", "--out", "a.ckpt")), 0, "%s", err);
    cr_assert_eq(run(NULL, CHARRNN_EMU_BIN, SMALL_RUN("--device", "cuda", "--steps", "2", "--out", "b.ckpt")), 0, "%s",
                 err);
    int rc = run(MPIRUN("1"), NULL,
                 (char *[]){"--device", "cpu", "train", "--resume", "a.ckpt", "--steps", "3", ":", "-np", "1",
                            CHARRNN_BIN, "--device", "cpu", "train", "--resume", "b.ckpt", "--steps", "3", NULL});
    cr_expect_eq(rc, 2, "status %d: %s", rc, err);
    cr_expect(strstr(err, "rank 1 differs from rank 0 in the parameters after step 2"), "%s", err);
}
#endif

Test(dist, bad_combinations_are_refused_up_front, .init = setup, .fini = teardown)
{
    int rc = run(MPIRUN2, NULL, (char *[]){"--device", "cpu", "train", "--data", "text.txt", "--batch", "1", NULL});
    cr_expect_eq(rc, 2, "status %d: %s", rc, err);
    cr_expect(strstr(err, "charrnn: train: --batch 1 is smaller than the 2 ranks"), "%s", err);
    cr_expect_eq(count_of(err, "charrnn:"), 1, "one line, from rank 0: %s", err);
    rc = run(MPIRUN2, NULL, (char *[]){"sample", NULL});
    cr_expect_eq(rc, 2, "status %d: %s", rc, err);
    cr_expect(strstr(err, "charrnn: sample runs in a single process"), "%s", err);
    rc = run(MPIRUN2, NULL, (char *[]){"selftest", NULL});
    cr_expect_eq(rc, 2, "status %d: %s", rc, err);
    cr_expect(strstr(err, "charrnn: selftest runs in a single process"), "%s", err);
}

/* A long run, its first progress line awaited. */
static void start_long_run(Child *c, const char *out_file, const char *save_every)
{
    char *const args[] = {
        "--device",  "cpu",       "train",   "--data", "text.txt",       "--hidden",     "13",
        "--seq-len", "9",         "--batch", "4",      "--steps",        "1000000",      "--eval-every",
        "0",         "--threads", "1",       "--out",  (char *)out_file, "--save-every", (char *)save_every,
        NULL};
    cr_assert_eq(start_launched(c, MPIRUN2, NULL, dir, args), 0);
    cr_assert(wait_for_stderr(c, "step 1/"), "training never started: %s", c->err);
}

Test(dist, sigterm_to_mpirun_stops_every_rank_after_the_same_step_and_saves, .init = setup, .fini = teardown)
{
    Child c;
    /* mpirun passes SIGTERM on after this many seconds and kills what still runs as many seconds later
     * (1 by default): a loaded machine may need longer for the last step and the save. */
    setenv("OMPI_MCA_odls_base_sigkill_timeout", "3", 1);
    start_long_run(&c, "m.ckpt", "0");
    usleep(200000);
    kill(c.pid, SIGTERM);
    int status = finish_charrnn(&c);
    cr_expect_neq(status, 0, "%s", c.err);
    cr_expect_eq(count_of(c.err, "interrupted (SIGTERM) at step"), 1, "%s", c.err);
    cr_expect(strstr(c.err, "continue with: mpirun -np 2 " CHARRNN_BIN " train --resume m.ckpt"), "%s", c.err);
    Checkpoint ck;
    load("m.ckpt", &ck);
    char said[64];
    snprintf(said, sizeof said, "interrupted (SIGTERM) at step %ld of", ck.step);
    cr_expect(strstr(c.err, said), "the checkpoint is at step %ld: %s", ck.step, c.err);
    checkpoint_free(&ck);
}

/* rank 0's failed write stops every rank, with its message, and the ranks exit on their own. (A file-size
 * limit, the faults suite's full disk, would stop MPI's own shared-memory files first.) */
Test(dist, a_failed_save_on_rank_0_stops_every_rank, .init = setup, .fini = teardown)
{
    Child c;
    start_long_run(&c, "sub/m.ckpt", "20");
    /* The checkpoint's directory turns into a file while the run goes on (again if a save made it anew in
     * between: renaming a file onto a directory fails). */
    write_text_file(in_dir("blocker"), "x", 1);
    struct stat st;
    for (int tries = 0; stat(in_dir("sub"), &st) != 0 || !S_ISREG(st.st_mode); tries++) {
        cr_assert_lt(tries, 1000, "the directory could not be replaced");
        remove_tree(in_dir("sub"));
        rename(in_dir("blocker"), in_dir("sub"));
    }
    const double start = seconds();
    int status = finish_charrnn(&c);
    cr_expect_eq(status, 1, "%s", c.err);
    /* Most often "sub: exists and is not a directory"; a save under way meets the change elsewhere. */
    cr_expect_eq(count_of(c.err, "charrnn: sub"), 1, "one line, from rank 0, naming the path: %s", c.err);
    cr_expect_lt(seconds() - start, ENDS_WITHIN_SECONDS);
}

/* The rank's process (its parent is mpirun) whose environment names it rank 1. */
static int rank_1_of(int mpirun)
{
    DIR *d = opendir("/proc");
    int found = 0;
    for (struct dirent *de; !found && (de = readdir(d));) {
        char path[300], buf[1 << 15];
        int pid = atoi(de->d_name), ppid = 0;
        snprintf(path, sizeof path, "/proc/%d/stat", pid);
        FILE *f = pid > 0 ? fopen(path, "r") : NULL;
        if (!f)
            continue;
        if (fscanf(f, "%*d %*s %*c %d", &ppid) != 1)
            ppid = 0;
        fclose(f);
        snprintf(path, sizeof path, "/proc/%d/environ", pid);
        if (ppid != mpirun || !(f = fopen(path, "r")))
            continue;
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        for (size_t i = 0; i < n; i += strlen(buf + i) + 1)
            found = strcmp(buf + i, "OMPI_COMM_WORLD_RANK=1") == 0 ? pid : found;
    }
    closedir(d);
    return found;
}

Test(dist, a_rank_that_dies_ends_the_job_naming_it, .init = setup, .fini = teardown)
{
    Child c;
    start_long_run(&c, "m.ckpt", "0");
    int victim = rank_1_of(c.pid);
    cr_assert_gt(victim, 0, "rank 1 not found among mpirun's children");
    const double start = seconds();
    kill(victim, SIGKILL);
    int status = finish_charrnn(&c);
    cr_expect_neq(status, 0, "%s", c.err);
    cr_expect(strstr(c.err, "rank 1"), "mpirun names the rank: %s", c.err);
    cr_expect_lt(seconds() - start, ENDS_WITHIN_SECONDS);
}

Test(dist, mpirun_of_a_build_without_mpi_says_so, .init = setup_launcher, .fini = teardown)
{
#ifdef CHARRNN_BUILT_WITH_MPI
    SKIP_REMOVING(dir, "this charrnn is built with MPI (the other tests run it under mpirun)");
#endif
    int rc = run(MPIRUN2, NULL, (char *[]){"--device", "cpu", "train", "--data", "text.txt", NULL});
    cr_expect_eq(rc, 2, "status %d: %s", rc, err);
    cr_expect(strstr(err, "charrnn: this charrnn was built without MPI, so it cannot train across the 2 processes"),
              "%s", err);
    cr_expect_eq(count_of(err, "charrnn:"), 1, "one line, from rank 0: %s", err);
}
