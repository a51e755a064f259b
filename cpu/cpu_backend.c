/* The CPU backend's context: a handful of buffers sized once at create, and the backend calls that
 * run one training step through the functions of rnn.c (the tanh cell) and gated.c (GRU, LSTM). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"
#include "kernels.h"
#include "matmul.h"
#include "recurrence.h"

typedef struct {
    ModelConfig cfg;
    int max_T, max_B;
    size_t n_params;
    int n_tensors;
    ParamTensor tensors[MODEL_MAX_TENSORS];

    float *params, *grads, *m, *v; /* [n_params] each */
    ParamViews p, g;
    const Dist *dist; /* the ranks of a data-parallel run, or NULL */

    /* Activations, all in one allocation (G H = the gates' width: H for the tanh cell): */
    float *emb_out;               /* [T, B, E]: input of layer 0 */
    float *h[MODEL_MAX_LAYERS];   /* [T+1, B, H] per layer, h[l][0] = h_0 */
    float *c[MODEL_MAX_LAYERS];   /* LSTM: [T+1, B, H] per layer, the cell state, c[l][0] = c_0 */
    float *act[MODEL_MAX_LAYERS]; /* gated cells: [T, B, G H] per layer, the gates after their activations */
    float *hn[MODEL_MAX_LAYERS];  /* GRU: [T, B, H] per layer, h_{t-1} W_hn + b_hn */
    float *logits;                /* [T, B, V], overwritten by dlogits */
    float *dh;                    /* [T, B, H]: gradient arriving at a layer's outputs */
    float *da;                    /* [T, B, G H]: gradient at a layer's input projections */
    float *drec;                  /* GRU: [T, B, 3H], gradient at its recurrent product */
    float *du;                    /* [T, B, max(E, H)]: gradient for the embedding */
    float *dropped; /* [T, B, H]: a layer's output after dropout, for the one that reads it; du's memory: du
                     * holds the embedding's gradient, needed only where no dropped output is */
    uint8_t *keep[MODEL_MAX_LAYERS]; /* [T, B, H] per layer: its dropout mask, drawn going forward */
    float *packed;                /* W_hh of the layer at hand in the micro-kernel's layout */
    float *step_g;                /* gated cells: [B, G H], one step's recurrent product */
    float *step_carry;            /* gated cells: [B, H] (LSTM [B, 2H]), what the backward pass carries */
    float *vocab_rows;            /* [V, G H]: layer 0's Emb W_xh + b_h, then its gradient per token */
    float *carry;                 /* [S, L, max_B, H]: state carried between stateful batches (LSTM: h, c) */
    float *acts_block;            /* the activations above start at its first cache line */

    /* Generation state for one sequence. */
    float *sample_h;   /* [S, L, H] (LSTM: h, then c) */
    float *sample_x;   /* [max(E, H)] */
    float *sample_pre; /* [H]; gated cells: [3 G H + H], the two products, the gates and the GRU's hn */
} CpuModel;

/* Every activation buffer starts on a 64-byte cache line, so that a row of a multiple of 16 floats is
 * whole lines and the kernels' vector loads do not straddle two. */
#define LINE_FLOATS 16
static size_t lines(size_t floats)
{
    return floats_rounded(floats, LINE_FLOATS);
}

static float *take(float **a, size_t floats)
{
    return take_floats(a, floats, LINE_FLOATS);
}

/* The activation buffers for batches of up to max_T x max_B, in the order cpu_create lays them out: the
 * one place that sizes them, for cpu_create and for the memory estimate alike. Each is taken in whole
 * cache lines (lines()); a buffer a cell does not use has size 0. */
enum { CPU_BUFFERS = 17, CPU_KEEP = 16 };
static void cpu_buffer_sizes(const ModelConfig *cfg, int max_T, int max_B, size_t sizes[CPU_BUFFERS])
{
    const size_t T = (size_t)max_T, B = (size_t)max_B, L = (size_t)cfg->layers;
    const size_t E = (size_t)cfg->embed, H = (size_t)cfg->hidden, V = (size_t)cfg->vocab;
    const size_t W = E > H ? E : H, GH = (size_t)cell_gates(cfg->cell) * H, S = (size_t)model_state_sets(cfg);
    const int gated = cfg->cell != CELL_RNN, lstm = cfg->cell == CELL_LSTM, gru = cfg->cell == CELL_GRU;
    const size_t forward_pack = recurrence_packed_floats((int)H, (int)GH);
    const size_t backward_pack = recurrence_packed_floats((int)GH, (int)H);
    const size_t s[CPU_BUFFERS] = {
        T * B * E,                                                  /* emb_out */
        L * lines((T + 1) * B * H),                                 /* h */
        lstm ? L * lines((T + 1) * B * H) : 0,                      /* c */
        gated ? L * lines(T * B * GH) : 0,                          /* act */
        gru ? L * lines(T * B * H) : 0,                             /* hn */
        T * B * V,                                                  /* logits */
        T * B * H,                                                  /* dh */
        T * B * GH,                                                 /* da */
        gru ? T * B * GH : 0,                                       /* drec */
        T * B * W,                                                  /* du, also the dropped outputs */
        forward_pack > backward_pack ? forward_pack : backward_pack, /* packed */
        gated ? B * GH : 0,                                         /* step_g */
        gated ? (lstm ? 2 : 1) * B * H : 0,                         /* step_carry */
        V <= T * B ? V * GH : 0, /* vocab_rows: only where some batch can fold the embedding */
        S * L * B * H,           /* carry */
        lines(S * L * H) + lines(W) + lines(gated ? 3 * GH + H : H), /* sample_h, sample_x, sample_pre */
        L * lines((T * B * H + 3) / 4), /* keep: a byte per unit, in floats */
    };
    memcpy(sizes, s, sizeof s);
}

/* The floats of the activations' one allocation: every buffer of sizes (cpu_buffer_sizes) in whole lines,
 * and a line to align it. */
static size_t cpu_activation_floats(const size_t sizes[CPU_BUFFERS])
{
    size_t total = LINE_FLOATS;
    for (size_t i = 0; i < CPU_BUFFERS; i++)
        total += lines(sizes[i]);
    return total;
}

/* Parameters, gradients and both moments, and the activations: all in host memory. The dropout masks'
 * pages are never touched by a run without dropout (calloc), so they count only for a run with it. */
static MemoryNeed cpu_memory(const ModelConfig *cfg, int max_T, int max_B, int dropout)
{
    size_t sizes[CPU_BUFFERS];
    cpu_buffer_sizes(cfg, max_T, max_B, sizes);
    const uint64_t floats = 4 * (uint64_t)model_num_params(cfg) + cpu_activation_floats(sizes) -
                            (dropout ? 0 : lines(sizes[CPU_KEEP]));
    return (MemoryNeed){.host = floats * sizeof(float), .device = 0};
}

static void cpu_destroy(void *ctx)
{
    CpuModel *c = ctx;
    if (!c)
        return;
    free(c->params);
    free(c->grads);
    free(c->m);
    free(c->v);
    free(c->acts_block);
    free(c);
}

static void *cpu_create(const ModelConfig *cfg, int max_T, int max_B, const BackendOptions *opts, Err *e)
{
    if (opts->tf32) {
        err_set(e, "--tf32: TF32 is a tensor-core format of --device cuda; the CPU computes in float32 (no CUDA device "
                   "was found for --device auto)");
        return NULL;
    }
    matmul_set_threads(opts->threads > 0 ? opts->threads : 1);
    CpuModel *c = calloc(1, sizeof *c);
    if (!c) {
        err_set(e, "out of memory");
        return NULL;
    }
    c->cfg = *cfg;
    c->max_T = max_T;
    c->max_B = max_B;
    c->n_tensors = model_tensors(cfg, c->tensors);
    c->n_params = model_num_params(cfg);
    c->dist = opts->dist;

    const size_t T = (size_t)max_T, B = (size_t)max_B, L = (size_t)cfg->layers, H = (size_t)cfg->hidden;
    const size_t W = cfg->embed > cfg->hidden ? (size_t)cfg->embed : H, S = (size_t)model_state_sets(cfg);
    const size_t GH = (size_t)cell_gates(cfg->cell) * H;
    size_t sizes[CPU_BUFFERS];
    cpu_buffer_sizes(cfg, max_T, max_B, sizes);
    const size_t total = cpu_activation_floats(sizes);

    c->params = calloc(c->n_params, sizeof(float));
    c->grads = calloc(c->n_params, sizeof(float));
    c->m = calloc(c->n_params, sizeof(float));
    c->v = calloc(c->n_params, sizeof(float));
    /* calloc: the pages of buffers a model never uses (du when the embedding is folded, the dropout
     * masks in a run without dropout) are never touched, so they take no memory */
    c->acts_block = calloc(total, sizeof(float));
    if (!c->params || !c->grads || !c->m || !c->v || !c->acts_block) {
        err_set(e,
                "out of memory: the model needs %.1f MiB on the CPU (%zu parameters, %zu activations); "
                "try a smaller --hidden, --batch or --seq-len",
                (4.0 * (double)c->n_params + (double)total) * sizeof(float) / 1048576.0, c->n_params, total);
        cpu_destroy(c);
        return NULL;
    }
    c->p = model_views(cfg, c->params);
    c->g = model_views(cfg, c->grads);

    float *a = (float *)(((uintptr_t)c->acts_block + LINE_FLOATS * sizeof(float) - 1) &
                         ~(uintptr_t)(LINE_FLOATS * sizeof(float) - 1));
    c->emb_out = take(&a, sizes[0]);
    for (size_t l = 0; l < L; l++)
        c->h[l] = take(&a, (T + 1) * B * H);
    for (size_t l = 0; sizes[2] && l < L; l++)
        c->c[l] = take(&a, (T + 1) * B * H);
    for (size_t l = 0; sizes[3] && l < L; l++)
        c->act[l] = take(&a, T * B * GH);
    for (size_t l = 0; sizes[4] && l < L; l++)
        c->hn[l] = take(&a, T * B * H);
    c->logits = take(&a, sizes[5]);
    c->dh = take(&a, sizes[6]);
    c->da = take(&a, sizes[7]);
    c->drec = sizes[8] ? take(&a, sizes[8]) : NULL; /* NULL: what a cell does not use */
    c->du = c->dropped = take(&a, sizes[9]);
    c->packed = take(&a, sizes[10]);
    c->step_g = sizes[11] ? take(&a, sizes[11]) : NULL;
    c->step_carry = sizes[12] ? take(&a, sizes[12]) : NULL;
    c->vocab_rows = take(&a, sizes[13]);
    c->carry = take(&a, sizes[14]);
    c->sample_h = take(&a, S * L * H);
    c->sample_x = take(&a, W);
    c->sample_pre = take(&a, cfg->cell != CELL_RNN ? 3 * GH + H : H);
    for (size_t l = 0; l < L; l++)
        c->keep[l] = (uint8_t *)take(&a, (T * B * H + 3) / 4);
    return c;
}

static int cpu_set_params(void *ctx, const float *params, Err *e)
{
    (void)e;
    CpuModel *c = ctx;
    memcpy(c->params, params, sizeof(float) * c->n_params);
    return 0;
}

static int cpu_get_params(void *ctx, float *params, Err *e)
{
    (void)e;
    CpuModel *c = ctx;
    memcpy(params, c->params, sizeof(float) * c->n_params);
    return 0;
}

static int cpu_get_grads(void *ctx, float *grads, Err *e)
{
    (void)e;
    CpuModel *c = ctx;
    memcpy(grads, c->grads, sizeof(float) * c->n_params);
    return 0;
}

static int cpu_set_moments(void *ctx, const float *m, const float *v, Err *e)
{
    (void)e;
    CpuModel *c = ctx;
    memcpy(c->m, m, sizeof(float) * c->n_params);
    memcpy(c->v, v, sizeof(float) * c->n_params);
    return 0;
}

static int cpu_get_moments(void *ctx, float *m, float *v, Err *e)
{
    (void)e;
    CpuModel *c = ctx;
    memcpy(m, c->m, sizeof(float) * c->n_params);
    memcpy(v, c->v, sizeof(float) * c->n_params);
    return 0;
}

static size_t carry_floats(const CpuModel *c)
{
    return (size_t)model_state_sets(&c->cfg) * c->cfg.layers * c->max_B * c->cfg.hidden;
}

static int cpu_set_carry(void *ctx, const float *h, Err *e)
{
    (void)e;
    CpuModel *c = ctx;
    memcpy(c->carry, h, sizeof(float) * carry_floats(c));
    return 0;
}

static int cpu_get_carry(void *ctx, float *h, Err *e)
{
    (void)e;
    CpuModel *c = ctx;
    memcpy(h, c->carry, sizeof(float) * carry_floats(c));
    return 0;
}

/* Layer 0's input projection goes through the vocabulary (embedding_projection_forward) when the
 * vocabulary has fewer entries than the batch has rows: the same numbers, fewer multiply-adds. */
static int fold_embedding(const CpuModel *c, const Batch *b)
{
    return c->cfg.vocab <= b->T * b->B;
}

/* State set s (0: h; 1: the LSTM's c) of layer l: its [T+1, B, H] buffer, and its rows in the carry. */
static float *state_buffer(const CpuModel *c, int s, int l)
{
    return s == 0 ? c->h[l] : c->c[l];
}

static float *carried(const CpuModel *c, int s, int l)
{
    return c->carry + ((size_t)s * c->cfg.layers + l) * c->max_B * c->cfg.hidden;
}

/* Layer l's output h_1..h_T [T, B, H] as the layer above (or the output projection) reads it: after
 * dropout, in c->dropped, when the batch has dropout (with the mask the forward pass drew). */
static const float *layer_output(CpuModel *c, const Batch *b, int l)
{
    const size_t state = (size_t)b->B * c->cfg.hidden;
    const float *h = c->h[l] + state;
    if (b->dropout <= 0.0f)
        return h;
    dropout_apply(c->dropped, h, c->keep[l], b->dropout, (size_t)b->T * state);
    return c->dropped;
}

/* Where layer l's input projections [T, B, G H] go: the tanh cell adds its recurrence in place, in h_1..h_T;
 * a gated cell turns them into its gates, in act. */
static float *projections(const CpuModel *c, int l, size_t state)
{
    return c->cfg.cell == CELL_RNN ? c->h[l] + state : c->act[l];
}

static void layer_recurrence_forward(CpuModel *c, int l, int T, int B)
{
    const int H = c->cfg.hidden;
    switch (c->cfg.cell) {
    case CELL_RNN:
        rnn_recurrence_forward(c->h[l], c->p.w_hh[l], c->packed, T, B, H);
        break;
    case CELL_GRU:
        gru_recurrence_forward(c->h[l], c->act[l], c->hn[l], c->p.w_hh[l], c->p.b_hn[l], c->packed, c->step_g, T, B,
                               H);
        break;
    case CELL_LSTM:
        lstm_recurrence_forward(c->h[l], c->c[l], c->act[l], c->p.w_hh[l], c->packed, c->step_g, T, B, H);
        break;
    }
}

/* Backward through time from c->dh: the gradient at the input projections into c->da, and dW_hh, db_h. */
static void layer_recurrence_backward(CpuModel *c, int l, int T, int B)
{
    const int H = c->cfg.hidden;
    switch (c->cfg.cell) {
    case CELL_RNN:
        rnn_recurrence_backward(c->da, c->g.w_hh[l], c->g.b_h[l], c->packed, c->dh, c->h[l], c->p.w_hh[l], T, B, H);
        break;
    case CELL_GRU:
        gru_recurrence_backward(c->da, c->drec, c->g.w_hh[l], c->g.b_h[l], c->g.b_hn[l], c->packed, c->step_g,
                                c->step_carry, c->dh, c->h[l], c->act[l], c->hn[l], c->p.w_hh[l], T, B, H);
        break;
    case CELL_LSTM:
        lstm_recurrence_backward(c->da, c->g.w_hh[l], c->g.b_h[l], c->packed, c->step_g, c->step_carry, c->dh,
                                 c->h[l], c->c[l], c->act[l], c->p.w_hh[l], T, B, H);
        break;
    }
}

/* Embedding, every layer's recurrence and the logits of the counted timesteps. Returns the number of
 * counted rows; their logits start at c->logits. */
static int forward_to_logits(CpuModel *c, const Batch *b)
{
    const int T = b->T, B = b->B, H = c->cfg.hidden, V = c->cfg.vocab, E = c->cfg.embed;
    const int GH = cell_gates(c->cfg.cell) * H, S = model_state_sets(&c->cfg);
    const size_t state = (size_t)B * H;
    const int fold = fold_embedding(c, b);
    if (!fold)
        embedding_forward(c->emb_out, b->x, c->p.embedding, T * B, E);
    const float *u = c->emb_out;
    for (int l = 0; l < c->cfg.layers; l++) {
        for (int s = 0; s < S; s++) {
            if (b->carry_in)
                memcpy(state_buffer(c, s, l), carried(c, s, l), sizeof(float) * state);
            else
                memset(state_buffer(c, s, l), 0, sizeof(float) * state);
        }
        if (l == 0 && fold)
            embedding_projection_forward(projections(c, 0, state), c->vocab_rows, b->x, c->p.embedding, c->p.w_xh[0],
                                         c->p.b_h[0], T * B, V, E, GH);
        else
            input_projection_forward(projections(c, l, state), u, c->p.w_xh[l], c->p.b_h[l], T * B,
                                     layer_inputs(&c->cfg, l), GH);
        layer_recurrence_forward(c, l, T, B);
        for (int s = 0; s < S && b->carry_out; s++)
            memcpy(carried(c, s, l), state_buffer(c, s, l) + (size_t)T * state, sizeof(float) * state);
        if (b->dropout > 0.0f)
            dropout_draw(c->keep[l], b, l, H);
        u = layer_output(c, b, l);
    }
    /* Only the counted timesteps need logits: all of them in seq mode, the last one in window mode. */
    const int rows = (T - b->loss_from_t) * B;
    output_forward(c->logits, u + (size_t)b->loss_from_t * state, c->p.w_hy, c->p.b_y, rows, H, V);
    return rows;
}

static int cpu_forward(void *ctx, const Batch *b, float *loss, Err *e)
{
    CpuModel *c = ctx;
    if (batch_check(b, c->max_T, c->max_B, e) != 0)
        return -1;
    int rows = forward_to_logits(c, b);
    const token_t *y = b->y + (size_t)b->loss_from_t * b->B;
    *loss = (float)(softmax_xent(c->logits, y, rows, c->cfg.vocab, 0.0f) / rows);
    return 0;
}

static int cpu_forward_backward(void *ctx, const Batch *b, float *loss, Err *e)
{
    CpuModel *c = ctx;
    if (batch_check(b, c->max_T, c->max_B, e) != 0)
        return -1;
    const int T = b->T, B = b->B, H = c->cfg.hidden, V = c->cfg.vocab, L = c->cfg.layers;
    const int GH = cell_gates(c->cfg.cell) * H;
    const size_t state = (size_t)B * H;
    int rows = forward_to_logits(c, b);
    const token_t *y = b->y + (size_t)b->loss_from_t * B;
    *loss = (float)(softmax_xent(c->logits, y, rows, V, 1.0f / (float)rows) / rows);

    zero_floats(c->grads, c->n_params);
    /* dh of the top layer: zero at uncounted timesteps, dlogits W_hy^T at the counted ones. */
    const size_t uncounted = (size_t)b->loss_from_t * state;
    zero_floats(c->dh, uncounted);
    const float *top = layer_output(c, b, L - 1) + uncounted;
    output_backward(c->dh + uncounted, c->g.w_hy, c->g.b_y, c->logits, top, c->p.w_hy, rows, H, V);

    for (int l = L - 1; l >= 0; l--) {
        if (b->dropout > 0.0f) /* from the gradient at the dropped output to the gradient at h: the same mask */
            dropout_apply(c->dh, c->dh, c->keep[l], b->dropout, (size_t)T * state);
        layer_recurrence_backward(c, l, T, B);
        if (l == 0 && fold_embedding(c, b)) {
            embedding_projection_backward(c->g.embedding, c->g.w_xh[0], c->vocab_rows, b->x, c->da, c->p.embedding,
                                          c->p.w_xh[0], T * B, V, c->cfg.embed, GH);
            break;
        }
        const float *u = l == 0 ? c->emb_out : layer_output(c, b, l - 1);
        /* The gradient for the layer below goes straight into dh (read above before it is written), or
         * into du for the embedding. */
        input_projection_backward(l > 0 ? c->dh : c->du, c->g.w_xh[l], c->da, u, c->p.w_xh[l], T * B,
                                  layer_inputs(&c->cfg, l), GH);
        if (l == 0)
            embedding_backward(c->g.embedding, b->x, c->du, T * B, c->cfg.embed);
    }
    return 0;
}

static int cpu_grad_norm(void *ctx, float *norm, Err *e)
{
    (void)e;
    CpuModel *c = ctx;
    *norm = (float)sqrt(sum_of_squares(c->grads, c->n_params));
    return 0;
}

static int cpu_allreduce_grads(void *ctx, float weight, float *loss, Err *e)
{
    CpuModel *c = ctx;
    double sum = *loss;
    if (!c->dist)
        return err_set(e, "the CPU backend was created for a single process");
    if (dist_reduce_step(c->dist, c->grads, c->n_params, weight, &sum, e) != 0)
        return -1;
    *loss = (float)sum;
    return 0;
}

static int cpu_update(void *ctx, const OptimConfig *o, float lr, long step, float grad_scale, Err *e)
{
    (void)e;
    CpuModel *c = ctx;
    for (int k = 0; k < c->n_tensors; k++) {
        const ParamTensor *t = &c->tensors[k];
        const size_t off = t->offset, n = t->rows * t->cols;
        if (o->kind == OPT_SGD) {
            sgd_update(c->params + off, c->grads + off, c->m + off, n, lr, o->momentum, grad_scale);
        } else {
            float wd = o->kind == OPT_ADAMW && t->is_matrix ? o->weight_decay : 0.0f;
            adam_update(c->params + off, c->grads + off, c->m + off, c->v + off, n, lr, o->beta1, o->beta2, o->eps, wd,
                        grad_scale, step);
        }
    }
    return 0;
}

static int cpu_sample_reset(void *ctx, Err *e)
{
    (void)e;
    CpuModel *c = ctx;
    memset(c->sample_h, 0, sizeof(float) * (size_t)model_state_sets(&c->cfg) * c->cfg.layers * c->cfg.hidden);
    return 0;
}

static int cpu_sample_step(void *ctx, int token, float *logits, Err *e)
{
    CpuModel *c = ctx;
    const int H = c->cfg.hidden, L = c->cfg.layers, GH = cell_gates(c->cfg.cell) * H;
    if (token < 0 || token >= c->cfg.vocab)
        return err_set(e, "token %d is outside the vocabulary of %d", token, c->cfg.vocab);
    token_t x = (token_t)token;
    embedding_forward(c->sample_x, &x, c->p.embedding, 1, c->cfg.embed);
    const float *u = c->sample_x;
    for (int l = 0; l < L; l++) {
        float *h = c->sample_h + (size_t)l * H;
        const int I = layer_inputs(&c->cfg, l);
        if (c->cfg.cell == CELL_RNN) {
            /* h = tanh(b + u W_xh + h W_hh); the old h is read whole before it is overwritten */
            float *pre = c->sample_pre;
            memcpy(pre, c->p.b_h[l], sizeof(float) * (size_t)H);
            matmul_nn(pre, u, c->p.w_xh[l], 1, H, I, 1);
            matmul_nn(pre, h, c->p.w_hh[l], 1, H, H, 1);
            kernels()->tanh(pre, (size_t)H);
            memcpy(h, pre, sizeof(float) * (size_t)H);
        } else {
            /* the input side and the recurrent side apart (the GRU's reset gate scales only the latter) */
            float *px = c->sample_pre, *ph = px + GH, *act = ph + GH, *hn = act + GH;
            memcpy(px, c->p.b_h[l], sizeof(float) * (size_t)GH);
            matmul_nn(px, u, c->p.w_xh[l], 1, GH, I, 1);
            matmul_nn(ph, h, c->p.w_hh[l], 1, GH, H, 0);
            if (c->cfg.cell == CELL_LSTM)
                lstm_cell_step(h, c->sample_h + (size_t)(L + l) * H, px, ph, act, H);
            else
                gru_cell_step(h, px, ph, c->p.b_hn[l], act, hn, H);
        }
        u = h;
    }
    output_forward(logits, u, c->p.w_hy, c->p.b_y, 1, H, c->cfg.vocab);
    return 0;
}

const BackendOps cpu_backend_ops = {
    .name = "cpu",
    .create = cpu_create,
    .destroy = cpu_destroy,
    .set_params = cpu_set_params,
    .get_params = cpu_get_params,
    .get_grads = cpu_get_grads,
    .set_moments = cpu_set_moments,
    .get_moments = cpu_get_moments,
    .set_carry = cpu_set_carry,
    .get_carry = cpu_get_carry,
    .forward = cpu_forward,
    .forward_backward = cpu_forward_backward,
    .grad_norm = cpu_grad_norm,
    .update = cpu_update,
    .sample_reset = cpu_sample_reset,
    .sample_step = cpu_sample_step,
    .memory = cpu_memory,
    .device_memory = NULL, /* the CPU computes in host memory */
    .allreduce_grads = cpu_allreduce_grads,
};
