#include "core/parallel.h"

#include <doctest/doctest.h>

#include <array>
#include <bit>
#include <cstdint>

#include "tests/helpers.h"

using namespace tessel;
using tessel::testing::ThreadsGuard;

namespace {

// What each of (up to) two compute threads gets for a subnormal result (1e-30 * 1e-10) and for
// a subnormal input times one (1e-40 * 1), as bits: compared as floats on a thread with
// denormals-are-zero, a subnormal would equal 0. volatile: the compiler must not fold them.
struct Underflow {
  uint32_t product = 1, input = 1;
};
std::array<Underflow, 2> underflow_on_threads() {
  std::array<Underflow, 2> out{};
  parallel_for(2, 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      volatile float tiny = 1e-30f, scale = 1e-10f, sub = 1e-40f, one = 1.0f;
      out[static_cast<size_t>(i)] = {std::bit_cast<uint32_t>(tiny * scale), std::bit_cast<uint32_t>(sub * one)};
    }
  });
  return out;
}

struct FlushGuard {
  bool saved = flush_denormal();
  ~FlushGuard() { set_flush_denormal(saved); }
};

}  // namespace

TEST_SUITE("core") {
  TEST_CASE("set_flush_denormal: subnormals flush to zero on every compute thread, and back") {
    ThreadsGuard threads;
    FlushGuard flush;
    set_num_threads(2);
    underflow_on_threads();  // the worker thread exists before the switch (it has its own MXCSR)
#if defined(__x86_64__) || defined(__i386__)
    REQUIRE(set_flush_denormal(true));
    CHECK(flush_denormal());
    for (const Underflow& u : underflow_on_threads()) {
      CHECK(u.product == 0u);  // flush to zero: the subnormal result is +0
      CHECK(u.input == 0u);    // denormals are zero: the subnormal operand reads as +0
    }
    REQUIRE(set_flush_denormal(false));
    CHECK_FALSE(flush_denormal());
    for (const Underflow& u : underflow_on_threads()) {
      // gradual underflow: 1e-30 * 1e-10 is a subnormal (exponent bits 0, mantissa not)
      CHECK(u.product != 0u);
      CHECK((u.product & 0x7f800000u) == 0u);
      CHECK(u.input == std::bit_cast<uint32_t>(1e-40f));  // the subnormal operand, exactly
    }
#else
    CHECK_FALSE(set_flush_denormal(true));
    CHECK_FALSE(flush_denormal());
#endif
  }
}
