/* The CUDA runtime API subset of the emulated device: CUDA's names, values and signatures, so that
 * host code of the .cu files in cuda/ compiles unchanged with a host C++ compiler. Error codes, flag values and
 * structure field names are those of the CUDA 13 headers; only the members the backend needs exist,
 * so code that uses anything else fails to compile here instead of silently doing something else.
 * The enumerations have int as their fixed underlying type, as they have in C, so that a wrong value
 * passed by mistake is one the emulator can reject rather than undefined behaviour.
 *
 * Work submitted to a stream (kernels, asynchronous copies and memsets, cuBLAS products, graph
 * launches) is queued and runs on the device's worker thread, in submission order, only once the host
 * waits for it (see README.md): a host read before the wait sees the old data, and a host buffer
 * changed before the wait changes what a queued copy sends. */
#ifndef CHARRNN_EMU_RUNTIME_H
#define CHARRNN_EMU_RUNTIME_H

#include <cstddef>
#include <cstdint>
#include <functional>

/* ---- Vector types (CUDA's vector_types.h layout and alignment) ---- */

struct uint3 {
    unsigned int x, y, z;
};
struct dim3 {
    unsigned int x, y, z;
    constexpr dim3(unsigned int vx = 1, unsigned int vy = 1, unsigned int vz = 1) : x(vx), y(vy), z(vz) {}
    constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
    constexpr operator uint3() const { return uint3{x, y, z}; }
};
struct alignas(8) float2 {
    float x, y;
};
struct alignas(16) float4 {
    float x, y, z, w;
};
struct alignas(8) int2 {
    int x, y;
};
struct alignas(16) int4 {
    int x, y, z, w;
};
struct alignas(8) uint2 {
    unsigned int x, y;
};

/* ---- Error codes (values of driver_types.h) ---- */

enum cudaError : int {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorInvalidDevicePointer = 17,
    cudaErrorInvalidMemcpyDirection = 21,
    cudaErrorInsufficientDriver = 35,
    cudaErrorInvalidDeviceFunction = 98,
    cudaErrorNoDevice = 100,
    cudaErrorInvalidDevice = 101,
    cudaErrorInvalidResourceHandle = 400,
    cudaErrorIllegalState = 401,
    cudaErrorNotReady = 600,
    cudaErrorIllegalAddress = 700,
    cudaErrorLaunchOutOfResources = 701,
    cudaErrorAssert = 710,
    cudaErrorLaunchFailure = 719,
    cudaErrorCooperativeLaunchTooLarge = 720,
    cudaErrorNotSupported = 801,
    cudaErrorStreamCaptureUnsupported = 900,
    cudaErrorStreamCaptureInvalidated = 901,
};
typedef enum cudaError cudaError_t;

/* ---- Handles and flags ---- */

typedef struct CUstream_st *cudaStream_t;
typedef struct CUevent_st *cudaEvent_t;
typedef struct CUgraph_st *cudaGraph_t;
typedef struct CUgraphExec_st *cudaGraphExec_t;
typedef struct CUgraphNode_st *cudaGraphNode_t;

#define cudaStreamDefault 0x00
#define cudaStreamNonBlocking 0x01
#define cudaStreamLegacy ((cudaStream_t)0x1)
#define cudaStreamPerThread ((cudaStream_t)0x2)
#define cudaEventDefault 0x00
#define cudaEventBlockingSync 0x01
#define cudaEventDisableTiming 0x02

enum cudaMemcpyKind : int {
    cudaMemcpyHostToHost = 0,
    cudaMemcpyHostToDevice = 1,
    cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3,
    cudaMemcpyDefault = 4,
};
enum cudaFuncAttribute : int {
    cudaFuncAttributeMaxDynamicSharedMemorySize = 8,
};
enum cudaDeviceAttr : int {
    cudaDevAttrMaxThreadsPerBlock = 1,
    cudaDevAttrMaxSharedMemoryPerBlock = 8,
    cudaDevAttrWarpSize = 10,
    cudaDevAttrMultiProcessorCount = 16,
    cudaDevAttrMaxThreadsPerMultiProcessor = 39,
    cudaDevAttrComputeCapabilityMajor = 75,
    cudaDevAttrComputeCapabilityMinor = 76,
    cudaDevAttrMaxSharedMemoryPerMultiprocessor = 81,
    cudaDevAttrCooperativeLaunch = 95,
    cudaDevAttrMaxSharedMemoryPerBlockOptin = 97,
    cudaDevAttrMaxBlocksPerMultiprocessor = 106,
};
enum cudaStreamCaptureMode : int {
    cudaStreamCaptureModeGlobal = 0,
    cudaStreamCaptureModeThreadLocal = 1,
    cudaStreamCaptureModeRelaxed = 2,
};
enum cudaStreamCaptureStatus : int {
    cudaStreamCaptureStatusNone = 0,
    cudaStreamCaptureStatusActive = 1,
    cudaStreamCaptureStatusInvalidated = 2,
};

enum cudaGraphNodeType : int {
    cudaGraphNodeTypeKernel = 0,
    cudaGraphNodeTypeMemcpy = 1,
    cudaGraphNodeTypeMemset = 2,
    cudaGraphNodeTypeEventRecord = 7,
};

/* Launch attributes (cudaLaunchKernelEx, kernel nodes of a graph): the members charrnn uses. */
enum cudaLaunchAttributeID : int {
    cudaLaunchAttributeIgnore = 0,
    cudaLaunchAttributeCooperative = 2,
};
#define cudaKernelNodeAttrID cudaLaunchAttributeID
#define cudaKernelNodeAttributeCooperative cudaLaunchAttributeCooperative
union cudaLaunchAttributeValue {
    char pad[64];
    int cooperative; /* nonzero: a cooperative kernel, whose blocks may all meet at grid.sync() */
};
#define cudaKernelNodeAttrValue cudaLaunchAttributeValue
struct cudaLaunchAttribute {
    cudaLaunchAttributeID id;
    cudaLaunchAttributeValue val;
};
struct cudaLaunchConfig_t {
    dim3 gridDim;
    dim3 blockDim;
    size_t dynamicSmemBytes;
    cudaStream_t stream;
    cudaLaunchAttribute *attrs;
    unsigned int numAttrs;
};

/* What cudaFuncGetAttributes reports of a kernel: on the emulated device, the sm_90 build's figures
 * (registers, stack, static shared memory) from the table generated from nvcc --resource-usage. */
struct cudaFuncAttributes {
    size_t sharedSizeBytes;
    size_t constSizeBytes;
    size_t localSizeBytes;
    int maxThreadsPerBlock;
    int numRegs;
    int ptxVersion;
    int binaryVersion;
    int cacheModeCA;
    int maxDynamicSharedSizeBytes;
};

/* The members of cudaDeviceProp the emulated device fills in (same names as CUDA 13). */
struct cudaDeviceProp {
    char name[256];
    size_t totalGlobalMem;
    size_t sharedMemPerBlock;
    int regsPerBlock;
    int warpSize;
    int maxThreadsPerBlock;
    int maxThreadsDim[3];
    int maxGridSize[3];
    size_t totalConstMem;
    int major;
    int minor;
    int multiProcessorCount;
    int concurrentKernels;
    int asyncEngineCount;
    int unifiedAddressing;
    int l2CacheSize;
    int maxThreadsPerMultiProcessor;
    size_t sharedMemPerMultiprocessor;
    int regsPerMultiprocessor;
    int cooperativeLaunch;
    size_t sharedMemPerBlockOptin;
    int maxBlocksPerMultiProcessor;
    size_t reservedSharedMemPerBlock;
};

/* ---- Device, errors ---- */

cudaError_t cudaGetDeviceCount(int *count);
cudaError_t cudaRuntimeGetVersion(int *version); /* the CUDA version the emulator models, as 1000 major + 10 minor */
cudaError_t cudaDriverGetVersion(int *version);
cudaError_t cudaGetDevice(int *device);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *prop, int device);
cudaError_t cudaDeviceGetAttribute(int *value, cudaDeviceAttr attr, int device);
cudaError_t cudaDeviceSynchronize(void);
/* Frees every allocation, stream, event and graph and clears a sticky kernel fault. */
cudaError_t cudaDeviceReset(void);
cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes);
cudaError_t cudaGetLastError(void);
cudaError_t cudaPeekAtLastError(void);
const char *cudaGetErrorString(cudaError_t error);
const char *cudaGetErrorName(cudaError_t error);

/* ---- Memory ---- */

cudaError_t cudaMalloc(void **dev_ptr, size_t size);
cudaError_t cudaFree(void *dev_ptr);
cudaError_t cudaMallocHost(void **ptr, size_t size);
cudaError_t cudaFreeHost(void *ptr);
cudaError_t cudaMemcpy(void *dst, const void *src, size_t count, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t count, cudaMemcpyKind kind, cudaStream_t stream = 0);
cudaError_t cudaMemset(void *dev_ptr, int value, size_t count);
cudaError_t cudaMemsetAsync(void *dev_ptr, int value, size_t count, cudaStream_t stream = 0);

template <class T> cudaError_t cudaMalloc(T **dev_ptr, size_t size)
{
    return cudaMalloc(reinterpret_cast<void **>(dev_ptr), size);
}
template <class T> cudaError_t cudaMallocHost(T **ptr, size_t size)
{
    return cudaMallocHost(reinterpret_cast<void **>(ptr), size);
}

/* ---- Streams, events, graphs ---- */

cudaError_t cudaStreamCreate(cudaStream_t *stream);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *stream, unsigned int flags);
cudaError_t cudaStreamDestroy(cudaStream_t stream);
cudaError_t cudaStreamSynchronize(cudaStream_t stream);
cudaError_t cudaStreamQuery(cudaStream_t stream);
cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned int flags = 0);
cudaError_t cudaEventCreate(cudaEvent_t *event);
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *event, unsigned int flags);
cudaError_t cudaEventDestroy(cudaEvent_t event);
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream = 0);
cudaError_t cudaEventSynchronize(cudaEvent_t event);
cudaError_t cudaEventQuery(cudaEvent_t event);
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t end);

/* Stream capture records the work submitted to a stream instead of running it; launching the
 * instantiated graph replays it in order, with the kernel arguments captured at capture time. A
 * captured copy whose host side is not inside one cudaMallocHost buffer is refused with
 * cudaErrorStreamCaptureUnsupported (stricter than CUDA, see README.md). */
cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode mode);
cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t *graph);
cudaError_t cudaStreamIsCapturing(cudaStream_t stream, cudaStreamCaptureStatus *status);
cudaError_t cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t graph, unsigned long long flags = 0);
/* The nodes of a graph, in capture order: with nodes NULL, *count is set to their number; else up to
 * *count handles are written and *count is set to how many were. */
cudaError_t cudaGraphGetNodes(cudaGraph_t graph, cudaGraphNode_t *nodes, size_t *count);
cudaError_t cudaGraphNodeGetType(cudaGraphNode_t node, cudaGraphNodeType *type);
/* A kernel node's attribute (cudaLaunchAttributeCooperative only); cudaErrorInvalidValue for a node
 * that is not a kernel. */
cudaError_t cudaGraphKernelNodeGetAttribute(cudaGraphNode_t node, cudaKernelNodeAttrID attr,
                                            cudaKernelNodeAttrValue *value);
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream);
cudaError_t cudaGraphDestroy(cudaGraph_t graph);
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec);

/* ---- Kernels: attributes, occupancy, launch (the launch templates are in emu_kernel.h) ---- */

namespace emu
{
/* What the launch templates hand to the runtime; `body` runs the kernel once for the calling
 * emulated thread, with its own copy of the arguments. */
struct LaunchRequest {
    const void *func;
    const char *name;
    dim3 grid, block;
    size_t shared_bytes;
    cudaStream_t stream;
    bool cooperative;
    /* Cooperative through the launch attribute (cudaLaunchKernelEx), which CUDA documents for graph
     * kernel nodes; a plain cudaLaunchCooperativeKernel captured into a graph becomes an ordinary
     * node here (README.md). */
    bool cooperative_attribute;
};
cudaError_t launch(const LaunchRequest &request, std::function<void()> body);
/* cudaLaunchKernelEx's work: the attributes checked, then launch(). emu_kernel.h defines gridDim and
 * blockDim as macros, so the configuration's members of those names are read here, before it. */
cudaError_t launch_with_config(const cudaLaunchConfig_t *config, const void *func, const char *name,
                               std::function<void()> body);
inline dim3 config_grid(const cudaLaunchConfig_t *config)
{
    return config->gridDim;
}
inline dim3 config_block(const cudaLaunchConfig_t *config)
{
    return config->blockDim;
}
inline cudaLaunchConfig_t cooperative_config(dim3 grid, dim3 block, size_t shared_bytes, cudaStream_t stream,
                                             cudaLaunchAttribute *attribute)
{
    attribute->id = cudaLaunchAttributeCooperative;
    attribute->val = cudaLaunchAttributeValue();
    attribute->val.cooperative = 1;
    cudaLaunchConfig_t config = {grid, block, shared_bytes, stream, attribute, 1};
    return config;
}
cudaError_t set_function_attribute(const void *func, cudaFuncAttribute attr, int value);
cudaError_t max_active_blocks(int *num_blocks, const void *func, int block_size, size_t dynamic_shared_bytes);
cudaError_t function_attributes(cudaFuncAttributes *attributes, const void *func);
} // namespace emu

template <class T> cudaError_t cudaFuncSetAttribute(T *func, cudaFuncAttribute attr, int value)
{
    return emu::set_function_attribute(reinterpret_cast<const void *>(func), attr, value);
}
/* Counts threads, blocks, shared memory (static and dynamic) and registers per SM, the kernel's
 * registers and static shared memory taken from the sm_90 build (README.md). */
template <class T>
cudaError_t cudaOccupancyMaxActiveBlocksPerMultiprocessor(int *num_blocks, T *func, int block_size,
                                                          size_t dynamic_shared_bytes)
{
    return emu::max_active_blocks(num_blocks, reinterpret_cast<const void *>(func), block_size, dynamic_shared_bytes);
}
template <class T> cudaError_t cudaFuncGetAttributes(cudaFuncAttributes *attributes, T *func)
{
    return emu::function_attributes(attributes, reinterpret_cast<const void *>(func));
}

#endif
