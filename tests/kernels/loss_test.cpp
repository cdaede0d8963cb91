// Every registered loss version against "ref": cross-entropy (with and without label
// smoothing) and NLL, forward (per-row loss, lse) and backward, odd shapes, strided class dims,
// i64 and i32 targets with ignored rows, all float dtypes, outputs poisoned with NaN.
#include "kernels/loss.h"

#include <cmath>

#include "tests/helpers.h"

using namespace tessel;
using namespace tessel::testing;
using kernels::LossOp;

namespace {

const std::vector<int64_t> kSizes = {1, 2, 3, 7, 31, 33, 65, 127, 1000};

std::pair<double, double> tol_for(DType t) {
  switch (t) {
    case DType::f64: return {1e-11, 1e-12};
    case DType::f32: return {2e-5, 5e-6};
    case DType::f16: return {2e-3, 2e-3};
    default: return {2e-2, 2e-2};
  }
}

Tensor poisoned(const Shape& s, DType t) {
  Tensor r = empty(s, {.dtype = t});
  fill_raw(r, NAN);
  return r;
}

// Targets in [0, C), every third row (when ignore) set to ignore_index.
Tensor make_targets(int64_t N, int64_t C, DType dt, bool ignore) {
  Tensor t = randint(0, C, {N}, {.dtype = DType::i64});
  if (ignore)
    for (int64_t n = 0; n < N; n += 3) t.set_at({n}, -100);
  return to_dtype(t, dt);
}

struct LossOut {
  Tensor loss, lse, dx;
};

LossOut run(const std::string& version, bool ce, const Tensor& x, const Tensor& t, const Tensor& g, double eps) {
  const int64_t N = x.size(0), C = x.size(1);
  const DType acc = kernels::loss_acc_dtype(x.dtype());
  LossOut o{poisoned({N}, acc), ce ? poisoned({N}, acc) : Tensor(), poisoned({N, C}, x.dtype())};
  kernels::LossParams p;
  p.op = ce ? LossOp::cross_entropy : LossOp::nll;
  p.input = x.buf();
  p.target = t.buf();
  p.loss = o.loss.buf();
  if (ce) p.lse = o.lse.buf();
  p.label_smoothing = eps;
  kernels::loss_family().run_version(version, p);
  p.op = ce ? LossOp::cross_entropy_backward : LossOp::nll_backward;
  p.grad_row = g.buf();
  p.dinput = o.dx.buf();
  kernels::loss_family().run_version(version, p);
  return o;
}

}  // namespace

TEST_SUITE("kernels") {
  TEST_CASE("loss: every version equals ref on odd shapes, layouts, dtypes and target types") {
    const DType dtypes[] = {DType::f32, DType::f64, DType::bf16, DType::f16};
    auto versions = kernels::loss_family().versions(DeviceType::cpu);
    REQUIRE(versions.size() >= 2);
    int runs = 0;
    for (int64_t N : kSizes)
      for (int64_t C : kSizes) {
        if (N * C > 40000) continue;
        for (DType dt : dtypes)
          for (int variant = 0; variant < 4; ++variant) {
            if (dt != DType::f32 && variant != static_cast<int>((N + C) % 4)) continue;
            const bool ce = variant != 3;
            const double eps = variant == 1 ? 0.1 : 0.0;
            const bool strided = variant >= 2;  // class dim strided: a transposed [C, N] buffer
            Tensor x = strided ? transpose(randn({C, N}, {.dtype = dt}), 0, 1).detach() : randn({N, C}, {.dtype = dt});
            Tensor t = make_targets(N, C, variant % 2 ? DType::i32 : DType::i64, variant != 0);
            const DType acc = kernels::loss_acc_dtype(dt);
            // Per-row gradients, and (variant 2) one value broadcast with stride 0, as mean/sum give.
            Tensor g = variant == 2 ? expand(scalar_tensor(0.37, {.dtype = acc}).detach(), {N}).detach()
                                    : randn({N}, {.dtype = acc});
            LossOut want = run("ref", ce, x, t, g, eps);
            auto [rtol, atol] = tol_for(dt);
            for (const auto& v : versions) {
              if (v == "ref") continue;
              LossOut got = run(v, ce, x, t, g, eps);
              std::string what = v + (ce ? " cross_entropy " : " nll ") + dtype_name(dt) + " [" + std::to_string(N) +
                                 ", " + std::to_string(C) + "] variant " + std::to_string(variant);
              // Per-row results are f32 (f64) whatever the input dtype: only f32 rounding separates them.
              auto c = closeness(got.loss, want.loss, dt == DType::f64 ? 1e-11 : 2e-5, dt == DType::f64 ? 1e-12 : 2e-5);
              CHECK_MESSAGE(c.ok, what, " loss: ", c.str());
              if (ce) {
                c = closeness(got.lse, want.lse, dt == DType::f64 ? 1e-11 : 2e-5, dt == DType::f64 ? 1e-12 : 2e-5);
                CHECK_MESSAGE(c.ok, what, " lse: ", c.str());
              }
              c = closeness(got.dx, want.dx, rtol, atol);
              CHECK_MESSAGE(c.ok, what, " dx: ", c.str());
              ++runs;
            }
          }
      }
    CHECK(runs > 150);
  }

  TEST_CASE("loss: ignored rows get loss 0 and gradient 0 in every version") {
    for (const auto& v : kernels::loss_family().versions(DeviceType::cpu)) {
      Tensor x = randn({4, 5});
      Tensor t = from_vector_i64({1, -100, 4, -100});
      Tensor g = ones({4});
      LossOut o = run(v, true, x, t, g, 0.2);
      CHECK(o.loss.at({1}) == 0.0);
      CHECK(o.loss.at({3}) == 0.0);
      CHECK(o.loss.at({0}) > 0.0);
      for (int64_t c = 0; c < 5; ++c) {
        CHECK(o.dx.at({1, c}) == 0.0);
        CHECK(o.dx.at({3, c}) == 0.0);
      }
      // A row's cross-entropy gradient sums to zero: softmax and the smoothed target both sum to 1.
      double s = 0;
      for (int64_t c = 0; c < 5; ++c) s += o.dx.at({0, c});
      CHECK(std::fabs(s) < 1e-6);
    }
  }
}
