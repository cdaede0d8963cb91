// kernels/cpu/elementwise.cpp — elementwise ops with OpenMP threads and compiler SIMD.
//
// Elementwise ops are memory-bound: an add over n f32 moves 12n bytes and does n flops, so the
// goal is streaming memory at full bandwidth. Three things make that possible here:
//  1. Coalescing: dims that are laid out back to back in every operand merge into one, so a
//     contiguous tensor of any shape becomes one flat loop, and a broadcast bias add [N, C]+[C]
//     becomes N rows of a contiguous C-loop.
//  2. The op is a template argument (visit_ew_op), so the formula is inlined into the loop and
//     the innermost contiguous loop vectorizes (`omp simd`).
//  3. In f32 (and bf16/f16, which compute in f32) the transcendental ops and their fused
//     gradients use kernels/cpu/simd_math.h instead of libm, so they vectorize too (gelu_tanh:
//     0.56 ns per element on one core, 27x faster than the libm loop).
//     The formulas are the ref's (kernels/elementwise.h), rearranged where the ref's form
//     cancels: gelu_tanh = x sigmoid(2u) instead of x (1 + tanh u) / 2, gelu_erf = x Phi(x)
//     with Phi from erfc instead of 1 + erf (which loses all digits for x << 0).
// Work is split over threads by rows, with a grain so tiny tensors stay on one thread.
#include "core/parallel.h"
#include "kernels/cpu/simd_math.h"
#include "kernels/elementwise_loop.h"
#include "kernels/matmul.h"

namespace tessel::kernels {
namespace {

// The f32 formulas of the transcendental ops (see the header comment); every other op and
// every other compute type uses the shared formula.
template <EwOp OP, class C>
inline C apply_cpu(C a, C b, C c, double alpha, double beta) {
  if constexpr (std::is_same_v<C, float>) {
    constexpr float k = 0.7978845608028654f, c3 = 0.044715f;  // gelu_tanh: u = k (x + c3 x^3)
    if constexpr (OP == EwOp::exp)
      return simd::exp_f32(a);
    else if constexpr (OP == EwOp::log)
      return simd::log_f32(a);
    else if constexpr (OP == EwOp::tanh)
      return simd::tanh_f32(a);
    else if constexpr (OP == EwOp::sigmoid)
      return simd::sigmoid_f32(a);
    else if constexpr (OP == EwOp::silu)
      return a * simd::sigmoid_f32(a);
    else if constexpr (OP == EwOp::gelu_tanh)  // (1 + tanh u) / 2 = sigmoid(2u)
      return a * simd::sigmoid_f32(2.0f * k * (a + c3 * a * a * a));
    else if constexpr (OP == EwOp::gelu_erf)
      return a * simd::ncdf_f32(a);
    else if constexpr (OP == EwOp::silu_bwd) {  // dy s (1 + x (1 - s))
      float s, sm;
      simd::sigmoid_pair(b, s, sm);
      return a * s * (1.0f + b * sm);
    } else if constexpr (OP == EwOp::gelu_tanh_bwd) {  // d/dx x s(2u) = s (1 + 2 x u' (1 - s))
      float s, sm;
      simd::sigmoid_pair(2.0f * k * (b + c3 * b * b * b), s, sm);
      return a * s * (1.0f + 2.0f * b * k * (1.0f + 3.0f * c3 * b * b) * sm);
    } else if constexpr (OP == EwOp::gelu_erf_bwd) {  // Phi(x) + x phi(x), one exponential
      float cdf, pdf;
      simd::ncdf_npdf(b, cdf, pdf);
      return a * (cdf + b * pdf);
    } else
      return apply_elementwise<OP, C>(a, b, c, alpha, beta);
  } else {
    return apply_elementwise<OP, C>(a, b, c, alpha, beta);
  }
}

// EwStep with the cpu formulas.
template <EwOp OP, class T>
struct CpuStep : EwStep<OP, T> {
  using B = EwStep<OP, T>;
  using C = typename B::C;
  static inline void run(typename B::Out* out, int64_t o, const typename B::In0* a, int64_t ia, const T* b, int64_t ib,
                         const T* c, int64_t ic, double alpha, double beta) {
    C va = static_cast<C>(a[ia]);
    C vb = C(0), vc = C(0);
    if constexpr (B::arity >= 2) vb = static_cast<C>(b[ib]);
    if constexpr (B::arity >= 3) vc = static_cast<C>(c[ic]);
    C r = apply_cpu<OP, C>(va, vb, vc, alpha, beta);
    if constexpr (std::is_same_v<typename B::Out, bool>)
      out[o] = r != C(0);
    else
      out[o] = static_cast<typename B::Out>(r);
  }
};

constexpr int kOperands = 4;  // out, in0, in1, in2

// Merges adjacent dims that are contiguous with each other in every operand and drops size-1
// dims. Returns the new ndim; sizes/strides are rewritten in place (innermost last).
int coalesce(int ndim, int64_t* size, int64_t (*strides)[kMaxDims], int nops) {
  int out = 0;
  for (int d = 0; d < ndim; ++d) {
    if (size[d] == 1) continue;
    if (out > 0) {
      bool merge = true;
      for (int k = 0; k < nops; ++k)
        if (strides[k][out - 1] != strides[k][d] * size[d]) merge = false;
      if (merge) {
        size[out - 1] *= size[d];
        for (int k = 0; k < nops; ++k) strides[k][out - 1] = strides[k][d];
        continue;
      }
    }
    size[out] = size[d];
    for (int k = 0; k < nops; ++k) strides[k][out] = strides[k][d];
    ++out;
  }
  if (out == 0) {  // a single element
    size[0] = 1;
    for (int k = 0; k < nops; ++k) strides[k][0] = 0;
    out = 1;
  }
  return out;
}

template <EwOp OP, class T>
void run_typed(const ElementwiseParams& p) {
  using S = CpuStep<OP, T>;
  int64_t size[kMaxDims];
  int64_t strides[kOperands][kMaxDims];
  const Buf* bufs[kOperands] = {&p.out, &p.in[0], &p.in[1], &p.in[2]};
  for (int d = 0; d < p.out.ndim; ++d) {
    size[d] = p.out.size[d];
    for (int k = 0; k < kOperands; ++k) strides[k][d] = k <= S::arity ? bufs[k]->stride[d] : 0;
  }
  const int nd = coalesce(p.out.ndim, size, strides, kOperands);
  auto* out = p.out.ptr<typename S::Out>();
  const auto* a = p.in[0].ptr<typename S::In0>();
  const T* b = p.in[1].ptr<T>();
  const T* c = p.in[2].ptr<T>();
  const double alpha = p.alpha, beta = p.beta;
  const int64_t inner = size[nd - 1];
  const int64_t rows = p.out.numel() / std::max<int64_t>(inner, 1);
  const int64_t so = strides[0][nd - 1], sa = strides[1][nd - 1], sb = strides[2][nd - 1], sc = strides[3][nd - 1];
  const bool unit = so == 1 && (sa == 1) && (S::arity < 2 || sb == 1) && (S::arity < 3 || sc == 1);

  // Rows are the outer (nd - 1) dims; each thread walks its rows with a strided counter.
  const int64_t* outer_strides[kOperands] = {strides[0], strides[1], strides[2], strides[3]};
  auto body = [&](int64_t row_begin, int64_t row_end, int64_t col_begin, int64_t col_end) {
    StridedCounter<kOperands> it(nd - 1, size, outer_strides);
    it.seek(row_begin);
    for (int64_t r = row_begin; r < row_end; ++r, it.next()) {
      const int64_t o = it.off[0], ia = it.off[1], ib = it.off[2], ic = it.off[3];
      if (unit) {
#pragma omp simd simdlen(16)  // 512-bit vectors: GCC prefers 256 on this -march; 1.3-1.4x on the activations
        for (int64_t j = col_begin; j < col_end; ++j) S::run(out, o + j, a, ia + j, b, ib + j, c, ic + j, alpha, beta);
      } else {
        for (int64_t j = col_begin; j < col_end; ++j)
          S::run(out, o + j * so, a, ia + j * sa, b, ib + j * sb, c, ic + j * sc, alpha, beta);
      }
    }
  };
  constexpr int64_t kGrain = 1 << 14;  // elements per thread below which threads cost more than they save
  if (rows == 1) {                     // one long row: split the columns
    parallel_for(inner, kGrain, [&](int64_t j0, int64_t j1) { body(0, 1, j0, j1); });
  } else {
    parallel_for(rows, std::max<int64_t>(1, kGrain / std::max<int64_t>(inner, 1)),
                 [&](int64_t r0, int64_t r1) { body(r0, r1, 0, inner); });
  }
}

}  // namespace

void elementwise_cpu(const ElementwiseParams& p) {
  if (p.out.numel() == 0) return;
  visit_dtype(p.in[1].data ? p.in[1].dtype : p.in[0].dtype, [&](auto tag) {
    using T = decltype(tag);
    visit_ew_op(p.op, [&](auto op_c) {
      constexpr EwOp OP = decltype(op_c)::value;
      if constexpr (!ew_supported<OP, T>()) {
        throw std::logic_error("elementwise_cpu: op not compiled for this dtype");
      } else {
        run_typed<OP, T>(p);
      }
    });
  });
}

namespace {
// flatten: the whole formula inlined into the loop so that it vectorizes (left to itself, GCC
// stopped inlining at exp_f32 here and called it once per element). The rows loop outside keeps
// the formula's constants in registers across a GEMM tile's rows: called per 64-value row, the
// set-up was a visible share of the erf-GELU epilogue.
template <EwOp OP>
[[gnu::flatten, gnu::noinline]] void activation_loop(float* x, int64_t ldx, int64_t rows, int64_t n) {
  for (int64_t i = 0; i < rows; ++i) {
    float* xr = x + i * ldx;
#pragma omp simd simdlen(16)
    for (int64_t j = 0; j < n; ++j) xr[j] = apply_cpu<OP, float>(xr[j], 0.0f, 0.0f, 0.0, 0.0);
  }
}

template <EwOp OP, EwOp GRAD>
[[gnu::flatten, gnu::noinline]] void activation_grad_loop(float* x, int64_t ldx, float* d, int64_t ldd, int64_t rows,
                                                          int64_t n) {
  for (int64_t i = 0; i < rows; ++i) {
    float* xr = x + i * ldx;
    float* dr = d + i * ldd;
#pragma omp simd simdlen(16)
    for (int64_t j = 0; j < n; ++j) {
      const float z = xr[j];
      dr[j] = apply_cpu<GRAD, float>(1.0f, z, 0.0f, 0.0, 0.0);
      xr[j] = apply_cpu<OP, float>(z, 0.0f, 0.0f, 0.0, 0.0);
    }
  }
}
}  // namespace

void activation_grad_rows_cpu(float* x, int64_t ldx, float* d, int64_t ldd, int64_t rows, int64_t n, Activation act) {
  switch (act) {
    case Activation::none:
      for (int64_t i = 0; i < rows; ++i) std::fill(d + i * ldd, d + i * ldd + n, 1.0f);
      return;
    case Activation::relu: return activation_grad_loop<EwOp::relu, EwOp::relu_bwd>(x, ldx, d, ldd, rows, n);
    case Activation::gelu_tanh:
      return activation_grad_loop<EwOp::gelu_tanh, EwOp::gelu_tanh_bwd>(x, ldx, d, ldd, rows, n);
    case Activation::gelu_erf: return activation_grad_loop<EwOp::gelu_erf, EwOp::gelu_erf_bwd>(x, ldx, d, ldd, rows, n);
    case Activation::silu: return activation_grad_loop<EwOp::silu, EwOp::silu_bwd>(x, ldx, d, ldd, rows, n);
  }
}

void activation_rows_cpu(float* x, int64_t ldx, int64_t rows, int64_t n, Activation act) {
  switch (act) {
    case Activation::none: return;
    case Activation::relu: return activation_loop<EwOp::relu>(x, ldx, rows, n);
    case Activation::gelu_tanh: return activation_loop<EwOp::gelu_tanh>(x, ldx, rows, n);
    case Activation::gelu_erf: return activation_loop<EwOp::gelu_erf>(x, ldx, rows, n);
    case Activation::silu: return activation_loop<EwOp::silu>(x, ldx, rows, n);
  }
}

}  // namespace tessel::kernels
