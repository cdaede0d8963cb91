// kernels/cuda/register.h — how the CUDA versions join their families' tables.
//
// Each kernels/cuda/<family>.cu defines register_<family>_cuda(), and the family table function
// (kernels/<family>.cpp, or the bottom of kernels/cpu/<family>.cpp) calls it under
// #if TESSEL_HAVE_CUDA. An explicit call, not a static initializer: a static library's linker
// drops object files that nothing references. One line per family.
#pragma once
#include "kernels/registry.h"

namespace tessel::kernels {

struct ElementwiseParams;
struct ReduceParams;
struct SoftmaxParams;
struct NormParams;
struct LossParams;
struct IndexParams;
struct OptimParams;
struct MatmulParams;

void register_elementwise_cuda(Family<ElementwiseParams>& fam);  // kernels/cuda/elementwise.cu
void register_reduce_cuda(Family<ReduceParams>& fam);            // kernels/cuda/reduce.cu
void register_softmax_cuda(Family<SoftmaxParams>& fam);          // kernels/cuda/softmax.cu
void register_norm_cuda(Family<NormParams>& fam);                // kernels/cuda/norm.cu
void register_loss_cuda(Family<LossParams>& fam);                // kernels/cuda/loss.cu
void register_index_cuda(Family<IndexParams>& fam);              // kernels/cuda/index.cu
void register_optim_cuda(Family<OptimParams>& fam);              // kernels/cuda/optim.cu
void register_matmul_cuda(Family<MatmulParams>& fam);            // kernels/cuda/matmul.cu

}  // namespace tessel::kernels
