// Core: the counter-based generator and the caching allocator.
#include <cmath>

#include "core/allocator.h"
#include "tests/helpers.h"

using namespace tessel;
using namespace tessel::testing;

TEST_SUITE("core") {
  TEST_CASE("philox matches the Random123 known-answer vectors") {
    // Philox4x32-10 test vectors from the Random123 distribution (kat_vectors): counter and key
    // all zero, and all ones.
    uint32_t out[4];
    philox4x32_10(0, 0, out);
    CHECK(out[0] == 0x6627e8d5u);
    CHECK(out[1] == 0xe169c58du);
    CHECK(out[2] == 0xbc57ac4cu);
    CHECK(out[3] == 0x9b00dbd8u);
  }

  TEST_CASE("random streams are reproducible from the seed and independent of threads") {
    manual_seed(42);
    Tensor a = randn({1000});
    Tensor b = rand({7, 3});
    manual_seed(42);
    Tensor a2 = randn({1000});
    Tensor b2 = rand({7, 3});
    CHECK_EQUAL_TENSOR(a, a2);
    CHECK_EQUAL_TENSOR(b, b2);
    // A second draw continues the stream instead of repeating it.
    manual_seed(42);
    Tensor c = randn({1000});
    Tensor d = randn({1000});
    CHECK_FALSE(closeness(c, d, 0, 0).ok);
    // Same values whatever the thread count.
    int before = get_num_threads();
    set_num_threads(1);
    manual_seed(7);
    Tensor one = randn({1 << 16});
    set_num_threads(2);
    manual_seed(7);
    Tensor two = randn({1 << 16});
    set_num_threads(before);
    CHECK_EQUAL_TENSOR(one, two);
    // A private generator does not disturb the default one.
    Generator g(5);
    manual_seed(9);
    Tensor x1 = rand({4});
    manual_seed(9);
    (void)rand({4}, {}, &g);
    Tensor x2 = rand({4});
    CHECK_EQUAL_TENSOR(x1, x2);
  }

  TEST_CASE("random distributions have the right moments and ranges") {
    manual_seed(1);
    Tensor n = randn({200000}, {.dtype = DType::f64});
    CHECK(std::fabs(mean(n).item()) < 0.01);
    CHECK(std::fabs(var(n).item() - 1.0) < 0.02);
    Tensor u = rand({200000}, {.dtype = DType::f64});
    CHECK(amin(u).item() >= 0.0);
    CHECK(amax(u).item() < 1.0);
    CHECK(std::fabs(mean(u).item() - 0.5) < 0.01);
    Tensor r = randint(-3, 4, {100000});
    CHECK(amin(r).item() == -3);
    CHECK(amax(r).item() == 3);
    Tensor bern = bernoulli({100000}, 0.25);
    CHECK(std::fabs(mean(bern).item() - 0.25) < 0.01);
    CHECK_THROWS_WITH_AS(randint(3, 3, {2}), doctest::Contains("low < high"), Error);
    CHECK_THROWS_WITH_AS(rand({2}, {.dtype = DType::i32}), doctest::Contains("floating dtype"), Error);
  }

  // The cache tests set the cache limit themselves: the sanitizer run turns the cache off
  // (TESSEL_CPU_CACHE_LIMIT_MB=0) for the rest of the suite.
  struct CacheOn {
    int64_t before = cpu_allocator::cache_limit();
    CacheOn() { cpu_allocator::set_cache_limit(int64_t{1} << 30); }
    ~CacheOn() { cpu_allocator::set_cache_limit(before); }
  };

  TEST_CASE("allocator: 64-byte alignment, reuse of freed blocks, current/peak counters") {
    CacheOn on;
    cpu_allocator::empty_cache();
    auto s0 = cpu_allocator::stats();
    void* p = nullptr;
    {
      Tensor t = empty({1000, 37});
      p = t.data();
      CHECK(reinterpret_cast<uintptr_t>(p) % 64 == 0);
      auto s1 = cpu_allocator::stats();
      CHECK(s1.current_bytes >= s0.current_bytes + 1000 * 37 * 4);
      CHECK(s1.peak_bytes >= s1.current_bytes);
    }
    auto s2 = cpu_allocator::stats();
    CHECK(s2.current_bytes == s0.current_bytes);
    CHECK(s2.cached_bytes > 0);
    // Same size class again: the cached block comes back, no new memory from the OS.
    int64_t os_before = s2.os_alloc_count;
    Tensor t2 = empty({37, 1000});
    CHECK(t2.data() == p);
    CHECK(cpu_allocator::stats().os_alloc_count == os_before);
    cpu_allocator::empty_cache();
    CHECK(cpu_allocator::stats().cached_bytes == 0);
  }

  TEST_CASE("allocator size classes waste at most a quarter") {
    for (size_t n : {1ul, 63ul, 64ul, 65ul, 1000ul, 4096ul, 5000ul, 1ul << 20, (1ul << 20) + 1, 123456789ul}) {
      size_t r = cpu_allocator::round_size(n);
      CHECK(r >= n);
      CHECK(r % 64 == 0);
      CHECK(static_cast<double>(r) <= std::max<double>(n * 1.25 + 64, 256));
    }
  }

  TEST_CASE("a steady-state training step does not go to the OS for memory") {
    CacheOn on;
    Tensor w = randn({64, 64}, {.requires_grad = true});
    auto step = [&] {
      Tensor x = randn({32, 64});
      Tensor y = sum(tanh(x * sum(w, {0})) * 2.0);
      y.backward();
      NoGradGuard ng;
      zero_(w);  // an in-place update, as an optimizer would do
    };
    step();
    step();
    int64_t before = cpu_allocator::stats().os_alloc_count;
    for (int i = 0; i < 5; ++i) step();
    CHECK(cpu_allocator::stats().os_alloc_count == before);
  }
}
