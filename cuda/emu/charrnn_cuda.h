/* The one header every .cu file of cuda/ includes. Under nvcc it is the real CUDA runtime, cuBLAS
 * and cooperative groups (and NCCL in a build with CHARRNN_WITH_NCCL); compiled by a host C++ compiler
 * it is the emulated device of cuda/emu/ (see README.md there). It also defines the three spellings that must differ
 * between the two:
 *
 *   LAUNCH(kernel, grid, block, smem, stream)(args...)              a kernel launch (`<<<>>>`)
 *   LAUNCH_COOPERATIVE(kernel, grid, block, smem, stream)(args...)  a grid-synchronised launch
 *                                                                   (cudaLaunchKernelEx with the
 *                                                                   cooperative attribute); returns
 *                                                                   its cudaError_t
 *   EXTERN_SHARED(T, name);                                         `extern __shared__ T name[];`
 *
 * A kernel template with several arguments is named in parentheses: LAUNCH((k<256, float>), ...). */
#ifndef CHARRNN_CUDA_H
#define CHARRNN_CUDA_H

#ifdef __CUDACC__

#include <cooperative_groups.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>
#ifdef CHARRNN_WITH_NCCL
#include <nccl.h>
#endif
#include <utility>

#define LAUNCH(kernel, grid, block, smem, stream) kernel<<<grid, block, smem, stream>>>
#define EXTERN_SHARED(T, name) extern __shared__ __align__(16) T name[]

/* A cooperative launch through cudaLaunchKernelEx with the cudaLaunchAttributeCooperative attribute,
 * which CUDA documents for launches and for graph kernel nodes alike (a plain
 * cudaLaunchCooperativeKernel captured into a graph is not documented to stay cooperative). */
template <class... Params> struct CharrnnCooperativeLauncher {
    void (*kernel)(Params...);
    dim3 grid, block;
    size_t smem;
    cudaStream_t stream;

    template <class... Args> cudaError_t operator()(Args &&...args) const
    {
        cudaLaunchAttribute attribute;
        attribute.id = cudaLaunchAttributeCooperative;
        attribute.val.cooperative = 1;
        cudaLaunchConfig_t config = {};
        config.gridDim = grid;
        config.blockDim = block;
        config.dynamicSmemBytes = smem;
        config.stream = stream;
        config.attrs = &attribute;
        config.numAttrs = 1;
        return cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...);
    }
};
template <class... Params>
CharrnnCooperativeLauncher<Params...> charrnn_cooperative_launcher(void (*kernel)(Params...), dim3 grid, dim3 block,
                                                                   size_t smem, cudaStream_t stream)
{
    return CharrnnCooperativeLauncher<Params...>{kernel, grid, block, smem, stream};
}
#define LAUNCH_COOPERATIVE(kernel, grid, block, smem, stream)                                                          \
    charrnn_cooperative_launcher(kernel, grid, block, smem, stream)

#else

#include "emu_cublas.h"
#include "emu_kernel.h"
#ifdef CHARRNN_WITH_NCCL
#include "emu_nccl.h"
#endif

#define LAUNCH(kernel, grid, block, smem, stream) ::emu::make_launcher(kernel, grid, block, smem, stream, #kernel)
#define LAUNCH_COOPERATIVE(kernel, grid, block, smem, stream)                                                          \
    ::emu::make_cooperative_launcher(kernel, grid, block, smem, stream, #kernel)

#endif
#endif
