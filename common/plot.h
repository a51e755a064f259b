/* Loss charts of a training log: reads the CSV that `charrnn train --log` appends to and draws train and
 * validation loss against steps and against elapsed time as a self-contained SVG. No printing here. */
#ifndef CHARRNN_PLOT_H
#define CHARRNN_PLOT_H

#include <stddef.h>
#include <stdio.h>

#include "util.h"

/* The header charrnn train writes on the first line of a log. */
#define PLOT_LOG_HEADER "step,seconds,tokens_per_s,train_loss,val_loss,lr,grad_norm"
/* Words of the description every chart carries: a file with them near its start is a charrnn chart. */
#define PLOT_SVG_MARK "of a charrnn training log"
/* Most points drawn per series when the caller does not say; longer series are downsampled. */
#define PLOT_DEFAULT_MAX_POINTS 2000

/* One loss series: a point per row with a finite value, in file order. */
typedef struct {
    float *step;
    float *seconds; /* elapsed seconds, cumulative across resumed segments */
    float *loss;    /* nats/char */
    size_t n, cap;
} PlotSeries;

/* A run segment: the rows of one `charrnn train` process. A segment starts where `seconds` drops or
 * `step` does not increase (a --resume appending to the same log); its seconds are offset by the time
 * of the segments before it. */
typedef struct {
    size_t train_start, val_start; /* index of the segment's first point in each series */
    float step, seconds;           /* where the segment starts */
    int overlaps;                  /* its first step is not after the last one before it (resumed from an earlier
                                    * checkpoint): lines break there; after a plain continuation they go on */
} PlotSegment;

typedef struct {
    PlotSeries train, val;
    PlotSegment *segments; /* at least one once a row was read */
    size_t n_segments, segments_cap;
    size_t rows;    /* data rows read */
    size_t skipped; /* NaN, inf or out-of-float-range values left out (a row with such a step or seconds
                     * counts once) */
    int truncated;  /* 1 when an unfinished last line (no newline, unparsable) was ignored */
} PlotLog;

/* Reads a log, streaming it line by line. Errors name the file, and the line where one is at fault:
 * missing or unreadable file, empty file, not a charrnn log (wrong header), a row with the wrong number of
 * fields or a non-numeric field, a header without rows, rows without a single finite loss. */
int plot_log_read(const char *path, PlotLog *log, Err *e);
/* The same from an open stream; name is used in the messages. */
int plot_log_read_stream(FILE *f, const char *name, PlotLog *log, Err *e);
void plot_log_free(PlotLog *log);

typedef struct {
    const char *title; /* NULL: "Training loss" */
    float smooth;      /* EMA weight of the past for the train loss, in [0, 1); 0 draws the raw loss only */
    int max_points;    /* per series; 0 means PLOT_DEFAULT_MAX_POINTS */
} PlotStyle;

/* The chart as a NUL-terminated SVG document in a fresh buffer (*len excludes the NUL). */
int plot_render_svg(const PlotLog *log, const PlotStyle *style, char **svg, size_t *len, Err *e);
/* Renders and writes the chart to path atomically (write_file_atomic). */
int plot_write_svg(const PlotLog *log, const PlotStyle *style, const char *path, Err *e);

/* The default output for a log: its path with .svg in place of a final .csv, else with .svg appended.
 * Returns a fresh string, or NULL when out of memory. */
char *plot_default_output(const char *csv_path);

#endif
