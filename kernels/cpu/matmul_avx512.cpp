// kernels/cpu/matmul_avx512.cpp — "cpu_avx512" (packed GEMM with AVX-512 register tiles) and
// "cpu_amx" (bf16 through AMX tiles).
//
//   C[b] = act(alpha * A[b] @ B[b] + beta * C[b] + bias)     (kernels/matmul.h)
//
// f32: a 6 x 64 micro-kernel. 6 rows x 4 zmm of C = 24 accumulators, 4 zmm for the current row
// of the B panel and 1 for the broadcast A value: 29 of the 32 zmm registers, no spills. Per k
// step it issues 24 independent FMAs against 4 vector loads + 6 broadcasts, enough to keep
// both FMA pipes busy behind their 4-cycle latency (2 pipes x 4 cycles = 8 FMAs in flight).
// The tile is written as a template over rows x vectors; measured here against 14 x 32,
// 12 x 32, 8 x 48 and 7 x 64 (interleaved with oneDNN on one core), 6 x 64 was fastest by
// 3-10% at n = 1024..2048. A narrow C (N <= 16 or 32) uses a 12 x 16 or 8 x 32 tile instead,
// so that the lanes are not mostly padding.
//
// Around the micro-kernel (each measured, see docs/gemm.md): packing by register transposes
// (the scalar copies cost ~10% of a 1024^3 GEMM), operands read in place when packing would not
// be repaid (a narrow C reads A once; a short C reads B once or twice), and M or N <= 16 through
// separate unpacked "skinny" kernels (axpy and dot forms), since there almost nothing is reused.
//
// bf16 (CPUs with AVX512_BF16): a 14 x 32 tile whose instruction is vdpbf16ps,
// which multiplies PAIRS of bf16 values and adds both products to one f32 lane:
//   acc[j] += a[2j] * b[2j] + a[2j+1] * b[2j+1].
// So the packing interleaves pairs of k: B panel element (k, j) sits at (k / 2 * 32 + j) * 2 +
// k % 2, and an A pair (A[i, k], A[i, k+1]) is broadcast as one 32-bit value. One instruction
// does 32 multiply-adds (twice an f32 FMA's 16) from half the bytes; accumulation is f32.
// cpu_amx (CPUs with AMX-BF16 whose OS grants the tile state) does the same pairs with tile
// instructions: one tdpbf16ps is a 16 x 16 x 32 product, 256 times one vdpbf16ps.
//
// The ISA is picked at run time: this file is compiled with `#pragma GCC target` whatever the
// build's -march, and accepts() declines unless cpu_features() reports the instructions.
// Blocking (KC, MC, and the driver's 4 MiB B slice) is sized for a 48 KiB L1d / 2 MiB L2 core:
// a 336 x 512 A block (672 KiB) and the B micro-panel in use (128 KiB) in L2, the B slice in L3.
//
// Cost: 2 M N K flops; packing copies K N once per task and M K once per (task, nc block).
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

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
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,fma,avx512bf16,amx-tile,amx-bf16")

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
// unused merge source, which -Wmaybe-uninitialized flags once inlined (or -Wuninitialized: which
// one depends on what else GCC inlines into this file); nothing is uninitialized.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
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
    tile_impl<true, true>(kc, a, 1, MR, b, NR, c, ldc, alpha, beta);
  }

  // MR consecutive floats as one masked load and store: the k-major A packer's inner copy, 12
  // scalar moves before (measured, one thread, interleaved: TN 128x128x2176 and 512x128x2176
  // +4%, 1024x1024x4096 +1%).
  static_assert(MR <= 16);
  static void copy_mr(const float* src, float* dst) {
    constexpr __mmask16 m = static_cast<__mmask16>((1u << MR) - 1);
    _mm512_mask_storeu_ps(dst, m, _mm512_maskz_loadu_ps(m, src));
  }

  // copy_mr for k in [k0, k1) of one panel (at most one sum chunk: dst row k at dst + k * MR),
  // adding the rows' values to sums[0, MR) in add_row_sums' order (kernels/matmul.h): four f64
  // partials by k mod 4, then ((p0 + p1) + (p2 + p3)), one vector lane per row, so the bits are
  // those of the scalar loop. Scalar, the adds cost as much as the bias gradient's own pass.
  static constexpr bool kCopySums = MR <= 8;
  static void copy_mr_sums(const float* a, int64_t sa1, int64_t k0, int64_t k1, float* dst, double* sums) {
    constexpr __mmask8 m = static_cast<__mmask8>((1u << MR) - 1);  // MR <= 8: one ymm of floats
    __m512d part[4] = {_mm512_setzero_pd(), _mm512_setzero_pd(), _mm512_setzero_pd(), _mm512_setzero_pd()};
    for (int64_t k = k0; k < k1; k += 4)
#pragma GCC unroll 4
      for (int j = 0; j < 4; ++j)
        if (k + j < k1) {
          const __m256 v = _mm256_maskz_loadu_ps(m, a + (k + j) * sa1);
          _mm256_mask_storeu_ps(dst + (k + j) * MR, m, v);
          part[j] = _mm512_add_pd(part[j], _mm512_maskz_cvtps_pd(m, v));  // (maskz: GCC 12 flags the unmasked form)
        }
    const __m512d chunk = _mm512_add_pd(_mm512_add_pd(part[0], part[1]), _mm512_add_pd(part[2], part[3]));
    _mm512_mask_storeu_pd(sums, m, _mm512_add_pd(_mm512_maskz_loadu_pd(m, sums), chunk));
  }

  // The same tile reading A and/or B where they lie: A[i, k] at a + i * sai + k * sak, B row k
  // at b + k * sbk (16 NV contiguous floats). The driver uses it for the operand that would be
  // packed but reused too little to repay the copy (a narrow C: A is read by one column tile;
  // a short C: B by one or two row tiles). Packed (true) instantiations fold the strides into
  // constants, so the packed kernel is unchanged.
  static constexpr bool kDirect = true;
  template <bool PackedA, bool PackedB>
  static void tile_impl(int64_t kc, const float* __restrict a, int64_t sai, int64_t sak, const float* __restrict b,
                        int64_t sbk, float* __restrict c, int64_t ldc, float alpha, float beta) {
    const int64_t ai = PackedA ? 1 : sai, ak = PackedA ? MR : sak, bk = PackedB ? NR : sbk;
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
        bv[v] = PackedB ? _mm512_load_ps(b + 16 * v) : _mm512_loadu_ps(b + 16 * v);
        _mm_prefetch(reinterpret_cast<const char*>(b + kPrefetchK * bk + 16 * v), _MM_HINT_T0);
      }
#pragma GCC unroll 14
      for (int i = 0; i < MR; ++i) {
        const __m512 av = _mm512_set1_ps(a[i * ai]);
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_fmadd_ps(av, bv[v], acc[i][v]);
      }
      a += ak;
      b += bk;
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

// ---- bf16 packing. A packed bf16 panel stores pairs (X[k], X[k+1]) of consecutive k as one
// 32-bit unit, because that is what vdpbf16ps consumes. Where an operand is contiguous along k
// (row-major A, transposed B), such a pair is already one 32-bit unit in memory, so packing is
// the f32 transposes above applied to 32-bit units. Where it is contiguous along the other
// dimension (row-major B, transposed A), two k rows are loaded and their 16-bit elements
// interleaved with one two-source permute. Groups past the last full 16 (and an odd last k)
// take the scalar path.

// Pairs of k as 32-bit units, for units (16-bit elements) g0.. of a k-contiguous row.
inline __m512 load_pairs16(const bf16* row, int64_t g0) {
  return _mm512_castsi512_ps(_mm512_loadu_si512(row + 2 * g0));
}
inline uint32_t load_pair(const bf16* x, int64_t step, int64_t k, int64_t kc) {  // (x[k], x[k+1]) or (x[k], 0)
  const uint32_t lo = x[k * step].bits, hi = k + 1 < kc ? x[(k + 1) * step].bits : 0;
  return lo | (hi << 16);
}

// Rounds 16 floats to bf16 exactly as bf16(float) does (nearest even; NaN stays a quiet NaN).
inline __m256i round_to_bf16(__m512 v) {
  const __m512i u = _mm512_castps_si512(v);
  const __mmask16 nan =
      _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)), _mm512_set1_epi32(0x7f800000));
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff))), 16);
  r = _mm512_mask_or_epi32(r, nan, _mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40));
  return _mm512_cvtepi32_epi16(r);
}

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // see transpose16x16
struct Avx512Bf16 {
  using P = bf16;
  static constexpr int MR = 14, NR = 32, KP = 2;
  static constexpr int64_t KC = 512, MC = 14 * 24;

  static bool pack_a_fast(const bf16* a, int64_t sa0, int64_t sa1, int64_t kc, int64_t m, bf16* dst) {
    if (m != MR || (sa0 == 1) == (sa1 == 1)) return false;
    const int64_t groups = (kc + 1) / 2;
    auto* out = reinterpret_cast<uint32_t*>(dst);  // out[g * MR + i] = pair (A[i, 2g], A[i, 2g+1])
    int64_t g = 0;
    if (sa1 == 1) {  // row-major: a 14 x 16 -> 16 x 14 transpose of pairs, masked to 14 lanes
      for (; g + 16 <= kc / 2; g += 16) {
        __m512 r[16];
        for (int i = 0; i < MR; ++i) r[i] = load_pairs16(a + i * sa0, g);
        r[14] = r[15] = _mm512_setzero_ps();
        transpose16x16(r);
        for (int u = 0; u < 16; ++u) _mm512_mask_storeu_ps(out + (g + u) * MR, 0x3fff, r[u]);
      }
      for (; g < groups; ++g)
        for (int i = 0; i < MR; ++i) out[g * MR + i] = load_pair(a + i * sa0, 1, 2 * g, kc);
    } else {  // transposed A: rows k and k+1 are contiguous in i; interleave their elements
      const __m512i idx = _mm512_setr_epi32(0x100000, 0x110001, 0x120002, 0x130003, 0x140004, 0x150005, 0x160006,
                                            0x170007, 0x180008, 0x190009, 0x1a000a, 0x1b000b, 0x1c000c, 0x1d000d,
                                            0x1e000e, 0x1f000f);  // 16-bit indices 0, 16, 1, 17, ...
      for (; g < kc / 2; ++g) {
        const __m256i k0 = _mm256_maskz_loadu_epi16(0x3fff, a + 2 * g * sa1);
        const __m256i k1 = _mm256_maskz_loadu_epi16(0x3fff, a + (2 * g + 1) * sa1);
        const __m512i both = _mm512_inserti64x4(_mm512_castsi256_si512(k0), k1, 1);
        _mm512_mask_storeu_epi16(out + g * MR, 0x0fffffff, _mm512_permutexvar_epi16(idx, both));
      }
      for (; g < groups; ++g)
        for (int i = 0; i < MR; ++i) out[g * MR + i] = load_pair(a + i, sa1, 2 * g, kc);
    }
    return true;
  }

  static bool pack_b_fast(const bf16* b, int64_t sb0, int64_t sb1, int64_t kc, int64_t n, bf16* dst) {
    if (n != NR || (sb0 == 1) == (sb1 == 1)) return false;
    const int64_t groups = (kc + 1) / 2;
    auto* out = reinterpret_cast<uint32_t*>(dst);  // out[g * NR + j] = pair (B[2g, j], B[2g+1, j])
    int64_t g = 0;
    if (sb1 == 1) {  // row-major: interleave rows 2g and 2g+1 (32 elements each)
      const __m512i lo =
          _mm512_setr_epi32(0x200000, 0x210001, 0x220002, 0x230003, 0x240004, 0x250005, 0x260006, 0x270007, 0x280008,
                            0x290009, 0x2a000a, 0x2b000b, 0x2c000c, 0x2d000d, 0x2e000e, 0x2f000f);  // 0, 32, 1, 33, ...
      const __m512i hi = _mm512_add_epi16(lo, _mm512_set1_epi16(16));
      for (; g < kc / 2; ++g) {
        const __m512i k0 = _mm512_loadu_si512(b + 2 * g * sb0), k1 = _mm512_loadu_si512(b + (2 * g + 1) * sb0);
        _mm512_store_si512(out + g * NR, _mm512_permutex2var_epi16(k0, lo, k1));
        _mm512_store_si512(out + g * NR + 16, _mm512_permutex2var_epi16(k0, hi, k1));
      }
      for (; g < groups; ++g)
        for (int j = 0; j < NR; ++j) out[g * NR + j] = load_pair(b + j, sb0, 2 * g, kc);
    } else {  // transposed B: columns are k-contiguous; 16 x 16 transposes of pairs
      for (; g + 16 <= kc / 2; g += 16)
        for (int j0 = 0; j0 < NR; j0 += 16) {
          __m512 r[16];
          for (int j = 0; j < 16; ++j) r[j] = load_pairs16(b + (j0 + j) * sb1, g);
          transpose16x16(r);
          for (int u = 0; u < 16; ++u) _mm512_store_ps(out + (g + u) * NR + j0, r[u]);
        }
      for (; g < groups; ++g)
        for (int j = 0; j < NR; ++j) out[g * NR + j] = load_pair(b + j * sb1, 1, 2 * g, kc);
    }
    return true;
  }

  // c[i, 0:n] = bf16(alpha * acc[i, 0:n] + beta * c[i, 0:n]) for a row-contiguous C without an
  // epilogue, 16 columns per step (the scalar loop cost ~5% of a bf16 GEMM at n = 1024).
  static void finish_rows(const float* acc, int64_t ldacc, bf16* c, int64_t sc0, int64_t m, int64_t n, float alpha,
                          float beta) {
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; j += 16) {
        const __mmask16 mask = n - j >= 16 ? __mmask16(0xffff) : static_cast<__mmask16>((1u << (n - j)) - 1);
        __m512 v = _mm512_mul_ps(va, _mm512_maskz_loadu_ps(mask, acc + i * ldacc + j));
        if (beta != 0.0f) {
          const __m256i old = _mm256_maskz_loadu_epi16(mask, c + i * sc0 + j);
          v = _mm512_fmadd_ps(vb, _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(old), 16)), v);
        }
        _mm256_mask_storeu_epi16(c + i * sc0 + j, mask, round_to_bf16(v));
      }
  }

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
#pragma GCC diagnostic pop

// ---- "cpu_amx": bf16 through AMX tile instructions (Sapphire Rapids and later).
// tdpbf16ps multiplies a 16 x 32 bf16 tile of A by a 32 x 16 bf16 tile of B (stored as 16 rows
// of 16 k-pairs, the same pairing as vdpbf16ps) into a 16 x 16 f32 tile of C: 8192 multiply-adds
// per instruction, against vdpbf16ps's 32. The register tile is 32 x 32 of C = 4 C tiles, fed by
// 2 A tiles and 2 B tiles per 32 k (8 of the 8 tile registers).
// Packed layouts (KP = 32 k per group): an A panel is, per group, 32 rows x 32 k, row-major (a
// tile is 16 such rows, stride 64 bytes); a B panel is, per group and per 16-column half,
// 16 k-pairs x 16 columns x 2 (one B tile, 1 KiB).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // see transpose16x16
struct AmxBf16 {
  using P = bf16;
  static constexpr int MR = 32, NR = 32, KP = 32;
  // KC = 1024 measured best of 256/512/1024 (1 thread, n = 1024: 550 -> 690 GFLOP/s): bf16 C
  // accumulates in an f32 scratch that every K block reads and writes, and a tile step is so
  // fast that those passes matter. A block 256 x 1024 bf16 = 512 KiB of L2.
  static constexpr int64_t KC = 1024, MC = 32 * 8;

  // The tile configuration is per-thread state that any other AMX user on the thread (oneDNN's
  // bf16 kernels, say) may change or release between two of our calls. So the driver brackets
  // each task (many tiles) with begin(), which loads our shapes, and end(), which releases the
  // tile state (the OS then need not save 8 KiB of tiles on every context switch).
  static void begin() {
    struct alignas(64) Config {
      uint8_t palette = 1, start_row = 0;
      uint8_t reserved[14] = {};
      uint16_t colsb[16] = {};
      uint8_t rows[16] = {};
    } cfg;
    for (int t = 0; t < 8; ++t) cfg.colsb[t] = 64, cfg.rows[t] = 16;
    _tile_loadconfig(&cfg);
  }
  static void end() { _tile_release(); }

  static bool pack_a_fast(const bf16* a, int64_t sa0, int64_t sa1, int64_t kc, int64_t m, bf16* dst) {
    if (sa1 != 1) return false;  // the generic loop writes the same layout (KP = 32)
    for (int64_t g = 0; g * 32 < kc; ++g) {
      const __mmask32 mk = kc - 32 * g >= 32 ? ~__mmask32(0) : (__mmask32(1) << (kc - 32 * g)) - 1;
      for (int i = 0; i < MR; ++i) {
        const __m512i row = i < m ? _mm512_maskz_loadu_epi16(mk, a + i * sa0 + 32 * g) : _mm512_setzero_si512();
        _mm512_store_si512(dst + (g * MR + i) * 32, row);
      }
    }
    return true;
  }

  static bool pack_b_fast(const bf16* b, int64_t sb0, int64_t sb1, int64_t kc, int64_t n, bf16* dst) {
    const int64_t groups = ceil_div(kc, 32);
    if (sb1 == 1 && n == NR) {  // row-major: interleave rows 2p and 2p + 1, 16 columns at a time
      const __m512i idx = _mm512_setr_epi32(0x100000, 0x110001, 0x120002, 0x130003, 0x140004, 0x150005, 0x160006,
                                            0x170007, 0x180008, 0x190009, 0x1a000a, 0x1b000b, 0x1c000c, 0x1d000d,
                                            0x1e000e, 0x1f000f);  // 16-bit indices 0, 16, 1, 17, ...
      for (int64_t g = 0; g < groups; ++g)
        for (int h = 0; h < 2; ++h)
          for (int q = 0; q < 16; ++q) {
            const int64_t k = 32 * g + 2 * q;
            const __m256i r0 = k < kc ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + k * sb0 + 16 * h))
                                      : _mm256_setzero_si256();
            const __m256i r1 = k + 1 < kc
                                   ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + (k + 1) * sb0 + 16 * h))
                                   : _mm256_setzero_si256();
            const __m512i both = _mm512_inserti64x4(_mm512_castsi256_si512(r0), r1, 1);
            _mm512_store_si512(dst + ((g * 2 + h) * 16 + q) * 32, _mm512_permutexvar_epi16(idx, both));
          }
      return true;
    }
    for (int64_t g = 0; g < groups; ++g)
      for (int h = 0; h < 2; ++h)
        for (int q = 0; q < 16; ++q)
          for (int jj = 0; jj < 16; ++jj)
            for (int r = 0; r < 2; ++r) {
              const int64_t k = 32 * g + 2 * q + r, j = 16 * h + jj;
              dst[((g * 2 + h) * 16 + q) * 32 + 2 * jj + r] = k < kc && j < n ? b[k * sb0 + j * sb1] : bf16();
            }
    return true;
  }

  static void finish_rows(const float* acc, int64_t ldacc, bf16* c, int64_t sc0, int64_t m, int64_t n, float alpha,
                          float beta) {
    Avx512Bf16::finish_rows(acc, ldacc, c, sc0, m, n, alpha, beta);
  }

  // c[32 x 32] = alpha * A_panel @ B_panel + beta * c over `groups` groups of 32 k.
  static void tile(int64_t groups, const bf16* a, const bf16* b, float* c, int64_t ldc, float alpha, float beta) {
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    for (int64_t g = 0; g < groups; ++g) {
      const bf16* ag = a + g * MR * 32;
      const bf16* bg = b + g * NR * 32;
      _tile_loadd(4, ag, 64);            // A rows 0..15
      _tile_loadd(5, ag + 16 * 32, 64);  // A rows 16..31
      _tile_loadd(6, bg, 64);            // B columns 0..15
      _tile_loadd(7, bg + 16 * 32, 64);  // B columns 16..31
      _tile_dpbf16ps(0, 4, 6);
      _tile_dpbf16ps(1, 4, 7);
      _tile_dpbf16ps(2, 5, 6);
      _tile_dpbf16ps(3, 5, 7);
    }
    alignas(64) float out[32 * 32];
    _tile_stored(0, out, 128);
    _tile_stored(1, out + 16, 128);
    _tile_stored(2, out + 16 * 32, 128);
    _tile_stored(3, out + 16 * 32 + 16, 128);
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    for (int i = 0; i < 32; ++i)
      for (int v = 0; v < 2; ++v) {
        float* ci = c + i * ldc + 16 * v;
        const __m512 x = _mm512_load_ps(out + i * 32 + 16 * v);
        _mm512_storeu_ps(
            ci, beta == 0.0f ? _mm512_mul_ps(va, x) : _mm512_fmadd_ps(va, x, _mm512_mul_ps(vb, _mm512_loadu_ps(ci))));
      }
  }
};

#pragma GCC diagnostic pop

// AMX tile data is off until the process asks the kernel for it (Linux 5.16+): once, here.
bool amx_permitted() {
  static const bool ok = [] {
    constexpr long kReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
    return syscall(SYS_arch_prctl, kReqXcompPerm, kXfeatureXtiledata) == 0;
  }();
  return ok;
}

// ---- Skinny f32 GEMMs: M <= kSkinny (or N <= kSkinny, solved as C^T = B^T A^T).
// With 1..16 rows, C has too few rows to fill a 6 x 64 tile and there is almost no reuse of B:
// every B element is used M times. Packing B would then copy the whole operand once to read
// it once more (perf: a 1 x 1024 x 1024 GEMM ran at 0.4x oneDNN that way). These kernels read
// A and B where they lie, once, in one of two forms chosen by B's layout:
//   axpy form (B rows contiguous): C[i, j:j+64] += A[i, k] * B[k, j:j+64], up to 4 rows of C
//     in 16 registers; streams B row by row.
//   dot form (B columns contiguous, as in X W^T): C[i, j] = dot(A[i, :], B[:, j]) for 4 rows x
//     4 columns at a time, 16 k per instruction, reduced across lanes at the end.
// Threads split the columns; the k order of every element is fixed, so 1 and 2 threads agree.
// Measured: the axpy form at M = 24..32 (its partial sums in L1, loads of the broadcast A values
// then bound it) ran at 0.75x oneDNN against the packed path's 0.86-0.90x, so it stops at 16;
// the dot form re-reads B once per 4 rows and stops at 8.
constexpr int64_t kSkinny = 16;
constexpr int64_t kSkinnyDot = 8;

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // _mm512_reduce_add_ps: see transpose16x16

struct Skinny {
  const float* a;
  const float* b;
  float* c;
  int64_t m, n, k, sa0, sa1, sb0, sb1, sc0, sc1;
  const float* bias;  // null: none
  int64_t sbias_i, sbias_j;
  float alpha, beta;
  Activation act;

  // The finished value of C[i, j] given its accumulated product.
  float finish(float acc, int64_t i, int64_t j) const {
    float& c_ij = c[i * sc0 + j * sc1];
    float v = alpha * acc;
    if (beta != 0.0f) v += beta * c_ij;
    if (bias) v += bias[i * sbias_i + j * sbias_j];
    return apply_activation(v, act);
  }
};

inline __mmask16 tail_mask(int64_t rem) {
  return rem >= 16 ? __mmask16(0xffff) : rem <= 0 ? __mmask16(0) : static_cast<__mmask16>((1u << rem) - 1);
}

// Columns j0..j0+nj-1 (nj <= kAxpyCols) of all m rows in the axpy form; B rows contiguous.
// B is read 8 rows at a time, each row left to right: 8 sequential streams the hardware
// prefetcher follows (walking down one narrow column block instead touches a new page per
// row: measured 0.47x oneDNN at 1 x 1024 x 1024). The m x nj partial sums live in an L1
// buffer; loading and storing them once per 8 FMAs per row keeps the loop bound by B.
constexpr int64_t kAxpyCols = 512;
void skinny_axpy(const Skinny& s, int64_t j0, int64_t nj) {
  constexpr int KCH = 8;
  alignas(64) float acc[kSkinny][kAxpyCols];
  const int64_t nv = ceil_div(nj, 16);
  for (int64_t i = 0; i < s.m; ++i)
    for (int64_t v = 0; v < nv; ++v) _mm512_store_ps(acc[i] + 16 * v, _mm512_setzero_ps());
  const float* b = s.b + j0;
  for (int64_t k0 = 0; k0 < s.k; k0 += KCH) {
    const int64_t kn = std::min<int64_t>(KCH, s.k - k0);
    float av[kSkinny][KCH];  // this chunk's A values (zero past K, matching the zero B rows)
    for (int64_t i = 0; i < s.m; ++i)
      for (int kk = 0; kk < KCH; ++kk) av[i][kk] = kk < kn ? s.a[i * s.sa0 + (k0 + kk) * s.sa1] : 0.0f;
    for (int64_t v = 0; v < nv; ++v) {
      const __mmask16 mk = tail_mask(nj - 16 * v);
      __m512 bv[KCH];
      for (int kk = 0; kk < KCH; ++kk)
        bv[kk] = kk < kn ? _mm512_maskz_loadu_ps(mk, b + (k0 + kk) * s.sb0 + 16 * v) : _mm512_setzero_ps();
      for (int64_t i = 0; i < s.m; ++i) {
        __m512 x = _mm512_load_ps(acc[i] + 16 * v);
        for (int kk = 0; kk < KCH; ++kk) x = _mm512_fmadd_ps(_mm512_set1_ps(av[i][kk]), bv[kk], x);
        _mm512_store_ps(acc[i] + 16 * v, x);
      }
    }
  }
  for (int64_t i = 0; i < s.m; ++i)
    for (int64_t j = 0; j < nj; ++j) s.c[i * s.sc0 + (j0 + j) * s.sc1] = s.finish(acc[i][j], i, j0 + j);
}

// Rows i0..i0+R-1, columns j0..j0+nj-1 (nj <= 4) in the dot form; A rows and B columns
// contiguous along k.
template <int R>
void skinny_dot(const Skinny& s, int64_t i0, int64_t j0, int64_t nj) {
  __m512 acc[R][4];
  for (int i = 0; i < R; ++i)
    for (int j = 0; j < 4; ++j) acc[i][j] = _mm512_setzero_ps();
  const float* a[R];
  const float* b[4];
  for (int i = 0; i < R; ++i) a[i] = s.a + (i0 + i) * s.sa0;
  for (int j = 0; j < 4; ++j) b[j] = s.b + (j0 + std::min<int64_t>(j, nj - 1)) * s.sb1;  // repeat the last
  for (int64_t k = 0; k < s.k; k += 16) {
    const __mmask16 mk = tail_mask(s.k - k);
    __m512 bv[4];
    for (int j = 0; j < 4; ++j) bv[j] = _mm512_maskz_loadu_ps(mk, b[j] + k);
    for (int i = 0; i < R; ++i) {
      const __m512 av = _mm512_maskz_loadu_ps(mk, a[i] + k);
      for (int j = 0; j < 4; ++j) acc[i][j] = _mm512_fmadd_ps(av, bv[j], acc[i][j]);
    }
  }
  for (int i = 0; i < R; ++i)
    for (int64_t j = 0; j < nj; ++j)
      s.c[(i0 + i) * s.sc0 + (j0 + j) * s.sc1] = s.finish(_mm512_reduce_add_ps(acc[i][j]), i0 + i, j0 + j);
}

// All rows of C for the column blocks [b0, b1) of width `width` (64 or 32 in the axpy form,
// 4 in the dot form).
void skinny_columns(const Skinny& s, bool axpy, int64_t width, int64_t b0, int64_t b1) {
  for (int64_t blk = b0; blk < b1; ++blk) {
    const int64_t j0 = blk * width, nj = std::min(width, s.n - j0);
    if (axpy) {
      skinny_axpy(s, j0, nj);
      continue;
    }
    if (s.m > 4) {  // the dot form holds 4 rows: two passes
      skinny_dot<4>(s, 0, j0, nj);
      Skinny rest = s;
      rest.a += 4 * s.sa0;
      rest.c += 4 * s.sc0;
      if (rest.bias) rest.bias += 4 * s.sbias_i;
      rest.m -= 4;
      skinny_columns(rest, false, width, blk, blk + 1);
      continue;
    }
    switch (s.m) {
      case 1: skinny_dot<1>(s, 0, j0, nj); break;
      case 2: skinny_dot<2>(s, 0, j0, nj); break;
      case 3: skinny_dot<3>(s, 0, j0, nj); break;
      default: skinny_dot<4>(s, 0, j0, nj); break;
    }
  }
}

#pragma GCC diagnostic pop

// Runs p through the skinny kernels if it is a single f32 GEMM with M or N <= kSkinny and a B
// layout they read directly; false: use the packed driver.
bool try_skinny(const MatmulParams& p) {
  if (p.dact.data != nullptr || p.mul.data != nullptr || p.a_sums.data != nullptr)
    return false;  // the driver's epilogue and packing have them
  const int nb = p.c.ndim - 2;
  for (int d = 0; d < nb; ++d)
    if (p.c.size[d] != 1) return false;  // batches go through the driver's batch split
  Skinny s;
  s.m = p.c.size[nb];
  s.n = p.c.size[nb + 1];
  s.k = p.a.size[nb + 1];
  if (s.k == 0 || std::min(s.m, s.n) > kSkinny) return false;
  s.a = p.a.ptr<float>();
  s.b = p.b.ptr<float>();
  s.c = p.c.ptr<float>();
  s.sa0 = p.a.stride[nb], s.sa1 = p.a.stride[nb + 1];
  s.sb0 = p.b.stride[nb], s.sb1 = p.b.stride[nb + 1];
  s.sc0 = p.c.stride[nb], s.sc1 = p.c.stride[nb + 1];
  s.bias = p.bias.data ? p.bias.ptr<float>() : nullptr;
  s.sbias_i = 0;
  s.sbias_j = p.bias.data ? p.bias.stride[0] : 0;
  s.alpha = static_cast<float>(p.alpha);
  s.beta = static_cast<float>(p.beta);
  s.act = p.act;
  if (s.n < s.m) {  // few columns: C^T = B^T A^T has few rows
    std::swap(s.a, s.b);
    std::swap(s.m, s.n);
    const int64_t a0 = s.sa0, a1 = s.sa1;
    s.sa0 = s.sb1, s.sa1 = s.sb0, s.sb0 = a1, s.sb1 = a0;
    std::swap(s.sc0, s.sc1);
    std::swap(s.sbias_i, s.sbias_j);
  }
  const bool axpy = s.sb1 == 1;
  if (!axpy && (s.sb0 != 1 || s.m > kSkinnyDot)) return false;  // B strided both ways, or too many dot passes
  if (!axpy && s.sa1 != 1) {  // the dot form wants A's rows contiguous: copy them (m <= 8 rows)
    float* rows = thread_scratch<float>(2, s.m * s.k);
    for (int64_t i = 0; i < s.m; ++i)
      for (int64_t k = 0; k < s.k; ++k) rows[i * s.k + k] = s.a[i * s.sa0 + k * s.sa1];
    s.a = rows;
    s.sa0 = s.k;
    s.sa1 = 1;
  }
  const int64_t width = axpy ? kAxpyCols : 4, blocks = ceil_div(s.n, width);
  // at least ~256 KFLOP per thread chunk, or waking the second thread costs more than it saves
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 17) / std::max<int64_t>(1, s.m * s.k * width));
  parallel_for(blocks, grain, [&](int64_t b0, int64_t b1) { skinny_columns(s, axpy, width, b0, b1); });
  return true;
}

}  // namespace

void matmul_avx512(const MatmulParams& p) {
  if (p.c.dtype == DType::bf16)
    gemm_driver<Avx512Bf16, bf16>(p);
  else if (try_skinny(p))
    return;
  else if (const int64_t n = p.c.size[p.c.ndim - 1]; n <= 16)
    gemm_driver<Avx512F32T<12, 1>, float>(p);
  else if (n <= 32)
    gemm_driver<Avx512F32T<8, 2>, float>(p);
  else
    gemm_driver<Avx512F32T<6, 4>, float>(p);
}

void matmul_amx(const MatmulParams& p) {
  check(amx_permitted(), "matmul", "cpu_amx: the OS did not grant AMX tile state (arch_prctl)");
  gemm_driver<AmxBf16, bf16>(p);
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

bool matmul_amx_accepts(const MatmulParams& p) {
  const CpuFeatures& f = cpu_features();
  return p.c.dtype == DType::bf16 && f.avx512f && f.avx512bw && f.avx512_bf16 && f.amx_tile && f.amx_bf16 &&
         amx_permitted();
}

}  // namespace tessel::kernels
