// core/cuda/runtime.h — devices and copies over the CUDA runtime (core/cuda/runtime.cpp).
#pragma once
#include <cstddef>

#include "core/device.h"

namespace tessel::cuda {

int device_count();  // cached; 0 when the runtime finds no device or no driver (never throws)
// Throws tessel::Error "op: no CUDA device N: this machine has M CUDA device(s)" unless
// 0 <= index < device_count().
void check_device(int index, const char* op);

// Makes `index` the current device for this scope (checked), restoring the previous one after.
class DeviceGuard {
 public:
  explicit DeviceGuard(int index);
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int prev_ = -1;
};

// Copies nbytes between host and device or device and device, on the current stream.
// Host to device goes through pinned staging buffers and returns once the source has been read
// (the device copy may still be in flight, ordered before later work on the stream); device to
// host returns when the data is in `dst`; device to device is queued and returns at once.
void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t nbytes);

}  // namespace tessel::cuda
