/* The kernel sets of cpu/kernels.h, each one the processor runs (the others are skipped and say so),
 * and the AVX-512 set's logic built for AVX2 (its vector width and tile, on any AVX2 processor):
 * the fused recurrence against the plain one-timestep-at-a-time reference of rnn.c, a gated cell's
 * product through the same machinery, and the vectorised softmax, tanh, optimizers and squared norm
 * against double-precision formulas. Odd shapes make every tile have a remainder in rows and columns;
 * one shape is large enough to be split over threads. */
#define _POSIX_C_SOURCE 200809L /* setenv */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../common/dropout.h"
#include "../cpu/cpu.h"
#include "../cpu/fastmath.h"
#include "../cpu/kernels.h"
#include "../cpu/recurrence.h"
#include "backend.h"
#include "model.h"
#include "optim.h"
#include "util.h"

/* Relative L2 difference between the fused and the stepped recurrence. Going forward both sum each
 * product in the same order, and only tanh may round differently (the reference's scalar tanh is
 * built without fused multiply-adds, the AVX kernels' with); going backward the reference's products
 * are dot products, summed in another order. Measured up to 2e-7; a wrong operand or a missing step
 * is off by 1e-2 or more. */
#define RECURRENCE_TOL 1e-6
/* Softmax probabilities from an exp within FAST_EXP_ERROR, divided by a sum of such terms. */
#define SOFTMAX_TOL (4 * FAST_EXP_ERROR)
/* Single-precision optimizer arithmetic on values near 1, a few roundings deep. */
#define OPTIM_TOL 1e-6

/* The sets, by their CHARRNN_SIMD names; AVX512_SHAPE is the AVX-512 set's logic built for AVX2. */
typedef enum { BASELINE, AVX2, AVX512, AVX512_SHAPE } Set;
static const char *const SET_ENV[] = {"baseline", "avx2", "avx512", "avx512-shape"};

/* Makes this test process run the kernel set (each test runs in a process of its own), or skips the
 * test where the processor does not have it. */
static const Kernels *use_level(Set set)
{
    const Kernels *k = set == AVX512_SHAPE ? kernels_avx512_shape_on_avx2() : kernels_at((SimdLevel)set);
    if (!k)
        cr_skip_test("this processor does not run the %s kernels", SET_ENV[set]);
    setenv("CHARRNN_SIMD", SET_ENV[set], 1);
    cr_assert_eq(kernels(), k, "CHARRNN_SIMD=%s did not select the %s kernels", SET_ENV[set], k->name);
    cr_log_info("kernels: %s", k->name);
    return k;
}

static float *random_floats(Rng *r, size_t n, float scale)
{
    float *x = malloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++)
        x[i] = scale * (2.0f * rng_uniform(r) - 1.0f);
    return x;
}

/* |x - ref| / |ref| over the whole buffer (L2 norms) */
static double rel_l2(const float *ref, const float *x, size_t n)
{
    double diff = 0.0, norm = 0.0;
    for (size_t i = 0; i < n; i++) {
        diff += ((double)x[i] - ref[i]) * ((double)x[i] - ref[i]);
        norm += (double)ref[i] * ref[i];
    }
    return sqrt(diff / norm);
}

typedef struct {
    int T, B, H;
} Shape;

/* 13 rows and 37 columns leave remainders for every tile; the last shape has enough work for threads. */
static const Shape SHAPES[] = {{1, 1, 1}, {5, 3, 13}, {7, 13, 37}, {9, 29, 45}};

static void check_forward(Set level)
{
    use_level(level);
    for (size_t s = 0; s < sizeof SHAPES / sizeof SHAPES[0]; s++) {
        const int T = SHAPES[s].T, B = SHAPES[s].B, H = SHAPES[s].H;
        const size_t n = (size_t)(T + 1) * B * H;
        Rng r;
        rng_seed(&r, 100 + s);
        float *w = random_floats(&r, (size_t)H * H, 1.5f / sqrtf((float)H)); /* strong enough to matter */
        float *h = random_floats(&r, n, 1.0f), *ref = malloc(sizeof(float) * n);
        float *packed = malloc(sizeof(float) * recurrence_packed_floats(H, H));
        memcpy(ref, h, sizeof(float) * n);
        rnn_recurrence_forward(h, w, packed, T, B, H);
        rnn_recurrence_forward_steps(ref, w, T, B, H);
        double err = rel_l2(ref, h, n);
        cr_log_info("forward T=%d B=%d H=%d: relative L2 difference %.3g", T, B, H, err);
        cr_expect(err <= RECURRENCE_TOL, "T=%d B=%d H=%d: h differs from the stepped recurrence by %.3g", T, B, H, err);
        if (level == BASELINE) /* the same instructions in the same order: the same bits */
            cr_expect(memcmp(ref, h, sizeof(float) * n) == 0, "T=%d B=%d H=%d: not bit-identical", T, B, H);
        free(w), free(h), free(ref), free(packed);
    }
}

static void check_backward(Set level)
{
    use_level(level);
    for (size_t s = 0; s < sizeof SHAPES / sizeof SHAPES[0]; s++) {
        const int T = SHAPES[s].T, B = SHAPES[s].B, H = SHAPES[s].H;
        const size_t state = (size_t)B * H, n = (size_t)T * state;
        Rng r;
        rng_seed(&r, 200 + s);
        float *w = random_floats(&r, (size_t)H * H, 1.5f / sqrtf((float)H));
        float *h = random_floats(&r, n + state, 0.95f), *dh = random_floats(&r, n, 1.0f);
        float *da = malloc(sizeof(float) * n), *ref = malloc(sizeof(float) * n), *carry = malloc(sizeof(float) * state);
        float *packed = malloc(sizeof(float) * recurrence_packed_floats(H, H));
        recurrence_pack(packed, w, H, H, 1);
        recurrence_tanh_backward(da, dh, h, packed, T, B, H);
        rnn_recurrence_backward_steps(ref, carry, dh, h, w, T, B, H);
        double err = rel_l2(ref, da, n);
        cr_log_info("backward T=%d B=%d H=%d: relative L2 difference %.3g", T, B, H, err);
        cr_expect(err <= RECURRENCE_TOL, "T=%d B=%d H=%d: da differs from the stepped recurrence by %.3g", T, B, H,
                  err);
        free(w), free(h), free(dh), free(da), free(ref), free(carry), free(packed);
    }
}

Test(recurrence, forward_matches_the_stepped_reference_avx512)
{
    check_forward(AVX512);
}
Test(recurrence, forward_matches_the_stepped_reference_avx2)
{
    check_forward(AVX2);
}
Test(recurrence, forward_matches_the_stepped_reference_avx512_shape)
{
    check_forward(AVX512_SHAPE);
}
Test(recurrence, forward_matches_the_stepped_reference_baseline)
{
    check_forward(BASELINE);
}
Test(recurrence, backward_matches_the_stepped_reference_avx512)
{
    check_backward(AVX512);
}
Test(recurrence, backward_matches_the_stepped_reference_avx2)
{
    check_backward(AVX2);
}
Test(recurrence, backward_matches_the_stepped_reference_avx512_shape)
{
    check_backward(AVX512_SHAPE);
}
Test(recurrence, backward_matches_the_stepped_reference_baseline)
{
    check_backward(BASELINE);
}

/* A stand-in for a gated cell: its state a_s has K entries per row, its product g_s = in_s + a_{s-1} W
 * (W [K, N]) N, and every entry of the state mixes three of the product's:
 *     a_s[j] = tanh(g[j mod N]) * sigmoid(g[(j + 1) mod N]) + 0.5 g[(2j) mod N]
 * Going forward a GRU has N = 3K (its three gates from one [B, 3H] product); going backward the shapes
 * turn round, K = 3H wide gradients through W^T to an H-wide product. Both are run. */
typedef struct {
    int K, N, calls;
} ToyCell;

#define TOY_STATE(g, j, K, N, tanh_, exp_)                                                                             \
    (tanh_(g[(j) % (N)]) / (1 + exp_(-g[((j) + 1) % (N)])) + 0.5 * g[(2 * (j)) % (N)])

static void toy_cell(void *ctx, int s, int row0, int rows, const float *g, float *a_s)
{
    ToyCell *c = ctx;
    (void)s;
#pragma omp atomic
    c->calls++;
    for (int i = 0; i < rows; i++) {
        const float *gi = g + (size_t)i * c->N;
        for (int j = 0; j < c->K; j++)
            a_s[(size_t)(row0 + i) * c->K + j] = (float)TOY_STATE(gi, j, c->K, c->N, tanhf, expf);
    }
}

static void check_gated_cell(Set level, int K, int N)
{
    use_level(level);
    const int T = 6, B = 29;
    Rng r;
    rng_seed(&r, 300);
    /* in_s for s = 1..T; in_0 is not read */
    float *w = random_floats(&r, (size_t)K * N, 1.0f / sqrtf((float)K)),
          *in = random_floats(&r, (size_t)(T + 1) * B * N, 1.0f);
    float *a = random_floats(&r, (size_t)(T + 1) * B * K, 1.0f), *g = malloc(sizeof(float) * (size_t)B * N);
    float *packed = malloc(sizeof(float) * recurrence_packed_floats(K, N));
    double *ref = malloc(sizeof(double) * (size_t)(T + 1) * B * K), *gd = malloc(sizeof(double) * N);
    for (size_t i = 0; i < (size_t)B * K; i++)
        ref[i] = a[i];
    for (int s = 1; s <= T; s++)
        for (int b = 0; b < B; b++) {
            const double *prev = ref + ((size_t)(s - 1) * B + b) * K;
            for (int j = 0; j < N; j++) {
                gd[j] = in[((size_t)s * B + b) * N + j];
                for (int k = 0; k < K; k++)
                    gd[j] += prev[k] * w[(size_t)k * N + j];
            }
            for (int j = 0; j < K; j++)
                ref[((size_t)s * B + b) * K + j] = TOY_STATE(gd, j, K, N, tanh, exp);
        }
    ToyCell cell = {.K = K, .N = N};
    recurrence_pack(packed, w, K, N, 0);
    recurrence_run(&(Recurrence){.B = B,
                                 .K = K,
                                 .N = N,
                                 .first = 1,
                                 .last = T,
                                 .w = packed,
                                 .a = a,
                                 .a_step = (ptrdiff_t)B * K,
                                 .in = in,
                                 .in_step = (ptrdiff_t)B * N,
                                 .cell = toy_cell,
                                 .ctx = &cell,
                                 .g = g});
    cr_expect_geq(cell.calls, T, "the cell ran %d times for %d steps", cell.calls, T);
    double worst = 0.0;
    for (size_t i = 0; i < (size_t)(T + 1) * B * K; i++)
        worst = fmax(worst, fabs(a[i] - ref[i]));
    /* float32 sums of up to 57 terms and libm's tanhf and expf against double: a few 1e-7 */
    cr_expect(worst <= 1e-5, "K=%d N=%d: worst difference from the double-precision loop %.3g", K, N, worst);
    free(w), free(in), free(a), free(g), free(packed), free(ref), free(gd);
}

static void check_gated_cells(Set level)
{
    check_gated_cell(level, 19, 3 * 19); /* forward: H = 19 */
    check_gated_cell(level, 3 * 19, 19); /* backward */
}

Test(recurrence, gated_cell_gets_its_wide_product_avx512)
{
    check_gated_cells(AVX512);
}
Test(recurrence, gated_cell_gets_its_wide_product_avx2)
{
    check_gated_cells(AVX2);
}
Test(recurrence, gated_cell_gets_its_wide_product_avx512_shape)
{
    check_gated_cells(AVX512_SHAPE);
}
Test(recurrence, gated_cell_gets_its_wide_product_baseline)
{
    check_gated_cells(BASELINE);
}

/* ---- elementwise ---- */

static void check_tanh(Set level)
{
    const Kernels *k = use_level(level);
    const size_t n = 2400001; /* not a multiple of any vector width */
    float *x = malloc(sizeof(float) * n), *y = malloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++)
        x[i] = y[i] = -12.0f + 24.0f * (float)i / (float)(n - 1);
    k->tanh(y, n);
    double worst = 0.0;
    for (size_t i = 0; i < n; i++)
        worst = fmax(worst, fabs(y[i] - tanh((double)x[i])));
    cr_expect_leq(worst, FAST_TANH_ERROR, "%s tanh is %.3g away from tanh", k->name, worst);
    float special[3] = {NAN, 0.0f, -100.0f};
    k->tanh(special, 3);
    cr_expect(isnan(special[0]), "tanh(NaN) must stay NaN (the trainer looks for it)");
    cr_expect_eq(special[1], 0.0f);
    cr_expect_leq(fabs(special[2] + 1.0), FAST_TANH_ERROR);
    free(x), free(y);
}

Test(elementwise, tanh_within_its_stated_error_avx512)
{
    check_tanh(AVX512);
}
Test(elementwise, tanh_within_its_stated_error_avx2)
{
    check_tanh(AVX2);
}
Test(elementwise, tanh_within_its_stated_error_avx512_shape)
{
    check_tanh(AVX512_SHAPE);
}
Test(elementwise, tanh_within_its_stated_error_baseline)
{
    check_tanh(BASELINE);
}

/* Loss and gradient of softmax cross-entropy against double precision, for a vocabulary that fills
 * whole vectors plus a remainder (65) and one smaller than a vector (3), with logits far apart. */
static void check_softmax(Set level)
{
    use_level(level);
    const int sizes[] = {65, 3};
    for (int s = 0; s < 2; s++) {
        const int rows = 300, V = sizes[s];
        const float scale = 1.0f / rows;
        Rng r;
        rng_seed(&r, 400 + s);
        float *z = random_floats(&r, (size_t)rows * V, 30.0f), *z0 = malloc(sizeof(float) * (size_t)rows * V);
        token_t *y = malloc(sizeof(token_t) * rows);
        for (int i = 0; i < rows; i++)
            y[i] = (token_t)rng_below(&r, (uint64_t)V);
        memcpy(z0, z, sizeof(float) * (size_t)rows * V);
        const double loss = softmax_xent(z, y, rows, V, scale);
        double ref_loss = 0.0, worst = 0.0;
        for (int i = 0; i < rows; i++) {
            const float *zi = z0 + (size_t)i * V;
            double max = zi[0], sum = 0.0;
            for (int j = 1; j < V; j++)
                max = fmax(max, zi[j]);
            for (int j = 0; j < V; j++)
                sum += exp(zi[j] - max);
            ref_loss += max + log(sum) - zi[y[i]];
            for (int j = 0; j < V; j++) {
                double grad = (exp(zi[j] - max) / sum - (j == y[i])) * scale;
                worst = fmax(worst, fabs(z[(size_t)i * V + j] - grad) / scale);
            }
        }
        cr_expect(fabs(loss - ref_loss) <= 1e-6 * ref_loss, "V=%d: loss %.9g, double precision %.9g", V, loss,
                  ref_loss);
        cr_expect(worst <= SOFTMAX_TOL, "V=%d: a probability is off by %.3g", V, worst);
        const double forward_only = softmax_xent(z0, y, rows, V, 0.0f);
        cr_expect_eq(forward_only, loss, "V=%d: the forward-only loss differs from the loss with gradients", V);
        free(z), free(z0), free(y);
    }
}

Test(elementwise, softmax_xent_matches_double_precision_avx512)
{
    check_softmax(AVX512);
}
Test(elementwise, softmax_xent_matches_double_precision_avx2)
{
    check_softmax(AVX2);
}
Test(elementwise, softmax_xent_matches_double_precision_avx512_shape)
{
    check_softmax(AVX512_SHAPE);
}
Test(elementwise, softmax_xent_matches_double_precision_baseline)
{
    check_softmax(BASELINE);
}

/* Adam with weight decay and gradient scaling, SGD, and the squared norm, over more elements than
 * one thread takes, against the formulas in double precision. */
static void check_optimizers(Set level)
{
    use_level(level);
    const size_t n = 100003;
    Rng r;
    rng_seed(&r, 500);
    float *p = random_floats(&r, n, 1.0f), *g = random_floats(&r, n, 1.0f), *m = random_floats(&r, n, 0.1f);
    float *v = malloc(sizeof(float) * n), *p0 = malloc(sizeof(float) * n), *m0 = malloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++)
        v[i] = 0.01f * rng_uniform(&r);
    memcpy(p0, p, sizeof(float) * n), memcpy(m0, m, sizeof(float) * n);
    float *v0 = malloc(sizeof(float) * n);
    memcpy(v0, v, sizeof(float) * n);
    const double lr = 0.01, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.1, gs = 0.5;
    const long step = 3;
    adam_update(p, g, m, v, n, (float)lr, (float)b1, (float)b2, (float)eps, (float)wd, (float)gs, step);
    double worst = 0.0;
    for (size_t i = 0; i < n; i++) {
        double gi = g[i] * gs, mi = b1 * m0[i] + (1 - b1) * gi, vi = b2 * v0[i] + (1 - b2) * gi * gi;
        double pi = p0[i] - lr * (mi / (1 - pow(b1, step)) / (sqrt(vi / (1 - pow(b2, step))) + eps) + wd * p0[i]);
        worst = fmax(worst, fmax(fabs(p[i] - pi), fabs(m[i] - mi)));
    }
    cr_expect(worst <= OPTIM_TOL, "adam: off by %.3g", worst);
    memcpy(p, p0, sizeof(float) * n), memcpy(m, m0, sizeof(float) * n);
    sgd_update(p, g, m, n, (float)lr, 0.9f, (float)gs);
    worst = 0.0;
    for (size_t i = 0; i < n; i++) {
        double vi = 0.9 * m0[i] + g[i] * gs;
        worst = fmax(worst, fabs(p[i] - (p0[i] - lr * vi)));
    }
    cr_expect(worst <= OPTIM_TOL, "sgd: off by %.3g", worst);
    double sum = 0.0;
    for (size_t i = 0; i < n; i++)
        sum += (double)g[i] * g[i];
    cr_expect(fabs(sum_of_squares(g, n) - sum) <= 1e-12 * sum, "sum of squares %.15g, expected %.15g",
              sum_of_squares(g, n), sum);
    free(p), free(g), free(m), free(v), free(p0), free(m0), free(v0);
}

Test(elementwise, optimizers_and_norm_match_the_formulas_avx512)
{
    check_optimizers(AVX512);
}
Test(elementwise, optimizers_and_norm_match_the_formulas_avx2)
{
    check_optimizers(AVX2);
}
Test(elementwise, optimizers_and_norm_match_the_formulas_avx512_shape)
{
    check_optimizers(AVX512_SHAPE);
}
Test(elementwise, optimizers_and_norm_match_the_formulas_baseline)
{
    check_optimizers(BASELINE);
}

/* The vectorised dropout masks against dropout.h's scalar decision, unit by unit: rows of every length
 * around the vector widths (a partial last group of four, a partial last vector of groups), counters
 * with high bits set, and the thresholds of p = 0 and of p near 1. */
static void check_dropout_keep(Set level)
{
    const Kernels *k = use_level(level);
    const int widths[] = {1, 3, 4, 5, 15, 16, 17, 31, 63, 64, 65, 67, 129, 384};
    const float probabilities[] = {0.0f, 0.3f, 0.5f, 0.999f};
    const uint64_t seeds[] = {1337, 0xFEDCBA9876543210u};
    uint8_t keep[384 + 1];
    long kept = 0, units = 0;
    for (size_t w = 0; w < sizeof widths / sizeof *widths; w++)
        for (size_t pi = 0; pi < sizeof probabilities / sizeof *probabilities; pi++)
            for (size_t si = 0; si < 2; si++) {
                const int H = widths[w], l = (int)(w % 3), t = (int)(65535 - 7 * w), row = (int)(pi * 40 + si);
                const long step = si ? 0x5A5A5A5A5A5L : (long)(w + 1);
                const uint32_t threshold = dropout_threshold(probabilities[pi]);
                uint32_t ctr[4], key[2];
                dropout_counter(ctr, key, seeds[si], step, l, t, row, 12345); /* the group word is ignored */
                memset(keep, 0xAA, sizeof keep);
                k->dropout_keep(keep, H, ctr, key, threshold);
                for (int j = 0; j < H; j++) {
                    const int want = dropout_keep(seeds[si], step, l, t, row, j, threshold);
                    cr_assert_eq(keep[j], want, "%s: H %d, p %g, unit %d: %d, the scalar generator says %d",
                                 k->name, H, probabilities[pi], j, keep[j], want);
                    kept += want, units++;
                }
                cr_assert_eq(keep[H], 0xAA, "%s: H %d: a byte beyond the row was written", k->name, H);
            }
    cr_expect(kept > units / 3 && kept < units, "%ld of %ld units kept", kept, units);
}

Test(elementwise, dropout_masks_match_the_scalar_generator_avx512)
{
    check_dropout_keep(AVX512);
}
Test(elementwise, dropout_masks_match_the_scalar_generator_avx2)
{
    check_dropout_keep(AVX2);
}
Test(elementwise, dropout_masks_match_the_scalar_generator_avx512_shape)
{
    check_dropout_keep(AVX512_SHAPE);
}
Test(elementwise, dropout_masks_match_the_scalar_generator_baseline)
{
    check_dropout_keep(BASELINE);
}

/* A deliberately wrong recurrence fails the comparison used above (so the test can fail): the
 * stepped reference with one timestep left out. */
Test(recurrence, a_missing_timestep_is_caught)
{
    const int T = 7, B = 13, H = 37;
    const size_t n = (size_t)(T + 1) * B * H;
    Rng r;
    rng_seed(&r, 600);
    float *w = random_floats(&r, (size_t)H * H, 1.5f / sqrtf((float)H)), *h = random_floats(&r, n, 1.0f);
    float *ref = malloc(sizeof(float) * n), *packed = malloc(sizeof(float) * recurrence_packed_floats(H, H));
    memcpy(ref, h, sizeof(float) * n);
    rnn_recurrence_forward(h, w, packed, T, B, H);
    rnn_recurrence_forward_steps(ref, w, T - 1, B, H);
    cr_expect(rel_l2(ref, h, n) > 100 * RECURRENCE_TOL, "a missing timestep went unnoticed");
    free(w), free(h), free(ref), free(packed);
}

/* With every product on the built-in loops, a training step gives the same bits on one thread and on
 * several: each element is computed by one thread, in the same order, however the rows are split. The
 * shape is large enough for every threaded loop to use threads (softmax and Adam included). */
static const ModelConfig THREADED = {.vocab = 40, .embed = 24, .hidden = 96, .layers = 2};
enum { THREADED_T = 16, THREADED_B = 64 };

static void train_steps(int threads, float *params_out, float *loss_out, float *norm_out)
{
    const ModelConfig cfg = THREADED;
    const int T = THREADED_T, B = THREADED_B;
    const BackendOptions opts = {.threads = threads};
    Backend be;
    Err e;
    cr_assert_eq(backend_create(&be, &cpu_backend_ops, &cfg, T, B, &opts, &e), 0, "%s", e.msg);
    const size_t P = model_num_params(&cfg);
    float *params = malloc(sizeof(float) * P), *zeros = calloc(P, sizeof(float));
    model_init_params(&cfg, params, 3);
    cr_assert_eq(be.ops->set_params(be.ctx, params, &e), 0);
    cr_assert_eq(be.ops->set_moments(be.ctx, zeros, zeros, &e), 0);
    token_t x[THREADED_T * THREADED_B], y[THREADED_T * THREADED_B];
    Rng r;
    rng_seed(&r, 9);
    const OptimConfig o = optim_defaults();
    for (int step = 1; step <= 3; step++) {
        for (int i = 0; i < T * B; i++)
            x[i] = (token_t)rng_below(&r, (uint64_t)cfg.vocab), y[i] = (token_t)rng_below(&r, (uint64_t)cfg.vocab);
        const Batch b = {.x = x, .y = y, .T = T, .B = B};
        cr_assert_eq(be.ops->forward_backward(be.ctx, &b, &loss_out[step - 1], &e), 0, "%s", e.msg);
        cr_assert_eq(be.ops->grad_norm(be.ctx, &norm_out[step - 1], &e), 0);
        cr_assert_eq(be.ops->update(be.ctx, &o, 2e-3f, step, 1.0f, &e), 0);
    }
    cr_assert_eq(be.ops->get_params(be.ctx, params_out, &e), 0);
    backend_destroy(&be);
    free(params), free(zeros);
}

Test(threads, built_in_loops_give_the_same_bits_on_any_thread_count)
{
    setenv("CHARRNN_BLAS", "0", 1);
    const size_t P = model_num_params(&THREADED);
    float *one = malloc(sizeof(float) * P), *two = malloc(sizeof(float) * P), loss1[3], loss2[3], norm1[3], norm2[3];
    train_steps(1, one, loss1, norm1);
    train_steps(2, two, loss2, norm2);
    cr_expect(memcmp(loss1, loss2, sizeof loss1) == 0, "losses differ: %.9g %.9g", loss1[2], loss2[2]);
    cr_expect(memcmp(norm1, norm2, sizeof norm1) == 0, "gradient norms differ: %.9g %.9g", norm1[2], norm2[2]);
    cr_expect(memcmp(one, two, sizeof(float) * P) == 0, "parameters differ between 1 and 2 threads");
    free(one), free(two);
}

/* A tile sums its products apart from what they are added to (in_s), then adds the two: when in_s is the
 * larger (the gradient arriving from above, going backward), rounding the running sum at in_s's scale
 * after every product would lose the products' low bits. Here |dh| is about 1 and the carry about 0.1:
 * against the recurrence in double precision, summing apart is within FUSED_BACKWARD_ERROR (measured
 * 4.3e-8 to 4.6e-8 on every kernel set), summing onto dh lands at 1.4e-7. */
#define FUSED_BACKWARD_ERROR 7e-8
Test(recurrence, backward_sums_its_products_apart_from_the_gradient_from_above)
{
    const int T = 9, B = 13, H = 37;
    const size_t state = (size_t)B * H, n = (size_t)T * state;
    Rng r;
    rng_seed(&r, 700);
    float *w = random_floats(&r, (size_t)H * H, 0.05f), *h = random_floats(&r, n + state, 0.9f);
    float *dh = random_floats(&r, n, 1.0f), *da = malloc(sizeof(float) * n);
    float *packed = malloc(sizeof(float) * recurrence_packed_floats(H, H));
    double *ref = malloc(sizeof(double) * n), *carry = calloc(state, sizeof(double));
    for (int t = T; t >= 1; t--) /* da_t = (dh_t + da_{t+1} W^T)(1 - h_t^2), in double */
        for (int b = 0; b < B; b++)
            for (int j = 0; j < H; j++) {
                const size_t at = (size_t)(t - 1) * state + (size_t)b * H + j;
                double s = 0.0;
                if (t < T)
                    for (int k = 0; k < H; k++)
                        s += ref[(size_t)t * state + (size_t)b * H + k] * w[(size_t)j * H + k];
                const double y = h[(size_t)t * state + (size_t)b * H + j];
                ref[at] = (dh[at] + s) * (1.0 - y * y);
            }
    recurrence_pack(packed, w, H, H, 1);
    recurrence_tanh_backward(da, dh, h, packed, T, B, H);
    double diff = 0.0, norm = 0.0;
    for (size_t i = 0; i < n; i++)
        diff += (da[i] - ref[i]) * (da[i] - ref[i]), norm += ref[i] * ref[i];
    cr_log_info("%s: relative L2 error %.3g", kernels()->name, sqrt(diff / norm));
    cr_expect(sqrt(diff / norm) <= FUSED_BACKWARD_ERROR, "%s: da is %.3g away from the double-precision recurrence",
              kernels()->name, sqrt(diff / norm));
    free(w), free(h), free(dh), free(da), free(packed), free(ref), free(carry);
}
