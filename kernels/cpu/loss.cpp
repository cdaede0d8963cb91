// kernels/cpu/loss.cpp — fused cross-entropy / NLL forward and backward with OpenMP threads.
//
// Threads split the rows. Cross-entropy forward reads a row once (max and sum of exp(x - max),
// online by blocks, together with sum of x for label smoothing) and stores only lse and
// the loss: 1 read of C elements from memory (the block is re-read from L1), ~5C flops + C
// exponentials per row, never materializing the probabilities. Backward recomputes
// p = exp(x - lse) from the saved lse in the one pass that writes dx, so the whole loss costs
// two reads and one write of the logits — the reason to
// fuse it instead of composing log_softmax and a gather. Rows whose class dim is strided, or
// stored as bf16/f16, are widened into a per-thread scratch row first.
#include "kernels/loss.h"

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

template <class T, class S, class I>
void loss_rows(const LossParams& p) {
  const int64_t N = p.input.size[0], C = p.input.size[1];
  if (N == 0) return;
  const int64_t s0 = p.input.stride[0], s1 = p.input.stride[1];
  const T* in = p.input.ptr<T>();
  const I* tg = p.target.ptr<I>();
  const bool ce = p.op == LossOp::cross_entropy || p.op == LossOp::cross_entropy_backward;
  const bool bwd = loss_is_backward(p.op);
  const S eps = static_cast<S>(p.label_smoothing);
  const bool direct = std::is_same_v<T, S> && s1 == 1;
  parallel_for(N, std::max<int64_t>(1, (1 << 15) / std::max<int64_t>(C, 1)), [&](int64_t n0, int64_t n1) {
    std::vector<S> scratch(direct ? 0 : static_cast<size_t>(C));
    for (int64_t n = n0; n < n1; ++n) {
      const int64_t t = static_cast<int64_t>(tg[n * p.target.stride[0]]);
      const bool ignored = t == p.ignore_index;
      const S* x = scratch.data();
      if constexpr (std::is_same_v<T, S>) {
        if (direct) x = in + n * s0;
      }
      if (!direct) {
        for (int64_t c = 0; c < C; ++c) scratch[c] = static_cast<S>(in[n * s0 + c * s1]);
      }
      if (!bwd) {
        S loss = 0;
        if (ce) {
          // One read of the row: max and sum of exp(x - max) together, online by blocks (as in
          // kernels/cpu/softmax.cpp; "Online normalizer calculation for softmax").
          constexpr S kNegInf = -std::numeric_limits<S>::infinity();
          constexpr int64_t kBlock = 512;
          S m = kNegInf, s = 0, sum_x = 0;
          for (int64_t c0 = 0; c0 < C; c0 += kBlock) {
            const int64_t c1 = std::min(C, c0 + kBlock);
            S bm = kNegInf;
#pragma omp simd simdlen(16) reduction(max : bm)
            for (int64_t c = c0; c < c1; ++c) bm = x[c] > bm ? x[c] : bm;
            if (bm > m) {
              s *= vexp(m - bm);
              m = bm;
            }
            S bs = 0, bx = 0;
#pragma omp simd simdlen(16) reduction(+ : bs, bx)
            for (int64_t c = c0; c < c1; ++c) {
              bs += x[c] == kNegInf ? S(0) : vexp(x[c] - m);
              bx += x[c];
            }
            s += bs;
            sum_x += bx;
          }
          const S lse = m + std::log(s);
          if (!ignored) loss = lse - (S(1) - eps) * x[t] - (eps > 0 ? eps * sum_x / static_cast<S>(C) : S(0));
          p.lse.ptr<S>()[n * p.lse.stride[0]] = lse;
        } else if (!ignored) {
          loss = -x[t];
        }
        p.loss.ptr<S>()[n * p.loss.stride[0]] = loss;
        continue;
      }
      T* dx = p.dinput.ptr<T>() + n * p.dinput.stride[0];
      const int64_t ds = p.dinput.stride[1];
      if (ignored) {
        for (int64_t c = 0; c < C; ++c) dx[c * ds] = static_cast<T>(S(0));
        continue;
      }
      const S g = p.grad_row.ptr<S>()[n * p.grad_row.stride[0]];
      if (ce) {
        const S lse = p.lse.ptr<S>()[n * p.lse.stride[0]];
        const S floor_q = eps / static_cast<S>(C);  // every class's share of the smoothed target
        if (ds == 1) {
#pragma omp simd simdlen(16)
          for (int64_t c = 0; c < C; ++c) dx[c] = static_cast<T>((vexp(x[c] - lse) - floor_q) * g);
        } else {
          for (int64_t c = 0; c < C; ++c) dx[c * ds] = static_cast<T>((vexp(x[c] - lse) - floor_q) * g);
        }
        // The target's extra (1 - eps), applied to the one element it touches.
        dx[t * ds] = static_cast<T>((vexp(x[t] - lse) - floor_q - (S(1) - eps)) * g);
      } else {
        for (int64_t c = 0; c < C; ++c) dx[c * ds] = static_cast<T>(S(0));
        dx[t * ds] = static_cast<T>(-g);
      }
    }
  });
}

}  // namespace

void loss_cpu(const LossParams& p) {
  visit_floating(p.input.dtype, "loss_cpu", [&](auto tag) {
    using T = decltype(tag);
    using S = std::conditional_t<std::is_same_v<T, double>, double, float>;
    if (p.target.dtype == DType::i32)
      loss_rows<T, S, int32_t>(p);
    else
      loss_rows<T, S, int64_t>(p);
  });
}

Family<LossParams>& loss_family() {
  static Family<LossParams>* f = [] {
    auto* fam = make_cpu_family<LossParams>("loss", loss_ref, loss_cpu);
#if TESSEL_HAVE_CUDA
    register_loss_cuda(*fam);
#endif
    return fam;
  }();
  return *f;
}

}  // namespace tessel::kernels
