// kernels/reduce.h — reductions over any set of dims: sum, mean, max/min (with indices), var.
//
// The op layer permutes the input so that the kept dims come first and the reduced dims last:
//   in:  [K0, ..., Kk-1, R0, ..., Rr-1]  (any strides)      out: [K0, ..., Kk-1]
// and each output element reduces the R = prod(Ri) inputs behind it:
//   sum   out = sum_r x            mean  out = sum_r x / R          sumsq out = sum_r x^2
//   max   out = max_r x, idx = first r attaining it (NaN wins: it propagates)
//   var   out = sum_r (x - mean)^2 / (R - correction)   (two passes: mean first, for accuracy)
// `idx` (i64, out's shape) receives the flat index within the reduced dims for max/min.
// Accumulation is f64 in ref, f32 lanes (pairwise by construction) or f64 in cpu for f32/f64.
#pragma once
#include <vector>

#include "core/buf.h"
#include "kernels/registry.h"

namespace tessel::kernels {

enum class ReduceOp : uint8_t { sum, mean, max, min, var, sumsq };

struct ReduceParams {
  ReduceOp op;
  Buf in;                 // ndim = kept + reduced
  int reduced;            // how many trailing dims of `in` are reduced
  Buf out;                // the kept dims: in.size[0 .. ndim - reduced)
  Buf idx;                // max/min only, optional (data null): i64, same shape as out
  double correction = 1;  // var: Bessel's correction by default
};

// `in` with its kept dims first and its reduced dims (mask[d] true) last, in their order, by
// permuting sizes and strides (no data moves): the layout ReduceParams::in expects. Returns the
// number of reduced dims (ReduceParams::reduced).
inline int reduced_dims_last(const Buf& in, const std::vector<bool>& mask, Buf& out) {
  out = in;
  int k = 0;
  for (int pass = 0; pass < 2; ++pass)  // kept dims, then reduced ones
    for (int d = 0; d < in.ndim; ++d)
      if (mask[d] == (pass == 1)) {
        out.size[k] = in.size[d];
        out.stride[k++] = in.stride[d];
      }
  int reduced = 0;
  for (int d = 0; d < in.ndim; ++d) reduced += mask[d];
  return reduced;
}

Family<ReduceParams>& reduce_family();
void reduce_ref(const ReduceParams& p);
void reduce_cpu(const ReduceParams& p);

}  // namespace tessel::kernels
