// nn/layers.h — the basic layers, each a thin Module over one differentiable op.
//
// Initializations follow PyTorch's defaults so that models port over with the same behaviour:
// Linear weight and bias ~ U(-1/sqrt(in), 1/sqrt(in)); Embedding ~ N(0, 1); norms start at
// weight 1, bias 0.
#pragma once
#include <memory>
#include <vector>

#include "autograd/ops/elementwise.h"
#include "nn/module.h"

namespace tessel::nn {

// y = x W^T + b,  x: [..., in], W: [out, in], b: [out]
class Linear : public Module {
 public:
  Linear(int64_t in_features, int64_t out_features, bool bias = true, TensorOptions opts = {});
  Tensor forward(const Tensor& x) override;
  Tensor weight, bias;  // bias undefined when built without one
};

// y = W[ids],  ids: any shape of i32/i64 in [0, num), W: [num, dim] -> [..., dim]
class Embedding : public Module {
 public:
  Embedding(int64_t num, int64_t dim, TensorOptions opts = {});
  Tensor forward(const Tensor& ids) override;
  Tensor weight;
};

// Normalizes over the trailing `shape` dims: (x - mean) / sqrt(var + eps) * weight + bias.
class LayerNorm : public Module {
 public:
  LayerNorm(Shape shape, double eps = 1e-5, bool affine = true, TensorOptions opts = {});
  Tensor forward(const Tensor& x) override;
  Tensor weight, bias;
  Shape shape;
  double eps;
};

// x / sqrt(mean(x^2) + eps) * weight over the trailing `shape` dims.
class RMSNorm : public Module {
 public:
  RMSNorm(Shape shape, double eps = 1e-6, TensorOptions opts = {});
  Tensor forward(const Tensor& x) override;
  Tensor weight;
  Shape shape;
  double eps;
};

// Zeroes each element with probability p in training and scales the rest by 1/(1-p)
// (inverted dropout, "Dropout: A Simple Way to Prevent Neural Networks from Overfitting");
// the identity in eval. Masks come from the default generator, so checkpoint() replays them.
Tensor dropout(const Tensor& x, double p, bool training);
class Dropout : public Module {
 public:
  explicit Dropout(double p = 0.5);
  Tensor forward(const Tensor& x) override;
  double p;
};

enum class Activation { relu, gelu, gelu_tanh, silu, tanh, sigmoid };
Tensor activate(const Tensor& x, Activation a);
class ActivationLayer : public Module {
 public:
  explicit ActivationLayer(Activation a);
  Tensor forward(const Tensor& x) override { return activate(x, act); }
  Activation act;
};

// Runs its children in order: y = m_n(...m_1(x)).
class Sequential : public Module {
 public:
  Sequential() : Module("Sequential") {}
  explicit Sequential(std::vector<std::shared_ptr<Module>> layers);
  void push_back(std::shared_ptr<Module> m);
  Tensor forward(const Tensor& x) override;
  size_t size() const { return layers_.size(); }
  Module& operator[](size_t i) { return *layers_.at(i); }

 private:
  std::vector<std::shared_ptr<Module>> layers_;
};

}  // namespace tessel::nn
