// kernels/cpu/matmul_blocked.cpp — "cpu_blocked": the cache-blocked GEMM, plain C++.
//
//   C[b] = act(alpha * A[b] @ B[b] + beta * C[b] + bias)     (kernels/matmul.h), any strides
//
// The rung between the triple loop and the packed kernels (docs/gemm.md). Two changes to ref:
//  1. loop order i-k-j: the innermost loop walks a row of B and a row of the accumulator with
//     unit stride (when B's rows are contiguous), so the compiler vectorizes it, and each A
//     value is loaded once per row instead of once per output element;
//  2. blocking: a kMB x kNB block of C accumulates in a small scratch array over kKB-deep
//     slices of K, so the B slice (kKB x kNB, 128 KiB for f32) stays in L2 while every row of
//     the block reuses it, instead of streaming all of B from memory for every row of C.
// What it still lacks (and the packed versions add): a register tile (each FMA here loads and
// stores its accumulator), unit-stride reads whatever the operand strides, and panels laid
// out for the micro-kernel. Rows blocks run in parallel (OpenMP) over batch x row blocks.
//
// Cost: 2 M N K flops; B is read M / kMB times, A and C once per column block.
#include <vector>

#include "core/parallel.h"
#include "kernels/matmul.h"

namespace tessel::kernels {
namespace {

constexpr int64_t kMB = 64, kNB = 256, kKB = 128;

template <class T>
void gemm_blocked(const MatmulParams& p) {
  using A = acc_t<T>;
  const int nb = p.c.ndim - 2;
  const int64_t M = p.c.size[nb], N = p.c.size[nb + 1], K = p.a.size[nb + 1];
  int64_t batch = 1;
  for (int d = 0; d < nb; ++d) batch *= p.c.size[d];
  if (M == 0 || N == 0 || batch == 0) return;
  const int64_t sa0 = p.a.stride[nb], sa1 = p.a.stride[nb + 1];
  const int64_t sb0 = p.b.stride[nb], sb1 = p.b.stride[nb + 1];
  const int64_t sc0 = p.c.stride[nb], sc1 = p.c.stride[nb + 1];
  const A alpha = static_cast<A>(p.alpha), beta = static_cast<A>(p.beta);
  const T* bias = p.bias.data ? p.bias.ptr<T>() : nullptr;
  const int64_t sbias = p.bias.data ? p.bias.stride[0] : 0;
  const int64_t row_blocks = (M + kMB - 1) / kMB, tasks = batch * row_blocks;
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 20) / std::max<int64_t>(1, 2 * kMB * N * K));
  const int64_t* st[3] = {p.a.stride, p.b.stride, p.c.stride};

  parallel_for(tasks, grain, [&](int64_t t0, int64_t t1) {
    std::vector<A> acc(static_cast<size_t>(kMB * kNB));
    StridedCounter<3> it(nb, p.c.size, st);
    for (int64_t t = t0; t < t1; ++t) {
      it.seek(t / row_blocks);
      const int64_t i0 = (t % row_blocks) * kMB, mb = std::min(kMB, M - i0);
      const T* Ab = p.a.ptr<T>() + it.off[0] + i0 * sa0;
      const T* Bb = p.b.ptr<T>() + it.off[1];
      T* Cb = p.c.ptr<T>() + it.off[2] + i0 * sc0;
      T* Db = p.dact.data ? p.dact.ptr<T>() + it.off[2] + i0 * sc0 : nullptr;  // same strides as C
      const T* Mb = p.mul.data ? p.mul.ptr<T>() + it.off[2] + i0 * sc0 : nullptr;
      for (int64_t j0 = 0; j0 < N; j0 += kNB) {
        const int64_t nbk = std::min(kNB, N - j0);
        std::fill(acc.begin(), acc.end(), A(0));
        for (int64_t k0 = 0; k0 < K; k0 += kKB) {
          const int64_t kb = std::min(kKB, K - k0);
          for (int64_t i = 0; i < mb; ++i) {
            A* __restrict row = acc.data() + i * kNB;
            for (int64_t k = k0; k < k0 + kb; ++k) {
              const A a = static_cast<A>(Ab[i * sa0 + k * sa1]);
              const T* __restrict brow = Bb + k * sb0 + j0 * sb1;
              if (sb1 == 1)
                for (int64_t j = 0; j < nbk; ++j) row[j] += a * static_cast<A>(brow[j]);
              else
                for (int64_t j = 0; j < nbk; ++j) row[j] += a * static_cast<A>(brow[j * sb1]);
            }
          }
        }
        for (int64_t i = 0; i < mb; ++i)
          for (int64_t j = 0; j < nbk; ++j) {
            const int64_t o = i * sc0 + (j0 + j) * sc1;
            T& c = Cb[o];
            A v = alpha * acc[i * kNB + j];
            if (beta != A(0)) v += beta * static_cast<A>(c);
            if (bias) v += static_cast<A>(bias[(j0 + j) * sbias]);
            c = epilogue_value<T>(v, p.act, Db ? Db + o : nullptr, Mb ? Mb + o : nullptr);
          }
      }
    }
  });
}

}  // namespace

void matmul_blocked(const MatmulParams& p) {
  check_a_sums(p);
  visit_floating(p.c.dtype, "matmul", [&](auto tag) { gemm_blocked<decltype(tag)>(p); });
  matmul_a_sums_rows(p, 0, p.c.size[0]);
}

}  // namespace tessel::kernels
