// tests/kernels/matmul_test.cpp — every registered matmul version against "ref".
//
// Error model: ref accumulates in f64, so |got - ref| for a version accumulating in acc_t<T>
// is bounded by the natural GEMM error  gamma * K * u_acc * (|alpha| |A| |B| + |beta| |C|)
// plus the final rounding to T  (u_out |ref|). The bound is computed per element from |A| |B|,
// so a wrong element cannot hide behind a loose global tolerance. Small-integer operands make
// every version exact in any summation order: there we demand bitwise equality.
#include "kernels/matmul.h"

#include <cmath>
#include <limits>

#include "tests/helpers.h"

using namespace tessel;
using namespace tessel::testing;

namespace {

double unit_roundoff(DType t) {
  switch (t) {
    case DType::f64: return std::ldexp(1.0, -53);
    case DType::bf16: return std::ldexp(1.0, -8);
    case DType::f16: return std::ldexp(1.0, -11);
    default: return std::ldexp(1.0, -24);
  }
}

// Restores the thread count on scope exit, whatever a test set.
struct ThreadsGuard {
  int saved = get_num_threads();
  ~ThreadsGuard() { set_num_threads(saved); }
};

// A [rows, cols] operand (with leading batch dims) of dtype t in one of three layouts:
// 0 row-major, 1 transposed storage (column stride != 1), 2 a non-contiguous strided view.
Tensor operand(const Shape& shape, DType t, int layout, bool integers) {
  auto fill = [&](const Shape& s) { return integers ? to_dtype(randint(-4, 5, s), t) : randn(s, {.dtype = t}); };
  if (layout == 0) return fill(shape);
  if (layout == 1) {
    Shape s = shape;
    std::swap(s[s.size() - 1], s[s.size() - 2]);
    return transpose(fill(s), -1, -2).detach();
  }
  Shape s = shape;
  s.back() *= 2;
  s[s.size() - 2] += 1;
  Tensor big = fill(s);
  return slice(slice(big, -1, 0, shape.back() * 2, 2), -2, 1, s[s.size() - 2]).detach();
}

// C of shape [batch..., M, N]: row-major, or transposed storage when `c_transposed`.
Tensor output_like(const Shape& shape, DType t, bool c_transposed) {
  if (!c_transposed) return empty(shape, {.dtype = t});
  Shape s = shape;
  std::swap(s[s.size() - 1], s[s.size() - 2]);
  return transpose(empty(s, {.dtype = t}), -1, -2).detach();
}

kernels::MatmulParams params(const Tensor& a, const Tensor& b, const Tensor& c, double alpha, double beta) {
  kernels::MatmulParams p;
  p.a = a.buf();
  p.b = b.buf();
  p.c = c.buf();
  p.alpha = alpha;
  p.beta = beta;
  return p;
}

// Runs `version` and ref on the same operands (a, b already broadcast to the batch shape) and
// compares. c0 holds C's initial values when beta != 0; with beta == 0 C is NaN-poisoned.
void check_version(const std::string& version, const Tensor& a, const Tensor& b, const Tensor& c0, double alpha,
                   double beta, bool c_transposed, bool exact) {
  const DType t = a.dtype();
  auto fresh_c = [&] {
    Tensor c = output_like(c0.sizes(), t, c_transposed);
    if (beta == 0)
      fill_raw(c, std::nan(""));
    else
      copy_into(c, c0);
    return c;
  };
  Tensor want = fresh_c(), got = fresh_c();
  kernels::matmul_family().run_version("ref", params(a, b, want, alpha, beta));
  kernels::matmul_family().run_version(version, params(a, b, got, alpha, beta));
  INFO("version ", version, " dtype ", dtype_name(t), " a ", shape_str(a.sizes()), " strides ", shape_str(a.strides()),
       " b ", shape_str(b.sizes()), " strides ", shape_str(b.strides()), " alpha ", alpha, " beta ", beta,
       " c_transposed ", c_transposed);
  auto g = got.to_vector<double>(), w = want.to_vector<double>();
  if (exact) {
    for (size_t i = 0; i < g.size(); ++i)
      if (g[i] != w[i]) {
        FAIL_CHECK("element ", i, ": got ", g[i], ", expected exactly ", w[i]);
        return;
      }
    return;
  }
  // Per-element bound from |alpha| |A| |B| + |beta| |C0|, computed by ref in f64.
  Tensor abs_prod = empty(c0.sizes(), {.dtype = DType::f64});
  kernels::matmul_family().run_version(
      "ref", params(abs(to_dtype(a, DType::f64)), abs(to_dtype(b, DType::f64)), abs_prod, 1.0, 0.0));
  auto ap = abs_prod.to_vector<double>();
  auto cv = beta != 0 ? to_dtype(c0, DType::f64).to_vector<double>() : std::vector<double>(g.size(), 0.0);
  const double K = static_cast<double>(a.size(-1));
  const double u_acc = t == DType::f64 ? unit_roundoff(DType::f64) : unit_roundoff(DType::f32);
  for (size_t i = 0; i < g.size(); ++i) {
    double scale = std::fabs(alpha) * ap[i] + std::fabs(beta) * std::fabs(cv[i]);
    double bound = 2 * (K + 2) * u_acc * scale + 2 * unit_roundoff(t) * std::fabs(w[i]) + 1e-30;
    if (!(std::fabs(g[i] - w[i]) <= bound)) {
      FAIL_CHECK("element ", i, ": got ", g[i], ", expected ", w[i], " (bound ", bound, ")");
      return;
    }
  }
}

std::vector<std::string> versions() { return kernels::matmul_family().versions(DeviceType::cpu); }

}  // namespace

TEST_SUITE("kernels") {
  TEST_CASE("matmul: every version vs ref over odd M, N, K and all layouts") {
    const std::vector<int64_t> sizes = {1, 7, 31, 33, 65, 127};
    int n = 0;
    for (int64_t M : sizes)
      for (int64_t N : sizes)
        for (int64_t K : sizes) {
          ++n;
          const DType t = n % 4 == 0 ? DType::f64 : DType::f32;
          // cycle through the 3x3 operand layouts (row-major, transposed, strided view)
          Tensor a = operand({M, K}, t, n % 3, false), b = operand({K, N}, t, (n / 3) % 3, false);
          for (const auto& v : versions())
            check_version(v, a, b, empty({M, N}, {.dtype = t}), 1.0, 0.0, n % 5 == 0, false);
        }
  }

  TEST_CASE("matmul: the four transpose combinations via strides, f32 and f64") {
    for (DType t : {DType::f32, DType::f64})
      for (int ta = 0; ta < 2; ++ta)
        for (int tb = 0; tb < 2; ++tb)
          for (auto [M, N, K] : {std::tuple{33, 65, 127}, std::tuple{127, 1, 31}, std::tuple{7, 127, 65}}) {
            Tensor a = operand({M, K}, t, ta, false), b = operand({K, N}, t, tb, false);
            CHECK((ta == 1) == (a.stride(1) != 1));
            CHECK((tb == 1) == (b.stride(1) != 1));
            for (const auto& v : versions())
              check_version(v, a, b, empty({M, N}, {.dtype = t}), 1.0, 0.0, false, false);
          }
  }

  TEST_CASE("matmul: long and tall shapes (1000)") {
    for (auto [M, N, K] : {std::tuple{1000, 33, 65}, std::tuple{31, 33, 1000}, std::tuple{7, 1000, 31}}) {
      Tensor a = operand({M, K}, DType::f32, 0, false), b = operand({K, N}, DType::f32, 1, false);
      for (const auto& v : versions()) check_version(v, a, b, empty({M, N}), 1.0, 0.0, false, false);
    }
  }

  TEST_CASE("matmul: batched with broadcast batch dims (stride 0)") {
    for (DType t : {DType::f32, DType::f64}) {
      // a: [3, 1, M, K] broadcast to [3, 4, M, K]; b: [4, K, N] broadcast to [3, 4, K, N]
      Tensor a = operand({3, 1, 31, 33}, t, 2, false), b = operand({4, 33, 7}, t, 1, false);
      Tensor ab = broadcast_view(a, {3, 4, 31, 33}, "test"), bb = broadcast_view(b, {3, 4, 33, 7}, "test");
      CHECK(ab.stride(1) == 0);
      CHECK(bb.stride(0) == 0);
      for (const auto& v : versions()) {
        check_version(v, ab, bb, empty({3, 4, 31, 7}, {.dtype = t}), 1.0, 0.0, false, false);
        check_version(v, ab, bb, randn({3, 4, 31, 7}, {.dtype = t}), -0.5, 2.0, true, false);
      }
    }
  }

  TEST_CASE("matmul: alpha and beta (C read only when beta != 0)") {
    for (DType t : {DType::f32, DType::f64})
      for (auto [alpha, beta] : {std::pair{1.0, 1.0}, std::pair{0.5, -1.5}, std::pair{0.0, 2.0}, std::pair{-2.0, 0.0}})
        for (const auto& v : versions()) {
          check_version(v, operand({65, 31}, t, 0, false), operand({31, 33}, t, 1, false),
                        randn({65, 33}, {.dtype = t}), alpha, beta, false, false);
          // K == 0: C = beta * C (or zeros when beta == 0, even over NaN)
          check_version(v, empty({7, 0}, {.dtype = t}), empty({0, 5}, {.dtype = t}), randn({7, 5}, {.dtype = t}), alpha,
                        beta, false, false);
        }
  }

  TEST_CASE("matmul: small-integer operands are exact in any summation order") {
    ThreadsGuard guard;
    for (int threads : {1, 2}) {
      set_num_threads(threads);
      for (auto [M, N, K] : {std::tuple{65, 127, 33}, std::tuple{127, 31, 300}, std::tuple{1, 7, 1000}})
        for (int la = 0; la < 3; ++la) {
          Tensor a = operand({M, K}, DType::f32, la, true), b = operand({K, N}, DType::f32, 2 - la, true);
          Tensor c0 = to_dtype(randint(-8, 9, {M, N}), DType::f32);
          for (const auto& v : versions()) {
            check_version(v, a, b, c0, 1.0, 0.0, la == 1, true);
            check_version(v, a, b, c0, 2.0, -1.0, false, true);
          }
        }
    }
  }

  TEST_CASE("matmul: one and two threads give bitwise-equal results") {
    ThreadsGuard guard;
    Tensor a = randn({2, 130, 257}), b = randn({2, 257, 70});
    for (const auto& v : versions()) {
      Tensor c1 = empty({2, 130, 70}), c2 = empty({2, 130, 70});
      set_num_threads(1);
      kernels::matmul_family().run_version(v, params(a, b, c1, 1.0, 0.0));
      set_num_threads(2);
      kernels::matmul_family().run_version(v, params(a, b, c2, 1.0, 0.0));
      CHECK_EQUAL_TENSOR(c2, c1);
      // and both agree with ref, at each thread count
      for (int threads : {1, 2}) {
        set_num_threads(threads);
        check_version(v, a, b, empty({2, 130, 70}), 1.0, 0.0, false, false);
      }
    }
  }

  TEST_CASE("matmul: bf16 and f16 inputs accumulate in f32 and round once") {
    for (DType t : {DType::bf16, DType::f16})
      for (auto [M, N, K] : {std::tuple{33, 65, 127}, std::tuple{1, 31, 7}, std::tuple{127, 7, 300}})
        for (const auto& v : versions()) {
          check_version(v, operand({M, K}, t, 0, false), operand({K, N}, t, 1, false), empty({M, N}, {.dtype = t}), 1.0,
                        0.0, false, false);
          check_version(v, operand({M, K}, t, 2, false), operand({K, N}, t, 0, false), randn({M, N}, {.dtype = t}), 0.5,
                        1.0, true, false);
        }
    // f32 accumulation is visible: 4096 ones sum to 4096 exactly (a bf16 accumulator stalls at 256)
    Tensor a = ones({1, 4096}, {.dtype = DType::bf16}), b = ones({4096, 1}, {.dtype = DType::bf16});
    for (const auto& v : versions()) {
      Tensor c = empty({1, 1}, {.dtype = DType::bf16});
      kernels::matmul_family().run_version(v, params(a, b, c, 1.0, 0.0));
      CHECK(c.item() == 4096.0);
    }
  }
}
