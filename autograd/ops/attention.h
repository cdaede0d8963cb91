// autograd/ops/attention.h — scaled dot-product attention, the op the models call.
//
//   out = softmax(q k^T * scale + mask) v      q: [..., T, D], k: [..., S, D], v: [..., S, Dv]
//
// causal masks key j > query i + (S - T) (the last query sees every key, as in decoding with
// a cache). Today the op is composed from matmul, a mask and softmax, so its memory is
// O(T * S) per head; the fused attention family (FlashAttention-style tiling) replaces this
// body without changing the signature, so models written against it need no change.
#pragma once
#include "core/tensor.h"

namespace tessel {

struct AttentionOptions {
  bool causal = false;
  double scale = 0;  // 0: 1 / sqrt(D)
};

Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionOptions& options = {});

// Rotary position embedding ("RoFormer: Enhanced Transformer with Rotary Position Embedding",
// Su et al.): rotates pairs (x_i, x_{i + D/2}) of the last dim by angle pos * base^(-2i/D),
// positions 0..T-1 along dim -2. x: [..., T, D] with D even.
Tensor rotary_embedding(const Tensor& x, double base = 10000.0);

}  // namespace tessel
