#include "options.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

const Option *option_find(const Option *opts, int n_opts, const char *name)
{
    for (int i = 0; i < n_opts; i++)
        if (strcmp(opts[i].name, name) == 0)
            return &opts[i];
    return NULL;
}

static int range_error(const char *command, const Option *o, const char *value, const char *kind, Err *e)
{
    if (o->max >= 1e15)
        return err_set(e, "%s: %s: expected %s >= %g, got '%s'", command, o->name, kind, o->min, value);
    return err_set(e, "%s: %s: expected %s from %g to %g, got '%s'", command, o->name, kind, o->min, o->max, value);
}

/* A decimal number as a person writes it: an optional minus sign, digits, and for a real a fraction
 * and an exponent. No blanks, plus signs, hexadecimal (0x10), infinities or NaN, which strtod would take. */
static int is_decimal(const char *s, int real)
{
    const char *p = s + (*s == '-');
    int digits = 0;
    while (*p >= '0' && *p <= '9')
        p++, digits++;
    if (real && *p == '.')
        for (p++; *p >= '0' && *p <= '9'; p++)
            digits++;
    if (!digits)
        return 0;
    if (real && (*p == 'e' || *p == 'E')) {
        p += 1 + (p[1] == '-' || p[1] == '+');
        if (*p < '0' || *p > '9')
            return 0;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    return *p == 0;
}

static int set_value(Option *o, const char *value, const char *command, Err *e)
{
    char *end;
    errno = 0;
    switch (o->type) {
    case ARG_INT:
    case ARG_LONG: {
        long long x = is_decimal(value, 0) ? strtoll(value, &end, 10) : 0;
        if (!is_decimal(value, 0) || errno == ERANGE || (double)x < o->min || (double)x > o->max)
            return range_error(command, o, value, "a whole number", e);
        if (o->type == ARG_INT)
            *(int *)o->target = (int)x;
        else
            *(long *)o->target = (long)x;
        return 0;
    }
    case ARG_U64: {
        if (!is_decimal(value, 0) || *value == '-') /* strtoull would take " -1" as 2^64 - 1 */
            return err_set(e, "%s: %s: expected a non-negative whole number, got '%s'", command, o->name, value);
        unsigned long long x = strtoull(value, &end, 10);
        if (errno == ERANGE)
            return err_set(e, "%s: %s: expected a non-negative whole number below 2^64, got '%s'", command, o->name,
                           value);
        *(uint64_t *)o->target = (uint64_t)x;
        return 0;
    }
    case ARG_FLOAT: {
        double x = is_decimal(value, 1) ? strtod(value, &end) : NAN;
        if (!is_decimal(value, 1) || !isfinite(x) || x < o->min || x > o->max)
            return range_error(command, o, value, "a number", e);
        /* A value too small for float32 would silently become 0 (--clip 1e-50 would turn clipping off). */
        if (x != 0.0 && (errno == ERANGE || (float)x == 0.0f))
            return err_set(e, "%s: %s: '%s' is too small for a float32 (it would be 0); write 0 if 0 is meant",
                           command, o->name, value);
        *(float *)o->target = (float)x;
        return 0;
    }
    case ARG_STRING:
        if (!*value)
            return err_set(e, "%s: %s: expected a non-empty value", command, o->name);
        *(const char **)o->target = value;
        return 0;
    case ARG_CHOICE:
        for (int i = 0; o->choices[i]; i++) {
            if (strcmp(o->choices[i], value) == 0) {
                *(int *)o->target = i;
                return 0;
            }
        }
        {
            char valid[200] = "";
            for (int i = 0; o->choices[i]; i++) {
                strncat(valid, i ? ", " : "", sizeof valid - strlen(valid) - 1);
                strncat(valid, o->choices[i], sizeof valid - strlen(valid) - 1);
            }
            return err_set(e, "%s: %s: expected one of %s, got '%s'", command, o->name, valid, value);
        }
    case ARG_FLAG:
        break;
    }
    return err_set(e, "%s: %s: internal error: unknown option type", command, o->name);
}

int options_parse(Option *opts, int n_opts, int argc, char **argv, const char *command, int *help, Err *e)
{
    *help = 0;
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            *help = 1;
            return 0;
        }
        if (strncmp(arg, "--", 2) != 0)
            return err_set(e, "%s: unexpected argument '%s' (options start with --; see %s %s --help)", command,
                           arg, program_name(), command);
        /* --name=value or --name value */
        const char *eq = strchr(arg, '=');
        size_t name_len = eq ? (size_t)(eq - arg) : strlen(arg);
        Option *o = NULL;
        for (int k = 0; k < n_opts; k++)
            if (strlen(opts[k].name) == name_len && strncmp(opts[k].name, arg, name_len) == 0)
                o = &opts[k];
        if (!o)
            return err_set(e, "%s: unknown option '%.*s' (see %s %s --help)", command, (int)name_len, arg,
                           program_name(), command);
        if (o->given)
            return err_set(e, "%s: %s given more than once", command, o->name);
        o->given = 1;
        if (o->type == ARG_FLAG) {
            if (eq)
                return err_set(e, "%s: %s takes no value", command, o->name);
            *(int *)o->target = 1;
            continue;
        }
        const char *value;
        if (eq) {
            value = eq + 1;
        } else {
            if (i + 1 >= argc)
                return err_set(e, "%s: %s needs a value (%s)", command, o->name, o->metavar ? o->metavar : "VALUE");
            value = argv[++i];
        }
        if (set_value(o, value, command, e) != 0)
            return -1;
    }
    return 0;
}

static void format_default(const Option *o, char *buf, size_t n)
{
    buf[0] = 0;
    switch (o->type) {
    case ARG_INT:
        snprintf(buf, n, "%d", *(int *)o->target);
        break;
    case ARG_LONG:
        snprintf(buf, n, "%ld", *(long *)o->target);
        break;
    case ARG_U64:
        snprintf(buf, n, "%" PRIu64, *(uint64_t *)o->target);
        break;
    case ARG_FLOAT:
        snprintf(buf, n, "%g", (double)*(float *)o->target);
        break;
    case ARG_STRING:
        if (*(const char **)o->target)
            snprintf(buf, n, "%s", *(const char **)o->target);
        break;
    case ARG_CHOICE: /* a negative index: the default depends on something else, and the help says what */
        if (*(int *)o->target >= 0)
            snprintf(buf, n, "%s", o->choices[*(int *)o->target]);
        break;
    case ARG_FLAG:
        break;
    }
}

void options_print_help(FILE *f, const char *usage, const char *about, const Option *opts, int n_opts)
{
    fprintf(f, "usage: %s\n\n%s\n\noptions:\n", usage, about);
    for (int i = 0; i < n_opts; i++) {
        const Option *o = &opts[i];
        char left[64], def[256];
        if (o->type == ARG_FLAG)
            snprintf(left, sizeof left, "%s", o->name);
        else
            snprintf(left, sizeof left, "%s %s", o->name, o->metavar ? o->metavar : "VALUE");
        format_default(o, def, sizeof def);
        fprintf(f, "  %-24s %s", left, o->help);
        if (def[0] && !strstr(o->help, "default")) /* a help text that explains its default says it better */
            fprintf(f, " [default: %s]", def);
        fputc('\n', f);
    }
    fprintf(f, "  %-24s %s\n", "-h, --help", "show this help and exit");
}
