// core/cuda.h — what the rest of tessel (and a program embedding it) asks about CUDA.
//
// These functions exist in every build. Without the CUDA backend (TESSEL_HAVE_CUDA unset) or
// without a device, cuda_available() is false and the rest say so with a tessel::Error; they
// never abort. With the backend, core/cuda/ implements them over the CUDA runtime.
#pragma once
#include <cstdint>
#include <string>

namespace tessel {

bool cuda_built();                            // tessel was compiled with the CUDA backend
bool cuda_available();                        // built, and the runtime sees at least one device (never throws)
int cuda_device_count();                      // 0 when not built or no device (never throws)
std::string cuda_device_name(int index = 0);  // throws tessel::Error when there is no such device
void cuda_synchronize();                      // waits for all work on the current device; throws on a pending error

// The caching device allocator (core/caching_allocator.h) of device `device`. Byte counts are
// the allocator's rounded block sizes. Without the backend: zeros, and empty_cache does nothing.
struct CudaMemoryStats {
  int64_t current_bytes = 0;    // in live tensors
  int64_t peak_bytes = 0;       // maximum of current_bytes so far
  int64_t reserved_bytes = 0;   // taken from cudaMalloc (live + cached)
  int64_t alloc_count = 0;      // allocations served
  int64_t raw_alloc_count = 0;  // of which needed a new cudaMalloc
};
CudaMemoryStats cuda_memory_stats(int device = 0);
void cuda_empty_cache();  // returns every wholly free cached segment of every device to cudaFree
// Caps reserved bytes per device (0: no cap); requests beyond it throw tessel::Error "out of
// memory: ...". Default from the environment variable TESSEL_CUDA_MEMORY_LIMIT_MB. Throws
// without the backend.
void cuda_set_memory_limit(int64_t bytes);

}  // namespace tessel
