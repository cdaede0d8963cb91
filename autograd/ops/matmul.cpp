// autograd/ops/matmul.cpp — matmul, bmm, linear, mlp: forward, then backward right below.
#include "autograd/ops/matmul.h"

#include <tuple>
#include <utility>

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

namespace {

// What linear needs of x, weight [out, in] and bias [out] (may be undefined).
void check_linear(const Tensor& x, const Tensor& weight, const Tensor& bias, const char* op) {
  check(x.defined() && weight.defined(), op, "got an undefined tensor");
  check(weight.dim() == 2, op, "expected weight of shape [out_features, in_features], got ", weight.sizes(), " (x is ",
        x.sizes(), ")");
  check(x.dim() >= 1 && x.size(-1) == weight.size(1), op, "x of shape ", x.sizes(), " does not match weight of shape ",
        weight.sizes(), "; expected x.size(-1) == ", weight.size(1));
  if (bias.defined())
    check(bias.dim() == 1 && bias.size(0) == weight.size(0), op, "expected bias of shape [", weight.size(0),
          "] for weight of shape ", weight.sizes(), ", got ", bias.sizes());
  check_operands(x, weight, op);
  if (bias.defined()) check_operands(x, bias, op);
}

// One layer's GEMM, not recorded: act(x2 @ weight^T + bias) for x2 [rows, in], into a new
// [rows, out] tensor; with `dact`, act' is kept there too (a new tensor, CPU only), and with
// `mul` defined the result is multiplied by it elementwise.
Tensor layer_kernel(const Tensor& x2, const Tensor& weight, const Tensor& bias, Activation act, Tensor* dact,
                    const Tensor& mul = Tensor()) {
  NoGradGuard no_grad;  // the views below are internal: the caller records one node
  Tensor y2 = empty({x2.size(0), weight.size(0)}, {.dtype = x2.dtype(), .device = x2.device()});
  kernels::MatmulParams p;
  p.a = x2.buf();
  p.b = t(weight).buf();  // a view: the kernel reads weight's rows as B's columns
  p.c = y2.buf();
  if (bias.defined()) p.bias = bias.buf();
  p.act = act;
  if (dact != nullptr) {
    *dact = empty(y2.sizes(), {.dtype = y2.dtype(), .device = y2.device()});
    p.dact = dact->buf();
  }
  if (mul.defined()) p.mul = mul.buf();
  kernels::matmul_family().run(x2.device().type, p);
  return y2;
}

// dz = act'(z) * g for a layer y = act(z), z = x weight^T + bias: with relu from y (z > 0
// exactly where y > 0); from act'(z) if the forward kept it (`d`) and this backward is not
// itself recorded; otherwise with z recomputed, differentiably (`z` computes it).
template <class Z>
Tensor activation_grad(const Tensor& g, Activation act, const Tensor& y, const Tensor& d, Z z) {
  switch (act) {
    case Activation::none: return g;
    case Activation::relu: return relu_backward(g, y);
    default: break;
  }
  if (d.defined() && !GradMode::is_enabled()) return mul(g, reshape(d, g.sizes()));
  switch (act) {
    case Activation::gelu_tanh: return gelu_backward(g, z(), GeluApprox::tanh);
    case Activation::gelu_erf: return gelu_backward(g, z(), GeluApprox::none);
    case Activation::silu: return silu_backward(g, z());
    default: break;
  }
  fail("linear", "no gradient for activation ", kernels::activation_name(act));
}

// dweight = dz2^T x2 and dbias = dz2 summed over rows from one GEMM, not recorded: the bias
// gradient is added up while the GEMM packs dz2^T (MatmulParams::a_sums, CPU), instead of in a
// pass over dz2 of its own (that pass was 2.1% of the one-thread ViT step; summing in the packer
// adds 0.7%).
std::pair<Tensor, Tensor> weight_and_bias_grads(const Tensor& dz2, const Tensor& x2) {
  NoGradGuard no_grad;
  const TensorOptions o{.dtype = dz2.dtype(), .device = dz2.device()};
  Tensor gw = empty({dz2.size(1), x2.size(1)}, o), gb = empty({dz2.size(1)}, o);
  kernels::MatmulParams p;
  p.a = t(dz2).buf();
  p.b = x2.buf();
  p.c = gw.buf();
  p.a_sums = gb.buf();
  kernels::matmul_family().run(dz2.device().type, p);
  return {gw, gb};
}

// The gradients of a layer z = x weight^T + bias from dz [rows, out]: dx (x's shape), dweight,
// dbias — undefined where not wanted; dbias only with a bias.
TensorList layer_grads(const Tensor& dz2, const Tensor& xs, const Tensor& ws, bool rx, bool rw, bool rb,
                       bool has_bias) {
  Tensor gx, gw, gb;
  if (rx) gx = reshape(matmul(dz2, ws), xs.sizes());
  auto x2 = [&] { return reshape(xs, {dz2.size(0), ws.size(1)}); };
  if (rw && rb && dz2.device().is_cpu() && !GradMode::is_enabled()) {
    std::tie(gw, gb) = weight_and_bias_grads(dz2, x2());
  } else {  // also when the backward is itself recorded (double backward): differentiable ops
    if (rw) gw = matmul(t(dz2), x2());
    if (rb) gb = sum_to(dz2, {ws.size(0)});
  }
  return has_bias ? TensorList{gx, gw, gb} : TensorList{gx, gw};
}

int64_t leading_rows(const Tensor& x) { return shape_numel(Shape(x.sizes().begin(), x.sizes().end() - 1)); }

}  // namespace

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias, Activation act) {
  check_linear(x, weight, bias, "linear");
  const int64_t K = weight.size(1), N = weight.size(0), rows = leading_rows(x);
  Shape out = x.sizes();
  out.back() = N;
  std::vector<Tensor> inputs = {x, weight};
  if (bias.defined()) inputs.push_back(bias);
  const bool grad = needs_grad(inputs);
  // Training on the CPU with a smooth activation: the GEMM's epilogue also stores act'(z) (in
  // cache, beside y), so the backward's dz = act'(z) dy is one multiply. Elsewhere (CUDA, or
  // relu, whose gradient needs only y) nothing of size y is saved and the backward recomputes z.
  const bool keep_d = grad && x.device().is_cpu() && act != Activation::none && act != Activation::relu;
  Tensor d;
  Tensor y = reshape(layer_kernel(reshape(x, {rows, K}), weight, bias, act, keep_d ? &d : nullptr), out);
  if (grad) {
    const bool rx = x.requires_grad(), rw = weight.requires_grad(), rb = bias.defined() && bias.requires_grad();
    const bool has_bias = bias.defined();
    record(
        "linear", y, inputs,
        [act, rx, rw, rb, has_bias, rows, N, sx = Saved(x, "linear"), sw = Saved(weight, "linear"),
         sb = bias.defined() ? Saved(bias, "linear") : Saved(),
         d = std::move(d)](const Tensor& g, const Tensor& y_out) {
          const Tensor xs = sx.get(), ws = sw.get();
          Tensor dz = activation_grad(g, act, y_out, d, [&] { return linear(xs, ws, sb.get(), Activation::none); });
          return layer_grads(reshape(dz, {rows, N}), xs, ws, rx, rw, rb, has_bias);
        },
        /*save_output=*/true);
  }
  return y;
}

Tensor mlp(const Tensor& x, const Tensor& w1, const Tensor& b1, const Tensor& w2, const Tensor& b2, Activation act) {
  check_linear(x, w1, b1, "mlp");
  check(w2.defined() && w2.dim() == 2 && w2.size(1) == w1.size(0), "mlp", "expected w2 of shape [out_features, ",
        w1.size(0), "] after w1 of shape ", w1.sizes(), ", got ", w2.defined() ? w2.sizes() : Shape{});
  check_operands(x, w2, "mlp");
  if (b2.defined()) {
    check(b2.dim() == 1 && b2.size(0) == w2.size(0), "mlp", "expected b2 of shape [", w2.size(0), "] for w2 of shape ",
          w2.sizes(), ", got ", b2.sizes());
    check_operands(x, b2, "mlp");
  }
  std::vector<Tensor> inputs = {x, w1, w2};
  if (b1.defined()) inputs.push_back(b1);
  if (b2.defined()) inputs.push_back(b2);
  // The fused backward needs act'(z) from the first GEMM's epilogue: CPU training only.
  // Elsewhere the two layers are recorded as they are (same values, same gradients).
  if (!needs_grad(inputs) || !x.device().is_cpu() || act == Activation::none)
    return linear(linear(x, w1, b1, act), w2, b2, Activation::none);
  const int64_t D = w1.size(1), H = w1.size(0), O = w2.size(0), rows = leading_rows(x);
  Shape out = x.sizes();
  out.back() = O;
  Tensor d;
  Tensor h = layer_kernel(reshape(x, {rows, D}), w1, b1, act, &d);  // [rows, H], and act'(z) in d
  Tensor y = reshape(layer_kernel(h, w2, b2, Activation::none, nullptr), out);
  struct Need {
    bool x, w1, b1, w2, b2;
  };
  const Need need{x.requires_grad(), w1.requires_grad(), b1.defined() && b1.requires_grad(), w2.requires_grad(),
                  b2.defined() && b2.requires_grad()};
  const bool has_b1 = b1.defined(), has_b2 = b2.defined();
  record("mlp", y, inputs,
         [act, need, has_b1, has_b2, rows, H, O, sx = Saved(x, "mlp"), sw1 = Saved(w1, "mlp"),
          sb1 = has_b1 ? Saved(b1, "mlp") : Saved(), sw2 = Saved(w2, "mlp"), h = std::move(h),
          d = std::move(d)](const Tensor& g, const Tensor&) {
           const Tensor xs = sx.get(), w1s = sw1.get(), w2s = sw2.get();
           const Tensor g2 = reshape(g, {rows, O});
           // Recorded (double backward): h again, differentiably, and the unfused formulas.
           const bool recorded = GradMode::is_enabled();
           const Tensor hs = recorded ? reshape(linear(xs, w1s, sb1.get(), act), {rows, H}) : h;
           const bool first_layer = need.x || need.w1 || need.b1;
           // dh = g2 @ w2 is formed here only when recorded; otherwise it is fused below.
           TensorList second = layer_grads(g2, hs, w2s, recorded && first_layer, need.w2, need.b2, has_b2);
           Tensor dz;
           if (first_layer) {
             if (recorded)
               dz = activation_grad(second[0], act, hs, Tensor(), [&] {
                 return reshape(linear(xs, w1s, sb1.get(), Activation::none), {rows, H});
               });
             else  // dz = (g2 @ w2) * act'(z), the multiply in the GEMM's epilogue: no pass of its own
               dz = layer_kernel(g2, t(w2s), Tensor(), Activation::none, nullptr, d);
           }
           TensorList first = dz.defined() ? layer_grads(dz, xs, w1s, need.x, need.w1, need.b1, has_b1)
                                           : TensorList{Tensor(), Tensor(), Tensor()};
           TensorList grads = {first[0], first[1], second[1]};
           if (has_b1) grads.push_back(first[2]);
           if (has_b2) grads.push_back(second[2]);
           return grads;
         });
  return y;
}

}  // namespace tessel
