// Regression tests for bugs found in review: each case failed (silently wrong, UB or a crash)
// before its fix.
#include <cmath>

#include "tests/helpers.h"

using namespace tessel;
using namespace tessel::testing;
using doctest::Contains;

TEST_SUITE("autograd") {
  TEST_CASE("create_graph: leaves' grads never alias each other or the caller's gradient") {
    Tensor a = ones({3}, {.requires_grad = true}), b = ones({3}, {.requires_grad = true});
    Tensor G = from_vector({1, 2, 3});
    (a + b).backward(G, false, /*create_graph=*/true);
    CHECK_FALSE(a.grad().same(b.grad()));
    CHECK(a.grad().storage() != G.storage());
    CHECK(b.grad().storage() != a.grad().storage());
    NoGradGuard ng;
    Tensor ga = a.grad();
    zero_(ga);
    CHECK(b.grad().to_vector<float>() == std::vector<float>{1, 2, 3});
    CHECK(G.to_vector<float>() == std::vector<float>{1, 2, 3});
  }

  TEST_CASE("retain_grad and grad() results are private copies") {
    Tensor x = ones({2}, {.requires_grad = true});
    Tensor y = x * 1.0;
    y.retain_grad();
    Tensor G = from_vector({4, 5});
    y.backward(G);
    CHECK(y.grad().storage() != G.storage());
    Tensor w = ones({2}, {.requires_grad = true});
    TensorList g = grad({w * 1.0}, {w, w}, {G});  // the same input twice: both filled
    REQUIRE(g[0].defined());
    REQUIRE(g[1].defined());
    CHECK(g[0].to_vector<float>() == std::vector<float>{4, 5});
    CHECK(g[1].to_vector<float>() == std::vector<float>{4, 5});
    CHECK(g[0].storage() != G.storage());
  }

  TEST_CASE("in-place ops with overlapping operands give the sequential answer") {
    Tensor m = from_vector({1, 2, 3, 4}, {2, 2});
    add_(m, t(m));
    CHECK(m.to_vector<float>() == std::vector<float>{2, 5, 5, 8});
    Tensor x = ones({1 << 16});
    Tensor tail = slice(x, 0, 1, 1 << 16), head = slice(x, 0, 0, (1 << 16) - 1);
    add_(tail, head);  // reads the old values of x[:-1], not the updated ones
    CHECK(sum(x).item() == 2 * (1 << 16) - 1);
    Tensor y = arange(8, {.dtype = DType::f32});
    Tensor dst = slice(y, 0, 1, 8), src = slice(y, 0, 0, 7);
    copy_(dst, src);
    CHECK(y.to_vector<float>() == std::vector<float>{0, 0, 1, 2, 3, 4, 5, 6});
    Tensor e = expand(zeros({1}), {16});
    CHECK_THROWS_WITH_AS(add_(e, ones({16})), Contains("share memory"), Error);
    CHECK_THROWS_WITH_AS(copy_(e, ones({16})), Contains("share memory"), Error);
    Tensor z = zeros({4});
    Tensor idx = from_vector_i64({0, 0, 1});
    CHECK_THROWS_WITH_AS(index_add_(e, 0, idx, ones({3})), Contains("share memory"), Error);
    index_add_(z, 0, idx, ones({3}));
    CHECK(z.to_vector<float>() == std::vector<float>{2, 1, 0, 0});
  }

  TEST_CASE("integer clamp with infinite bounds saturates; float results do not go into ints") {
    Tensor i = from_vector_i64({-5, 1, 7});
    CHECK(clamp(i, 0, INFINITY).to_vector<int64_t>() == std::vector<int64_t>{0, 1, 7});
    CHECK(clamp(i, -INFINITY, 2.5).to_vector<int64_t>() == std::vector<int64_t>{-5, 1, 2});
    CHECK(clamp(to_dtype(i, DType::i32), -1.5, 3).to_vector<int32_t>() == std::vector<int32_t>{-1, 1, 3});
    CHECK_THROWS_WITH_AS(mul_(i, 0.5), Contains("mul_: the result type f32 cannot be stored in place into a i64"),
                         Error);
    CHECK_THROWS_WITH_AS(add_(i, from_vector({0.7, 0.7, 0.7})), Contains("cannot be stored in place"), Error);
    mul_(i, 2.0);  // a whole number is fine
    CHECK(i.to_vector<int64_t>() == std::vector<int64_t>{-10, 2, 14});
    Tensor bools = to_dtype(from_vector({1, 0}), DType::b8);
    CHECK_THROWS_WITH_AS(add_(bools, bools), Contains("add_: in-place add is not supported for a bool target"), Error);
    CHECK_THROWS_WITH_AS(clamp_(bools, 0, 1), Contains("clamp_: in-place clamp is not supported for a bool target"),
                         Error);
  }

  TEST_CASE("float to integer conversions saturate instead of wrapping") {
    Tensor f = from_vector({NAN, 1e20, -1e20, 2.9, -2.9});
    CHECK(to_dtype(f, DType::i32).to_vector<int32_t>() == std::vector<int32_t>{0, INT32_MAX, INT32_MIN, 2, -2});
    CHECK(to_dtype(f, DType::i64).to_vector<int64_t>()[1] == INT64_MAX);
    Tensor i32 = ones({2}, {.dtype = DType::i32});
    Tensor big = i32 + 1e12;
    CHECK(big.dtype() == DType::i64);
    CHECK(big.at({0}) == 1e12 + 1);
    CHECK_THROWS_WITH_AS(randint(0, int64_t{1} << 40, {4}, {.dtype = DType::i32}), Contains("does not fit in i32"),
                         Error);
  }

  TEST_CASE("checkpoint refuses grad() and double backward instead of losing gradients") {
    Tensor x = ones({3}, {.dtype = DType::f64, .requires_grad = true});
    Tensor w = ones({3}, {.dtype = DType::f64, .requires_grad = true});
    Tensor y = sum(checkpoint([&](const TensorList& in) { return in[0] * w; }, {x}));
    CHECK_THROWS_WITH_AS(grad({y}, {x, w}), Contains("checkpoint: tessel::grad() through a checkpointed function"),
                         Error);
    Tensor y2 = sum(checkpoint([](const TensorList& in) { return pow(in[0], 3.0); }, {x}));
    CHECK_THROWS_WITH_AS(y2.backward(Tensor(), false, true), Contains("checkpoint: double backward"), Error);
  }

  TEST_CASE("views and allocations cannot escape their memory") {
    Tensor e = empty({0});
    CHECK_THROWS_WITH_AS(e.alias({1000}, {0}, 0), Contains("outside its storage of 0 elements"), Error);
    CHECK_THROWS_WITH_AS(e.alias({}, {}, 0), Contains("outside its storage"), Error);
    CHECK_THROWS_WITH_AS(zeros({10}).alias({(int64_t{1} << 62) + 1}, {4}, 0), Contains("outside its storage"), Error);
    CHECK_THROWS_WITH_AS(empty({int64_t{1} << 62, 4}), Contains("is too large to address"), Error);
    float buf[4];
    CHECK_THROWS_WITH_AS(from_blob(buf, {-1, 4}, DType::f32), Contains("negative size"), Error);
    CHECK(from_vector({5}).sizes() == Shape{1});  // one value is still a 1-d tensor
  }

  TEST_CASE("max(dim) backward notices modified indices") {
    Tensor x = from_vector({1, 5, 2}, {3}, {.requires_grad = true});
    ValuesIndices r = max(x, 0, true);
    {
      NoGradGuard ng;
      add_(r.indices, 1.0);
    }
    CHECK_THROWS_WITH_AS(sum(r.values).backward(), Contains("modified in place"), Error);
  }

  TEST_CASE("hooks and explicit gradients are validated") {
    Tensor x = ones({3}, {.requires_grad = true});
    x.register_hook([](const Tensor&) { return scalar_tensor(5); });
    CHECK_THROWS_WITH_AS(sum(x * 2.0).backward(),
                         Contains("a hook returned a gradient of shape [] (f32) for a gradient of shape [3]"), Error);
    Tensor y = ones({2}, {.requires_grad = true});
    Tensor z = y * 2.0;
    CHECK_THROWS_WITH_AS(z.backward(from_vector_i64({1, 1})), Contains("gradient must be floating, got i64"), Error);
    z.backward(from_vector({1, 1}, {2}, {.dtype = DType::f64}));  // converted to f32
    CHECK(y.grad().dtype() == DType::f32);
  }

  TEST_CASE("small numerical edge cases") {
    Tensor x = from_vector({0, 2}, {2}, {.dtype = DType::f64, .requires_grad = true});
    sum(pow(x, 0.0)).backward();
    CHECK(x.grad().to_vector<double>() == std::vector<double>{0, 0});
    CHECK(amax(rand({65536}, {.dtype = DType::bf16})).item() < 1.0);
    CHECK(amax(rand({65536}, {.dtype = DType::f16})).item() < 1.0);
    Tensor a = zeros({2, 3, 0}, {.requires_grad = true}), b = zeros({0, 4}, {.requires_grad = true});
    Tensor y = matmul(a, b);
    CHECK(y.sizes() == Shape{2, 3, 4});
    CHECK(sum(abs(y)).item() == 0);
    CHECK(to_dtype(from_vector({1}), DType::b8).str().find("true") != std::string::npos);
    CHECK(to_dtype(scalar_tensor(0), DType::b8).str().find("false") != std::string::npos);
    CHECK_THROWS_WITH_AS(gradcheck([](const TensorList& v) { return v[0]; }, {ones({2}, {.dtype = DType::f64})}),
                         Contains("no input requires grad"), Error);
  }

  TEST_CASE("an exception inside a parallel loop reaches the caller") {
    int before = get_num_threads();
    set_num_threads(2);
    CHECK_THROWS_WITH_AS(
        parallel_for(1000, 1, [](int64_t b, int64_t) { check(b == 0, "worker", "chunk ", b, " failed"); }),
        Contains("worker: chunk 500 failed"), Error);
    set_num_threads(before);
  }
}
