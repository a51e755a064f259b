/* charrnn sample: stream text from a checkpoint. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint.h"
#include "cli.h"
#include "options.h"
#include "sampler.h"

static void emit_stdout(uint32_t cp, void *arg)
{
    (void)arg;
    print_codepoint(stdout, cp);
    fflush(stdout); /* stream: each character appears as soon as it is sampled */
}

int cmd_sample(int argc, char **argv, DeviceChoice device)
{
    const char *path = DEFAULT_CHECKPOINT, *prime = NULL;
    long length = 500;
    float temperature = 1.0f;
    int top_k = 0, argmax = 0, dev = (int)device;
    uint64_t seed = 1337;
    Option opts[] = {
        {"--checkpoint", ARG_STRING, &path, 0, 0, NULL, "FILE", "checkpoint to sample from"},
        {"--length", ARG_LONG, &length, 0, 1e12, NULL, "N", "characters to generate after the prime"},
        {"--temperature", ARG_FLOAT, &temperature, 1e-3, 100, NULL, "T",
         "below 1: safer, more repetitive text; above 1: more surprising"},
        {"--top-k", ARG_INT, &top_k, 0, 65536, NULL, "K", "sample only among the K most likely characters; 0: all"},
        {"--argmax", ARG_FLAG, &argmax, 0, 0, NULL, NULL, "always take the most likely character (deterministic)"},
        {"--prime", ARG_STRING, &prime, 0, 0, NULL, "TEXT", "text to start from (printed, then continued)"},
        {"--seed", ARG_U64, &seed, 0, 0, NULL, "N", "sampling seed: the same seed gives the same text"},
        {"--device", ARG_CHOICE, &dev, 0, 0, DEVICE_NAMES, "DEVICE", "auto, cpu or cuda"},
    };
    const int n_opts = (int)(sizeof opts / sizeof opts[0]);
    int status;
    if (!cli_parse(opts, n_opts, argc, argv, "sample", "charrnn [--device DEVICE] sample [options]",
                   "Generates text from a checkpoint, streaming it to standard output.", &status))
        return status;
    Err e;
    const BackendOps *ops;
    const char *device_note;
    Checkpoint ck;
    if (cli_open(dev, path, &ops, &device_note, &ck) != 0)
        return EXIT_USAGE;

    status = EXIT_USAGE;
    size_t n_prime = 0;
    token_t *prime_tokens = NULL;
    Backend be;
    memset(&be, 0, sizeof be);
    if (prime) {
        size_t len = strlen(prime);
        prime_tokens = malloc(sizeof(token_t) * (len ? len : 1));
        if (!prime_tokens ||
            vocab_encode(&ck.vocab, (const uint8_t *)prime, len, prime_tokens, &n_prime, "sample: --prime", &e) != 0) {
            if (!prime_tokens)
                err_set(&e, "out of memory");
            goto done;
        }
    }
    status = EXIT_ERROR;
    device_announce(device_note);
    if (backend_create(&be, ops, &ck.cfg.model, 1, 1, &e) != 0 || ops->set_params(be.ctx, ck.params, &e) != 0)
        goto done;
    if (prime) {
        fputs(prime, stdout);
        fflush(stdout);
    }
    SamplerConfig sc = {.temperature = temperature, .top_k = top_k, .argmax = argmax};
    Rng rng;
    rng_seed(&rng, seed);
    if (generate(&be, &ck.vocab, &sc, &rng, prime_tokens, n_prime, length, emit_stdout, NULL, &e) != 0)
        goto done;
    if (isatty(STDOUT_FILENO))
        putchar('\n');
    status = fflush(stdout) == 0 ? EXIT_OK : EXIT_ERROR;
    if (status != EXIT_OK)
        err_set(&e, "sample: writing to standard output failed");
done:
    if (status != EXIT_OK)
        cli_fail(status, e.msg);
    backend_destroy(&be);
    free(prime_tokens);
    checkpoint_free(&ck);
    return status;
}
