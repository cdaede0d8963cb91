// bench/softmax_bench.cpp — every softmax version, forward and backward, on attention-sized rows.
//
// [R, C] f32 rows, softmax over the contiguous last dim (the layout of attention scores).
// Bytes counted (4 per f32 element, each operand once — the minimum any algorithm must move):
//   softmax, log_softmax                    read x, write y:       2 R C * 4
//   softmax_backward, log_softmax_backward  read y and dy, write dx: 3 R C * 4
// A kernel that makes several passes over a row that does not stay in cache moves more; that
// shows as a lower pct_peak. ref runs on fewer rows: it is the oracle, not a contender.
#include <benchmark/benchmark.h>

#include "bench/report.h"
#include "kernels/softmax.h"
#include "tessel.h"

namespace {

using namespace tessel;
using kernels::SoftmaxOp;

void bm_softmax(benchmark::State& state, const std::string& version, SoftmaxOp op) {
  const int64_t rows = state.range(0), cols = state.range(1);
  const bool backward = kernels::softmax_is_backward(op);
  Tensor x = randn({rows, cols}), grad = randn({rows, cols}), out = empty({rows, cols});
  kernels::SoftmaxParams p;
  p.op = op;
  p.in = x.buf();
  p.out = out.buf();
  if (backward) {
    // Backward reads the forward's output, so feed it a real softmax / log-softmax.
    Tensor y = empty({rows, cols});
    kernels::SoftmaxParams f;
    f.op = op == SoftmaxOp::softmax_backward ? SoftmaxOp::softmax : SoftmaxOp::log_softmax;
    f.in = x.buf();
    f.out = y.buf();
    kernels::softmax_family().run(DeviceType::cpu, f);
    x = y;
    p.in = x.buf();
    p.grad = grad.buf();
  }
  kernels::softmax_family().run_version(version, p);  // untimed warm-up
  const double secs = bench::timed_loop(state, [&] { kernels::softmax_family().run_version(version, p); });
  bench::report_bytes(state, secs, 4.0 * rows * cols * (backward ? 3 : 2));
}

const char* op_name(SoftmaxOp op) {
  switch (op) {
    case SoftmaxOp::softmax: return "softmax";
    case SoftmaxOp::log_softmax: return "log_softmax";
    case SoftmaxOp::softmax_backward: return "softmax_backward";
    case SoftmaxOp::log_softmax_backward: return "log_softmax_backward";
  }
  return "?";
}

const bool registered = [] {
  for (const std::string& v : kernels::softmax_family().versions(DeviceType::cpu))
    for (SoftmaxOp op :
         {SoftmaxOp::softmax, SoftmaxOp::softmax_backward, SoftmaxOp::log_softmax, SoftmaxOp::log_softmax_backward})
      benchmark::RegisterBenchmark((std::string("softmax/") + op_name(op) + "/" + v).c_str(), bm_softmax, v, op)
          ->Args({v == "ref" ? 512 : 4096, 4096})
          ->UseRealTime();
  return true;
}();

}  // namespace
