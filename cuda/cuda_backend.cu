/* The CUDA backend: the same model as cpu/cpu_backend.c, with parameters, gradients, optimizer moments
 * and activations resident on the device. The host sends token indices and reads back the loss and
 * the gradient norm (one wait per step) and, when sampling, the drawn character. The schedule is
 * DESIGN.md's: per layer one cuBLAS product for the input projections of all timesteps, then the
 * recurrence (persistent grid-synchronised kernels for all timesteps where they fit, a wavefront of all
 * layers in one launch where that fits too for the tanh cell, else one fused kernel per timestep); one
 * product for the logits; the mirror image backward. A step's launches are captured once per batch
 * shape into a CUDA graph and replayed. Whenever it runs anything but its fastest path, the backend says
 * why, once, through BackendOptions.note. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allreduce.cuh"
#include "kernels.cuh"

extern "C" {
#include "../common/dropout.h"
#include "../common/sampler.h"
#include "../common/selftest.h"
#include "cuda.h"
}

/* ---- error checks: every CUDA and cuBLAS call, with file, line, the call and the library's message ---- */

#define CUDA_TRY(call)                                                                                                 \
    do {                                                                                                               \
        cudaError_t try_status = (call);                                                                               \
        if (try_status != cudaSuccess)                                                                                 \
            return err_set(e, "%s:%d: %s: %s (%s)", __FILE__, __LINE__, #call, cudaGetErrorString(try_status),         \
                           cudaGetErrorName(try_status));                                                              \
    } while (0)

#define CUBLAS_TRY(call)                                                                                               \
    do {                                                                                                               \
        cublasStatus_t try_status = (call);                                                                            \
        if (try_status != CUBLAS_STATUS_SUCCESS)                                                                       \
            return err_set(e, "%s:%d: %s: %s", __FILE__, __LINE__, #call, cublasGetStatusString(try_status));          \
    } while (0)

/* ---- the context ---- */

/* A captured step: one shape of batch (and forward only or forward and backward) replayed as a graph.
 * Everything a step reads from the host comes through the pinned staging buffers, at fixed addresses,
 * so the graph stays valid from batch to batch; the learning rate changes every step, so the
 * optimizer update stays outside. */
typedef struct {
    int backward, T, B, loss_from_t, carry_in, carry_out, dropout;
} StepKey;

typedef struct {
    StepKey key;
    cudaGraphExec_t exec; /* NULL: a free slot */
    unsigned long last_used;
    long persistent_layers, wavefront_launches, stepped_layers, dropout_layers; /* what one replay runs */
} StepGraph;

enum { GRAPH_SLOTS = 4 }; /* training, evaluation and their shorter last batches */

/* cuBLAS's recommended workspace for Hopper; given up front so that no product allocates while a
 * graph is being captured. */
static const size_t BLAS_WORKSPACE = 32u << 20;

/* Generation keeps Emb W_xh of layer 0 ([V, H]) when training does (V <= T B) or when it is this small:
 * one row gathered per character instead of an E x H product. */
static const size_t SAMPLE_FOLD_FLOATS = 1u << 20;

enum { MAX_NOTES = 16, NOTE_BYTES = 320 }; /* distinct notes told, each once */

struct CudaModel {
    ModelConfig cfg;
    int max_T, max_B;
    size_t n_params;
    int n_tensors;
    ParamTensor tensors[MODEL_MAX_TENSORS];
    BackendOptions opts; /* as asked, for check_variant and the note callback */
    cudaStream_t stream;
    cublasHandle_t blas;
    void *blas_workspace;

    float *weights;                /* one allocation: params, grads, m, v */
    float *params, *grads, *m, *v; /* [n_params] each */
    ParamViews p, g;

    /* G = the cell's gate blocks (1 for the tanh cell), GH = G H. */
    float *acts;                /* one allocation for all of these: */
    float *emb_out;             /* [T, B, E] */
    float *h[MODEL_MAX_LAYERS]; /* [T+1, B, H] per layer, h[l][0] = h_0 */
    float *logits;              /* [T, B, V], overwritten by dlogits */
    float *dh;                  /* [T, B, H]: the gradient reaching the top layer (per-layer runs: the current one) */
    float *da[MODEL_MAX_LAYERS]; /* [T, B, GH] per layer: all alive at once for the wavefront */
    float *du;                  /* [T, B, max(E, H)] */
    float *row_loss;            /* [T * B] */
    float *carry;               /* [S, L, max_B, H]: h, then the LSTM's c */
    float *sample_h;            /* [S, L, H]: the generation state (h, then the LSTM's c) */
    float *sample_logits;       /* [V] */
    float *vocab_rows;          /* [V, GH]: layer 0's Emb W_xh, then its gradient summed per token; NULL: never folded */
    float *w_hh_t;              /* [L, GH, H]: W_hh transposed, for the per-timestep backward kernels */
    float *token_partial;       /* [max_chunks, max(E, GH)]: the segmented token sums' chunk sums */
    float *dropped[MODEL_MAX_LAYERS]; /* [T, B, H] per layer: h_1..T with dropout's mask applied */
    /* The gated cells (kernels.cuh): */
    float *act[MODEL_MAX_LAYERS];   /* [T, B, GH]: the input projections, then the gate activations */
    float *c[MODEL_MAX_LAYERS];     /* LSTM: [T+1, B, H], c[l][0] = c_0 */
    float *hn[MODEL_MAX_LAYERS];    /* GRU: [T, B, H], h_{t-1} W_hn + b_hn */
    float *drec[MODEL_MAX_LAYERS];  /* GRU: [T, B, GH], the recurrent product's gradient (the LSTM's is da) */
    float *dstate;                  /* [T, B, H]: what flows element-wise to the state at t-1 (LSTM c, GRU h) */
    double *sums;               /* [2 + SUM_BLOCKS]: the loss sum, the squared gradient norm, partials */
    kernels::DropoutArgs *dropout_args; /* the step's mask parameters */

    token_t *tokens;  /* x then y, [T, B] each; then the drawn character */
    int *buckets;     /* the batch's rows grouped by token: order [T B], start [V+1], chunk_first [V+1], chunk_token */
    int max_chunks;

    /* Pinned host staging: the step's inputs and its two results, the logits and the drawn character. */
    token_t *host_tokens; /* x, y, the drawn character */
    int *host_buckets;
    double *host_sums;
    kernels::DropoutArgs *host_dropout;
    float *host_logits; /* [V], then 2 V of the host sampler's scratch (not pinned-sensitive) */
    float *host_scratch;

    int tf32, use_graphs, persistent_rows;
    RecurrenceKind recurrence;
    kernels::RecurrencePlan plan; /* for plan_B rows */
    int plan_B;
    StepGraph graphs[GRAPH_SLOTS];
    unsigned long clock;
    int norm_ready; /* host_sums[1] holds the current gradients' squared norm */
    GradAllreduce *allreduce; /* data parallel: the ranks' gradient all-reduce; NULL in a single process */
    long cooperative_enqueued; /* persistent launches queued so far (the capture check counts them) */
    CudaStats stats;
    char graphs_note[NOTE_BYTES];
    char notes[MAX_NOTES][NOTE_BYTES];
    int n_notes;
};

/* Tells the note once (BackendOptions.note); repeats of a note already told are dropped. */
static void note(CudaModel *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(CudaModel *c, const char *fmt, ...)
{
    char text[NOTE_BYTES];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    for (int i = 0; i < c->n_notes; i++)
        if (strcmp(c->notes[i], text) == 0)
            return;
    if (c->n_notes < MAX_NOTES)
        strcpy(c->notes[c->n_notes++], text);
    if (c->opts.note)
        c->opts.note(c->opts.note_arg, text);
}

/* ---- row-major products through column-major cuBLAS ---- */

/* C [M, N] = op(A) op(B) (+ C when accumulate), all row-major; op(A) is [M, K] (A stored [K, M] when
 * ta), op(B) is [K, N] (B stored [N, K] when tb). A row-major matrix is the column-major matrix of its
 * transpose, so cuBLAS computes C^T = op(B)^T op(A)^T: the operands swap, the transposes stay. Float32
 * throughout, or with --tf32 explicitly TF32 on tensor cores (CUBLAS_COMPUTE_32F_FAST_TF32), which does
 * not depend on a math mode that cuBLAS may or may not apply to a given product. */
static cublasStatus_t gemm(const CudaModel *c, int ta, int tb, int M, int N, int K, const float *A, const float *B,
                           float *C, int accumulate)
{
    const float one = 1.0f, beta = accumulate ? 1.0f : 0.0f;
    return cublasGemmEx(c->blas, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K, &one, B,
                        CUDA_R_32F, tb ? K : N, A, CUDA_R_32F, ta ? M : K, &beta, C, CUDA_R_32F, N,
                        c->tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
}

static size_t carry_floats(const CudaModel *c)
{
    return (size_t)model_state_sets(&c->cfg) * c->cfg.layers * c->max_B * c->cfg.hidden;
}

/* G and G H of the model's cell. */
static int gates(const CudaModel *c)
{
    return kernels::gates_of(c->cfg.cell);
}

static int gate_width(const CudaModel *c)
{
    return gates(c) * c->cfg.hidden;
}

static void drop_graphs(CudaModel *c)
{
    for (int i = 0; i < GRAPH_SLOTS; i++)
        if (c->graphs[i].exec) {
            cudaGraphExecDestroy(c->graphs[i].exec);
            c->graphs[i].exec = NULL;
        }
}

static void cuda_destroy(void *ctx)
{
    CudaModel *c = (CudaModel *)ctx;
    if (!c)
        return;
    drop_graphs(c);
    allreduce_destroy(c->allreduce);
    cudaFree(c->weights);
    cudaFree(c->acts);
    cudaFree(c->tokens);
    cudaFree(c->buckets);
    cudaFree(c->sums);
    cudaFree(c->dropout_args);
    cudaFree(c->blas_workspace);
    cudaFreeHost(c->host_tokens);
    cudaFreeHost(c->host_buckets);
    cudaFreeHost(c->host_sums);
    cudaFreeHost(c->host_dropout);
    cudaFreeHost(c->host_logits);
    free(c->host_scratch);
    if (c->blas)
        cublasDestroy(c->blas);
    if (c->stream)
        cudaStreamDestroy(c->stream);
    delete c;
}

/* cudaMalloc with a message that names the size and a way out. */
static int device_alloc(void **ptr, size_t bytes, const char *what, Err *e)
{
    cudaError_t status = cudaMalloc(ptr, bytes);
    if (status == cudaErrorMemoryAllocation) {
        cudaGetLastError(); /* clear it */
        return err_set(e,
                       "out of device memory: %.1f MiB asked for the %s; try a smaller --batch, --seq-len or "
                       "--hidden",
                       (double)bytes / 1048576.0, what);
    }
    if (status != cudaSuccess)
        return err_set(e, "cudaMalloc of %.1f MiB for the %s: %s", (double)bytes / 1048576.0, what,
                       cudaGetErrorString(status));
    return 0;
}

static int pinned_alloc(void **ptr, size_t bytes, const char *what, Err *e)
{
    cudaError_t status = cudaMallocHost(ptr, bytes);
    if (status != cudaSuccess) {
        cudaGetLastError();
        return err_set(e, "cudaMallocHost of %.1f MiB for the %s: %s", (double)bytes / 1048576.0, what,
                       cudaGetErrorString(status));
    }
    return 0;
}

/* Layer 0's input projection goes through the vocabulary, (Emb W_xh)[x], when the vocabulary has fewer
 * entries than the batch has rows: the same numbers as the CPU backend's fold, fewer multiply-adds. */
static int fold_embedding(const CudaModel *c, int T, int B)
{
    return c->cfg.vocab <= T * B;
}

/* The most chunks of TOKEN_CHUNK rows any batch cuts its rows into (each token's rows round up). */
static int max_chunks(int max_T, int max_B, int V)
{
    return max_T * max_B / kernels::TOKEN_CHUNK + V + 1;
}

/* The bucket ints: order [T B], start [V+1], chunk_first [V+1], chunk_token [max_chunks]. */
static size_t bucket_ints(int max_T, int max_B, int V)
{
    return (size_t)max_T * max_B + 2 * ((size_t)V + 1) + (size_t)max_chunks(max_T, max_B, V);
}

/* Every activation buffer starts on a 256-byte boundary, as cudaMalloc's own allocations do, so that
 * the kernels' 16-byte vector loads of a row find it aligned whatever the sizes before it (a buffer of
 * T B E floats with E odd would otherwise leave the next one misaligned). */
#define ALIGN_FLOATS 64
static size_t aligned(size_t floats)
{
    return floats_rounded(floats, ALIGN_FLOATS);
}

/* The next buffer of `floats` from the activations' allocation. */
static float *take(float **a, size_t floats)
{
    return take_floats(a, floats, ALIGN_FLOATS);
}

/* The activation buffers for batches of up to max_T x max_B, in the order cuda_setup lays them out: the
 * one place that sizes them, for cuda_setup and for the memory estimate alike. Each is counted in whole
 * aligned pieces (aligned()), a per-layer buffer per layer; a buffer a cell does not use has size 0. */
enum { CUDA_BUFFERS = 18 };
static void cuda_buffer_sizes(const ModelConfig *cfg, int max_T, int max_B, size_t sizes[CUDA_BUFFERS])
{
    const size_t T = (size_t)max_T, B = (size_t)max_B, L = (size_t)cfg->layers, S = (size_t)model_state_sets(cfg);
    const size_t E = (size_t)cfg->embed, H = (size_t)cfg->hidden, V = (size_t)cfg->vocab;
    const size_t G = (size_t)kernels::gates_of(cfg->cell), GH = G * H;
    const size_t W = E > H ? E : H, WG = E > GH ? E : GH;
    const int folds = V <= T * B || V * GH <= SAMPLE_FOLD_FLOATS;
    const int lstm = cfg->cell == CELL_LSTM, gru = cfg->cell == CELL_GRU;
    const size_t s[CUDA_BUFFERS] = {
        aligned(T * B * E),                                     /* emb_out */
        L * aligned((T + 1) * B * H),                           /* h */
        aligned(T * B * V),                                     /* logits */
        aligned(T * B * H),                                     /* dh */
        L * aligned(T * B * GH),                                /* da */
        aligned(T * B * W),                                     /* du */
        aligned(T * B),                                         /* row_loss */
        aligned(S * L * B * H),                                 /* carry */
        aligned(S * L * H) + aligned(V),                        /* sample_h (and c), sample_logits */
        folds ? aligned(V * GH) : 0,                            /* vocab_rows */
        aligned(L * GH * H),                                    /* w_hh_t */
        aligned((size_t)max_chunks(max_T, max_B, (int)V) * WG), /* token_partial */
        L * aligned(T * B * H),                                 /* dropped */
        G > 1 ? L * aligned(T * B * GH) : 0,                    /* act */
        lstm ? L * aligned((T + 1) * B * H) : 0,                /* c */
        gru ? L * aligned(T * B * H) : 0,                       /* hn */
        gru ? L * aligned(T * B * GH) : 0,                      /* drec */
        G > 1 ? aligned(T * B * H) : 0,                         /* dstate */
    };
    memcpy(sizes, s, sizeof s);
}

/* Device memory the CUDA runtime, cuBLAS and the captured graphs allocate besides our own buffers (tens of
 * MiB); generous, so that a run estimated to fit does fit. */
static const uint64_t CUDA_RUNTIME_RESERVE = 256u << 20;

/* Every allocation of cuda_setup, from the same sizes: parameters, gradients and moments, activations,
 * the token batch and its buckets, the reduction results and cuBLAS's workspace on the device; the pinned
 * staging buffers and the host sampler's scratch on the host. */
static MemoryNeed cuda_memory(const ModelConfig *cfg, int max_T, int max_B, int dropout)
{
    (void)dropout; /* device memory is taken whole by cudaMalloc, dropout's buffer with the rest */
    const uint64_t T = (uint64_t)max_T, B = (uint64_t)max_B, V = (uint64_t)cfg->vocab;
    size_t sizes[CUDA_BUFFERS];
    cuda_buffer_sizes(cfg, max_T, max_B, sizes);
    uint64_t floats = 4 * (uint64_t)model_num_params(cfg);
    for (size_t i = 0; i < CUDA_BUFFERS; i++)
        floats += sizes[i];
    const uint64_t tokens = (2 * T * B + 1) * sizeof(token_t), buckets = bucket_ints(max_T, max_B, cfg->vocab) * sizeof(int);
    MemoryNeed need;
    need.device = floats * sizeof(float) + tokens + buckets + (2 + kernels::SUM_BLOCKS) * sizeof(double) +
                  sizeof(kernels::DropoutArgs) + BLAS_WORKSPACE + CUDA_RUNTIME_RESERVE;
    need.host = tokens + buckets + 3 * V * sizeof(float) + 2 * sizeof(double) + sizeof(kernels::DropoutArgs);
    return need;
}

static int cuda_device_memory(uint64_t *free_bytes, uint64_t *total_bytes, Err *e)
{
    size_t free_now = 0, total = 0;
    CUDA_TRY(cudaMemGetInfo(&free_now, &total));
    *free_bytes = free_now;
    *total_bytes = total;
    return 0;
}

static kernels::SampleModel sample_model(CudaModel *c);

static int cuda_setup(CudaModel *c, Err *e)
{
    const size_t T = (size_t)c->max_T, B = (size_t)c->max_B, L = (size_t)c->cfg.layers;
    const size_t H = (size_t)c->cfg.hidden, V = (size_t)c->cfg.vocab, GH = (size_t)gate_width(c);
    const size_t S = (size_t)model_state_sets(&c->cfg);
    c->max_chunks = max_chunks(c->max_T, c->max_B, c->cfg.vocab);
    CUDA_TRY(cudaStreamCreate(&c->stream));
    CUBLAS_TRY(cublasCreate(&c->blas));
    CUBLAS_TRY(cublasSetStream(c->blas, c->stream));
    if (device_alloc(&c->blas_workspace, BLAS_WORKSPACE, "cuBLAS workspace", e) != 0)
        return -1;
    CUBLAS_TRY(cublasSetWorkspace(c->blas, c->blas_workspace, BLAS_WORKSPACE));

    const size_t P = c->n_params;
    if (device_alloc((void **)&c->weights, 4 * P * sizeof(float), "parameters, gradients and moments", e) != 0)
        return -1;
    c->params = c->weights, c->grads = c->params + P, c->m = c->grads + P, c->v = c->m + P;
    c->p = model_views(&c->cfg, c->params);
    c->g = model_views(&c->cfg, c->grads);

    size_t sizes[CUDA_BUFFERS], total = 0;
    cuda_buffer_sizes(&c->cfg, c->max_T, c->max_B, sizes);
    for (size_t i = 0; i < CUDA_BUFFERS; i++)
        total += sizes[i];
    const size_t n_sums = 2 + kernels::SUM_BLOCKS;
    if (device_alloc((void **)&c->acts, total * sizeof(float), "activations", e) != 0 ||
        device_alloc((void **)&c->tokens, (2 * T * B + 1) * sizeof(token_t), "token batch", e) != 0 ||
        device_alloc((void **)&c->buckets, bucket_ints(c->max_T, c->max_B, c->cfg.vocab) * sizeof(int), "token buckets", e) != 0 ||
        device_alloc((void **)&c->sums, n_sums * sizeof(double), "reduction results", e) != 0 ||
        device_alloc((void **)&c->dropout_args, sizeof(kernels::DropoutArgs), "dropout's parameters", e) != 0 ||
        pinned_alloc((void **)&c->host_dropout, sizeof(kernels::DropoutArgs), "dropout staging", e) != 0 ||
        pinned_alloc((void **)&c->host_tokens, (2 * T * B + 1) * sizeof(token_t), "token staging", e) != 0 ||
        pinned_alloc((void **)&c->host_logits, V * sizeof(float), "logits staging", e) != 0 ||
        pinned_alloc((void **)&c->host_buckets, bucket_ints(c->max_T, c->max_B, c->cfg.vocab) * sizeof(int), "bucket staging", e) != 0 ||
        pinned_alloc((void **)&c->host_sums, 2 * sizeof(double), "results", e) != 0)
        return -1;
    if (!(c->host_scratch = (float *)malloc(2 * V * sizeof(float))))
        return err_set(e, "out of memory");
    CUDA_TRY(cudaMemsetAsync(c->weights, 0, 4 * P * sizeof(float), c->stream));
    CUDA_TRY(cudaMemsetAsync(c->acts, 0, total * sizeof(float), c->stream));
    float *a = c->acts;
    c->emb_out = take(&a, T * B * (size_t)c->cfg.embed);
    for (size_t l = 0; l < L; l++)
        c->h[l] = take(&a, (T + 1) * B * H);
    c->logits = take(&a, T * B * V);
    c->dh = take(&a, T * B * H);
    for (size_t l = 0; l < L; l++)
        c->da[l] = take(&a, T * B * GH);
    c->du = take(&a, sizes[5]);
    c->row_loss = take(&a, T * B);
    c->carry = take(&a, sizes[7]);
    c->sample_h = take(&a, S * L * H);
    c->sample_logits = take(&a, V);
    c->vocab_rows = sizes[9] ? take(&a, sizes[9]) : NULL;
    c->w_hh_t = take(&a, sizes[10]);
    c->token_partial = take(&a, sizes[11]);
    for (size_t l = 0; l < L; l++) {
        c->dropped[l] = take(&a, T * B * H);
        if (sizes[13])
            c->act[l] = take(&a, T * B * GH);
        if (sizes[14])
            c->c[l] = take(&a, (T + 1) * B * H);
        if (sizes[15])
            c->hn[l] = take(&a, T * B * H);
        if (sizes[16])
            c->drec[l] = take(&a, T * B * GH);
    }
    c->dstate = sizes[17] ? take(&a, sizes[17]) : NULL;
    if ((size_t)(a - c->acts) != total)
        return err_set(e, "internal error: the activation buffers take %zu floats, %zu were allocated",
                       (size_t)(a - c->acts), total);
    const kernels::SampleModel m = sample_model(c);
    CUDA_TRY(kernels::sample_prepare(&m));
    CUDA_TRY(cudaStreamSynchronize(c->stream));
    return 0;
}

/* The plan of the persistent recurrence for batches of B rows, made once per B, and a note of any
 * slower way it must run. */
static int plan_for(CudaModel *c, int B, Err *e)
{
    if (c->recurrence == RECURRENCE_STEP || c->plan_B == B)
        return 0;
    const int L = c->cfg.layers, H = c->cfg.hidden, T = c->max_T;
    const kernels::RecurrenceRequest request = {B, H, L, gates(c), c->persistent_rows,
                                                c->recurrence != RECURRENCE_PERSISTENT};
    cudaError_t status = kernels::plan_recurrence(&c->plan, &request);
    if (status != cudaSuccess) { /* the per-timestep kernels need none of the calls that failed */
        cudaGetLastError();
        memset(&c->plan, 0, sizeof c->plan);
        c->plan.why_not = cudaGetErrorString(status);
    }
    c->plan_B = B;
    const int wavefront = c->plan.blocks && c->plan.layers_per_launch == L && L > 1;
    if (c->recurrence == RECURRENCE_PERSISTENT && c->plan.blocks == 0)
        return err_set(e,
                       "CHARRNN_CUDA_RECURRENCE=persistent: the persistent kernel cannot run a batch of %d with "
                       "--hidden %d on this device: %s",
                       B, H, c->plan.why_not);
    /* a gated cell asked for the wavefront runs one launch per layer, told below (GATED_NO_WAVEFRONT) */
    if (c->recurrence == RECURRENCE_WAVEFRONT && L > 1 && !wavefront && (gates(c) == 1 || c->plan.blocks == 0))
        return err_set(e,
                       "CHARRNN_CUDA_RECURRENCE=wavefront: the %d layers cannot run as one wavefront with a batch of "
                       "%d and --hidden %d on this device: %s",
                       L, B, H, c->plan.blocks ? c->plan.why_not_wavefront : c->plan.why_not);
    if (c->plan.blocks == 0)
        note(c, "the recurrence runs one kernel per timestep (2 x %d x %d launches per step) instead of the persistent "
                "kernel: %s",
             L, T, c->plan.why_not);
    else if (L > 1 && !wavefront)
        note(c, "the recurrence runs one persistent launch per layer (2 x %d x %d grid-wide barriers per step) instead "
                "of one wavefront of the %d layers (2 x %d): %s",
             L, T, L, T + L - 1,
             c->recurrence == RECURRENCE_PERSISTENT ? "as asked (CHARRNN_CUDA_RECURRENCE=persistent)"
                                                    : c->plan.why_not_wavefront);
    return 0;
}

/* An option left at its default, from the environment: NAME=value, one of names[] (its index), or
 * keep *choice. */
static int env_choice(const char *name, const char *const *names, int first, const char *expected, int *choice, Err *e)
{
    const char *value = getenv(name);
    if (!value || !*value)
        return 0;
    for (int i = 0; names[i]; i++)
        if (strcmp(value, names[i]) == 0) {
            *choice = first + i;
            return 0;
        }
    return err_set(e, "%s=%s: expected %s", name, value, expected);
}

static void *cuda_create(const ModelConfig *cfg, int max_T, int max_B, const BackendOptions *opts, Err *e)
{
    static const char *const recurrences[] = {"auto", "step", "persistent", "wavefront", NULL};
    static const char *const graphs[] = {"1", "0", NULL};
    int recurrence = opts->recurrence, graphs_choice = opts->graphs;
    if ((recurrence == RECURRENCE_AUTO &&
         env_choice("CHARRNN_CUDA_RECURRENCE", recurrences, RECURRENCE_AUTO, "auto, step, persistent or wavefront",
                    &recurrence, e) != 0) ||
        (graphs_choice == GRAPHS_DEFAULT && env_choice("CHARRNN_CUDA_GRAPHS", graphs, GRAPHS_ON,
                                                       "1 (graphs) or 0 (eager launches)", &graphs_choice, e) != 0))
        return NULL;
    CudaModel *c = new CudaModel();
    c->cfg = *cfg;
    c->max_T = max_T;
    c->max_B = max_B;
    c->opts = *opts;
    c->opts.recurrence = (RecurrenceKind)recurrence;
    c->opts.graphs = (GraphsChoice)graphs_choice;
    c->n_tensors = model_tensors(cfg, c->tensors);
    c->n_params = model_num_params(cfg);
    c->tf32 = opts->tf32;
    c->persistent_rows = opts->persistent_rows;
    c->use_graphs = graphs_choice != GRAPHS_OFF;
    c->recurrence = (RecurrenceKind)recurrence;
    const int ranks = opts->dist && opts->dist->size > 1;
    if ((ranks && allreduce_pick_device(opts->dist, e) != 0) || cuda_setup(c, e) != 0 || plan_for(c, max_B, e) != 0 ||
        (ranks && !(c->allreduce = allreduce_create(opts->dist, c->n_params, e)))) {
        cuda_destroy(c);
        return NULL;
    }
    if (!c->use_graphs)
        note(c, "every call launches eagerly, as asked (CHARRNN_CUDA_GRAPHS=0); a replayed graph is faster");
    if (c->recurrence == RECURRENCE_STEP)
        note(c, "the recurrence runs one kernel per timestep, as asked (CHARRNN_CUDA_RECURRENCE=step)");
    return c;
}

extern "C" void cuda_backend_stats(void *ctx, CudaStats *stats)
{
    *stats = ((CudaModel *)ctx)->stats;
}

/* ---- transfers ---- */

static int copy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind, Err *e)
{
    CUDA_TRY(cudaMemcpy(dst, src, bytes, kind));
    return 0;
}

static int cuda_set_params(void *ctx, const float *params, Err *e)
{
    CudaModel *c = (CudaModel *)ctx;
    return copy(c->params, params, c->n_params * sizeof(float), cudaMemcpyHostToDevice, e);
}

static int cuda_get_params(void *ctx, float *params, Err *e)
{
    CudaModel *c = (CudaModel *)ctx;
    return copy(params, c->params, c->n_params * sizeof(float), cudaMemcpyDeviceToHost, e);
}

static int cuda_get_grads(void *ctx, float *grads, Err *e)
{
    CudaModel *c = (CudaModel *)ctx;
    return copy(grads, c->grads, c->n_params * sizeof(float), cudaMemcpyDeviceToHost, e);
}

static int cuda_set_moments(void *ctx, const float *m, const float *v, Err *e)
{
    CudaModel *c = (CudaModel *)ctx;
    const size_t bytes = c->n_params * sizeof(float);
    return copy(c->m, m, bytes, cudaMemcpyHostToDevice, e) || copy(c->v, v, bytes, cudaMemcpyHostToDevice, e) ? -1 : 0;
}

static int cuda_get_moments(void *ctx, float *m, float *v, Err *e)
{
    CudaModel *c = (CudaModel *)ctx;
    const size_t bytes = c->n_params * sizeof(float);
    return copy(m, c->m, bytes, cudaMemcpyDeviceToHost, e) || copy(v, c->v, bytes, cudaMemcpyDeviceToHost, e) ? -1 : 0;
}

static int cuda_set_carry(void *ctx, const float *h, Err *e)
{
    CudaModel *c = (CudaModel *)ctx;
    return copy(c->carry, h, carry_floats(c) * sizeof(float), cudaMemcpyHostToDevice, e);
}

static int cuda_get_carry(void *ctx, float *h, Err *e)
{
    CudaModel *c = (CudaModel *)ctx;
    return copy(h, c->carry, carry_floats(c) * sizeof(float), cudaMemcpyDeviceToHost, e);
}

/* ---- one step's work, queued on the stream: the same calls run eagerly or are captured ---- */

static int persistent(const CudaModel *c)
{
    return c->recurrence != RECURRENCE_STEP && c->plan.blocks > 0;
}

/* A wavefront of all layers in one launch, for this step: the kernel passes each layer's undropped
 * output to the layer above, so a step with dropout runs the planned kernel one layer at a time. */
static int wavefront(const CudaModel *c, const StepKey *k)
{
    return persistent(c) && c->plan.layers_per_launch > 1 && !k->dropout;
}

/* What layer l passes on, h^l_1..T [T, B, H] (to the layer above, or the logits): with dropout's mask
 * applied when the step drops out. */
static const float *layer_output(const CudaModel *c, const StepKey *k, int l)
{
    return k->dropout ? c->dropped[l] : c->h[l] + (size_t)k->B * c->cfg.hidden;
}

/* Where layer l's input projections go [T, B, GH]: the gated cells' gates, or the tanh cell's h_1..T
 * (whose step adds the recurrent product there). */
static float *layer_projection(const CudaModel *c, const StepKey *k, int l)
{
    return gates(c) > 1 ? c->act[l] : c->h[l] + (size_t)k->B * c->cfg.hidden;
}

/* The batch's rows grouped by token (a counting sort, stable), and each token's rows cut into chunks of
 * TOKEN_CHUNK, into the pinned staging buffer: the embedding's gradient then sums each chunk's rows and
 * each token's chunks in order (kernels::token_row_sums). */
static void stage_buckets(CudaModel *c, const Batch *b)
{
    const int n = b->T * b->B, V = c->cfg.vocab;
    int *order = c->host_buckets, *start = order + n, *chunk_first = start + V + 1, *chunk_token = chunk_first + V + 1;
    memset(start, 0, sizeof(int) * (size_t)(V + 1));
    for (int i = 0; i < n; i++)
        start[b->x[i] + 1]++;
    for (int v = 0; v < V; v++)
        start[v + 1] += start[v];
    for (int i = 0; i < n; i++) /* start[] serves as the fill cursor: afterwards start[v] is bucket v's end */
        order[start[b->x[i]]++] = i;
    for (int v = V; v > 0; v--) /* shift back: start[v] is bucket v - 1's end, that is bucket v's start */
        start[v] = start[v - 1];
    start[0] = 0;
    int chunk = 0;
    for (int v = 0; v < V; v++) {
        chunk_first[v] = chunk;
        for (int r = start[v]; r < start[v + 1]; r += kernels::TOKEN_CHUNK)
            chunk_token[chunk++] = v;
    }
    chunk_first[V] = chunk;
    for (; chunk < c->max_chunks; chunk++)
        chunk_token[chunk] = -1; /* no chunk: the kernel skips it */
}

static kernels::TokenBuckets token_buckets(const CudaModel *c, int n)
{
    const int *order = c->buckets, *start = order + n, *chunk_first = start + c->cfg.vocab + 1;
    return kernels::TokenBuckets{order, start, chunk_first, chunk_first + c->cfg.vocab + 1, c->max_chunks};
}

/* The arguments of a persistent launch over layers first .. first + count - 1. */
static kernels::RecurrenceArgs recurrence_args(const CudaModel *c, int first, int count, int T, int B, int backward)
{
    kernels::RecurrenceArgs a;
    memset(&a, 0, sizeof a);
    a.layers = count, a.T = T, a.B = B, a.H = c->cfg.hidden;
    for (int i = 0; i < count; i++) {
        const int l = first + i;
        kernels::RecurrenceLayer *r = &a.layer[i];
        r->w_hh = c->p.w_hh[l];
        r->gates = c->act[l], r->c = c->c[l], r->hn = c->hn[l]; /* the gated cells' */
        if (backward) {
            r->drec = c->cfg.cell == CELL_GRU ? c->drec[l] : c->da[l];
            r->dstate = c->dstate;
            r->state = c->da[l];
            r->h = c->h[l];
            r->dh = i == count - 1 ? c->dh : NULL;
            r->w_link = i < count - 1 ? c->p.w_xh[l + 1] : NULL;
        } else {
            r->state = c->h[l];
            r->b_h = c->p.b_h[l];
            r->b_hn = c->p.b_hn[l];
            r->w_link = i > 0 ? c->p.w_xh[l] : NULL;
        }
    }
    return a;
}

static int enqueue_recurrence(CudaModel *c, const StepKey *k, int first, int count, int backward, Err *e)
{
    const kernels::RecurrenceArgs a = recurrence_args(c, first, count, k->T, k->B, backward);
    if (backward)
        CUDA_TRY(kernels::rnn_backward_persistent(&a, &c->plan, c->stream));
    else
        CUDA_TRY(kernels::rnn_forward_persistent(&a, &c->plan, c->stream));
    c->cooperative_enqueued++;
    c->stats.persistent_layers += count;
    c->stats.wavefront_launches += count > 1;
    if (k->dropout && c->plan.layers_per_launch > 1) {
        c->stats.dropout_layers += count;
        note(c, "a step with dropout runs the recurrence one persistent launch per layer: the wavefront passes each "
                "layer's output on without dropout's mask");
    }
    return 0;
}

/* A gated cell's layer l forward, t = 1..T, one fused kernel per timestep: act[l] holds the input
 * projections on entry. */
static int enqueue_gated_forward(CudaModel *c, const StepKey *k, int l, Err *e)
{
    const int B = k->B, H = c->cfg.hidden;
    const size_t state = (size_t)B * H, wide = state * gates(c);
    float *h = c->h[l], *g = c->act[l];
    for (int t = 1; t <= k->T; t++) {
        float *g_t = g + (t - 1) * wide;
        if (c->cfg.cell == CELL_LSTM)
            CUDA_TRY(kernels::lstm_step_forward(g_t, h + t * state, c->c[l] + t * state, h + (t - 1) * state,
                                                c->c[l] + (t - 1) * state, c->p.w_hh[l], c->p.b_h[l], B, H, c->stream));
        else
            CUDA_TRY(kernels::gru_step_forward(g_t, c->hn[l] + (t - 1) * state, h + t * state, h + (t - 1) * state,
                                               c->p.w_hh[l], c->p.b_h[l], c->p.b_hn[l], B, H, c->stream));
    }
    c->stats.stepped_layers++;
    return 0;
}

/* A gated cell's layer l backward, t = T..1, one fused kernel per timestep: da[l] (and the GRU's drec[l])
 * from dh, the gradient arriving from above; nothing flows in past h_T. */
static int enqueue_gated_backward(CudaModel *c, const StepKey *k, int l, Err *e)
{
    const int T = k->T, B = k->B, H = c->cfg.hidden, GH = gate_width(c);
    const size_t state = (size_t)B * H, wide = (size_t)B * GH;
    float *w_hh_t = c->w_hh_t + (size_t)l * GH * H, *da = c->da[l], *ds = c->dstate;
    CUDA_TRY(kernels::transpose(w_hh_t, c->p.w_hh[l], H, GH, c->stream)); /* for coalesced reads */
    for (int t = T; t >= 1; t--) {
        const int last = t == T;
        const size_t now = (size_t)(t - 1) * state;
        if (c->cfg.cell == CELL_LSTM) {
            CUDA_TRY(kernels::lstm_step_backward(da + (t - 1) * wide, ds + now, last ? NULL : da + t * wide,
                                                 last ? NULL : ds + now + state, c->dh + now, c->act[l] + (t - 1) * wide,
                                                 c->c[l] + now + state, c->c[l] + now, w_hh_t, B, H, c->stream));
        } else {
            float *dr = c->drec[l];
            CUDA_TRY(kernels::gru_step_backward(da + (t - 1) * wide, dr + (t - 1) * wide, ds + now,
                                                last ? NULL : dr + t * wide, last ? NULL : ds + now + state,
                                                c->dh + now, c->act[l] + (t - 1) * wide, c->hn[l] + now,
                                                c->h[l] + now, w_hh_t, B, H, c->stream));
        }
    }
    c->stats.stepped_layers++;
    return 0;
}

/* Layer 0's input projections of all timesteps into h[0][1..T]: one product, or a gather of rows of
 * the vocabulary's product Emb W_xh. */
static int enqueue_layer0_input(CudaModel *c, const StepKey *k, Err *e)
{
    const int T = k->T, B = k->B, GH = gate_width(c), V = c->cfg.vocab, E = c->cfg.embed;
    float *p = layer_projection(c, k, 0);
    if (fold_embedding(c, T, B)) {
        CUBLAS_TRY(gemm(c, 0, 0, V, GH, E, c->p.embedding, c->p.w_xh[0], c->vocab_rows, 0));
        CUDA_TRY(kernels::embedding_forward(p, c->tokens, c->vocab_rows, T * B, GH, c->stream));
    } else {
        CUDA_TRY(kernels::embedding_forward(c->emb_out, c->tokens, c->p.embedding, T * B, E, c->stream));
        CUBLAS_TRY(gemm(c, 0, 0, T * B, GH, E, c->emb_out, c->p.w_xh[0], p, 0));
    }
    return 0;
}

/* Embedding, every layer and the logits of the counted timesteps; the counted rows' losses (and,
 * when scale != 0, dlogits = scale (softmax - onehot)) are left in row_loss and logits. */
static int enqueue_forward(CudaModel *c, const StepKey *k, float scale, Err *e)
{
    const int T = k->T, B = k->B, H = c->cfg.hidden, V = c->cfg.vocab, L = c->cfg.layers, GH = gate_width(c);
    const size_t state = (size_t)B * H, n = (size_t)T * B, sets = (size_t)L * c->max_B * H;
    cudaStream_t s = c->stream;
    const token_t *y = c->tokens + n;
    float *state0[2][MODEL_MAX_LAYERS]; /* h_0, and the LSTM's c_0, of each layer */
    for (int l = 0; l < L; l++)
        state0[0][l] = c->h[l], state0[1][l] = c->c[l];
    for (int set = 0; set < model_state_sets(&c->cfg); set++)
        for (int l = 0; l < L; l++) {
            const float *carry = c->carry + set * sets + (size_t)l * c->max_B * H;
            if (k->carry_in)
                CUDA_TRY(cudaMemcpyAsync(state0[set][l], carry, state * sizeof(float), cudaMemcpyDeviceToDevice, s));
            else
                CUDA_TRY(cudaMemsetAsync(state0[set][l], 0, state * sizeof(float), s));
        }
    if (enqueue_layer0_input(c, k, e) != 0)
        return -1;
    if (wavefront(c, k)) { /* every layer in one launch, each computing its input projection itself */
        if (enqueue_recurrence(c, k, 0, L, 0, e) != 0)
            return -1;
    } else {
        for (int l = 0; l < L; l++) {
            float *h = c->h[l];
            /* The input projections of all timesteps in one product; then the recurrence. */
            if (l > 0)
                CUBLAS_TRY(gemm(c, 0, 0, T * B, GH, H, layer_output(c, k, l - 1), c->p.w_xh[l],
                                layer_projection(c, k, l), 0));
            if (persistent(c)) {
                if (enqueue_recurrence(c, k, l, 1, 0, e) != 0)
                    return -1;
            } else if (gates(c) > 1) {
                if (enqueue_gated_forward(c, k, l, e) != 0)
                    return -1;
            } else {
                for (int t = 1; t <= T; t++)
                    CUDA_TRY(kernels::rnn_step_forward(h + t * state, h + (t - 1) * state, c->p.w_hh[l], c->p.b_h[l],
                                                       B, H, s));
                c->stats.stepped_layers++;
            }
            if (k->dropout)
                CUDA_TRY(kernels::dropout_apply(c->dropped[l], h + state, c->dropout_args, l, T, B, H, s));
        }
    }
    if (k->carry_out)
        for (int set = 0; set < model_state_sets(&c->cfg); set++)
            for (int l = 0; l < L; l++)
                CUDA_TRY(cudaMemcpyAsync(c->carry + set * sets + (size_t)l * c->max_B * H, state0[set][l] + T * state,
                                         state * sizeof(float), cudaMemcpyDeviceToDevice, s));
    const int rows = (T - k->loss_from_t) * B;
    const float *top = layer_output(c, k, L - 1) + (size_t)k->loss_from_t * state;
    CUDA_TRY(kernels::broadcast_rows(c->logits, c->p.b_y, rows, V, s));
    CUBLAS_TRY(gemm(c, 0, 0, rows, V, H, top, c->p.w_hy, c->logits, 1));
    CUDA_TRY(kernels::softmax_xent(c->logits, y + (size_t)k->loss_from_t * B, c->row_loss, rows, V, scale, s));
    return 0;
}

/* Layer l's weight gradients over all timesteps from its da; layer 0 also the embedding's (through the
 * vocabulary when folded). For l > 0 and below_too, also the gradient for the layer below, into dh. */
static int enqueue_layer_gradients(CudaModel *c, const StepKey *k, int l, int below_too, Err *e)
{
    const int T = k->T, B = k->B, H = c->cfg.hidden, V = c->cfg.vocab, E = c->cfg.embed, GH = gate_width(c);
    cudaStream_t s = c->stream;
    const kernels::TokenBuckets buckets = token_buckets(c, T * B);
    /* The recurrent product's gradient is da's but for the GRU, whose reset gate scales its n block. */
    const float *h = c->h[l], *da = c->da[l], *dr = c->cfg.cell == CELL_GRU ? c->drec[l] : da;
    CUBLAS_TRY(gemm(c, 1, 0, H, GH, T * B, h, dr, c->g.w_hh[l], 1));
    CUDA_TRY(kernels::add_column_sums(c->g.b_h[l], da, T * B, GH, GH, s));
    if (c->cfg.cell == CELL_GRU) /* b_hn: the n block of dr */
        CUDA_TRY(kernels::add_column_sums(c->g.b_hn[l], dr + 2 * H, T * B, H, GH, s));
    if (l == 0 && fold_embedding(c, T, B)) {
        /* Through the vocabulary: G = da summed per token, dW_xh = Emb^T G, dEmb = G W_xh^T. */
        CUDA_TRY(kernels::token_row_sums(c->vocab_rows, c->token_partial, da, &buckets, V, GH, 0, s));
        CUBLAS_TRY(gemm(c, 1, 0, E, GH, V, c->p.embedding, c->vocab_rows, c->g.w_xh[0], 1));
        CUBLAS_TRY(gemm(c, 0, 1, V, E, GH, c->vocab_rows, c->p.w_xh[0], c->g.embedding, 1));
        return 0;
    }
    const int I = layer_inputs(&c->cfg, l);
    const float *u = l == 0 ? c->emb_out : layer_output(c, k, l - 1);
    CUBLAS_TRY(gemm(c, 1, 0, I, GH, T * B, u, da, c->g.w_xh[l], 1));
    if (l == 0) {
        CUBLAS_TRY(gemm(c, 0, 1, T * B, E, GH, da, c->p.w_xh[0], c->du, 0));
        CUDA_TRY(kernels::token_row_sums(c->g.embedding, c->token_partial, c->du, &buckets, V, E, 1, s));
    } else if (below_too) { /* the gradient for the layer below goes straight into dh */
        CUBLAS_TRY(gemm(c, 0, 1, T * B, H, GH, da, c->p.w_xh[l], c->dh, 0));
        if (k->dropout) /* through the mask layer l - 1's output was multiplied by */
            CUDA_TRY(kernels::dropout_apply(c->dh, c->dh, c->dropout_args, l - 1, T, B, H, s));
    }
    return 0;
}

/* The gradients of everything, from the dlogits enqueue_forward left. */
static int enqueue_backward(CudaModel *c, const StepKey *k, Err *e)
{
    const int T = k->T, B = k->B, H = c->cfg.hidden, V = c->cfg.vocab, L = c->cfg.layers;
    const size_t state = (size_t)B * H;
    const int rows = (T - k->loss_from_t) * B;
    cudaStream_t s = c->stream;

    CUDA_TRY(cudaMemsetAsync(c->grads, 0, c->n_params * sizeof(float), s));
    /* dh of the top layer: zero at uncounted timesteps, dlogits W_hy^T at the counted ones. */
    const size_t uncounted = (size_t)k->loss_from_t * state;
    const float *top = layer_output(c, k, L - 1) + uncounted;
    if (uncounted) /* no zero-byte memset in a captured graph */
        CUDA_TRY(cudaMemsetAsync(c->dh, 0, uncounted * sizeof(float), s));
    CUBLAS_TRY(gemm(c, 1, 0, H, V, rows, top, c->logits, c->g.w_hy, 1));
    CUDA_TRY(kernels::add_column_sums(c->g.b_y, c->logits, rows, V, V, s));
    CUBLAS_TRY(gemm(c, 0, 1, rows, H, V, c->logits, c->p.w_hy, c->dh + uncounted, 0));
    if (k->dropout)
        CUDA_TRY(kernels::dropout_apply(c->dh, c->dh, c->dropout_args, L - 1, T, B, H, s));

    if (wavefront(c, k)) { /* backward through time and down the layers in one launch; nothing flows in past h_T */
        if (enqueue_recurrence(c, k, 0, L, 1, e) != 0)
            return -1;
        for (int l = L - 1; l >= 0; l--)
            if (enqueue_layer_gradients(c, k, l, 0, e) != 0)
                return -1;
        return 0;
    }
    for (int l = L - 1; l >= 0; l--) {
        /* Backward through time; nothing flows in past h_T. */
        if (persistent(c)) {
            if (enqueue_recurrence(c, k, l, 1, 1, e) != 0)
                return -1;
        } else if (gates(c) > 1) {
            if (enqueue_gated_backward(c, k, l, e) != 0)
                return -1;
        } else {
            float *w_hh_t = c->w_hh_t + (size_t)l * H * H, *da = c->da[l];
            CUDA_TRY(kernels::transpose(w_hh_t, c->p.w_hh[l], H, H, s)); /* for coalesced reads in the step kernel */
            for (int t = T; t >= 1; t--)
                CUDA_TRY(kernels::rnn_step_backward(da + (t - 1) * state, t < T ? da + t * state : NULL,
                                                    c->dh + (t - 1) * state, c->h[l] + t * state, w_hh_t, B, H, s));
            c->stats.stepped_layers++;
        }
        if (enqueue_layer_gradients(c, k, l, 1, e) != 0)
            return -1;
    }
    return 0;
}

/* A whole step: the staged inputs in, forward (and backward), the loss sum (and the squared gradient
 * norm) out to host_sums. */
static int enqueue_step(CudaModel *c, const StepKey *k, Err *e)
{
    const size_t n = (size_t)k->T * k->B;
    const int rows = (k->T - k->loss_from_t) * k->B;
    cudaStream_t s = c->stream;
    CUDA_TRY(cudaMemcpyAsync(c->tokens, c->host_tokens, 2 * n * sizeof(token_t), cudaMemcpyHostToDevice, s));
    if (k->backward) /* order, start, chunk_first and chunk_token, at this batch's offsets */
        CUDA_TRY(cudaMemcpyAsync(c->buckets, c->host_buckets,
                                 sizeof(int) * (n + 2 * ((size_t)c->cfg.vocab + 1) + (size_t)c->max_chunks),
                                 cudaMemcpyHostToDevice, s));
    if (k->dropout)
        CUDA_TRY(cudaMemcpyAsync(c->dropout_args, c->host_dropout, sizeof *c->host_dropout, cudaMemcpyHostToDevice, s));
    if (enqueue_forward(c, k, k->backward ? 1.0f / (float)rows : 0.0f, e) != 0)
        return -1;
    CUDA_TRY(kernels::sum(c->sums, c->sums + 2, c->row_loss, (size_t)rows, 0, s));
    if (k->backward) {
        if (enqueue_backward(c, k, e) != 0)
            return -1;
        CUDA_TRY(kernels::sum(c->sums + 1, c->sums + 2, c->grads, c->n_params, 1, s));
    }
    CUDA_TRY(cudaMemcpyAsync(c->host_sums, c->sums, (k->backward ? 2 : 1) * sizeof(double), cudaMemcpyDeviceToHost, s));
    return 0;
}

static int same_key(const StepKey *a, const StepKey *b)
{
    return memcmp(a, b, sizeof *a) == 0;
}

/* How many of the graph's kernel nodes carry the cooperative attribute: the persistent kernels' grid
 * syncs trap in a node without it. */
static cudaError_t cooperative_nodes(cudaGraph_t graph, long *count)
{
    size_t n = 0;
    cudaError_t status = cudaGraphGetNodes(graph, NULL, &n);
    if (status != cudaSuccess || n == 0)
        return status;
    cudaGraphNode_t *nodes = (cudaGraphNode_t *)malloc(n * sizeof *nodes);
    if (!nodes)
        return cudaErrorMemoryAllocation;
    *count = 0;
    if ((status = cudaGraphGetNodes(graph, nodes, &n)) == cudaSuccess)
        for (size_t i = 0; i < n && status == cudaSuccess; i++) {
            cudaGraphNodeType type;
            cudaKernelNodeAttrValue value;
            if ((status = cudaGraphNodeGetType(nodes[i], &type)) != cudaSuccess || type != cudaGraphNodeTypeKernel)
                continue;
            if ((status = cudaGraphKernelNodeGetAttribute(nodes[i], cudaKernelNodeAttributeCooperative, &value)) ==
                cudaSuccess)
                *count += value.cooperative != 0;
        }
    free(nodes);
    return status;
}

/* Captures what enqueue(Err *) queues on the stream into *exec: 0, or -1 with the reason in the
 * statistics' note and told as a note (the stream is never left capturing, and the refusal is
 * cleared). A captured graph whose persistent kernels are not all cooperative nodes is refused too. */
template <class Enqueue> static int capture(CudaModel *c, Enqueue enqueue, cudaGraphExec_t *exec)
{
    Err failed = {""};
    int queued = -1;
    cudaGraph_t graph = NULL;
    *exec = NULL;
    const long cooperative0 = c->cooperative_enqueued;
    long cooperative = 0;
    cudaError_t made = cudaStreamBeginCapture(c->stream, cudaStreamCaptureModeThreadLocal);
    if (made == cudaSuccess) {
        queued = enqueue(&failed);
        cudaError_t ended = cudaStreamEndCapture(c->stream, &graph);
        made = ended == cudaSuccess && queued == 0 ? cooperative_nodes(graph, &cooperative) : ended;
        const long expected = c->cooperative_enqueued - cooperative0;
        if (made == cudaSuccess && queued == 0 && cooperative < expected)
            snprintf(failed.msg, sizeof failed.msg,
                     "%ld of the graph's %ld persistent kernels are cooperative nodes; the grid sync of the others "
                     "would trap",
                     cooperative, expected);
        else if (made == cudaSuccess && queued == 0)
            made = cudaGraphInstantiate(exec, graph, 0);
    }
    if (graph)
        cudaGraphDestroy(graph);
    if (queued == 0 && made == cudaSuccess && !failed.msg[0])
        return 0;
    if (*exec)
        cudaGraphExecDestroy(*exec);
    *exec = NULL;
    cudaGetLastError();
    snprintf(c->graphs_note, sizeof c->graphs_note, "graph capture failed (%s%s%s); launching eagerly", failed.msg,
             failed.msg[0] && made != cudaSuccess ? "; " : "", made != cudaSuccess ? cudaGetErrorName(made) : "");
    c->stats.graphs_note = c->graphs_note;
    note(c, "%s", c->graphs_note);
    return -1;
}

/* The graph of this step shape, captured on first use into the least recently used slot (the
 * backend's very first step excepted). A capture that fails (a driver that cannot capture some call)
 * turns graphs off, with the reason told once, and the step runs eagerly. */
static int graph_for(CudaModel *c, const StepKey *k, StepGraph **out, Err *e)
{
    StepGraph *slot = &c->graphs[0];
    for (int i = 0; i < GRAPH_SLOTS; i++) {
        StepGraph *g = &c->graphs[i];
        if (g->exec && same_key(&g->key, k)) {
            *out = g;
            return 0;
        }
        if (!g->exec || g->last_used < slot->last_used)
            slot = g;
    }
    if (slot->exec) {
        CUDA_TRY(cudaGraphExecDestroy(slot->exec));
        slot->exec = NULL;
    }
    if (c->stats.graph_captures == 0 && c->stats.eager_steps == 0) {
        /* The first step runs eagerly: the kernels load and cuBLAS sets itself up outside any capture. */
        *out = NULL;
        return 0;
    }
    const CudaStats before = c->stats;
    const int captured = capture(
        c, [&](Err *failed) { return enqueue_step(c, k, failed); }, &slot->exec);
    /* Captured work has not run: it is counted at each replay. */
    slot->persistent_layers = c->stats.persistent_layers - before.persistent_layers;
    slot->wavefront_launches = c->stats.wavefront_launches - before.wavefront_launches;
    slot->stepped_layers = c->stats.stepped_layers - before.stepped_layers;
    slot->dropout_layers = c->stats.dropout_layers - before.dropout_layers;
    c->stats.dropout_layers = before.dropout_layers;
    c->stats.persistent_layers = before.persistent_layers;
    c->stats.wavefront_launches = before.wavefront_launches;
    c->stats.stepped_layers = before.stepped_layers;
    if (captured != 0) {
        CUDA_TRY(cudaStreamSynchronize(c->stream)); /* a real fault (not a capture refusal) stops here */
        c->use_graphs = 0;
        *out = NULL;
        return 0;
    }
    slot->key = *k;
    c->stats.graph_captures++;
    *out = slot;
    return 0;
}

/* One step: the batch staged, the step replayed (or queued eagerly), then the one wait of the step,
 * for its loss and gradient norm. */
static int run_step(CudaModel *c, const Batch *b, int backward, float *loss, Err *e)
{
    if (batch_check(b, c->max_T, c->max_B, e) != 0 || plan_for(c, b->B, e) != 0)
        return -1;
    const StepKey k = {backward, b->T, b->B, b->loss_from_t, b->carry_in, b->carry_out, b->dropout > 0.0f};
    if (k.dropout) { /* read by the captured graph's copy, like the tokens */
        const kernels::DropoutArgs d = {b->dropout_seed, (int64_t)b->dropout_step, b->dropout_row0,
                                        dropout_threshold(b->dropout), dropout_scale(b->dropout)};
        *c->host_dropout = d;
    }
    const size_t n = (size_t)b->T * b->B;
    memcpy(c->host_tokens, b->x, n * sizeof(token_t));
    memcpy(c->host_tokens + n, b->y, n * sizeof(token_t));
    if (backward)
        stage_buckets(c, b);
    StepGraph *g = NULL;
    if (c->use_graphs && graph_for(c, &k, &g, e) != 0)
        return -1;
    if (g) {
        CUDA_TRY(cudaGraphLaunch(g->exec, c->stream));
        g->last_used = ++c->clock;
        c->stats.graph_replays++;
        c->stats.persistent_layers += g->persistent_layers;
        c->stats.wavefront_launches += g->wavefront_launches;
        c->stats.stepped_layers += g->stepped_layers;
        c->stats.dropout_layers += g->dropout_layers;
    } else {
        if (enqueue_step(c, &k, e) != 0)
            return -1;
        c->stats.eager_steps++;
    }
    CUDA_TRY(cudaStreamSynchronize(c->stream));
    *loss = (float)(c->host_sums[0] / ((b->T - b->loss_from_t) * b->B));
    if (backward) /* a forward pass leaves the gradients, and host_sums[1], alone */
        c->norm_ready = 1;
    return 0;
}

static int cuda_forward(void *ctx, const Batch *b, float *loss, Err *e)
{
    return run_step((CudaModel *)ctx, b, 0, loss, e);
}

static int cuda_forward_backward(void *ctx, const Batch *b, float *loss, Err *e)
{
    return run_step((CudaModel *)ctx, b, 1, loss, e);
}

static int cuda_grad_norm(void *ctx, float *norm, Err *e)
{
    CudaModel *c = (CudaModel *)ctx;
    if (!c->norm_ready) { /* no step since the gradients were last set */
        CUDA_TRY(kernels::sum(c->sums + 1, c->sums + 2, c->grads, c->n_params, 1, c->stream));
        CUDA_TRY(cudaMemcpyAsync(c->host_sums + 1, c->sums + 1, sizeof(double), cudaMemcpyDeviceToHost, c->stream));
        CUDA_TRY(cudaStreamSynchronize(c->stream));
        c->norm_ready = 1;
    }
    *norm = (float)sqrt(c->host_sums[1]);
    return 0;
}

static int cuda_allreduce_grads(void *ctx, float weight, float *loss, Err *e)
{
    CudaModel *c = (CudaModel *)ctx;
    if (!c->allreduce)
        return err_set(e, "the CUDA backend was created for a single process");
    c->norm_ready = 0; /* the reduced gradients have a norm of their own */
    return allreduce_step(c->allreduce, c->grads, c->n_params, weight, loss, c->stream, e);
}

static int cuda_update(void *ctx, const OptimConfig *o, float lr, long step, float grad_scale, Err *e)
{
    CudaModel *c = (CudaModel *)ctx;
    const float c1 = 1.0f - powf(o->beta1, (float)step), c2 = 1.0f - powf(o->beta2, (float)step);
    /* One launch over every parameter, unless AdamW decays the matrices only. */
    const int whole = o->kind != OPT_ADAMW || o->weight_decay == 0.0f;
    for (int k = 0; k < (whole ? 1 : c->n_tensors); k++) {
        const ParamTensor *t = &c->tensors[k];
        const size_t off = whole ? 0 : t->offset, n = whole ? c->n_params : t->rows * t->cols;
        if (o->kind == OPT_SGD) {
            CUDA_TRY(kernels::sgd_update(c->params + off, c->grads + off, c->m + off, n, lr, o->momentum, grad_scale,
                                         c->stream));
        } else {
            float wd = o->kind == OPT_ADAMW && t->is_matrix ? o->weight_decay : 0.0f;
            CUDA_TRY(kernels::adam_update(c->params + off, c->grads + off, c->m + off, c->v + off, n, lr, o->beta1,
                                          o->beta2, o->eps, whole ? 0.0f : wd, grad_scale, c1, c2, c->stream));
        }
    }
    return 0;
}

/* ---- generation: one launch of one block per character ---- */

static kernels::SampleModel sample_model(CudaModel *c)
{
    kernels::SampleModel m;
    memset(&m, 0, sizeof m);
    m.embedding = c->p.embedding;
    m.vocab_rows = c->vocab_rows;
    for (int l = 0; l < c->cfg.layers; l++)
        m.w_xh[l] = c->p.w_xh[l], m.w_hh[l] = c->p.w_hh[l], m.b_h[l] = c->p.b_h[l];
    m.w_hy = c->p.w_hy, m.b_y = c->p.b_y;
    m.h = c->sample_h, m.logits = c->sample_logits;
    m.c = c->cfg.cell == CELL_LSTM ? c->sample_h + (size_t)c->cfg.layers * c->cfg.hidden : NULL;
    m.V = c->cfg.vocab, m.E = c->cfg.embed, m.H = c->cfg.hidden, m.L = c->cfg.layers;
    m.cell = c->cfg.cell;
    return m;
}

/* A fresh state, and Emb W_xh of the current parameters when generation gathers its rows. */
static int cuda_sample_reset(void *ctx, Err *e)
{
    CudaModel *c = (CudaModel *)ctx;
    const size_t floats = (size_t)model_state_sets(&c->cfg) * c->cfg.layers * c->cfg.hidden;
    CUDA_TRY(cudaMemsetAsync(c->sample_h, 0, floats * sizeof(float), c->stream));
    if (c->vocab_rows)
        CUBLAS_TRY(gemm(c, 0, 0, c->cfg.vocab, gate_width(c), c->cfg.embed, c->p.embedding, c->p.w_xh[0],
                        c->vocab_rows, 0));
    return 0;
}

static int enqueue_sample(CudaModel *c, int token, const kernels::SampleDraw *draw, Err *e)
{
    if (token < 0 || token >= c->cfg.vocab)
        return err_set(e, "token %d is outside the vocabulary of %d", token, c->cfg.vocab);
    const kernels::SampleModel m = sample_model(c);
    CUDA_TRY(kernels::sample_step(&m, token, draw, c->tokens + 2 * (size_t)c->max_T * c->max_B, c->stream));
    c->stats.sample_launches++;
    return 0;
}

/* The logits after `token`: one launch, then the V logits back. */
static int cuda_sample_step(void *ctx, int token, float *logits, Err *e)
{
    CudaModel *c = (CudaModel *)ctx;
    const kernels::SampleDraw none = {0, 1.0f, 0.0f, 0, 0};
    if (enqueue_sample(c, token, &none, e) != 0)
        return -1;
    CUDA_TRY(cudaMemcpyAsync(c->host_logits, c->sample_logits, c->cfg.vocab * sizeof(float), cudaMemcpyDeviceToHost,
                             c->stream));
    CUDA_TRY(cudaStreamSynchronize(c->stream));
    memcpy(logits, c->host_logits, sizeof(float) * (size_t)c->cfg.vocab);
    return 0;
}

/* One character each way: `token` in (as a kernel argument), the drawn one back (two bytes). Feeding
 * a prime (s NULL) does not wait. A vocabulary too large to draw from in one block is drawn on the host
 * from the logits, and said so. */
static int cuda_sample_token(void *ctx, int token, const SamplerConfig *s, float u, int *next, Err *e)
{
    CudaModel *c = (CudaModel *)ctx;
    const int V = c->cfg.vocab;
    if (!s) {
        const kernels::SampleDraw none = {0, 1.0f, 0.0f, 0, 0};
        return enqueue_sample(c, token, &none, e);
    }
    if (V > kernels::SAMPLE_MAX_VOCAB) {
        note(c, "characters are drawn on the host from the logits copied back: the vocabulary of %d is above the %d "
                "the sampling kernel draws from",
             V, kernels::SAMPLE_MAX_VOCAB);
        if (cuda_sample_step(ctx, token, c->host_scratch, e) != 0)
            return -1;
        memcpy(c->host_logits, c->host_scratch, sizeof(float) * (size_t)V);
        *next = sample_from_uniform(c->host_logits, V, s, u, c->host_scratch);
        c->stats.host_draws++;
        return 0;
    }
    const kernels::SampleDraw draw = {1, s->temperature, u, s->top_k, s->argmax};
    token_t *drawn = c->tokens + 2 * (size_t)c->max_T * c->max_B, *host = c->host_tokens + 2 * (size_t)c->max_T * c->max_B;
    if (enqueue_sample(c, token, &draw, e) != 0)
        return -1;
    CUDA_TRY(cudaMemcpyAsync(host, drawn, sizeof(token_t), cudaMemcpyDeviceToHost, c->stream));
    CUDA_TRY(cudaStreamSynchronize(c->stream));
    *next = *host;
    return 0;
}

/* ---- what ran, what runs, and how precise the products are ---- */

static const BackendVariant CUDA_VARIANTS[] = {
    {"graphs+wavefront", {0, 0, GRAPHS_ON, RECURRENCE_WAVEFRONT, 0, NULL, NULL}},
    {"graphs+persistent", {0, 0, GRAPHS_ON, RECURRENCE_PERSISTENT, 0, NULL, NULL}},
    {"graphs+step", {0, 0, GRAPHS_ON, RECURRENCE_STEP, 0, NULL, NULL}},
    {"eager+wavefront", {0, 0, GRAPHS_OFF, RECURRENCE_WAVEFRONT, 0, NULL, NULL}},
    {"eager+persistent", {0, 0, GRAPHS_OFF, RECURRENCE_PERSISTENT, 0, NULL, NULL}},
    {"eager+step", {0, 0, GRAPHS_OFF, RECURRENCE_STEP, 0, NULL, NULL}},
    {NULL, {0, 0, GRAPHS_DEFAULT, RECURRENCE_AUTO, 0, NULL, NULL}},
};

/* The paths that ran against those the options asked for: graphs (from the second step on) or eager
 * launches, and the recurrence as a wavefront (models of several layers), per layer, or per timestep. */
static int cuda_check_variant(void *ctx, Err *e)
{
    const CudaModel *c = (const CudaModel *)ctx;
    const CudaStats *st = &c->stats;
    const int L = c->cfg.layers;
    const RecurrenceKind asked = c->opts.recurrence;
    int ok = 1;
    if (c->opts.graphs == GRAPHS_ON)
        ok &= st->graph_replays > 0 && st->eager_steps == 1;
    else if (c->opts.graphs == GRAPHS_OFF)
        ok &= st->graph_replays == 0 && st->eager_steps > 0;
    if (asked == RECURRENCE_STEP)
        ok &= st->persistent_layers == 0 && st->stepped_layers > 0;
    else if (asked == RECURRENCE_PERSISTENT)
        ok &= st->persistent_layers > 0 && st->stepped_layers == 0 && st->wavefront_launches == 0;
    else if (asked == RECURRENCE_WAVEFRONT) /* steps with dropout, and the gated cells, one launch per layer */
        ok &= st->persistent_layers > 0 && st->stepped_layers == 0 &&
              (L == 1 || (gates(c) > 1 ? st->wavefront_launches == 0
                                       : st->wavefront_launches * L == st->persistent_layers - st->dropout_layers));
    if (ok)
        return 0;
    return err_set(e,
                   "ran %ld graph replays and %ld eager steps; %ld layer recurrences persistent (%ld wavefront "
                   "launches, %ld one launch per layer for dropout), %ld per timestep%s%s",
                   st->graph_replays, st->eager_steps, st->persistent_layers, st->wavefront_launches,
                   st->dropout_layers, st->stepped_layers, st->graphs_note ? "; " : "",
                   st->graphs_note ? st->graphs_note : "");
}

/* Appends to text (at *used of len). */
static void put(char *text, size_t len, size_t *used, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void put(char *text, size_t len, size_t *used, const char *fmt, ...)
{
    if (*used >= len)
        return;
    va_list ap;
    va_start(ap, fmt);
    const int n = vsnprintf(text + *used, len - *used, fmt, ap);
    va_end(ap);
    *used += n > 0 ? (size_t)n : 0;
}

static int cuda_describe(void *ctx, char *text, size_t len, Err *e)
{
    CudaModel *c = (CudaModel *)ctx;
    cudaDeviceProp prop;
    int device = 0, driver = 0, runtime = 0, blas = 0;
    size_t free_bytes = 0, total_bytes = 0;
    CUDA_TRY(cudaGetDevice(&device));
    CUDA_TRY(cudaGetDeviceProperties(&prop, device));
    CUDA_TRY(cudaDriverGetVersion(&driver));
    CUDA_TRY(cudaRuntimeGetVersion(&runtime));
    CUDA_TRY(cudaMemGetInfo(&free_bytes, &total_bytes));
    CUBLAS_TRY(cublasGetVersion(c->blas, &blas));
    const int L = c->cfg.layers, T = c->max_T, B = c->plan_B ? c->plan_B : c->max_B, H = c->cfg.hidden;
    size_t used = 0;
    put(text, len, &used,
        "device      %s: compute capability %d.%d, %d SMs, %.1f GiB (%.1f GiB free), %zu KiB of shared memory per "
        "block, %d MiB of L2\n",
        prop.name, prop.major, prop.minor, prop.multiProcessorCount, total_bytes / 1073741824.0,
        free_bytes / 1073741824.0, prop.sharedMemPerBlockOptin / 1024, prop.l2CacheSize >> 20);
    put(text, len, &used, "software    driver %d.%d, runtime %d.%d, cuBLAS %d.%d.%d\n", driver / 1000,
        driver % 1000 / 10, runtime / 1000, runtime % 1000 / 10, blas / 10000, blas % 10000 / 100, blas % 100);
    const kernels::RecurrencePlan *p = &c->plan;
    if (!persistent(c)) {
        put(text, len, &used, "recurrence  one kernel per timestep (2 x %d x %d launches per step): %s\n", L, T,
            c->recurrence == RECURRENCE_STEP ? "as asked (CHARRNN_CUDA_RECURRENCE=step)" : p->why_not);
    } else {
        const int syncs = p->layers_per_launch > 1 ? T + L - 2 : T - 1;
        if (p->layers_per_launch > 1)
            put(text, len, &used,
                "recurrence  a wavefront of the %d layers in one cooperative launch per direction: %d grid-wide "
                "barriers per launch (one launch per layer would need %d x %d)\n",
                L, syncs, L, T - 1);
        else
            put(text, len, &used,
                "recurrence  one cooperative launch per layer and direction, %d grid-wide barriers each%s%s\n", syncs,
                L > 1 ? "; not a wavefront: " : "",
                L > 1 ? (c->recurrence == RECURRENCE_PERSISTENT ? "as asked (CHARRNN_CUDA_RECURRENCE=persistent)"
                                                                : p->why_not_wavefront)
                      : "");
        char columns[64] = "32 columns";
        if (p->gates > 1)
            snprintf(columns, sizeof columns, "32 hidden units (%d gate columns)", 32 * p->gates);
        put(text, len, &used,
            "            %d blocks of 128 threads (%d layer%s x %d row tiles x %d column tiles), each %d batch rows x "
            "%s, its 4 warps summing a quarter of k each; %zu bytes of shared memory per block, %d blocks "
            "per SM at most, %d registers per thread (batch %d, hidden %d)\n",
            p->blocks, p->layers_per_launch, p->layers_per_launch > 1 ? "s" : "", p->row_tiles, p->col_tiles, p->rows,
            columns, p->shared_bytes, p->blocks_per_sm, p->registers, B, H);
    }
    put(text, len, &used, "products    cuBLAS, %s\n",
        c->tf32 ? "TF32 on tensor cores (CUBLAS_COMPUTE_32F_FAST_TF32)" : "float32 (CUBLAS_COMPUTE_32F)");
    put(text, len, &used, "steps       %s\n",
        !c->use_graphs ? (c->stats.graphs_note ? c->stats.graphs_note
                                               : "every call launched eagerly, as asked (CHARRNN_CUDA_GRAPHS=0)")
                       : "each batch shape captured once into a CUDA graph and replayed (the first step eagerly)");
    put(text, len, &used, "sampling    one launch of one %d-thread block per character, %s\n", kernels::SAMPLE_THREADS,
        c->cfg.vocab <= kernels::SAMPLE_MAX_VOCAB ? "the character drawn on the device"
                                                  : "the logits copied back and the character drawn on the host");
    return 0;
}

/* The backend's own product (gemm) on n x n x n random numbers in [-1, 1), against the same product in
 * double on the host. */
static int cuda_product_error(void *ctx, int n, uint64_t seed, double *rel_l2, Err *e)
{
    CudaModel *c = (CudaModel *)ctx;
    const size_t nn = (size_t)n * n;
    float *host = (float *)malloc(3 * nn * sizeof(float)), *device = NULL;
    if (!host)
        return err_set(e, "out of memory");
    float *A = host, *B = host + nn, *C = host + 2 * nn;
    Rng r;
    rng_seed(&r, seed);
    for (size_t i = 0; i < 2 * nn; i++)
        host[i] = 2.0f * rng_uniform(&r) - 1.0f;
    int rc = device_alloc((void **)&device, 3 * nn * sizeof(float), "product check", e);
    if (rc == 0)
        rc = copy(device, host, 2 * nn * sizeof(float), cudaMemcpyHostToDevice, e);
    if (rc == 0) {
        cublasStatus_t status = gemm(c, 0, 0, n, n, n, device, device + nn, device + 2 * nn, 0);
        rc = status == CUBLAS_STATUS_SUCCESS ? 0 : err_set(e, "product check: %s", cublasGetStatusString(status));
    }
    if (rc == 0)
        rc = copy(C, device + 2 * nn, nn * sizeof(float), cudaMemcpyDeviceToHost, e);
    cudaFree(device);
    if (rc == 0) /* on the host, outside this instrumented file (the race detector watches its loads) */
        *rel_l2 = product_rel_l2(A, B, C, n);
    free(host);
    return rc;
}

/* ---- the device ---- */

static const int BUILT_FOR_MAJOR = 9; /* CMake builds sm_90 code and compute_90 PTX (CUDA_ARCHITECTURES 90) */

extern "C" int cuda_device_usable(Err *e)
{
    int count = 0;
    cudaError_t status = cudaGetDeviceCount(&count);
    if (status == cudaErrorNoDevice || status == cudaErrorInsufficientDriver) {
        cudaGetLastError();
        int runtime = 0;
        cudaRuntimeGetVersion(&runtime);
        return err_set(e,
                       "--device cuda: no CUDA device found (%s: no NVIDIA GPU, no driver, or a driver older "
                       "than this build's CUDA runtime %d.%d)",
                       cudaGetErrorName(status), runtime / 1000, runtime % 1000 / 10);
    }
    if (status != cudaSuccess) {
        cudaGetLastError();
        return err_set(e, "--device cuda: no usable CUDA device (%s)", cudaGetErrorString(status));
    }
    if (count == 0)
        return err_set(e, "--device cuda: no CUDA device found");
    cudaDeviceProp prop;
    CUDA_TRY(cudaGetDeviceProperties(&prop, 0));
    if (prop.major < BUILT_FOR_MAJOR)
        return err_set(e,
                       "--device cuda: %s has compute capability %d.%d; this build has GPU code for %d.0 (H100/H200) "
                       "and newer only",
                       prop.name, prop.major, prop.minor, BUILT_FOR_MAJOR);
    return 0;
}

extern "C" const char *cuda_device_name(void)
{
    static cudaDeviceProp prop;
    if (prop.name[0] == 0 && cudaGetDeviceProperties(&prop, 0) != cudaSuccess)
        return "unknown CUDA device";
    return prop.name;
}

extern "C" const BackendOps cuda_backend_ops = {
    "cuda",
    cuda_create,
    cuda_destroy,
    cuda_set_params,
    cuda_get_params,
    cuda_get_grads,
    cuda_set_moments,
    cuda_get_moments,
    cuda_set_carry,
    cuda_get_carry,
    cuda_forward,
    cuda_forward_backward,
    cuda_grad_norm,
    cuda_update,
    cuda_sample_reset,
    cuda_sample_step,
    cuda_memory,
    cuda_device_memory,
    cuda_sample_token,
    CUDA_VARIANTS,
    cuda_check_variant,
    cuda_describe,
    cuda_product_error,
    cuda_allreduce_grads,
};
