/* The products, on OpenBLAS when the build found it and the product is large, else on the built-in
 * loops: the micro-kernel of kernels.h over tiles of C, with B copied block by block into the
 * micro-kernel's panels. Threads split C by rows; every element is summed by one thread in the same
 * order, so the built-in loops give the same result for any thread count. */
#include "matmul.h"

#include <stdlib.h>
#include <string.h>
#ifdef CHARRNN_WITH_OPENBLAS
#include <cblas.h>
#include <pthread.h>
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

#include "kernels.h"

#define PARALLEL_WORK (1L << 16) /* multiply-adds below which starting threads costs more than it gains */
/* The sum over k is cut into blocks this long: a block of one panel of B (KC x nr floats, at most
 * 32 KiB) is packed on the stack and stays in the first-level cache while a block of row tiles passes
 * over it; a block of about MC rows of A (MC x KC floats, about 100 KiB) stays in the second-level
 * cache while the panels pass over it. */
#define KC 256
#define MC 96

/* Threads for a product with M rows: one where there is little work, else as many as have at least
 * two tiles of rows each. */
static int threads_for(int M, int N, int K, int rows_per_tile)
{
#ifdef _OPENMP
    if ((long)M * N * K < PARALLEL_WORK)
        return 1;
    int threads = M / (2 * rows_per_tile);
    threads = threads < omp_get_max_threads() ? threads : omp_get_max_threads();
    return threads > 1 ? threads : 1;
#else
    (void)M, (void)N, (void)K, (void)rows_per_tile;
    return 1;
#endif
}

/* The operands of C (+)= A' B', read through strides: A'[i][k] = A[i * a_row + k * a_col] and
 * B'[k][j] = B[k * b_row + j * b_col], which covers A and B as stored or transposed. */
typedef struct {
    float *C;
    const float *A, *B;
    size_t a_row, a_col, b_row, b_col;
    int M, N, K, accumulate;
    int transposed_a, transposed_b; /* what the strides say, for OpenBLAS */
    int blas;                       /* on OpenBLAS (one call per thread) rather than the built-in loops */
} Product;

static void blas_rows(const Product *p, int i0, int i1);

/* Rows i0..i1-1 of the product. The rows are cut into as few tiles as the kernel allows, of sizes as
 * even as possible (13 rows with tiles of 6: 4, 4, 5, not 6, 6, 1). */
static void product_rows(const Kernels *kn, const Product *p, int i0, int i1)
{
    const int N = p->N, K = p->K;
    if (p->blas) {
        blas_rows(p, i0, i1);
        return;
    }
    if (i1 - i0 == 1 && p->b_col == 1) { /* a vector times a matrix: a kernel of its own keeps more sums in flight */
        kn->row(p->C + (size_t)i0 * N, p->A + (size_t)i0 * p->a_row, p->a_col, p->B, p->b_row, K, N, p->accumulate);
        return;
    }
    float panel[KC * KERNELS_MAX_NR] __attribute__((aligned(64)));
    const int tiles = (i1 - i0 + kn->mr - 1) / kn->mr, per_block = MC / kn->mr;
    for (int k0 = 0; k0 < K || k0 == 0; k0 += KC) {
        Tile t = {.a_row = p->a_row,
                  .a_col = p->a_col,
                  .b = panel,
                  .ldb = (size_t)kn->nr,
                  .k = K - k0 < KC ? K - k0 : KC,
                  .ld_in = (size_t)N,
                  .ldc = (size_t)N,
                  .epilogue = TILE_ADD};
        for (int first = 0; first < tiles; first += per_block) {
            const int last = first + per_block < tiles ? first + per_block : tiles;
            for (int j0 = 0; j0 < N; j0 += kn->nr) {
                kernels_pack_panel(panel, p->B, p->b_row, p->b_col, k0, t.k, j0, N, kn->nr);
                t.n = N - j0 < kn->nr ? N - j0 : kn->nr;
                for (int tile = first; tile < last; tile++) {
                    const int i = i0 + (i1 - i0) * tile / tiles;
                    t.m = i0 + (i1 - i0) * (tile + 1) / tiles - i;
                    t.a = p->A + (size_t)i * p->a_row + (size_t)k0 * p->a_col;
                    t.c = p->C + (size_t)i * N + j0;
                    t.in = k0 > 0 || p->accumulate ? t.c : NULL;
                    kn->tile(&t);
                }
            }
        }
    }
}

static void product(const Product *p)
{
    const Kernels *kn = kernels();
    const int threads = threads_for(p->M, p->N, p->K, kn->mr);
    if (threads == 1) {
        product_rows(kn, p, 0, p->M);
        return;
    }
#pragma omp parallel num_threads(threads)
    {
        const int id = omp_get_thread_num(), n = omp_get_num_threads();
        product_rows(kn, p, p->M * id / n, p->M * (id + 1) / n);
    }
}

static int use_openblas(int M, int N, int K);

/* C = A B, A^T B or A B^T on the library or the loops */
static void nn(float *C, const float *A, const float *B, int M, int N, int K, int accumulate, int blas)
{
    product(&(Product){C, A, B, (size_t)K, 1, (size_t)N, 1, M, N, K, accumulate, 0, 0, blas});
}

static void tn(float *C, const float *A, const float *B, int M, int N, int K, int accumulate, int blas)
{
    product(&(Product){C, A, B, 1, (size_t)M, (size_t)N, 1, M, N, K, accumulate, 1, 0, blas});
}

static void nt(float *C, const float *A, const float *B, int M, int N, int K, int accumulate, int blas)
{
    product(&(Product){C, A, B, (size_t)K, 1, 1, (size_t)K, M, N, K, accumulate, 0, 1, blas});
}

void own_matmul_nn(float *C, const float *A, const float *B, int M, int N, int K, int accumulate)
{
    nn(C, A, B, M, N, K, accumulate, 0);
}

void own_matmul_tn(float *C, const float *A, const float *B, int M, int N, int K, int accumulate)
{
    tn(C, A, B, M, N, K, accumulate, 0);
}

void own_matmul_nt(float *C, const float *A, const float *B, int M, int N, int K, int accumulate)
{
    nt(C, A, B, M, N, K, accumulate, 0);
}

void matmul_nn(float *C, const float *A, const float *B, int M, int N, int K, int accumulate)
{
    nn(C, A, B, M, N, K, accumulate, use_openblas(M, N, K));
}

void matmul_tn(float *C, const float *A, const float *B, int M, int N, int K, int accumulate)
{
    tn(C, A, B, M, N, K, accumulate, use_openblas(M, N, K));
}

void matmul_nt(float *C, const float *A, const float *B, int M, int N, int K, int accumulate)
{
    nt(C, A, B, M, N, K, accumulate, use_openblas(M, N, K));
}

const char *matmul_loops(void)
{
    return kernels()->name;
}

/* ---- OpenBLAS ---- */

#ifdef CHARRNN_WITH_OPENBLAS
/* Below this many multiply-adds a library call costs more than it saves (the generation step's
 * vector-matrix products, the small recurrence products): the loops run them. */
#ifndef SMALL_PRODUCT
#define SMALL_PRODUCT (1L << 19)
#endif

void openblas_set_num_threads(int threads); /* OpenBLAS's own, not in every cblas.h */
/* OpenBLAS's own (pthreads builds): stops its thread pool, which it restarts when a call asks for more
 * than one thread. Weak: a build without it leaves the pool alone. */
int blas_thread_shutdown_(void) __attribute__((weak));

static int blas_off;

/* Once, before the first product: CHARRNN_BLAS=0 routes every product to the built-in loops (the tests
 * use it to run both paths in one build). Every OpenBLAS call runs on the thread that makes it (the
 * loops' threads split the product); its own pool, started when the library loaded, would otherwise
 * spin for a while after every call and at start-up, taking time from the threads that do the work
 * (on a core shared by two hyperthreads, about half of it). */
static void blas_setup(void)
{
    const char *env = getenv("CHARRNN_BLAS");
    blas_off = env && strcmp(env, "0") == 0;
    openblas_set_num_threads(1);
    if (blas_thread_shutdown_)
        blas_thread_shutdown_();
}

/* OpenBLAS for the large products. */
static int use_openblas(int M, int N, int K)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, blas_setup);
    return !blas_off && (long)M * N * K >= SMALL_PRODUCT;
}

/* Rows of C per OpenBLAS call where A is read as stored. OpenBLAS packs the rows of such an A it is
 * given into its own working memory, up to a buffer of tens of MiB per calling thread: [T B, H] in one
 * call would make that memory grow with the batch, unlike everything the memory estimate counts. In
 * blocks it stays at a few MiB per thread; packing B again for each block costs about 1 % of its
 * multiply-adds. */
#define BLAS_ROWS 1024

/* Rows i0..i1-1 of the product in single-threaded OpenBLAS calls: the threads are the loops' own,
 * so that one pool of threads does all the work (two pools on the same cores would take turns
 * spinning while the other works). */
static void blas_rows(const Product *p, int i0, int i1)
{
    const int block = p->transposed_a ? i1 - i0 : BLAS_ROWS;
    for (int i = i0; i < i1; i += block) {
        const int rows = i1 - i < block ? i1 - i : block;
        cblas_sgemm(CblasRowMajor, p->transposed_a ? CblasTrans : CblasNoTrans,
                    p->transposed_b ? CblasTrans : CblasNoTrans, rows, p->N, p->K, 1.0f, p->A + (size_t)i * p->a_row,
                    p->transposed_a ? p->M : p->K, p->B, p->transposed_b ? p->K : p->N, p->accumulate ? 1.0f : 0.0f,
                    p->C + (size_t)i * p->N, p->N);
    }
}

const char *matmul_backend(void)
{
    return use_openblas(1 << 10, 1 << 10, 1 << 10) ? "OpenBLAS" : "built-in loops";
}

void matmul_set_threads(int threads)
{
    use_openblas(0, 0, 0); /* its pool stopped now, not at the first product */
#ifdef _OPENMP
    omp_set_num_threads(threads);
#else
    (void)threads;
#endif
}
#else
static int use_openblas(int M, int N, int K)
{
    (void)M, (void)N, (void)K;
    return 0;
}

static void blas_rows(const Product *p, int i0, int i1)
{
    (void)p, (void)i0, (void)i1;
}

const char *matmul_backend(void)
{
    return "built-in loops";
}

void matmul_set_threads(int threads)
{
#ifdef _OPENMP
    omp_set_num_threads(threads);
#else
    (void)threads;
#endif
}
#endif
