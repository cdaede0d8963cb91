// kernels/cpu/softmax.cpp — softmax, log-softmax and their gradients with OpenMP threads.
//
// Rows are independent, so threads split the rows. Each row costs three streaming passes over
// C elements (max; exponentials and their sum; scale), about 5C flops plus C exponentials, and
// moves 2C elements (3C backward): the kernel is bound by memory and by exp().
//
// Two layouts:
//  - the softmax dim is contiguous in every operand and the storage type is the compute type
//    (f32, f64): the passes run on the rows in place, each a unit-stride loop the compiler
//    vectorizes (the max and the sums are `omp simd` reductions);
//  - anything else (the dim strided, e.g. softmax over dim 0 of a row-major matrix, or bf16/f16
//    storage): a block of up to 64 rows is gathered into a per-thread f32/f64 scratch, run
//    through the same row passes, and scattered back. The gather walks the block's rows in the
//    inner loop, so when neighbouring rows are neighbours in memory (the transposed case) each
//    cache line brought in is used in full instead of for one element.
#include "kernels/softmax.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "core/parallel.h"
#include "kernels/vec_exp.h"

namespace tessel::kernels {
namespace {

// One row of C contiguous compute-type elements. `out` may alias `x` or `g`: every pass reads
// element c before it writes element c.
template <class A>
void softmax_row(SoftmaxOp op, const A* x, const A* g, A* out, int64_t C) {
  switch (op) {
    case SoftmaxOp::softmax:
    case SoftmaxOp::log_softmax: {
      // A NaN in x is skipped by the max but then poisons the sum, so the whole row is NaN.
      A m = -std::numeric_limits<A>::infinity();
#pragma omp simd reduction(max : m)
      for (int64_t c = 0; c < C; ++c) m = x[c] > m ? x[c] : m;
      A s = 0;
      if (op == SoftmaxOp::softmax) {
#pragma omp simd reduction(+ : s)
        for (int64_t c = 0; c < C; ++c) {
          A e = vexp(x[c] - m);
          out[c] = e;
          s += e;
        }
        const A inv = A(1) / s;
#pragma omp simd
        for (int64_t c = 0; c < C; ++c) out[c] *= inv;
      } else {
#pragma omp simd reduction(+ : s)
        for (int64_t c = 0; c < C; ++c) s += vexp(x[c] - m);
        const A log_s = std::log(s);
#pragma omp simd
        for (int64_t c = 0; c < C; ++c) out[c] = (x[c] - m) - log_s;
      }
      break;
    }
    case SoftmaxOp::softmax_backward: {
      A s = 0;
#pragma omp simd reduction(+ : s)
      for (int64_t c = 0; c < C; ++c) s += g[c] * x[c];
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) out[c] = x[c] * (g[c] - s);
      break;
    }
    case SoftmaxOp::log_softmax_backward: {
      A s = 0;
#pragma omp simd reduction(+ : s)
      for (int64_t c = 0; c < C; ++c) s += g[c];
      for (int64_t c = 0; c < C; ++c) out[c] = g[c] - vexp(x[c]) * s;
      break;
    }
  }
}

template <class T>
void softmax_rows(const SoftmaxParams& p) {
  using A = acc_t<T>;
  const int outer = p.in.ndim - 1;
  const int64_t C = p.in.size[outer];
  int64_t R = 1;
  for (int d = 0; d < outer; ++d) R *= p.in.size[d];
  if (R == 0 || C == 0) return;
  const bool bwd = softmax_is_backward(p.op);
  const int64_t si = p.in.stride[outer], so = p.out.stride[outer], sg = bwd ? p.grad.stride[outer] : 1;
  const bool direct = std::is_same_v<T, A> && si == 1 && so == 1 && sg == 1;
  constexpr int64_t kMaxBlock = 64;
  // Rows per gathered block: enough to use whole cache lines, few enough to stay in L1/L2.
  const int64_t block = direct ? 1 : std::clamp<int64_t>(8192 / C, 1, kMaxBlock);
  const int64_t* st[3] = {p.in.stride, p.out.stride, bwd ? p.grad.stride : p.in.stride};
  const T* in = p.in.ptr<T>();
  const T* grad = bwd ? p.grad.ptr<T>() : nullptr;
  T* out = p.out.ptr<T>();
  parallel_for(R, std::max<int64_t>(1, (1 << 15) / C), [&](int64_t r0, int64_t r1) {
    StridedCounter<3> it(outer, p.in.size, st);
    it.seek(r0);
    std::vector<A> xs, gs;
    if (!direct) {
      xs.resize(static_cast<size_t>(block * C));
      if (bwd) gs.resize(static_cast<size_t>(block * C));
    }
    int64_t oi[kMaxBlock], oo[kMaxBlock], og[kMaxBlock];
    for (int64_t r = r0; r < r1; r += block) {
      const int64_t nb = std::min(block, r1 - r);
      for (int64_t b = 0; b < nb; ++b, it.next()) {
        oi[b] = it.off[0];
        oo[b] = it.off[1];
        og[b] = it.off[2];
      }
      if constexpr (std::is_same_v<T, A>) {
        if (direct) {
          softmax_row<A>(p.op, in + oi[0], bwd ? grad + og[0] : nullptr, out + oo[0], C);
          continue;
        }
      }
      for (int64_t c = 0; c < C; ++c)
        for (int64_t b = 0; b < nb; ++b) xs[b * C + c] = static_cast<A>(in[oi[b] + c * si]);
      if (bwd)
        for (int64_t c = 0; c < C; ++c)
          for (int64_t b = 0; b < nb; ++b) gs[b * C + c] = static_cast<A>(grad[og[b] + c * sg]);
      for (int64_t b = 0; b < nb; ++b)
        softmax_row<A>(p.op, xs.data() + b * C, bwd ? gs.data() + b * C : nullptr, xs.data() + b * C, C);
      for (int64_t c = 0; c < C; ++c)
        for (int64_t b = 0; b < nb; ++b) out[oo[b] + c * so] = static_cast<T>(xs[b * C + c]);
    }
  });
}

}  // namespace

void softmax_cpu(const SoftmaxParams& p) {
  visit_floating(p.in.dtype, "softmax_cpu", [&](auto tag) { softmax_rows<decltype(tag)>(p); });
}

Family<SoftmaxParams>& softmax_family() {
  static Family<SoftmaxParams>* f = make_cpu_family<SoftmaxParams>("softmax", softmax_ref, softmax_cpu);
  return *f;
}

}  // namespace tessel::kernels
