// kernels/cpu/matmul_avx2.cpp — "cpu_avx2": packed GEMM with an AVX2 + FMA register tile.
//
//   C[b] = act(alpha * A[b] @ B[b] + beta * C[b] + bias)     (kernels/matmul.h), f32 only
//
// The micro-kernel holds a 6 x 16 tile of C in 12 ymm accumulators; with 2 ymm for the current
// row of the B panel and 1 for the broadcast A value that is 15 of the 16 ymm registers. Per
// k step: 12 independent FMAs against 2 loads + 6 broadcasts, which covers the 2 FMA pipes x
// 4-5 cycles of latency. The driver (kernels/cpu/matmul_driver.inc) does the packing, cache
// blocking and threading, exactly as for "cpu_avx512"; only the tile differs. Compiled with
// `#pragma GCC target("avx2,fma")` and offered only where cpu_features() reports both, so the
// same binary serves older x86-64 CPUs and AVX-512 ones.
//
// Cost: 2 M N K flops; packing copies K N once per task and M K once per (task, nc block).
#include <immintrin.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <type_traits>
#include <vector>

#include "core/cpu_features.h"
#include "core/error.h"
#include "core/parallel.h"
#include "kernels/matmul.h"

#pragma GCC push_options
#pragma GCC target("avx2,fma")

#include "kernels/cpu/matmul_driver.inc"

namespace tessel::kernels {
namespace {

struct Avx2F32 {
  using P = float;
  static constexpr int MR = 6, NR = 16, KP = 1;
  static constexpr int64_t KC = 256, MC = 6 * 40;

  static void tile(int64_t kc, const float* __restrict a, const float* __restrict b, float* __restrict c, int64_t ldc,
                   float alpha, float beta) {
    __m256 acc[MR][2];
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
#pragma GCC unroll 2
    for (int64_t k = 0; k < kc; ++k) {
      const __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
#pragma GCC unroll 6
      for (int i = 0; i < MR; ++i) {
        const __m256 ai = _mm256_broadcast_ss(a + i);
        acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
        acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
      }
      a += MR;
      b += NR;
    }
    const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 2
      for (int v = 0; v < 2; ++v) {
        float* ci = c + i * ldc + v * 8;
        __m256 r = _mm256_mul_ps(va, acc[i][v]);
        if (beta == 1.0f)
          r = _mm256_add_ps(r, _mm256_loadu_ps(ci));
        else if (beta != 0.0f)
          r = _mm256_fmadd_ps(vb, _mm256_loadu_ps(ci), r);
        _mm256_storeu_ps(ci, r);
      }
  }
};

}  // namespace

void matmul_avx2(const MatmulParams& p) { gemm_driver<Avx2F32, float>(p); }

}  // namespace tessel::kernels

#pragma GCC pop_options

namespace tessel::kernels {

bool matmul_avx2_accepts(const MatmulParams& p) {
  const CpuFeatures& f = cpu_features();
  return p.c.dtype == DType::f32 && f.avx2 && f.fma;
}

}  // namespace tessel::kernels
