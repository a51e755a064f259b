#define _GNU_SOURCE /* nftw, wait4, pipe2 */
#include "testutil.h"

#include "../cpu/matmul.h"

#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/wait.h>
#include <unistd.h>

int have_shakespeare(void)
{
    return access(CHARRNN_TEST_DATA, R_OK) == 0;
}

/* OpenBLAS's own, weak: the tests of a build without OpenBLAS link without it. */
char *openblas_get_config(void) __attribute__((weak));

const char *blas_fix_of_prescott(const char **why)
{
    static char config[256];
    if (strcmp(matmul_backend(), "OpenBLAS") != 0 || !openblas_get_config) {
        *why = "built without OpenBLAS";
        return NULL;
    }
    if (!strstr(openblas_get_config(), "DYNAMIC_ARCH")) {
        snprintf(config, sizeof config, "this OpenBLAS has the kernels of one processor only: %s",
                 openblas_get_config());
        *why = config;
        return NULL;
    }
    SimdLevel level = SIMD_LEVELS - 1;
    while (level > SIMD_BASELINE && !kernels_at(level))
        level--;
    const char *fix = blas_coretype_for("Prescott", level);
    if (!fix)
        *why = "this processor runs no kernels better than Prescott's";
    return fix;
}

/* Reads what is available; keeps what fits in buf. Returns 0 at end of file. */
static int drain(int fd, char *buf, size_t cap, size_t *used)
{
    char tmp[4096];
    ssize_t r = read(fd, tmp, sizeof tmp);
    if (r <= 0)
        return 0;
    size_t room = cap - 1 - *used;
    size_t take = (size_t)r < room ? (size_t)r : room;
    memcpy(buf + *used, tmp, take);
    *used += take;
    buf[*used] = 0;
    return 1;
}

/* In a forked child: becomes the program (NULL: CHARRNN_BIN) with args (without argv[0]), started by the
 * launcher's command line when there is one. */
static void exec_charrnn(char *const launch[], const char *program, char *const args[])
{
    char *argv[96];
    int n = 0;
    if (launch) /* a test that dies (a timeout) takes the launcher and its processes with it */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
    for (int i = 0; launch && launch[i] && n < 31; i++)
        argv[n++] = launch[i];
    argv[n++] = (char *)(program ? program : CHARRNN_BIN);
    for (int i = 0; args[i] && n < 95; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    execvp(argv[0], argv);
    _exit(127);
}

int run_charrnn(const char *cwd, char *const args[], char *out, size_t out_cap, char *err, size_t err_cap)
{
    return run_charrnn_stdin(cwd, args, "/dev/null", out, out_cap, err, err_cap);
}

/* Runs charrnn (see exec_charrnn) with stdin from stdin_path, stdout to out_fd and stderr to err_fd (in a
 * forked child). */
static pid_t spawn_charrnn(char *const launch[], const char *program, const char *cwd, char *const args[],
                           const char *stdin_path, int out_fd, int err_fd)
{
    pid_t pid = fork();
    if (pid == 0) {
        if (cwd && chdir(cwd) != 0)
            _exit(127);
        int in = open(stdin_path, O_RDONLY);
        if (in < 0)
            _exit(126);
        alarm(RUN_TIMEOUT_SECONDS);
        dup2(in, 0);
        dup2(out_fd, 1);
        dup2(err_fd, 2); /* the pipes themselves are closed at exec (O_CLOEXEC) */
        exec_charrnn(launch, program, args);
    }
    return pid;
}

static int exit_status(pid_t pid)
{
    int status;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int run_charrnn_stdout(const char *cwd, char *const args[], const char *stdout_path, char *err, size_t err_cap)
{
    int po[2] = {-1, -1}, pe[2];
    if (pipe2(pe, O_CLOEXEC) != 0 || (!stdout_path && pipe2(po, O_CLOEXEC) != 0))
        return -1;
    int out_fd = stdout_path ? open(stdout_path, O_WRONLY | O_CREAT | O_TRUNC, 0644) : po[1];
    if (out_fd < 0)
        return -1;
    if (!stdout_path)
        close(po[0]); /* nobody will ever read what charrnn writes */
    pid_t pid = spawn_charrnn(NULL, NULL, cwd, args, "/dev/null", out_fd, pe[1]);
    close(out_fd);
    close(pe[1]);
    size_t ne = 0;
    err[0] = 0;
    while (drain(pe[0], err, err_cap, &ne))
        ;
    close(pe[0]);
    return exit_status(pid);
}

int run_charrnn_stdin(const char *cwd, char *const args[], const char *stdin_path, char *out, size_t out_cap, char *err,
                      size_t err_cap)
{
    return run_launched(NULL, NULL, cwd, args, stdin_path, out, out_cap, err, err_cap);
}

int run_launched(char *const launch[], const char *program, const char *cwd, char *const args[],
                 const char *stdin_path, char *out, size_t out_cap, char *err, size_t err_cap)
{
    int po[2], pe[2];
    if (pipe2(po, O_CLOEXEC) != 0 || pipe2(pe, O_CLOEXEC) != 0)
        return -1;
    pid_t pid = spawn_charrnn(launch, program, cwd, args, stdin_path, po[1], pe[1]);
    close(po[1]);
    close(pe[1]);
    size_t no = 0, ne = 0;
    out[0] = err[0] = 0;
    int open_o = 1, open_e = 1;
    while (open_o || open_e) {
        fd_set fds;
        FD_ZERO(&fds);
        if (open_o)
            FD_SET(po[0], &fds);
        if (open_e)
            FD_SET(pe[0], &fds);
        int maxfd = po[0] > pe[0] ? po[0] : pe[0];
        if (select(maxfd + 1, &fds, NULL, NULL, NULL) < 0)
            break;
        if (open_o && FD_ISSET(po[0], &fds))
            open_o = drain(po[0], out, out_cap, &no);
        if (open_e && FD_ISSET(pe[0], &fds))
            open_e = drain(pe[0], err, err_cap, &ne);
    }
    close(po[0]);
    close(pe[0]);
    return exit_status(pid);
}

char *join_path(const char *dir, const char *name)
{
    static char path[2][512];
    static int which;
    which ^= 1;
    snprintf(path[which], sizeof path[which], "%s/%s", dir, name);
    return path[which];
}

void make_temp_dir(char *buf, size_t len)
{
    snprintf(buf, len, "/tmp/charrnn-test-XXXXXX");
    if (!mkdtemp(buf))
        buf[0] = 0;
}

void write_text_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return;
    fwrite(data, 1, len, f);
    fclose(f);
}

int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st, (void)type, (void)ftw;
    return remove(path);
}

void remove_tree(const char *path)
{
    if (path[0])
        nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Forks a child for start_charrnn and start_shell: stdin and stdout /dev/null, stderr into c->err_fd. */
static pid_t start_child(Child *c, const char *cwd)
{
    int pe[2];
    memset(c, 0, sizeof *c);
    if (pipe(pe) != 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        setpgid(0, 0); /* a group of its own, as a job a terminal runs: kill(-pid) signals all of it */
        if (cwd && chdir(cwd) != 0)
            _exit(127);
        int devnull = open("/dev/null", O_RDWR);
        dup2(devnull, 0);
        dup2(devnull, 1);
        dup2(pe[1], 2);
        close(pe[0]);
        return 0;
    }
    close(pe[1]);
    c->pid = (int)pid;
    c->err_fd = pe[0];
    return pid;
}

int start_shell(Child *c, const char *cwd, const char *command)
{
    pid_t pid = start_child(c, cwd);
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", command, (char *)NULL);
        _exit(127);
    }
    return pid > 0 ? 0 : -1;
}

int start_charrnn(Child *c, const char *cwd, char *const args[], long file_size_limit)
{
    pid_t pid = start_child(c, cwd);
    if (pid == 0) {
        if (file_size_limit > 0) { /* charrnn ignores SIGXFSZ: a write past the limit fails, as on a full disk */
            struct rlimit lim = {.rlim_cur = (rlim_t)file_size_limit, .rlim_max = RLIM_INFINITY};
            setrlimit(RLIMIT_FSIZE, &lim);
        }
        exec_charrnn(NULL, NULL, args);
    }
    return pid > 0 ? 0 : -1;
}

int start_launched(Child *c, char *const launch[], const char *program, const char *cwd, char *const args[])
{
    pid_t pid = start_child(c, cwd);
    if (pid == 0)
        exec_charrnn(launch, program, args);
    return pid > 0 ? 0 : -1;
}

int wait_for_stderr(Child *c, const char *needle)
{
    while (!strstr(c->err, needle)) {
        if (!drain(c->err_fd, c->err, sizeof c->err, &c->err_len))
            return 0;
    }
    return 1;
}

int finish_charrnn(Child *c)
{
    while (drain(c->err_fd, c->err, sizeof c->err, &c->err_len))
        ;
    close(c->err_fd);
    int status;
    struct rusage usage;
    wait4((pid_t)c->pid, &status, 0, &usage);
    c->max_rss_kb = usage.ru_maxrss;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

void write_repeated_file(const char *dir, const char *name, const char *text, int times)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f)
        abort();
    for (int i = 0; i < times; i++)
        fputs(text, f);
    fclose(f);
}
