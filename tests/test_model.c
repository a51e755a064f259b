/* The parameter layout: one documented order, sizes, views, and seeded initialisation. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

static const ModelConfig CFG = {.vocab = 11, .embed = 7, .hidden = 13, .layers = 3};

Test(model, tensors_follow_the_documented_order)
{
    ParamTensor t[MODEL_MAX_TENSORS];
    int n = model_tensors(&CFG, t);
    const char *names[] = {"embedding", "W_xh.0", "W_hh.0", "b_h.0", "W_xh.1", "W_hh.1",
                           "b_h.1",     "W_xh.2", "W_hh.2", "b_h.2", "W_hy",   "b_y"};
    const size_t rows[] = {11, 7, 13, 1, 13, 13, 1, 13, 13, 1, 13, 1};
    const size_t cols[] = {7, 13, 13, 13, 13, 13, 13, 13, 13, 13, 11, 11};
    cr_assert_eq(n, 12);
    size_t offset = 0;
    for (int k = 0; k < n; k++) {
        cr_assert_str_eq(t[k].name, names[k]);
        cr_assert_eq(t[k].rows, rows[k], "%s", names[k]);
        cr_assert_eq(t[k].cols, cols[k], "%s", names[k]);
        cr_assert_eq(t[k].offset, offset, "%s is not right after the previous tensor", names[k]);
        cr_assert_eq(t[k].is_matrix, rows[k] > 1, "%s", names[k]);
        offset += rows[k] * cols[k];
    }
    cr_assert_eq(model_num_params(&CFG), offset);
    /* V E + (E H + H H + H) + 2 (H H + H H + H) + H V + V */
    cr_assert_eq(offset, 77u + (91 + 169 + 13) + 2 * (169 + 169 + 13) + 143 + 11);
}

Test(model, views_point_at_the_tensors)
{
    float *base = calloc(model_num_params(&CFG), sizeof(float));
    ParamViews v = model_views(&CFG, base);
    ParamTensor t[MODEL_MAX_TENSORS];
    int n = model_tensors(&CFG, t);
    cr_assert_eq(v.embedding, base + t[0].offset);
    for (int l = 0; l < CFG.layers; l++) {
        cr_assert_eq(v.w_xh[l], base + t[1 + 3 * l].offset);
        cr_assert_eq(v.w_hh[l], base + t[2 + 3 * l].offset);
        cr_assert_eq(v.b_h[l], base + t[3 + 3 * l].offset);
    }
    cr_assert_eq(v.w_hy, base + t[n - 2].offset);
    cr_assert_eq(v.b_y, base + t[n - 1].offset);
    free(base);
}

Test(model, initialisation_is_seeded_and_bounded)
{
    size_t P = model_num_params(&CFG);
    float *a = malloc(sizeof(float) * P), *b = malloc(sizeof(float) * P), *c = malloc(sizeof(float) * P);
    model_init_params(&CFG, a, 1);
    model_init_params(&CFG, b, 1);
    model_init_params(&CFG, c, 2);
    cr_assert(memcmp(a, b, sizeof(float) * P) == 0, "same seed, same parameters");
    cr_assert(memcmp(a, c, sizeof(float) * P) != 0, "another seed, other parameters");
    ParamTensor t[MODEL_MAX_TENSORS];
    model_tensors(&CFG, t);
    const float bound = 1.0f / sqrtf(13.0f);
    for (size_t i = t[1].offset; i < P; i++)
        cr_assert(fabsf(a[i]) <= bound, "parameter %zu = %f exceeds 1/sqrt(H)", i, a[i]);
    double sum = 0, sq = 0;
    for (size_t i = 0; i < t[1].offset; i++) {
        sum += a[i];
        sq += (double)a[i] * a[i];
    }
    double mean = sum / 77, var = sq / 77 - mean * mean;
    cr_assert(fabs(mean) < 0.4 && var > 0.5 && var < 1.6, "embedding should look N(0, 1): mean %f var %f", mean, var);
    free(a), free(b), free(c);
}

Test(model, config_limits_are_checked)
{
    Err e;
    ModelConfig c = CFG;
    cr_assert_eq(model_config_check(&c, &e), 0);
    c.layers = MODEL_MAX_LAYERS + 1;
    cr_assert_eq(model_config_check(&c, &e), -1);
    c = CFG;
    c.hidden = 0;
    cr_assert_eq(model_config_check(&c, &e), -1);
    c = CFG;
    c.vocab = 1;
    cr_assert_eq(model_config_check(&c, &e), -1);
}

/* The gated cells: G = 3 (GRU) or 4 (LSTM) blocks of H columns per layer, and the GRU's b_hn after b_h. */
Test(model, gated_cells_widen_the_layer_tensors)
{
    ModelConfig gru = CFG, lstm = CFG;
    gru.cell = CELL_GRU;
    lstm.cell = CELL_LSTM;
    ParamTensor t[MODEL_MAX_TENSORS];
    int n = model_tensors(&gru, t);
    const char *names[] = {"embedding", "W_xh.0", "W_hh.0", "b_h.0", "b_hn.0", "W_xh.1", "W_hh.1", "b_h.1", "b_hn.1",
                           "W_xh.2",    "W_hh.2", "b_h.2",  "b_hn.2", "W_hy", "b_y"};
    const size_t rows[] = {11, 7, 13, 1, 1, 13, 13, 1, 1, 13, 13, 1, 1, 13, 1};
    const size_t cols[] = {7, 39, 39, 39, 13, 39, 39, 39, 13, 39, 39, 39, 13, 11, 11};
    cr_assert_eq(n, 3 + 4 * 3);
    size_t offset = 0;
    for (int k = 0; k < n; k++) {
        cr_assert_str_eq(t[k].name, names[k]);
        cr_assert_eq(t[k].rows, rows[k], "%s", names[k]);
        cr_assert_eq(t[k].cols, cols[k], "%s", names[k]);
        cr_assert_eq(t[k].offset, offset, "%s", names[k]);
        offset += rows[k] * cols[k];
    }
    /* V E + 3 (E H + H H + H) + H + 2 (3 (H H + H H + H) + H) + H V + V */
    cr_assert_eq(model_num_params(&gru), 77u + 3 * (91 + 169 + 13) + 13 + 2 * (3 * (169 + 169 + 13) + 13) + 143 + 11);
    /* V E + 4 (E H + H H + H) + 2 * 4 (H H + H H + H) + H V + V */
    cr_assert_eq(model_tensors(&lstm, t), 3 + 3 * 3);
    cr_assert_eq(model_num_params(&lstm), 77u + 4 * (91 + 169 + 13) + 2 * 4 * (169 + 169 + 13) + 143 + 11);
    cr_assert_eq(cell_gates(CELL_RNN), 1);
    cr_assert_eq(model_state_sets(&lstm), 2);
    cr_assert_eq(model_state_sets(&gru), 1);

    float *base = calloc(model_num_params(&gru), sizeof(float));
    ParamViews v = model_views(&gru, base);
    model_tensors(&gru, t);
    for (int l = 0; l < 3; l++) {
        cr_assert_eq(v.b_h[l], base + t[3 + 4 * l].offset);
        cr_assert_eq(v.b_hn[l], base + t[4 + 4 * l].offset);
        cr_assert_eq(v.w_xh[l], base + t[1 + 4 * l].offset);
    }
    cr_assert_eq(v.w_hy, base + t[n - 2].offset);
    free(base);
    base = calloc(model_num_params(&CFG), sizeof(float));
    v = model_views(&CFG, base);
    cr_assert_null(v.b_hn[0], "only the GRU has b_hn");
    free(base);
}

Test(model, cell_names_parse_and_print)
{
    Err e;
    CellKind c;
    for (int k = 0; k < CELL_KINDS; k++) {
        cr_assert_eq(cell_parse(cell_name((CellKind)k), &c, &e), 0);
        cr_assert_eq(c, (CellKind)k);
    }
    cr_assert_eq(cell_parse("LSTM", &c, &e), -1);
    cr_assert(strstr(e.msg, "'LSTM'") && strstr(e.msg, "rnn, gru or lstm"), "%s", e.msg);
    ModelConfig bad = CFG;
    bad.cell = (CellKind)3;
    cr_assert_eq(model_config_check(&bad, &e), -1);
}
