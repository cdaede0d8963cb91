// autograd/node.h — one recorded op in the dynamic tape.
//
// Every differentiable op that sees an input requiring grad creates a Node and hangs it on its
// output (TensorImpl::grad_fn). The Node holds:
//   - `next`: where the gradient of each input goes: the input's own Node, or the leaf tensor
//     whose .grad collects it, or nothing (that input needs no gradient);
//   - `backward`: a closure written right below the op's forward, mapping the gradient of the
//     output to one gradient per input; it owns whatever the forward saved (Saved, below).
// Each op has exactly one output, so a Node and "the tensor it produced" are one-to-one; ops
// with several results (split, max with indices) make one Node per differentiable result.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace tessel {

struct Edge {
  std::shared_ptr<Node> fn;          // the input was computed by an op...
  std::shared_ptr<TensorImpl> leaf;  // ...or is a leaf that requires grad
  bool valid() const { return fn || leaf; }
};

// Gradients of the inputs, in input order; an undefined Tensor means "no gradient" (zero).
using TensorList = std::vector<Tensor>;
// `grad` is the gradient of the op's output; `out` is the output itself, passed only when the
// op asked record() to save it (otherwise undefined).
using BackwardFn = std::function<TensorList(const Tensor& grad, const Tensor& out)>;

struct Node {
  std::string name;
  uint64_t seq = 0;  // creation order: later nodes run first among the ready ones
  std::vector<Edge> next;
  std::vector<Shape> input_sizes;  // to check what backward returns
  std::vector<DType> input_dtypes;
  BackwardFn backward;                    // reset after a backward without retain_graph, freeing saved tensors
  std::vector<TensorHook> pre_hooks;      // hooks registered on the output tensor
  std::weak_ptr<TensorImpl> retain_into;  // retain_grad() on the output
  Tensor saved_output;                    // detached alias of the output, when the op saves it
  uint64_t saved_output_version = 0;
};

// A tensor saved for backward, with the version it had when saved. get() throws a clear
// error if the tensor was modified in place in between — the gradient would be silently
// wrong otherwise.
class Saved {
 public:
  Saved() = default;
  Saved(const Tensor& t, const char* op) : t_(t), version_(t.defined() ? t.version() : 0), op_(op) {}
  const Tensor& get() const;
  bool defined() const { return t_.defined(); }

 private:
  Tensor t_;
  uint64_t version_ = 0;
  const char* op_ = "";
};

}  // namespace tessel
