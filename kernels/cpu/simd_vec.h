// kernels/cpu/simd_vec.h — the portable SIMD vector and register tile of the CPU kernels.
//
// GCC vector extensions instead of intrinsics: one source that becomes 512-bit code under
// AVX-512, 256-bit under AVX and 128-bit elsewhere, in every floating type (f64 included).
// kernels/cpu/matmul.cpp ("cpu_packed") and kernels/cpu/attention.cpp size their register
// tiles from these: kVecRegs vector registers, each of kVecBytes.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <utility>

namespace tessel::kernels::simd_vec {

#if defined(__AVX512F__)
inline constexpr int kVecBytes = 64, kVecRegs = 32;
#elif defined(__AVX__)
inline constexpr int kVecBytes = 32, kVecRegs = 16;
#else
inline constexpr int kVecBytes = 16, kVecRegs = 16;
#endif

// The vector of A and its lane count.
template <class A>
struct Vec {
  typedef A type __attribute__((vector_size(kVecBytes)));
  static constexpr int lanes = kVecBytes / static_cast<int>(sizeof(A));
};

// x in every lane, as one initializer list, which GCC turns into a single broadcast load
// (vbroadcastss from memory: a load-port operation). `V{} + x` costs an add (0 + x is not x
// for x = -0) and a register broadcast that competes with the FMAs for their port; filling
// the lanes one by one is worse (a masked insert per lane).
template <class V, class A, size_t... I>
inline V splat(A x, std::index_sequence<I...>) {
  return V{((void)I, x)...};
}
template <class V, class A>
inline V splat(A x) {
  return splat<V>(x, std::make_index_sequence<sizeof(V) / sizeof(A)>());
}

// The register tile: C[0:MR, 0:NV vectors] (+)= sum_{k < K} a(i, k) B[k, :], with a(i, k) =
// a[i * sar + k * sak] and B's rows at b + k * ldb (unit stride). The MR x NV accumulators stay
// in registers for the whole k loop; each k step loads NV vectors of B and broadcasts MR values
// of a, for MR x NV independent FMAs. accumulate = false starts from 0 instead of C.
template <class A, int MR, int NV>
inline void fma_tile(int64_t K, const A* __restrict a, int64_t sar, int64_t sak, const A* __restrict b, int64_t ldb,
                     A* __restrict c, int64_t ldc, bool accumulate) {
  using V = typename Vec<A>::type;
  constexpr int64_t L = Vec<A>::lanes;
  V acc[MR][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      if (accumulate)
        std::memcpy(&acc[i][v], c + i * ldc + v * L, sizeof(V));
      else
        acc[i][v] = V{};
    }
  for (int64_t k = 0; k < K; ++k) {
    V bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) std::memcpy(&bv[v], b + k * ldb + v * L, sizeof(V));
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const V av = splat<V>(a[i * sar + k * sak]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[i][v] += av * bv[v];
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) std::memcpy(c + i * ldc + v * L, &acc[i][v], sizeof(V));
}

}  // namespace tessel::kernels::simd_vec
