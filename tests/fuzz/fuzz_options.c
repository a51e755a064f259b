/* libFuzzer target: the command-line option parser.
 *
 * The input is a command line, one argument per line (a newline or a NUL byte ends an argument). It is
 * parsed with options_parse against a table that has every ArgType, with ranges like the real
 * commands' (and option names that are prefixes of others: --lr / --lr-schedule). Whatever the
 * outcome, every option must hold either its default, untouched, or a valid value: an int or long
 * inside its range, a finite float inside its range, a non-empty string pointing into the arguments,
 * a choice index inside the list, a flag set to 1. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "options.h"

#define CHECK(cond)                                                                                                    \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            fprintf(stderr, "fuzz_options: invariant violated: %s (line %d)\n", #cond, __LINE__);                      \
            abort();                                                                                                   \
        }                                                                                                              \
    } while (0)

#define MAX_ARGS 64

static const char *const MODES[] = {"seq", "window", NULL};
static const char *const SCHEDULES[] = {"constant", "cosine", NULL};
static const char *const DEVICES[] = {"auto", "cpu", "cuda", NULL};

/* The option targets, with their defaults. */
typedef struct {
    int hidden, layers, warmup, top_k;
    long steps, limit;
    uint64_t seed;
    float lr, val_fraction, eps, clip, temperature;
    const char *data, *prime;
    int stateful, argmax;
    int mode, schedule, device;
} Values;

static const Values DEFAULTS = {
    .hidden = 256,
    .layers = 2,
    .warmup = 0,
    .top_k = 0,
    .steps = 2000,
    .limit = 0,
    .seed = 1337,
    .lr = 0.002f,
    .val_fraction = 0.1f,
    .eps = 1e-8f,
    .clip = 5.0f,
    .temperature = 1.0f,
    .data = "data/input.txt",
    .prime = NULL,
    .stateful = 0,
    .argmax = 0,
    .mode = 0,
    .schedule = 1,
    .device = 0,
};

static int n_choices(const char *const *choices)
{
    int n = 0;
    while (choices[n])
        n++;
    return n;
}

/* Whether p points inside one of the arguments. */
static int in_args(const char *p, char **argv, int argc)
{
    for (int i = 0; i < argc; i++)
        if (p >= argv[i] && p <= argv[i] + strlen(argv[i]))
            return 1;
    return 0;
}

/* Whether some argument is `name` or starts with `name=`. */
static int named_in_args(const char *name, char **argv, int argc)
{
    size_t len = strlen(name);
    for (int i = 0; i < argc; i++)
        if (strncmp(argv[i], name, len) == 0 && (argv[i][len] == 0 || argv[i][len] == '='))
            return 1;
    return 0;
}

static size_t target_size(ArgType type)
{
    switch (type) {
    case ARG_LONG:
        return sizeof(long);
    case ARG_U64:
        return sizeof(uint64_t);
    case ARG_FLOAT:
        return sizeof(float);
    case ARG_STRING:
        return sizeof(const char *);
    default:
        return sizeof(int);
    }
}

static void check_option(const Option *o, const void *default_value, char **argv, int argc)
{
    int unchanged = memcmp(o->target, default_value, target_size(o->type)) == 0;
    if (!o->given) {
        CHECK(unchanged);
        return;
    }
    CHECK(named_in_args(o->name, argv, argc));
    if (unchanged)
        return; /* the value was refused, or is the default again */
    switch (o->type) {
    case ARG_INT: {
        int x = *(const int *)o->target;
        CHECK(x >= o->min && x <= o->max);
        break;
    }
    case ARG_LONG: {
        long x = *(const long *)o->target;
        CHECK(x >= o->min && x <= o->max);
        break;
    }
    case ARG_U64:
        break;
    case ARG_FLOAT: {
        /* The range is checked on the double read; rounding to float may land on the float nearest a
         * bound (1e-9 becomes 9.99999972e-10), never beyond it. */
        float x = *(const float *)o->target;
        CHECK(isfinite(x) && x >= (float)o->min && x <= (float)o->max);
        break;
    }
    case ARG_STRING: {
        const char *s = *(const char *const *)o->target;
        CHECK(s && *s && in_args(s, argv, argc));
        break;
    }
    case ARG_FLAG:
        CHECK(*(const int *)o->target == 1);
        break;
    case ARG_CHOICE: {
        int x = *(const int *)o->target;
        CHECK(x >= 0 && x < n_choices(o->choices));
        break;
    }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* One argument per line; a NUL byte also ends one. */
    char *text = malloc(size + 1);
    if (size)
        memcpy(text, data, size);
    text[size] = 0;
    char *argv[MAX_ARGS];
    int argc = 0;
    for (size_t start = 0; start < size && argc < MAX_ARGS;) {
        size_t end = start;
        while (end < size && text[end] != '\n' && text[end] != 0)
            end++;
        text[end] = 0;
        argv[argc++] = text + start;
        start = end + 1;
    }

    Values v = DEFAULTS;
    Option opts[] = {
        {"--hidden", ARG_INT, &v.hidden, 1, 8192, NULL, "H", "hidden units per layer"},
        {"--layers", ARG_INT, &v.layers, 1, 16, NULL, "L", "stacked recurrent layers"},
        {"--warmup", ARG_INT, &v.warmup, 0, 1e9, NULL, "N", "warmup steps"},
        {"--top-k", ARG_INT, &v.top_k, 0, 65536, NULL, "K", "sample among the K most likely"},
        {"--steps", ARG_LONG, &v.steps, 1, 1e12, NULL, "N", "total optimizer steps"},
        {"--limit", ARG_LONG, &v.limit, 0, 1e18, NULL, "BYTES", "read at most BYTES; no practical upper bound"},
        {"--seed", ARG_U64, &v.seed, 0, 0, NULL, "N", "seed"},
        {"--lr", ARG_FLOAT, &v.lr, 1e-9, 10, NULL, "RATE", "peak learning rate"},
        {"--val-fraction", ARG_FLOAT, &v.val_fraction, 0, 0.5, NULL, "F", "held-out fraction"},
        {"--eps", ARG_FLOAT, &v.eps, 1e-30, 1, NULL, "EPS", "Adam epsilon"},
        {"--clip", ARG_FLOAT, &v.clip, 0, 1e9, NULL, "NORM", "gradient-norm clip; 0 disables"},
        {"--temperature", ARG_FLOAT, &v.temperature, 1e-3, 100, NULL, "T", "sampling temperature"},
        {"--data", ARG_STRING, &v.data, 0, 0, NULL, "FILE", "text to train on"},
        {"--prime", ARG_STRING, &v.prime, 0, 0, NULL, "TEXT", "text to start from"},
        {"--stateful", ARG_FLAG, &v.stateful, 0, 0, NULL, NULL, "carry the hidden state"},
        {"--argmax", ARG_FLAG, &v.argmax, 0, 0, NULL, NULL, "always the most likely character"},
        {"--mode", ARG_CHOICE, &v.mode, 0, 0, MODES, "MODE", "seq or window"},
        {"--lr-schedule", ARG_CHOICE, &v.schedule, 0, 0, SCHEDULES, "NAME", "constant or cosine"},
        {"--device", ARG_CHOICE, &v.device, 0, 0, DEVICES, "DEVICE", "auto, cpu or cuda"},
    };
    const int n_opts = (int)(sizeof opts / sizeof opts[0]);
    /* Each option's default, at the same offset in DEFAULTS as its target in v. */
    const void *defaults[sizeof opts / sizeof opts[0]];
    for (int i = 0; i < n_opts; i++)
        defaults[i] = (const char *)&DEFAULTS + ((const char *)opts[i].target - (const char *)&v);

    int help = -1;
    Err e;
    memset(&e, 0, sizeof e);
    int rc = options_parse(opts, n_opts, argc, argv, "fuzz", &help, &e);
    CHECK(rc == 0 || rc == -1);
    CHECK(help == 0 || help == 1);
    if (rc != 0) {
        CHECK(help == 0);
        CHECK(memchr(e.msg, 0, sizeof e.msg) != NULL && strncmp(e.msg, "fuzz: ", 6) == 0);
    }
    if (help) {
        int found = 0;
        for (int i = 0; i < argc; i++)
            found |= strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0;
        CHECK(found);
    }
    int given = 0;
    for (int i = 0; i < n_opts; i++) {
        check_option(&opts[i], defaults[i], argv, argc);
        given += opts[i].given;
        CHECK(option_find(opts, n_opts, opts[i].name) == &opts[i]);
    }
    CHECK(given <= argc);

    /* --help prints every option's current value as its default. */
    static FILE *devnull;
    if (!devnull)
        devnull = fopen("/dev/null", "w");
    if (devnull)
        options_print_help(devnull, "fuzz [options]", "A fuzzing table.", opts, n_opts);
    free(text);
    return 0;
}
