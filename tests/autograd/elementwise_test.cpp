// f64 gradchecks of every differentiable elementwise op, with broadcasting and strided inputs.
#include <cmath>

#include "tests/helpers.h"

using namespace tessel;
using namespace tessel::testing;

TEST_SUITE("autograd") {
  TEST_CASE("gradcheck: unary ops") {
    manual_seed(5);
    Tensor x = leaf64({3, 5});
    Tensor pos = leaf64({3, 5});
    {
      NoGradGuard ng;
      Tensor p = abs(pos) + 0.3;
      copy_into(pos, p);
    }
    using F = std::function<Tensor(const Tensor&)>;
    std::vector<std::pair<const char*, F>> any_domain = {
        {"neg", [](const Tensor& a) { return neg(a); }},
        {"exp", [](const Tensor& a) { return exp(a); }},
        {"relu", [](const Tensor& a) { return relu(a); }},
        {"gelu", [](const Tensor& a) { return gelu(a); }},
        {"gelu_tanh", [](const Tensor& a) { return gelu(a, GeluApprox::tanh); }},
        {"silu", [](const Tensor& a) { return silu(a); }},
        {"sigmoid", [](const Tensor& a) { return sigmoid(a); }},
        {"tanh", [](const Tensor& a) { return tanh(a); }},
        {"sin", [](const Tensor& a) { return sin(a); }},
        {"cos", [](const Tensor& a) { return cos(a); }},
        {"abs", [](const Tensor& a) { return abs(a); }},
        {"clamp", [](const Tensor& a) { return clamp(a, -0.5, 0.7); }},
        {"square", [](const Tensor& a) { return square(a); }},
        {"pow3", [](const Tensor& a) { return pow(a, 3.0); }},
    };
    for (auto& [name, f] : any_domain) {
      INFO(name);
      CHECK_GRADCHECK([&](const TensorList& v) { return f(v[0]); }, {x});
    }
    std::vector<std::pair<const char*, F>> positive = {
        {"log", [](const Tensor& a) { return log(a); }},
        {"sqrt", [](const Tensor& a) { return sqrt(a); }},
        {"rsqrt", [](const Tensor& a) { return rsqrt(a); }},
        {"pow-1.5", [](const Tensor& a) { return pow(a, -1.5); }},
    };
    for (auto& [name, f] : positive) {
      INFO(name);
      CHECK_GRADCHECK([&](const TensorList& v) { return f(v[0]); }, {pos});
    }
  }

  TEST_CASE("gradcheck: binary ops with broadcasting") {
    manual_seed(6);
    Tensor a = leaf64({4, 1, 3});
    Tensor b = leaf64({5, 1});
    Tensor bpos = leaf64({5, 1});
    {
      NoGradGuard ng;
      copy_into(bpos, abs(bpos) + 0.5);
    }
    CHECK_GRADCHECK([](const TensorList& v) { return v[0] + v[1]; }, {a, b});
    CHECK_GRADCHECK([](const TensorList& v) { return v[0] - v[1]; }, {a, b});
    CHECK_GRADCHECK([](const TensorList& v) { return v[0] * v[1]; }, {a, b});
    CHECK_GRADCHECK([](const TensorList& v) { return v[0] / v[1]; }, {a, bpos});
    CHECK_GRADCHECK([](const TensorList& v) { return pow(v[1], v[0]); }, {a, bpos});
    CHECK_GRADCHECK([](const TensorList& v) { return maximum(v[0], v[1]); }, {a, b});
    CHECK_GRADCHECK([](const TensorList& v) { return minimum(v[0], v[1]); }, {a, b});
    CHECK_GRADCHECK([](const TensorList& v) { return where(gt(v[0], v[1]), v[0], v[1] * 2.0); }, {a, b});
    CHECK_GRADCHECK([](const TensorList& v) { return 2.0 - v[0] / 3.0 + 1.5 * v[1]; }, {a, b});
    CHECK_GRADCHECK([](const TensorList& v) { return 1.0 / v[0]; }, {bpos});
    // Mixed dtypes: an f32 operand is promoted to f64 and its gradient converted back.
    Tensor f32 = randn({5, 1}, {.requires_grad = true});
    Tensor y = sum(a * f32);
    y.backward();
    CHECK(f32.grad().dtype() == DType::f32);
    CHECK(f32.grad().sizes() == Shape{5, 1});
  }

  TEST_CASE("maximum splits the gradient evenly on ties") {
    Tensor a = from_vector({1, 2, 3}, {3}, {.dtype = DType::f64, .requires_grad = true});
    Tensor b = from_vector({1, 5, 0}, {3}, {.dtype = DType::f64, .requires_grad = true});
    sum(maximum(a, b)).backward();
    CHECK(a.grad().to_vector<double>() == std::vector<double>{0.5, 0, 1});
    CHECK(b.grad().to_vector<double>() == std::vector<double>{0.5, 1, 0});
  }

  TEST_CASE("comparisons return bool and carry no gradient") {
    Tensor a = from_vector({1, 2, 3}, {3}, {.requires_grad = true});
    Tensor c = lt(a, scalar_like(2.5, a));
    CHECK(c.dtype() == DType::b8);
    CHECK_FALSE(c.requires_grad());
    CHECK(c.to_vector<bool>() == std::vector<bool>{true, true, false});
    CHECK(eq(a, a).to_vector<bool>() == std::vector<bool>{true, true, true});
  }

  TEST_CASE("integer arithmetic stays exact; division promotes") {
    Tensor a = from_vector_i64({7, -3, 10});
    Tensor b = from_vector_i64({2, 2, 5});
    CHECK((a + b).dtype() == DType::i64);
    CHECK((a * b).to_vector<int64_t>() == std::vector<int64_t>{14, -6, 50});
    Tensor q = a / b;
    CHECK(q.dtype() == DType::f32);
    CHECK(q.to_vector<float>() == std::vector<float>{3.5f, -1.5f, 2.0f});
    CHECK((a + 1.5).dtype() == DType::f32);
    CHECK((a + 1.0).dtype() == DType::i64);
  }

  TEST_CASE("in-place ops update values and versions") {
    Tensor x = ones({3});
    uint64_t v0 = x.version();
    add_(x, from_vector({1, 2, 3}), 2.0);
    CHECK(x.to_vector<float>() == std::vector<float>{3, 5, 7});
    mul_(x, 2.0);
    clamp_(x, 0, 10);
    CHECK(x.to_vector<float>() == std::vector<float>{6, 10, 10});
    CHECK(x.version() > v0);
    zero_(x);
    CHECK(x.to_vector<float>() == std::vector<float>{0, 0, 0});
  }
}
