// tools/train_task.h — what `tessel train` trains: a model, its batches and its evaluation.
//
// A Task hides everything that differs between the image classifier and the language model,
// so that the training loop (tools/cmd_train.cpp) is written once. Batches are a pure function
// of (seed, step): resuming from a checkpoint at step s replays exactly the batches an
// uninterrupted run would have seen.
#pragma once
#include <map>
#include <memory>
#include <string>

#include "nn/module.h"
#include "optim/optimizer.h"
#include "tools/train_config.h"

namespace tessel::cli {

struct Batch {
  Tensor x, y;
};

class Task {
 public:
  virtual ~Task() = default;
  virtual nn::Module& model() = 0;
  virtual Batch batch(int64_t index) = 0;  // the index-th micro-batch of the run
  virtual Tensor loss(const Batch& b) = 0;
  virtual std::map<std::string, double> evaluate() = 0;  // on held-out data, in eval mode
  virtual int64_t batches_per_epoch() const = 0;
  virtual int64_t items_per_batch() const = 0;  // images or tokens
  virtual const char* unit() const = 0;         // "img" or "tok"
  virtual std::string describe() const = 0;     // one line: data, model, sizes
  virtual void after_eval() {}                  // e.g. print a text sample

 protected:
  // Where the model lives (the loop moves it there); batches are made on the CPU and moved
  // in loss() and evaluate().
  Device device_ = Device::cpu();
};

// The data the tasks read (tools/train_data.cpp, over data/).
struct ImageSet {
  Tensor images;  // [N, 1, 28, 28] f32 in [0, 1]
  Tensor labels;  // [N] i64
};
ImageSet load_fashion_mnist_split(const std::string& dir, bool train);
Tensor load_text_bytes(const std::string& path);  // [N] i64, one token per byte

// The optimizer for c.optimizer over m's parameters: matrices decay, biases, norms and
// positional tables do not (tools/train_optimizer.cpp).
std::unique_ptr<optim::Optimizer> make_optimizer(const TrainConfig& c, nn::Module& m);

std::unique_ptr<Task> make_vit_task(const TrainConfig& c);
std::unique_ptr<Task> make_gpt_task(const TrainConfig& c);

}  // namespace tessel::cli
