// kernels/cpu/matmul.cpp — "cpu_packed": packed, cache-blocked, register-tiled GEMM with
// OpenMP threads, in portable C++ (GCC vector extensions, no intrinsics): the rung that runs on
// any CPU and any floating dtype (f64 included), and the fallback of the ISA-specific ones.
//
//   C[b] = act(alpha * A[b] @ B[b] + beta * C[b] + bias)      A: [M, K], B: [K, N], C: [M, N], any strides
//
// The loop structure of GotoBLAS/BLIS ("Anatomy of High-Performance Matrix Multiplication",
// Goto & van de Geijn, 2008; "BLIS: A Framework for Rapidly Instantiating BLAS
// Functionality", Van Zee & van de Geijn, 2015):
//
//   for each task = (batch b, block of mc rows)            <- OpenMP, disjoint rows of C
//     for jc over N in steps of kNC                         scratch tile Cacc [mc, nc] in acc type
//       for pc over K in steps of kKC
//         pack B[pc:+kc, jc:+nc] into kNR-wide panels       (kc x kNR each, contiguous, zero-padded)
//         pack A[rows, pc:+kc]    into kMR-tall panels      (kc x kMR each, contiguous, zero-padded)
//         for each B panel, for each A panel:
//           micro-kernel: Cacc[kMR x kNR] += Apanel @ Bpanel
//       C[rows, jc:+nc] = act(alpha * Cacc + beta * C + bias) (C read only when beta != 0)
//
// Why it is fast: the micro-kernel keeps a kMR x kNR block of C in vector registers for the
// whole kc loop, so each step loads one row of the B panel (kNR/lanes vectors) and kMR
// broadcasts of A, and issues kMR * kNR / lanes independent FMAs — enough to hide FMA latency,
// and loads stay well below one per FMA. Packing makes every micro-kernel read unit-stride
// whatever the operands' strides (transposes, slices, broadcast batches cost nothing extra),
// converts bf16/f16 to f32 once per element instead of once per use, and sizes the blocks
// for the caches: a B panel (kKC x kNR) lives in L1 across all A panels, the A block
// (mc x kKC) in L2.
//
// Accumulation is in acc_t<T> (f32 for f32/bf16/f16, f64 for f64), k ascending within each
// element, and the block sizes do not depend on the thread count: the result is bitwise the
// same for any number of threads.
//
// Cost: 2 M N K flops per batch; packing adds M K (N / kNC) + K N (M / mc) element copies.
#include "kernels/matmul.h"

#include <cstring>
#include <vector>

#include "core/parallel.h"
#include "kernels/cpu/simd_vec.h"

namespace tessel::kernels {
namespace {

// Register tile: kMR rows x (kNV vectors) columns of C. 512-bit vectors have 32 registers, so
// 8 x 2 accumulators plus 2 B vectors and a broadcast fit; 256-bit ones have 16: 6 x 2 + 3.
using simd_vec::kVecBytes;
constexpr int kMR = kVecBytes == 64 ? 8 : kVecBytes == 32 ? 6 : 4;
constexpr int kNV = 2;
constexpr int64_t kKC = 256;  // depth of one packed block
constexpr int64_t kNC = 512;  // columns of C per scratch tile
constexpr int64_t kMC = 256;  // most rows per task

template <class A>
struct Vec : simd_vec::Vec<A> {
  static constexpr int nr = kNV * simd_vec::Vec<A>::lanes;  // columns of the register tile
};

// Cacc[0:kMR, 0:nr] += Apanel (kc x kMR, k-major) @ Bpanel (kc x nr, k-major).
template <class A>
inline void micro_kernel(int64_t kc, const A* __restrict ap, const A* __restrict bp, A* __restrict c, int64_t ldc) {
  simd_vec::fma_tile<A, kMR, kNV>(kc, ap, 1, kMR, bp, Vec<A>::nr, c, ldc, true);
}

int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

template <class T>
void gemm_cpu(const MatmulParams& p) {
  using A = acc_t<T>;
  constexpr int64_t NR = Vec<A>::nr;
  const int nb = p.c.ndim - 2;
  const int64_t M = p.c.size[nb], N = p.c.size[nb + 1], K = p.a.size[nb + 1];
  if (M == 0 || N == 0) return;
  int64_t batch = 1;
  for (int d = 0; d < nb; ++d) batch *= p.c.size[d];
  if (batch == 0) return;
  const int64_t sa0 = p.a.stride[nb], sa1 = p.a.stride[nb + 1];
  const int64_t sb0 = p.b.stride[nb], sb1 = p.b.stride[nb + 1];
  const int64_t sc0 = p.c.stride[nb], sc1 = p.c.stride[nb + 1];
  const A alpha = static_cast<A>(p.alpha), beta = static_cast<A>(p.beta);

  // Rows per task: whole matrices when the batch alone keeps every thread busy, otherwise
  // split the rows so that there are at least as many tasks as threads.
  const int64_t threads = get_num_threads();
  int64_t mc = std::min(round_up(M, kMR), kMC);
  if (batch * ((M + mc - 1) / mc) < threads) {
    int64_t per_batch = (threads + batch - 1) / batch;
    mc = std::max<int64_t>(kMR, round_up((M + per_batch - 1) / per_batch, kMR));
  }
  const int64_t row_blocks = (M + mc - 1) / mc;
  const int64_t tasks = batch * row_blocks;
  const int64_t flops_per_task = 2 * mc * N * std::max<int64_t>(K, 1);
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 18) / flops_per_task);

  const int64_t kc_max = std::min(K, kKC), nc_max = round_up(std::min(N, kNC), NR);
  const int64_t* st[3] = {p.a.stride, p.b.stride, p.c.stride};
  const T* bias = p.bias.data ? p.bias.ptr<T>() : nullptr;
  const int64_t sbias = p.bias.data ? p.bias.stride[0] : 0;

  parallel_for(tasks, grain, [&](int64_t t0, int64_t t1) {
    std::vector<A> apack(static_cast<size_t>(round_up(mc, kMR) * std::max<int64_t>(kc_max, 1)));
    std::vector<A> bpack(static_cast<size_t>(nc_max * std::max<int64_t>(kc_max, 1)));
    std::vector<A> cacc(static_cast<size_t>(round_up(mc, kMR) * nc_max));
    StridedCounter<3> it(nb, p.c.size, st);
    it.seek(t0 / row_blocks);
    int64_t cur_batch = t0 / row_blocks;
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t bi = t / row_blocks, i0 = (t % row_blocks) * mc;
      for (; cur_batch < bi; ++cur_batch) it.next();
      const T* Ab = p.a.ptr<T>() + it.off[0] + i0 * sa0;
      const T* Bb = p.b.ptr<T>() + it.off[1];
      T* Cb = p.c.ptr<T>() + it.off[2] + i0 * sc0;
      T* Db = p.dact.data ? p.dact.ptr<T>() + it.off[2] + i0 * sc0 : nullptr;  // same strides as C
      const T* Mb = p.mul.data ? p.mul.ptr<T>() + it.off[2] + i0 * sc0 : nullptr;
      const int64_t m = std::min(mc, M - i0), mp = round_up(m, kMR);
      for (int64_t jc = 0; jc < N; jc += kNC) {
        const int64_t nc = std::min(kNC, N - jc), ncp = round_up(nc, NR);
        std::fill(cacc.begin(), cacc.begin() + mp * ncp, A(0));
        for (int64_t pc = 0; pc < K; pc += kKC) {
          const int64_t kc = std::min(kKC, K - pc);
          // B panels: bpack[(jp * kc + k) * NR + jj] = B[pc + k, jc + jp * NR + jj], zero past N.
          for (int64_t jp = 0; jp < ncp / NR; ++jp) {
            A* dst = bpack.data() + jp * kc * NR;
            const int64_t j0 = jc + jp * NR, jn = std::min<int64_t>(NR, N - j0);
            for (int64_t k = 0; k < kc; ++k) {
              const T* src = Bb + (pc + k) * sb0 + j0 * sb1;
              A* d = dst + k * NR;
              if (sb1 == 1 && jn == NR) {
                for (int64_t jj = 0; jj < NR; ++jj) d[jj] = static_cast<A>(src[jj]);
              } else {
                for (int64_t jj = 0; jj < jn; ++jj) d[jj] = static_cast<A>(src[jj * sb1]);
                for (int64_t jj = jn; jj < NR; ++jj) d[jj] = A(0);
              }
            }
          }
          // A panels: apack[(ip * kc + k) * kMR + ii] = A[i0 + ip * kMR + ii, pc + k], zero past m.
          for (int64_t ip = 0; ip < mp / kMR; ++ip) {
            A* dst = apack.data() + ip * kc * kMR;
            const int64_t r0 = ip * kMR, rn = std::min<int64_t>(kMR, m - r0);
            for (int64_t ii = 0; ii < kMR; ++ii) {
              if (ii < rn) {
                const T* src = Ab + (r0 + ii) * sa0 + pc * sa1;
                for (int64_t k = 0; k < kc; ++k) dst[k * kMR + ii] = static_cast<A>(src[k * sa1]);
              } else {
                for (int64_t k = 0; k < kc; ++k) dst[k * kMR + ii] = A(0);
              }
            }
          }
          for (int64_t jp = 0; jp < ncp / NR; ++jp)
            for (int64_t ip = 0; ip < mp / kMR; ++ip)
              micro_kernel<A>(kc, apack.data() + ip * kc * kMR, bpack.data() + jp * kc * NR,
                              cacc.data() + ip * kMR * ncp + jp * NR, ncp);
        }
        for (int64_t i = 0; i < m; ++i) {
          const A* src = cacc.data() + i * ncp;
          const int64_t o = i * sc0 + jc * sc1;
          T* dst = Cb + o;
          for (int64_t j = 0; j < nc; ++j) {
            A v = alpha * src[j];
            if (beta != A(0)) v += beta * static_cast<A>(dst[j * sc1]);
            if (bias) v += static_cast<A>(bias[(jc + j) * sbias]);
            dst[j * sc1] =
                epilogue_value<T>(v, p.act, Db ? Db + o + j * sc1 : nullptr, Mb ? Mb + o + j * sc1 : nullptr);
          }
        }
      }
    }
  });
}

}  // namespace

void matmul_cpu(const MatmulParams& p) {
  check_a_sums(p);
  visit_floating(p.c.dtype, "matmul", [&](auto tag) { gemm_cpu<decltype(tag)>(p); });
  matmul_a_sums_rows(p, 0, p.c.size[0]);
}

}  // namespace tessel::kernels
