/* Small shared helpers: error messages, whole-file reading, CRC-32, a seeded RNG we own, clocks. */
#ifndef CHARRNN_UTIL_H
#define CHARRNN_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* `floats` rounded up to whole units of `unit` floats; and the next buffer of `floats` cut from *a in
 * such units, *a moved past it. Both backends lay out their activations this way, so that every
 * buffer in one allocation starts on an aligned boundary. */
static inline size_t floats_rounded(size_t floats, size_t unit)
{
    return (floats + unit - 1) / unit * unit;
}

static inline float *take_floats(float **a, size_t floats, size_t unit)
{
    float *buffer = *a;
    *a += floats_rounded(floats, unit);
    return buffer;
}

/* Functions that can fail return -1 (or NULL) and describe the failure here; only main prints. */
typedef struct {
    char msg[512];
} Err;

/* Formats the message into e (if e is not NULL) and returns -1, so `return err_set(e, ...)` reads well. */
int err_set(Err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Opens path (flags as for open(2), without O_CREAT) only if it is a regular file: a FIFO, device, socket
 * or directory is refused without blocking on it, naming what it is and that `expected` (e.g. "a text
 * file") was. Returns the descriptor, or -1. */
int open_regular(const char *path, int flags, const char *expected, Err *e);
/* "a directory", "a FIFO (named pipe)", "a character device", ... for a stat mode that is not a regular
 * file; NULL for a regular file. */
const char *special_file_kind(unsigned mode);

/* Reads a whole regular file into a fresh buffer (NUL-terminated for convenience, not counted in *len). */
int read_file(const char *path, uint8_t **data, size_t *len, Err *e);

/* One writer per output file. output_lock makes this process the writer of path until output_unlock:
 * it resolves symbolic links (the file written is the link's target), holds an advisory lock (flock) on
 * TARGET.lock, refusing when another process holds it and naming that process, and removes the
 * temporary file (TARGET.tmp) that a writer killed in the middle of a write left behind. */
typedef struct {
    int fd;          /* the lock file's descriptor; -1 when not held */
    char *target;    /* the file written: path with symbolic links resolved */
    char *lock_path; /* TARGET.lock */
} OutputLock;
int output_lock(const char *path, OutputLock *l, Err *e);
void output_unlock(OutputLock *l);

/* Writes len bytes to path atomically: TARGET.tmp beside the file (TARGET: path with symbolic links
 * resolved, so a link stays a link), fsync, then rename over it, keeping an existing file's permission
 * bits. Takes the output lock for the write unless this process holds it already. On failure the
 * previous content of path is untouched and no temporary file is left behind. */
int write_file_atomic(const char *path, const void *data, size_t len, Err *e);

/* For a signal handler about to _exit: removes the temporary file of a write_file_atomic in progress and
 * the lock file of the output being written, if any (async-signal-safe). The file being replaced is
 * untouched either way. */
void write_file_atomic_abandon(void);

/* 1 when a and b name the same file: the same device and inode when both exist, else the same path
 * once the directories are resolved. */
int same_file(const char *a, const char *b);
/* An absolute path for path (its directory resolved, symbolic links included) in a fresh buffer, or
 * NULL when its directory does not exist. */
char *absolute_path(const char *path);

/* The program as the user invoked it, for messages that suggest a command: "charrnn" when it was found
 * on the PATH, else the path typed (./build/charrnn), quoted for the shell where it needs quoting. */
const char *program_name(void);
void program_name_set(const char *argv0);
/* s quoted for a POSIX shell where it needs to be (into buf; returns buf). */
const char *shell_quote(const char *s, char *buf, size_t len);

/* Creates every missing directory of path's parent (like mkdir -p on dirname(path)). */
int make_parent_dirs(const char *path, Err *e);

/* CRC-32 (IEEE 802.3 polynomial, the one zlib and PNG use). Pass crc = 0 to start, chain to continue. */
uint32_t crc32_update(uint32_t crc, const void *data, size_t len);

/* xoshiro256** seeded through splitmix64: small, fast, and its whole state fits in a checkpoint. */
typedef struct {
    uint64_t s[4];
} Rng;

void rng_seed(Rng *r, uint64_t seed);
uint64_t rng_next(Rng *r);
float rng_uniform(Rng *r);              /* [0, 1) with 24 random bits */
uint64_t rng_below(Rng *r, uint64_t n); /* uniform integer in [0, n), n > 0, without modulo bias */
double rng_normal(Rng *r);              /* standard normal (Box-Muller) */

double now_seconds(void); /* monotonic clock */

#endif
