// autograd/ops/attention.cpp — attention: the fused kernels on the CPU, the composed formula
// elsewhere (see the header); forward, then backward right below.
#include "autograd/ops/attention.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "autograd/engine.h"
#include "autograd/ops/copy.h"
#include "autograd/ops/elementwise.h"
#include "autograd/ops/matmul.h"
#include "autograd/ops/shape.h"
#include "autograd/ops/softmax.h"
#include "autograd/ops/view.h"
#include "core/shape.h"
#include "kernels/attention.h"

namespace tessel {

namespace {

// Validates q, k, v (shapes only: dtypes and devices are the ops' business) and returns the
// scale, 1 / sqrt(D) when the options leave it 0.
double checked_scale(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionOptions& o) {
  check(q.defined() && k.defined() && v.defined(), "attention", "got an undefined tensor");
  check(q.dim() >= 2 && k.dim() == q.dim() && v.dim() == q.dim(), "attention",
        "q, k, v must have the same rank >= 2, got ", q.sizes(), ", ", k.sizes(), ", ", v.sizes());
  check(q.size(-1) == k.size(-1), "attention", "q and k head dims differ: q is ", q.sizes(), ", k is ", k.sizes());
  check(k.size(-2) == v.size(-2), "attention", "k and v lengths differ: k is ", k.sizes(), ", v is ", v.sizes());
  return o.scale != 0 ? o.scale : 1.0 / std::sqrt(static_cast<double>(std::max<int64_t>(q.size(-1), 1)));
}

Shape batch_of(const Tensor& t) { return Shape(t.sizes().begin(), t.sizes().end() - 2); }

// An uninitialized tensor of `sizes` laid out in `like`'s memory order: the leading dims nested
// as like's strides nest them (outermost = largest stride), the last dim innermost. For like =
// the permuted view [B, h, T, hd] of a [B, T, h, hd] buffer this is the same view of a fresh
// [B, T, h, sizes.back()] buffer.
Tensor empty_in_order_of(const Tensor& like, const Shape& sizes) {
  const int64_t n = like.dim();
  std::vector<int64_t> order(static_cast<size_t>(n - 1));
  std::iota(order.begin(), order.end(), int64_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return like.strides()[a] > like.strides()[b]; });
  order.push_back(n - 1);
  Shape physical(static_cast<size_t>(n)), strides(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) physical[i] = sizes[order[i]];
  const Shape contiguous = contiguous_strides(physical);
  for (int64_t i = 0; i < n; ++i) strides[order[i]] = contiguous[i];
  return empty(physical, {.dtype = like.dtype(), .device = like.device()}).alias(sizes, strides, 0);
}

// The gradients by the composed formula, from differentiable ops: what the backward returns
// when it is itself being recorded (create_graph), so that double backward works.
//   P = softmax(scale q k^T) (masked), dv = P^T g, dS = softmax_backward(g v^T, P),
//   dq = scale dS k, dk = dS^T (scale q)
TensorList composed_gradients(const Tensor& g, const Tensor& q, const Tensor& k, const Tensor& v, bool causal,
                              double scale) {
  Tensor qs = q * scale;
  Tensor scores = matmul(qs, transpose(k, -1, -2));
  Tensor P = causal ? causal_softmax(scores) : softmax(scores, -1);
  Tensor ds = softmax_backward(matmul(g, transpose(v, -1, -2)), P, -1);
  return {matmul(ds, k) * scale, matmul(transpose(ds, -1, -2), qs), matmul(transpose(P, -1, -2), g)};
}

// The fused path: q, k, v with one batch shape, on a device with a kernel that takes them; p
// holds their Bufs and the options.
Tensor attention_fused(const Tensor& q, const Tensor& k, const Tensor& v, kernels::AttentionParams p) {
  Shape osz = q.sizes();
  osz.back() = v.size(-1);
  Tensor o = empty_in_order_of(q, osz);
  Tensor lse = empty(Shape(q.sizes().begin(), q.sizes().end() - 1),
                     {.dtype = kernels::attention_lse_dtype(q.dtype()), .device = q.device()});
  p.o = o.buf();
  p.lse = lse.buf();
  kernels::attention_family().run(q.device().type, p);
  if (needs_grad({q, k, v}))
    record(
        "attention", o, {q, k, v},
        // Saved: q, k, v (version-checked), o (by record) and lse; the backward reads them
        // through the forward's Bufs.
        [sq = Saved(q, "attention"), sk = Saved(k, "attention"), sv = Saved(v, "attention"), lse, p](const Tensor& g,
                                                                                                     const Tensor&) {
          const Tensor &q = sq.get(), &k = sk.get(), &v = sv.get();
          if (GradMode::is_enabled()) return composed_gradients(g, q, k, v, p.causal, p.scale);
          Tensor dq = empty_in_order_of(q, q.sizes()), dk = empty_in_order_of(k, k.sizes()),
                 dv = empty_in_order_of(v, v.sizes());
          Tensor dout = g.dtype() == q.dtype() ? g : to_dtype(g, q.dtype());
          kernels::attention_family().run(
              q.device().type, kernels::attention_backward_params(p, dout.buf(), dq.buf(), dk.buf(), dv.buf()));
          return TensorList{dq, dk, dv};
        },
        true);  // saves o (version-checked), which p.o points at
  return o;
}

}  // namespace

Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionOptions& o) {
  const double scale = checked_scale(q, k, v, o);
  // Mixed dtypes or devices, and ranks a kernel Buf cannot hold, take the composed path, whose
  // ops report what is wrong or handle it.
  const bool uniform = is_floating(q.dtype()) && k.dtype() == q.dtype() && v.dtype() == q.dtype() &&
                       k.device() == q.device() && v.device() == q.device() && q.dim() <= kMaxDims;
  if (!uniform) return attention_composed(q, k, v, o);
  const Shape batch =
      broadcast_shapes(broadcast_shapes(batch_of(q), batch_of(k), "attention"), batch_of(v), "attention");
  auto full = [&](const Tensor& t) {  // t with the common batch dims (a broadcast view)
    Shape s = batch;
    s.insert(s.end(), {t.size(-2), t.size(-1)});
    return t.sizes() == s ? t : broadcast_to(t, s);
  };
  const Tensor qf = full(q), kf = full(k), vf = full(v);
  kernels::AttentionParams p;
  p.causal = o.causal;
  p.scale = scale;
  p.q = qf.buf();
  p.k = kf.buf();
  p.v = vf.buf();
  if (!kernels::attention_family().can_run(q.device().type, p)) return attention_composed(q, k, v, o);
  return attention_fused(qf, kf, vf, p);
}

Tensor attention_composed(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionOptions& o) {
  const double scale = checked_scale(q, k, v, o);
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
