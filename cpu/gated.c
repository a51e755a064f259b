/* The gated cells on the CPU: the LSTM and the GRU, with PyTorch's equations and gate order. With
 * a = u W_xh + b_h (the input side, act on entry) and g = h_{t-1} W_hh (the recurrent product of a step):
 *     LSTM  [i f g o] = a + g;  i, f, o = sigmoid, g = tanh;  c_t = f c_{t-1} + i g;  h_t = o tanh(c_t)
 *     GRU   r = sigmoid(a_r + g_r);  z = sigmoid(a_z + g_z);  n = tanh(a_n + r (g_n + b_hn));
 *           h_t = (1 - z) n + z h_{t-1}
 * The recurrence (recurrence.h) hands each thread its batch rows for every step: the product of a step
 * for those rows, then the cell's function below on them, so that the element-wise work is done while
 * the rows are in cache. Every buffer is time-major, [T, B, ...]; timestep t = 1..T is at index t - 1
 * of a [T, ...] buffer and at t of a [T+1, ...] one. */
#include <stddef.h>

#include "cpu.h"
#include "fastmath.h"
#include "matmul.h"
#include "recurrence.h"

/* sigmoid(x) = (1 + tanh(x / 2)) / 2: the same vectorisable tanh as the tanh cell's. */
static inline float sigmoidf(float x)
{
    return 0.5f + 0.5f * fast_tanhf(0.5f * x);
}

/* ---- one row of one step ---- */

/* act [4H]: in, a (the input side); out, the gates i, f, g, o. gh [4H] = h_{t-1} W_hh. */
static void lstm_cell_forward(float *act, const float *gh, const float *c_prev, float *c, float *h, int H)
{
    float *ai = act, *af = act + H, *ag = act + 2 * H, *ao = act + 3 * H;
    const float *ri = gh, *rf = gh + H, *rg = gh + 2 * H, *ro = gh + 3 * H;
    for (int j = 0; j < H; j++) {
        const float i = sigmoidf(ai[j] + ri[j]), f = sigmoidf(af[j] + rf[j]);
        const float g = fast_tanhf(ag[j] + rg[j]), o = sigmoidf(ao[j] + ro[j]);
        c[j] = f * c_prev[j] + i * g;
        h[j] = o * fast_tanhf(c[j]);
        ai[j] = i, af[j] = f, ag[j] = g, ao[j] = o;
    }
}

/* act [3H]: in, a; out, the gates r, z, n. gh [3H] = h_{t-1} W_hh; hn [H] gets g_n + b_hn. */
static void gru_cell_forward(float *act, const float *gh, const float *b_hn, const float *h_prev, float *hn, float *h,
                             int H)
{
    float *ar = act, *az = act + H, *an = act + 2 * H;
    const float *rr = gh, *rz = gh + H, *rn = gh + 2 * H;
    for (int j = 0; j < H; j++) {
        const float r = sigmoidf(ar[j] + rr[j]), z = sigmoidf(az[j] + rz[j]);
        hn[j] = rn[j] + b_hn[j];
        const float n = fast_tanhf(an[j] + r * hn[j]);
        h[j] = (1.0f - z) * n + z * h_prev[j];
        ar[j] = r, az[j] = z, an[j] = n;
    }
}

/* dh [H]: the gradient at h_t from above; dh_next [H]: from step t + 1 through W_hh. dc [H]: in, the
 * gradient at c_t from step t + 1 (not read when first, at t = T: nothing flows in); out, c_{t-1}'s.
 * da [4H]: the gradient at the gates' pre-activations, i, f, g, o. */
static void lstm_cell_backward(float *da, float *dc, int first, const float *dh, const float *dh_next,
                               const float *act, const float *c_prev, const float *c, int H)
{
    const float *ai = act, *af = act + H, *ag = act + 2 * H, *ao = act + 3 * H;
    for (int j = 0; j < H; j++) {
        const float i = ai[j], f = af[j], g = ag[j], o = ao[j], tc = fast_tanhf(c[j]);
        const float dht = dh[j] + dh_next[j];
        const float dct = dht * o * (1.0f - tc * tc) + (first ? 0.0f : dc[j]);
        da[j] = dct * g * i * (1.0f - i);
        da[H + j] = dct * c_prev[j] * f * (1.0f - f);
        da[2 * H + j] = dct * i * (1.0f - g * g);
        da[3 * H + j] = dht * tc * o * (1.0f - o);
        dc[j] = dct * f;
    }
}

/* dh, dh_next as for the LSTM; direct [H]: in, z_{t+1} dh_{t+1} (not read when first); out, z_t dh_t, what
 * h_{t-1} gets straight from h_t. da [3H]: the gradient at a (r, z, n); drec [3H]: at the recurrent
 * product g (the n block scaled by r). */
static void gru_cell_backward(float *da, float *drec, float *direct, int first, const float *dh, const float *dh_next,
                              const float *act, const float *hn, const float *h_prev, int H)
{
    const float *ar = act, *az = act + H, *an = act + 2 * H;
    for (int j = 0; j < H; j++) {
        const float r = ar[j], z = az[j], n = an[j];
        const float dht = dh[j] + dh_next[j] + (first ? 0.0f : direct[j]);
        const float dan = dht * (1.0f - z) * (1.0f - n * n);
        const float dar = dan * hn[j] * r * (1.0f - r), daz = dht * (h_prev[j] - n) * z * (1.0f - z);
        da[j] = drec[j] = dar;
        da[H + j] = drec[H + j] = daz;
        da[2 * H + j] = dan;
        drec[2 * H + j] = dan * r;
        direct[j] = dht * z;
    }
}

void lstm_cell_step(float *h, float *c, const float *px, const float *ph, float *act, int H)
{
    for (int j = 0; j < 4 * H; j++)
        act[j] = px[j];
    lstm_cell_forward(act, ph, c, c, h, H); /* c_prev and c alias: each element is read before it is written */
}

void gru_cell_step(float *h, const float *px, const float *ph, const float *b_hn, float *act, float *hn, int H)
{
    for (int j = 0; j < 3 * H; j++)
        act[j] = px[j];
    gru_cell_forward(act, ph, b_hn, h, hn, h, H); /* h_prev and h alias likewise */
}

/* ---- the recurrence over T steps: what each cell function gets for a thread's rows ---- */

/* A layer's buffers as the functions below see them; c is the LSTM's, hn and b_hn the GRU's. */
typedef struct {
    int T, B, H, G;
    float *h, *c, *act, *hn; /* written going forward, read going backward */
    const float *b_hn;
    const float *dh;   /* backward: the gradient arriving from above, [T, B, H] */
    float *da, *carry; /* backward: the GRU's gradient at the input side; [B, H] carried between steps */
} Cell;

/* Forward step s = t: g holds rows row0.. of h_{t-1} W_hh; h_t is the step's state. */
static void lstm_forward_rows(void *ctx, int t, int row0, int rows, const float *g, float *h_t)
{
    const Cell *x = ctx;
    const int H = x->H, GH = 4 * H;
    for (int i = 0; i < rows; i++) {
        const size_t b = (size_t)(row0 + i), at = (size_t)(t - 1) * x->B + b;
        lstm_cell_forward(x->act + at * GH, g + (size_t)i * GH, x->c + at * H, x->c + (at + x->B) * H,
                          h_t + b * H, H);
    }
}

static void gru_forward_rows(void *ctx, int t, int row0, int rows, const float *g, float *h_t)
{
    const Cell *x = ctx;
    const int H = x->H, GH = 3 * H;
    for (int i = 0; i < rows; i++) {
        const size_t b = (size_t)(row0 + i), at = (size_t)(t - 1) * x->B + b;
        gru_cell_forward(x->act + at * GH, g + (size_t)i * GH, x->b_hn, x->h + at * H, x->hn + at * H, h_t + b * H,
                         H);
    }
}

/* Backward step s is timestep t = T - s; g holds rows row0.. of dpre_{t+1} W_hh^T (zero at s = 0), where
 * dpre is the gradient at the recurrent product, which this step writes for t into dpre_t. */
static void lstm_backward_rows(void *ctx, int s, int row0, int rows, const float *g, float *dpre_t)
{
    const Cell *x = ctx;
    const int H = x->H, GH = 4 * H, t = x->T - s;
    for (int i = 0; i < rows; i++) {
        const size_t b = (size_t)(row0 + i), at = (size_t)(t - 1) * x->B + b;
        lstm_cell_backward(dpre_t + b * GH, x->carry + b * H, s == 0, x->dh + at * H, g + (size_t)i * H,
                           x->act + at * GH, x->c + at * H, x->c + (at + x->B) * H, H);
    }
}

static void gru_backward_rows(void *ctx, int s, int row0, int rows, const float *g, float *dpre_t)
{
    const Cell *x = ctx;
    const int H = x->H, GH = 3 * H, t = x->T - s;
    for (int i = 0; i < rows; i++) {
        const size_t b = (size_t)(row0 + i), at = (size_t)(t - 1) * x->B + b;
        gru_cell_backward(x->da + at * GH, dpre_t + b * GH, x->carry + b * H, s == 0, x->dh + at * H,
                          g + (size_t)i * H, x->act + at * GH, x->hn + at * H, x->h + at * H, H);
    }
}

/* h_t for t = 1..T through the product h_{t-1} W_hh [B, G H] and the cell's rows function. */
static void gated_forward(Cell *x, const float *w_hh, float *packed, float *step_g,
                          void (*rows_fn)(void *, int, int, int, const float *, float *))
{
    const int H = x->H, GH = x->G * H;
    recurrence_pack(packed, w_hh, H, GH, 0);
    recurrence_run(&(Recurrence){.B = x->B,
                                 .K = H,
                                 .N = GH,
                                 .first = 1,
                                 .last = x->T,
                                 .w = packed,
                                 .a = x->h,
                                 .a_step = (ptrdiff_t)x->B * H,
                                 .cell = rows_fn,
                                 .ctx = x,
                                 .g = step_g});
}

/* dpre_t for t = T..1 through the product dpre_{t+1} W_hh^T [B, H]; then dW_hh = [h_0..h_{T-1}]^T dpre in
 * one product over all timesteps. */
static void gated_backward(Cell *x, float *dpre, float *dw_hh, const float *w_hh, float *packed, float *step_g,
                           void (*rows_fn)(void *, int, int, int, const float *, float *))
{
    const int T = x->T, B = x->B, H = x->H, GH = x->G * H;
    const ptrdiff_t step = (ptrdiff_t)B * GH;
    recurrence_pack(packed, w_hh, GH, H, 1);
    recurrence_run(&(Recurrence){.B = B,
                                 .K = GH,
                                 .N = H,
                                 .first = 0,
                                 .last = T - 1,
                                 .w = packed,
                                 .a = dpre + (T - 1) * step,
                                 .a_step = -step,
                                 .cell = rows_fn,
                                 .ctx = x,
                                 .g = step_g});
    matmul_tn(dw_hh, x->h, dpre, H, GH, T * B, 1);
}

void lstm_recurrence_forward(float *h, float *c, float *act, const float *w_hh, float *packed, float *step_g, int T,
                             int B, int H)
{
    Cell x = {.T = T, .B = B, .H = H, .G = 4, .h = h, .c = c, .act = act};
    gated_forward(&x, w_hh, packed, step_g, lstm_forward_rows);
}

void gru_recurrence_forward(float *h, float *act, float *hn, const float *w_hh, const float *b_hn, float *packed,
                            float *step_g, int T, int B, int H)
{
    Cell x = {.T = T, .B = B, .H = H, .G = 3, .h = h, .act = act, .hn = hn, .b_hn = b_hn};
    gated_forward(&x, w_hh, packed, step_g, gru_forward_rows);
}

void lstm_recurrence_backward(float *da, float *dw_hh, float *db_h, float *packed, float *step_g, float *carry,
                              const float *dh, const float *h, const float *c, const float *act, const float *w_hh,
                              int T, int B, int H)
{
    /* The LSTM's gates are a + g: the gradients at a and at g are the same, da. */
    /* read only: the buffers are the forward pass's */
    Cell x = {.T = T, .B = B, .H = H, .G = 4, .h = (float *)h, .c = (float *)c, .act = (float *)act, .dh = dh,
              .carry = carry};
    gated_backward(&x, da, dw_hh, w_hh, packed, step_g, lstm_backward_rows);
    add_column_sums(db_h, da, T * B, 4 * H, 4 * H);
}

void gru_recurrence_backward(float *da, float *drec, float *dw_hh, float *db_h, float *db_hn, float *packed,
                             float *step_g, float *carry, const float *dh, const float *h, const float *act,
                             const float *hn, const float *w_hh, int T, int B, int H)
{
    Cell x = {.T = T, .B = B, .H = H, .G = 3, .h = (float *)h, .act = (float *)act, .hn = (float *)hn, .dh = dh,
              .da = da, .carry = carry};
    gated_backward(&x, drec, dw_hh, w_hh, packed, step_g, gru_backward_rows);
    add_column_sums(db_h, da, T * B, 3 * H, 3 * H);
    add_column_sums(db_hn, drec + 2 * H, T * B, H, 3 * H); /* b_hn sits beside g_n: its gradient is drec's n block */
}
