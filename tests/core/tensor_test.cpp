#include "tests/helpers.h"

using namespace tessel;

TEST_SUITE("core") {
  TEST_CASE("factories and element access") {
    Tensor z = zeros({2, 3});
    CHECK(z.sizes() == Shape{2, 3});
    CHECK(z.strides() == Shape{3, 1});
    CHECK(z.dtype() == DType::f32);
    CHECK(z.at({1, 2}) == 0.0);
    Tensor f = full({4}, 2.5, {.dtype = DType::f64});
    CHECK(f.at({3}) == 2.5);
    Tensor a = arange(5);
    CHECK(a.dtype() == DType::i64);
    CHECK(a.to_vector<int64_t>() == std::vector<int64_t>{0, 1, 2, 3, 4});
    Tensor v = from_vector({1, 2, 3, 4, 5, 6}, {2, 3});
    CHECK(v.at({1, 0}) == 4.0);
    CHECK(v.at({-1, -1}) == 6.0);
  }
}
