// kernels/ref/softmax.cpp — the oracle: each row in order, in f64, straight from the formulas
// in kernels/softmax.h (three passes: max, sum of exponentials, write).
#include "kernels/softmax.h"

#include <cmath>
#include <limits>

namespace tessel::kernels {

void softmax_ref(const SoftmaxParams& p) {
  visit_floating(p.in.dtype, "softmax_ref", [&](auto tag) {
    using T = decltype(tag);
    const int outer = p.in.ndim - 1;
    const int64_t C = p.in.size[outer];
    int64_t R = 1;
    for (int d = 0; d < outer; ++d) R *= p.in.size[d];
    const bool bwd = softmax_is_backward(p.op);
    const int64_t* st[3] = {p.in.stride, p.out.stride, bwd ? p.grad.stride : p.in.stride};
    StridedCounter<3> it(outer, p.in.size, st);
    const T* in = p.in.ptr<T>();
    const T* grad = bwd ? p.grad.ptr<T>() : nullptr;
    T* out = p.out.ptr<T>();
    const int64_t si = p.in.stride[outer], so = p.out.stride[outer], sg = bwd ? p.grad.stride[outer] : 0;
    auto x = [&](int64_t c) { return static_cast<double>(static_cast<acc_t<T>>(in[it.off[0] + c * si])); };
    auto dy = [&](int64_t c) { return static_cast<double>(static_cast<acc_t<T>>(grad[it.off[2] + c * sg])); };
    auto put = [&](int64_t c, double v) { out[it.off[1] + c * so] = static_cast<T>(static_cast<acc_t<T>>(v)); };
    for (int64_t r = 0; r < R; ++r, it.next()) {
      switch (p.op) {
        case SoftmaxOp::softmax:
        case SoftmaxOp::log_softmax: {
          const int64_t L = softmax_row_length(p, r, C);  // C unless causal
          double m = -std::numeric_limits<double>::infinity();
          for (int64_t c = 0; c < L; ++c) m = std::isnan(x(c)) || x(c) > m ? x(c) : m;
          double s = 0;
          for (int64_t c = 0; c < L; ++c) s += std::exp(x(c) - m);
          if (L == 0) s = std::numeric_limits<double>::quiet_NaN();  // softmax of nothing but -inf
          if (p.op == SoftmaxOp::softmax)
            for (int64_t c = 0; c < L; ++c) put(c, std::exp(x(c) - m) / s);
          else
            for (int64_t c = 0; c < L; ++c) put(c, x(c) - m - std::log(s));
          for (int64_t c = L; c < C; ++c)
            put(c, L == 0 ? s : p.op == SoftmaxOp::softmax ? 0.0 : -std::numeric_limits<double>::infinity());
          break;
        }
        case SoftmaxOp::softmax_backward: {
          double s = 0;
          for (int64_t c = 0; c < C; ++c) s += dy(c) * x(c);
          for (int64_t c = 0; c < C; ++c) put(c, x(c) * (dy(c) - s));
          break;
        }
        case SoftmaxOp::log_softmax_backward: {
          double s = 0;
          for (int64_t c = 0; c < C; ++c) s += dy(c);
          for (int64_t c = 0; c < C; ++c) put(c, dy(c) - std::exp(x(c)) * s);
          break;
        }
      }
    }
  });
}

}  // namespace tessel::kernels
