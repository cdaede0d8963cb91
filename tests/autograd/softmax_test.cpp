// softmax / log_softmax: hand-computed values, stability, any dim and layout, f64 gradchecks
// (including double backward), the exposed backward functions, and misuse errors.
#include <cmath>

#include "tests/helpers.h"

using namespace tessel;
using namespace tessel::testing;

TEST_SUITE("autograd") {
  TEST_CASE("softmax: hand-computed values") {
    Tensor x = from_vector({0.0, std::log(2.0)}, {2}, {.dtype = DType::f64});
    Tensor y = softmax(x, 0);
    CHECK(y.at({0}) == doctest::Approx(1.0 / 3).epsilon(1e-14));
    CHECK(y.at({1}) == doctest::Approx(2.0 / 3).epsilon(1e-14));
    Tensor ly = log_softmax(x, -1);
    CHECK(ly.at({0}) == doctest::Approx(std::log(1.0 / 3)).epsilon(1e-14));
    CHECK(ly.at({1}) == doctest::Approx(std::log(2.0 / 3)).epsilon(1e-14));
    // A 0-dim tensor is one row of one element.
    CHECK(softmax(scalar_tensor(5.0), 0).item() == 1.0);
  }

  TEST_CASE("softmax: stable for huge logits, in f32") {
    Tensor x = from_vector({1000, 1000, -1000, 0, 88, 89}, {3, 2});
    Tensor y = softmax(x, 1);
    CHECK(y.at({0, 0}) == doctest::Approx(0.5));
    CHECK(y.at({1, 0}) == 0.0);
    CHECK(y.at({1, 1}) == 1.0);
    CHECK(y.at({2, 1}) == doctest::Approx(1.0 / (1.0 + std::exp(-1.0))));
    Tensor ly = log_softmax(x, 1);
    CHECK(ly.at({1, 0}) == doctest::Approx(-1000.0));
    CHECK(ly.at({1, 1}) == 0.0);
  }

  TEST_CASE("softmax: every dim of a non-contiguous 3-d tensor matches a composed reference") {
    for (DType dt : {DType::f32, DType::f64}) {
      Tensor x = noncontig_randn({3, 7, 5}, dt);
      for (int64_t d = -3; d < 3; ++d) {
        Tensor e = exp(x - amax(x, {d}, true));
        Tensor want = e / sum(e, {d}, true);
        CHECK_CLOSE(softmax(x, d), want, rtol_for(dt) * 10, 1e-7);
        CHECK_CLOSE(log_softmax(x, d), log(want), rtol_for(dt) * 10, 1e-6);
      }
      // softmax over dim 0 of a transposed tensor
      Tensor xt = transpose(randn({33, 31}, {.dtype = dt}), 0, 1);
      Tensor e = exp(xt - amax(xt, {0}, true));
      CHECK_CLOSE(softmax(xt, 0), e / sum(e, {0}, true), rtol_for(dt) * 10, 1e-7);
    }
  }

  TEST_CASE("softmax: bf16 and f16 are close to f64") {
    Tensor x64 = randn({7, 127}, {.dtype = DType::f64}) * 3.0;
    for (DType dt : {DType::bf16, DType::f16}) {
      Tensor x = to_dtype(x64, dt);
      Tensor xr = to_dtype(x, DType::f64);  // the inputs as rounded
      CHECK(softmax(x, 1).dtype() == dt);
      CHECK_CLOSE(to_dtype(softmax(x, 1), DType::f64), softmax(xr, 1), 2 * rtol_for(dt), 1e-3);
      CHECK_CLOSE(to_dtype(log_softmax(x, 1), DType::f64), log_softmax(xr, 1), 2 * rtol_for(dt), 2e-2);
    }
  }

  TEST_CASE("softmax: gradcheck over every dim, both ops") {
    for (int64_t d : {0, 1, -1}) {
      Tensor x = leaf64({3, 4, 5});
      CHECK_GRADCHECK([d](const TensorList& in) { return softmax(in[0], d); }, {x});
      CHECK_GRADCHECK([d](const TensorList& in) { return log_softmax(in[0], d); }, {x});
    }
    // A non-contiguous input, with the softmax dim strided.
    Tensor base = leaf64({5, 4});
    CHECK_GRADCHECK([](const TensorList& in) { return softmax(transpose(in[0], 0, 1), 1); }, {base});
  }

  TEST_CASE("softmax: double backward through softmax and log_softmax") {
    Tensor v = randn({3, 6}, {.dtype = DType::f64});
    for (int which = 0; which < 2; ++which) {
      Tensor x = leaf64({3, 6});
      // x -> d/dx sum(v * softmax(x)), recorded (create_graph) so that gradcheck can differentiate it.
      auto first_grad = [v, which](const TensorList& in) {
        EnableGradGuard eg;  // gradcheck's numeric passes run without grad mode
        Tensor x = in[0].requires_grad() ? in[0] : in[0].detach().requires_grad_();
        Tensor y = which == 0 ? softmax(x, 1) : log_softmax(x, 1);
        return grad({y}, {x}, {v}, true, true)[0];
      };
      CHECK_GRADCHECK(first_grad, {x});
    }
  }

  TEST_CASE("softmax: the exposed backward functions, fused and composed") {
    Tensor x = randn({4, 9}, {.dtype = DType::f64});
    Tensor dy = randn({4, 9}, {.dtype = DType::f64});
    Tensor y = softmax(x, 1), ly = log_softmax(x, 1);
    // Against the formulas composed from ops.
    CHECK_CLOSE(softmax_backward(dy, y, 1), y * (dy - sum(dy * y, {1}, true)), 1e-12, 1e-14);
    CHECK_CLOSE(log_softmax_backward(dy, ly, -1), dy - exp(ly) * sum(dy, {1}, true), 1e-12, 1e-14);
    // Against autograd of the forward.
    Tensor xl = x.detach().requires_grad_();
    softmax(xl, 1).backward(dy);
    CHECK_CLOSE(xl.grad(), softmax_backward(dy, y, 1), 1e-12, 1e-14);
    // Differentiable in both arguments (the composed path).
    Tensor dyl = leaf64({4, 9}), yl = leaf64({4, 9});
    CHECK_GRADCHECK([](const TensorList& in) { return softmax_backward(in[0], in[1], 1); }, {dyl, yl});
    CHECK_GRADCHECK([](const TensorList& in) { return log_softmax_backward(in[0], in[1], 0); }, {dyl, yl});
    // dy of another dtype is converted to y's.
    CHECK_CLOSE(softmax_backward(to_dtype(dy, DType::f32), y, 1), softmax_backward(dy, y, 1), 1e-6, 1e-7);
  }

  TEST_CASE("softmax: empty tensors and size-1 dims") {
    CHECK(softmax(empty({0, 3}), 1).sizes() == Shape{0, 3});
    CHECK(log_softmax(empty({3, 0}), 1).sizes() == Shape{3, 0});
    Tensor y = softmax(randn({4, 1}), 1);
    for (int64_t r = 0; r < 4; ++r) CHECK(y.at({r, 0}) == 1.0);
  }

  TEST_CASE("causal_softmax: equals softmax over where(mask, -inf, x), and its gradient checks") {
    for (auto [T, S] : {std::pair<int64_t, int64_t>{5, 5}, {3, 8}, {7, 4}, {1, 6}}) {
      INFO("T ", T, " S ", S);
      Tensor x = noncontig_randn({2, 3, T, S}, DType::f64);
      Tensor qi = reshape(arange(T), {T, 1}), kj = reshape(arange(S), {1, S});
      Tensor want = softmax(where(gt(kj, qi + (S - T)), scalar_tensor(-INFINITY, {.dtype = DType::f64}), x), -1);
      Tensor got = causal_softmax(x);
      // Rows that see no key (T > S) are NaN in both; everything else agrees.
      for (int64_t i = 0; i < want.numel(); ++i) {
        const int64_t row = (i / S) % T;
        const double a = reshape(got, {-1}).at({i}), b = reshape(want, {-1}).at({i});
        if (row + S - T < 0) {
          CHECK(std::isnan(a));
          CHECK(std::isnan(b));
        } else {
          CHECK(a == doctest::Approx(b).epsilon(1e-12));
        }
      }
      if (T <= S) CHECK_GRADCHECK([](const TensorList& in) { return causal_softmax(in[0]); }, {leaf64({2, T, S})});
    }
    CHECK_THROWS_WITH_AS(causal_softmax(randn({4})), doctest::Contains("causal_softmax"), Error);
    CHECK_THROWS_WITH_AS(causal_softmax(reshape(arange(6), {2, 3})), doctest::Contains("causal_softmax"), Error);
  }

  TEST_CASE("softmax: misuse throws naming the op and what was expected") {
    Tensor x = randn({2, 3});
    CHECK_THROWS_WITH_AS(softmax(x, 2), doctest::Contains("softmax: dim 2 is out of range"), Error);
    CHECK_THROWS_WITH_AS(log_softmax(x, -3), doctest::Contains("log_softmax: dim -3"), Error);
    CHECK_THROWS_WITH_AS(softmax(arange(6), 0), doctest::Contains("expected a floating input"), Error);
    CHECK_THROWS_WITH_AS(softmax(arange(6), 0), doctest::Contains("i64 of shape [6]"), Error);
    CHECK_THROWS_WITH_AS(softmax_backward(randn({2, 4}), x, 1),
                         doctest::Contains("softmax_backward: dy has shape [2, 4] but y has shape [2, 3]"), Error);
    CHECK_THROWS_WITH_AS(log_softmax_backward(x, arange(6), 0), doctest::Contains("log_softmax_backward"), Error);
    CHECK_THROWS_WITH_AS(softmax(Tensor(), 0), doctest::Contains("softmax: input is an undefined tensor"), Error);
  }
}
