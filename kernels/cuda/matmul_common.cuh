// kernels/cuda/matmul_common.cuh — what every CUDA GEMM rung shares: the problem as one
// by-value kernel argument, the batch walk, element conversions and the fused epilogue.
//
//   C[b][i, j] = act(alpha * sum_k A[b][i, k] B[b][k, j] + beta * C[b][i, j] + bias[j])
//
// A Buf's matrix strides are kept as they are (a transpose is swapped strides, as on the CPU),
// and its batch dims are walked with their own strides, so every rung takes any view the op
// passes without a copy. The epilogue is the CPU's (kernels/matmul.h apply_activation, host and
// device code); beta == 0 never reads C (BLAS semantics: NaN-filled C is fine).
//
// Compiled but not yet verified on hardware: no GPU was available when this was written.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <map>
#include <mutex>

#include "core/cuda/check.h"
#include "core/cuda/convert.cuh"
#include "core/cuda/stream.h"
#include "kernels/matmul.h"

namespace tessel::kernels::cuda_gemm {

constexpr int kMaxBatchDims = kMaxDims - 2;

// The whole problem, passed by value to every kernel (~400 bytes of kernel parameters).
struct GemmArgs {
  int64_t M = 0, N = 0, K = 0;
  int64_t batch = 1;  // product of the batch sizes
  int nb = 0;         // number of batch dims
  int64_t bsize[kMaxBatchDims] = {};
  int64_t bsa[kMaxBatchDims] = {}, bsb[kMaxBatchDims] = {}, bsc[kMaxBatchDims] = {};  // batch strides
  int64_t sam = 0, sak = 0;  // A[i, k] at a + i * sam + k * sak
  int64_t sbk = 0, sbn = 0;  // B[k, j] at b + k * sbk + j * sbn
  int64_t scm = 0, scn = 0;  // C[i, j] at c + i * scm + j * scn
  int64_t sbias = 0;
  const void* a = nullptr;
  const void* b = nullptr;
  void* c = nullptr;
  const void* bias = nullptr;  // null: no bias
  double alpha = 1, beta = 0;
  Activation act = Activation::none;
};

// Reads the op's params into GemmArgs (host side).
inline GemmArgs make_args(const MatmulParams& p) {
  check(p.dact.data == nullptr && p.mul.data == nullptr && p.a_sums.data == nullptr, "matmul",
        "the operands MatmulParams::dact, ::mul and ::a_sums are CPU-only");
  GemmArgs g;
  const int nb = p.c.ndim - 2;
  g.nb = nb;
  g.M = p.c.size[nb];
  g.N = p.c.size[nb + 1];
  g.K = p.a.size[nb + 1];
  for (int d = 0; d < nb; ++d) {
    g.bsize[d] = p.c.size[d];
    g.batch *= p.c.size[d];
    g.bsa[d] = p.a.stride[d];
    g.bsb[d] = p.b.stride[d];
    g.bsc[d] = p.c.stride[d];
  }
  g.sam = p.a.stride[nb];
  g.sak = p.a.stride[nb + 1];
  g.sbk = p.b.stride[nb];
  g.sbn = p.b.stride[nb + 1];
  g.scm = p.c.stride[nb];
  g.scn = p.c.stride[nb + 1];
  g.a = p.a.data;
  g.b = p.b.data;
  g.c = p.c.data;
  if (p.bias.data) {
    g.bias = p.bias.data;
    g.sbias = p.bias.stride[0];
  }
  g.alpha = p.alpha;
  g.beta = p.beta;
  g.act = p.act;
  return g;
}

// True when there is nothing to compute (an empty C). K == 0 is NOT empty: C = act(beta C + bias).
inline bool empty_problem(const GemmArgs& g) { return g.M == 0 || g.N == 0 || g.batch == 0; }

// The element offsets of A[z], B[z], C[z] for flat batch index z (row-major over the batch dims).
__device__ inline void batch_offsets(const GemmArgs& g, int64_t z, int64_t& oa, int64_t& ob, int64_t& oc) {
  oa = ob = oc = 0;
  for (int d = g.nb - 1; d >= 0; --d) {
    const int64_t idx = z % g.bsize[d];
    z /= g.bsize[d];
    oa += idx * g.bsa[d];
    ob += idx * g.bsb[d];
    oc += idx * g.bsc[d];
  }
}

// Storage type -> accumulation type, and the conversions both ways: core/cuda/convert.cuh's,
// which also take CUDA's own __nv_bfloat16 and __half (the tensor-core rungs' operand types).
template <class T>
using acc_of = ::tessel::cuda::dev_acc_t<T>;
using ::tessel::cuda::from_acc;
using ::tessel::cuda::to_acc;

// Writes one finished element: C[i, j] = act(alpha acc + beta C[i, j] + bias[j]). `c` points at C[z].
template <class T>
__device__ inline void store_output(const GemmArgs& g, T* c, int64_t i, int64_t j, acc_of<T> acc) {
  using Acc = acc_of<T>;
  T* p = c + i * g.scm + j * g.scn;
  Acc v = static_cast<Acc>(g.alpha) * acc;
  if (g.beta != 0) v += static_cast<Acc>(g.beta) * to_acc(*p);
  if (g.bias) v += to_acc(static_cast<const T*>(g.bias)[j * g.sbias]);
  *p = from_acc<T>(apply_activation(v, g.act));
}

// Blocks walk a flat list of (batch, tile row, tile column) triples with a grid-stride loop,
// so no grid dimension limit (65535 for y and z) can cut off a tall C or a long batch.
inline unsigned grid_for(int64_t tiles) {
  constexpr int64_t kMaxBlocks = int64_t{1} << 30;
  return static_cast<unsigned>(tiles < 1 ? 1 : (tiles < kMaxBlocks ? tiles : kMaxBlocks));
}

__host__ __device__ inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// The stream GEMMs (ours and cuBLAS) launch on: this thread's current stream, as every other
// kernel (core/cuda/stream.h).
inline cudaStream_t gemm_stream() { return ::tessel::cuda::current_stream(); }

// Batch strides of 8 elements (16 bytes in bf16/f16) or a batch of one: what the tensor-core
// rungs' 16-byte loads need of every batch's base address.
inline bool batch_strides_aligned(const GemmArgs& g, const int64_t* bs) {
  for (int d = 0; d < g.nb; ++d)
    if (g.bsize[d] > 1 && bs[d] % 8 != 0) return false;
  return true;
}

// The current device's compute capability as 10 * major + minor (80, 90, ...), 0 when the
// runtime cannot say; cached per device (the tensor-core rungs ask on every call).
inline int device_compute_capability() {
  static std::mutex mu;
  static std::map<int, int> known;
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) return 0;
  std::lock_guard<std::mutex> lock(mu);
  auto it = known.find(dev);
  if (it != known.end()) return it->second;
  int major = 0, minor = 0;
  const bool ok = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) == cudaSuccess &&
                  cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev) == cudaSuccess;
  return known[dev] = ok ? 10 * major + minor : 0;
}

}  // namespace tessel::kernels::cuda_gemm
