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

// ---- Vectorized packing (f32). Packing is O(MK + KN) against the micro-kernel's O(MNK), but
// done one element at a time with strided stores it still cost ~10% of a 1024^3 GEMM here
// (perf: pack_a_panel 9% of the time for row-major A). Both layouts below are transposes
// done in registers instead.

// Row-major A -> 6-row panel: the panel wants the 6 values of one k adjacent, so every 16 k
// are a 6 x 16 -> 16 x 6 transpose. Viewed as 64-bit units, the output is the sequence
// (A[0..1, k], A[2..3, k], A[4..5, k]) for k = 0..15: first interleave rows 0/1, 2/3, 4/5
// into such pairs (6 permutes), then each of the 6 output vectors takes its 8 pairs from three
// pair vectors (one two-source permute + one masked permute). 6 loads, 18 permutes and 6
// stores for 96 values, instead of 96 scalar loads and stores.
struct PackA6Table {
  alignas(64) int64_t first[6][8];   // picks from pair vectors s = 0 (index q) and s = 1 (8 + q)
  alignas(64) int64_t second[6][8];  // picks from pair vector s = 2
  uint8_t second_mask[6];            // lanes that come from s = 2
};
constexpr PackA6Table make_pack_a6_table() {
  PackA6Table t{};
  for (int o = 0; o < 6; ++o) {
    t.second_mask[o] = 0;
    for (int u = 0; u < 8; ++u) {
      const int j = 8 * o + u, k = j / 3, s = j % 3, q = k % 8;  // output pair j = (rows 2s, 2s+1) at k
      t.first[o][u] = s == 1 ? 8 + q : q;
      t.second[o][u] = q;
      if (s == 2) t.second_mask[o] = static_cast<uint8_t>(t.second_mask[o] | (1u << u));
    }
  }
  return t;
}
constexpr PackA6Table kPackA6 = make_pack_a6_table();

inline void pack_a6_rowmajor(const float* a, int64_t sa0, int64_t kc, float* dst) {
  const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i hi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  int64_t k = 0;
  for (; k + 16 <= kc; k += 16) {
    __m512 r[6];
    for (int i = 0; i < 6; ++i) r[i] = _mm512_loadu_ps(a + i * sa0 + k);
    __m512d pair[2][3];  // [k half][row pair]: (A[2s, k], A[2s+1, k]) for 8 k
    for (int s = 0; s < 3; ++s) {
      pair[0][s] = _mm512_castps_pd(_mm512_permutex2var_ps(r[2 * s], lo, r[2 * s + 1]));
      pair[1][s] = _mm512_castps_pd(_mm512_permutex2var_ps(r[2 * s], hi, r[2 * s + 1]));
    }
    for (int o = 0; o < 6; ++o) {
      const int h = o / 3;  // outputs 0-2 hold k 0..7, outputs 3-5 k 8..15
      __m512d x = _mm512_permutex2var_pd(pair[h][0], _mm512_load_si512(kPackA6.first[o]), pair[h][1]);
      x = _mm512_mask_permutexvar_pd(x, kPackA6.second_mask[o], _mm512_load_si512(kPackA6.second[o]), pair[h][2]);
      _mm512_storeu_pd(reinterpret_cast<double*>(dst + k * 6 + 16 * o), x);
    }
  }
  for (; k < kc; ++k)
    for (int i = 0; i < 6; ++i) dst[k * 6 + i] = a[i * sa0 + k];
}

// GCC 12's unpack intrinsics pass `_mm512_undefined_ps()` (a self-initialized variable) as the
// unused merge source, which -Wmaybe-uninitialized flags once inlined; nothing is uninitialized.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
// A 16 x 16 transpose in registers (unpack 32-bit, unpack 64-bit, then two rounds of 128-bit
// lane shuffles): 64 shuffles for 256 values.
inline void transpose16x16(__m512 (&r)[16]) {
  __m512 t[16], u[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i) {  // u[4i + c], lane L: rows 4i..4i+3 of column 4L + c
    const __m512d t0 = _mm512_castps_pd(t[4 * i]), t1 = _mm512_castps_pd(t[4 * i + 1]);
    const __m512d t2 = _mm512_castps_pd(t[4 * i + 2]), t3 = _mm512_castps_pd(t[4 * i + 3]);
    u[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(t0, t2));
    u[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(t0, t2));
    u[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(t1, t3));
    u[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(t1, t3));
  }
  for (int c = 0; c < 4; ++c) {
    const __m512 v0 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x88), v1 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xDD);
    const __m512 w0 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x88);
    const __m512 w1 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xDD);
    r[c] = _mm512_shuffle_f32x4(v0, w0, 0x88);
    r[8 + c] = _mm512_shuffle_f32x4(v0, w0, 0xDD);
    r[4 + c] = _mm512_shuffle_f32x4(v1, w1, 0x88);
    r[12 + c] = _mm512_shuffle_f32x4(v1, w1, 0xDD);
  }
}

// Transposed B (each column contiguous along k, as in X @ W^T) -> NR-wide panel whose rows
// are k: 16 columns x 16 k at a time through transpose16x16.
template <int NR>
void pack_b_colmajor(const float* b, int64_t sb1, int64_t kc, float* dst) {
  int64_t k = 0;
  for (; k + 16 <= kc; k += 16)
    for (int j0 = 0; j0 < NR; j0 += 16) {
      __m512 r[16];
      for (int j = 0; j < 16; ++j) r[j] = _mm512_loadu_ps(b + (j0 + j) * sb1 + k);
      transpose16x16(r);
      for (int kk = 0; kk < 16; ++kk) _mm512_store_ps(dst + (k + kk) * NR + j0, r[kk]);
    }
  for (; k < kc; ++k)
    for (int j = 0; j < NR; ++j) dst[k * NR + j] = b[j * sb1 + k];
}
#pragma GCC diagnostic pop

template <int MR_, int NV>
struct Avx512F32T {
  using P = float;
  static constexpr int MR = MR_, NR = 16 * NV, KP = 1;
  // KC = 512 measured best of 128..768 (1 thread, interleaved with oneDNN: 0.91 -> 0.99x at
  // n = 1024, 0.86 -> 0.92x at 2048): a deeper K block halves the passes that read and write
  // C, which at n >= 1024 comes from L3. The B micro-panel (512 x 64 floats, 128 KiB) then
  // streams from L2 rather than L1, which the 4 loads per 24 FMAs and the prefetch cover.
  static constexpr int64_t KC = 512, MC = MR * (336 / MR);  // A block MC x KC: 672 KiB of L2

  // Full panels in the two layouts that scalar packing handles badly; false: use the generic one.
  static bool pack_a_fast(const float* a, int64_t sa0, int64_t sa1, int64_t kc, int64_t m, float* dst) {
    if (MR != 6 || sa1 != 1 || m != MR || sa0 == 1) return false;
    pack_a6_rowmajor(a, sa0, kc, dst);
    return true;
  }
  static bool pack_b_fast(const float* b, int64_t sb0, int64_t sb1, int64_t kc, int64_t n, float* dst) {
    if (sb0 != 1 || n != NR || sb1 == 1) return false;
    pack_b_colmajor<NR>(b, sb1, kc, dst);
    return true;
  }

  static void tile(int64_t kc, const float* __restrict a, const float* __restrict b, float* __restrict c, int64_t ldc,
                   float alpha, float beta) {
    __m512 acc[MR][NV];
#pragma GCC unroll 14
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_ps();
    // The tile's C lines are needed only after the k loop (~12 cycles per k step); asking for all
    // of them now hides their L3/memory latency behind the loop (measured +2% at n = 2048).
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + 16 * v), _MM_HINT_T0);
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
