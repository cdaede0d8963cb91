// autograd/ops/softmax.cpp — softmax and log-softmax: forward, then backward right below.
#include "autograd/ops/softmax.h"

#include <cmath>

#include "autograd/engine.h"
#include "autograd/ops/elementwise.h"
#include "autograd/ops/reduce.h"
#include "autograd/ops/view.h"
#include "kernels/softmax.h"

namespace tessel {

using kernels::SoftmaxOp;

namespace {

void check_floating(const Tensor& t, const char* op, const char* what) {
  check(t.defined(), op, what, " is an undefined tensor");
  check(is_floating(t.dtype()), op, "expected a floating ", what, " (f32, f64, bf16 or f16), got ",
        dtype_name(t.dtype()), " of shape ", t.sizes());
}

// t's Buf with `dim` moved last: the kernels' [rows..., C] layout. A 0-dim tensor is one row of one.
Buf dim_last(const Tensor& t, int64_t dim) {
  Buf b = t.buf();
  if (b.ndim == 0) {
    b.ndim = 1;
    b.size[0] = 1;
    b.stride[0] = 1;
    return b;
  }
  Buf r = b;
  int k = 0;
  for (int d = 0; d < b.ndim; ++d)
    if (d != dim) {
      r.size[k] = b.size[d];
      r.stride[k++] = b.stride[d];
    }
  r.size[k] = b.size[dim];
  r.stride[k] = b.stride[dim];
  return r;
}

Tensor run_softmax(SoftmaxOp op, const Tensor& in, const Tensor& grad, int64_t dim, int64_t causal_t = 0,
                   int64_t causal_shift = 0) {
  Tensor out = empty(in.sizes(), {.dtype = in.dtype(), .device = in.device()});
  kernels::SoftmaxParams p;
  p.op = op;
  p.causal_t = causal_t;
  p.causal_shift = causal_shift;
  p.out = dim_last(out, dim);
  p.in = dim_last(in, dim);
  if (grad.defined()) p.grad = dim_last(grad, dim);
  kernels::softmax_family().run(in.device().type, p);
  return out;
}

Tensor softmax_forward(SoftmaxOp op, const Tensor& x, int64_t dim, const char* name) {
  check_floating(x, name, "input");
  int64_t d = wrap_dim(dim, x.dim(), name);
  return run_softmax(op, x, Tensor(), d);
}

// Validates (dy, y) of a backward call; returns the wrapped dim and dy in y's dtype.
std::pair<int64_t, Tensor> prepare_backward(const Tensor& dy, const Tensor& y, int64_t dim, const char* name) {
  check_floating(dy, name, "dy");
  check_floating(y, name, "y");
  check(dy.device() == y.device(), name, "dy and y are on different devices: ", dy.device().str(), " and ",
        y.device().str());
  check(dy.sizes() == y.sizes(), name, "dy has shape ", dy.sizes(), " but y has shape ", y.sizes(),
        "; expected equal shapes");
  int64_t d = wrap_dim(dim, y.dim(), name);
  return {d, dy.dtype() == y.dtype() ? dy : to_dtype(dy, y.dtype())};
}

}  // namespace

Tensor softmax(const Tensor& x, int64_t dim) {
  Tensor y = softmax_forward(SoftmaxOp::softmax, x, dim, "softmax");
  if (needs_grad({x}))
    record(
        "softmax", y, {x},
        [dim](const Tensor& dy, const Tensor& y) { return TensorList{softmax_backward(dy, y, dim)}; }, true);
  return y;
}

Tensor causal_softmax(const Tensor& x) {
  check_floating(x, "causal_softmax", "input");
  check(x.dim() >= 2, "causal_softmax", "expected scores [..., T, S], got shape ", x.sizes());
  const int64_t T = x.size(-2), S = x.size(-1);
  if (!x.device().is_cpu()) {  // the mask as its own op where the device kernel has no causal mode
    Tensor qi = reshape(arange(T, {.dtype = DType::i64, .device = x.device()}), {T, 1});
    Tensor kj = reshape(arange(S, {.dtype = DType::i64, .device = x.device()}), {1, S});
    return softmax(where(gt(kj, qi + (S - T)), scalar_tensor(-INFINITY, {.dtype = x.dtype(), .device = x.device()}), x),
                   -1);
  }
  Tensor y = T == 0 ? empty(x.sizes(), {.dtype = x.dtype(), .device = x.device()})
                    : run_softmax(SoftmaxOp::softmax, x, Tensor(), x.dim() - 1, T, S - T);
  if (needs_grad({x}))
    record(
        "causal_softmax", y, {x},
        [](const Tensor& dy, const Tensor& y) { return TensorList{softmax_backward(dy, y, -1)}; }, true);
  return y;
}

Tensor log_softmax(const Tensor& x, int64_t dim) {
  Tensor y = softmax_forward(SoftmaxOp::log_softmax, x, dim, "log_softmax");
  if (needs_grad({x}))
    record(
        "log_softmax", y, {x},
        [dim](const Tensor& dy, const Tensor& y) { return TensorList{log_softmax_backward(dy, y, dim)}; }, true);
  return y;
}

// When the gradient itself is to be differentiated (create_graph), the formula is composed from
// differentiable ops; otherwise the fused kernel runs.
Tensor softmax_backward(const Tensor& dy, const Tensor& y, int64_t dim) {
  auto [d, g] = prepare_backward(dy, y, dim, "softmax_backward");
  if (needs_grad({g, y})) return mul(y, sub(g, sum(mul(g, y), {d}, true)));
  return run_softmax(SoftmaxOp::softmax_backward, y, g, d);
}

Tensor log_softmax_backward(const Tensor& dy, const Tensor& y, int64_t dim) {
  auto [d, g] = prepare_backward(dy, y, dim, "log_softmax_backward");
  if (needs_grad({g, y})) return sub(g, mul(exp(y), sum(g, {d}, true)));
  return run_softmax(SoftmaxOp::log_softmax_backward, y, g, d);
}

}  // namespace tessel
