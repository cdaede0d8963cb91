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
  Buf out;   // y (forward) or dx (backward)
  Buf in;    // x (forward) or y (backward)
  Buf grad;  // dy, backward only
};

Family<SoftmaxParams>& softmax_family();
void softmax_ref(const SoftmaxParams& p);
void softmax_cpu(const SoftmaxParams& p);

}  // namespace tessel::kernels
