// bench/elementwise_bench.cpp — every elementwise and reduce version, in GB/s and % of peak.
//
// Elementwise ops and reductions are memory-bound, so the figure of merit is bytes moved per
// second: every input element read once and every output element written once (f32: 4 bytes
// each), against the measured triad bandwidth (bench/peak.h). `copy` (copy_into of a
// contiguous tensor, a memcpy split over threads) shows how close the library's simplest
// stream gets to that peak.
#include <benchmark/benchmark.h>

#include "bench/report.h"
#include "kernels/elementwise.h"
#include "kernels/reduce.h"
#include "tessel.h"

namespace {

using namespace tessel;
using bench::report_bytes;
using kernels::EwOp;

void bm_copy(benchmark::State& state) {
  const int64_t n = state.range(0);
  Tensor a = randn({n}), b = empty({n});
  copy_into(b, a);  // untimed warm-up: faults the pages in
  const double secs = bench::timed_loop(state, [&] { copy_into(b, a); });
  report_bytes(state, secs, 8.0 * n);
}

void bm_elementwise(benchmark::State& state, const std::string& version, EwOp op) {
  const int64_t n = state.range(0);
  const int arity = kernels::ew_arity(op);
  Tensor a = randn({n}), b = randn({n}), out = empty({n});
  if (op == EwOp::log) a = abs(a);  // the op's domain (the kernels are branch-free either way)
  kernels::ElementwiseParams p;
  p.op = op;
  p.out = out.buf();
  p.in[0] = a.buf();
  if (arity > 1) p.in[1] = b.buf();
  kernels::elementwise_family().run_version(version, p);  // untimed warm-up
  const double secs = bench::timed_loop(state, [&] { kernels::elementwise_family().run_version(version, p); });
  report_bytes(state, secs, 4.0 * n * (arity + 1));
}

// Sum (or sum of squares) over the last dim (`rows` outputs) or, with transposed = true, over
// the first (each output strides down a column). Bytes: the input once; the outputs are
// negligible.
void bm_reduce(benchmark::State& state, const std::string& version, bool transposed, kernels::ReduceOp op) {
  const int64_t rows = state.range(0), cols = state.range(1);
  Tensor x = randn({rows, cols}), out = empty({transposed ? cols : rows});
  kernels::ReduceParams p;
  p.op = op;
  p.in = transposed ? transpose(x, 0, 1).buf() : x.buf();  // kept dim first, reduced dim last
  p.reduced = 1;
  p.out = out.buf();
  kernels::reduce_family().run_version(version, p);  // untimed warm-up
  const double secs = bench::timed_loop(state, [&] { kernels::reduce_family().run_version(version, p); });
  report_bytes(state, secs, 4.0 * rows * cols);
}

const int64_t kBig = 1 << 24;  // 64 MiB per f32 operand

const bool registered = [] {
  benchmark::RegisterBenchmark("copy", bm_copy)->Arg(kBig)->UseRealTime();
  for (const std::string& v : kernels::elementwise_family().versions(DeviceType::cpu)) {
    // Streaming arithmetic, then every activation forward and its fused backward (dy, x).
    for (EwOp op : {EwOp::add, EwOp::mul, EwOp::relu, EwOp::exp, EwOp::log, EwOp::tanh, EwOp::sigmoid, EwOp::silu,
                    EwOp::gelu_tanh, EwOp::gelu_erf, EwOp::relu_bwd, EwOp::tanh_bwd, EwOp::sigmoid_bwd, EwOp::silu_bwd,
                    EwOp::gelu_tanh_bwd, EwOp::gelu_erf_bwd}) {
      std::string name = std::string("elementwise/") + kernels::ew_name(op) + "/" + v;
      benchmark::RegisterBenchmark(name.c_str(), bm_elementwise, v, op)
          ->Arg(v == "ref" ? kBig / 8 : kBig)
          ->UseRealTime();
    }
  }
  for (const std::string& v : kernels::reduce_family().versions(DeviceType::cpu)) {
    benchmark::RegisterBenchmark(("reduce_sum_rows/" + v).c_str(), bm_reduce, v, false, kernels::ReduceOp::sum)
        ->Args({4096, 4096})
        ->UseRealTime();
    benchmark::RegisterBenchmark(("reduce_sum_cols/" + v).c_str(), bm_reduce, v, true, kernels::ReduceOp::sum)
        ->Args({4096, 4096})
        ->Args({2176, 512})  // a bias gradient of the ViT step: few columns, many rows
        ->UseRealTime();
    // The gradient-norm term of clip_grad_norm: one tensor's sum of squares, a single output.
    benchmark::RegisterBenchmark(("reduce_sumsq_all/" + v).c_str(), bm_reduce, v, false, kernels::ReduceOp::sumsq)
        ->Args({1, kBig})
        ->UseRealTime();
  }
  return true;
}();

}  // namespace
