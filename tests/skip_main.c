/* main() for every suite: like Criterion's own, but
 * - it first lets OpenBLAS be checked as charrnn does (matmul_check_blas), so that the suites compute on
 *   the kernels charrnn would use, with the fix applied where one is needed;
 * - a run in which a test was skipped exits with 77, which CTest reports as "Skipped" (SKIP_RETURN_CODE)
 *   instead of "Passed", and every skipped test is named with its reason on stderr ("SKIPPED suite/test:
 *   reason"; scripts/test.sh repeats these lines after CTest's summary). The tests that skip where a
 *   condition is not met run as CTest entries of their own (CMakeLists.txt), so a skip never hides the
 *   tests that ran beside it. */
#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <stdio.h>

#include "../cpu/matmul.h"

#define SKIPPED 77 /* the automake convention CTest is told about */

static size_t skipped;

ReportHook(POST_TEST)(struct criterion_test_stats *stats)
{
    if (stats->test_status != CR_STATUS_SKIPPED)
        return;
    skipped++;
    fprintf(stderr, "SKIPPED %s/%s: %s\n", stats->test->category, stats->test->name,
            stats->message && *stats->message ? stats->message : "(no reason given)");
}

int main(int argc, char *argv[])
{
    matmul_check_blas(argv, 0);
    struct criterion_test_set *tests = criterion_initialize();
    int status = 0;
    if (criterion_handle_args(argc, argv, true))
        status = !criterion_run_all_tests(tests);
    criterion_finalize(tests);
    return status == 0 && skipped ? SKIPPED : status;
}
