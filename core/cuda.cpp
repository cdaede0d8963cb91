// core/cuda.cpp — the CPU-only build's answers to core/cuda.h. With the CUDA backend the
// definitions come from core/cuda/runtime.cpp instead.
#include "core/cuda.h"

#include "core/error.h"

#if !TESSEL_HAVE_CUDA
namespace tessel {

bool cuda_built() { return false; }
bool cuda_available() { return false; }
int cuda_device_count() { return 0; }
std::string cuda_device_name(int index) {
  fail("cuda", "no CUDA device ", index, ": tessel was built without CUDA (configure with -DTESSEL_CUDA=ON)");
}
void cuda_synchronize() { fail("cuda", "tessel was built without CUDA (configure with -DTESSEL_CUDA=ON)"); }
CudaMemoryStats cuda_memory_stats(int) { return {}; }
void cuda_empty_cache() {}
void cuda_set_memory_limit(int64_t) {
  fail("cuda_set_memory_limit", "tessel was built without CUDA (configure with -DTESSEL_CUDA=ON)");
}

}  // namespace tessel
#endif
