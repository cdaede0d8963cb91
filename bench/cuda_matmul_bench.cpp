// bench/cuda_matmul_bench.cpp — every CUDA rung of the GEMM ladder next to cuBLAS, in one process.
//
// Entries (built only with the CUDA backend; bench/CMakeLists.txt):
//   cuda_matmul_<dtype>/<version>/n<N>          squares N = 1024, 2048, 4096, A and B row-major
//   cuda_matmul_<dtype>/<version>/<M>x<N>x<K>_nt transformer shapes: M = 4096 tokens, K, N in
//                                                {256, 512, 1024}, B = W^T (a Linear weight)
// for dtype f32 (cuBLAS with TF32 off, the default) and bf16 (f32 accumulation). Each reports
//   TFLOP/s     2 M N K / time, time from cudaEvents around each launch (manual time)
//   pct_cublas  this entry's TFLOP/s as % of cuBLAS on the same problem (measured once per
//               problem, first), the number the target is stated in (>= 70% at 4096^3 bf16)
// Before timing, each version's C is compared with cuBLAS's on the same operands (small-integer
// operands, so f32 must match exactly and bf16 to one rounding); a mismatch is reported as an
// error, not timed. Without a device every entry is skipped with that message.
//
// Not yet run on hardware: no GPU was available when this was written (docs/cuda_gemm.md).
#include <benchmark/benchmark.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <string>

#include "core/cuda/check.h"
#include "kernels/cuda_options.h"
#include "kernels/matmul.h"
#include "tessel.h"

namespace {

using namespace tessel;

struct Problem {
  int64_t M, N, K;
  bool nt;
  DType dt;
  Tensor a, b, b_store, c;
  Problem(int64_t m, int64_t n, int64_t k, bool nt_, DType d) : M(m), N(n), K(k), nt(nt_), dt(d) {
    // Small integers: every version's result is exact (f32) or one rounding (bf16) away from cuBLAS's.
    a = to_device(to_dtype(randint(-2, 3, {M, K}), d), Device::cuda());
    b_store = to_device(to_dtype(nt ? randint(-2, 3, {N, K}) : randint(-2, 3, {K, N}), d), Device::cuda());
    b = nt ? transpose(b_store, 0, 1) : b_store;
    c = empty({M, N}, {.dtype = d, .device = Device::cuda()});
  }
  kernels::MatmulParams params() const { return {.a = a.buf(), .b = b.buf(), .c = c.buf()}; }
  double flops() const { return 2.0 * static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K); }
};

// Milliseconds of one run of `version`, by cudaEvents around it.
double time_once(const std::string& version, const Problem& pr, cudaEvent_t start, cudaEvent_t stop) {
  TESSEL_CUDA_CHECK(cudaEventRecord(start));
  kernels::matmul_family().run_version(version, pr.params());
  TESSEL_CUDA_CHECK(cudaEventRecord(stop));
  TESSEL_CUDA_CHECK(cudaEventSynchronize(stop));
  float ms = 0;
  TESSEL_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
  return ms;
}

struct Events {
  cudaEvent_t start = nullptr, stop = nullptr;
  Events() {
    TESSEL_CUDA_CHECK(cudaEventCreate(&start));
    TESSEL_CUDA_CHECK(cudaEventCreate(&stop));
  }
  ~Events() {
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
  }
};

// cuBLAS's TFLOP/s and result per problem name, measured on first use.
struct Baseline {
  double tflops = 0;
  Tensor c;  // on the CPU
};
Baseline& baseline(const std::string& key, const Problem& pr) {
  static std::map<std::string, Baseline> cache;
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  Events ev;
  time_once("cublas", pr, ev.start, ev.stop);  // warm-up: handle, workspace, heuristic
  double best = 1e30;
  for (int i = 0; i < 10; ++i) best = std::min(best, time_once("cublas", pr, ev.start, ev.stop));
  Baseline bl;
  bl.tflops = pr.flops() / (best * 1e-3) / 1e12;
  bl.c = to_device(pr.c, Device::cpu());
  return cache[key] = bl;
}

std::string compare(const Tensor& got, const Tensor& want, DType dt) {
  const auto g = got.to_vector<double>(), w = want.to_vector<double>();
  const double tol = dt == DType::bf16 ? std::ldexp(1.0, -7) : 0.0;
  for (size_t i = 0; i < g.size(); ++i)
    if (!(std::fabs(g[i] - w[i]) <= tol * std::fabs(w[i])))
      return "element " + std::to_string(i) + " = " + std::to_string(g[i]) + ", cuBLAS " + std::to_string(w[i]);
  return "";
}

void bench_entry(benchmark::State& state, const std::string& version, const std::string& key, int64_t M, int64_t N,
                 int64_t K, bool nt, DType dt) {
  if (!cuda_available()) {
    state.SkipWithError("no CUDA device");
    return;
  }
  set_cuda_tf32(false);
  static std::map<std::string, std::unique_ptr<Problem>> problems;  // operands shared by the entries of a shape
  auto& slot = problems[key];
  if (!slot) {
    problems.clear();  // entries of one shape run back to back: keep one problem's memory at a time
    problems[key] = std::make_unique<Problem>(M, N, K, nt, dt);
  }
  const Problem& pr = *problems[key];
  if (!kernels::matmul_family().accepts(version, pr.params())) {
    state.SkipWithError((version + " declines this problem").c_str());
    return;
  }
  const Baseline& bl = baseline(key, pr);
  Events ev;
  time_once(version, pr, ev.start, ev.stop);  // warm-up, and the result to check
  const std::string err = compare(to_device(pr.c, Device::cpu()), bl.c, dt);
  if (!err.empty()) {
    state.SkipWithError(("result disagrees with cuBLAS: " + err).c_str());
    return;
  }
  double total_ms = 0;
  for (auto _ : state) {
    const double ms = time_once(version, pr, ev.start, ev.stop);
    total_ms += ms;
    state.SetIterationTime(ms * 1e-3);
  }
  const double tflops = pr.flops() * static_cast<double>(state.iterations()) / (total_ms * 1e-3) / 1e12;
  state.counters["TFLOP/s"] = tflops;
  state.counters["pct_cublas"] = 100.0 * tflops / bl.tflops;
}

std::string fmt(const char* f, int64_t x, int64_t y = 0, int64_t z = 0) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, static_cast<long>(x), static_cast<long>(y), static_cast<long>(z));
  return buf;
}

void register_shape(DType dt, const std::string& shape, int64_t M, int64_t N, int64_t K, bool nt) {
  const std::string group = std::string("cuda_matmul_") + dtype_name(dt);
  const std::string key = group + "/" + shape;
  for (const std::string& v : kernels::matmul_family().versions(DeviceType::cuda)) {
    // Every rung at every shape: even cuda_naive at 4096^3 (~137 GFLOP at a few TFLOP/s) is a
    // fraction of a second per iteration, and MinTime bounds the repetitions.
    const std::string name = group + "/" + v + "/" + shape;
    benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& s) { bench_entry(s, v, key, M, N, K, nt, dt); })
        ->Unit(benchmark::kMillisecond)
        ->UseManualTime()
        ->MinTime(0.2);
  }
}

const bool registered = [] {
  for (DType dt : {DType::bf16, DType::f32}) {
    for (int64_t n : {1024, 2048, 4096}) register_shape(dt, fmt("n%ld", n), n, n, n, false);
    for (int64_t k : {256, 512, 1024})
      for (int64_t n : {256, 512, 1024}) register_shape(dt, fmt("%ldx%ldx%ld_nt", 4096, n, k), 4096, n, k, true);
  }
  return true;
}();

}  // namespace
