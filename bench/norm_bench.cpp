// bench/norm_bench.cpp — every LayerNorm / RMSNorm version, forward and backward, at a
// transformer's [tokens, hidden] shape.
//
// f32 x: [R, C] with weight (and, for LayerNorm, bias) [C]; statistics mean/rstd [R] in f32.
// Bytes counted (4 per element, each operand read or written once):
//   layer_norm           read x, w, b;          write y, mean, rstd:  2RC + 2C + 2R
//   rms_norm             read x, w;             write y, rstd:        2RC +  C +  R
//   layer_norm_backward  read x, dy, w, mean, rstd; write dx, dw, db: 3RC + 3C + 2R
//   rms_norm_backward    read x, dy, w, rstd;   write dx, dw:         3RC + 2C +  R
// (times 4 bytes). The per-thread dw/db partials a kernel keeps are its own traffic, not counted.
#include <benchmark/benchmark.h>

#include "bench/report.h"
#include "kernels/norm.h"
#include "tessel.h"

namespace {

using namespace tessel;
using kernels::NormOp;

void bm_norm(benchmark::State& state, const std::string& version, NormOp op) {
  const int64_t R = state.range(0), C = state.range(1);
  const bool layer = kernels::norm_is_layer(op), backward = kernels::norm_is_backward(op);
  Tensor x = randn({R, C}), w = randn({C}), b = randn({C}), y = empty({R, C});
  Tensor mean = empty({R}), rstd = empty({R});
  Tensor dy = randn({R, C}), dx = empty({R, C}), dw = empty({C}), db = empty({C});
  kernels::NormParams p;
  p.op = layer ? NormOp::layer_norm : NormOp::rms_norm;
  p.rows = R;
  p.cols = C;
  p.eps = 1e-5;
  p.x = x.buf();
  p.weight = w.buf();
  if (layer) p.bias = b.buf();
  if (layer) p.mean = mean.buf();
  p.rstd = rstd.buf();
  p.y = y.buf();
  if (backward) {
    kernels::norm_family().run(DeviceType::cpu, p);  // the statistics backward reads
    p.op = op;
    p.bias = Buf{};
    p.y = Buf{};
    p.dy = dy.buf();
    p.dx = dx.buf();
    p.dweight = dw.buf();
    if (layer) p.dbias = db.buf();
  }
  kernels::norm_family().run_version(version, p);  // untimed warm-up
  const double secs = bench::timed_loop(state, [&] { kernels::norm_family().run_version(version, p); });
  const double rc = static_cast<double>(R) * C;
  double elems = 0;
  switch (op) {
    case NormOp::layer_norm: elems = 2 * rc + 2 * C + 2 * R; break;
    case NormOp::rms_norm: elems = 2 * rc + C + R; break;
    case NormOp::layer_norm_backward: elems = 3 * rc + 3 * C + 2 * R; break;
    case NormOp::rms_norm_backward: elems = 3 * rc + 2 * C + R; break;
  }
  bench::report_bytes(state, secs, 4.0 * elems);
}

const char* op_name(NormOp op) {
  switch (op) {
    case NormOp::layer_norm: return "layer_norm";
    case NormOp::rms_norm: return "rms_norm";
    case NormOp::layer_norm_backward: return "layer_norm_backward";
    case NormOp::rms_norm_backward: return "rms_norm_backward";
  }
  return "?";
}

const bool registered = [] {
  for (const std::string& v : kernels::norm_family().versions(DeviceType::cpu))
    for (NormOp op : {NormOp::layer_norm, NormOp::layer_norm_backward, NormOp::rms_norm, NormOp::rms_norm_backward})
      benchmark::RegisterBenchmark((std::string("norm/") + op_name(op) + "/" + v).c_str(), bm_norm, v, op)
          ->Args({v == "ref" ? 1024 : 4096, 1024})
          ->UseRealTime();
  return true;
}();

}  // namespace
