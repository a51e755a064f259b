/* The model's math on the CPU, one forward/backward pair per layer kind. See DESIGN.md for the
 * equations; every buffer is row-major and time-major ([T, B, ...]). */
#include <math.h>
#include <string.h>

#include "../common/dropout.h"
#include "cpu.h"
#include "fastmath.h"
#include "kernels.h"
#include "matmul.h"
#include "recurrence.h"
#ifdef _OPENMP
#include <omp.h>
#endif

/* Row-wise and elementwise work is cut into chunks, each done by one thread, so that every element is
 * computed the same way, and sums added in the same order, for any thread count. */
#define PARALLEL_ELEMENTS 32768 /* elements below which one thread does it all */
#define LINE_FLOATS 16          /* threads splitting columns split them at cache lines */

/* Columns j0..j1-1 of `cols`: this thread's share, cut at cache lines. */
static void my_columns(int cols, int *j0, int *j1)
{
#ifdef _OPENMP
    const int id = omp_get_thread_num(), n = omp_get_num_threads(), lines = (cols + LINE_FLOATS - 1) / LINE_FLOATS;
    *j0 = lines * id / n * LINE_FLOATS;
    *j1 = lines * (id + 1) / n * LINE_FLOATS;
    *j0 = *j0 < cols ? *j0 : cols;
    *j1 = *j1 < cols ? *j1 : cols;
#else
    *j0 = 0, *j1 = cols;
#endif
}

/* Row i of out = row `from[i]` of m (cols floats each); the rows split over threads when there are
 * many (tested outside the pragma: an idle parallel region still costs a call, at every character
 * generated). */
static void copy_rows(float *out, const float *m, const token_t *from, int rows, int cols)
{
    if ((size_t)rows * cols < PARALLEL_ELEMENTS) {
        for (int i = 0; i < rows; i++)
            memcpy(out + (size_t)i * cols, m + (size_t)(from ? from[i] : 0) * cols, sizeof(float) * (size_t)cols);
        return;
    }
#pragma omp parallel for schedule(static)
    for (int i = 0; i < rows; i++)
        memcpy(out + (size_t)i * cols, m + (size_t)(from ? from[i] : 0) * cols, sizeof(float) * (size_t)cols);
}

void embedding_forward(float *out, const token_t *x, const float *embedding, int rows, int E)
{
    copy_rows(out, embedding, x, rows, E);
}

void embedding_backward(float *dembedding, const token_t *x, const float *dout, int rows, int E)
{
    /* Threads split the columns, so that each sum still adds its rows in row order. */
#pragma omp parallel if ((size_t)rows * E >= PARALLEL_ELEMENTS)
    {
        int j0, j1;
        my_columns(E, &j0, &j1);
        for (int i = 0; i < rows; i++) {
            float *d = dembedding + (size_t)x[i] * E;
            const float *g = dout + (size_t)i * E;
            for (int j = j0; j < j1; j++)
                d[j] += g[j];
        }
    }
}

void broadcast_rows(float *out, const float *row, int rows, int cols)
{
    copy_rows(out, row, NULL, rows, cols);
}

void add_column_sums(float *sums, const float *m, int rows, int cols, int ld)
{
#pragma omp parallel if ((size_t)rows * cols >= PARALLEL_ELEMENTS)
    {
        int j0, j1;
        my_columns(cols, &j0, &j1);
        for (int i = 0; i < rows; i++)
            for (int j = j0; j < j1; j++)
                sums[j] += m[(size_t)i * ld + j];
    }
}

void dropout_draw(uint8_t *keep, const Batch *b, int l, int H)
{
    /* One row [H] of one timestep at a time, the generator's lanes across its groups of four units. */
    const uint32_t threshold = dropout_threshold(b->dropout);
    const Kernels *k = kernels();
    const int rows = b->T * b->B;
#pragma omp parallel for schedule(static) if ((size_t)rows * H >= PARALLEL_ELEMENTS)
    for (int i = 0; i < rows; i++) {
        uint32_t ctr[4], key[2];
        dropout_counter(ctr, key, b->dropout_seed, b->dropout_step, l, i / b->B, b->dropout_row0 + i % b->B, 0);
        k->dropout_keep(keep + (size_t)i * H, H, ctr, key, threshold);
    }
}

void dropout_apply(float *out, const float *in, const uint8_t *keep, float p, size_t n)
{
    /* keep ? in * scale : +0, as a bit mask rather than a branch: the mask is random, so a branch would be
     * mispredicted a third of the time, and the loop vectorises. */
    const float scale = dropout_scale(p);
#pragma omp parallel for simd schedule(static) if (parallel : n >= PARALLEL_ELEMENTS)
    for (size_t i = 0; i < n; i++) {
        const float v = in[i] * scale;
        uint32_t bits;
        memcpy(&bits, &v, sizeof bits);
        bits &= 0u - (uint32_t)keep[i];
        memcpy(&out[i], &bits, sizeof bits);
    }
}

void input_projection_forward(float *p, const float *u, const float *w_xh, const float *b_h, int rows, int I, int N)
{
    broadcast_rows(p, b_h, rows, N);
    matmul_nn(p, u, w_xh, rows, N, I, 1);
}

void input_projection_backward(float *du, float *dw_xh, const float *da, const float *u, const float *w_xh, int rows,
                               int I, int N)
{
    matmul_tn(dw_xh, u, da, I, N, rows, 1);
    if (du)
        matmul_nt(du, da, w_xh, rows, I, N, 0);
}

void rnn_forward(float *h, const float *u, const float *w_xh, const float *w_hh, const float *b_h, float *packed, int T,
                 int B, int I, int H)
{
    /* The input projections of all timesteps in one product, written straight into h_1..h_T. */
    float *p = h + (size_t)B * H;
    broadcast_rows(p, b_h, T * B, H);
    matmul_nn(p, u, w_xh, T * B, H, I, 1);
    rnn_recurrence_forward(h, w_hh, packed, T, B, H);
}

void rnn_recurrence_forward(float *h, const float *w_hh, float *packed, int T, int B, int H)
{
    /* The only sequential part: h_t = tanh(p_t + h_{t-1} W_hh), with p_t already in h_t, as
     * rnn_recurrence_forward_steps computes it one timestep at a time. The batch rows never mix, so
     * recurrence.c gives each thread its rows for all T steps, with W_hh packed once for its
     * micro-kernel and tanh applied in registers. */
    recurrence_pack(packed, w_hh, H, H, 0);
    recurrence_tanh_forward(h, packed, T, B, H);
}

void rnn_recurrence_forward_steps(float *h, const float *w_hh, int T, int B, int H)
{
    const size_t step = (size_t)B * H;
    for (int t = 1; t <= T; t++) {
        float *ht = h + (size_t)t * step;
        matmul_nn(ht, ht - step, w_hh, B, H, H, 1);
        for (size_t i = 0; i < step; i++)
            ht[i] = fast_tanhf(ht[i]);
    }
}

void embedding_projection_forward(float *p, float *ew, const token_t *x, const float *embedding, const float *w_xh,
                                  const float *b_h, int rows, int V, int E, int H)
{
    /* Emb[x] W_xh = (Emb W_xh)[x]: one small product for the vocabulary, then a gather per row. */
    broadcast_rows(ew, b_h, V, H);
    matmul_nn(ew, embedding, w_xh, V, H, E, 1);
    embedding_forward(p, x, ew, rows, H); /* the rows of Emb W_xh, as the embedding's rows are gathered */
}

void rnn_backward(float *du, float *dw_xh, float *dw_hh, float *db_h, float *da, float *packed, const float *dh,
                  const float *h, const float *u, const float *w_xh, const float *w_hh, int T, int B, int I, int H)
{
    rnn_recurrence_backward(da, dw_hh, db_h, packed, dh, h, w_hh, T, B, H);
    /* dW_xh = u^T da over all timesteps; the gradient for the layer below, du = da W_xh^T. */
    matmul_tn(dw_xh, u, da, I, H, T * B, 1);
    if (du)
        matmul_nt(du, da, w_xh, T * B, I, H, 0);
}

void rnn_recurrence_backward(float *da, float *dw_hh, float *db_h, float *packed, const float *dh, const float *h,
                             const float *w_hh, int T, int B, int H)
{
    /* Backward through time: the gradient reaching h_t is what comes from above plus what the next
     * step sends back through W_hh; tanh' = 1 - h^2. Nothing flows in past h_T (truncated BPTT). As in
     * the forward pass, each thread takes its batch rows through all T steps
     * (rnn_recurrence_backward_steps is the same one timestep at a time). */
    recurrence_pack(packed, w_hh, H, H, 1);
    recurrence_tanh_backward(da, dh, h, packed, T, B, H);
    /* dW_hh = [h_0..h_{T-1}]^T da over all timesteps at once; db = column sums of da. */
    matmul_tn(dw_hh, h, da, H, H, T * B, 1);
    add_column_sums(db_h, da, T * B, H, H);
}

void rnn_recurrence_backward_steps(float *da, float *carry, const float *dh, const float *h, const float *w_hh, int T,
                                   int B, int H)
{
    const size_t step = (size_t)B * H;
    memset(carry, 0, sizeof(float) * step);
    for (int t = T; t >= 1; t--) {
        const float *ht = h + (size_t)t * step;
        const float *dht = dh + (size_t)(t - 1) * step;
        float *dat = da + (size_t)(t - 1) * step;
        for (size_t i = 0; i < step; i++)
            dat[i] = (dht[i] + carry[i]) * (1.0f - ht[i] * ht[i]);
        if (t > 1)
            matmul_nt(carry, dat, w_hh, B, H, H, 0);
    }
}

void embedding_projection_backward(float *dembedding, float *dw_xh, float *g, const token_t *x, const float *da,
                                   const float *embedding, const float *w_xh, int rows, int V, int E, int H)
{
    /* The rows of da summed per token (in row order), g [V, H]; then dW_xh = Emb^T g and
     * dEmb = g W_xh^T, each a product the size of the vocabulary rather than of the batch. */
    memset(g, 0, sizeof(float) * (size_t)V * H);
    embedding_backward(g, x, da, rows, H); /* the sums per token, as for the embedding's own gradient */
    matmul_tn(dw_xh, embedding, g, E, H, V, 1);
    matmul_nt(dembedding, g, w_xh, V, E, H, 1);
}

void output_forward(float *logits, const float *h, const float *w_hy, const float *b_y, int rows, int H, int V)
{
    broadcast_rows(logits, b_y, rows, V);
    matmul_nn(logits, h, w_hy, rows, V, H, 1);
}

void output_backward(float *dh, float *dw_hy, float *db_y, const float *dlogits, const float *h, const float *w_hy,
                     int rows, int H, int V)
{
    matmul_tn(dw_hy, h, dlogits, H, V, rows, 1);
    add_column_sums(db_y, dlogits, rows, V, V);
    matmul_nt(dh, dlogits, w_hy, rows, H, V, 0);
}

/* Sums over chunks are added per chunk, then over the chunks in order. */
#define MAX_CHUNKS 256 /* partial sums kept on the stack */

static size_t chunk_size(size_t n, size_t least)
{
    size_t size = (n + MAX_CHUNKS - 1) / MAX_CHUNKS;
    return size > least ? size : least;
}

double softmax_xent(float *logits, const token_t *y, int rows, int V, float scale)
{
    /* Per row, over the logits z: loss = log(sum_j exp(z_j)) - z_y, and with scale the gradient
     * (exp(z_j) / sum - [j = y]) * scale, with one exp per logit (kernels_body.h). */
    const Kernels *kn = kernels();
    const int per = (int)chunk_size((size_t)rows, 16), chunks = (rows + per - 1) / per;
    double partial[MAX_CHUNKS];
#pragma omp parallel for schedule(static) if ((size_t)rows * V >= PARALLEL_ELEMENTS)
    for (int c = 0; c < chunks; c++) {
        const int first = c * per, n = rows - first < per ? rows - first : per;
        partial[c] = kn->softmax_xent(logits + (size_t)first * V, y + first, n, V, scale);
    }
    double loss = 0.0;
    for (int c = 0; c < chunks; c++)
        loss += partial[c];
    return loss;
}

void zero_floats(float *x, size_t n)
{
    const size_t per = chunk_size(n, 4096), chunks = (n + per - 1) / per;
#pragma omp parallel for schedule(static) if (n >= PARALLEL_ELEMENTS)
    for (size_t c = 0; c < chunks; c++)
        memset(x + c * per, 0, sizeof(float) * (n - c * per < per ? n - c * per : per));
}

double sum_of_squares(const float *x, size_t n)
{
    const Kernels *kn = kernels();
    const size_t per = chunk_size(n, 4096), chunks = (n + per - 1) / per;
    double partial[MAX_CHUNKS];
#pragma omp parallel for schedule(static) if (n >= PARALLEL_ELEMENTS)
    for (size_t c = 0; c < chunks; c++)
        partial[c] = kn->sum_squares(x + c * per, n - c * per < per ? n - c * per : per);
    double sum = 0.0;
    for (size_t c = 0; c < chunks; c++)
        sum += partial[c];
    return sum;
}

void adam_update(float *p, const float *g, float *m, float *v, size_t n, float lr, float beta1, float beta2, float eps,
                 float weight_decay, float grad_scale, long step)
{
    /* m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;  p -= lr (m_hat / (sqrt(v_hat) + eps) + wd p), with the
     * hats the bias-corrected moments m / (1 - b1^step), v / (1 - b2^step) (zero-initialised moments). */
    AdamStep s = {lr, beta1, beta2, eps, weight_decay, grad_scale, 0.0f, 0.0f};
    s.c1 = 1.0f - powf(beta1, (float)step);
    s.c2 = 1.0f - powf(beta2, (float)step);
    const Kernels *kn = kernels();
    const size_t per = chunk_size(n, 4096), chunks = (n + per - 1) / per;
#pragma omp parallel for schedule(static) if (n >= PARALLEL_ELEMENTS)
    for (size_t c = 0; c < chunks; c++) {
        const size_t at = c * per;
        kn->adam(p + at, g + at, m + at, v + at, n - at < per ? n - at : per, &s);
    }
}

void sgd_update(float *p, const float *g, float *v, size_t n, float lr, float momentum, float grad_scale)
{
    /* v = momentum v + g;  p -= lr v */
    const Kernels *kn = kernels();
    const size_t per = chunk_size(n, 4096), chunks = (n + per - 1) / per;
#pragma omp parallel for schedule(static) if (n >= PARALLEL_ELEMENTS)
    for (size_t c = 0; c < chunks; c++) {
        const size_t at = c * per;
        kn->sgd(p + at, g + at, v + at, n - at < per ? n - at : per, lr, momentum, grad_scale);
    }
}
