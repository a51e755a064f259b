/* Table-driven command-line options: each command lists its options once, with type, range and help,
 * and the same table parses argv, validates values and prints --help. */
#ifndef CHARRNN_OPTIONS_H
#define CHARRNN_OPTIONS_H

#include <stdint.h>
#include <stdio.h>

#include "util.h"

typedef enum {
    ARG_INT,    /* int, in [min, max] */
    ARG_LONG,   /* long, in [min, max] */
    ARG_U64,    /* uint64_t, any value */
    ARG_FLOAT,  /* float, finite, in [min, max] */
    ARG_STRING, /* const char *, non-empty */
    ARG_FLAG,   /* int set to 1, takes no value */
    ARG_CHOICE, /* int index into choices */
} ArgType;

typedef struct {
    const char *name; /* "--hidden" */
    ArgType type;
    void *target; /* holds the default on entry */
    double min, max;
    const char *const *choices; /* NULL-terminated, for ARG_CHOICE */
    const char *metavar;
    const char *help;
    int given; /* set by the parser when the option appears on the command line */
} Option;

/* Parses argv[0..argc) (after the command name). Sets *help when -h/--help appears. Errors name the
 * command, the option, the value and what would be valid. */
int options_parse(Option *opts, int n_opts, int argc, char **argv, const char *command, int *help, Err *e);
void options_print_help(FILE *f, const char *usage, const char *about, const Option *opts, int n_opts);
const Option *option_find(const Option *opts, int n_opts, const char *name);

#endif
