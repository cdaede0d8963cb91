// bench/main.cpp — benchmark_main plus the peak probe: measures the machine once, logs it on
// stderr (so a console log records it without touching --benchmark_format=json on stdout) and
// adds it to the report's context (so the JSON records it too).
#include <benchmark/benchmark.h>

#include <cstdio>
#include <string>

#include "bench/peak.h"

namespace {

// Listing the benchmarks needs no peak (the flag parser itself is internal to the library).
bool only_listing(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--benchmark_list_tests" || a == "--benchmark_list_tests=true" || a == "--benchmark_list_tests=1")
      return true;
  }
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  const bool listing = only_listing(argc, argv);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  if (listing) {
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
  }
  const tessel::bench::Peak& p = tessel::bench::measured_peak();
  std::fprintf(stderr, "%s\n", tessel::bench::describe(p).c_str());
  benchmark::AddCustomContext("peak_threads", std::to_string(p.threads));
  benchmark::AddCustomContext("peak_fma_isa", p.isa);
  benchmark::AddCustomContext("peak_fma_gflops_1t", std::to_string(p.fma_gflops_1t));
  benchmark::AddCustomContext("peak_fma_gflops_all", std::to_string(p.fma_gflops_all));
  benchmark::AddCustomContext("peak_bf16_gflops_1t", std::to_string(p.bf16_gflops_1t));
  benchmark::AddCustomContext("peak_bf16_gflops_all", std::to_string(p.bf16_gflops_all));
  benchmark::AddCustomContext("peak_bandwidth_gbs", std::to_string(p.bandwidth_gbs));
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
