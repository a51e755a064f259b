/* Optimizers against values worked out by hand (python: the formulas of DESIGN.md in float64) and the
 * learning-rate schedule (clipping is tested with the trainer, in test_train.c). */
#include <criterion/criterion.h>
#include <math.h>

#include "../cpu/cpu.h"
#include "optim.h"

#define STEP_TOL 1e-6 /* float32 rounding of values near 1 */

Test(optim, adam_two_steps_match_hand_computed_values)
{
    float p[2] = {1.0f, -2.0f}, m[2] = {0}, v[2] = {0};
    const float g1[2] = {0.5f, -0.1f}, g2[2] = {-0.25f, 0.3f};
    adam_update(p, g1, m, v, 2, 0.1f, 0.9f, 0.999f, 1e-8f, 0.0f, 1.0f, 1);
    /* step 1: bias correction makes the step lr * sign(g) */
    cr_assert_float_eq(p[0], 0.900000002f, STEP_TOL);
    cr_assert_float_eq(p[1], -1.900000010f, STEP_TOL);
    adam_update(p, g2, m, v, 2, 0.1f, 0.9f, 0.999f, 1e-8f, 0.0f, 1.0f, 2);
    cr_assert_float_eq(p[0], 0.873366299f, STEP_TOL);
    cr_assert_float_eq(p[1], -1.949418991f, STEP_TOL);
}

Test(optim, adamw_decays_decoupled_from_the_gradient)
{
    float p = 1.0f, m = 0, v = 0, g = 0.5f;
    adam_update(&p, &g, &m, &v, 1, 0.1f, 0.9f, 0.999f, 1e-8f, 0.1f, 1.0f, 1);
    cr_assert_float_eq(p, 0.890000002f, STEP_TOL); /* 1 - 0.1 * (1 + 0.1 * 1) */
}

Test(optim, gradient_scale_applies_before_the_moments)
{
    float p1 = 1.0f, m1 = 0, v1 = 0, g = 0.5f;
    float p2 = 1.0f, m2 = 0, v2 = 0, half = 0.25f;
    adam_update(&p1, &g, &m1, &v1, 1, 0.1f, 0.9f, 0.999f, 1e-8f, 0.0f, 0.5f, 1);
    adam_update(&p2, &half, &m2, &v2, 1, 0.1f, 0.9f, 0.999f, 1e-8f, 0.0f, 1.0f, 1);
    cr_assert_eq(m1, m2);
    cr_assert_eq(v1, v2);
    cr_assert_eq(p1, p2);
}

Test(optim, sgd_momentum_accumulates_velocity)
{
    float p = 1.0f, v = 0.0f, g = 0.5f;
    sgd_update(&p, &g, &v, 1, 0.1f, 0.9f, 1.0f);
    cr_assert_float_eq(p, 0.95f, STEP_TOL);
    g = -0.25f;
    sgd_update(&p, &g, &v, 1, 0.1f, 0.9f, 1.0f);
    cr_assert_float_eq(p, 0.93f, STEP_TOL); /* v = 0.9 * 0.5 - 0.25 = 0.2 */
}

Test(optim, constant_schedule_with_warmup)
{
    OptimConfig o = optim_defaults();
    o.lr = 1.0f;
    o.warmup = 4;
    cr_assert_float_eq(lr_at(&o, 0, 100), 0.25f, 1e-7);
    cr_assert_float_eq(lr_at(&o, 3, 100), 1.0f, 1e-7);
    cr_assert_float_eq(lr_at(&o, 50, 100), 1.0f, 1e-7);
}

Test(optim, cosine_schedule_runs_from_lr_to_min_lr)
{
    OptimConfig o = optim_defaults();
    o.schedule = LR_COSINE;
    o.lr = 1.0f;
    o.min_lr = 0.1f;
    o.warmup = 10;
    cr_assert_float_eq(lr_at(&o, 9, 111), 1.0f, 1e-6);   /* end of warmup */
    cr_assert_float_eq(lr_at(&o, 10, 111), 1.0f, 1e-6);  /* first cosine step */
    cr_assert_float_eq(lr_at(&o, 60, 111), 0.55f, 1e-6); /* halfway: the mean of lr and min_lr */
    cr_assert_float_eq(lr_at(&o, 110, 111), 0.1f, 1e-6); /* last step */
    cr_assert_float_eq(lr_at(&o, 500, 111), 0.1f, 1e-6); /* past the end (extended run) */
}
