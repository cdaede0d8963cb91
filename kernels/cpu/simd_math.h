// kernels/cpu/simd_math.h — f32 transcendental functions that the compiler can vectorize.
//
// std::exp, std::tanh, std::erf, ... are opaque libm calls: a loop that calls them runs one
// element at a time (gelu_tanh on 16M floats took 300 ms, 3% of the memory bandwidth). Every
// function here is straight-line f32 code: range reduction by bit manipulation, a polynomial,
// and selects instead of branches for the special cases, so that an `#pragma omp simd` loop
// over them compiles to SIMD code (AVX-512 under -march=native on this machine) and the
// activations become bandwidth-bound.
//
// Why portable code and not intrinsics: the library is built with -march=native (or whatever
// -march the user picks), so GCC emits the target's widest vectors from these loops (with
// `simdlen(16)`: GCC 12 prefers 256 bits on AVX-512 CPUs, and 512 measured 1.3-1.4x faster),
// and the same source serves AVX2, AVX-512 and non-x86 CPUs. Measured on one core
// (bench/results/2026-11-25-vecops-cpu.md), exp, log, tanh, sigmoid, silu and the fused
// gradients but gelu_erf's run at 77-116% of the memory bandwidth; gelu_tanh, gelu_erf and
// gelu_erf's gradient are compute-bound on one core (40-45%, 34%), which is where an
// intrinsics rung could still win.
//
// Writing branch-free code is not quite enough: GCC sinks the float math of a select's
// not-taken side into a branch, then refuses to if-convert it (float ops may trap) and leaves
// the loop scalar. log_f32 therefore selects with integer bit masks.
//
// Polynomial coefficients were fitted by iteratively reweighted least squares on Chebyshev
// nodes for relative error (near-minimax), each on the stated interval, evaluated by Horner's
// rule in a variable mapped to [-1, 1]. Max errors against std:: in f64 measured over 4096
// points in every binade from the subnormals to overflow, both signs (1 ulp = one unit in the
// last place of the f32 result; tests/kernels/simd_math_test.cpp enforces the bounds; measured
// with GCC 12 -O2/-O3 -march=native, and the same to 0.05 ulp without FMA contraction except
// where noted):
//
//   function     measured  bound   specials
//   exp_f32      0.96 ulp  1       NaN -> NaN, x > 88.72 -> +inf, x < -104 -> 0, subnormal results kept
//   log_f32      1.04 ulp  1.5     x < 0 or NaN -> NaN, +-0 -> -inf, +inf -> +inf, subnormal x handled
//   tanh_f32     1.24 ulp  1.5     +-inf -> +-1, NaN -> NaN
//   sigmoid_f32  2.28 ulp  2.5     exact tails: follows e^x into the subnormals for x -> -inf
//   erf_f32      1.66 ulp  2       +-inf -> +-1
//   erfc_f32     3.15 ulp  4.5     relative even deep in the tail (until erfc underflows, x > 10.1);
//                                  4.33 ulp where the compiler does not contract a * b + c into
//                                  FMAs (-O0, -O1, -ffp-contract=off): near x = 0.83, 1 - erf
//   ncdf_f32     4.96 ulp  5       Phi(x) = P(N(0,1) <= x), relative also in the lower tail: no
//                                  1 + erf cancellation, and the x/sqrt(2) rounding is corrected
//   npdf_f32     2.31 ulp  2.5     phi(x) = e^{-x^2/2} / sqrt(2 pi), x^2 kept in two parts
// All errors include the final rounding.
#pragma once
#include <bit>
#include <cmath>
#include <cstdint>

#include "kernels/vec_exp.h"

namespace tessel::kernels::simd {

// Horner's rule for c[0] + c[1] t + ... + c[N-1] t^(N-1).
template <int N>
inline float poly(float t, const float (&c)[N]) {
  float p = c[N - 1];
  for (int i = N - 2; i >= 0; --i) p = p * t + c[i];
  return p;
}

inline float exp_f32(float x) { return kernels::exp_f32(x); }

// ln x = k ln2 + ln m with x = m 2^k, m in [sqrt(1/2), sqrt(2)); ln m = 2 atanh(f) with
// f = (m - 1) / (m + 1), |f| <= 0.1716: 2f + 2f s R(s), s = f^2, R fitted on [0, 0.02944].
inline float log_f32(float x) {
  // Selects are written as bit masks here, on purpose: with a `?:`, GCC sinks the float math
  // of the not-taken side into a branch, then will not if-convert it (float ops may trap), and
  // the whole loop stays scalar. Masks leave it nothing to sink.
  const int32_t ix = std::bit_cast<int32_t>(x), ax = ix & 0x7fffffff;
  // Subnormal x is scaled by 2^23 first (0 and negatives are fixed up at the end).
  const int32_t sub = -static_cast<int32_t>(ax < 0x00800000);  // all ones if subnormal
  const int32_t bits = (std::bit_cast<int32_t>(x * 8388608.0f) & sub) | (ix & ~sub);
  // Unsigned arithmetic: negative x (fixed up below) must not overflow a signed subtraction.
  const uint32_t ubits = static_cast<uint32_t>(bits);
  const int32_t k = static_cast<int32_t>(ubits - 0x3f3504f3u) >> 23;  // 0x3f3504f3 = sqrt(1/2)
  const float m = std::bit_cast<float>(ubits - (static_cast<uint32_t>(k) << 23));
  const float e = static_cast<float>(k - (23 & sub));
  const float f = (m - 1.0f) / (m + 1.0f);
  const float s = f * f;
  constexpr double hi = 0.029437251522859434;
  constexpr float c[] = {3.363083652e-01f, 3.006980861e-03f, 3.204112654e-05f};
  const float r = poly(s * float(2.0 / hi) - 1.0f, c);
  const float lnm = 2.0f * f + 2.0f * f * s * r;
  const float y = e * 0.693359375f + (lnm + e * -2.12194440e-4f);  // ln2 split: e * hi is exact
  // Specials: x < 0 and NaN -> NaN, +-0 -> -inf, +inf -> +inf.
  const int32_t special = -static_cast<int32_t>((ix < 0) | (ix >= 0x7f800000) | (ax == 0));
  const int32_t is_zero = -static_cast<int32_t>(ax == 0), is_inf = -static_cast<int32_t>(ix == 0x7f800000);
  const int32_t sbits = (int32_t(0xff800000) & is_zero) | (0x7f800000 & is_inf) | (0x7fc00000 & ~(is_zero | is_inf));
  return std::bit_cast<float>((sbits & special) | (std::bit_cast<int32_t>(y) & ~special));
}

// |x| < 0.55: x + x s T(s), s = x^2 (T fitted on [0, 0.3025]); otherwise
// sign(x) (1 - 2 / (e^{2|x|} + 1)), which has no cancellation there since tanh >= 0.5.
inline float tanh_f32(float x) {
  const float ax = std::fabs(x);
  const float s = x * x;
  constexpr float c[] = {-3.143299751e-01f, 1.790716876e-02f, -1.032822602e-03f, 5.989465293e-05f, -3.458875353e-06f};
  const float small = x + x * s * poly(s * float(2.0 / 0.3025) - 1.0f, c);
  const float big = std::copysign(1.0f - 2.0f / (exp_f32(2.0f * ax) + 1.0f), x);
  return ax < 0.55f ? small : big;
}

// 1 / (1 + e^-x) from e = e^{-|x|} <= 1, so neither tail loses precision: for x < 0 the result
// is e / (1 + e), which follows e^x into the subnormals. sigmoid_pair also returns
// 1 - sigmoid(x) = sigmoid(-x) without cancellation (the activations' gradients need it).
inline void sigmoid_pair(float x, float& s, float& one_minus_s) {
  const float e = exp_f32(-std::fabs(x));
  const float r = 1.0f / (1.0f + e);
  const float er = e * r;
  s = x >= 0.0f ? r : er;
  one_minus_s = x >= 0.0f ? er : r;
  s = x != x ? x : s;
  one_minus_s = x != x ? x : one_minus_s;
}

inline float sigmoid_f32(float x) {
  float s, sm;
  sigmoid_pair(x, s, sm);
  return s;
}

namespace detail {

// erf(z) / z = P(z^2) on |z| < 0.875 (P fitted on [0, 0.765625]).
inline float erf_small(float z) {
  constexpr float c[] = {9.995275169e-01f,  -1.150198831e-01f, 1.262238001e-02f,
                         -1.121708206e-03f, 8.257004277e-05f,  -5.099167846e-06f};
  return z * poly(z * z * float(2.0 / 0.765625) - 1.0f, c);
}

// erfc(z + dz) for z >= 0.875 and |dz| <= ulp(z) (the rounding error of the caller's argument):
// erfc(z) = e^{-z^2} u P(u) with u = 1 / (1 + z) (P fitted on z in [0.875, 10.1], where the
// scaled function erfcx(z) = e^{z^2} erfc(z) is smooth). e^{-z^2} loses z^2 ulps if z^2 is
// rounded, so z^2 + 2 z dz = p + lo is kept in two parts (the FMA gives p's rounding error
// exactly) and e^{-p - lo} = e^{-p} (1 - lo).
// e^{-(z + dz)^2}, with z^2 + 2 z dz kept in two parts as above (NaN for infinite z: callers
// select around it).
inline float exp_neg_square(float z, float dz) {
  const float p = z * z;
  const float lo = std::fma(z, z, -p) + 2.0f * z * dz;
  return exp_f32(-p) * (1.0f - lo);
}

// erfc_big from e = exp_neg_square(z, dz), so a caller that needs e too pays one exponential.
inline float erfc_big_from(float z, float e) {
  const float u = 1.0f / (1.0f + z);
  constexpr double ulo = 1.0 / (1.0 + 10.1), uhi = 1.0 / (1.0 + 0.875);
  constexpr float c[] = {7.534285919e-01f, 1.318637162e-01f,  -1.066459224e-02f, -5.294884881e-03f, 1.183635160e-03f,
                         1.821526086e-04f, -1.376696017e-04f, 1.771561861e-05f,  9.346613416e-06f,  -3.793530537e-06f};
  const float t = u * float(2.0 / (uhi - ulo)) - float((uhi + ulo) / (uhi - ulo));
  const float y = e * (u * poly(t, c));
  return z > 10.1f ? 0.0f : y;  // beyond 10.1 erfc underflows f32 (and the fit ends)
}

inline float erfc_big(float z, float dz) { return erfc_big_from(z, exp_neg_square(z, dz)); }

// erfc(x + dx) for any x (dx as above).
inline float erfc_dx(float x, float dx) {
  const float ax = std::fabs(x);
  const float small = 1.0f - erf_small(x);
  const float tail = erfc_big(ax, x < 0.0f ? -dx : dx);
  const float big = x < 0.0f ? 2.0f - tail : tail;
  const float y = ax < 0.875f ? small : big;
  return x != x ? x : y;
}

}  // namespace detail

inline float erfc_f32(float x) { return detail::erfc_dx(x, 0.0f); }

inline float erf_f32(float x) {
  const float ax = std::fabs(x);
  const float big = std::copysign(1.0f - detail::erfc_big(ax, 0.0f), x);
  const float y = ax < 0.875f ? detail::erf_small(x) : big;
  return x != x ? x : y;
}

// The standard normal CDF Phi(x) = erfc(-x / sqrt(2)) / 2. -x/sqrt(2) is rounded in f32; its
// rounding error (from an FMA and the low part of 1/sqrt(2)) goes to erfc as dx, so the lower
// tail keeps full relative precision instead of losing x^2/2 ulps.
inline float ncdf_f32(float x) {
  constexpr float k_hi = 0.70710678118654752f;
  constexpr float k_lo = static_cast<float>(0.70710678118654752 - static_cast<double>(k_hi));
  const float w = -x * k_hi;
  const float dw = -(std::fma(x, k_hi, -(x * k_hi)) + x * k_lo);
  return 0.5f * detail::erfc_dx(w, dw);
}

// Phi(x) and phi(x) together, for the erf-GELU's gradient x phi(x) + Phi(x): both need
// e^{-x^2/2} = e^{-w^2} (w = -x / sqrt(2), with its rounding error dw), so it is computed once.
// cdf is bitwise ncdf_f32(x); pdf is within npdf_f32's error of phi (it is e^{-(w + dw)^2},
// whose argument carries the same two-part correction).
inline void ncdf_npdf(float x, float& cdf, float& pdf) {
  constexpr float k_hi = 0.70710678118654752f;
  constexpr float k_lo = static_cast<float>(0.70710678118654752 - static_cast<double>(k_hi));
  const float w = -x * k_hi;
  const float dw = -(std::fma(x, k_hi, -(x * k_hi)) + x * k_lo);
  const float aw = std::fabs(w);
  const float e = detail::exp_neg_square(aw, w < 0.0f ? -dw : dw);
  const float small = 1.0f - detail::erf_small(w);
  const float tail = detail::erfc_big_from(aw, e);
  const float big = w < 0.0f ? 2.0f - tail : tail;
  const float erfc = aw < 0.875f ? small : big;
  cdf = w != w ? w : 0.5f * erfc;
  const float p = x * x;
  pdf = p > 256.0f ? 0.0f : 0.3989422804014327f * e;  // e^-128 underflows; and e is NaN for x = inf
  pdf = x != x ? x : pdf;
}

// The standard normal density phi(x) = e^{-x^2/2} / sqrt(2 pi), with x^2 kept in two parts.
inline float npdf_f32(float x) {
  const float p = x * x;
  const float lo = std::fma(x, x, -p);
  const float y = 0.3989422804014327f * exp_f32(-0.5f * p) * (1.0f - 0.5f * lo);
  return p > 256.0f ? 0.0f : y;  // e^-128 underflows; and for x^2 = inf, lo would be NaN
}

}  // namespace tessel::kernels::simd
