// nn/transformer.h — the transformer block and the two models built from it.
//
// Block (pre-norm, "On Layer Normalization in the Transformer Architecture"):
//   x = x + attn(norm1(x));  x = x + ffn(norm2(x))
// or, with DeepNorm ("DeepNet: Scaling Transformers to 1,000 Layers", Wang et al. 2022), the
// post-norm form with an up-weighted residual and down-scaled initialization:
//   x = norm1(alpha x + attn(x));  x = norm2(alpha x + ffn(x))
// The feed-forward slot takes any single-input Module: an MLP today; Mixture-of-Experts, sparse
// and structured feed-forward layers later, chosen by configuration (FfnKind). Attention goes
// through tessel::attention (autograd/ops/attention.h: fused kernels on the CPU, docs/attention.md).
#pragma once
#include <functional>
#include <memory>
#include <vector>

#include "nn/layers.h"

namespace tessel::nn {

class MultiHeadAttention : public Module {
 public:
  MultiHeadAttention(int64_t dim, int64_t heads, bool causal, bool rotary);
  Tensor forward(const Tensor& x) override;  // x: [B, T, dim]
  std::shared_ptr<Linear> qkv, proj;
  int64_t dim, heads;
  bool causal, rotary;
};

// y = fc2(act(fc1(x))): dim -> hidden -> dim
class Mlp : public Module {
 public:
  Mlp(int64_t dim, int64_t hidden, Activation act = Activation::gelu);
  // fc1's bias and activation run in its GEMM's epilogue where the activation has a fused form.
  Tensor forward(const Tensor& x) override;
  std::shared_ptr<Linear> fc1, fc2;
  Activation act;
};

enum class FfnKind { mlp };  // later: moe, sparse, monarch, ...

struct BlockConfig {
  int64_t dim = 128;
  int64_t heads = 4;
  int64_t mlp_ratio = 4;
  bool causal = false;
  bool rotary = false;
  FfnKind ffn = FfnKind::mlp;
  double dropout = 0;
  // DeepNorm: 0 disables it (pre-norm); otherwise the residual weight alpha and the init
  // scale beta (for an N-layer encoder: alpha = (2N)^(1/4), beta = (8N)^(-1/4)).
  double deepnorm_alpha = 0, deepnorm_beta = 1;
};

std::shared_ptr<Module> make_ffn(const BlockConfig& c);

class TransformerBlock : public Module {
 public:
  explicit TransformerBlock(const BlockConfig& c);
  Tensor forward(const Tensor& x) override;
  std::shared_ptr<LayerNorm> norm1, norm2;
  std::shared_ptr<MultiHeadAttention> attn;
  std::shared_ptr<Module> ffn;
  BlockConfig config;
};

// GPT-style byte-level decoder: tokens [B, T] (i64 in [0, vocab)) -> logits [B, T, vocab].
struct GptConfig {
  int64_t vocab = 256;
  int64_t context = 128;
  int64_t layers = 4;
  BlockConfig block{.causal = true};
  bool rotary = false;  // rotary positions instead of a learned table
  bool tied = true;     // the output head reuses the token embedding
};
class Gpt : public Module {
 public:
  explicit Gpt(GptConfig c);
  Tensor forward(const Tensor& tokens) override;
  GptConfig config;
  std::shared_ptr<Embedding> tokens, positions;
  std::shared_ptr<Sequential> blocks;  // named blocks.0, blocks.1, ...
  std::shared_ptr<LayerNorm> norm;
  std::shared_ptr<Linear> head;  // null when tied
};

// ViT-style classifier ("An Image is Worth 16x16 Words", Dosovitskiy et al.): images
// [B, C, H, W] cut into p x p patches, linearly embedded, a class token prepended, learned
// positions added, blocks, then a linear head on the class token -> logits [B, classes].
struct VitConfig {
  int64_t image = 28, channels = 1, patch = 7, classes = 10;
  int64_t layers = 4;
  BlockConfig block{};
};
class Vit : public Module {
 public:
  explicit Vit(VitConfig c);
  Tensor forward(const Tensor& images) override;
  VitConfig config;
  std::shared_ptr<Linear> patch_embed, head;
  Tensor cls, pos;
  std::shared_ptr<Sequential> blocks;
  std::shared_ptr<LayerNorm> norm;
};

// [B, C, H, W] -> [B, (H/p)(W/p), C p p], patches in row-major order.
Tensor patchify(const Tensor& images, int64_t patch);

}  // namespace tessel::nn
