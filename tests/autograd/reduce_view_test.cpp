// f64 gradchecks of reductions and views; their forward semantics against hand-computed values.
#include "tests/helpers.h"

using namespace tessel;
using namespace tessel::testing;

TEST_SUITE("autograd") {
  TEST_CASE("gradcheck: reductions over dim subsets, with and without keepdim") {
    manual_seed(8);
    Tensor x = leaf64({3, 4, 2});
    for (bool keep : {false, true}) {
      for (std::vector<int64_t> dims : {std::vector<int64_t>{}, {0}, {1}, {-1}, {0, 2}, {2, 0, 1}}) {
        INFO("keepdim ", keep, " dims ", shape_str(dims));
        CHECK_GRADCHECK([&](const TensorList& v) { return sum(v[0], dims, keep); }, {x});
        CHECK_GRADCHECK([&](const TensorList& v) { return mean(v[0], dims, keep); }, {x});
        CHECK_GRADCHECK([&](const TensorList& v) { return sum_squares(v[0], dims, keep); }, {x});
        CHECK_GRADCHECK([&](const TensorList& v) { return var(v[0], dims, 1, keep); }, {x});
        CHECK_GRADCHECK([&](const TensorList& v) { return var(v[0], dims, 0, keep); }, {x});
        CHECK_GRADCHECK([&](const TensorList& v) { return amax(v[0], dims, keep); }, {x});
        CHECK_GRADCHECK([&](const TensorList& v) { return amin(v[0], dims, keep); }, {x});
      }
      CHECK_GRADCHECK([&](const TensorList& v) { return max(v[0], 1, keep).values; }, {x});
      CHECK_GRADCHECK([&](const TensorList& v) { return min(v[0], -1, keep).values; }, {x});
    }
  }

  TEST_CASE("reductions: values, shapes and indices") {
    Tensor x = from_vector({1, 5, 2, 5, -1, 0}, {2, 3});
    CHECK(sum(x).item() == 12);
    CHECK(sum(x, {0}).to_vector<float>() == std::vector<float>{6, 4, 2});
    CHECK(sum(x, {1}, true).sizes() == Shape{2, 1});
    CHECK(mean(x, {1}).to_vector<float>() == std::vector<float>{8.0f / 3, 4.0f / 3});
    CHECK(sum_squares(x).item() == 1 + 25 + 4 + 25 + 1 + 0);
    CHECK(sum_squares(x, {0}).to_vector<float>() == std::vector<float>{26, 26, 4});
    CHECK_THROWS_WITH_AS(sum_squares(from_vector({1, 2}, {2}, {.dtype = DType::i64})), doctest::Contains("sum_squares"),
                         Error);
    auto m = max(x, 1);
    CHECK(m.values.to_vector<float>() == std::vector<float>{5, 5});
    CHECK(m.indices.to_vector<int64_t>() == std::vector<int64_t>{1, 0});
    CHECK(argmin(x, 0).to_vector<int64_t>() == std::vector<int64_t>{0, 1, 1});
    CHECK(sum(to_dtype(gt(x, scalar_like(1.5, x)), DType::b8)).item() == 3);
    CHECK(sum(x, {0, 1}).dim() == 0);
    // amax ties share the gradient; max(dim) sends it to the first winner only.
    Tensor t = from_vector({3, 1, 3}, {3}, {.dtype = DType::f64, .requires_grad = true});
    amax(t).backward();
    CHECK(t.grad().to_vector<double>() == std::vector<double>{0.5, 0, 0.5});
    Tensor u = from_vector({3, 1, 3}, {3}, {.dtype = DType::f64, .requires_grad = true});
    max(u, 0).values.backward();
    CHECK(u.grad().to_vector<double>() == std::vector<double>{1, 0, 0});
  }

  TEST_CASE("gradcheck: views") {
    manual_seed(9);
    Tensor x = leaf64({3, 4, 5});
    CHECK_GRADCHECK([](const TensorList& v) { return reshape(v[0], {4, 15}); }, {x});
    CHECK_GRADCHECK([](const TensorList& v) { return reshape(transpose(v[0], 0, 2), {-1}); }, {x});
    CHECK_GRADCHECK([](const TensorList& v) { return permute(v[0], {1, 2, 0}); }, {x});
    CHECK_GRADCHECK([](const TensorList& v) { return slice(v[0], 2, 1, 5, 2); }, {x});
    CHECK_GRADCHECK([](const TensorList& v) { return narrow(v[0], 1, 1, 2); }, {x});
    CHECK_GRADCHECK([](const TensorList& v) { return select(v[0], 0, -1); }, {x});
    CHECK_GRADCHECK([](const TensorList& v) { return expand(select(v[0], 2, 0), {2, 3, 4}); }, {x});
    CHECK_GRADCHECK([](const TensorList& v) { return unsqueeze(squeeze(narrow(v[0], 0, 1, 1)), 1); }, {x});
    CHECK_GRADCHECK([](const TensorList& v) { return flatten(v[0], 1); }, {x});
    CHECK_GRADCHECK([](const TensorList& v) { return contiguous(transpose(v[0], 1, 2)); }, {x});
    CHECK_GRADCHECK([](const TensorList& v) { return clone(v[0]) * v[0]; }, {x});
    // Overlapping views of one input: gradients from both paths add up.
    CHECK_GRADCHECK([](const TensorList& v) { return slice(v[0], 1, 0, 3) * slice(v[0], 1, 1, 4); }, {x});
  }

  TEST_CASE("gradient of a view flows back into the base tensor's leaf") {
    Tensor w = zeros({2, 3}, {.dtype = DType::f64, .requires_grad = true});
    Tensor row = select(w, 0, 1);
    sum(row * from_vector({1, 2, 3}, {3}, {.dtype = DType::f64})).backward();
    CHECK(w.grad().to_vector<double>() == std::vector<double>{0, 0, 0, 1, 2, 3});
  }

  TEST_CASE("sum_to reduces broadcast dims") {
    Tensor g = ones({4, 2, 3});
    CHECK(sum_to(g, {2, 1}).to_vector<float>() == std::vector<float>{12, 12});
    CHECK(sum_to(g, {3}).to_vector<float>() == std::vector<float>{8, 8, 8});
    CHECK(sum_to(g, {}).item() == 24);
    CHECK(sum_to(g, {4, 2, 3}).same(g));
  }
}
