// kernels/ref/loss.cpp — the oracle: each row in order, in f64, the formulas of kernels/loss.h.
#include "kernels/loss.h"

#include <cmath>
#include <limits>

namespace tessel::kernels {
namespace {

template <class T, class S, class I>
void loss_ref_typed(const LossParams& p) {
  const int64_t N = p.input.size[0], C = p.input.size[1];
  const int64_t s0 = p.input.stride[0], s1 = p.input.stride[1];
  const T* in = p.input.ptr<T>();
  const I* tg = p.target.ptr<I>();
  auto x = [&](int64_t n, int64_t c) { return static_cast<double>(static_cast<acc_t<T>>(in[n * s0 + c * s1])); };
  const double eps = p.label_smoothing;
  const bool ce = p.op == LossOp::cross_entropy || p.op == LossOp::cross_entropy_backward;
  for (int64_t n = 0; n < N; ++n) {
    const int64_t t = static_cast<int64_t>(tg[n * p.target.stride[0]]);
    const bool ignored = t == p.ignore_index;
    if (!loss_is_backward(p.op)) {
      double loss = 0, lse = 0;
      if (ce) {
        double m = -std::numeric_limits<double>::infinity();
        for (int64_t c = 0; c < C; ++c) m = std::isnan(x(n, c)) || x(n, c) > m ? x(n, c) : m;
        double s = 0, sum_x = 0;
        for (int64_t c = 0; c < C; ++c) {
          s += std::exp(x(n, c) - m);
          sum_x += x(n, c);
        }
        lse = m + std::log(s);
        if (!ignored) loss = lse - (1 - eps) * x(n, t) - (eps > 0 ? eps * sum_x / static_cast<double>(C) : 0.0);
        p.lse.ptr<S>()[n * p.lse.stride[0]] = static_cast<S>(lse);
      } else if (!ignored) {
        loss = -x(n, t);
      }
      p.loss.ptr<S>()[n * p.loss.stride[0]] = static_cast<S>(loss);
    } else {
      const double g = static_cast<double>(p.grad_row.ptr<S>()[n * p.grad_row.stride[0]]);
      const double lse = ce ? static_cast<double>(p.lse.ptr<S>()[n * p.lse.stride[0]]) : 0.0;
      T* dx = p.dinput.ptr<T>();
      for (int64_t c = 0; c < C; ++c) {
        double v = 0;
        if (!ignored) {
          const double hit = c == t ? 1.0 : 0.0;
          v = ce ? (std::exp(x(n, c) - lse) - (1 - eps) * hit - eps / static_cast<double>(C)) * g : -hit * g;
        }
        dx[n * p.dinput.stride[0] + c * p.dinput.stride[1]] = static_cast<T>(static_cast<acc_t<T>>(v));
      }
    }
  }
}

}  // namespace

void loss_ref(const LossParams& p) {
  visit_floating(p.input.dtype, "loss_ref", [&](auto tag) {
    using T = decltype(tag);
    using S = std::conditional_t<std::is_same_v<T, double>, double, float>;
    if (p.target.dtype == DType::i32)
      loss_ref_typed<T, S, int32_t>(p);
    else
      loss_ref_typed<T, S, int64_t>(p);
  });
}

}  // namespace tessel::kernels
