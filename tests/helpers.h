// tests/helpers.h — what the suites share: random inputs on odd shapes, non-contiguous views,
// closeness checks with a worst-element report, and running every registered kernel version.
#pragma once
#include <doctest/doctest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <functional>
#include <sstream>
#include <string>

#include "tessel.h"

namespace tessel::testing {

// CUDA test cases start with TESSEL_REQUIRE_CUDA(): without a device (or without the CUDA
// backend) the case is skipped with a visible message instead of failing.
#define TESSEL_REQUIRE_CUDA()                                                                        \
  do {                                                                                               \
    if (!::tessel::cuda_available()) {                                                               \
      /* a std::string: doctest prints a const char* as a pointer */                                 \
      MESSAGE(std::string(::tessel::cuda_built() ? "no CUDA device: skipped (built with CUDA)"       \
                                                 : "no CUDA device: skipped (built without CUDA)")); \
      return;                                                                                        \
    }                                                                                                \
  } while (0)

// A tensor of `shape` whose memory is NOT contiguous: a slice with step 2 of a transposed,
// larger buffer. Values are randn. Use it wherever an op must handle arbitrary strides.
inline Tensor noncontig_randn(const Shape& shape, DType dtype = DType::f32) {
  if (shape.empty()) return randn({}, {.dtype = dtype});
  Shape big = shape;
  big.back() = shape.back() * 2;
  std::swap(big.front(), big.back());
  Tensor base = randn(big, {.dtype = dtype});
  Tensor tr = transpose(base, 0, -1);                // shape with last dim doubled, strides permuted
  Tensor v = slice(tr, -1, 0, shape.back() * 2, 2);  // every other element
  return v.detach();
}

// max |a - b| / (atol + rtol |b|) over elements; <= 1 means close. NaN anywhere fails.
struct Closeness {
  bool ok = true;
  double worst = 0;
  int64_t where = -1;
  double a = 0, b = 0;
  std::string str() const {
    std::ostringstream os;
    os << "worst ratio " << worst << " at flat index " << where << ": got " << a << ", expected " << b;
    return os.str();
  }
};

inline Closeness closeness(const Tensor& got, const Tensor& want, double rtol, double atol) {
  Closeness c;
  REQUIRE_MESSAGE(got.sizes() == want.sizes(), "shapes differ: ", shape_str(got.sizes()), " vs ",
                  shape_str(want.sizes()));
  auto g = got.to_vector<double>();
  auto w = want.to_vector<double>();
  for (size_t i = 0; i < g.size(); ++i) {
    double d = std::fabs(g[i] - w[i]);
    bool both_nan = std::isnan(g[i]) && std::isnan(w[i]);
    bool same_inf = std::isinf(g[i]) && g[i] == w[i];
    double r = (both_nan || same_inf) ? 0 : (std::isnan(d) ? INFINITY : d / (atol + rtol * std::fabs(w[i])));
    if (r > c.worst || std::isnan(g[i]) != std::isnan(w[i])) {
      c.worst = std::isnan(g[i]) != std::isnan(w[i]) ? INFINITY : r;
      c.where = static_cast<int64_t>(i);
      c.a = g[i];
      c.b = w[i];
    }
  }
  c.ok = c.worst <= 1.0;
  return c;
}

#define CHECK_CLOSE(got, want, rtol, atol)                                        \
  do {                                                                            \
    auto tessel_c_ = ::tessel::testing::closeness((got), (want), (rtol), (atol)); \
    CHECK_MESSAGE(tessel_c_.ok, tessel_c_.str());                                 \
  } while (0)

#define CHECK_EQUAL_TENSOR(got, want) CHECK_CLOSE(got, want, 0.0, 0.0)

// Judges `got` by natural error (DESIGN.md): `exact` is the math in f64, `natural` the same math
// computed another way in got's precision (a composed formula, a reordered reduction). Element
// i may be off from exact by 2 (|natural_i - exact_i| + max_j |natural_j - exact_j|) + 4 u
// (max|exact| + condition_i), u being got's unit roundoff: a floor for spots where the other
// way happens to be exact. `condition` (optional, f64, exact's shape) is the magnitude the
// result is computed from (e.g. sum |a_k b_k| for a dot product), for results that cancel to
// far below it. NaN must be NaN exactly where exact is, and infinities equal. The ratio
// reported is |got - exact| / that bound.
inline Closeness natural_closeness(const Tensor& got, const Tensor& natural, const Tensor& exact,
                                   const Tensor& condition = Tensor()) {
  REQUIRE_MESSAGE(got.sizes() == exact.sizes(), "shapes differ: ", shape_str(got.sizes()), " vs ",
                  shape_str(exact.sizes()));
  REQUIRE(natural.sizes() == exact.sizes());
  auto g = got.to_vector<double>(), n = natural.to_vector<double>(), e = exact.to_vector<double>();
  double worst_natural = 0, magnitude = 0;
  for (size_t i = 0; i < e.size(); ++i)
    if (std::isfinite(e[i]) && std::isfinite(n[i])) {
      worst_natural = std::max(worst_natural, std::fabs(n[i] - e[i]));
      magnitude = std::max(magnitude, std::fabs(e[i]));
    }
  const double u = got.dtype() == DType::f64 ? 0x1p-53 : got.dtype() == DType::f32 ? 0x1p-24 : 0x1p-8;
  std::vector<double> cond = condition.defined() ? condition.to_vector<double>() : std::vector<double>(e.size(), 0.0);
  REQUIRE(cond.size() == e.size());
  Closeness c;
  for (size_t i = 0; i < e.size(); ++i) {
    double r;
    if (std::isnan(e[i]) || std::isinf(e[i]))
      r = (std::isnan(e[i]) ? std::isnan(g[i]) : g[i] == e[i]) ? 0 : INFINITY;
    else {
      const double nat = std::isfinite(n[i]) ? std::fabs(n[i] - e[i]) : worst_natural;
      const double bound = 2 * (nat + worst_natural) + 4 * u * (magnitude + (std::isfinite(cond[i]) ? cond[i] : 0));
      const double d = std::fabs(g[i] - e[i]);
      r = std::isnan(d) ? INFINITY : bound > 0 ? d / bound : (d == 0 ? 0 : INFINITY);
    }
    if (r > c.worst || (c.where < 0 && r == INFINITY)) {
      c.worst = r;
      c.where = static_cast<int64_t>(i);
      c.a = g[i];
      c.b = e[i];
    }
  }
  c.ok = c.worst <= 1.0;
  return c;
}

// Tolerances by dtype for results compared against an f64 computation of the same math.
inline double rtol_for(DType t) {
  switch (t) {
    case DType::f64: return 1e-10;
    case DType::f32: return 1e-5;
    case DType::bf16: return 2e-2;
    case DType::f16: return 2e-3;
    default: return 0;
  }
}

// Restores the thread count on scope exit, whatever a test set.
struct ThreadsGuard {
  int saved = get_num_threads();
  ~ThreadsGuard() { set_num_threads(saved); }
};

// Odd and edge-case sizes the kernels must handle: 1, primes, around powers of two.
inline const std::vector<int64_t>& odd_sizes() {
  static const std::vector<int64_t> s = {1, 2, 3, 7, 31, 33, 65, 127};
  return s;
}

}  // namespace tessel::testing

namespace tessel::testing {
// Gradchecks f on f64 copies of `inputs` (all requiring grad unless they are integer tensors).
#define CHECK_GRADCHECK(f, ...)                             \
  do {                                                      \
    auto tessel_r_ = ::tessel::gradcheck((f), __VA_ARGS__); \
    CHECK_MESSAGE(tessel_r_.ok, tessel_r_.message);         \
  } while (0)

// An f64 leaf with random values that requires grad: the usual gradcheck input.
inline Tensor leaf64(const Shape& shape, double scale = 1.0) {
  Tensor t = randn(shape, {.dtype = DType::f64});
  if (scale != 1.0) {
    NoGradGuard ng;
    mul_(t, scale);
  }
  t.requires_grad_();
  return t;
}
}  // namespace tessel::testing

namespace tessel::testing {
// A fresh directory under the system temp dir, removed with everything in it.
struct TempDir {
  std::filesystem::path path;
  TempDir() {
    static int n = 0;
    path = std::filesystem::temp_directory_path() /
           ("tessel_test_" + std::to_string(::getpid()) + "_" + std::to_string(n++));
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string file(const std::string& name) const { return (path / name).string(); }
};
}  // namespace tessel::testing
