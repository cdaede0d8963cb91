// core/cuda/random.cu — rand() and randn() on the device: element i of a draw is a pure
// function of (seed, offset, i) (core/rng.h: Philox4x32-10, then the uniform or Box-Muller
// mapping), evaluated by the same __host__ __device__ code the CPU runs, so a device draw equals
// the CPU draw bit for bit. The normal mapping uses core/rng.h's rng_math (exactly rounded
// operations only) instead of the C library's logf/sinf/cosf, whose last bits differ between
// glibc and CUDA. One thread per element (grid-stride); 10 Philox rounds per element make it
// compute-bound at a few hundred GB/s on an H100, which is plenty for initialization.
//
// Compiled, not yet verified on hardware: the first GPU run is tools/gpu-check's.
#include <algorithm>

#include "core/cuda/check.h"
#include "core/cuda/convert.cuh"
#include "core/cuda/random.h"
#include "core/cuda/runtime.h"
#include "core/cuda/stream.h"
#include "core/rng.h"

namespace tessel::cuda {
namespace {

template <class T>
__global__ void random_kernel(T* out, int64_t n, uint64_t seed, uint64_t offset, bool normal, int bits) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    const float v = normal ? philox_normal(seed, offset, i) : philox_uniform_bits(seed, offset, i, bits);
    out[i] = convert<T, float>(v);
  }
}

}  // namespace

Tensor random_tensor(const Shape& sizes, TensorOptions opts, RandomKind kind, uint64_t seed, uint64_t offset,
                     int bits) {
  const bool rg = opts.requires_grad;
  opts.requires_grad = false;
  Tensor t = empty(sizes, opts);  // checks the device index
  const int64_t n = t.numel();
  if (n > 0) {
    DeviceGuard guard(opts.device.index);
    cudaStream_t stream = current_stream();
    const int threads = 256;
    const int blocks = static_cast<int>(std::min<int64_t>((n + threads - 1) / threads, 65535));
    visit_device_dtype(opts.dtype, [&](auto tag) {
      using T = decltype(tag);
      random_kernel<T><<<blocks, threads, 0, stream>>>(static_cast<T*>(t.data()), n, seed, offset,
                                                       kind == RandomKind::normal, bits);
    });
    TESSEL_CUDA_CHECK_LAUNCH(kind == RandomKind::normal ? "randn" : "rand");
  }
  if (rg) t.requires_grad_();
  return t;
}

}  // namespace tessel::cuda
