// Core: views share memory and follow NumPy/PyTorch shape rules; broadcasting.
#include "tests/helpers.h"

using namespace tessel;
using namespace tessel::testing;

TEST_SUITE("core") {
  TEST_CASE("reshape and view share storage when possible") {
    Tensor x = arange(12, {.dtype = DType::f32});
    Tensor y = reshape(x, {3, -1});
    CHECK(y.sizes() == Shape{3, 4});
    CHECK(y.storage() == x.storage());
    y.set_at({1, 1}, 100);
    CHECK(x.at({5}) == 100);  // writes through a view are visible in the base
    // A transposed tensor cannot be flattened without a copy: reshape copies, view refuses.
    Tensor tr = transpose(y, 0, 1);
    CHECK_FALSE(tr.is_contiguous());
    Tensor flat = reshape(tr, {12});
    CHECK(flat.storage() != x.storage());
    CHECK(flat.at({1}) == 4);  // tr[0][1] = y[1][0] = 4
    CHECK_THROWS_WITH_AS(view(tr, {12}), doctest::Contains("without a copy"), Error);
    // Splitting a dim of a transposed tensor is still a view.
    Tensor split = view(tr, {2, 2, 3});
    CHECK(split.storage() == x.storage());
    CHECK(split.at({1, 0, 2}) == y.at({2, 2}));
  }

  TEST_CASE("permute, transpose, squeeze, unsqueeze, flatten") {
    Tensor x = randn({2, 3, 4});
    Tensor p = permute(x, {2, 0, 1});
    CHECK(p.sizes() == Shape{4, 2, 3});
    CHECK(p.strides() == Shape{1, 12, 4});
    CHECK(p.at({3, 1, 2}) == x.at({1, 2, 3}));
    CHECK(transpose(x, -1, 0).sizes() == Shape{4, 3, 2});
    CHECK(unsqueeze(x, 1).sizes() == Shape{2, 1, 3, 4});
    CHECK(unsqueeze(x, -1).sizes() == Shape{2, 3, 4, 1});
    CHECK(squeeze(zeros({1, 3, 1})).sizes() == Shape{3});
    CHECK(squeeze(zeros({1, 3, 1}), 2).sizes() == Shape{1, 3});
    CHECK(squeeze(zeros({2, 3}), 0).sizes() == Shape{2, 3});  // not size 1: unchanged
    CHECK(flatten(x, 1).sizes() == Shape{2, 12});
    CHECK(flatten(x).sizes() == Shape{24});
    CHECK_THROWS_WITH_AS(permute(x, {0, 0, 1}), doctest::Contains("appears twice"), Error);
  }

  TEST_CASE("slice, narrow, select follow Python slicing") {
    Tensor x = arange(10, {.dtype = DType::f64});
    CHECK(slice(x, 0, 2, 8, 3).to_vector<double>() == std::vector<double>{2, 5});
    CHECK(slice(x, 0, -3, 100).to_vector<double>() == std::vector<double>{7, 8, 9});
    CHECK(slice(x, 0, 5, 2).numel() == 0);
    CHECK(narrow(x, 0, 4, 2).to_vector<double>() == std::vector<double>{4, 5});
    Tensor m = reshape(arange(12, {.dtype = DType::f32}), {3, 4});
    CHECK(select(m, 1, 2).to_vector<float>() == std::vector<float>{2, 6, 10});
    CHECK(select(m, 0, -1).to_vector<float>() == std::vector<float>{8, 9, 10, 11});
    CHECK(select(m, 0, 1).storage() == m.storage());
    CHECK_THROWS_WITH_AS(narrow(x, 0, 8, 5), doctest::Contains("outside dim 0 of size 10"), Error);
    CHECK_THROWS_WITH_AS(select(m, 1, 4), doctest::Contains("out of range"), Error);
  }

  TEST_CASE("expand gives stride 0; contiguous materializes") {
    Tensor b = from_vector({1, 2, 3});
    Tensor e = expand(b, {4, 3});
    CHECK(e.strides() == Shape{0, 1});
    CHECK(e.at({3, 2}) == 3);
    Tensor e2 = expand(reshape(b, {3, 1}), {-1, 5});
    CHECK(e2.sizes() == Shape{3, 5});
    CHECK(e2.at({2, 4}) == 3);
    Tensor c = contiguous(e);
    CHECK(c.is_contiguous());
    CHECK(c.storage() != b.storage());
    CHECK(c.to_vector<float>() == std::vector<float>{1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3});
    CHECK_THROWS_WITH_AS(expand(b, {4, 2}), doctest::Contains("cannot broadcast shape [3] to [4, 2]"), Error);
  }

  TEST_CASE("broadcast_shapes follows NumPy rules") {
    CHECK(broadcast_shapes({3, 1, 5}, {4, 1}, "t") == Shape{3, 4, 5});
    CHECK(broadcast_shapes({}, {2, 3}, "t") == Shape{2, 3});
    CHECK(broadcast_shapes({1}, {0}, "t") == Shape{0});
    CHECK(broadcast_shapes({2, 1}, {1, 3}, "t") == Shape{2, 3});
    CHECK_THROWS_WITH_AS(broadcast_shapes({2, 3}, {3, 2}, "add"),
                         doctest::Contains("add: shapes [2, 3] and [3, 2] cannot be broadcast"), Error);
  }

  TEST_CASE("binary ops broadcast like NumPy") {
    Tensor a = reshape(arange(6, {.dtype = DType::f32}), {2, 3, 1});
    Tensor b = reshape(arange(4, {.dtype = DType::f32}), {4});
    Tensor c = a + b;
    CHECK(c.sizes() == Shape{2, 3, 4});
    for (int64_t i = 0; i < 2; ++i)
      for (int64_t j = 0; j < 3; ++j)
        for (int64_t k = 0; k < 4; ++k) REQUIRE(c.at({i, j, k}) == a.at({i, j, 0}) + b.at({k}));
  }

  TEST_CASE("alias refuses views outside the storage") {
    Tensor x = zeros({4});
    CHECK_THROWS_WITH_AS(x.alias({5}, {1}, 0), doctest::Contains("outside its storage"), Error);
    CHECK_THROWS_WITH_AS(x.alias({2}, {1}, 3), doctest::Contains("outside its storage"), Error);
    CHECK(x.alias({2}, {2}, 1).numel() == 2);
  }
}

TEST_SUITE("core") {
  TEST_CASE("empty tensors are contiguous whatever their shape") {
    CHECK(empty({3, 0, 2}).is_contiguous());
    CHECK(empty({3, 0, 2}).buf().is_contiguous());
    CHECK(contiguous(transpose(empty({3, 0, 2}), 0, 2)).numel() == 0);
  }
}
