// tests/core/cuda_test.cpp — the CUDA queries answer sensibly in every build.
#include "tests/helpers.h"

TEST_SUITE("core") {
  TEST_CASE("cuda queries never abort") {
    using namespace tessel;
    const bool avail = cuda_available();
    CHECK(cuda_device_count() == (avail ? cuda_device_count() : 0));
    if (!cuda_built()) {
      CHECK_FALSE(avail);
      CHECK_THROWS_WITH_AS(cuda_device_name(0), doctest::Contains("built without CUDA"), Error);
      CHECK_THROWS_WITH_AS(cuda_synchronize(), doctest::Contains("built without CUDA"), Error);
    }
    TESSEL_REQUIRE_CUDA();
    CHECK(cuda_device_count() >= 1);
    CHECK_FALSE(cuda_device_name(0).empty());
    CHECK_THROWS_AS(cuda_device_name(cuda_device_count()), Error);
  }
}
