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
#include <array>
#include <cmath>
#include <cstdint>

#include "core/tensor.h"

namespace tessel {

#if defined(__CUDACC__)
#define TESSEL_HD __host__ __device__
#else
#define TESSEL_HD
#endif

TESSEL_HD inline void philox4x32_10(uint64_t counter, uint64_t key, uint32_t out[4]) {
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
TESSEL_HD inline float uniform_from_bits(uint32_t u) { return static_cast<float>(u >> 8) * (1.0f / 16777216.0f); }

// The i-th element of a draw: uniform in [0, 1).
TESSEL_HD inline float philox_uniform(uint64_t seed, uint64_t offset, int64_t i) {
  uint32_t w[4];
  philox4x32_10(offset + static_cast<uint64_t>(i) / 4, seed, w);
  return uniform_from_bits(w[i % 4]);
}

// The i-th element of a draw: standard normal, by Box-Muller on a pair of words.
TESSEL_HD inline float philox_normal(uint64_t seed, uint64_t offset, int64_t i) {
  uint32_t w[4];
  philox4x32_10(offset + static_cast<uint64_t>(i) / 4, seed, w);
  int pair = (i % 4) / 2;
  float u1 = (static_cast<float>(w[2 * pair] >> 8) + 1.0f) * (1.0f / 16777216.0f);  // (0, 1]
  float u2 = uniform_from_bits(w[2 * pair + 1]);
  float r = sqrtf(-2.0f * logf(u1));
  float theta = 6.2831853071795864f * u2;
  return (i % 2 == 0) ? r * cosf(theta) : r * sinf(theta);
}

// A 64-bit random integer for element i (two words of counter offset + i / 2).
TESSEL_HD inline uint64_t philox_u64(uint64_t seed, uint64_t offset, int64_t i) {
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
