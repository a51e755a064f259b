#include "dist.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef CHARRNN_WITH_MPI
#include <mpi.h>
#endif

Share dist_share(int B, int rank, int size)
{
    const int base = B / size, extra = B % size;
    Share s = {rank * base + (rank < extra ? rank : extra), base + (rank < extra)};
    return s;
}

/* The variables launchers set in every process they start: Open MPI's, then the PMI ones of MPICH,
 * Intel MPI and Slurm's srun. */
static int launcher_env(const char *const names[])
{
    for (int i = 0; names[i]; i++) {
        const char *v = getenv(names[i]);
        if (v && *v)
            return atoi(v);
    }
    return -1;
}

int dist_launched_size(void)
{
    static const char *const names[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", NULL};
    int n = launcher_env(names);
    return n > 1 ? n : 1;
}

int dist_launched_rank(void)
{
    static const char *const names[] = {"OMPI_COMM_WORLD_RANK", "PMI_RANK", NULL};
    int r = launcher_env(names);
    return r > 0 ? r : 0;
}

static int dist_agree_local(int status, const char *msg, Err *e)
{
    if (status != 0)
        err_set(e, "%s", msg ? msg : "");
    return status;
}

#ifndef CHARRNN_WITH_MPI

const char *dist_library(void)
{
    return "built without MPI";
}

int dist_init(Dist *d, Err *e)
{
    *d = (Dist){.rank = 0, .size = 1, .local_rank = 0, .local_size = 1, .comm = NULL};
    int n = dist_launched_size();
    if (n > 1)
        return err_set(e,
                       "this charrnn was built without MPI, so it cannot train across the %d processes it was started "
                       "as; run it without mpirun, or rebuild it with MPI installed (Debian: libopenmpi-dev)",
                       n);
    return 0;
}

void dist_finalize(Dist *d)
{
    (void)d;
}

int dist_agree(const Dist *d, int status, const char *msg, Err *e)
{
    (void)d;
    return dist_agree_local(status, msg, e);
}

int dist_max(const Dist *d, int value)
{
    (void)d;
    return value;
}

int dist_same(const Dist *d, const void *bytes, size_t n, const char *what, Err *e)
{
    (void)d, (void)bytes, (void)n, (void)what, (void)e;
    return 0;
}

int dist_sum_floats(const Dist *d, float *x, size_t n, Err *e)
{
    (void)d, (void)x, (void)n, (void)e;
    return 0;
}

int dist_sum_doubles(const Dist *d, double *x, size_t n, Err *e)
{
    (void)d, (void)x, (void)n, (void)e;
    return 0;
}

int dist_broadcast(const Dist *d, void *bytes, size_t n, int root, Err *e)
{
    (void)d, (void)bytes, (void)n, (void)root, (void)e;
    return 0;
}

int dist_gather_rows(const Dist *d, const float *mine, float *all, int blocks, int B, size_t width, Err *e)
{
    (void)d, (void)e;
    memcpy(all, mine, sizeof(float) * (size_t)blocks * (size_t)B * width);
    return 0;
}

void dist_abort(const Dist *d, int status, const char *msg)
{
    (void)d, (void)status, (void)msg;
}

#else

#define COMM(d) (*(MPI_Comm *)(d)->comm)

/* The ranks exchange at most INT_MAX elements per call (MPI counts are int). */
#define MPI_CHUNK (1 << 30)

static int mpi_fail(Err *e, int code, const char *call)
{
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(code, text, &len) != MPI_SUCCESS)
        snprintf(text, sizeof text, "error %d", code);
    return err_set(e, "%s failed: %s", call, text);
}

#define MPI_TRY(call)                                                                                                  \
    do {                                                                                                               \
        int mpi_status_ = (call);                                                                                      \
        if (mpi_status_ != MPI_SUCCESS)                                                                                \
            return mpi_fail(e, mpi_status_, #call);                                                                    \
    } while (0)

const char *dist_library(void)
{
    static char version[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    if (!version[0] && MPI_Get_library_version(version, &len) == MPI_SUCCESS) {
        char *end = strpbrk(version, ",\n"); /* the name and version, without the build details */
        if (end)
            *end = 0;
    }
    return version;
}

int dist_init(Dist *d, Err *e)
{
    *d = (Dist){.rank = 0, .size = 1, .local_rank = 0, .local_size = 1, .comm = NULL};
    if (dist_launched_size() == 1)
        return 0;
    int provided;
    /* The emulated NCCL may call MPI from the emulated device's thread, never two threads at once. */
    MPI_TRY(MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, &provided));
    MPI_Comm *comm = malloc(sizeof *comm);
    if (!comm)
        return err_set(e, "out of memory");
    d->comm = comm;
    MPI_TRY(MPI_Comm_dup(MPI_COMM_WORLD, comm));
    /* Errors come back as codes, to be reported with the rank, rather than abort the job unexplained. */
    MPI_TRY(MPI_Comm_set_errhandler(*comm, MPI_ERRORS_RETURN));
    MPI_TRY(MPI_Comm_rank(*comm, &d->rank));
    MPI_TRY(MPI_Comm_size(*comm, &d->size));
    MPI_Comm node;
    MPI_TRY(MPI_Comm_split_type(*comm, MPI_COMM_TYPE_SHARED, d->rank, MPI_INFO_NULL, &node));
    MPI_Comm_rank(node, &d->local_rank);
    MPI_Comm_size(node, &d->local_size);
    MPI_Comm_free(&node);
    return 0;
}

void dist_finalize(Dist *d)
{
    if (!d->comm)
        return;
    MPI_Comm_free(d->comm);
    free(d->comm);
    d->comm = NULL;
    MPI_Finalize();
}

int dist_agree(const Dist *d, int status, const char *msg, Err *e)
{
    if (d->size == 1)
        return dist_agree_local(status, msg, e);
    /* The lowest failing rank, then its status and message from it. */
    int mine = status != 0 ? d->rank : d->size, first, failed = status != 0, n_failed;
    if (MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, COMM(d)) != MPI_SUCCESS ||
        MPI_Allreduce(&failed, &n_failed, 1, MPI_INT, MPI_SUM, COMM(d)) != MPI_SUCCESS)
        return err_set(e, "rank %d: the ranks could not compare their set-up", d->rank), 1;
    if (first == d->size)
        return 0;
    char text[sizeof e->msg];
    int shared[2] = {status, 0};
    snprintf(text, sizeof text, "%s", status && msg ? msg : "");
    MPI_Bcast(text, (int)sizeof text, MPI_CHAR, first, COMM(d));
    MPI_Bcast(shared, 1, MPI_INT, first, COMM(d));
    int differs = strcmp(text, status && msg ? msg : "") != 0, any_differs;
    MPI_Allreduce(&differs, &any_differs, 1, MPI_INT, MPI_MAX, COMM(d));
    if (n_failed == d->size && !any_differs)
        err_set(e, "%s", text);
    else
        err_set(e, "rank %d: %s", first, text);
    return shared[0];
}

int dist_max(const Dist *d, int value)
{
    int largest = value;
    if (d->size > 1)
        MPI_Allreduce(&value, &largest, 1, MPI_INT, MPI_MAX, COMM(d));
    return largest;
}

int dist_same(const Dist *d, const void *bytes, size_t n, const char *what, Err *e)
{
    if (d->size == 1)
        return 0;
    uint32_t mine = crc32_update(0, bytes, n), first = mine, theirs;
    MPI_TRY(MPI_Bcast(&first, 1, MPI_UINT32_T, 0, COMM(d)));
    int differs = mine != first ? d->rank : d->size, other;
    MPI_TRY(MPI_Allreduce(&differs, &other, 1, MPI_INT, MPI_MIN, COMM(d)));
    if (other == d->size)
        return 0;
    theirs = mine;
    MPI_TRY(MPI_Bcast(&theirs, 1, MPI_UINT32_T, other, COMM(d)));
    return err_set(e, "rank %d differs from rank 0 in %s (CRC-32 %08x, rank 0: %08x)", other, what, theirs, first);
}

static int sum_in_place(const Dist *d, void *x, size_t n, MPI_Datatype type, size_t elem, Err *e)
{
    for (size_t done = 0; done < n; done += MPI_CHUNK) {
        const int count = n - done < MPI_CHUNK ? (int)(n - done) : MPI_CHUNK;
        MPI_TRY(MPI_Allreduce(MPI_IN_PLACE, (char *)x + done * elem, count, type, MPI_SUM, COMM(d)));
    }
    return 0;
}

int dist_sum_floats(const Dist *d, float *x, size_t n, Err *e)
{
    return d->size == 1 ? 0 : sum_in_place(d, x, n, MPI_FLOAT, sizeof *x, e);
}

int dist_sum_doubles(const Dist *d, double *x, size_t n, Err *e)
{
    return d->size == 1 ? 0 : sum_in_place(d, x, n, MPI_DOUBLE, sizeof *x, e);
}

int dist_broadcast(const Dist *d, void *bytes, size_t n, int root, Err *e)
{
    if (d->size == 1)
        return 0;
    for (size_t done = 0; done < n; done += MPI_CHUNK) {
        const int count = n - done < MPI_CHUNK ? (int)(n - done) : MPI_CHUNK;
        MPI_TRY(MPI_Bcast((char *)bytes + done, count, MPI_BYTE, root, COMM(d)));
    }
    return 0;
}

int dist_gather_rows(const Dist *d, const float *mine, float *all, int blocks, int B, size_t width, Err *e)
{
    const Share s = dist_share(B, d->rank, d->size);
    if (d->size == 1) {
        memcpy(all, mine, sizeof(float) * (size_t)blocks * (size_t)B * width);
        return 0;
    }
    int *counts = malloc(sizeof(int) * 2 * (size_t)d->size), *offsets = counts + d->size;
    if (!counts)
        return err_set(e, "out of memory");
    if ((size_t)B * width > MPI_CHUNK) {
        free(counts);
        return err_set(e, "a block of %d rows of %zu floats is too large to gather", B, width);
    }
    for (int r = 0; r < d->size; r++) {
        Share sr = dist_share(B, r, d->size);
        counts[r] = sr.count * (int)width;
        offsets[r] = sr.first * (int)width;
    }
    int rc = MPI_SUCCESS;
    for (int b = 0; b < blocks && rc == MPI_SUCCESS; b++)
        rc = MPI_Gatherv(mine + (size_t)b * (size_t)s.count * width, s.count * (int)width, MPI_FLOAT,
                         d->rank == 0 ? all + (size_t)b * (size_t)B * width : NULL, counts, offsets, MPI_FLOAT, 0,
                         COMM(d));
    free(counts);
    MPI_TRY(rc);
    return 0;
}

void dist_abort(const Dist *d, int status, const char *msg)
{
    if (d->size == 1)
        return;
    fprintf(stderr, "charrnn: rank %d: %s\n", d->rank, msg);
    fflush(stderr);
    MPI_Abort(COMM(d), status);
}

#endif

int dist_reduce_step(const Dist *d, float *grads, size_t n, float weight, double *loss, Err *e)
{
    if (d->size == 1)
        return 0;
    for (size_t i = 0; i < n; i++)
        grads[i] *= weight;
    *loss *= weight;
    if (dist_sum_floats(d, grads, n, e) != 0 || dist_sum_doubles(d, loss, 1, e) != 0)
        return -1;
    return 0;
}
