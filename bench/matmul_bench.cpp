// bench/matmul_bench.cpp — every registered CPU matmul version on square f32 GEMMs.
//
// Reports GFLOP/s (2 n^3 flops per iteration, as a rate). ref, the O(n^3) triple loop with f64
// accumulation, runs only at 128: it is the oracle, not a contender.
#include <benchmark/benchmark.h>

#include "kernels/matmul.h"
#include "tessel.h"

namespace {

using namespace tessel;

void bm_matmul(benchmark::State& state, const std::string& version) {
  const int64_t n = state.range(0);
  Tensor a = randn({n, n}), b = randn({n, n}), c = empty({n, n});
  kernels::MatmulParams p;
  p.a = a.buf();
  p.b = b.buf();
  p.c = c.buf();
  for (auto _ : state) {
    kernels::matmul_family().run_version(version, p);
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  }
  const double flops = 2.0 * static_cast<double>(n) * static_cast<double>(n) * static_cast<double>(n);
  state.counters["GFLOP/s"] =
      benchmark::Counter(flops * static_cast<double>(state.iterations()) / 1e9, benchmark::Counter::kIsRate);
  state.counters["threads"] = get_num_threads();
}

const bool registered = [] {
  for (const std::string& v : kernels::matmul_family().versions(DeviceType::cpu)) {
    auto* bm = benchmark::RegisterBenchmark(("matmul_f32/" + v).c_str(), bm_matmul, v);
    bm->Unit(benchmark::kMillisecond)->UseRealTime();
    if (v == "ref")
      bm->Arg(128);
    else
      bm->Arg(128)->Arg(256)->Arg(512);
  }
  return true;
}();

}  // namespace
