// kernels/cuda/matmul.cu — the CUDA GEMM ladder's first three rungs, and the table entries of
// every CUDA matmul version (register_matmul_cuda).
//
//   C[b] = act(alpha * A[b] @ B[b] + beta * C[b] + bias)    A: [M, K], B: [K, N], C: [M, N], any strides
//
// The rungs, each a step of "How to Optimize a CUDA Matmul Kernel for cuBLAS-like Performance"
// (S. Boehm, 2022) and of CUTLASS's SGEMM hierarchy ("CUTLASS: Fast Linear Algebra in CUDA
// C++", Kerr et al., NVIDIA 2017); docs/cuda_gemm.md walks through them:
//
//   cuda_naive   one thread per element of C, the k loop reading A and B straight from global
//                memory. Each FMA needs two loads (8 bytes for f32): ~0.25 flop/byte from L2,
//                so it runs at L2 bandwidth, a few % of the FMA peak.
//   cuda_tiled   a 32 x 32 block of C per 256 threads; A and B pass through shared memory in
//                32 x 32 tiles, so each global element is read once per block instead of once per
//                thread: 32x less global traffic. Each thread keeps 4 outputs in registers; the
//                inner loop is 1 shared load of B + 4 (broadcast) of A per 4 FMAs — now shared
//                memory bandwidth bounds it.
//   cuda_regtile a 128 x 128 block of C per 256 threads, each thread an 8 x 8 micro-tile of C in
//                registers (two 4 x 4 quadrants, 64 columns apart so a warp's float4 shared loads
//                are conflict-free). Per k step a thread loads 8 A and 8 B values as four float4
//                and does 64 FMAs: 4 FMAs per shared load. The next k tile is fetched from global
//                memory into registers while the current one is multiplied (software pipelining),
//                and shared memory is double buffered so one barrier per tile suffices.
//                Arithmetic intensity from global memory: 128*128*8*2 flops / ((128+128)*8*4
//                bytes) = 32 flop/byte (f32).
//
// Global loads pick their thread-to-element mapping from which stride of the operand is 1, so
// row-major, transposed and sliced operands are all read coalesced where they can be; every
// load and store is bounds-checked (out-of-range elements read as 0), so any M, N, K works.
// Accumulation is in f32 (f64 for f64), k ascending per element, plain FMA: with TF32 off these
// f32 results equal the CPU's bitwise on small-integer inputs.
//
// Compiled but not yet verified on hardware: no GPU was available when this was written.
#include <type_traits>

#include "kernels/cuda/matmul.cuh"
#include "kernels/cuda/matmul_common.cuh"
#include "kernels/cuda/register.h"

namespace tessel::kernels {
namespace cuda_gemm {
namespace {

// ---------------------------------------------------------------- cuda_naive

constexpr int kNaiveTile = 16;  // 16 x 16 threads, one element of C each

template <class T>
__global__ void __launch_bounds__(kNaiveTile* kNaiveTile) gemm_naive(GemmArgs g) {
  using Acc = acc_of<T>;
  const int64_t mt = ceil_div(g.M, kNaiveTile), nt = ceil_div(g.N, kNaiveTile), tiles = g.batch * mt * nt;
  for (int64_t t = blockIdx.x; t < tiles; t += gridDim.x) {
    const int64_t tn = t % nt, tm = (t / nt) % mt, z = t / (nt * mt);
    const int64_t i = tm * kNaiveTile + threadIdx.y, j = tn * kNaiveTile + threadIdx.x;
    if (i >= g.M || j >= g.N) continue;
    int64_t oa, ob, oc;
    batch_offsets(g, z, oa, ob, oc);
    const T* A = static_cast<const T*>(g.a) + oa + i * g.sam;
    const T* B = static_cast<const T*>(g.b) + ob + j * g.sbn;
    Acc acc = 0;
    for (int64_t k = 0; k < g.K; ++k) acc += to_acc(A[k * g.sak]) * to_acc(B[k * g.sbk]);
    store_output(g, static_cast<T*>(g.c) + oc, i, j, acc);
  }
}

template <class T>
void launch_naive(const GemmArgs& g) {
  const int64_t tiles = g.batch * ceil_div(g.M, kNaiveTile) * ceil_div(g.N, kNaiveTile);
  gemm_naive<T><<<grid_for(tiles), dim3(kNaiveTile, kNaiveTile), 0, gemm_stream()>>>(g);
  TESSEL_CUDA_CHECK_LAUNCH("matmul (cuda_naive)");
}

// ---------------------------------------------------------------- cuda_tiled

constexpr int kTile = 32;     // C tile and k tile
constexpr int kTileRows = 8;  // thread rows: each thread computes kTile / kTileRows = 4 elements

template <class T>
__global__ void __launch_bounds__(kTile* kTileRows) gemm_tiled(GemmArgs g) {
  using Acc = acc_of<T>;
  __shared__ Acc As[kTile][kTile + 1];  // [m][k]; +1 column: transposed stores hit distinct banks
  __shared__ Acc Bs[kTile][kTile + 1];  // [k][n]
  const int tx = threadIdx.x, ty = threadIdx.y;
  // Which index runs along threadIdx.x (coalesced): k for A unless A is column-major, n for B
  // unless B is row-major in k.
  const bool a_kfast = g.sak == 1 || g.sam != 1;
  const bool b_nfast = g.sbn == 1 || g.sbk != 1;
  const int64_t mt = ceil_div(g.M, kTile), nt = ceil_div(g.N, kTile), tiles = g.batch * mt * nt;
  for (int64_t t = blockIdx.x; t < tiles; t += gridDim.x) {
    const int64_t tn = t % nt, tm = (t / nt) % mt, z = t / (nt * mt);
    const int64_t m0 = tm * kTile, n0 = tn * kTile;
    int64_t oa, ob, oc;
    batch_offsets(g, z, oa, ob, oc);
    const T* A = static_cast<const T*>(g.a) + oa;
    const T* B = static_cast<const T*>(g.b) + ob;
    Acc acc[kTile / kTileRows] = {};
    for (int64_t k0 = 0; k0 < g.K; k0 += kTile) {
      for (int q = 0; q < kTile / kTileRows; ++q) {
        const int r = ty + q * kTileRows, c = tx;
        const int am = a_kfast ? r : c, ak = a_kfast ? c : r;
        const int64_t gi = m0 + am, gk = k0 + ak;
        As[am][ak] = (gi < g.M && gk < g.K) ? to_acc(A[gi * g.sam + gk * g.sak]) : Acc(0);
        const int bk = b_nfast ? r : c, bn = b_nfast ? c : r;
        const int64_t gk2 = k0 + bk, gj = n0 + bn;
        Bs[bk][bn] = (gk2 < g.K && gj < g.N) ? to_acc(B[gk2 * g.sbk + gj * g.sbn]) : Acc(0);
      }
      __syncthreads();
#pragma unroll 8
      for (int kk = 0; kk < kTile; ++kk) {
        const Acc b = Bs[kk][tx];
#pragma unroll
        for (int q = 0; q < kTile / kTileRows; ++q) acc[q] += As[ty + q * kTileRows][kk] * b;
      }
      __syncthreads();
    }
    T* C = static_cast<T*>(g.c) + oc;
    for (int q = 0; q < kTile / kTileRows; ++q) {
      const int64_t i = m0 + ty + q * kTileRows, j = n0 + tx;
      if (i < g.M && j < g.N) store_output(g, C, i, j, acc[q]);
    }
  }
}

template <class T>
void launch_tiled(const GemmArgs& g) {
  const int64_t tiles = g.batch * ceil_div(g.M, kTile) * ceil_div(g.N, kTile);
  gemm_tiled<T><<<grid_for(tiles), dim3(kTile, kTileRows), 0, gemm_stream()>>>(g);
  TESSEL_CUDA_CHECK_LAUNCH("matmul (cuda_tiled)");
}

// ---------------------------------------------------------------- cuda_regtile

constexpr int kRBM = 128, kRBN = 128, kRBK = 8;   // block tile
constexpr int kRThreads = 256;                    // 16 x 16 threads, 8 x 8 outputs each
constexpr int kRLoads = kRBM * kRBK / kRThreads;  // A (and B) elements each thread fetches per k tile: 4
static_assert(kRBM == kRBN && kRBM * kRBK == kRLoads * kRThreads, "loader assumes square tiles");

template <class T>
__global__ void __launch_bounds__(kRThreads) gemm_regtile(GemmArgs g) {
  // [buffer][k][m] and [buffer][k][n]: a k row of either tile is contiguous, so a thread's 4
  // consecutive rows (columns) are one float4. 2 x 2 x 8 x 128 x 4 bytes = 16 KiB.
  __shared__ __align__(16) float As[2][kRBK][kRBM];
  __shared__ __align__(16) float Bs[2][kRBK][kRBN];
  const int tid = threadIdx.x;
  const int tr = tid / 16, tc = tid % 16;  // thread row and column in the 16 x 16 grid
  const bool a_kfast = g.sak == 1 || g.sam != 1;
  const bool b_nfast = g.sbn == 1 || g.sbk != 1;
  const int64_t mt = ceil_div(g.M, kRBM), nt = ceil_div(g.N, kRBN), tiles = g.batch * mt * nt;
  const int64_t ktiles = ceil_div(g.K, kRBK);

  for (int64_t t = blockIdx.x; t < tiles; t += gridDim.x) {
    const int64_t tn = t % nt, tm = (t / nt) % mt, z = t / (nt * mt);
    const int64_t m0 = tm * kRBM, n0 = tn * kRBN;
    int64_t oa, ob, oc;
    batch_offsets(g, z, oa, ob, oc);
    const T* A = static_cast<const T*>(g.a) + oa;
    const T* B = static_cast<const T*>(g.b) + ob;

    // Element e = tid + q * 256 of a tile: along k first (8 per row) when that is A's unit
    // stride, else along m (128 per row); the same for B with n.
    float ra[kRLoads], rb[kRLoads];
    auto fetch = [&](int64_t k0) {
#pragma unroll
      for (int q = 0; q < kRLoads; ++q) {
        const int e = tid + q * kRThreads;
        const int am = a_kfast ? e / kRBK : e % kRBM, ak = a_kfast ? e % kRBK : e / kRBM;
        const int64_t gi = m0 + am, gk = k0 + ak;
        ra[q] = (gi < g.M && gk < g.K) ? static_cast<float>(to_acc(A[gi * g.sam + gk * g.sak])) : 0.f;
        const int bn = b_nfast ? e % kRBN : e / kRBK, bk = b_nfast ? e / kRBN : e % kRBK;
        const int64_t gk2 = k0 + bk, gj = n0 + bn;
        rb[q] = (gk2 < g.K && gj < g.N) ? static_cast<float>(to_acc(B[gk2 * g.sbk + gj * g.sbn])) : 0.f;
      }
    };
    auto stash = [&](int buf) {
#pragma unroll
      for (int q = 0; q < kRLoads; ++q) {
        const int e = tid + q * kRThreads;
        const int am = a_kfast ? e / kRBK : e % kRBM, ak = a_kfast ? e % kRBK : e / kRBM;
        As[buf][ak][am] = ra[q];
        const int bn = b_nfast ? e % kRBN : e / kRBK, bk = b_nfast ? e / kRBN : e % kRBK;
        Bs[buf][bk][bn] = rb[q];
      }
    };

    float acc[8][8] = {};
    if (ktiles > 0) {
      fetch(0);
      stash(0);
    }
    __syncthreads();
    for (int64_t kt = 0; kt < ktiles; ++kt) {
      const int cur = static_cast<int>(kt & 1);
      if (kt + 1 < ktiles) fetch((kt + 1) * kRBK);  // global loads in flight during the FMAs below
#pragma unroll
      for (int kk = 0; kk < kRBK; ++kk) {
        float a[8], b[8];
        // Rows tr*4..+3 and 64+tr*4..+3; columns likewise: 16 threads read 16 consecutive float4.
        *reinterpret_cast<float4*>(&a[0]) = *reinterpret_cast<const float4*>(&As[cur][kk][tr * 4]);
        *reinterpret_cast<float4*>(&a[4]) = *reinterpret_cast<const float4*>(&As[cur][kk][64 + tr * 4]);
        *reinterpret_cast<float4*>(&b[0]) = *reinterpret_cast<const float4*>(&Bs[cur][kk][tc * 4]);
        *reinterpret_cast<float4*>(&b[4]) = *reinterpret_cast<const float4*>(&Bs[cur][kk][64 + tc * 4]);
#pragma unroll
        for (int x = 0; x < 8; ++x)
#pragma unroll
          for (int y = 0; y < 8; ++y) acc[x][y] = fmaf(a[x], b[y], acc[x][y]);
      }
      if (kt + 1 < ktiles) stash(cur ^ 1);
      __syncthreads();
    }

    T* C = static_cast<T*>(g.c) + oc;
#pragma unroll
    for (int x = 0; x < 8; ++x) {
      const int64_t i = m0 + (x < 4 ? tr * 4 + x : 64 + tr * 4 + (x - 4));
      if (i >= g.M) continue;
#pragma unroll
      for (int y = 0; y < 8; ++y) {
        const int64_t j = n0 + (y < 4 ? tc * 4 + y : 64 + tc * 4 + (y - 4));
        if (j < g.N) store_output(g, C, i, j, acc[x][y]);
      }
    }
  }
}

template <class T>
void launch_regtile(const GemmArgs& g) {
  const int64_t tiles = g.batch * ceil_div(g.M, kRBM) * ceil_div(g.N, kRBN);
  gemm_regtile<T><<<grid_for(tiles), kRThreads, 0, gemm_stream()>>>(g);
  TESSEL_CUDA_CHECK_LAUNCH("matmul (cuda_regtile)");
}

// ---------------------------------------------------------------- dispatch by dtype

template <template <class> class Launch>
void by_dtype(const MatmulParams& p, const char* version) {
  const GemmArgs g = make_args(p);
  if (empty_problem(g)) return;
  switch (p.c.dtype) {
    case DType::f32: return Launch<float>::run(g);
    case DType::f64: return Launch<double>::run(g);
    case DType::bf16: return Launch<__nv_bfloat16>::run(g);
    case DType::f16: return Launch<__half>::run(g);
    default: fail("matmul", version, ": unsupported dtype ", dtype_name(p.c.dtype));
  }
}

template <class T>
struct Naive {
  static void run(const GemmArgs& g) { launch_naive<T>(g); }
};
template <class T>
struct Tiled {
  static void run(const GemmArgs& g) { launch_tiled<T>(g); }
};
template <class T>
struct Regtile {
  // f64 is left to the rungs below: its 8 x 8 double tile would need 128 registers of accumulators.
  static void run(const GemmArgs& g) {
    if constexpr (std::is_same_v<T, double>)
      fail("matmul", "cuda_regtile does not take f64");
    else
      launch_regtile<T>(g);
  }
};

}  // namespace

void matmul_cuda_naive(const MatmulParams& p) { by_dtype<Naive>(p, "cuda_naive"); }
void matmul_cuda_tiled(const MatmulParams& p) { by_dtype<Tiled>(p, "cuda_tiled"); }
void matmul_cuda_regtile(const MatmulParams& p) { by_dtype<Regtile>(p, "cuda_regtile"); }
bool matmul_cuda_regtile_accepts(const MatmulParams& p) { return p.c.dtype != DType::f64; }

}  // namespace cuda_gemm

// Priorities: cuBLAS first (the dispatcher's rule: cuBLAS unless ours wins for the shape —
// docs/cuda_gemm.md says how a measurement flips it), then our ladder best-first. Every rung
// declines what it cannot take, and cuda_naive takes everything, so run() never fails for a
// valid floating GEMM on a CUDA device.
void register_matmul_cuda(Family<MatmulParams>& fam) {
  using namespace cuda_gemm;
  fam.add("cublas", DeviceType::cuda, 100, matmul_cublas, matmul_cublas_accepts);
  fam.add("cuda_wgmma", DeviceType::cuda, 50, matmul_cuda_wgmma, matmul_cuda_wgmma_accepts);
  fam.add("cuda_tc", DeviceType::cuda, 40, matmul_cuda_tc, matmul_cuda_tc_accepts);
  fam.add("cuda_regtile", DeviceType::cuda, 30, matmul_cuda_regtile, matmul_cuda_regtile_accepts);
  fam.add("cuda_tiled", DeviceType::cuda, 20, matmul_cuda_tiled);
  fam.add("cuda_naive", DeviceType::cuda, 10, matmul_cuda_naive);
}

}  // namespace tessel::kernels
