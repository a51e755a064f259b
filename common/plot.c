/* Training-log charts: a streaming reader for the CSV of `charrnn train --log` and an SVG writer that
 * draws loss against steps and against elapsed time, with axes, round-number ticks, grid and legends. */
#define _POSIX_C_SOURCE 200809L
#include "plot.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

/* ---------------------------------------------------------------------------------------------------
 * Reading the log */

enum { N_COLUMNS = 7, COL_STEP = 0, COL_SECONDS = 1, COL_TRAIN = 3, COL_VAL = 4 };
static const char *const COLUMNS[N_COLUMNS] = {"step",     "seconds", "tokens_per_s", "train_loss",
                                               "val_loss", "lr",      "grad_norm"};
/* A row charrnn writes is under 120 bytes; anything this long is not one. */
#define MAX_LINE 1024

/* s as a short, printable, single-line quotation for an error message. */
static const char *quote(const char *s, char *buf, size_t cap)
{
    size_t o = 0, i = 0;
    for (; s[i] && o + 4 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        buf[o++] = c >= 0x20 && c < 0x7F ? (char)c : '?';
    }
    if (s[i]) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = 0;
    return buf;
}

/* Finite, and still finite once stored as a float. */
static int fits_float(double x)
{
    return isfinite(x) && fabs(x) <= FLT_MAX;
}

static int series_push(PlotSeries *s, double step, double seconds, double loss)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 1024;
        float *a = realloc(s->step, cap * sizeof *a);
        if (!a)
            return -1;
        s->step = a;
        if (!(a = realloc(s->seconds, cap * sizeof *a)))
            return -1;
        s->seconds = a;
        if (!(a = realloc(s->loss, cap * sizeof *a)))
            return -1;
        s->loss = a;
        s->cap = cap;
    }
    s->step[s->n] = (float)step;
    s->seconds[s->n] = (float)seconds;
    s->loss[s->n] = (float)loss;
    s->n++;
    return 0;
}

static int segment_push(PlotLog *log, double step, double seconds, int overlaps)
{
    if (log->n_segments == log->segments_cap) {
        size_t cap = log->segments_cap ? log->segments_cap * 2 : 8;
        PlotSegment *a = realloc(log->segments, cap * sizeof *a);
        if (!a)
            return -1;
        log->segments = a;
        log->segments_cap = cap;
    }
    log->segments[log->n_segments++] = (PlotSegment){log->train.n, log->val.n, (float)step, (float)seconds, overlaps};
    return 0;
}

/* Splits a row into its fields and parses them; an empty val_loss is NaN with *has_val = 0. Returns 0, or
 * -1 with the problem (without the file name) in msg. */
static int parse_row(char *line, double v[N_COLUMNS], int *has_val, char *msg, size_t cap)
{
    char *fields[N_COLUMNS];
    int n = 0;
    for (char *p = line;;) {
        char *comma = strchr(p, ',');
        if (n < N_COLUMNS)
            fields[n] = p;
        n++;
        if (!comma)
            break;
        *comma = 0;
        p = comma + 1;
    }
    if (n != N_COLUMNS) {
        snprintf(msg, cap, "expected %d comma-separated fields, found %d", N_COLUMNS, n);
        return -1;
    }
    *has_val = 1;
    for (int k = 0; k < N_COLUMNS; k++) {
        const char *f = fields[k];
        if (!*f) {
            if (k == COL_VAL) {
                *has_val = 0;
                v[k] = NAN;
                continue;
            }
            snprintf(msg, cap, "%s is empty", COLUMNS[k]);
            return -1;
        }
        char *end;
        v[k] = strtod(f, &end); /* also takes nan, inf and -nan, which the caller skips */
        if (end == f || *end) {
            char q[48];
            snprintf(msg, cap, "%s: expected a number, found '%s'", COLUMNS[k], quote(f, q, sizeof q));
            return -1;
        }
    }
    return 0;
}

/* Reads one line into buf without its line ending. Returns 1 for a line, 0 at end of file, -1 for a line
 * longer than the buffer. *terminated says whether it ended with a newline. */
static int read_line(FILE *f, char *buf, size_t cap, int *terminated)
{
    if (!fgets(buf, (int)cap, f))
        return 0;
    size_t len = strlen(buf);
    *terminated = len > 0 && buf[len - 1] == '\n';
    if (!*terminated && len == cap - 1)
        return -1;
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
        buf[--len] = 0;
    return 1;
}

int plot_log_read_stream(FILE *f, const char *name, PlotLog *log, Err *e)
{
    memset(log, 0, sizeof *log);
    char line[MAX_LINE], q[64], msg[160];
    int terminated;
    int r = read_line(f, line, sizeof line, &terminated);
    if (r == 0) {
        if (ferror(f))
            return err_set(e, "%s: read failed: %s", name, strerror(errno));
        return err_set(e, "%s: is empty; expected a training log written by `charrnn train --log FILE`", name);
    }
    const char *header = line;
    if (strncmp(header, "\xEF\xBB\xBF", 3) == 0) /* a byte-order mark from an editor or spreadsheet */
        header += 3;
    if (r < 0 || strcmp(header, PLOT_LOG_HEADER) != 0)
        return err_set(e, "%s: not a charrnn training log: the first line should be the header '%s', found '%s'", name,
                       PLOT_LOG_HEADER, quote(header, q, sizeof q));

    double offset = 0, prev_step = 0, prev_seconds = 0;
    int have_prev = 0, restart = 0;
    size_t lineno = 1;
    while ((r = read_line(f, line, sizeof line, &terminated)) != 0) {
        lineno++;
        if (r < 0) {
            plot_log_free(log);
            return err_set(e, "%s: line %zu: longer than %d bytes; not a charrnn log row", name, lineno, MAX_LINE - 1);
        }
        if (!line[0])
            continue;
        if (strcmp(line, PLOT_LOG_HEADER) == 0) { /* train writes it again when it appends: a new run follows */
            restart = have_prev;
            continue;
        }
        double v[N_COLUMNS];
        int has_val;
        if (parse_row(line, v, &has_val, msg, sizeof msg) != 0) {
            if (!terminated && feof(f)) { /* the row a running trainer is writing right now */
                log->truncated = 1;
                break;
            }
            plot_log_free(log);
            return err_set(e, "%s: line %zu: %s", name, lineno, msg);
        }
        log->rows++;
        double step = v[COL_STEP], seconds = v[COL_SECONDS];
        if (!fits_float(step) || !fits_float(seconds) || !fits_float(offset + seconds)) {
            log->skipped++;
            continue;
        }
        if (!have_prev || restart || seconds < prev_seconds || step <= prev_step) {
            if (have_prev) /* a resumed run: its clock restarted from 0 */
                offset += prev_seconds;
            if (segment_push(log, step, offset, have_prev && step <= prev_step) != 0)
                goto oom;
        }
        have_prev = 1;
        restart = 0;
        prev_step = step;
        prev_seconds = seconds;
        double t = offset + seconds;
        if (!fits_float(v[COL_TRAIN]))
            log->skipped++;
        else if (series_push(&log->train, step, t, v[COL_TRAIN]) != 0)
            goto oom;
        if (has_val && !fits_float(v[COL_VAL]))
            log->skipped++;
        else if (has_val && series_push(&log->val, step, t, v[COL_VAL]) != 0)
            goto oom;
    }
    if (ferror(f)) {
        plot_log_free(log);
        return err_set(e, "%s: read failed: %s", name, strerror(errno));
    }
    if (log->rows == 0) {
        plot_log_free(log);
        return err_set(e, "%s: has the header but no rows yet; nothing to plot", name);
    }
    if (log->train.n == 0 && log->val.n == 0) {
        size_t rows = log->rows;
        plot_log_free(log);
        return err_set(e, "%s: none of its %zu rows has a finite loss (all NaN or inf); nothing to plot", name, rows);
    }
    return 0;
oom:
    plot_log_free(log);
    return err_set(e, "%s: out of memory at line %zu", name, lineno);
}

int plot_log_read(const char *path, PlotLog *log, Err *e)
{
    memset(log, 0, sizeof *log);
    int fd = open_regular(path, O_RDONLY, "a training log", e);
    FILE *f = fd >= 0 ? fdopen(fd, "rb") : NULL;
    if (!f) {
        if (fd >= 0)
            close(fd);
        return fd >= 0 ? err_set(e, "%s: cannot open: %s", path, strerror(errno)) : -1;
    }
    int rc = plot_log_read_stream(f, path, log, e);
    fclose(f);
    return rc;
}

static void series_free(PlotSeries *s)
{
    free(s->step);
    free(s->seconds);
    free(s->loss);
    memset(s, 0, sizeof *s);
}

void plot_log_free(PlotLog *log)
{
    series_free(&log->train);
    series_free(&log->val);
    free(log->segments);
    memset(log, 0, sizeof *log);
}

char *plot_default_output(const char *csv_path)
{
    size_t n = strlen(csv_path);
    int has_csv = n > 4 && strcmp(csv_path + n - 4, ".csv") == 0 && csv_path[n - 5] != '/';
    size_t keep = has_csv ? n - 4 : n;
    char *out = malloc(keep + 5);
    if (!out)
        return NULL;
    memcpy(out, csv_path, keep);
    memcpy(out + keep, ".svg", 5);
    return out;
}

/* ---------------------------------------------------------------------------------------------------
 * A growing text buffer */

typedef struct {
    char *p;
    size_t n, cap;
    int failed;
} Buf;

static int buf_reserve(Buf *b, size_t extra)
{
    if (b->failed)
        return -1;
    if (b->n + extra + 1 <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 1 << 16;
    while (cap < b->n + extra + 1)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->failed = 1;
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

static void buf_add(Buf *b, const char *s, size_t n)
{
    if (buf_reserve(b, n) != 0)
        return;
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void buf_puts(Buf *b, const char *s)
{
    buf_add(b, s, strlen(s));
}

__attribute__((format(printf, 2, 3))) static void buf_printf(Buf *b, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (k < 0) {
        b->failed = 1;
        return;
    }
    if ((size_t)k < sizeof small) {
        buf_add(b, small, (size_t)k);
        return;
    }
    if (buf_reserve(b, (size_t)k) != 0)
        return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->n, (size_t)k + 1, fmt, ap);
    va_end(ap);
    b->n += (size_t)k;
}

/* Length of the valid UTF-8 sequence at s that encodes a character XML allows, or 0. */
static int xml_char_len(const unsigned char *s)
{
    uint32_t cp;
    int len;
    if (s[0] < 0x80)
        return s[0] >= 0x20 || s[0] == '\t' || s[0] == '\n' || s[0] == '\r';
    if ((s[0] & 0xE0) == 0xC0)
        len = 2, cp = s[0] & 0x1Fu;
    else if ((s[0] & 0xF0) == 0xE0)
        len = 3, cp = s[0] & 0x0Fu;
    else if ((s[0] & 0xF8) == 0xF0)
        len = 4, cp = s[0] & 0x07u;
    else
        return 0;
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3Fu);
    }
    static const uint32_t least[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < least[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF) || cp == 0xFFFE || cp == 0xFFFF)
        return 0;
    return len;
}

/* Text for XML content or a double-quoted attribute: markup characters escaped, line breaks as spaces,
 * invalid UTF-8 and characters XML forbids as U+FFFD. */
static void buf_text(Buf *b, const char *text)
{
    const unsigned char *s = (const unsigned char *)text;
    while (*s) {
        int len = xml_char_len(s);
        if (len == 0) {
            buf_puts(b, "\xEF\xBF\xBD");
            s++;
            continue;
        }
        switch (*s) {
        case '&':
            buf_puts(b, "&amp;");
            break;
        case '<':
            buf_puts(b, "&lt;");
            break;
        case '>':
            buf_puts(b, "&gt;");
            break;
        case '"':
            buf_puts(b, "&quot;");
            break;
        case '\'':
            buf_puts(b, "&apos;");
            break;
        case '\t':
        case '\n':
        case '\r':
            buf_puts(b, " ");
            break;
        default:
            buf_add(b, (const char *)s, (size_t)len);
        }
        s += len;
    }
}

/* ---------------------------------------------------------------------------------------------------
 * Choosing the points to draw */

/* Points picked from a series, in order: index into the series, the value drawn (smoothed or raw) and
 * whether a new line starts there (a new run segment). */
typedef struct {
    size_t *idx;
    float *y;
    unsigned char *brk;
    size_t n, cap;
} Pick;

static int pick_push(Pick *p, size_t idx, float y, int brk)
{
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 256;
        size_t *i = realloc(p->idx, cap * sizeof *i);
        if (!i)
            return -1;
        p->idx = i;
        float *y2 = realloc(p->y, cap * sizeof *y2);
        if (!y2)
            return -1;
        p->y = y2;
        unsigned char *b = realloc(p->brk, cap);
        if (!b)
            return -1;
        p->brk = b;
        p->cap = cap;
    }
    p->idx[p->n] = idx;
    p->y[p->n] = y;
    p->brk[p->n] = (unsigned char)brk;
    p->n++;
    return 0;
}

static void pick_free(Pick *p)
{
    free(p->idx);
    free(p->y);
    free(p->brk);
    memset(p, 0, sizeof *p);
}

/* Exponential moving average with the start-up bias removed (the first value is the first loss). */
typedef struct {
    double a, ema, weight;
} Ema;

static float ema_next(Ema *m, float x)
{
    if (m->a <= 0)
        return x;
    m->ema = m->a * m->ema + (1 - m->a) * x;
    m->weight = m->a * m->weight + (1 - m->a);
    return (float)(m->ema / m->weight);
}

/* Picks at most about `budget` points of a series: every point when they fit, else per bucket of
 * consecutive points the lowest and the highest (in their order), which keeps spikes visible. The line
 * breaks where a resumed run overlaps the steps before it; each piece is picked on its own. smooth > 0
 * draws the EMA. */
static int pick_series(const PlotLog *log, const PlotSeries *s, int is_val, double smooth, size_t budget, Pick *p)
{
    memset(p, 0, sizeof *p);
    size_t pieces = 1;
    for (size_t k = 1; k < log->n_segments; k++)
        pieces += log->segments[k].overlaps != 0;
    int split = pieces > 1 && pieces <= budget / 8; /* very many (a garbled log): one line */
    for (size_t a = 0, b, k = 0; a < s->n; a = b) {
        Ema m = {smooth, 0, 0}; /* a piece repeats steps from another state: its average starts afresh */
        b = s->n;
        for (k++; split && k < log->n_segments; k++) {
            size_t start = is_val ? log->segments[k].val_start : log->segments[k].train_start;
            if (log->segments[k].overlaps && start > a) {
                b = start;
                break;
            }
        }
        size_t len = b - a;
        size_t share = (size_t)((double)budget * (double)len / (double)s->n);
        if (share < 4)
            share = 4;
        int brk = 1;
        if (len <= share) {
            for (size_t i = a; i < b; i++, brk = 0)
                if (pick_push(p, i, ema_next(&m, s->loss[i]), brk) != 0)
                    return -1;
            continue;
        }
        /* The first and the last point of the piece, and between them each bucket's low and high. */
        size_t buckets = share / 2 > 1 ? share / 2 - 1 : 1, last = SIZE_MAX;
        float v_last = 0;
        for (size_t j = 0; j < buckets; j++) {
            size_t lo = a + len * j / buckets, hi = a + len * (j + 1) / buckets;
            size_t imin = lo, imax = lo;
            float vmin = INFINITY, vmax = -INFINITY;
            for (size_t i = lo; i < hi; i++) {
                float v = ema_next(&m, s->loss[i]);
                if (i == a) {
                    if (pick_push(p, i, v, 1) != 0)
                        return -1;
                    last = i;
                }
                if (v < vmin)
                    vmin = v, imin = i;
                if (v > vmax)
                    vmax = v, imax = i;
                v_last = v;
            }
            if (hi == lo)
                continue;
            size_t i1 = imin < imax ? imin : imax, i2 = imin < imax ? imax : imin;
            float v1 = imin < imax ? vmin : vmax, v2 = imin < imax ? vmax : vmin;
            if (i1 != last && pick_push(p, i1, v1, 0) != 0)
                return -1;
            if (i2 != i1 && i2 != last && pick_push(p, i2, v2, 0) != 0)
                return -1;
            last = i2;
        }
        if (last != b - 1 && pick_push(p, b - 1, v_last, 0) != 0)
            return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------------------
 * Axes */

typedef struct {
    double lo, hi, step;
} Axis;

/* 1, 2, 5 or 10 times a power of ten, whichever is nearest x. */
static double nice_number(double x)
{
    double p = pow(10, floor(log10(x))), f = x / p;
    return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * p;
}

/* An axis from lo to hi widened to round ticks, about `ticks` of them, at least min_step apart; a range of
 * zero width gets pad on either side. */
static Axis nice_axis(double lo, double hi, double pad, int ticks, double min_step)
{
    if (!(hi - lo > 1e-9 * fmax(fabs(lo), fabs(hi)))) {
        pad = fmax(pad, fabs(lo) * 0.05);
        lo -= pad;
        hi += pad;
    }
    double step = fmax(nice_number((hi - lo) / (ticks - 1)), min_step);
    Axis a = {floor(lo / step) * step, ceil(hi / step) * step, step};
    if (a.hi <= a.lo)
        a.hi = a.lo + step;
    return a;
}

/* A tick label: as many decimals as the step needs; k and M for large step counts. */
static void tick_label(double v, const Axis *a, int suffixes, char *buf, size_t cap)
{
    double step = a->step;
    const char *suffix = "";
    if (suffixes && fmax(fabs(a->lo), fabs(a->hi)) >= 1e7 && step >= 1e5) {
        v /= 1e6, step /= 1e6, suffix = "M";
    } else if (suffixes && fmax(fabs(a->lo), fabs(a->hi)) >= 1e5 && step >= 100) {
        v /= 1e3, step /= 1e3, suffix = "k";
    }
    if (fabs(v) < step * 1e-6) {
        snprintf(buf, cap, "0");
        return;
    }
    if (fabs(v) >= 1e15 || (v != 0 && fabs(v) < 1e-6)) {
        snprintf(buf, cap, "%.3g%s", v, suffix);
        return;
    }
    int decimals = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
    if (decimals > 9)
        decimals = 9;
    snprintf(buf, cap, "%.*f%s", decimals, v, suffix);
}

/* ---------------------------------------------------------------------------------------------------
 * The chart */

#define WIDTH 1200
#define HEIGHT 520
#define PANEL_W 600
#define PLOT_TOP 118
#define PLOT_BOTTOM (HEIGHT - 64)
#define MARGIN_LEFT 78
#define MARGIN_RIGHT 24
#define FONT "DejaVu Sans, Helvetica, Arial, sans-serif"
#define TRAIN_COLOR "#1f77b4"
#define VAL_COLOR "#d62728"
#define MAX_MARKERS 150
#define MAX_RESUME_LINES 50

typedef struct {
    const PlotLog *log;
    const PlotStyle *style;
    Pick train, raw, val; /* train: smoothed (or raw when not smoothing); raw: only when smoothing */
    double smooth;
    double time_scale; /* seconds per unit on the time axis */
    const char *time_unit;
} Chart;

typedef struct {
    double left, right, top, bottom;
    Axis x, y;
    int by_time;
} Panel;

static double xpos(const Panel *p, double x)
{
    return p->left + (x - p->x.lo) / (p->x.hi - p->x.lo) * (p->right - p->left);
}

static double ypos(const Panel *p, double y)
{
    return p->bottom - (y - p->y.lo) / (p->y.hi - p->y.lo) * (p->bottom - p->top);
}

static double point_x(const Chart *c, const Panel *p, const PlotSeries *s, size_t i)
{
    return p->by_time ? (double)s->seconds[i] / c->time_scale : (double)s->step[i];
}

/* A series as a path that breaks between segments; lone points (a one-row segment) as dots. */
static void draw_line(Buf *b, const Chart *c, const Panel *p, const PlotSeries *s, const Pick *k, const char *attrs,
                      double dot_r, const char *color)
{
    if (k->n == 0)
        return;
    buf_printf(b, "<path %s d=\"", attrs);
    for (size_t j = 0; j < k->n; j++) {
        buf_printf(b, "%s%.1f,%.1f", k->brk[j] ? "M" : "L", xpos(p, point_x(c, p, s, k->idx[j])), ypos(p, k->y[j]));
        if (j % 12 == 11)
            buf_puts(b, "\n");
    }
    buf_puts(b, "\"/>\n");
    for (size_t j = 0; j < k->n; j++)
        if (k->brk[j] && (j + 1 == k->n || k->brk[j + 1]))
            buf_printf(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"%.1f\" fill=\"%s\"/>\n",
                       xpos(p, point_x(c, p, s, k->idx[j])), ypos(p, k->y[j]), dot_r, color);
}

static void series_x_range(const Chart *c, const Panel *p, const PlotSeries *s, double *lo, double *hi)
{
    for (size_t i = 0; i < s->n; i++) {
        double x = point_x(c, p, s, i);
        *lo = fmin(*lo, x);
        *hi = fmax(*hi, x);
    }
}

static size_t utf8_length(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

static void draw_legend(Buf *b, const Chart *c, const Panel *p)
{
    char train_label[96], raw_label[64] = "";
    const PlotLog *log = c->log;
    if (log->train.n == 0)
        snprintf(train_label, sizeof train_label, "train: no finite values in this log");
    else if (c->smooth > 0)
        snprintf(train_label, sizeof train_label, "train, EMA-smoothed (%g)", c->smooth);
    else
        snprintf(train_label, sizeof train_label, "train, per step");
    if (log->train.n > 0 && c->smooth > 0)
        snprintf(raw_label, sizeof raw_label, "train, per step");
    const char *val_label = log->val.n ? "validation" : "validation: none in this log";
    int resumes = log->n_segments > 1 && log->n_segments - 1 <= MAX_RESUME_LINES;
    const char *labels[4] = {train_label, raw_label, val_label, resumes ? "resumed run" : ""};
    size_t longest = 0;
    int rows = 0;
    for (int i = 0; i < 4; i++) {
        if (labels[i][0])
            rows++;
        longest = utf8_length(labels[i]) > longest ? utf8_length(labels[i]) : longest;
    }
    double w = 44 + 6.8 * (double)longest + 10, h = 10 + 18.0 * rows;
    double x = p->right - 10 - w, y = p->top + 10;
    buf_printf(b,
               "<g font-size=\"12\">\n<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#fff\" "
               "fill-opacity=\"0.9\" stroke=\"#bbb\" rx=\"3\"/>\n",
               x, y, w, h);
    double ly = y + 5 + 9;
    for (int i = 0; i < 4; i++) {
        if (!labels[i][0])
            continue;
        double x1 = x + 8, x2 = x + 36, ty = ly + 4;
        if (i == 0 && log->train.n)
            buf_printf(b,
                       "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"1.4\"/>\n",
                       x1, ly, x2, ly, TRAIN_COLOR);
        if (i == 1)
            buf_printf(b,
                       "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"0.8\" "
                       "stroke-opacity=\"0.35\"/>\n",
                       x1, ly, x2, ly, TRAIN_COLOR);
        if (i == 2 && log->val.n)
            buf_printf(b,
                       "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2.5\"/>\n",
                       x1, ly, x2, ly, VAL_COLOR);
        if (i == 2 && log->val.n && c->val.n <= MAX_MARKERS)
            buf_printf(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"%s\" stroke=\"#fff\"/>\n", (x1 + x2) / 2,
                       ly, VAL_COLOR);
        if (i == 3)
            buf_printf(b,
                       "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#888\" "
                       "stroke-dasharray=\"4 3\"/>\n",
                       x1, ly, x2, ly);
        int missing = (i == 0 && !log->train.n) || (i == 2 && !log->val.n);
        buf_printf(b, "<text x=\"%.1f\" y=\"%.1f\"%s>", missing ? x1 : x2 + 8, ty,
                   missing ? " fill=\"#666\" font-style=\"italic\"" : "");
        buf_text(b, labels[i]);
        buf_puts(b, "</text>\n");
        ly += 18;
    }
    buf_puts(b, "</g>\n");
}

static void draw_panel(Buf *b, const Chart *c, int index, const Axis *y)
{
    const PlotLog *log = c->log;
    Panel p = {index * PANEL_W + MARGIN_LEFT,
               (index + 1) * PANEL_W - MARGIN_RIGHT,
               PLOT_TOP,
               PLOT_BOTTOM,
               {0, 0, 0},
               *y,
               index == 1};
    double lo = INFINITY, hi = -INFINITY;
    series_x_range(c, &p, &log->train, &lo, &hi);
    series_x_range(c, &p, &log->val, &lo, &hi);
    if (p.by_time) /* the clock starts at 0 */
        lo = fmin(lo, 0);
    if (!(hi - lo > 1e-9 * fmax(fabs(lo), fabs(hi))) && lo >= 0) { /* one step, or one instant */
        hi = lo > 0 ? 2 * lo : 1;
        lo = 0;
    }
    p.x = nice_axis(lo, hi, 1, 7, p.by_time ? 0 : 1); /* steps are whole numbers */
    double pw = p.right - p.left, ph = p.bottom - p.top, cx = (p.left + p.right) / 2;

    buf_printf(b, "<g id=\"%s\">\n", p.by_time ? "loss-vs-time" : "loss-vs-step");
    buf_printf(b, "<text x=\"%.1f\" y=\"%d\" font-size=\"15\" font-weight=\"bold\" text-anchor=\"middle\">%s</text>\n",
               cx, PLOT_TOP - 14, p.by_time ? "Loss vs. elapsed training time" : "Loss vs. step");
    buf_printf(b, "<clipPath id=\"clip%d\"><rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\"/></clipPath>\n",
               index, p.left, p.top, pw, ph);
    /* Grid and tick labels. */
    buf_puts(b, "<g stroke=\"#e4e4e4\" stroke-width=\"1\">\n");
    for (int i = 0; i < 60; i++) {
        double v = p.x.lo + i * p.x.step;
        if (v > p.x.hi + p.x.step * 1e-6)
            break;
        buf_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", xpos(&p, v), p.top, xpos(&p, v),
                   p.bottom);
    }
    for (int i = 0; i < 60; i++) {
        double v = p.y.lo + i * p.y.step;
        if (v > p.y.hi + p.y.step * 1e-6)
            break;
        buf_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", p.left, ypos(&p, v), p.right,
                   ypos(&p, v));
    }
    buf_puts(b, "</g>\n<g font-size=\"12\" fill=\"#333\">\n");
    char label[48];
    for (int i = 0; i < 60; i++) {
        double v = p.x.lo + i * p.x.step;
        if (v > p.x.hi + p.x.step * 1e-6)
            break;
        tick_label(v, &p.x, !p.by_time, label, sizeof label);
        buf_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>\n", xpos(&p, v),
                   p.bottom, xpos(&p, v), p.bottom + 5);
        buf_printf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n", xpos(&p, v), p.bottom + 19,
                   label);
    }
    for (int i = 0; i < 60; i++) {
        double v = p.y.lo + i * p.y.step;
        if (v > p.y.hi + p.y.step * 1e-6)
            break;
        tick_label(v, &p.y, 0, label, sizeof label);
        buf_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>\n", p.left - 5,
                   ypos(&p, v), p.left, ypos(&p, v));
        buf_printf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n", p.left - 8, ypos(&p, v) + 4,
                   label);
    }
    buf_puts(b, "</g>\n");
    /* Axis titles. */
    buf_printf(b, "<text x=\"%.1f\" y=\"%d\" font-size=\"13\" text-anchor=\"middle\">", cx, HEIGHT - 22);
    if (!p.by_time)
        buf_puts(b, "step");
    else
        buf_printf(b, "elapsed training time (%s)%s", c->time_unit,
                   log->n_segments > 1 ? ", resumed runs added up" : "");
    buf_puts(b, "</text>\n");
    buf_printf(b,
               "<text transform=\"translate(%.1f,%.1f) rotate(-90)\" font-size=\"13\" text-anchor=\"middle\">"
               "loss (nats/char)</text>\n",
               p.left - 52, p.top + ph / 2);
    /* Where resumed runs begin. */
    if (log->n_segments > 1 && log->n_segments - 1 <= MAX_RESUME_LINES) {
        buf_puts(b, "<g stroke=\"#888\" stroke-dasharray=\"4 3\">\n");
        for (size_t k = 1; k < log->n_segments; k++) {
            double x = p.by_time ? log->segments[k].seconds / c->time_scale : log->segments[k].step;
            buf_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", xpos(&p, x), p.top, xpos(&p, x),
                       p.bottom);
        }
        buf_puts(b, "</g>\n");
    }
    /* The data. */
    char attrs[160];
    snprintf(attrs, sizeof attrs,
             "fill=\"none\" stroke=\"%s\" stroke-width=\"0.8\" stroke-opacity=\"0.35\" "
             "stroke-linejoin=\"round\"",
             TRAIN_COLOR);
    if (c->raw.n) {
        buf_printf(b, "<g clip-path=\"url(#clip%d)\" fill-opacity=\"0.35\">\n", index);
        draw_line(b, c, &p, &log->train, &c->raw, attrs, 1.2, TRAIN_COLOR);
        buf_puts(b, "</g>\n");
    }
    snprintf(attrs, sizeof attrs, "fill=\"none\" stroke=\"%s\" stroke-width=\"1.4\" stroke-linejoin=\"round\"",
             TRAIN_COLOR);
    draw_line(b, c, &p, &log->train, &c->train, attrs, 2.0, TRAIN_COLOR);
    snprintf(attrs, sizeof attrs,
             "fill=\"none\" stroke=\"%s\" stroke-width=\"2.5\" stroke-linejoin=\"round\" "
             "stroke-linecap=\"round\"",
             VAL_COLOR);
    draw_line(b, c, &p, &log->val, &c->val, attrs, 3.5, VAL_COLOR);
    if (c->val.n && c->val.n <= MAX_MARKERS) {
        buf_printf(b, "<g fill=\"%s\" stroke=\"#fff\" stroke-width=\"1\">\n", VAL_COLOR);
        for (size_t j = 0; j < c->val.n; j++)
            buf_printf(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\"/>\n",
                       xpos(&p, point_x(c, &p, &log->val, c->val.idx[j])), ypos(&p, c->val.y[j]));
        buf_puts(b, "</g>\n");
    }
    /* Axes on top of the data. */
    buf_printf(b, "<path d=\"M%.1f,%.1fV%.1fH%.1f\" fill=\"none\" stroke=\"#333\" stroke-width=\"1.2\"/>\n", p.left,
               p.top, p.bottom, p.right);
    draw_legend(b, c, &p);
    buf_puts(b, "</g>\n");
}

static void loss_range(const Pick *k, double *lo, double *hi)
{
    for (size_t j = 0; j < k->n; j++) {
        *lo = fmin(*lo, k->y[j]);
        *hi = fmax(*hi, k->y[j]);
    }
}

/* A whole number with thousands separators: 1234567 -> "1,234,567". */
static void fmt_whole(double x, char *buf, size_t cap)
{
    char digits[64];
    int k = snprintf(digits, sizeof digits, "%.0f", x);
    size_t o = 0;
    int sign = digits[0] == '-';
    for (int i = 0; i < k && o + 2 < cap; i++) {
        if (i > sign && (k - i) % 3 == 0)
            buf[o++] = ',';
        buf[o++] = digits[i];
    }
    buf[o] = 0;
}

static void fmt_elapsed(double s, char *buf, size_t cap)
{
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, cap, "%ld h %02ld min", t / 3600, t / 60 % 60);
    else if (t >= 60)
        snprintf(buf, cap, "%ld min %02ld s", t / 60, t % 60);
    else
        snprintf(buf, cap, "%.1f s", s);
}

/* One line under the title: rows, steps, time, evaluations, final and best losses, resumes, skips. */
static void draw_summary(Buf *b, const Chart *c)
{
    const PlotLog *log = c->log;
    const PlotSeries *t = &log->train, *v = &log->val;
    double first = INFINITY, last = -INFINITY, seconds = 0;
    for (size_t i = 0; i < t->n; i++)
        first = fmin(first, t->step[i]), last = fmax(last, t->step[i]), seconds = fmax(seconds, t->seconds[i]);
    for (size_t i = 0; i < v->n; i++)
        first = fmin(first, v->step[i]), last = fmax(last, v->step[i]), seconds = fmax(seconds, v->seconds[i]);
    char s1[64], s2[64], tm[32], rows[64];
    fmt_whole(first, s1, sizeof s1);
    fmt_whole(last, s2, sizeof s2);
    fmt_elapsed(seconds, tm, sizeof tm);
    fmt_whole((double)log->rows, rows, sizeof rows);
    buf_printf(b, "<g font-size=\"13\" fill=\"#555\" text-anchor=\"middle\">\n<text x=\"%d\" y=\"56\">", WIDTH / 2);
    if (first == last)
        buf_printf(b, "%s row%s, step %s at %s", rows, log->rows == 1 ? "" : "s", s1, tm);
    else
        buf_printf(b, "%s rows, steps %s\xE2\x80\x93%s in %s", rows, s1, s2, tm);
    if (log->n_segments > 1)
        buf_printf(b, " \xC2\xB7 %zu resume%s", log->n_segments - 1, log->n_segments == 2 ? "" : "s");
    if (log->skipped)
        buf_printf(b, " \xC2\xB7 %zu non-finite value%s skipped", log->skipped, log->skipped == 1 ? "" : "s");
    if (log->truncated)
        buf_puts(b, " \xC2\xB7 an unfinished last line ignored");
    buf_printf(b, "</text>\n<text x=\"%d\" y=\"74\">", WIDTH / 2);
    if (v->n) {
        size_t best = 0;
        for (size_t i = 1; i < v->n; i++)
            if (v->loss[i] < v->loss[best])
                best = i;
        fmt_whole(v->step[best], s1, sizeof s1);
        buf_printf(b, "%zu evaluation%s: last val %.3f, best %.3f at step %s", v->n, v->n == 1 ? "" : "s",
                   (double)v->loss[v->n - 1], (double)v->loss[best], s1);
    } else {
        buf_puts(b, "no validation rows");
    }
    if (c->train.n)
        buf_printf(b, " \xC2\xB7 last train %.3f%s", (double)c->train.y[c->train.n - 1],
                   c->smooth > 0 ? " (smoothed)" : "");
    buf_puts(b, " \xC2\xB7 losses in nats/char</text>\n</g>\n");
}

int plot_render_svg(const PlotLog *log, const PlotStyle *style, char **svg, size_t *len, Err *e)
{
    *svg = NULL;
    *len = 0;
    if (log->train.n == 0 && log->val.n == 0)
        return err_set(e, "nothing to plot: no finite loss values");
    Chart c = {log, style};
    c.smooth = style->smooth > 0 && style->smooth < 1 ? style->smooth : 0;
    size_t budget = style->max_points > 0 ? (size_t)style->max_points : PLOT_DEFAULT_MAX_POINTS;
    if (budget < 8)
        budget = 8;
    Buf b = {0};
    int rc = -1;
    if (pick_series(log, &log->train, 0, c.smooth, budget, &c.train) != 0 ||
        (c.smooth > 0 && pick_series(log, &log->train, 0, 0, budget, &c.raw) != 0) ||
        pick_series(log, &log->val, 1, 0, budget, &c.val) != 0) {
        err_set(e, "out of memory choosing the points to draw");
        goto done;
    }
    double total = 0;
    for (size_t i = 0; i < log->train.n; i++)
        total = fmax(total, log->train.seconds[i]);
    for (size_t i = 0; i < log->val.n; i++)
        total = fmax(total, log->val.seconds[i]);
    c.time_scale = total < 300 ? 1 : total < 5 * 3600 ? 60 : 3600;
    c.time_unit = total < 300 ? "s" : total < 5 * 3600 ? "min" : "h";
    double lo = INFINITY, hi = -INFINITY;
    loss_range(&c.train, &lo, &hi);
    loss_range(&c.val, &lo, &hi);
    if (c.raw.n) { /* the raw loss around the smoothed one, unless far outside: those parts are clipped */
        double rlo = INFINITY, rhi = -INFINITY, room = fmax(hi - lo, 0.05) * 0.25;
        loss_range(&c.raw, &rlo, &rhi);
        lo = fmin(lo, fmax(rlo, lo - room));
        hi = fmax(hi, fmin(rhi, hi + room));
    }
    double margin = (hi - lo) * 0.03; /* keeps the lines and markers off the frame */
    Axis y = nice_axis(lo - margin, hi + margin, 0.05, 9, 0);

    const char *title = style->title ? style->title : "Training loss";
    buf_printf(&b,
               "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
               "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
               "font-family=\"%s\">\n<title>",
               WIDTH, HEIGHT, WIDTH, HEIGHT, FONT);
    buf_text(&b, title);
    buf_puts(&b, "</title>\n<desc>Train and validation loss (nats/char) " PLOT_SVG_MARK ", against steps and "
                 "against elapsed training time.</desc>\n<rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>\n");
    buf_printf(&b, "<text x=\"%d\" y=\"32\" font-size=\"20\" font-weight=\"bold\" text-anchor=\"middle\">", WIDTH / 2);
    buf_text(&b, title);
    buf_puts(&b, "</text>\n");
    draw_summary(&b, &c);
    draw_panel(&b, &c, 0, &y);
    draw_panel(&b, &c, 1, &y);
    buf_puts(&b, "</svg>\n");
    if (b.failed) {
        err_set(e, "out of memory writing the SVG");
        goto done;
    }
    *svg = b.p;
    *len = b.n;
    b.p = NULL;
    rc = 0;
done:
    free(b.p);
    pick_free(&c.train);
    pick_free(&c.raw);
    pick_free(&c.val);
    return rc;
}

int plot_write_svg(const PlotLog *log, const PlotStyle *style, const char *path, Err *e)
{
    char *svg;
    size_t len;
    if (plot_render_svg(log, style, &svg, &len, e) != 0)
        return -1;
    int rc = write_file_atomic(path, svg, len, e);
    free(svg);
    return rc;
}
