/* charrnn plot: an SVG chart of the train and validation loss in a `charrnn train --log` CSV. */
#define _POSIX_C_SOURCE 200809L
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "options.h"
#include "plot.h"

#define PLOT_USAGE "charrnn plot RUN.csv [-o OUT.svg] [options]"
#define PLOT_MARK_WITHIN 65536 /* bytes of an existing output searched for PLOT_SVG_MARK: past any --title */

/* A chart may replace only what plot wrote itself: not a special file, not another kind of file. */
static int check_output(const char *out, const char *csv, Err *e)
{
    struct stat st;
    if (same_file(csv, out))
        return err_set(e, "plot: %s: the output would overwrite the log itself; choose another with -o FILE", out);
    if (stat(out, &st) != 0)
        return 0;
    if (special_file_kind(st.st_mode))
        return err_set(e, "plot: -o %s: is %s, not a chart file; choose a file path", out, special_file_kind(st.st_mode));
    int fd = open_regular(out, O_RDONLY, "a chart", e);
    if (fd < 0)
        return -1;
    char head[PLOT_MARK_WITHIN + 1];
    ssize_t n = read(fd, head, PLOT_MARK_WITHIN);
    close(fd);
    head[n > 0 ? n : 0] = 0;
    if (st.st_size > 0 && !strstr(head, PLOT_SVG_MARK))
        return err_set(e,
                       "plot: -o %s: exists and is not a chart charrnn plot wrote; it replaces only its own charts, so "
                       "choose another path",
                       out);
    return 0;
}

int cmd_plot(int argc, char **argv, const GlobalOptions *g)
{
    const char *out = NULL, *title = NULL;
    float smooth = 0.9f;
    int max_points = PLOT_DEFAULT_MAX_POINTS;
    Option opts[] = {
        {"--out", ARG_STRING, &out, 0, 0, NULL, "FILE",
         "SVG file to write, also -o FILE (default: the log's path, .csv replaced by .svg)"},
        {"--smooth", ARG_FLOAT, &smooth, 0, 0.999, NULL, "A",
         "smooth the train loss by a moving average that keeps A of the past; 0: raw only"},
        {"--title", ARG_STRING, &title, 0, 0, NULL, "TEXT", "chart title (default: Training loss: the log's name)"},
        {"--max-points", ARG_INT, &max_points, 100, 100000, NULL, "N",
         "most points per line; longer logs are downsampled, keeping highs and lows"},
    };
    const int n_opts = (int)(sizeof opts / sizeof opts[0]);

    /* The option table takes --name options only: pick out the log file (the one positional argument) and
     * spell -o as --out, leaving option values as they are. */
    char **args = malloc(((size_t)argc + 1) * sizeof *args);
    if (!args)
        return cli_fail(EXIT_ERROR, "plot: out of memory");
    static char out_name[] = "--out";
    const char *csv = NULL, *extra = NULL;
    int n = 0;
    for (int i = 0; i < argc; i++) {
        char *a = argv[i];
        if (strcmp(a, "-o") == 0) {
            args[n++] = out_name;
            if (i + 1 < argc)
                args[n++] = argv[++i];
            continue;
        }
        if (strncmp(a, "--", 2) == 0 && !strchr(a, '=')) {
            const Option *o = option_find(opts, n_opts, a);
            args[n++] = a;
            if (o && o->type != ARG_FLAG && i + 1 < argc)
                args[n++] = argv[++i];
            continue;
        }
        if (a[0] != '-' || strcmp(a, "-") == 0) {
            if (!csv)
                csv = a;
            else if (!extra)
                extra = a;
            continue;
        }
        args[n++] = a; /* -h, or something the parser will name */
    }
    args[n] = NULL;
    int status;
    int go_on = cli_parse(opts, n_opts, n, args, "plot", PLOT_USAGE,
                          "Draws the train and validation loss of a training log (charrnn train --log FILE) as an "
                          "SVG chart:\nloss against steps and against elapsed training time, in nats/char.",
                          g, &status);
    free(args);
    if (!go_on)
        return status;
    char msg[600];
    if (extra) {
        snprintf(msg, sizeof msg, "plot: unexpected argument '%s' (one log at a time: %s)", extra, PLOT_USAGE);
        return cli_fail(EXIT_USAGE, msg);
    }
    if (!csv)
        return cli_fail(EXIT_USAGE, "plot: which log? usage: " PLOT_USAGE " (see charrnn plot --help)");
    if (strcmp(csv, "-") == 0)
        return cli_fail(EXIT_USAGE, "plot: reading the log from standard input is not supported; name the file");

    char *default_out = NULL;
    if (!out && !(out = default_out = plot_default_output(csv)))
        return cli_fail(EXIT_ERROR, "plot: out of memory");
    int rc = EXIT_OK;
    Err e;
    PlotLog log;
    if (check_output(out, csv, &e) != 0) {
        rc = cli_fail(EXIT_USAGE, e.msg);
        goto done;
    }
    if (plot_log_read(csv, &log, &e) != 0) {
        rc = cli_fail(EXIT_USAGE, e.msg);
        goto done;
    }
    char default_title[320];
    if (!title) {
        const char *base = strrchr(csv, '/');
        snprintf(default_title, sizeof default_title, "Training loss: %s", base && base[1] ? base + 1 : csv);
        title = default_title;
    }
    PlotStyle style = {title, smooth, max_points};
    if (make_parent_dirs(out, &e) != 0 || plot_write_svg(&log, &style, out, &e) != 0) {
        rc = cli_fail(EXIT_ERROR, e.msg);
    } else {
        char rows[32];
        printf("%s: %s row%s, %zu evaluation%s", out, fmt_count(log.rows, rows, sizeof rows), log.rows == 1 ? "" : "s",
               log.val.n, log.val.n == 1 ? "" : "s");
        if (log.n_segments > 1)
            printf(", %zu resume%s", log.n_segments - 1, log.n_segments == 2 ? "" : "s");
        if (log.skipped)
            printf(", %zu non-finite value%s skipped", log.skipped, log.skipped == 1 ? "" : "s");
        if (log.truncated)
            printf(", an unfinished last line ignored");
        printf("\n");
    }
    plot_log_free(&log);
done:
    free(default_out);
    return rc;
}
