// kernels/reduce_common.h — the per-row reduction both reduce versions share: walk one output's
// R inputs (strided), fold them, write the result. Accumulation is in f64 for floats and in
// i64 for integers, so the order of summation barely matters at f32 output precision.
#pragma once
#include <cmath>
#include <type_traits>

#include "kernels/reduce.h"

namespace tessel::kernels {

template <class T>
using reduce_acc_t = std::conditional_t<std::is_integral_v<acc_t<T>>, int64_t, double>;
// sum of integers or bools is i64; everything else keeps the input dtype
template <class T>
using reduce_out_t = std::conditional_t<std::is_integral_v<acc_t<T>>, int64_t, T>;

template <class A>
inline bool is_nan(A v) {
  if constexpr (std::is_floating_point_v<A>)
    return v != v;
  else
    return false;
}

// Calls f(T{}, O{}) with the input's storage type T and the output's O: max/min keep the
// dtype; sum and mean of integers or bools give i64.
template <class F>
void visit_reduce_types(const ReduceParams& p, F&& f) {
  visit_dtype(p.in.dtype, [&](auto tag) {
    using T = decltype(tag);
    if (p.op == ReduceOp::max || p.op == ReduceOp::min)
      f(T{}, T{});
    else
      f(T{}, reduce_out_t<T>{});
  });
}

// Reduces the R elements of `in` at base offset `base` over the reduced dims
// (sizes rsize[0..nr), strides rstride). Writes *out and, for max/min, *idx.
template <class T, class O>
inline void reduce_one(const ReduceParams& p, const T* in, int64_t base, int nr, const int64_t* rsize,
                       const int64_t* rstride, int64_t R, O* out, int64_t* idx) {
  using A = reduce_acc_t<T>;
  const int64_t* st[1] = {rstride};
  StridedCounter<1> it(nr, rsize, st);
  switch (p.op) {
    case ReduceOp::sum:
    case ReduceOp::mean:
    case ReduceOp::sumsq: {
      const bool sq = p.op == ReduceOp::sumsq;
      A acc = 0;
      if (nr == 1) {  // one reduced dim: a plain strided loop the compiler can vectorize
        const T* row = in + base;
        const int64_t s = rstride[0];
#pragma omp simd reduction(+ : acc)
        for (int64_t r = 0; r < R; ++r) {
          const A v = static_cast<A>(static_cast<acc_t<T>>(row[r * s]));
          acc += sq ? v * v : v;
        }
      } else {
        for (int64_t r = 0; r < R; ++r, it.next()) {
          const A v = static_cast<A>(static_cast<acc_t<T>>(in[base + it.off[0]]));
          acc += sq ? v * v : v;
        }
      }
      if (p.op == ReduceOp::mean) acc = static_cast<A>(acc / static_cast<A>(R));
      *out = static_cast<O>(static_cast<acc_t<O>>(acc));
      break;
    }
    case ReduceOp::max:
    case ReduceOp::min: {
      const bool want_max = p.op == ReduceOp::max;
      A best = 0;
      int64_t best_i = 0;
      for (int64_t r = 0; r < R; ++r, it.next()) {
        A v = static_cast<A>(static_cast<acc_t<T>>(in[base + it.off[0]]));
        if (r == 0 || (!is_nan(best) && (is_nan(v) || (want_max ? v > best : v < best)))) {
          best = v;
          best_i = r;
        }
      }
      *out = static_cast<O>(static_cast<acc_t<O>>(best));
      if (idx) *idx = best_i;
      break;
    }
    case ReduceOp::var: {
      double mean = 0;
      for (int64_t r = 0; r < R; ++r, it.next())
        mean += static_cast<double>(static_cast<acc_t<T>>(in[base + it.off[0]]));
      mean /= static_cast<double>(R);
      it.seek(0);
      double ss = 0;
      for (int64_t r = 0; r < R; ++r, it.next()) {
        double d = static_cast<double>(static_cast<acc_t<T>>(in[base + it.off[0]])) - mean;
        ss += d * d;
      }
      double denom = static_cast<double>(R) - p.correction;
      double v = denom > 0 ? ss / denom : std::nan("");
      *out = static_cast<O>(static_cast<acc_t<O>>(v));
      break;
    }
  }
}

}  // namespace tessel::kernels
