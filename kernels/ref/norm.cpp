// kernels/ref/norm.cpp — the oracle: one row at a time, everything in f64, the formulas of
// kernels/norm.h written out directly (two-pass mean and variance).
#include "kernels/norm.h"

#include <cmath>
#include <vector>

namespace tessel::kernels {
namespace {

template <class T, class S>
void norm_ref_typed(const NormParams& p) {
  const int64_t R = p.rows, C = p.cols;
  const bool layer = norm_is_layer(p.op);
  const T* x = p.x.ptr<T>();
  const T* w = p.weight.ptr<T>();
  auto ld = [](T v) { return static_cast<double>(static_cast<acc_t<T>>(v)); };
  auto st = [](double v) { return static_cast<T>(static_cast<acc_t<T>>(v)); };
  if (!norm_is_backward(p.op)) {
    const T* b = p.bias.ptr<T>();
    T* y = p.y.ptr<T>();
    for (int64_t r = 0; r < R; ++r) {
      const T* xr = x + r * C;
      double mu = 0, ss = 0;
      if (layer) {
        for (int64_t c = 0; c < C; ++c) mu += ld(xr[c]);
        mu /= static_cast<double>(C);
      }
      for (int64_t c = 0; c < C; ++c) ss += (ld(xr[c]) - mu) * (ld(xr[c]) - mu);
      double rstd = 1.0 / std::sqrt(ss / static_cast<double>(C) + p.eps);
      for (int64_t c = 0; c < C; ++c) {
        double v = (ld(xr[c]) - mu) * rstd;
        if (w) v *= ld(w[c]);
        if (b) v += ld(b[c]);
        y[r * C + c] = st(v);
      }
      if (layer) p.mean.ptr<S>()[r] = static_cast<S>(mu);
      p.rstd.ptr<S>()[r] = static_cast<S>(rstd);
    }
    return;
  }
  const T* dy = p.dy.ptr<T>();
  std::vector<double> dw(static_cast<size_t>(C), 0.0), db(static_cast<size_t>(C), 0.0);
  for (int64_t r = 0; r < R; ++r) {
    const double mu = layer ? static_cast<double>(p.mean.ptr<S>()[r]) : 0.0;
    const double rstd = static_cast<double>(p.rstd.ptr<S>()[r]);
    double mean_g = 0, mean_gx = 0;
    for (int64_t c = 0; c < C; ++c) {
      double xhat = (ld(x[r * C + c]) - mu) * rstd;
      double d = ld(dy[r * C + c]);
      double g = w ? d * ld(w[c]) : d;
      mean_g += g;
      mean_gx += g * xhat;
      dw[c] += d * xhat;
      db[c] += d;
    }
    mean_g /= static_cast<double>(C);
    mean_gx /= static_cast<double>(C);
    if (!layer) mean_g = 0;
    if (p.dx.data)
      for (int64_t c = 0; c < C; ++c) {
        double xhat = (ld(x[r * C + c]) - mu) * rstd;
        double d = ld(dy[r * C + c]);
        double g = w ? d * ld(w[c]) : d;
        p.dx.ptr<T>()[r * C + c] = st(rstd * (g - mean_g - xhat * mean_gx));
      }
  }
  for (int64_t c = 0; c < C; ++c) {
    if (p.dweight.data) p.dweight.ptr<T>()[c] = st(dw[c]);
    if (p.dbias.data) p.dbias.ptr<T>()[c] = st(db[c]);
  }
}

}  // namespace

void norm_ref(const NormParams& p) {
  visit_floating(p.x.dtype, "norm_ref", [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_same_v<T, double>)
      norm_ref_typed<T, double>(p);
    else
      norm_ref_typed<T, float>(p);
  });
}

}  // namespace tessel::kernels
