// attention (the fused CPU path): f64 gradchecks causal and not with T != S, equality with the
// composed formula in f32 forward and backward within natural error, double backward through
// create_graph, batch broadcasting, the output's memory order, and misuse errors.
#include <cmath>

#include "tests/helpers.h"

using namespace tessel;
using namespace tessel::testing;

namespace {

// q, k, v as MultiHeadAttention makes them: [B, heads, T, hd] views of [B, T, heads, hd] buffers.
Tensor heads_view(int64_t B, int64_t H, int64_t T, int64_t hd, DType dt, bool grad) {
  Tensor base = randn({B, T, H, hd}, {.dtype = dt});
  if (grad) base.requires_grad_();
  return permute(base, {0, 2, 1, 3});
}

}  // namespace

TEST_SUITE("autograd") {
  TEST_CASE("attention: gradcheck in f64, causal and not, T != S both ways, Dv != D") {
    struct Case {
      int64_t T, S, D, Dv;
      bool causal;
      double scale;
    };
    for (Case c : {Case{3, 5, 4, 4, false, 0}, Case{5, 3, 4, 2, false, 0.7}, Case{3, 5, 4, 3, true, 0},
                   Case{4, 4, 3, 5, true, 0}, Case{1, 6, 2, 2, true, 0.3}}) {
      INFO("T ", c.T, " S ", c.S, " D ", c.D, " Dv ", c.Dv, " causal ", c.causal);
      Tensor q = leaf64({2, c.T, c.D}), k = leaf64({2, c.S, c.D}), v = leaf64({2, c.S, c.Dv});
      CHECK_GRADCHECK(
          [c](const TensorList& x) { return attention(x[0], x[1], x[2], {.causal = c.causal, .scale = c.scale}); },
          {q, k, v});
    }
    // Non-contiguous inputs: permuted head views, as in MultiHeadAttention.
    Tensor bq = leaf64({2, 5, 3, 4}), bk = leaf64({2, 6, 3, 4}), bv = leaf64({2, 6, 3, 4});
    CHECK_GRADCHECK(
        [](const TensorList& x) {
          return attention(permute(x[0], {0, 2, 1, 3}), permute(x[1], {0, 2, 1, 3}), permute(x[2], {0, 2, 1, 3}),
                           {.causal = true});
        },
        {bq, bk, bv});
  }

  TEST_CASE("attention: the fused op equals the composed formula in f32, forward and backward, within natural error") {
    struct Case {
      int64_t B, H, T, S, D, Dv;
      bool causal;
    };
    for (Case c :
         {Case{4, 4, 17, 17, 32, 32, false}, Case{2, 4, 128, 128, 32, 32, true}, Case{2, 2, 113, 203, 59, 7, true},
          Case{2, 2, 203, 113, 7, 59, false}, Case{1, 2, 300, 300, 64, 64, true}}) {
      INFO("B ", c.B, " H ", c.H, " T ", c.T, " S ", c.S, " D ", c.D, " Dv ", c.Dv, " causal ", c.causal);
      Tensor q = heads_view(c.B, c.H, c.T, c.D, DType::f32, false),
             k = heads_view(c.B, c.H, c.S, c.D, DType::f32, false),
             v = heads_view(c.B, c.H, c.S, c.Dv, DType::f32, false);
      Tensor dout = randn({c.B, c.H, c.T, c.Dv});
      auto grads = [&](bool fused, DType dt) {
        Tensor ql = to_dtype(q, dt).detach().requires_grad_(), kl = to_dtype(k, dt).detach().requires_grad_(),
               vl = to_dtype(v, dt).detach().requires_grad_();
        AttentionOptions o{.causal = c.causal};
        Tensor out = fused ? attention(ql, kl, vl, o) : attention_composed(ql, kl, vl, o);
        out.backward(to_dtype(dout, dt));
        return TensorList{out.detach(), ql.grad(), kl.grad(), vl.grad()};
      };
      TensorList got = grads(true, DType::f32), natural = grads(false, DType::f32), exact = grads(false, DType::f64);
      const char* names[] = {"o", "dq", "dk", "dv"};
      for (int i = 0; i < 4; ++i) {
        auto cl = natural_closeness(got[i], natural[i], exact[i]);
        CHECK_MESSAGE(cl.ok, names[i], ": ", cl.str());
      }
    }
  }

  TEST_CASE("attention: double backward through create_graph (the backward composes differentiable ops)") {
    for (bool causal : {false, true}) {
      INFO("causal ", causal);
      Tensor q = leaf64({2, 3, 4}), k = leaf64({2, 5, 4}), v = leaf64({2, 5, 3});
      Tensor w = randn({2, 3, 3}, {.dtype = DType::f64});
      // (q, k, v) -> d/dq sum(w * attention(q, k, v)), recorded so that gradcheck differentiates it.
      auto first_grad = [w, causal](const TensorList& in) {
        EnableGradGuard eg;  // gradcheck's numeric passes run without grad mode
        TensorList x;
        for (const Tensor& t : in) x.push_back(t.requires_grad() ? t : t.detach().requires_grad_());
        Tensor y = attention(x[0], x[1], x[2], {.causal = causal});
        TensorList g = grad({y}, {x[0], x[1], x[2]}, {w}, true, true);
        return g[0] * 2.0 + sum(g[1]) + sum(g[2]);  // every gradient in one output
      };
      CHECK_GRADCHECK(first_grad, {q, k, v});
      // And the create_graph gradient equals the fused one.
      Tensor y = attention(q, k, v, {.causal = causal});
      TensorList fused = grad({y}, {q, k, v}, {w}, true, false);
      TensorList recorded = grad({y}, {q, k, v}, {w}, false, true);
      for (int i = 0; i < 3; ++i) CHECK_CLOSE(recorded[i], fused[i], 1e-12, 1e-13);
    }
  }

  TEST_CASE("attention: the output is in q's memory order, so merging the heads back is a view") {
    const int64_t B = 3, H = 4, T = 9, hd = 8;
    Tensor q = heads_view(B, H, T, hd, DType::f32, false), k = heads_view(B, H, T, hd, DType::f32, false),
           v = heads_view(B, H, T, hd, DType::f32, false);
    Tensor o = attention(q, k, v, {.causal = true});
    CHECK(o.sizes() == Shape{B, H, T, hd});
    Tensor merged = reshape(permute(o, {0, 2, 1, 3}), {B, T, H * hd});
    CHECK(merged.storage() == o.storage());  // no copy
    CHECK(merged.is_contiguous());
    CHECK_CLOSE(o, attention_composed(q, k, v, {.causal = true}), 1e-5, 1e-6);
    // A contiguous q gives a contiguous o; the gradients follow their inputs' orders.
    Tensor qc = randn({2, 3, 5, 4}).requires_grad_(), kc = randn({2, 3, 6, 4}), vc = randn({2, 3, 6, 7});
    CHECK(attention(qc, kc, vc).is_contiguous());
    Tensor base = randn({B, T, H, hd}).requires_grad_();
    Tensor qv = permute(base, {0, 2, 1, 3});
    attention(qv, k, v).backward(randn({B, H, T, hd}));
    CHECK(base.grad().is_contiguous());
  }

  TEST_CASE("attention: batch dims broadcast as in the composed formula") {
    Tensor q = leaf64({2, 3, 4, 5}), k = leaf64({1, 3, 6, 5}), v = leaf64({2, 1, 6, 3});
    auto f = [](const TensorList& x) { return attention(x[0], x[1], x[2], {.causal = true}); };
    CHECK_CLOSE(f({q, k, v}), attention_composed(q, k, v, {.causal = true}), 1e-12, 1e-13);
    CHECK_GRADCHECK(f, {q, k, v});
  }

  TEST_CASE("attention: bf16 is close to the f64 formula; mixed dtypes are the composed path's error") {
    Tensor q = randn({2, 2, 33, 16}), k = randn({2, 2, 40, 16}), v = randn({2, 2, 40, 16});
    Tensor got =
        attention(to_dtype(q, DType::bf16), to_dtype(k, DType::bf16), to_dtype(v, DType::bf16), {.causal = true});
    CHECK(got.dtype() == DType::bf16);
    Tensor want = attention_composed(to_dtype(to_dtype(q, DType::bf16), DType::f64),
                                     to_dtype(to_dtype(k, DType::bf16), DType::f64),
                                     to_dtype(to_dtype(v, DType::bf16), DType::f64), {.causal = true});
    CHECK_CLOSE(to_dtype(got, DType::f64), want, 2e-2, 2e-2);
    CHECK_THROWS_AS(attention(q, to_dtype(k, DType::f64), v), Error);
  }

  TEST_CASE("attention: misuse names the op and the shapes") {
    Tensor q = randn({2, 3, 4}), k = randn({2, 5, 4}), v = randn({2, 5, 6});
    CHECK_THROWS_WITH_AS(attention(q, randn({2, 5, 3}), v), doctest::Contains("q and k head dims differ"), Error);
    CHECK_THROWS_WITH_AS(attention(q, k, randn({2, 4, 6})), doctest::Contains("k and v lengths differ"), Error);
    CHECK_THROWS_WITH_AS(attention(randn({4}), k, v), doctest::Contains("same rank"), Error);
    CHECK_THROWS_WITH_AS(attention(randn({3, 3, 4}), k, v), doctest::Contains("attention"), Error);
    CHECK_THROWS_AS(attention(q, k, Tensor()), Error);
  }
}
