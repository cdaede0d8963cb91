// autograd/ops/matmul.cpp — matmul, bmm, linear: forward, then backward right below.
#include "autograd/ops/matmul.h"

#include "autograd/engine.h"
#include "autograd/ops/elementwise.h"
#include "autograd/ops/reduce.h"
#include "autograd/ops/view.h"
#include "core/shape.h"
#include "kernels/matmul.h"

namespace tessel {

namespace {

// Checks what every product needs of its operands: defined, floating, one dtype, one device.
void check_operands(const Tensor& a, const Tensor& b, const char* op) {
  check(a.defined() && b.defined(), op, "got an undefined tensor");
  check(is_floating(a.dtype()) && is_floating(b.dtype()), op, "expected floating operands, got a of dtype ",
        dtype_name(a.dtype()), " and shape ", a.sizes(), ", b of dtype ", dtype_name(b.dtype()), " and shape ",
        b.sizes());
  check(a.dtype() == b.dtype(), op, "dtypes differ: a is ", dtype_name(a.dtype()), " of shape ", a.sizes(), ", b is ",
        dtype_name(b.dtype()), " of shape ", b.sizes(), "; convert one with to_dtype() first");
  check(a.device() == b.device(), op, "devices differ: a on ", a.device().str(), " (shape ", a.sizes(), "), b on ",
        b.device().str(), " (shape ", b.sizes(), ")");
}

Shape batch_dims(const Tensor& t) { return Shape(t.sizes().begin(), t.sizes().end() - 2); }

// The differentiable core: a [..., M, K] @ b [..., K, N], both at least 2-d, batch dims
// broadcasting. Shapes were validated by the caller.
Tensor matmul_nd(const Tensor& a, const Tensor& b, const char* op) {
  const int64_t M = a.size(-2), K = a.size(-1), N = b.size(-1);
  Shape batch = broadcast_shapes(batch_dims(a), batch_dims(b), op);
  Shape sa = batch, sb = batch, sc = batch;
  sa.insert(sa.end(), {M, K});
  sb.insert(sb.end(), {K, N});
  sc.insert(sc.end(), {M, N});
  Tensor c = empty(sc, {.dtype = a.dtype(), .device = a.device()});
  kernels::MatmulParams p;
  p.a = broadcast_view(a, sa, op).buf();  // stride 0 along broadcast batch dims: no copy
  p.b = broadcast_view(b, sb, op).buf();
  p.c = c.buf();
  kernels::matmul_family().run(a.device().type, p);
  if (needs_grad({a, b})) {
    const bool ra = a.requires_grad(), rb = b.requires_grad();
    record(op, c, {a, b},
           [op, ra, rb, sa_ = a.sizes(), sb_ = b.sizes(), sva = rb ? Saved(a, op) : Saved(),
            svb = ra ? Saved(b, op) : Saved()](const Tensor& g, const Tensor&) {
             Tensor ga, gb;
             if (ra) ga = sum_to(matmul_nd(g, transpose(svb.get(), -1, -2), op), sa_);
             if (rb) gb = sum_to(matmul_nd(transpose(sva.get(), -1, -2), g, op), sb_);
             return TensorList{ga, gb};
           });
  }
  return c;
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  check_operands(a, b, "matmul");
  check(a.dim() >= 1 && b.dim() >= 1, "matmul", "both operands need at least 1 dim, got a of shape ", a.sizes(),
        " and b of shape ", b.sizes(), " (for a 0-d operand use mul)");
  const int64_t K = a.size(-1), Kb = b.dim() == 1 ? b.size(0) : b.size(-2);
  check(K == Kb, "matmul", "inner dimensions differ: a is ", a.sizes(), ", b is ", b.sizes(), "; expected a.size(-1) (",
        K, ") == b.size(", b.dim() == 1 ? "0" : "-2", ") (", Kb, ")");
  Tensor a2 = a.dim() == 1 ? unsqueeze(a, 0) : a;
  Tensor b2 = b.dim() == 1 ? unsqueeze(b, 1) : b;
  const Shape ba = batch_dims(a2), bb = batch_dims(b2);
  for (size_t i = 0; i < std::min(ba.size(), bb.size()); ++i) {
    int64_t da = ba[ba.size() - 1 - i], db = bb[bb.size() - 1 - i];
    check(da == db || da == 1 || db == 1, "matmul", "batch dims do not broadcast: a is ", a.sizes(), ", b is ",
          b.sizes(), "; batch shapes ", ba, " and ", bb, " differ at a size other than 1");
  }
  Tensor y;
  if (a2.dim() > 2 && b2.dim() == 2) {
    // A stack of rows times one matrix is one GEMM: [prod(batch) * M, K] @ [K, N]. This also
    // makes dB a single A^T @ dC instead of a batch of products summed afterwards.
    Shape out = a2.sizes();
    out.back() = b2.size(1);
    int64_t rows = shape_numel(Shape(a2.sizes().begin(), a2.sizes().end() - 1));  // explicit: K may be 0
    y = reshape(matmul_nd(reshape(a2, {rows, K}), b2, "matmul"), out);
  } else {
    y = matmul_nd(a2, b2, "matmul");
  }
  if (a.dim() == 1) y = squeeze(y, -2);
  if (b.dim() == 1) y = squeeze(y, -1);
  return y;
}

Tensor bmm(const Tensor& a, const Tensor& b) {
  check_operands(a, b, "bmm");
  check(a.dim() == 3 && b.dim() == 3, "bmm", "expected 3-d operands [B, M, K] and [B, K, N], got a of shape ",
        a.sizes(), " and b of shape ", b.sizes());
  check(a.size(0) == b.size(0), "bmm", "batch sizes differ: a is ", a.sizes(), ", b is ", b.sizes(),
        " (bmm does not broadcast; use matmul)");
  check(a.size(2) == b.size(1), "bmm", "inner dimensions differ: a is ", a.sizes(), ", b is ", b.sizes(),
        "; expected a.size(2) == b.size(1)");
  return matmul_nd(a, b, "bmm");
}

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  return linear(x, weight, bias, Activation::none);
}

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias, Activation act) {
  check(x.defined() && weight.defined(), "linear", "got an undefined tensor");
  check(weight.dim() == 2, "linear", "expected weight of shape [out_features, in_features], got ", weight.sizes(),
        " (x is ", x.sizes(), ")");
  check(x.dim() >= 1 && x.size(-1) == weight.size(1), "linear", "x of shape ", x.sizes(),
        " does not match weight of shape ", weight.sizes(), "; expected x.size(-1) == ", weight.size(1));
  if (bias.defined())
    check(bias.dim() == 1 && bias.size(0) == weight.size(0), "linear", "expected bias of shape [", weight.size(0),
          "] for weight of shape ", weight.sizes(), ", got ", bias.sizes());
  check_operands(x, weight, "linear");
  if (bias.defined()) check_operands(x, bias, "linear");
  const int64_t K = weight.size(1), N = weight.size(0);
  const int64_t rows = shape_numel(Shape(x.sizes().begin(), x.sizes().end() - 1));
  Shape out = x.sizes();
  out.back() = N;
  std::vector<Tensor> inputs = {x, weight};
  if (bias.defined()) inputs.push_back(bias);
  const bool grad = needs_grad(inputs);
  // Training on the CPU with a smooth activation: the GEMM's epilogue also stores the
  // pre-activation z (in cache, beside y), which the backward needs for act'(z). Elsewhere
  // (CUDA, or relu, whose gradient needs only y) nothing of size y is saved and the backward
  // recomputes z.
  const bool keep_z = grad && x.device().is_cpu() && act != Activation::none && act != Activation::relu;
  Tensor z;
  Tensor y;
  {
    NoGradGuard no_grad;  // the views below are internal: one node for the whole layer
    Tensor x2 = reshape(x, {rows, K});
    Tensor y2 = empty({rows, N}, {.dtype = x.dtype(), .device = x.device()});
    kernels::MatmulParams p;
    p.a = x2.buf();
    p.b = t(weight).buf();  // a view: the kernel reads weight's rows as B's columns
    p.c = y2.buf();
    if (bias.defined()) p.bias = bias.buf();
    p.act = act;
    if (keep_z) {
      z = empty({rows, N}, {.dtype = x.dtype(), .device = x.device()});
      p.pre = z.buf();
    }
    kernels::matmul_family().run(x.device().type, p);
    y = reshape(y2, out);
  }
  if (grad) {
    const bool rx = x.requires_grad(), rw = weight.requires_grad(), rb = bias.defined() && bias.requires_grad();
    const bool has_bias = bias.defined();
    record(
        "linear", y, inputs,
        [act, rx, rw, rb, has_bias, rows, K, N, sx = Saved(x, "linear"), sw = Saved(weight, "linear"),
         sb = bias.defined() ? Saved(bias, "linear") : Saved(),
         z = std::move(z)](const Tensor& g, const Tensor& y_out) {
          const Tensor xs = sx.get(), ws = sw.get();
          // dz = act'(z) * g, with the z the forward kept; or z recomputed, differentiably, when
          // there is none or this backward is itself being recorded (double backward).
          auto pre = [&] {
            if (z.defined() && !GradMode::is_enabled()) return reshape(z, y_out.sizes());
            return linear(xs, ws, sb.get(), Activation::none);
          };
          Tensor dz;
          switch (act) {
            case Activation::none: dz = g; break;
            case Activation::relu: dz = relu_backward(g, y_out); break;
            case Activation::gelu_tanh: dz = gelu_backward(g, pre(), GeluApprox::tanh); break;
            case Activation::gelu_erf: dz = gelu_backward(g, pre(), GeluApprox::none); break;
            case Activation::silu: dz = silu_backward(g, pre()); break;
          }
          Tensor dz2 = reshape(dz, {rows, N});
          Tensor gx, gw, gb;
          if (rx) gx = reshape(matmul(dz2, ws), xs.sizes());
          if (rw) gw = matmul(t(dz2), reshape(xs, {rows, K}));
          if (rb) gb = sum_to(dz2, {N});
          return has_bias ? TensorList{gx, gw, gb} : TensorList{gx, gw};
        },
        /*save_output=*/true);
  }
  return y;
}

}  // namespace tessel
