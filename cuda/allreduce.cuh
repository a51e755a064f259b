/* Data-parallel training on GPUs: which GPU a rank takes, and the all-reduce of the step's gradient
 * buffer and loss over the ranks. NCCL between the ranks' GPUs where the build has it
 * (CHARRNN_WITH_NCCL), its communicator bootstrapped over MPI as usual (rank 0's unique id broadcast
 * to the others); otherwise, or with CHARRNN_CUDA_ALLREDUCE=host, MPI on a pinned host copy. */
#ifndef CHARRNN_CUDA_ALLREDUCE_CUH
#define CHARRNN_CUDA_ALLREDUCE_CUH

#include "emu/charrnn_cuda.h"

extern "C" {
#include "../common/dist.h"
}

struct GradAllreduce;

/* Makes the rank's GPU (its rank on its machine) the current device; refuses more ranks on a machine
 * than it has GPUs. Called before anything else touches the device. */
int allreduce_pick_device(const Dist *d, Err *e);
/* For gradient buffers of n floats. The NCCL communicator is made at the first all-reduce, where every
 * rank is sure to be. */
GradAllreduce *allreduce_create(const Dist *d, size_t n, Err *e);
void allreduce_destroy(GradAllreduce *g);
/* grads[n] (device memory) times weight, summed over the ranks in place, with *loss likewise; queued
 * on s, and waited for. */
int allreduce_step(GradAllreduce *g, float *grads, size_t n, float weight, float *loss, cudaStream_t s, Err *e);

#endif
