// core/cuda/convert.cuh — dtype conversions in device code, bit for bit those of core/dtype.h's
// convert_element (through the accumulate types; floats to integers saturate, NaN gives 0;
// anything non-zero becomes true; bf16 and f16 round to nearest even).
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <limits>
#include <type_traits>

#include "core/dtype.h"

namespace tessel::cuda {

// Device storage types: bf16 and f16 as raw bits, the rest as themselves.
struct BF16 {
  uint16_t bits;
};
struct F16 {
  uint16_t bits;
};

// The accumulation type of a device storage type, as core/dtype.h's acc_t: f32 for the 16-bit
// floats (ours, and CUDA's own __nv_bfloat16 and __half, as the tensor-core GEMMs hold their
// operands), i64 for bool, the type itself otherwise.
template <class T>
inline constexpr bool is_16bit_float =
    std::is_same_v<T, BF16> || std::is_same_v<T, F16> || std::is_same_v<T, __nv_bfloat16> || std::is_same_v<T, __half>;
template <class T>
using dev_acc_t = std::conditional_t<is_16bit_float<T>, float, std::conditional_t<std::is_same_v<T, bool>, int64_t, T>>;

template <class T>
__device__ __forceinline__ dev_acc_t<T> to_acc(T v) {
  return static_cast<dev_acc_t<T>>(v);
}
template <>
__device__ __forceinline__ float to_acc<BF16>(BF16 v) {
  return __uint_as_float(static_cast<uint32_t>(v.bits) << 16);
}
template <>
__device__ __forceinline__ float to_acc<F16>(F16 v) {
  return __half2float(__ushort_as_half(v.bits));
}

template <>
__device__ __forceinline__ float to_acc<__nv_bfloat16>(__nv_bfloat16 v) {
  return __bfloat162float(v);
}
template <>
__device__ __forceinline__ float to_acc<__half>(__half v) {
  return __half2float(v);
}

template <class T>
__device__ __forceinline__ T from_acc(dev_acc_t<T> x) {
  return static_cast<T>(x);
}
// (CUDA's conversions round to nearest even, as BF16's and F16's below; a NaN becomes their
// canonical NaN rather than keeping its payload.)
template <>
__device__ __forceinline__ __nv_bfloat16 from_acc<__nv_bfloat16>(float f) {
  return __float2bfloat16_rn(f);
}
template <>
__device__ __forceinline__ __half from_acc<__half>(float f) {
  return __float2half_rn(f);
}
template <>
__device__ __forceinline__ BF16 from_acc<BF16>(float f) {  // core/dtype.h's bf16(float)
  uint32_t u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return BF16{static_cast<uint16_t>((u >> 16) | 0x40)};  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return BF16{static_cast<uint16_t>(u >> 16)};
}
template <>
__device__ __forceinline__ F16 from_acc<F16>(float f) {
  return F16{__half_as_ushort(__float2half_rn(f))};
}

template <class I, class F>
__device__ __forceinline__ I saturate(F x) {  // core/dtype.h's saturate_cast
  if (x != x) return I(0);
  if (x <= static_cast<F>(std::numeric_limits<I>::min())) return std::numeric_limits<I>::min();
  if (x >= static_cast<F>(std::numeric_limits<I>::max())) return std::numeric_limits<I>::max();
  return static_cast<I>(x);
}

template <class D, class S>
__device__ __forceinline__ D convert(S v) {
  using AS = dev_acc_t<S>;
  using AD = dev_acc_t<D>;
  AS x = to_acc<S>(v);
  if constexpr (std::is_same_v<D, bool>)
    return x != AS(0);
  else if constexpr (std::is_integral_v<AD> && std::is_floating_point_v<AS>)
    return static_cast<D>(saturate<AD>(x));
  else
    return from_acc<D>(static_cast<AD>(x));
}

// The device storage type of each dtype, for dispatch: f(T{}) as visit_dtype does.
template <class F>
decltype(auto) visit_device_dtype(DType t, F&& f) {
  switch (t) {
    case DType::f32: return f(float{});
    case DType::f64: return f(double{});
    case DType::bf16: return f(BF16{});
    case DType::f16: return f(F16{});
    case DType::i32: return f(int32_t{});
    case DType::i64: return f(int64_t{});
    case DType::b8: return f(bool{});
  }
  return f(float{});  // unreachable
}

}  // namespace tessel::cuda
