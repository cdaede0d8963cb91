// tools/train_optimizer.cpp — the optimizer `tessel train` builds from its settings; the
// training loop and the `vit_fmnist_step`/`gpt_step` benchmark workloads share it, so the
// benchmark measures exactly the step the program runs.
#include "optim/optimizer.h"
#include "tools/train_task.h"

namespace tessel::cli {

std::unique_ptr<optim::Optimizer> make_optimizer(const TrainConfig& c, nn::Module& m) {
  // No weight decay on biases, norms and embeddings of positions/class tokens: decay only
  // the matrices (the usual practice for transformers).
  std::vector<Tensor> decay, no_decay;
  for (auto& [name, p] : m.named_parameters())
    (p.dim() >= 2 && name.find("pos") == std::string::npos ? decay : no_decay).push_back(p);
  std::vector<optim::ParamGroup> groups = {{decay, {}, {}}, {no_decay, {}, 0.0}};
  if (c.optimizer == "adamw")
    return std::make_unique<optim::AdamW>(groups, optim::AdamOptions{.lr = c.lr, .weight_decay = c.weight_decay});
  if (c.optimizer == "adam")
    return std::make_unique<optim::Adam>(groups, optim::AdamOptions{.lr = c.lr, .weight_decay = c.weight_decay});
  if (c.optimizer == "lamb")
    return std::make_unique<optim::Lamb>(groups,
                                         optim::AdamOptions{.lr = c.lr, .eps = 1e-6, .weight_decay = c.weight_decay});
  if (c.optimizer == "sgd")
    return std::make_unique<optim::SGD>(
        groups, optim::SGDOptions{
                    .lr = c.lr, .momentum = c.momentum, .weight_decay = c.weight_decay, .nesterov = c.momentum > 0});
  fail("train", "unknown optimizer '", c.optimizer, "'; expected adamw, adam, lamb or sgd");
}

}  // namespace tessel::cli
