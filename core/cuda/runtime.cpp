// core/cuda/runtime.cpp — core/cuda.h over the CUDA runtime: device queries, the current
// device, and host<->device copies through pinned staging buffers.
//
// Compiled only with the CUDA backend (TESSEL_HAVE_CUDA); core/cuda.cpp answers otherwise.
// Compiled, not yet verified on hardware: the first GPU run is tools/gpu-check's.
#include "core/cuda/runtime.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <mutex>
#include <vector>

#include "core/cuda.h"
#include "core/cuda/check.h"
#include "core/cuda/stream.h"

namespace tessel {

namespace cuda {

int device_count() {
  static const int n = [] {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess) {
      (void)cudaGetLastError();  // no driver or no device: not an error for the caller
      count = 0;
    }
    return count;
  }();
  return n;
}

void check_device(int index, const char* op) {
  const int n = device_count();
  check(index >= 0 && index < n, op, "no CUDA device ", index, ": this machine has ", n, " CUDA device",
        n == 1 ? "" : "s");
}

DeviceGuard::DeviceGuard(int index) {
  check_device(index, "cuda");
  TESSEL_CUDA_CHECK(cudaGetDevice(&prev_));
  if (prev_ != index) TESSEL_CUDA_CHECK(cudaSetDevice(index));
}

DeviceGuard::~DeviceGuard() {
  int now = -1;
  if (cudaGetDevice(&now) == cudaSuccess && now != prev_) (void)cudaSetDevice(prev_);
}

namespace {

// Two pinned buffers per device: while the DMA engine moves one chunk, the CPU fills or drains
// the other. An event per buffer says when the device is done with it; the host waits on that
// event only before reusing the buffer, so a host-to-device copy returns without waiting for
// the transfer. Copies from pageable memory would be staged by the driver anyway, with a
// synchronization per copy; owning the staging makes the waiting points ours, and few.
constexpr size_t kChunk = size_t{4} << 20;

struct Staging {
  std::mutex mu;
  void* buf[2] = {nullptr, nullptr};
  cudaEvent_t done[2] = {nullptr, nullptr};
  bool pending[2] = {false, false};

  void init() {  // with the device current
    if (buf[0]) return;
    for (int k = 0; k < 2; ++k) {
      TESSEL_CUDA_CHECK(cudaHostAlloc(&buf[k], kChunk, cudaHostAllocPortable));
      TESSEL_CUDA_CHECK(cudaEventCreateWithFlags(&done[k], cudaEventDisableTiming));
    }
  }
  void wait(int k) {  // the device no longer reads or writes buffer k
    if (pending[k]) TESSEL_CUDA_CHECK(cudaEventSynchronize(done[k]));
    pending[k] = false;
  }
};

Staging& staging(int device) {
  // Never destroyed: tensors may be copied during static teardown, and the CUDA runtime may
  // already be gone by then.
  static std::vector<std::unique_ptr<Staging>>* all = [] {
    auto* v = new std::vector<std::unique_ptr<Staging>>();
    for (int i = 0; i < device_count(); ++i) v->push_back(std::make_unique<Staging>());
    return v;
  }();
  return *(*all)[static_cast<size_t>(device)];
}

void host_to_device(void* dst, int device, const void* src, size_t nbytes) {
  DeviceGuard guard(device);
  Staging& s = staging(device);
  std::lock_guard<std::mutex> lock(s.mu);
  s.init();
  cudaStream_t stream = current_stream();
  int k = 0;
  for (size_t off = 0; off < nbytes; off += kChunk, k ^= 1) {
    const size_t len = std::min(kChunk, nbytes - off);
    s.wait(k);
    std::memcpy(s.buf[k], static_cast<const char*>(src) + off, len);
    TESSEL_CUDA_CHECK(cudaMemcpyAsync(static_cast<char*>(dst) + off, s.buf[k], len, cudaMemcpyHostToDevice, stream));
    TESSEL_CUDA_CHECK(cudaEventRecord(s.done[k], stream));
    s.pending[k] = true;
  }
}

void device_to_host(void* dst, const void* src, int device, size_t nbytes) {
  DeviceGuard guard(device);
  Staging& s = staging(device);
  std::lock_guard<std::mutex> lock(s.mu);
  s.init();
  cudaStream_t stream = current_stream();
  struct Chunk {
    size_t off = 0, len = 0;
    int k = -1;
  } prev;
  auto drain = [&](const Chunk& c) {  // the host waits for chunk c, then copies it out
    s.wait(c.k);
    std::memcpy(static_cast<char*>(dst) + c.off, s.buf[c.k], c.len);
  };
  int k = 0;
  for (size_t off = 0; off < nbytes; off += kChunk, k ^= 1) {
    const size_t len = std::min(kChunk, nbytes - off);
    s.wait(k);
    TESSEL_CUDA_CHECK(
        cudaMemcpyAsync(s.buf[k], static_cast<const char*>(src) + off, len, cudaMemcpyDeviceToHost, stream));
    TESSEL_CUDA_CHECK(cudaEventRecord(s.done[k], stream));
    s.pending[k] = true;
    if (prev.k >= 0) drain(prev);
    prev = {off, len, k};
  }
  if (prev.k >= 0) drain(prev);
}

}  // namespace

void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t nbytes) {
  if (nbytes == 0) return;
  if (dst_device.is_cpu() && src_device.is_cpu()) {
    std::memcpy(dst, src, nbytes);
  } else if (src_device.is_cpu()) {
    host_to_device(dst, dst_device.index, src, nbytes);
  } else if (dst_device.is_cpu()) {
    device_to_host(dst, src, src_device.index, nbytes);
  } else if (dst_device.index == src_device.index) {
    DeviceGuard guard(dst_device.index);
    TESSEL_CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDeviceToDevice, current_stream()));
  } else {
    // Between two devices: queued on the source device's current stream; the destination device's
    // later work is not ordered after it, so wait here (rare: one explicit synchronization).
    check_device(dst_device.index, "to_device");
    DeviceGuard guard(src_device.index);
    TESSEL_CUDA_CHECK(cudaMemcpyPeerAsync(dst, dst_device.index, src, src_device.index, nbytes, current_stream()));
    TESSEL_CUDA_CHECK(cudaStreamSynchronize(current_stream()));
  }
}

}  // namespace cuda

// ---------------------------------------------------------------- core/cuda.h

bool cuda_built() { return true; }
bool cuda_available() { return cuda::device_count() > 0; }
int cuda_device_count() { return cuda::device_count(); }

std::string cuda_device_name(int index) {
  cuda::check_device(index, "cuda_device_name");
  cudaDeviceProp prop{};
  TESSEL_CUDA_CHECK(cudaGetDeviceProperties(&prop, index));
  return prop.name;
}

void cuda_synchronize() {
  check(cuda::device_count() > 0, "cuda_synchronize", "no CUDA device: this machine has 0 CUDA devices");
  TESSEL_CUDA_CHECK(cudaDeviceSynchronize());
}

}  // namespace tessel
