// kernels/ref/attention.cpp — the oracle: each query row on its own, in f64, straight from the
// formulas in kernels/attention.h (scores, max, sum of exponentials, weighted sum of v).
//
// The backward recomputes everything from q, k, v and do: it reads neither o nor lse, so it
// checks the forward's saved values as well as the faster backward's use of them. Its delta is
// sum_j P_ij dP_ij, the definition, rather than do_i . o_i.
#include "kernels/attention.h"

#include <cmath>
#include <limits>
#include <vector>

namespace tessel::kernels {
namespace {

template <class T>
void attention_ref_typed(const AttentionParams& p) {
  const int nb = p.q.ndim - 2;
  const int64_t T_ = p.q.size[nb], D = p.q.size[nb + 1], S = p.k.size[nb], Dv = p.v.size[nb + 1];
  int64_t batch = 1;
  for (int d = 0; d < nb; ++d) batch *= p.q.size[d];
  const double scale = p.scale, nan = std::numeric_limits<double>::quiet_NaN();
  const int64_t* bs = p.q.size;
  auto rd = [](const Buf& x, int64_t off) { return static_cast<double>(static_cast<acc_t<T>>(x.ptr<T>()[off])); };
  auto wr = [](const Buf& x, int64_t off, double val) { x.ptr<T>()[off] = static_cast<T>(static_cast<acc_t<T>>(val)); };
  // Element offset of x[r, c] in the batch entry that starts at `entry`.
  auto at = [&](const Buf& x, int64_t entry, int64_t r, int64_t c) {
    return entry + r * x.stride[nb] + c * x.stride[nb + 1];
  };
  std::vector<double> s(static_cast<size_t>(S)), pr(static_cast<size_t>(S)), dp(static_cast<size_t>(S)), dk, dv;
  for (int64_t b = 0; b < batch; ++b) {
    auto entry = [&](const Buf& x) { return attention_batch_offset(x, nb, bs, b); };
    const int64_t eq = entry(p.q), ek = entry(p.k), ev = entry(p.v), eo = entry(p.o), el = entry(p.lse);
    const int64_t edo = entry(p.dout), edq = entry(p.dq), edk = entry(p.dk), edv = entry(p.dv);
    if (p.backward) {
      dk.assign(static_cast<size_t>(S * D), 0.0);
      dv.assign(static_cast<size_t>(S * Dv), 0.0);
    }
    for (int64_t i = 0; i < T_; ++i) {
      const int64_t L = attention_visible_keys(p.causal, i, T_, S);
      // P_i: the softmax of the visible scores; all NaN when nothing is visible (S > 0).
      double m = -std::numeric_limits<double>::infinity(), sum = 0;
      for (int64_t j = 0; j < L; ++j) {
        double dot = 0;
        for (int64_t d = 0; d < D; ++d) dot += rd(p.q, at(p.q, eq, i, d)) * rd(p.k, at(p.k, ek, j, d));
        s[j] = scale * dot;
        m = std::isnan(s[j]) || s[j] > m ? s[j] : m;
      }
      for (int64_t j = 0; j < L; ++j) sum += std::exp(s[j] - m);
      for (int64_t j = 0; j < S; ++j) pr[j] = L == 0 ? nan : j < L ? std::exp(s[j] - m) / sum : 0.0;
      // Masked keys take no part (not even as 0 * v); in a row that sees nothing, every key
      // carries its NaN.
      const int64_t J = L == 0 ? S : L;
      if (!p.backward) {
        for (int64_t e = 0; e < Dv; ++e) {
          double acc = 0;
          for (int64_t j = 0; j < J; ++j) acc += pr[j] * rd(p.v, at(p.v, ev, j, e));
          wr(p.o, at(p.o, eo, i, e), acc);  // S = 0: the empty sum
        }
        const double lse = S == 0 ? -std::numeric_limits<double>::infinity() : L == 0 ? nan : m + std::log(sum);
        const int64_t lo = el + i * p.lse.stride[nb];
        if (p.lse.dtype == DType::f64)
          p.lse.ptr<double>()[lo] = lse;
        else
          p.lse.ptr<float>()[lo] = static_cast<float>(lse);
        continue;
      }
      // dP_ij = do_i . v_j, delta_i = sum_j P_ij dP_ij, dS_ij = P_ij (dP_ij - delta_i).
      double delta = 0;
      for (int64_t j = 0; j < J; ++j) {
        double dot = 0;
        for (int64_t e = 0; e < Dv; ++e) dot += rd(p.dout, at(p.dout, edo, i, e)) * rd(p.v, at(p.v, ev, j, e));
        dp[j] = dot;
        delta += pr[j] * dot;
      }
      for (int64_t d = 0; d < D; ++d) {
        double acc = 0;
        for (int64_t j = 0; j < J; ++j) acc += pr[j] * (dp[j] - delta) * rd(p.k, at(p.k, ek, j, d));
        wr(p.dq, at(p.dq, edq, i, d), scale * acc);
      }
      for (int64_t j = 0; j < J; ++j) {
        const double ds = pr[j] * (dp[j] - delta);
        for (int64_t d = 0; d < D; ++d) dk[j * D + d] += scale * ds * rd(p.q, at(p.q, eq, i, d));
        for (int64_t e = 0; e < Dv; ++e) dv[j * Dv + e] += pr[j] * rd(p.dout, at(p.dout, edo, i, e));
      }
    }
    if (p.backward) {
      for (int64_t j = 0; j < S; ++j) {
        for (int64_t d = 0; d < D; ++d) wr(p.dk, at(p.dk, edk, j, d), dk[j * D + d]);
        for (int64_t e = 0; e < Dv; ++e) wr(p.dv, at(p.dv, edv, j, e), dv[j * Dv + e]);
      }
    }
  }
}

}  // namespace

void attention_ref(const AttentionParams& p) {
  visit_floating(p.q.dtype, "attention_ref", [&](auto tag) { attention_ref_typed<decltype(tag)>(p); });
}

}  // namespace tessel::kernels
