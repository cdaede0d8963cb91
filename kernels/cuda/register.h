// kernels/cuda/register.h — each CUDA kernel file adds its versions to its family's table.
//
// The family table functions (kernels/<family>.cpp, or the bottom of kernels/cpu/<family>.cpp)
// call these under #if TESSEL_HAVE_CUDA. Explicit calls, not static initializers: a static
// library's linker drops object files nobody references.
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

void register_elementwise_cuda(Family<ElementwiseParams>& fam);
void register_reduce_cuda(Family<ReduceParams>& fam);
void register_softmax_cuda(Family<SoftmaxParams>& fam);
void register_norm_cuda(Family<NormParams>& fam);
void register_loss_cuda(Family<LossParams>& fam);
void register_index_cuda(Family<IndexParams>& fam);
void register_optim_cuda(Family<OptimParams>& fam);

}  // namespace tessel::kernels
