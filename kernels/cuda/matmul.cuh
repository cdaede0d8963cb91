// kernels/cuda/matmul.cuh — the CUDA matmul versions (kernels/cuda/matmul*.cu), for the
// family table (register_matmul_cuda) and nothing else: tests and benchmarks call them by name
// through matmul_family().run_version("cuda_tc", ...).
#pragma once
#include "kernels/matmul.h"

namespace tessel::kernels::cuda_gemm {

void matmul_cublas(const MatmulParams& p);  // "cublas": cuBLASLt (kernels/cuda/matmul_cublas.cu)
bool matmul_cublas_accepts(const MatmulParams& p);
void matmul_cuda_wgmma(const MatmulParams& p);  // "cuda_wgmma": sm_90a wgmma (kernels/cuda/matmul_wgmma.cu)
bool matmul_cuda_wgmma_accepts(const MatmulParams& p);
void matmul_cuda_tc(const MatmulParams& p);  // "cuda_tc": mma.sync tensor cores (kernels/cuda/matmul_tc.cu)
bool matmul_cuda_tc_accepts(const MatmulParams& p);
void matmul_cuda_regtile(const MatmulParams& p);  // "cuda_regtile" (kernels/cuda/matmul.cu)
bool matmul_cuda_regtile_accepts(const MatmulParams& p);
void matmul_cuda_tiled(const MatmulParams& p);  // "cuda_tiled"
void matmul_cuda_naive(const MatmulParams& p);  // "cuda_naive"

}  // namespace tessel::kernels::cuda_gemm
