/* The fused recurrence of recurrence.h: the threads split the batch rows once and run every step on
 * them. Each row's numbers come out the same whichever thread computes it, so the result does not
 * depend on the thread count. */
#include "recurrence.h"

#ifdef _OPENMP
#include <omp.h>
#endif

/* Multiply-adds below which starting threads costs more than it gains, as for the products. */
#define PARALLEL_WORK (1L << 16)

size_t recurrence_packed_floats(int K, int N)
{
    return (size_t)K * (size_t)((N + KERNELS_MAX_NR - 1) / KERNELS_MAX_NR * KERNELS_MAX_NR);
}

void recurrence_pack(float *packed, const float *w, int K, int N, int transposed)
{
    kernels_pack(packed, w, K, N, kernels()->nr, transposed);
}

/* Every step for rows row0..row1-1, cut into tiles of sizes as even as possible. Within a step the
 * panels of W run outermost, so that one panel (K x nr floats) stays in the first-level cache while the
 * row tiles pass over it. */
static void run_rows(const Recurrence *r, const Kernels *kn, int row0, int row1)
{
    const int K = r->K, N = r->N, tiles = (row1 - row0 + kn->mr - 1) / kn->mr;
    for (int s = r->first; s <= r->last; s++) {
        float *a_s = r->a + s * r->a_step;
        float *out = r->cell ? r->g : a_s;
        Tile t = {
            .a_row = (size_t)K,
            .a_col = 1,
            .k = s > 0 ? K : 0,
            .ld_in = (size_t)N,
            .ldy = (size_t)N,
            .ldb = (size_t)kn->nr,
            .ldc = (size_t)N,
            .epilogue = r->cell ? TILE_ADD : r->epilogue,
        };
        const float *a_prev = s > 0 ? r->a + (s - 1) * r->a_step : NULL;
        const float *in = r->in ? r->in + s * r->in_step : NULL;
        const float *y = r->y ? r->y + s * r->y_step : NULL;
        for (int j0 = 0; j0 < N; j0 += kn->nr) {
            t.b = r->w + (size_t)j0 * K;
            t.n = N - j0 < kn->nr ? N - j0 : kn->nr;
            for (int tile = 0; tile < tiles; tile++) {
                const int i0 = row0 + (row1 - row0) * tile / tiles;
                const size_t at = (size_t)i0 * N + j0;
                t.m = row0 + (row1 - row0) * (tile + 1) / tiles - i0;
                t.a = a_prev ? a_prev + (size_t)i0 * K : NULL;
                t.in = in ? in + at : NULL;
                t.y = y ? y + at : NULL;
                t.c = out + at;
                kn->tile(&t);
            }
        }
        if (r->cell)
            r->cell(r->ctx, s, row0, row1 - row0, r->g + (size_t)row0 * N, a_s);
    }
}

void recurrence_run(const Recurrence *r)
{
    const Kernels *kn = kernels();
    int threads = 1;
#ifdef _OPENMP
    const long work = (long)(r->last - r->first + 1) * r->B * r->K * r->N;
    if (work >= PARALLEL_WORK) {
        threads = r->B / kn->mr; /* at least one full tile each */
        threads = threads < omp_get_max_threads() ? threads : omp_get_max_threads();
    }
    if (threads > 1) {
#pragma omp parallel num_threads(threads)
        {
            const int id = omp_get_thread_num(), n = omp_get_num_threads();
            run_rows(r, kn, r->B * id / n, r->B * (id + 1) / n);
        }
        return;
    }
#endif
    run_rows(r, kn, 0, r->B);
}

void recurrence_tanh_forward(float *h, const float *packed, int T, int B, int H)
{
    const ptrdiff_t step = (ptrdiff_t)B * H;
    recurrence_run(&(Recurrence){.B = B,
                                 .K = H,
                                 .N = H,
                                 .first = 1,
                                 .last = T,
                                 .w = packed,
                                 .a = h,
                                 .a_step = step,
                                 .in = h,
                                 .in_step = step,
                                 .epilogue = TILE_TANH});
}

void recurrence_tanh_backward(float *da, const float *dh, const float *h, const float *packed, int T, int B, int H)
{
    /* Step s is timestep t = T - s: a_s = da_t (at da[t - 1]), in_s = dh_t (at dh[t - 1]), y_s = h_t. */
    const ptrdiff_t step = (ptrdiff_t)B * H;
    recurrence_run(&(Recurrence){.B = B,
                                 .K = H,
                                 .N = H,
                                 .first = 0,
                                 .last = T - 1,
                                 .w = packed,
                                 .a = da + (T - 1) * step,
                                 .a_step = -step,
                                 .in = dh + (T - 1) * step,
                                 .in_step = -step,
                                 .y = h + T * step,
                                 .y_step = -step,
                                 .epilogue = TILE_TANH_BACKWARD});
}
