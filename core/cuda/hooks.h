// core/cuda/hooks.h — the CUDA backend's entry into core (core/cuda/allocator.cpp).
//
// core/tensor.cpp calls register_cuda_hooks() (under #if TESSEL_HAVE_CUDA) the first time it
// needs a device's hooks: an explicit call, not a static initializer, because a static
// library's linker drops object files that nothing references.
#pragma once
#include "core/buf.h"

namespace tessel::cuda {

void register_cuda_hooks();  // fills DeviceAllocatorHooks for DeviceType::cuda

// The device-side raw copy and fill behind copy_into() and fill_raw() (core/cuda/copy.cu):
// dst and src on device `index`, src already broadcast to dst's sizes; any dtype pair.
void strided_copy(const Buf& dst, const Buf& src, int index);
void fill(const Buf& dst, double value, int index);

}  // namespace tessel::cuda
