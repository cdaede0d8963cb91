// kernels/cuda/matmul_tc.cu — "cuda_tc": tensor-core GEMM with mma.sync (sm_80+), bf16/f16 in,
// f32 accumulate.
//
//   C[b] = act(alpha * A[b] @ B[b] + beta * C[b] + bias)    A: [M, K], B: [K, N] bf16 or f16
//
// Tiling (the Ampere recipe of CUTLASS, "CUTLASS: Fast Linear Algebra in CUDA C++", and of
// "Dissecting the Ampere GPU Architecture via Microbenchmarking", Abdelkhalik et al. 2022):
//   block  128 x 128 of C, k tiles of 32, 8 warps as 2 (m) x 4 (n)
//   warp   64 x 32 of C = 4 x 4 mma.sync.m16n8k16 tiles: 64 f32 accumulators per thread, in registers
//   smem   2 stages x (A tile 128 x 32 + B tile 32 x 128) in the operand's own unit-stride order,
//          rows padded by 8 elements (16 bytes) so ldmatrix's eight 16-byte row reads fall in
//          eight different bank groups (no conflicts, no swizzle needed): 40 KiB
//   global -> smem with cp.async (16-byte, L2-only .cg), the next k tile in flight while the
//          tensor cores work on the current one (double buffering); out-of-range 16-byte chunks
//          are zero-filled by cp.async's src-size operand, so any M, N, K works
//   smem -> registers with ldmatrix.x4 (.trans when the operand is stored the other way), which
//          hands each lane exactly its mma fragment: no shuffles
// Per k tile a warp issues 2 x 16 = 32 mma (each 16 x 8 x 16 = 4096 FMAs) against 2 x (4 + 2)
// ldmatrix.x4: the tensor cores, not shared memory, are the limit. Global traffic per block and
// k tile: (128 + 128) x 32 x 2 bytes for 2 x 128 x 128 x 32 flops = 64 flop/byte.
//
// Layouts: each operand must have one unit stride (A: along k or m; B: along k or n) and the other
// stride, the batch strides and the base address aligned to 16 bytes (8 elements); accepts()
// declines anything else, and the ladder runs cuda_regtile instead. All four transpose
// combinations are separate template instances. The epilogue (alpha, beta, bias, activation) is
// applied to the accumulators before the single store of C, which may have any strides.
//
// What is left for Hopper (sm_90a: wgmma.mma_async with TMA loads, warp specialization): see
// docs/cuda_gemm.md, "What remains".
//
// Compiled but not yet verified on hardware: no GPU was available when this was written.
#include <cstdint>
#include <type_traits>

#include "kernels/cuda/matmul.cuh"
#include "kernels/cuda/matmul_common.cuh"

namespace tessel::kernels::cuda_gemm {
namespace {

constexpr int kBM = 128, kBN = 128, kBK = 32;
constexpr int kThreads = 256;         // 8 warps
constexpr int kWarpsM = 2;            // warp grid 2 x 4
constexpr int kWM = kBM / kWarpsM;    // 64 rows of C per warp
constexpr int kWN = kBN / 4;          // 32 columns of C per warp
constexpr int kMI = kWM / 16;         // 4 mma tiles down
constexpr int kNI = kWN / 8;          // 4 mma tiles across
constexpr int kPad = 8;               // elements of padding per smem row
constexpr int kPitchK = kBK + kPad;   // row pitch when a tile is stored k-contiguous: 40
constexpr int kPitchMN = kBM + kPad;  // row pitch when stored m- (n-) contiguous: 136
constexpr int kTileElems = (kBM * kPitchK > kBK * kPitchMN) ? kBM * kPitchK : kBK * kPitchMN;  // 5120
static_assert(kBM == kBN, "one tile size serves A and B");

// --- PTX wrappers (sm_80+) -------------------------------------------------

__device__ inline uint32_t smem_addr(const void* p) { return static_cast<uint32_t>(__cvta_generic_to_shared(p)); }

// 16 bytes global -> shared, of which the first `src_bytes` are read and the rest zero-filled.
__device__ inline void cp_async_16(void* dst, const void* src, int src_bytes) {
#if __CUDA_ARCH__ >= 800
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src), "r"(src_bytes));
#endif
}
__device__ inline void cp_async_commit() {
#if __CUDA_ARCH__ >= 800
  asm volatile("cp.async.commit_group;\n" ::);
#endif
}
template <int N>
__device__ inline void cp_async_wait() {
#if __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
#endif
}

template <bool kTrans>
__device__ inline void ldmatrix_x4(uint32_t (&r)[4], const void* p) {
#if __CUDA_ARCH__ >= 800
  if constexpr (kTrans)
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(p)));
  else
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(p)));
#endif
}

// d = a (16 x 16, row) @ b (16 x 8, col) + d, f32 accumulators.
template <class T>
__device__ inline void mma_16816(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
#if __CUDA_ARCH__ >= 800
  if constexpr (std::is_same_v<T, __nv_bfloat16>)
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  else
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#endif
}

// --- the kernel ----------------------------------------------------------------
//
// kAK: A is k-contiguous (sak == 1), stored in smem as [m][k]; else m-contiguous, stored [k][m].
// kBK_: B is k-contiguous (sbk == 1, e.g. a Linear weight), stored [n][k]; else n-contiguous, [k][n].
template <class T, bool kAK, bool kBKc>
__global__ void __launch_bounds__(kThreads) gemm_tc(GemmArgs g) {
#if __CUDA_ARCH__ >= 800
  __shared__ __align__(128) T As[2][kTileElems];
  __shared__ __align__(128) T Bs[2][kTileElems];
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const int wm = warp % kWarpsM, wn = warp / kWarpsM;
  const int64_t mt = ceil_div(g.M, kBM), nt = ceil_div(g.N, kBN), tiles = g.batch * mt * nt;
  const int64_t ktiles = ceil_div(g.K, kBK);

  for (int64_t t = blockIdx.x; t < tiles; t += gridDim.x) {
    const int64_t tn = t % nt, tm = (t / nt) % mt, z = t / (nt * mt);
    const int64_t m0 = tm * kBM, n0 = tn * kBN;
    int64_t oa, ob, oc;
    batch_offsets(g, z, oa, ob, oc);
    const T* A = static_cast<const T*>(g.a) + oa;
    const T* B = static_cast<const T*>(g.b) + ob;

    // One stage: 512 16-byte chunks of A and 512 of B, two of each per thread.
    auto load_stage = [&](int s, int64_t k0) {
#pragma unroll
      for (int q = 0; q < 2; ++q) {
        const int c = tid + q * kThreads;
        {  // A
          int64_t valid;
          const T* src;
          T* dst;
          if constexpr (kAK) {  // [m][k]: 4 chunks per row of 32 k
            const int r = c / 4, kc = (c % 4) * 8;
            const int64_t gi = m0 + r, gk = k0 + kc;
            valid = gi < g.M ? g.K - gk : 0;
            src = A + gi * g.sam + gk;
            dst = &As[s][r * kPitchK + kc];
          } else {  // [k][m]: 16 chunks per row of 128 m
            const int r = c / 16, mc = (c % 16) * 8;
            const int64_t gk = k0 + r, gi = m0 + mc;
            valid = gk < g.K ? g.M - gi : 0;
            src = A + gk * g.sak + gi;
            dst = &As[s][r * kPitchMN + mc];
          }
          valid = valid < 0 ? 0 : (valid > 8 ? 8 : valid);
          cp_async_16(dst, valid > 0 ? src : A, static_cast<int>(valid) * 2);
        }
        {  // B
          int64_t valid;
          const T* src;
          T* dst;
          if constexpr (kBKc) {  // [n][k]
            const int r = c / 4, kc = (c % 4) * 8;
            const int64_t gj = n0 + r, gk = k0 + kc;
            valid = gj < g.N ? g.K - gk : 0;
            src = B + gj * g.sbn + gk;
            dst = &Bs[s][r * kPitchK + kc];
          } else {  // [k][n]
            const int r = c / 16, nc = (c % 16) * 8;
            const int64_t gk = k0 + r, gj = n0 + nc;
            valid = gk < g.K ? g.N - gj : 0;
            src = B + gk * g.sbk + gj;
            dst = &Bs[s][r * kPitchMN + nc];
          }
          valid = valid < 0 ? 0 : (valid > 8 ? 8 : valid);
          cp_async_16(dst, valid > 0 ? src : B, static_cast<int>(valid) * 2);
        }
      }
    };

    float acc[kMI][kNI][4] = {};
    if (ktiles > 0) load_stage(0, 0);
    cp_async_commit();
    for (int64_t kt = 0; kt < ktiles; ++kt) {
      const int s = static_cast<int>(kt & 1);
      if (kt + 1 < ktiles) {
        load_stage(s ^ 1, (kt + 1) * kBK);
        cp_async_commit();
        cp_async_wait<1>();  // stage s has landed; stage s ^ 1 may still be in flight
      } else {
        cp_async_wait<0>();
      }
      __syncthreads();
#pragma unroll
      for (int kk = 0; kk < kBK / 16; ++kk) {
        uint32_t af[kMI][4], bfr[kNI][2];
        const int r = lane % 8, j = lane / 8;  // lanes 8j..8j+7 address matrix j's rows
#pragma unroll
        for (int mi = 0; mi < kMI; ++mi) {
          const int mb = wm * kWM + mi * 16;
          if constexpr (kAK)  // matrices (m 0-7 | 8-15) x (k 0-7 | 8-15), in register order
            ldmatrix_x4<false>(af[mi], &As[s][(mb + (j % 2) * 8 + r) * kPitchK + kk * 16 + (j / 2) * 8]);
          else
            ldmatrix_x4<true>(af[mi], &As[s][(kk * 16 + (j / 2) * 8 + r) * kPitchMN + mb + (j % 2) * 8]);
        }
#pragma unroll
        for (int ni = 0; ni < kNI; ni += 2) {
          uint32_t x[4];  // (ni, k 0-7), (ni, k 8-15), (ni + 1, k 0-7), (ni + 1, k 8-15)
          const int nb = wn * kWN + (ni + j / 2) * 8;
          if constexpr (kBKc)
            ldmatrix_x4<false>(x, &Bs[s][(nb + r) * kPitchK + kk * 16 + (j % 2) * 8]);
          else
            ldmatrix_x4<true>(x, &Bs[s][(kk * 16 + (j % 2) * 8 + r) * kPitchMN + nb]);
          bfr[ni][0] = x[0];
          bfr[ni][1] = x[1];
          bfr[ni + 1][0] = x[2];
          bfr[ni + 1][1] = x[3];
        }
#pragma unroll
        for (int mi = 0; mi < kMI; ++mi)
#pragma unroll
          for (int ni = 0; ni < kNI; ++ni) mma_16816<T>(acc[mi][ni], af[mi], bfr[ni]);
      }
      __syncthreads();  // every warp is done with stage s before the next iteration refills it
    }

    // Accumulator (mi, ni, e): row g (+8 for e >= 2), columns 2 t + (e % 2), g = lane / 4, t = lane % 4.
    T* C = static_cast<T*>(g.c) + oc;
    const int gr = lane / 4, tc = lane % 4;
#pragma unroll
    for (int mi = 0; mi < kMI; ++mi)
#pragma unroll
      for (int ni = 0; ni < kNI; ++ni)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int64_t i = m0 + wm * kWM + mi * 16 + gr + (e / 2) * 8;
          const int64_t jj = n0 + wn * kWN + ni * 8 + tc * 2 + (e % 2);
          if (i < g.M && jj < g.N) store_output(g, C, i, jj, acc[mi][ni][e]);
        }
  }
#else
  __trap();  // accepts() declines devices below sm_80; this is never launched there
#endif
}

template <class T, bool kAK, bool kBKc>
void launch(const GemmArgs& g) {
  const int64_t tiles = g.batch * ceil_div(g.M, kBM) * ceil_div(g.N, kBN);
  gemm_tc<T, kAK, kBKc><<<grid_for(tiles), kThreads, 0, gemm_stream()>>>(g);
  TESSEL_CUDA_CHECK_LAUNCH("matmul (cuda_tc)");
}

template <class T>
void launch_layout(const GemmArgs& g, bool a_k, bool b_k) {
  if (a_k && b_k) return launch<T, true, true>(g);
  if (a_k) return launch<T, true, false>(g);
  if (b_k) return launch<T, false, true>(g);
  launch<T, false, false>(g);
}

// Which of an operand's strides is the unit one: along k ("k-contiguous") or the other dim.
// A size-1 dim's stride is irrelevant. The other stride must keep 16-byte chunks aligned.
bool layout_of(int64_t rows_other, int64_t K, int64_t s_other, int64_t s_k, bool& k_contig) {
  const bool other_ok = rows_other == 1 || s_other % 8 == 0;
  if ((s_k == 1 || K == 1) && other_ok) {
    k_contig = true;
    return true;
  }
  if ((s_other == 1 || rows_other == 1) && (K == 1 || s_k % 8 == 0)) {
    k_contig = false;
    return true;
  }
  return false;
}

}  // namespace

bool matmul_cuda_tc_accepts(const MatmulParams& p) {
  if (p.c.dtype != DType::bf16 && p.c.dtype != DType::f16) return false;
  const GemmArgs g = make_args(p);
  if (empty_problem(g)) return true;
  bool a_k = false, b_k = false;
  if (!layout_of(g.M, g.K, g.sam, g.sak, a_k) || !layout_of(g.N, g.K, g.sbn, g.sbk, b_k)) return false;
  if (reinterpret_cast<uintptr_t>(g.a) % 16 != 0 || reinterpret_cast<uintptr_t>(g.b) % 16 != 0) return false;
  return batch_strides_aligned(g, g.bsa) && batch_strides_aligned(g, g.bsb) && device_compute_capability() >= 80;
}

void matmul_cuda_tc(const MatmulParams& p) {
  check(matmul_cuda_tc_accepts(p), "matmul", "cuda_tc needs bf16/f16 operands with a unit stride and 16-byte ",
        "aligned rows on an sm_80+ device");
  const GemmArgs g = make_args(p);
  if (empty_problem(g)) return;
  bool a_k = false, b_k = false;
  layout_of(g.M, g.K, g.sam, g.sak, a_k);
  layout_of(g.N, g.K, g.sbn, g.sbk, b_k);
  if (p.c.dtype == DType::bf16)
    launch_layout<__nv_bfloat16>(g, a_k, b_k);
  else
    launch_layout<__half>(g, a_k, b_k);
}

}  // namespace tessel::kernels::cuda_gemm
