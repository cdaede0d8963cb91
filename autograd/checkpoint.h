// autograd/checkpoint.h — activation checkpointing: trade compute for memory.
//
// checkpoint(fn, inputs) runs fn without recording (so none of fn's intermediate activations
// are kept), and records one node whose backward re-runs fn with recording on, from the same
// inputs and the same random-number state, and backpropagates through that fresh graph.
// Gradients reach fn's inputs and every parameter fn uses, exactly as without checkpointing.
// ("Training Deep Nets with Sublinear Memory Cost", Chen et al., 2016.)
#pragma once
#include <functional>

#include "autograd/node.h"

namespace tessel {

using CheckpointFn = std::function<Tensor(const TensorList&)>;

Tensor checkpoint(const CheckpointFn& fn, const TensorList& inputs);

}  // namespace tessel
