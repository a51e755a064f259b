/* charrnn sample: stream text from a checkpoint, once or for every prompt read from stdin. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint.h"
#include "cli.h"
#include "memory.h"
#include "options.h"
#include "sampler.h"

/* A prompt line longer than this is refused (with a line on stderr) and skipped: prompts are read into a
 * buffer of this size, so a stream without newlines (< /dev/zero) never grows memory. */
#define MAX_PROMPT_BYTES 65536

/* Standard output as generation writes it: on a terminal each character appears as soon as it is sampled;
 * into a pipe or file, each line does (a system call per character would cost as much as computing it).
 * A write that fails stops generation at once. */
typedef struct {
    int per_character;
    uint32_t last; /* the last character written, so that the output can end with a newline */
    int wrote;
} Output;

static int output_failed(Err *e)
{
    return err_set(e, "sample: writing to standard output failed: %s; stopped generating",
                   errno ? strerror(errno) : "an I/O error");
}

static int emit_stdout(uint32_t cp, void *arg, Err *e)
{
    Output *o = arg;
    errno = 0;
    print_codepoint(stdout, cp);
    if ((o->per_character || cp == '\n') && fflush(stdout) != 0)
        return output_failed(e);
    if (ferror(stdout)) /* a full buffer was written, and that failed */
        return output_failed(e);
    o->last = cp;
    o->wrote = 1;
    return 0;
}

/* Prints the prime (its text, and its n tokens) and `length` sampled characters that continue it, from
 * a fresh hidden state. */
static int continue_text(Backend *be, const Vocab *vocab, const SamplerConfig *sc, Rng *rng, const char *prime,
                         size_t prime_len, const token_t *tokens, size_t n, long length, Output *o, Err *e)
{
    errno = 0;
    if (prime_len && (fwrite(prime, 1, prime_len, stdout) != prime_len || fflush(stdout) != 0))
        return output_failed(e);
    if (prime_len) {
        o->last = (unsigned char)prime[prime_len - 1];
        o->wrote = 1;
    }
    return generate(be, vocab, sc, rng, tokens, n, length, emit_stdout, o, e);
}

/* Reads one line of at most MAX_PROMPT_BYTES into line (NUL-terminated; *len excludes the newline).
 * Returns 0, 1 as soon as the line is longer (the caller reports it, then skip_line drops the rest), or
 * -1 at the end of the input. */
static int read_prompt(char *line, size_t *len)
{
    int c, any = 0;
    *len = 0;
    while ((c = getchar()) != EOF) {
        any = 1;
        if (c == '\n')
            break;
        if (*len == MAX_PROMPT_BYTES)
            return 1;
        line[(*len)++] = (char)c;
    }
    line[*len] = 0;
    if (!any)
        return -1;
    if (*len > 0 && line[*len - 1] == '\r') /* a line ended the Windows way */
        line[--*len] = 0;
    return 0;
}

static void skip_line(void)
{
    int c;
    while ((c = getchar()) != EOF && c != '\n')
        ;
}

/* --interactive: one continuation per line of stdin, each from a fresh state; a bad prompt is reported
 * and the next one read. */
static int interact(Backend *be, const Vocab *vocab, const SamplerConfig *sc, Rng *rng, long length, Output *o,
                    Err *e)
{
    const int tty = isatty(STDIN_FILENO);
    char *line = malloc(MAX_PROMPT_BYTES + 1);
    token_t *tokens = malloc(sizeof(token_t) * (MAX_PROMPT_BYTES + 1));
    int rc = line && tokens ? 0 : err_set(e, "out of memory");
    for (long number = 1; rc == 0; number++) {
        if (tty)
            fputs("> ", stderr);
        size_t got, n = 0;
        int read = read_prompt(line, &got);
        if (read < 0)
            break;
        if (read > 0) { /* said at once: input without an end (< /dev/zero) is read, but never held */
            fprintf(stderr, "charrnn: sample: prompt %ld: longer than %d bytes; skipped\n", number, MAX_PROMPT_BYTES);
            skip_line();
            continue;
        }
        if (vocab_encode(vocab, (const uint8_t *)line, got, tokens, &n, "sample: prompt", e) != 0) {
            fprintf(stderr, "charrnn: %s\n", e->msg); /* a bad prompt: said, and the next one read */
            continue;
        }
        rc = continue_text(be, vocab, sc, rng, line, got, tokens, n, length, o, e);
        if (rc == 0 && emit_stdout('\n', o, e) != 0)
            rc = -1;
    }
    free(line);
    free(tokens);
    if (tty && rc == 0)
        fputc('\n', stderr);
    return rc;
}

int cmd_sample(int argc, char **argv, const GlobalOptions *g)
{
    const char *path = DEFAULT_CHECKPOINT, *prime = "";
    long length = 500;
    float temperature = 1.0f;
    int top_k = 0, argmax = 0, interactive = 0, dev = (int)g->device, threads = cli_default_threads(), tf32 = 0;
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
                   "Generates text from a checkpoint, streaming it to standard output; the output ends with a "
                   "newline.",
                   g, &status))
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
    device_prefer_for_sampling((DeviceChoice)dev, &ck.cfg.model, &ops, &device_note);
    if (tf32 && ops == device_cpu())
        tf32 = 0; /* auto chose the CPU for this model: TF32 is a GPU format */
    MemoryNeed need = sample_memory(ops, &ck.cfg.model);
    if (cli_check_memory(ops, &need, "sample", "the model", ops->device_memory ? "try --device cpu" : "", &e) != 0)
        goto done;
    status = EXIT_ERROR;
    device_announce(device_note);
    BackendOptions backend_opts = {
        .threads = threads, .tf32 = tf32, .note = device_print_note, .note_arg = (void *)ops->name};
    if (backend_create(&be, ops, &ck.cfg.model, 1, 1, &backend_opts, &e) != 0 ||
        ops->set_params(be.ctx, ck.params, &e) != 0)
        goto done;
    SamplerConfig sc = {.temperature = temperature, .top_k = top_k, .argmax = argmax};
    Rng rng;
    rng_seed(&rng, seed);
    Output o = {.per_character = isatty(STDOUT_FILENO)};
    if (interactive) {
        if (interact(&be, &ck.vocab, &sc, &rng, length, &o, &e) != 0)
            goto done;
    } else {
        if (continue_text(&be, &ck.vocab, &sc, &rng, prime, strlen(prime), tokens, n_prime, length, &o, &e) != 0)
            goto done;
        if (o.wrote && o.last != '\n' && emit_stdout('\n', &o, &e) != 0) /* the shell's prompt on a line of its own */
            goto done;
    }
    errno = 0;
    if (fflush(stdout) != 0 || ferror(stdout)) {
        output_failed(&e);
        goto done;
    }
    status = EXIT_OK;
done:
    if (status != EXIT_OK)
        cli_fail(status, e.msg);
    backend_destroy(&be);
    free(tokens);
    checkpoint_free(&ck);
    return status;
}
