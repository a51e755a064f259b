/* The machine's single-precision matrix product peak, against which bench/compare.py states what
 * fraction charrnn reaches: GFLOP/s of a square product C = A B, best of several repetitions, on
 * OpenBLAS (with its kernels checked as charrnn checks them, cpu/blas_check.c) and on the built-in
 * loops, for each thread count.
 *
 *   build/sgemm-peak [--size N] [--threads 1,2]
 *
 * Prints "openblas CORENAME" (when built with OpenBLAS), "loops KERNELS", then one line per thread
 * count: "THREADS openblas GFLOPS loops GFLOPS" (openblas nan without it). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "matmul.h"
#include "util.h"
#ifdef CHARRNN_WITH_OPENBLAS
#include <cblas.h>
char *openblas_get_corename(void);
void openblas_set_num_threads(int threads);
#endif

#define REPEATS 5 /* the best of these, so that a moment of other work on the machine does not count */

typedef void (*Run)(const float *A, const float *B, float *C, int n, int threads);

#ifdef CHARRNN_WITH_OPENBLAS
static void openblas(const float *A, const float *B, float *C, int n, int threads)
{
    openblas_set_num_threads(threads); /* its own pool, as an application that calls it would use it */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, A, n, B, n, 0.0f, C, n);
}
#endif

static void loops(const float *A, const float *B, float *C, int n, int threads)
{
    matmul_set_threads(threads);
    own_matmul_nn(C, A, B, n, n, n, 0);
}

static double gflops(Run run, const float *A, const float *B, float *C, int n, int threads)
{
    double best = 0.0;
    run(A, B, C, n, threads); /* warm-up: threads started, pages touched */
    for (int r = 0; r < REPEATS; r++) {
        double t = now_seconds();
        run(A, B, C, n, threads);
        t = now_seconds() - t;
        double rate = 2.0 * n * n * (double)n / t / 1e9;
        best = rate > best ? rate : best;
    }
    return best;
}

int main(int argc, char **argv)
{
    matmul_check_blas(argv, 0);
    int n = 2048;
    const char *threads = "1,2";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--size") == 0)
            n = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--threads") == 0)
            threads = argv[i + 1];
    }
    if (n < 1 || argc % 2 == 0) {
        fprintf(stderr, "usage: sgemm-peak [--size N] [--threads 1,2]\n");
        return 2;
    }
    float *A = malloc(sizeof(float) * (size_t)n * n), *B = malloc(sizeof(float) * (size_t)n * n);
    float *C = malloc(sizeof(float) * (size_t)n * n);
    if (!A || !B || !C) {
        fprintf(stderr, "sgemm-peak: out of memory for --size %d\n", n);
        return 1;
    }
    for (size_t i = 0; i < (size_t)n * n; i++)
        A[i] = (float)(i % 7) * 0.1f, B[i] = (float)(i % 5) * 0.1f;
#ifdef CHARRNN_WITH_OPENBLAS
    printf("openblas %s\n", openblas_get_corename());
#endif
    printf("loops %s\n", matmul_loops());
    char list[256];
    snprintf(list, sizeof list, "%s", threads);
    for (char *t = strtok(list, ","); t; t = strtok(NULL, ",")) {
        const int k = atoi(t);
        double blas = 0.0 / 0.0;
#ifdef CHARRNN_WITH_OPENBLAS
        blas = gflops(openblas, A, B, C, n, k);
#endif
        printf("%d openblas %.1f loops %.1f\n", k, blas, gflops(loops, A, B, C, n, k));
        fflush(stdout);
    }
    free(A), free(B), free(C);
    return 0;
}
