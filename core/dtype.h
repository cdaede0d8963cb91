// core/dtype.h — element types a tensor can hold, and the 16-bit float formats.
//
// tessel stores f32, f64, bf16, f16, i32, i64 and bool (one byte). Arithmetic on the 16-bit
// formats converts each element to f32, computes, and rounds back: storage is narrow, math is
// not (DESIGN.md, "Numbers and errors").
#pragma once
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>

namespace tessel {

enum class DType : uint8_t { f32, f64, bf16, f16, i32, i64, b8 };

inline constexpr DType kAllDTypes[] = {DType::f32, DType::f64, DType::bf16, DType::f16,
                                       DType::i32, DType::i64, DType::b8};

size_t dtype_size(DType t);
const char* dtype_name(DType t);                 // "f32", "bf16", "bool", ...
DType dtype_from_name(const std::string& name);  // throws tessel::Error on unknown names
inline bool is_floating(DType t) { return t == DType::f32 || t == DType::f64 || t == DType::bf16 || t == DType::f16; }
inline bool is_integral(DType t) { return t == DType::i32 || t == DType::i64; }
// Result type of a binary op on a and b, following PyTorch's rules for tensor-tensor ops:
// bool < integers < floats; i32+i64 -> i64; bf16+f16 -> f32; a wider float wins.
DType promote_types(DType a, DType b);

// bfloat16: the top half of an IEEE f32. Conversion rounds to nearest even; NaN stays NaN.
struct bf16 {
  uint16_t bits = 0;
  bf16() = default;
  bf16(float f) {  // NOLINT(google-explicit-constructor): behaves like a float
    uint32_t u;
    std::memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) {
      bits = static_cast<uint16_t>((u >> 16) | 0x40);  // quiet NaN
    } else {
      u += 0x7fffu + ((u >> 16) & 1u);
      bits = static_cast<uint16_t>(u >> 16);
    }
  }
  operator float() const {  // NOLINT(google-explicit-constructor)
    uint32_t u = static_cast<uint32_t>(bits) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
};

// IEEE 754 binary16. Conversion rounds to nearest even, handles subnormals, inf and NaN.
struct f16 {
  uint16_t bits = 0;
  f16() = default;
  f16(float f) : bits(from_float(f)) {}              // NOLINT(google-explicit-constructor)
  operator float() const { return to_float(bits); }  // NOLINT(google-explicit-constructor)
  static uint16_t from_float(float f);
  static float to_float(uint16_t h);
};

// The C++ type for each dtype, and back.
template <DType D>
struct dtype_cpp;
template <>
struct dtype_cpp<DType::f32> {
  using type = float;
};
template <>
struct dtype_cpp<DType::f64> {
  using type = double;
};
template <>
struct dtype_cpp<DType::bf16> {
  using type = bf16;
};
template <>
struct dtype_cpp<DType::f16> {
  using type = f16;
};
template <>
struct dtype_cpp<DType::i32> {
  using type = int32_t;
};
template <>
struct dtype_cpp<DType::i64> {
  using type = int64_t;
};
template <>
struct dtype_cpp<DType::b8> {
  using type = bool;
};

template <class T>
constexpr DType dtype_of();
template <>
constexpr DType dtype_of<float>() {
  return DType::f32;
}
template <>
constexpr DType dtype_of<double>() {
  return DType::f64;
}
template <>
constexpr DType dtype_of<bf16>() {
  return DType::bf16;
}
template <>
constexpr DType dtype_of<f16>() {
  return DType::f16;
}
template <>
constexpr DType dtype_of<int32_t>() {
  return DType::i32;
}
template <>
constexpr DType dtype_of<int64_t>() {
  return DType::i64;
}
template <>
constexpr DType dtype_of<bool>() {
  return DType::b8;
}

// The type arithmetic on T is done in: f32 for the narrow floats, T itself otherwise.
template <class T>
struct acc_type {
  using type = T;
};
template <>
struct acc_type<bf16> {
  using type = float;
};
template <>
struct acc_type<f16> {
  using type = float;
};
template <>
struct acc_type<bool> {
  using type = int64_t;
};
template <class T>
using acc_t = typename acc_type<T>::type;

// Float to integer without undefined behaviour: NaN gives 0, out-of-range values saturate.
template <class I, class F>
inline I saturate_cast(F x) {
  if (x != x) return I(0);
  if (x <= static_cast<F>(std::numeric_limits<I>::min())) return std::numeric_limits<I>::min();
  if (x >= static_cast<F>(std::numeric_limits<I>::max())) return std::numeric_limits<I>::max();
  return static_cast<I>(x);
}

// Converts one element between storage types, through the accumulate types: floats to integers
// saturate (saturate_cast), anything non-zero becomes true.
template <class D, class S>
inline D convert_element(S v) {
  using AS = acc_t<S>;
  using AD = acc_t<D>;
  AS x = static_cast<AS>(v);
  if constexpr (std::is_same_v<D, bool>)
    return x != AS(0);
  else if constexpr (std::is_integral_v<AD> && std::is_floating_point_v<AS>)
    return static_cast<D>(saturate_cast<AD>(x));
  else
    return static_cast<D>(static_cast<AD>(x));
}

// Calls f(T{}) with T the C++ type of `t`: the one switch over dtypes that kernels share.
template <class F>
decltype(auto) visit_dtype(DType t, F&& f) {
  switch (t) {
    case DType::f32: return f(float{});
    case DType::f64: return f(double{});
    case DType::bf16: return f(bf16{});
    case DType::f16: return f(f16{});
    case DType::i32: return f(int32_t{});
    case DType::i64: return f(int64_t{});
    case DType::b8: return f(bool{});
  }
  return f(float{});  // unreachable: every enumerator is handled above
}

// The same, for the four floating types only; others throw naming `op`.
void throw_not_floating(DType t, const char* op);
template <class F>
decltype(auto) visit_floating(DType t, const char* op, F&& f) {
  switch (t) {
    case DType::f32: return f(float{});
    case DType::f64: return f(double{});
    case DType::bf16: return f(bf16{});
    case DType::f16: return f(f16{});
    default: throw_not_floating(t, op);
  }
  return f(float{});
}

}  // namespace tessel
