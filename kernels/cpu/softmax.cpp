// kernels/cpu/softmax.cpp — softmax, log-softmax and their gradients with OpenMP threads.
//
// Rows are independent, so threads split the rows. Each row is read from memory once (max and
// sum of exponentials together, online) and written once, about 6C flops plus C exponentials,
// moving 2C elements (3C backward): the kernel is bound by memory once exp() is vectorized.
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
#include "kernels/cuda/register.h"
#include "kernels/vec_exp.h"

namespace tessel::kernels {
namespace {

// One row of C contiguous compute-type elements. `out` may alias `x` or `g`: every pass reads
// element c before it writes element c.
//
// Forward is two passes. The first reads the row once and finds both the max m and
// s = sum exp(x - m) ("Online normalizer calculation for softmax", Milakov & Gimelshein 2018),
// at the granularity of blocks of kBlock elements rather than of elements: each block's max is
// taken first (cheap, and the block then sits in L1), the running sum is rescaled by
// exp(m_old - m_new) once if the max grew, and the block's exponentials are summed against the
// new max. That costs one exp per element, where the per-element recurrence costs two. Softmax
// stores each block's exp(x - m_block) as it goes, and a second pass multiplies each block by
// exp(m_block - m) / s, from cache; log_softmax's second pass writes x - m - log s. Backward needs a full-row dot
// product before it can write, so it reads (dy, y) twice; the row is in L1/L2 the second time, so memory sees each byte
// once. The loops are `omp simd` with 512-bit vectors in f32 (simdlen(16); GCC prefers 256 bits on this -march), and
// exp is kernels/vec_exp.h's.
template <class A>
void softmax_row(SoftmaxOp op, const A* x, const A* g, A* out, int64_t C) {
  constexpr int64_t kBlock = 512;
  switch (op) {
    case SoftmaxOp::softmax:
    case SoftmaxOp::log_softmax: {
      // A NaN in x is skipped by the max but then poisons the sum, so the whole row is NaN.
      constexpr A kNegInf = -std::numeric_limits<A>::infinity();
      constexpr int64_t kMaxBlocks = 128;  // rows up to 64K elements keep one exp per element
      const bool store = op == SoftmaxOp::softmax && C <= kBlock * kMaxBlocks;
      A block_max[kMaxBlocks];
      A m = kNegInf, s = 0;
      for (int64_t c0 = 0, blk = 0; c0 < C; c0 += kBlock, ++blk) {
        const int64_t c1 = std::min(C, c0 + kBlock);
        A bm = kNegInf;
#pragma omp simd simdlen(16) reduction(max : bm)
        for (int64_t c = c0; c < c1; ++c) bm = x[c] > bm ? x[c] : bm;
        if (bm > m) {
          s *= vexp(m - bm);  // m = -inf at the start: s = 0 * 0
          m = bm;
        }
        // -inf terms are 0 even while m is still -inf (a leading block of -inf would otherwise
        // give exp(-inf + inf) = NaN, which the two-pass form never computes).
        A bs = 0;
        if (store) {  // softmax keeps exp(x - m_block) in out, and rescales it below
          block_max[blk] = m;
#pragma omp simd simdlen(16) reduction(+ : bs)
          for (int64_t c = c0; c < c1; ++c) {
            const A e = x[c] == kNegInf ? A(0) : vexp(x[c] - m);
            out[c] = e;
            bs += e;
          }
        } else {
#pragma omp simd simdlen(16) reduction(+ : bs)
          for (int64_t c = c0; c < c1; ++c) bs += x[c] == kNegInf ? A(0) : vexp(x[c] - m);
        }
        s += bs;
      }
      if (op == SoftmaxOp::softmax && store) {
        // Block b holds exp(x - m_b): one factor exp(m_b - m) / s per block finishes it. The
        // row is in L1/L2 again (or in registers' reach), so this pass costs no memory reads.
        for (int64_t c0 = 0, blk = 0; c0 < C; c0 += kBlock, ++blk) {
          const int64_t c1 = std::min(C, c0 + kBlock);
          const A f = vexp(block_max[blk] - m) / s;
#pragma omp simd simdlen(16)
          for (int64_t c = c0; c < c1; ++c) out[c] *= f;
        }
      } else if (op == SoftmaxOp::softmax) {
        const A inv = A(1) / s;
#pragma omp simd simdlen(16)
        for (int64_t c = 0; c < C; ++c) out[c] = vexp(x[c] - m) * inv;
      } else {
        const A log_s = std::log(s);
#pragma omp simd simdlen(16)
        for (int64_t c = 0; c < C; ++c) out[c] = (x[c] - m) - log_s;
      }
      break;
    }
    case SoftmaxOp::softmax_backward: {
      A s = 0;
#pragma omp simd simdlen(16) reduction(+ : s)
      for (int64_t c = 0; c < C; ++c) s += g[c] * x[c];
#pragma omp simd simdlen(16)
      for (int64_t c = 0; c < C; ++c) out[c] = x[c] * (g[c] - s);
      break;
    }
    case SoftmaxOp::log_softmax_backward: {
      A s = 0;
#pragma omp simd simdlen(16) reduction(+ : s)
      for (int64_t c = 0; c < C; ++c) s += g[c];
#pragma omp simd simdlen(16)
      for (int64_t c = 0; c < C; ++c) out[c] = g[c] - vexp(x[c]) * s;
      break;
    }
  }
}

// The masked tail [L, C) of a causal row: probability 0 (log-probability -inf); a row with
// nothing left (L = 0) is all NaN.
template <class A>
void mask_tail(SoftmaxOp op, A* out, int64_t L, int64_t C) {
  const A v = L == 0                     ? std::numeric_limits<A>::quiet_NaN()
              : op == SoftmaxOp::softmax ? A(0)
                                         : -std::numeric_limits<A>::infinity();
  for (int64_t c = L; c < C; ++c) out[c] = v;
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
          const int64_t L = softmax_row_length(p, r, C);
          softmax_row<A>(p.op, in + oi[0], bwd ? grad + og[0] : nullptr, out + oo[0], L);
          if (L < C) mask_tail(p.op, out + oo[0], L, C);
          continue;
        }
      }
      for (int64_t c = 0; c < C; ++c)
        for (int64_t b = 0; b < nb; ++b) xs[b * C + c] = static_cast<A>(in[oi[b] + c * si]);
      if (bwd)
        for (int64_t c = 0; c < C; ++c)
          for (int64_t b = 0; b < nb; ++b) gs[b * C + c] = static_cast<A>(grad[og[b] + c * sg]);
      for (int64_t b = 0; b < nb; ++b) {
        const int64_t L = softmax_row_length(p, r + b, C);
        softmax_row<A>(p.op, xs.data() + b * C, bwd ? gs.data() + b * C : nullptr, xs.data() + b * C, L);
        if (L < C) mask_tail(p.op, xs.data() + b * C, L, C);
      }
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
  static Family<SoftmaxParams>* f = [] {
    auto* fam = make_cpu_family<SoftmaxParams>("softmax", softmax_ref, softmax_cpu);
#if TESSEL_HAVE_CUDA
    register_softmax_cuda(*fam);
#endif
    return fam;
  }();
  return *f;
}

}  // namespace tessel::kernels
