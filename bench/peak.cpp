// bench/peak.cpp — the FMA and bandwidth probes behind measured_peak() (see peak.h).
//
// FMA probe: each thread runs kAcc independent accumulator chains acc = acc * a + b. One chain
// would be bound by the FMA latency (about 4 cycles); with two FMA pipes, 8 chains in flight
// saturate them, and 12 leave slack while still fitting the register file (12 + 2 operands
// <= 16 ymm, well under 32 zmm). With a = 1 - 1/1024 and b small the chains converge to a
// finite value, so nothing overflows or goes denormal (which would be slow). The loop touches
// no memory: it measures the core, not the caches.
//
// Bandwidth probe: a = b + s c over three arrays of max(256 MiB, LLC / 2) each, so the working
// set is at least 1.5x the last-level cache and the stream comes from DRAM. The arrays are
// first touched by the same static schedule that later streams them (pages land on the node
// of the thread that uses them), and one untimed pass precedes the timed ones.
#include "bench/peak.h"

#include <immintrin.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>

#include "core/cpu_features.h"
#include "core/error.h"
#include "core/parallel.h"

namespace tessel::bench {
namespace {

constexpr int kAcc = 12;
constexpr int kReps = 5;
constexpr int64_t kFmaIters = int64_t{1} << 23;

// Scalars the compiler cannot constant-fold, so the chains are really computed.
volatile float g_mul = 1.0f - 1.0f / 1024.0f;
volatile float g_add = 1.0f / 4096.0f;
volatile float g_sink = 0;

#if defined(__AVX512F__)
constexpr const char* kIsa = "avx512";
constexpr int kLanes = 16;
float fma_chains(int64_t iters) {
  const __m512 a = _mm512_set1_ps(g_mul), b = _mm512_set1_ps(g_add);
  __m512 acc[kAcc];
  for (int k = 0; k < kAcc; ++k) acc[k] = _mm512_set1_ps(static_cast<float>(k));
  for (int64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 12
    for (int k = 0; k < kAcc; ++k) acc[k] = _mm512_fmadd_ps(acc[k], a, b);
  }
  __m512 s = acc[0];
  for (int k = 1; k < kAcc; ++k) s = _mm512_add_ps(s, acc[k]);
  alignas(64) float lanes[16];  // not _mm512_reduce_add_ps: GCC 12 warns inside it (-Wuninitialized)
  _mm512_store_ps(lanes, s);
  float total = 0;
  for (float v : lanes) total += v;
  return total;
}
#elif defined(__AVX2__) && defined(__FMA__)
constexpr const char* kIsa = "avx2+fma";
constexpr int kLanes = 8;
float fma_chains(int64_t iters) {
  const __m256 a = _mm256_set1_ps(g_mul), b = _mm256_set1_ps(g_add);
  __m256 acc[kAcc];
  for (int k = 0; k < kAcc; ++k) acc[k] = _mm256_set1_ps(static_cast<float>(k));
  for (int64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 12
    for (int k = 0; k < kAcc; ++k) acc[k] = _mm256_fmadd_ps(acc[k], a, b);
  }
  __m256 s = acc[0];
  for (int k = 1; k < kAcc; ++k) s = _mm256_add_ps(s, acc[k]);
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, s);
  float total = 0;
  for (float v : lanes) total += v;
  return total;
}
#else
constexpr const char* kIsa = "scalar";
constexpr int kLanes = 1;
float fma_chains(int64_t iters) {
  const float a = g_mul, b = g_add;
  float acc[kAcc];
  for (int k = 0; k < kAcc; ++k) acc[k] = static_cast<float>(k);
  for (int64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 12
    for (int k = 0; k < kAcc; ++k) acc[k] = acc[k] * a + b;
  }
  float total = 0;
  for (float v : acc) total += v;
  return total;
}
#endif

// bf16 probe: kAcc chains acc = dpbf16(acc, a, b) with a, b fixed pairs of small values, so
// each chain grows linearly and stays finite for the probe's length. Compiled for AVX512_BF16
// whatever -march says and called only where cpu_features() reports it.
__attribute__((target("avx512f,avx512bf16"))) float bf16_chains(int64_t iters) {
  const __m512 ones = _mm512_set1_ps(g_add);
  const __m512bh a = _mm512_cvtne2ps_pbh(ones, ones), b = _mm512_cvtne2ps_pbh(ones, ones);
  __m512 acc[kAcc];
  for (int k = 0; k < kAcc; ++k) acc[k] = _mm512_set1_ps(static_cast<float>(k));
  for (int64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 12
    for (int k = 0; k < kAcc; ++k) acc[k] = _mm512_dpbf16_ps(acc[k], a, b);
  }
  __m512 s = acc[0];
  for (int k = 1; k < kAcc; ++k) s = _mm512_add_ps(s, acc[k]);
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, s);
  float total = 0;
  for (float v : lanes) total += v;
  return total;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Best-of-kReps GFLOP/s of the FMA chains run by `threads` threads at once.
double measure_fma(int threads) {
  const double flops = 2.0 * kFmaIters * kAcc * kLanes * threads;
  double best = 0;
  for (int rep = -1; rep < kReps; ++rep) {  // rep -1: warm-up (threads spawned, clocks up)
    const auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel num_threads(threads)
    {
      float r = fma_chains(kFmaIters);
#pragma omp critical
      g_sink = g_sink + r;
    }
    const double s = seconds_since(t0);
    if (rep >= 0) best = std::max(best, flops / s / 1e9);
  }
  return best;
}

// Best-of-kReps bf16 GFLOP/s (64 flops per vdpbf16ps) on `threads` threads; 0 without AVX512_BF16.
double measure_bf16(int threads) {
  if (!cpu_features().avx512_bf16) return 0;
  const double flops = 64.0 * kFmaIters * kAcc * threads;
  double best = 0;
  for (int rep = -1; rep < kReps; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel num_threads(threads)
    {
      float r = bf16_chains(kFmaIters);
#pragma omp critical
      g_sink = g_sink + r;
    }
    const double s = seconds_since(t0);
    if (rep >= 0) best = std::max(best, flops / s / 1e9);
  }
  return best;
}

double llc_bytes() {
#ifdef _SC_LEVEL3_CACHE_SIZE
  long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
  if (l3 > 0) return static_cast<double>(l3);
#endif
#ifdef _SC_LEVEL2_CACHE_SIZE
  long l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
  if (l2 > 0) return static_cast<double>(l2);
#endif
  return 0;
}

struct FreeDeleter {
  void operator()(float* p) const { std::free(p); }
};

// Best-of-kReps triad GB/s on `threads` threads; `working_set` receives the bytes of all arrays.
double measure_bandwidth(int threads, double llc, double& working_set) {
  const double array_bytes = std::max(256.0 * (1 << 20), llc / 2);
  const int64_t n = (static_cast<int64_t>(array_bytes) / 4 + 4095) / 4096 * 4096;  // whole 16 KiB blocks
  working_set = 3.0 * 4.0 * static_cast<double>(n);
  auto alloc = [n] {
    auto* p = static_cast<float*>(std::aligned_alloc(64, static_cast<size_t>(n) * sizeof(float)));
    check(p != nullptr, "measured_peak", "could not allocate ", n * 4, " bytes for the bandwidth probe");
    return std::unique_ptr<float[], FreeDeleter>(p);
  };
  auto ua = alloc(), ub = alloc(), uc = alloc();
  float* __restrict a = ua.get();
  float* __restrict b = ub.get();
  float* __restrict c = uc.get();
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t i = 0; i < n; ++i) {
    a[i] = 0;
    b[i] = 1;
    c[i] = 2;
  }
  const float s = g_add;
  double best = 0;
  for (int rep = -1; rep < kReps; ++rep) {  // rep -1: warm-up
    const auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel for simd schedule(static) num_threads(threads)
    for (int64_t i = 0; i < n; ++i) a[i] = b[i] + s * c[i];
    const double t = seconds_since(t0);
    if (rep >= 0) best = std::max(best, working_set / t / 1e9);
  }
  g_sink = g_sink + a[n / 2];
  return best;
}

Peak measure() {
  Peak p;
  p.threads = get_num_threads();
  p.isa = kIsa;
  p.fma_gflops_1t = measure_fma(1);
  p.fma_gflops_all = p.threads == 1 ? p.fma_gflops_1t : measure_fma(p.threads);
  p.bf16_gflops_1t = measure_bf16(1);
  p.bf16_gflops_all = p.threads == 1 ? p.bf16_gflops_1t : measure_bf16(p.threads);
  p.llc_bytes = llc_bytes();
  p.bandwidth_gbs = measure_bandwidth(p.threads, p.llc_bytes, p.stream_bytes);
  return p;
}

}  // namespace

const Peak& measured_peak() {
  static const Peak peak = measure();
  return peak;
}

double fma_peak_gflops(int threads) {
  const Peak& p = measured_peak();
  if (threads <= 1) return p.fma_gflops_1t;
  if (threads >= p.threads) return p.fma_gflops_all;
  return std::min(p.fma_gflops_all, threads * p.fma_gflops_1t);
}

double bf16_peak_gflops(int threads) {
  const Peak& p = measured_peak();
  if (threads <= 1) return p.bf16_gflops_1t;
  if (threads >= p.threads) return p.bf16_gflops_all;
  return std::min(p.bf16_gflops_all, threads * p.bf16_gflops_1t);
}

std::string describe(const Peak& p) {
  char buf[640];
  std::snprintf(buf, sizeof buf,
                "measured peak: f32 FMA (%s) %.1f GFLOP/s on 1 thread, %.1f GFLOP/s on %d threads; "
                "bf16 dot products (vdpbf16ps) %.1f GFLOP/s on 1 thread, %.1f on %d threads; "
                "memory bandwidth (triad, %.0f MiB working set, LLC %.0f MiB) %.2f GB/s on %d threads",
                p.isa.c_str(), p.fma_gflops_1t, p.fma_gflops_all, p.threads, p.bf16_gflops_1t, p.bf16_gflops_all,
                p.threads, p.stream_bytes / (1 << 20), p.llc_bytes / (1 << 20), p.bandwidth_gbs, p.threads);
  return buf;
}

}  // namespace tessel::bench
