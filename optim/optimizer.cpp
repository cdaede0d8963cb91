#include "optim/optimizer.h"

#include <cmath>

#include "autograd/engine.h"
#include "autograd/ops/copy.h"
#include "autograd/ops/elementwise.h"
#include "autograd/ops/reduce.h"
#include "autograd/ops/shape.h"
#include "autograd/ops/view.h"

namespace tessel::optim {

Optimizer::Optimizer(const char* name, std::vector<ParamGroup> groups, double lr, double weight_decay)
    : name_(name), groups_(std::move(groups)), lr_(lr), weight_decay_(weight_decay), base_lr_(lr) {
  check(lr >= 0, name_, "learning rate must be non-negative, got ", lr);
  check(weight_decay >= 0, name_, "weight decay must be non-negative, got ", weight_decay);
  for (size_t gi = 0; gi < groups_.size(); ++gi)
    for (size_t i = 0; i < groups_[gi].params.size(); ++i) {
      const Tensor& p = groups_[gi].params[i];
      check(p.defined() && p.is_leaf() && p.requires_grad(), name_, "parameter ", i, " of group ", gi,
            " must be a leaf tensor that requires grad");
      check(p.dtype() == DType::f32 || p.dtype() == DType::f64, name_, "parameter ", i, " of group ", gi, " has dtype ",
            dtype_name(p.dtype()), "; f32 or f64 parameters are supported");
      check(p.is_contiguous(), name_, "parameter ", i, " of group ", gi, " (shape ", p.sizes(), ") is not contiguous");
    }
}

void Optimizer::set_lr(double lr) {
  check(lr >= 0, name_, "learning rate must be non-negative, got ", lr);
  lr_ = lr;
}

void Optimizer::zero_grad() {
  for (ParamGroup& g : groups_)
    for (Tensor& p : g.params) p.set_grad(Tensor());
}

void Optimizer::step() {
  NoGradGuard ng;
  ++step_;
  for (ParamGroup& group : groups_) {
    // One fused call per group and dtype.
    for (DType dt : {DType::f32, DType::f64}) {
      kernels::OptimParams p;
      configure(p);
      p.lr = group.lr ? *group.lr * (base_lr_ > 0 ? lr_ / base_lr_ : 1.0) : lr_;
      p.weight_decay = group.weight_decay.value_or(weight_decay_);
      p.step = step_;
      std::vector<Tensor> keep;      // contiguous gradients must outlive the kernel call
      Device where = Device::cpu();  // the kernel runs where the parameters live
      for (Tensor& param : group.params) {
        if (param.dtype() != dt || !param.grad().defined()) continue;
        check(p.slots.empty() || param.device() == where, name_, "parameters of one group are on ", where.str(),
              " and ", param.device().str(), "; expected one device (move the model with to() first)");
        where = param.device();
        Tensor g = param.grad();
        check(g.sizes() == param.sizes(), name_, "gradient of shape ", g.sizes(), " for a parameter of shape ",
              param.sizes());
        if (!g.is_contiguous() || g.dtype() != dt) {
          Tensor c = empty(param.sizes(), {.dtype = dt, .device = where});
          copy_into(c, g);
          g = c;
        }
        keep.push_back(g);
        auto [it, fresh] = state_.try_emplace(param.impl());
        if (fresh) {
          if (buffers() >= 1) it->second.first = zeros(param.sizes(), {.dtype = dt, .device = where});
          if (buffers() >= 2) it->second.second = zeros(param.sizes(), {.dtype = dt, .device = where});
        }
        kernels::OptimSlot s;
        s.first = fresh;
        s.param = param.buf();
        s.grad = g.buf();
        if (it->second.first.defined()) s.m = it->second.first.buf();
        if (it->second.second.defined()) s.v = it->second.second.buf();
        p.slots.push_back(s);
        param.bump_version();
      }
      if (p.slots.empty()) continue;
      kernels::optim_family().run(where.type, p);
    }
  }
}

OptimizerState Optimizer::state_dict() const {
  OptimizerState out;
  out["step"] = scalar_tensor(static_cast<double>(step_), {.dtype = DType::i64});
  for (size_t gi = 0; gi < groups_.size(); ++gi)
    for (size_t i = 0; i < groups_[gi].params.size(); ++i) {
      auto it = state_.find(groups_[gi].params[i].impl());
      if (it == state_.end()) continue;
      std::string key = std::to_string(gi) + "." + std::to_string(i) + ".";
      if (it->second.first.defined()) out[key + "m"] = it->second.first;
      if (it->second.second.defined()) out[key + "v"] = it->second.second;
    }
  return out;
}

void Optimizer::load_state_dict(const OptimizerState& state) {
  auto step = state.find("step");
  check(step != state.end(), name_, "optimizer state has no 'step'");
  // Validate everything before changing anything.
  std::map<const TensorImpl*, std::pair<Tensor, Tensor>> loaded;
  size_t used = 1;
  for (size_t gi = 0; gi < groups_.size(); ++gi)
    for (size_t i = 0; i < groups_[gi].params.size(); ++i) {
      const Tensor& p = groups_[gi].params[i];
      std::string key = std::to_string(gi) + "." + std::to_string(i) + ".";
      std::pair<Tensor, Tensor> bufs;
      for (int b = 0; b < buffers(); ++b) {
        auto it = state.find(key + (b == 0 ? "m" : "v"));
        if (it == state.end()) continue;
        check(it->second.sizes() == p.sizes(), name_, "state '", it->first, "' has shape ", it->second.sizes(),
              ", but parameter ", i, " of group ", gi, " has shape ", p.sizes());
        Tensor c = empty(p.sizes(), {.dtype = p.dtype(), .device = p.device()});
        copy_into(c, to_device(it->second, p.device()));
        (b == 0 ? bufs.first : bufs.second) = c;
        ++used;
      }
      if (bufs.first.defined() || bufs.second.defined()) loaded[p.impl()] = bufs;
    }
  check(used == state.size(), name_, "optimizer state has ", state.size() - used,
        " entries that match no parameter of this optimizer");
  step_ = static_cast<int64_t>(step->second.item());
  state_ = std::move(loaded);
}

SGD::SGD(std::vector<ParamGroup> groups, SGDOptions o)
    : Optimizer("SGD", std::move(groups), o.lr, o.weight_decay), o_(o) {
  check(o.momentum >= 0, "SGD", "momentum must be non-negative, got ", o.momentum);
  check(!o.nesterov || (o.momentum > 0 && o.dampening == 0), "SGD",
        "Nesterov momentum needs momentum > 0 and dampening 0");
}

void SGD::configure(kernels::OptimParams& p) const {
  p.op = kernels::OptimOp::sgd;
  p.momentum = o_.momentum;
  p.dampening = o_.dampening;
  p.nesterov = o_.nesterov;
}

Adam::Adam(std::vector<ParamGroup> groups, AdamOptions o)
    : Adam("Adam", kernels::OptimOp::adam, std::move(groups), o) {}

Adam::Adam(const char* name, kernels::OptimOp op, std::vector<ParamGroup> groups, AdamOptions o)
    : Optimizer(name, std::move(groups), o.lr, o.weight_decay), o_(o), op_(op) {
  check(o.beta1 >= 0 && o.beta1 < 1 && o.beta2 >= 0 && o.beta2 < 1, name, "betas must be in [0, 1), got (", o.beta1,
        ", ", o.beta2, ")");
  check(o.eps > 0, name, "eps must be positive, got ", o.eps);
}

void Adam::configure(kernels::OptimParams& p) const {
  p.op = op_;
  p.beta1 = o_.beta1;
  p.beta2 = o_.beta2;
  p.eps = o_.eps;
}

AdamW::AdamW(std::vector<ParamGroup> groups, AdamOptions o)
    : Adam("AdamW", kernels::OptimOp::adamw, std::move(groups), o) {}

Lamb::Lamb(std::vector<ParamGroup> groups, AdamOptions o)
    : Adam("LAMB", kernels::OptimOp::lamb, std::move(groups), o) {}

double clip_grad_norm(const std::vector<Tensor>& params, double max_norm) {
  check(max_norm > 0, "clip_grad_norm", "max_norm must be positive, got ", max_norm);
  NoGradGuard ng;
  // One pass over each gradient (squares summed in f64 on the CPU), and the per-tensor terms
  // summed where they lie, so a GPU is synchronized once, not once per parameter.
  std::vector<Tensor> terms;
  bool one_device = true;
  for (const Tensor& p : params) {
    Tensor g = p.grad();
    if (!g.defined()) continue;
    terms.push_back(reshape(to_dtype(sum_squares(g), DType::f64), {1}));
    one_device = one_device && terms.back().device() == terms.front().device();
  }
  double total = 0;
  if (one_device && !terms.empty()) {
    total = sum(cat(terms, 0)).item();
  } else {
    for (const Tensor& t : terms) total += t.item();
  }
  total = std::sqrt(total);
  if (total > max_norm) {
    double scale = max_norm / (total + 1e-6);
    for (const Tensor& p : params) {
      Tensor g = p.grad();
      if (g.defined()) mul_(g, scale);
    }
  }
  return total;
}

}  // namespace tessel::optim
