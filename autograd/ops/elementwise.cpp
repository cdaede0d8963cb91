// autograd/ops/elementwise.cpp — elementwise ops: forward, then backward right below.
#include "autograd/ops/elementwise.h"

#include <cmath>
#include <limits>

#include "autograd/engine.h"
#include "autograd/ops/reduce.h"
#include "core/shape.h"
#include "kernels/elementwise.h"

namespace tessel {

using kernels::EwOp;

namespace {

void check_devices(const char* op, std::initializer_list<Tensor> ts) {
  const Tensor* first = nullptr;
  for (const Tensor& t : ts) {
    check(t.defined(), op, "got an undefined tensor");
    if (!first)
      first = &t;
    else
      check(t.device() == first->device(), op, "tensors are on different devices: ", first->device().str(), " and ",
            t.device().str(), " (shapes ", first->sizes(), " and ", t.sizes(), ")");
  }
}

// Runs the kernel: out = op(ins...) with the inputs viewed at out's shape.
void launch(EwOp op, const Tensor& out, std::initializer_list<Tensor> ins, double alpha = 0, double beta = 0) {
  kernels::ElementwiseParams p;
  p.op = op;
  p.out = out.buf();
  int i = 0;
  for (const Tensor& t : ins) p.in[i++] = broadcast_view(t, out.sizes(), kernels::ew_name(op)).buf();
  p.alpha = alpha;
  p.beta = beta;
  kernels::elementwise_family().run(out.device().type, p);
}

Tensor unary_forward(EwOp op, const Tensor& x, double alpha = 0, double beta = 0) {
  const char* name = kernels::ew_name(op);
  check_devices(name, {x});
  check(is_floating(x.dtype()) || (kernels::ew_allows_integers(op) && is_integral(x.dtype())), name,
        "expected a floating tensor", kernels::ew_allows_integers(op) ? " or an integer one" : "", ", got ",
        dtype_name(x.dtype()), " of shape ", x.sizes());
  Tensor out = empty(x.sizes(), {.dtype = x.dtype(), .device = x.device()});
  launch(op, out, {x}, alpha, beta);
  return out;
}

// Promotes and broadcasts a and b; returns the converted operands and the output shape.
struct Binary {
  Tensor a, b;
  Shape shape;
  DType dtype;
};
Binary prepare_binary(EwOp op, const Tensor& a, const Tensor& b) {
  const char* name = kernels::ew_name(op);
  check_devices(name, {a, b});
  DType t = promote_types(a.dtype(), b.dtype());
  if (!kernels::ew_allows_integers(op) && !is_floating(t)) t = DType::f32;  // true division, pow
  if (t == DType::b8 &&
      !(kernels::ew_is_comparison(op) || op == EwOp::mul || op == EwOp::maximum || op == EwOp::minimum))
    t = DType::i64;  // bool + bool counts, like PyTorch
  Binary r{a.dtype() == t ? a : to_dtype(a, t), b.dtype() == t ? b : to_dtype(b, t),
           broadcast_shapes(a.sizes(), b.sizes(), name), t};
  return r;
}

Tensor binary_forward(EwOp op, const Binary& in) {
  DType out_t = kernels::ew_is_comparison(op) ? DType::b8 : in.dtype;
  Tensor out = empty(in.shape, {.dtype = out_t, .device = in.a.device()});
  launch(op, out, {in.a, in.b});
  return out;
}

// A gradient op (dy * f'(x)) used inside backward; refuses to be differentiated again.
Tensor fused_grad(EwOp op, const Tensor& dy, const Tensor& x, double alpha = 0, double beta = 0) {
  check(!needs_grad({dy, x}), kernels::ew_name(op),
        "double backward through this activation is not supported (its gradient is a fused kernel)");
  check_devices(kernels::ew_name(op), {dy, x});
  check(dy.sizes() == x.sizes(), kernels::ew_name(op), "dy has shape ", dy.sizes(), ", x has ", x.sizes());
  Tensor xs = x.dtype() == dy.dtype() ? x : to_dtype(x, dy.dtype());
  Tensor out = empty(dy.sizes(), {.dtype = dy.dtype(), .device = dy.device()});
  launch(op, out, {dy, xs}, alpha, beta);
  return out;
}

}  // namespace

Tensor scalar_like(double v, const Tensor& like) {
  DType t = like.dtype();
  if (!is_floating(t)) {
    bool whole = std::isfinite(v) && std::floor(v) == v;
    bool fits_i32 = v >= -2147483648.0 && v <= 2147483647.0;
    if (!whole)
      t = DType::f32;  // 2 * 0.5 is a float
    else if (t == DType::b8 || (t == DType::i32 && !fits_i32))
      t = DType::i64;  // bool counts; i32 widens
  }
  return scalar_tensor(v, {.dtype = t, .device = like.device()});
}

// ---------------------------------------------------------------- unary ops

Tensor neg(const Tensor& x) {
  Tensor y = unary_forward(EwOp::neg, x);
  if (needs_grad({x})) record("neg", y, {x}, [](const Tensor& g, const Tensor&) { return TensorList{neg(g)}; });
  return y;
}

Tensor exp(const Tensor& x) {
  Tensor y = unary_forward(EwOp::exp, x);
  // d exp(x) = exp(x): reuse the output instead of saving x.
  if (needs_grad({x}))
    record(
        "exp", y, {x}, [](const Tensor& g, const Tensor& y) { return TensorList{mul(g, y)}; }, true);
  return y;
}

Tensor log(const Tensor& x) {
  Tensor y = unary_forward(EwOp::log, x);
  if (needs_grad({x}))
    record("log", y, {x},
           [sx = Saved(x, "log")](const Tensor& g, const Tensor&) { return TensorList{div(g, sx.get())}; });
  return y;
}

Tensor sqrt(const Tensor& x) {
  Tensor y = unary_forward(EwOp::sqrt, x);
  // d sqrt(x) = 1 / (2 sqrt(x))
  if (needs_grad({x}))
    record(
        "sqrt", y, {x}, [](const Tensor& g, const Tensor& y) { return TensorList{div(g, y * 2.0)}; }, true);
  return y;
}

Tensor rsqrt(const Tensor& x) {
  Tensor y = unary_forward(EwOp::rsqrt, x);
  // d x^(-1/2) = -1/2 x^(-3/2) = -1/2 y^3
  if (needs_grad({x}))
    record(
        "rsqrt", y, {x}, [](const Tensor& g, const Tensor& y) { return TensorList{mul(g, pow(y, 3.0)) * -0.5}; }, true);
  return y;
}

Tensor abs(const Tensor& x) {
  Tensor y = unary_forward(EwOp::abs, x);
  if (needs_grad({x}))
    record("abs", y, {x},
           [sx = Saved(x, "abs")](const Tensor& g, const Tensor&) { return TensorList{mul(g, sign(sx.get()))}; });
  return y;
}

Tensor sign(const Tensor& x) {
  Tensor y = unary_forward(EwOp::sign, x);
  if (needs_grad({x})) record("sign", y, {x}, [](const Tensor&, const Tensor&) { return TensorList{Tensor()}; });
  return y;
}

Tensor relu(const Tensor& x) {
  Tensor y = unary_forward(EwOp::relu, x);
  // relu'(x) = [x > 0], and y > 0 exactly where x > 0: keep y, which the next layer holds anyway.
  if (needs_grad({x}))
    record(
        "relu", y, {x}, [](const Tensor& g, const Tensor& y) { return TensorList{relu_backward(g, y)}; }, true);
  return y;
}

Tensor gelu(const Tensor& x, GeluApprox approx) {
  Tensor y = unary_forward(approx == GeluApprox::tanh ? EwOp::gelu_tanh : EwOp::gelu_erf, x);
  if (needs_grad({x}))
    record("gelu", y, {x}, [sx = Saved(x, "gelu"), approx](const Tensor& g, const Tensor&) {
      return TensorList{gelu_backward(g, sx.get(), approx)};
    });
  return y;
}

Tensor silu(const Tensor& x) {
  Tensor y = unary_forward(EwOp::silu, x);
  if (needs_grad({x}))
    record("silu", y, {x},
           [sx = Saved(x, "silu")](const Tensor& g, const Tensor&) { return TensorList{silu_backward(g, sx.get())}; });
  return y;
}

Tensor sigmoid(const Tensor& x) {
  Tensor y = unary_forward(EwOp::sigmoid, x);
  if (needs_grad({x}))
    record(
        "sigmoid", y, {x}, [](const Tensor& g, const Tensor& y) { return TensorList{sigmoid_backward(g, y)}; }, true);
  return y;
}

Tensor tanh(const Tensor& x) {
  Tensor y = unary_forward(EwOp::tanh, x);
  if (needs_grad({x}))
    record(
        "tanh", y, {x}, [](const Tensor& g, const Tensor& y) { return TensorList{tanh_backward(g, y)}; }, true);
  return y;
}

Tensor sin(const Tensor& x) {
  Tensor y = unary_forward(EwOp::sin, x);
  if (needs_grad({x}))
    record("sin", y, {x},
           [sx = Saved(x, "sin")](const Tensor& g, const Tensor&) { return TensorList{mul(g, cos(sx.get()))}; });
  return y;
}

Tensor cos(const Tensor& x) {
  Tensor y = unary_forward(EwOp::cos, x);
  if (needs_grad({x}))
    record("cos", y, {x},
           [sx = Saved(x, "cos")](const Tensor& g, const Tensor&) { return TensorList{neg(mul(g, sin(sx.get())))}; });
  return y;
}

Tensor pow(const Tensor& x, double e) {
  Tensor y = unary_forward(EwOp::pow_scalar, x, e);
  // d x^e = e x^(e-1)
  if (needs_grad({x}))
    record("pow", y, {x}, [sx = Saved(x, "pow"), e](const Tensor& g, const Tensor&) {
      if (e == 0) return TensorList{zeros_like(g)};  // x^0 is constant; 0 * 0^-1 would be NaN
      return TensorList{mul(g, pow(sx.get(), e - 1.0)) * e};
    });
  return y;
}

Tensor square(const Tensor& x) { return mul(x, x); }

Tensor clamp(const Tensor& x, double lo, double hi) {
  check(!(lo > hi), "clamp", "expected lo <= hi, got lo=", lo, ", hi=", hi);
  Tensor y = unary_forward(EwOp::clamp, x, lo, hi);
  if (needs_grad({x}))
    record("clamp", y, {x}, [sx = Saved(x, "clamp"), lo, hi](const Tensor& g, const Tensor&) {
      return TensorList{fused_grad(EwOp::clamp_bwd, g, sx.get(), lo, hi)};
    });
  return y;
}

// ---------------------------------------------------------------- binary ops

Tensor add(const Tensor& a, const Tensor& b) {
  Binary in = prepare_binary(EwOp::add, a, b);
  Tensor y = binary_forward(EwOp::add, in);
  if (needs_grad({in.a, in.b}))
    record("add", y, {in.a, in.b},
           [sa = in.a.sizes(), sb = in.b.sizes(), ra = in.a.requires_grad(), rb = in.b.requires_grad()](const Tensor& g,
                                                                                                        const Tensor&) {
             return TensorList{ra ? sum_to(g, sa) : Tensor(), rb ? sum_to(g, sb) : Tensor()};
           });
  return y;
}

Tensor sub(const Tensor& a, const Tensor& b) {
  Binary in = prepare_binary(EwOp::sub, a, b);
  Tensor y = binary_forward(EwOp::sub, in);
  if (needs_grad({in.a, in.b}))
    record("sub", y, {in.a, in.b},
           [sa = in.a.sizes(), sb = in.b.sizes(), ra = in.a.requires_grad(), rb = in.b.requires_grad()](const Tensor& g,
                                                                                                        const Tensor&) {
             return TensorList{ra ? sum_to(g, sa) : Tensor(), rb ? neg(sum_to(g, sb)) : Tensor()};
           });
  return y;
}

Tensor mul(const Tensor& a, const Tensor& b) {
  Binary in = prepare_binary(EwOp::mul, a, b);
  Tensor y = binary_forward(EwOp::mul, in);
  if (needs_grad({in.a, in.b})) {
    bool ra = in.a.requires_grad(), rb = in.b.requires_grad();
    // Save only what the needed gradients read: da needs b, db needs a.
    record("mul", y, {in.a, in.b},
           [sa = Saved(rb ? in.a : Tensor(), "mul"), sb = Saved(ra ? in.b : Tensor(), "mul"), sha = in.a.sizes(),
            shb = in.b.sizes()](const Tensor& g, const Tensor&) {
             return TensorList{sb.defined() ? sum_to(mul(g, sb.get()), sha) : Tensor(),
                               sa.defined() ? sum_to(mul(g, sa.get()), shb) : Tensor()};
           });
  }
  return y;
}

Tensor div(const Tensor& a, const Tensor& b) {
  Binary in = prepare_binary(EwOp::div, a, b);
  Tensor y = binary_forward(EwOp::div, in);
  if (needs_grad({in.a, in.b})) {
    // d(a/b)/da = 1/b;  d(a/b)/db = -a/b^2 = -y/b
    record(
        "div", y, {in.a, in.b},
        [sb = Saved(in.b, "div"), sha = in.a.sizes(), shb = in.b.sizes(), ra = in.a.requires_grad(),
         rb = in.b.requires_grad()](const Tensor& g, const Tensor& y) {
          Tensor gb = div(g, sb.get());
          return TensorList{ra ? sum_to(gb, sha) : Tensor(), rb ? neg(sum_to(mul(gb, y), shb)) : Tensor()};
        },
        true);
  }
  return y;
}

Tensor pow(const Tensor& a, const Tensor& b) {
  Binary in = prepare_binary(EwOp::pow, a, b);
  Tensor y = binary_forward(EwOp::pow, in);
  if (needs_grad({in.a, in.b})) {
    // d a^b / da = b a^(b-1);  d a^b / db = a^b log(a)
    record(
        "pow", y, {in.a, in.b},
        [sa = Saved(in.a, "pow"), sb = Saved(in.b, "pow"), ra = in.a.requires_grad(), rb = in.b.requires_grad()](
            const Tensor& g, const Tensor& y) {
          const Tensor& a = sa.get();
          const Tensor& b = sb.get();
          return TensorList{ra ? sum_to(mul(g, mul(b, pow(a, sub(b, scalar_like(1.0, b))))), a.sizes()) : Tensor(),
                            rb ? sum_to(mul(g, mul(y, log(a))), b.sizes()) : Tensor()};
        },
        true);
  }
  return y;
}

namespace {
// maximum/minimum backward: the gradient goes to the input that won; ties split it evenly.
TensorList minmax_backward(const Tensor& g, const Tensor& a, const Tensor& b, bool is_max) {
  Tensor a_wins = is_max ? gt(a, b) : lt(a, b);
  Tensor tie = eq(a, b);
  Tensor share = add(to_dtype(a_wins, g.dtype()), mul(to_dtype(tie, g.dtype()), scalar_like(0.5, g)));
  Tensor ga = mul(g, share);
  Tensor gb = sub(g, ga);
  return {sum_to(ga, a.sizes()), sum_to(gb, b.sizes())};
}
}  // namespace

Tensor maximum(const Tensor& a, const Tensor& b) {
  Binary in = prepare_binary(EwOp::maximum, a, b);
  Tensor y = binary_forward(EwOp::maximum, in);
  if (needs_grad({in.a, in.b}))
    record("maximum", y, {in.a, in.b},
           [sa = Saved(in.a, "maximum"), sb = Saved(in.b, "maximum")](const Tensor& g, const Tensor&) {
             return minmax_backward(g, sa.get(), sb.get(), true);
           });
  return y;
}

Tensor minimum(const Tensor& a, const Tensor& b) {
  Binary in = prepare_binary(EwOp::minimum, a, b);
  Tensor y = binary_forward(EwOp::minimum, in);
  if (needs_grad({in.a, in.b}))
    record("minimum", y, {in.a, in.b},
           [sa = Saved(in.a, "minimum"), sb = Saved(in.b, "minimum")](const Tensor& g, const Tensor&) {
             return minmax_backward(g, sa.get(), sb.get(), false);
           });
  return y;
}

Tensor eq(const Tensor& a, const Tensor& b) { return binary_forward(EwOp::eq, prepare_binary(EwOp::eq, a, b)); }
Tensor ne(const Tensor& a, const Tensor& b) { return binary_forward(EwOp::ne, prepare_binary(EwOp::ne, a, b)); }
Tensor lt(const Tensor& a, const Tensor& b) { return binary_forward(EwOp::lt, prepare_binary(EwOp::lt, a, b)); }
Tensor le(const Tensor& a, const Tensor& b) { return binary_forward(EwOp::le, prepare_binary(EwOp::le, a, b)); }
Tensor gt(const Tensor& a, const Tensor& b) { return binary_forward(EwOp::gt, prepare_binary(EwOp::gt, a, b)); }
Tensor ge(const Tensor& a, const Tensor& b) { return binary_forward(EwOp::ge, prepare_binary(EwOp::ge, a, b)); }

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  check_devices("where", {cond, a, b});
  check(cond.dtype() == DType::b8, "where", "condition must be bool, got ", dtype_name(cond.dtype()), " of shape ",
        cond.sizes());
  DType t = promote_types(a.dtype(), b.dtype());
  Tensor ac = a.dtype() == t ? a : to_dtype(a, t), bc = b.dtype() == t ? b : to_dtype(b, t);
  Shape s = broadcast_shapes(broadcast_shapes(cond.sizes(), a.sizes(), "where"), b.sizes(), "where");
  Tensor y = empty(s, {.dtype = t, .device = a.device()});
  launch(EwOp::where, y, {cond, ac, bc});
  if (needs_grad({ac, bc}))
    record("where", y, {ac, bc},
           [sc = Saved(cond, "where"), sa = ac.sizes(), sb = bc.sizes()](const Tensor& g, const Tensor&) {
             Tensor zero = zeros({}, {.dtype = g.dtype(), .device = g.device()});
             return TensorList{sum_to(where(sc.get(), g, zero), sa), sum_to(where(sc.get(), zero, g), sb)};
           });
  return y;
}

// ---------------------------------------------------------------- operators

Tensor operator-(const Tensor& x) { return neg(x); }
Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
Tensor operator+(const Tensor& a, double b) { return add(a, scalar_like(b, a)); }
Tensor operator-(const Tensor& a, double b) { return sub(a, scalar_like(b, a)); }
Tensor operator*(const Tensor& a, double b) { return mul(a, scalar_like(b, a)); }
Tensor operator/(const Tensor& a, double b) { return div(a, scalar_like(b, a)); }
Tensor operator+(double a, const Tensor& b) { return add(scalar_like(a, b), b); }
Tensor operator-(double a, const Tensor& b) { return sub(scalar_like(a, b), b); }
Tensor operator*(double a, const Tensor& b) { return mul(scalar_like(a, b), b); }
Tensor operator/(double a, const Tensor& b) { return div(scalar_like(a, b), b); }

// ---------------------------------------------------------------- in place

namespace {
// Checks shared by every in-place op on target `a`: not recording, a dtype the op supports,
// and memory that can be written element by element without ambiguity.
void check_inplace_target(EwOp op, const Tensor& a, const char* name) {
  check_inplace(a, name);
  bool ok = is_floating(a.dtype()) || (is_integral(a.dtype()) && kernels::ew_allows_integers(op)) ||
            (a.dtype() == DType::b8 && (op == EwOp::mul || op == EwOp::maximum || op == EwOp::minimum));
  check(ok, name, "in-place ", kernels::ew_name(op), " is not supported for a ", dtype_name(a.dtype()),
        " target of shape ", a.sizes());
  check(!has_internal_overlap(a), name, "the target (shape ", a.sizes(), ", strides ", a.strides(),
        ") has elements that share memory (e.g. an expanded tensor); use contiguous() first");
}

Tensor& inplace(EwOp op, Tensor& a, const Tensor& b, const char* name) {
  check_devices(name, {a, b});
  check_inplace_target(op, a, name);
  check(broadcast_shapes(a.sizes(), b.sizes(), name) == a.sizes(), name, "cannot broadcast ", b.sizes(),
        " into the in-place target of shape ", a.sizes());
  DType result = promote_types(a.dtype(), b.dtype());
  check(!(is_floating(result) && !is_floating(a.dtype())), name, "the result type ", dtype_name(result),
        " cannot be stored in place into a ", dtype_name(a.dtype()), " tensor");
  Tensor bc = b.dtype() == a.dtype() ? b : to_dtype(b, a.dtype());
  // An operand that overlaps the target in any other way than element for element would be
  // read after it was written: give the kernel a copy.
  if (may_overlap(a, bc) && !same_elements(a, bc)) bc = clone(bc.detach());
  launch(op, a, {a, bc});
  a.bump_version();
  return a;
}
}  // namespace

Tensor& add_(Tensor& a, const Tensor& b, double alpha) {
  if (alpha == 1.0) return inplace(EwOp::add, a, b, "add_");
  NoGradGuard ng;  // the scaled copy is a temporary
  return inplace(EwOp::add, a, mul(b, scalar_like(alpha, b)), "add_");
}
Tensor& sub_(Tensor& a, const Tensor& b) { return inplace(EwOp::sub, a, b, "sub_"); }
Tensor& mul_(Tensor& a, const Tensor& b) { return inplace(EwOp::mul, a, b, "mul_"); }
Tensor& div_(Tensor& a, const Tensor& b) { return inplace(EwOp::div, a, b, "div_"); }
Tensor& mul_(Tensor& a, double s) { return inplace(EwOp::mul, a, scalar_like(s, a), "mul_"); }
Tensor& add_(Tensor& a, double s) { return inplace(EwOp::add, a, scalar_like(s, a), "add_"); }

Tensor& clamp_(Tensor& a, double lo, double hi) {
  check(!(lo > hi), "clamp_", "expected lo <= hi, got lo=", lo, ", hi=", hi);
  check_inplace_target(EwOp::clamp, a, "clamp_");
  launch(EwOp::clamp, a, {a}, lo, hi);
  a.bump_version();
  return a;
}

Tensor& fill_(Tensor& a, double v) {
  check_inplace(a, "fill_");
  check(a.device().is_cpu() || device_hooks(a.device().type)->fill, "fill_", "no fill routine on ", a.device().str(),
        ": tessel was built without CUDA");
  fill_raw(a, v);
  return a;
}
Tensor& zero_(Tensor& a) { return fill_(a, 0.0); }

// ---------------------------------------------------------------- fused activation gradients

Tensor relu_backward(const Tensor& dy, const Tensor& x) { return fused_grad(EwOp::relu_bwd, dy, x); }
Tensor gelu_backward(const Tensor& dy, const Tensor& x, GeluApprox approx) {
  return fused_grad(approx == GeluApprox::tanh ? EwOp::gelu_tanh_bwd : EwOp::gelu_erf_bwd, dy, x);
}
Tensor silu_backward(const Tensor& dy, const Tensor& x) { return fused_grad(EwOp::silu_bwd, dy, x); }
Tensor sigmoid_backward(const Tensor& dy, const Tensor& y) { return fused_grad(EwOp::sigmoid_bwd, dy, y); }
Tensor tanh_backward(const Tensor& dy, const Tensor& y) { return fused_grad(EwOp::tanh_bwd, dy, y); }

}  // namespace tessel
