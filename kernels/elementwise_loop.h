// kernels/elementwise_loop.h — the per-element step shared by the elementwise versions:
// load the inputs at their offsets, apply the formula in the compute type, store.
#pragma once
#include <stdexcept>
#include <type_traits>

#include "kernels/elementwise.h"

namespace tessel::kernels {

// Whether op OP is compiled for storage type T (integers and bool get the exact ops only).
template <EwOp OP, class T>
constexpr bool ew_supported() {
  if constexpr (std::is_floating_point_v<T> || std::is_same_v<T, bf16> || std::is_same_v<T, f16>)
    return true;
  else if constexpr (std::is_same_v<T, bool>)
    return OP == EwOp::eq || OP == EwOp::ne || OP == EwOp::lt || OP == EwOp::le || OP == EwOp::gt || OP == EwOp::ge ||
           OP == EwOp::where || OP == EwOp::mul || OP == EwOp::maximum || OP == EwOp::minimum;
  else
    return OP == EwOp::neg || OP == EwOp::abs || OP == EwOp::sign || OP == EwOp::relu || OP == EwOp::clamp ||
           OP == EwOp::add || OP == EwOp::sub || OP == EwOp::mul || OP == EwOp::maximum || OP == EwOp::minimum ||
           OP == EwOp::where || (OP >= EwOp::eq && OP <= EwOp::ge);
}

// Storage types of the output and of input 0 for data type T.
template <EwOp OP, class T>
using ew_out_t = std::conditional_t<(OP >= EwOp::eq && OP <= EwOp::ge), bool, T>;
template <EwOp OP, class T>
using ew_in0_t = std::conditional_t<OP == EwOp::where, bool, T>;

template <EwOp OP, class T>
struct EwStep {
  using C = acc_t<T>;
  using Out = ew_out_t<OP, T>;
  using In0 = ew_in0_t<OP, T>;
  static constexpr int arity = OP == EwOp::where ? 3 : (OP >= EwOp::add ? 2 : 1);

  // out[o] = f(a[ia], b[ib], c[ic]); inputs beyond the op's arity are never touched.
  static inline void run(Out* out, int64_t o, const In0* a, int64_t ia, const T* b, int64_t ib, const T* c, int64_t ic,
                         double alpha, double beta) {
    C va = static_cast<C>(a[ia]);
    C vb = C(0), vc = C(0);
    if constexpr (arity >= 2) vb = static_cast<C>(b[ib]);
    if constexpr (arity >= 3) vc = static_cast<C>(c[ic]);
    C r = apply_elementwise<OP, C>(va, vb, vc, alpha, beta);
    if constexpr (std::is_same_v<Out, bool>)
      out[o] = r != C(0);
    else
      out[o] = static_cast<Out>(r);
  }
};

}  // namespace tessel::kernels
