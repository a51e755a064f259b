/* The CUDA backend: the same model as cpu/cpu_backend.c, with parameters, gradients, optimizer moments
 * and activations resident on the device. The host sends token indices and reads back the loss and
 * the gradient norm (one wait per step) and, when sampling, one row of logits. The schedule is
 * DESIGN.md's: per layer one cuBLAS product for the input projections of all timesteps, then the
 * recurrence (one persistent grid-synchronised kernel for all timesteps where it fits, else one fused
 * kernel per timestep); one product for the logits; the mirror image backward. A step's launches are
 * captured once per batch shape into a CUDA graph and replayed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allreduce.cuh"
#include "kernels.cuh"

extern "C" {
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

/* ---- row-major products through column-major cuBLAS ---- */

/* C [M, N] = op(A) op(B) (+ C when accumulate), all row-major; op(A) is [M, K] (A stored [K, M] when
 * ta), op(B) is [K, N] (B stored [N, K] when tb). A row-major matrix is the column-major matrix of its
 * transpose, so cuBLAS computes C^T = op(B)^T op(A)^T: the operands swap, the transposes stay. */
static cublasStatus_t gemm(cublasHandle_t blas, int ta, int tb, int M, int N, int K, const float *A, const float *B,
                           float *C, int accumulate)
{
    const float one = 1.0f, beta = accumulate ? 1.0f : 0.0f;
    return cublasSgemm(blas, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K, &one, B,
                       tb ? K : N, A, ta ? M : K, &beta, C, N);
}

/* ---- the context ---- */

/* A captured step: one shape of batch (and forward only or forward and backward) replayed as a graph.
 * Everything a step reads from the host comes through the pinned staging buffers, at fixed addresses,
 * so the graph stays valid from batch to batch; the learning rate changes every step, so the
 * optimizer update stays outside. */
typedef struct {
    int backward, T, B, loss_from_t, carry_in, carry_out;
} StepKey;

typedef struct {
    StepKey key;
    cudaGraphExec_t exec; /* NULL: a free slot */
    unsigned long last_used;
    long persistent_layers, stepped_layers; /* what one replay runs */
} StepGraph;

enum { GRAPH_SLOTS = 4 }; /* training, evaluation and their shorter last batches */

/* cuBLAS's recommended workspace for Hopper; given up front so that no product allocates while a
 * graph is being captured. */
static const size_t BLAS_WORKSPACE = 32u << 20;

struct CudaModel {
    ModelConfig cfg;
    int max_T, max_B;
    size_t n_params;
    int n_tensors;
    ParamTensor tensors[MODEL_MAX_TENSORS];
    cudaStream_t stream;
    cublasHandle_t blas;
    void *blas_workspace;

    float *weights;                /* one allocation: params, grads, m, v */
    float *params, *grads, *m, *v; /* [n_params] each */
    ParamViews p, g;

    float *acts;                   /* one allocation for all of these: */
    float *emb_out;                /* [T, B, E] */
    float *h[MODEL_MAX_LAYERS];    /* [T+1, B, H] per layer, h[l][0] = h_0 */
    float *logits;                 /* [T, B, V], overwritten by dlogits */
    float *dh, *da;                /* [T, B, H] */
    float *du;                     /* [T, B, max(E, H)] */
    float *row_loss;               /* [T * B] */
    float *carry;                  /* [L, max_B, H] */
    float *sample_h, *sample_next; /* [L, H] and [H]: the generation state */
    float *sample_logits;          /* [V] */
    float *sample_in;              /* [E]: the embedding row of the character fed in */
    token_t *sample_token;         /* the character fed in, after the batch's tokens */
    float *vocab_rows;             /* [V, H]: layer 0's Emb W_xh, then its gradient summed per token */
    float *w_hh_t;                 /* [L, H, H]: W_hh transposed, for the backward steps */
    double *sums;                  /* [2 + SUM_BLOCKS]: the loss sum, the squared gradient norm, partials */

    token_t *tokens; /* x then y, [T, B] each */
    int *buckets;    /* the batch's rows grouped by token: order [T * B], then start [V + 1] */

    /* Pinned host staging: the step's inputs and its two results. */
    token_t *host_tokens; /* x, y, then the sampled character */
    int *host_buckets;
    double *host_sums;
    float *host_logits; /* [V] */
    token_t *host_sample_token;
    cudaGraphExec_t sample_exec;
    long sample_eager;

    int tf32, use_graphs, persistent_rows;
    RecurrenceKind recurrence;
    kernels::RecurrencePlan plan; /* for plan_B rows */
    int plan_B;
    StepGraph graphs[GRAPH_SLOTS];
    unsigned long clock;
    int norm_ready; /* host_sums[1] holds the current gradients' squared norm */
    GradAllreduce *allreduce; /* data parallel: the ranks' gradient all-reduce; NULL in a single process */
    CudaStats stats;
    char graphs_note[sizeof(Err) + 64];
};

static size_t carry_floats(const CudaModel *c)
{
    return (size_t)c->cfg.layers * c->max_B * c->cfg.hidden;
}

static void drop_graphs(CudaModel *c)
{
    if (c->sample_exec)
        cudaGraphExecDestroy(c->sample_exec);
    c->sample_exec = NULL;
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
    cudaFree(c->blas_workspace);
    cudaFreeHost(c->host_tokens);
    cudaFreeHost(c->host_buckets);
    cudaFreeHost(c->host_sums);
    cudaFreeHost(c->host_logits);
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

/* The activation buffers for batches of up to max_T x max_B, in the order cuda_setup lays them out: the
 * one place that sizes them, for cuda_setup and for the memory estimate alike. */
enum { CUDA_BUFFERS = 11 };
static void cuda_buffer_sizes(const ModelConfig *cfg, int max_T, int max_B, size_t sizes[CUDA_BUFFERS])
{
    const size_t T = (size_t)max_T, B = (size_t)max_B, L = (size_t)cfg->layers;
    const size_t E = (size_t)cfg->embed, H = (size_t)cfg->hidden, V = (size_t)cfg->vocab;
    const size_t W = E > H ? E : H;
    const size_t s[CUDA_BUFFERS] = {
        T * B * E,              /* emb_out */
        L * (T + 1) * B * H,    /* h */
        T * B * V,              /* logits */
        T * B * H,              /* dh */
        T * B * H,              /* da */
        T * B * W,              /* du */
        T * B,                  /* row_loss */
        L * B * H,              /* carry */
        L * H + H + V + E,      /* sample_h, sample_next, sample_logits, sample_in */
        V <= T * B ? V * H : 0, /* vocab_rows: only where some batch can fold the embedding */
        L * H * H,              /* w_hh_t */
    };
    memcpy(sizes, s, sizeof s);
}

/* Device memory the CUDA runtime, cuBLAS and the captured graphs allocate besides our own buffers (tens of
 * MiB); generous, so that a run estimated to fit does fit. */
static const uint64_t CUDA_RUNTIME_RESERVE = 256u << 20;

/* Every allocation of cuda_setup, from the same sizes: parameters, gradients and moments, activations,
 * the token batch and its buckets, the reduction results and cuBLAS's workspace on the device; the pinned
 * staging buffers on the host. */
static MemoryNeed cuda_memory(const ModelConfig *cfg, int max_T, int max_B)
{
    const uint64_t T = (uint64_t)max_T, B = (uint64_t)max_B, V = (uint64_t)cfg->vocab;
    size_t sizes[CUDA_BUFFERS];
    cuda_buffer_sizes(cfg, max_T, max_B, sizes);
    uint64_t floats = 4 * (uint64_t)model_num_params(cfg);
    for (size_t i = 0; i < CUDA_BUFFERS; i++)
        floats += sizes[i];
    const uint64_t tokens = (2 * T * B + 1) * sizeof(token_t), buckets = (T * B + V + 1) * sizeof(int);
    MemoryNeed need;
    need.device = floats * sizeof(float) + tokens + buckets + (2 + kernels::SUM_BLOCKS) * sizeof(double) +
                  BLAS_WORKSPACE + CUDA_RUNTIME_RESERVE;
    need.host = tokens + buckets + V * sizeof(float) + 2 * sizeof(double);
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

static int cuda_setup(CudaModel *c, Err *e)
{
    const size_t T = (size_t)c->max_T, B = (size_t)c->max_B, L = (size_t)c->cfg.layers;
    const size_t E = (size_t)c->cfg.embed, H = (size_t)c->cfg.hidden, V = (size_t)c->cfg.vocab;
    CUDA_TRY(cudaStreamCreate(&c->stream));
    CUBLAS_TRY(cublasCreate(&c->blas));
    CUBLAS_TRY(cublasSetStream(c->blas, c->stream));
    /* Full float32 unless --tf32: then the products' inputs are rounded to TF32 on tensor cores. */
    CUBLAS_TRY(cublasSetMathMode(c->blas, c->tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
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
        device_alloc((void **)&c->buckets, (T * B + V + 1) * sizeof(int), "token buckets", e) != 0 ||
        device_alloc((void **)&c->sums, n_sums * sizeof(double), "reduction results", e) != 0 ||
        pinned_alloc((void **)&c->host_tokens, (2 * T * B + 1) * sizeof(token_t), "token staging", e) != 0 ||
        pinned_alloc((void **)&c->host_logits, V * sizeof(float), "logits staging", e) != 0 ||
        pinned_alloc((void **)&c->host_buckets, (T * B + V + 1) * sizeof(int), "bucket staging", e) != 0 ||
        pinned_alloc((void **)&c->host_sums, 2 * sizeof(double), "results", e) != 0)
        return -1;
    CUDA_TRY(cudaMemsetAsync(c->weights, 0, 4 * P * sizeof(float), c->stream));
    CUDA_TRY(cudaMemsetAsync(c->acts, 0, total * sizeof(float), c->stream));
    float *a = c->acts;
    c->emb_out = a, a += sizes[0];
    for (size_t l = 0; l < L; l++)
        c->h[l] = a, a += (T + 1) * B * H;
    c->logits = a, a += sizes[2];
    c->dh = a, a += sizes[3];
    c->da = a, a += sizes[4];
    c->du = a, a += sizes[5];
    c->row_loss = a, a += sizes[6];
    c->carry = a, a += sizes[7];
    c->sample_h = a, a += L * H;
    c->sample_next = a, a += H;
    c->sample_logits = a, a += V;
    c->sample_in = a, a += E;
    c->vocab_rows = a, a += sizes[9];
    c->w_hh_t = a;
    c->sample_token = c->tokens + 2 * T * B;
    c->host_sample_token = c->host_tokens + 2 * T * B;
    CUDA_TRY(cudaStreamSynchronize(c->stream));
    return 0;
}

/* The plan of the persistent recurrence for batches of B rows, made once per B. */
static int plan_for(CudaModel *c, int B, Err *e)
{
    if (c->recurrence == RECURRENCE_STEP || c->plan_B == B)
        return 0;
    cudaError_t status = kernels::plan_recurrence(&c->plan, B, c->cfg.hidden, c->persistent_rows);
    if (status != cudaSuccess) { /* the per-timestep kernels need none of the calls that failed */
        cudaGetLastError();
        memset(&c->plan, 0, sizeof c->plan);
        c->plan.why_not = cudaGetErrorString(status);
    }
    c->plan_B = B;
    if (c->recurrence == RECURRENCE_PERSISTENT && c->plan.blocks == 0)
        return err_set(e,
                       "CHARRNN_CUDA_RECURRENCE=persistent: the persistent kernel cannot run a batch of %d with "
                       "--hidden %d on this device: %s",
                       B, c->cfg.hidden, c->plan.why_not);
    return 0;
}

/* An option left at its default, from the environment: NAME=value, one of names[] (its index), or
 * keep *choice. */
static int env_choice(const char *name, const char *const *names, int first, int *choice, Err *e)
{
    const char *value = getenv(name);
    if (!value || !*value)
        return 0;
    for (int i = 0; names[i]; i++)
        if (strcmp(value, names[i]) == 0) {
            *choice = first + i;
            return 0;
        }
    return err_set(e, "%s=%s: expected %s", name, value,
                   names[2] ? "auto, step or persistent" : "1 (graphs) or 0 (eager launches)");
}

static void *cuda_create(const ModelConfig *cfg, int max_T, int max_B, const BackendOptions *opts, Err *e)
{
    static const char *const recurrences[] = {"auto", "step", "persistent", NULL};
    static const char *const graphs[] = {"1", "0", NULL};
    int recurrence = opts->recurrence, graphs_choice = opts->graphs;
    if ((recurrence == RECURRENCE_AUTO &&
         env_choice("CHARRNN_CUDA_RECURRENCE", recurrences, RECURRENCE_AUTO, &recurrence, e) != 0) ||
        (graphs_choice == GRAPHS_DEFAULT &&
         env_choice("CHARRNN_CUDA_GRAPHS", graphs, GRAPHS_ON, &graphs_choice, e) != 0))
        return NULL;
    CudaModel *c = new CudaModel();
    c->cfg = *cfg;
    c->max_T = max_T;
    c->max_B = max_B;
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

/* Layer 0's input projection goes through the vocabulary, (Emb W_xh)[x], when the vocabulary has fewer
 * entries than the batch has rows: the same numbers as the CPU backend's fold, fewer multiply-adds. */
static int fold_embedding(const CudaModel *c, int T, int B)
{
    return c->cfg.vocab <= T * B;
}

static int persistent(const CudaModel *c)
{
    return c->recurrence != RECURRENCE_STEP && c->plan.blocks > 0;
}

/* The batch's rows grouped by token (a counting sort, stable), into the pinned staging buffer: the
 * embedding's gradient then sums each token's rows in row order (kernels::token_row_sums). */
static void stage_buckets(CudaModel *c, const Batch *b)
{
    const int n = b->T * b->B, V = c->cfg.vocab;
    int *order = c->host_buckets, *start = c->host_buckets + n;
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
}

/* Embedding, every layer and the logits of the counted timesteps; the counted rows' losses (and,
 * when scale != 0, dlogits = scale (softmax - onehot)) are left in row_loss and logits. */
static int enqueue_forward(CudaModel *c, const StepKey *k, float scale, Err *e)
{
    const int T = k->T, B = k->B, H = c->cfg.hidden, V = c->cfg.vocab, L = c->cfg.layers, E = c->cfg.embed;
    const size_t state = (size_t)B * H, n = (size_t)T * B;
    cudaStream_t s = c->stream;
    const token_t *x = c->tokens, *y = c->tokens + n;
    const int fold = fold_embedding(c, T, B);
    if (!fold)
        CUDA_TRY(kernels::embedding_forward(c->emb_out, x, c->p.embedding, T * B, E, s));
    const float *u = c->emb_out;
    for (int l = 0; l < L; l++) {
        float *h = c->h[l], *carry = c->carry + (size_t)l * c->max_B * H;
        if (k->carry_in)
            CUDA_TRY(cudaMemcpyAsync(h, carry, state * sizeof(float), cudaMemcpyDeviceToDevice, s));
        else
            CUDA_TRY(cudaMemsetAsync(h, 0, state * sizeof(float), s));
        /* The input projections of all timesteps in one product (or a gather from the vocabulary's),
         * into h_1..h_T; then the recurrence. */
        if (l == 0 && fold) {
            CUBLAS_TRY(gemm(c->blas, 0, 0, V, H, E, c->p.embedding, c->p.w_xh[0], c->vocab_rows, 0));
            CUDA_TRY(kernels::embedding_forward(h + state, x, c->vocab_rows, T * B, H, s)); /* rows of Emb W_xh */
        } else {
            CUBLAS_TRY(gemm(c->blas, 0, 0, T * B, H, layer_inputs(&c->cfg, l), u, c->p.w_xh[l], h + state, 0));
        }
        if (persistent(c)) {
            CUDA_TRY(kernels::rnn_forward_persistent(h, c->p.w_hh[l], c->p.b_h[l], T, B, H, &c->plan, s));
            c->stats.persistent_layers++;
        } else {
            for (int t = 1; t <= T; t++)
                CUDA_TRY(
                    kernels::rnn_step_forward(h + t * state, h + (t - 1) * state, c->p.w_hh[l], c->p.b_h[l], B, H, s));
            c->stats.stepped_layers++;
        }
        if (k->carry_out)
            CUDA_TRY(cudaMemcpyAsync(carry, h + T * state, state * sizeof(float), cudaMemcpyDeviceToDevice, s));
        u = h + state;
    }
    const int rows = (T - k->loss_from_t) * B;
    const float *top = c->h[L - 1] + (size_t)(k->loss_from_t + 1) * state;
    CUDA_TRY(kernels::broadcast_rows(c->logits, c->p.b_y, rows, V, s));
    CUBLAS_TRY(gemm(c->blas, 0, 0, rows, V, H, top, c->p.w_hy, c->logits, 1));
    CUDA_TRY(kernels::softmax_xent(c->logits, y + (size_t)k->loss_from_t * B, c->row_loss, rows, V, scale, s));
    return 0;
}

/* The gradients of everything, from the dlogits enqueue_forward left. */
static int enqueue_backward(CudaModel *c, const StepKey *k, Err *e)
{
    const int T = k->T, B = k->B, H = c->cfg.hidden, V = c->cfg.vocab, L = c->cfg.layers, E = c->cfg.embed;
    const size_t state = (size_t)B * H;
    const int rows = (T - k->loss_from_t) * B;
    cudaStream_t s = c->stream;
    const int *order = c->buckets, *start = c->buckets + T * B;

    CUDA_TRY(cudaMemsetAsync(c->grads, 0, c->n_params * sizeof(float), s));
    /* dh of the top layer: zero at uncounted timesteps, dlogits W_hy^T at the counted ones. */
    const size_t uncounted = (size_t)k->loss_from_t * state;
    const float *top = c->h[L - 1] + (size_t)(k->loss_from_t + 1) * state;
    if (uncounted) /* no zero-byte memset in a captured graph */
        CUDA_TRY(cudaMemsetAsync(c->dh, 0, uncounted * sizeof(float), s));
    CUBLAS_TRY(gemm(c->blas, 1, 0, H, V, rows, top, c->logits, c->g.w_hy, 1));
    CUDA_TRY(kernels::add_column_sums(c->g.b_y, c->logits, rows, V, s));
    CUBLAS_TRY(gemm(c->blas, 0, 1, rows, H, V, c->logits, c->p.w_hy, c->dh + uncounted, 0));

    for (int l = L - 1; l >= 0; l--) {
        const int I = layer_inputs(&c->cfg, l);
        const float *h = c->h[l], *u = l == 0 ? c->emb_out : c->h[l - 1] + state;
        float *w_hh_t = c->w_hh_t + (size_t)l * H * H;
        /* Backward through time; nothing flows in past h_T. */
        if (persistent(c)) {
            CUDA_TRY(kernels::rnn_backward_persistent(c->da, c->dh, h, c->p.w_hh[l], T, B, H, &c->plan, s));
            c->stats.persistent_layers++;
        } else {
            CUDA_TRY(kernels::transpose(w_hh_t, c->p.w_hh[l], H, s)); /* for coalesced reads in the step kernel */
            for (int t = T; t >= 1; t--)
                CUDA_TRY(kernels::rnn_step_backward(c->da + (t - 1) * state, t < T ? c->da + t * state : NULL,
                                                    c->dh + (t - 1) * state, h + t * state, w_hh_t, B, H, s));
            c->stats.stepped_layers++;
        }
        /* Weight gradients over all timesteps at once. */
        CUBLAS_TRY(gemm(c->blas, 1, 0, H, H, T * B, h, c->da, c->g.w_hh[l], 1));
        CUDA_TRY(kernels::add_column_sums(c->g.b_h[l], c->da, T * B, H, s));
        if (l == 0 && fold_embedding(c, T, B)) {
            /* Through the vocabulary: G = da summed per token, dW_xh = Emb^T G, dEmb = G W_xh^T. */
            CUDA_TRY(kernels::token_row_sums(c->vocab_rows, c->da, order, start, V, H, 0, s));
            CUBLAS_TRY(gemm(c->blas, 1, 0, E, H, V, c->p.embedding, c->vocab_rows, c->g.w_xh[0], 1));
            CUBLAS_TRY(gemm(c->blas, 0, 1, V, E, H, c->vocab_rows, c->p.w_xh[0], c->g.embedding, 1));
            break;
        }
        CUBLAS_TRY(gemm(c->blas, 1, 0, I, H, T * B, u, c->da, c->g.w_xh[l], 1));
        /* The gradient for the layer below (or the embedding) goes straight into dh or du. */
        CUBLAS_TRY(gemm(c->blas, 0, 1, T * B, I, H, c->da, c->p.w_xh[l], l > 0 ? c->dh : c->du, 0));
        if (l == 0)
            CUDA_TRY(kernels::token_row_sums(c->g.embedding, c->du, order, start, V, E, 1, s));
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
    if (k->backward)
        CUDA_TRY(cudaMemcpyAsync(c->buckets, c->host_buckets, sizeof(int) * (n + c->cfg.vocab + 1),
                                 cudaMemcpyHostToDevice, s));
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

/* Captures what enqueue(Err *) queues on the stream into *exec: 0, or -1 with the reason in the
 * statistics' note (the stream is never left capturing, and the refusal is cleared). */
template <class Enqueue> static int capture(CudaModel *c, Enqueue enqueue, cudaGraphExec_t *exec)
{
    Err failed = {""};
    int queued = -1;
    cudaGraph_t graph = NULL;
    *exec = NULL;
    cudaError_t made = cudaStreamBeginCapture(c->stream, cudaStreamCaptureModeThreadLocal);
    if (made == cudaSuccess) {
        queued = enqueue(&failed);
        cudaError_t ended = cudaStreamEndCapture(c->stream, &graph);
        made = ended == cudaSuccess && queued == 0 ? cudaGraphInstantiate(exec, graph, 0) : ended;
    }
    if (graph)
        cudaGraphDestroy(graph);
    if (queued == 0 && made == cudaSuccess)
        return 0;
    *exec = NULL;
    cudaGetLastError();
    snprintf(c->graphs_note, sizeof c->graphs_note, "graph capture failed (%s%s%s); launching eagerly", failed.msg,
             failed.msg[0] && made != cudaSuccess ? "; " : "", made != cudaSuccess ? cudaGetErrorName(made) : "");
    c->stats.graphs_note = c->graphs_note;
    return -1;
}

/* The graph of this step shape, captured on first use into the least recently used slot (the
 * backend's very first step excepted). A capture that fails (a driver that cannot capture some call)
 * turns graphs off, with the reason in the statistics, and the step runs eagerly. */
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
    const long persistent0 = c->stats.persistent_layers, stepped0 = c->stats.stepped_layers;
    const int captured = capture(
        c, [&](Err *failed) { return enqueue_step(c, k, failed); }, &slot->exec);
    /* Captured work has not run: it is counted at each replay. */
    slot->persistent_layers = c->stats.persistent_layers - persistent0;
    slot->stepped_layers = c->stats.stepped_layers - stepped0;
    c->stats.persistent_layers = persistent0, c->stats.stepped_layers = stepped0;
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
    const StepKey k = {backward, b->T, b->B, b->loss_from_t, b->carry_in, b->carry_out};
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
        c->stats.stepped_layers += g->stepped_layers;
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

/* ---- generation: the same kernels on a batch of one ---- */

static int cuda_sample_reset(void *ctx, Err *e)
{
    CudaModel *c = (CudaModel *)ctx;
    CUDA_TRY(cudaMemsetAsync(c->sample_h, 0, (size_t)c->cfg.layers * c->cfg.hidden * sizeof(float), c->stream));
    return 0;
}

/* One character: its embedding row (the token through the staging buffer), every layer's step, the
 * logits out to the pinned host buffer. */
static int enqueue_sample(CudaModel *c, Err *e)
{
    const int H = c->cfg.hidden, V = c->cfg.vocab, E = c->cfg.embed;
    cudaStream_t s = c->stream;
    CUDA_TRY(cudaMemcpyAsync(c->sample_token, c->host_sample_token, sizeof(token_t), cudaMemcpyHostToDevice, s));
    CUDA_TRY(kernels::embedding_forward(c->sample_in, c->sample_token, c->p.embedding, 1, E, s));
    const float *u = c->sample_in;
    for (int l = 0; l < c->cfg.layers; l++) {
        float *h = c->sample_h + (size_t)l * H;
        CUBLAS_TRY(gemm(c->blas, 0, 0, 1, H, layer_inputs(&c->cfg, l), u, c->p.w_xh[l], c->sample_next, 0));
        CUDA_TRY(kernels::rnn_step_forward(c->sample_next, h, c->p.w_hh[l], c->p.b_h[l], 1, H, s));
        CUDA_TRY(cudaMemcpyAsync(h, c->sample_next, H * sizeof(float), cudaMemcpyDeviceToDevice, s));
        u = h;
    }
    CUDA_TRY(kernels::broadcast_rows(c->sample_logits, c->p.b_y, 1, V, s));
    CUBLAS_TRY(gemm(c->blas, 0, 0, 1, V, H, u, c->p.w_hy, c->sample_logits, 1));
    CUDA_TRY(cudaMemcpyAsync(c->host_logits, c->sample_logits, V * sizeof(float), cudaMemcpyDeviceToHost, s));
    return 0;
}

/* Replayed as one graph from the second character on (some 3 + 3 L launches and copies each). */
static int cuda_sample_step(void *ctx, int token, float *logits, Err *e)
{
    CudaModel *c = (CudaModel *)ctx;
    if (token < 0 || token >= c->cfg.vocab)
        return err_set(e, "token %d is outside the vocabulary of %d", token, c->cfg.vocab);
    *c->host_sample_token = (token_t)token;
    if (c->use_graphs && !c->sample_exec && c->sample_eager > 0 &&
        capture(
            c, [&](Err *failed) { return enqueue_sample(c, failed); }, &c->sample_exec) != 0) {
        CUDA_TRY(cudaStreamSynchronize(c->stream));
        c->use_graphs = 0;
    }
    if (c->sample_exec) {
        CUDA_TRY(cudaGraphLaunch(c->sample_exec, c->stream));
        c->stats.sample_replays++;
    } else {
        if (enqueue_sample(c, e) != 0)
            return -1;
        c->sample_eager++;
    }
    CUDA_TRY(cudaStreamSynchronize(c->stream));
    memcpy(logits, c->host_logits, sizeof(float) * (size_t)c->cfg.vocab);
    return 0;
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
    "cuda",           cuda_create,      cuda_destroy,      cuda_set_params,  cuda_get_params, cuda_get_grads,
    cuda_set_moments, cuda_get_moments, cuda_set_carry,    cuda_get_carry,   cuda_forward,    cuda_forward_backward,
    cuda_grad_norm,   cuda_update,      cuda_sample_reset, cuda_sample_step, cuda_memory,     cuda_device_memory,
    cuda_allreduce_grads,
};
