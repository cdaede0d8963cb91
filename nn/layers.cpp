#include "nn/layers.h"

#include <cmath>

#include "autograd/engine.h"
#include "autograd/ops/index.h"
#include "autograd/ops/matmul.h"
#include "autograd/ops/norm.h"
#include "core/rng.h"

namespace tessel::nn {

namespace {
// U(-bound, bound) in opts.dtype.
Tensor uniform(const Shape& shape, double bound, TensorOptions opts) {
  NoGradGuard ng;
  opts.requires_grad = false;
  Tensor u = rand(shape, opts);
  return (u * (2 * bound) - bound).detach();
}
}  // namespace

Linear::Linear(int64_t in, int64_t out, bool with_bias, TensorOptions opts) : Module("Linear") {
  check(in >= 1 && out >= 1, "Linear", "expected positive sizes, got in=", in, ", out=", out);
  double bound = 1.0 / std::sqrt(static_cast<double>(in));
  weight = register_parameter("weight", uniform({out, in}, bound, opts));
  if (with_bias) bias = register_parameter("bias", uniform({out}, bound, opts));
}

Tensor Linear::forward(const Tensor& x) { return linear(x, weight, bias); }

Embedding::Embedding(int64_t num, int64_t dim, TensorOptions opts) : Module("Embedding") {
  check(num >= 1 && dim >= 1, "Embedding", "expected positive sizes, got num=", num, ", dim=", dim);
  opts.requires_grad = false;
  weight = register_parameter("weight", randn({num, dim}, opts));
}

Tensor Embedding::forward(const Tensor& ids) { return embedding(weight, ids); }

LayerNorm::LayerNorm(Shape s, double e, bool affine, TensorOptions opts)
    : Module("LayerNorm"), shape(std::move(s)), eps(e) {
  opts.requires_grad = false;
  if (affine) {
    weight = register_parameter("weight", ones(shape, opts));
    bias = register_parameter("bias", zeros(shape, opts));
  }
}

Tensor LayerNorm::forward(const Tensor& x) { return layer_norm(x, shape, weight, bias, eps); }

RMSNorm::RMSNorm(Shape s, double e, TensorOptions opts) : Module("RMSNorm"), shape(std::move(s)), eps(e) {
  opts.requires_grad = false;
  weight = register_parameter("weight", ones(shape, opts));
}

Tensor RMSNorm::forward(const Tensor& x) { return rms_norm(x, shape, weight, eps); }

Tensor dropout(const Tensor& x, double p, bool training) {
  check(p >= 0 && p < 1, "dropout", "expected 0 <= p < 1, got ", p);
  if (!training || p == 0) return x;
  Tensor mask = bernoulli(x.sizes(), 1 - p, {.dtype = x.dtype(), .device = x.device()});
  return x * (mask * (1.0 / (1.0 - p)));
}

Dropout::Dropout(double prob) : Module("Dropout"), p(prob) {
  check(p >= 0 && p < 1, "Dropout", "expected 0 <= p < 1, got ", p);
}

Tensor Dropout::forward(const Tensor& x) { return dropout(x, p, is_training()); }

Tensor activate(const Tensor& x, Activation a) {
  switch (a) {
    case Activation::relu: return relu(x);
    case Activation::gelu: return gelu(x);
    case Activation::gelu_tanh: return gelu(x, GeluApprox::tanh);
    case Activation::silu: return silu(x);
    case Activation::tanh: return tanh(x);
    case Activation::sigmoid: return sigmoid(x);
  }
  return x;
}

ActivationLayer::ActivationLayer(Activation a) : Module("Activation"), act(a) {}

Sequential::Sequential(std::vector<std::shared_ptr<Module>> layers) : Module("Sequential") {
  for (auto& m : layers) push_back(std::move(m));
}

void Sequential::push_back(std::shared_ptr<Module> m) {
  check(m != nullptr, "Sequential", "got a null module");
  register_module(std::to_string(layers_.size()), m);
  layers_.push_back(std::move(m));
}

Tensor Sequential::forward(const Tensor& x) {
  Tensor h = x;
  for (auto& m : layers_) h = m->forward(h);
  return h;
}

}  // namespace tessel::nn
