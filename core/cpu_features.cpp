#include "core/cpu_features.h"

#include <cstdint>
#include <cstring>
#include <fstream>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define TESSEL_X86 1
#endif

namespace tessel {
namespace {

std::string trim(std::string s) {
  size_t b = s.find_first_not_of(" \t\n");
  if (b == std::string::npos) return {};
  size_t e = s.find_last_not_of(" \t\n");
  return s.substr(b, e - b + 1);
}

// The "model name" (x86) or "Model"/"CPU part" line of /proc/cpuinfo; empty if unreadable.
std::string model_from_proc_cpuinfo() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    for (const char* key : {"model name", "Model", "cpu model"}) {
      if (line.rfind(key, 0) == 0) {
        size_t colon = line.find(':');
        if (colon != std::string::npos) {
          std::string v = trim(line.substr(colon + 1));
          if (!v.empty()) return v;
        }
      }
    }
  }
  return {};
}

#ifdef TESSEL_X86
struct Regs {
  uint32_t a = 0, b = 0, c = 0, d = 0;
};

Regs cpuid(uint32_t leaf, uint32_t sub = 0) {
  Regs r;
  if (!__get_cpuid_count(leaf, sub, &r.a, &r.b, &r.c, &r.d)) r = Regs{};
  return r;
}

// XCR0: which register states the OS saves on a context switch. xgetbv is written as asm so
// that this file needs no -mxsave.
uint64_t xcr0() {
  uint32_t lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (uint64_t{hi} << 32) | lo;
}

bool bit(uint32_t reg, int n) { return (reg >> n) & 1u; }
#endif

}  // namespace

CpuFeatures detect_cpu_features() {
  CpuFeatures f;
#ifdef TESSEL_X86
  uint32_t max_leaf = __get_cpuid_max(0, nullptr);
  Regs v = cpuid(0);
  char vendor[13] = {};
  std::memcpy(vendor + 0, &v.b, 4);
  std::memcpy(vendor + 4, &v.d, 4);
  std::memcpy(vendor + 8, &v.c, 4);
  f.vendor = vendor;

  Regs l1 = max_leaf >= 1 ? cpuid(1) : Regs{};
  Regs l7 = max_leaf >= 7 ? cpuid(7, 0) : Regs{};
  Regs l7s1 = (max_leaf >= 7 && l7.a >= 1) ? cpuid(7, 1) : Regs{};

  // OS support: XMM|YMM state for AVX; plus opmask|ZMM_Hi256|Hi16_ZMM for AVX-512;
  // XTILECFG|XTILEDATA for AMX.
  bool osxsave = bit(l1.c, 27);
  uint64_t xcr = osxsave ? xcr0() : 0;
  bool os_avx = (xcr & 0x6) == 0x6;
  bool os_avx512 = os_avx && (xcr & 0xE0) == 0xE0;
  bool os_amx = (xcr & 0x60000) == 0x60000;

  f.sse4_2 = bit(l1.c, 20);
  f.avx = os_avx && bit(l1.c, 28);
  f.fma = f.avx && bit(l1.c, 12);
  f.f16c = f.avx && bit(l1.c, 29);
  f.avx2 = f.avx && bit(l7.b, 5);
  f.avx512f = os_avx512 && bit(l7.b, 16);
  f.avx512dq = f.avx512f && bit(l7.b, 17);
  f.avx512bw = f.avx512f && bit(l7.b, 30);
  f.avx512vl = f.avx512f && bit(l7.b, 31);
  f.avx512_vnni = f.avx512f && bit(l7.c, 11);
  f.avx512_fp16 = f.avx512f && bit(l7.d, 23);
  f.avx512_bf16 = f.avx512f && bit(l7s1.a, 5);
  f.amx_bf16 = os_amx && bit(l7.d, 22);
  f.amx_tile = os_amx && bit(l7.d, 24);
  f.amx_int8 = os_amx && bit(l7.d, 25);

  // The brand string: 48 bytes over leaves 0x80000002..4, NUL-padded, often space-padded.
  if (__get_cpuid_max(0x80000000u, nullptr) >= 0x80000004u) {
    char brand[49] = {};
    for (uint32_t i = 0; i < 3; ++i) {
      Regs r = cpuid(0x80000002u + i);
      std::memcpy(brand + 16 * i + 0, &r.a, 4);
      std::memcpy(brand + 16 * i + 4, &r.b, 4);
      std::memcpy(brand + 16 * i + 8, &r.c, 4);
      std::memcpy(brand + 16 * i + 12, &r.d, 4);
    }
    f.model = trim(brand);
  }
#endif
  if (f.model.empty()) f.model = model_from_proc_cpuinfo();
  if (f.model.empty()) f.model = "unknown";
  return f;
}

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = detect_cpu_features();
  return f;
}

std::vector<std::pair<const char*, bool>> CpuFeatures::list() const {
  return {{"sse4_2", sse4_2},
          {"avx", avx},
          {"avx2", avx2},
          {"fma", fma},
          {"f16c", f16c},
          {"avx512f", avx512f},
          {"avx512bw", avx512bw},
          {"avx512vl", avx512vl},
          {"avx512dq", avx512dq},
          {"avx512_bf16", avx512_bf16},
          {"avx512_fp16", avx512_fp16},
          {"avx512_vnni", avx512_vnni},
          {"amx_tile", amx_tile},
          {"amx_bf16", amx_bf16},
          {"amx_int8", amx_int8}};
}

std::string CpuFeatures::summary() const {
  std::string s;
  for (auto [name, on] : list()) {
    if (!on) continue;
    if (!s.empty()) s += ' ';
    s += name;
  }
  return s.empty() ? "none" : s;
}

}  // namespace tessel
