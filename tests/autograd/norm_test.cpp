// layer_norm / rms_norm: hand-computed values, a composed reference, eps, two trailing dims,
// non-contiguous x, f64 gradchecks of x, weight and bias together, dtypes, misuse errors.
#include <cmath>

#include "tests/helpers.h"

using namespace tessel;
using namespace tessel::testing;

namespace {
// The same math composed from generic ops, over the last `k` dims.
Tensor layer_norm_composed(const Tensor& x, int k, const Tensor& w, const Tensor& b, double eps) {
  std::vector<int64_t> dims;
  for (int i = 0; i < k; ++i) dims.push_back(-1 - i);
  Tensor y = (x - mean(x, dims, true)) * rsqrt(var(x, dims, 0, true) + eps);
  if (w.defined()) y = y * w;
  if (b.defined()) y = y + b;
  return y;
}
Tensor rms_norm_composed(const Tensor& x, int k, const Tensor& w, double eps) {
  std::vector<int64_t> dims;
  for (int i = 0; i < k; ++i) dims.push_back(-1 - i);
  Tensor y = x * rsqrt(mean(x * x, dims, true) + eps);
  return w.defined() ? y * w : y;
}
}  // namespace

TEST_SUITE("autograd") {
  TEST_CASE("layer_norm / rms_norm: hand-computed values") {
    Tensor x = from_vector({1, 2, 3}, {1, 3}, {.dtype = DType::f64});
    Tensor y = layer_norm(x, {3}, Tensor(), Tensor(), 0.0);
    const double s = std::sqrt(2.0 / 3.0);  // population std of 1, 2, 3
    CHECK(y.at({0, 0}) == doctest::Approx(-1 / s).epsilon(1e-12));
    CHECK(y.at({0, 1}) == doctest::Approx(0.0));
    CHECK(y.at({0, 2}) == doctest::Approx(1 / s).epsilon(1e-12));
    Tensor w = from_vector({2, 2, 2}, {3}, {.dtype = DType::f64});
    Tensor b = from_vector({1, 0, -1}, {3}, {.dtype = DType::f64});
    Tensor ya = layer_norm(x, {3}, w, b, 0.0);
    CHECK(ya.at({0, 0}) == doctest::Approx(-2 / s + 1).epsilon(1e-12));
    CHECK(ya.at({0, 2}) == doctest::Approx(2 / s - 1).epsilon(1e-12));
    Tensor r = rms_norm(from_vector({3, 4}, {2}, {.dtype = DType::f64}), {2}, Tensor(), 0.0);
    CHECK(r.at({0}) == doctest::Approx(3 / std::sqrt(12.5)).epsilon(1e-12));
    CHECK(r.at({1}) == doctest::Approx(4 / std::sqrt(12.5)).epsilon(1e-12));
  }

  TEST_CASE("layer_norm / rms_norm: eps enters under the square root") {
    Tensor x = from_vector({1, 3}, {2}, {.dtype = DType::f64});  // mean 2, var 1
    CHECK(layer_norm(x, {2}, Tensor(), Tensor(), 0.0).at({1}) == doctest::Approx(1.0));
    CHECK(layer_norm(x, {2}, Tensor(), Tensor(), 1.0).at({1}) == doctest::Approx(1 / std::sqrt(2.0)));
    CHECK(layer_norm(x, {2}, Tensor(), Tensor(), 3.0).at({1}) == doctest::Approx(0.5));
    // A constant row has variance 0: eps keeps the result finite (zero).
    Tensor c = full({2, 4}, 7.0);
    Tensor yc = layer_norm(c, {4});
    for (int64_t i = 0; i < 4; ++i) CHECK(yc.at({1, i}) == 0.0);
    // rms: mean(x^2) = 5 for [1, 3]; eps = 4 gives 1/3 scaling.
    CHECK(rms_norm(x, {2}, Tensor(), 4.0).at({1}) == doctest::Approx(1.0));
    CHECK(rms_norm(x, {2}, Tensor(), 0.0).at({1}) == doctest::Approx(3 / std::sqrt(5.0)));
  }

  TEST_CASE("layer_norm / rms_norm: match a composed reference, 1 and 2 trailing dims, non-contiguous x") {
    for (DType dt : {DType::f32, DType::f64}) {
      const double tol = dt == DType::f64 ? 1e-10 : 1e-4;
      Tensor x = noncontig_randn({3, 5, 7}, dt);
      REQUIRE(!x.is_contiguous());
      for (int k = 1; k <= 2; ++k) {
        Shape ns = k == 1 ? Shape{7} : Shape{5, 7};
        Tensor w = randn(ns, {.dtype = dt}), b = randn(ns, {.dtype = dt});
        CHECK_CLOSE(layer_norm(x, ns, w, b, 1e-5), layer_norm_composed(x, k, w, b, 1e-5), tol, tol);
        CHECK_CLOSE(layer_norm(x, ns), layer_norm_composed(x, k, Tensor(), Tensor(), 1e-5), tol, tol);
        CHECK_CLOSE(rms_norm(x, ns, w, 1e-6), rms_norm_composed(x, k, w, 1e-6), tol, tol);
        CHECK_CLOSE(rms_norm(x, ns), rms_norm_composed(x, k, Tensor(), 1e-6), tol, tol);
      }
      // the whole tensor as the normalized shape
      CHECK_CLOSE(layer_norm(x, {3, 5, 7}), layer_norm_composed(x, 3, Tensor(), Tensor(), 1e-5), tol, tol);
    }
  }

  TEST_CASE("layer_norm / rms_norm: bf16 and f16 close to f64") {
    Tensor x64 = randn({5, 65}, {.dtype = DType::f64}) + 2.0;
    Tensor w64 = randn({65}, {.dtype = DType::f64}), b64 = randn({65}, {.dtype = DType::f64});
    for (DType dt : {DType::bf16, DType::f16}) {
      Tensor x = to_dtype(x64, dt), w = to_dtype(w64, dt), b = to_dtype(b64, dt);
      Tensor y = layer_norm(x, {65}, w, b);
      CHECK(y.dtype() == dt);
      Tensor want = layer_norm(to_dtype(x, DType::f64), {65}, to_dtype(w, DType::f64), to_dtype(b, DType::f64));
      CHECK_CLOSE(to_dtype(y, DType::f64), want, 2 * rtol_for(dt), 2 * rtol_for(dt));
      Tensor r = rms_norm(x, {65}, w);
      Tensor rwant = rms_norm(to_dtype(x, DType::f64), {65}, to_dtype(w, DType::f64));
      CHECK_CLOSE(to_dtype(r, DType::f64), rwant, 2 * rtol_for(dt), 2 * rtol_for(dt));
    }
  }

  TEST_CASE("layer_norm / rms_norm: gradcheck of x, weight and bias together") {
    Tensor x = leaf64({4, 6}), w = leaf64({6}), b = leaf64({6});
    CHECK_GRADCHECK([](const TensorList& in) { return layer_norm(in[0], {6}, in[1], in[2], 1e-5); }, {x, w, b});
    CHECK_GRADCHECK([](const TensorList& in) { return layer_norm(in[0], {6}); }, {x});
    CHECK_GRADCHECK([](const TensorList& in) { return rms_norm(in[0], {6}, in[1], 1e-6); }, {x, w});
    CHECK_GRADCHECK([](const TensorList& in) { return rms_norm(in[0], {6}); }, {x});
    // Two trailing dims, a non-contiguous x (transposed inside the function), large eps.
    Tensor x3 = leaf64({2, 5, 3}), w2 = leaf64({3, 5}), b2 = leaf64({3, 5});
    CHECK_GRADCHECK(
        [](const TensorList& in) {
          return layer_norm(transpose(in[0], 1, 2), {3, 5}, in[1], in[2], 0.5);
        },
        {x3, w2, b2});
    CHECK_GRADCHECK(
        [](const TensorList& in) {
          return rms_norm(transpose(in[0], 1, 2), {3, 5}, in[1], 0.5);
        },
        {x3, w2});
  }

  TEST_CASE("layer_norm: gradients only where asked, and equal to the composed op's") {
    Tensor x = leaf64({3, 8}), w = randn({8}, {.dtype = DType::f64}), b = leaf64({8});
    Tensor g = randn({3, 8}, {.dtype = DType::f64});
    layer_norm(x, {8}, w, b).backward(g);
    CHECK(!w.grad().defined());
    REQUIRE(x.grad().defined());
    Tensor x2 = x.detach().requires_grad_(), b2 = b.detach().requires_grad_();
    layer_norm_composed(x2, 1, w, b2, 1e-5).backward(g);
    CHECK_CLOSE(x.grad(), x2.grad(), 1e-9, 1e-10);
    CHECK_CLOSE(b.grad(), b2.grad(), 1e-12, 1e-12);
  }

  TEST_CASE("layer_norm: no rows gives an empty result and zero weight and bias gradients") {
    Tensor x = leaf64({0, 4}), w = leaf64({4}), b = leaf64({4});
    Tensor y = layer_norm(x, {4}, w, b);
    CHECK(y.sizes() == Shape{0, 4});
    sum(y).backward();
    CHECK_CLOSE(w.grad(), zeros({4}, {.dtype = DType::f64}), 0.0, 0.0);
    CHECK_CLOSE(b.grad(), zeros({4}, {.dtype = DType::f64}), 0.0, 0.0);
  }

  TEST_CASE("layer_norm / rms_norm: double backward throws a clear error") {
    Tensor x = leaf64({2, 4});
    Tensor y = sum(layer_norm(x, {4}) * randn({2, 4}, {.dtype = DType::f64}));
    CHECK_THROWS_WITH_AS(grad({y}, {x}, {}, false, true), doctest::Contains("layer_norm: double backward"), Error);
    Tensor r = sum(rms_norm(x, {4}) * randn({2, 4}, {.dtype = DType::f64}));
    CHECK_THROWS_WITH_AS(grad({r}, {x}, {}, false, true), doctest::Contains("rms_norm: double backward"), Error);
  }

  TEST_CASE("layer_norm / rms_norm: misuse throws naming the op and what was expected") {
    Tensor x = randn({2, 3, 4});
    CHECK_THROWS_WITH_AS(layer_norm(x, {3}),
                         doctest::Contains("layer_norm: normalized_shape [3] does not match the trailing dims of x "
                                           "of shape [2, 3, 4]"),
                         Error);
    CHECK_THROWS_WITH_AS(rms_norm(x, {1, 2, 3, 4}), doctest::Contains("rms_norm: normalized_shape [1, 2, 3, 4]"),
                         Error);
    CHECK_THROWS_WITH_AS(layer_norm(x, {4}, randn({3})),
                         doctest::Contains("layer_norm: weight has shape [3] but normalized_shape is [4]"), Error);
    CHECK_THROWS_WITH_AS(layer_norm(x, {4}, randn({4}), randn({4, 1})),
                         doctest::Contains("bias has shape [4, 1] but normalized_shape is [4]"), Error);
    CHECK_THROWS_WITH_AS(rms_norm(x, {4}, randn({4}, {.dtype = DType::f64})),
                         doctest::Contains("rms_norm: weight is f64 but x is f32"), Error);
    CHECK_THROWS_WITH_AS(layer_norm(arange(6), {6}), doctest::Contains("expected a floating x"), Error);
    CHECK_THROWS_WITH_AS(layer_norm(x, {}), doctest::Contains("normalized_shape is empty"), Error);
    CHECK_THROWS_WITH_AS(layer_norm(x, {4}, Tensor(), Tensor(), -1.0), doctest::Contains("eps must be"), Error);
  }
}
