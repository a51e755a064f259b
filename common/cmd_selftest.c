/* charrnn selftest: the device against the CPU reference on small models, under every way it can run a
 * step, with the largest error per quantity against the tolerance the parity suite states. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "options.h"
#include "selftest.h"

static void print_report(const SelftestReport *r)
{
    printf("  %-20s %13s %10s   %s\n", "quantity", "largest error", "tolerance", "where");
    for (int i = 0; i < r->n_lines; i++) {
        const SelftestLine *l = &r->lines[i];
        const int ok = l->worst <= l->tolerance;
        printf("  %-20s %13.2g %10.0e %s %s\n", l->name, l->worst, l->tolerance, ok ? "ok  " : "FAIL", l->where);
    }
    if (r->product_error >= 0.0) {
        const int ok = r->product_error >= r->product_min && r->product_error <= r->product_max;
        char bounds[64];
        if (r->product_min > 0.0)
            snprintf(bounds, sizeof bounds, "TF32: %.0e to %.0e", r->product_min, r->product_max);
        else
            snprintf(bounds, sizeof bounds, "float32: below %.0e", r->product_max);
        printf("  %-20s %13.2g %10s %s %s\n", "product 512^3", r->product_error, "", ok ? "ok  " : "FAIL", bounds);
    }
}

int cmd_selftest(int argc, char **argv, const GlobalOptions *g)
{
    int dev = (int)g->device, threads = cli_default_threads(), tf32 = 0, quick = 0;
    Option opts[] = {
        DEVICE_OPTIONS(&dev, &threads, &tf32),
        {"--quick", ARG_FLAG, &quick, 0, 0, NULL, NULL,
         "the first variant on the first model only, no product check (under slow tools such as "
         "compute-sanitizer)"},
    };
    const int n_opts = (int)(sizeof opts / sizeof opts[0]);
    int status;
    if (!cli_parse(opts, n_opts, argc, argv, "selftest", "charrnn [--device DEVICE] selftest [options]",
                   "Runs the device and the CPU reference side by side on small models for a few optimizer steps, "
                   "under every way the device can run a step, and prints the largest relative error per tensor "
                   "against the tolerance (exit status 1 if any is above it).",
                   g, &status))
        return status;
    if (tf32 && dev == DEVICE_CPU)
        return cli_fail(EXIT_USAGE, TF32_ON_CPU);
    Err e;
    const BackendOps *ops;
    const char *note;
    if (device_select((DeviceChoice)dev, &ops, &note, &e) != 0)
        return cli_fail(EXIT_USAGE, e.msg);
    device_announce(note);
    /* The CPU against itself: every core against one thread (the products split their sums otherwise). */
    char cpu_variant[32];
    snprintf(cpu_variant, sizeof cpu_variant, "%d thread%s", threads, threads == 1 ? "" : "s");
    const BackendVariant cpu_variants[] = {{cpu_variant, {.threads = threads}}, {NULL, {0}}};
    const BackendVariant *variants = ops == device_cpu() ? cpu_variants : ops->variants;
    const SelftestOptions o = {.tf32 = tf32, .quick = quick, .threads = threads};
    printf("selftest: %s (%s)%s against the cpu reference (one thread), %s\n", ops->name, device_hardware(ops),
           tf32 ? " with TF32 products" : "", quick ? "the first variant and model" : "every variant and model");
    fflush(stdout);
    const double t0 = now_seconds();
    SelftestReport r;
    if (selftest_run(device_cpu(), ops, variants, &o, &r, &e) != 0)
        return cli_fail(EXIT_ERROR, e.msg);
    printf("  %d variant%s x %d model%s x %d optimizer steps, then generation", r.variants, r.variants == 1 ? "" : "s",
           r.models, r.models == 1 ? "" : "s", r.steps);
    if (ops->check_variant)
        printf("; %s", r.path_failures ? "some variants ran another path:" : "each variant ran the path it names");
    printf("\n");
    if (r.path_failures)
        printf("%s\n", r.paths);
    print_report(&r);
    if (r.failures) {
        printf("selftest: FAILED (%d check%s) in %.1f s\n", r.failures, r.failures == 1 ? "" : "s", now_seconds() - t0);
        return EXIT_ERROR;
    }
    printf("selftest: passed in %.1f s\n", now_seconds() - t0);
    return EXIT_OK;
}
