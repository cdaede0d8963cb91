// kernels/matmul.h — batched, strided matrix multiplication (GEMM) with a fused epilogue.
//
//   C[b] = act(alpha * A[b] @ B[b] + beta * C[b] + bias)        for every batch index b
//   A[b]: [M, K]   B[b]: [K, N]   C[b]: [M, N]   bias: [N] (added to every row; optional)
//
// Every operand is a Buf of ndim = nb + 2: nb batch dims (the same sizes for all three; a
// broadcast operand has stride 0 there) followed by the matrix dims, each with its own row and
// column stride. A transpose is therefore just swapped strides ("op(A)" in BLAS terms costs
// nothing and needs no flag), and any view — slices, expands, permutes — is accepted as is.
// C must not overlap A or B, and its batch dims must not have stride 0 (each C[b] is written
// once). beta == 0 means C is not read at all (BLAS semantics), so an uninitialised or
// NaN-filled C is fine.
//
// The epilogue (bias, then the activation, then an optional elementwise factor) runs on each
// block of C while it is still in cache, so a layer y = act(x W^T + b) reads and writes its
// output once instead of three times. For training, two more operands (CPU versions only):
//   dact  receives act'(z) at z = alpha A B + beta C + bias, beside y = act(z): the backward of
//         the activation is then one multiply, dz = dy * dact, with no transcendental left;
//   mul   multiplies the result elementwise: C = act(z) * mul. The backward of a two-layer MLP
//         forms dz = (dy W2) * dact in the epilogue of that GEMM instead of a pass of its own.
// `bias` is absent when bias.data == nullptr; otherwise it is 1-d of size N with any stride and
// C's dtype.
//
// dtypes: A, B, C (and bias) share one dtype: f32, f64, bf16 or f16. The narrow formats
// accumulate in f32 and round once, when C is written (acc_t<T>).
//
// Cost: 2 M N K flops per batch; at least (M K + K N + 2 M N) elements moved.
//
// Versions (the ladder, docs/gemm.md): "ref" (the triple loop, accumulating in f64: the
// oracle), "cpu_blocked" (cache-blocked loops, plain C++), "cpu_packed" (packed panels and a
// portable vector-extension register tile), "cpu_avx2" (6x16 FMA micro-kernel) and
// "cpu_avx512" (6x64 FMA micro-kernel, unpacked kernels for M or N <= 16; bf16 through
// vdpbf16ps where the CPU has it) and "cpu_amx" (bf16 only, AMX tiles). The
// ISA-specific versions are compiled for their instruction set whatever the build's -march
// and decline (accepts() == false) on a CPU that lacks it, so one binary runs everywhere.
#pragma once
#include <cmath>
#include <cstdint>

#include "core/buf.h"
#include "kernels/elementwise.h"
#include "kernels/registry.h"

namespace tessel::kernels {

enum class Activation : uint8_t { none, relu, gelu_tanh, gelu_erf, silu };

const char* activation_name(Activation a);  // "none", "relu", "gelu_tanh", "gelu_erf", "silu"

// act over a block of f32 values, rows x n with row stride ldx, in place, vectorized: the CPU
// GEMM epilogues call it once per finished tile. Defined in kernels/cpu/elementwise.cpp with the
// elementwise ops' own f32 formulas, so a fused linear(x, w, b, act) equals act(linear(x, w, b))
// bit for bit — and it is compiled once, for the build's instruction set, not inside the GEMM
// files' per-ISA target regions.
void activation_rows_cpu(float* x, int64_t ldx, int64_t rows, int64_t n, Activation act);
// The same, and d[i * ldd + j] = act'(x[i * ldx + j]) from the same input (the elementwise ops'
// gradient formula with dy = 1), in one pass.
void activation_grad_rows_cpu(float* x, int64_t ldx, float* d, int64_t ldd, int64_t rows, int64_t n, Activation act);

struct MatmulParams {
  Buf a;  // [batch..., M, K]
  Buf b;  // [batch..., K, N]
  Buf c;  // [batch..., M, N]
  double alpha = 1;
  double beta = 0;
  Buf bias{};  // [N] or absent (data == nullptr)
  Activation act = Activation::none;
  // Optional (CPU versions only; absent when data == nullptr). Both have C's sizes, strides and
  // dtype and do not overlap C or each other.
  Buf dact{};  // receives act'(z) (the training path of linear(x, w, b, act) keeps it)
  Buf mul{};   // C = act(z) * mul
  // Optional (CPU versions only; 2-d problems): a_sums[i] = sum over k of A[i, k] ([M], C's
  // dtype), summed in f64 in the fixed order of add_row_sums below, so every version writes the
  // same bits. A linear layer's weight gradient dW = dz^T x has A = dz^T, whose row sums are the
  // bias gradient: the packed rungs add them up while they pack A, not in a pass of their own.
  Buf a_sums{};
};

// The order a_sums adds one row's values in: k in chunks of kSumChunk aligned to multiples of
// it; in a chunk four f64 partials, partial j taking the k = j (mod 4) in ascending order from
// 0.0; then ((p0 + p1) + (p2 + p3)) is added to the row's total. Four chains, not one, so the
// adds need not wait on each other. Adds row[k * stride] for k in [k0, k1), k0 a multiple of
// kSumChunk; a caller splitting K into blocks passes block starts that are multiples too.
constexpr int64_t kSumChunk = 16;
template <class T>
inline void add_row_sums(const T* row, int64_t stride, int64_t k0, int64_t k1, double& total) {
  for (int64_t c = k0; c < k1; c += kSumChunk) {
    double part[4] = {0, 0, 0, 0};
    const int64_t e = c + kSumChunk < k1 ? c + kSumChunk : k1;
    for (int64_t k = c; k < e; ++k) part[k % 4] += static_cast<double>(static_cast<acc_t<T>>(row[k * stride]));
    total += (part[0] + part[1]) + (part[2] + part[3]);
  }
}

// Throws unless p.a_sums is absent or fits: a 2-d problem and an [M] output of C's dtype.
void check_a_sums(const MatmulParams& p);
// a_sums for rows [i0, i1), by the definition above (nothing when absent), p already checked:
// the ref, cpu_blocked and cpu_packed versions call it for all rows after their GEMM.
void matmul_a_sums_rows(const MatmulParams& p, int64_t i0, int64_t i1);

// act'(x), for MatmulParams::dact: the elementwise ops' gradient formulas (kernels/elementwise.h)
// with dy = 1, so dy * act'(z) is bitwise what the op's own backward computes.
template <class A>
TESSEL_HOST_DEVICE inline A apply_activation_grad(A x, Activation act) {
  switch (act) {
    case Activation::none: return A(1);
    case Activation::relu: return apply_elementwise<EwOp::relu_bwd, A>(A(1), x, A(0), 0, 0);
    case Activation::gelu_tanh: return apply_elementwise<EwOp::gelu_tanh_bwd, A>(A(1), x, A(0), 0, 0);
    case Activation::gelu_erf: return apply_elementwise<EwOp::gelu_erf_bwd, A>(A(1), x, A(0), 0, 0);
    case Activation::silu: return apply_elementwise<EwOp::silu_bwd, A>(A(1), x, A(0), 0, 0);
  }
  return A(1);
}

// The activations of the epilogue, in the accumulation type (float or double): the elementwise
// ops' formulas (kernels/elementwise.h). Every version, CPU and CUDA, uses these, so they differ
// from ref only by the rounding of their input.
template <class A>
TESSEL_HOST_DEVICE inline A apply_activation(A x, Activation act) {
  switch (act) {
    case Activation::none: return x;
    case Activation::relu: return apply_elementwise<EwOp::relu, A>(x, A(0), A(0), 0, 0);
    case Activation::gelu_tanh: return apply_elementwise<EwOp::gelu_tanh, A>(x, A(0), A(0), 0, 0);
    case Activation::gelu_erf: return apply_elementwise<EwOp::gelu_erf, A>(x, A(0), A(0), 0, 0);
    case Activation::silu: return apply_elementwise<EwOp::silu, A>(x, A(0), A(0), 0, 0);
  }
  return x;
}

// The family table (kernels/matmul.cpp) and its versions, best last.
Family<MatmulParams>& matmul_family();
void matmul_ref(const MatmulParams& p);      // "ref"
void matmul_blocked(const MatmulParams& p);  // "cpu_blocked"
void matmul_cpu(const MatmulParams& p);      // "cpu_packed"
void matmul_avx2(const MatmulParams& p);     // "cpu_avx2": f32 on AVX2 + FMA CPUs
void matmul_avx512(const MatmulParams& p);   // "cpu_avx512": f32 on AVX-512, bf16 with AVX512_BF16
void matmul_amx(const MatmulParams& p);      // "cpu_amx": bf16 through AMX tiles where the CPU and OS allow
bool matmul_avx2_accepts(const MatmulParams& p);
bool matmul_amx_accepts(const MatmulParams& p);
bool matmul_avx512_accepts(const MatmulParams& p);

// The last steps of one element in the scalar epilogues (ref, cpu_blocked, cpu_packed, and the
// driver's edge and narrow-dtype paths): given z (bias included) in the accumulation type A,
// stores act'(z) to *dact if wanted and returns act(z) * (*mul if wanted), rounded to C's T.
template <class T, class A>
inline T epilogue_value(A z, Activation act, T* dact, const T* mul) {
  using R = acc_t<T>;
  if (dact != nullptr) *dact = static_cast<T>(static_cast<R>(apply_activation_grad(z, act)));
  A v = apply_activation(z, act);
  if (mul != nullptr) v *= static_cast<A>(static_cast<R>(*mul));
  return static_cast<T>(static_cast<R>(v));
}

}  // namespace tessel::kernels
