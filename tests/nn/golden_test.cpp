// Golden tensors from an independent framework: the transformer block, the ViT and three GPT
// training steps, computed by PyTorch in f64 from the same f32 weights and inputs
// (tools/golden/make_golden.py wrote tests/golden/*.safetensors; see its header). tessel runs
// the same models in f32, so the tolerances are f32's natural error through a few layers, not
// an exact match; a wrong formula (a swapped LayerNorm gamma/beta, a missing attention scale,
// a mask off by one, GELU's tanh form for erf, a bias-correction slip in AdamW) is off by far
// more.
#include "nn/transformer.h"
#include "optim/optimizer.h"
#include "tests/helpers.h"

using namespace tessel;
using namespace tessel::testing;

namespace {

SafetensorsFile golden(const std::string& name) {
  return load_safetensors(std::string(TESSEL_GOLDEN_DIR) + "/" + name);
}

// Loads `prefix + name` for every entry of m's state_dict (all must exist: strict).
void load_weights(nn::Module& m, const SafetensorsFile& f, const std::string& prefix) {
  nn::StateDict sd;
  for (const auto& [name, t] : m.state_dict()) sd[name] = f.at(prefix + name);
  m.load_state_dict(sd);
}

// Every parameter's gradient against `grad.<name>` (prefixed).
void check_grads(nn::Module& m, const SafetensorsFile& f, const std::string& prefix, double rtol, double atol) {
  for (const auto& [name, p] : m.named_parameters()) {
    INFO("gradient of ", name);
    REQUIRE(p.grad().defined());
    CHECK_CLOSE(p.grad(), f.at(prefix + "grad." + name), rtol, atol);
  }
}

}  // namespace

TEST_SUITE("nn") {
  TEST_CASE("golden: a transformer block equals PyTorch forward and backward, bidirectional and causal") {
    const SafetensorsFile f = golden("block.safetensors");
    for (bool causal : {false, true}) {
      const std::string pre = causal ? "causal." : "bi.";
      INFO(pre);
      nn::TransformerBlock block(nn::BlockConfig{.dim = 32, .heads = 4, .mlp_ratio = 4, .causal = causal});
      load_weights(block, f, pre);
      Tensor x = clone(f.at(pre + "x")).requires_grad_();
      Tensor y = block.forward(x);
      CHECK_CLOSE(y, f.at(pre + "y"), 1e-5, 1e-5);
      sum(y * f.at(pre + "r")).backward();
      CHECK_CLOSE(x.grad(), f.at(pre + "dx"), 1e-4, 1e-5);
      check_grads(block, f, pre, 1e-4, 1e-5);
    }
  }

  TEST_CASE("golden: the ViT's logits, label-smoothed loss and gradients equal PyTorch") {
    const SafetensorsFile f = golden("vit.safetensors");
    nn::Vit vit(nn::VitConfig{.patch = 7, .layers = 2, .block = {.dim = 32, .heads = 4, .mlp_ratio = 4}});
    load_weights(vit, f, "");
    Tensor logits = vit.forward(f.at("images"));
    CHECK_CLOSE(logits, f.at("logits"), 1e-5, 1e-5);
    Tensor loss = cross_entropy(logits, to_dtype(f.at("labels"), DType::i64), {.label_smoothing = 0.1});
    CHECK(loss.item() == doctest::Approx(f.at("loss").item()).epsilon(1e-6));
    loss.backward();
    check_grads(vit, f, "", 1e-4, 1e-6);
  }

  TEST_CASE("golden: three GPT training steps (AdamW, clipping, tied head) equal PyTorch") {
    const SafetensorsFile f = golden("gpt_steps.safetensors");
    nn::Gpt gpt(nn::GptConfig{.context = 16, .layers = 2, .block = {.dim = 32, .heads = 4, .mlp_ratio = 4}});
    load_weights(gpt, f, "init.");
    // The parameter groups of tools/train_optimizer.cpp: decay on matrices except positions.
    std::vector<Tensor> decay, no_decay;
    for (auto& [name, p] : gpt.named_parameters())
      (p.dim() >= 2 && name.find("pos") == std::string::npos ? decay : no_decay).push_back(p);
    optim::AdamW opt({{decay, {}, {}}, {no_decay, {}, 0.0}}, optim::AdamOptions{.lr = 1e-2, .weight_decay = 0.05});
    const std::vector<float> losses = f.at("losses").to_vector<float>();
    for (int s = 0; s < 3; ++s) {
      INFO("step ", s);
      const std::string st = "step" + std::to_string(s) + ".";
      Tensor logits = gpt.forward(to_dtype(f.at(st + "ids"), DType::i64));
      Tensor loss =
          cross_entropy(reshape(logits, {-1, 256}), reshape(to_dtype(f.at(st + "targets"), DType::i64), {-1}));
      CHECK(loss.item() == doctest::Approx(losses[static_cast<size_t>(s)]).epsilon(1e-6));
      loss.backward();
      optim::clip_grad_norm(gpt.parameters(), 1.0);
      opt.step();
      opt.zero_grad();
    }
    // Adam divides by sqrt(v): an element whose gradient is tiny moves by up to lr whatever its
    // size, so f32 noise in such a gradient shows up at the scale of lr times its relative error
    // (atol 1e-4 is 1/300 of what three steps of lr 1e-2 can move a weight). The key bias is left
    // out: softmax ignores a constant added to a row of scores, so its true gradient is exactly 0
    // and both sides step by lr times the sign of their rounding noise.
    for (const auto& [name, p] : gpt.named_parameters()) {
      INFO("weight ", name, " after 3 steps");
      const Tensor want = f.at("final." + name);
      if (name.find("attn.qkv.bias") != std::string::npos) {
        const std::vector<int64_t> q_and_v = {0, 32, 64, 96};  // [q | k | v], 32 each
        CHECK_CLOSE(slice(p, 0, q_and_v[0], q_and_v[1]), slice(want, 0, q_and_v[0], q_and_v[1]), 1e-3, 1e-4);
        CHECK_CLOSE(slice(p, 0, q_and_v[2], q_and_v[3]), slice(want, 0, q_and_v[2], q_and_v[3]), 1e-3, 1e-4);
      } else {
        CHECK_CLOSE(p, want, 1e-3, 1e-4);
      }
    }
  }
}
