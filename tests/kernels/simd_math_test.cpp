// The vectorizable f32 math of kernels/cpu/simd_math.h against std:: in f64: the max error
// bounds its header documents, over every binade from the subnormals to overflow, both signs,
// and the special values. Evaluated through an `omp simd` loop, so the vector code is what is
// checked (not a scalar inlining that might contract differently).
#include "kernels/cpu/simd_math.h"

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "tests/helpers.h"

namespace simd = tessel::kernels::simd;

namespace {

constexpr double kMinNormal = 1.1754943508222875e-38;
constexpr double kMinSub = 1.401298464324817e-45;  // 2^-149

// One f32 ulp at the magnitude of r (the subnormal spacing below the normal range).
double ulp_of(double r) {
  r = std::fabs(r);
  if (r < kMinNormal) return kMinSub;
  int e;
  std::frexp(r, &e);
  return std::ldexp(1.0, e - 24);
}

// Sample inputs: 512 points in every binade 2^-149 .. 2^127, both signs.
const std::vector<float>& sweep_inputs() {
  static const std::vector<float> xs = [] {
    std::vector<float> v;
    for (int sign = 0; sign < 2; ++sign)
      for (int e = -149; e < 128; ++e)
        for (int k = 0; k < 512; ++k) {
          float x = std::ldexp(1.0f + static_cast<float>(k) / 512.0f, e);
          if (std::isfinite(x)) v.push_back(sign ? -x : x);
        }
    return v;
  }();
  return xs;
}

struct Sweep {
  double max_ulp = 0, worst_x = 0;
  int special_mismatch = 0;
  std::string first_mismatch;
};

// Evaluates f over the sweep in a vectorizable loop and compares with g in f64. Results that
// are subnormal in f32 are judged in units of the smallest subnormal (absolute error).
template <class F, class G>
Sweep sweep(F f, G g) {
  const auto& xs = sweep_inputs();
  std::vector<float> ys(xs.size());
  const float* x = xs.data();
  float* y = ys.data();
  const int64_t n = static_cast<int64_t>(xs.size());
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] = f(x[i]);
  Sweep s;
  for (int64_t i = 0; i < n; ++i) {
    const double r = g(static_cast<double>(x[i]));
    const bool special = std::isnan(r) || std::fabs(r) > std::numeric_limits<float>::max();
    if (special) {
      const bool same = std::isnan(r) ? std::isnan(y[i]) : y[i] == static_cast<float>(r);
      if (!same && s.special_mismatch++ == 0)
        s.first_mismatch = "x=" + std::to_string(x[i]) + " got " + std::to_string(y[i]);
      continue;
    }
    const double u = std::fabs(static_cast<double>(y[i]) - r) / ulp_of(r);
    if (!(u <= s.max_ulp)) s.max_ulp = u, s.worst_x = x[i];  // a NaN result counts as infinite error
    if (std::isnan(u)) s.max_ulp = INFINITY;
  }
  return s;
}

void check_sweep(const std::string& name, const Sweep& s, double bound) {
  INFO(name, ": max ", s.max_ulp, " ulp at x = ", s.worst_x, "; special mismatches ", s.special_mismatch, " ",
       s.first_mismatch);
  CHECK(s.max_ulp <= bound);
  CHECK(s.special_mismatch == 0);
}

}  // namespace

TEST_SUITE("kernels") {
  TEST_CASE("simd_math: max ulp error against std:: in f64 over every binade") {
    check_sweep("exp", sweep([](float x) { return simd::exp_f32(x); }, [](double x) { return std::exp(x); }), 1.0);
    check_sweep("log", sweep([](float x) { return simd::log_f32(x); }, [](double x) { return std::log(x); }), 1.5);
    check_sweep("tanh", sweep([](float x) { return simd::tanh_f32(x); }, [](double x) { return std::tanh(x); }), 1.5);
    check_sweep(
        "sigmoid",
        sweep([](float x) { return simd::sigmoid_f32(x); }, [](double x) { return 1.0 / (1.0 + std::exp(-x)); }), 2.5);
    check_sweep("erf", sweep([](float x) { return simd::erf_f32(x); }, [](double x) { return std::erf(x); }), 2.0);
    check_sweep("erfc", sweep([](float x) { return simd::erfc_f32(x); }, [](double x) { return std::erfc(x); }), 4.5);
    check_sweep(
        "ncdf",
        sweep([](float x) { return simd::ncdf_f32(x); }, [](double x) { return 0.5 * std::erfc(-x / std::sqrt(2.0)); }),
        5.0);
    check_sweep("npdf",
                sweep([](float x) { return simd::npdf_f32(x); },
                      [](double x) { return std::exp(-0.5 * x * x) / std::sqrt(2.0 * M_PI); }),
                2.5);
    // The pair the GELU gradient uses: the same cdf, and a pdf as accurate as npdf's.
    check_sweep("ncdf_npdf (cdf)",
                sweep(
                    [](float x) {
                      float c, d;
                      simd::ncdf_npdf(x, c, d);
                      return c;
                    },
                    [](double x) { return 0.5 * std::erfc(-x / std::sqrt(2.0)); }),
                5.0);
    check_sweep("ncdf_npdf (pdf)",
                sweep(
                    [](float x) {
                      float c, d;
                      simd::ncdf_npdf(x, c, d);
                      return d;
                    },
                    [](double x) { return std::exp(-0.5 * x * x) / std::sqrt(2.0 * M_PI); }),
                2.5);
  }

  TEST_CASE("simd_math: special values") {
    const float inf = INFINITY, nan = NAN;
    CHECK(std::isnan(simd::exp_f32(nan)));
    CHECK(simd::exp_f32(inf) == inf);
    CHECK(simd::exp_f32(-inf) == 0.0f);
    CHECK(simd::exp_f32(89.0f) == inf);
    CHECK(simd::exp_f32(-103.0f) > 0.0f);  // a subnormal, not flushed
    CHECK(simd::exp_f32(0.0f) == 1.0f);
    CHECK(std::isnan(simd::log_f32(nan)));
    CHECK(std::isnan(simd::log_f32(-1.0f)));
    CHECK(std::isnan(simd::log_f32(-inf)));
    CHECK(simd::log_f32(0.0f) == -inf);
    CHECK(simd::log_f32(-0.0f) == -inf);
    CHECK(simd::log_f32(inf) == inf);
    CHECK(simd::log_f32(1.0f) == 0.0f);
    CHECK(simd::log_f32(1e-45f) == doctest::Approx(std::log(1.401298464324817e-45)).epsilon(1e-6));
    CHECK(std::isnan(simd::tanh_f32(nan)));
    CHECK(simd::tanh_f32(inf) == 1.0f);
    CHECK(simd::tanh_f32(-inf) == -1.0f);
    CHECK(simd::tanh_f32(1e-40f) == 1e-40f);
    CHECK(std::isnan(simd::sigmoid_f32(nan)));
    CHECK(simd::sigmoid_f32(inf) == 1.0f);
    CHECK(simd::sigmoid_f32(-inf) == 0.0f);
    CHECK(simd::sigmoid_f32(-100.0f) > 0.0f);  // e^-100 ~ 3.7e-44: a subnormal, not 0
    CHECK(simd::sigmoid_f32(0.0f) == 0.5f);
    CHECK(std::isnan(simd::erf_f32(nan)));
    CHECK(simd::erf_f32(inf) == 1.0f);
    CHECK(simd::erf_f32(-inf) == -1.0f);
    CHECK(std::isnan(simd::erfc_f32(nan)));
    CHECK(simd::erfc_f32(inf) == 0.0f);
    CHECK(simd::erfc_f32(-inf) == 2.0f);
    for (float x : {0.0f, -0.0f, 1.5f, -3.25f, -12.0f, 9.0f, inf, -inf, nan}) {
      float c, d;
      simd::ncdf_npdf(x, c, d);
      INFO("x = ", x);
      const float want_c = simd::ncdf_f32(x);
      CHECK((std::isnan(want_c) ? std::isnan(c) : c == want_c));  // the same cdf, bit for bit
      if (std::isnan(x))
        CHECK(std::isnan(d));
      else if (std::isinf(x))
        CHECK(d == 0.0f);
      else
        CHECK(d == doctest::Approx(simd::npdf_f32(x)).epsilon(1e-6));
    }
    CHECK(std::isnan(simd::ncdf_f32(nan)));
    CHECK(simd::ncdf_f32(inf) == 1.0f);
    CHECK(simd::ncdf_f32(-inf) == 0.0f);
    CHECK(simd::ncdf_f32(-12.0f) > 0.0f);  // 1.8e-33: the lower tail keeps its precision
    CHECK(simd::ncdf_f32(-12.0f) == doctest::Approx(1.7764821120776e-33).epsilon(1e-6));
  }
}
