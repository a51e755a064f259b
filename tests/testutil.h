/* Helpers shared by the tests: small datasets in memory, running the charrnn binary, temp dirs. */
#ifndef CHARRNN_TESTUTIL_H
#define CHARRNN_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

/* The 65 characters of tiny shakespeare, in vocabulary order. */
#define SHAKESPEARE_CHARS "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

/* Returns 1 when the tiny shakespeare file is installed (tests that need it skip otherwise). */
int have_shakespeare(void);

/* Runs the charrnn binary with the NULL-terminated argv (without argv[0]) in directory cwd (NULL: the
 * current one), with stdin from /dev/null; captures stdout and stderr (each truncated to cap bytes,
 * NUL-terminated). Returns the exit status, or 128+signal. */
int run_charrnn(const char *cwd, char *const args[], char *out, size_t out_cap, char *err, size_t err_cap);
/* The same, with stdin read from the file stdin_path (a path relative to cwd is resolved there). */
int run_charrnn_stdin(const char *cwd, char *const args[], const char *stdin_path, char *out, size_t out_cap, char *err,
                      size_t err_cap);
/* The same with stdout written to the file stdout_path (/dev/full: every write fails), or, when it is NULL,
 * to a pipe whose reading end is closed before charrnn starts (a reader that went away). */
int run_charrnn_stdout(const char *cwd, char *const args[], const char *stdout_path, char *err, size_t err_cap);
/* Every run above is killed (SIGALRM, status 142) after this long: a command that blocks (on a FIFO, on
 * input without end) fails its test instead of hanging the suite. */
#define RUN_TIMEOUT_SECONDS 120

/* run_charrnn_stdin, with another build of charrnn (program; NULL: CHARRNN_BIN) started by a launcher:
 * launch is its command line (NULL-terminated, e.g. mpirun -np 2, found on the PATH; NULL: none). */
int run_launched(char *const launch[], const char *program, const char *cwd, char *const args[],
                 const char *stdin_path, char *out, size_t out_cap, char *err, size_t err_cap);

/* A charrnn process running in the background, its stderr read through a pipe. */
typedef struct {
    int pid;
    int err_fd;
    char err[1 << 16]; /* what it wrote to stderr so far */
    size_t err_len;
    long max_rss_kb; /* its peak resident memory, once finished */
} Child;

/* Starts charrnn like run_charrnn, stdout to /dev/null; a file-size limit (bytes, 0: none) applies to it. */
int start_charrnn(Child *c, const char *cwd, char *const args[], long file_size_limit);
/* The same, started by a launcher (as run_launched). */
int start_launched(Child *c, char *const launch[], const char *program, const char *cwd, char *const args[]);
/* Starts `/bin/sh -c command` in cwd the same way (a command line as a user would paste it). Each child
 * leads a process group of its own: kill(-c->pid, sig) signals it as Ctrl-C would, shell and all. */
int start_shell(Child *c, const char *cwd, const char *command);
/* Reads its stderr until `needle` appears (1) or it ends (0). */
int wait_for_stderr(Child *c, const char *needle);
/* Reads the rest of its stderr and returns its exit status (128 + signal if killed). */
int finish_charrnn(Child *c);

/* The command-line suites' shorthand. A suite defines `static char dir[64], out[1 << 16], err[1 << 16]`;
 * RUN("--device", "cpu", "train", ...) runs charrnn in dir and captures its output in out and err. */
#define RUN(...) run_charrnn(dir, (char *[]){__VA_ARGS__, NULL}, out, sizeof out, err, sizeof err)

/* Exit status 2 and a single line on stderr that contains `needle`. */
#define EXPECT_USAGE_ERROR(needle, ...)                                                                                \
    do {                                                                                                               \
        int rc_ = RUN(__VA_ARGS__);                                                                                    \
        cr_expect_eq(rc_, 2, "exit status %d, stderr: %s", rc_, err);                                                  \
        cr_expect(strstr(err, needle) != NULL, "stderr should contain '%s', got: %s", needle, err);                    \
        cr_expect_eq(count_lines(err), 1, "expected one line, got: %s", err);                                          \
    } while (0)

/* The OPENBLAS_CORETYPE charrnn asks for on this machine when OpenBLAS is taken to have chosen its
 * Prescott kernels (CHARRNN_TEST_BLAS_CORENAME=Prescott), or NULL and *why where no fix can happen here. */
const char *blas_fix_of_prescott(const char **why);

/* Writes `text` `times` times over into dir/name (name may hold subdirectories that exist). */
void write_repeated_file(const char *dir, const char *name, const char *text, int times);

/* dir/name, in one of two static buffers used in turn (two paths may be used in one call). */
char *join_path(const char *dir, const char *name);
/* A fresh directory under /tmp; the returned string is static per call site's buffer. */
void make_temp_dir(char *buf, size_t len);
/* Removes a directory and everything in it (the tests clean up their temporary directories). */
void remove_tree(const char *path);
/* cr_skip_test from a test's body whose .init made the directory dir: Criterion runs no .fini after a
 * skip, so the directory is removed first. */
#define SKIP_REMOVING(dir, ...)                                                                                      \
    do {                                                                                                             \
        remove_tree(dir);                                                                                            \
        cr_skip_test(__VA_ARGS__);                                                                                   \
    } while (0)
void write_text_file(const char *path, const void *data, size_t len);
/* Number of lines in s. */
int count_lines(const char *s);

#endif
