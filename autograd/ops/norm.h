// autograd/ops/norm.h — LayerNorm and RMSNorm over the trailing dims of a tensor.
//
// `normalized_shape` names the trailing dims normalized together (x.sizes() must end with it);
// weight and bias are optional (pass an undefined Tensor) and, when given, have exactly
// normalized_shape and x's dtype. f32, f64, bf16 and f16 (statistics in f32; f64 for f64).
// x of any strides is accepted: the op packs it with contiguous() first (a differentiable copy,
// free when x is already contiguous).
//
// Backward is one fused kernel producing dx, dweight and dbias from the saved per-row mean and
// 1/std. It is not itself differentiable: backward with create_graph=true through these ops
// throws a tessel::Error (double backward is not supported).
#pragma once
#include "core/tensor.h"

namespace tessel {

// y = (x - mean) / sqrt(var + eps) * weight + bias, mean and biased var over the trailing dims.
Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight = Tensor(),
                  const Tensor& bias = Tensor(), double eps = 1e-5);
// y = x / sqrt(mean(x^2) + eps) * weight, the mean over the trailing dims.
Tensor rms_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight = Tensor(), double eps = 1e-6);

}  // namespace tessel
