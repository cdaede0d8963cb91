// kernels/cpu/matmul_avx512.cpp — "cpu_avx512": packed GEMM with AVX-512 register tiles.
//
//   C[b] = act(alpha * A[b] @ B[b] + beta * C[b] + bias)     (kernels/matmul.h)
//
// f32: a 14 x 32 micro-kernel. 14 rows x 2 zmm of C = 28 accumulators, 2 zmm for the current
// row of the B panel, and each A value is broadcast straight from memory into the FMA
// (vfmadd231ps zmm, zmm, [mem]{1to16}): 30 of the 32 zmm registers, no spills. Per k step it
// issues 28 independent FMAs against 2 vector loads + 14 broadcasts, enough to keep both FMA
// pipes busy behind their 4-cycle latency (2 pipes x 4 cycles = 8 FMAs in flight needed).
//
// bf16 (CPUs with AVX512_BF16): the same 14 x 32 tile, but each instruction is vdpbf16ps,
// which multiplies PAIRS of bf16 values and adds both products to one f32 lane:
//   acc[j] += a[2j] * b[2j] + a[2j+1] * b[2j+1].
// So the packing interleaves pairs of k: B panel element (k, j) sits at (k / 2 * 32 + j) * 2 +
// k % 2, and an A pair (A[i, k], A[i, k+1]) is broadcast as one 32-bit value. One instruction
// does 32 multiply-adds (twice an f32 FMA's 16) from half the bytes; accumulation is f32.
//
// The ISA is picked at run time: this file is compiled with `#pragma GCC target` whatever the
// build's -march, and accepts() declines unless cpu_features() reports the instructions.
// Blocking (KC, MC) is sized for a 48 KiB L1d / 2 MiB L2 core: a 256 x 32 f32 B panel (32 KiB)
// stays in L1 while the 14-row A panels stream from a 336 x 256 A block (336 KiB) in L2.
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

struct Avx512F32 {
  using P = float;
  static constexpr int MR = 14, NR = 32, KP = 1;
  static constexpr int64_t KC = 256, MC = 14 * 24;

  static void tile(int64_t kc, const float* __restrict a, const float* __restrict b, float* __restrict c, int64_t ldc,
                   float alpha, float beta) {
    __m512 acc[MR][2];
#pragma GCC unroll 14
    for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    for (int i = 0; i < MR; ++i) _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
#pragma GCC unroll 2
    for (int64_t k = 0; k < kc; ++k) {
      const __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
      _mm_prefetch(reinterpret_cast<const char*>(b + 8 * NR), _MM_HINT_T0);
#pragma GCC unroll 14
      for (int i = 0; i < MR; ++i) {
        const __m512 ai = _mm512_set1_ps(a[i]);
        acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
        acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
      }
      a += MR;
      b += NR;
    }
    store(acc, c, ldc, alpha, beta);
  }

  static void store(__m512 (&acc)[MR][2], float* c, int64_t ldc, float alpha, float beta) {
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    if (beta == 0.0f) {
#pragma GCC unroll 14
      for (int i = 0; i < MR; ++i) {
        _mm512_storeu_ps(c + i * ldc, _mm512_mul_ps(va, acc[i][0]));
        _mm512_storeu_ps(c + i * ldc + 16, _mm512_mul_ps(va, acc[i][1]));
      }
    } else if (beta == 1.0f) {
#pragma GCC unroll 14
      for (int i = 0; i < MR; ++i) {
        _mm512_storeu_ps(c + i * ldc, _mm512_fmadd_ps(va, acc[i][0], _mm512_loadu_ps(c + i * ldc)));
        _mm512_storeu_ps(c + i * ldc + 16, _mm512_fmadd_ps(va, acc[i][1], _mm512_loadu_ps(c + i * ldc + 16)));
      }
    } else {
#pragma GCC unroll 14
      for (int i = 0; i < MR; ++i) {
        _mm512_storeu_ps(c + i * ldc, _mm512_fmadd_ps(va, acc[i][0], _mm512_mul_ps(vb, _mm512_loadu_ps(c + i * ldc))));
        _mm512_storeu_ps(c + i * ldc + 16,
                         _mm512_fmadd_ps(va, acc[i][1], _mm512_mul_ps(vb, _mm512_loadu_ps(c + i * ldc + 16))));
      }
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
    Avx512F32::store(acc, c, ldc, alpha, beta);
  }
};

}  // namespace

void matmul_avx512(const MatmulParams& p) {
  if (p.c.dtype == DType::bf16)
    gemm_driver<Avx512Bf16, bf16>(p);
  else
    gemm_driver<Avx512F32, float>(p);
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
