/* The model's shape and the one documented order of its parameters (shared by both backends and the
 * checkpoint): embedding, then per layer W_xh, W_hh, b_h, then W_hy, b_y. Matrices are row-major and
 * multiply from the right (x W), so W_xh is [inputs, H]. */
#ifndef CHARRNN_MODEL_H
#define CHARRNN_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define MODEL_MAX_LAYERS 16
#define MODEL_MAX_WIDTH 8192 /* --embed and --hidden: keeps every size far from overflow */
#define MODEL_MAX_TENSORS (3 + 3 * MODEL_MAX_LAYERS)

typedef struct {
    int vocab;  /* V */
    int embed;  /* E */
    int hidden; /* H */
    int layers; /* L */
} ModelConfig;

typedef struct {
    char name[16]; /* "embedding", "W_xh.0", "W_hh.0", "b_h.0", ..., "W_hy", "b_y" */
    size_t offset; /* in floats, from the start of the parameter buffer */
    size_t rows, cols;
    int is_matrix; /* AdamW decays matrices only, not biases */
} ParamTensor;

/* Named views into one contiguous buffer laid out in the documented order. */
typedef struct {
    float *embedding;              /* [V, E] */
    float *w_xh[MODEL_MAX_LAYERS]; /* [E, H] for layer 0, [H, H] above */
    float *w_hh[MODEL_MAX_LAYERS]; /* [H, H] */
    float *b_h[MODEL_MAX_LAYERS];  /* [H] */
    float *w_hy;                   /* [H, V] */
    float *b_y;                    /* [V] */
} ParamViews;

int model_config_check(const ModelConfig *c, Err *e);
/* Fills out[] (room for MODEL_MAX_TENSORS) and returns the count, 3 + 3 L. */
int model_tensors(const ModelConfig *c, ParamTensor *out);
size_t model_num_params(const ModelConfig *c);
ParamViews model_views(const ModelConfig *c, float *base);
static inline int layer_inputs(const ModelConfig *c, int l)
{
    return l == 0 ? c->embed : c->hidden;
}

/* Initialisation (as PyTorch's nn.Embedding, nn.RNN and nn.Linear do it): embedding ~ N(0, 1), every
 * other tensor ~ U(-1/sqrt(H), 1/sqrt(H)); drawn in buffer order from one RNG seeded with seed. */
void model_init_params(const ModelConfig *c, float *params, uint64_t seed);

#endif
