// autograd/gradcheck.h — checks an op's backward against central finite differences in f64.
//
// For a function f of tensors returning one tensor, draw a fixed random r of f's output shape
// and compare, for every element x_j of every input that requires grad,
//   analytic  d/dx_j sum(f(x) * r)          (one backward pass)
//   numeric   (sum(f(x + e_j h) * r) - sum(f(x - e_j h) * r)) / 2h
// An element passes when |analytic - numeric| <= atol + rtol |numeric|. The random projection r
// checks the whole vector-Jacobian product, not only the gradient of sum(f).
#pragma once
#include <functional>
#include <string>

#include "autograd/node.h"

namespace tessel {

struct GradcheckOptions {
  double eps = 1e-6;
  double atol = 1e-6;
  double rtol = 1e-4;
  uint64_t seed = 1234;  // for r
};

struct GradcheckResult {
  bool ok = true;
  int input = -1;        // where the worst element is
  int64_t element = -1;  // flat index into that input
  double analytic = 0, numeric = 0;
  double worst_ratio = 0;  // |a - n| / (atol + rtol |n|) at the worst element; <= 1 passes
  std::string message;     // a readable report of the worst element
};

using TensorFn = std::function<Tensor(const TensorList&)>;

// Inputs must be f64 CPU tensors; those with requires_grad set are checked.
GradcheckResult gradcheck(const TensorFn& f, const TensorList& inputs, GradcheckOptions opts = {});

}  // namespace tessel
