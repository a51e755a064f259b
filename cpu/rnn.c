/* The model's math on the CPU, one forward/backward pair per layer kind. See DESIGN.md for the
 * equations; every buffer is row-major and time-major ([T, B, ...]). */
#include <math.h>
#include <string.h>

#include "cpu.h"
#include "fastmath.h"
#include "matmul.h"

void embedding_forward(float *out, const token_t *x, const float *embedding, int rows, int E)
{
    for (int i = 0; i < rows; i++)
        memcpy(out + (size_t)i * E, embedding + (size_t)x[i] * E, sizeof(float) * (size_t)E);
}

void embedding_backward(float *dembedding, const token_t *x, const float *dout, int rows, int E)
{
    for (int i = 0; i < rows; i++) {
        float *d = dembedding + (size_t)x[i] * E;
        const float *g = dout + (size_t)i * E;
        for (int j = 0; j < E; j++)
            d[j] += g[j];
    }
}

static void broadcast_rows(float *out, const float *row, int rows, int cols)
{
    for (int i = 0; i < rows; i++)
        memcpy(out + (size_t)i * cols, row, sizeof(float) * (size_t)cols);
}

static void add_column_sums(float *sums, const float *m, int rows, int cols)
{
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++)
            sums[j] += m[(size_t)i * cols + j];
}

void rnn_forward(float *h, const float *u, const float *w_xh, const float *w_hh, const float *b_h, int T, int B, int I,
                 int H)
{
    /* The input projections of all timesteps in one product, written straight into h_1..h_T. */
    float *p = h + (size_t)B * H;
    broadcast_rows(p, b_h, T * B, H);
    matmul_nn(p, u, w_xh, T * B, H, I, 1);
    rnn_recurrence_forward(h, w_hh, T, B, H);
}

void rnn_recurrence_forward(float *h, const float *w_hh, int T, int B, int H)
{
    const size_t step = (size_t)B * H;
    /* The only sequential part: h_t = tanh(p_t + h_{t-1} W_hh), with p_t already in h_t. */
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

void rnn_backward(float *du, float *dw_xh, float *dw_hh, float *db_h, float *da, float *carry, const float *dh,
                  const float *h, const float *u, const float *w_xh, const float *w_hh, int T, int B, int I, int H)
{
    rnn_recurrence_backward(da, dw_hh, db_h, carry, dh, h, w_hh, T, B, H);
    /* dW_xh = u^T da over all timesteps; the gradient for the layer below, du = da W_xh^T. */
    matmul_tn(dw_xh, u, da, I, H, T * B, 1);
    if (du)
        matmul_nt(du, da, w_xh, T * B, I, H, 0);
}

void rnn_recurrence_backward(float *da, float *dw_hh, float *db_h, float *carry, const float *dh, const float *h,
                             const float *w_hh, int T, int B, int H)
{
    const size_t step = (size_t)B * H;
    /* Backward through time: the gradient reaching h_t is what comes from above plus what the next
     * step sends back through W_hh; tanh' = 1 - h^2. Nothing flows in past h_T (truncated BPTT). */
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
    /* dW_hh = [h_0..h_{T-1}]^T da over all timesteps at once; db = column sums of da. */
    matmul_tn(dw_hh, h, da, H, H, T * B, 1);
    add_column_sums(db_h, da, T * B, H);
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
    add_column_sums(db_y, dlogits, rows, V);
    matmul_nt(dh, dlogits, w_hy, rows, H, V, 0);
}

/* log(sum(exp(z - max))): the maximum is subtracted first so that nothing overflows, and kept apart from
 * the result so that it never absorbs it (logits of 3e38 plus ln V is 3e38 in float32). */
static float log_sum_exp_shifted(const float *z, int V, float *max_out)
{
    float max = z[0];
    for (int j = 1; j < V; j++)
        max = z[j] > max ? z[j] : max;
    float sum = 0.0f;
    for (int j = 0; j < V; j++)
        sum += expf(z[j] - max);
    *max_out = max;
    return logf(sum);
}

double softmax_xent(float *logits, const token_t *y, int rows, int V, float scale)
{
    double loss = 0.0;
    for (int i = 0; i < rows; i++) {
        float *z = logits + (size_t)i * V, max;
        const float log_sum = log_sum_exp_shifted(z, V, &max);
        loss += ((double)max - (double)z[y[i]]) + (double)log_sum;
        if (scale == 0.0f)
            continue;
        for (int j = 0; j < V; j++)
            z[j] = expf((z[j] - max) - log_sum) * scale;
        z[y[i]] -= scale;
    }
    return loss;
}

void adam_update(float *p, const float *g, float *m, float *v, size_t n, float lr, float beta1, float beta2, float eps,
                 float weight_decay, float grad_scale, long step)
{
    const float c1 = 1.0f - powf(beta1, (float)step); /* bias corrections for zero-initialised moments */
    const float c2 = 1.0f - powf(beta2, (float)step);
    for (size_t i = 0; i < n; i++) {
        float gi = g[i] * grad_scale;
        m[i] = beta1 * m[i] + (1.0f - beta1) * gi;
        v[i] = beta2 * v[i] + (1.0f - beta2) * gi * gi;
        float mhat = m[i] / c1, vhat = v[i] / c2;
        p[i] -= lr * (mhat / (sqrtf(vhat) + eps) + weight_decay * p[i]);
    }
}

void sgd_update(float *p, const float *g, float *v, size_t n, float lr, float momentum, float grad_scale)
{
    for (size_t i = 0; i < n; i++) {
        v[i] = momentum * v[i] + g[i] * grad_scale;
        p[i] -= lr * v[i];
    }
}
