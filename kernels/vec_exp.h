// kernels/vec_exp.h — exp() for f32 that the compiler can vectorize.
//
// std::exp is an opaque libm call, so a loop calling it runs one element at a time, and the
// softmax and cross-entropy kernels spend most of their time there. This version is the
// classic Cephes expf (Moshier): write x = n ln2 + r with |r| <= ln2/2, approximate e^r by a
// degree-6 polynomial (error ~1 ulp), and build 2^n from its exponent bits. Straight-line
// code with selects instead of branches, so `omp simd` loops over it become SIMD code.
// Edge cases: NaN stays NaN, x > 88.72 gives +inf, x < -104 gives 0, subnormal results are
// kept.
#pragma once
#include <bit>
#include <cmath>
#include <cstdint>

namespace tessel::kernels {

// e^(x - n ln2) for n = round(x / ln2): r = x - n ln2 (ln2 split in two so that n * ln2_hi is
// exact), then the Cephes polynomial, |r| <= ln2/2. T is float or a GCC vector of floats (the
// AVX-512 exp of kernels/cpu/attention.cpp shares it).
template <class T>
inline T exp_reduced(T x, T n) {
  T r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  T p = T{} + 1.9875691500e-4f;  // a float or a vector of it
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  return p * r * r + r + 1.0f;
}

inline float exp_f32(float x) {
  const float lo = -104.0f, hi = 88.72283f;          // below lo e^x rounds to 0 in f32; above hi it overflows
  const float xc = x < lo ? lo : (x > hi ? hi : x);  // NaN passes through
  // n = round(x / ln2) by the 1.5 * 2^23 trick: adding it pushes the fraction out of the
  // mantissa (round to nearest). std::floor would be simpler, but GCC does not vectorize it
  // without -fno-trapping-math.
  const float magic = 12582912.0f;
  const float n = (xc * 1.44269504088896341f + magic) - magic;
  const float p = exp_reduced(xc, n);
  // 2^n as 2^a * 2^b with a = floor(n / 2): n spans [-150, 128], beyond the normal exponents
  // [-126, 127], but each half is a normal float, and the last product rounds into the
  // subnormals exactly as e^x should.
  const int32_t ni = static_cast<int32_t>(n);
  const int32_t a = ni >> 1, b = ni - a;
  const float y = p * std::bit_cast<float>((a + 127) << 23) * std::bit_cast<float>((b + 127) << 23);
  return x < lo ? 0.0f : (x > hi ? INFINITY : y);
}

// exp in the compute type: the vectorizable form for f32, libm for f64 (where accuracy matters
// more than speed: f64 is what gradient checks run in).
template <class A>
inline A vexp(A x) {
  if constexpr (sizeof(A) == 4)
    return exp_f32(x);
  else
    return std::exp(x);
}

}  // namespace tessel::kernels
