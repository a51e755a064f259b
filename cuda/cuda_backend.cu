/* The CUDA backend: the same model as cpu/cpu_backend.c, with parameters, gradients, optimizer moments
 * and activations resident on the device. The host sends token indices and reads back the loss, the
 * gradient norm and, when sampling, one row of logits. The schedule is DESIGN.md's: per layer one
 * cuBLAS product for the input projections of all timesteps, then one fused kernel per timestep; one
 * product for the logits; the mirror image backward. */
#include <math.h>
#include <stdio.h>
#include <string.h>

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

struct CudaModel {
    ModelConfig cfg;
    int max_T, max_B;
    size_t n_params;
    int n_tensors;
    ParamTensor tensors[MODEL_MAX_TENSORS];
    cudaStream_t stream;
    cublasHandle_t blas;

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
    float *vocab_rows;             /* [V, H]: layer 0's Emb W_xh, then its gradient summed per token */
    float *w_hh_t;                 /* [L, H, H]: W_hh transposed, for the backward steps */
    double *scalar;                /* one reduction result */

    token_t *tokens; /* x then y, [T, B] each */
    int *buckets;    /* the batch's rows grouped by token: order [T * B], then start [V + 1] */
    int *host_buckets;
};

static size_t carry_floats(const CudaModel *c)
{
    return (size_t)c->cfg.layers * c->max_B * c->cfg.hidden;
}

static void cuda_destroy(void *ctx)
{
    CudaModel *c = (CudaModel *)ctx;
    if (!c)
        return;
    cudaFree(c->weights);
    cudaFree(c->acts);
    cudaFree(c->tokens);
    cudaFree(c->buckets);
    free(c->host_buckets);
    cudaFree(c->scalar);
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

static int cuda_setup(CudaModel *c, Err *e)
{
    const size_t T = (size_t)c->max_T, B = (size_t)c->max_B, L = (size_t)c->cfg.layers;
    const size_t E = (size_t)c->cfg.embed, H = (size_t)c->cfg.hidden, V = (size_t)c->cfg.vocab;
    const size_t W = E > H ? E : H;
    CUDA_TRY(cudaStreamCreate(&c->stream));
    CUBLAS_TRY(cublasCreate(&c->blas));
    CUBLAS_TRY(cublasSetStream(c->blas, c->stream));
    CUBLAS_TRY(cublasSetMathMode(c->blas, CUBLAS_DEFAULT_MATH)); /* full float32: no TF32 */

    const size_t P = c->n_params;
    if (device_alloc((void **)&c->weights, 4 * P * sizeof(float), "parameters, gradients and moments", e) != 0)
        return -1;
    c->params = c->weights, c->grads = c->params + P, c->m = c->grads + P, c->v = c->m + P;
    c->p = model_views(&c->cfg, c->params);
    c->g = model_views(&c->cfg, c->grads);

    const size_t sizes[] = {
        T * B * E,           /* emb_out */
        L * (T + 1) * B * H, /* h */
        T * B * V,           /* logits */
        T * B * H,           /* dh */
        T * B * H,           /* da */
        T * B * W,           /* du */
        T * B,               /* row_loss */
        L * B * H,           /* carry */
        L * H + H + V,       /* sample_h, sample_next, sample_logits */
        V <= T * B ? V * H : 0, /* vocab_rows: only where some batch can fold the embedding */
        L * H * H,           /* w_hh_t */
    };
    size_t total = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        total += sizes[i];
    if (device_alloc((void **)&c->acts, total * sizeof(float), "activations", e) != 0 ||
        device_alloc((void **)&c->tokens, 2 * T * B * sizeof(token_t), "token batch", e) != 0 ||
        device_alloc((void **)&c->buckets, (T * B + V + 1) * sizeof(int), "token buckets", e) != 0 ||
        device_alloc((void **)&c->scalar, sizeof(double), "reduction result", e) != 0)
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
    c->vocab_rows = a, a += sizes[9];
    c->w_hh_t = a;
    c->host_buckets = (int *)malloc((T * B + V + 1) * sizeof(int));
    if (!c->host_buckets)
        return err_set(e, "out of memory");
    CUDA_TRY(cudaStreamSynchronize(c->stream));
    return 0;
}

static void *cuda_create(const ModelConfig *cfg, int max_T, int max_B, const BackendOptions *opts, Err *e)
{
    (void)opts; /* nothing to set yet: the host side is one thread */
    CudaModel *c = new CudaModel();
    c->cfg = *cfg;
    c->max_T = max_T;
    c->max_B = max_B;
    c->n_tensors = model_tensors(cfg, c->tensors);
    c->n_params = model_num_params(cfg);
    if (cuda_setup(c, e) != 0) {
        cuda_destroy(c);
        return NULL;
    }
    return c;
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

/* ---- forward and backward ---- */

/* The tokens to the device, then embedding, every layer and the logits of the counted timesteps; the
 * counted rows' losses are left in row_loss. */
/* Layer 0's input projection goes through the vocabulary, (Emb W_xh)[x], when the vocabulary has fewer
 * entries than the batch has rows: the same numbers as the CPU backend's fold, fewer multiply-adds. */
static int fold_embedding(const CudaModel *c, const Batch *b)
{
    return c->cfg.vocab <= b->T * b->B;
}

/* The batch's rows grouped by token (a counting sort, stable), to the device: the embedding's gradient
 * then sums each token's rows in row order (kernels::token_row_sums). */
static int upload_buckets(CudaModel *c, const Batch *b, Err *e)
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
    CUDA_TRY(cudaMemcpyAsync(c->buckets, c->host_buckets, sizeof(int) * (size_t)(n + V + 1), cudaMemcpyHostToDevice,
                             c->stream));
    return 0;
}

static int forward_to_loss(CudaModel *c, const Batch *b, float scale, float *loss, Err *e)
{
    const int T = b->T, B = b->B, H = c->cfg.hidden, V = c->cfg.vocab, L = c->cfg.layers;
    const size_t state = (size_t)B * H, n = (size_t)T * B;
    cudaStream_t s = c->stream;
    token_t *x = c->tokens, *y = c->tokens + n;
    CUDA_TRY(cudaMemcpyAsync(x, b->x, n * sizeof(token_t), cudaMemcpyHostToDevice, s));
    CUDA_TRY(cudaMemcpyAsync(y, b->y, n * sizeof(token_t), cudaMemcpyHostToDevice, s));
    const int fold = fold_embedding(c, b), E = c->cfg.embed;
    if (!fold)
        CUDA_TRY(kernels::embedding_forward(c->emb_out, x, c->p.embedding, T * B, E, s));
    const float *u = c->emb_out;
    for (int l = 0; l < L; l++) {
        float *h = c->h[l], *carry = c->carry + (size_t)l * c->max_B * H;
        if (b->carry_in)
            CUDA_TRY(cudaMemcpyAsync(h, carry, state * sizeof(float), cudaMemcpyDeviceToDevice, s));
        else
            CUDA_TRY(cudaMemsetAsync(h, 0, state * sizeof(float), s));
        /* The input projections of all timesteps in one product (or a gather from the vocabulary's),
         * into h_1..h_T; then the recurrence. */
        if (l == 0 && fold) {
            CUBLAS_TRY(gemm(c->blas, 0, 0, V, H, E, c->p.embedding, c->p.w_xh[0], c->vocab_rows, 0));
            CUDA_TRY(kernels::gather_rows(h + state, x, c->vocab_rows, T * B, H, s));
        } else {
            CUBLAS_TRY(gemm(c->blas, 0, 0, T * B, H, layer_inputs(&c->cfg, l), u, c->p.w_xh[l], h + state, 0));
        }
        for (int t = 1; t <= T; t++)
            CUDA_TRY(kernels::rnn_step_forward(h + t * state, h + (t - 1) * state, c->p.w_hh[l], c->p.b_h[l], B, H, s));
        if (b->carry_out)
            CUDA_TRY(cudaMemcpyAsync(carry, h + T * state, state * sizeof(float), cudaMemcpyDeviceToDevice, s));
        u = h + state;
    }
    const int rows = (T - b->loss_from_t) * B;
    const float *top = c->h[L - 1] + (size_t)(b->loss_from_t + 1) * state;
    CUDA_TRY(kernels::broadcast_rows(c->logits, c->p.b_y, rows, V, s));
    CUBLAS_TRY(gemm(c->blas, 0, 0, rows, V, H, top, c->p.w_hy, c->logits, 1));
    CUDA_TRY(kernels::softmax_xent(c->logits, y + (size_t)b->loss_from_t * B, c->row_loss, rows, V, scale, s));
    CUDA_TRY(kernels::sum(c->scalar, c->row_loss, (size_t)rows, 0, s));
    double total;
    CUDA_TRY(cudaMemcpyAsync(&total, c->scalar, sizeof total, cudaMemcpyDeviceToHost, s));
    CUDA_TRY(cudaStreamSynchronize(s));
    *loss = (float)(total / rows);
    return 0;
}

static int cuda_forward(void *ctx, const Batch *b, float *loss, Err *e)
{
    CudaModel *c = (CudaModel *)ctx;
    if (batch_check(b, c->max_T, c->max_B, e) != 0)
        return -1;
    return forward_to_loss(c, b, 0.0f, loss, e);
}

static int cuda_forward_backward(void *ctx, const Batch *b, float *loss, Err *e)
{
    CudaModel *c = (CudaModel *)ctx;
    if (batch_check(b, c->max_T, c->max_B, e) != 0)
        return -1;
    const int T = b->T, B = b->B, H = c->cfg.hidden, V = c->cfg.vocab, L = c->cfg.layers;
    const size_t state = (size_t)B * H;
    const int rows = (T - b->loss_from_t) * B;
    cudaStream_t s = c->stream;
    if (upload_buckets(c, b, e) != 0 || forward_to_loss(c, b, 1.0f / (float)rows, loss, e) != 0)
        return -1;
    const int *order = c->buckets, *start = c->buckets + T * B;
    const int E = c->cfg.embed;

    CUDA_TRY(cudaMemsetAsync(c->grads, 0, c->n_params * sizeof(float), s));
    /* dh of the top layer: zero at uncounted timesteps, dlogits W_hy^T at the counted ones. */
    const size_t uncounted = (size_t)b->loss_from_t * state;
    const float *top = c->h[L - 1] + (size_t)(b->loss_from_t + 1) * state;
    CUDA_TRY(cudaMemsetAsync(c->dh, 0, uncounted * sizeof(float), s));
    CUBLAS_TRY(gemm(c->blas, 1, 0, H, V, rows, top, c->logits, c->g.w_hy, 1));
    CUDA_TRY(kernels::add_column_sums(c->g.b_y, c->logits, rows, V, s));
    CUBLAS_TRY(gemm(c->blas, 0, 1, rows, H, V, c->logits, c->p.w_hy, c->dh + uncounted, 0));

    for (int l = L - 1; l >= 0; l--) {
        const int I = layer_inputs(&c->cfg, l);
        const float *h = c->h[l], *u = l == 0 ? c->emb_out : c->h[l - 1] + state;
        float *w_hh_t = c->w_hh_t + (size_t)l * H * H;
        /* Backward through time, one fused kernel per step; nothing flows in past h_T. */
        CUDA_TRY(kernels::transpose(w_hh_t, c->p.w_hh[l], H, s));
        for (int t = T; t >= 1; t--)
            CUDA_TRY(kernels::rnn_step_backward(c->da + (t - 1) * state, t < T ? c->da + t * state : NULL,
                                                c->dh + (t - 1) * state, h + t * state, w_hh_t, B, H, s));
        /* Weight gradients over all timesteps at once. */
        CUBLAS_TRY(gemm(c->blas, 1, 0, H, H, T * B, h, c->da, c->g.w_hh[l], 1));
        CUDA_TRY(kernels::add_column_sums(c->g.b_h[l], c->da, T * B, H, s));
        if (l == 0 && fold_embedding(c, b)) {
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

static int cuda_grad_norm(void *ctx, float *norm, Err *e)
{
    CudaModel *c = (CudaModel *)ctx;
    double squares;
    CUDA_TRY(kernels::sum(c->scalar, c->grads, c->n_params, 1, c->stream));
    CUDA_TRY(cudaMemcpyAsync(&squares, c->scalar, sizeof squares, cudaMemcpyDeviceToHost, c->stream));
    CUDA_TRY(cudaStreamSynchronize(c->stream));
    *norm = (float)sqrt(squares);
    return 0;
}

static int cuda_update(void *ctx, const OptimConfig *o, float lr, long step, float grad_scale, Err *e)
{
    CudaModel *c = (CudaModel *)ctx;
    const float c1 = 1.0f - powf(o->beta1, (float)step), c2 = 1.0f - powf(o->beta2, (float)step);
    for (int k = 0; k < c->n_tensors; k++) {
        const ParamTensor *t = &c->tensors[k];
        const size_t off = t->offset, n = t->rows * t->cols;
        if (o->kind == OPT_SGD) {
            CUDA_TRY(kernels::sgd_update(c->params + off, c->grads + off, c->m + off, n, lr, o->momentum, grad_scale,
                                         c->stream));
        } else {
            float wd = o->kind == OPT_ADAMW && t->is_matrix ? o->weight_decay : 0.0f;
            CUDA_TRY(kernels::adam_update(c->params + off, c->grads + off, c->m + off, c->v + off, n, lr, o->beta1,
                                          o->beta2, o->eps, wd, grad_scale, c1, c2, c->stream));
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

static int cuda_sample_step(void *ctx, int token, float *logits, Err *e)
{
    CudaModel *c = (CudaModel *)ctx;
    const int H = c->cfg.hidden, V = c->cfg.vocab;
    cudaStream_t s = c->stream;
    if (token < 0 || token >= V)
        return err_set(e, "token %d is outside the vocabulary of %d", token, V);
    const float *u = c->p.embedding + (size_t)token * c->cfg.embed; /* the embedding row itself */
    for (int l = 0; l < c->cfg.layers; l++) {
        float *h = c->sample_h + (size_t)l * H;
        CUBLAS_TRY(gemm(c->blas, 0, 0, 1, H, layer_inputs(&c->cfg, l), u, c->p.w_xh[l], c->sample_next, 0));
        CUDA_TRY(kernels::rnn_step_forward(c->sample_next, h, c->p.w_hh[l], c->p.b_h[l], 1, H, s));
        CUDA_TRY(cudaMemcpyAsync(h, c->sample_next, H * sizeof(float), cudaMemcpyDeviceToDevice, s));
        u = h;
    }
    CUDA_TRY(kernels::broadcast_rows(c->sample_logits, c->p.b_y, 1, V, s));
    CUBLAS_TRY(gemm(c->blas, 0, 0, 1, V, H, u, c->p.w_hy, c->sample_logits, 1));
    CUDA_TRY(cudaMemcpyAsync(logits, c->sample_logits, V * sizeof(float), cudaMemcpyDeviceToHost, s));
    CUDA_TRY(cudaStreamSynchronize(s));
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
    cuda_grad_norm,   cuda_update,      cuda_sample_reset, cuda_sample_step,
};
