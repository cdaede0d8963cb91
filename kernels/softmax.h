// kernels/softmax.h — softmax and log-softmax along one dim, and their gradients.
//
// The op layer moves the softmax dim last (by permuting the Bufs, not the data), so every
// kernel sees rows of C elements:  in, grad, out: [R0, ..., Rk-1, C]  (any strides)
//   softmax               out = exp(x - m) / sum_c exp(x_c - m)        m = max_c x_c
//   log_softmax           out = x - m - log(sum_c exp(x_c - m))
//   softmax_backward      out = y * (dy - sum_c dy_c y_c)              in = y, grad = dy
//   log_softmax_backward  out = dy - exp(y) * sum_c dy_c               in = y (log-probs), grad = dy
// Subtracting the row max keeps exp() in range ("numerically stable softmax"): the largest
// term is exp(0) = 1, so the sum cannot overflow and is at least 1.
// All Bufs share one dtype; bf16/f16 compute in f32.
//
// Causal softmax (forward only; attention's mask fused into the softmax): with causal_t = T > 0
// the rows are the rows of [..., T, C] matrices, row r is row i = r mod T of its matrix, and
// only its first L_i = clamp(i + causal_shift + 1, 0, C) entries take part: out = softmax of
// those, 0 for the rest (as if the rest were -inf), and a row with L_i = 0 is all NaN, as the
// softmax of all -inf is. It saves attention a masking pass forward and backward; the backward
// is the plain softmax backward, since the masked y are 0.
#pragma once
#include <cstdint>

#include "core/buf.h"
#include "kernels/registry.h"

namespace tessel::kernels {

enum class SoftmaxOp : uint8_t { softmax, log_softmax, softmax_backward, log_softmax_backward };

inline bool softmax_is_backward(SoftmaxOp op) {
  return op == SoftmaxOp::softmax_backward || op == SoftmaxOp::log_softmax_backward;
}

struct SoftmaxParams {
  SoftmaxOp op;
  Buf out;                   // y (forward) or dx (backward)
  Buf in;                    // x (forward) or y (backward)
  Buf grad;                  // dy, backward only
  int64_t causal_t = 0;      // > 0: the causal mask above, softmax forward only
  int64_t causal_shift = 0;  // row i keeps columns j <= i + causal_shift
};

// How many leading entries of row r take part (C when there is no causal mask).
inline int64_t softmax_row_length(const SoftmaxParams& p, int64_t r, int64_t C) {
  if (p.causal_t <= 0) return C;
  const int64_t keep = r % p.causal_t + p.causal_shift + 1;
  return keep < 0 ? 0 : (keep > C ? C : keep);
}

Family<SoftmaxParams>& softmax_family();
void softmax_ref(const SoftmaxParams& p);
void softmax_cpu(const SoftmaxParams& p);

}  // namespace tessel::kernels
