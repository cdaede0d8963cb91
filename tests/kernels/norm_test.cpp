// Every registered norm version against "ref": layer_norm and rms_norm, forward (y, mean,
// rstd) and backward (dx, dweight, dbias), with and without weight/bias, odd shapes, all float
// dtypes, outputs poisoned with NaN; and the cpu backward is bitwise deterministic across
// thread counts.
#include "kernels/norm.h"

#include <cmath>

#include "tests/helpers.h"

using namespace tessel;
using namespace tessel::testing;
using kernels::NormOp;

namespace {

const std::vector<int64_t> kSizes = {1, 2, 3, 7, 31, 33, 65, 127, 1000};

std::pair<double, double> tol_for(DType t) {
  switch (t) {
    case DType::f64: return {1e-11, 1e-12};
    case DType::f32: return {1e-4, 2e-5};
    case DType::f16: return {4e-3, 4e-3};
    default: return {3e-2, 3e-2};
  }
}

double max_abs(const Tensor& t) {
  double m = 0;
  for (double v : t.to_vector<double>()) m = std::max(m, std::fabs(v));
  return m;
}

// rstd_r * max_c |m[r, c]| * wmax for every row r: the size of the terms a row's result is made of.
std::vector<double> row_scale(const Tensor& rstd, const Tensor& m, double wmax) {
  const int64_t R = m.size(0), C = m.size(1);
  auto mv = m.to_vector<double>();
  std::vector<double> s(static_cast<size_t>(R));
  for (int64_t r = 0; r < R; ++r) {
    double mx = 0;
    for (int64_t c = 0; c < C; ++c) mx = std::max(mx, std::fabs(mv[r * C + c]));
    s[r] = std::fabs(rstd.at({r})) * mx * wmax;
  }
  return s;
}

// |got - want| <= rtol |want| + atol max(1, scale[r]) for every element of row r; NaN fails.
void check_rows(const std::string& what, const Tensor& got, const Tensor& want, const std::vector<double>& scale,
                double rtol, double atol) {
  const int64_t R = want.size(0), C = want.size(1);
  auto g = got.to_vector<double>(), w = want.to_vector<double>();
  double worst = 0;
  int64_t at = 0;
  for (int64_t i = 0; i < R * C; ++i) {
    double tol = rtol * std::fabs(w[i]) + atol * std::max(1.0, scale[i / C]);
    double ratio = std::isnan(g[i]) ? INFINITY : std::fabs(g[i] - w[i]) / tol;
    if (!(ratio <= worst)) {
      worst = ratio;
      at = i;
    }
  }
  CHECK_MESSAGE(worst <= 1.0, what, ": worst ratio ", worst, " at flat index ", at, ": got ", g[at], ", expected ",
                w[at]);
}

struct NormOut {
  Tensor y, mean, rstd, dx, dw, db;
};

Tensor poisoned(const Shape& s, DType t) {
  Tensor r = empty(s, {.dtype = t});
  fill_raw(r, NAN);
  return r;
}

NormOut run(const std::string& version, bool layer, const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& dy,
            double eps) {
  const int64_t R = x.size(0), C = x.size(1);
  const DType st = kernels::norm_stat_dtype(x.dtype());
  NormOut o{poisoned({R, C}, x.dtype()),
            layer ? poisoned({R}, st) : Tensor(),
            poisoned({R}, st),
            poisoned({R, C}, x.dtype()),
            w.defined() ? poisoned({C}, x.dtype()) : Tensor(),
            b.defined() ? poisoned({C}, x.dtype()) : Tensor()};
  kernels::NormParams p;
  p.op = layer ? NormOp::layer_norm : NormOp::rms_norm;
  p.rows = R;
  p.cols = C;
  p.eps = eps;
  p.x = x.buf();
  if (w.defined()) p.weight = w.buf();
  if (b.defined()) p.bias = b.buf();
  if (layer) p.mean = o.mean.buf();
  p.rstd = o.rstd.buf();
  p.y = o.y.buf();
  kernels::norm_family().run_version(version, p);
  kernels::NormParams q;
  q.op = layer ? NormOp::layer_norm_backward : NormOp::rms_norm_backward;
  q.rows = R;
  q.cols = C;
  q.x = x.buf();
  if (w.defined()) q.weight = w.buf();
  if (layer) q.mean = o.mean.buf();
  q.rstd = o.rstd.buf();
  q.dy = dy.buf();
  q.dx = o.dx.buf();
  if (w.defined()) q.dweight = o.dw.buf();
  if (b.defined()) q.dbias = o.db.buf();
  kernels::norm_family().run_version(version, q);
  return o;
}

}  // namespace

TEST_SUITE("kernels") {
  TEST_CASE("norm: every version equals ref on odd shapes and dtypes, forward and backward") {
    const DType dtypes[] = {DType::f32, DType::f64, DType::bf16, DType::f16};
    auto versions = kernels::norm_family().versions(DeviceType::cpu);
    REQUIRE(versions.size() >= 2);
    int runs = 0;
    for (int64_t R : kSizes)
      for (int64_t C : kSizes) {
        if (R * C > 40000) continue;
        for (DType dt : dtypes)
          for (int variant = 0; variant < 4; ++variant) {
            const bool layer = variant < 2;
            const bool affine = variant % 2 == 0;
            if (dt != DType::f32 && variant != static_cast<int>((R + C) % 4)) continue;
            // A mean well away from zero checks that the variance is taken around the mean.
            Tensor x = to_dtype(randn({R, C}, {.dtype = DType::f64}) * 2.0 + 3.0, dt);
            Tensor w = affine ? to_dtype(randn({C}, {.dtype = DType::f64}) + 1.0, dt) : Tensor();
            Tensor b = affine && layer ? randn({C}, {.dtype = dt}) : Tensor();
            Tensor dy = randn({R, C}, {.dtype = dt});
            NormOut want = run("ref", layer, x, w, b, dy, 1e-5);
            auto [rtol, atol] = tol_for(dt);
            for (const auto& v : versions) {
              if (v == "ref") continue;
              NormOut got = run(v, layer, x, w, b, dy, 1e-5);
              std::string what = v + (layer ? " layer_norm " : " rms_norm ") + dtype_name(dt) + " [" +
                                 std::to_string(R) + ", " + std::to_string(C) + "]" + (affine ? " affine" : "");
              auto cmp = [&](const char* name, const Tensor& a, const Tensor& e, double scale) {
                if (!e.defined()) return;
                auto c = closeness(a, e, rtol * scale, atol * scale);
                CHECK_MESSAGE(c.ok, what, " ", std::string(name), ": ", c.str());
              };
              // y and dx are differences of terms of size rstd |x| and rstd |dy w|, which nearly
              // cancel when a row's variance is small (C = 1 or 2 above all): their error scales
              // with those terms, row by row.
              const double wmax = w.defined() ? max_abs(w) : 1.0;
              check_rows(what + " y", got.y, want.y, row_scale(want.rstd, x, wmax), rtol, atol);
              cmp("mean", got.mean, want.mean, 1);
              cmp("rstd", got.rstd, want.rstd, 1);
              check_rows(what + " dx", got.dx, want.dx, row_scale(want.rstd, dy, wmax), 2 * rtol, 2 * atol);
              // dw and db are sums over R rows, so their absolute error grows with sqrt(R).
              cmp("dweight", got.dw, want.dw, 2 * std::sqrt(static_cast<double>(R)));
              cmp("dbias", got.db, want.db, 2 * std::sqrt(static_cast<double>(R)));
              ++runs;
            }
          }
      }
    CHECK(runs > 150);
  }

  TEST_CASE("norm: the cpu backward is bitwise identical for any thread count") {
    Tensor x = randn({301, 65}), w = randn({65}), b = randn({65}), dy = randn({301, 65});
    const int before = get_num_threads();
    set_num_threads(1);
    NormOut one = run("cpu", true, x, w, b, dy, 1e-5);
    set_num_threads(3);
    NormOut three = run("cpu", true, x, w, b, dy, 1e-5);
    set_num_threads(before);
    CHECK_EQUAL_TENSOR(three.dx, one.dx);
    CHECK_EQUAL_TENSOR(three.dw, one.dw);
    CHECK_EQUAL_TENSOR(three.db, one.db);
  }

  TEST_CASE("norm: ref statistics are the row mean and 1/sqrt(var + eps)") {
    Tensor x = from_vector({1, 2, 3, 4, -1, 0, 1, 2}, {2, 4}, {.dtype = DType::f64});
    Tensor dy = zeros({2, 4}, {.dtype = DType::f64});
    NormOut o = run("ref", true, x, Tensor(), Tensor(), dy, 0.5);
    CHECK(o.mean.at({0}) == doctest::Approx(2.5));
    CHECK(o.mean.at({1}) == doctest::Approx(0.5));
    CHECK(o.rstd.at({0}) == doctest::Approx(1.0 / std::sqrt(1.25 + 0.5)));
    NormOut r = run("ref", false, x, Tensor(), Tensor(), dy, 0.5);
    CHECK(r.rstd.at({0}) == doctest::Approx(1.0 / std::sqrt(30.0 / 4 + 0.5)));
  }
}
