// tests/fuzz/safetensors_fuzz.cpp — libFuzzer target for the safetensors reader.
//
// Any byte string must either load or throw tessel::Error: no crash, no sanitizer report, no
// other exception, no allocation beyond what the input's size justifies. What loads must
// survive a write/read round trip unchanged. Built only with clang and -DTESSEL_FUZZ=ON:
//
//   CXX=clang++ cmake -S . -B build/fuzz -G Ninja -DTESSEL_FUZZ=ON -DTESSEL_CUDA=OFF \
//       -DTESSEL_BENCH=OFF -DTESSEL_TESTS=OFF -DTESSEL_TOOLS=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo
//   ninja -C build/fuzz tessel_safetensors_fuzz
//   mkdir -p build/fuzz/corpus
//   build/fuzz/tests/fuzz/tessel_safetensors_fuzz build/fuzz/corpus tests/fuzz/corpus \
//       -dict=tests/fuzz/safetensors.dict -max_len=4096 -rss_limit_mb=2048 -max_total_time=120
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "core/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  tessel::SafetensorsFile f;
  try {
    f = tessel::load_safetensors_from_memory(data, size, "fuzz");
  } catch (const tessel::Error&) {
    return 0;  // rejected cleanly: the expected outcome for most inputs
  }
  std::vector<uint8_t> again = tessel::save_safetensors_to_memory(f.tensors, f.metadata);
  tessel::SafetensorsFile g = tessel::load_safetensors_from_memory(again.data(), again.size(), "fuzz-roundtrip");
  if (g.tensors.size() != f.tensors.size() || g.metadata != f.metadata) std::abort();
  for (const auto& [name, t] : f.tensors) {
    const tessel::Tensor& u = g.at(name);
    size_t n = static_cast<size_t>(t.numel()) * t.element_size();
    if (u.dtype() != t.dtype() || u.sizes() != t.sizes() || (n && std::memcmp(u.data(), t.data(), n) != 0))
      std::abort();
  }
  return 0;
}
