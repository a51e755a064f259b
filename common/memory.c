#define _POSIX_C_SOURCE 200809L
#include "memory.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"

#define UNKNOWN UINT64_MAX /* a limit nobody states: nothing is refused for want of it */

/* A "NAME: 123 kB" line of /proc/meminfo, in bytes. */
static uint64_t meminfo(const char *name)
{
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    uint64_t bytes = UNKNOWN;
    size_t n = strlen(name);
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, name, n) == 0 && line[n] == ':') {
            bytes = strtoull(line + n + 1, NULL, 10) * 1024;
            break;
        }
    if (f)
        fclose(f);
    return bytes;
}

/* One number from a cgroup file; UNKNOWN for "max" or a file that is not there. */
static uint64_t cgroup_value(const char *dir, const char *file)
{
    char path[4352], text[64];
    snprintf(path, sizeof path, "/sys/fs/cgroup%s/%s", dir, file);
    FILE *f = fopen(path, "r");
    uint64_t value = UNKNOWN;
    if (f && fgets(text, sizeof text, f) && text[0] >= '0' && text[0] <= '9')
        value = strtoull(text, NULL, 10);
    if (f)
        fclose(f);
    return value;
}

/* What a container's memory limit (cgroup v2) leaves this process, where one is set. */
static uint64_t cgroup_available(void)
{
    FILE *f = fopen("/proc/self/cgroup", "r");
    char line[4096];
    uint64_t avail = UNKNOWN;
    while (f && fgets(line, sizeof line, f)) {
        if (strncmp(line, "0::", 3) != 0)
            continue;
        line[strcspn(line, "\n")] = 0;
        uint64_t max = cgroup_value(line + 3, "memory.max"), used = cgroup_value(line + 3, "memory.current");
        if (max != UNKNOWN && used != UNKNOWN)
            avail = max > used ? max - used : 0;
        break;
    }
    if (f)
        fclose(f);
    return avail;
}

/* NAME=123, 64K, 512M, 2G or 1T (powers of 1024); unset leaves *limit alone. */
static int env_limit(const char *name, uint64_t *limit, Err *e)
{
    const char *s = getenv(name);
    if (!s || !*s)
        return 0;
    const char *units = "KMGT", *end = s, *unit = NULL;
    while (*end >= '0' && *end <= '9')
        end++;
    if (*end)
        unit = strchr(units, *end);
    if (end == s || (*end && (!unit || end[1])))
        return err_set(e, "%s=%s: expected a number of bytes, optionally with K, M, G or T (such as 512M)", name, s);
    unsigned long long x = strtoull(s, NULL, 10); /* digits only, so nothing but overflow (UINT64_MAX) can go wrong */
    uint64_t bytes = x;
    for (const char *u = units; unit && u <= unit; u++)
        bytes = bytes > UINT64_MAX / 1024 ? UINT64_MAX : bytes * 1024;
    if (bytes < *limit)
        *limit = bytes;
    return 0;
}

int memory_available(const BackendOps *ops, MemoryNeed *avail, Err *e)
{
    uint64_t host = meminfo("MemAvailable"), cgroup = cgroup_available();
    avail->host = cgroup < host ? cgroup : host;
    avail->device = 0;
    if (ops && ops->device_memory) {
        uint64_t total;
        if (ops->device_memory(&avail->device, &total, e) != 0)
            return -1;
    }
    if (env_limit("CHARRNN_MEMORY_LIMIT", &avail->host, e) != 0 ||
        env_limit("CHARRNN_DEVICE_MEMORY_LIMIT", &avail->device, e) != 0)
        return -1;
    return 0;
}

/* The backend's buffers, plus host bytes of the command's own. */
static MemoryNeed plus(const BackendOps *ops, const ModelConfig *m, int T, int B, int dropout, uint64_t host)
{
    MemoryNeed need = ops->memory ? ops->memory(m, T, B, dropout) : (MemoryNeed){0, 0};
    need.host += host;
    return need;
}

MemoryNeed train_memory(const BackendOps *ops, const TrainConfig *c)
{
    const uint64_t rows = (uint64_t)c->seq_len * (uint64_t)c->batch;
    const uint64_t batch = 2 * rows * sizeof(token_t);
    const uint64_t zero_carry = (uint64_t)model_state_sets(&c->model) * (uint64_t)c->model.layers *
                                (uint64_t)c->batch * (uint64_t)c->model.hidden * 4;
    /* A save holds a copy of the state and the file's image at once; starting a run holds the initial
     * parameters and zero moments, less than that, and never at the same time. */
    const uint64_t save = 2 * checkpoint_size_estimate(c);
    return plus(ops, &c->model, c->seq_len, c->batch, c->dropout > 0.0f, batch + zero_carry + save);
}

MemoryNeed eval_memory(const BackendOps *ops, const ModelConfig *m, int T, int B)
{
    return plus(ops, m, T, B, 0, 2 * (uint64_t)T * (uint64_t)B * sizeof(token_t));
}

MemoryNeed sample_memory(const BackendOps *ops, const ModelConfig *m)
{
    return plus(ops, m, 1, 1, 0, 3 * (uint64_t)m->vocab * sizeof(float)); /* logits and the sampler's scratch */
}

int memory_fits(const BackendOps *ops, const MemoryNeed *need, const MemoryNeed *avail, Err *e)
{
    char a[32], b[32];
    if (ops->device_memory && need->device > avail->device)
        return err_set(e, "needs an estimated %s of %s device memory, %s is free there",
                       fmt_bytes(need->device, a, sizeof a), ops->name, fmt_bytes(avail->device, b, sizeof b));
    if (need->host > avail->host)
        return err_set(e, "needs an estimated %s of memory, %s is available", fmt_bytes(need->host, a, sizeof a),
                       fmt_bytes(avail->host, b, sizeof b));
    return 0;
}

const char *fmt_bytes(uint64_t bytes, char *buf, size_t len)
{
    const char *units[] = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    double x = (double)bytes;
    int u = 0;
    while (x >= 1024.0 && u < 6) {
        x /= 1024.0;
        u++;
    }
    if (u == 0)
        snprintf(buf, len, "%llu bytes", (unsigned long long)bytes);
    else
        snprintf(buf, len, "%.1f %s", x, units[u]);
    return buf;
}
