// tests/kernels/matmul_test.cpp — every registered matmul version against "ref".
//
// Error model: ref accumulates in f64, so |got - ref| for a version accumulating in acc_t<T>
// is bounded by the natural GEMM error  gamma * K * u_acc * (|alpha| |A| |B| + |beta| |C|)
// plus the final rounding to T  (u_out |ref|). The bound is computed per element from |A| |B|,
// so a wrong element cannot hide behind a loose global tolerance. The epilogue's activations
// have slope at most ~1.13, so they carry that bound through with a small factor plus their own
// rounding. Small-integer operands make every version exact in any summation order: there we
// demand bitwise equality.
//
// Versions that decline an argument set (accepts() == false: an ISA this CPU lacks, or a dtype
// the version does not take) are skipped; the ones this CPU cannot run at all are named once,
// visibly, by the first test case.
#include "kernels/matmul.h"

#include <cmath>
#include <limits>

#include "core/cpu_features.h"
#include "tests/helpers.h"
#include "tests/kernels/matmul_params.h"

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

std::vector<std::string> versions() { return kernels::matmul_family().versions(DeviceType::cpu); }

struct Case {
  Tensor a, b, c0;  // c0: C's initial values (used when beta != 0)
  double alpha = 1, beta = 0;
  bool c_transposed = false;
  bool exact = false;
  Tensor bias;
  kernels::Activation act = kernels::Activation::none;
};

// Runs ref once, then every version that accepts the arguments, on the same operands (a, b
// already broadcast to the batch shape), and compares each with ref. With beta == 0 C is
// NaN-poisoned, so an element a version forgets to write shows. Returns how many versions ran.
int check_all(const Case& cs) {
  const DType t = cs.a.dtype();
  auto fresh_c = [&] {
    Tensor c = output_like(cs.c0.sizes(), t, cs.c_transposed);
    if (cs.beta == 0)
      fill_raw(c, std::nan(""));
    else
      copy_into(c, cs.c0);
    return c;
  };
  Tensor want = fresh_c();
  kernels::matmul_family().run_version("ref", matmul_params(cs.a, cs.b, want, cs.alpha, cs.beta, cs.bias, cs.act));
  const auto w = want.to_vector<double>();
  std::vector<double> bound;
  if (!cs.exact) {
    // Per-element bound from |alpha| |A| |B| + |beta| |C0|, computed by ref in f64.
    Tensor abs_prod = empty(cs.c0.sizes(), {.dtype = DType::f64});
    kernels::matmul_family().run_version(
        "ref", matmul_params(abs(to_dtype(cs.a, DType::f64)), abs(to_dtype(cs.b, DType::f64)), abs_prod, 1.0, 0.0));
    const auto ap = abs_prod.to_vector<double>();
    const auto cv = cs.beta != 0 ? to_dtype(cs.c0, DType::f64).to_vector<double>() : std::vector<double>(w.size(), 0.0);
    const double K = static_cast<double>(cs.a.size(-1));
    const double u_acc = t == DType::f64 ? unit_roundoff(DType::f64) : unit_roundoff(DType::f32);
    const bool act = cs.act != kernels::Activation::none;
    bound.resize(w.size());
    for (size_t i = 0; i < w.size(); ++i) {
      const double scale = std::fabs(cs.alpha) * ap[i] + std::fabs(cs.beta) * std::fabs(cv[i]);
      double b = 2 * (K + 3) * u_acc * scale;
      if (cs.bias.defined()) b += 2 * unit_roundoff(t) * (scale + 1);  // bias adds one more rounding
      if (act) b = 1.2 * b + 8 * u_acc * (std::fabs(w[i]) + scale);
      bound[i] = b + 2 * unit_roundoff(t) * std::fabs(w[i]) + 1e-30;
    }
  }
  int ran = 0;
  for (const auto& v : versions()) {
    if (v == "ref") continue;
    Tensor got = fresh_c();
    const auto p = matmul_params(cs.a, cs.b, got, cs.alpha, cs.beta, cs.bias, cs.act);
    if (!kernels::matmul_family().accepts(v, p)) continue;
    kernels::matmul_family().run_version(v, p);
    ++ran;
    INFO("version ", v, " dtype ", std::string(dtype_name(t)), " a ", shape_str(cs.a.sizes()), " strides ",
         shape_str(cs.a.strides()), " b ", shape_str(cs.b.sizes()), " strides ", shape_str(cs.b.strides()), " alpha ",
         cs.alpha, " beta ", cs.beta, " c_transposed ", cs.c_transposed, " bias ", cs.bias.defined(), " act ",
         std::string(kernels::activation_name(cs.act)), " threads ", get_num_threads());
    const auto g = got.to_vector<double>();
    for (size_t i = 0; i < g.size(); ++i) {
      const bool ok = cs.exact ? g[i] == w[i] : std::fabs(g[i] - w[i]) <= bound[i];
      if (!ok) {
        FAIL_CHECK("element ", i, ": got ", g[i], ", expected ", w[i], cs.exact ? " exactly" : "",
                   cs.exact ? "" : " (bound ", cs.exact ? 0.0 : bound[i], cs.exact ? "" : ")");
        break;
      }
    }
  }
  return ran;
}

Case make_case(const Tensor& a, const Tensor& b, DType t, bool c_transposed = false) {
  Case cs;
  cs.a = a;
  cs.b = b;
  Shape c = a.sizes();
  c.back() = b.size(-1);
  cs.c0 = empty(c, {.dtype = t});
  cs.c_transposed = c_transposed;
  return cs;
}

}  // namespace

TEST_SUITE("kernels") {
  TEST_CASE("matmul: versions this CPU cannot run are named (and the ones it can are used)") {
    Tensor a = randn({4, 4}), b = randn({4, 4}), c = empty({4, 4});
    const auto p = matmul_params(a, b, c, 1, 0);
    const CpuFeatures& f = cpu_features();
    for (const auto& v : versions())
      if (!kernels::matmul_family().accepts(v, p))
        MESSAGE("matmul version '", v, "' is skipped: this CPU (", f.model, ") lacks its instruction set");
    // On a CPU that has the instructions, the version must take f32 (else its tests would be skipped silently).
    if (f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq && f.fma)
      CHECK(kernels::matmul_family().accepts("cpu_avx512", p));
    if (f.avx2 && f.fma) CHECK(kernels::matmul_family().accepts("cpu_avx2", p));
    Tensor ab = randn({4, 4}, {.dtype = DType::bf16}), cb = empty({4, 4}, {.dtype = DType::bf16});
    if (f.avx512_bf16) CHECK(kernels::matmul_family().accepts("cpu_avx512", matmul_params(ab, ab, cb, 1, 0)));
  }

  TEST_CASE("matmul: every version vs ref over odd M, N, K, all layouts, 1 and 2 threads") {
    ThreadsGuard guard;
    const std::vector<int64_t> sizes = {1, 7, 31, 33, 65, 127};
    int n = 0;
    for (int64_t M : sizes)
      for (int64_t N : sizes)
        for (int64_t K : sizes) {
          ++n;
          set_num_threads(1 + n % 2);
          const DType t = n % 4 == 0 ? DType::f64 : DType::f32;
          // cycle through the 3x3 operand layouts (row-major, transposed, strided view)
          Tensor a = operand({M, K}, t, n % 3, false), b = operand({K, N}, t, (n / 3) % 3, false);
          CHECK(check_all(make_case(a, b, t, n % 5 == 0)) >= 2);
        }
  }

  TEST_CASE("matmul: one dimension of 1000 against small others") {
    ThreadsGuard guard;
    const std::vector<int64_t> small = {1, 33, 127};
    int n = 0;
    for (int big = 0; big < 3; ++big)
      for (int64_t x : small)
        for (int64_t y : small) {
          ++n;
          set_num_threads(1 + n % 2);
          int64_t dims[3] = {x, y, x};
          dims[big] = 1000;
          if (big == 0) dims[1] = y, dims[2] = x;
          if (big == 1) dims[0] = x, dims[2] = y;
          if (big == 2) dims[0] = x, dims[1] = y;
          const int64_t M = dims[0], N = dims[1], K = dims[2];
          Tensor a = operand({M, K}, DType::f32, n % 3, false), b = operand({K, N}, DType::f32, (n + 1) % 3, false);
          CHECK(check_all(make_case(a, b, DType::f32, n % 4 == 0)) >= 2);
        }
  }

  TEST_CASE("matmul: the four transpose combinations via strides, f32 and f64") {
    for (DType t : {DType::f32, DType::f64})
      for (int ta = 0; ta < 2; ++ta)
        for (int tb = 0; tb < 2; ++tb)
          for (auto [M, N, K] :
               {std::tuple{33, 65, 127}, std::tuple{127, 1, 31}, std::tuple{7, 127, 65}, std::tuple{65, 33, 600}}) {
            Tensor a = operand({M, K}, t, ta, false), b = operand({K, N}, t, tb, false);
            CHECK((ta == 1) == (a.stride(1) != 1));
            CHECK((tb == 1) == (b.stride(1) != 1));
            check_all(make_case(a, b, t));
          }
  }

  TEST_CASE("matmul: batched with broadcast batch dims (stride 0)") {
    for (DType t : {DType::f32, DType::f64, DType::bf16}) {
      // a: [3, 1, M, K] broadcast to [3, 4, M, K]; b: [4, K, N] broadcast to [3, 4, K, N]
      Tensor a = operand({3, 1, 31, 33}, t, 2, false), b = operand({4, 33, 7}, t, 1, false);
      Tensor ab = broadcast_view(a, {3, 4, 31, 33}, "test"), bb = broadcast_view(b, {3, 4, 33, 7}, "test");
      CHECK(ab.stride(1) == 0);
      CHECK(bb.stride(0) == 0);
      check_all(make_case(ab, bb, t));
      Case cs = make_case(ab, bb, t, true);
      cs.c0 = randn({3, 4, 31, 7}, {.dtype = t});
      cs.alpha = -0.5;
      cs.beta = 2.0;
      check_all(cs);
    }
  }

  TEST_CASE("matmul: alpha and beta (C read only when beta != 0)") {
    for (DType t : {DType::f32, DType::f64})
      for (auto [alpha, beta] :
           {std::pair{1.0, 1.0}, std::pair{0.5, -1.5}, std::pair{0.0, 2.0}, std::pair{-2.0, 0.0}}) {
        Case cs = make_case(operand({65, 300}, t, 0, false), operand({300, 33}, t, 1, false), t);
        cs.c0 = randn({65, 33}, {.dtype = t});
        cs.alpha = alpha;
        cs.beta = beta;
        check_all(cs);
        // K == 0: C = beta * C (or zeros when beta == 0, even over NaN)
        Case k0 = make_case(empty({7, 0}, {.dtype = t}), empty({0, 5}, {.dtype = t}), t);
        k0.c0 = randn({7, 5}, {.dtype = t});
        k0.alpha = alpha;
        k0.beta = beta;
        check_all(k0);
      }
  }

  TEST_CASE("matmul: fused epilogue — bias and every activation, every dtype") {
    ThreadsGuard guard;
    using kernels::Activation;
    int n = 0;
    for (DType t : {DType::f32, DType::f64, DType::bf16})
      for (Activation act : kAllActivations)
        for (auto [M, N, K] : {std::tuple{33, 65, 127}, std::tuple{1, 31, 7}, std::tuple{70, 40, 300}}) {
          ++n;
          set_num_threads(1 + n % 2);
          Case cs = make_case(operand({M, K}, t, n % 3, false), operand({K, N}, t, (n + 1) % 3, false), t, n % 4 == 0);
          // a strided bias every other case (a column of a matrix); K = 300 spans two kc blocks
          cs.bias = n % 2 ? randn({N}, {.dtype = t}) : squeeze(slice(randn({N, 2}, {.dtype = t}), 1, 0, 1), -1);
          cs.act = act;
          if (n % 3 == 0) {
            cs.c0 = randn({M, N}, {.dtype = t});
            cs.beta = 0.5;
          }
          check_all(cs);
          cs.bias = Tensor();  // activation alone
          check_all(cs);
        }
  }

  TEST_CASE("matmul: the training epilogue operands (MatmulParams::dact, ::mul) of every CPU version") {
    // With dact and mul set, C gets act(z) * mul and dact gets act'(z), z = alpha A B + beta C +
    // bias. Judged against z from the same version with neither (the same summation), pushed
    // through the elementwise ops in f64.
    ThreadsGuard guard;
    using kernels::Activation;
    int n = 0;
    for (DType t : {DType::f32, DType::f64, DType::bf16})
      for (Activation act : kAllActivations)
        for (auto [M, N, K] : {std::tuple{33, 65, 127}, std::tuple{7, 300, 31}, std::tuple{70, 40, 600}}) {
          ++n;
          set_num_threads(1 + n % 2);
          const Tensor a = operand({M, K}, t, n % 3, false), b = operand({K, N}, t, (n + 1) % 3, false);
          const Tensor bias = randn({N}, {.dtype = t});
          const bool ct = n % 4 == 0;  // a transposed C (and dact, mul) every fourth case
          auto poisoned = [&] {
            Tensor c = output_like({M, N}, t, ct);
            fill_raw(c, std::nan(""));
            return c;
          };
          Tensor m = output_like({M, N}, t, ct);
          copy_(m, randn({M, N}, {.dtype = t}));
          for (const auto& v : versions()) {
            INFO("version ", v, " dtype ", std::string(dtype_name(t)), " act ",
                 std::string(kernels::activation_name(act)), " M N K ", M, " ", N, " ", K, " c transposed ", ct);
            Tensor c = poisoned(), d = poisoned(), z = poisoned(), c_dact = poisoned(), d_only = poisoned();
            kernels::MatmulParams p = matmul_params(a, b, c, 1.0, 0.0, bias, act);
            p.dact = d.buf();
            p.mul = m.buf();
            if (!kernels::matmul_family().accepts(v, p)) continue;
            kernels::matmul_family().run_version(v, p);
            kernels::matmul_family().run_version(v, matmul_params(a, b, z, 1.0, 0.0, bias, Activation::none));
            kernels::MatmulParams q = matmul_params(a, b, c_dact, 1.0, 0.0, bias, act);  // dact alone
            q.dact = d_only.buf();
            kernels::matmul_family().run_version(v, q);
            const Tensor z64 = to_dtype(z, DType::f64), one = ones_like(z64);
            Tensor y64 = z64, d64 = one;
            switch (act) {
              case Activation::none: break;
              case Activation::relu: y64 = relu(z64), d64 = relu_backward(one, z64); break;
              case Activation::gelu_erf: y64 = gelu(z64), d64 = gelu_backward(one, z64, GeluApprox::none); break;
              case Activation::gelu_tanh:
                y64 = gelu(z64, GeluApprox::tanh), d64 = gelu_backward(one, z64, GeluApprox::tanh);
                break;
              case Activation::silu: y64 = silu(z64), d64 = silu_backward(one, z64); break;
            }
            const double tol = t == DType::bf16 ? 2e-2 : t == DType::f32 ? 1e-5 : 1e-12;
            CHECK_CLOSE(to_dtype(d, DType::f64), d64, tol, tol);
            CHECK_CLOSE(to_dtype(c, DType::f64), mul(y64, to_dtype(m, DType::f64)), tol, tol);
            CHECK_EQUAL_TENSOR(d_only, d);  // dact does not depend on mul
            CHECK_CLOSE(to_dtype(c_dact, DType::f64), y64, tol, tol);
          }
        }
  }

  TEST_CASE("matmul: A's row sums (MatmulParams::a_sums) of every CPU version, bitwise the same") {
    // a_sums[i] = sum_k A[i, k] in f64, k ascending, whatever else the GEMM does: every version,
    // thread count and A layout gives the same bits, and they are the f64 row sums rounded once.
    // The shapes cover TN (A k-major, the bias-gradient case the packer sums), partial panels,
    // K above one kc block, tiny K and N, K = 0, N = 0.
    ThreadsGuard guard;
    int n = 0;
    for (DType t : {DType::f32, DType::f64, DType::bf16})
      for (auto [M, N, K] : {std::tuple{33, 65, 127}, std::tuple{7, 300, 31}, std::tuple{70, 40, 1100},
                             std::tuple{128, 130, 600}, std::tuple{5, 3, 1}, std::tuple{9, 20, 0}, std::tuple{6, 0, 9}})
        for (int la = 0; la < 3; ++la) {
          ++n;
          set_num_threads(1 + n % 2);
          const Tensor a = operand({M, K}, t, la, false), b = operand({K, N}, t, n % 3, false);
          // The oracle: f64 sums of A's values, k ascending, rounded once to t.
          const auto av = to_dtype(a, DType::f64).to_vector<double>();
          std::vector<double> want(static_cast<size_t>(M), 0.0);
          for (int64_t i = 0; i < M; ++i)
            for (int64_t k = 0; k < K; ++k) want[i] += av[i * K + k];
          const Tensor want_t = to_dtype(from_vector(want, {M}, {.dtype = DType::f64}), t);
          for (const auto& v : versions()) {
            INFO("version ", v, " dtype ", std::string(dtype_name(t)), " M N K ", M, " ", N, " ", K, " layout ", la,
                 " threads ", get_num_threads());
            Tensor c = output_like({M, N}, t, false), sums = empty({M}, {.dtype = t});
            fill_raw(sums, std::nan(""));
            kernels::MatmulParams p = matmul_params(a, b, c, 1.0, 0.0, Tensor(), kernels::Activation::none);
            p.a_sums = sums.buf();
            if (!kernels::matmul_family().accepts(v, p)) continue;
            kernels::matmul_family().run_version(v, p);
            CHECK_EQUAL_TENSOR(sums, want_t);
            // and C is still the product (a_sums may route a skinny shape through the packed driver,
            // so the summation order, not the result, can differ from a call without it)
            Tensor c2 = output_like({M, N}, t, false);
            kernels::matmul_family().run_version(
                v, matmul_params(a, b, c2, 1.0, 0.0, Tensor(), kernels::Activation::none));
            const double tol = t == DType::bf16 ? 2e-2 : t == DType::f32 ? 1e-5 : 1e-12;
            CHECK_CLOSE(c, c2, tol, tol * std::sqrt(static_cast<double>(K) + 1));
          }
        }
  }

  TEST_CASE("matmul: a_sums is refused with a batched problem or the wrong shape") {
    Tensor a = randn({2, 3, 4}), b = randn({2, 4, 5}), c = empty({2, 3, 5}), sums = empty({3});
    kernels::MatmulParams p = matmul_params(a, b, c, 1.0, 0.0, Tensor(), kernels::Activation::none);
    p.a_sums = sums.buf();
    for (const auto& v : versions()) {
      if (!kernels::matmul_family().accepts(v, p)) continue;
      INFO("version ", v);
      CHECK_THROWS_WITH_AS(kernels::matmul_family().run_version(v, p), doctest::Contains("a_sums needs a 2-d problem"),
                           Error);
    }
    Tensor a2 = randn({3, 4}), b2 = randn({4, 5}), c2 = empty({3, 5}), wrong = empty({4});
    kernels::MatmulParams q = matmul_params(a2, b2, c2, 1.0, 0.0, Tensor(), kernels::Activation::none);
    q.a_sums = wrong.buf();
    CHECK_THROWS_WITH_AS(kernels::matmul_family().run(DeviceType::cpu, q), doctest::Contains("[M] output"), Error);
  }

  TEST_CASE("matmul: small-integer operands are exact in any summation order") {
    ThreadsGuard guard;
    for (int threads : {1, 2}) {
      set_num_threads(threads);
      for (auto [M, N, K] :
           {std::tuple{65, 127, 33}, std::tuple{127, 31, 300}, std::tuple{1, 7, 1000}, std::tuple{100, 70, 700}})
        for (int la = 0; la < 3; ++la) {
          Tensor a = operand({M, K}, DType::f32, la, true), b = operand({K, N}, DType::f32, 2 - la, true);
          Case cs = make_case(a, b, DType::f32, la == 1);
          cs.exact = true;
          CHECK(check_all(cs) >= 2);
          cs.c0 = to_dtype(randint(-8, 9, {M, N}), DType::f32);
          cs.alpha = 2.0;
          cs.beta = -1.0;
          cs.c_transposed = false;
          cs.bias = to_dtype(randint(-8, 9, {N}), DType::f32);
          cs.act = kernels::Activation::relu;
          CHECK(check_all(cs) >= 2);
        }
    }
  }

  TEST_CASE("matmul: skinny and narrow shapes (M or N in 1..64), every layout, batched, epilogue") {
    // cpu_avx512 sends M or N <= 16 to the unpacked skinny kernels (axpy and dot forms, C^T
    // when N is the small one), N <= 16 / 32 to narrower tiles, and reads A (narrow C) or B
    // (short C, e.g. batched) in place instead of packing it. Batched cases (batch 2) skip the
    // skinny kernels and exercise the in-place reads of the packed driver.
    ThreadsGuard guard;
    int n = 0;
    for (int64_t M : {1, 2, 5, 9, 16, 17, 24, 64})
      for (int64_t N : {1, 3, 16, 17, 32, 33, 48, 64})
        for (int64_t K : {1, 31, 300}) {
          ++n;
          set_num_threads(1 + n % 2);
          const Shape sa = n % 4 == 0 ? Shape{2, M, K} : Shape{M, K}, sb = n % 4 == 0 ? Shape{2, K, N} : Shape{K, N};
          Case cs = make_case(operand(sa, DType::f32, n % 3, false), operand(sb, DType::f32, (n / 3) % 3, false),
                              DType::f32, n % 7 == 0);
          if (n % 5 == 0) cs.bias = randn({N});
          if (n % 6 == 0) cs.act = kernels::Activation::gelu_tanh;
          if (n % 8 == 0) {
            cs.c0 = randn(cs.c0.sizes());
            cs.beta = 0.5;
          }
          CHECK(check_all(cs) >= 2);
        }
    // short batched C with row-major B: B's full panels are read in place
    for (int64_t M : {1, 5, 12, 17})
      for (int64_t N : {16, 32, 64, 130}) {
        ++n;
        set_num_threads(1 + n % 2);
        Case cs = make_case(operand({3, M, 300}, DType::f32, n % 3, false), operand({3, 300, N}, DType::f32, 0, false),
                            DType::f32);
        if (n % 2) cs.bias = randn({N});
        CHECK(check_all(cs) >= 2);
      }
  }

  TEST_CASE("matmul: bf16 over every layout, exact with small integers (the vectorized packing paths)") {
    // Shapes chosen for the packers' cases: full 14-row A / 32-column B panels with K >= 32
    // (register transposes) and their scalar tails (odd K, K not a multiple of 32), K beyond one
    // kc block (1100), and skinny M or N. Small integers are exact in bf16 and in an f32 sum, so
    // any misplaced pair shows as an inequality.
    ThreadsGuard guard;
    int n = 0;
    for (auto [M, N, K] : {std::tuple{14, 32, 64}, std::tuple{29, 65, 67}, std::tuple{45, 97, 1100},
                           std::tuple{1, 64, 40}, std::tuple{64, 1, 41}, std::tuple{33, 40, 33}})
      for (int la = 0; la < 3; ++la)
        for (int lb = 0; lb < 3; ++lb) {
          ++n;
          set_num_threads(1 + n % 2);
          Case cs = make_case(operand({M, K}, DType::bf16, la, true), operand({K, N}, DType::bf16, lb, true),
                              DType::bf16, n % 4 == 0);
          cs.exact = true;
          check_all(cs);
          cs.c0 = to_dtype(randint(-8, 9, {M, N}), DType::bf16);  // the vectorized beta path
          cs.alpha = 2.0;
          cs.beta = -1.0;
          CHECK(check_all(cs) >= 2);
        }
  }

  TEST_CASE("matmul: one and two threads give bitwise-equal results") {
    ThreadsGuard guard;
    for (DType t : {DType::f32, DType::bf16}) {
      Tensor a = randn({2, 130, 257}, {.dtype = t}), b = randn({2, 257, 70}, {.dtype = t});
      Tensor a1 = randn({1, 600}, {.dtype = t}), b1 = randn({600, 300}, {.dtype = t});  // a skinny one: split along N
      for (const auto& v : versions())
        for (auto [x, y] : {std::pair{a, b}, std::pair{a1, b1}}) {
          Shape cs = x.sizes();
          cs.back() = y.size(-1);
          Tensor c1 = empty(cs, {.dtype = t}), c2 = empty(cs, {.dtype = t});
          if (!kernels::matmul_family().accepts(v, matmul_params(x, y, c1, 1.0, 0.0))) continue;
          set_num_threads(1);
          kernels::matmul_family().run_version(v, matmul_params(x, y, c1, 1.0, 0.0));
          set_num_threads(2);
          kernels::matmul_family().run_version(v, matmul_params(x, y, c2, 1.0, 0.0));
          INFO("version ", v, " dtype ", std::string(dtype_name(t)), " shape ", shape_str(cs));
          CHECK_EQUAL_TENSOR(c2, c1);
        }
    }
  }

  TEST_CASE("matmul: bf16 and f16 inputs accumulate in f32 and round once") {
    for (DType t : {DType::bf16, DType::f16})
      for (auto [M, N, K] :
           {std::tuple{33, 65, 127}, std::tuple{1, 31, 7}, std::tuple{127, 7, 300}, std::tuple{65, 1000, 33}}) {
        check_all(make_case(operand({M, K}, t, 0, false), operand({K, N}, t, 1, false), t));
        Case cs = make_case(operand({M, K}, t, 2, false), operand({K, N}, t, 0, false), t, true);
        cs.c0 = randn({M, N}, {.dtype = t});
        cs.alpha = 0.5;
        cs.beta = 1.0;
        check_all(cs);
      }
    // f32 accumulation is visible: 4096 ones sum to 4096 exactly (a bf16 accumulator stalls at 256)
    Tensor a = ones({1, 4096}, {.dtype = DType::bf16}), b = ones({4096, 1}, {.dtype = DType::bf16});
    for (const auto& v : versions()) {
      Tensor c = empty({1, 1}, {.dtype = DType::bf16});
      if (!kernels::matmul_family().accepts(v, matmul_params(a, b, c, 1.0, 0.0))) continue;
      kernels::matmul_family().run_version(v, matmul_params(a, b, c, 1.0, 0.0));
      INFO("version ", v);
      CHECK(c.item() == 4096.0);
    }
  }

  TEST_CASE("matmul: the op's default pick is the best version that accepts") {
    const CpuFeatures& f = cpu_features();
    Tensor a = randn({8, 8}), b = randn({8, 8}), c = empty({8, 8});
    auto& fam = kernels::matmul_family();
    const std::string best = fam.accepts("cpu_avx512", matmul_params(a, b, c, 1, 0)) ? "cpu_avx512"
                             : fam.accepts("cpu_avx2", matmul_params(a, b, c, 1, 0)) ? "cpu_avx2"
                                                                                     : "cpu_packed";
    const auto all = versions();
    CHECK(all.front() == "cpu_amx");  // the top rung; it takes only bf16, so f32 goes to the next
    CHECK(!fam.accepts("cpu_amx", matmul_params(a, b, c, 1, 0)));
    if (f.amx_tile && f.amx_bf16) {
      Tensor ab = randn({8, 8}, {.dtype = DType::bf16}), cb = empty({8, 8}, {.dtype = DType::bf16});
      CHECK(fam.accepts("cpu_amx", matmul_params(ab, ab, cb, 1, 0)));
    }
    for (const auto& v : all)
      if (fam.accepts(v, matmul_params(a, b, c, 1, 0))) {
        CHECK(v == best);
        break;
      }
  }
}
