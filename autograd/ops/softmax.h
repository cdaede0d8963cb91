// autograd/ops/softmax.h — softmax and log-softmax along one dim of a floating tensor.
//
// Any rank, any strides, any dim (negative counts from the end); f32, f64, bf16, f16 (bf16 and
// f16 compute in f32). The results are contiguous tensors of x's shape and dtype.
//
// Gradients: softmax_backward / log_softmax_backward are the fused kernels the ops' backward
// uses, exposed so that layers fusing their own backward can call them. They are themselves
// differentiable: when grad mode is on and dy or y requires grad (backward with
// create_graph=true), they compose the same formula from differentiable ops instead of the
// kernel, so double backward through softmax and log_softmax works.
#pragma once
#include "core/tensor.h"

namespace tessel {

Tensor softmax(const Tensor& x, int64_t dim);
Tensor log_softmax(const Tensor& x, int64_t dim);

// Softmax over the last dim of attention scores x [..., T, S] under the causal mask: entry
// (i, j) takes part only if j <= i + (S - T) — query i sees the keys up to its own position
// when the T queries are the last T of the S keys — and masked entries get probability 0.
// Equal to softmax(where(j > i + S - T, -inf, x), -1), in one pass on the CPU (the mask lives
// in the kernel); the gradient is softmax's. A query that sees no key (T > S) gets NaN, as the
// softmax of all -inf does.
Tensor causal_softmax(const Tensor& x);

// dx = y * (dy - sum_dim(dy * y))     y = softmax(x, dim)
Tensor softmax_backward(const Tensor& dy, const Tensor& y, int64_t dim);
// dx = dy - exp(y) * sum_dim(dy)      y = log_softmax(x, dim)
Tensor log_softmax_backward(const Tensor& dy, const Tensor& y, int64_t dim);

}  // namespace tessel
