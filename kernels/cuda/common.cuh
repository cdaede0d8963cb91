// kernels/cuda/common.cuh — what every CUDA kernel file shares: element loads and stores in
// the compute type, the launch stream, block and warp reductions, and dim collapsing.
//
// Storage types are tessel's own (float, double, bf16, f16, int32_t, int64_t, bool): bf16 and
// f16 are 2-byte structs whose conversions are host-only, so device code reads and writes
// their `bits` directly with the same rounding as core/dtype.h (round to nearest even; NaN
// stays NaN). Arithmetic happens in acc_t<T>, exactly as on the CPU.
//
// The CUDA path is compiled for sm_80 and sm_90 but not yet verified on hardware.
#pragma once
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "core/buf.h"
#include "core/cuda/check.h"
#include "core/cuda/stream.h"
#include "core/dtype.h"

namespace tessel::kernels::cuda {

// The stream every kernel here launches on: this thread's current stream (core/cuda/stream.h;
// the legacy default stream unless a caller made another one current), so that kernels, copies
// and the allocator's stream-aware reuse all agree on one order.
inline cudaStream_t launch_stream() { return ::tessel::cuda::current_stream(); }

// ---------------------------------------------------------------- element conversions
template <class T>
__device__ __forceinline__ acc_t<T> load(const T* p) {
  if constexpr (std::is_same_v<T, bf16>) {
    return __uint_as_float(static_cast<uint32_t>(p->bits) << 16);
  } else if constexpr (std::is_same_v<T, f16>) {
    return __half2float(__ushort_as_half(p->bits));
  } else {
    return static_cast<acc_t<T>>(*p);
  }
}

__device__ __forceinline__ uint16_t float_to_bf16_bits(float f) {
  uint32_t u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

// Stores v (in the compute type of T, or anything convertible to it) as a T.
template <class T, class V>
__device__ __forceinline__ void store(T* p, V v) {
  if constexpr (std::is_same_v<T, bf16>) {
    p->bits = float_to_bf16_bits(static_cast<float>(v));
  } else if constexpr (std::is_same_v<T, f16>) {
    p->bits = __half_as_ushort(__float2half_rn(static_cast<float>(v)));
  } else if constexpr (std::is_same_v<T, bool>) {
    *p = v != V(0);
  } else {
    *p = static_cast<T>(static_cast<acc_t<T>>(v));
  }
}

// The index value at element offset `off` of an i32 or i64 buffer.
__device__ __forceinline__ int64_t load_index(const void* data, bool is_i64, int64_t off) {
  return is_i64 ? static_cast<const int64_t*>(data)[off] : static_cast<int64_t>(static_cast<const int32_t*>(data)[off]);
}

// Compute type of the float kernels (softmax, norm, loss): f64 for f64, f32 otherwise.
template <class T>
using float_acc_t = std::conditional_t<std::is_same_v<T, double>, double, float>;

// ---------------------------------------------------------------- reductions
template <class A>
__device__ __forceinline__ A warp_sum(A v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// NaN-propagating max (NaN wins, like the CPU kernels).
template <class A>
__device__ __forceinline__ A nan_max(A a, A b) {
  return (a != a || a > b) ? a : ((b != b) ? b : (a > b ? a : b));
}

template <class A>
__device__ __forceinline__ A warp_max(A v) {
  for (int o = 16; o > 0; o >>= 1) v = nan_max(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024). Every thread gets the result.
// `scratch` holds 32 values; the fixed tree order makes the result deterministic.
template <class A>
__device__ A block_sum(A v, A* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  v = warp_sum(v);
  __syncthreads();  // scratch may still be read by a previous call
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < nwarps ? scratch[lane] : A(0);
  return warp_sum(v);
}

template <class A>
__device__ A block_max(A v, A* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < nwarps ? scratch[lane] : scratch[0];
  return warp_max(v);
}

// Threads per block for a row of n elements handled by one block: a multiple of 32 in [32, cap].
inline int row_threads(int64_t n, int cap) {
  int t = 32;
  while (t < cap && t < n) t *= 2;
  return t;
}

inline unsigned grid_for(int64_t n, int threads, int64_t cap = 1 << 16) {
  int64_t b = (n + threads - 1) / threads;
  if (b < 1) b = 1;
  if (b > cap) b = cap;
  return static_cast<unsigned>(b);
}

// ---------------------------------------------------------------- strided addressing
// Sizes and up to N operands' strides, passed to kernels by value. Dims that are contiguous in
// every operand are merged and size-1 dims dropped, so most walks end up 1- or 2-dimensional.
template <int N>
struct Layout {
  int ndim = 0;
  int64_t size[kMaxDims] = {};
  int64_t stride[N][kMaxDims] = {};

  // Element offsets of operand k for the row-major linear index `i`.
  __device__ __forceinline__ void offsets(int64_t i, int64_t (&off)[N]) const {
    for (int k = 0; k < N; ++k) off[k] = 0;
    for (int d = ndim - 1; d >= 0; --d) {
      const int64_t s = size[d];
      int64_t q, r;
      if ((static_cast<uint64_t>(i) | static_cast<uint64_t>(s)) <= 0xffffffffull) {
        // 32-bit division is several times cheaper than 64-bit on the GPU
        const uint32_t q32 = static_cast<uint32_t>(i) / static_cast<uint32_t>(s);
        q = q32;
        r = i - q * s;
      } else {
        q = i / s;
        r = i - q * s;
      }
      i = q;
      for (int k = 0; k < N; ++k) off[k] += r * stride[k][d];
    }
  }
};

template <int N>
inline Layout<N> make_layout(int ndim, const int64_t* size, const int64_t* const (&strides)[N]) {
  Layout<N> l;
  for (int d = 0; d < ndim; ++d) {
    if (size[d] == 1) continue;
    bool merge = l.ndim > 0;
    for (int k = 0; k < N && merge; ++k) merge = strides[k][d] * size[d] == l.stride[k][l.ndim - 1];
    if (merge) {
      l.size[l.ndim - 1] *= size[d];
      for (int k = 0; k < N; ++k) l.stride[k][l.ndim - 1] = strides[k][d];
    } else {
      l.size[l.ndim] = size[d];
      for (int k = 0; k < N; ++k) l.stride[k][l.ndim] = strides[k][d];
      ++l.ndim;
    }
  }
  return l;
}

}  // namespace tessel::kernels::cuda
