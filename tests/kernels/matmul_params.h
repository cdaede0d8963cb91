// tests/kernels/matmul_params.h — MatmulParams over tensors, for the CPU and CUDA matmul tests.
#pragma once
#include "core/tensor.h"
#include "kernels/matmul.h"

namespace tessel::testing {

// Every epilogue activation, for tests that loop over them.
inline constexpr kernels::Activation kAllActivations[] = {kernels::Activation::none, kernels::Activation::relu,
                                                          kernels::Activation::gelu_tanh, kernels::Activation::gelu_erf,
                                                          kernels::Activation::silu};

// C = act(alpha A B + beta C + bias) on the tensors' Bufs; an undefined bias means none.
inline kernels::MatmulParams matmul_params(const Tensor& a, const Tensor& b, const Tensor& c, double alpha = 1,
                                           double beta = 0, const Tensor& bias = Tensor(),
                                           kernels::Activation act = kernels::Activation::none) {
  kernels::MatmulParams p{.a = a.buf(), .b = b.buf(), .c = c.buf(), .alpha = alpha, .beta = beta, .act = act};
  if (bias.defined()) p.bias = bias.buf();
  return p;
}

}  // namespace tessel::testing
