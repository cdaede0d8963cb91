// tools/bench_workloads.cpp — the workload table (see bench_workloads.h). Each entry does in
// tessel exactly what the entry of the same name in bench/peers/pytorch_peer.py does in PyTorch.
#include "tools/bench_workloads.h"

#include "tessel.h"
#include "tools/train_task.h"

namespace tessel::cli {
namespace {

// Inputs are drawn on the CPU (the same values on any device) and moved.
Tensor on(Device d, const Tensor& t) { return to_device(t, d); }

// Wraps an operation so that on a GPU it ends when the device is done.
std::function<void()> finished(Device d, std::function<void()> op) {
  if (d.is_cpu()) return op;
  return [op = std::move(op)] {
    op();
    cuda_synchronize();
  };
}

// C = A B, [n, n] f32, a new C each time (as torch.matmul allocates its result).
Workload gemm(int64_t n) {
  const double dn = static_cast<double>(n);
  return {"gemm_" + std::to_string(n), std::to_string(n) + "x" + std::to_string(n) + "x" + std::to_string(n),
          2 * dn * dn * dn, 0, [n](Device d) {
            Tensor a = on(d, randn({n, n})), b = on(d, randn({n, n}));
            return finished(d, [a, b] { matmul(a, b); });
          }};
}

// y = softmax(x) over the last dim; read x, write y.
Workload softmax_rows(int64_t rows, int64_t cols) {
  const std::string shape = std::to_string(rows) + "x" + std::to_string(cols);
  return {"softmax_" + shape, shape, 0, 4.0 * 2 * static_cast<double>(rows) * cols, [rows, cols](Device d) {
            Tensor x = on(d, randn({rows, cols}));
            return finished(d, [x] { softmax(x, -1); });
          }};
}

// y = layer_norm(x) * w + b, then backward from a given dy into x, w and b (fresh gradients
// each time). Bytes: forward reads x, w, b and writes y, mean, rstd; backward reads x, dy, w,
// mean, rstd and writes dx, dw, db (bench/norm_bench.cpp counts them the same way).
Workload layernorm_fwdbwd(int64_t rows, int64_t cols) {
  const std::string shape = std::to_string(rows) + "x" + std::to_string(cols);
  const double r = static_cast<double>(rows), c = static_cast<double>(cols);
  return {"layernorm_fwdbwd_" + shape, shape, 0, 4.0 * ((2 * r * c + 2 * c + 2 * r) + (3 * r * c + 3 * c + 2 * r)),
          [rows, cols](Device d) {
            Tensor x = on(d, randn({rows, cols})), w = on(d, randn({cols})), b = on(d, randn({cols})),
                   dy = on(d, randn({rows, cols}));
            x.requires_grad_();
            w.requires_grad_();
            b.requires_grad_();
            return finished(d, [x, w, b, dy, cols] {
              for (Tensor t : {x, w, b}) t.set_grad(Tensor());  // handles: the copies share the grad slot
              layer_norm(x, {cols}, w, b, 1e-5).backward(dy);
            });
          }};
}

// Causal attention forward and backward: q, k, v [B, heads, T, hd] leaves, o = attention(q, k,
// v, causal), then backward from a given do into q, k and v (fresh gradients each time), as
// PyTorch's F.scaled_dot_product_attention(is_causal=True) + backward. FLOPs: the forward's two
// products, 4 B H T^2 hd, halved for the causal mask (neither side computes the masked half);
// the backward is 2.5x the forward (q k^T again, do v^T, P^T do, dS^T q, dS k).
Workload attention_causal_fwdbwd(int64_t B, int64_t H, int64_t T, int64_t hd) {
  const double fwd = 4.0 * B * H * T * T * hd / 2;
  std::string shape;  // appended piece by piece: GCC 12 warns (-Wrestrict) on the chained operator+
  for (auto [tag, n] : {std::pair{"b", B}, {"_h", H}, {"_t", T}, {"_d", hd}})
    shape.append(tag).append(std::to_string(n));
  return {"attn_causal_fwdbwd_t" + std::to_string(T), shape, 3.5 * fwd, 0, [B, H, T, hd](Device d) {
            Tensor q = on(d, randn({B, H, T, hd})), k = on(d, randn({B, H, T, hd})), v = on(d, randn({B, H, T, hd})),
                   dout = on(d, randn({B, H, T, hd}));
            for (Tensor* t : {&q, &k, &v}) t->requires_grad_();
            return finished(d, [q, k, v, dout] {
              for (Tensor t : {q, k, v}) t.set_grad(Tensor());  // handles: the copies share the grad slot
              attention(q, k, v, {.causal = true}).backward(dout);
            });
          }};
}

// One training step of a model as `tessel train` runs it: forward, loss, backward, global-norm
// clipping at 1, the optimizer step (AdamW, lr 2e-3, weight decay 0.05 on matrices only, from
// the program's own make_optimizer) and zero_grad. Inputs are fixed random batches, so the
// timing is the model's, not the data pipeline's. FLOPs count the matmuls only (forward 2mnk,
// backward twice that): what the step must do at minimum.
struct StepModel {
  std::shared_ptr<nn::Module> model;
  std::unique_ptr<optim::Optimizer> opt;
};

std::function<void()> train_step(Device d, std::shared_ptr<StepModel> m, Tensor x, Tensor y, double label_smoothing) {
  return finished(d, [m, x, y, label_smoothing] {
    Tensor loss = cross_entropy(m->model->forward(x), y, {.label_smoothing = label_smoothing});
    loss.backward();
    optim::clip_grad_norm(m->model->parameters(), 1.0);
    m->opt->step();
    m->opt->zero_grad();
  });
}

// Matmul FLOPs of one transformer block's forward over n tokens in sequences of t (dense
// attention scores, as both sides compute them): qkv, proj, fc1, fc2 and QK^T, PV.
double block_forward_flops(double n, double t, double d, double ratio) {
  return 2 * n * d * (3 * d + d + 2 * ratio * d) + 2 * 2 * n * t * d;
}

// The demo ViT (tools/demo): width 128, depth 4, 4 heads, 7x7 patches, batch 128 of 28x28
// images, label smoothing 0.1 — the Fashion-MNIST run of the README.
Workload vit_fmnist_step() {
  cli::TrainConfig c;  // the program's defaults are the demo's model
  const double tokens = 128.0 * 17, width = static_cast<double>(c.width);
  const double fwd = c.depth * block_forward_flops(tokens, 17, width, static_cast<double>(c.mlp_ratio)) +
                     2 * 128.0 * 16 * 49 * width + 2 * 128.0 * width * 10;
  return {"vit_fmnist_step", "b128_p7_d128_l4_h4", 3 * fwd, 0, [c](Device d) {
            auto m = std::make_shared<StepModel>();
            m->model = std::make_shared<nn::Vit>(
                nn::VitConfig{.patch = c.patch,
                              .layers = c.depth,
                              .block = {.dim = c.width, .heads = c.heads, .mlp_ratio = c.mlp_ratio}});
            m->model->to(d);  // before the optimizer, whose state goes where the parameters are
            m->opt = make_optimizer(c, *m->model);
            Tensor x = on(d, randn({128, 1, 28, 28}));
            Tensor y = on(d, randint(0, 10, {128}));
            return train_step(d, m, x, y, c.label_smoothing);
          }};
}

// The byte-level GPT of `tessel train --model gpt`: width 128, depth 4, 4 heads, learned
// positions, tied embeddings, 32 sequences of 128 bytes.
Workload gpt_step() {
  cli::TrainConfig c;
  const int64_t B = 32, T = c.context;
  const double tokens = static_cast<double>(B * T), width = static_cast<double>(c.width);
  const double fwd =
      c.depth * block_forward_flops(tokens, static_cast<double>(T), width, static_cast<double>(c.mlp_ratio)) +
      2 * tokens * width * 256;
  return {
      "gpt_step", "b32_t128_d128_l4_h4", 3 * fwd, 0, [c, B, T](Device d) {
        auto m = std::make_shared<StepModel>();
        m->model = std::make_shared<nn::Gpt>(nn::GptConfig{
            .context = T, .layers = c.depth, .block = {.dim = c.width, .heads = c.heads, .mlp_ratio = c.mlp_ratio}});
        m->model->to(d);  // before the optimizer, whose state goes where the parameters are
        m->opt = make_optimizer(c, *m->model);
        Tensor x = on(d, randint(0, 256, {B, T}));
        Tensor y = on(d, randint(0, 256, {B, T}));
        return train_step(d, m, x, y, 0.0);
      }};
}

}  // namespace

const std::vector<Workload>& workloads() {
  static const std::vector<Workload> all = {
      gemm(1024),
      softmax_rows(4096, 4096),
      layernorm_fwdbwd(4096, 1024),
      attention_causal_fwdbwd(4, 8, 512, 64),
      attention_causal_fwdbwd(32, 4, 128, 32),  // the shape inside gpt_step
      vit_fmnist_step(),
      gpt_step(),
  };
  return all;
}

}  // namespace tessel::cli
