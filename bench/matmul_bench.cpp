// bench/matmul_bench.cpp — every registered CPU matmul version on square f32 GEMMs.
//
// Reports GFLOP/s (2 n^3 flops per iteration) and pct_peak against the measured f32 FMA peak
// for tessel's thread count (bench/peak.h). At n = 128 the kernel may not split the work over
// every thread; pct_peak still counts them all, since that is what the machine offered. ref,
// the triple loop with f64 accumulation, runs only at 128: it is the oracle, not a contender.
#include <benchmark/benchmark.h>

#include "bench/report.h"
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
  kernels::matmul_family().run_version(version, p);  // untimed warm-up
  const double secs = bench::timed_loop(state, [&] {
    kernels::matmul_family().run_version(version, p);
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  });
  const double dn = static_cast<double>(n);
  bench::report_flops(state, secs, 2.0 * dn * dn * dn);
}

const bool registered = [] {
  for (const std::string& v : kernels::matmul_family().versions(DeviceType::cpu)) {
    auto* bm = benchmark::RegisterBenchmark(("matmul_f32/" + v).c_str(), bm_matmul, v);
    bm->Unit(benchmark::kMillisecond)->UseRealTime();
    if (v == "ref")
      bm->Arg(128);
    else
      bm->Arg(128)->Arg(256)->Arg(512)->Arg(1024);
  }
  return true;
}();

}  // namespace
