#include "core/cpu_features.h"

#include <doctest/doctest.h>

#include <fstream>
#include <set>
#include <sstream>
#include <string>

using namespace tessel;

namespace {

// The kernel's own view of the CPU: the "flags" line of /proc/cpuinfo (empty if unavailable).
std::set<std::string> proc_cpu_flags() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("flags", 0) != 0) continue;
    std::istringstream words(line.substr(line.find(':') + 1));
    std::set<std::string> flags;
    for (std::string w; words >> w;) flags.insert(w);
    return flags;
  }
  return {};
}

}  // namespace

TEST_SUITE("core") {
  TEST_CASE("cpu_features: cached, named and self-consistent") {
    const CpuFeatures& f = cpu_features();
    CHECK(&f == &cpu_features());
    CHECK_FALSE(f.model.empty());
    CHECK(f.model.find('\0') == std::string::npos);
    CHECK(f.model.front() != ' ');
    CHECK(f.model.back() != ' ');

    CpuFeatures again = detect_cpu_features();
    CHECK(again.model == f.model);
    CHECK(again.summary() == f.summary());
    CHECK(f.list().size() == 15);

    // Every extension requires the ones below it on real CPUs (and the OS-state rule makes this
    // hold by construction for the AVX-512 family).
    if (f.avx2) CHECK(f.avx);
    if (f.fma) CHECK(f.avx);
    if (f.avx) CHECK(f.sse4_2);
    if (f.avx512f) {
      CHECK(f.avx2);
      CHECK(f.fma);
      CHECK(f.f16c);
    }
    for (bool sub : {f.avx512bw, f.avx512vl, f.avx512dq, f.avx512_bf16, f.avx512_fp16, f.avx512_vnni})
      if (sub) CHECK(f.avx512f);
    if (f.amx_bf16 || f.amx_int8) CHECK(f.amx_tile);

    std::string s = f.summary();
    CHECK_FALSE(s.empty());
    CHECK((s.find("avx2") != std::string::npos) == f.avx2);
  }

#if defined(__x86_64__) || defined(__i386__)
  TEST_CASE("cpu_features: agrees with __builtin_cpu_supports and /proc/cpuinfo") {
    const CpuFeatures& f = cpu_features();
    CHECK_FALSE(f.vendor.empty());
    __builtin_cpu_init();
    CHECK(f.sse4_2 == bool(__builtin_cpu_supports("sse4.2")));
    CHECK(f.avx == bool(__builtin_cpu_supports("avx")));
    CHECK(f.avx2 == bool(__builtin_cpu_supports("avx2")));
    CHECK(f.fma == bool(__builtin_cpu_supports("fma")));
    CHECK(f.avx512f == bool(__builtin_cpu_supports("avx512f")));
    CHECK(f.avx512bw == bool(__builtin_cpu_supports("avx512bw")));
    CHECK(f.avx512vl == bool(__builtin_cpu_supports("avx512vl")));
    CHECK(f.avx512dq == bool(__builtin_cpu_supports("avx512dq")));
    CHECK(f.avx512_vnni == bool(__builtin_cpu_supports("avx512vnni")));
    CHECK(f.avx512_bf16 == bool(__builtin_cpu_supports("avx512bf16")));

    // The kernel lists a flag only when the CPU has it and the kernel enabled it, so a listed
    // flag must be detected. Flags older kernels know must also match the other way; newer
    // ones (bf16, fp16, AMX) an older kernel may simply not name.
    std::set<std::string> proc = proc_cpu_flags();
    if (proc.empty()) {
      MESSAGE("no /proc/cpuinfo flags; skipping the cross-check with the kernel's view");
      return;
    }
    const std::set<std::string> classic = {"sse4_2",  "avx",      "avx2",     "fma",      "f16c",
                                           "avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_vnni"};
    for (auto [name, on] : f.list()) {
      INFO("flag ", name);
      bool listed = proc.count(name) > 0;
      if (listed) CHECK(on);
      if (classic.count(name)) CHECK(on == listed);
    }
  }
#endif
}
