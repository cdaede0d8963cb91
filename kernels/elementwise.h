// kernels/elementwise.h — every op that maps input elements to output elements one to one.
//
//   out[i] = f(in0[i], in1[i], in2[i]; alpha, beta)     for every multi-index i of out
//
// Inputs arrive already broadcast to the output's shape (stride 0 along stretched dims) and
// already converted to one dtype (the output's, except comparisons, which write bool, and
// `where`, whose condition is bool). Arithmetic happens in acc_t<T>: f32 for bf16/f16.
// The scalar formula of each op lives once, in apply_elementwise() below; the ref and cpu
// versions differ only in how they walk memory.
#pragma once
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "core/buf.h"
#include "core/host_device.h"
#include "kernels/registry.h"

namespace tessel::kernels {

enum class EwOp : uint8_t {
  // unary: out = f(a)
  neg,
  exp,
  log,
  sqrt,
  rsqrt,
  abs,
  sign,
  relu,
  gelu_tanh,
  gelu_erf,
  silu,
  sigmoid,
  tanh,
  sin,
  cos,
  pow_scalar,  // a ^ alpha
  clamp,       // min(max(a, alpha), beta)
  // binary: out = f(a, b)
  add,
  sub,
  mul,
  div,
  pow,
  maximum,
  minimum,
  eq,
  ne,
  lt,
  le,
  gt,
  ge,  // write bool
  // gradients of the activations, fused so backward reads each tensor once: out = dy * f'(x)
  relu_bwd,       // (dy, x)
  gelu_tanh_bwd,  // (dy, x)
  gelu_erf_bwd,   // (dy, x)
  silu_bwd,       // (dy, x)
  sigmoid_bwd,    // (dy, y)  y = sigmoid(x)
  tanh_bwd,       // (dy, y)  y = tanh(x)
  clamp_bwd,      // (dy, x)  dy where alpha <= x <= beta
  // ternary
  where,  // a ? b : c  (a bool)
};

int ew_arity(EwOp op);
const char* ew_name(EwOp op);
bool ew_is_comparison(EwOp op);
bool ew_allows_integers(EwOp op);  // arithmetic that is exact on integers

struct ElementwiseParams {
  EwOp op;
  Buf out;
  Buf in[3];
  double alpha = 0, beta = 0;
};

Family<ElementwiseParams>& elementwise_family();
void elementwise_ref(const ElementwiseParams& p);
void elementwise_cpu(const ElementwiseParams& p);

// saturate_cast<C>(x) for a double x, usable in device code too (std::numeric_limits is not):
// NaN gives 0, out-of-range values saturate.
template <class C>
TESSEL_HOST_DEVICE inline C ew_saturate(double x) {
  using U = std::make_unsigned_t<C>;
  constexpr C hi = static_cast<C>(static_cast<U>(~U(0)) >> 1), lo = static_cast<C>(-hi - 1);
  if (x != x) return C(0);
  if (x <= static_cast<double>(lo)) return lo;
  if (x >= static_cast<double>(hi)) return hi;
  return static_cast<C>(x);
}

// The scalar formula. C is the compute type (float, double or an integer type). Host and
// device code (kernels/cuda/elementwise.cu) share it, so the formula lives once.
template <EwOp OP, class C>
TESSEL_HOST_DEVICE inline C apply_elementwise(C a, C b, C c, double alpha, double beta) {
  (void)b;
  (void)c;
  (void)alpha;
  (void)beta;
  using std::abs, std::exp, std::log, std::sqrt, std::tanh, std::erf, std::sin, std::cos, std::pow;
  constexpr C one = C(1), zero = C(0);
  if constexpr (OP == EwOp::neg)
    return -a;
  else if constexpr (OP == EwOp::exp)
    return exp(a);
  else if constexpr (OP == EwOp::log)
    return log(a);
  else if constexpr (OP == EwOp::sqrt)
    return sqrt(a);
  else if constexpr (OP == EwOp::rsqrt)
    return one / sqrt(a);
  else if constexpr (OP == EwOp::abs)
    return a < zero ? -a : a;
  else if constexpr (OP == EwOp::sign)
    return C((a > zero) - (a < zero));
  else if constexpr (OP == EwOp::relu)
    return a > zero ? a : zero;
  else if constexpr (OP == EwOp::gelu_tanh) {
    // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))   ("Gaussian Error Linear Units", Hendrycks & Gimpel)
    const C k = C(0.7978845608028654), c3 = C(0.044715);
    return C(0.5) * a * (one + tanh(k * (a + c3 * a * a * a)));
  } else if constexpr (OP == EwOp::gelu_erf)
    return C(0.5) * a * (one + erf(a * C(0.7071067811865476)));
  else if constexpr (OP == EwOp::silu)
    return a / (one + exp(-a));
  else if constexpr (OP == EwOp::sigmoid)
    return one / (one + exp(-a));
  else if constexpr (OP == EwOp::tanh)
    return tanh(a);
  else if constexpr (OP == EwOp::sin)
    return sin(a);
  else if constexpr (OP == EwOp::cos)
    return cos(a);
  else if constexpr (OP == EwOp::pow_scalar)
    return pow(a, C(alpha));
  else if constexpr (OP == EwOp::clamp) {
    C lo, hi;
    if constexpr (std::is_integral_v<C>) {  // integer bounds: round inward, saturate +-inf
      using std::ceil, std::floor;
      lo = ew_saturate<C>(ceil(alpha));
      hi = ew_saturate<C>(floor(beta));
    } else {
      lo = C(alpha);
      hi = C(beta);
    }
    if (a != a) return a;  // NaN stays NaN
    return a < lo ? lo : (a > hi ? hi : a);
  } else if constexpr (OP == EwOp::add)
    return a + b;
  else if constexpr (OP == EwOp::sub)
    return a - b;
  else if constexpr (OP == EwOp::mul)
    return a * b;
  else if constexpr (OP == EwOp::div)
    return a / b;
  else if constexpr (OP == EwOp::pow)
    return pow(a, b);
  else if constexpr (OP == EwOp::maximum)
    return (a != a || a > b) ? a : b;  // NaN propagates
  else if constexpr (OP == EwOp::minimum)
    return (a != a || a < b) ? a : b;
  else if constexpr (OP == EwOp::eq)
    return C(a == b);
  else if constexpr (OP == EwOp::ne)
    return C(a != b);
  else if constexpr (OP == EwOp::lt)
    return C(a < b);
  else if constexpr (OP == EwOp::le)
    return C(a <= b);
  else if constexpr (OP == EwOp::gt)
    return C(a > b);
  else if constexpr (OP == EwOp::ge)
    return C(a >= b);
  else if constexpr (OP == EwOp::relu_bwd)
    return b > zero ? a : zero;
  else if constexpr (OP == EwOp::gelu_tanh_bwd) {
    const C k = C(0.7978845608028654), c3 = C(0.044715);
    C x = b, x2 = x * x;
    C t = tanh(k * (x + c3 * x2 * x));
    C dt = k * (one + C(3) * c3 * x2) * (one - t * t);
    return a * (C(0.5) * (one + t) + C(0.5) * x * dt);
  } else if constexpr (OP == EwOp::gelu_erf_bwd) {
    C x = b;
    C cdf = C(0.5) * (one + erf(x * C(0.7071067811865476)));
    C pdf = C(0.3989422804014327) * exp(C(-0.5) * x * x);
    return a * (cdf + x * pdf);
  } else if constexpr (OP == EwOp::silu_bwd) {
    C s = one / (one + exp(-b));
    return a * s * (one + b * (one - s));
  } else if constexpr (OP == EwOp::sigmoid_bwd)
    return a * b * (one - b);
  else if constexpr (OP == EwOp::tanh_bwd)
    return a * (one - b * b);
  else if constexpr (OP == EwOp::clamp_bwd)
    return (b >= C(alpha) && b <= C(beta)) ? a : zero;
  else if constexpr (OP == EwOp::where)
    return a != zero ? b : c;
  else
    static_assert(OP == EwOp::neg, "unhandled op");
}

// Calls f(std::integral_constant<EwOp, op>{}): turns the runtime op into a template argument so
// each kernel loop is compiled once per op with the formula inlined.
template <class F>
void visit_ew_op(EwOp op, F&& f) {
#define TESSEL_EW_CASE(name) \
  case EwOp::name: return f(std::integral_constant<EwOp, EwOp::name>{});
  // clang-format off
  switch (op) {
    TESSEL_EW_CASE(neg)
    TESSEL_EW_CASE(exp)
    TESSEL_EW_CASE(log)
    TESSEL_EW_CASE(sqrt)
    TESSEL_EW_CASE(rsqrt)
    TESSEL_EW_CASE(abs)
    TESSEL_EW_CASE(sign)
    TESSEL_EW_CASE(relu)
    TESSEL_EW_CASE(gelu_tanh)
    TESSEL_EW_CASE(gelu_erf)
    TESSEL_EW_CASE(silu)
    TESSEL_EW_CASE(sigmoid)
    TESSEL_EW_CASE(tanh)
    TESSEL_EW_CASE(sin)
    TESSEL_EW_CASE(cos)
    TESSEL_EW_CASE(pow_scalar)
    TESSEL_EW_CASE(clamp)
    TESSEL_EW_CASE(add)
    TESSEL_EW_CASE(sub)
    TESSEL_EW_CASE(mul)
    TESSEL_EW_CASE(div)
    TESSEL_EW_CASE(pow)
    TESSEL_EW_CASE(maximum)
    TESSEL_EW_CASE(minimum)
    TESSEL_EW_CASE(eq)
    TESSEL_EW_CASE(ne)
    TESSEL_EW_CASE(lt)
    TESSEL_EW_CASE(le)
    TESSEL_EW_CASE(gt)
    TESSEL_EW_CASE(ge)
    TESSEL_EW_CASE(relu_bwd)
    TESSEL_EW_CASE(gelu_tanh_bwd)
    TESSEL_EW_CASE(gelu_erf_bwd)
    TESSEL_EW_CASE(silu_bwd)
    TESSEL_EW_CASE(sigmoid_bwd)
    TESSEL_EW_CASE(tanh_bwd)
    TESSEL_EW_CASE(clamp_bwd)
    TESSEL_EW_CASE(where)
  }
  // clang-format on
#undef TESSEL_EW_CASE
}

}  // namespace tessel::kernels
