/* OpenBLAS's choice of kernels checked against the processor (cpu/blas_check.c): which choices are
 * fixed and to what, and the program's behaviour with a wrong choice (pretended through
 * CHARRNN_TEST_BLAS_CORENAME, since no machine here is taken for another) and with OPENBLAS_CORETYPE
 * already set. The suites that compute run once more with the fix applied (the *_blas_fixed tests). */
#define _POSIX_C_SOURCE 200809L /* setenv */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../cpu/matmul.h"
#include "testutil.h"

static char out[1 << 16], err[1 << 16];
static char dir[64];

static void setup(void)
{
    make_temp_dir(dir, sizeof dir);
    write_repeated_file(dir, "text.txt", "Is this a dagger which I see before me, the handle toward my hand?\n", 40);
}

static void teardown(void)
{
    remove_tree(dir);
}

Test(blas, old_kernels_on_a_newer_processor_are_replaced)
{
    cr_expect_str_eq(blas_coretype_for("Prescott", SIMD_AVX512), "SkylakeX");
    cr_expect_str_eq(blas_coretype_for("Prescott", SIMD_AVX2), "Haswell");
    cr_expect_str_eq(blas_coretype_for("Sandybridge", SIMD_AVX2), "Haswell");
    cr_expect_str_eq(blas_coretype_for("Haswell", SIMD_AVX512), "SkylakeX");
    cr_expect_str_eq(blas_coretype_for("Zen", SIMD_AVX512), "SkylakeX");
}

Test(blas, a_choice_as_good_as_the_processor_or_unknown_is_kept)
{
    cr_expect_null(blas_coretype_for("Zen", SIMD_AVX2));
    cr_expect_null(blas_coretype_for("Haswell", SIMD_AVX2));
    cr_expect_null(blas_coretype_for("SkylakeX", SIMD_AVX512));
    cr_expect_null(blas_coretype_for("SapphireRapids", SIMD_AVX512));
    cr_expect_null(blas_coretype_for("Prescott", SIMD_BASELINE), "nothing better to offer a processor without AVX2");
    cr_expect_null(blas_coretype_for("SkylakeX", SIMD_AVX2), "never kernels beyond the processor");
    cr_expect_null(blas_coretype_for("SomeFutureLake", SIMD_AVX512), "a name this table does not know is kept");
}

/* What the fix should ask for on this machine when OpenBLAS is taken to have answered Prescott. */
static const char *expected_fix(void)
{
    const char *why, *fix = blas_fix_of_prescott(&why);
    if (!fix)
        SKIP_REMOVING(dir, "%s", why);
    return fix;
}

static int count(const char *haystack, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(haystack, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

#define TRAIN_TINY()                                                                                                   \
    RUN("--device", "cpu", "train", "--data", "text.txt", "--hidden", "9", "--embed", "5", "--seq-len", "8",           \
        "--batch", "3", "--steps", "2", "--eval-every", "0", "--out", "m.ckpt")

Test(blas, a_wrong_choice_is_fixed_once_with_a_note, .init = setup, .fini = teardown)
{
    const char *fix = expected_fix();
    unsetenv("OPENBLAS_CORETYPE");
    setenv("CHARRNN_TEST_BLAS_CORENAME", "Prescott", 1);
    setenv("OPENBLAS_VERBOSE", "2", 1); /* OpenBLAS then names the kernels it loads: "Core: Haswell" */
    cr_assert_eq(TRAIN_TINY(), 0, "%s", err);
    char core[64], note[128];
    snprintf(core, sizeof core, "Core: %s", fix);
    snprintf(note, sizeof note, "running with OPENBLAS_CORETYPE=%s", fix);
    cr_expect_eq(count(err, "OpenBLAS chose its Prescott kernels"), 1, "one note, got: %s", err);
    cr_expect(strstr(err, note) != NULL, "the note names the fix: %s", err);
    cr_expect(strstr(err, core) != NULL, "the program ran again on the %s kernels: %s", fix, err);
}

Test(blas, a_coretype_already_set_is_never_overridden, .init = setup, .fini = teardown)
{
    expected_fix();
    setenv("OPENBLAS_CORETYPE", "Prescott", 1);
    setenv("CHARRNN_TEST_BLAS_CORENAME", "Prescott", 1);
    setenv("OPENBLAS_VERBOSE", "2", 1);
    cr_assert_eq(TRAIN_TINY(), 0, "%s", err);
    cr_expect(strstr(err, "OPENBLAS_CORETYPE=") == NULL, "no note: %s", err);
    cr_expect_eq(count(err, "Core: "), 1, "one start, on the kernels set: %s", err);
    cr_expect(strstr(err, "Core: Prescott") != NULL, "%s", err);
}

Test(blas, a_right_choice_is_left_alone, .init = setup, .fini = teardown)
{
    const char *fix = expected_fix(); /* what this processor runs: taken to be OpenBLAS's answer */
    unsetenv("OPENBLAS_CORETYPE");
    setenv("CHARRNN_TEST_BLAS_CORENAME", fix, 1);
    setenv("OPENBLAS_VERBOSE", "2", 1);
    cr_assert_eq(TRAIN_TINY(), 0, "%s", err);
    cr_expect(strstr(err, "OPENBLAS_CORETYPE=") == NULL, "no note: %s", err);
    cr_expect_eq(count(err, "Core: "), 1, "started once: %s", err);
}

/* In the *_blas_fixed runs of the suites (CHARRNN_TEST_BLAS_CORENAME=Prescott), this process itself
 * runs on the fixed kernels: skip_main.c ran the check before the tests. */
Test(blas, this_suite_runs_with_the_fix_when_one_is_pretended)
{
    const char *fix = expected_fix();
    const char *pretended = getenv("CHARRNN_TEST_BLAS_CORENAME");
    if (!pretended || strcmp(pretended, "Prescott") != 0)
        cr_skip_test("run as blas_fixed to check this");
    char *openblas_get_corename(void);
    cr_expect_str_eq(getenv("OPENBLAS_CORETYPE"), fix);
    cr_expect_str_eq(openblas_get_corename(), fix);
}
