// kernels/cpu/attention.cpp — fused attention with OpenMP threads and register-tiled SIMD
// products (kernels/attention.h has the formulas, shapes and costs).
//
// Both directions work on transposed score tiles st[keys, queries]: the SIMD lanes run along
// the queries. Then every per-query statistic (the running max m and sum l, lse, delta) is a
// vector, the max and sum over a tile's keys are element-wise operations down its rows, and
// the key tile is the broadcast operand of q k^T, so it needs no transpose. (Row-major tiles
// [queries, keys] need a horizontal max and sum per query row, which cost more than that row's
// exponentials, and a transposed copy of every key tile.)
//
// Forward (FlashAttention's online softmax): a task is one batch entry's block of kRows queries.
// It packs qt = (scale q)^T [D, kRows] once (the composed op scales q too), then walks the
// keys in tiles of Bc = kFwdKeyVecs vectors (128 keys in f32 with AVX-512):
//
//   the tile's rows kr = k [Bc, D], vr = v [Bc, Dv]   (read in place or packed: rows_operand)
//   st = kr qt                      [Bc, queries]   broadcast k[j, d] x rows of qt
//   per query (lane): m' = max(m, max_j st_j), alpha = e^(m - m'), p_j = e^(st_j - m'),
//                     l = alpha l + sum_j p_j,   oacc rows *= alpha
//   oacc += p^T vr                  [queries, Dv]   broadcast p[j, i] x rows of v
//
// (the first tile writes oacc instead of rescaling and adding), and at the end o = oacc / l,
// lse = m + log l. Memory per thread is a few tiles (qt, st, oacc: 64 KB at D = 64; kr, vr
// another 64 KB where k, v are packed), whatever T and S are. Causal: a query block stops at
// the last key its last query sees, so tiles wholly above the diagonal are never touched (half
// the work); only the tiles the diagonal crosses are masked, and in those the products skip
// every whole vector of queries a key hides (and every key a vector of queries cannot see):
// key_runs, query_runs. 128-key tiles: P v runs over 128 keys per register tile, not 32.
//
// Backward (FlashAttention-2): a task is one batch entry (or, with fewer than kMinTasks
// entries, one group of its key tiles; see below). It packs the entry's qs = scale q
// transposed, do as rows and transposed, q as rows (rows in place where rows_operand allows),
// lse and delta_i = do_i . o_i (lanes along the queries, from do^T and o^T) once, then for
// each key tile (Bc = kKeyVecs vectors, 32 keys in f32) keeps dk and dv accumulators [Bc, D],
// [Bc, Dv] in L1 and walks the blocks of kBwdRows = 64 queries that see the tile (blocks of 64:
// P^T do and dS^T q run over 64 queries per register tile; 128 made their operands outgrow L1):
//
//   st = kr qs^T, P^T = e^(st - lse) (masked), dP^T = vr do^T, dS^T = P^T (dP^T - delta)
//   dv_tile += P^T do,   dk_tile += dS^T q,   dq_rows += dS kr
//
// (dk is scaled when stored; the first query block writes dk and dv, and without a mask the
// first key tile writes dq, instead of zeroing and adding). The blocks the diagonal crosses
// skip whole vectors of hidden queries as the forward's tiles do.
//
// Race-free partition: a task owns its keys' dk and dv outright. dq sums over every key tile,
// so with one task per batch entry the task also owns dq (accumulated in a per-thread [T, D]
// scratch and written once at the end). With fewer entries than kMinTasks the key tiles of an
// entry are split into groups, each group sums into its own [T, D] slice of a partial buffer,
// and a second pass adds the slices in a fixed order. The grouping depends on the shapes only,
// never on the thread count, so results are bitwise the same for any number of threads.
//
// Why it is fast: every product is one register-tiled kernel, C[MR, NV vectors] += a(i, k) b[k,
// :], with MR x NV accumulators in vector registers across the whole k loop (GCC vector
// extensions: 512-bit vectors under AVX-512, 256 under AVX, 128 otherwise, one source for all
// of them, as in kernels/cpu/matmul.cpp), fed by broadcast loads of a and unit-stride rows of
// b; a transposed operand (P^T as a(i, j) = st[j, i]) is read with a stride instead of being
// copied. M rows are split into tiles of nearly equal height (17 = 9 + 8, not 12 + 4 + 1: a
// 1-row tile has 2 accumulators and waits on FMA latency). The exponentials are exp_vec's
// (Cephes' polynomial, vrndscaleps/vscalefps under AVX-512, never a subnormal result: those
// cost a microcode assist each, and every masked score took one), over whole vectors.
// Nothing is O(T S): the scores, probabilities and their gradients exist one tile at a time.
//
// Any float dtype: operands are converted to the compute type (f32 for f32, bf16, f16; f64 for
// f64). Rows that already are unit-stride rows of the compute type (f32 q, k, v, do as
// MultiHeadAttention passes them) are product operands in place, with no copy; others are
// packed, so strides and storage types are dealt with once: O((T + S) D) copies per task
// against O(T S D) flops. Transposed copies (q^T, do^T, o^T) go through L x L register
// transposes (shuffles), 16 source rows at a time.
#include "kernels/attention.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/parallel.h"
#if defined(__AVX512F__)
#include <immintrin.h>
#endif
#include "kernels/cpu/simd_math.h"
#include "kernels/cpu/simd_vec.h"
#include "kernels/vec_exp.h"

namespace tessel::kernels {
namespace {

// How many accumulator registers a product tile may take: under AVX-512, 24 of the 32 vector
// registers (the rest hold the b row and a broadcast); 10 of 16 elsewhere.
constexpr int kAccRegs = simd_vec::kVecRegs == 32 ? 24 : 10;

template <class A>
struct Simd {
  using V = typename simd_vec::Vec<A>::type;
  static constexpr int64_t L = simd_vec::Vec<A>::lanes;
};

constexpr int64_t kKeyVecs = 2;     // backward: a key tile is 2 vectors wide, 32 keys in f32 (AVX-512)
constexpr int64_t kFwdKeyVecs = 8;  // forward: a key tile is 8 vectors wide, 128 keys in f32
constexpr int64_t kRows = 64;       // forward: queries per block (4 vectors in f32)
constexpr int64_t kBwdRows = 64;    // backward: queries per block
constexpr int64_t kMinTasks = 16;   // backward: split key tiles into groups below this many entries

template <class A>
constexpr int64_t key_tile() {
  return kKeyVecs * Simd<A>::L;
}
template <class A>
constexpr int64_t fwd_key_tile() {
  return kFwdKeyVecs * Simd<A>::L;
}

int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// The most rows a product tile of nv vectors takes: as many as the accumulator registers
// allow, at most 16 (e.g. 6 x 4 and 12 x 2 vectors under AVX-512).
constexpr int max_rows(int nv) { return kAccRegs / nv < 16 ? kAccRegs / nv : 16; }

// The register tile of h rows (1 <= h <= max_rows(NV)), picked from a table.
template <class A, int NV, size_t... H>
constexpr auto tile_table(std::index_sequence<H...>) {
  return std::array{&simd_vec::fma_tile<A, static_cast<int>(H) + 1, NV>...};
}

// Rows [0, M) of one NV-vector column strip, in ceil(M / max_rows(NV)) tiles of nearly equal
// height (17 rows: 9 + 8, not 12 + 4 + 1). A tile of few rows has few accumulators: its FMAs
// wait on each other (latency 4, 2 per cycle: 8 independent accumulators keep the FMA units
// busy), so one short leftover tile costs as much as a full one.
template <class A, int NV>
void product_strip(int64_t M, int64_t K, const A* a, int64_t sar, int64_t sak, const A* b, int64_t ldb, A* c,
                   int64_t ldc, bool accumulate) {
  constexpr int MR = max_rows(NV);
  static constexpr auto tiles = tile_table<A, NV>(std::make_index_sequence<MR>());
  const int64_t n = (M + MR - 1) / MR;
  for (int64_t t = 0, i = 0; t < n; ++t) {
    const int64_t h = M / n + (t < M % n ? 1 : 0);
    tiles[h - 1](K, a + i * sar, sar, sak, b, ldb, c + i * ldc, ldc, accumulate);
    i += h;
  }
}

// C[M, N] (+)= a[M, K] B[K, N] with N a multiple of the vector width (the operands' padded
// widths): the column strips are 4 vectors wide, then whatever is left.
template <class A>
void product(int64_t M, int64_t N, int64_t K, const A* a, int64_t sar, int64_t sak, const A* b, int64_t ldb, A* c,
             int64_t ldc, bool accumulate) {
  constexpr int64_t L = Simd<A>::L;
  int64_t col = 0, nv = N / L;
  for (; nv >= 4; nv -= 4, col += 4 * L) product_strip<A, 4>(M, K, a, sar, sak, b + col, ldb, c + col, ldc, accumulate);
  switch (nv) {
    case 3: product_strip<A, 3>(M, K, a, sar, sak, b + col, ldb, c + col, ldc, accumulate); break;
    case 2: product_strip<A, 2>(M, K, a, sar, sak, b + col, ldb, c + col, ldc, accumulate); break;
    case 1: product_strip<A, 1>(M, K, a, sar, sak, b + col, ldb, c + col, ldc, accumulate); break;
    default: break;
  }
}

// dst[r, c] = scale * src[r, c] for c < cols, 0 for cols <= c < ld (rows r < rows).
template <class T, class A>
void pack_rows(const T* src, int64_t sr, int64_t sc, int64_t rows, int64_t cols, A scale, A* dst, int64_t ld) {
  for (int64_t r = 0; r < rows; ++r) {
    const T* s = src + r * sr;
    A* d = dst + r * ld;
    if (sc == 1)
      for (int64_t c = 0; c < cols; ++c) d[c] = scale * static_cast<A>(s[c]);
    else
      for (int64_t c = 0; c < cols; ++c) d[c] = scale * static_cast<A>(s[c * sc]);
    for (int64_t c = cols; c < ld; ++c) d[c] = 0;
  }
}

// Unaligned vector loads and stores, as one instruction: a memcpy into a V that lives in
// memory (an array of them) can become two 256-bit moves, and a 512-bit load of what two
// 256-bit stores just wrote stalls on store forwarding.
template <class A>
struct Unaligned {
  typedef A type __attribute__((vector_size(simd_vec::kVecBytes), aligned(sizeof(A)), may_alias));
};
template <class A>
inline typename Simd<A>::V load(const A* x) {
  return *reinterpret_cast<const typename Unaligned<A>::type*>(x);
}
template <class A>
inline void store(A* x, typename Simd<A>::V v) {
  *reinterpret_cast<typename Unaligned<A>::type*>(x) = v;
}

// The integer vector __builtin_shuffle takes as the lane selector for vectors of A.
template <class A>
struct LaneIndex {
  using I = std::conditional_t<sizeof(A) == 4, int32_t, int64_t>;
  typedef I type __attribute__((vector_size(simd_vec::kVecBytes)));
};

// Lane l of the selector: from the first operand (l < L) or the second (L + l).
template <class A, int H, bool Hi, size_t... l>
constexpr typename LaneIndex<A>::type transpose_lanes(std::index_sequence<l...>) {
  using I = typename LaneIndex<A>::I;
  constexpr I L = static_cast<I>(Simd<A>::L);
  return typename LaneIndex<A>::type{static_cast<I>((l & H) ? L + l - (Hi ? 0 : H) : l + (Hi ? H : 0))...};
}

// r[i][l] <- r[l][i] for an L x L block in L vector registers: for H = L/2, L/4, .., 1, swap
// the off-diagonal H x H blocks of every 2H x 2H block (two 2-input shuffles per row pair;
// 64 shuffles for 16 x 16 f32, where copying element by element takes 256 scalar loads and
// stores).
template <class A, int H>
inline void transpose_block(typename Simd<A>::V* r) {
  if constexpr (H >= 1) {
    constexpr auto seq = std::make_index_sequence<Simd<A>::L>();
    constexpr typename LaneIndex<A>::type lo = transpose_lanes<A, H, false>(seq), hi = transpose_lanes<A, H, true>(seq);
#pragma GCC unroll 16
    for (int i = 0; i < Simd<A>::L; ++i)
      if ((i & H) == 0) {
        const typename Simd<A>::V x = r[i], y = r[i + H];
        r[i] = __builtin_shuffle(x, y, lo);
        r[i + H] = __builtin_shuffle(x, y, hi);
      }
    transpose_block<A, H / 2>(r);
  }
}

// dst[c, r] = scale * src[r, c]: `rows` rows of `cols` features, transposed to [cols, ld], and
// columns [rows, padded) zeroed (padded a multiple of the vector width). In L x L blocks: L
// source rows are loaded as vectors (converted, zero-filled past the edges), transposed in
// registers and stored as L vectors of L adjacent elements.
template <class T, class A>
void pack_transposed(const T* src, int64_t sr, int64_t sc, int64_t rows, int64_t cols, A scale, A* dst, int64_t ld,
                     int64_t padded) {
  using V = typename Simd<A>::V;
  constexpr int64_t L = Simd<A>::L;
  const V sv = simd_vec::splat<V>(scale);
  for (int64_t r0 = 0; r0 < padded; r0 += L) {
    const int64_t nr = std::clamp<int64_t>(rows - r0, 0, L);
    if (nr <= 4) {  // a few rows (T = 17's last one): zeros, then element by element
      for (int64_t c = 0; c < cols; ++c) store(dst + c * ld + r0, V{});
      for (int64_t i = 0; i < nr; ++i)
        for (int64_t c = 0; c < cols; ++c) dst[c * ld + r0 + i] = scale * static_cast<A>(src[(r0 + i) * sr + c * sc]);
      continue;
    }
    for (int64_t c0 = 0; c0 < cols; c0 += L) {
      const int64_t nc = std::min(L, cols - c0);
      V r[L];
      for (int64_t i = 0; i < L; ++i) {
        if (i >= nr) {
          r[i] = V{};
          continue;
        }
        const T* s = src + (r0 + i) * sr + c0 * sc;
        if constexpr (std::is_same_v<T, A>) {
          if (sc == 1 && nc == L) {
            r[i] = load(s);
            continue;
          }
        }
        alignas(64) A t[L] = {};
        for (int64_t c = 0; c < nc; ++c) t[c] = static_cast<A>(s[c * sc]);
        r[i] = load<A>(t);
      }
      transpose_block<A, L / 2>(r);
      for (int64_t c = 0; c < nc; ++c) {
        store(dst + (c0 + c) * ld + r0, r[c] * sv);
      }
    }
  }
}

// A product operand's rows: row r at at + r * ld, in the compute type.
template <class A>
struct Rows {
  const A* at;
  int64_t ld;
};

// Rows [0, n) of x (strides sr, sc; `cols` elements each) as a product operand. In place when
// they already are unit-stride rows of the compute type and, for an operand read in whole
// vectors (b: `vectors`), hold a whole number of them (reading past `cols` would read the
// next row); otherwise packed into dst [n, ld], zero-padded. f32 q, k, v, do of
// MultiHeadAttention with head dim 32 or 64 are never copied.
template <class T, class A>
Rows<A> rows_operand(const T* src, int64_t sr, int64_t sc, int64_t n, int64_t cols, bool vectors, A* dst, int64_t ld) {
  if constexpr (std::is_same_v<T, A>)
    if (sc == 1 && (!vectors || cols % Simd<A>::L == 0)) return {src, sr};
  pack_rows(src, sr, sc, n, cols, A(1), dst, ld);
  return {dst, ld};
}

// dst[e * se] = src[e] * f for e < n, converted to the storage type: one output row (unit
// stride vectorizes).
template <class T, class A>
void store_row(T* dst, int64_t se, const A* src, int64_t n, A f) {
  if (se == 1) {
#pragma omp simd simdlen(16)
    for (int64_t e = 0; e < n; ++e) dst[e] = static_cast<T>(src[e] * f);
  } else {
    for (int64_t e = 0; e < n; ++e) dst[e * se] = static_cast<T>(src[e] * f);
  }
}

template <class T>
void fill_row(T* dst, int64_t se, int64_t n, T value) {
  for (int64_t e = 0; e < n; ++e) dst[e * se] = value;
}

// 0, 1, .., L - 1.
template <class A, size_t... l>
inline typename Simd<A>::V iota(std::index_sequence<l...>) {
  return typename Simd<A>::V{static_cast<A>(l)...};
}

// Whether every lane of x is 1.
template <class A>
inline bool all_one(typename Simd<A>::V x) {
#if defined(__AVX512F__)
  if constexpr (sizeof(A) == 4)
    return _mm512_cmp_ps_mask(x, simd_vec::splat<typename Simd<A>::V>(A(1)), _CMP_NEQ_UQ) == 0;
  else
    return _mm512_cmp_pd_mask(x, simd_vec::splat<typename Simd<A>::V>(A(1)), _CMP_NEQ_UQ) == 0;
#else
  for (int64_t i = 0; i < Simd<A>::L; ++i)
    if (x[i] != A(1)) return false;
  return true;
#endif
}

// e^x lane by lane: kernels/vec_exp.h's exp_f32 (Cephes), except that under AVX-512 the
// rounding of n = x / ln2 and the scaling by 2^n are one instruction each (vrndscaleps,
// vscalefps) instead of the magic-number rounding, the exponent-bit arithmetic and the
// selects for the range ends. The same polynomial, so the same accuracy, except that results
// below the smallest normal float (x < -87.3) are 0: a subnormal result costs a microcode
// assist (~100 cycles per instruction), and every masked score (-inf) would take one. As a
// probability such a value is 0 anyway next to the row's largest, which is 1. NaN stays NaN,
// x >= 89 gives inf.
template <class A>
inline typename Simd<A>::V exp_vec(typename Simd<A>::V x) {
#if defined(__AVX512F__)
  if constexpr (sizeof(A) == 4) {
    using V = typename Simd<A>::V;
    const V lo = simd_vec::splat<V>(-87.0f), hi = simd_vec::splat<V>(89.0f);
    V xc = x < lo ? lo : x;  // NaN compares false: it stays
    xc = xc > hi ? hi : xc;
    // The maskz forms with every lane set: the plain ones trip GCC 12's -Wmaybe-uninitialized.
    const V n =
        _mm512_maskz_roundscale_ps(0xffff, xc * 1.44269504088896341f, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const V y = _mm512_maskz_scalef_ps(0xffff, exp_reduced(xc, n), n);
    return x < lo ? V{} : y;
  }
#endif
  A t[Simd<A>::L];
  std::memcpy(t, &x, sizeof(x));
#pragma omp simd
  for (int64_t i = 0; i < Simd<A>::L; ++i) t[i] = vexp(t[i]);
  std::memcpy(&x, t, sizeof(x));
  return x;
}

// A 64-byte aligned scratch array of the compute type, one per thread and call.
template <class A>
struct Scratch {
  std::vector<A> mem;
  A* at = nullptr;
  explicit Scratch(int64_t n) : mem(static_cast<size_t>(n + 64 / sizeof(A))) {
    auto addr = reinterpret_cast<uintptr_t>(mem.data());
    at = mem.data() + ((64 - addr % 64) % 64) / sizeof(A);
  }
};

// The geometry every direction shares.
struct Geometry {
  int nb;
  int64_t batch, T, S, D, Dv, shift;
  explicit Geometry(const AttentionParams& p) : nb(p.q.ndim - 2) {
    T = p.q.size[nb];
    D = p.q.size[nb + 1];
    S = p.k.size[nb];
    Dv = p.v.size[nb + 1];
    shift = S - T;
    batch = 1;
    for (int d = 0; d < nb; ++d) batch *= p.q.size[d];
  }
  // Element offset of row r of batch entry b in x (a [.., rows, cols] or [.., rows] Buf).
  int64_t row(const Buf& x, const int64_t* sizes, int64_t b, int64_t r) const {
    return attention_batch_offset(x, nb, sizes, b) + r * x.stride[nb];
  }
};

// Sets the masked scores of a transposed score tile st[keys, queries] (row jj is key j0 + jj,
// column ii query i0 + ii) to -inf: query i sees key j iff j <= i + shift, so key row jj hides
// the queries before j0 + jj - shift - i0. Only tiles the diagonal crosses have any.
template <class A>
void mask_causal(A* st, int64_t ld, int64_t keys, int64_t queries, int64_t j0, int64_t i0, int64_t shift) {
  using V = typename Simd<A>::V;
  constexpr int64_t L = Simd<A>::L;
  const V lane = iota<A>(std::make_index_sequence<L>()), ninf = simd_vec::splat<V>(-std::numeric_limits<A>::infinity());
  for (int64_t jj = 0; jj < keys; ++jj) {
    const int64_t hidden = std::min(queries, j0 + jj - shift - i0);
    for (int64_t v = 0; v < hidden; v += L) {  // whole vectors: the rows are padded to them
      A* x = st + jj * ld + v;
      store(x, lane < static_cast<A>(hidden - v) ? ninf : load(x));
    }
  }
}

// The whole vectors a diagonal tile can skip. With h = j0 - shift - i0, key row jj of a
// transposed tile hides its first jj + h queries, and query ii sees keys jj <= ii - h.
//
// A tile the diagonal does not cross (diag false) is one run that skips nothing.
//
// Rows by keys: f(r0, r1, s) for runs of key rows [r0, r1) whose first s of the nv query
// vectors are wholly hidden (their scores are never needed: not computed, not read).
template <int64_t L, class F>
void key_runs(bool diag, int64_t keys, int64_t h, int64_t nv, F&& f) {
  if (!diag) return f(int64_t{0}, keys, int64_t{0});
  for (int64_t r = 0; r < keys;) {
    const int64_t s = r + h <= 0 ? 0 : std::min((r + h) / L, nv);
    const int64_t end = s == nv ? keys : std::min(keys, (s + 1) * L - h);
    f(r, end, s);
    r = end;
  }
}

// Rows by queries: f(r0, r1, kk) for runs of query rows [r0, r1) that see none of the keys
// from kk on: one vector of rows at a time, then all the rows left once they see every key.
template <int64_t L, class F>
void query_runs(bool diag, int64_t queries, int64_t keys, int64_t h, F&& f) {
  if (!diag) return f(int64_t{0}, queries, keys);
  for (int64_t r = 0; r < queries;) {
    int64_t end = std::min(queries, r + L);
    const int64_t kk = std::clamp<int64_t>(end - h, 0, keys);
    if (kk == keys) end = queries;
    f(r, end, kk);
    r = end;
  }
}

template <class T>
void attention_forward(const AttentionParams& p) {
  using A = acc_t<T>;
  using V = typename Simd<A>::V;
  constexpr int64_t L = Simd<A>::L, Bc = fwd_key_tile<A>();
  constexpr A kNegInf = -std::numeric_limits<A>::infinity(), kNaN = std::numeric_limits<A>::quiet_NaN();
  const Geometry g(p);
  if (g.batch == 0 || g.T == 0) return;
  const int64_t Dp = round_up(g.D, L), Dvp = round_up(g.Dv, L);
  const int64_t blocks = (g.T + kRows - 1) / kRows, tasks = g.batch * blocks;
  const A scale = static_cast<A>(p.scale);
  const int64_t* bs = p.q.size;
  const int nb = g.nb;
  const double task_flops = 2.0 * std::min(kRows, g.T) * g.S * (g.D + g.Dv) * (p.causal ? 0.5 : 1.0) + 1;
  const int64_t grain = std::max<int64_t>(1, static_cast<int64_t>((1 << 18) / task_flops));
  parallel_for(tasks, grain, [&](int64_t t0, int64_t t1) {
    // qt = (scale q)^T of the block [D, kRows]; kr, vr: the key tile's rows [Bc, Dp], [Bc, Dvp];
    // st: the transposed scores, then probabilities [Bc, kRows]; oacc [kRows, Dvp].
    // (Sized for the keys there are: the ViT's 17 need 32 rows, not 128.)
    const int64_t keys = std::min(Bc, round_up(g.S, L));
    Scratch<A> qt(g.D * kRows), kr(keys * Dp), vr(keys * Dvp), st(keys * kRows), oacc(kRows * Dvp);
    alignas(64) A m[kRows], l[kRows], alpha[kRows];
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t b = t / blocks, i0 = (t % blocks) * kRows, nr = std::min(kRows, g.T - i0), nrp = round_up(nr, L);
      pack_transposed(p.q.ptr<T>() + g.row(p.q, bs, b, i0), p.q.stride[nb], p.q.stride[nb + 1], nr, g.D, scale, qt.at,
                      kRows, nrp);
      std::fill(m, m + nrp, kNegInf);
      std::fill(l, l + nrp, A(0));
      // Keys [0, kend) are visible to some row of the block; the rest are never read.
      const int64_t kend = p.causal ? std::clamp<int64_t>(i0 + nr + g.shift, 0, g.S) : g.S;
      const T* kb = p.k.ptr<T>() + attention_batch_offset(p.k, nb, bs, b);
      const T* vb = p.v.ptr<T>() + attention_batch_offset(p.v, nb, bs, b);
      const int64_t sk = p.k.stride[nb], skd = p.k.stride[nb + 1], sv = p.v.stride[nb], svd = p.v.stride[nb + 1];
      if (kend == 0) std::fill(oacc.at, oacc.at + nr * Dvp, A(0));  // no key: o is 0 or NaN
      for (int64_t j0 = 0; j0 < kend; j0 += Bc) {
        const int64_t nc = std::min(Bc, kend - j0);
        const Rows<A> kt = rows_operand(kb + j0 * sk, sk, skd, nc, g.D, false, kr.at, Dp);
        const Rows<A> vt = rows_operand(vb + j0 * sv, sv, svd, nc, g.Dv, true, vr.at, Dvp);
        // A tile the diagonal crosses skips the query vectors its keys hide (key_runs).
        const bool diag = p.causal && j0 + nc - 1 - g.shift > i0;
        const int64_t h = j0 - g.shift - i0;
        auto st_rows = [&](int64_t r0, int64_t r1, int64_t s) {  // st = k qt
          product<A>(r1 - r0, nrp - s * L, g.D, kt.at + r0 * kt.ld, kt.ld, 1, qt.at + s * L, kRows,
                     st.at + r0 * kRows + s * L, kRows, false);
        };
        key_runs<L>(diag, nc, h, nrp / L, st_rows);
        if (diag) mask_causal(st.at, kRows, nc, nr, j0, i0, g.shift);  // the skipped vectors too
        // Online softmax, every query at once (the vectors run along the queries):
        // m' = max(m, max_j s_j), alpha = e^(m - m'), p_j = e^(s_j - m'), l = alpha l + sum_j p_j.
        // While every score so far is -inf, exponentials are taken against 0 instead of -inf:
        // they are 0, where e^(-inf + inf) would be NaN. One lane vector of queries at a time,
        // down the tile's key rows.
        for (int64_t v = 0; v < nrp; v += L) {
          const V m0 = load(m + v);
          // Four running maxima: one waits on the latency of every max before it.
          V mx4[4] = {m0, m0, m0, m0};
          int64_t jj = 0;
          for (; jj + 4 <= nc; jj += 4)
            for (int u = 0; u < 4; ++u) {
              const V x = load(st.at + (jj + u) * kRows + v);
              mx4[u] = x > mx4[u] ? x : mx4[u];
            }
          for (; jj < nc; ++jj) {
            const V x = load(st.at + jj * kRows + v);
            mx4[0] = x > mx4[0] ? x : mx4[0];
          }
          const V mx01 = mx4[0] > mx4[1] ? mx4[0] : mx4[1], mx23 = mx4[2] > mx4[3] ? mx4[2] : mx4[3];
          const V mx = mx01 > mx23 ? mx01 : mx23;
          const V base = mx == kNegInf ? V{} : mx;
          const V al = exp_vec<A>(m0 - base);  // m = -inf at the start: 0
          V sum{};
          for (int64_t jj = 0; jj < nc; ++jj) {
            A* sr = st.at + jj * kRows + v;
            const V e = exp_vec<A>(load(sr) - base);
            store(sr, e);
            sum += e;
          }
          store(m + v, mx);
          store(alpha + v, al);
          store(l + v, load(l + v) * al + sum);
        }
        // The first tile writes oacc (nothing to rescale); later ones rescale and add.
        for (int64_t ii = 0; ii < (j0 > 0 ? nr : 0); ++ii) {
          if (ii % L == 0 && all_one<A>(load(alpha + ii))) {  // no row of this vector's max grew
            ii += L - 1;
            continue;
          }
          if (alpha[ii] == A(1)) continue;  // the max did not grow (the usual case after a few tiles)
          A* orow = oacc.at + ii * Dvp;
          const A a = alpha[ii];
#pragma omp simd simdlen(16)
          for (int64_t e = 0; e < Dvp; ++e) orow[e] *= a;
        }
        auto o_rows = [&](int64_t r0, int64_t r1, int64_t kk) {  // oacc += p^T v
          product<A>(r1 - r0, Dvp, kk, st.at + r0, 1, kRows, vt.at, vt.ld, oacc.at + r0 * Dvp, Dvp, j0 > 0);
        };
        query_runs<L>(diag, nr, nc, h, o_rows);
      }
      T* ob = p.o.ptr<T>() + g.row(p.o, bs, b, i0);
      A* lb = p.lse.ptr<A>() + g.row(p.lse, bs, b, i0);
      const int64_t so = p.o.stride[nb], se = p.o.stride[nb + 1], sl = p.lse.stride[nb];
      // log l for the whole block at once (a libm call per row was 3% of the ViT forward).
      alignas(64) A logl[kRows];
      if constexpr (sizeof(A) == 4) {
#pragma omp simd simdlen(16)
        for (int64_t r = 0; r < nrp; ++r) logl[r] = simd::log_f32(l[r]);
      } else {
        for (int64_t r = 0; r < nr; ++r) logl[r] = std::log(l[r]);
      }
      for (int64_t r = 0; r < nr; ++r) {
        // S = 0: the empty sum; no visible key (l = 0): NaN, as the softmax of all -inf.
        const A f = g.S == 0 ? A(0) : l[r] == 0 ? kNaN : A(1) / l[r];
        store_row(ob + r * so, se, oacc.at + r * Dvp, g.Dv, f);
        lb[r * sl] = g.S == 0 ? kNegInf : l[r] == 0 ? kNaN : m[r] + logl[r];
      }
    }
  });
}

template <class T>
void attention_backward(const AttentionParams& p) {
  using A = acc_t<T>;
  using V = typename Simd<A>::V;
  constexpr int64_t L = Simd<A>::L, Bc = key_tile<A>();
  constexpr A kNaN = std::numeric_limits<A>::quiet_NaN();
  const Geometry g(p);
  if (g.batch == 0) return;
  const int64_t Dp = round_up(g.D, L), Dvp = round_up(g.Dv, L), Tp = round_up(g.T, L);
  const int64_t* bs = p.q.size;
  const int nb = g.nb;
  // A query that sees no key makes every dk, dv of its entry NaN (kernels/attention.h).
  const bool nan_keys = p.causal && g.shift < 0 && g.S > 0 && g.T > 0;
  const int64_t nan_rows = nan_keys ? std::min(g.T, -g.shift) : 0;
  // Key tiles per task: all of them, unless there are too few entries to share out.
  const int64_t tiles = (g.S + Bc - 1) / Bc;
  int64_t per_group = std::max<int64_t>(tiles, 1);
  if (g.batch < kMinTasks && tiles > 1) {
    const int64_t want = std::min(tiles, (kMinTasks + g.batch - 1) / g.batch);
    per_group = (tiles + want - 1) / want;
  }
  const int64_t groups = std::max<int64_t>(1, (tiles + per_group - 1) / per_group);
  const int64_t tasks = g.batch * groups;
  std::vector<A> partial(groups > 1 ? static_cast<size_t>(tasks * g.T * Dp) : 0);
  const A scale = static_cast<A>(p.scale);
  const double task_flops = 4.0 * g.T * std::min(per_group * Bc, g.S) * (g.D + g.Dv) + 1;
  const int64_t grain = std::max<int64_t>(1, static_cast<int64_t>((1 << 18) / task_flops));

  parallel_for(tasks, grain, [&](int64_t t0, int64_t t1) {
    // The entry's rows, packed once: q as rows [T, Dp] and scale q transposed [D, Tp], do as
    // rows [T, Dvp] and transposed [Dv, Tp] (rows in place where rows_operand allows), lse and
    // delta [Tp]; dq accumulates in [T, Dp].
    Scratch<A> qs(g.T * Dp), qt(g.D * Tp), dor(g.T * Dvp), dot_(g.Dv * Tp), dq(groups > 1 ? 0 : g.T * Dp);
    Scratch<A> lse(Tp), delta(Tp), ot(g.Dv * Tp);
    // Per key tile: its k and v rows, dk and dv accumulators; per (tile, query block): the
    // transposed probabilities and their gradient [Bc, kRows].
    Scratch<A> kr(Bc * Dp), vr(Bc * Dvp), dk(Bc * Dp), dv(Bc * Dvp), pt(Bc * kBwdRows), dst(Bc * kBwdRows);
    int64_t packed = -1;  // the batch entry whose rows are packed
    Rows<A> qr{}, dr{};
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t b = t / groups, grp = t % groups;
      if (b != packed) {
        const T* qb = p.q.ptr<T>() + g.row(p.q, bs, b, 0);
        const T* db = p.dout.ptr<T>() + g.row(p.dout, bs, b, 0);
        const int64_t sq = p.q.stride[nb], sqd = p.q.stride[nb + 1], sd = p.dout.stride[nb],
                      sde = p.dout.stride[nb + 1];
        qr = rows_operand(qb, sq, sqd, g.T, g.D, true, qs.at, Dp);
        pack_transposed(qb, sq, sqd, g.T, g.D, scale, qt.at, Tp, Tp);
        dr = rows_operand(db, sd, sde, g.T, g.Dv, true, dor.at, Dvp);
        pack_transposed(db, sd, sde, g.T, g.Dv, A(1), dot_.at, Tp, Tp);
        const T* ob = p.o.ptr<T>() + g.row(p.o, bs, b, 0);
        const A* lb = p.lse.ptr<A>() + g.row(p.lse, bs, b, 0);
        const int64_t so = p.o.stride[nb], se = p.o.stride[nb + 1];
        for (int64_t i = 0; i < g.T; ++i) lse.at[i] = lb[i * p.lse.stride[nb]];
        // delta = do . o per query, with the lanes along the queries: o transposed like do, then
        // Dv multiply-adds per vector of queries (a dot product per row would end in a
        // horizontal sum each). The padding queries get 0.
        pack_transposed(ob, so, se, g.T, g.Dv, A(1), ot.at, Tp, Tp);
        for (int64_t v = 0; v < Tp; v += L) {
          V d{};
          for (int64_t e = 0; e < g.Dv; ++e) d += load(dot_.at + e * Tp + v) * load(ot.at + e * Tp + v);
          store(delta.at + v, d);
        }
        std::fill(lse.at + g.T, lse.at + Tp, A(0));  // padding queries: harmless finite values
        packed = b;
      }
      A* dqa = groups > 1 ? partial.data() + t * g.T * Dp : dq.at;
      // Without a mask every query block meets the group's first tile, whose dq product then
      // writes instead of adding; causal blocks start at different tiles, and S = 0 has none.
      if (p.causal || tiles == 0) std::fill(dqa, dqa + g.T * Dp, A(0));
      const int64_t first_tile = grp * per_group;
      const T* kb = p.k.ptr<T>() + attention_batch_offset(p.k, nb, bs, b);
      const T* vb = p.v.ptr<T>() + attention_batch_offset(p.v, nb, bs, b);
      const int64_t sk = p.k.stride[nb], skd = p.k.stride[nb + 1], sv = p.v.stride[nb], svd = p.v.stride[nb + 1];
      const int64_t tile0 = grp * per_group, tile1 = std::min(tiles, (grp + 1) * per_group);
      for (int64_t tile = tile0; tile < tile1; ++tile) {
        const int64_t j0 = tile * Bc, nc = std::min(Bc, g.S - j0);
        const Rows<A> kt = rows_operand(kb + j0 * sk, sk, skd, nc, g.D, true, kr.at, Dp);
        const Rows<A> vt = rows_operand(vb + j0 * sv, sv, svd, nc, g.Dv, false, vr.at, Dvp);
        // Queries before j0 - shift see none of this tile's keys.
        const int64_t first = p.causal ? std::clamp<int64_t>(j0 - g.shift, 0, g.T) : 0;
        if (first >= g.T) {
          std::fill(dk.at, dk.at + nc * Dp, A(0));
          std::fill(dv.at, dv.at + nc * Dvp, A(0));
        }
        for (int64_t i0 = first; i0 < g.T; i0 += kBwdRows) {
          const int64_t nr = std::min(kBwdRows, g.T - i0), nrp = round_up(nr, L);
          const bool acc = i0 > first;  // dk and dv start from the first block's products
          // A block the diagonal crosses skips the query vectors its keys hide: their P and dS
          // are neither computed nor read (key_runs, query_runs).
          const bool diag = p.causal && j0 + nc - 1 - g.shift > i0;
          const int64_t h = j0 - g.shift - i0;
          key_runs<L>(diag, nc, h, nrp / L, [&](int64_t r0, int64_t r1, int64_t s) {
            const int64_t n = nrp - s * L, c = r0 * kBwdRows + s * L;
            product<A>(r1 - r0, n, g.D, kt.at + r0 * kt.ld, kt.ld, 1, qt.at + i0 + s * L, Tp, pt.at + c, kBwdRows,
                       false);  // s^T = k qs^T
            product<A>(r1 - r0, n, g.Dv, vt.at + r0 * vt.ld, vt.ld, 1, dot_.at + i0 + s * L, Tp, dst.at + c, kBwdRows,
                       false);  // dP^T = v do^T
          });
          if (diag) mask_causal(pt.at, kBwdRows, nc, nr, j0, i0, g.shift);
          const A* li = lse.at + i0;
          const A* di = delta.at + i0;
          for (int64_t jj = 0; jj < nc; ++jj) {
            A* pr = pt.at + jj * kBwdRows;
            A* dsr = dst.at + jj * kBwdRows;
            const int64_t from = diag && jj + h > 0 ? std::min((jj + h) / L, nrp / L) * L : 0;
            for (int64_t i = from; i < nrp; i += L) {
              const V pv = exp_vec<A>(load(pr + i) - load(li + i));  // masked: e^-inf = 0
              store(pr + i, pv);
              store(dsr + i, pv * (load(dsr + i) - load(di + i)));
            }
          }
          key_runs<L>(diag, nc, h, nrp / L, [&](int64_t r0, int64_t r1, int64_t s) {
            const int64_t kq = std::max<int64_t>(0, nr - s * L), c = r0 * kBwdRows + s * L, i = i0 + s * L;
            product<A>(r1 - r0, Dvp, kq, pt.at + c, kBwdRows, 1, dr.at + i * dr.ld, dr.ld, dv.at + r0 * Dvp, Dvp,
                       acc);  // dv += P^T do
            product<A>(r1 - r0, Dp, kq, dst.at + c, kBwdRows, 1, qr.at + i * qr.ld, qr.ld, dk.at + r0 * Dp, Dp,
                       acc);  // dk += dS^T q
          });
          auto dq_rows = [&](int64_t r0, int64_t r1, int64_t kk) {  // dq += dS k
            product<A>(r1 - r0, Dp, kk, dst.at + r0, 1, kBwdRows, kt.at, kt.ld, dqa + (i0 + r0) * Dp, Dp,
                       p.causal || tile > first_tile);
          };
          query_runs<L>(diag, nr, nc, h, dq_rows);
        }
        T* dkb = p.dk.ptr<T>() + g.row(p.dk, bs, b, j0);
        T* dvb = p.dv.ptr<T>() + g.row(p.dv, bs, b, j0);
        for (int64_t c = 0; c < nc; ++c) {
          if (nan_keys) {
            fill_row(dkb + c * p.dk.stride[nb], p.dk.stride[nb + 1], g.D, static_cast<T>(kNaN));
            fill_row(dvb + c * p.dv.stride[nb], p.dv.stride[nb + 1], g.Dv, static_cast<T>(kNaN));
          } else {
            store_row(dkb + c * p.dk.stride[nb], p.dk.stride[nb + 1], dk.at + c * Dp, g.D, scale);
            store_row(dvb + c * p.dv.stride[nb], p.dv.stride[nb + 1], dv.at + c * Dvp, g.Dv, A(1));
          }
        }
      }
      if (groups == 1) {
        T* dqb = p.dq.ptr<T>() + g.row(p.dq, bs, b, 0);
        for (int64_t i = 0; i < g.T; ++i) {
          if (i < nan_rows)
            fill_row(dqb + i * p.dq.stride[nb], p.dq.stride[nb + 1], g.D, static_cast<T>(kNaN));
          else
            store_row(dqb + i * p.dq.stride[nb], p.dq.stride[nb + 1], dqa + i * Dp, g.D, scale);
        }
      }
    }
  });
  if (groups == 1) return;
  // dq of each entry: its groups' slices added in group order.
  parallel_for(g.batch * g.T, std::max<int64_t>(1, 4096 / (groups * Dp + 1)), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t b = r / g.T, i = r % g.T;
      T* dqr = p.dq.ptr<T>() + g.row(p.dq, bs, b, i);
      for (int64_t d = 0; d < g.D; ++d) {
        A sum = 0;
        for (int64_t grp = 0; grp < groups; ++grp) sum += partial[((b * groups + grp) * g.T + i) * Dp + d];
        dqr[d * p.dq.stride[nb + 1]] = static_cast<T>(i < nan_rows ? kNaN : scale * sum);
      }
    }
  });
}

}  // namespace

void attention_cpu(const AttentionParams& p) {
  visit_floating(p.q.dtype, "attention_cpu", [&](auto tag) {
    using T = decltype(tag);
    if (p.backward)
      attention_backward<T>(p);
    else
      attention_forward<T>(p);
  });
}

Family<AttentionParams>& attention_family() {
  static Family<AttentionParams>* f = make_cpu_family<AttentionParams>("attention", attention_ref, attention_cpu);
  return *f;
}

}  // namespace tessel::kernels
