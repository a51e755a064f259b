/* The NCCL subset of the emulated device: NCCL's names, values and signatures (those of nccl.h 2.28),
 * so that the data-parallel code of cuda/ compiles unchanged with a host C++ compiler and its
 * collectives run between the emulated devices of the ranks of an MPI job. As in emu_runtime.h, only
 * what charrnn uses exists: communicator set-up, ncclAllReduce (sum, product, min, max, average and
 * pre-multiplied sums of int32, float and double), group calls, and the error strings.
 *
 * Underneath it is MPI (the job's processes are the ranks; MPI must be initialised first):
 * ncclCommInitRank splits MPI_COMM_WORLD by the unique id, so every process of the job creates its
 * communicator at the same point, as charrnn's ranks do; a collective is queued on its stream like a
 * kernel and, when it runs, reduces the device buffers (host memory here) with MPI_Allreduce. */
#ifndef CHARRNN_EMU_NCCL_H
#define CHARRNN_EMU_NCCL_H

#include "emu_runtime.h"

#define NCCL_MAJOR 2
#define NCCL_MINOR 28
#define NCCL_PATCH 9
#define NCCL_VERSION(X, Y, Z) ((X)*10000 + (Y)*100 + (Z))
#define NCCL_VERSION_CODE NCCL_VERSION(NCCL_MAJOR, NCCL_MINOR, NCCL_PATCH)

#define NCCL_UNIQUE_ID_BYTES 128
typedef struct {
    char internal[NCCL_UNIQUE_ID_BYTES];
} ncclUniqueId;

typedef struct ncclComm *ncclComm_t;

typedef enum {
    ncclSuccess = 0,
    ncclUnhandledCudaError = 1,
    ncclSystemError = 2,
    ncclInternalError = 3,
    ncclInvalidArgument = 4,
    ncclInvalidUsage = 5,
    ncclRemoteError = 6,
    ncclInProgress = 7,
    ncclNumResults = 8
} ncclResult_t;

typedef enum { ncclNumOps_dummy = 5 } ncclRedOp_dummy_t;
typedef enum {
    ncclSum = 0,
    ncclProd = 1,
    ncclMax = 2,
    ncclMin = 3,
    ncclAvg = 4,
    ncclNumOps = 5, /* the first handle ncclRedOpCreatePreMulSum gives */
    ncclMaxRedOp = 0x7fffffff >> (32 - 8 * sizeof(ncclRedOp_dummy_t))
} ncclRedOp_t;

typedef enum {
    ncclInt32 = 2,
    ncclInt = 2,
    ncclFloat32 = 7,
    ncclFloat = 7,
    ncclFloat64 = 8,
    ncclDouble = 8,
} ncclDataType_t;

typedef enum {
    ncclScalarHostImmediate = 1 /* the scalar is read when the operator is created */
} ncclScalarResidence_t;

ncclResult_t ncclGetVersion(int *version);
const char *ncclGetErrorString(ncclResult_t result);
/* The last error's details on this thread (NCCL's own messages say the same things). */
const char *ncclGetLastError(ncclComm_t comm);

ncclResult_t ncclGetUniqueId(ncclUniqueId *unique_id);
/* Collective over every process of MPI_COMM_WORLD (see above). Refuses two ranks on one device of a
 * machine, as NCCL does ("Duplicate GPU detected"). */
ncclResult_t ncclCommInitRank(ncclComm_t *comm, int nranks, ncclUniqueId comm_id, int rank);
ncclResult_t ncclCommDestroy(ncclComm_t comm);
ncclResult_t ncclCommCount(const ncclComm_t comm, int *count);
ncclResult_t ncclCommCuDevice(const ncclComm_t comm, int *device);
ncclResult_t ncclCommUserRank(const ncclComm_t comm, int *rank);
ncclResult_t ncclCommGetAsyncError(ncclComm_t comm, ncclResult_t *async_error);

ncclResult_t ncclRedOpCreatePreMulSum(ncclRedOp_t *op, void *scalar, ncclDataType_t datatype,
                                      ncclScalarResidence_t residence, ncclComm_t comm);
ncclResult_t ncclRedOpDestroy(ncclRedOp_t op, ncclComm_t comm);

/* In place when sendbuff == recvbuff; both must lie in device memory. Queued on the stream (recorded
 * when it is being captured); inside a group, queued when the outermost ncclGroupEnd is reached. */
ncclResult_t ncclAllReduce(const void *sendbuff, void *recvbuff, size_t count, ncclDataType_t datatype, ncclRedOp_t op,
                           ncclComm_t comm, cudaStream_t stream);
ncclResult_t ncclGroupStart();
ncclResult_t ncclGroupEnd();

#endif
