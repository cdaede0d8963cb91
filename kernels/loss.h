// kernels/loss.h — classification losses over rows of class scores, fused with their gradient.
//
// input: [N, C] (any strides), target: [N] class indices (i64 or i32; any stride), one per row.
// A row whose target equals ignore_index contributes loss 0 and gradient 0.
//   cross_entropy   lse_n = log sum_c exp(x_nc)  (max-subtracted)
//                   loss_n = lse_n - (1 - eps) x_n,t - eps mean_c x_nc
//                     = (1 - eps) (-log p_n,t) + eps mean_c (-log p_nc)    (label smoothing eps)
//   cross_entropy_backward   dx_nc = (exp(x_nc - lse_n) - (1 - eps) [c == t] - eps / C) g_n
//   nll             loss_n = -x_n,t        (x are log-probabilities)
//   nll_backward    dx_nc = -[c == t] g_n
// g_n (`grad_row`) is dL/dloss_n: the caller folds the reduction (mean: 1/count) into it.
// Forward writes per-row losses and, for cross_entropy, lse (saved for backward, so backward
// needs one pass over the row instead of three). The op reduces the per-row losses.
// Targets must already be validated (in [0, C) or ignore_index): kernels do not check.
// Compute and the loss/lse/grad_row buffers are f32 (f64 for f64 inputs); input and dinput
// share the input dtype.
#pragma once
#include <cstdint>

#include "core/buf.h"
#include "kernels/registry.h"

namespace tessel::kernels {

enum class LossOp : uint8_t { cross_entropy, cross_entropy_backward, nll, nll_backward };

inline bool loss_is_backward(LossOp op) { return op == LossOp::cross_entropy_backward || op == LossOp::nll_backward; }
inline DType loss_acc_dtype(DType t) { return t == DType::f64 ? DType::f64 : DType::f32; }

struct LossParams {
  LossOp op;
  Buf input;     // [N, C] logits (cross_entropy) or log-probabilities (nll)
  Buf target;    // [N] i64 or i32
  Buf loss;      // forward output [N]
  Buf lse;       // [N] cross_entropy: written by forward, read by backward
  Buf grad_row;  // backward input [N] (may have stride 0)
  Buf dinput;    // backward output [N, C]
  double label_smoothing = 0;
  int64_t ignore_index = -100;
};

Family<LossParams>& loss_family();
void loss_ref(const LossParams& p);
void loss_cpu(const LossParams& p);

}  // namespace tessel::kernels
