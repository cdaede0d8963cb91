// Core: factories, element access, dtypes and conversions, printing, threads.
#include <cmath>
#include <limits>

#include "tests/helpers.h"

using namespace tessel;
using namespace tessel::testing;

TEST_SUITE("core") {
  TEST_CASE("factories and element access") {
    Tensor z = zeros({2, 3});
    CHECK(z.sizes() == Shape{2, 3});
    CHECK(z.strides() == Shape{3, 1});
    CHECK(z.dtype() == DType::f32);
    CHECK(z.is_contiguous());
    CHECK(z.at({1, 2}) == 0.0);
    Tensor f = full({4}, 2.5, {.dtype = DType::f64});
    CHECK(f.at({3}) == 2.5);
    CHECK(ones({2, 2}, {.dtype = DType::i32}).to_vector<int32_t>() == std::vector<int32_t>{1, 1, 1, 1});
    Tensor a = arange(5);
    CHECK(a.dtype() == DType::i64);
    CHECK(a.to_vector<int64_t>() == std::vector<int64_t>{0, 1, 2, 3, 4});
    CHECK(arange(1.0, 2.0, 0.25, {.dtype = DType::f32}).to_vector<float>() ==
          std::vector<float>{1, 1.25f, 1.5f, 1.75f});
    CHECK(arange(5.0, 0.0, -2.0).to_vector<int64_t>() == std::vector<int64_t>{5, 3, 1});
    Tensor v = from_vector({1, 2, 3, 4, 5, 6}, {2, 3});
    CHECK(v.at({1, 0}) == 4.0);
    CHECK(v.at({-1, -1}) == 6.0);
    v.set_at({0, 1}, 9);
    CHECK(v.at({0, 1}) == 9.0);
    CHECK(scalar_tensor(3.5).dim() == 0);
    CHECK(scalar_tensor(3.5).item() == 3.5);
    Tensor e = empty({0, 3});
    CHECK(e.numel() == 0);
    CHECK(e.str().find("[]") != std::string::npos);
  }

  TEST_CASE("dtype sizes, names and promotion") {
    CHECK(dtype_size(DType::bf16) == 2);
    CHECK(dtype_size(DType::b8) == 1);
    CHECK(std::string(dtype_name(DType::b8)) == "bool");
    CHECK(dtype_from_name("bf16") == DType::bf16);
    CHECK(promote_types(DType::i32, DType::f16) == DType::f16);
    CHECK(promote_types(DType::bf16, DType::f16) == DType::f32);
    CHECK(promote_types(DType::i32, DType::i64) == DType::i64);
    CHECK(promote_types(DType::b8, DType::i32) == DType::i32);
    CHECK(promote_types(DType::f32, DType::f64) == DType::f64);
  }

  TEST_CASE("bf16 and f16 conversions round to nearest even and keep specials") {
    CHECK(static_cast<float>(bf16(1.0f)) == 1.0f);
    // 1 + 2^-8 is exactly halfway between two bf16 values: ties go to the even one (1.0).
    CHECK(static_cast<float>(bf16(1.0f + std::ldexp(1.0f, -8))) == 1.0f);
    CHECK(static_cast<float>(bf16(1.0f + 3 * std::ldexp(1.0f, -8))) == 1.0f + std::ldexp(1.0f, -6));
    CHECK(std::isnan(static_cast<float>(bf16(std::nanf("")))));
    CHECK(std::isinf(static_cast<float>(bf16(INFINITY))));
    CHECK(static_cast<float>(f16(65504.0f)) == 65504.0f);
    CHECK(std::isinf(static_cast<float>(f16(65520.0f))));  // rounds up past the largest finite
    CHECK(static_cast<float>(f16(std::ldexp(1.0f, -24))) == std::ldexp(1.0f, -24));  // smallest subnormal
    CHECK(static_cast<float>(f16(std::ldexp(1.0f, -25))) == 0.0f);                   // tie -> even (0)
    CHECK(static_cast<float>(f16(-2.5f)) == -2.5f);
    CHECK(std::isnan(static_cast<float>(f16(std::nanf("")))));
    // Every f16 bit pattern survives a round trip through f32.
    for (uint32_t b = 0; b < 0x10000; ++b) {
      f16 h;
      h.bits = static_cast<uint16_t>(b);
      float f = h;
      if (std::isnan(f)) continue;
      REQUIRE(f16(f).bits == h.bits);
    }
  }

  TEST_CASE("dtype conversion through to_dtype and copy_into") {
    Tensor x = from_vector({-1.5, 0.0, 2.7, 3.0});
    CHECK(to_dtype(x, DType::i64).to_vector<int64_t>() == std::vector<int64_t>{-1, 0, 2, 3});
    CHECK(to_dtype(x, DType::b8).to_vector<bool>() == std::vector<bool>{true, false, true, true});
    CHECK(to_dtype(to_dtype(x, DType::bf16), DType::f32).to_vector<float>() ==
          std::vector<float>{-1.5f, 0.0f, 2.703125f, 3.0f});
    Tensor y = zeros({2, 4}, {.dtype = DType::f64});
    copy_into(y, x);  // broadcast over rows
    CHECK(y.at({1, 2}) == doctest::Approx(2.7).epsilon(1e-6));
  }

  TEST_CASE("printing") {
    Tensor x = from_vector({1, 2, 3, 4}, {2, 2});
    std::string s = x.str();
    CHECK(s.find("[[1, 2],") != std::string::npos);
    CHECK(s.find("shape=[2, 2]") != std::string::npos);
    CHECK(s.find("dtype=f32") != std::string::npos);
    Tensor big = zeros({100, 100});
    CHECK(big.str().find("...") != std::string::npos);
    CHECK(to_dtype(from_vector({1, 0}), DType::b8).str().find("true, false") != std::string::npos);
    Tensor w = ones({2}, {.requires_grad = true});
    CHECK(w.str().find("requires_grad=true") != std::string::npos);
  }

  TEST_CASE("thread count control") {
    int before = get_num_threads();
    CHECK(before >= 1);
    set_num_threads(1);
    CHECK(get_num_threads() == 1);
    int64_t calls = 0;
    parallel_for(1 << 20, 1, [&](int64_t b, int64_t e) {
      CHECK(b == 0);
      CHECK(e == (1 << 20));
      ++calls;
    });
    CHECK(calls == 1);
    set_num_threads(before);
    CHECK_THROWS_WITH_AS(set_num_threads(0), doctest::Contains("at least 1 thread"), Error);
    CHECK(hardware_threads() >= 1);
  }

  TEST_CASE("parallel_for covers the range exactly once with disjoint chunks") {
    int before = get_num_threads();
    set_num_threads(2);
    std::vector<int> hits(1001, 0);
    parallel_for(1001, 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) hits[i]++;
    });
    for (int h : hits) REQUIRE(h == 1);
    set_num_threads(before);
  }
}
