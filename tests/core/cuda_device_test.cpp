// tests/core/cuda_device_test.cpp — device tensors: moves, device-side copies and fills, the RNG
// stream, the caching allocator on the device, streams and events, and the errors.
//
// The cases that need a GPU start with TESSEL_REQUIRE_CUDA() and are skipped (visibly) without
// one; the others check what every build must do: clear errors without a device or backend, and
// the portable normal mapping the CPU and the GPU share.
#include <cmath>
#include <numbers>

#include "tests/helpers.h"
#if TESSEL_HAVE_CUDA
#include "core/cuda/stream.h"
#endif

using namespace tessel;
using namespace tessel::testing;

namespace {

// A packed CPU copy of t.
Tensor host_copy(const Tensor& t) { return contiguous(to_device(t, Device::cpu())); }

// Same shape, dtype and values, bit for bit except NaN payloads (CUDA's conversions produce
// the canonical NaN where x86 keeps the payload): every dtype converts to double exactly, so
// equal doubles with equal signs are equal bits.
bool bitwise_equal(const Tensor& a, const Tensor& b) {
  if (a.sizes() != b.sizes() || a.dtype() != b.dtype()) return false;
  std::vector<double> va = host_copy(a).to_vector<double>(), vb = host_copy(b).to_vector<double>();
  for (size_t i = 0; i < va.size(); ++i) {
    if (std::isnan(va[i]) && std::isnan(vb[i])) continue;
    if (va[i] != vb[i] || std::signbit(va[i]) != std::signbit(vb[i])) return false;
  }
  return true;
}

// Values of every dtype, non-trivial ones: random normals scaled up (so integer dtypes see
// varied values), with specials that exercise the conversions (NaN, inf, out of integer range).
Tensor varied(const Shape& shape, DType dtype) {
  Tensor x = mul(randn(shape, {.dtype = DType::f64}), scalar_tensor(1000.0, {.dtype = DType::f64}));
  if (x.numel() >= 6) {
    Tensor flat = reshape(x, {-1});
    const double specials[] = {NAN, INFINITY, -INFINITY, 1e20, -1e20, 0.5};
    for (int i = 0; i < 6; ++i) flat.set_at({i}, specials[i]);
  }
  return to_dtype(x, dtype);
}

const std::vector<Shape>& shapes() {
  static const std::vector<Shape> s = {{}, {1}, {7}, {3, 5, 2}, {0, 3}, {1025, 3}, {2, 1, 3, 1, 5}};
  return s;
}

}  // namespace

TEST_SUITE("core") {
  // ---------------------------------------------------------------- every build

  TEST_CASE("cuda: device tensors without a device or backend fail clearly") {
    if (cuda_available()) return;  // the GPU cases below cover this build
    const char* why = cuda_built() ? "no CUDA device 0" : "built without CUDA";
    CHECK_THROWS_WITH_AS(empty({2}, {.device = Device::cuda()}), doctest::Contains(why), Error);
    CHECK_THROWS_WITH_AS(zeros({2}, {.device = Device::cuda()}), doctest::Contains(why), Error);
    CHECK_THROWS_WITH_AS(randn({2}, {.device = Device::cuda()}), doctest::Contains(why), Error);
    CHECK_THROWS_WITH_AS(to_device(ones({3}), Device::cuda()), doctest::Contains(why), Error);
    if (!cuda_built()) {
      CudaMemoryStats s = cuda_memory_stats(0);
      CHECK(s.current_bytes == 0);
      CHECK(s.reserved_bytes == 0);
      CHECK_NOTHROW(cuda_empty_cache());
      CHECK_THROWS_WITH_AS(cuda_set_memory_limit(1 << 20), doctest::Contains("built without CUDA"), Error);
    } else {
      CHECK_THROWS_WITH_AS(cuda_memory_stats(0), doctest::Contains("this machine has 0 CUDA devices"), Error);
      CHECK_THROWS_WITH_AS(cuda_synchronize(), doctest::Contains("no CUDA device"), Error);
      CHECK_NOTHROW(cuda_empty_cache());
      CHECK_NOTHROW(cuda_set_memory_limit(1 << 20));  // applies to the devices there are: none
      cuda_set_memory_limit(0);
#if TESSEL_HAVE_CUDA
      // The runtime's own failures become tessel::Error too, naming the call.
      CHECK_THROWS_AS(cuda::Stream(), Error);
      CHECK_THROWS_WITH_AS(cuda::Stream(0), doctest::Contains("Stream: no CUDA device 0"), Error);
      CHECK_THROWS_WITH_AS(cuda::Event(), doctest::Contains("cudaEventCreateWithFlags"), Error);
#endif
    }
  }

  TEST_CASE("rng: the portable normal mapping matches libm's Box-Muller to float accuracy") {
    // philox_normal avoids logf/sinf/cosf so that the CPU and the GPU agree bitwise; here it is
    // checked against the textbook formula evaluated in double from the same random words.
    double worst = 0;
    for (int64_t i = 0; i < 200000; ++i) {
      uint32_t w[4];
      philox4x32_10(7 + static_cast<uint64_t>(i) / 4, 1234, w);
      int pair = static_cast<int>(i % 4) / 2;
      double u1 = (static_cast<double>(w[2 * pair] >> 8) + 1.0) / 16777216.0;
      double u2 = static_cast<double>(w[2 * pair + 1] >> 8) / 16777216.0;
      double r = std::sqrt(-2.0 * std::log(u1)), th = 2 * std::numbers::pi * u2;
      double want = i % 2 == 0 ? r * std::cos(th) : r * std::sin(th);
      double got = philox_normal(1234, 7, i);
      worst = std::max(worst, std::fabs(got - want) / (1.0 + std::fabs(want)));
    }
    CHECK(worst < 2e-6);
    // Exact corners of the reduction: quarter turns give exact axes.
    float c, s;
    rng_math::sincos_turns24(0, &c, &s);
    CHECK(c == 1.0f);
    CHECK(s == 0.0f);
    rng_math::sincos_turns24(1u << 22, &c, &s);  // a quarter turn
    CHECK(std::fabs(c) < 1e-7f);
    CHECK(s == 1.0f);
    rng_math::sincos_turns24(1u << 23, &c, &s);  // half a turn
    CHECK(c == -1.0f);
    CHECK(rng_math::log_pos(1.0f) == 0.0f);
    CHECK(rng_math::log_pos(0.5f) == doctest::Approx(std::log(0.5)).epsilon(1e-7));
    CHECK(rng_math::log_pos(5.9604645e-08f) == doctest::Approx(std::log(5.9604645e-08)).epsilon(1e-7));
  }

  // ---------------------------------------------------------------- on a GPU

  TEST_CASE("cuda: CPU -> CUDA -> CPU round trip for every dtype, odd shapes, non-contiguous sources") {
    TESSEL_REQUIRE_CUDA();
    manual_seed(3);
    for (DType dt : kAllDTypes)
      for (const Shape& shape : shapes()) {
        CAPTURE(dtype_name(dt));
        CAPTURE(shape_str(shape));
        Tensor x = varied(shape, dt);
        Tensor d = to_device(x, Device::cuda());
        CHECK(d.device() == Device::cuda());
        CHECK(d.dtype() == dt);
        CHECK(bitwise_equal(to_device(d, Device::cpu()), x));
        if (shape.size() >= 2) {  // a transposed (non-contiguous) source, both directions
          Tensor t = transpose(x, 0, -1);
          CHECK(bitwise_equal(to_device(to_device(t, Device::cuda()), Device::cpu()), contiguous(t)));
          Tensor dt_view = transpose(d, 0, -1);
          CHECK(bitwise_equal(to_device(dt_view, Device::cpu()), contiguous(t)));
        }
      }
    // Large enough to take several staging chunks (4 MiB each) and a partial last one.
    Tensor big = randn({3 * (1 << 20) + 17});
    CHECK(bitwise_equal(to_device(to_device(big, Device::cuda()), Device::cpu()), big));
  }

  TEST_CASE("cuda: contiguous, clone and to_dtype on the device equal the CPU's") {
    TESSEL_REQUIRE_CUDA();
    manual_seed(4);
    for (const Shape& shape : shapes()) {
      Tensor x = noncontig_randn(shape);
      Tensor d = to_device(x, Device::cuda());  // packed on the device
      Tensor dv = shape.size() >= 2 ? transpose(d, 0, -1) : d;
      Tensor xv = shape.size() >= 2 ? transpose(x, 0, -1) : x;
      Tensor c = contiguous(dv);
      CHECK(c.device() == Device::cuda());
      CHECK(c.is_contiguous());
      CHECK(bitwise_equal(c, contiguous(xv)));
      CHECK(bitwise_equal(clone(dv), clone(xv)));
    }
    // Every dtype pair, with values that test rounding, saturation, NaN and bool.
    for (DType from : kAllDTypes)
      for (DType to : kAllDTypes) {
        CAPTURE(dtype_name(from));
        CAPTURE(dtype_name(to));
        Tensor x = varied({5, 37}, from);
        Tensor on_gpu = to_dtype(transpose(to_device(x, Device::cuda()), 0, 1), to);
        CHECK(on_gpu.device() == Device::cuda());
        CHECK(bitwise_equal(on_gpu, to_dtype(transpose(x, 0, 1), to)));
        // Moving and converting in one step converts on the destination.
        CHECK(bitwise_equal(to_dtype(to_device(x, Device::cuda()), to), to_dtype(x, to)));
      }
    // Broadcasting copy_ on the device, into a non-contiguous destination.
    Tensor dst = zeros({6, 4}, {.device = Device::cuda()});
    Tensor src = to_device(from_vector({1, 2, 3, 4, 5, 6}, {6, 1}), Device::cuda());
    Tensor dst_t = transpose(dst, 0, 1);  // [4, 6]
    copy_(dst_t, reshape(src, {6}));
    Tensor want = expand(from_vector({1, 2, 3, 4, 5, 6}, {6, 1}), {6, 4});
    CHECK(bitwise_equal(dst, contiguous(want)));
  }

  TEST_CASE("cuda: fill, zeros, ones, full on the device equal the CPU's") {
    TESSEL_REQUIRE_CUDA();
    for (DType dt : kAllDTypes) {
      CAPTURE(dtype_name(dt));
      const TensorOptions on_gpu{.dtype = dt, .device = Device::cuda()}, on_cpu{.dtype = dt};
      for (double v : std::vector<double>{0.0, 1.0, -2.5, 3e9, NAN}) {
        CAPTURE(v);
        CHECK(bitwise_equal(full({3, 7}, v, on_gpu), full({3, 7}, v, on_cpu)));
      }
      CHECK(bitwise_equal(zeros({1000}, on_gpu), zeros({1000}, on_cpu)));
      CHECK(bitwise_equal(ones({2, 3, 5}, on_gpu), ones({2, 3, 5}, on_cpu)));
      CHECK(zeros({0, 4}, on_gpu).numel() == 0);
    }
    // fill_ through a strided view writes exactly the view's elements.
    Tensor d = zeros({8, 6}, {.device = Device::cuda()});
    Tensor v = slice(d, 1, 1, 6, 2);  // columns 1, 3, 5
    fill_(v, 7.0);
    Tensor c = zeros({8, 6});
    Tensor cv = slice(c, 1, 1, 6, 2);
    fill_(cv, 7.0);
    CHECK(bitwise_equal(d, c));
    CHECK_THROWS_WITH_AS(fill_raw(expand(zeros({1}, {.device = Device::cuda()}), {4}), 1.0),
                         doctest::Contains("share memory"), Error);
  }

  TEST_CASE("cuda: randn and rand give the CPU's stream bit for bit") {
    TESSEL_REQUIRE_CUDA();
    for (DType dt : {DType::f32, DType::f64, DType::bf16, DType::f16})
      for (int64_t n : {1, 3, 4, 5, 1000, 100003}) {
        CAPTURE(dtype_name(dt));
        CAPTURE(n);
        Generator g_cpu(42), g_gpu(42);
        g_cpu.offset = g_gpu.offset = 3;  // a non-zero offset
        Tensor a = randn({n}, {.dtype = dt}, &g_cpu);
        Tensor b = randn({n}, {.dtype = dt, .device = Device::cuda()}, &g_gpu);
        CHECK(b.device() == Device::cuda());
        CHECK(bitwise_equal(a, b));
        CHECK(g_cpu.offset == g_gpu.offset);
        Tensor u = rand({n}, {.dtype = dt}, &g_cpu);
        Tensor v = rand({n}, {.dtype = dt, .device = Device::cuda()}, &g_gpu);
        CHECK(bitwise_equal(u, v));
      }
    // The default generator advances the same way on both devices.
    manual_seed(9);
    Tensor a1 = randn({5, 7}), a2 = randn({5, 7});
    manual_seed(9);
    Tensor b1 = randn({5, 7}, {.device = Device::cuda()}), b2 = randn({5, 7}, {.device = Device::cuda()});
    CHECK(bitwise_equal(a1, b1));
    CHECK(bitwise_equal(a2, b2));
    // randint and bernoulli are made on the CPU and moved: equal too.
    Generator g1(5), g2(5);
    CHECK(bitwise_equal(randint(0, 10, {77}, {.dtype = DType::i64}, &g1),
                        randint(0, 10, {77}, {.dtype = DType::i64, .device = Device::cuda()}, &g2)));
    Tensor rg = randn({3}, {.device = Device::cuda(), .requires_grad = true});
    CHECK(rg.requires_grad());
  }

  TEST_CASE("cuda: the caching allocator on the device: reuse, stats, limit") {
    TESSEL_REQUIRE_CUDA();
    cuda_synchronize();
    cuda_empty_cache();
    const CudaMemoryStats s0 = cuda_memory_stats(0);
    {
      Tensor a = empty({1 << 20}, {.device = Device::cuda()});  // 4 MiB: a large block
      const CudaMemoryStats s1 = cuda_memory_stats(0);
      CHECK(s1.current_bytes - s0.current_bytes >= 4 << 20);
      CHECK(s1.reserved_bytes >= s1.current_bytes);
      CHECK(s1.peak_bytes >= s1.current_bytes);
      CHECK(s1.raw_alloc_count == s0.raw_alloc_count + 1);
    }
    const CudaMemoryStats s2 = cuda_memory_stats(0);
    CHECK(s2.current_bytes == s0.current_bytes);
    CHECK(s2.reserved_bytes > s0.reserved_bytes);  // kept for reuse
    {
      Tensor b = empty({1 << 20}, {.device = Device::cuda()});
      CHECK(cuda_memory_stats(0).raw_alloc_count == s2.raw_alloc_count);  // the cached block
    }
    cuda_empty_cache();
    CHECK(cuda_memory_stats(0).reserved_bytes == s0.reserved_bytes);
    cuda_set_memory_limit(int64_t{64} << 20);
    CHECK_THROWS_WITH_AS(empty({int64_t{1} << 28}, {.device = Device::cuda()}),
                         doctest::Contains("out of memory: requested 1073741824 bytes"), Error);
    CHECK_THROWS_WITH_AS(empty({int64_t{1} << 28}, {.device = Device::cuda()}),
                         doctest::Contains("limit 67108864 bytes"), Error);
    cuda_set_memory_limit(0);
    CHECK_THROWS_WITH_AS(cuda_set_memory_limit(-1), doctest::Contains(">= 0"), Error);
    CHECK_THROWS_WITH_AS(cuda_memory_stats(cuda_device_count()), doctest::Contains("no CUDA device"), Error);
  }

  TEST_CASE("cuda: element access, printing and to_vector copy through the host") {
    TESSEL_REQUIRE_CUDA();
    Tensor x = to_device(from_vector({1.5, -2, 3, 4, 5, 6}, {2, 3}), Device::cuda());
    CHECK(x.at({1, 2}) == 6.0);
    x.set_at({0, 0}, 10.0);
    CHECK(x.at({0, 0}) == 10.0);
    CHECK(transpose(x, 0, 1).to_vector<double>() == std::vector<double>{10, 4, -2, 5, 3, 6});
    std::string s = x.str();
    CHECK(s.find("[[10, -2, 3],") != std::string::npos);
    CHECK(s.find("device=cuda:0") != std::string::npos);
    CHECK(scalar_tensor(2.5, {.device = Device::cuda()}).item() == 2.5);
    // The factories that take host values build them on the CPU and move them.
    CHECK(bitwise_equal(from_vector({1, 2.5, -3}, {3}, {.dtype = DType::bf16, .device = Device::cuda()}),
                        from_vector({1, 2.5, -3}, {3}, {.dtype = DType::bf16})));
    CHECK(bitwise_equal(arange(7, {.dtype = DType::i32, .device = Device::cuda()}), arange(7, {.dtype = DType::i32})));
    CHECK(from_vector_i64({4, 5}, {}, {.dtype = DType::i64, .device = Device::cuda()}).to_vector<int64_t>() ==
          std::vector<int64_t>{4, 5});
  }

  TEST_CASE("cuda: bad device index and mixed devices fail with clear messages") {
    TESSEL_REQUIRE_CUDA();
    const int n = cuda_device_count();
    const std::string want = "no CUDA device " + std::to_string(n) + ": this machine has";
    CHECK_THROWS_WITH_AS(empty({2}, {.device = Device::cuda(n)}), doctest::Contains(want.c_str()), Error);
    CHECK_THROWS_WITH_AS(to_device(ones({2}), Device::cuda(-1)), doctest::Contains("no CUDA device -1"), Error);
    Tensor c = zeros({3});
    Tensor g = zeros({3}, {.device = Device::cuda()});
    CHECK_THROWS_WITH_AS(copy_(c, g), doctest::Contains("devices differ: dst on cpu, src on cuda:0"), Error);
    CHECK_THROWS_WITH_AS(copy_into(g, c), doctest::Contains("devices differ"), Error);
  }

#if TESSEL_HAVE_CUDA
  TEST_CASE("cuda: streams and events order work and time it") {
    TESSEL_REQUIRE_CUDA();
    cuda::Stream stream;
    cuda::Event start, stop;
    Tensor y;
    {
      cuda::StreamGuard guard(stream.get());
      CHECK(cuda::current_stream() == stream.get());
      start.record();
      Tensor x = randn({1 << 20}, {.device = Device::cuda()});
      y = clone(x);
      stop.record();
    }
    CHECK(cuda::current_stream() == nullptr);
    CHECK(stop.elapsed_ms(start) >= 0.0f);
    stream.synchronize();
    CHECK(stream.query());
    CHECK(stop.query());
    cuda::Event done(false);
    done.record(stream.get());
    done.wait();  // the default stream now waits for `stream`
    for (float v : y.to_vector<float>()) REQUIRE(std::isfinite(v));
  }

  TEST_CASE("cuda: record_stream keeps a freed block from reuse until the other stream's work is done") {
    TESSEL_REQUIRE_CUDA();
    CHECK_THROWS_WITH_AS(cuda::record_stream(zeros({3}), nullptr), doctest::Contains("expected a CUDA tensor"), Error);
    cuda_synchronize();
    cuda_empty_cache();
    const CudaMemoryStats s0 = cuda_memory_stats(0);
    cuda::Stream side;
    Tensor y;
    {
      Tensor x = randn({1 << 20}, {.device = Device::cuda()});  // made on the default stream
      cuda::record_stream(x, side.get());
      cuda::StreamGuard guard(side.get());
      y = x * 2.0;  // read on `side`; x is dropped right after, with that kernel maybe still running
    }
    Tensor z = full({1 << 20}, 7.0, {.device = Device::cuda()});  // must not land on x's memory early
    side.synchronize();
    cuda_synchronize();
    CHECK(z.to_vector<float>()[123] == 7.0f);
    y = Tensor();
    z = Tensor();
    cuda_empty_cache();  // waits for the events; nothing leaks
    CHECK(cuda_memory_stats(0).current_bytes == s0.current_bytes);
    CHECK(cuda_memory_stats(0).reserved_bytes == s0.reserved_bytes);
  }
#endif
}
