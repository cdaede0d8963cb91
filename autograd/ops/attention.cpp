// autograd/ops/attention.cpp — attention composed from differentiable ops (see the header).
#include "autograd/ops/attention.h"

#include <cmath>

#include "autograd/ops/copy.h"
#include "autograd/ops/elementwise.h"
#include "autograd/ops/matmul.h"
#include "autograd/ops/shape.h"
#include "autograd/ops/softmax.h"
#include "autograd/ops/view.h"

namespace tessel {

Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionOptions& o) {
  check(q.defined() && k.defined() && v.defined(), "attention", "got an undefined tensor");
  check(q.dim() >= 2 && k.dim() == q.dim() && v.dim() == q.dim(), "attention",
        "q, k, v must have the same rank >= 2, got ", q.sizes(), ", ", k.sizes(), ", ", v.sizes());
  check(q.size(-1) == k.size(-1), "attention", "q and k head dims differ: q is ", q.sizes(), ", k is ", k.sizes());
  check(k.size(-2) == v.size(-2), "attention", "k and v lengths differ: k is ", k.sizes(), ", v is ", v.sizes());
  const int64_t D = q.size(-1);
  double scale = o.scale != 0 ? o.scale : 1.0 / std::sqrt(static_cast<double>(std::max<int64_t>(D, 1)));
  // The scale goes on q, which is D/S times smaller than the scores; the causal mask lives
  // in the softmax kernel. Both save a pass over the [T, S] scores forward and backward.
  Tensor scores = matmul(q * scale, transpose(k, -1, -2));  // [..., T, S]
  return matmul(o.causal ? causal_softmax(scores) : softmax(scores, -1), v);
}

Tensor rotary_embedding(const Tensor& x, double base) {
  check(x.dim() >= 2 && x.size(-1) % 2 == 0, "rotary_embedding", "expected [..., T, D] with D even, got ", x.sizes());
  const int64_t T = x.size(-2), D = x.size(-1), half = D / 2;
  // angle[t, i] = t * base^(-2i / D), built in f64 then cast to x's dtype
  Tensor pos = reshape(arange(0.0, static_cast<double>(T), 1.0, {.dtype = DType::f64}), {T, 1});
  Tensor inv = exp(arange(0.0, static_cast<double>(half), 1.0, {.dtype = DType::f64}) *
                   (-2.0 * std::log(base) / static_cast<double>(D)));
  Tensor angle = pos * reshape(inv, {1, half});  // [T, half]
  // the table is built on the CPU (cheap, [T, D/2]) and moved to x's device
  Tensor c = to_device(to_dtype(cos(angle), x.dtype()), x.device());
  Tensor s = to_device(to_dtype(sin(angle), x.dtype()), x.device());
  Tensor x1 = slice(x, -1, 0, half), x2 = slice(x, -1, half, D);
  return cat({x1 * c - x2 * s, x2 * c + x1 * s}, -1);
}

}  // namespace tessel
