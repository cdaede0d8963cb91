// bench/peak.h — what this machine can do, measured at run time: the denominators of pct_peak.
//
// A datasheet peak is a promise about an idealized chip; a benchmark is more honest when it
// is compared with what the same process, on the same (possibly shared, possibly throttled)
// machine, can actually reach. So the peaks are measured once per process, on first use:
//  - f32 FMA throughput: independent vector FMAs that never touch memory, on 1 thread and on
//    every thread of tessel's thread count (get_num_threads()). The ceiling for GEMM.
//  - bf16 dot-product throughput (CPUs with AVX512_BF16): independent vdpbf16ps chains, each
//    instruction 32 bf16 multiply-adds into 16 f32 lanes = 64 flops; the ceiling for bf16 GEMM.
//    0 where the CPU lacks the instruction.
//  - memory bandwidth: a STREAM-style triad a = b + s c over arrays much larger than the
//    last-level cache, on every thread. The ceiling for elementwise ops, reductions, norms,
//    softmax, losses and indexing. Bytes are counted as STREAM does (each array element read
//    or written once; the write-allocate read of `a` is not counted), which is also how every
//    benchmark here counts its own bytes, so the ratio compares like with like.
// Each figure is the best of a few repetitions, after an untimed warm-up.
#pragma once
#include <cstdint>
#include <string>

namespace tessel::bench {

struct Peak {
  int threads = 1;             // tessel's thread count when measured
  std::string isa;             // "avx512", "avx2+fma" or "scalar": the FMA loop that ran
  double fma_gflops_1t = 0;    // f32 GFLOP/s (an FMA counts 2), one thread
  double fma_gflops_all = 0;   // f32 GFLOP/s, `threads` threads
  double bf16_gflops_1t = 0;   // bf16 GFLOP/s through vdpbf16ps (a multiply-add counts 2), one thread; 0: no bf16
  double bf16_gflops_all = 0;  // the same on `threads` threads
  double bandwidth_gbs = 0;    // GB/s (1e9 bytes), `threads` threads
  double stream_bytes = 0;     // working set of the bandwidth probe (three arrays)
  double llc_bytes = 0;        // last-level cache size reported by the OS (0: unknown)
};

// Measures on the first call (about a second), then returns the cached numbers.
const Peak& measured_peak();

// The FMA peak to hold a kernel that ran on `threads` threads against: the measured 1- or
// all-thread figure, and in between 1-thread scaling capped at the all-thread figure.
double fma_peak_gflops(int threads);

// The same for bf16 dot products (0 where the CPU has none).
double bf16_peak_gflops(int threads);

// One human-readable paragraph with every number (for the start of a benchmark log).
std::string describe(const Peak& p);

}  // namespace tessel::bench
