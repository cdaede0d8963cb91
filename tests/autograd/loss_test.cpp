// cross_entropy / nll_loss / mse_loss: values against a hand-written log-sum-exp (label
// smoothing, ignore_index, every reduction), the [B, T, C] layout, dtypes, f64 gradchecks and
// misuse errors.
#include <cmath>

#include "tests/helpers.h"

using namespace tessel;
using namespace tessel::testing;

namespace {
// The textbook per-row cross-entropy with label smoothing, straight from the definition.
double manual_ce_row(const std::vector<double>& x, int64_t t, double eps) {
  double m = -INFINITY, s = 0, mean_nll = 0;
  for (double v : x) m = std::max(m, v);
  for (double v : x) s += std::exp(v - m);
  double lse = m + std::log(s);
  for (double v : x) mean_nll += (lse - v) / static_cast<double>(x.size());
  return (1 - eps) * (lse - x[t]) + eps * mean_nll;
}

std::vector<double> row(const Tensor& x, int64_t n) {
  std::vector<double> r;
  for (int64_t c = 0; c < x.size(1); ++c) r.push_back(x.at({n, c}));
  return r;
}
}  // namespace

TEST_SUITE("autograd") {
  TEST_CASE("cross_entropy: against a manual log-sum-exp, every reduction, smoothing and ignore_index") {
    Tensor x = from_vector({1, 2, 3, 0, 0, 0, -1, 5, 0.5, 2, 2, -3}, {4, 3}, {.dtype = DType::f64});
    Tensor t = from_vector_i64({2, 1, -100, 0});
    for (double eps : {0.0, 0.1, 0.5}) {
      CrossEntropyOptions o{.label_smoothing = eps, .reduction = Reduction::none};
      Tensor none = cross_entropy(x, t, o);
      REQUIRE(none.sizes() == Shape{4});
      double total = 0;
      for (int64_t n : {0, 1, 3}) {
        double want = manual_ce_row(row(x, n), static_cast<int64_t>(t.at({n})), eps);
        CHECK(none.at({n}) == doctest::Approx(want).epsilon(1e-13));
        total += want;
      }
      CHECK(none.at({2}) == 0.0);  // ignored
      o.reduction = Reduction::sum;
      CHECK(cross_entropy(x, t, o).item() == doctest::Approx(total).epsilon(1e-13));
      o.reduction = Reduction::mean;  // over the 3 rows not ignored
      CHECK(cross_entropy(x, t, o).item() == doctest::Approx(total / 3).epsilon(1e-13));
    }
    // The plain case by hand: logits [1, 2, 3], target 2: log(e + e^2 + e^3) - 3.
    CHECK(cross_entropy(from_vector({1, 2, 3}, {1, 3}, {.dtype = DType::f64}), from_vector_i64({2}, {1})).item() ==
          doctest::Approx(std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0)) - 3.0).epsilon(1e-14));
    // Uniform logits: the loss is log C whatever the target and smoothing.
    CHECK(cross_entropy(zeros({2, 5}), from_vector_i64({0, 4}), {.label_smoothing = 0.3}).item() ==
          doctest::Approx(std::log(5.0)));
  }

  TEST_CASE("cross_entropy: a custom ignore_index, i32 targets, every row ignored") {
    Tensor x = randn({3, 4}, {.dtype = DType::f64});
    Tensor t = from_vector_i64({1, 3, 2});
    CrossEntropyOptions o{.ignore_index = 3, .reduction = Reduction::none};
    Tensor l = cross_entropy(x, t, o);
    CHECK(l.at({1}) == 0.0);
    CHECK(l.at({0}) == doctest::Approx(manual_ce_row(row(x, 0), 1, 0)));
    CHECK_CLOSE(cross_entropy(x, to_dtype(t, DType::i32), o), l, 0.0, 0.0);
    // Every row ignored: the mean is 0/0 (NaN, as in PyTorch) and the gradient is zero.
    Tensor xl = leaf64({2, 4});
    Tensor m = cross_entropy(xl, from_vector_i64({-100, -100}));
    CHECK(std::isnan(m.item()));
    m.backward();
    CHECK_CLOSE(xl.grad(), zeros({2, 4}, {.dtype = DType::f64}), 0.0, 0.0);
  }

  TEST_CASE("cross_entropy: [B, T, C] logits with [B, T] targets equal the flattened [B*T, C] loss") {
    Tensor x = randn({2, 3, 5}, {.dtype = DType::f64});
    Tensor t = randint(0, 5, {2, 3});
    t.set_at({1, 1}, -100);
    for (Reduction r : {Reduction::mean, Reduction::sum, Reduction::none}) {
      Tensor got = cross_entropy(x, t, {.label_smoothing = 0.1, .reduction = r});
      Tensor want = cross_entropy(reshape(x, {6, 5}), reshape(t, {6}), {.label_smoothing = 0.1, .reduction = r});
      if (r == Reduction::none) {
        CHECK(got.sizes() == Shape{2, 3});
        want = reshape(want, {2, 3});
      }
      CHECK_CLOSE(got, want, 1e-14, 0.0);
    }
    // A non-contiguous (transposed) [B, T, C] view.
    Tensor xt = transpose(randn({3, 2, 5}, {.dtype = DType::f64}), 0, 1);
    CHECK_CLOSE(cross_entropy(xt, t), cross_entropy(contiguous(xt), t), 1e-14, 0.0);
  }

  TEST_CASE("cross_entropy: equals nll_loss of log_softmax; the smoothed gradient is softmax - target") {
    Tensor x = randn({7, 31}, {.dtype = DType::f64});
    Tensor t = randint(0, 31, {7});
    CHECK(cross_entropy(x, t).item() == doctest::Approx(nll_loss(log_softmax(x, 1), t).item()).epsilon(1e-13));
    // d/dx of the summed loss: softmax(x) - ((1 - eps) onehot + eps / C)
    const double eps = 0.2;
    Tensor xl = x.detach().requires_grad_();
    cross_entropy(xl, t, {.label_smoothing = eps, .reduction = Reduction::sum}).backward();
    Tensor p = softmax(x, 1);
    for (int64_t n = 0; n < 7; ++n)
      for (int64_t c = 0; c < 31; ++c) {
        double q = (c == static_cast<int64_t>(t.at({n})) ? 1 - eps : 0.0) + eps / 31;
        CHECK(xl.grad().at({n, c}) == doctest::Approx(p.at({n, c}) - q).epsilon(1e-12));
      }
  }

  TEST_CASE("cross_entropy: bf16, f16 and f32 logits close to f64") {
    Tensor x64 = randn({33, 65}, {.dtype = DType::f64}) * 2.0;
    Tensor t = randint(0, 65, {33});
    for (DType dt : {DType::f32, DType::bf16, DType::f16}) {
      Tensor x = to_dtype(x64, dt);
      Tensor got = cross_entropy(x, t, {.label_smoothing = 0.1});
      CHECK(got.dtype() == dt);
      double want = cross_entropy(to_dtype(x, DType::f64), t, {.label_smoothing = 0.1}).item();
      CHECK(got.item() == doctest::Approx(want).epsilon(2 * rtol_for(dt)));
    }
  }

  TEST_CASE("cross_entropy / nll_loss / mse_loss: gradchecks") {
    Tensor t = from_vector_i64({2, 0, -100, 4, 1});
    for (Reduction r : {Reduction::mean, Reduction::sum, Reduction::none})
      for (double eps : {0.0, 0.25}) {
        Tensor x = leaf64({5, 6});
        CHECK_GRADCHECK(
            [&](const TensorList& in) { return cross_entropy(in[0], t, {.label_smoothing = eps, .reduction = r}); },
            {x});
      }
    Tensor x3 = leaf64({2, 3, 4});
    Tensor t3 = from_vector_i64({0, 3, 1, -100, 2, 2}, {2, 3}, {.dtype = DType::i32});
    CHECK_GRADCHECK([&](const TensorList& in) { return cross_entropy(in[0], t3); }, {x3});
    CHECK_GRADCHECK(
        [&](const TensorList& in) {
          return cross_entropy(transpose(in[0], 0, 1), reshape(t3, {3, 2}));
        },
        {x3});
    for (Reduction r : {Reduction::mean, Reduction::sum, Reduction::none}) {
      Tensor lp = leaf64({5, 6});
      CHECK_GRADCHECK([&](const TensorList& in) { return nll_loss(in[0], t, {.reduction = r}); }, {lp});
      Tensor a = leaf64({3, 4}), b = leaf64({3, 4});
      CHECK_GRADCHECK([&](const TensorList& in) { return mse_loss(in[0], in[1], r); }, {a, b});
    }
  }

  TEST_CASE("nll_loss and mse_loss: values") {
    Tensor lp = from_vector({-1, -2, -3, -0.5, -0.25, -4}, {2, 3}, {.dtype = DType::f64});
    CHECK(nll_loss(lp, from_vector_i64({2, 1})).item() == doctest::Approx((3 + 0.25) / 2));
    CHECK(nll_loss(lp, from_vector_i64({2, -100}), {.reduction = Reduction::sum}).item() == doctest::Approx(3.0));
    Tensor a = from_vector({1, 2, 3}), b = from_vector({1, 4, 0});
    CHECK(mse_loss(a, b).item() == doctest::Approx(13.0 / 3));
    CHECK(mse_loss(a, b, Reduction::sum).item() == doctest::Approx(13.0));
    CHECK(mse_loss(a, b, Reduction::none).at({2}) == doctest::Approx(9.0));
  }

  TEST_CASE("cross_entropy / nll_loss: double backward throws a clear error") {
    Tensor x = leaf64({3, 4});
    Tensor l = cross_entropy(x, from_vector_i64({0, 1, 2}));
    CHECK_THROWS_WITH_AS(grad({l}, {x}, {}, false, true), doctest::Contains("cross_entropy: double backward"), Error);
  }

  TEST_CASE("cross_entropy / nll_loss / mse_loss: misuse throws naming the op and what was expected") {
    Tensor x = randn({4, 5});
    CHECK_THROWS_WITH_AS(cross_entropy(x, from_vector_i64({0, 1, 7, 2})),
                         doctest::Contains("cross_entropy: target 7 at position [2] is out of range for C = 5"), Error);
    CHECK_THROWS_WITH_AS(cross_entropy(randn({2, 3, 5}), from_vector_i64({0, 1, 2, 3, 4, -1}, {2, 3})),
                         doctest::Contains("target -1 at position [1, 2]"), Error);
    CHECK_THROWS_WITH_AS(cross_entropy(x, from_vector({0, 1, 2, 3})),
                         doctest::Contains("cross_entropy: targets must be class indices of dtype i64 or i32, got f32"),
                         Error);
    CHECK_THROWS_WITH_AS(cross_entropy(x, from_vector_i64({0, 1, 2})),
                         doctest::Contains("targets have shape [3] but logits have shape [4, 5]; expected targets of "
                                           "shape [4]"),
                         Error);
    CHECK_THROWS_WITH_AS(cross_entropy(arange(6), from_vector_i64({0})), doctest::Contains("expected floating logits"),
                         Error);
    CHECK_THROWS_WITH_AS(cross_entropy(x, from_vector_i64({0, 1, 2, 3}), {.label_smoothing = 1.0}),
                         doctest::Contains("label_smoothing must be in [0, 1)"), Error);
    CHECK_THROWS_WITH_AS(nll_loss(x, from_vector_i64({0, 5, 2, 3})),
                         doctest::Contains("nll_loss: target 5 at position [1]"), Error);
    CHECK_THROWS_WITH_AS(mse_loss(x, randn({5, 4})),
                         doctest::Contains("mse_loss: input has shape [4, 5] but target has shape [5, 4]"), Error);
    CHECK_THROWS_WITH_AS(mse_loss(x, arange(20)), doctest::Contains("expected floating input and target"), Error);
  }
}
