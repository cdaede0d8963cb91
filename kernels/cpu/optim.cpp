// kernels/cpu/optim.cpp — fused multi-tensor updates with OpenMP.
//
// All tensors' elements form one index space [0, total); threads take equal contiguous ranges
// of it, each range crossing tensor boundaries as needed, so a model of many small tensors
// keeps both cores busy in one parallel region instead of paying a region per tensor. The
// element rules are the ref's (kernels/optim_update.h); the loops over a tensor's run are
// unit-stride and vectorize. LAMB needs per-tensor norms before its update: partial sums per
// (thread range, tensor) are combined in a fixed order, so results do not depend on timing.
#include <cmath>
#include <vector>

#include "core/parallel.h"
#include "kernels/cuda/register.h"
#include "kernels/optim_update.h"

namespace tessel::kernels {

namespace {

// Calls f(slot, begin, end) for the parts of each slot that fall inside [lo, hi).
template <class F>
void for_slot_ranges(const std::vector<int64_t>& start, int64_t lo, int64_t hi, F&& f) {
  for (size_t k = 0; k + 1 < start.size(); ++k) {
    int64_t b = std::max(lo, start[k]), e = std::min(hi, start[k + 1]);
    if (b < e) f(k, b - start[k], e - start[k]);
  }
}

template <class T>
void run(const OptimParams& p) {
  std::vector<int64_t> start(p.slots.size() + 1, 0);
  for (size_t k = 0; k < p.slots.size(); ++k) start[k + 1] = start[k] + p.slots[k].param.numel();
  const int64_t total = start.back();
  constexpr int64_t kGrain = 1 << 15;

  if (p.op == OptimOp::sgd || p.op == OptimOp::adam || p.op == OptimOp::adamw) {
    parallel_for(total, kGrain, [&](int64_t lo, int64_t hi) {
      for_slot_ranges(start, lo, hi, [&](size_t k, int64_t b, int64_t e) {
        const OptimSlot& s = p.slots[k];
        T* w = s.param.ptr<T>();
        const T* g = s.grad.ptr<T>();
        T* m = s.m.ptr<T>();
        T* v = s.v.ptr<T>();
        if (p.op == OptimOp::sgd) {
#pragma omp simd
          for (int64_t i = b; i < e; ++i) sgd_element(p, s.first, w, g, m, i);
        } else {
#pragma omp simd
          for (int64_t i = b; i < e; ++i) adam_element(p, w, g, m, v, i);
        }
      });
    });
    return;
  }

  // LAMB. Pass 1: moments, and squared norms of w and r per tensor, per chunk.
  const T c1 = T(1 - std::pow(p.beta1, static_cast<double>(p.step)));
  const T c2 = T(1 - std::pow(p.beta2, static_cast<double>(p.step)));
  const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(64, total / kGrain));
  const int64_t per = (total + chunks - 1) / chunks;
  std::vector<double> wn(chunks * p.slots.size(), 0.0), rn(chunks * p.slots.size(), 0.0);
  parallel_for(chunks, 1, [&](int64_t c0, int64_t c1e) {
    for (int64_t c = c0; c < c1e; ++c) {
      for_slot_ranges(start, c * per, std::min(total, (c + 1) * per), [&](size_t k, int64_t b, int64_t e) {
        const OptimSlot& s = p.slots[k];
        T* w = s.param.ptr<T>();
        const T* g = s.grad.ptr<T>();
        T* m = s.m.ptr<T>();
        T* v = s.v.ptr<T>();
        double ws = 0, rs = 0;
        for (int64_t i = b; i < e; ++i) {
          T r = adam_direction(g[i], m[i], v[i], T(p.beta1), T(p.beta2), c1, c2, T(p.eps)) + T(p.weight_decay) * w[i];
          ws += double(w[i]) * double(w[i]);
          rs += double(r) * double(r);
        }
        wn[c * p.slots.size() + k] = ws;
        rn[c * p.slots.size() + k] = rs;
      });
    }
  });
  std::vector<double> ratio(p.slots.size());
  for (size_t k = 0; k < p.slots.size(); ++k) {
    double ws = 0, rs = 0;
    for (int64_t c = 0; c < chunks; ++c) {
      ws += wn[c * p.slots.size() + k];
      rs += rn[c * p.slots.size() + k];
    }
    ratio[k] = (ws > 0 && rs > 0) ? std::sqrt(ws) / std::sqrt(rs) : 1.0;
  }
  // Pass 2: the trust-ratio-scaled step.
  parallel_for(total, kGrain, [&](int64_t lo, int64_t hi) {
    for_slot_ranges(start, lo, hi, [&](size_t k, int64_t b, int64_t e) {
      const OptimSlot& s = p.slots[k];
      T* w = s.param.ptr<T>();
      const T* m = s.m.ptr<T>();
      const T* v = s.v.ptr<T>();
      const T step = T(p.lr * ratio[k]), wd = T(p.weight_decay), eps = T(p.eps);
#pragma omp simd
      for (int64_t i = b; i < e; ++i) w[i] -= step * ((m[i] / c1) / (std::sqrt(v[i] / c2) + eps) + wd * w[i]);
    });
  });
}

}  // namespace

void optim_cpu(const OptimParams& p) {
  if (p.slots.empty()) return;
  if (p.slots[0].param.dtype == DType::f64)
    run<double>(p);
  else
    run<float>(p);
}

Family<OptimParams>& optim_family() {
  static Family<OptimParams>* f = [] {
    auto* fam = make_cpu_family<OptimParams>("optim", optim_ref, optim_cpu);
#if TESSEL_HAVE_CUDA
    register_optim_cuda(*fam);
#endif
    return fam;
  }();
  return *f;
}

}  // namespace tessel::kernels
