/* charrnn sample: stream text from a checkpoint, once or for every prompt read from stdin. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint.h"
#include "cli.h"
#include "options.h"
#include "sampler.h"

/* Streams: on a terminal each character appears as soon as it is sampled; into a pipe or file, each
 * line does (a system call per character would cost as much as computing it). */
static void emit_stdout(uint32_t cp, void *arg)
{
    const int *per_character = arg;
    print_codepoint(stdout, cp);
    if (*per_character || cp == '\n')
        fflush(stdout);
}

/* Prints the prime (its text, and its n tokens) and `length` sampled characters that continue it, from
 * a fresh hidden state. */
static int continue_text(Backend *be, const Vocab *vocab, const SamplerConfig *sc, Rng *rng, const char *prime,
                         const token_t *tokens, size_t n, long length, Err *e)
{
    int per_character = isatty(STDOUT_FILENO);
    fputs(prime, stdout);
    fflush(stdout);
    return generate(be, vocab, sc, rng, tokens, n, length, emit_stdout, &per_character, e);
}

/* --interactive: one continuation per line of stdin, each from a fresh state; a bad prompt is reported
 * and the next one read. */
static int interact(Backend *be, const Vocab *vocab, const SamplerConfig *sc, Rng *rng, long length, Err *e)
{
    const int tty = isatty(STDIN_FILENO);
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    int rc = 0;
    for (;;) {
        if (tty)
            fputs("> ", stderr);
        if ((got = getline(&line, &cap, stdin)) < 0)
            break;
        if (got > 0 && line[got - 1] == '\n')
            line[--got] = 0;
        if (got > 0 && line[got - 1] == '\r') /* a line ended the Windows way */
            line[--got] = 0;
        token_t *tokens = malloc(sizeof(token_t) * ((size_t)got + 1));
        if (!tokens) {
            rc = err_set(e, "out of memory");
            break;
        }
        size_t n = 0;
        if (vocab_encode(vocab, (const uint8_t *)line, strlen(line), tokens, &n, "sample: prompt", e) != 0) {
            fprintf(stderr, "charrnn: %s\n", e->msg); /* a bad prompt: said, and the next one read */
            free(tokens);
            continue;
        }
        rc = continue_text(be, vocab, sc, rng, line, tokens, n, length, e);
        free(tokens);
        if (rc != 0)
            break;
        putchar('\n');
        fflush(stdout);
    }
    free(line);
    if (tty && rc == 0)
        fputc('\n', stderr);
    return rc;
}

int cmd_sample(int argc, char **argv, DeviceChoice device)
{
    const char *path = DEFAULT_CHECKPOINT, *prime = "";
    long length = 500;
    float temperature = 1.0f;
    int top_k = 0, argmax = 0, interactive = 0, dev = (int)device, threads = cli_default_threads(), tf32 = 0;
    uint64_t seed = 1337;
    Option opts[] = {
        {"--checkpoint", ARG_STRING, &path, 0, 0, NULL, "FILE", "checkpoint to sample from"},
        {"--length", ARG_LONG, &length, 0, 1e12, NULL, "N", "characters to generate after the prime"},
        {"--temperature", ARG_FLOAT, &temperature, 1e-3, 100, NULL, "T",
         "below 1: safer, more repetitive text; above 1: more surprising"},
        {"--top-k", ARG_INT, &top_k, 0, 65536, NULL, "K", "sample only among the K most likely characters; 0: all"},
        {"--argmax", ARG_FLAG, &argmax, 0, 0, NULL, NULL, "always take the most likely character (deterministic)"},
        {"--prime", ARG_STRING, &prime, 0, 0, NULL, "TEXT", "text to start from (printed, then continued)"},
        {"--interactive", ARG_FLAG, &interactive, 0, 0, NULL, NULL,
         "read prompts from stdin, one per line, and continue each (each continuation ends with a newline)"},
        {"--seed", ARG_U64, &seed, 0, 0, NULL, "N", "sampling seed: the same seed gives the same text"},
        DEVICE_OPTIONS(&dev, &threads, &tf32),
    };
    const int n_opts = (int)(sizeof opts / sizeof opts[0]);
    int status;
    if (!cli_parse(opts, n_opts, argc, argv, "sample", "charrnn [--device DEVICE] sample [options]",
                   "Generates text from a checkpoint, streaming it to standard output.", &status))
        return status;
    if (interactive && option_find(opts, n_opts, "--prime")->given)
        return cli_fail(EXIT_USAGE, "sample: --prime and --interactive do not go together (the prompts are primes)");
    if (tf32 && dev == DEVICE_CPU)
        return cli_fail(EXIT_USAGE, TF32_ON_CPU);
    Err e;
    const BackendOps *ops;
    const char *device_note;
    Checkpoint ck;
    if (cli_open(dev, path, &ops, &device_note, &ck) != 0)
        return EXIT_USAGE;

    Backend be;
    memset(&be, 0, sizeof be);
    token_t *tokens = malloc(sizeof(token_t) * (strlen(prime) + 1));
    size_t n_prime;
    status = EXIT_USAGE;
    if (!tokens) {
        err_set(&e, "out of memory");
        goto done;
    }
    /* A bad --prime is bad input: refuse it before loading the model on the device. */
    if (vocab_encode(&ck.vocab, (const uint8_t *)prime, strlen(prime), tokens, &n_prime, "sample: --prime", &e) != 0)
        goto done;
    status = EXIT_ERROR;
    device_prefer_for_sampling((DeviceChoice)dev, &ck.cfg.model, &ops, &device_note);
    if (tf32 && ops == device_cpu())
        tf32 = 0; /* auto chose the CPU for this model: TF32 is a GPU format */
    device_announce(device_note);
    BackendOptions backend_opts = {.threads = threads, .tf32 = tf32, .note = device_print_note, .note_arg = (void *)ops->name};
    if (backend_create(&be, ops, &ck.cfg.model, 1, 1, &backend_opts, &e) != 0 ||
        ops->set_params(be.ctx, ck.params, &e) != 0)
        goto done;
    SamplerConfig sc = {.temperature = temperature, .top_k = top_k, .argmax = argmax};
    Rng rng;
    rng_seed(&rng, seed);
    if (interactive) {
        if (interact(&be, &ck.vocab, &sc, &rng, length, &e) != 0)
            goto done;
    } else {
        if (continue_text(&be, &ck.vocab, &sc, &rng, prime, tokens, n_prime, length, &e) != 0)
            goto done;
        if (isatty(STDOUT_FILENO))
            putchar('\n');
    }
    status = fflush(stdout) == 0 ? EXIT_OK : EXIT_ERROR;
    if (status != EXIT_OK)
        err_set(&e, "sample: writing to standard output failed");
done:
    if (status != EXIT_OK)
        cli_fail(status, e.msg);
    backend_destroy(&be);
    free(tokens);
    checkpoint_free(&ck);
    return status;
}
