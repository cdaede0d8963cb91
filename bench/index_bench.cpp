// bench/index_bench.cpp — every index version: gather, index_select and embedding, forward
// (IndexOp::gather) and backward (IndexOp::scatter_add, as the autograd ops run them).
//
// f32 values, i64 indices drawn uniformly at random:
//   gather        x [R, 1024], index [R, 256] along dim 1 (picking 256 entries per row, as a
//                 top-k does); backward adds dy [R, 256] into dx [R, 1024]
//   index_select  x [R, 4096], 1024 random columns (dim 1, the strided case) -> [R, 1024];
//                 backward is index_add of dy [R, 1024] into dx [R, 4096]
//   embedding     weight [32000, 1024], R token ids -> [R, 1024] (whole rows: dim 0);
//                 backward is index_add of dy [R, 1024] into dweight
// Bytes counted, with n = numel(dense side), k = number of index values stored:
//   forward   read k indices (8 B), read n indexed values, write n:   8k + 8n
//   backward  read k indices, read n of dy, read and write n of dx:   8k + 12n
// A random index into a row touches whole cache lines while using one element of each, so
// for gather and index_select the hardware moves more than this count: their pct_peak is the
// useful fraction. dx is not re-zeroed between iterations (the adds just accumulate); zeroing
// is a separate op in autograd.
#include <benchmark/benchmark.h>

#include "bench/report.h"
#include "kernels/index.h"
#include "tessel.h"

namespace {

using namespace tessel;
using kernels::IndexOp;

enum class Case { gather, index_select, embedding };

void bm_index(benchmark::State& state, const std::string& version, Case c, bool backward) {
  const int64_t R = state.range(0);
  Tensor indexed, dense, index;
  kernels::IndexParams p;
  int64_t k = 0;
  switch (c) {
    case Case::gather:
      indexed = randn({R, 1024});
      dense = randn({R, 256});
      index = randint(0, 1024, {R, 256});
      p.dim = 1;
      p.index = index.buf();
      k = R * 256;
      break;
    case Case::index_select:
      indexed = randn({R, 4096});
      dense = randn({R, 1024});
      index = randint(0, 4096, {1024});
      p.dim = 1;
      p.index = kernels::broadcast_index(index.buf(), {R, 1024}, 1);
      k = 1024;
      break;
    case Case::embedding:
      indexed = randn({32000, 1024});
      dense = randn({R, 1024});
      index = randint(0, 32000, {R});
      p.dim = 0;
      p.index = kernels::broadcast_index(index.buf(), {R, 1024}, 0);
      k = R;
      break;
  }
  p.op = backward ? IndexOp::scatter_add : IndexOp::gather;
  p.indexed = indexed.buf();
  p.dense = dense.buf();
  kernels::index_family().run_version(version, p);  // untimed warm-up
  const double secs = bench::timed_loop(state, [&] { kernels::index_family().run_version(version, p); });
  const double n = static_cast<double>(dense.numel());
  bench::report_bytes(state, secs, 8.0 * k + (backward ? 12.0 : 8.0) * n);
}

const bool registered = [] {
  const std::pair<Case, const char*> cases[] = {
      {Case::gather, "gather"}, {Case::index_select, "index_select"}, {Case::embedding, "embedding"}};
  for (const std::string& v : kernels::index_family().versions(DeviceType::cpu))
    for (auto [c, name] : cases)
      for (bool backward : {false, true})
        benchmark::RegisterBenchmark((std::string("index/") + name + (backward ? "_backward/" : "/") + v).c_str(),
                                     bm_index, v, c, backward)
            ->Arg(v == "ref" ? 512 : 4096)
            ->UseRealTime();
  return true;
}();

}  // namespace
