// tests/py/st_roundtrip.cpp — `tessel_st_roundtrip`, the tessel side of
// tests/py/safetensors_interop.py (which checks tessel against the reference `safetensors`).
//
//   tessel_st_roundtrip write PATH      write the canonical tensors (below) and metadata
//   tessel_st_roundtrip dump PATH       load PATH and print it as JSON: metadata, and per tensor
//                                       in file order its dtype, shape and bytes as hex
//   tessel_st_roundtrip copy IN OUT     load IN and save it again as OUT
//
// The canonical set, shared with the Python script: for every dtype D, tensors "D_scalar" [],
// "D_empty" [0, 4], "D_mat" [3, 5] and "D_view" [3, 5] (written from a transposed view, so
// not contiguous in memory), whose row-major element i is value(D, i).
// Exit code 0 on success, 1 with the error on stderr otherwise.
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>

#include "autograd/ops/view.h"
#include "core/safetensors.h"

using namespace tessel;

namespace {

double value(DType d, int64_t i) {
  switch (d) {
    case DType::i32: return static_cast<double>((i * 7919) % 20011 - 10000);
    case DType::i64: return static_cast<double>((i - 2) * 1099511627776LL + 3);  // beyond 32 bits
    case DType::b8: return i % 3 == 0 ? 1 : 0;
    default: return static_cast<double>(i % 7 - 3) * 0.625 + static_cast<double>(i / 7);  // exact in bf16/f16
  }
}

std::vector<std::pair<std::string, Tensor>> canonical() {
  std::vector<std::pair<std::string, Tensor>> out;
  for (DType d : kAllDTypes) {
    std::string n = safetensors_dtype_name(d);
    auto values = [&](int64_t count, auto index) {
      std::vector<double> v(static_cast<size_t>(count));
      for (int64_t i = 0; i < count; ++i) v[i] = value(d, index(i));
      return v;
    };
    out.emplace_back(n + "_scalar", scalar_tensor(value(d, 0), {.dtype = d}));
    out.emplace_back(n + "_empty", empty({0, 4}, {.dtype = d}));
    out.emplace_back(n + "_mat", from_vector(values(15, [](int64_t i) { return i; }), {3, 5}, {.dtype = d}));
    // base[c][r] = value(r * 5 + c), so its transpose [3, 5] reads value(i) at row-major i.
    Tensor base = from_vector(values(15, [](int64_t k) { return (k % 3) * 5 + k / 3; }), {5, 3}, {.dtype = d});
    out.emplace_back(n + "_view", transpose(base, 0, 1).detach());
  }
  return out;
}

std::string hex(const Tensor& t) {
  static const char* digits = "0123456789abcdef";
  const auto* p = static_cast<const unsigned char*>(t.data());
  size_t n = static_cast<size_t>(t.numel()) * t.element_size();
  std::string s;
  s.reserve(2 * n);
  for (size_t i = 0; i < n; ++i) {
    s.push_back(digits[p[i] >> 4]);
    s.push_back(digits[p[i] & 15]);
  }
  return s;
}

int run(int argc, char** argv) {
  std::string cmd = argc > 1 ? argv[1] : "";
  if (cmd == "write" && argc == 3) {
    save_safetensors(argv[2], canonical(), {{"writer", "tessel"}, {"note", "µ-units, \"quoted\""}});
    return 0;
  }
  if (cmd == "dump" && argc == 3) {
    SafetensorsFile f = load_safetensors(argv[2]);
    nlohmann::ordered_json out;
    out["metadata"] = f.metadata;
    out["tensors"] = nlohmann::ordered_json::array();
    for (const auto& [name, t] : f.tensors)
      out["tensors"].push_back(
          {{"name", name}, {"dtype", safetensors_dtype_name(t.dtype())}, {"shape", t.sizes()}, {"hex", hex(t)}});
    std::cout << out.dump() << "\n";
    return 0;
  }
  if (cmd == "copy" && argc == 4) {
    SafetensorsFile f = load_safetensors(argv[2]);
    save_safetensors(argv[3], f.tensors, f.metadata);
    return 0;
  }
  std::cerr << "usage: tessel_st_roundtrip write PATH | dump PATH | copy IN OUT\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "tessel_st_roundtrip: " << e.what() << "\n";
    return 1;
  }
}
