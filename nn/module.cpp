#include "nn/module.h"

#include <set>

#include "autograd/engine.h"
#include "autograd/ops/copy.h"

namespace tessel::nn {

Tensor Module::forward(const Tensor&) {
  fail(type_.c_str(), "this module has no single-input forward; call it with its own arguments");
}

void Module::check_name(const std::string& name) const {
  check(!name.empty() && name.find('.') == std::string::npos, type_.c_str(), "invalid member name '", name,
        "': names are non-empty and contain no '.'");
  for (const auto& [n, _] : params_) check(n != name, type_.c_str(), "'", name, "' is already registered");
  for (const auto& [n, _] : buffers_) check(n != name, type_.c_str(), "'", name, "' is already registered");
  for (const auto& [n, _] : children_) check(n != name, type_.c_str(), "'", name, "' is already registered");
}

Tensor Module::register_parameter(const std::string& name, Tensor t) {
  check_name(name);
  check(t.defined() && is_floating(t.dtype()), type_.c_str(), "parameter '", name, "' must be a floating tensor");
  Tensor p = t.is_leaf() ? t : t.detach();
  if (!p.requires_grad()) p.requires_grad_();
  params_.emplace_back(name, p);
  return p;
}

Tensor Module::register_buffer(const std::string& name, Tensor t) {
  check_name(name);
  check(t.defined(), type_.c_str(), "buffer '", name, "' is undefined");
  buffers_.emplace_back(name, t.detach());
  return buffers_.back().second;
}

void Module::collect(const std::string& prefix, NamedTensors& out, bool params) const {
  for (const auto& [n, t] : params ? params_ : buffers_) out.emplace_back(prefix + n, t);
  for (const auto& [n, m] : children_) m->collect(prefix + n + ".", out, params);
}

NamedTensors Module::named_parameters() const {
  NamedTensors out;
  collect("", out, true);
  return out;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  std::set<const TensorImpl*> seen;  // a parameter shared by two layers (tied weights) counts once
  for (auto& [n, t] : named_parameters())
    if (seen.insert(t.impl()).second) out.push_back(t);
  return out;
}

NamedTensors Module::named_buffers() const {
  NamedTensors out;
  collect("", out, false);
  return out;
}

int64_t Module::num_parameters() const {
  int64_t n = 0;
  for (const Tensor& p : parameters()) n += p.numel();
  return n;
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [n, m] : children_) m->train(on);
}

void Module::zero_grad() {
  for (Tensor& p : parameters()) p.set_grad(Tensor());
}

namespace {
// Points t's TensorImpl at a packed copy of its values on `device`.
void move_in_place(const Tensor& t, Device device) {
  if (t.device() == device) return;  // also a tied parameter met a second time
  Tensor moved;
  {
    NoGradGuard no_grad;
    moved = to_device(t.detach(), device);
  }
  TensorImpl* impl = t.impl();
  impl->storage = moved.storage();
  impl->strides = moved.strides();
  impl->offset = moved.offset();
  if (impl->grad) move_in_place(Tensor(impl->grad), device);
}
}  // namespace

Module& Module::to(Device device) {
  for (auto& [n, t] : named_parameters()) move_in_place(t, device);
  for (auto& [n, t] : named_buffers()) move_in_place(t, device);
  return *this;
}

StateDict Module::state_dict() const {
  StateDict out;
  for (auto& [n, t] : named_parameters()) out[n] = t;
  for (auto& [n, t] : named_buffers()) out[n] = t;
  return out;
}

void Module::load_state_dict(const StateDict& state, bool strict) {
  StateDict mine = state_dict();
  if (strict) {
    for (const auto& [n, t] : state)
      check(mine.count(n), "load_state_dict", "unexpected key '", n, "' (shape ", t.sizes(), ") for a ", type_);
    for (const auto& [n, t] : mine)
      check(state.count(n), "load_state_dict", "missing key '", n, "' (shape ", t.sizes(), ") for a ", type_);
  }
  // Validate every entry before writing any, so a failed load leaves the module unchanged.
  for (const auto& [n, t] : mine) {
    auto it = state.find(n);
    if (it == state.end()) continue;
    check(it->second.sizes() == t.sizes(), "load_state_dict", "'", n, "' has shape ", it->second.sizes(),
          " in the state but ", t.sizes(), " in the model");
  }
  NoGradGuard ng;
  for (auto& [n, t] : mine) {
    auto it = state.find(n);
    if (it == state.end()) continue;
    Tensor dst = t;
    copy_(dst, to_device(it->second, t.device()));
  }
}

}  // namespace tessel::nn
