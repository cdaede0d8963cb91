// core/rng.h — a counter-based random generator: Philox4x32-10.
//
// "Parallel Random Numbers: As Easy as 1, 2, 3" (Salmon et al., SC 2011). Philox maps a
// (128-bit counter, 64-bit key) pair to four random 32-bit words with ten cheap rounds, so the
// i-th random number of a tensor is a pure function of (seed, offset, i): any thread, and any
// device, computes the same value for the same element without sharing state. A Generator is
// therefore just (seed, offset); each draw of n numbers advances the offset past the counters
// it used, so the stream is reproducible from the seed alone, and the CUDA backend produces
// the same numbers by calling the same function.
//
// Layout of one draw starting at `offset`: element i uses the four words of counter
// (offset + i / 4) and takes word i % 4 (uniform floats, Bernoulli, integers) or the Box-Muller
// pair from words (0,1) or (2,3) (normals).
#pragma once
#include <math.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "core/host_device.h"
#include "core/tensor.h"

namespace tessel {

// TESSEL_HOST_DEVICE (core/host_device.h) marks the functions below for both compilers: under
// nvcc they are __host__ __device__, so core/cuda/random.cu calls exactly this code.

TESSEL_HOST_DEVICE inline void philox4x32_10(uint64_t counter, uint64_t key, uint32_t out[4]) {
  uint32_t c0 = static_cast<uint32_t>(counter), c1 = static_cast<uint32_t>(counter >> 32), c2 = 0, c3 = 0;
  uint32_t k0 = static_cast<uint32_t>(key), k1 = static_cast<uint32_t>(key >> 32);
  for (int round = 0; round < 10; ++round) {
    uint64_t p0 = static_cast<uint64_t>(0xD2511F53u) * c0;
    uint64_t p1 = static_cast<uint64_t>(0xCD9E8D57u) * c2;
    uint32_t hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
    uint32_t hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  out[0] = c0;
  out[1] = c1;
  out[2] = c2;
  out[3] = c3;
}

// Uniform in [0, 1) with 24 random bits (exactly representable in f32).
TESSEL_HOST_DEVICE inline float uniform_from_bits(uint32_t u) {
  return static_cast<float>(u >> 8) * (1.0f / 16777216.0f);
}

// The i-th element of a draw: uniform in [0, 1).
TESSEL_HOST_DEVICE inline float philox_uniform(uint64_t seed, uint64_t offset, int64_t i) {
  uint32_t w[4];
  philox4x32_10(offset + static_cast<uint64_t>(i) / 4, seed, w);
  return uniform_from_bits(w[i % 4]);
}

// The i-th element of rand(): uniform in [0, 1) with `bits` random bits (24 for f32/f64, 11
// for f16, 8 for bf16, so that rounding to the dtype never reaches 1). Exact arithmetic only.
TESSEL_HOST_DEVICE inline float philox_uniform_bits(uint64_t seed, uint64_t offset, int64_t i, int bits) {
  uint32_t w[4];
  philox4x32_10(offset + static_cast<uint64_t>(i) / 4, seed, w);
  return static_cast<float>(w[i % 4] >> (32 - bits)) * (1.0f / static_cast<float>(1u << bits));
}

// Bitwise-reproducible math for the normal draws. The C libraries' logf/sinf/cosf differ in the
// last bit between glibc and CUDA, so the same (seed, offset, i) would give different normals on
// the CPU and the GPU. These use only operations IEEE 754 rounds exactly (+, -, *, /, sqrt,
// fma) and are written so that no product feeds an addition outside an explicit fmaf, leaving a
// compiler nothing to contract: g++ and nvcc produce the same bits. Accuracy: about 1 ulp.
namespace rng_math {

TESSEL_HOST_DEVICE inline uint32_t float_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
#endif
}
TESSEL_HOST_DEVICE inline float bits_float(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, 4);
  return f;
#endif
}

// Natural log of a positive normal float (fdlibm's e_logf.c reduction and polynomial):
// x = 2^k (1 + f) with 1 + f in [sqrt(1/2), sqrt(2)), log(1 + f) = f - f^2/2 + s (f^2/2 + R(s^2)).
TESSEL_HOST_DEVICE inline float log_pos(float x) {
  const float ln2_hi = 6.9313812256e-01f, ln2_lo = 9.0580006145e-06f;
  const float lg1 = 0.66666662693f, lg2 = 0.40000972152f, lg3 = 0.28498786688f, lg4 = 0.24279078841f;
  uint32_t ix = float_bits(x) + (0x3f800000u - 0x3f3504f3u);
  int k = static_cast<int>(ix >> 23) - 0x7f;
  ix = (ix & 0x007fffffu) + 0x3f3504f3u;
  float f = bits_float(ix) - 1.0f;
  float s = f / (2.0f + f);
  float z = s * s, w = z * z;
  float r = fmaf(w, fmaf(w, lg4, lg2), z * fmaf(w, lg3, lg1));
  float hf = 0.5f * f, hfsq = hf * f;
  float dk = static_cast<float>(k);
  float a = fmaf(s, fmaf(hf, f, r), fmaf(dk, ln2_lo, -hfsq));
  return fmaf(dk, ln2_hi, a + f);
}

// cos and sin of 2*pi*k/2^24 for an integer k in [0, 2^24): the quarter turn is split off in
// integers, so the polynomial (Cephes sinf/cosf, |x| <= pi/4) never sees a large argument.
TESSEL_HOST_DEVICE inline void sincos_turns24(uint32_t k, float* c, float* s) {
  uint32_t q = (k + (1u << 21)) >> 22;  // nearest quarter turn, 0..4
  int32_t j = static_cast<int32_t>(k) - static_cast<int32_t>(q << 22);
  float x = static_cast<float>(j) * 3.74507028e-07f;  // 2 pi / 2^24; |x| <= pi/4
  float z = x * x;
  float ps = fmaf(fmaf(-1.9515295891e-4f, z, 8.3321608736e-3f), z, -1.6666654611e-1f);
  float pc = fmaf(fmaf(2.443315711809948e-5f, z, -1.388731625493765e-3f), z, 4.166664568298827e-2f);
  float sx = fmaf(x * z, ps, x);
  float cx = fmaf(z * z, pc, fmaf(-0.5f, z, 1.0f));
  switch (q & 3u) {
    case 0: *c = cx, *s = sx; break;
    case 1: *c = -sx, *s = cx; break;
    case 2: *c = -cx, *s = -sx; break;
    default: *c = sx, *s = -cx; break;
  }
}

}  // namespace rng_math

// The i-th element of a draw: standard normal, by Box-Muller on a pair of words.
TESSEL_HOST_DEVICE inline float philox_normal(uint64_t seed, uint64_t offset, int64_t i) {
  uint32_t w[4];
  philox4x32_10(offset + static_cast<uint64_t>(i) / 4, seed, w);
  int pair = static_cast<int>(i % 4) / 2;
  float u1 = (static_cast<float>(w[2 * pair] >> 8) + 1.0f) * (1.0f / 16777216.0f);  // (0, 1]
  float r = sqrtf(-2.0f * rng_math::log_pos(u1));
  float c, s;
  rng_math::sincos_turns24(w[2 * pair + 1] >> 8, &c, &s);  // angle 2 pi u2, u2 in [0, 1)
  return (i % 2 == 0) ? r * c : r * s;
}

// A 64-bit random integer for element i (two words of counter offset + i / 2).
TESSEL_HOST_DEVICE inline uint64_t philox_u64(uint64_t seed, uint64_t offset, int64_t i) {
  uint32_t w[4];
  philox4x32_10(offset + static_cast<uint64_t>(i) / 2, seed, w);
  int h = static_cast<int>(i % 2) * 2;
  return (static_cast<uint64_t>(w[h]) << 32) | w[h + 1];
}

struct Generator {
  uint64_t seed = 0;
  uint64_t offset = 0;  // next unused counter

  explicit Generator(uint64_t s = 0) : seed(s) {}
  // Reserves the counters a draw of n elements uses, `per_counter` elements per counter.
  uint64_t advance(int64_t n, int64_t per_counter = 4) {
    uint64_t start = offset;
    offset += static_cast<uint64_t>((n + per_counter - 1) / per_counter);
    return start;
  }
};

// Random bits rand() keeps for a dtype: as many as its significand holds.
inline int rand_bits(DType t) { return t == DType::bf16 ? 8 : t == DType::f16 ? 11 : 24; }

Generator& default_generator();   // process-wide, seed 0 until manual_seed()
void manual_seed(uint64_t seed);  // reseeds the default generator and resets its offset

// Factories drawing from `gen` (default: the default generator). Floating dtypes only for
// rand/randn; rand is uniform in [0, 1) with 24 random bits (8 for bf16, 11 for f16, so that
// rounding never reaches 1); randint draws integers uniformly from [low, high).
Tensor rand(const Shape& sizes, TensorOptions opts = {}, Generator* gen = nullptr);
Tensor randn(const Shape& sizes, TensorOptions opts = {}, Generator* gen = nullptr);
Tensor randint(int64_t low, int64_t high, const Shape& sizes, TensorOptions opts = {.dtype = DType::i64},
               Generator* gen = nullptr);
// 1 with probability p, else 0, in the tensor's dtype (dropout masks).
Tensor bernoulli(const Shape& sizes, double p, TensorOptions opts = {}, Generator* gen = nullptr);

}  // namespace tessel
