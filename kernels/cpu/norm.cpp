// kernels/cpu/norm.cpp — LayerNorm and RMSNorm forward and backward with OpenMP threads.
//
// Forward: rows are independent; each thread takes a range of rows and makes three unit-stride,
// vectorizable passes over each (mean; variance around it — two passes, because the one-pass
// E[x^2] - E[x]^2 cancels catastrophically when |mean| >> std; write). ~8 flops and 2 elements
// moved per input element: memory-bound.
//
// Backward (after llm.c's layernorm_backward, Karpathy): per row, one pass gathers mean(g) and
// mean(g xhat) with g = dy w, and a second writes dx. dw and db are sums over all rows, so each
// of a fixed number of row chunks accumulates its own partial dw/db (no atomics, no sharing),
// and the partials are added in chunk order at the end. The chunk count depends only on the
// number of rows, never on the thread count, so the result is bitwise the same on any machine.
// Statistics and sums are in f32 (f64 for f64 inputs); bf16/f16 rows are widened into a
// per-thread scratch row first.
#include "kernels/norm.h"

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "core/parallel.h"
#include "kernels/cuda/register.h"

namespace tessel::kernels {
namespace {

// Row r of a [rows, C] T matrix as compute-type S: the row itself when T is S, else widened
// into `scratch`.
template <class T, class S>
const S* row_as(const T* base, int64_t r, int64_t C, std::vector<S>& scratch) {
  if constexpr (std::is_same_v<T, S>) {
    (void)scratch;
    return base + r * C;
  } else {
    const T* src = base + r * C;
    for (int64_t c = 0; c < C; ++c) scratch[c] = static_cast<S>(src[c]);
    return scratch.data();
  }
}

template <class T, class S>
void forward(const NormParams& p) {
  const int64_t R = p.rows, C = p.cols;
  const bool layer = norm_is_layer(p.op);
  const T* x = p.x.ptr<T>();
  const T* w = p.weight.ptr<T>();
  const T* b = p.bias.ptr<T>();
  T* y = p.y.ptr<T>();
  // Weight and bias widened once, shared by all threads (1 and 0 when absent).
  std::vector<S> ws(static_cast<size_t>(C), S(1)), bs(static_cast<size_t>(C), S(0));
  for (int64_t c = 0; c < C; ++c) {
    if (w) ws[c] = static_cast<S>(w[c]);
    if (b) bs[c] = static_cast<S>(b[c]);
  }
  parallel_for(R, std::max<int64_t>(1, (1 << 15) / C), [&](int64_t r0, int64_t r1) {
    std::vector<S> xs(std::is_same_v<T, S> ? 0 : static_cast<size_t>(C));
    const S* wp = ws.data();
    const S* bp = bs.data();
    for (int64_t r = r0; r < r1; ++r) {
      const S* xr = row_as<T, S>(x, r, C, xs);
      S mu = 0;
      if (layer) {
#pragma omp simd simdlen(16) reduction(+ : mu)
        for (int64_t c = 0; c < C; ++c) mu += xr[c];
        mu /= static_cast<S>(C);
      }
      S ss = 0;
#pragma omp simd simdlen(16) reduction(+ : ss)
      for (int64_t c = 0; c < C; ++c) ss += (xr[c] - mu) * (xr[c] - mu);
      const S rstd = S(1) / std::sqrt(ss / static_cast<S>(C) + static_cast<S>(p.eps));
      T* yr = y + r * C;
#pragma omp simd simdlen(16)
      for (int64_t c = 0; c < C; ++c) yr[c] = static_cast<T>((xr[c] - mu) * rstd * wp[c] + bp[c]);
      if (layer) p.mean.ptr<S>()[r] = mu;
      p.rstd.ptr<S>()[r] = rstd;
    }
  });
}

template <class T, class S>
void backward(const NormParams& p) {
  const int64_t R = p.rows, C = p.cols;
  const bool layer = norm_is_layer(p.op);
  const T* x = p.x.ptr<T>();
  const T* dy = p.dy.ptr<T>();
  const T* w = p.weight.ptr<T>();
  T* dx = p.dx.ptr<T>();
  const bool want_dwb = p.dweight.data || p.dbias.data;
  std::vector<S> ws(static_cast<size_t>(C), S(1));
  if (w)
    for (int64_t c = 0; c < C; ++c) ws[c] = static_cast<S>(w[c]);
  // Fixed chunking of the rows: at most 64 chunks of at least 8 rows.
  const int64_t chunks = std::clamp<int64_t>(R / 8, 1, 64);
  std::vector<S> part_w, part_b;
  if (want_dwb) {
    part_w.assign(static_cast<size_t>(chunks * C), S(0));
    part_b.assign(static_cast<size_t>(chunks * C), S(0));
  }
  // Threads take whole chunks; wake them only for at least ~32K elements each.
  const int64_t chunk_elems = std::max<int64_t>(1, R / chunks * C);
  parallel_for(chunks, std::max<int64_t>(1, (1 << 15) / chunk_elems), [&](int64_t k0, int64_t k1) {
    std::vector<S> xs(std::is_same_v<T, S> ? 0 : static_cast<size_t>(C));
    std::vector<S> gs(std::is_same_v<T, S> ? 0 : static_cast<size_t>(C));
    const S* wp = ws.data();
    for (int64_t k = k0; k < k1; ++k) {
      S* pw = want_dwb ? part_w.data() + k * C : nullptr;
      S* pb = want_dwb ? part_b.data() + k * C : nullptr;
      for (int64_t r = R * k / chunks; r < R * (k + 1) / chunks; ++r) {
        const S* xr = row_as<T, S>(x, r, C, xs);
        const S* dr = row_as<T, S>(dy, r, C, gs);
        const S mu = layer ? p.mean.ptr<S>()[r] : S(0);
        const S rstd = p.rstd.ptr<S>()[r];
        S sum_g = 0, sum_gx = 0;
#pragma omp simd simdlen(16) reduction(+ : sum_g, sum_gx)
        for (int64_t c = 0; c < C; ++c) {
          const S xhat = (xr[c] - mu) * rstd;
          const S g = dr[c] * wp[c];
          sum_g += g;
          sum_gx += g * xhat;
        }
        if (want_dwb) {
#pragma omp simd simdlen(16)
          for (int64_t c = 0; c < C; ++c) {
            pw[c] += dr[c] * ((xr[c] - mu) * rstd);
            pb[c] += dr[c];
          }
        }
        if (dx) {
          const S mean_g = layer ? sum_g / static_cast<S>(C) : S(0);
          const S mean_gx = sum_gx / static_cast<S>(C);
          T* dxr = dx + r * C;
#pragma omp simd simdlen(16)
          for (int64_t c = 0; c < C; ++c) {
            const S xhat = (xr[c] - mu) * rstd;
            dxr[c] = static_cast<T>(rstd * (dr[c] * wp[c] - mean_g - xhat * mean_gx));
          }
        }
      }
    }
  });
  if (!want_dwb) return;
  T* dw = p.dweight.ptr<T>();
  T* db = p.dbias.ptr<T>();
  parallel_for(C, std::max<int64_t>(1, (1 << 15) / chunks), [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      S sw = 0, sb = 0;
      for (int64_t k = 0; k < chunks; ++k) {
        sw += part_w[k * C + c];
        sb += part_b[k * C + c];
      }
      if (dw) dw[c] = static_cast<T>(sw);
      if (db) db[c] = static_cast<T>(sb);
    }
  });
}

}  // namespace

void norm_cpu(const NormParams& p) {
  if (p.rows == 0 || p.cols == 0) {
    // No rows: dw and db are empty sums.
    visit_floating(p.x.dtype, "norm_cpu", [&](auto tag) {
      using T = decltype(tag);
      for (int64_t c = 0; c < p.cols; ++c) {
        if (p.dweight.data) p.dweight.ptr<T>()[c] = T(0.0f);
        if (p.dbias.data) p.dbias.ptr<T>()[c] = T(0.0f);
      }
    });
    return;
  }
  visit_floating(p.x.dtype, "norm_cpu", [&](auto tag) {
    using T = decltype(tag);
    using S = std::conditional_t<std::is_same_v<T, double>, double, float>;
    if (norm_is_backward(p.op))
      backward<T, S>(p);
    else
      forward<T, S>(p);
  });
}

Family<NormParams>& norm_family() {
  static Family<NormParams>* f = [] {
    auto* fam = make_cpu_family<NormParams>("norm", norm_ref, norm_cpu);
#if TESSEL_HAVE_CUDA
    register_norm_cuda(*fam);
#endif
    return fam;
  }();
  return *f;
}

}  // namespace tessel::kernels
