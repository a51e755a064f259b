/* Small shared helpers: error messages, whole-file reading, CRC-32, a seeded RNG we own, clocks. */
#ifndef CHARRNN_UTIL_H
#define CHARRNN_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Functions that can fail return -1 (or NULL) and describe the failure here; only main prints. */
typedef struct {
    char msg[512];
} Err;

/* Formats the message into e (if e is not NULL) and returns -1, so `return err_set(e, ...)` reads well. */
int err_set(Err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Reads a whole regular file into a fresh buffer (NUL-terminated for convenience, not counted in *len). */
int read_file(const char *path, uint8_t **data, size_t *len, Err *e);

/* Writes len bytes to path atomically: a temporary file next to it, fsync, then rename over it.
 * On failure the previous content of path is untouched and no temporary file is left behind. */
int write_file_atomic(const char *path, const void *data, size_t len, Err *e);

/* For a signal handler about to _exit: removes the temporary file of a write_file_atomic in progress,
 * if any (async-signal-safe). The file being replaced is untouched either way. */
void write_file_atomic_abandon(void);

/* Checks, before long work, that a file can later be written at path: creates missing parent
 * directories, refuses a directory, and creates and removes a temporary file beside it. */
int check_writable(const char *path, Err *e);

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
