/* The CUDA backend against the CPU reference on the same parameters and batches: loss, every gradient
 * tensor, the carried state, the gradient norm, the logits of generation, and the parameters and
 * optimizer moments after three optimizer steps. Built twice: against the emulated device (runs in
 * every CI run) and against the real GPU (skipped where there is none). */
#define _POSIX_C_SOURCE 200809L /* setenv */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../cpu/cpu.h"
#include "../cuda/cuda.h"
#include "model.h"
#include "sampler.h"
#include "selftest.h"
#include "train.h"

/* The tolerances are selftest.h's, stated once for the suite and for `charrnn selftest`: PARITY_REL_L2
 * relative L2 per tensor in float32 (the two differ only in summation order, up to ~7e-7), TF32_REL_L2
 * with --tf32, and the product check's bounds. Parameters after optimizer steps are compared at the
 * small shapes only: there no gradient entry comes near Adam's eps, where an update's sign would hang
 * on rounding. */

/* Every way the CUDA backend can run a step, from its own list: graphs replayed or eager launches, and
 * the recurrence as a wavefront of all layers, one persistent launch per layer, or one kernel per
 * timestep. Each parity test runs under each. */
typedef BackendVariant Variant;
#define VARIANTS (cuda_backend_ops.variants)
static int n_variants(void)
{
    int n = 0;
    while (VARIANTS[n].name)
        n++;
    return n;
}

typedef struct {
    ModelConfig cfg;
    int T, B, loss_from_t, carry_in;
    int max_B; /* the batch size the backends are created for; 0: B */
} Shape;

typedef struct {
    Backend cpu, cuda;
    size_t P, nh;
    const Variant *variant;
    double tolerance;
} Pair;

static void skip_without_device(void)
{
    Err e;
    if (cuda_device_usable(&e) != 0)
        cr_skip_test("no CUDA device: %s", e.msg);
    cr_log_info("CUDA backend on: %s", cuda_device_name());
}

/* Compares two full buffers tensor by tensor, pairing the same named tensor on both sides. */
static void expect_tensors_match(const Pair *p, const ModelConfig *cfg, const float *ref, const float *x,
                                 const char *what)
{
    ParamTensor t[MODEL_MAX_TENSORS];
    int n = model_tensors(cfg, t);
    for (int k = 0; k < n; k++) {
        double err = rel_l2(ref + t[k].offset, x + t[k].offset, t[k].rows * t[k].cols);
        cr_expect(err <= p->tolerance, "%s: %s %s: relative L2 error %.3g", p->variant->name, what, t[k].name, err);
    }
}

static Pair make_pair_with(const Shape *s, uint64_t seed, const Variant *variant, double tolerance)
{
    Pair p = {.variant = variant, .tolerance = tolerance};
    Err e;
    skip_without_device();
    const int max_B = s->max_B ? s->max_B : s->B;
    cr_assert_eq(backend_create(&p.cpu, &cpu_backend_ops, &s->cfg, s->T, max_B, NULL, &e), 0, "%s", e.msg);
    cr_assert_eq(backend_create(&p.cuda, &cuda_backend_ops, &s->cfg, s->T, max_B, &variant->opts, &e), 0, "%s: %s",
                 variant->name, e.msg);
    p.P = model_num_params(&s->cfg);
    p.nh = (size_t)model_state_sets(&s->cfg) * s->cfg.layers * max_B * s->cfg.hidden; /* h, and the LSTM's c */
    float *params = malloc(sizeof(float) * p.P), *zeros = calloc(p.P > p.nh ? p.P : p.nh, sizeof(float));
    float *carry = malloc(sizeof(float) * p.nh);
    model_init_params(&s->cfg, params, seed);
    Rng r;
    rng_seed(&r, seed + 1);
    for (size_t i = 0; i < p.nh; i++)
        carry[i] = 1.8f * rng_uniform(&r) - 0.9f;
    Backend *both[2] = {&p.cpu, &p.cuda};
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(both[i]->ops->set_params(both[i]->ctx, params, &e), 0, "%s", e.msg);
        cr_assert_eq(both[i]->ops->set_moments(both[i]->ctx, zeros, zeros, &e), 0, "%s", e.msg);
        cr_assert_eq(both[i]->ops->set_carry(both[i]->ctx, carry, &e), 0, "%s", e.msg);
    }
    free(params), free(zeros), free(carry);
    return p;
}

static Pair make_pair(const Shape *s, uint64_t seed, const Variant *variant)
{
    return make_pair_with(s, seed, variant, PARITY_REL_L2);
}

/* The variant's paths, and only those, ran: a fallback would otherwise pass unnoticed. */
static void expect_paths(const Pair *p)
{
    Err e;
    cr_expect_eq(p->cuda.ops->check_variant(p->cuda.ctx, &e), 0, "%s: %s", p->variant->name, e.msg);
}

static void free_pair(Pair *p)
{
    backend_destroy(&p->cpu);
    backend_destroy(&p->cuda);
}

static void random_batch(const Shape *s, Rng *r, token_t *x, token_t *y)
{
    for (int i = 0; i < s->T * s->B; i++) {
        x[i] = (token_t)rng_below(r, (uint64_t)s->cfg.vocab);
        y[i] = (token_t)rng_below(r, (uint64_t)s->cfg.vocab);
    }
}

/* One forward/backward on both; compares loss, gradients, carried state and gradient norm. */
static void step_and_compare(Pair *p, const Shape *s, const Batch *b)
{
    Err e;
    float loss[2], norm[2];
    float *grads[2] = {malloc(sizeof(float) * p->P), malloc(sizeof(float) * p->P)};
    float *carry[2] = {malloc(sizeof(float) * p->nh), malloc(sizeof(float) * p->nh)};
    Backend *both[2] = {&p->cpu, &p->cuda};
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(both[i]->ops->forward_backward(both[i]->ctx, b, &loss[i], &e), 0, "%s", e.msg);
        cr_assert_eq(both[i]->ops->get_grads(both[i]->ctx, grads[i], &e), 0, "%s", e.msg);
        cr_assert_eq(both[i]->ops->get_carry(both[i]->ctx, carry[i], &e), 0, "%s", e.msg);
        cr_assert_eq(both[i]->ops->grad_norm(both[i]->ctx, &norm[i], &e), 0, "%s", e.msg);
    }
    const char *name = p->variant->name;
    cr_expect(fabsf(loss[1] - loss[0]) <= p->tolerance * fabsf(loss[0]), "%s: loss: cpu %.8f, cuda %.8f", name, loss[0],
              loss[1]);
    cr_expect(fabsf(norm[1] - norm[0]) <= p->tolerance * norm[0], "%s: gradient norm: cpu %.8f, cuda %.8f", name,
              norm[0], norm[1]);
    expect_tensors_match(p, &s->cfg, grads[0], grads[1], "gradient");
    cr_expect(rel_l2(carry[0], carry[1], p->nh) <= p->tolerance, "%s: carried state: relative L2 error %.3g", name,
              rel_l2(carry[0], carry[1], p->nh));
    for (int i = 0; i < 2; i++)
        free(grads[i]), free(carry[i]);
}

static void check_parity_of(int layers, int window, int carry_in, OptimizerKind opt, const Variant *variant)
{
    Shape s = {.cfg = {.vocab = 11, .embed = 7, .hidden = 13, .layers = layers}, .T = 5, .B = 3};
    s.loss_from_t = window ? s.T - 1 : 0;
    s.carry_in = carry_in;
    Pair p = make_pair(&s, 100 + (uint64_t)layers, variant);
    Rng r;
    rng_seed(&r, 7);
    token_t x[15], y[15];
    OptimConfig o = optim_defaults();
    o.kind = opt;
    o.weight_decay = opt == OPT_ADAMW ? 0.1f : 0.0f;
    o.lr = opt == OPT_SGD ? 0.1f : 0.01f;
    Err e;
    Backend *both[2] = {&p.cpu, &p.cuda};
    for (long step = 1; step <= 3; step++) {
        random_batch(&s, &r, x, y);
        Batch b = {
            .x = x, .y = y, .T = s.T, .B = s.B, .loss_from_t = s.loss_from_t, .carry_in = s.carry_in, .carry_out = 1};
        step_and_compare(&p, &s, &b);
        for (int i = 0; i < 2; i++)
            cr_assert_eq(both[i]->ops->update(both[i]->ctx, &o, o.lr, step, 0.5f, &e), 0, "%s", e.msg);
    }
    float *params[2] = {malloc(sizeof(float) * p.P), malloc(sizeof(float) * p.P)};
    float *m[2] = {malloc(sizeof(float) * p.P), malloc(sizeof(float) * p.P)};
    float *v[2] = {malloc(sizeof(float) * p.P), malloc(sizeof(float) * p.P)};
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(both[i]->ops->get_params(both[i]->ctx, params[i], &e), 0, "%s", e.msg);
        cr_assert_eq(both[i]->ops->get_moments(both[i]->ctx, m[i], v[i], &e), 0, "%s", e.msg);
    }
    expect_tensors_match(&p, &s.cfg, params[0], params[1], "parameters after 3 steps:");
    expect_tensors_match(&p, &s.cfg, m[0], m[1], "first moments after 3 steps:");
    if (opt != OPT_SGD)
        expect_tensors_match(&p, &s.cfg, v[0], v[1], "second moments after 3 steps:");
    for (int i = 0; i < 2; i++)
        free(params[i]), free(m[i]), free(v[i]);
    expect_paths(&p);
    free_pair(&p);
}

static void check_parity(int layers, int window, int carry_in, OptimizerKind opt)
{
    for (int i = 0; i < n_variants(); i++)
        check_parity_of(layers, window, carry_in, opt, &VARIANTS[i]);
}

Test(parity, one_layer_seq_mode_adam)
{
    check_parity(1, 0, 0, OPT_ADAM);
}
Test(parity, three_layers_seq_mode_adamw)
{
    check_parity(3, 0, 0, OPT_ADAMW);
}
Test(parity, one_layer_window_mode_sgd)
{
    check_parity(1, 1, 0, OPT_SGD);
}
Test(parity, three_layers_window_mode_adam)
{
    check_parity(3, 1, 0, OPT_ADAM);
}
Test(parity, three_layers_stateful_carry_in_adam)
{
    check_parity(3, 0, 1, OPT_ADAM);
}

/* The gated cells and dropout, each cell in both modes with one and three layers, with and without
 * dropout (the tanh cell's runs without it are the tests above), under every variant: two steps, the
 * second from the state the first carried out (a graph replay where graphs are on). The masks are drawn
 * at a global row offset and a step past 2^32, so that every part of the counter counts. */
static const float CELL_DROPOUT = 0.3f; /* drops about a third: a mask that differs from the CPU's shows at once */

static void check_cell_parity_of(CellKind cell, int layers, int window, float dropout, const Variant *variant)
{
    Shape s = {.cfg = {.vocab = 11, .embed = 7, .hidden = 13, .layers = layers, .cell = cell}, .T = 4, .B = 3};
    s.loss_from_t = window ? s.T - 1 : 0;
    Pair p = make_pair(&s, 300 + 10 * (uint64_t)cell + (uint64_t)layers, variant);
    Rng r;
    rng_seed(&r, 11 + (uint64_t)window);
    token_t x[12], y[12];
    for (int step = 1; step <= 2; step++) {
        random_batch(&s, &r, x, y);
        Batch b = {.x = x, .y = y, .T = s.T, .B = s.B, .loss_from_t = s.loss_from_t, .carry_in = step > 1,
                   .carry_out = 1, .dropout = dropout, .dropout_seed = 0x9e3779b97f4a7c15u,
                   .dropout_step = (1L << 32) + step, .dropout_row0 = 5};
        cr_log_info("%s: %s, %d layers, %s mode, dropout %g, step %d", variant->name, cell_name(cell), layers,
                    window ? "window" : "seq", dropout, step);
        step_and_compare(&p, &s, &b);
    }
    expect_paths(&p);
    free_pair(&p);
}

static void check_cell_parity(CellKind cell)
{
    for (int i = 0; i < n_variants(); i++)
        for (int layers = 1; layers <= 3; layers += 2)
            for (int window = 0; window < 2; window++)
                for (int drop = cell == CELL_RNN; drop < 2; drop++)
                    check_cell_parity_of(cell, layers, window, drop ? CELL_DROPOUT : 0.0f, &VARIANTS[i]);
}

Test(parity, gru_every_mode_layers_and_dropout)
{
    check_cell_parity(CELL_GRU);
}
Test(parity, lstm_every_mode_layers_and_dropout)
{
    check_cell_parity(CELL_LSTM);
}
Test(parity, rnn_with_dropout_every_mode_and_layers)
{
    check_cell_parity(CELL_RNN);
}

/* Evaluation with the state carried: chunks of 5, 5 and 2 over three streams, each chunk starting from
 * the last one's state, and the run's own carried state put back afterwards, on both. */
static void check_carried_evaluation(CellKind cell, const Variant *variant)
{
    Shape s = {.cfg = {.vocab = 11, .embed = 7, .hidden = 13, .layers = 2, .cell = cell}, .T = 5, .B = 3};
    Pair p = make_pair(&s, 70 + (uint64_t)cell, variant);
    Rng r;
    rng_seed(&r, 17);
    token_t text[37];
    for (int i = 0; i < 37; i++)
        text[i] = (token_t)rng_below(&r, (uint64_t)s.cfg.vocab);
    double loss[2];
    float *kept[2] = {malloc(sizeof(float) * p.nh), malloc(sizeof(float) * p.nh)}, *after = malloc(sizeof(float) * p.nh);
    Err e;
    Backend *both[2] = {&p.cpu, &p.cuda};
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(both[i]->ops->get_carry(both[i]->ctx, kept[i], &e), 0, "%s", e.msg);
        cr_assert_eq(evaluate(both[i], MODE_SEQ, 1, text, 37, s.T, s.B, 0, &loss[i], &e), 0, "%s", e.msg);
        cr_assert_eq(both[i]->ops->get_carry(both[i]->ctx, after, &e), 0, "%s", e.msg);
        cr_expect(memcmp(kept[i], after, sizeof(float) * p.nh) == 0, "%s: %s: evaluation changed the carried state",
                  variant->name, both[i]->ops->name);
    }
    cr_expect(fabs(loss[1] - loss[0]) <= PARITY_REL_L2 * loss[0], "%s: %s: cpu %.8f, cuda %.8f", variant->name,
              cell_name(cell), loss[0], loss[1]);
    free(kept[0]), free(kept[1]), free(after);
    expect_paths(&p);
    free_pair(&p);
}

Test(parity, evaluation_with_the_state_carried_matches)
{
    for (int i = 0; i < n_variants(); i++)
        for (CellKind cell = CELL_RNN; cell <= CELL_LSTM; cell++)
            check_carried_evaluation(cell, &VARIANTS[i]);
}

static void check_forward_only(const Variant *variant)
{
    Shape s = {.cfg = {.vocab = 11, .embed = 7, .hidden = 13, .layers = 2}, .T = 5, .B = 3};
    Pair p = make_pair(&s, 5, variant);
    Rng r;
    rng_seed(&r, 3);
    token_t x[15], y[15];
    random_batch(&s, &r, x, y);
    Batch full = {.x = x, .y = y, .T = 5, .B = 3};
    Batch b = {.x = x, .y = y, .T = 4, .B = 2}; /* smaller than the backends were created for */
    float loss[2], ignored;
    float *before = malloc(sizeof(float) * p.P), *after = malloc(sizeof(float) * p.P);
    Err e;
    Backend *both[2] = {&p.cpu, &p.cuda};
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(both[i]->ops->forward_backward(both[i]->ctx, &full, &ignored, &e), 0, "%s", e.msg);
        cr_assert_eq(both[i]->ops->get_grads(both[i]->ctx, before, &e), 0, "%s", e.msg);
        cr_assert_eq(both[i]->ops->forward(both[i]->ctx, &b, &loss[i], &e), 0, "%s", e.msg);
        cr_assert_eq(both[i]->ops->get_grads(both[i]->ctx, after, &e), 0, "%s", e.msg);
        cr_expect(memcmp(before, after, sizeof(float) * p.P) == 0, "%s: %s: forward changed the gradients",
                  variant->name, both[i]->ops->name);
    }
    cr_expect(fabsf(loss[1] - loss[0]) <= PARITY_REL_L2 * loss[0], "%s: cpu %.8f, cuda %.8f", variant->name, loss[0],
              loss[1]);
    float norm[2];
    for (int i = 0; i < 2; i++) /* the norm of the gradients forward_backward left, not of a forward */
        cr_assert_eq(both[i]->ops->grad_norm(both[i]->ctx, &norm[i], &e), 0, "%s", e.msg);
    cr_expect(fabsf(norm[1] - norm[0]) <= PARITY_REL_L2 * norm[0], "%s: gradient norm: cpu %.8f, cuda %.8f",
              variant->name, norm[0], norm[1]);
    free(before), free(after);
    expect_paths(&p);
    free_pair(&p);
}

/* Also a smaller batch after a full one: a second graph, and the first replayed after it. */
Test(parity, forward_only_loss_matches_and_leaves_gradients_alone)
{
    for (int i = 0; i < n_variants(); i++)
        check_forward_only(&VARIANTS[i]);
}

/* Shapes past one block of the kernels (H > 128 threads along H, V > 256 threads per softmax row),
 * a batch smaller than the backends were created for, and a carried-in state read at max_B strides. */
Test(parity, large_shapes_gradients_match)
{
    for (int i = 0; i < n_variants(); i++) {
        Shape s = {.cfg = {.vocab = 300, .embed = 33, .hidden = 130, .layers = 2}, .T = 4, .B = 3, .max_B = 5};
        s.carry_in = 1;
        Pair p = make_pair(&s, 21, &VARIANTS[i]);
        Rng r;
        rng_seed(&r, 17);
        token_t x[12], y[12];
        random_batch(&s, &r, x, y);
        Batch b = {.x = x, .y = y, .T = s.T, .B = s.B, .carry_in = 1, .carry_out = 1};
        step_and_compare(&p, &s, &b);
        step_and_compare(&p, &s, &b); /* again, through the graph, from the state the first step carried */
        expect_paths(&p);
        free_pair(&p);
    }
}

/* The embedding's gradient sums each token's rows in chunks of 32, then the chunks: a token on 100 of a
 * batch's 120 rows spans four chunks. Through the vocabulary (V <= T B) and through the rows (V > T B). */
Test(parity, frequent_token_gradient_sums_over_several_chunks)
{
    for (int folded = 0; folded < 2; folded++) {
        Shape s = {.cfg = {.vocab = folded ? 7 : 150, .embed = 5, .hidden = 13, .layers = 1}, .T = 10, .B = 12};
        Pair p = make_pair(&s, 61, &VARIANTS[0]);
        Rng r;
        rng_seed(&r, 37);
        token_t x[120], y[120];
        random_batch(&s, &r, x, y);
        for (int i = 0; i < 100; i++)
            x[(i * 7) % 120] = 3;
        Batch b = {.x = x, .y = y, .T = s.T, .B = s.B};
        step_and_compare(&p, &s, &b);
        step_and_compare(&p, &s, &b);
        free_pair(&p);
    }
}

/* The persistent kernel with each number of rows per block (1, 2, 4, 8), on a batch spread over several
 * row tiles and a hidden size over several column tiles, neither a whole number of tiles: one launch per
 * layer and a wavefront of three layers (each of whose layers above the first computes its input
 * projection, and below the top its gradient from above, in the kernel); the gated cells' kernels, one
 * launch per layer, each of whose blocks keeps every gate of its units, on a smaller model (B=9, H=38, one
 * layer: their blocks are the emulated device's cost, and the other gated cases cover the layers). */
static void check_every_tile_height(CellKind cell, int wave)
{
    for (int rows = 1; rows <= 8; rows *= 2) {
        Variant v = {wave ? "wavefront, forced rows" : "persistent, forced rows",
                     {.graphs = GRAPHS_ON, .recurrence = wave ? RECURRENCE_WAVEFRONT : RECURRENCE_PERSISTENT}};
        v.opts.persistent_rows = rows;
        const int gated = cell != CELL_RNN;
        Shape s = {.cfg = {.vocab = 17, .embed = 9, .hidden = gated ? 38 : 70, .layers = gated ? 1 : wave ? 3 : 2},
                   .T = 3, .B = gated ? 9 : 11};
        s.cfg.cell = cell;
        Pair p = make_pair(&s, 31 + (uint64_t)rows, &v);
        Rng r;
        rng_seed(&r, 19);
        token_t x[3 * 11], y[3 * 11];
        random_batch(&s, &r, x, y);
        Batch b = {.x = x, .y = y, .T = s.T, .B = s.B, .carry_out = 1};
        cr_log_info("%s: %s, rows per block %d", v.name, cell_name(cell), rows);
        step_and_compare(&p, &s, &b);
        b.carry_in = 1; /* from the state the first step carried out: the LSTM's c too */
        step_and_compare(&p, &s, &b);
        expect_paths(&p);
        free_pair(&p);
    }
}

Test(parity, persistent_kernel_every_tile_height)
{
    for (int wave = 0; wave < 2; wave++)
        check_every_tile_height(CELL_RNN, wave);
}
Test(parity, gated_persistent_kernel_every_tile_height)
{
    check_every_tile_height(CELL_GRU, 0);
    check_every_tile_height(CELL_LSTM, 0);
}

/* H a multiple of 4 stages rows with 16-byte loads. With the buffers packed one after another, the
 * embedding's T B E = 105 floats (E odd) put the first layer's h off 16 bytes, and a 16-byte load from
 * it would fault on a GPU (the sanitizer build reports it as a misaligned load); the LSTM's da (G H = 64)
 * too. Every buffer now starts on 256 bytes, and the staging checks each row's pointer as well. */
Test(parity, persistent_kernel_behind_an_embedding_of_odd_width)
{
    const Variant v = {"persistent", {.graphs = GRAPHS_OFF, .recurrence = RECURRENCE_PERSISTENT}};
    const CellKind cells[] = {CELL_RNN, CELL_LSTM};
    for (int i = 0; i < 2; i++) {
        Shape s = {.cfg = {.vocab = 11, .embed = 7, .hidden = 16, .layers = 2, .cell = cells[i]}, .T = 5, .B = 3};
        Pair p = make_pair(&s, 41, &v);
        Rng r;
        rng_seed(&r, 23);
        token_t x[15], y[15];
        random_batch(&s, &r, x, y);
        Batch b = {.x = x, .y = y, .T = s.T, .B = s.B, .carry_out = 1};
        step_and_compare(&p, &s, &b);
        expect_paths(&p);
        free_pair(&p);
    }
}

/* Runs three steps with the emulated device's fault injection `variable`=1 and expects eager launches
 * throughout, and the reason the backend gives to contain `reason`. A real GPU ignores the variable:
 * the comparison still runs, the rest is skipped. */
static void check_eager_fallback(const char *variable, const Variant *v, const char *reason)
{
    setenv(variable, "1", 1);
    Shape s = {.cfg = {.vocab = 11, .embed = 7, .hidden = 13, .layers = 2}, .T = 5, .B = 3};
    Pair p = make_pair(&s, 51, v);
    Rng r;
    rng_seed(&r, 29);
    token_t x[15], y[15];
    random_batch(&s, &r, x, y);
    Batch b = {.x = x, .y = y, .T = s.T, .B = s.B, .carry_out = 1};
    for (int i = 0; i < 3; i++)
        step_and_compare(&p, &s, &b);
    unsetenv(variable);
    CudaStats st;
    cuda_backend_stats(p.cuda.ctx, &st);
    if (!strstr(cuda_device_name(), "emulated")) {
        free_pair(&p);
        cr_skip_test("%s is the emulated device's fault injection", variable);
    }
    cr_expect_eq(st.graph_replays, 0);
    cr_expect_eq(st.eager_steps, 3);
    cr_expect(st.graphs_note && strstr(st.graphs_note, reason), "%s", st.graphs_note ? st.graphs_note : "(no note)");
    free_pair(&p);
}

/* A graph that cannot be captured: the backend says why, launches eagerly and computes the same. The
 * emulated device refuses captures when asked to (CHARRNN_EMU_REFUSE_CAPTURE). */
Test(parity, failed_capture_falls_back_to_eager_launches)
{
    const Variant v = {"graphs refused", {.graphs = GRAPHS_ON}};
    check_eager_fallback("CHARRNN_EMU_REFUSE_CAPTURE", &v, "graph capture failed (cudaErrorStreamCaptureInvalidated)");
}

/* A captured graph whose persistent kernels are not cooperative nodes would trap at the first grid
 * sync: the backend finds it in the graph, says so and launches eagerly. The emulated device drops the
 * attribute when asked (CHARRNN_EMU_DROP_COOPERATIVE). */
Test(parity, graph_without_cooperative_nodes_falls_back_to_eager_launches)
{
    const Variant v = {"cooperative attribute dropped", {.graphs = GRAPHS_ON, .recurrence = RECURRENCE_WAVEFRONT}};
    check_eager_fallback("CHARRNN_EMU_DROP_COOPERATIVE", &v, "persistent kernels are cooperative nodes");
}

/* --tf32: within TF32_REL_L2 of the float32 CPU reference. */
Test(parity, tf32_within_its_stated_tolerance)
{
    Variant v = {"tf32", {.tf32 = 1, .graphs = GRAPHS_ON, .recurrence = RECURRENCE_PERSISTENT}};
    Shape s = {.cfg = {.vocab = 40, .embed = 24, .hidden = 48, .layers = 2}, .T = 6, .B = 5};
    Pair p = make_pair_with(&s, 41, &v, TF32_REL_L2);
    Rng r;
    rng_seed(&r, 23);
    token_t x[30], y[30];
    random_batch(&s, &r, x, y);
    Batch b = {.x = x, .y = y, .T = s.T, .B = s.B, .carry_out = 1};
    step_and_compare(&p, &s, &b);
    step_and_compare(&p, &s, &b);
    expect_paths(&p);
    free_pair(&p);
}

/* --tf32 asks cuBLAS for TF32 explicitly (CUBLAS_COMPUTE_32F_FAST_TF32), and on a product large enough
 * that tensor cores are the obvious choice the backend's own product rounds like TF32; without --tf32
 * it is float32. */
Test(parity, tf32_products_round_like_tensor_cores_on_a_large_product)
{
    skip_without_device();
    const ModelConfig cfg = {.vocab = 11, .embed = 7, .hidden = 13, .layers = 1};
    for (int tf32 = 0; tf32 < 2; tf32++) {
        Backend be;
        Err e;
        const BackendOptions o = {.tf32 = tf32};
        cr_assert_eq(backend_create(&be, &cuda_backend_ops, &cfg, 2, 2, &o, &e), 0, "%s", e.msg);
        /* The emulated device rounds every product's inputs to TF32, whatever its size: a smaller one
         * shows the backend asks for TF32 there; on a GPU the size is what makes cuBLAS's choice plain. */
        const int n = strstr(cuda_device_name(), "emulated") ? 128 : PRODUCT_CHECK_N;
        double err = 0.0;
        cr_assert_eq(be.ops->product_error(be.ctx, n, 5, &err, &e), 0, "%s", e.msg);
        cr_log_info("%s: relative L2 error of a %d^3 product: %.3g", tf32 ? "tf32" : "float32", n, err);
        if (tf32)
            cr_expect(err >= PRODUCT_TF32_MIN && err <= PRODUCT_TF32_MAX, "tf32 product error %.3g", err);
        else
            cr_expect(err <= PRODUCT_FLOAT32_MAX, "float32 product error %.3g", err);
        backend_destroy(&be);
    }
}

/* Each cell, the LSTM carrying c from character to character. */
static void check_generation_logits(CellKind cell)
{
    Shape s = {.cfg = {.vocab = 11, .embed = 7, .hidden = 13, .layers = 3, .cell = cell}, .T = 1, .B = 1};
    Pair p = make_pair(&s, 9, &VARIANTS[0]);
    float logits[2][11];
    Err e;
    Backend *both[2] = {&p.cpu, &p.cuda};
    for (int i = 0; i < 2; i++)
        cr_assert_eq(both[i]->ops->sample_reset(both[i]->ctx, &e), 0, "%s", e.msg);
    const int tokens[] = {3, 0, 10, 7, 7};
    for (int k = 0; k < 5; k++) {
        for (int i = 0; i < 2; i++)
            cr_assert_eq(both[i]->ops->sample_step(both[i]->ctx, tokens[k], logits[i], &e), 0, "%s", e.msg);
        double err = rel_l2(logits[0], logits[1], 11);
        cr_expect(err <= PARITY_REL_L2, "%s: logits after token %d: relative L2 error %.3g", cell_name(cell), k, err);
    }
    CudaStats st; /* one launch of the sampling kernel per character */
    cuda_backend_stats(p.cuda.ctx, &st);
    cr_expect_eq(st.sample_launches, 5, "%ld launches", st.sample_launches);
    free_pair(&p);
}

Test(parity, generation_logits_match)
{
    check_generation_logits(CELL_RNN);
}
Test(parity, generation_logits_match_gru)
{
    check_generation_logits(CELL_GRU);
}
Test(parity, generation_logits_match_lstm)
{
    check_generation_logits(CELL_LSTM);
}

/* The character the device draws (sample_token) is the one the host's rule draws from the CPU's logits
 * with the same uniform numbers, under every sampler setting; a prime is fed without drawing. The logits
 * differ by rounding only, so a different character would mean a different rule. */
static void check_drawn_characters(CellKind cell)
{
    enum { DRAWS = 16 }; /* per setting: with 23 characters, a wrong rule shows within a few */
    Shape s = {.cfg = {.vocab = 23, .embed = 7, .hidden = 13, .layers = 2, .cell = cell}, .T = 1, .B = 1};
    Pair p = make_pair(&s, 15, &VARIANTS[0]);
    const SamplerConfig settings[] = {{1.0f, 0, 0}, {0.7f, 0, 0}, {1.3f, 5, 0}, {1.0f, 1, 0}, {1.0f, 0, 1}};
    float logits[23], scratch[46];
    Err e;
    for (size_t k = 0; k < sizeof settings / sizeof settings[0]; k++) {
        const SamplerConfig *sc = &settings[k];
        Rng r;
        rng_seed(&r, 100 + k);
        cr_assert_eq(p.cpu.ops->sample_reset(p.cpu.ctx, &e), 0, "%s", e.msg);
        cr_assert_eq(p.cuda.ops->sample_reset(p.cuda.ctx, &e), 0, "%s", e.msg);
        int token = 4, cuda = -1, differ = 0;
        cr_assert_eq(p.cuda.ops->sample_token(p.cuda.ctx, 9, NULL, 0.0f, &cuda, &e), 0, "%s", e.msg); /* a prime */
        cr_assert_eq(p.cpu.ops->sample_step(p.cpu.ctx, 9, logits, &e), 0, "%s", e.msg);
        for (int i = 0; i < DRAWS; i++) {
            const float u = rng_uniform(&r);
            cr_assert_eq(p.cpu.ops->sample_step(p.cpu.ctx, token, logits, &e), 0, "%s", e.msg);
            const int cpu = sample_from_uniform(logits, 23, sc, u, scratch);
            cr_assert_eq(p.cuda.ops->sample_token(p.cuda.ctx, token, sc, u, &cuda, &e), 0, "%s", e.msg);
            differ += cpu != cuda;
            token = cpu; /* both go on from the same character */
        }
        cr_expect_eq(differ, 0, "%s: temperature %g, top-k %d, argmax %d: %d of %d characters differ",
                     cell_name(cell), sc->temperature, sc->top_k, sc->argmax, differ, DRAWS);
    }
    CudaStats st;
    cuda_backend_stats(p.cuda.ctx, &st);
    cr_expect_eq(st.host_draws, 0, "every character drawn on the device");
    free_pair(&p);
}

Test(parity, characters_drawn_on_the_device_follow_the_hosts_rule)
{
    for (CellKind cell = CELL_RNN; cell <= CELL_LSTM; cell++)
        check_drawn_characters(cell);
}

/* Told, once each, whenever a slower path runs: here eager launches asked for, and a deep model whose
 * layers do not all fit on the device at once, so that they run one persistent launch each. */
static char told[4][320];
static int n_told;
static void remember(void *arg, const char *text)
{
    (void)arg;
    if (n_told < 4)
        snprintf(told[n_told], sizeof told[0], "%s", text);
    n_told++;
}

Test(parity, slower_paths_are_told_once_with_the_reason)
{
    skip_without_device();
    /* 16 layers x 8 row tiles x 5 column tiles exceed what 132 SMs hold at once; one layer's 40 do not */
    const ModelConfig cfg = {.vocab = 11, .embed = 7, .hidden = 130, .layers = 16};
    const BackendOptions o = {.graphs = GRAPHS_OFF, .note = remember};
    Backend be;
    Err e;
    n_told = 0;
    cr_assert_eq(backend_create(&be, &cuda_backend_ops, &cfg, 2, 64, &o, &e), 0, "%s", e.msg);
    cr_assert_eq(n_told, 2, "%d notes: %s / %s", n_told, told[0], told[1]);
    cr_expect(strstr(told[0], "one persistent launch per layer") && strstr(told[0], "instead of one wavefront") &&
                  strstr(told[0], "more tiles than blocks the device holds at once"),
              "%s", told[0]);
    cr_expect(strstr(told[1], "launches eagerly, as asked (CHARRNN_CUDA_GRAPHS=0)"), "%s", told[1]);
    char text[4096];
    cr_assert_eq(be.ops->describe(be.ctx, text, sizeof text, &e), 0, "%s", e.msg);
    cr_expect(strstr(text, "one cooperative launch per layer") && strstr(text, "blocks of 128 threads"), "%s", text);
    backend_destroy(&be);
}

/* A gated cell asked for the wavefront runs one persistent launch per layer, says why once, and describe
 * says so. */
Test(parity, gated_cell_runs_one_persistent_launch_per_layer)
{
    skip_without_device();
    const ModelConfig cfg = {.vocab = 11, .embed = 7, .hidden = 13, .layers = 2, .cell = CELL_LSTM};
    const BackendOptions o = {.graphs = GRAPHS_ON, .recurrence = RECURRENCE_WAVEFRONT, .note = remember};
    Backend be;
    Err e;
    n_told = 0;
    cr_assert_eq(backend_create(&be, &cuda_backend_ops, &cfg, 2, 3, &o, &e), 0, "%s", e.msg);
    cr_assert_eq(n_told, 1, "%d notes: %s", n_told, told[0]);
    cr_expect(strstr(told[0], "one persistent launch per layer") && strstr(told[0], "runs the tanh cell only"), "%s",
              told[0]);
    char text[4096];
    cr_assert_eq(be.ops->describe(be.ctx, text, sizeof text, &e), 0, "%s", e.msg);
    cr_expect(strstr(text, "one cooperative launch per layer") && strstr(text, "runs the tanh cell only"), "%s", text);
    backend_destroy(&be);
}

/* Shared memory decides: at H = 460 a block keeps the GRU's 3 x 32 columns of W_hh (183,728 bytes) but
 * not the LSTM's 4 x 32 (243,920 bytes against the H100's 227 KiB), so the GRU runs the persistent
 * kernel and the LSTM steps one kernel per timestep, saying why. */
Test(parity, gated_cell_steps_per_timestep_where_its_weights_do_not_fit)
{
    skip_without_device();
    for (CellKind cell = CELL_GRU; cell <= CELL_LSTM; cell++) {
        const ModelConfig cfg = {.vocab = 11, .embed = 7, .hidden = 460, .layers = 1, .cell = cell};
        const BackendOptions o = {.graphs = GRAPHS_OFF, .note = remember};
        Backend be;
        Err e;
        n_told = 0;
        cr_assert_eq(backend_create(&be, &cuda_backend_ops, &cfg, 2, 1, &o, &e), 0, "%s", e.msg);
        char text[4096];
        cr_assert_eq(be.ops->describe(be.ctx, text, sizeof text, &e), 0, "%s", e.msg);
        if (cell == CELL_GRU) {
            cr_expect(strstr(text, "one cooperative launch per layer"), "%s", text);
        } else {
            cr_expect(strstr(told[0], "one kernel per timestep") &&
                          strstr(told[0], "W_hh's columns do not fit in shared memory"),
                      "%s", told[0]);
            cr_expect(strstr(text, "one kernel per timestep"), "%s", text);
        }
        backend_destroy(&be);
    }
}

/* selftest_run, which `charrnn selftest` prints, must be able to fail: a backend whose gradient norm is
 * 0.1% off, whose drawn characters ignore the draw, and that says it ran another path than asked. */
static int norm_off(void *ctx, float *norm, Err *e)
{
    if (cuda_backend_ops.grad_norm(ctx, norm, e) != 0)
        return -1;
    *norm *= 1.001f;
    return 0;
}
static int first_character(void *ctx, int token, const SamplerConfig *s, float u, int *next, Err *e)
{
    if (cuda_backend_ops.sample_token(ctx, token, s, u, next, e) != 0)
        return -1;
    if (s)
        *next = 0;
    return 0;
}
static int another_path(void *ctx, Err *e)
{
    (void)ctx;
    return err_set(e, "ran something else");
}

Test(parity, selftest_reports_a_wrong_backend)
{
    skip_without_device();
    BackendOps broken = cuda_backend_ops;
    broken.grad_norm = norm_off;
    broken.sample_token = first_character;
    broken.check_variant = another_path;
    const SelftestOptions o = {.quick = 1, .threads = 1};
    SelftestReport r;
    Err e;
    cr_assert_eq(selftest_run(&cpu_backend_ops, &cuda_backend_ops, cuda_backend_ops.variants, &o, &r, &e), 0, "%s",
                 e.msg);
    cr_expect_eq(r.failures, 0, "the backend as it is passes");
    cr_assert_eq(selftest_run(&cpu_backend_ops, &broken, cuda_backend_ops.variants, &o, &r, &e), 0, "%s", e.msg);
    cr_expect_eq(r.failures, 3, "%d failures", r.failures);
    cr_expect_eq(r.path_failures, 1);
    for (int i = 0; i < r.n_lines; i++) {
        const int should_fail = !strcmp(r.lines[i].name, "gradient norm") || !strcmp(r.lines[i].name, "drawn characters");
        cr_expect_eq(r.lines[i].worst > r.lines[i].tolerance, should_fail, "%s: %g", r.lines[i].name, r.lines[i].worst);
    }
}
