// autograd/engine.h — recording ops and running backward.
//
// Recording: an op computes its output, then, if grad mode is on and some input requires
// grad, calls record() with the backward closure. Backward: Tensor::backward() walks the graph
// of Nodes from the output, in an order where a Node runs only after every Node that feeds it
// gradient has run (dependency counting), sums gradients arriving by several paths, and
// accumulates into leaves' .grad. See docs/autograd.md.
#pragma once
#include <initializer_list>

#include "autograd/node.h"

namespace tessel {

// Grad mode is per thread. NoGradGuard turns recording off for a scope (inference, optimizer
// updates); EnableGradGuard turns it back on inside one (checkpoint recomputation).
struct GradMode {
  static bool is_enabled();
  static void set_enabled(bool on);
};
class GradModeGuard {
 public:
  explicit GradModeGuard(bool enabled) : prev_(GradMode::is_enabled()) { GradMode::set_enabled(enabled); }
  ~GradModeGuard() { GradMode::set_enabled(prev_); }
  GradModeGuard(const GradModeGuard&) = delete;
  GradModeGuard& operator=(const GradModeGuard&) = delete;

 private:
  bool prev_;
};
struct NoGradGuard : GradModeGuard {
  NoGradGuard() : GradModeGuard(false) {}
};
struct EnableGradGuard : GradModeGuard {
  EnableGradGuard() : GradModeGuard(true) {}
};

// True while tessel::grad() runs on this thread (checkpoint needs to know: it cannot route a
// recomputed gradient to grad()'s outputs).
bool grad_api_running();

// True when grad mode is on and any of the tensors requires grad.
bool needs_grad(std::initializer_list<Tensor> inputs);
bool needs_grad(const std::vector<Tensor>& inputs);

// Makes `out` the result of a differentiable op: creates the Node, links it to the inputs'
// Nodes or leaves, and marks out as requiring grad. Call only when needs_grad(inputs).
// save_output: keep a detached alias of out (version-checked) and pass it to `fn` as `out`.
void record(const char* name, const Tensor& out, const std::vector<Tensor>& inputs, BackwardFn fn,
            bool save_output = false);

// Throws if `t` requires grad while grad mode is on: in-place ops are not differentiated.
void check_inplace(const Tensor& t, const char* op);

// Gradients of `outputs` with respect to `inputs` (like torch.autograd.grad): nothing is
// accumulated into .grad of any leaf. grad_outputs may be empty for scalar outputs.
TensorList grad(const TensorList& outputs, const TensorList& inputs, const TensorList& grad_outputs = {},
                bool retain_graph = false, bool create_graph = false);

}  // namespace tessel
