// optim/optimizer.h — optimizers over parameter groups, with their state in a state dict.
//
// An optimizer holds parameter groups (each with its own learning rate and weight decay),
// per-parameter state (momentum buffers, moments) and the step count. step() applies the
// update to every parameter that has a gradient, in place, without recording (the update is
// not part of any graph), through the fused multi-tensor kernels of kernels/optim.h.
//
// Gradient accumulation needs nothing special: call backward() on several micro-batches (scale
// each loss by 1/k) before one step(); gradients add up in .grad. zero_grad() clears them.
#pragma once
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "kernels/optim.h"

namespace tessel::optim {

struct ParamGroup {
  std::vector<Tensor> params;
  std::optional<double> lr;            // default: the optimizer's
  std::optional<double> weight_decay;  // default: the optimizer's
};

using OptimizerState = std::map<std::string, Tensor>;

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  void step();
  void zero_grad();
  std::vector<ParamGroup>& param_groups() { return groups_; }
  double lr() const { return lr_; }
  void set_lr(double lr);  // the base rate; groups with their own rate keep their ratio to it
  int64_t steps_taken() const { return step_; }

  // "step" and, per parameter that has state, "<group>.<index>.<buffer>".
  OptimizerState state_dict() const;
  void load_state_dict(const OptimizerState& state);

 protected:
  Optimizer(const char* name, std::vector<ParamGroup> groups, double lr, double weight_decay);
  // Fills the op-specific fields of the kernel parameters.
  virtual void configure(kernels::OptimParams& p) const = 0;
  virtual int buffers() const = 0;  // state tensors per parameter: 0, 1 (m) or 2 (m, v)

  const char* name_;
  std::vector<ParamGroup> groups_;
  double lr_, weight_decay_;
  double base_lr_;  // lr at construction, for group ratios
  int64_t step_ = 0;
  std::map<const TensorImpl*, std::pair<Tensor, Tensor>> state_;  // param -> (m, v)
};

struct SGDOptions {
  double lr = 0.01, momentum = 0, dampening = 0, weight_decay = 0;
  bool nesterov = false;
};
class SGD : public Optimizer {
 public:
  SGD(std::vector<ParamGroup> groups, SGDOptions o = {});
  SGD(const std::vector<Tensor>& params, SGDOptions o = {}) : SGD(std::vector<ParamGroup>{{params, {}, {}}}, o) {}

 protected:
  void configure(kernels::OptimParams& p) const override;
  int buffers() const override { return o_.momentum != 0 ? 1 : 0; }
  SGDOptions o_;
};

struct AdamOptions {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0;
};
// Adam with L2 weight decay added to the gradient.
class Adam : public Optimizer {
 public:
  Adam(std::vector<ParamGroup> groups, AdamOptions o = {});
  Adam(const std::vector<Tensor>& params, AdamOptions o = {}) : Adam(std::vector<ParamGroup>{{params, {}, {}}}, o) {}

 protected:
  Adam(const char* name, kernels::OptimOp op, std::vector<ParamGroup> groups, AdamOptions o);
  void configure(kernels::OptimParams& p) const override;
  int buffers() const override { return 2; }
  AdamOptions o_;
  kernels::OptimOp op_;
};
// Adam with decoupled weight decay (default 0.01).
class AdamW : public Adam {
 public:
  AdamW(std::vector<ParamGroup> groups, AdamOptions o = {.weight_decay = 0.01});
  AdamW(const std::vector<Tensor>& params, AdamOptions o = {.weight_decay = 0.01})
      : AdamW(std::vector<ParamGroup>{{params, {}, {}}}, o) {}
};
// LAMB: Adam's direction plus decay, scaled per tensor by ||p|| / ||direction||.
class Lamb : public Adam {
 public:
  Lamb(std::vector<ParamGroup> groups, AdamOptions o = {.eps = 1e-6, .weight_decay = 0.01});
  Lamb(const std::vector<Tensor>& params, AdamOptions o = {.eps = 1e-6, .weight_decay = 0.01})
      : Lamb(std::vector<ParamGroup>{{params, {}, {}}}, o) {}
};

// Scales all gradients so that their global L2 norm is at most max_norm; returns the norm
// before clipping. Parameters without a gradient are skipped.
double clip_grad_norm(const std::vector<Tensor>& params, double max_norm);

}  // namespace tessel::optim
