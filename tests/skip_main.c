/* main() for every suite: like Criterion's own, but
 * - it first lets OpenBLAS be checked as charrnn does (matmul_check_blas), so that the suites compute on
 *   the kernels charrnn would use, with the fix applied where one is needed;
 * - it exits with 77 when every test was skipped (no device, no data), which CTest reports as "Skipped"
 *   (SKIP_RETURN_CODE) instead of "Passed". */
#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <stdbool.h>

#include "../cpu/matmul.h"

#define ALL_SKIPPED 77 /* the automake convention CTest is told about */

static bool all_skipped;

ReportHook(POST_ALL)(struct criterion_global_stats *stats)
{
    all_skipped = stats->nb_tests > 0 && stats->tests_skipped == stats->nb_tests;
}

int main(int argc, char *argv[])
{
    matmul_check_blas(argv);
    struct criterion_test_set *tests = criterion_initialize();
    int status = 0;
    if (criterion_handle_args(argc, argv, true))
        status = !criterion_run_all_tests(tests);
    criterion_finalize(tests);
    return status == 0 && all_skipped ? ALL_SKIPPED : status;
}
