#include "model.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

const char *const CELL_NAMES[] = {"rnn", "gru", "lstm", NULL};

const char *cell_name(CellKind c)
{
    return (unsigned)c < CELL_KINDS ? CELL_NAMES[c] : "unknown";
}

int cell_parse(const char *name, CellKind *c, Err *e)
{
    for (int i = 0; i < CELL_KINDS; i++)
        if (strcmp(name, CELL_NAMES[i]) == 0) {
            *c = (CellKind)i;
            return 0;
        }
    return err_set(e, "unknown cell '%s': expected rnn, gru or lstm", name);
}

int model_config_check(const ModelConfig *c, Err *e)
{
    if (c->vocab < 2 || c->vocab > 65536)
        return err_set(e, "vocabulary size %d is outside 2..65536", c->vocab);
    if (c->embed < 1 || c->embed > MODEL_MAX_WIDTH)
        return err_set(e, "embedding width %d is outside 1..%d", c->embed, MODEL_MAX_WIDTH);
    if (c->hidden < 1 || c->hidden > MODEL_MAX_WIDTH)
        return err_set(e, "hidden width %d is outside 1..%d", c->hidden, MODEL_MAX_WIDTH);
    if (c->layers < 1 || c->layers > MODEL_MAX_LAYERS)
        return err_set(e, "layer count %d is outside 1..%d", c->layers, MODEL_MAX_LAYERS);
    if ((unsigned)c->cell >= CELL_KINDS)
        return err_set(e, "cell kind %d is none of rnn (0), gru (1) or lstm (2)", (int)c->cell);
    return 0;
}

static size_t add_tensor(ParamTensor *out, int *k, size_t offset, const char *name, int layer, size_t rows, size_t cols,
                         int is_matrix)
{
    ParamTensor *t = &out[(*k)++];
    if (layer >= 0)
        snprintf(t->name, sizeof t->name, "%s.%d", name, layer);
    else
        snprintf(t->name, sizeof t->name, "%s", name);
    t->offset = offset;
    t->rows = rows;
    t->cols = cols;
    t->is_matrix = is_matrix;
    return offset + rows * cols;
}

int model_tensors(const ModelConfig *c, ParamTensor *out)
{
    const size_t V = (size_t)c->vocab, E = (size_t)c->embed, H = (size_t)c->hidden;
    const size_t GH = (size_t)cell_gates(c->cell) * H;
    int k = 0;
    size_t off = add_tensor(out, &k, 0, "embedding", -1, V, E, 1);
    for (int l = 0; l < c->layers; l++) {
        off = add_tensor(out, &k, off, "W_xh", l, (size_t)layer_inputs(c, l), GH, 1);
        off = add_tensor(out, &k, off, "W_hh", l, H, GH, 1);
        off = add_tensor(out, &k, off, "b_h", l, 1, GH, 0);
        if (c->cell == CELL_GRU)
            off = add_tensor(out, &k, off, "b_hn", l, 1, H, 0);
    }
    off = add_tensor(out, &k, off, "W_hy", -1, H, V, 1);
    add_tensor(out, &k, off, "b_y", -1, 1, V, 0);
    return k;
}

size_t model_num_params(const ModelConfig *c)
{
    ParamTensor t[MODEL_MAX_TENSORS];
    int n = model_tensors(c, t);
    return t[n - 1].offset + t[n - 1].rows * t[n - 1].cols;
}

ParamViews model_views(const ModelConfig *c, float *base)
{
    ParamTensor t[MODEL_MAX_TENSORS];
    int n = model_tensors(c, t);
    ParamViews v;
    memset(&v, 0, sizeof v);
    const int per_layer = model_layer_tensors(c);
    v.embedding = base + t[0].offset;
    for (int l = 0; l < c->layers; l++) {
        const ParamTensor *layer = &t[1 + per_layer * l];
        v.w_xh[l] = base + layer[0].offset;
        v.w_hh[l] = base + layer[1].offset;
        v.b_h[l] = base + layer[2].offset;
        v.b_hn[l] = c->cell == CELL_GRU ? base + layer[3].offset : NULL;
    }
    v.w_hy = base + t[n - 2].offset;
    v.b_y = base + t[n - 1].offset;
    return v;
}

void model_init_params(const ModelConfig *c, float *params, uint64_t seed)
{
    ParamTensor t[MODEL_MAX_TENSORS];
    int n = model_tensors(c, t);
    Rng rng;
    rng_seed(&rng, seed);
    const float bound = 1.0f / sqrtf((float)c->hidden);
    for (int k = 0; k < n; k++) {
        float *p = params + t[k].offset;
        size_t count = t[k].rows * t[k].cols;
        for (size_t i = 0; i < count; i++)
            p[i] = k == 0 ? (float)rng_normal(&rng) : bound * (2.0f * rng_uniform(&rng) - 1.0f);
    }
}
