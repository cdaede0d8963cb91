// kernels/ref/optim.cpp — the oracle: each tensor, each element, in order, in double for norms.
#include <cmath>

#include "kernels/optim_update.h"

namespace tessel::kernels {

namespace {
template <class T>
void run(const OptimParams& p) {
  for (const OptimSlot& s : p.slots) {
    T* w = s.param.ptr<T>();
    const T* g = s.grad.ptr<T>();
    T* m = s.m.ptr<T>();
    T* v = s.v.ptr<T>();
    const int64_t n = s.param.numel();
    if (p.op == OptimOp::sgd) {
      for (int64_t i = 0; i < n; ++i) sgd_element(p, s.first, w, g, m, i);
    } else if (p.op == OptimOp::adam || p.op == OptimOp::adamw) {
      for (int64_t i = 0; i < n; ++i) adam_element(p, w, g, m, v, i);
    } else {  // LAMB: moments and the direction's norm first, then the scaled step
      const T c1 = T(1 - std::pow(p.beta1, static_cast<double>(p.step)));
      const T c2 = T(1 - std::pow(p.beta2, static_cast<double>(p.step)));
      double wn = 0, rn = 0;
      for (int64_t i = 0; i < n; ++i) {
        T r = adam_direction(g[i], m[i], v[i], T(p.beta1), T(p.beta2), c1, c2, T(p.eps)) + T(p.weight_decay) * w[i];
        wn += double(w[i]) * double(w[i]);
        rn += double(r) * double(r);
      }
      double ratio = (wn > 0 && rn > 0) ? std::sqrt(wn) / std::sqrt(rn) : 1.0;
      for (int64_t i = 0; i < n; ++i) {
        T r = (m[i] / c1) / (std::sqrt(v[i] / c2) + T(p.eps)) + T(p.weight_decay) * w[i];
        w[i] -= T(p.lr * ratio) * r;
      }
    }
  }
}
}  // namespace

void optim_ref(const OptimParams& p) {
  if (p.slots.empty()) return;
  if (p.slots[0].param.dtype == DType::f64)
    run<double>(p);
  else
    run<float>(p);
}

}  // namespace tessel::kernels
