// kernels/cuda/register.h — how the CUDA versions join their families' tables.
//
// Each kernels/cuda/<family>.cu defines register_<family>_cuda(), and the family table function
// calls it under #if TESSEL_HAVE_CUDA. An explicit call, not a static initializer: a static
// library's linker drops object files that nothing references. One line per family.
#pragma once
#include "kernels/matmul.h"

namespace tessel::kernels {

void register_matmul_cuda(Family<MatmulParams>& fam);  // kernels/cuda/matmul.cu

}  // namespace tessel::kernels
