// kernels/cuda/matmul_wgmma.cu — "cuda_wgmma": Hopper warpgroup MMA (wgmma.mma_async, sm_90a),
// bf16/f16 in, f32 accumulate.
//
//   C[b] = act(alpha * A[b] @ B[b] + beta * C[b] + bias)    A: [M, K] k-contiguous, B: [K, N] k-contiguous
//                                                           (B stored [N, K]: a Linear weight)
//
// Hopper's tensor cores are fed by warpgroups (4 warps, 128 threads) that issue one
// asynchronous MMA of 64 x N x 16 straight from shared memory: no ldmatrix, no fragments in
// registers except the accumulators, and the issuing threads are free while it runs. mma.sync
// (cuda_tc) cannot reach more than ~2/3 of the H100's dense bf16 peak; wgmma is the way to the rest.
//
// Tiling:
//   block  128 x 128 of C, k tiles of 64, 2 warpgroups (256 threads), one per 64-row half
//   wgmma  m64n128k16: each warpgroup does 4 per k tile; 64 f32 accumulators per thread
//   smem   4 stages x (A 128 x 64 + B 128 x 64) bf16 = 128 KiB (dynamic shared memory), in the
//          canonical no-swizzle K-major layout of wgmma: "core matrices" of 8 rows x 16 bytes
//          stored as 128 contiguous bytes, K-neighbours 128 bytes apart (the descriptor's
//          leading byte offset, LBO) and 8-row groups 1024 bytes apart (stride byte offset, SBO)
//   global -> smem with 16-byte cp.async, each chunk exactly one core-matrix row, 3 k tiles in
//          flight ahead of the one being multiplied; out-of-range chunks zero-filled (any M, N, K)
// Shared-memory descriptors: start address >> 4 (bits 0-13), LBO >> 4 (16-29), SBO >> 4
// (32-45), layout type 0 = no swizzle (bits 62-63) — PTX ISA "Matrix Descriptor Format".
// cp.async writes through the generic proxy and wgmma reads through the async proxy, so every
// thread fences (fence.proxy.async.shared::cta) between its last write and the barrier.
//
// Simplifications against the fastest Hopper GEMMs (CUTLASS 3 "warp-specialized" kernels,
// "FlashAttention-3" by Shah et al. 2024 for the technique): no TMA (cp.async issued by all
// threads instead of one producer warp), no 128B swizzle (the no-swizzle layout costs shared
// bandwidth), and each k tile's wgmma group is waited for before the next is issued. See
// docs/cuda_gemm.md "What remains" for the steps to TMA + warp specialization.
//
// This file is compiled ONLY for sm_90a (its own object library in CMakeLists.txt: wgmma exists
// on no other target); accepts() requires compute capability 9.0 at run time.
//
// Compiled but not yet verified on hardware: no GPU was available when this was written.
#include <cstdint>
#include <type_traits>

#include "kernels/cuda/matmul.cuh"
#include "kernels/cuda/matmul_common.cuh"

// nvcc defines __CUDA_ARCH_FEAT_SM90_ALL when generating code for sm_90a.
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define TESSEL_WGMMA_DEVICE 1
#else
#define TESSEL_WGMMA_DEVICE 0
#endif

namespace tessel::kernels::cuda_gemm {
namespace {

constexpr int kWBM = 128, kWBN = 128, kWBK = 64;
constexpr int kWStages = 4;
constexpr int kWThreads = 256;                                     // 2 warpgroups
constexpr int kTileElemsW = kWBM * kWBK;                           // one operand tile: 8192 elements
constexpr int kStageElems = 2 * kTileElemsW;                       // A then B
constexpr size_t kSmemBytes = size_t{kWStages} * kStageElems * 2;  // 128 KiB
static_assert(kWBM == kWBN, "one tile layout serves A and B");

#if TESSEL_WGMMA_DEVICE                        // the device helpers exist only where the kernel body does
constexpr int kCoreElems = 64;                 // 8 rows x 8 elements (16 bytes)
constexpr int kLBO = kCoreElems;               // elements between K-neighbour core matrices
constexpr int kSBO = (kWBK / 8) * kCoreElems;  // elements between 8-row groups: 512

__device__ inline uint32_t smem_u32(const void* p) { return static_cast<uint32_t>(__cvta_generic_to_shared(p)); }

// Element (row, k) of a 128 x 64 tile in the no-swizzle K-major core-matrix layout.
__device__ inline int core_offset(int row, int k) {
  return (row / 8) * kSBO + (k / 8) * kLBO + (row % 8) * 8 + (k % 8);
}

__device__ inline uint64_t smem_desc(const void* p) {
  const uint64_t addr = smem_u32(p);
  return ((addr & 0x3FFFF) >> 4) | (uint64_t{(kLBO * 2) >> 4} << 16) | (uint64_t{(kSBO * 2) >> 4} << 32);
}

__device__ inline void cp_async_16w(void* dst, const void* src, int src_bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_u32(dst)), "l"(src), "r"(src_bytes));
}

template <class T>
__device__ inline void wgmma_m64n128k16(float (&d)[64], uint64_t da, uint64_t db) {
#if TESSEL_WGMMA_DEVICE
#define TESSEL_WGMMA_ASM(TY)                                                                                           \
  asm volatile(                                                                                                        \
      "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"                                                                     \
      "wgmma.mma_async.sync.aligned.m64n128k16.f32." TY "." TY                                                         \
      " {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, "    \
      "%23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, " \
      "%45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "               \
      "%64, %65, p, 1, 1, 0, 0;\n}\n"                                                                                  \
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]),    \
        "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]),         \
        "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]),        \
        "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]),        \
        "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]),        \
        "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]),        \
        "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]),        \
        "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])                      \
      : "l"(da), "l"(db), "r"(1))
  if constexpr (std::is_same_v<T, __nv_bfloat16>)
    TESSEL_WGMMA_ASM("bf16");
  else
    TESSEL_WGMMA_ASM("f16");
#undef TESSEL_WGMMA_ASM
#endif
}

// Pins the accumulators in place around the asynchronous MMAs: without it the compiler may move
// a read of acc before the wgmma.wait_group that makes it valid (CUTLASS: warpgroup_fence_operand).
__device__ inline void fence_accumulators(float (&d)[64]) {
#pragma unroll
  for (int i = 0; i < 64; ++i) asm volatile("" : "+f"(d[i])::"memory");
}

#endif  // TESSEL_WGMMA_DEVICE

// The kernel. Requirements (checked by accepts()): A and B k-contiguous, leading strides,
// batch strides and base addresses 16-byte aligned.
template <class T>
__global__ void __launch_bounds__(kWThreads) gemm_wgmma(GemmArgs g) {
#if TESSEL_WGMMA_DEVICE
  extern __shared__ __align__(1024) unsigned char smem_raw[];
  T* smem = reinterpret_cast<T*>(smem_raw);
  const int tid = threadIdx.x, wg = tid / 128, lane = tid % 32, warp_in_wg = (tid % 128) / 32;
  const int64_t mt = ceil_div(g.M, kWBM), nt = ceil_div(g.N, kWBN), tiles = g.batch * mt * nt;
  const int64_t ktiles = ceil_div(g.K, kWBK);

  for (int64_t t = blockIdx.x; t < tiles; t += gridDim.x) {
    const int64_t tn = t % nt, tm = (t / nt) % mt, z = t / (nt * mt);
    const int64_t m0 = tm * kWBM, n0 = tn * kWBN;
    int64_t oa, ob, oc;
    batch_offsets(g, z, oa, ob, oc);
    const T* A = static_cast<const T*>(g.a) + oa;
    const T* B = static_cast<const T*>(g.b) + ob;

    // A stage: 1024 chunks of A and 1024 of B; chunk c -> row (c % 8) + 8 (c / 64), k chunk
    // (c / 8) % 8, so 8 consecutive threads fill one 128-byte core matrix (no bank conflicts).
    auto load_stage = [&](int slot, int64_t k0) {
      T* As = smem + slot * kStageElems;
      T* Bs = As + kTileElemsW;
#pragma unroll
      for (int q = 0; q < 4; ++q) {
        const int c = tid + q * kWThreads;
        const int row = (c % 8) + 8 * (c / 64), kc = ((c / 8) % 8) * 8;
        const int64_t gk = k0 + kc;
        const int64_t kleft = g.K - gk;
        const int64_t ka = kleft < 0 ? 0 : (kleft > 8 ? 8 : kleft);
        const int64_t gi = m0 + row, gj = n0 + row;
        const int64_t va = gi < g.M ? ka : 0, vb = gj < g.N ? ka : 0;
        cp_async_16w(As + core_offset(row, kc), va > 0 ? A + gi * g.sam + gk : A, static_cast<int>(va) * 2);
        cp_async_16w(Bs + core_offset(row, kc), vb > 0 ? B + gj * g.sbn + gk : B, static_cast<int>(vb) * 2);
      }
    };

    float acc[64];
#pragma unroll
    for (int i = 0; i < 64; ++i) acc[i] = 0.f;

#pragma unroll
    for (int s = 0; s < kWStages - 1; ++s) {
      if (s < ktiles) load_stage(s, s * int64_t{kWBK});
      asm volatile("cp.async.commit_group;\n" ::);
    }
    for (int64_t kt = 0; kt < ktiles; ++kt) {
      asm volatile("cp.async.wait_group %0;\n" ::"n"(kWStages - 2));  // this thread's chunks of tile kt landed
      asm volatile("fence.proxy.async.shared::cta;\n" ::);            // visible to the async proxy (wgmma)
      __syncthreads();  // everyone's chunks landed; everyone finished the wgmma that read the slot refilled next
      const int64_t next = kt + kWStages - 1;
      if (next < ktiles) load_stage(static_cast<int>(next % kWStages), next * kWBK);
      asm volatile("cp.async.commit_group;\n" ::);

      const T* As = smem + static_cast<int>(kt % kWStages) * kStageElems;
      const T* Bs = As + kTileElemsW;
      fence_accumulators(acc);
      asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#pragma unroll
      for (int kk = 0; kk < kWBK / 16; ++kk) {
        // 64 rows of this warpgroup (8 core-matrix groups) x 16 k (2 core matrices); B all 128 n.
        const uint64_t da = smem_desc(As + (wg * 64 / 8) * kSBO + kk * 2 * kLBO);
        const uint64_t db = smem_desc(Bs + kk * 2 * kLBO);
        wgmma_m64n128k16<T>(acc, da, db);
      }
      asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
      asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory");
      fence_accumulators(acc);
    }
    asm volatile("cp.async.wait_group 0;\n" ::);
    __syncthreads();  // the next tile's prologue must not overwrite stages still being read

    // Accumulator j of a thread: row 16 warp + lane / 4 (+ 8 when (j / 2) is odd), column
    // 8 (j / 4) + 2 (lane % 4) + (j % 2) — the m16n8 C-fragment layout repeated across N.
    T* C = static_cast<T*>(g.c) + oc;
#pragma unroll
    for (int j = 0; j < 64; ++j) {
      const int64_t i = m0 + wg * 64 + warp_in_wg * 16 + lane / 4 + 8 * ((j / 2) % 2);
      const int64_t jj = n0 + 8 * (j / 4) + 2 * (lane % 4) + (j % 2);
      if (i < g.M && jj < g.N) store_output(g, C, i, jj, acc[j]);
    }
  }
#else
  __trap();  // only the sm_90a build of this kernel does work; accepts() never launches another
#endif
}

template <class T>
void launch_wgmma(const GemmArgs& g) {
  // Opt in to 128 KiB of dynamic shared memory. The attribute is per device, so it is set on
  // every launch (a cheap host call) rather than once per process.
  TESSEL_CUDA_CHECK(
      cudaFuncSetAttribute(gemm_wgmma<T>, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(kSmemBytes)));
  const int64_t tiles = g.batch * ceil_div(g.M, kWBM) * ceil_div(g.N, kWBN);
  gemm_wgmma<T><<<grid_for(tiles), kWThreads, kSmemBytes, gemm_stream()>>>(g);
  TESSEL_CUDA_CHECK_LAUNCH("matmul (cuda_wgmma)");
}

}  // namespace

bool matmul_cuda_wgmma_accepts(const MatmulParams& p) {
  if (p.c.dtype != DType::bf16 && p.c.dtype != DType::f16) return false;
  const GemmArgs g = make_args(p);
  if (empty_problem(g)) return true;
  const bool a_ok = (g.sak == 1 || g.K == 1) && (g.M == 1 || g.sam % 8 == 0);
  const bool b_ok = (g.sbk == 1 || g.K == 1) && (g.N == 1 || g.sbn % 8 == 0);
  if (!a_ok || !b_ok) return false;
  if (reinterpret_cast<uintptr_t>(g.a) % 16 != 0 || reinterpret_cast<uintptr_t>(g.b) % 16 != 0) return false;
  return batch_strides_aligned(g, g.bsa) && batch_strides_aligned(g, g.bsb) &&
         device_compute_capability() == 90;  // sm_90a code runs on 9.0 alone
}

void matmul_cuda_wgmma(const MatmulParams& p) {
  check(matmul_cuda_wgmma_accepts(p), "matmul",
        "cuda_wgmma needs bf16/f16 operands that are k-contiguous (A [M, K] row-major, B stored [N, K]) with "
        "16-byte aligned rows, on a compute capability 9.0 device");
  const GemmArgs g = make_args(p);
  if (empty_problem(g)) return;
  if (p.c.dtype == DType::bf16)
    launch_wgmma<__nv_bfloat16>(g);
  else
    launch_wgmma<__half>(g);
}

}  // namespace tessel::kernels::cuda_gemm
