// tools/train_vit.cpp — the image task: the ViT classifier on Fashion-MNIST.
#include <cmath>

#include "autograd/engine.h"
#include "autograd/ops/copy.h"
#include "autograd/ops/elementwise.h"
#include "autograd/ops/index.h"
#include "autograd/ops/loss.h"
#include "autograd/ops/reduce.h"
#include "autograd/ops/view.h"
#include "core/rng.h"
#include "nn/transformer.h"
#include "tools/train_task.h"

namespace tessel::cli {
namespace {

// Fashion-MNIST's pixel statistics: inputs are standardized with them.
constexpr double kMean = 0.2860, kStd = 0.3530;

class VitTask : public Task {
 public:
  explicit VitTask(const TrainConfig& c) : c_(c) {
    device_ = c.device == "cuda" ? Device::cuda() : Device::cpu();
    train_ = load_fashion_mnist_split(c.data_dir, true);
    test_ = load_fashion_mnist_split(c.data_dir, false);
    NoGradGuard ng;
    train_.images = (train_.images - kMean) * (1.0 / kStd);
    test_.images = (test_.images - kMean) * (1.0 / kStd);
    model_ = std::make_shared<nn::Vit>(
        nn::VitConfig{.patch = c.patch,
                      .layers = c.depth,
                      .block = {.dim = c.width, .heads = c.heads, .mlp_ratio = c.mlp_ratio, .dropout = c.dropout}});
    model_->to(device_);  // before the optimizer is made, so its state lives there too
  }
  nn::Module& model() override { return *model_; }
  int64_t batches_per_epoch() const override { return train_.labels.size(0) / c_.batch; }
  int64_t items_per_batch() const override { return c_.batch; }
  const char* unit() const override { return "img"; }
  std::string describe() const override {
    return "ViT on Fashion-MNIST (" + std::to_string(train_.labels.size(0)) + " train / " +
           std::to_string(test_.labels.size(0)) + " test images), width " + std::to_string(c_.width) + ", depth " +
           std::to_string(c_.depth) + ", " + std::to_string(c_.heads) + " heads, " + std::to_string(c_.patch) + "x" +
           std::to_string(c_.patch) + " patches";
  }

  // Batch i: epoch e = i / per_epoch visits the images in a permutation drawn from a generator
  // seeded by (seed, e), so any batch can be recomputed from its index alone.
  Batch batch(int64_t i) override {
    int64_t per_epoch = batches_per_epoch(), epoch = i / per_epoch, k = i % per_epoch;
    if (epoch != perm_epoch_) {
      Generator g(c_.seed * 1000003 + static_cast<uint64_t>(epoch) + 1);
      NoGradGuard ng;
      perm_ = argsort_keys(rand({train_.labels.size(0)}, {}, &g));
      perm_epoch_ = epoch;
    }
    Tensor idx = narrow(perm_, 0, k * c_.batch, c_.batch);
    return {index_select(train_.images, 0, idx), index_select(train_.labels, 0, idx)};
  }
  Tensor loss(const Batch& b) override {
    return cross_entropy(model_->forward(to_device(b.x, device_)), to_device(b.y, device_),
                         {.label_smoothing = c_.label_smoothing});
  }
  std::map<std::string, double> evaluate() override {
    const int64_t n = test_.labels.size(0), bs = 500;
    double correct = 0, loss = 0;
    for (int64_t s = 0; s < n; s += bs) {
      int64_t m = std::min(bs, n - s);
      Tensor logits = model_->forward(to_device(narrow(test_.images, 0, s, m), device_));
      Tensor y = to_device(narrow(test_.labels, 0, s, m), device_);
      loss += cross_entropy(logits, y, {.reduction = Reduction::sum}).item();
      correct += sum(eq(argmax(logits, 1), y)).item();
    }
    return {{"accuracy", correct / static_cast<double>(n)}, {"loss", loss / static_cast<double>(n)}};
  }

 private:
  // A permutation from random keys: the indices that sort them (ties are impossible in practice
  // and broken by index).
  static Tensor argsort_keys(const Tensor& keys) {
    std::vector<float> k = keys.to_vector<float>();
    std::vector<int64_t> order(k.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int64_t>(i);
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return k[a] < k[b]; });
    return from_vector_i64(order);
  }

  TrainConfig c_;
  ImageSet train_, test_;
  std::shared_ptr<nn::Vit> model_;
  Tensor perm_;
  int64_t perm_epoch_ = -1;
};

}  // namespace

std::unique_ptr<Task> make_vit_task(const TrainConfig& c) { return std::make_unique<VitTask>(c); }

}  // namespace tessel::cli
