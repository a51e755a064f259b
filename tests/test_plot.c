/* charrnn plot: reading training logs (resumed runs, NaN, missing validation, bad files) and the SVG
 * chart, through the plot API and through the program (well-formed XML, rendered by rsvg-convert where
 * it is installed). */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "plot.h"
#include "testutil.h"

#define HEADER "step,seconds,tokens_per_s,train_loss,val_loss,lr,grad_norm\n"

static char out[1 << 16], err[1 << 16];
static char dir[64];

static void setup(void)
{
    make_temp_dir(dir, sizeof dir);
    cr_assert(dir[0], "cannot make a temporary directory");
}

static void teardown(void)
{
    remove_tree(dir);
}

/* dir/name in buf. */
static const char *in_dir(char *buf, size_t cap, const char *name)
{
    snprintf(buf, cap, "%s/%s", dir, name);
    return buf;
}

static const char *write_log(const char *name, const char *text)
{
    static char path[256];
    write_text_file(in_dir(path, sizeof path, name), text, strlen(text));
    return path;
}

/* Reading a log that should be refused: the message names the file and contains `needle`. */
static void expect_read_error(const char *text, const char *needle)
{
    const char *path = write_log("bad.csv", text);
    PlotLog log;
    Err e;
    cr_assert_eq(plot_log_read(path, &log, &e), -1, "accepted: %s", text);
    cr_expect(strstr(e.msg, path) != NULL, "the message should name %s: %s", path, e.msg);
    cr_expect(strstr(e.msg, needle) != NULL, "the message should contain '%s': %s", needle, e.msg);
    cr_expect(strchr(e.msg, '\n') == NULL, "one line: %s", e.msg);
}

static char *render(const PlotLog *log, const char *title, float smooth, int max_points, size_t *len)
{
    PlotStyle style = {title, smooth, max_points};
    char *svg;
    Err e;
    cr_assert_eq(plot_render_svg(log, &style, &svg, len, &e), 0, "%s", e.msg);
    cr_assert_eq(strlen(svg), *len);
    return svg;
}

static size_t count_of(const char *s, const char *needle)
{
    size_t n = 0;
    for (const char *p = s; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

/* ---------------------------------------------------------------------------------------------------
 * A minimal well-formedness check: one root element, tags nested and closed in order, attribute
 * values quoted without '<', '&' only in entity and character references, nothing after the root. */

static int check_reference(const char **p)
{
    const char *s = *p + 1;
    const char *semi = strchr(s, ';');
    if (!semi || semi - s > 10)
        return 0;
    if (*s == '#') {
        s++;
        int hex = *s == 'x';
        s += hex;
        if (s == semi)
            return 0;
        for (; s < semi; s++)
            if (!(hex ? (strchr("0123456789abcdefABCDEF", *s) != NULL) : (*s >= '0' && *s <= '9')))
                return 0;
    } else {
        static const char *const names[] = {"amp", "lt", "gt", "quot", "apos"};
        int ok = 0;
        for (int i = 0; i < 5; i++)
            ok |= (size_t)(semi - s) == strlen(names[i]) && strncmp(s, names[i], strlen(names[i])) == 0;
        if (!ok)
            return 0;
    }
    *p = semi + 1;
    return 1;
}

static int is_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("_:-.", c);
}

/* Returns NULL when well-formed, else what is wrong. */
static const char *xml_problem(const char *doc)
{
    static char why[160];
    const char *stack[64];
    size_t lens[64];
    int depth = 0, roots = 0;
    const char *p = doc;
    if (strncmp(p, "<?xml ", 6) == 0) {
        if (!(p = strstr(p, "?>")))
            return "unterminated XML declaration";
        p += 2;
    }
    while (*p) {
        if (*p == '&') {
            if (!check_reference(&p))
                return "bare '&' in text";
            continue;
        }
        if (*p != '<') {
            if (depth == 0 && !strchr(" \t\r\n", *p))
                return "text outside the root element";
            p++;
            continue;
        }
        if (strncmp(p, "<!--", 4) == 0) {
            if (!(p = strstr(p + 4, "-->")))
                return "unterminated comment";
            p += 3;
            continue;
        }
        if (p[1] == '/') { /* closing tag */
            const char *name = p + 2, *q = name;
            while (is_name_char(*q))
                q++;
            if (depth == 0 || (size_t)(q - name) != lens[depth - 1] || strncmp(name, stack[depth - 1], lens[depth - 1]))
                return snprintf(why, sizeof why, "mismatched closing tag near '%.20s'", p), why;
            while (*q == ' ')
                q++;
            if (*q != '>')
                return "malformed closing tag";
            depth--;
            p = q + 1;
            continue;
        }
        const char *name = ++p; /* opening or empty-element tag */
        while (is_name_char(*p))
            p++;
        size_t name_len = (size_t)(p - name);
        if (name_len == 0)
            return snprintf(why, sizeof why, "'<' without a tag name near '%.20s'", name - 1), why;
        if (depth == 0 && ++roots > 1)
            return "more than one root element";
        for (;;) {
            while (*p && strchr(" \t\r\n", *p))
                p++;
            if (*p == '>' || (p[0] == '/' && p[1] == '>'))
                break;
            const char *attr = p;
            while (is_name_char(*p))
                p++;
            if (p == attr || *p != '=' || (p[1] != '"' && p[1] != '\''))
                return snprintf(why, sizeof why, "malformed attribute near '%.20s'", attr), why;
            char quote = p[1];
            p += 2;
            while (*p && *p != quote) {
                if (*p == '<')
                    return "'<' in an attribute value";
                if (*p == '&') {
                    if (!check_reference(&p))
                        return "bare '&' in an attribute value";
                    continue;
                }
                p++;
            }
            if (!*p)
                return "unterminated attribute value";
            p++;
        }
        if (*p == '/') {
            p += 2;
            continue;
        }
        if (depth == 64)
            return "nested too deeply";
        stack[depth] = name;
        lens[depth++] = name_len;
        p++;
    }
    if (depth != 0)
        return "unclosed elements at the end";
    if (roots != 1)
        return "no root element";
    return NULL;
}

static int have_tool(const char *tool)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", tool);
    return system(cmd) == 0;
}

/* The whole file, NUL-terminated (read_file's buffer is). */
static char *slurp(const char *path, size_t *len)
{
    uint8_t *data;
    Err e;
    cr_assert_eq(read_file(path, &data, len, &e), 0, "%s", e.msg);
    return (char *)data;
}

/* The SVG file is well-formed (always by the check above, and by xmllint where installed) and, where
 * rsvg-convert is installed, renders to a PNG. */
static void expect_valid_svg_file(const char *path)
{
    size_t len;
    char *svg = slurp(path, &len);
    cr_assert_gt(len, 0, "%s is empty", path);
    const char *why = xml_problem(svg);
    cr_expect(why == NULL, "%s is not well-formed: %s", path, why ? why : "");
    cr_expect(strstr(svg, "<svg xmlns=\"http://www.w3.org/2000/svg\"") != NULL);
    free(svg);
    char cmd[600];
    if (have_tool("xmllint")) {
        snprintf(cmd, sizeof cmd, "xmllint --noout '%s'", path);
        cr_expect_eq(system(cmd), 0, "xmllint rejects %s", path);
    }
    if (have_tool("rsvg-convert")) {
        char png[300];
        snprintf(png, sizeof png, "%s.png", path);
        snprintf(cmd, sizeof cmd, "rsvg-convert '%s' -o '%s'", path, png);
        cr_assert_eq(system(cmd), 0, "rsvg-convert failed on %s", path);
        size_t n;
        char *data = slurp(png, &n);
        cr_expect_gt(n, 8, "the PNG is empty");
        cr_expect(n >= 8 && memcmp(data, "\x89PNG\r\n\x1a\n", 8) == 0, "not a PNG signature");
        free(data);
    }
}

/* ---------------------------------------------------------------------------------------------------
 * Reading logs */

/* Three rows of one run, then a --resume appending two more whose clock restarted at 0. */
static const char *RESUMED = HEADER "1,0.100,1000.0,4.100000,,0.002,0.5\n"
                                    "2,0.200,1000.0,4.000000,3.950000,0.002,0.5\n"
                                    "3,0.300,1000.0,3.900000,,0.002,0.5\n"
                                    "4,0.050,1000.0,3.800000,,0.002,0.5\n"
                                    "5,0.150,1000.0,3.700000,3.650000,0.002,0.5\n";

Test(plot, resumed_segments_make_seconds_cumulative, .init = setup, .fini = teardown)
{
    PlotLog log;
    Err e;
    cr_assert_eq(plot_log_read(write_log("run.csv", RESUMED), &log, &e), 0, "%s", e.msg);
    cr_expect_eq(log.rows, 5);
    cr_expect_eq(log.skipped, 0);
    cr_assert_eq(log.train.n, 5);
    const float want[5] = {0.1f, 0.2f, 0.3f, 0.35f, 0.45f};
    for (int i = 0; i < 5; i++) {
        cr_expect_float_eq(log.train.step[i], (float)(i + 1), 1e-6);
        cr_expect_float_eq(log.train.seconds[i], want[i], 1e-5, "row %d: %f", i, (double)log.train.seconds[i]);
        cr_expect_float_eq(log.train.loss[i], 4.1f - 0.1f * (float)i, 1e-5);
    }
    cr_assert_eq(log.val.n, 2);
    cr_expect_float_eq(log.val.step[1], 5.0f, 1e-6);
    cr_expect_float_eq(log.val.seconds[1], 0.45f, 1e-5);
    cr_expect_float_eq(log.val.loss[1], 3.65f, 1e-5);
    cr_assert_eq(log.n_segments, 2);
    cr_expect_eq(log.segments[1].train_start, 3);
    cr_expect_eq(log.segments[1].val_start, 1);
    cr_expect_float_eq(log.segments[1].seconds, 0.3f, 1e-6);
    cr_expect_eq(log.segments[1].overlaps, 0, "step 4 follows step 3: a plain continuation");
    plot_log_free(&log);
}

Test(plot, resume_from_an_earlier_checkpoint_starts_an_overlapping_segment, .init = setup, .fini = teardown)
{
    /* Steps 1-4, then a run resumed at step 2 whose first row takes longer than the old clock ran. */
    const char *text = HEADER "1,0.1,1,4.0,,0.002,0.5\n2,0.2,1,3.9,,0.002,0.5\n3,0.3,1,3.8,,0.002,0.5\n"
                              "4,0.4,1,3.7,,0.002,0.5\n3,0.5,1,3.8,,0.002,0.5\n4,0.6,1,3.7,,0.002,0.5\n";
    PlotLog log;
    Err e;
    cr_assert_eq(plot_log_read(write_log("run.csv", text), &log, &e), 0, "%s", e.msg);
    cr_assert_eq(log.n_segments, 2);
    cr_expect_eq(log.segments[1].overlaps, 1);
    cr_expect_float_eq(log.train.seconds[4], 0.9f, 1e-5, "%f", (double)log.train.seconds[4]);
    size_t len;
    char *svg = render(&log, NULL, 0.9f, 0, &len);
    cr_expect_eq(count_of(svg, "stroke-dasharray=\"4 3\">"), 2, "one resume line per panel");
    free(svg);
    plot_log_free(&log);
}

Test(plot, nan_and_inf_values_are_skipped_and_counted, .init = setup, .fini = teardown)
{
    const char *text = HEADER "1,0.1,1000,4.1,,0.002,0.5\n"
                              "2,0.2,1000,nan,inf,0.002,0.5\n"
                              "3,0.3,1000,-nan,3.9,0.002,0.5\n"
                              "nan,0.4,1000,3.8,,0.002,0.5\n"
                              "5,0.5,1000,3.7,-inf,0.002,0.5\n";
    PlotLog log;
    Err e;
    cr_assert_eq(plot_log_read(write_log("nan.csv", text), &log, &e), 0, "%s", e.msg);
    cr_expect_eq(log.rows, 5);
    cr_expect_eq(log.skipped, 5, "two NaN train losses, two infinite val losses, one NaN step");
    cr_assert_eq(log.train.n, 2);
    cr_expect_float_eq(log.train.loss[1], 3.7f, 1e-6);
    cr_assert_eq(log.val.n, 1);
    cr_expect_float_eq(log.val.loss[0], 3.9f, 1e-6);
    size_t len;
    char *svg = render(&log, NULL, 0, 0, &len);
    cr_expect(strstr(svg, "nan") == NULL && strstr(svg, "inf") == NULL, "no non-finite coordinates");
    cr_expect(strstr(svg, "5 non-finite values skipped") != NULL);
    free(svg);
    plot_log_free(&log);
}

Test(plot, log_without_validation_rows_omits_that_series_and_says_so, .init = setup, .fini = teardown)
{
    const char *text = HEADER "1,0.1,1000,4.1,,0.002,0.5\n2,0.2,1000,4.0,,0.002,0.5\n3,0.3,1000,3.9,,0.002,0.5\n";
    PlotLog log;
    Err e;
    cr_assert_eq(plot_log_read(write_log("noval.csv", text), &log, &e), 0, "%s", e.msg);
    cr_expect_eq(log.val.n, 0);
    cr_expect_eq(log.train.n, 3);
    size_t len;
    char *svg = render(&log, NULL, 0.9f, 0, &len);
    cr_expect_eq(count_of(svg, "validation: none in this log"), 2, "in both legends");
    cr_expect(strstr(svg, "stroke=\"#d62728\" stroke-width=\"2.5\"") == NULL, "no validation line");
    cr_expect(strstr(svg, "train, EMA-smoothed (0.9)") != NULL, "the legend states the smoothing");
    free(svg);
    plot_log_free(&log);
}

Test(plot, bad_logs_are_refused_naming_the_file_and_the_problem, .init = setup, .fini = teardown)
{
    expect_read_error("", "is empty");
    expect_read_error(HEADER, "has the header but no rows");
    expect_read_error("a,b,c\n1,2,3\n", "not a charrnn training log");
    expect_read_error("step,seconds\n1,2\n", "found 'step,seconds'");
    expect_read_error("\x89PNG\r\n\x1a\n\x00\x00", "not a charrnn training log");
    expect_read_error(HEADER "1,0.1,1000,4.1,,0.002,0.5\n2,0.2,1000,abc,,0.002,0.5\n",
                      "line 3: train_loss: expected a number, found 'abc'");
    expect_read_error(HEADER "1,0.1,1000,4.1,,0.002\n", "line 2: expected 7 comma-separated fields, found 6");
    expect_read_error(HEADER "1,,1000,4.1,,0.002,0.5\n", "line 2: seconds is empty");
    expect_read_error(HEADER "1,0.1,1000,4.1,4.0x,0.002,0.5\n", "val_loss: expected a number, found '4.0x'");
    expect_read_error(HEADER "1,0.1,1000,nan,nan,0.002,0.5\n", "none of its 1 rows has a finite loss");
    PlotLog log;
    Err e;
    char path[256];
    cr_expect_eq(plot_log_read(in_dir(path, sizeof path, "missing.csv"), &log, &e), -1);
    cr_expect(strstr(e.msg, "missing.csv: cannot open") != NULL, "%s", e.msg);
    cr_expect_eq(plot_log_read(dir, &log, &e), -1);
    cr_expect(strstr(e.msg, "is a directory") != NULL, "%s", e.msg);
}

Test(plot, unfinished_last_line_of_a_running_trainer_is_ignored, .init = setup, .fini = teardown)
{
    PlotLog log;
    Err e;
    cr_assert_eq(plot_log_read(write_log("live.csv", HEADER "1,0.1,1000,4.1,,0.002,0.5\n2,0.2,10"), &log, &e), 0, "%s",
                 e.msg);
    cr_expect_eq(log.rows, 1);
    cr_expect_eq(log.truncated, 1);
    plot_log_free(&log);
    /* A complete last row without its newline counts. */
    cr_assert_eq(
        plot_log_read(write_log("done.csv", HEADER "1,0.1,1000,4.1,,0.002,0.5\n2,0.2,1000,4.0,,0.002,0.5"), &log, &e),
        0, "%s", e.msg);
    cr_expect_eq(log.rows, 2);
    cr_expect_eq(log.truncated, 0);
    plot_log_free(&log);
}

Test(plot, single_row_log_draws_its_points, .init = setup, .fini = teardown)
{
    PlotLog log;
    Err e;
    cr_assert_eq(plot_log_read(write_log("one.csv", HEADER "1,0.1,1000,4.1,4.2,0.002,0.5\n"), &log, &e), 0, "%s",
                 e.msg);
    size_t len;
    char *svg = render(&log, NULL, 0.9f, 0, &len);
    cr_expect_null(xml_problem(svg));
    cr_expect(strstr(svg, "1 row, step 1") != NULL);
    cr_expect_geq(count_of(svg, "<circle"), 4, "a lone point is a dot, in each panel");
    cr_expect(strstr(svg, "nan") == NULL && strstr(svg, "inf") == NULL);
    free(svg);
    plot_log_free(&log);
}

Test(plot, title_is_escaped_for_xml, .init = setup, .fini = teardown)
{
    PlotLog log;
    Err e;
    cr_assert_eq(plot_log_read(write_log("run.csv", RESUMED), &log, &e), 0, "%s", e.msg);
    size_t len;
    char *svg = render(&log, "a<b> & \"c\" 'd' \x01 \xff caf\xc3\xa9", 0.9f, 0, &len);
    const char *want = "a&lt;b&gt; &amp; &quot;c&quot; &apos;d&apos; \xEF\xBF\xBD \xEF\xBF\xBD caf\xc3\xa9";
    cr_expect_eq(count_of(svg, want), 2, "in <title> and in the heading:\n%s", svg);
    cr_expect(strstr(svg, "a<b>") == NULL);
    cr_expect_null(xml_problem(svg));
    free(svg);
    plot_log_free(&log);
}

Test(plot, axes_have_round_ticks_units_and_titles, .init = setup, .fini = teardown)
{
    /* 1000 steps over 250 s, loss from about 4.2 to 1.5. */
    char *text = malloc(1000 * 64 + sizeof HEADER);
    size_t n = (size_t)sprintf(text, HEADER);
    for (int s = 1; s <= 1000; s++)
        n += (size_t)sprintf(text + n, "%d,%.3f,1000,%.4f,%s,0.002,0.5\n", s, s * 0.25, 1.5 + 2.7 * exp(-s / 200.0),
                             s % 100 == 0 ? "2.0" : "");
    PlotLog log;
    Err e;
    cr_assert_eq(plot_log_read(write_log("run.csv", text), &log, &e), 0, "%s", e.msg);
    free(text);
    size_t len;
    char *svg = render(&log, NULL, 0, 0, &len);
    const char *labels[] = {">0</text>",
                            ">200</text>",
                            ">1000</text>",
                            ">250</text>",
                            ">1.5</text>",
                            ">4.0</text>",
                            "loss (nats/char)",
                            ">step<",
                            "elapsed training time (s)",
                            "Loss vs. step",
                            "Loss vs. elapsed training time",
                            "<title>Training loss</title>"};
    for (size_t i = 0; i < sizeof labels / sizeof labels[0]; i++)
        cr_expect(strstr(svg, labels[i]) != NULL, "missing %s", labels[i]);
    cr_expect(strstr(svg, ">1.50</text>") == NULL && strstr(svg, ">1.499") == NULL, "no ragged tick labels");
    cr_expect_eq(count_of(svg, "r=\"3.5\"/>"), 20, "a marker per evaluation in each panel");
    free(svg);
    plot_log_free(&log);
}

Test(plot, huge_log_is_downsampled_to_a_bounded_svg, .init = setup, .fini = teardown)
{
    char path[256];
    FILE *f = fopen(in_dir(path, sizeof path, "huge.csv"), "w");
    cr_assert(f);
    fputs(HEADER, f);
    const int rows = 300000;
    for (int s = 1; s <= rows; s++)
        fprintf(f, "%d,%.3f,1000,%.4f,%s,0.002,0.5\n", s, s * 0.01, 1.5 + 2.7 * exp(-s / 20000.0) + (s % 7) * 0.01,
                s % 10 == 0 ? "2.0" : "");
    fprintf(f, "150000,0.1,1000,9.0,,0.002,0.5\n"); /* a spike, in a resumed segment */
    fclose(f);
    PlotLog log;
    Err e;
    cr_assert_eq(plot_log_read(path, &log, &e), 0, "%s", e.msg);
    cr_expect_eq(log.train.n, (size_t)rows + 1);
    cr_expect_eq(log.val.n, (size_t)rows / 10);
    size_t len;
    char *svg = render(&log, NULL, 0.9f, 1000, &len);
    /* Two panels, three lines (smoothed, raw, validation) of at most ~1000 points of ~14 bytes each. */
    cr_expect_lt(len, 250000, "SVG of %zu bytes", len);
    cr_expect_eq(count_of(svg, "r=\"3.5\"/>"), 0, "no markers on 30,000 evaluations");
    cr_expect_eq(count_of(svg, "r=\"2.0\" fill"), 2, "the lone spike is a dot in each panel");
    cr_expect_null(xml_problem(svg));
    free(svg);
    plot_log_free(&log);
}

Test(plot, default_output_replaces_the_csv_extension)
{
    const char *cases[][2] = {{"run.csv", "run.svg"},         {"logs/a.b.csv", "logs/a.b.svg"}, {"log", "log.svg"},
                              {"dir.csv/x", "dir.csv/x.svg"}, {"runs/.csv", "runs/.csv.svg"},   {"a.CSV", "a.CSV.svg"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *o = plot_default_output(cases[i][0]);
        cr_expect_str_eq(o, cases[i][1]);
        free(o);
    }
}

/* ---------------------------------------------------------------------------------------------------
 * Through the program */

Test(plot_cli, plot_writes_a_well_formed_svg_that_renders, .init = setup, .fini = teardown)
{
    write_log("run.csv", RESUMED);
    int rc = RUN("plot", "run.csv");
    cr_assert_eq(rc, 0, "exit %d: %s", rc, err);
    cr_expect(strstr(out, "run.svg: 5 rows, 2 evaluations, 1 resume") != NULL, "%s", out);
    char path[256];
    expect_valid_svg_file(in_dir(path, sizeof path, "run.svg"));
}

Test(plot_cli, out_option_and_o_choose_the_file, .init = setup, .fini = teardown)
{
    write_log("run.csv", RESUMED);
    char path[256];
    cr_assert_eq(RUN("plot", "-o", "charts/loss.svg", "run.csv"), 0, "%s", err);
    expect_valid_svg_file(in_dir(path, sizeof path, "charts/loss.svg"));
    cr_assert_eq(RUN("plot", "run.csv", "--out", "b.svg", "--smooth", "0", "--title", "-o"), 0, "%s", err);
    size_t len;
    char *svg = slurp(in_dir(path, sizeof path, "b.svg"), &len);
    cr_expect(strstr(svg, "<title>-o</title>") != NULL, "an option's value is left alone");
    cr_expect(strstr(svg, "train, per step") != NULL && strstr(svg, "EMA") == NULL);
    free(svg);
    cr_expect_eq(access(in_dir(path, sizeof path, "run.svg"), F_OK), -1, "no default output when -o is given");
}

Test(plot_cli, help_describes_the_command, .init = setup, .fini = teardown)
{
    cr_assert_eq(RUN("plot", "--help"), 0);
    cr_expect(strstr(out, "usage: charrnn plot RUN.csv") != NULL, "%s", out);
    cr_expect(strstr(out, "--out FILE") != NULL && strstr(out, "--smooth") != NULL, "%s", out);
    cr_assert_eq(RUN("help", "plot"), 0);
    cr_expect(strstr(out, "usage: charrnn plot") != NULL);
}

Test(plot_cli, bad_input_is_one_line_with_status_2, .init = setup, .fini = teardown)
{
    write_log("empty.csv", "");
    write_log("wrong.csv", "time,loss\n1,2\n");
    write_log("text.csv", HEADER "1,0.1,1000,4.1,,0.002,0.5\n2,0.2,1000,four,,0.002,0.5\n");
    write_log("run.csv", RESUMED);
    EXPECT_USAGE_ERROR("empty.csv: is empty", "plot", "empty.csv");
    EXPECT_USAGE_ERROR("wrong.csv: not a charrnn training log", "plot", "wrong.csv");
    EXPECT_USAGE_ERROR("text.csv: line 3: train_loss: expected a number, found 'four'", "plot", "text.csv");
    EXPECT_USAGE_ERROR("nothere.csv: cannot open", "plot", "nothere.csv");
    EXPECT_USAGE_ERROR("which log?", "plot");
    EXPECT_USAGE_ERROR("unexpected argument 'b.csv'", "plot", "run.csv", "b.csv");
    EXPECT_USAGE_ERROR("--smooth: expected a number from 0 to 0.999", "plot", "run.csv", "--smooth", "1");
    EXPECT_USAGE_ERROR("--out needs a value", "plot", "run.csv", "-o");
    EXPECT_USAGE_ERROR("would overwrite the log itself", "plot", "run.csv", "-o", "run.csv");
    char path[256];
    cr_expect_eq(access(in_dir(path, sizeof path, "empty.svg"), F_OK), -1, "nothing written for a bad log");
}

/* A chart replaces only a chart: not a device, a FIFO, a directory, or a file of another kind. */
Test(plot_cli, the_output_replaces_only_a_chart, .init = setup, .fini = teardown)
{
    write_log("run.csv", RESUMED);
    char path[256];
    write_text_file(in_dir(path, sizeof path, "notes.svg"), "my drawing", 10);
    mkdir(in_dir(path, sizeof path, "taken.svg"), 0755);
    cr_assert_eq(mkfifo(in_dir(path, sizeof path, "fifo.svg"), 0600), 0);
    EXPECT_USAGE_ERROR("-o /dev/null: is a character device, not a chart file", "plot", "run.csv", "-o", "/dev/null");
    EXPECT_USAGE_ERROR("-o fifo.svg: is a FIFO (named pipe), not a chart file", "plot", "run.csv", "-o", "fifo.svg");
    EXPECT_USAGE_ERROR("-o taken.svg: is a directory, not a chart file", "plot", "run.csv", "-o", "taken.svg");
    EXPECT_USAGE_ERROR("-o notes.svg: exists and is not a chart charrnn plot wrote", "plot", "run.csv", "-o",
                       "notes.svg");
    uint8_t *notes;
    size_t len;
    Err e;
    cr_assert_eq(read_file(in_dir(path, sizeof path, "notes.svg"), &notes, &len, &e), 0);
    cr_expect(len == 10 && memcmp(notes, "my drawing", 10) == 0, "notes.svg changed");
    free(notes);
    cr_assert_eq(RUN("plot", "run.csv", "-o", "chart.svg"), 0, "%s", err);
    cr_expect_eq(RUN("plot", "run.csv", "-o", "chart.svg", "--title", "Again"), 0, "a chart replaces a chart: %s", err);
}

Test(plot_cli, write_failures_are_one_line_with_status_1, .init = setup, .fini = teardown)
{
    write_log("run.csv", RESUMED);
    int rc = RUN("plot", "run.csv", "-o", "run.csv/x.svg");
    cr_expect_eq(rc, 1, "exit %d: %s", rc, err);
    cr_expect(strstr(err, "run.csv") != NULL && count_lines(err) == 1, "%s", err);
}

Test(plot_cli, plots_the_log_of_a_real_resumed_training_run, .init = setup, .fini = teardown)
{
    char path[256];
    write_repeated_file(dir, "text.txt",
                        "It is a truth universally acknowledged, that a single man in possession\n"
                        "of a good fortune, must be in want of a wife.\n",
                        60);
#define TRAIN(...)                                                                                                     \
    RUN("--device", "cpu", "train", "--data", "text.txt", "--hidden", "12", "--layers", "1", "--embed", "5",           \
        "--seq-len", "8", "--batch", "4", "--eval-every", "10", "--eval-batches", "2", "--sample-length", "0",         \
        "--log", "run.csv", __VA_ARGS__)
    cr_assert_eq(TRAIN("--steps", "30", "--out", "m.ckpt"), 0, "%s", err);
    cr_assert_eq(TRAIN("--resume", "m.ckpt", "--steps", "50"), 0, "%s", err);
    int rc = RUN("plot", "run.csv");
    cr_assert_eq(rc, 0, "exit %d: %s", rc, err);
    cr_expect(strstr(out, "50 rows, 5 evaluations, 1 resume") != NULL, "%s", out);
    expect_valid_svg_file(in_dir(path, sizeof path, "run.svg"));
}
