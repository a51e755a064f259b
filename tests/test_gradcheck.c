/* The CPU backend's gradients against central finite differences of a naive double-precision forward
 * pass written here, independently of cpu/ (it shares only the documented parameter layout and the
 * documented dropout masks of dropout.h). Every entry of every parameter tensor is checked, for every
 * cell, on small odd shapes with E != H. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../cpu/cpu.h"
#include "backend.h"
#include "dropout.h"
#include "model.h"

/* Float32 gradients against double-precision differences: float rounding in sums of a few hundred
 * terms stays far below 1e-6 absolute here (worst seen 5e-8) and 1e-4 relative (worst seen 1.4e-5),
 * while an indexing or math mistake is off by far more (1% in one entry fails). */
#define GRAD_RTOL 1e-4
#define GRAD_ATOL 1e-6
#define FD_STEP 1e-5 /* central differences: truncation error ~ step^2, rounding ~ 1e-16 / step */

/* Mistakes a cell's implementation could make, made here in the reference instead (see the mutation tests
 * at the end). */
typedef enum {
    CORRECT,
    WRONG_GATE_ORDER,    /* the first two gate blocks read the other way round (LSTM f, i; GRU z, r) */
    NO_FORGET_TERM,      /* the LSTM's c_t without f c_{t-1}; the GRU's h_t without z h_{t-1} */
    TRANSPOSED_RECURRENT /* every H x H block of W_hh read transposed */
} Mutation;

typedef struct {
    ModelConfig cfg;
    int T, B, loss_from_t, carry_in;
    token_t *x, *y;
    double *h0;    /* [S, L, B, H] carried-in state (the LSTM's h, then c), or NULL */
    float dropout; /* with the mask of dropout_seed and dropout_step, held fixed */
    uint64_t dropout_seed;
    long dropout_step;
    Mutation mutation;
} Problem;

static double sigmoid(double x)
{
    return 1.0 / (1.0 + exp(-x));
}

/* W_hh [H, G H] at row k, column j, or as mutated. */
static double recurrent_weight(const Problem *pr, const double *whh, int k, int j)
{
    const int H = pr->cfg.hidden, GH = cell_gates(pr->cfg.cell) * H;
    if (pr->mutation == TRANSPOSED_RECURRENT)
        return whh[(size_t)(j % H) * GH + j / H * H + k];
    return whh[(size_t)k * GH + j];
}

/* One cell of one row from the pre-activations px = u W_xh + b_h and ph = h W_hh ([G H] each): the state
 * h (and the LSTM's c) in place. */
static void naive_cell(const Problem *pr, const double *px, const double *ph, const double *bhn, double *h, double *c)
{
    const int H = pr->cfg.hidden;
    const int first = pr->mutation == WRONG_GATE_ORDER ? H : 0, second = H - first; /* the two first blocks */
    const double keep = pr->mutation == NO_FORGET_TERM ? 0.0 : 1.0;
    for (int j = 0; j < H; j++) {
        const double a0 = px[first + j] + ph[first + j]; /* the gates of the first two blocks (gated cells) */
        const double a1 = pr->cfg.cell == CELL_RNN ? 0.0 : px[second + j] + ph[second + j];
        switch (pr->cfg.cell) {
        case CELL_RNN:
            h[j] = tanh(px[j] + ph[j]);
            break;
        case CELL_LSTM: {
            const double i = sigmoid(a0), f = sigmoid(a1), g = tanh(px[2 * H + j] + ph[2 * H + j]);
            const double o = sigmoid(px[3 * H + j] + ph[3 * H + j]);
            c[j] = keep * f * c[j] + i * g;
            h[j] = o * tanh(c[j]);
            break;
        }
        case CELL_GRU: {
            const double r = sigmoid(a0), z = sigmoid(a1);
            const double n = tanh(px[2 * H + j] + r * (ph[2 * H + j] + bhn[j]));
            h[j] = (1.0 - z) * n + keep * z * h[j];
            break;
        }
        }
    }
}

/* Mean cross-entropy over the counted positions, straight from the equations, one timestep, one
 * sequence and one unit at a time. Writes the final states to hT ([S, L, B, H]) when not NULL. */
static double naive_loss(const Problem *pr, const double *p, double *hT)
{
    const ModelConfig *c = &pr->cfg;
    const int V = c->vocab, E = c->embed, H = c->hidden, L = c->layers, B = pr->B;
    const int GH = cell_gates(c->cell) * H;
    ParamTensor t[MODEL_MAX_TENSORS];
    int nt = model_tensors(c, t);
    const int per_layer = model_layer_tensors(c);
    const size_t states = (size_t)model_state_sets(c) * L * B * H;
    double *h = calloc(states, sizeof(double)), *cs = h + (size_t)L * B * H; /* the LSTM's c after the h */
    double *in = malloc(sizeof(double) * (size_t)(E > H ? E : H));
    double *px = malloc(sizeof(double) * (size_t)GH), *ph = malloc(sizeof(double) * (size_t)GH);
    double *z = malloc(sizeof(double) * (size_t)V);
    if (pr->h0)
        memcpy(h, pr->h0, sizeof(double) * states);
    const uint32_t threshold = dropout_threshold(pr->dropout);
    double loss = 0.0;
    int counted = 0;
    for (int s = 0; s < pr->T; s++) {
        for (int b = 0; b < B; b++) {
            const double *emb = p + t[0].offset + (size_t)pr->x[s * B + b] * E;
            for (int i = 0; i < E; i++)
                in[i] = emb[i];
            int width = E;
            for (int l = 0; l < L; l++) {
                const ParamTensor *lt = &t[1 + per_layer * l];
                const double *wxh = p + lt[0].offset, *whh = p + lt[1].offset, *bh = p + lt[2].offset;
                const double *bhn = c->cell == CELL_GRU ? p + lt[3].offset : NULL;
                double *hl = h + ((size_t)l * B + b) * H;
                for (int j = 0; j < GH; j++) {
                    px[j] = bh[j];
                    for (int i = 0; i < width; i++)
                        px[j] += in[i] * wxh[i * GH + j];
                    ph[j] = 0.0;
                    for (int k = 0; k < H; k++)
                        ph[j] += hl[k] * recurrent_weight(pr, whh, k, j);
                }
                naive_cell(pr, px, ph, bhn, hl, cs + ((size_t)l * B + b) * H);
                /* what the layer above reads: h after dropout; the recurrence keeps h itself */
                for (int j = 0; j < H; j++)
                    in[j] = pr->dropout == 0.0f || dropout_keep(pr->dropout_seed, pr->dropout_step, l, s, b, j, threshold)
                                ? hl[j] * (double)dropout_scale(pr->dropout)
                                : 0.0;
                width = H;
            }
            if (s < pr->loss_from_t)
                continue;
            const double *why = p + t[nt - 2].offset, *by = p + t[nt - 1].offset;
            double max = -INFINITY;
            for (int v = 0; v < V; v++) {
                z[v] = by[v];
                for (int j = 0; j < H; j++)
                    z[v] += in[j] * why[j * V + v];
                max = fmax(max, z[v]);
            }
            double sum = 0.0;
            for (int v = 0; v < V; v++)
                sum += exp(z[v] - max);
            loss += max + log(sum) - z[pr->y[s * B + b]];
            counted++;
        }
    }
    if (hT)
        memcpy(hT, h, sizeof(double) * states);
    free(h);
    free(in);
    free(px);
    free(ph);
    free(z);
    return loss / counted;
}

/* B = 3 gives 15 rows for 11 characters, so the CPU backend folds the embedding into layer 0's input
 * projection; B = 2 (10 rows) takes the direct path. Both are checked. */
static Problem make_problem_of(CellKind cell, int layers, int window, int carry_in, uint64_t seed, int B)
{
    Problem pr = {.cfg = {.vocab = 11, .embed = 7, .hidden = 13, .layers = layers, .cell = cell}, .T = 5, .B = B};
    pr.loss_from_t = window ? pr.T - 1 : 0;
    pr.carry_in = carry_in;
    size_t n = (size_t)pr.T * pr.B;
    pr.x = malloc(sizeof(token_t) * n);
    pr.y = malloc(sizeof(token_t) * n);
    Rng rng;
    rng_seed(&rng, seed);
    for (size_t i = 0; i < n; i++) {
        pr.x[i] = (token_t)rng_below(&rng, (uint64_t)pr.cfg.vocab);
        pr.y[i] = (token_t)rng_below(&rng, (uint64_t)pr.cfg.vocab);
    }
    if (carry_in) {
        size_t nh = (size_t)model_state_sets(&pr.cfg) * layers * pr.B * pr.cfg.hidden;
        pr.h0 = malloc(sizeof(double) * nh);
        for (size_t i = 0; i < nh; i++)
            pr.h0[i] = (double)(float)(1.8 * rng_uniform(&rng) - 0.9); /* representable in float */
    }
    return pr;
}

static Problem make_problem_b(int layers, int window, int carry_in, uint64_t seed, int B)
{
    return make_problem_of(CELL_RNN, layers, window, carry_in, seed, B);
}

static Problem make_problem(int layers, int window, int carry_in, uint64_t seed)
{
    return make_problem_b(layers, window, carry_in, seed, 3);
}

/* A dropout mask of the problem's own, held fixed: the same for the backend and the reference. */
#define TEST_DROPOUT 0.35f
static void with_dropout(Problem *pr, uint64_t seed)
{
    pr->dropout = TEST_DROPOUT;
    pr->dropout_seed = seed;
    pr->dropout_step = 3;
}

static void free_problem(Problem *pr)
{
    free(pr->x);
    free(pr->y);
    free(pr->h0);
}

static size_t state_floats(const Problem *pr)
{
    return (size_t)model_state_sets(&pr->cfg) * pr->cfg.layers * pr->B * pr->cfg.hidden;
}

typedef struct {
    size_t worst_index;
    double worst_excess; /* max over entries of |g - fd| - (atol + rtol |fd|); > 0 means a mismatch */
    double max_abs_fd;
} Comparison;

static Comparison compare(const float *g, const double *fd, size_t n)
{
    Comparison c = {0, -INFINITY, 0.0};
    for (size_t i = 0; i < n; i++) {
        double excess = fabs((double)g[i] - fd[i]) - (GRAD_ATOL + GRAD_RTOL * fabs(fd[i]));
        if (excess > c.worst_excess) {
            c.worst_excess = excess;
            c.worst_index = i;
        }
        c.max_abs_fd = fmax(c.max_abs_fd, fabs(fd[i]));
    }
    return c;
}

static Batch problem_batch(const Problem *pr)
{
    return (Batch){.x = pr->x,
                   .y = pr->y,
                   .T = pr->T,
                   .B = pr->B,
                   .loss_from_t = pr->loss_from_t,
                   .carry_in = pr->carry_in,
                   .carry_out = 1,
                   .dropout = pr->dropout,
                   .dropout_seed = pr->dropout_seed,
                   .dropout_step = pr->dropout_step};
}

/* The CPU backend's loss, gradients ([P]) and carried-out state ([S, L, B, H]) for the problem. */
static float run_backend(const Problem *pr, const float *params, float *grads, float *carry)
{
    const ModelConfig *c = &pr->cfg;
    Backend be;
    Err e;
    cr_assert_eq(backend_create(&be, &cpu_backend_ops, c, pr->T, pr->B, NULL, &e), 0, "%s", e.msg);
    cr_assert_eq(be.ops->set_params(be.ctx, params, &e), 0);
    size_t nh = state_floats(pr);
    float *h0 = calloc(nh, sizeof(float));
    for (size_t i = 0; pr->h0 && i < nh; i++)
        h0[i] = (float)pr->h0[i];
    cr_assert_eq(be.ops->set_carry(be.ctx, h0, &e), 0);
    Batch b = problem_batch(pr), look = b;
    look.carry_out = 0; /* leaves the carried state for the step after it */
    float loss, forward_loss;
    cr_assert_eq(be.ops->forward(be.ctx, &look, &forward_loss, &e), 0, "%s", e.msg);
    cr_assert_eq(be.ops->forward_backward(be.ctx, &b, &loss, &e), 0, "%s", e.msg);
    cr_assert_eq(forward_loss, loss, "forward alone computes %.9g, forward_backward %.9g (dropout %g)",
                 (double)forward_loss, (double)loss, (double)b.dropout);
    cr_assert_eq(be.ops->get_grads(be.ctx, grads, &e), 0);
    cr_assert_eq(be.ops->get_carry(be.ctx, carry, &e), 0);
    backend_destroy(&be);
    free(h0);
    return loss;
}
/* Central finite differences of the naive loss with respect to every parameter. */
static void finite_differences(const Problem *pr, const float *params, double *fd)
{
    size_t P = model_num_params(&pr->cfg);
    double *p = malloc(sizeof(double) * P);
    for (size_t i = 0; i < P; i++)
        p[i] = params[i];
    for (size_t i = 0; i < P; i++) {
        double keep = p[i];
        p[i] = keep + FD_STEP;
        double up = naive_loss(pr, p, NULL);
        p[i] = keep - FD_STEP;
        double down = naive_loss(pr, p, NULL);
        p[i] = keep;
        fd[i] = (up - down) / (2.0 * FD_STEP);
    }
    free(p);
}

static float *problem_params(const Problem *pr)
{
    float *params = malloc(sizeof(float) * model_num_params(&pr->cfg));
    model_init_params(&pr->cfg, params, 42);
    return params;
}

/* Runs the backend on the problem and returns its loss, gradients ([P], malloc'd), carried-out state
 * and the finite differences of the naive loss ([P], malloc'd), checking the loss and state on the way. */
static float backend_and_fd(Problem *pr, float **grads_out, double **fd_out, float **carry_out, double **hT_out)
{
    const ModelConfig *c = &pr->cfg;
    size_t P = model_num_params(c), nh = state_floats(pr);
    float *params = problem_params(pr);
    float *grads = malloc(sizeof(float) * P), *carry = malloc(sizeof(float) * nh);
    float loss = run_backend(pr, params, grads, carry);
    double *fd = malloc(sizeof(double) * P), *hT = malloc(sizeof(double) * nh), *p = malloc(sizeof(double) * P);
    finite_differences(pr, params, fd);
    for (size_t i = 0; i < P; i++)
        p[i] = params[i];
    double ref_loss = naive_loss(pr, p, hT);
    cr_assert(fabs(loss - ref_loss) <= 1e-5 * fabs(ref_loss), "loss %.8f vs naive %.8f", loss, ref_loss);
    free(p);
    free(params);
    *grads_out = grads;
    *fd_out = fd;
    *carry_out = carry;
    *hT_out = hT;
    return loss;
}

/* Every tensor's gradient and the carried-out state (the LSTM's c too) against the reference. */
static void check_problem(Problem *pr)
{
    float *g, *carry;
    double *fd, *hT;
    backend_and_fd(pr, &g, &fd, &carry, &hT);
    ParamTensor t[MODEL_MAX_TENSORS];
    int nt = model_tensors(&pr->cfg, t);
    for (int k = 0; k < nt; k++) {
        size_t n = t[k].rows * t[k].cols;
        Comparison c = compare(g + t[k].offset, fd + t[k].offset, n);
        cr_expect(c.worst_excess <= 0.0, "%s %s[%zu]: backend %.9g, finite difference %.9g", cell_name(pr->cfg.cell),
                  t[k].name, c.worst_index, (double)g[t[k].offset + c.worst_index], fd[t[k].offset + c.worst_index]);
        /* A tensor whose gradient is identically zero would pass vacuously; every tensor here must matter
         * (in window mode too: the last step depends on every earlier one through the recurrence). */
        cr_expect(c.max_abs_fd > 1e-4, "%s: finite differences are all ~0, the check would be vacuous", t[k].name);
    }
    size_t nh = state_floats(pr);
    for (size_t i = 0; i < nh; i++)
        cr_expect(fabs(carry[i] - hT[i]) <= 1e-5, "%s carried state[%zu]: backend %.7f, naive %.7f",
                  cell_name(pr->cfg.cell), i, carry[i], hT[i]);
    free(g);
    free(fd);
    free(carry);
    free(hT);
}

static void check_cell(CellKind cell, int layers, int window, int carry_in, int B, int dropout)
{
    const uint64_t seed = 7 + (uint64_t)layers * 3 + (uint64_t)window * 5;
    Problem pr = make_problem_of(cell, layers, window, carry_in, seed, B);
    if (dropout)
        with_dropout(&pr, seed);
    check_problem(&pr);
    free_problem(&pr);
}

static void check_gradients_b(int layers, int window, int carry_in, int B)
{
    check_cell(CELL_RNN, layers, window, carry_in, B, 0);
}

static void check_gradients(int layers, int window, int carry_in)
{
    check_gradients_b(layers, window, carry_in, 3);
}

Test(gradcheck, one_layer_embedding_not_folded)
{
    check_gradients_b(1, 0, 0, 2);
}
Test(gradcheck, three_layers_window_mode_embedding_not_folded)
{
    check_gradients_b(3, 1, 0, 2);
}
Test(gradcheck, one_layer_seq_mode)
{
    check_gradients(1, 0, 0);
}
Test(gradcheck, three_layers_seq_mode)
{
    check_gradients(3, 0, 0);
}
Test(gradcheck, one_layer_window_mode)
{
    check_gradients(1, 1, 0);
}
Test(gradcheck, three_layers_window_mode)
{
    check_gradients(3, 1, 0);
}
Test(gradcheck, one_layer_stateful_carry_in)
{
    check_gradients(1, 0, 1);
}
Test(gradcheck, three_layers_stateful_carry_in)
{
    check_gradients(3, 0, 1);
}

/* The gated cells on the same shapes: L = 1 and 3, seq and window modes, carried-in state (the LSTM's h
 * and c), the embedding folded or not; of three layers only the cases the others do not cover (each
 * costs ten times a layer's finite differences). */
#define GATED_CELL_TESTS(cell, name)                                                                                  \
    Test(gradcheck, name##_one_layer_embedding_not_folded)                                                             \
    {                                                                                                                  \
        check_cell(cell, 1, 0, 0, 2, 0);                                                                               \
    }                                                                                                                  \
    Test(gradcheck, name##_three_layers_window_mode_embedding_not_folded)                                              \
    {                                                                                                                  \
        check_cell(cell, 3, 1, 0, 2, 0);                                                                               \
    }                                                                                                                  \
    Test(gradcheck, name##_one_layer_seq_mode)                                                                         \
    {                                                                                                                  \
        check_cell(cell, 1, 0, 0, 3, 0);                                                                               \
    }                                                                                                                  \
    Test(gradcheck, name##_one_layer_window_mode)                                                                      \
    {                                                                                                                  \
        check_cell(cell, 1, 1, 0, 3, 0);                                                                               \
    }                                                                                                                  \
    Test(gradcheck, name##_one_layer_stateful_carry_in)                                                                \
    {                                                                                                                  \
        check_cell(cell, 1, 0, 1, 3, 0);                                                                               \
    }                                                                                                                  \
    Test(gradcheck, name##_three_layers_stateful_carry_in)                                                             \
    {                                                                                                                  \
        check_cell(cell, 3, 0, 1, 3, 0);                                                                               \
    }
GATED_CELL_TESTS(CELL_GRU, gru)
GATED_CELL_TESTS(CELL_LSTM, lstm)

/* Dropout with a fixed mask, every cell: three layers with carried-in state (every layer's output
 * dropped, the top one before the output projection), one layer in window mode, and (the tanh cell)
 * the embedding not folded. */
#define DROPOUT_TESTS(cell, name)                                                                                      \
    Test(gradcheck, name##_dropout_three_layers_stateful_carry_in)                                                     \
    {                                                                                                                  \
        check_cell(cell, 3, 0, 1, 3, 1);                                                                               \
    }                                                                                                                  \
    Test(gradcheck, name##_dropout_one_layer_window_mode)                                                              \
    {                                                                                                                  \
        check_cell(cell, 1, 1, 0, 3, 1);                                                                               \
    }
DROPOUT_TESTS(CELL_RNN, rnn)
DROPOUT_TESTS(CELL_GRU, gru)
DROPOUT_TESTS(CELL_LSTM, lstm)
Test(gradcheck, rnn_dropout_three_layers_embedding_not_folded)
{
    check_cell(CELL_RNN, 3, 0, 0, 2, 1);
}

/* The comparison must be able to fail: a gradient that is wrong in one entry by 1% is caught. */
Test(gradcheck, detects_a_wrong_gradient_entry)
{
    Problem pr = make_problem(3, 0, 0, 99);
    float *g, *carry;
    double *fd, *hT;
    backend_and_fd(&pr, &g, &fd, &carry, &hT);
    ParamTensor t[MODEL_MAX_TENSORS];
    model_tensors(&pr.cfg, t);
    const ParamTensor *whh = &t[2 + 3 * 1]; /* W_hh of the middle layer */
    size_t n = whh->rows * whh->cols;
    cr_assert_leq(compare(g + whh->offset, fd + whh->offset, n).worst_excess, 0.0);
    size_t biggest = 0;
    for (size_t i = 0; i < n; i++)
        if (fabs(fd[whh->offset + i]) > fabs(fd[whh->offset + biggest]))
            biggest = i;
    g[whh->offset + biggest] *= 1.01f;
    cr_assert_gt(compare(g + whh->offset, fd + whh->offset, n).worst_excess, 0.0);
    free(g);
    free(fd);
    free(carry);
    free(hT);
    free_problem(&pr);
}

/* Carrying the state in must change the gradients: otherwise the carry-in cases test nothing new. */
Test(gradcheck, carried_state_changes_the_gradient)
{
    Problem with = make_problem(1, 0, 1, 5), without = make_problem(1, 0, 0, 5);
    float *g1, *g2, *c1, *c2;
    double *fd1, *fd2, *h1, *h2;
    backend_and_fd(&with, &g1, &fd1, &c1, &h1);
    backend_and_fd(&without, &g2, &fd2, &c2, &h2);
    size_t P = model_num_params(&with.cfg);
    double diff = 0.0;
    for (size_t i = 0; i < P; i++)
        diff = fmax(diff, fabs((double)g1[i] - g2[i]));
    cr_assert_gt(diff, 1e-4);
    free(g1), free(g2), free(c1), free(c2), free(fd1), free(fd2), free(h1), free(h2);
    free_problem(&with);
    free_problem(&without);
}

/* The mistakes DESIGN.md warns about must fail the check: a weight gradient computed with a transposed
 * operand, and a backward pass that misses a timestep. */
Test(gradcheck, detects_a_transposed_weight_gradient)
{
    Problem pr = make_problem(1, 0, 0, 31);
    float *g, *carry;
    double *fd, *hT;
    backend_and_fd(&pr, &g, &fd, &carry, &hT);
    ParamTensor t[MODEL_MAX_TENSORS];
    model_tensors(&pr.cfg, t);
    const ParamTensor *whh = &t[2];
    const size_t H = whh->rows;
    float *w = g + whh->offset;
    for (size_t i = 0; i < H; i++)
        for (size_t j = i + 1; j < H; j++) {
            float keep = w[i * H + j];
            w[i * H + j] = w[j * H + i];
            w[j * H + i] = keep;
        }
    cr_assert_gt(compare(w, fd + whh->offset, H * H).worst_excess, 0.0);
    free(g), free(fd), free(carry), free(hT);
    free_problem(&pr);
}

Test(gradcheck, detects_a_missing_timestep)
{
    Problem pr = make_problem(1, 0, 0, 37);
    size_t P = model_num_params(&pr.cfg), nh = (size_t)pr.B * pr.cfg.hidden;
    float *params = problem_params(&pr);
    double *fd = malloc(sizeof(double) * P);
    finite_differences(&pr, params, fd);
    /* The backend sees the sequence without its first timestep. */
    Problem short_pr = pr;
    short_pr.x += pr.B;
    short_pr.y += pr.B;
    short_pr.T -= 1;
    float *g = malloc(sizeof(float) * P), *carry = malloc(sizeof(float) * nh);
    run_backend(&short_pr, params, g, carry);
    ParamTensor t[MODEL_MAX_TENSORS];
    model_tensors(&pr.cfg, t);
    const ParamTensor *whh = &t[2];
    cr_assert_gt(compare(g + whh->offset, fd + whh->offset, whh->rows * whh->cols).worst_excess, 0.0);
    free(g), free(fd), free(carry), free(params);
    free_problem(&pr);
}

/* The backend's gradients on one problem against the finite differences of another (the same shapes,
 * parameters and tokens, a reference that differs): the worst excess over every tensor. */
static double worst_excess_against(const Problem *backend, const Problem *reference)
{
    const size_t P = model_num_params(&backend->cfg);
    float *params = problem_params(backend), *g = malloc(sizeof(float) * P);
    float *carry = malloc(sizeof(float) * state_floats(backend));
    double *fd = malloc(sizeof(double) * P);
    run_backend(backend, params, g, carry);
    finite_differences(reference, params, fd);
    ParamTensor t[MODEL_MAX_TENSORS];
    const int nt = model_tensors(&backend->cfg, t);
    double worst = -INFINITY;
    for (int k = 0; k < nt; k++)
        worst = fmax(worst, compare(g + t[k].offset, fd + t[k].offset, t[k].rows * t[k].cols).worst_excess);
    free(params), free(g), free(carry), free(fd);
    return worst;
}

/* The gated cells' mistakes must fail the check. A backend that made one of them would compute the
 * gradients of the mistaken model: they differ from the true gradients as the true ones (the backend's)
 * differ from the finite differences of a reference that makes the mistake, which is what is run here. */
static double worst_against_mutated(CellKind cell, Mutation m)
{
    Problem pr = make_problem_of(cell, 1, 0, 1, 41, 3), ref = pr;
    ref.mutation = m;
    const double worst = worst_excess_against(&pr, &ref);
    free_problem(&pr);
    return worst;
}

Test(gradcheck, detects_a_wrong_gate_order)
{
    cr_expect_gt(worst_against_mutated(CELL_LSTM, WRONG_GATE_ORDER), 0.0, "lstm: i and f swapped");
    cr_expect_gt(worst_against_mutated(CELL_GRU, WRONG_GATE_ORDER), 0.0, "gru: r and z swapped");
}

Test(gradcheck, detects_a_missing_forget_gate_term)
{
    cr_expect_gt(worst_against_mutated(CELL_LSTM, NO_FORGET_TERM), 0.0, "lstm: no f c_{t-1}");
    cr_expect_gt(worst_against_mutated(CELL_GRU, NO_FORGET_TERM), 0.0, "gru: no z h_{t-1}");
}

Test(gradcheck, detects_a_transposed_recurrent_weight)
{
    for (int cell = 0; cell < CELL_KINDS; cell++)
        cr_expect_gt(worst_against_mutated((CellKind)cell, TRANSPOSED_RECURRENT), 0.0, "%s: W_hh's blocks transposed",
                     cell_name((CellKind)cell));
}

/* The check sees the mask: a backend run with dropout is caught against a reference without it, and
 * against one whose mask comes from another seed. */
Test(gradcheck, detects_a_missing_or_different_dropout_mask)
{
    Problem pr = make_problem_of(CELL_LSTM, 2, 0, 1, 43, 2), none = pr, other = pr;
    with_dropout(&pr, 5);
    with_dropout(&other, 6);
    cr_expect_leq(worst_excess_against(&pr, &pr), 0.0, "the same mask passes");
    cr_expect_gt(worst_excess_against(&pr, &none), 0.0, "a reference without dropout");
    cr_expect_gt(worst_excess_against(&pr, &other), 0.0, "a reference with another seed's mask");
    free_problem(&pr);
}
