// kernels/cpu/matmul_avx512.cpp — "cpu_avx512": packed GEMM with AVX-512 register tiles.
//
//   C[b] = act(alpha * A[b] @ B[b] + beta * C[b] + bias)     (kernels/matmul.h)
//
// f32: a 6 x 64 micro-kernel. 6 rows x 4 zmm of C = 24 accumulators, 4 zmm for the current row
// of the B panel and 1 for the broadcast A value: 29 of the 32 zmm registers, no spills. Per k
// step it issues 24 independent FMAs against 4 vector loads + 6 broadcasts, enough to keep
// both FMA pipes busy behind their 4-cycle latency (2 pipes x 4 cycles = 8 FMAs in flight).
// The tile is written as a template over rows x vectors; measured here against 14 x 32,
// 12 x 32, 8 x 48 and 7 x 64 (interleaved with oneDNN on one core), 6 x 64 was fastest by
// 3-10% at n = 1024..2048: its A panel (6 x 256 floats, 6 KiB) sits in L1 next to the
// accumulators' write-backs, and the wide B rows stream from L2 with 4 loads per 24 FMAs.
//
// bf16 (CPUs with AVX512_BF16): a 14 x 32 tile whose instruction is vdpbf16ps,
// which multiplies PAIRS of bf16 values and adds both products to one f32 lane:
//   acc[j] += a[2j] * b[2j] + a[2j+1] * b[2j+1].
// So the packing interleaves pairs of k: B panel element (k, j) sits at (k / 2 * 32 + j) * 2 +
// k % 2, and an A pair (A[i, k], A[i, k+1]) is broadcast as one 32-bit value. One instruction
// does 32 multiply-adds (twice an f32 FMA's 16) from half the bytes; accumulation is f32.
//
// The ISA is picked at run time: this file is compiled with `#pragma GCC target` whatever the
// build's -march, and accepts() declines unless cpu_features() reports the instructions.
// Blocking (KC, MC, and the driver's 1 MiB B slice) is sized for a 48 KiB L1d / 2 MiB L2 core:
// the kc x nc slice of B (1 MiB) and a 336 x 256 A block (336 KiB) share L2.
//
// Cost: 2 M N K flops; packing copies K N once per task and M K once per (task, nc block).
#include <immintrin.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <type_traits>

#include "core/cpu_features.h"
#include "core/error.h"
#include "core/parallel.h"
#include "kernels/matmul.h"

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,fma,avx512bf16")

#include "kernels/cpu/matmul_driver.inc"

namespace tessel::kernels {
namespace {

// How far ahead (in k steps) the micro-kernel prefetches its B panel.
constexpr int kPrefetchK = 8;

template <int MR_, int NV>
struct Avx512F32T {
  using P = float;
  static constexpr int MR = MR_, NR = 16 * NV, KP = 1;
  static constexpr int64_t KC = 256, MC = MR * (336 / MR);  // A block MC x KC: 336 KiB of L2

  static void tile(int64_t kc, const float* __restrict a, const float* __restrict b, float* __restrict c, int64_t ldc,
                   float alpha, float beta) {
    __m512 acc[MR][NV];
#pragma GCC unroll 14
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_ps();
    for (int i = 0; i < MR; ++i) _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
#pragma GCC unroll 2
    for (int64_t k = 0; k < kc; ++k) {
      __m512 bv[NV];
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) {
        bv[v] = _mm512_load_ps(b + 16 * v);
        _mm_prefetch(reinterpret_cast<const char*>(b + kPrefetchK * NR + 16 * v), _MM_HINT_T0);
      }
#pragma GCC unroll 14
      for (int i = 0; i < MR; ++i) {
        const __m512 ai = _mm512_set1_ps(a[i]);
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_fmadd_ps(ai, bv[v], acc[i][v]);
      }
      a += MR;
      b += NR;
    }
    store(acc, c, ldc, alpha, beta);
  }

  static void store(__m512 (&acc)[MR][NV], float* c, int64_t ldc, float alpha, float beta) {
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
#pragma GCC unroll 14
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) {
        float* ci = c + i * ldc + 16 * v;
        if (beta == 0.0f)
          _mm512_storeu_ps(ci, _mm512_mul_ps(va, acc[i][v]));
        else if (beta == 1.0f)
          _mm512_storeu_ps(ci, _mm512_fmadd_ps(va, acc[i][v], _mm512_loadu_ps(ci)));
        else
          _mm512_storeu_ps(ci, _mm512_fmadd_ps(va, acc[i][v], _mm512_mul_ps(vb, _mm512_loadu_ps(ci))));
      }
  }
};

struct Avx512Bf16 {
  using P = bf16;
  static constexpr int MR = 14, NR = 32, KP = 2;
  static constexpr int64_t KC = 512, MC = 14 * 24;

  // `groups` pairs of k; a: MR pairs per group, b: NR pairs per group.
  static void tile(int64_t groups, const bf16* __restrict a, const bf16* __restrict b, float* __restrict c, int64_t ldc,
                   float alpha, float beta) {
    __m512 acc[MR][2];
#pragma GCC unroll 14
    for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    for (int i = 0; i < MR; ++i) _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
#pragma GCC unroll 2
    for (int64_t g = 0; g < groups; ++g) {
      const __m512bh b0 = reinterpret_cast<__m512bh>(_mm512_load_si512(b));
      const __m512bh b1 = reinterpret_cast<__m512bh>(_mm512_load_si512(b + 32));
      _mm_prefetch(reinterpret_cast<const char*>(b + 8 * 2 * NR), _MM_HINT_T0);
#pragma GCC unroll 14
      for (int i = 0; i < MR; ++i) {
        int32_t pair;
        std::memcpy(&pair, a + 2 * i, 4);
        const __m512bh ai = reinterpret_cast<__m512bh>(_mm512_set1_epi32(pair));
        acc[i][0] = _mm512_dpbf16_ps(acc[i][0], ai, b0);
        acc[i][1] = _mm512_dpbf16_ps(acc[i][1], ai, b1);
      }
      a += 2 * MR;
      b += 2 * NR;
    }
    Avx512F32T<MR, 2>::store(acc, c, ldc, alpha, beta);
  }
};

}  // namespace

void matmul_avx512(const MatmulParams& p) {
  if (p.c.dtype == DType::bf16)
    gemm_driver<Avx512Bf16, bf16>(p);
  else
    gemm_driver<Avx512F32T<6, 4>, float>(p);
}

}  // namespace tessel::kernels

#pragma GCC pop_options

namespace tessel::kernels {

bool matmul_avx512_accepts(const MatmulParams& p) {
  const CpuFeatures& f = cpu_features();
  const bool avx512 = f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq && f.fma;
  if (p.c.dtype == DType::f32) return avx512;
  if (p.c.dtype == DType::bf16) return avx512 && f.avx512_bf16;
  return false;
}

}  // namespace tessel::kernels
