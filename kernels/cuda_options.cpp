// kernels/cuda_options.cpp — the CUDA run-time switches (kernels/cuda_options.h).
#include "kernels/cuda_options.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

namespace tessel {

namespace {
std::atomic<bool>& tf32_flag() {
  static std::atomic<bool> flag{[] {
    const char* v = std::getenv("TESSEL_CUDA_TF32");
    return v != nullptr && (std::strcmp(v, "1") == 0 || std::strcmp(v, "true") == 0 || std::strcmp(v, "on") == 0);
  }()};
  return flag;
}
}  // namespace

void set_cuda_tf32(bool on) { tf32_flag().store(on, std::memory_order_relaxed); }
bool cuda_tf32() { return tf32_flag().load(std::memory_order_relaxed); }

}  // namespace tessel
