#include "nn/transformer.h"

#include <cmath>
#include <optional>

#include "autograd/engine.h"
#include "autograd/ops/attention.h"
#include "autograd/ops/matmul.h"
#include "autograd/ops/shape.h"
#include "autograd/ops/view.h"
#include "core/rng.h"

namespace tessel::nn {

MultiHeadAttention::MultiHeadAttention(int64_t d, int64_t h, bool c, bool r)
    : Module("MultiHeadAttention"), dim(d), heads(h), causal(c), rotary(r) {
  check(h >= 1 && d % h == 0, "MultiHeadAttention", "dim ", d, " must be a positive multiple of heads ", h);
  check(!r || (d / h) % 2 == 0, "MultiHeadAttention", "rotary positions need an even head dim, got ", d / h);
  qkv = register_module("qkv", std::make_shared<Linear>(d, 3 * d));
  proj = register_module("proj", std::make_shared<Linear>(d, d));
}

Tensor MultiHeadAttention::forward(const Tensor& x) {
  check(x.dim() == 3 && x.size(2) == dim, "MultiHeadAttention", "expected [B, T, ", dim, "], got ", x.sizes());
  const int64_t B = x.size(0), T = x.size(1), hd = dim / heads;
  // q, k and v from the three row blocks of the one qkv weight, as three GEMMs: then each
  // gradient flows back into its own [B, T, dim] buffer, where slicing one [B, T, 3 dim]
  // output would make the backward zero-fill and sum three buffers of the full width (only
  // the weight's small slices pay that now). [B, T, dim] -> [B, heads, T, hd]: views.
  auto head_split = [&](int64_t part) {
    Tensor w = narrow(qkv->weight, 0, part * dim, dim);
    Tensor b = qkv->bias.defined() ? narrow(qkv->bias, 0, part * dim, dim) : Tensor();
    return permute(reshape(linear(x, w, b), {B, T, heads, hd}), {0, 2, 1, 3});
  };
  Tensor q = head_split(0), k = head_split(1), v = head_split(2);
  if (rotary) {
    q = rotary_embedding(q);
    k = rotary_embedding(k);
  }
  Tensor o = attention(q, k, v, {.causal = causal});  // [B, heads, T, hd]
  return proj->forward(reshape(permute(o, {0, 2, 1, 3}), {B, T, dim}));
}

Mlp::Mlp(int64_t dim, int64_t hidden, Activation a) : Module("Mlp"), act(a) {
  fc1 = register_module("fc1", std::make_shared<Linear>(dim, hidden));
  fc2 = register_module("fc2", std::make_shared<Linear>(hidden, dim));
}

Tensor Mlp::forward(const Tensor& x) {
  std::optional<kernels::Activation> fused;
  switch (act) {
    case Activation::relu: fused = kernels::Activation::relu; break;
    case Activation::gelu: fused = kernels::Activation::gelu_erf; break;
    case Activation::gelu_tanh: fused = kernels::Activation::gelu_tanh; break;
    case Activation::silu: fused = kernels::Activation::silu; break;
    case Activation::tanh:
    case Activation::sigmoid: break;
  }
  if (fused) return mlp(x, fc1->weight, fc1->bias, fc2->weight, fc2->bias, *fused);
  return fc2->forward(activate(fc1->forward(x), act));
}

std::shared_ptr<Module> make_ffn(const BlockConfig& c) {
  switch (c.ffn) {
    case FfnKind::mlp: return std::make_shared<Mlp>(c.dim, c.dim * c.mlp_ratio);
  }
  fail("make_ffn", "unknown feed-forward kind");
}

TransformerBlock::TransformerBlock(const BlockConfig& c) : Module("TransformerBlock"), config(c) {
  norm1 = register_module("norm1", std::make_shared<LayerNorm>(Shape{c.dim}));
  attn = register_module("attn", std::make_shared<MultiHeadAttention>(c.dim, c.heads, c.causal, c.rotary));
  norm2 = register_module("norm2", std::make_shared<LayerNorm>(Shape{c.dim}));
  ffn = register_module("ffn", make_ffn(c));
  if (c.deepnorm_alpha > 0 && c.deepnorm_beta != 1) {
    // DeepNorm scales the value and output projections and the feed-forward weights by beta.
    NoGradGuard ng;
    auto scale = [&](const std::string& prefix) {
      for (auto& [name, p] : named_parameters())
        if (name.rfind(prefix, 0) == 0 && name.size() > 7 && name.substr(name.size() - 6) == "weight") {
          Tensor w = p;
          mul_(w, c.deepnorm_beta);
        }
    };
    scale("attn.proj.");
    scale("ffn.");
  }
}

Tensor TransformerBlock::forward(const Tensor& x) {
  const BlockConfig& c = config;
  auto drop = [&](const Tensor& t) { return dropout(t, c.dropout, is_training()); };
  if (c.deepnorm_alpha > 0) {
    Tensor h = norm1->forward(x * c.deepnorm_alpha + drop(attn->forward(x)));
    return norm2->forward(h * c.deepnorm_alpha + drop(ffn->forward(h)));
  }
  Tensor h = x + drop(attn->forward(norm1->forward(x)));
  return h + drop(ffn->forward(norm2->forward(h)));
}

Gpt::Gpt(GptConfig c) : Module("Gpt"), config(c) {
  check(c.vocab >= 1 && c.context >= 1 && c.layers >= 1, "Gpt", "expected positive vocab, context and layers");
  config.block.causal = true;
  config.block.rotary = c.rotary;
  tokens = register_module("tokens", std::make_shared<Embedding>(c.vocab, c.block.dim));
  {
    NoGradGuard ng;  // GPT-2's initialization scale for embeddings
    mul_(tokens->weight, 0.02);
  }
  if (!c.rotary) {
    positions = register_module("positions", std::make_shared<Embedding>(c.context, c.block.dim));
    NoGradGuard ng;
    mul_(positions->weight, 0.01);
  }
  blocks = register_module("blocks", std::make_shared<Sequential>());
  for (int64_t i = 0; i < c.layers; ++i) blocks->push_back(std::make_shared<TransformerBlock>(config.block));
  norm = register_module("norm", std::make_shared<LayerNorm>(Shape{c.block.dim}));
  if (!c.tied) head = register_module("head", std::make_shared<Linear>(c.block.dim, c.vocab, false));
}

Tensor Gpt::forward(const Tensor& ids) {
  check(ids.dim() == 2 && ids.size(1) <= config.context, "Gpt", "expected tokens [B, T] with T <= ", config.context,
        ", got ", ids.sizes());
  const int64_t T = ids.size(1);
  Tensor h = tokens->forward(ids);  // [B, T, dim]
  if (positions) h = h + positions->forward(arange(T, {.dtype = DType::i64, .device = ids.device()}));
  h = blocks->forward(h);
  h = norm->forward(h);
  return head ? head->forward(h) : linear(h, tokens->weight);  // tied: logits = h E^T
}

Tensor patchify(const Tensor& images, int64_t p) {
  check(images.dim() == 4 && p >= 1 && images.size(2) % p == 0 && images.size(3) % p == 0, "patchify",
        "expected [B, C, H, W] with H and W multiples of the patch size ", p, ", got ", images.sizes());
  const int64_t B = images.size(0), C = images.size(1), H = images.size(2), W = images.size(3);
  Tensor x = reshape(images, {B, C, H / p, p, W / p, p});
  x = permute(x, {0, 2, 4, 1, 3, 5});  // [B, H/p, W/p, C, p, p]
  return reshape(x, {B, (H / p) * (W / p), C * p * p});
}

Vit::Vit(VitConfig c) : Module("Vit"), config(c) {
  check(c.image % c.patch == 0, "Vit", "image size ", c.image, " is not a multiple of the patch size ", c.patch);
  const int64_t n = (c.image / c.patch) * (c.image / c.patch), d = c.block.dim;
  patch_embed = register_module("patch_embed", std::make_shared<Linear>(c.channels * c.patch * c.patch, d));
  cls = register_parameter("cls", randn({1, 1, d}) * 0.02);
  pos = register_parameter("pos", randn({1, n + 1, d}) * 0.02);
  config.block.causal = false;
  blocks = register_module("blocks", std::make_shared<Sequential>());
  for (int64_t i = 0; i < c.layers; ++i) blocks->push_back(std::make_shared<TransformerBlock>(config.block));
  norm = register_module("norm", std::make_shared<LayerNorm>(Shape{d}));
  head = register_module("head", std::make_shared<Linear>(d, c.classes));
}

Tensor Vit::forward(const Tensor& images) {
  check(images.dim() == 4 && images.size(1) == config.channels && images.size(2) == config.image &&
            images.size(3) == config.image,
        "Vit", "expected images [B, ", config.channels, ", ", config.image, ", ", config.image, "], got ",
        images.sizes());
  const int64_t B = images.size(0);
  Tensor h = patch_embed->forward(patchify(images, config.patch));  // [B, n, d]
  h = cat({expand(cls, {B, 1, config.block.dim}), h}, 1) + pos;
  h = blocks->forward(h);
  return head->forward(select(norm->forward(h), 1, 0));
}

}  // namespace tessel::nn
