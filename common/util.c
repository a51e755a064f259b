#define _DEFAULT_SOURCE /* flock, realpath */
#include "util.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
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

const char *special_file_kind(unsigned mode)
{
    if (S_ISREG(mode))
        return NULL;
    if (S_ISDIR(mode))
        return "a directory";
    if (S_ISFIFO(mode))
        return "a FIFO (named pipe)";
    if (S_ISCHR(mode))
        return "a character device";
    if (S_ISBLK(mode))
        return "a block device";
    if (S_ISSOCK(mode))
        return "a socket";
    return "not a regular file";
}

int open_regular(const char *path, int flags, const char *expected, Err *e)
{
    /* O_NONBLOCK: opening a FIFO would otherwise wait for a process at its other end, forever. */
    int fd = open(path, flags | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    struct stat st;
    if (fd < 0) {
        int err = errno; /* a socket (ENXIO) or a directory opened for writing (EISDIR): say what it is */
        if (stat(path, &st) == 0 && special_file_kind(st.st_mode))
            return err_set(e, "%s: is %s, expected %s", path, special_file_kind(st.st_mode), expected);
        return err_set(e, "%s: cannot open: %s", path, strerror(err));
    }
    if (fstat(fd, &st) != 0) {
        int err = errno;
        close(fd);
        return err_set(e, "%s: cannot stat: %s", path, strerror(err));
    }
    if (special_file_kind(st.st_mode)) {
        close(fd);
        return err_set(e, "%s: is %s, expected %s", path, special_file_kind(st.st_mode), expected);
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    return fd;
}

int read_file(const char *path, uint8_t **data, size_t *len, Err *e)
{
    *data = NULL;
    *len = 0;
    int fd = open_regular(path, O_RDONLY, "a file", e);
    if (fd < 0)
        return -1;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int saved = errno;
        close(fd);
        return err_set(e, "%s: cannot stat: %s", path, strerror(saved));
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

/* ---- paths ---- */

#define MAX_LINK_HOPS 40 /* as the kernel's own limit on symbolic links followed in one lookup */

static char *concat(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    char *s = malloc(na + nb + 1);
    if (s) {
        memcpy(s, a, na);
        memcpy(s + na, b, nb + 1);
    }
    return s;
}

/* path with every symbolic link at its last component followed (the file a write must replace), in a
 * fresh buffer; a dangling link gives the path it points to. */
static char *resolve_links(const char *path, Err *e)
{
    char *p = concat(path, "");
    for (int hops = 0; p && hops < MAX_LINK_HOPS; hops++) {
        struct stat st;
        char target[4096];
        ssize_t n;
        if (lstat(p, &st) != 0 || !S_ISLNK(st.st_mode) || (n = readlink(p, target, sizeof target - 1)) < 0)
            return p;
        target[n] = 0;
        char *next;
        char *slash = strrchr(p, '/');
        if (target[0] == '/' || !slash) {
            next = concat(target, "");
        } else {
            slash[1] = 0; /* the link's directory, to which a relative target is relative */
            next = concat(p, target);
        }
        free(p);
        p = next;
    }
    if (!p)
        err_set(e, "out of memory");
    else
        err_set(e, "%s: too many levels of symbolic links", path);
    free(p);
    return NULL;
}

char *absolute_path(const char *path)
{
    char resolved[PATH_MAX];
    if (realpath(path, resolved))
        return concat(resolved, "");
    const char *slash = strrchr(path, '/');
    char *dir = slash ? malloc((size_t)(slash - path) + 2) : concat(".", "");
    if (!dir)
        return NULL;
    if (slash) {
        size_t n = slash == path ? 1 : (size_t)(slash - path); /* "/x" lives in "/" */
        memcpy(dir, path, n);
        dir[n] = 0;
    }
    char *abs = NULL;
    if (realpath(dir, resolved)) {
        char *with_slash = concat(resolved, strcmp(resolved, "/") == 0 ? "" : "/");
        abs = with_slash ? concat(with_slash, slash ? slash + 1 : path) : NULL;
        free(with_slash);
    }
    free(dir);
    return abs;
}

int same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    int has_a = stat(a, &sa) == 0, has_b = stat(b, &sb) == 0;
    if (has_a && has_b)
        return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
    if (has_a != has_b)
        return 0;
    char *pa = absolute_path(a), *pb = absolute_path(b);
    int same = pa && pb ? strcmp(pa, pb) == 0 : strcmp(a, b) == 0;
    free(pa);
    free(pb);
    return same;
}

/* ---- one writer per output ---- */

enum { MAX_HELD_LOCKS = 4 }; /* a command writes one or two files */
static const OutputLock *held_locks[MAX_HELD_LOCKS];

/* The lock file of the first output held and the temporary file being written, for
 * write_file_atomic_abandon (a signal handler may read them: they are set before the flags). */
static char abandon_lock[4096], abandon_tmp[4096];
static volatile sig_atomic_t abandon_lock_set, abandon_tmp_set;

static void set_abandon(char *buf, size_t cap, volatile sig_atomic_t *flag, const char *path)
{
    *flag = 0;
    atomic_signal_fence(memory_order_seq_cst);
    if (!path || strlen(path) >= cap)
        return;
    memcpy(buf, path, strlen(path) + 1);
    atomic_signal_fence(memory_order_seq_cst); /* the whole name is in place before a handler may read it */
    *flag = 1;
}

void write_file_atomic_abandon(void)
{
    if (abandon_tmp_set)
        unlink(abandon_tmp);
    if (abandon_lock_set)
        unlink(abandon_lock);
}

/* Files a killed writer left beside target: TARGET.tmp, and the TARGET.tmpXXXXXX (mkstemp) names of
 * earlier versions. Only this process writes target (it holds the lock), so none is in use. */
static void remove_stale_temporaries(const char *target)
{
    char *tmp = concat(target, ".tmp");
    if (tmp)
        unlink(tmp);
    free(tmp);
    const char *slash = strrchr(target, '/');
    const char *base = slash ? slash + 1 : target;
    char *dir = slash ? concat(target, "") : concat(".", "");
    if (!dir)
        return;
    if (slash)
        dir[slash - target == 0 ? 1 : slash - target] = 0;
    DIR *d = opendir(dir);
    const size_t n = strlen(base);
    for (struct dirent *de; d && (de = readdir(d));) {
        const char *name = de->d_name;
        if (strncmp(name, base, n) != 0 || strncmp(name + n, ".tmp", 4) != 0 || strlen(name + n + 4) != 6)
            continue;
        int generated = 1;
        for (const char *c = name + n + 4; *c; c++)
            generated &= isalnum((unsigned char)*c) != 0;
        struct stat st;
        if (generated && fstatat(dirfd(d), name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode))
            unlinkat(dirfd(d), name, 0);
    }
    if (d)
        closedir(d);
    free(dir);
}

static int holds_lock(const char *target)
{
    for (int i = 0; i < MAX_HELD_LOCKS; i++)
        if (held_locks[i] && strcmp(held_locks[i]->target, target) == 0)
            return 1;
    return 0;
}

#define MAX_LOCK_RETRIES 100 /* a lock file removed under us this often in a row means something is wrong */

int output_lock(const char *path, OutputLock *l, Err *e)
{
    memset(l, 0, sizeof *l);
    l->fd = -1;
    if (!(l->target = resolve_links(path, e)))
        return -1;
    if (!(l->lock_path = concat(l->target, ".lock"))) {
        output_unlock(l);
        return err_set(e, "out of memory");
    }
    for (int tries = 0;; tries++) {
        int fd = open(l->lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0666);
        if (fd < 0) {
            int err = errno;
            err_set(e, "%s: cannot create the lock file %s: %s", path, l->lock_path, strerror(err));
            output_unlock(l);
            return -1;
        }
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            int err = errno;
            char pid[24] = "";
            ssize_t n = err == EWOULDBLOCK ? pread(fd, pid, sizeof pid - 1, 0) : -1;
            pid[n > 0 ? n : 0] = 0;
            pid[strcspn(pid, "\n")] = 0;
            close(fd);
            if (err != EWOULDBLOCK)
                err_set(e, "%s: cannot lock %s: %s", path, l->lock_path, strerror(err));
            else if (pid[0])
                err_set(e, "%s is being written by another charrnn process (PID %s); wait for it to finish or "
                           "stop it", path, pid);
            else
                err_set(e, "%s is being written by another charrnn process; wait for it to finish or stop it", path);
            output_unlock(l);
            return -1;
        }
        /* The last holder removes the lock file as it lets go: if it did so between our open and our lock,
         * this file is an orphan that the next process would not see. Lock the file under the name. */
        struct stat held, named;
        if (fstat(fd, &held) == 0 && stat(l->lock_path, &named) == 0 && held.st_dev == named.st_dev &&
            held.st_ino == named.st_ino) {
            l->fd = fd;
            break;
        }
        close(fd);
        if (tries == MAX_LOCK_RETRIES) {
            err_set(e, "%s: its lock file %s keeps disappearing", path, l->lock_path);
            output_unlock(l);
            return -1;
        }
    }
    char pid[24];
    int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(l->fd, 0) != 0 || pwrite(l->fd, pid, (size_t)n, 0) != n) {
        /* Only the message of a refused writer would lack the PID; the lock itself holds. */
    }
    remove_stale_temporaries(l->target);
    for (int i = 0; i < MAX_HELD_LOCKS; i++)
        if (!held_locks[i]) {
            held_locks[i] = l;
            if (!abandon_lock_set)
                set_abandon(abandon_lock, sizeof abandon_lock, &abandon_lock_set, l->lock_path);
            break;
        }
    return 0;
}

void output_unlock(OutputLock *l)
{
    for (int i = 0; i < MAX_HELD_LOCKS; i++)
        if (held_locks[i] == l)
            held_locks[i] = NULL;
    if (abandon_lock_set && l->lock_path && strcmp(abandon_lock, l->lock_path) == 0)
        set_abandon(abandon_lock, sizeof abandon_lock, &abandon_lock_set, NULL);
    if (l->fd >= 0) {
        unlink(l->lock_path); /* while still held: see output_lock */
        close(l->fd);
    }
    free(l->target);
    free(l->lock_path);
    memset(l, 0, sizeof *l);
    l->fd = -1;
}

static int write_and_rename(const char *path, const char *target, const void *data, size_t len, Err *e)
{
    struct stat st;
    const int exists = stat(target, &st) == 0;
    if (exists && S_ISDIR(st.st_mode))
        return err_set(e, "%s: is a directory, expected a file path", path);
    if (exists && special_file_kind(st.st_mode))
        return err_set(e, "%s: is %s; only a regular file is replaced", path, special_file_kind(st.st_mode));
    mode_t mode;
    if (exists) {
        mode = st.st_mode & 07777; /* a replaced file keeps its permission bits */
    } else {
        mode_t mask = umask(0); /* a new file honours the umask, as fopen would */
        umask(mask);
        mode = 0666 & ~mask;
    }
    char *tmp = concat(target, ".tmp");
    if (!tmp)
        return err_set(e, "out of memory");
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        err_set(e, "%s: cannot create a file there: %s", path, strerror(errno));
        free(tmp);
        return -1;
    }
    set_abandon(abandon_tmp, sizeof abandon_tmp, &abandon_tmp_set, tmp);
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
    if (ok && fchmod(fd, mode) != 0) {
        err_set(e, "%s: cannot set its permissions: %s", path, strerror(errno));
        ok = 0;
    }
    if (close(fd) != 0 && ok) {
        err_set(e, "%s: close failed: %s", path, strerror(errno));
        ok = 0;
    }
    if (ok && rename(tmp, target) != 0) {
        err_set(e, "%s: cannot rename temporary file into place: %s", path, strerror(errno));
        ok = 0;
    }
    if (!ok)
        unlink(tmp);
    set_abandon(abandon_tmp, sizeof abandon_tmp, &abandon_tmp_set, NULL);
    free(tmp);
    return ok ? 0 : -1;
}

int write_file_atomic(const char *path, const void *data, size_t len, Err *e)
{
    char *target = resolve_links(path, e);
    if (!target)
        return -1;
    struct stat st;
    if (stat(target, &st) == 0 && S_ISDIR(st.st_mode)) { /* before a lock file appears beside it */
        free(target);
        return err_set(e, "%s: is a directory, expected a file path", path);
    }
    OutputLock own;
    const int lock_here = !holds_lock(target);
    int rc = lock_here ? output_lock(path, &own, e) : 0;
    if (rc == 0)
        rc = write_and_rename(path, target, data, len, e);
    if (lock_here && own.fd >= 0) /* a refused lock was let go already */
        output_unlock(&own);
    free(target);
    return rc;
}

/* ---- how the program was invoked ---- */

static char program[4096] = "charrnn";

const char *shell_quote(const char *s, char *buf, size_t len)
{
    int plain = *s != 0;
    for (const char *c = s; *c; c++)
        plain &= isalnum((unsigned char)*c) || strchr("@%_+=:,./-", *c) != NULL;
    if (plain) {
        snprintf(buf, len, "%s", s);
        return buf;
    }
    size_t o = 0;
    if (o + 1 < len)
        buf[o++] = '\'';
    for (const char *c = s; *c && o + 5 < len; c++) {
        if (*c == '\'') { /* close the quote, an escaped quote, reopen */
            memcpy(buf + o, "'\\''", 4);
            o += 4;
        } else {
            buf[o++] = *c;
        }
    }
    if (o + 1 < len)
        buf[o++] = '\'';
    buf[o < len ? o : len - 1] = 0;
    return buf;
}

void program_name_set(const char *argv0)
{
    /* Without a slash the shell found the program on the PATH, where the same name finds it again. */
    if (argv0 && strchr(argv0, '/'))
        shell_quote(argv0, program, sizeof program);
    else
        snprintf(program, sizeof program, "charrnn");
}

const char *program_name(void)
{
    return program;
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
