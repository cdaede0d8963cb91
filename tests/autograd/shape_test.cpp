// tests/autograd/shape_test.cpp — cat, stack, split, chunk: values, views, gradients, bad input.
#include "tests/helpers.h"

using namespace tessel;
using namespace tessel::testing;

namespace {
std::vector<double> vals(const Tensor& t) { return t.to_vector<double>(); }
}  // namespace

TEST_SUITE("autograd") {
  TEST_CASE("shape: cat and stack values") {
    Tensor a = from_vector({1, 2, 3, 4}, {2, 2}), b = from_vector({5, 6}, {1, 2});
    CHECK(vals(cat({a, b}, 0)) == std::vector<double>{1, 2, 3, 4, 5, 6});
    CHECK(vals(cat({a, transpose(b, 0, 1)}, 1)) == std::vector<double>{1, 2, 5, 3, 4, 6});
    CHECK(vals(cat({a, transpose(b, 0, 1)}, -1)) == std::vector<double>{1, 2, 5, 3, 4, 6});
    CHECK(cat({a}, 0).sizes() == Shape{2, 2});
    CHECK(cat({a, empty({0, 2})}, 0).sizes() == Shape{2, 2});
    // non-contiguous inputs
    Tensor nc = noncontig_randn({3, 2});
    CHECK(vals(cat({nc, a}, 0)) == vals(cat({contiguous(nc), a}, 0)));
    // mixed dtypes promote: i64 + f32 -> f32, f32 + f64 -> f64
    Tensor c = cat({from_vector_i64({7, 8}, {1, 2}), a}, 0);
    CHECK(c.dtype() == DType::f32);
    CHECK(vals(c) == std::vector<double>{7, 8, 1, 2, 3, 4});
    CHECK(cat({a, from_vector({0, 0}, {1, 2}, {.dtype = DType::f64})}, 0).dtype() == DType::f64);
    // stack inserts a new dim
    Tensor s0 = stack({a, a * 10.0}, 0), s2 = stack({a, a * 10.0}, 2), sm = stack({a, a * 10.0}, -1);
    CHECK(s0.sizes() == Shape{2, 2, 2});
    CHECK(vals(s0) == std::vector<double>{1, 2, 3, 4, 10, 20, 30, 40});
    CHECK(s2.sizes() == Shape{2, 2, 2});
    CHECK(vals(s2) == std::vector<double>{1, 10, 2, 20, 3, 30, 4, 40});
    CHECK(vals(sm) == vals(s2));
    CHECK(stack({scalar_tensor(1), scalar_tensor(2)}).sizes() == Shape{2});
  }

  TEST_CASE("shape: split and chunk return views") {
    Tensor x = arange(0.0, 10.0, 1.0, {.dtype = DType::f32});
    auto p = split(x, 4);
    REQUIRE(p.size() == 3);
    CHECK(vals(p[0]) == std::vector<double>{0, 1, 2, 3});
    CHECK(vals(p[2]) == std::vector<double>{8, 9});
    CHECK(p[1].storage() == x.storage());  // a view, not a copy
    auto q = split(x, std::vector<int64_t>{1, 0, 9});
    REQUIRE(q.size() == 3);
    CHECK(q[1].numel() == 0);
    CHECK(vals(q[2]).front() == 1);
    auto c = chunk(x, 3);
    REQUIRE(c.size() == 3);
    CHECK(c[0].numel() == 4);
    CHECK(c[2].numel() == 2);
    CHECK(chunk(arange(0.0, 2.0, 1.0, {.dtype = DType::f32}), 3).size() == 2);  // fewer chunks than asked, as PyTorch
    Tensor m = reshape(arange(0.0, 12.0, 1.0, {.dtype = DType::f32}), {3, 4});
    auto cols = split(m, 3, 1);
    REQUIRE(cols.size() == 2);
    CHECK(cols[1].sizes() == Shape{3, 1});
    CHECK(vals(cols[1]) == std::vector<double>{3, 7, 11});
    // cat undoes split
    CHECK(vals(cat(cols, 1)) == vals(m));
  }

  TEST_CASE("shape: gradcheck") {
    CHECK_GRADCHECK(
        [](const TensorList& x) {
          return cat({x[0], x[1], x[2]}, 1);
        },
        {leaf64({2, 3}), leaf64({2, 1}), leaf64({2, 2})});
    CHECK_GRADCHECK([](const TensorList& x) { return cat({x[0] * x[1], x[1]}, 0); }, {leaf64({2, 3}), leaf64({2, 3})});
    CHECK_GRADCHECK([](const TensorList& x) { return stack({x[0], x[1]}, 1); }, {leaf64({2, 3}), leaf64({2, 3})});
    CHECK_GRADCHECK([](const TensorList& x) { return stack({x[0], x[1], x[0]}, -1); }, {leaf64({3}), leaf64({3})});
    CHECK_GRADCHECK(
        [](const TensorList& x) {
          auto p = split(x[0], 2, 1);
          return cat({p[2] * 3.0, p[0]}, 1);
        },
        {leaf64({2, 5})});
    CHECK_GRADCHECK(
        [](const TensorList& x) {
          auto p = split(x[0], std::vector<int64_t>{1, 3}, 0);
          return p[1] * p[1];
        },
        {leaf64({4, 2})});
    CHECK_GRADCHECK([](const TensorList& x) { return chunk(x[0], 2, 0)[1]; }, {leaf64({5})});
    // one input not requiring grad; an integer input among floats
    Tensor fixed = randn({1, 3}, {.dtype = DType::f64});
    Tensor ints = from_vector_i64({1, 2, 3}, {1, 3});
    auto mixed = [fixed, ints](const TensorList& x) { return cat({fixed, x[0], ints}, 0); };
    CHECK_GRADCHECK(mixed, {leaf64({2, 3})});
    // a promoted f32 input gets its gradient back in f32
    Tensor f = randn({2}).requires_grad_();
    Tensor d = randn({2}, {.dtype = DType::f64}).requires_grad_();
    sum(cat({f, d}) * 2.0).backward();
    CHECK(f.grad().dtype() == DType::f32);
    CHECK(vals(f.grad()) == std::vector<double>{2, 2});
  }

  TEST_CASE("shape: bad input names the op and every input's shape") {
    Tensor a = randn({2, 3}), b = randn({2, 4}), c = randn({2});
    CHECK_THROWS_WITH_AS(cat({}, 0), doctest::Contains("cat: expected a non-empty list of tensors"), Error);
    CHECK_THROWS_WITH_AS(cat({a, b}, 0),
                         doctest::Contains("cat: sizes must match except in dim 0: input 1 has size 4 at dim 1 where "
                                           "input 0 has 3 (shapes [2, 3], [2, 4])"),
                         Error);
    CHECK_THROWS_WITH_AS(cat({a, c}, 0),
                         doctest::Contains("cat: inputs must have the same number of dims, got shapes [2, 3], [2]"),
                         Error);
    CHECK_THROWS_WITH_AS(cat({a, a}, 2), doctest::Contains("cat"), Error);
    CHECK_THROWS_WITH_AS(cat({scalar_tensor(1.0), scalar_tensor(2.0)}, 0), doctest::Contains("cat: input 0 is 0-d"),
                         Error);
    CHECK_THROWS_WITH_AS(stack({a, b}),
                         doctest::Contains("stack: every input must have the same shape, got shapes "
                                           "[2, 3], [2, 4]"),
                         Error);
    CHECK_THROWS_WITH_AS(stack({}), doctest::Contains("stack: expected a non-empty list"), Error);
    CHECK_THROWS_WITH_AS(split(a, 0, 1), doctest::Contains("split: split_size must be positive, got 0"), Error);
    CHECK_THROWS_WITH_AS(split(a, std::vector<int64_t>{1, 1}, 1),
                         doctest::Contains("split: sizes [1, 1] sum to 2 but dim 1 of x (shape [2, 3]) has size 3"),
                         Error);
    CHECK_THROWS_WITH_AS(chunk(a, 0, 0), doctest::Contains("chunk: chunks must be positive, got 0"), Error);
    CHECK_THROWS_WITH_AS(split(scalar_tensor(1.0), 1), doctest::Contains("split: cannot split a 0-d tensor"), Error);
  }
}
