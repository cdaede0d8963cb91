#include "core/rng.h"

#include <cmath>
#include <cstdint>

#include "core/parallel.h"
#if TESSEL_HAVE_CUDA
#include "core/cuda/random.h"
#endif

namespace tessel {

Generator& default_generator() {
  static Generator g(0);
  return g;
}

void manual_seed(uint64_t seed) { default_generator() = Generator(seed); }

namespace {

// A CPU tensor's copy on `device` (contiguous, same dtype).
Tensor move_to(const Tensor& t, Device device, const char* op) {
  const DeviceAllocatorHooks* h = device_hooks(device.type);
  check(h->copy != nullptr, op, "device ", device.str(), " is not available: tessel was built without CUDA");
  Tensor out = empty(t.sizes(), {.dtype = t.dtype(), .device = device});
  if (t.numel() > 0)
    h->copy(out.data(), device, t.data(), t.device(), static_cast<size_t>(t.numel()) * t.element_size());
  return out;
}

// Fills a fresh tensor with value(i) for each element i, in parallel. On another device the
// values are made on the CPU and copied (randint, bernoulli: rand and randn have device kernels).
template <class F>
Tensor fill_indexed(const Shape& sizes, TensorOptions opts, const char* op, F value) {
  bool rg = opts.requires_grad;
  opts.requires_grad = false;
  if (!opts.device.is_cpu()) {
    Device device = opts.device;
    opts.device = Device::cpu();
    Tensor t = move_to(fill_indexed(sizes, opts, op, value), device, op);
    if (rg) t.requires_grad_();
    return t;
  }
  Tensor t = empty(sizes, opts);
  visit_dtype(opts.dtype, [&](auto tag) {
    using T = decltype(tag);
    T* p = t.data_ptr<T>();
    parallel_for(t.numel(), 1 << 14, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) p[i] = convert_element<T>(value(i));
    });
  });
  if (rg) t.requires_grad_();
  return t;
}

}  // namespace

Tensor rand(const Shape& sizes, TensorOptions opts, Generator* gen) {
  check(is_floating(opts.dtype), "rand", "expected a floating dtype, got ", dtype_name(opts.dtype));
  Generator& g = gen ? *gen : default_generator();
  uint64_t seed = g.seed, off = g.advance(shape_numel(sizes));
  // Keep only as many random bits as the dtype's significand holds, so that rounding to the
  // dtype can never produce 1.0: 24 for f32 and f64, 11 for f16, 8 for bf16.
  int bits = rand_bits(opts.dtype);
#if TESSEL_HAVE_CUDA
  if (opts.device.is_cuda()) return cuda::random_tensor(sizes, opts, cuda::RandomKind::uniform, seed, off, bits);
#endif
  return fill_indexed(sizes, opts, "rand", [&](int64_t i) { return philox_uniform_bits(seed, off, i, bits); });
}

Tensor randn(const Shape& sizes, TensorOptions opts, Generator* gen) {
  check(is_floating(opts.dtype), "randn", "expected a floating dtype, got ", dtype_name(opts.dtype));
  Generator& g = gen ? *gen : default_generator();
  uint64_t seed = g.seed, off = g.advance(shape_numel(sizes));
#if TESSEL_HAVE_CUDA
  if (opts.device.is_cuda()) return cuda::random_tensor(sizes, opts, cuda::RandomKind::normal, seed, off, 0);
#endif
  return fill_indexed(sizes, opts, "randn", [&](int64_t i) { return philox_normal(seed, off, i); });
}

Tensor randint(int64_t low, int64_t high, const Shape& sizes, TensorOptions opts, Generator* gen) {
  check(low < high, "randint", "expected low < high, got low=", low, ", high=", high);
  Generator& g = gen ? *gen : default_generator();
  uint64_t seed = g.seed, off = g.advance(shape_numel(sizes), 2);
  check(is_integral(opts.dtype) || is_floating(opts.dtype), "randint", "expected an integer or floating dtype, got ",
        dtype_name(opts.dtype));
  if (opts.dtype == DType::i32)
    check(low >= INT32_MIN && high - 1 <= INT32_MAX, "randint", "range [", low, ", ", high,
          ") does not fit in i32; use i64");
  uint64_t range = static_cast<uint64_t>(high) - static_cast<uint64_t>(low);
  return fill_indexed(sizes, opts, "randint", [&](int64_t i) {
    // Modulo bias is below range / 2^64: negligible for any range a tensor can index. The sum
    // is done in unsigned arithmetic, where it cannot overflow; the result lies in [low, high).
    return static_cast<int64_t>(static_cast<uint64_t>(low) + philox_u64(seed, off, i) % range);
  });
}

Tensor bernoulli(const Shape& sizes, double p, TensorOptions opts, Generator* gen) {
  check(p >= 0 && p <= 1, "bernoulli", "expected p in [0, 1], got ", p);
  Generator& g = gen ? *gen : default_generator();
  uint64_t seed = g.seed, off = g.advance(shape_numel(sizes));
  float pf = static_cast<float>(p);
  return fill_indexed(sizes, opts, "bernoulli",
                      [&](int64_t i) { return philox_uniform(seed, off, i) < pf ? 1.0 : 0.0; });
}

}  // namespace tessel
