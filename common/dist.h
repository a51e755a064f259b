/* Data-parallel training across processes: the ranks of an MPI job (mpirun -np N charrnn train ...),
 * each holding the whole model and a share of every batch, and the few host-side collectives the
 * trainer needs. Built on MPI when CMake finds it (CHARRNN_WITH_MPI); without MPI every call is that
 * of a job of one process, and a launch of several is refused (dist_init says why).
 *
 * The GPU's own all-reduce (NCCL) lives beside the CUDA backend (cuda/allreduce.cu); it takes its
 * bootstrap from here (dist_broadcast). */
#ifndef CHARRNN_DIST_H
#define CHARRNN_DIST_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

typedef struct {
    int rank, size;             /* this process and how many train together; 0 and 1 outside MPI */
    int local_rank, local_size; /* the same on this machine: which GPU a rank takes */
    void *comm;                 /* the job's MPI communicator (a duplicate of MPI_COMM_WORLD); NULL outside MPI */
} Dist;

/* The rows [first, first + count) of a batch of B that one rank computes: consecutive rows, the first
 * B % size ranks one more than the others. A global batch is the one a single process would draw,
 * whose row b is the same sequence (or stateful stream) whatever the number of ranks. */
typedef struct {
    int first, count;
} Share;
Share dist_share(int B, int rank, int size);

/* The number of processes the launcher (mpirun, srun) started, from its environment; 1 otherwise. */
int dist_launched_size(void);
int dist_launched_rank(void);
/* "Open MPI v4.1.4, ..." or "built without MPI". */
const char *dist_library(void);

/* Joins the job when started by a launcher with more than one process (MPI_Init), else makes d a job
 * of one. Fails in a build without MPI launched with several processes. */
int dist_init(Dist *d, Err *e);
void dist_finalize(Dist *d);

/* Where every rank's set-up ends: returns 0 when every rank passed (status 0), else the exit status of
 * the first rank that failed, with its message in *e prefixed "rank K: " (no prefix when every rank
 * failed alike), for rank 0 to print. status and msg are this rank's (msg NULL when it passed). */
int dist_agree(const Dist *d, int status, const char *msg, Err *e);
/* The largest value over the ranks (a stop signal that one rank saw stops every rank after the same step). */
int dist_max(const Dist *d, int value);
/* Every rank's bytes[0, n) compared with rank 0's (by CRC-32): 0, or -1 with "rank K differs from rank 0
 * in <what> (...)" for the first rank K that differs. */
int dist_same(const Dist *d, const void *bytes, size_t n, const char *what, Err *e);

/* Sums over the ranks, in place; every rank gets the same result. */
int dist_sum_floats(const Dist *d, float *x, size_t n, Err *e);
int dist_sum_doubles(const Dist *d, double *x, size_t n, Err *e);
/* The trainer's step reduction on host memory: grads[n] and *loss, each scaled by weight, summed over
 * the ranks (the CPU backend's all-reduce, and the CUDA backend's without NCCL). */
int dist_reduce_step(const Dist *d, float *grads, size_t n, float weight, double *loss, Err *e);
int dist_broadcast(const Dist *d, void *bytes, size_t n, int root, Err *e);
/* Rank 0 receives into all[] the rows of every rank: rank r sends its share (rows of width floats) of
 * `blocks` blocks of B rows each, laid out [blocks, share, width]; all is [blocks, B, width]. */
int dist_gather_rows(const Dist *d, const float *mine, float *all, int blocks, int B, size_t width, Err *e);

/* Ends the whole job from one rank that failed on its own (others may be waiting in a collective):
 * prints "charrnn: rank K: msg" and aborts every rank with the status. Outside MPI it just returns. */
void dist_abort(const Dist *d, int status, const char *msg);

#endif
