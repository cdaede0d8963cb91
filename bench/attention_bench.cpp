// bench/attention_bench.cpp — every attention version, forward and forward + backward, at the
// shapes of the models' training steps, next to the composed op it replaced.
//
// f32 q, k, v: [B, heads, T, hd] views of [B, T, heads, hd] buffers (as MultiHeadAttention
// passes them), T = S, D = Dv = hd. FLOPs counted (an FMA is 2; the exponentials not at all):
//   forward   4 B H T S D   (q k^T and P v), half of it when causal (the tiles above the
//             diagonal are never computed)
//   backward  2.5x the forward: q k^T again, do v^T, P^T do, dS^T q, dS k
// so fwdbwd is 3.5x the forward. Shapes: the ViT of `tessel train` (b128 h4 t17 d32), its GPT
// (b32 h4 t128 d32, causal), and a longer causal sequence (b4 h8 t512 d64).
// Entries per shape: attention/<fwd|fwdbwd>/<shape>/<version> calls the kernel version alone
// (ref on one batch entry: it is the oracle, not a contender); .../op_fused and
// .../op_composed time the autograd op as a model calls it, fused, and composed from matmul,
// causal_softmax and matmul (what attention() was before the fused family), allocations and
// the tape included.
#include <benchmark/benchmark.h>

#include "bench/report.h"
#include "kernels/attention.h"
#include "tessel.h"

namespace {

using namespace tessel;

struct AttnShape {
  const char* name;
  int64_t B, H, T, D;
  bool causal;
};

const AttnShape kShapes[] = {
    {"vit_b128_h4_t17_d32", 128, 4, 17, 32, false},
    {"gpt_b32_h4_t128_d32", 32, 4, 128, 32, true},
    {"b4_h8_t512_d64", 4, 8, 512, 64, true},
};

Tensor heads(const AttnShape& s, int64_t B) { return permute(randn({B, s.T, s.H, s.D}), {0, 2, 1, 3}); }

double forward_flops(const AttnShape& s, int64_t B) { return 4.0 * B * s.H * s.T * s.T * s.D * (s.causal ? 0.5 : 1.0); }

void bm_kernel(benchmark::State& state, const std::string& version, AttnShape s, bool backward) {
  NoGradGuard ng;
  const int64_t B = version == "ref" ? 1 : s.B;
  Tensor q = heads(s, B), k = heads(s, B), v = heads(s, B), dout = heads(s, B);
  Tensor o = heads(s, B), lse = empty({B, s.H, s.T}), dq = heads(s, B), dk = heads(s, B), dv = heads(s, B);
  kernels::AttentionParams f;
  f.causal = s.causal;
  f.scale = 1.0 / std::sqrt(static_cast<double>(s.D));
  f.q = q.buf();
  f.k = k.buf();
  f.v = v.buf();
  f.o = o.buf();
  f.lse = lse.buf();
  const kernels::AttentionParams b = kernels::attention_backward_params(f, dout.buf(), dq.buf(), dk.buf(), dv.buf());
  auto step = [&] {
    kernels::attention_family().run_version(version, f);
    if (backward) kernels::attention_family().run_version(version, b);
  };
  step();  // untimed warm-up
  const double secs = bench::timed_loop(state, step);
  bench::report_flops(state, secs, forward_flops(s, B) * (backward ? 3.5 : 1.0));
}

void bm_op(benchmark::State& state, bool fused, AttnShape s, bool backward) {
  Tensor q = heads(s, s.B), k = heads(s, s.B), v = heads(s, s.B), dout = heads(s, s.B);
  if (backward)
    for (Tensor* t : {&q, &k, &v}) *t = t->detach().requires_grad_();
  const AttentionOptions opt{.causal = s.causal};
  auto step = [&] {
    Tensor o = fused ? attention(q, k, v, opt) : attention_composed(q, k, v, opt);
    if (backward) {
      for (Tensor t : {q, k, v}) t.set_grad(Tensor());
      o.backward(dout);
    }
  };
  step();
  const double secs = bench::timed_loop(state, step);
  bench::report_flops(state, secs, forward_flops(s, s.B) * (backward ? 3.5 : 1.0));
}

const bool registered = [] {
  for (const AttnShape& s : kShapes)
    for (bool backward : {false, true}) {
      const std::string prefix = std::string("attention/") + (backward ? "fwdbwd/" : "fwd/") + s.name + "/";
      for (const std::string& v : kernels::attention_family().versions(DeviceType::cpu))
        benchmark::RegisterBenchmark((prefix + v).c_str(), bm_kernel, v, s, backward)->UseRealTime();
      for (bool fused : {true, false})
        benchmark::RegisterBenchmark((prefix + (fused ? "op_fused" : "op_composed")).c_str(), bm_op, fused, s, backward)
            ->UseRealTime();
    }
  return true;
}();

}  // namespace
