// core/cuda/allocator.cpp — the caching allocator (core/caching_allocator.h) over cudaMalloc,
// one per device, and the DeviceAllocatorHooks that make Tensor storage live on CUDA devices.
//
// Compiled, not yet verified on hardware: the first GPU run is tools/gpu-check's.
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/caching_allocator.h"
#include "core/cuda.h"
#include "core/cuda/check.h"
#include "core/cuda/hooks.h"
#include "core/cuda/runtime.h"
#include "core/cuda/stream.h"
#include "core/tensor.h"

namespace tessel {
namespace cuda {
namespace {

struct CudaMalloc : RawBackend {
  int device = 0;
  void* raw_alloc(size_t bytes) override {
    DeviceGuard guard(device);
    void* p = nullptr;
    cudaError_t e = cudaMalloc(&p, bytes);
    if (e == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();  // out of memory is not sticky: clear it and let the allocator decide
      return nullptr;
    }
    if (e != cudaSuccess)
      fail("cuda", "cudaMalloc(", bytes, " bytes) on cuda:", device, " failed: ", cudaGetErrorString(e));
    return p;
  }
  void raw_free(void* p) override {
    DeviceGuard guard(device);
    TESSEL_CUDA_CHECK(cudaFree(p));
  }
  // record_stream's events: timing off (the cheapest kind), recorded on the stream that used
  // the block, polled with cudaEventQuery.
  void* record_event(uint64_t stream) override {
    DeviceGuard guard(device);
    cudaEvent_t e = nullptr;
    TESSEL_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
    TESSEL_CUDA_CHECK(cudaEventRecord(e, reinterpret_cast<cudaStream_t>(stream)));
    return e;
  }
  bool event_done(void* event) override {
    DeviceGuard guard(device);
    const cudaError_t r = cudaEventQuery(static_cast<cudaEvent_t>(event));
    if (r == cudaErrorNotReady) {
      (void)cudaGetLastError();  // "not ready" is an answer, not an error: do not leave it pending
      return false;
    }
    TESSEL_CUDA_CHECK(r);
    return true;
  }
  void wait_event(void* event) override {
    DeviceGuard guard(device);
    TESSEL_CUDA_CHECK(cudaEventSynchronize(static_cast<cudaEvent_t>(event)));
  }
  void destroy_event(void* event) override {
    DeviceGuard guard(device);
    TESSEL_CUDA_CHECK(cudaEventDestroy(static_cast<cudaEvent_t>(event)));
  }
};

int64_t env_limit() {
  const char* env = std::getenv("TESSEL_CUDA_MEMORY_LIMIT_MB");
  return env ? std::max<int64_t>(0, std::atoll(env)) << 20 : 0;
}

struct Allocators {
  std::vector<std::unique_ptr<CudaMalloc>> backends;
  std::vector<std::unique_ptr<CachingAllocator>> allocators;
};

// Created on first use for every device, and never destroyed: storage may be freed during
// static teardown, after which the CUDA runtime itself may be gone.
Allocators& allocators() {
  static Allocators* a = [] {
    auto* all = new Allocators;
    const int64_t limit = env_limit();
    for (int i = 0; i < device_count(); ++i) {
      all->backends.push_back(std::make_unique<CudaMalloc>());
      all->backends.back()->device = i;
      all->allocators.push_back(
          std::make_unique<CachingAllocator>(*all->backends.back(), "cuda:" + std::to_string(i) + " allocator", limit));
    }
    return all;
  }();
  return *a;
}

CachingAllocator& allocator(int device, const char* op) {
  check_device(device, op);
  return *allocators().allocators[static_cast<size_t>(device)];
}

void* hook_allocate(size_t nbytes, int index) {
  return allocator(index, "tensor").allocate(nbytes, reinterpret_cast<uint64_t>(current_stream()));
}

void hook_deallocate(void* p, size_t, int index) {
  try {
    allocator(index, "tensor").deallocate(p);
  } catch (...) {  // called from ~Storage: nothing can be reported, and throwing would terminate
  }
}

void hook_copy(void* dst, Device dst_device, const void* src, Device src_device, size_t nbytes) {
  copy_bytes(dst, dst_device, src, src_device, nbytes);
}

}  // namespace

void record_stream(const Tensor& t, cudaStream_t stream) {
  check(t.defined() && t.device().is_cuda(), "record_stream", "expected a CUDA tensor, got ",
        t.defined() ? t.device().str() : std::string("an undefined tensor"));
  allocator(t.device().index, "record_stream").record_stream(t.storage()->data, reinterpret_cast<uint64_t>(stream));
}

void register_cuda_hooks() {
  DeviceAllocatorHooks h;
  h.allocate = hook_allocate;
  h.deallocate = hook_deallocate;
  h.copy = hook_copy;
  h.strided_copy = strided_copy;
  h.fill = fill;
  register_device_allocator(DeviceType::cuda, h);
}

}  // namespace cuda

// ---------------------------------------------------------------- core/cuda.h

CudaMemoryStats cuda_memory_stats(int device) {
  CachingAllocatorStats s = cuda::allocator(device, "cuda_memory_stats").stats();
  return {s.current_bytes, s.peak_bytes, s.reserved_bytes, s.alloc_count, s.raw_alloc_count};
}

void cuda_empty_cache() {
  for (auto& a : cuda::allocators().allocators) a->empty_cache();
}

void cuda_set_memory_limit(int64_t bytes) {
  check(bytes >= 0, "cuda_set_memory_limit", "expected bytes >= 0 (0: no limit), got ", bytes);
  for (auto& a : cuda::allocators().allocators) a->set_memory_limit(bytes);
}

}  // namespace tessel
