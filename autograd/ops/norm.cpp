// autograd/ops/norm.cpp — layer_norm and rms_norm: forward, then backward right below.
#include "autograd/ops/norm.h"

#include <cmath>

#include "autograd/engine.h"
#include "autograd/ops/copy.h"
#include "autograd/ops/view.h"
#include "kernels/norm.h"

namespace tessel {

using kernels::NormOp;

namespace {

// Checks an optional weight/bias against normalized_shape and x.
void check_affine(const Tensor& t, const char* what, const Tensor& x, const Shape& ns, const char* op) {
  if (!t.defined()) return;
  check(t.sizes() == ns, op, what, " has shape ", t.sizes(), " but normalized_shape is ", ns, "; expected them equal");
  check(t.dtype() == x.dtype(), op, what, " is ", dtype_name(t.dtype()), " but x is ", dtype_name(x.dtype()),
        "; expected the same dtype");
  check(t.device() == x.device(), op, what, " is on ", t.device().str(), " but x is on ", x.device().str());
}

// Validates, flattens x to [rows, cols] and runs the fused forward; records the fused backward.
Tensor norm_forward(NormOp op, const Tensor& x, const Shape& ns, const Tensor& weight, const Tensor& bias, double eps) {
  const bool layer = op == NormOp::layer_norm;
  const char* name = layer ? "layer_norm" : "rms_norm";
  check(x.defined(), name, "x is an undefined tensor");
  check(is_floating(x.dtype()), name, "expected a floating x (f32, f64, bf16 or f16), got ", dtype_name(x.dtype()),
        " of shape ", x.sizes());
  check(!ns.empty(), name, "normalized_shape is empty; expected at least one trailing dim of x (shape ", x.sizes(),
        ")");
  const int64_t k = static_cast<int64_t>(ns.size());
  bool trailing = x.dim() >= k;
  for (int64_t i = 0; trailing && i < k; ++i) trailing = x.sizes()[x.dim() - k + i] == ns[i];
  check(trailing, name, "normalized_shape ", ns, " does not match the trailing dims of x of shape ", x.sizes());
  int64_t cols = 1;
  for (int64_t s : ns) cols *= s;
  check(cols > 0, name, "normalized_shape ", ns, " has a zero size; expected positive sizes");
  check(std::isfinite(eps) && eps >= 0, name, "eps must be finite and >= 0, got ", eps);
  check_affine(weight, "weight", x, ns, name);
  check_affine(bias, "bias", x, ns, name);
  const int64_t rows = x.numel() / cols;

  Tensor x2 = reshape(contiguous(x), {rows, cols});
  Tensor w2 = weight.defined() ? reshape(contiguous(weight), {cols}) : Tensor();
  Tensor b2 = bias.defined() ? reshape(contiguous(bias), {cols}) : Tensor();
  const DType st = kernels::norm_stat_dtype(x.dtype());
  Tensor y2 = empty({rows, cols}, {.dtype = x.dtype(), .device = x.device()});
  Tensor mean = layer ? empty({rows}, {.dtype = st, .device = x.device()}) : Tensor();
  Tensor rstd = empty({rows}, {.dtype = st, .device = x.device()});
  kernels::NormParams p;
  p.op = op;
  p.rows = rows;
  p.cols = cols;
  p.eps = eps;
  p.x = x2.buf();
  if (w2.defined()) p.weight = w2.buf();
  if (b2.defined()) p.bias = b2.buf();
  if (layer) p.mean = mean.buf();
  p.rstd = rstd.buf();
  p.y = y2.buf();
  kernels::norm_family().run(x.device().type, p);

  if (needs_grad({x2, w2, b2}))
    record(name, y2, {x2, w2, b2},
           [name, layer, rows, cols, sx = Saved(x2, name), sw = Saved(w2, name),
            has_b = b2.defined() && b2.requires_grad(), mean, rstd](const Tensor& dy, const Tensor&) {
             const Tensor& x = sx.get();
             const Tensor& w = sw.get();
             check(!needs_grad({dy, x, w}), name,
                   "double backward is not supported: the gradient is a fused kernel "
                   "(backward with create_graph=true reached it)");
             const bool want_dw = w.defined() && w.requires_grad();
             Tensor g = contiguous(dy.dtype() == x.dtype() ? dy : to_dtype(dy, x.dtype()));
             Tensor dx = x.requires_grad() ? empty({rows, cols}, {.dtype = x.dtype(), .device = x.device()}) : Tensor();
             Tensor dw = want_dw ? empty({cols}, {.dtype = x.dtype(), .device = x.device()}) : Tensor();
             Tensor db = has_b ? empty({cols}, {.dtype = x.dtype(), .device = x.device()}) : Tensor();
             kernels::NormParams q;
             q.op = layer ? NormOp::layer_norm_backward : NormOp::rms_norm_backward;
             q.rows = rows;
             q.cols = cols;
             q.x = x.buf();
             if (w.defined()) q.weight = w.buf();
             if (layer) q.mean = mean.buf();
             q.rstd = rstd.buf();
             q.dy = g.buf();
             if (dx.defined()) q.dx = dx.buf();
             if (dw.defined()) q.dweight = dw.buf();
             if (db.defined()) q.dbias = db.buf();
             kernels::norm_family().run(x.device().type, q);
             return TensorList{dx, dw, db};
           });
  return reshape(y2, x.sizes());
}

}  // namespace

Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight, const Tensor& bias,
                  double eps) {
  return norm_forward(NormOp::layer_norm, x, normalized_shape, weight, bias, eps);
}

Tensor rms_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight, double eps) {
  return norm_forward(NormOp::rms_norm, x, normalized_shape, weight, Tensor(), eps);
}

}  // namespace tessel
