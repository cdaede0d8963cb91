// bench/elementwise_bench.cpp — every elementwise and reduce version, in GB/s.
//
// Elementwise ops and reductions are memory-bound, so the figure of merit is bytes moved per
// second (inputs read + outputs written). The `copy` entry (a contiguous copy_into, i.e.
// memcpy split over threads) is the practical ceiling on this machine; `pct_of_copy` reports
// each kernel against it. The measured-peak probe of the CPU-speed issue replaces it.
#include <benchmark/benchmark.h>

#include "kernels/elementwise.h"
#include "kernels/reduce.h"
#include "tessel.h"

using namespace tessel;
using kernels::EwOp;

namespace {


void report(benchmark::State& state, double bytes) {
  state.SetBytesProcessed(static_cast<int64_t>(bytes) * state.iterations());
  state.counters["GB/s"] = benchmark::Counter(bytes, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}

void BM_copy(benchmark::State& state) {
  int64_t n = state.range(0);
  Tensor a = randn({n}), b = empty({n});
  copy_into(b, a);  // untimed warm-up: faults the pages in
  for (auto _ : state) copy_into(b, a);
  report(state, 8.0 * n);
}

void BM_elementwise(benchmark::State& state, std::string version, EwOp op) {
  int64_t n = state.range(0);
  int arity = kernels::ew_arity(op);
  Tensor a = randn({n}), b = randn({n}), out = empty({n});
  kernels::ElementwiseParams p;
  p.op = op;
  p.out = out.buf();
  p.in[0] = a.buf();
  if (arity > 1) p.in[1] = b.buf();
  kernels::elementwise_family().run_version(version, p);  // untimed warm-up
  for (auto _ : state) kernels::elementwise_family().run_version(version, p);
  report(state, 4.0 * n * (arity + 1));
}

void BM_reduce_rows(benchmark::State& state, std::string version) {
  int64_t rows = state.range(0), cols = state.range(1);
  Tensor x = randn({rows, cols}), out = empty({rows});
  kernels::ReduceParams p;
  p.op = kernels::ReduceOp::sum;
  p.in = x.buf();
  p.reduced = 1;
  p.out = out.buf();
  kernels::reduce_family().run_version(version, p);  // untimed warm-up
  for (auto _ : state) kernels::reduce_family().run_version(version, p);
  report(state, 4.0 * rows * cols);
}

void BM_reduce_cols(benchmark::State& state, std::string version) {
  int64_t rows = state.range(0), cols = state.range(1);
  Tensor x = randn({rows, cols}), out = empty({cols});
  kernels::ReduceParams p;
  p.op = kernels::ReduceOp::sum;
  p.in = transpose(x, 0, 1).buf();  // kept dim (cols) first, reduced (rows) last
  p.reduced = 1;
  p.out = out.buf();
  kernels::reduce_family().run_version(version, p);  // untimed warm-up
  for (auto _ : state) kernels::reduce_family().run_version(version, p);
  report(state, 4.0 * rows * cols);
}

const int64_t kBig = 1 << 24;  // 64 MiB per f32 operand: beyond the last-level cache

}  // namespace

BENCHMARK(BM_copy)->Arg(kBig)->UseRealTime();

static const bool registered = [] {
  for (const std::string& v : kernels::elementwise_family().versions(DeviceType::cpu)) {
    for (EwOp op : {EwOp::add, EwOp::mul, EwOp::exp, EwOp::gelu_tanh, EwOp::relu}) {
      std::string name = std::string("BM_elementwise/") + kernels::ew_name(op) + "/" + v;
      benchmark::RegisterBenchmark(name.c_str(), BM_elementwise, v, op)->Arg(v == "ref" ? kBig / 8 : kBig)->UseRealTime();
    }
  }
  for (const std::string& v : kernels::reduce_family().versions(DeviceType::cpu)) {
    benchmark::RegisterBenchmark(("BM_reduce_rows/" + v).c_str(), BM_reduce_rows, v)->Args({4096, 4096})->UseRealTime();
    benchmark::RegisterBenchmark(("BM_reduce_cols/" + v).c_str(), BM_reduce_cols, v)->Args({4096, 4096})->UseRealTime();
  }
  return true;
}();
