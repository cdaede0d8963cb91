// autograd/ops/attention.h — scaled dot-product attention, the op the models call.
//
//   out = softmax(q k^T * scale + mask) v      q: [..., T, D], k: [..., S, D], v: [..., S, Dv]
//
// causal masks key j > query i + (S - T) (the last query sees every key, as in decoding with
// a cache); a query that sees no key (causal, T > S) gets a NaN row, as the softmax of all -inf
// does. Batch dims broadcast as in matmul.
//
// On the CPU the op is one fused kernel each way (kernels/attention.h, FlashAttention-style
// tiling: O(T + S) memory instead of the [..., T, S] scores), for every floating dtype; the
// forward saves q, k, v, o and the per-row log-sum-exp, and the backward recomputes the
// probabilities from them. The output is laid out in q's memory order: for q the permuted view
// [B, heads, T, hd] of a [B, T, heads, hd] buffer, o is the same view of a fresh [B, T, heads,
// Dv] buffer, so merging the heads back (permute + reshape) is free; the gradients follow q, k
// and v likewise. Elsewhere (CUDA), and for the backward when it is itself recorded
// (create_graph, for double backward), it is attention_composed's formula.
#pragma once
#include "core/tensor.h"

namespace tessel {

struct AttentionOptions {
  bool causal = false;
  double scale = 0;  // 0: 1 / sqrt(D)
};

Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionOptions& options = {});

// The same attention composed from differentiable ops (matmul, causal_softmax or softmax,
// matmul): O(T * S) memory. The definition the fused kernels are tested against, and the path
// of devices without them.
Tensor attention_composed(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionOptions& options = {});

// Rotary position embedding ("RoFormer: Enhanced Transformer with Rotary Position Embedding",
// Su et al.): rotates pairs (x_i, x_{i + D/2}) of the last dim by angle pos * base^(-2i/D),
// positions 0..T-1 along dim -2. x: [..., T, D] with D even.
Tensor rotary_embedding(const Tensor& x, double base = 10000.0);

}  // namespace tessel
