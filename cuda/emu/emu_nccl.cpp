/* The NCCL subset of the emulated device, over MPI (see emu_nccl.h): a communicator is an MPI
 * communicator of the ranks that share its unique id, a collective is an MPI_Allreduce on the device
 * buffers, run in stream order like any other work of the emulated device. */
#include "emu_nccl.h"

#include "emu_internal.h"

/* MPI's C interface only: the C++ bindings that some mpi.h pull into C++ code need a library of their own. */
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <unistd.h>
#include <vector>

struct ncclComm {
    MPI_Comm mpi;
    int rank, nranks, device;
    std::map<int, double> premul; /* the operators ncclRedOpCreatePreMulSum made: their scalars */
    std::map<int, ncclDataType_t> premul_type;
    int next_op = ncclNumOps;
};

namespace
{

std::mutex comms_mutex;
std::set<ncclComm *> comms; /* the live communicators: a stale or made-up handle is refused */

thread_local std::string last_error;
thread_local int group_depth = 0;
/* Collectives issued inside a group, queued at the outermost ncclGroupEnd. */
thread_local std::vector<std::pair<cudaStream_t, std::function<cudaError_t()>>> grouped;

ncclResult_t fail(ncclResult_t result, const std::string &why)
{
    last_error = why;
    return result;
}

bool live(ncclComm *comm)
{
    std::lock_guard<std::mutex> lock(comms_mutex);
    return comm && comms.count(comm) != 0;
}

bool mpi_ready()
{
    int initialized = 0, finalized = 0;
    MPI_Initialized(&initialized);
    MPI_Finalized(&finalized);
    return initialized && !finalized;
}

size_t type_size(ncclDataType_t t)
{
    return t == ncclInt32 ? 4 : t == ncclFloat32 ? 4 : t == ncclFloat64 ? 8 : 0;
}

MPI_Datatype mpi_type(ncclDataType_t t)
{
    return t == ncclInt32 ? MPI_INT32_T : t == ncclFloat32 ? MPI_FLOAT : MPI_DOUBLE;
}

template <class T> void scale(void *buf, size_t count, double by)
{
    T *x = static_cast<T *>(buf);
    for (size_t i = 0; i < count; i++)
        x[i] = (T)(x[i] * by);
}

void scale_buffer(void *buf, size_t count, ncclDataType_t t, double by)
{
    if (t == ncclInt32)
        scale<int32_t>(buf, count, by);
    else if (t == ncclFloat32)
        scale<float>(buf, count, by);
    else
        scale<double>(buf, count, by);
}

/* MPI counts are int: long buffers go in pieces. */
constexpr size_t kMpiChunk = size_t(1) << 30;

} // namespace

ncclResult_t ncclGetVersion(int *version)
{
    if (!version)
        return fail(ncclInvalidArgument, "ncclGetVersion: version is NULL");
    *version = NCCL_VERSION_CODE;
    return ncclSuccess;
}

const char *ncclGetErrorString(ncclResult_t result)
{
    switch (result) {
    case ncclSuccess:
        return "no error";
    case ncclUnhandledCudaError:
        return "unhandled cuda error (run with NCCL_DEBUG=INFO for details)";
    case ncclSystemError:
        return "unhandled system error (run with NCCL_DEBUG=INFO for details)";
    case ncclInternalError:
        return "internal error - please report this issue to the NCCL developers";
    case ncclInvalidArgument:
        return "invalid argument (run with NCCL_DEBUG=WARN for details)";
    case ncclInvalidUsage:
        return "invalid usage (run with NCCL_DEBUG=WARN for details)";
    case ncclRemoteError:
        return "remote process exited or there was a network error";
    case ncclInProgress:
        return "NCCL operation in progress";
    default:
        return "unknown result code";
    }
}

const char *ncclGetLastError(ncclComm_t comm)
{
    (void)comm;
    return last_error.c_str();
}

ncclResult_t ncclGetUniqueId(ncclUniqueId *unique_id)
{
    if (!unique_id)
        return fail(ncclInvalidArgument, "ncclGetUniqueId: unique_id is NULL");
    /* Unique enough to tell communicators apart: this process, this moment, a counter. */
    static int made = 0;
    const long long when = std::chrono::steady_clock::now().time_since_epoch().count();
    std::memset(unique_id->internal, 0, sizeof unique_id->internal);
    std::snprintf(unique_id->internal, sizeof unique_id->internal, "emu-nccl %d %lld %d", (int)getpid(), when, ++made);
    return ncclSuccess;
}

ncclResult_t ncclCommInitRank(ncclComm_t *comm, int nranks, ncclUniqueId comm_id, int rank)
{
    if (!comm)
        return fail(ncclInvalidArgument, "ncclCommInitRank: comm is NULL");
    *comm = nullptr;
    if (nranks < 1 || rank < 0 || rank >= nranks)
        return fail(ncclInvalidArgument, "ncclCommInitRank: rank " + std::to_string(rank) + " of " +
                                             std::to_string(nranks) + " is out of range");
    if (group_depth > 0)
        return fail(ncclInvalidUsage, "ncclCommInitRank inside a group is not emulated");
    if (!mpi_ready())
        return fail(ncclSystemError, "the emulated NCCL runs over MPI: call MPI_Init first");
    int device = 0;
    cudaGetDevice(&device);
    /* The ranks of one id form one communicator, ordered by their NCCL rank. */
    uint32_t color = 2166136261u; /* FNV-1a of the id */
    for (char c : comm_id.internal)
        color = (color ^ (unsigned char)c) * 16777619u;
    MPI_Comm mpi;
    if (MPI_Comm_split(MPI_COMM_WORLD, (int)(color & 0x7fffffff), rank, &mpi) != MPI_SUCCESS)
        return fail(ncclSystemError, "ncclCommInitRank: MPI_Comm_split failed");
    int size = 0, mine = -1;
    MPI_Comm_size(mpi, &size);
    MPI_Comm_rank(mpi, &mine);
    /* Two ranks of one machine on the same device: NCCL refuses it, and so does the emulation. */
    MPI_Comm node;
    MPI_Comm_split_type(mpi, MPI_COMM_TYPE_SHARED, mine, MPI_INFO_NULL, &node);
    int local = 0, twin = -1;
    MPI_Comm_size(node, &local);
    std::vector<int> devices(local), ranks(local);
    MPI_Allgather(&device, 1, MPI_INT, devices.data(), 1, MPI_INT, node);
    MPI_Allgather(&rank, 1, MPI_INT, ranks.data(), 1, MPI_INT, node);
    MPI_Comm_free(&node);
    for (int i = 0; i < local && twin < 0; i++)
        if (devices[i] == device && ranks[i] != rank)
            twin = ranks[i];
    std::string why;
    ncclResult_t result = ncclSuccess;
    if (size != nranks || mine != rank) {
        result = ncclInvalidUsage;
        why = "ncclCommInitRank: " + std::to_string(size) + " ranks share this id, not " + std::to_string(nranks) +
              ", or two of them claim rank " + std::to_string(rank);
    } else if (twin >= 0) {
        result = ncclInvalidUsage;
        why = "Duplicate GPU detected : rank " + std::to_string(rank) + " and rank " + std::to_string(twin) +
              " both on CUDA device " + std::to_string(device);
    }
    if (result != ncclSuccess) {
        MPI_Comm_free(&mpi);
        return fail(result, why);
    }
    ncclComm *c = new ncclComm();
    c->mpi = mpi;
    c->rank = rank;
    c->nranks = nranks;
    c->device = device;
    std::lock_guard<std::mutex> lock(comms_mutex);
    comms.insert(c);
    *comm = c;
    return ncclSuccess;
}

ncclResult_t ncclCommDestroy(ncclComm_t comm)
{
    if (!comm)
        return ncclSuccess;
    {
        std::lock_guard<std::mutex> lock(comms_mutex);
        if (!comms.erase(comm))
            return fail(ncclInvalidArgument, "ncclCommDestroy: not a live communicator");
    }
    if (mpi_ready())
        MPI_Comm_free(&comm->mpi);
    delete comm;
    return ncclSuccess;
}

ncclResult_t ncclCommCount(const ncclComm_t comm, int *count)
{
    if (!live(comm) || !count)
        return fail(ncclInvalidArgument, "ncclCommCount: bad communicator or NULL count");
    *count = comm->nranks;
    return ncclSuccess;
}

ncclResult_t ncclCommCuDevice(const ncclComm_t comm, int *device)
{
    if (!live(comm) || !device)
        return fail(ncclInvalidArgument, "ncclCommCuDevice: bad communicator or NULL device");
    *device = comm->device;
    return ncclSuccess;
}

ncclResult_t ncclCommUserRank(const ncclComm_t comm, int *rank)
{
    if (!live(comm) || !rank)
        return fail(ncclInvalidArgument, "ncclCommUserRank: bad communicator or NULL rank");
    *rank = comm->rank;
    return ncclSuccess;
}

ncclResult_t ncclCommGetAsyncError(ncclComm_t comm, ncclResult_t *async_error)
{
    if (!live(comm) || !async_error)
        return fail(ncclInvalidArgument, "ncclCommGetAsyncError: bad communicator or NULL result");
    *async_error = ncclSuccess; /* a failed MPI collective ends the job (MPI's default error handler) */
    return ncclSuccess;
}

ncclResult_t ncclRedOpCreatePreMulSum(ncclRedOp_t *op, void *scalar, ncclDataType_t datatype,
                                      ncclScalarResidence_t residence, ncclComm_t comm)
{
    if (!op || !scalar || !live(comm) || type_size(datatype) == 0)
        return fail(ncclInvalidArgument, "ncclRedOpCreatePreMulSum: bad operator, scalar, type or communicator");
    if (residence != ncclScalarHostImmediate)
        return fail(ncclInvalidArgument, "ncclRedOpCreatePreMulSum: only ncclScalarHostImmediate is emulated");
    const double by = datatype == ncclInt32   ? *static_cast<int32_t *>(scalar)
                      : datatype == ncclFloat ? *static_cast<float *>(scalar)
                                              : *static_cast<double *>(scalar);
    const int handle = comm->next_op++;
    comm->premul[handle] = by;
    comm->premul_type[handle] = datatype;
    *op = (ncclRedOp_t)handle;
    return ncclSuccess;
}

ncclResult_t ncclRedOpDestroy(ncclRedOp_t op, ncclComm_t comm)
{
    if (!live(comm) || !comm->premul.erase((int)op))
        return fail(ncclInvalidArgument, "ncclRedOpDestroy: not an operator made for this communicator");
    comm->premul_type.erase((int)op);
    return ncclSuccess;
}

ncclResult_t ncclAllReduce(const void *sendbuff, void *recvbuff, size_t count, ncclDataType_t datatype, ncclRedOp_t op,
                           ncclComm_t comm, cudaStream_t stream)
{
    if (!live(comm))
        return fail(ncclInvalidArgument, "ncclAllReduce: not a live communicator");
    const size_t elem = type_size(datatype), bytes = count * elem;
    if (elem == 0)
        return fail(ncclInvalidArgument, "ncclAllReduce: data type " + std::to_string((int)datatype) +
                                             " is not one the emulation supports (int32, float, double)");
    const bool premul = op >= ncclNumOps;
    if (premul && (!comm->premul.count((int)op) || comm->premul_type[(int)op] != datatype))
        return fail(ncclInvalidArgument, "ncclAllReduce: operator " + std::to_string((int)op) +
                                             " was not made for this communicator and data type");
    if (count == 0)
        return ncclSuccess;
    if (!emu::is_device_range(sendbuff, bytes) || !emu::is_device_range(recvbuff, bytes))
        return fail(ncclInvalidArgument, "ncclAllReduce: sendbuff and recvbuff must each hold " +
                                             std::to_string(bytes) + " bytes of device memory");
    const MPI_Op mpi_op = op == ncclProd ? MPI_PROD : op == ncclMax ? MPI_MAX : op == ncclMin ? MPI_MIN : MPI_SUM;
    const double by = premul ? comm->premul[(int)op] : 1.0;
    const MPI_Comm mpi = comm->mpi;
    const int nranks = comm->nranks;
    auto run = [=]() -> cudaError_t {
        if (sendbuff != recvbuff)
            std::memcpy(recvbuff, sendbuff, bytes);
        if (premul)
            scale_buffer(recvbuff, count, datatype, by);
        for (size_t done = 0; done < count; done += kMpiChunk) {
            const int n = (int)std::min(kMpiChunk, count - done);
            if (MPI_Allreduce(MPI_IN_PLACE, static_cast<char *>(recvbuff) + done * elem, n, mpi_type(datatype), mpi_op,
                              mpi) != MPI_SUCCESS) {
                emu::set_device_fault(cudaErrorLaunchFailure, "ncclAllReduce: MPI_Allreduce failed");
                return cudaErrorLaunchFailure;
            }
        }
        if (op == ncclAvg)
            scale_buffer(recvbuff, count, datatype, 1.0 / nranks);
        return cudaSuccess;
    };
    if (group_depth > 0) {
        grouped.emplace_back(stream, run);
        return ncclSuccess;
    }
    const cudaError_t queued = emu::submit(stream, run, cudaGraphNodeTypeKernel); /* NCCL runs kernels */
    return queued == cudaSuccess
               ? ncclSuccess
               : fail(ncclUnhandledCudaError, std::string("ncclAllReduce: ") + cudaGetErrorString(queued));
}

ncclResult_t ncclGroupStart()
{
    group_depth++;
    return ncclSuccess;
}

ncclResult_t ncclGroupEnd()
{
    if (group_depth == 0)
        return fail(ncclInvalidUsage, "ncclGroupEnd without ncclGroupStart");
    if (--group_depth > 0)
        return ncclSuccess;
    std::vector<std::pair<cudaStream_t, std::function<cudaError_t()>>> ops;
    ops.swap(grouped);
    for (auto &op : ops) {
        const cudaError_t queued = emu::submit(op.first, op.second, cudaGraphNodeTypeKernel);
        if (queued != cudaSuccess)
            return fail(ncclUnhandledCudaError, std::string("ncclGroupEnd: ") + cudaGetErrorString(queued));
    }
    return ncclSuccess;
}
