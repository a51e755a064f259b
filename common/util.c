#define _POSIX_C_SOURCE 200809L
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int err_set(Err *e, const char *fmt, ...)
{
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
    }
    return -1;
}

int read_file(const char *path, uint8_t **data, size_t *len, Err *e)
{
    *data = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return err_set(e, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int saved = errno;
        close(fd);
        return err_set(e, "%s: cannot stat: %s", path, strerror(saved));
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return err_set(e, "%s: is a directory, expected a file", path);
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return err_set(e, "%s: is not a regular file", path);
    }
    size_t n = (size_t)st.st_size;
    uint8_t *buf = malloc(n + 1);
    if (!buf) {
        close(fd);
        return err_set(e, "%s: out of memory reading %zu bytes", path, n);
    }
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            int saved = errno;
            free(buf);
            close(fd);
            return err_set(e, "%s: read failed after %zu of %zu bytes: %s", path, got, n,
                           r == 0 ? "file shrank while reading" : strerror(saved));
        }
        got += (size_t)r;
    }
    close(fd);
    buf[n] = 0;
    *data = buf;
    *len = n;
    return 0;
}

int make_parent_dirs(const char *path, Err *e)
{
    size_t n = strlen(path);
    char *dir = malloc(n + 1);
    if (!dir)
        return err_set(e, "out of memory");
    memcpy(dir, path, n + 1);
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir) {
        free(dir);
        return 0;
    }
    *slash = 0;
    for (char *p = dir + 1;; p++) {
        if (*p == '/' || *p == 0) {
            char saved = *p;
            *p = 0;
            if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
                int err = errno;
                err_set(e, "%s: cannot create directory: %s", dir, strerror(err));
                free(dir);
                return -1;
            }
            struct stat st;
            if (stat(dir, &st) == 0 && !S_ISDIR(st.st_mode)) {
                err_set(e, "%s: exists and is not a directory", dir);
                free(dir);
                return -1;
            }
            *p = saved;
            if (saved == 0)
                break;
        }
    }
    free(dir);
    return 0;
}

/* Creates a fresh temporary file beside path (path.tmpXXXXXX); *tmp is malloc'd. Refuses a path that
 * is a directory. Returns the open descriptor, or -1. */
static int open_temp_beside(const char *path, char **tmp, Err *e)
{
    struct stat st;
    *tmp = NULL;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return err_set(e, "%s: is a directory, expected a file path", path);
    size_t n = strlen(path) + 16;
    if (!(*tmp = malloc(n)))
        return err_set(e, "out of memory");
    snprintf(*tmp, n, "%s.tmpXXXXXX", path);
    int fd = mkstemp(*tmp);
    if (fd < 0) {
        err_set(e, "%s: cannot create a file there: %s", path, strerror(errno));
        free(*tmp);
        *tmp = NULL;
    }
    return fd;
}

/* The temporary file of the write in progress, for write_file_atomic_abandon. */
static char pending_tmp[4096];
static volatile sig_atomic_t pending_tmp_set;

void write_file_atomic_abandon(void)
{
    if (pending_tmp_set)
        unlink(pending_tmp);
}

int check_writable(const char *path, Err *e)
{
    char *tmp;
    if (make_parent_dirs(path, e) != 0)
        return -1;
    int fd = open_temp_beside(path, &tmp, e);
    if (fd < 0)
        return -1;
    close(fd);
    unlink(tmp);
    free(tmp);
    return 0;
}

int write_file_atomic(const char *path, const void *data, size_t len, Err *e)
{
    char *tmp;
    int fd = open_temp_beside(path, &tmp, e);
    if (fd < 0)
        return -1;
    if (strlen(tmp) < sizeof pending_tmp) {
        memcpy(pending_tmp, tmp, strlen(tmp) + 1);
        atomic_signal_fence(memory_order_seq_cst); /* the whole name is in place before a handler may read it */
        pending_tmp_set = 1;
    }
    const uint8_t *p = data;
    size_t done = 0;
    int ok = 1;
    while (done < len) {
        ssize_t w = write(fd, p + done, len - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            err_set(e, "%s: write failed after %zu of %zu bytes: %s", path, done, len,
                    w == 0 ? "no space written" : strerror(errno));
            ok = 0;
            break;
        }
        done += (size_t)w;
    }
    if (ok && fsync(fd) != 0) {
        err_set(e, "%s: fsync failed: %s", path, strerror(errno));
        ok = 0;
    }
    if (close(fd) != 0 && ok) {
        err_set(e, "%s: close failed: %s", path, strerror(errno));
        ok = 0;
    }
    /* mkstemp creates 0600; a checkpoint is an ordinary file, so honour the umask like fopen would. */
    if (ok) {
        mode_t mask = umask(0);
        umask(mask);
        chmod(tmp, 0666 & ~mask);
    }
    if (ok && rename(tmp, path) != 0) {
        err_set(e, "%s: cannot rename temporary file into place: %s", path, strerror(errno));
        ok = 0;
    }
    if (!ok)
        unlink(tmp);
    pending_tmp_set = 0;
    atomic_signal_fence(memory_order_seq_cst);
    free(tmp);
    return ok ? 0 : -1;
}

static uint32_t crc_table[256];

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}

uint32_t crc32_update(uint32_t crc, const void *data, size_t len)
{
    if (crc_table[1] == 0)
        crc_init();
    const uint8_t *p = data;
    crc = ~crc;
    for (size_t i = 0; i < len; i++)
        crc = crc_table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
    return ~crc;
}

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void rng_seed(Rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t rng_next(Rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

float rng_uniform(Rng *r)
{
    return (float)(rng_next(r) >> 40) * (1.0f / 16777216.0f);
}

uint64_t rng_below(Rng *r, uint64_t n)
{
    uint64_t limit = UINT64_MAX - UINT64_MAX % n; /* reject the short tail so every value is equally likely */
    uint64_t x;
    do {
        x = rng_next(r);
    } while (x >= limit);
    return x % n;
}

double rng_normal(Rng *r)
{
    double u1 = ((double)(rng_next(r) >> 11) + 1.0) * (1.0 / 9007199254740992.0); /* (0, 1] */
    double u2 = (double)(rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
