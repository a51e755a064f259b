/* The one interface both devices implement. The CLI, the trainer and the tests drive a backend only
 * through these calls, so the CPU reference and the CUDA backend can be swapped and compared.
 *
 * A backend owns the parameters, gradients, optimizer moments, activations and the carried hidden
 * state, on its own device, allocated once at create time for batches of up to max_T x max_B.
 * Host buffers passed in and out use the layouts of model.h. Every call returns 0 on success or -1
 * with a message in *e. */
#ifndef CHARRNN_BACKEND_H
#define CHARRNN_BACKEND_H

#include "dist.h"
#include "model.h"
#include "optim.h"
#include "util.h"
#include "vocab.h"

typedef struct {
    const token_t *x; /* [T, B] time-major inputs */
    const token_t *y; /* [T, B] targets; only timesteps >= loss_from_t are read */
    int T, B;         /* T <= max_T, B <= max_B */
    int loss_from_t;  /* first counted timestep: 0 in seq mode, T-1 in window mode */
    int carry_in;     /* 1: h_0 is the carried state from the last call with carry_out; 0: zeros */
    int carry_out;    /* 1: keep h_T of every layer as the carried state (stateful streams) */
    /* Inverted dropout on every layer's output where it feeds the layer above or the output projection
     * (dropout.h draws the masks). 0: off, as evaluation, validation and sampling pass it. forward applies
     * it too when set, so that a test can hold a mask fixed. */
    float dropout;
    uint64_t dropout_seed; /* the run's seed */
    long dropout_step;     /* the training step being computed, from 1 */
    int dropout_row0;      /* the global batch row of local row 0 (0 but in data-parallel training) */
} Batch;

/* How the CUDA backend runs the recurrence: AUTO takes the fastest that fits, a WAVEFRONT of all layers
 * in one persistent launch, else one PERSISTENT launch per layer, else one kernel per timestep (STEP). */
typedef enum { RECURRENCE_AUTO, RECURRENCE_STEP, RECURRENCE_PERSISTENT, RECURRENCE_WAVEFRONT } RecurrenceKind;
typedef enum { GRAPHS_DEFAULT, GRAPHS_ON, GRAPHS_OFF } GraphsChoice;

/* How a backend runs, as opposed to what it computes. All zero: the defaults. The CUDA backend takes
 * recurrence and graphs left at their defaults from CHARRNN_CUDA_RECURRENCE and CHARRNN_CUDA_GRAPHS. */
typedef struct {
    int threads;               /* CPU threads for the products and elementwise loops (the CPU backend); 0: one */
    int tf32;                  /* CUDA: cuBLAS products on tensor cores in TF32 (10-bit mantissa inputs) */
    GraphsChoice graphs;       /* CUDA: replay each step shape's captured graph (default) or launch eagerly */
    RecurrenceKind recurrence; /* CUDA: wavefront, persistent kernel per layer, or one kernel per timestep */
    int persistent_rows;       /* CUDA, for tests: the persistent kernel's rows per block (1, 2, 4, 8); 0: planned */
    /* Told once, with the reason, whenever the backend runs anything but its fastest path (one kernel
     * per timestep, eager launches, drawing characters on the host, ...); NULL: not told. */
    void (*note)(void *arg, const char *text);
    void *note_arg;
    const Dist *dist; /* data parallel: the ranks this one trains with (NULL: a process of its own) */
} BackendOptions;

/* One way a backend can run a step: a name ("graphs+wavefront") and the options that select it. */
typedef struct {
    const char *name;
    BackendOptions opts;
} BackendVariant;

struct SamplerConfig; /* sampler.h */

/* Memory in bytes: on the host, and on the backend's own device (0 for a backend computing in host memory). */
typedef struct {
    uint64_t host, device;
} MemoryNeed;

typedef struct BackendOps {
    const char *name; /* "cpu", "cuda" */
    void *(*create)(const ModelConfig *cfg, int max_T, int max_B, const BackendOptions *opts, Err *e);
    void (*destroy)(void *ctx);

    /* Whole-buffer transfers, model_num_params floats each. */
    int (*set_params)(void *ctx, const float *params, Err *e);
    int (*get_params)(void *ctx, float *params, Err *e);
    int (*get_grads)(void *ctx, float *grads, Err *e);
    /* Optimizer moments (Adam m and v; SGD keeps its velocity in m and ignores v). */
    int (*set_moments)(void *ctx, const float *m, const float *v, Err *e);
    int (*get_moments)(void *ctx, float *m, float *v, Err *e);
    /* The carried state, [S, L, max_B, H] with S = model_state_sets (the LSTM's h, then its c). */
    int (*set_carry)(void *ctx, const float *h, Err *e);
    int (*get_carry)(void *ctx, float *h, Err *e);

    /* Mean cross-entropy (nats) over the counted positions, without touching the gradients. */
    int (*forward)(void *ctx, const Batch *b, float *loss, Err *e);
    /* Forward, then the gradient of that mean loss into the gradient buffer (overwriting it). */
    int (*forward_backward)(void *ctx, const Batch *b, float *loss, Err *e);
    /* L2 norm of the whole gradient buffer. */
    int (*grad_norm)(void *ctx, float *norm, Err *e);
    /* One optimizer update with gradients scaled by grad_scale (clipping); step counts updates from 1. */
    int (*update)(void *ctx, const OptimConfig *o, float lr, long step, float grad_scale, Err *e);

    /* Generation, one token at a time on a private batch-of-one state. */
    int (*sample_reset)(void *ctx, Err *e);
    int (*sample_step)(void *ctx, int token, float *logits /* [V] */, Err *e);

    /* What create() allocates for this model and batch shape, computed from the very sizes it allocates,
     * so that a command can refuse a run too large before allocating anything. dropout: the run draws
     * dropout masks (a backend may leave out a buffer that a run without them never touches). */
    MemoryNeed (*memory)(const ModelConfig *cfg, int max_T, int max_B, int dropout);
    /* Free and total bytes of the backend's own device memory; NULL for a backend in host memory. */
    int (*device_memory)(uint64_t *free_bytes, uint64_t *total_bytes, Err *e);

    /* Optional, NULL where a backend has none. */
    /* Feeds `token` and, when s is not NULL, draws the next character by sample_logits' rule with the
     * uniform number u in [0, 1) (sampler.c: sample_from_uniform) into *next; only the token comes back. */
    int (*sample_token)(void *ctx, int token, const struct SamplerConfig *s, float u, int *next, Err *e);
    /* Every way a step can run, terminated by a NULL name (selftest and the parity suite run each). */
    const BackendVariant *variants;
    /* 0 when every step so far ran the path the options asked for; else -1 and what ran instead. */
    int (*check_variant)(void *ctx, Err *e);
    /* The device and how this model runs on it (lines of text, each ending in a newline). */
    int (*describe)(void *ctx, char *text, size_t len, Err *e);
    /* The relative L2 error of the backend's own matrix product on an n x n x n product of random
     * numbers from `seed`, against a double-precision reference (TF32 shows as about 1e-4). */
    int (*product_error)(void *ctx, int n, uint64_t seed, double *rel_l2, Err *e);

    /* Data parallel (called only when dist has several ranks): every rank's gradient buffer times weight
     * (its share of the batch's counted positions), summed over the ranks into every rank's buffer, and
     * likewise *loss (this rank's mean in, the batch's out): the gradient and loss of the global batch. */
    int (*allreduce_grads)(void *ctx, float weight, float *loss, Err *e);
} BackendOps;

typedef struct {
    const BackendOps *ops;
    void *ctx;
    ModelConfig cfg;
    int max_T, max_B;
    const Dist *dist; /* BackendOptions.dist, or a job of one process */
} Backend;

/* Refuses a batch shape whose activations a backend cannot index (int offsets) for this model. */
int backend_shape_check(const ModelConfig *cfg, int max_T, int max_B, Err *e);
/* opts may be NULL for the defaults. */
int backend_create(Backend *be, const BackendOps *ops, const ModelConfig *cfg, int max_T, int max_B,
                   const BackendOptions *opts, Err *e);
/* For backends: checks that a batch fits the shape a model was created for. */
int batch_check(const Batch *b, int max_T, int max_B, Err *e);
void backend_destroy(Backend *be);

#endif
