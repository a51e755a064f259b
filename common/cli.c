#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include "cli.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "vocab.h"

/* The ranks of the command running (NULL: a single process), and the first failure before they agreed. */
static const Dist *ranks;
static int agreed;
static char held[sizeof(Err)];

static int several_ranks(void)
{
    return ranks && ranks->size > 1;
}

int cli_quiet(void)
{
    return several_ranks() && ranks->rank != 0;
}

void cli_ranks(const Dist *d)
{
    ranks = d;
    agreed = 0;
    held[0] = 0;
}

int cli_agree(int status)
{
    if (!several_ranks())
        return status;
    Err e;
    int job = dist_agree(ranks, status, held, &e);
    agreed = 1;
    if (job != 0 && ranks->rank == 0)
        fprintf(stderr, "charrnn: %s\n", e.msg);
    return job;
}

int cli_fail_alone(int status, const char *msg)
{
    if (several_ranks())
        dist_abort(ranks, status, msg);
    return cli_fail(status, msg);
}

int cli_on_ranks(int (*command)(int argc, char **argv, const GlobalOptions *g, const Dist *dist), int argc,
                 char **argv, const GlobalOptions *g)
{
    Dist dist;
    Err e;
    if (dist_init(&dist, &e) != 0)
        return dist_launched_rank() == 0 ? cli_fail(EXIT_USAGE, e.msg) : EXIT_USAGE;
    cli_ranks(&dist);
    int status = command(argc, argv, g, &dist);
    cli_ranks(NULL);
    dist_finalize(&dist);
    return status;
}

int cli_parse(Option *opts, int n_opts, int argc, char **argv, const char *command, const char *usage,
              const char *about, const GlobalOptions *g, int *status)
{
    Err e;
    int help;
    if (options_parse(opts, n_opts, argc, argv, command, &help, &e) != 0) {
        *status = cli_fail(EXIT_USAGE, e.msg);
        return 0;
    }
    const Option *device = option_find(opts, n_opts, "--device");
    if (!help && g->device_given && device && device->given) {
        err_set(&e, "%s: --device given more than once (before and after the command)", command);
        *status = cli_fail(EXIT_USAGE, e.msg);
        return 0;
    }
    if (help) {
        if (!several_ranks() || ranks->rank == 0)
            options_print_help(stdout, usage, about, opts, n_opts);
        *status = EXIT_OK;
        return 0;
    }
    return 1;
}

int cli_fail(int status, const char *msg)
{
    if (several_ranks() && !agreed) {
        if (!held[0])
            snprintf(held, sizeof held, "%s", msg);
        return status;
    }
    if (!several_ranks() || ranks->rank == 0)
        fprintf(stderr, "charrnn: %s\n", msg);
    return status;
}

const char *fmt_count(uint64_t n, char *buf, size_t len)
{
    char digits[32];
    int k = snprintf(digits, sizeof digits, "%llu", (unsigned long long)n);
    size_t o = 0;
    for (int i = 0; i < k && o + 2 < len; i++) {
        if (i > 0 && (k - i) % 3 == 0)
            buf[o++] = ',';
        buf[o++] = digits[i];
    }
    buf[o] = 0;
    return buf;
}

const char *fmt_duration(double seconds, char *buf, size_t len)
{
    if (!(seconds >= 0.0) || seconds > 1e8) {
        snprintf(buf, len, "--:--");
        return buf;
    }
    long s = (long)(seconds + 0.5);
    if (s >= 3600)
        snprintf(buf, len, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
    else
        snprintf(buf, len, "%ld:%02ld", s / 60, s % 60);
    return buf;
}

void print_codepoint(FILE *f, uint32_t cp)
{
    char buf[4];
    fwrite(buf, 1, (size_t)utf8_encode(cp, buf), f);
}

/* Loads a checkpoint for use; a missing default checkpoint gets a hint on how to make one. */
int cli_load_checkpoint(const char *path, Checkpoint *ck, Err *e)
{
    if (checkpoint_load(path, ck, e) != 0) {
        if (strcmp(path, DEFAULT_CHECKPOINT) == 0 && access(path, F_OK) != 0)
            snprintf(e->msg + strlen(e->msg), sizeof e->msg - strlen(e->msg),
                     " (train a model first with `%s train`, or pass --checkpoint FILE)", program_name());
        return -1;
    }
    return 0;
}

int cli_stored_data(const Checkpoint *ck, const char *ckpt_path, const char *command, const char **path, Err *e)
{
    *path = NULL;
    if (ck->data_path_abs[0] && access(ck->data_path_abs, F_OK) == 0)
        *path = ck->data_path_abs;
    else if (ck->data_path[0] && access(ck->data_path, F_OK) == 0)
        *path = ck->data_path;
    if (*path)
        return 0;
    if (!ck->data_path[0])
        return err_set(e, "%s: %s does not record its training text; pass --data FILE", command, ckpt_path);
    const char *tried = ck->data_path_abs[0] ? ck->data_path_abs : ck->data_path;
    return err_set(e,
                   "%s: the training text recorded in %s, %s, cannot be found (%s); that path came from the "
                   "checkpoint: pass --data FILE to name the text",
                   command, ckpt_path, tried, strerror(errno));
}

int cli_check_memory(const BackendOps *ops, const MemoryNeed *need, const char *command, const char *what,
                     const char *hint, Err *e)
{
    MemoryNeed avail;
    Err why;
    if (memory_available(ops, &avail, e) != 0)
        return -1;
    if (memory_fits(ops, need, &avail, &why) == 0)
        return 0;
    return err_set(e, "%s: %s %s%s%s", command, what, why.msg, hint && *hint ? "; " : "", hint ? hint : "");
}

int cli_open(int device, const char *path, const BackendOps **ops, const char **device_note, Checkpoint *ck)
{
    Err e;
    if (device_select((DeviceChoice)device, ops, device_note, &e) != 0 || cli_load_checkpoint(path, ck, &e) != 0) {
        cli_fail(EXIT_USAGE, e.msg);
        return -1;
    }
    return 0;
}

int cli_default_threads(void)
{
    cpu_set_t set; /* the cores this process may run on (taskset, cgroup cpusets), not all the machine's */
    long n = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > MAX_THREADS ? MAX_THREADS : (int)n;
}
