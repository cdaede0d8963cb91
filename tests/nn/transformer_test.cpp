// nn: attention semantics, the transformer block, GPT and ViT shapes, gradients and learning.
#include "nn/transformer.h"

#include <cmath>

#include "optim/optimizer.h"
#include "tests/helpers.h"

using namespace tessel;
using namespace tessel::testing;

TEST_SUITE("nn") {
  TEST_CASE("attention against a hand-written softmax(q k^T / sqrt(d)) v, causal and not") {
    manual_seed(1);
    Tensor q = randn({2, 3, 5, 4}, {.dtype = DType::f64}), k = randn({2, 3, 7, 4}, {.dtype = DType::f64}),
           v = randn({2, 3, 7, 6}, {.dtype = DType::f64});
    Tensor out = attention(q, k, v);
    CHECK(out.sizes() == Shape{2, 3, 5, 6});
    // element [1, 2, 4, :] by hand
    std::vector<double> w(7);
    double mx = -1e300, z = 0;
    for (int j = 0; j < 7; ++j) {
      double s = 0;
      for (int d = 0; d < 4; ++d) s += q.at({1, 2, 4, d}) * k.at({1, 2, j, d});
      w[j] = s / 2.0;
      mx = std::max(mx, w[j]);
    }
    for (double& x : w) z += (x = std::exp(x - mx));
    for (int e = 0; e < 6; ++e) {
      double o = 0;
      for (int j = 0; j < 7; ++j) o += w[j] / z * v.at({1, 2, j, e});
      CHECK(out.at({1, 2, 4, e}) == doctest::Approx(o).epsilon(1e-12));
    }
    // causal with T < S: query i sees keys j <= i + (S - T)
    Tensor c = attention(q, k, v, {.causal = true});
    Tensor first = attention(slice(q, 2, 0, 1), slice(k, 2, 0, 3), slice(v, 2, 0, 3));
    CHECK_CLOSE(slice(c, 2, 0, 1), first, 1e-12, 1e-12);
    CHECK_GRADCHECK([](const TensorList& x) { return attention(x[0], x[1], x[2], {.causal = true}); },
                    {leaf64({1, 2, 3, 4}), leaf64({1, 2, 5, 4}), leaf64({1, 2, 5, 3})});
    CHECK_THROWS_WITH_AS(attention(q, k, slice(v, 2, 0, 6)), doctest::Contains("k and v lengths differ"), Error);
  }

  TEST_CASE("rotary embedding rotates pairs and keeps norms; relative positions in dot products") {
    manual_seed(2);
    Tensor x = randn({1, 6, 8}, {.dtype = DType::f64});
    Tensor r = rotary_embedding(x);
    CHECK_CLOSE(sum(r * r, {-1}), sum(x * x, {-1}), 1e-12, 1e-12);
    CHECK_CLOSE(select(r, 1, 0), select(x, 1, 0), 0, 0);  // position 0 is not rotated
    // The same vector at positions (t, t + 2) gives the same dot product for every t.
    Tensor same = expand(slice(x, 1, 0, 1), {1, 6, 8});
    Tensor rs = rotary_embedding(same);
    double d0 = sum(select(rs, 1, 0) * select(rs, 1, 2)).item(), d3 = sum(select(rs, 1, 3) * select(rs, 1, 5)).item();
    CHECK(d0 == doctest::Approx(d3).epsilon(1e-10));
    CHECK_GRADCHECK([](const TensorList& v) { return rotary_embedding(v[0]); }, {leaf64({2, 5, 6})});
  }

  TEST_CASE("transformer block: pre-norm and DeepNorm forms, gradients reach every parameter") {
    manual_seed(3);
    for (double alpha : {0.0, 1.5}) {
      nn::TransformerBlock b({.dim = 16, .heads = 4, .deepnorm_alpha = alpha, .deepnorm_beta = alpha > 0 ? 0.5 : 1});
      Tensor x = randn({2, 5, 16});
      Tensor y = b.forward(x);
      CHECK(y.sizes() == Shape{2, 5, 16});
      sum(y * y).backward();
      for (auto& [name, p] : b.named_parameters()) {
        INFO(name);
        REQUIRE(p.grad().defined());
        CHECK(amax(abs(p.grad())).item() > 0);
      }
    }
  }

  TEST_CASE("GPT: causal (a later token does not change earlier logits), tied head, learns a pattern") {
    manual_seed(4);
    nn::Gpt gpt({.vocab = 16, .context = 12, .layers = 2, .block = {.dim = 32, .heads = 4}});
    CHECK(gpt.head == nullptr);
    Tensor ids = randint(0, 16, {2, 8});
    Tensor a = gpt.forward(ids);
    CHECK(a.sizes() == Shape{2, 8, 16});
    Tensor changed = clone(ids);
    changed.set_at({0, 7}, (static_cast<int64_t>(ids.at({0, 7})) + 1) % 16);
    Tensor b = gpt.forward(changed);
    CHECK_CLOSE(slice(a, 1, 0, 7), slice(b, 1, 0, 7), 1e-5, 1e-6);
    // A repeating sequence 0 1 2 3 0 1 2 3 ... is learned quickly.
    Tensor seq = reshape(from_vector_i64({0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0}), {1, 13});
    Tensor x = slice(seq, 1, 0, 12), y = slice(seq, 1, 1, 13);
    optim::AdamW opt(gpt.parameters(), {.lr = 3e-3, .weight_decay = 0});
    double first = 0, last = 0;
    for (int step = 0; step < 60; ++step) {
      Tensor loss = cross_entropy(gpt.forward(x), contiguous(y));
      opt.zero_grad();
      loss.backward();
      opt.step();
      if (step == 0) first = loss.item();
      last = loss.item();
    }
    INFO("loss ", first, " -> ", last);
    CHECK(last < 0.2 * first);
    nn::Gpt rot(
        {.vocab = 16, .context = 12, .layers = 1, .block = {.dim = 16, .heads = 2}, .rotary = true, .tied = false});
    CHECK(rot.positions == nullptr);
    CHECK(rot.forward(ids).sizes() == Shape{2, 8, 16});
  }

  TEST_CASE("ViT: patchify layout, logits shape, parameter names") {
    manual_seed(5);
    Tensor img = reshape(arange(2 * 1 * 4 * 4, {.dtype = DType::f32}), {2, 1, 4, 4});
    Tensor p = nn::patchify(img, 2);
    CHECK(p.sizes() == Shape{2, 4, 4});
    CHECK(select(select(p, 0, 0), 0, 0).to_vector<float>() == std::vector<float>{0, 1, 4, 5});      // top-left patch
    CHECK(select(select(p, 0, 0), 0, 3).to_vector<float>() == std::vector<float>{10, 11, 14, 15});  // bottom-right
    nn::Vit vit({.layers = 2, .block = {.dim = 32, .heads = 4}});
    Tensor logits = vit.forward(rand({3, 1, 28, 28}));
    CHECK(logits.sizes() == Shape{3, 10});
    auto names = vit.named_parameters();
    CHECK(names[0].first == "cls");
    CHECK(std::any_of(names.begin(), names.end(), [](auto& n) { return n.first == "blocks.1.attn.qkv.weight"; }));
    CHECK_THROWS_WITH_AS(vit.forward(rand({3, 1, 32, 32})), doctest::Contains("expected images [B, 1, 28, 28]"), Error);
  }
}
