/* A suite that skips one of its two tests, for tests/test_scripts.sh to check how a skip is reported. */
#include <criterion/criterion.h>

Test(skip_probe, passes)
{
    cr_assert(1 + 1 == 2);
}

Test(skip_probe, skips_with_a_reason)
{
    cr_skip_test("the probe's reason");
}
