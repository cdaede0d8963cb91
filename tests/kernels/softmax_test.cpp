// Every registered softmax version against "ref": odd row/column counts, strided class dims,
// non-contiguous views, all four float dtypes, outputs poisoned with NaN before each run.
#include "kernels/softmax.h"

#include <cmath>

#include "kernels/vec_exp.h"
#include "tests/helpers.h"

using namespace tessel;
using namespace tessel::testing;
using kernels::SoftmaxOp;

namespace {

const std::vector<int64_t> kSizes = {1, 2, 3, 7, 31, 33, 65, 127, 1000};

// tol by dtype for two computations of the same math that both round to the dtype at the end.
std::pair<double, double> tol_for(DType t) {
  switch (t) {
    case DType::f64: return {1e-12, 1e-13};
    case DType::f32: return {2e-5, 2e-6};
    case DType::f16: return {2e-3, 2e-3};
    default: return {2e-2, 2e-2};
  }
}

// An [R, C] tensor in one of three layouts: 0 contiguous, 1 the class dim strided (a transposed
// [C, R] buffer), 2 a non-contiguous slice of a larger buffer.
Tensor make(int64_t R, int64_t C, int layout, DType dt) {
  NoGradGuard ng;
  if (layout == 0) return randn({R, C}, {.dtype = dt});
  if (layout == 1) return transpose(randn({C, R}, {.dtype = dt}), 0, 1).detach();
  return noncontig_randn({R, C}, dt);
}

Tensor run(const std::string& version, SoftmaxOp op, const Tensor& in, const Tensor& grad, bool strided_out) {
  NoGradGuard ng;
  const int64_t R = in.size(0), C = in.size(1);
  // Output in a layout of its own: contiguous, or with the class dim strided.
  Tensor out = strided_out ? transpose(empty({C, R}, {.dtype = in.dtype()}), 0, 1).detach()
                           : empty({R, C}, {.dtype = in.dtype()});
  fill_raw(out, NAN);
  kernels::SoftmaxParams p;
  p.op = op;
  p.out = out.buf();
  p.in = in.buf();
  if (grad.defined()) p.grad = grad.buf();
  kernels::softmax_family().run_version(version, p);
  return out;
}

}  // namespace

TEST_SUITE("kernels") {
  TEST_CASE("softmax: every version equals ref on odd shapes, layouts and dtypes") {
    const SoftmaxOp ops[] = {SoftmaxOp::softmax, SoftmaxOp::log_softmax, SoftmaxOp::softmax_backward,
                             SoftmaxOp::log_softmax_backward};
    const DType dtypes[] = {DType::f32, DType::f64, DType::bf16, DType::f16};
    auto versions = kernels::softmax_family().versions(DeviceType::cpu);
    REQUIRE(versions.size() >= 2);
    int runs = 0;
    for (int64_t R : kSizes)
      for (int64_t C : kSizes) {
        if (R * C > 40000) continue;
        for (DType dt : dtypes)
          for (SoftmaxOp op : ops) {
            // Keep the sweep fast: every layout for f32, one rotating layout for the others.
            for (int layout = 0; layout < 3; ++layout) {
              if (dt != DType::f32 && layout != static_cast<int>((R + C) % 3)) continue;
              Tensor in = make(R, C, layout, dt);
              Tensor grad;
              if (kernels::softmax_is_backward(op)) {
                // Backward runs on real outputs (probabilities or log-probabilities), as in use:
                // on arbitrary y the formulas cancel catastrophically and compare nothing.
                SoftmaxOp fwd = op == SoftmaxOp::softmax_backward ? SoftmaxOp::softmax : SoftmaxOp::log_softmax;
                Tensor y = run("ref", fwd, in, Tensor(), false);
                copy_into(in, y);
                grad = make(R, C, (layout + 1) % 3, dt);
              }
              const bool strided_out = layout == 2;
              Tensor want = run("ref", op, in, grad, strided_out);
              auto [rtol, atol] = tol_for(dt);
              for (const auto& v : versions) {
                if (v == "ref") continue;
                Tensor got = run(v, op, in, grad, strided_out);
                auto c = closeness(got, want, rtol, atol);
                CHECK_MESSAGE(c.ok, v, " op ", static_cast<int>(op), " ", std::string(dtype_name(dt)), " [", R, ", ", C,
                              "] layout ", layout, ": ", c.str());
                ++runs;
              }
            }
          }
      }
    CHECK(runs > 500);
  }

  TEST_CASE("softmax: the causal mask, in every version, equals ref; rows that see nothing are NaN") {
    auto versions = kernels::softmax_family().versions(DeviceType::cpu);
    const std::pair<int64_t, int64_t> shapes[] = {{1, 1}, {7, 7}, {7, 31}, {33, 7}, {31, 65}, {65, 33}, {3, 1000}};
    for (auto [T, S] : shapes)
      for (DType dt : {DType::f32, DType::f64, DType::bf16})
        for (SoftmaxOp op : {SoftmaxOp::softmax, SoftmaxOp::log_softmax})
          for (int layout : {0, 1}) {
            const int64_t B = 3, R = B * T;
            Tensor in = make(R, S, layout, dt);
            auto causal = [&](const std::string& v) {
              NoGradGuard ng;
              Tensor out = empty({R, S}, {.dtype = dt});
              fill_raw(out, NAN);
              kernels::SoftmaxParams p{op, out.buf(), in.buf(), {}};
              p.causal_t = T;
              p.causal_shift = S - T;
              kernels::softmax_family().run_version(v, p);
              return out;
            };
            Tensor want = causal("ref");
            // ref itself: row i of each matrix keeps i + S - T + 1 entries; the rest are 0
            // (-inf for log_softmax); a row that keeps none is NaN.
            for (int64_t r = 0; r < R; ++r) {
              const int64_t keep = r % T + S - T + 1;
              for (int64_t c = 0; c < S; ++c) {
                const double y = want.at({r, c});
                INFO("T ", T, " S ", S, " row ", r, " col ", c);
                if (keep <= 0)
                  CHECK(std::isnan(y));
                else if (c >= keep)
                  CHECK(y == (op == SoftmaxOp::softmax ? 0.0 : -INFINITY));
                else
                  CHECK(std::isfinite(y));
              }
            }
            auto [rtol, atol] = tol_for(dt);
            for (const auto& v : versions) {
              if (v == "ref") continue;
              Tensor got = causal(v);
              for (int64_t r = 0; r < R; ++r) {
                const int64_t keep = std::clamp<int64_t>(r % T + S - T + 1, 0, S);
                if (keep == 0) {
                  for (int64_t c = 0; c < S; ++c) CHECK(std::isnan(got.at({r, c})));
                  continue;
                }
                auto cl = closeness(narrow(narrow(got, 0, r, 1), 1, 0, keep), narrow(narrow(want, 0, r, 1), 1, 0, keep),
                                    rtol, atol);
                CHECK_MESSAGE(cl.ok, v, " T ", T, " S ", S, " row ", r, ": ", cl.str());
                for (int64_t c = keep; c < S; ++c) CHECK(got.at({r, c}) == want.at({r, c}));
              }
            }
          }
  }

  TEST_CASE("softmax: the vectorizable exp_f32 is within 2 ulp of exp, with IEEE edge cases") {
    double worst = 0;
    for (int i = 0; i <= 200000; ++i) {
      const float x = -87.3f + 176.0f * static_cast<float>(i) / 200000.0f;  // the normal results
      const double want = std::exp(static_cast<double>(x));
      if (want > 3.4e38) continue;
      worst = std::max(worst, std::fabs(kernels::exp_f32(x) - want) / want);
    }
    CHECK(worst < 2.4e-7);  // 2 ulp of f32
    CHECK(kernels::exp_f32(0.0f) == 1.0f);
    // Subnormal results, to within their absolute spacing.
    for (float x : {-90.0f, -95.5f, -100.0f, -103.0f})
      CHECK(std::fabs(kernels::exp_f32(x) - std::exp(static_cast<double>(x))) < 2e-45);
    CHECK(kernels::exp_f32(-INFINITY) == 0.0f);
    CHECK(kernels::exp_f32(-1000.0f) == 0.0f);
    CHECK(kernels::exp_f32(INFINITY) == INFINITY);
    CHECK(kernels::exp_f32(89.0f) == INFINITY);
    CHECK(std::isnan(kernels::exp_f32(NAN)));
  }

  TEST_CASE("softmax: ref against f64 math and rows summing to one") {
    Tensor x = randn({7, 65}, {.dtype = DType::f64});
    Tensor y = empty({7, 65}, {.dtype = DType::f64});
    fill_raw(y, NAN);
    kernels::SoftmaxParams p{SoftmaxOp::softmax, y.buf(), x.buf(), {}};
    kernels::softmax_family().run_version("ref", p);
    for (int64_t r = 0; r < 7; ++r) {
      double m = -INFINITY, s = 0, total = 0;
      for (int64_t c = 0; c < 65; ++c) m = std::max(m, x.at({r, c}));
      for (int64_t c = 0; c < 65; ++c) s += std::exp(x.at({r, c}) - m);
      for (int64_t c = 0; c < 65; ++c) {
        CHECK(y.at({r, c}) == doctest::Approx(std::exp(x.at({r, c}) - m) / s).epsilon(1e-12));
        total += y.at({r, c});
      }
      CHECK(total == doctest::Approx(1.0).epsilon(1e-12));
    }
  }

  TEST_CASE("softmax: a NaN in a row makes that row NaN and leaves the others alone, in every version") {
    for (const auto& v : kernels::softmax_family().versions(DeviceType::cpu)) {
      Tensor x = randn({3, 5});
      x.set_at({1, 2}, NAN);
      Tensor y = run(v, SoftmaxOp::softmax, x, Tensor(), false);
      for (int64_t c = 0; c < 5; ++c) {
        CHECK(std::isnan(y.at({1, c})));
        CHECK(std::isfinite(y.at({0, c})));
        CHECK(std::isfinite(y.at({2, c})));
      }
    }
  }

  TEST_CASE("softmax: long rows whose max grows block after block (the online rescaling), every version") {
    // Row 0 ramps up, so every 512-element block of the cpu version's first pass raises the max
    // and rescales the running sum (by factors down to e^-51, near f32's limit); row 1 ramps
    // down (the max is in the first block); row 2 holds -inf everywhere but one element.
    // 70000 also takes the path for rows too long to keep per-block maxima (> 64K elements).
    for (const int64_t C : {int64_t{2500}, int64_t{70000}}) {
      Tensor x = empty({3, C});
      for (int64_t c = 0; c < C; ++c) {
        x.set_at({0, c}, 0.1 * static_cast<double>(c) - 120.0);
        x.set_at({1, c}, -0.1 * static_cast<double>(c));
        x.set_at({2, c}, c == 1700 ? 3.0 : -INFINITY);
      }
      Tensor x64 = to_dtype(x, DType::f64);
      for (SoftmaxOp op : {SoftmaxOp::softmax, SoftmaxOp::log_softmax}) {
        Tensor want = run("ref", op, x64, Tensor(), false);
        for (const auto& v : kernels::softmax_family().versions(DeviceType::cpu)) {
          INFO("version ", v, " op ", op == SoftmaxOp::softmax ? "softmax" : "log_softmax");
          Tensor got = run(v, op, x, Tensor(), false);
          CHECK_CLOSE(got, want, 2e-5, 1e-30);
        }
      }
    }
  }
}
