// Every registered attention version against "ref", forward and backward: head dims that break
// the vector widths (1, 7, 59, 111), lengths around the key tile (1 .. 300, T != S both ways),
// Dv != D, causal and not, a custom scale, q/k/v as permuted views of one [B, T, heads, hd]
// buffer and as arbitrary strided views, 1 and 2 threads (bitwise equal), outputs poisoned
// with NaN. f32 and f64 are judged by natural error: ref on f64 copies is the exact value, and
// the composed op (matmul, softmax, matmul and its autograd) in the same precision is the
// natural way to compute it; bf16 against ref rounded to bf16.
#include "kernels/attention.h"

#include <cmath>

#include "tests/helpers.h"

using namespace tessel;
using namespace tessel::testing;

namespace {

// A [B, H, rows, cols] operand in one of three layouts: 0 contiguous; 1 the permuted view of a
// [B, rows, H, cols] buffer (what MultiHeadAttention passes); 2 a strided view (step-2 slices
// of a transposed buffer).
Tensor operand(int64_t B, int64_t H, int64_t rows, int64_t cols, int layout, DType dt) {
  NoGradGuard ng;
  if (layout == 0) return randn({B, H, rows, cols}, {.dtype = dt});
  if (layout == 1) return permute(randn({B, rows, H, cols}, {.dtype = dt}), {0, 2, 1, 3}).detach();
  return noncontig_randn({B, H, rows, cols}, dt);
}

// An output of shape [B, H, rows, cols] in the given layout, poisoned with NaN.
Tensor poisoned(int64_t B, int64_t H, int64_t rows, int64_t cols, int layout, DType dt) {
  Tensor t = layout == 1 ? permute(empty({B, rows, H, cols}, {.dtype = dt}), {0, 2, 1, 3}).detach()
                         : empty({B, H, rows, cols}, {.dtype = dt});
  fill_raw(t, NAN);
  return t;
}

struct Outputs {
  Tensor o, lse, dq, dk, dv;
};

kernels::AttentionParams forward_params(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o,
                                        const Tensor& lse, bool causal, double scale) {
  kernels::AttentionParams p;
  p.causal = causal;
  p.scale = scale;
  p.q = q.buf();
  p.k = k.buf();
  p.v = v.buf();
  p.o = o.buf();
  p.lse = lse.buf();
  return p;
}

kernels::AttentionParams backward_params(const kernels::AttentionParams& p, const Tensor& dout, const Tensor& dq,
                                         const Tensor& dk, const Tensor& dv) {
  return kernels::attention_backward_params(p, dout.buf(), dq.buf(), dk.buf(), dv.buf());
}

// Runs `version` forward, then backward from `dout` with that forward's own o and lse.
Outputs run(const std::string& version, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& dout,
            bool causal, double scale, int layout) {
  NoGradGuard ng;
  const DType dt = q.dtype();
  const int64_t B = q.size(0), H = q.size(1), T = q.size(2), D = q.size(3), S = k.size(2), Dv = v.size(3);
  Outputs r;
  r.o = poisoned(B, H, T, Dv, layout, dt);
  r.lse = empty({B, H, T}, {.dtype = kernels::attention_lse_dtype(dt)});
  fill_raw(r.lse, NAN);
  const kernels::AttentionParams p = forward_params(q, k, v, r.o, r.lse, causal, scale);
  kernels::attention_family().run_version(version, p);
  r.dq = poisoned(B, H, T, D, layout, dt);
  r.dk = poisoned(B, H, S, D, layout, dt);
  r.dv = poisoned(B, H, S, Dv, layout, dt);
  kernels::attention_family().run_version(version, backward_params(p, dout, r.dq, r.dk, r.dv));
  return r;
}

Tensor f64(const Tensor& t) { return to_dtype(t, DType::f64); }

// The composed formula in q's precision, forward and backward (autograd of matmul, softmax,
// matmul): the natural error's reference.
Outputs composed(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& dout, bool causal, double scale) {
  Tensor ql = q.detach().requires_grad_(), kl = k.detach().requires_grad_(), vl = v.detach().requires_grad_();
  Outputs r;
  r.o = attention_composed(ql, kl, vl, {.causal = causal, .scale = scale});
  r.o.backward(dout);
  r.dq = ql.grad();
  r.dk = kl.grad();
  r.dv = vl.grad();
  return r;
}

// The magnitudes each output is computed from (natural_closeness's `condition`), in f64 from
// the exact P: o = P v and dv = P^T do are weighted sums, off by a few units of P |v| and
// P^T |do| (the forward's running rescales round at that scale, and v of mixed signs can cancel
// far below it). dS_ij = P_ij (dP_ij - delta_i) cancels to ~0 where P_i is nearly one-hot
// (exactly 0 for S = 1), while delta_i = do_i . o_i and dP_ij = do_i . v_j each carry an error
// of u times  A_ij = P_ij (|dP_ij| + sum_e |do_ie o_ie|),  so  dq: scale A |k|,  dk: scale A^T |q|.
struct Conditions {
  Tensor o, dq, dk, dv;
};
Conditions conditions(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& dout, const Tensor& o,
                      bool causal, double scale) {
  NoGradGuard ng;
  Tensor s = matmul(q * scale, transpose(k, -1, -2));
  Tensor P = causal ? causal_softmax(s) : softmax(s, -1);
  Tensor A = P * (abs(matmul(dout, transpose(v, -1, -2))) + sum(abs(dout * o), {-1}, true));
  return {matmul(P, abs(v)), matmul(A, abs(k)) * scale, matmul(transpose(A, -1, -2), abs(q)) * scale,
          matmul(transpose(P, -1, -2), abs(dout))};
}

// B = 0 picks the batch: 2 entries of 1 head (3 for layout 1), 4 times as many heads for short
// query lengths, whose natural error is estimated from few output rows otherwise.
void check_case(const std::vector<std::string>& versions, int64_t T, int64_t S, int64_t D, int64_t Dv, bool causal,
                double scale, int layout, DType dt, int64_t B = 0, int64_t H = 0) {
  if (B == 0) {
    B = 2;
    H = (layout == 1 ? 3 : 1) * (T < 8 ? 4 : 1);
  }
  Tensor q = operand(B, H, T, D, layout, dt), k = operand(B, H, S, D, (layout + 1) % 3, dt),
         v = operand(B, H, S, Dv, layout, dt), dout = operand(B, H, T, Dv, (layout + 2) % 3, dt);
  const Outputs exact = run("ref", f64(q), f64(k), f64(v), f64(dout), causal, scale, 0);
  const Conditions cond = conditions(f64(q), f64(k), f64(v), f64(dout), exact.o, causal, scale);
  const bool low = dt == DType::bf16 || dt == DType::f16;
  Outputs natural;
  if (!low) natural = composed(q, k, v, dout, causal, scale);
  // A query that sees no key: a NaN row forward, and NaN for every dk, dv (kernels/attention.h).
  const bool masked_rows = causal && T > S && S > 0;
  CHECK(std::isnan(exact.o.at({0, 0, 0, 0})) == masked_rows);
  for (const std::string& version : versions) {
    if (version == "ref") continue;
    ThreadsGuard tg;
    Outputs got[2];
    for (int threads : {1, 2}) {
      set_num_threads(threads);
      got[threads - 1] = run(version, q, k, v, dout, causal, scale, layout);
    }
    INFO("version ", version, " ", dtype_name(dt), " T ", T, " S ", S, " D ", D, " Dv ", Dv, " causal ", causal,
         " scale ", scale, " layout ", layout);
    const Outputs& g = got[0];
    // The same partition of the work whatever the thread count: bitwise equal.
    CHECK_EQUAL_TENSOR(got[1].o, g.o);
    CHECK_EQUAL_TENSOR(got[1].dq, g.dq);
    CHECK_EQUAL_TENSOR(got[1].dk, g.dk);
    CHECK_EQUAL_TENSOR(got[1].dv, g.dv);
    // lse: m + log l, rounded once to the stats dtype.
    const double lse_tol = dt == DType::f64 ? 1e-13 : 1e-5;
    auto cl = closeness(g.lse, exact.lse, lse_tol, lse_tol);
    CHECK_MESSAGE(cl.ok, "lse: ", cl.str());
    const char* names[] = {"o", "dq", "dk", "dv"};
    const Tensor* gs[] = {&g.o, &g.dq, &g.dk, &g.dv};
    const Tensor* es[] = {&exact.o, &exact.dq, &exact.dk, &exact.dv};
    const Tensor* ns[] = {&natural.o, &natural.dq, &natural.dk, &natural.dv};
    const Tensor conds[] = {cond.o, cond.dq, cond.dk, cond.dv};
    for (int i = 0; i < 4; ++i) {
      auto c = low ? closeness(f64(*gs[i]), f64(to_dtype(*es[i], dt)), 3e-2, 3e-2)
                   : natural_closeness(*gs[i], *ns[i], *es[i], conds[i]);
      CHECK_MESSAGE(c.ok, std::string(names[i]), ": ", c.str());
    }
  }
}

}  // namespace

TEST_SUITE("kernels") {
  TEST_CASE("attention: every version equals ref on odd shapes, layouts and masks, f32 and f64, 1 and 2 threads") {
    auto versions = kernels::attention_family().versions(DeviceType::cpu);
    REQUIRE(versions.size() >= 2);
    const int64_t lengths[] = {1, 17, 113, 128, 203, 300};
    const int64_t dims[] = {1, 7, 32, 59, 111};
    int n = 0;
    for (int64_t T : lengths)
      for (int64_t S : lengths) {
        // Each (T, S) pair gets one head dim and layout, rotating, so every dim and layout meets
        // short and long, square and T != S both ways; every third case has Dv != D.
        const int64_t D = dims[n % 5], Dv = n % 3 == 0 ? dims[(n + 2) % 5] : D;
        const int layout = n % 3;
        const double scale = n % 4 == 0 ? 0.37 : 1.0 / std::sqrt(static_cast<double>(D));
        for (bool causal : {false, true}) check_case(versions, T, S, D, Dv, causal, scale, layout, DType::f32);
        ++n;
      }
    for (auto [T, S] : {std::pair<int64_t, int64_t>{113, 203}, {203, 113}, {17, 17}, {1, 300}})
      for (bool causal : {false, true}) check_case(versions, T, S, 59, 7, causal, 0.2, 2, DType::f64);
    // Enough batch entries that the cpu backward gives each one task (its dq written directly,
    // no partial slices to add), T != S both ways.
    for (auto [T, S] : {std::pair<int64_t, int64_t>{113, 203}, {203, 113}})
      for (bool causal : {false, true})
        check_case(versions, T, S, 32, 32, causal, 1 / std::sqrt(32.0), 1, DType::f32, 4, 5);
  }

  TEST_CASE(
      "attention: the training steps' head dims, whose f32 rows the cpu kernels read in place, at short lengths") {
    // D = 32 and 64 in f32 fill whole vectors: contiguous and permuted q, k, v, do are product
    // operands without a copy (kernels/cpu/attention.cpp, rows_operand); strided ones (layout 2)
    // are packed. Lengths around one vector of queries (15, 16, 17, 33), around the cpu
    // backward's query block and the forward's key tile (63, 64, 65, 129: the causal diagonal
    // blocks skip whole vectors of hidden queries) and T = 1; B x H = 15 entries; S != T one
    // way; Dv != D.
    auto versions = kernels::attention_family().versions(DeviceType::cpu);
    for (int64_t T : {1, 15, 16, 17, 33, 63, 64, 65, 129})
      for (int layout : {0, 1, 2})
        for (bool causal : {false, true}) {
          check_case(versions, T, T, 32, 32, causal, 1 / std::sqrt(32.0), layout, DType::f32, 3, 5);
          check_case(versions, T, T + 16, 64, 32, causal, 0.125, layout, DType::f32, 3, 5);
        }
  }

  TEST_CASE("attention: bf16 and f16 storage, every version, against ref rounded") {
    auto versions = kernels::attention_family().versions(DeviceType::cpu);
    for (DType dt : {DType::bf16, DType::f16})
      for (bool causal : {false, true})
        check_case(versions, 113, 128, 32, 32, causal, 0.0 + 1 / std::sqrt(32.0), 1, dt);
  }

  TEST_CASE("attention: causal with T > S gives NaN rows (no visible key) exactly like the composed op") {
    // T = 7 queries, S = 4 keys: query i sees keys j <= i - 3, so rows 0..2 see nothing.
    const int64_t T = 7, S = 4, D = 5;
    Tensor q = randn({1, 1, T, D}), k = randn({1, 1, S, D}), v = randn({1, 1, S, D}), dout = randn({1, 1, T, D});
    Outputs want = composed(q, k, v, dout, true, 0.5);
    for (const std::string& version : kernels::attention_family().versions(DeviceType::cpu)) {
      INFO("version ", version);
      Outputs got = run(version, q, k, v, dout, true, 0.5, 0);
      for (int64_t i = 0; i < T; ++i) {
        const bool none = i < T - S;
        CHECK(std::isnan(want.o.at({0, 0, i, 0})) == none);  // the composed op's convention
        CHECK(std::isnan(got.lse.at({0, 0, i})) == none);
        for (int64_t d = 0; d < D; ++d) {
          CHECK(std::isnan(got.o.at({0, 0, i, d})) == none);
          CHECK(std::isnan(got.dq.at({0, 0, i, d})) == std::isnan(want.dq.at({0, 0, i, d})));
        }
      }
      // P's NaN rows reach every key's gradient, in both.
      for (int64_t j = 0; j < S; ++j) {
        CHECK(std::isnan(got.dk.at({0, 0, j, 0})));
        CHECK(std::isnan(want.dk.at({0, 0, j, 0})));
        CHECK(std::isnan(got.dv.at({0, 0, j, 0})));
        CHECK(std::isnan(want.dv.at({0, 0, j, 0})));
      }
      // The rows that see keys agree.
      CHECK_CLOSE(narrow(got.o, 2, T - S, S), narrow(want.o, 2, T - S, S), 1e-5, 1e-6);
      CHECK_CLOSE(narrow(got.dq, 2, T - S, S), narrow(want.dq, 2, T - S, S), 1e-4, 1e-5);
    }
  }

  TEST_CASE("attention: S = 0 gives o = 0 and lse = -inf; T = 0 and an empty batch write nothing") {
    for (const std::string& version : kernels::attention_family().versions(DeviceType::cpu)) {
      INFO("version ", version);
      Tensor q = randn({2, 3, 4}), k = randn({2, 0, 4}), v = randn({2, 0, 5}), dout = randn({2, 3, 5});
      NoGradGuard ng;
      Tensor o = full({2, 3, 5}, NAN), lse = full({2, 3}, NAN), dq = full({2, 3, 4}, NAN);
      Tensor dk = empty({2, 0, 4}), dv = empty({2, 0, 5});
      const kernels::AttentionParams p = forward_params(q, k, v, o, lse, false, 0.5);
      kernels::attention_family().run_version(version, p);
      CHECK_EQUAL_TENSOR(o, zeros({2, 3, 5}));
      CHECK_EQUAL_TENSOR(lse, full({2, 3}, -INFINITY));
      kernels::attention_family().run_version(version, backward_params(p, dout, dq, dk, dv));
      CHECK_EQUAL_TENSOR(dq, zeros({2, 3, 4}));
      // T = 0: nothing to write forward; backward gives dk = dv = 0.
      Tensor q0 = randn({2, 0, 4}), k1 = randn({2, 6, 4}), v1 = randn({2, 6, 5});
      Tensor o0 = empty({2, 0, 5}), l0 = empty({2, 0}), dk1 = full({2, 6, 4}, NAN), dv1 = full({2, 6, 5}, NAN);
      const kernels::AttentionParams z = forward_params(q0, k1, v1, o0, l0, true, 0.5);
      kernels::attention_family().run_version(version, z);
      kernels::attention_family().run_version(version, backward_params(z, o0, q0, dk1, dv1));
      CHECK_EQUAL_TENSOR(dk1, zeros({2, 6, 4}));
      CHECK_EQUAL_TENSOR(dv1, zeros({2, 6, 5}));
    }
  }

  TEST_CASE("attention: large score ranges keep the online softmax exact (the running max grows tile by tile)") {
    // One feature and q = 1, so the scores are the keys themselves, exactly: entry 0 ramps up
    // by 0.5 per key, so every key tile (32 or 64 keys) raises the running max and the
    // accumulator is rescaled by e^-16 or less tile after tile; in entry 1 one key dominates
    // the rest by e^30.
    const int64_t T = 5, S = 300, D = 1;
    Tensor q = full({2, T, D}, 1.0), k = empty({2, S, D}), v = randn({2, S, D}), dout = randn({2, T, D});
    for (int64_t j = 0; j < S; ++j) {
      k.set_at({0, j, 0}, 0.5 * static_cast<double>(j) - 100);
      k.set_at({1, j, 0}, j == 77 ? 30.0 : -0.01 * static_cast<double>(j));
    }
    Tensor q4 = unsqueeze(q, 1), k4 = unsqueeze(k, 1), v4 = unsqueeze(v, 1), d4 = unsqueeze(dout, 1);
    for (bool causal : {false, true}) {
      const Outputs want = run("ref", f64(q4), f64(k4), f64(v4), f64(d4), causal, 1.0, 0);
      for (const std::string& version : kernels::attention_family().versions(DeviceType::cpu)) {
        INFO("version ", version, " causal ", causal);
        Outputs got = run(version, q4, k4, v4, d4, causal, 1.0, 0);
        CHECK_CLOSE(got.o, want.o, 2e-5, 2e-6);
        CHECK_CLOSE(got.lse, want.lse, 1e-6, 1e-6);
        CHECK_CLOSE(got.dv, want.dv, 2e-5, 2e-6);
      }
    }
  }
}
