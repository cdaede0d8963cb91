// core/cuda/random.h — rand() and randn() on a CUDA device (core/cuda/random.cu).
#pragma once
#include <cstdint>

#include "core/tensor.h"

namespace tessel::cuda {

enum class RandomKind { uniform, normal };

// A new tensor on opts.device whose element i is core/rng.h's philox_uniform_bits(seed, offset,
// i, bits) (uniform) or philox_normal(seed, offset, i) (normal), converted to opts.dtype: the
// same function of (seed, offset, i) the CPU evaluates, so the values are bitwise equal.
Tensor random_tensor(const Shape& sizes, TensorOptions opts, RandomKind kind, uint64_t seed, uint64_t offset, int bits);

}  // namespace tessel::cuda
