// bench/report.h — the counters every benchmark entry reports.
//
// Memory-bound kernels report GB/s (1e9 bytes per second of wall time) and pct_peak, the
// percentage of the measured triad bandwidth; compute-bound ones report GFLOP/s and pct_peak
// against the measured FMA peak for the thread count (bench/peak.h). The rates come from the
// wall time of the timing loop itself (timed_loop), not the main thread's CPU time, since the
// kernels run on several threads; register entries with UseRealTime() so the Time column is
// the same clock. (Plain counters computed here rather than Google Benchmark rate counters,
// whose console output would print "pct_peak=42/s".)
#pragma once
#include <benchmark/benchmark.h>

#include <chrono>

#include "bench/peak.h"
#include "core/parallel.h"

namespace tessel::bench {

// Runs the benchmark's timing loop over `body` and returns its wall time in seconds.
template <class F>
double timed_loop(benchmark::State& state, F&& body) {
  const auto t0 = std::chrono::steady_clock::now();
  for (auto _ : state) body();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// `bytes`: what one iteration must read and write, counted once each (see the caller's comment).
inline void report_bytes(benchmark::State& state, double seconds, double bytes) {
  const double gbs = bytes * static_cast<double>(state.iterations()) / seconds / 1e9;
  state.counters["GB/s"] = gbs;
  state.counters["pct_peak"] = 100.0 * gbs / measured_peak().bandwidth_gbs;
}

// `flops`: the useful floating-point operations of one iteration (an FMA counts 2). bf16 work
// (bf16_peak) is held against the measured vdpbf16ps peak instead of the f32 FMA one.
inline void report_flops(benchmark::State& state, double seconds, double flops, bool bf16_peak = false) {
  const int threads = get_num_threads();
  const double gflops = flops * static_cast<double>(state.iterations()) / seconds / 1e9;
  const double peak = bf16_peak ? bf16_peak_gflops(threads) : fma_peak_gflops(threads);
  state.counters["GFLOP/s"] = gflops;
  state.counters["pct_peak"] = peak > 0 ? 100.0 * gflops / peak : 0.0;
  state.counters["threads"] = threads;
}

}  // namespace tessel::bench
