// kernels/optim_update.h — the per-element update rules both optim versions share.
#pragma once
#include <cmath>

#include "kernels/optim.h"

namespace tessel::kernels {

// Bias-corrected Adam direction u for one element, updating m and v.
template <class T>
inline T adam_direction(T g, T& m, T& v, T b1, T b2, T c1, T c2, T eps) {
  m = b1 * m + (T(1) - b1) * g;
  v = b2 * v + (T(1) - b2) * g * g;
  return (m / c1) / (std::sqrt(v / c2) + eps);
}

// SGD on element i of one slot.
template <class T>
inline void sgd_element(const OptimParams& p, bool first, T* w, const T* g, T* buf, int64_t i) {
  T d = g[i] + T(p.weight_decay) * w[i];
  if (p.momentum != 0) {
    T mu = T(p.momentum);
    buf[i] = first ? d : mu * buf[i] + (T(1) - T(p.dampening)) * d;
    d = p.nesterov ? d + mu * buf[i] : buf[i];
  }
  w[i] -= T(p.lr) * d;
}

// Adam or AdamW on element i of one slot.
template <class T>
inline void adam_element(const OptimParams& p, T* w, const T* g, T* m, T* v, int64_t i) {
  const T b1 = T(p.beta1), b2 = T(p.beta2);
  const T c1 = T(1 - std::pow(p.beta1, static_cast<double>(p.step)));
  const T c2 = T(1 - std::pow(p.beta2, static_cast<double>(p.step)));
  T grad = g[i];
  if (p.op == OptimOp::adamw)
    w[i] -= T(p.lr * p.weight_decay) * w[i];
  else
    grad += T(p.weight_decay) * w[i];
  w[i] -= T(p.lr) * adam_direction(grad, m[i], v[i], b1, b2, c1, c2, T(p.eps));
}

}  // namespace tessel::kernels
