// autograd/ops/loss.h — losses: cross-entropy (fused with log-softmax), NLL, mean squared error.
//
// Class-index losses take scores whose LAST dim is the class dim: logits [..., C] with targets
// [...] (logits' shape without the class dim), i64 or i32. For [N, C] that is PyTorch's layout;
// for more dims it is the language-model layout ([B, T, C] logits, [B, T] targets), not
// PyTorch's [N, C, d1, ...]. Every target must be in [0, C) or equal ignore_index; anything else
// throws a tessel::Error naming the value, its position and C (checked before any kernel runs).
//
// Reductions: none keeps targets' shape; sum adds every row's loss; mean divides the sum by the
// number of rows not ignored (0/0 = NaN when every row is ignored, like PyTorch; the gradient is
// then 0). Results have the scores' dtype; bf16/f16 compute in f32.
//
// cross_entropy and nll_loss have fused backward kernels that are not differentiable again:
// backward with create_graph=true through them throws. mse_loss is composed from
// differentiable ops and supports higher-order gradients.
#pragma once
#include <cstdint>

#include "core/tensor.h"

namespace tessel {

enum class Reduction { none, mean, sum };

struct CrossEntropyOptions {
  // eps in [0, 1): the target distribution is (1 - eps) one_hot + eps / C (PyTorch semantics).
  double label_smoothing = 0;
  int64_t ignore_index = -100;
  Reduction reduction = Reduction::mean;
};

struct NllLossOptions {
  int64_t ignore_index = -100;
  Reduction reduction = Reduction::mean;
};

// loss_n = -log softmax(logits_n)[t_n] (with label smoothing: (1 - eps) of that plus eps times
// the mean over classes of -log softmax(logits_n)).
Tensor cross_entropy(const Tensor& logits, const Tensor& targets, const CrossEntropyOptions& options = {});
// loss_n = -log_probs_n[t_n]; log_probs is usually log_softmax(logits, -1).
Tensor nll_loss(const Tensor& log_probs, const Tensor& targets, const NllLossOptions& options = {});
// (input - target)^2, reduced; shapes must be equal.
Tensor mse_loss(const Tensor& input, const Tensor& target, Reduction reduction = Reduction::mean);

}  // namespace tessel
