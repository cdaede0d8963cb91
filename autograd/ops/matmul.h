// autograd/ops/matmul.h — matrix products: matmul (torch.matmul semantics), bmm, linear, mlp.
//
// matmul(a, b), by the ranks of a and b (like torch.matmul):
//   1-d x 1-d   dot product, a 0-d result
//   2-d x 2-d   the matrix product [M, K] @ [K, N] -> [M, N]
//   1-d x n-d   a is promoted to [1, K]; the prepended dim is removed from the result
//   n-d x 1-d   b is promoted to [K, 1]; the appended dim is removed from the result
//   n-d x n-d   batched: the dims before the last two broadcast (NumPy rules), so
//               [B, 1, M, K] @ [H, K, N] -> [B, H, M, N]
// Both operands must be floating and of the same dtype (f32, f64, bf16, f16; bf16/f16
// accumulate in f32): mixed dtypes are rejected, as in PyTorch's matmul, rather than promoted
// silently — convert one side with to_dtype() first. 0-d operands are rejected (use mul).
// Transposed or otherwise strided operands are used in place (the kernel takes any strides).
//
// Backward: dA = dC @ B^T and dB = A^T @ dC (transposes are views), each summed back over the
// batch dims that broadcasting stretched. The backward is built from matmul itself, so
// double backward works.
//
// linear(x, weight, bias, act): y = act(x @ weight^T + bias) in ONE kernel call — the bias and
// the activation run in the GEMM's epilogue on each tile while it is in cache, so the layer
// reads and writes y once (kernels/matmul.h). act: none, relu, gelu_tanh, gelu_erf, silu.
// Backward: dz = act'(z) * dy, then dx = dz @ weight, dweight = dz^T @ x (over all leading
// dims), dbias = dz summed over rows — on the CPU in the same GEMM as dweight, which sums
// dz^T's rows while it packs them (kernels/matmul.h MatmulParams::a_sums). act'(z): on the CPU
// the GEMM's epilogue stores it beside y when a gradient will be needed (where the unfused
// act(linear(...)) would keep z and evaluate act' in the backward), so dz is one multiply; on
// CUDA z is recomputed by one more GEMM (nothing of size y is saved), and so it is for a double
// backward. relu needs neither: z > 0 exactly where y > 0.
//
// mlp(x, w1, b1, w2, b2, act): linear(linear(x, w1, b1, act), w2, b2), the transformer's
// feed-forward block, as one node whose backward fuses across the two layers: the input
// gradient of the second layer and the activation's gradient are one GEMM, dz = (dy @ w2) *
// act'(z), with act'(z) kept by the first GEMM's epilogue — the activation's backward has no
// pass over memory of its own. CPU training only; elsewhere (CUDA, no gradient, act = none) it
// records the two linear layers, and a double backward uses their unfused formulas.
#pragma once
#include "core/tensor.h"
#include "kernels/matmul.h"

namespace tessel {

Tensor matmul(const Tensor& a, const Tensor& b);
// Strictly 3-d batched product: [B, M, K] @ [B, K, N] -> [B, M, N], no broadcasting.
Tensor bmm(const Tensor& a, const Tensor& b);
// y = x @ weight^T + bias, with weight [out_features, in_features], x [..., in_features] and
// bias (optional: pass an undefined Tensor) [out_features]. y is [..., out_features].
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());
// The fused layer: act(x @ weight^T + bias); bias may be undefined.
using Activation = kernels::Activation;
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias, Activation act);
// The two-layer MLP act(x @ w1^T + b1) @ w2^T + b2 with a fused backward; b1, b2 may be undefined.
Tensor mlp(const Tensor& x, const Tensor& w1, const Tensor& b1, const Tensor& w2, const Tensor& b2, Activation act);

}  // namespace tessel
