// nn/module.h — the base of every layer: named parameters, buffers and sub-modules.
//
// A Module owns Tensors (parameters: leaves that require grad; buffers: state that is saved
// but not trained) and child Modules, each under a name, so that a whole model can be walked
// ("blocks.3.attn.qkv.weight"), counted, switched between train and eval, saved with
// state_dict() and restored with load_state_dict(). Parameters are updated in place by the
// optimizers, so the Tensor handles a Module hands out stay valid for its lifetime.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace tessel::nn {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;
using StateDict = std::map<std::string, Tensor>;

class Module {
 public:
  virtual ~Module() = default;

  // The single-input forward most layers have. Modules with other signatures provide their own
  // call operators; calling this on them throws.
  virtual Tensor forward(const Tensor& x);
  Tensor operator()(const Tensor& x) { return forward(x); }

  NamedTensors named_parameters() const;  // recursive, in registration order
  std::vector<Tensor> parameters() const;
  NamedTensors named_buffers() const;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> named_children() const { return children_; }
  int64_t num_parameters() const;

  void train(bool on = true);  // recursive
  void eval() { train(false); }
  bool is_training() const { return training_; }
  void zero_grad();  // drops every parameter's .grad

  // Moves every parameter and buffer (recursively) to `device`, in place: each Tensor keeps its
  // identity (the handles the layers and callers hold now point at memory on `device`), its
  // values, dtype and requires_grad; a gradient present moves along. Views of a parameter taken
  // before the move keep the old memory. Create optimizers after to(): their state is allocated
  // on the parameters' device when they are built. Returns *this.
  Module& to(Device device);

  // Parameters and buffers by dotted name. load_state_dict copies values in place (dtype
  // converted); strict: every key must be present in both, with equal shapes.
  StateDict state_dict() const;
  void load_state_dict(const StateDict& state, bool strict = true);

  const std::string& type_name() const { return type_; }

 protected:
  explicit Module(std::string type) : type_(std::move(type)) {}
  // Registers a parameter (made a leaf that requires grad) and returns the stored handle.
  Tensor register_parameter(const std::string& name, Tensor t);
  Tensor register_buffer(const std::string& name, Tensor t);
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> m) {
    check_name(name);
    children_.emplace_back(name, m);
    return m;
  }

 private:
  void check_name(const std::string& name) const;
  void collect(const std::string& prefix, NamedTensors& out, bool params) const;

  std::string type_;
  NamedTensors params_, buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

}  // namespace tessel::nn
