/* The model's shape and the one documented order of its parameters (shared by both backends and the
 * checkpoint): embedding, then per layer W_xh, W_hh, b_h (and the GRU's b_hn), then W_hy, b_y. Matrices
 * are row-major and multiply from the right (x W), so W_xh is [inputs, G H] for a cell of G gates. */
#ifndef CHARRNN_MODEL_H
#define CHARRNN_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define MODEL_MAX_LAYERS 16
#define MODEL_MAX_WIDTH 8192 /* --embed and --hidden: keeps every size far from overflow */
#define MODEL_MAX_TENSORS (3 + 4 * MODEL_MAX_LAYERS)

/* The recurrent cell. Zero is the tanh RNN, so that a zero-initialised config is the Elman network. */
typedef enum { CELL_RNN = 0, CELL_GRU = 1, CELL_LSTM = 2 } CellKind;
#define CELL_KINDS 3

typedef struct {
    int vocab;     /* V */
    int embed;     /* E */
    int hidden;    /* H */
    int layers;    /* L */
    CellKind cell; /* rnn, gru or lstm */
} ModelConfig;

/* G: the blocks of H columns of W_xh, W_hh and b_h, in PyTorch's gate order (LSTM i, f, g, o; GRU r, z, n). */
static inline int cell_gates(CellKind c)
{
    return c == CELL_LSTM ? 4 : c == CELL_GRU ? 3 : 1;
}
/* "rnn", "gru", "lstm"; NULL-terminated and indexed by CellKind, for the --cell option. */
extern const char *const CELL_NAMES[];
const char *cell_name(CellKind c);
/* 0 and *c set when name is one of CELL_NAMES, else -1 and a message naming the valid ones. */
int cell_parse(const char *name, CellKind *c, Err *e);
/* Tensors per layer in the buffer: W_xh, W_hh, b_h, and the GRU's b_hn. */
static inline int model_layer_tensors(const ModelConfig *c)
{
    return c->cell == CELL_GRU ? 4 : 3;
}
/* S: the sets of [L, B, H] state a layer carries: 2 for the LSTM (h, then c), 1 otherwise. */
static inline int model_state_sets(const ModelConfig *c)
{
    return c->cell == CELL_LSTM ? 2 : 1;
}

typedef struct {
    char name[16]; /* "embedding", "W_xh.0", "W_hh.0", "b_h.0", ("b_hn.0"), ..., "W_hy", "b_y" */
    size_t offset; /* in floats, from the start of the parameter buffer */
    size_t rows, cols;
    int is_matrix; /* AdamW decays matrices only, not biases */
} ParamTensor;

/* Named views into one contiguous buffer laid out in the documented order. */
typedef struct {
    float *embedding;              /* [V, E] */
    float *w_xh[MODEL_MAX_LAYERS]; /* [E, G H] for layer 0, [H, G H] above */
    float *w_hh[MODEL_MAX_LAYERS]; /* [H, G H] */
    float *b_h[MODEL_MAX_LAYERS];  /* [G H] */
    float *b_hn[MODEL_MAX_LAYERS]; /* [H]: the GRU's bias inside r * (h W_hn + b_hn); NULL for other cells */
    float *w_hy;                   /* [H, V] */
    float *b_y;                    /* [V] */
} ParamViews;

int model_config_check(const ModelConfig *c, Err *e);
/* Fills out[] (room for MODEL_MAX_TENSORS) and returns the count, 3 + 3 L (3 + 4 L for the GRU). */
int model_tensors(const ModelConfig *c, ParamTensor *out);
size_t model_num_params(const ModelConfig *c);
ParamViews model_views(const ModelConfig *c, float *base);
static inline int layer_inputs(const ModelConfig *c, int l)
{
    return l == 0 ? c->embed : c->hidden;
}

/* Initialisation (as PyTorch's nn.Embedding, nn.RNN/GRU/LSTM and nn.Linear do it): embedding ~ N(0, 1),
 * every other tensor ~ U(-1/sqrt(H), 1/sqrt(H)); drawn in buffer order from one RNG seeded with seed. */
void model_init_params(const ModelConfig *c, float *params, uint64_t seed);

#endif
