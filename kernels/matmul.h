// kernels/matmul.h — batched, strided matrix multiplication (GEMM).
//
//   C[b] = alpha * A[b] @ B[b] + beta * C[b]        for every batch index b
//   A[b]: [M, K]   B[b]: [K, N]   C[b]: [M, N]
//
// Every operand is a Buf of ndim = nb + 2: nb batch dims (the same sizes for all three; a
// broadcast operand has stride 0 there) followed by the matrix dims, each with its own row and
// column stride. A transpose is therefore just swapped strides ("op(A)" in BLAS terms costs
// nothing and needs no flag), and any view — slices, expands, permutes — is accepted as is.
// C must not overlap A or B, and its batch dims must not have stride 0 (each C[b] is written
// once). beta == 0 means C is not read at all (BLAS semantics), so an uninitialised or
// NaN-filled C is fine.
//
// dtypes: A, B and C share one dtype: f32, f64, bf16 or f16. The narrow formats accumulate in
// f32 and round once, when C is written (acc_t<T>).
//
// Cost: 2 M N K flops per batch; at least (M K + K N + 2 M N) elements moved.
//
// Versions: "ref" (the triple loop, accumulating in f64: the oracle) and "cpu" (packed,
// cache-blocked, register-tiled, OpenMP over batch x row blocks).
#pragma once
#include "core/buf.h"
#include "kernels/registry.h"

namespace tessel::kernels {

struct MatmulParams {
  Buf a;  // [batch..., M, K]
  Buf b;  // [batch..., K, N]
  Buf c;  // [batch..., M, N]
  double alpha = 1;
  double beta = 0;
};

Family<MatmulParams>& matmul_family();
void matmul_ref(const MatmulParams& p);
void matmul_cpu(const MatmulParams& p);

}  // namespace tessel::kernels
