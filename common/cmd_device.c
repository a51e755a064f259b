/* charrnn device: the devices this build has, and how a model would run on each, without training. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "options.h"
#include "sampler.h"

/* The CUDA backend's report (device, software, the recurrence's plan, products, graphs, sampling) for
 * the model, or why the device is not usable. */
static int describe(const BackendOps *ops, const ModelConfig *m, int T, int B, int tf32)
{
    Backend be;
    Err e;
    const BackendOptions o = {.tf32 = tf32};
    static char text[1 << 14];
    if (backend_create(&be, ops, m, T, B, &o, &e) != 0)
        return cli_fail(EXIT_ERROR, e.msg);
    const int rc = ops->describe(be.ctx, text, sizeof text, &e);
    backend_destroy(&be);
    if (rc != 0)
        return cli_fail(EXIT_ERROR, e.msg);
    fputs(text, stdout);
    return EXIT_OK;
}

/* Whether an option given on the command line sets the model or the batch shape (all but --checkpoint and
 * the device options). */
static int shapes_the_model(const Option *o)
{
    const char *name = o->name;
    return o->given && strcmp(name, "--checkpoint") && strcmp(name, "--device") && strcmp(name, "--threads") &&
           strcmp(name, "--tf32");
}

int cmd_device(int argc, char **argv, const GlobalOptions *g)
{
    const char *path = NULL;
    int dev = (int)g->device, threads = cli_default_threads(), tf32 = 0;
    ModelConfig m = {.vocab = DEFAULT_VOCAB, .embed = DEFAULT_EMBED, .hidden = DEFAULT_HIDDEN, .layers = DEFAULT_LAYERS};
    int T = DEFAULT_SEQ_LEN, B = DEFAULT_BATCH, cell = (int)CELL_RNN;
    Option opts[] = {
        {"--checkpoint", ARG_STRING, &path, 0, 0, NULL, "FILE", "the model and batch shape of a checkpoint"},
        {"--vocab", ARG_INT, &m.vocab, 2, 65536, NULL, "V", "vocabulary size (default: tiny shakespeare's 65)"},
        {"--embed", ARG_INT, &m.embed, 1, MODEL_MAX_WIDTH, NULL, "E", "character embedding width"},
        {"--hidden", ARG_INT, &m.hidden, 1, MODEL_MAX_WIDTH, NULL, "H", "hidden units per layer"},
        {"--layers", ARG_INT, &m.layers, 1, MODEL_MAX_LAYERS, NULL, "L", "stacked recurrent layers"},
        {"--cell", ARG_CHOICE, &cell, 0, 0, CELL_NAMES, "CELL", "rnn (tanh), gru or lstm"},
        {"--seq-len", ARG_INT, &T, 1, MAX_SEQ_LEN, NULL, "T", "timesteps per sequence"},
        {"--batch", ARG_INT, &B, 1, MAX_BATCH, NULL, "B", "sequences per batch"},
        DEVICE_OPTIONS(&dev, &threads, &tf32),
    };
    const int n_opts = (int)(sizeof opts / sizeof opts[0]);
    int status;
    if (!cli_parse(opts, n_opts, argc, argv, "device", "charrnn [--device DEVICE] device [options]",
                   "Shows the devices this build has and how a model (train's defaults, the options below, or "
                   "--checkpoint's) would run on each: the GPU, its memory and software, the recurrence's plan, and "
                   "where `sample --device auto` would generate. Trains nothing.",
                   g, &status))
        return status;
    if (tf32 && dev == DEVICE_CPU)
        return cli_fail(EXIT_USAGE, TF32_ON_CPU);
    int shaped = 0; /* an option gave the model or the batch shape */
    for (int i = 0; i < n_opts; i++)
        shaped |= shapes_the_model(&opts[i]);
    if (path && shaped)
        return cli_fail(EXIT_USAGE, "device: --checkpoint gives the model and batch shape; leave out the options "
                                    "that would change them");
    Err e;
    if (path) {
        Checkpoint ck;
        if (cli_load_checkpoint(path, &ck, &e) != 0)
            return cli_fail(EXIT_USAGE, e.msg);
        m = ck.cfg.model, T = ck.cfg.seq_len, B = ck.cfg.batch;
        checkpoint_free(&ck);
    } else {
        m.cell = (CellKind)cell;
        if (model_config_check(&m, &e) != 0)
            return cli_fail(EXIT_USAGE, e.msg);
    }
    char n1[32];
    printf("model       %s cell, vocab %d, embed %d, hidden %d, layers %d (%s parameters); batches of %d x %d%s\n",
           cell_name(m.cell), m.vocab, m.embed, m.hidden, m.layers, fmt_count(model_num_params(&m), n1, sizeof n1), B, T,
           path || shaped ? "" : " (train's defaults)");
    const BackendOps *ops, *cuda = NULL;
    const char *note;
    if (dev != DEVICE_CUDA) {
        printf("cpu         %s: %d thread%s; sampling modelled at %.1f us per character\n",
               device_hardware(device_cpu()), threads, threads == 1 ? "" : "s", sample_seconds_cpu(&m) * 1e6);
    }
    if (dev != DEVICE_CPU) {
        if (device_select(DEVICE_CUDA, &ops, &note, &e) != 0) {
            if (dev == DEVICE_CUDA)
                return cli_fail(EXIT_USAGE, e.msg);
            printf("cuda        not usable: %s\n", e.msg);
        } else {
            cuda = ops;
            if ((status = describe(cuda, &m, T, B, tf32)) != EXIT_OK)
                return status;
            printf("            sampling modelled at %.1f us per character\n", sample_seconds_gpu(&m) * 1e6);
        }
    }
    if (dev == DEVICE_AUTO) {
        ops = cuda ? cuda : device_cpu();
        note = NULL;
        device_prefer_for_sampling(DEVICE_AUTO, &m, &ops, &note);
        printf("auto        trains and evaluates on %s; samples on %s\n", cuda ? "cuda" : "cpu", ops->name);
    }
    return EXIT_OK;
}
