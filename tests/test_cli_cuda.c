/* Checkpoints cross devices as they are: train with --device cuda, then sample, evaluate and resume
 * with --device cpu, and the reverse. Runs the program built with the CUDA backend (charrnn-emu on the
 * emulated device, or charrnn on a real GPU). */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../cuda/cuda.h"
#include "checkpoint.h"
#include "testutil.h"

static char out[1 << 16], err[1 << 16];
static char dir[64];
static const char TEXT[] = "Now is the winter of our discontent\nMade glorious summer by this sun of York;\n";

static void setup(void)
{
    Err e;
    if (cuda_device_usable(&e) != 0)
        cr_skip_test("no CUDA device: %s", e.msg);
    cr_log_info("CUDA backend on: %s", cuda_device_name());
    make_temp_dir(dir, sizeof dir);
    write_repeated_file(dir, "text.txt", TEXT, 30);
}

static void teardown(void)
{
    remove_tree(dir);
}

#define TRAIN(device, ...)                                                                                             \
    RUN("--device", device, "train", "--data", "text.txt", "--hidden", "13", "--layers", "2", "--embed", "7",          \
        "--seq-len", "9", "--batch", "3", "--eval-every", "4", "--eval-batches", "2", "--sample-length", "10",         \
        __VA_ARGS__)

/* The loss `eval` prints (nats/char). */
static double eval_loss(const char *device, const char *checkpoint)
{
    cr_assert_eq(RUN("--device", (char *)device, "eval", "--checkpoint", (char *)checkpoint), 0, "%s", err);
    return atof(out);
}

Test(cli_cuda, cuda_checkpoint_samples_and_evaluates_on_cpu, .init = setup, .fini = teardown)
{
    cr_assert_eq(TRAIN("cuda", "--steps", "8", "--out", "g.ckpt"), 0, "%s", err);
    cr_assert(strstr(err, "training on cuda"), "%s", err);
    cr_assert_eq(RUN("--device", "cpu", "sample", "--checkpoint", "g.ckpt", "--length", "40", "--prime", "Now"), 0,
                 "%s", err);
    cr_assert_eq(strncmp(out, "Now", 3), 0, "%s", out);
    char on_cpu[sizeof out];
    strcpy(on_cpu, out);
    cr_assert_eq(RUN("--device", "cuda", "sample", "--checkpoint", "g.ckpt", "--length", "40", "--prime", "Now"), 0,
                 "%s", err);
    cr_assert_eq(strncmp(out, "Now", 3), 0, "%s", out);
    cr_log_info("cpu sample: %s\ncuda sample: %s", on_cpu, out);
    double cpu = eval_loss("cpu", "g.ckpt"), cuda = eval_loss("cuda", "g.ckpt");
    cr_assert(cpu > 0.5 && cpu < 5.0, "eval printed %f", cpu);
    /* eval prints 4 decimals: two roundings apart at most 1e-4; the devices themselves differ by ~1e-6 */
    cr_assert_float_eq(cpu, cuda, 2e-4, "the same checkpoint evaluates alike: cpu %f, cuda %f", cpu, cuda);
}

Test(cli_cuda, runs_resume_on_the_other_device, .init = setup, .fini = teardown)
{
    cr_assert_eq(TRAIN("cuda", "--steps", "6", "--out", "g.ckpt"), 0, "%s", err);
    cr_assert_eq(RUN("--device", "cpu", "train", "--resume", "g.ckpt", "--steps", "10"), 0, "%s", err);
    cr_assert_eq(RUN("info", "--checkpoint", "g.ckpt"), 0, "%s", err);
    cr_assert(strstr(out, "step 10 of 10"), "%s", out);
    cr_assert_eq(TRAIN("cpu", "--steps", "6", "--stateful", "--out", "c.ckpt"), 0, "%s", err);
    cr_assert_eq(RUN("--device", "cuda", "train", "--resume", "c.ckpt", "--steps", "10"), 0, "%s", err);
    cr_assert_eq(RUN("info", "--checkpoint", "c.ckpt"), 0, "%s", err);
    cr_assert(strstr(out, "step 10 of 10"), "%s", out);
}

Test(cli_cuda, both_devices_train_the_same_run, .init = setup, .fini = teardown)
{
    cr_assert_eq(TRAIN("cpu", "--steps", "5", "--out", "c.ckpt"), 0, "%s", err);
    cr_assert_eq(TRAIN("cuda", "--steps", "5", "--out", "g.ckpt"), 0, "%s", err);
    double cpu = eval_loss("cpu", "c.ckpt"), cuda = eval_loss("cpu", "g.ckpt");
    /* as above; a single step missed or a learning rate 5% off moves the loss by 5e-4 or more */
    cr_assert_float_eq(cpu, cuda, 2e-4, "5 steps from the same seed: cpu-trained %f, cuda-trained %f", cpu, cuda);
}

/* --tf32 trains, evaluates and samples on cuda; its checkpoint is an ordinary float32 one. */
Test(cli_cuda, tf32_runs_and_its_checkpoint_is_ordinary, .init = setup, .fini = teardown)
{
    cr_assert_eq(TRAIN("cuda", "--steps", "5", "--tf32", "--out", "t.ckpt"), 0, "%s", err);
    cr_assert_eq(RUN("--device", "cuda", "eval", "--checkpoint", "t.ckpt", "--tf32"), 0, "%s", err);
    const double tf32 = atof(out), cpu = eval_loss("cpu", "t.ckpt");
    cr_assert_float_eq(cpu, tf32, 1e-2, "cpu %f, cuda --tf32 %f", cpu, tf32); /* the parity suite's TF32 bound */
    cr_assert_eq(RUN("--device", "cuda", "sample", "--checkpoint", "t.ckpt", "--length", "20", "--tf32"), 0, "%s", err);
    const size_t n = strlen(out);
    cr_assert((n == 21 && out[20] == '\n') || (n == 20 && out[19] == '\n'),
              "20 characters, then a newline unless the last one was: %s", out);
}

/* The developer switches are checked like flags. */
Test(cli_cuda, bad_cuda_environment_settings_are_named, .init = setup, .fini = teardown)
{
    setenv("CHARRNN_CUDA_RECURRENCE", "fast", 1);
    int rc = TRAIN("cuda", "--steps", "1", "--out", "x.ckpt");
    unsetenv("CHARRNN_CUDA_RECURRENCE");
    cr_expect_neq(rc, 0);
    cr_expect(strstr(err, "CHARRNN_CUDA_RECURRENCE=fast: expected auto, step, persistent or wavefront"), "%s", err);
    setenv("CHARRNN_CUDA_GRAPHS", "yes", 1);
    rc = TRAIN("cuda", "--steps", "1", "--out", "x.ckpt");
    unsetenv("CHARRNN_CUDA_GRAPHS");
    cr_expect_neq(rc, 0);
    cr_expect(strstr(err, "CHARRNN_CUDA_GRAPHS=yes: expected 1 (graphs) or 0 (eager launches)"), "%s", err);
    setenv("CHARRNN_CUDA_GRAPHS", "0", 1);
    setenv("CHARRNN_CUDA_RECURRENCE", "step", 1);
    rc = TRAIN("cuda", "--steps", "2", "--out", "x.ckpt");
    unsetenv("CHARRNN_CUDA_GRAPHS");
    unsetenv("CHARRNN_CUDA_RECURRENCE");
    cr_expect_eq(rc, 0, "%s", err);
}

/* The self-test any user can run on a new machine: every variant of the device against the CPU. */
Test(cli_cuda, selftest_passes_and_prints_each_quantity, .init = setup, .fini = teardown)
{
    cr_assert_eq(RUN("--device", "cuda", "selftest", "--quick"), 0, "%s%s", out, err);
    cr_expect(strstr(out, "selftest: passed"), "%s", out);
    cr_expect(strstr(out, "W_hh.2") && strstr(out, "drawn characters"), "%s", out);
    cr_expect(strstr(out, "each variant ran the path it names"), "%s", out);
}

/* The device and the plan for the model in hand, without training; a deep model runs as one wavefront. */
Test(cli_cuda, device_shows_the_gpu_and_the_plan, .init = setup, .fini = teardown)
{
    cr_assert_eq(RUN("--device", "cuda", "device", "--hidden", "130", "--layers", "3", "--batch", "17"), 0, "%s", err);
    cr_expect(strstr(out, "compute capability 9.0") && strstr(out, "cuBLAS"), "%s", out);
    cr_expect(strstr(out, "a wavefront of the 3 layers") && strstr(out, "blocks of 128 threads") &&
                  strstr(out, "registers per thread") && strstr(out, "bytes of shared memory per block"),
              "%s", out);
    cr_assert_eq(TRAIN("cuda", "--steps", "2", "--out", "g.ckpt"), 0, "%s", err);
    cr_assert_eq(RUN("device", "--checkpoint", "g.ckpt"), 0, "%s", err);
    cr_expect(strstr(out, "hidden 13, layers 2") && strstr(out, "batches of 3 x 9") && strstr(out, "samples on cpu"),
              "%s", out);
    EXPECT_USAGE_ERROR("--checkpoint gives the model", "device", "--checkpoint", "g.ckpt", "--hidden", "5");
    /* a gated cell's block keeps G x 32 columns of W_hh */
    cr_assert_eq(RUN("--device", "cuda", "device", "--cell", "gru", "--hidden", "64", "--batch", "8"), 0, "%s", err);
    cr_expect(strstr(out, "gru cell") && strstr(out, "32 hidden units (96 gate columns)"), "%s", out);
}

/* sample --device auto takes the device this model generates faster on: for a small model the CPU, said
 * on stderr; --device cuda still samples on the GPU, drawing on the device. */
Test(cli_cuda, sample_auto_takes_the_faster_device_for_the_model, .init = setup, .fini = teardown)
{
    cr_assert_eq(TRAIN("cuda", "--steps", "2", "--out", "g.ckpt"), 0, "%s", err);
    cr_assert_eq(RUN("sample", "--checkpoint", "g.ckpt", "--length", "30", "--seed", "5"), 0, "%s", err);
    cr_expect(strstr(err, "device auto: using cpu for this model's sampling"), "%s", err);
    char on_cpu[sizeof out];
    strcpy(on_cpu, out);
    cr_assert_eq(RUN("--device", "cuda", "sample", "--checkpoint", "g.ckpt", "--length", "30", "--seed", "5"), 0, "%s",
                 err);
    cr_expect_str_eq(out, on_cpu, "the same seed draws the same characters on either device");
}

/* A slower path is said once on stderr, with the reason. */
Test(cli_cuda, slower_paths_are_said_on_stderr, .init = setup, .fini = teardown)
{
    setenv("CHARRNN_CUDA_GRAPHS", "0", 1);
    const int rc = TRAIN("cuda", "--steps", "3", "--out", "x.ckpt");
    unsetenv("CHARRNN_CUDA_GRAPHS");
    cr_assert_eq(rc, 0, "%s", err);
    const char *note = "charrnn: cuda: every call launches eagerly, as asked (CHARRNN_CUDA_GRAPHS=0)";
    const char *said = strstr(err, note);
    cr_expect(said && !strstr(said + strlen(note), "launches eagerly"), "once: %s", err);
}

/* Device memory is checked before anything is allocated: a run larger than the device (160 GiB of
 * activations) is refused naming a batch that fits, and so is one beyond a stated limit. */
Test(cli_cuda, a_run_too_large_for_the_device_is_refused_naming_one_that_fits, .init = setup, .fini = teardown)
{
    int rc = RUN("--device", "cuda", "train", "--data", "text.txt", "--hidden", "1024", "--layers", "16", "--seq-len",
                 "2000", "--batch", "1024", "--out", "x.ckpt");
    cr_expect_eq(rc, 2, "%s", err);
    cr_expect(strstr(err, "needs an estimated") && strstr(err, "of cuda device memory") && strstr(err, "is free there") &&
                  strstr(err, "--batch ") && strstr(err, "would fit"),
              "%s", err);
    cr_expect_eq(count_lines(err), 1, "%s", err);
    setenv("CHARRNN_DEVICE_MEMORY_LIMIT", "200M", 1);
    rc = TRAIN("cuda", "--steps", "1", "--out", "y.ckpt");
    cr_expect_eq(rc, 2, "the cuBLAS workspace and the runtime's allowance alone exceed 200 MiB: %s", err);
    cr_expect(strstr(err, "200.0 MiB is free there"), "%s", err);
    rc = TRAIN("cpu", "--steps", "1", "--out", "y.ckpt");
    cr_expect_eq(rc, 0, "the limit is the device's, not the host's: %s", err);
    unsetenv("CHARRNN_DEVICE_MEMORY_LIMIT");
}

/* A checkpoint of this suite's run with every output bias set to `bias`, or the output weights to
 * +-`weight` (0: left as they are). */
static void make_extreme_checkpoint(const char *name, float bias, float weight)
{
    cr_assert_eq(TRAIN("cpu", "--steps", "2", "--out", (char *)name), 0, "%s", err);
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    Checkpoint ck;
    Err e;
    cr_assert_eq(checkpoint_load(path, &ck, &e), 0, "%s", e.msg);
    ParamTensor t[MODEL_MAX_TENSORS];
    int n = model_tensors(&ck.cfg.model, t);
    for (size_t i = 0; bias != 0.0f && i < t[n - 1].cols; i++)
        ck.params[t[n - 1].offset + i] = bias;
    for (size_t i = 0; weight != 0.0f && i < t[n - 2].rows * t[n - 2].cols; i++)
        ck.params[t[n - 2].offset + i] = i % 2 ? -weight : weight;
    cr_assert_eq(checkpoint_save(path, &ck, &e), 0, "%s", e.msg);
    checkpoint_free(&ck);
}

Test(cli_cuda, the_loss_is_right_for_any_finite_logits_on_both_devices, .init = setup, .fini = teardown)
{
    make_extreme_checkpoint("big.ckpt", 3e38f, 0.0f);
    char expected[32];
    int seen[256] = {0}, V = 0;
    for (const char *c = TEXT; *c; c++)
        V += !seen[(unsigned char)*c]++;
    snprintf(expected, sizeof expected, "%.4f nats/char", log((double)V)); /* every logit equal: ln V */
    const char *devices[] = {"cpu", "cuda"};
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(RUN("--device", (char *)devices[i], "eval", "--checkpoint", "big.ckpt"), 0, "%s", err);
        cr_expect(strncmp(out, expected, strlen(expected)) == 0, "%s: expected %s, got %s", devices[i], expected, out);
    }
    make_extreme_checkpoint("inf.ckpt", 0.0f, 3e38f);
    for (int i = 0; i < 2; i++) {
        int rc = RUN("--device", (char *)devices[i], "eval", "--checkpoint", "inf.ckpt");
        cr_expect_eq(rc, 1, "%s: %s", devices[i], err);
        cr_expect(strstr(err, "the evaluation loss is") && strstr(err, "not finite"), "%s: %s", devices[i], err);
    }
}
