// bench/loss_bench.cpp — every cross-entropy / NLL version, forward and backward, at language-
// model shapes: N tokens by C classes (a 1024-wide head, and GPT-2's padded 50304 vocabulary).
//
// f32 input [N, C], i64 targets [N]; loss, lse and grad_row [N] in f32.
// Bytes counted (each operand read or written once):
//   cross_entropy           read x, target; write loss, lse:             4NC + 16N
//   cross_entropy_backward  read x, target, lse, grad_row; write dx:     8NC + 16N
//   nll                     read target, x[n, t_n]; write loss:                16N
//   nll_backward            read target, grad_row; write dx:             4NC + 12N
// nll forward touches one element per row, so it is bound by N scattered loads, not bandwidth:
// its pct_peak only says how far it is from a stream. ref runs on fewer rows.
#include <benchmark/benchmark.h>

#include "bench/report.h"
#include "kernels/loss.h"
#include "tessel.h"

namespace {

using namespace tessel;
using kernels::LossOp;

void bm_loss(benchmark::State& state, const std::string& version, LossOp op) {
  const int64_t N = state.range(0), C = state.range(1);
  const bool backward = kernels::loss_is_backward(op);
  const bool ce = op == LossOp::cross_entropy || op == LossOp::cross_entropy_backward;
  Tensor x = randn({N, C}), target = randint(0, C, {N}), loss = empty({N}), lse = empty({N});
  Tensor grad_row = full({N}, 1.0 / static_cast<double>(N)), dx = backward ? empty({N, C}) : Tensor();
  kernels::LossParams p;
  p.op = ce ? LossOp::cross_entropy : LossOp::nll;
  p.input = x.buf();
  p.target = target.buf();
  p.loss = loss.buf();
  if (ce) p.lse = lse.buf();
  if (backward) {
    kernels::loss_family().run(DeviceType::cpu, p);  // the lse backward reads
    p.op = op;
    p.loss = Buf{};
    p.grad_row = grad_row.buf();
    p.dinput = dx.buf();
  }
  kernels::loss_family().run_version(version, p);  // untimed warm-up
  const double secs = bench::timed_loop(state, [&] { kernels::loss_family().run_version(version, p); });
  const double nc = static_cast<double>(N) * C;
  double bytes = 0;
  switch (op) {
    case LossOp::cross_entropy: bytes = 4 * nc + 16.0 * N; break;
    case LossOp::cross_entropy_backward: bytes = 8 * nc + 16.0 * N; break;
    case LossOp::nll: bytes = 16.0 * N; break;
    case LossOp::nll_backward: bytes = 4 * nc + 12.0 * N; break;
  }
  bench::report_bytes(state, secs, bytes);
}

const char* op_name(LossOp op) {
  switch (op) {
    case LossOp::cross_entropy: return "cross_entropy";
    case LossOp::cross_entropy_backward: return "cross_entropy_backward";
    case LossOp::nll: return "nll";
    case LossOp::nll_backward: return "nll_backward";
  }
  return "?";
}

const bool registered = [] {
  for (const std::string& v : kernels::loss_family().versions(DeviceType::cpu)) {
    const bool ref = v == "ref";
    for (LossOp op : {LossOp::cross_entropy, LossOp::cross_entropy_backward, LossOp::nll, LossOp::nll_backward}) {
      auto* bm = benchmark::RegisterBenchmark((std::string("loss/") + op_name(op) + "/" + v).c_str(), bm_loss, v, op);
      bm->Args({ref ? 512 : 4096, 1024})->UseRealTime();
      if (op == LossOp::cross_entropy || op == LossOp::cross_entropy_backward) bm->Args({ref ? 32 : 1024, 50304});
    }
  }
  return true;
}();

}  // namespace
