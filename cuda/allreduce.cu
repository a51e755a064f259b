/* The all-reduce of data-parallel training on GPUs (see allreduce.cuh). One step's reduction is two
 * collectives in one NCCL group: the gradient buffer with a pre-multiplied sum (each rank's weight
 * applied as NCCL reads its buffer, no extra pass), and the loss as a double. */
#include <stdlib.h>
#include <string.h>

#include "allreduce.cuh"

struct GradAllreduce {
    const Dist *dist;
    int nccl;      /* 1: NCCL between the GPUs; 0: MPI on host copies */
    float *host;   /* the host path: pinned [n] */
    double *loss;  /* pinned: the loss on its way */
    double *dloss; /* device: the loss for NCCL */
#ifdef CHARRNN_WITH_NCCL
    ncclComm_t comm; /* NULL until the first step */
    ncclRedOp_t weighted;
    float weight; /* of `weighted`; 0: none made yet */
#endif
};

static int cuda_ok(cudaError_t status, const char *what, Err *e)
{
    if (status == cudaSuccess)
        return 0;
    cudaGetLastError();
    return err_set(e, "%s: %s (%s)", what, cudaGetErrorString(status), cudaGetErrorName(status));
}

int allreduce_pick_device(const Dist *d, Err *e)
{
    int count = 0;
    if (cuda_ok(cudaGetDeviceCount(&count), "cudaGetDeviceCount", e) != 0)
        return -1;
    if (d->local_size > count)
        return err_set(e,
                       "--device cuda: %d ranks run on this machine but it has %d GPU%s; start at most %d rank%s per "
                       "machine (Open MPI: mpirun --map-by ppr:%d:node)",
                       d->local_size, count, count == 1 ? "" : "s", count, count == 1 ? "" : "s", count);
    return cuda_ok(cudaSetDevice(d->local_rank), "cudaSetDevice", e);
}

GradAllreduce *allreduce_create(const Dist *d, size_t n, Err *e)
{
    const char *choice = getenv("CHARRNN_CUDA_ALLREDUCE");
    GradAllreduce *g = (GradAllreduce *)calloc(1, sizeof *g);
    if (!g) {
        err_set(e, "out of memory");
        return NULL;
    }
    g->dist = d;
#ifdef CHARRNN_WITH_NCCL
    g->nccl = 1;
#endif
    if (choice && *choice && strcmp(choice, "host") == 0)
        g->nccl = 0;
    else if (choice && *choice && (strcmp(choice, "nccl") != 0 || !g->nccl)) {
        err_set(e, strcmp(choice, "nccl") == 0 ? "CHARRNN_CUDA_ALLREDUCE=nccl: this charrnn was built without NCCL"
                                               : "CHARRNN_CUDA_ALLREDUCE=%s: expected nccl or host",
                choice);
        free(g);
        return NULL;
    }
    if (cuda_ok(cudaMallocHost((void **)&g->loss, sizeof(double)), "cudaMallocHost (the loss)", e) != 0 ||
        (g->nccl && cuda_ok(cudaMalloc((void **)&g->dloss, sizeof(double)), "cudaMalloc (the loss)", e) != 0) ||
        (!g->nccl && cuda_ok(cudaMallocHost((void **)&g->host, n * sizeof(float)), "cudaMallocHost (gradients)", e) != 0)) {
        allreduce_destroy(g);
        return NULL;
    }
    return g;
}

void allreduce_destroy(GradAllreduce *g)
{
    if (!g)
        return;
#ifdef CHARRNN_WITH_NCCL
    if (g->comm) {
        if (g->weight != 0.0f)
            ncclRedOpDestroy(g->weighted, g->comm);
        ncclCommDestroy(g->comm);
    }
#endif
    cudaFreeHost(g->host);
    cudaFreeHost(g->loss);
    cudaFree(g->dloss);
    free(g);
}

#ifdef CHARRNN_WITH_NCCL
#define NCCL_TRY(call)                                                                                                 \
    do {                                                                                                               \
        ncclResult_t try_status = (call);                                                                              \
        if (try_status != ncclSuccess)                                                                                 \
            return err_set(e, "%s:%d: %s: %s (%s)", __FILE__, __LINE__, #call, ncclGetErrorString(try_status),         \
                           ncclGetLastError(NULL));                                                                    \
    } while (0)

/* The communicator of the ranks' GPUs, bootstrapped over MPI; and the weighted sum for this weight. */
static int nccl_ready(GradAllreduce *g, float weight, Err *e)
{
    if (!g->comm) {
        ncclUniqueId id;
        if (g->dist->rank == 0)
            NCCL_TRY(ncclGetUniqueId(&id));
        if (dist_broadcast(g->dist, &id, sizeof id, 0, e) != 0)
            return -1;
        NCCL_TRY(ncclCommInitRank(&g->comm, g->dist->size, id, g->dist->rank));
    }
    if (g->weight != weight) {
        if (g->weight != 0.0f)
            NCCL_TRY(ncclRedOpDestroy(g->weighted, g->comm));
        g->weight = 0.0f;
        NCCL_TRY(ncclRedOpCreatePreMulSum(&g->weighted, &weight, ncclFloat, ncclScalarHostImmediate, g->comm));
        g->weight = weight;
    }
    return 0;
}

static int nccl_step(GradAllreduce *g, float *grads, size_t n, float weight, float loss, cudaStream_t s, Err *e)
{
    *g->loss = (double)loss * weight;
    if (nccl_ready(g, weight, e) != 0 ||
        cuda_ok(cudaMemcpyAsync(g->dloss, g->loss, sizeof(double), cudaMemcpyHostToDevice, s), "loss to device", e))
        return -1;
    NCCL_TRY(ncclGroupStart());
    NCCL_TRY(ncclAllReduce(grads, grads, n, ncclFloat, g->weighted, g->comm, s));
    NCCL_TRY(ncclAllReduce(g->dloss, g->dloss, 1, ncclDouble, ncclSum, g->comm, s));
    NCCL_TRY(ncclGroupEnd());
    return cuda_ok(cudaMemcpyAsync(g->loss, g->dloss, sizeof(double), cudaMemcpyDeviceToHost, s), "loss to host", e);
}
#endif

int allreduce_step(GradAllreduce *g, float *grads, size_t n, float weight, float *loss, cudaStream_t s, Err *e)
{
#ifdef CHARRNN_WITH_NCCL
    if (g->nccl) {
        if (nccl_step(g, grads, n, weight, *loss, s, e) != 0 || cuda_ok(cudaStreamSynchronize(s), "the all-reduce", e) != 0)
            return -1;
        *loss = (float)*g->loss;
        return 0;
    }
#endif
    if (cuda_ok(cudaMemcpyAsync(g->host, grads, n * sizeof(float), cudaMemcpyDeviceToHost, s), "gradients to host",
                e) != 0 ||
        cuda_ok(cudaStreamSynchronize(s), "gradients to host", e) != 0)
        return -1;
    double sum = *loss;
    if (dist_reduce_step(g->dist, g->host, n, weight, &sum, e) != 0 ||
        cuda_ok(cudaMemcpyAsync(grads, g->host, n * sizeof(float), cudaMemcpyHostToDevice, s), "gradients to device",
                e) != 0)
        return -1;
    *loss = (float)sum;
    return 0;
}
