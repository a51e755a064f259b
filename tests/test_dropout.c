/* The dropout masks: Philox4x32-10 against Random123's published known-answer vectors, and the mask
 * functions built on it (threshold, scale, which output a unit takes, what the counter distinguishes). */
#include <criterion/criterion.h>
#include <math.h>

#include "dropout.h"

/* Random123's kat_vectors, the three "philox4x32 10" lines: counter, key, expected output. */
static const struct {
    uint32_t ctr[4], key[2], out[4];
} KAT[] = {
    {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
    {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
     {0xffffffff, 0xffffffff},
     {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
    {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
     {0xa4093822, 0x299f31d0},
     {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
};

Test(dropout, philox_matches_the_published_known_answers)
{
    for (size_t i = 0; i < sizeof KAT / sizeof KAT[0]; i++) {
        uint32_t out[4];
        philox4x32_10(KAT[i].ctr, KAT[i].key, out);
        for (int k = 0; k < 4; k++)
            cr_expect_eq(out[k], KAT[i].out[k], "vector %zu word %d: %08x, expected %08x", i, k, out[k],
                         KAT[i].out[k]);
    }
}

Test(dropout, threshold_is_p_times_two_to_the_32_rounded_down)
{
    cr_assert_eq(dropout_threshold(0.0f), 0u);
    cr_assert_eq(dropout_threshold(0.5f), 0x80000000u);
    cr_assert_eq(dropout_threshold(0.25f), 0x40000000u);
    /* float 0.1 is 0.100000001490116...: times 2^32 is 429496736.4, rounded down */
    cr_assert_eq(dropout_threshold(0.1f), 429496736u);
    cr_assert_eq(dropout_threshold(nextafterf(1.0f, 0.0f)), 0xFFFFFF00u);
    cr_assert_eq(dropout_scale(0.5f), 2.0f);
    cr_assert_eq(dropout_scale(0.0f), 1.0f);
}

/* Unit j takes word j % 4 of the block at counter j / 4, as the interface between the backends says. */
Test(dropout, keep_reads_the_documented_counter_and_word)
{
    const uint64_t seed = 0x0123456789abcdefull;
    const long step = 0x0000023456789abcL; /* high bits in use: the counter's 12 step bits above 32 */
    const int l = 2, t = 7, row = 5;
    const uint32_t key[2] = {0x89abcdefu, 0x01234567u};
    for (int j = 0; j < 13; j++) {
        const uint32_t ctr[4] = {(uint32_t)j / 4, (uint32_t)row, (uint32_t)t | 2u << 16 | 0x234u << 20, 0x56789abcu};
        uint32_t r[4];
        philox4x32_10(ctr, key, r);
        /* the threshold right at r decides: kept at r, dropped one above */
        cr_assert(dropout_keep(seed, step, l, t, row, j, r[j % 4]), "unit %d", j);
        if (r[j % 4] != 0xFFFFFFFFu)
            cr_assert(!dropout_keep(seed, step, l, t, row, j, r[j % 4] + 1), "unit %d", j);
    }
}

/* Every coordinate of an element changes its mask: about half the decisions differ at p = 0.5. */
Test(dropout, every_coordinate_draws_a_different_mask)
{
    const uint32_t half = dropout_threshold(0.5f);
    const int n = 256;
    int kept = 0, differ[5] = {0};
    for (int j = 0; j < n; j++) {
        const int k = dropout_keep(1337, 10, 1, 3, 4, j, half);
        kept += k;
        differ[0] += k != dropout_keep(1338, 10, 1, 3, 4, j, half);
        differ[1] += k != dropout_keep(1337, 11, 1, 3, 4, j, half);
        differ[2] += k != dropout_keep(1337, 10, 2, 3, 4, j, half);
        differ[3] += k != dropout_keep(1337, 10, 1, 4, 4, j, half);
        differ[4] += k != dropout_keep(1337, 10, 1, 3, 5, j, half);
    }
    /* Binomial(256, 1/2): 128 +- 8; 80..176 is six standard deviations either side. */
    cr_assert(kept > 80 && kept < 176, "%d of %d kept", kept, n);
    for (int i = 0; i < 5; i++)
        cr_assert(differ[i] > 80 && differ[i] < 176, "coordinate %d: %d of %d differ", i, differ[i], n);
}
