// kernels/cuda_options.h — run-time switches of the CUDA kernels, present in every build.
//
// TF32: on Ampere and later, cuBLAS can run f32 GEMMs on the tensor cores by rounding the
// inputs to TF32 (10-bit mantissa), ~8x faster but with ~1e-3 relative error instead of f32's
// ~1e-7. tessel keeps it OFF by default (an f32 GEMM means f32 accuracy, as in PyTorch since
// 1.12); set_cuda_tf32(true) or the environment variable TESSEL_CUDA_TF32=1 turns it on. It
// affects only the "cublas" matmul version; tessel's own f32 rungs are always exact f32 FMA.
// Without the CUDA backend the switch is kept but has no effect.
#pragma once

namespace tessel {

void set_cuda_tf32(bool on);  // thread-safe; takes effect for the next GEMM
bool cuda_tf32();             // the current setting (initially TESSEL_CUDA_TF32=1 from the environment, else false)

}  // namespace tessel
