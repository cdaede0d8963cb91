// core/cpu_features.h — what this CPU can execute, detected once at run time.
//
// Kernels are compiled for a baseline and pick their fast paths (AVX2, AVX-512, AMX, ...) from
// this table when they run, so one binary serves every x86-64 machine. A feature counts as
// present only when both the CPU reports it (cpuid) and the operating system saves its
// registers on a context switch (XCR0 via xgetbv) — the same rule __builtin_cpu_supports
// applies; without the OS half, executing the instruction faults.
//
// AMX additionally needs a per-process permission on Linux (arch_prctl ARCH_REQ_XCOMP_PERM);
// `amx_*` here means "the CPU and OS support it", and the AMX kernel requests the permission.
// On non-x86 targets every flag is false and the model string comes from /proc/cpuinfo.
#pragma once
#include <string>
#include <utility>
#include <vector>

namespace tessel {

struct CpuFeatures {
  std::string vendor;  // "GenuineIntel", "AuthenticAMD", ... (empty off x86)
  std::string model;   // brand string, e.g. "Intel(R) Xeon(R) Platinum 8480+"; never empty

  bool sse4_2 = false;
  bool avx = false;
  bool avx2 = false;
  bool fma = false;
  bool f16c = false;
  bool avx512f = false;
  bool avx512bw = false;
  bool avx512vl = false;
  bool avx512dq = false;
  bool avx512_bf16 = false;
  bool avx512_fp16 = false;
  bool avx512_vnni = false;
  bool amx_tile = false;
  bool amx_bf16 = false;
  bool amx_int8 = false;

  // Every flag by its conventional name (the names /proc/cpuinfo uses), in a fixed order.
  std::vector<std::pair<const char*, bool>> list() const;
  // The present flags joined by spaces, e.g. "sse4_2 avx avx2 fma f16c"; "none" if none.
  std::string summary() const;
};

// Detected on first call and cached; thread-safe.
const CpuFeatures& cpu_features();

// The detection itself, uncached (for tests and tools).
CpuFeatures detect_cpu_features();

}  // namespace tessel
