// autograd/ops/reduce.h — reductions over any set of dims.
//
// `dims` empty means every dim. keepdim keeps reduced dims as size 1. Sums of integer or bool
// tensors are i64; mean and var need floating inputs.
#pragma once
#include "core/tensor.h"

namespace tessel {

Tensor sum(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Tensor mean(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
// Variance with `correction` subtracted from the count (1: unbiased, 0: population).
Tensor var(const Tensor& x, const std::vector<int64_t>& dims = {}, double correction = 1, bool keepdim = false);
// Sum of squares over dims, in one pass (f64 accumulation on the CPU): the terms of a 2-norm,
// e.g. the global gradient norm that clipping needs. Floating inputs only.
Tensor sum_squares(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
// Largest/smallest values over dims; ties share the gradient evenly.
Tensor amax(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Tensor amin(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);

struct ValuesIndices {
  Tensor values;
  Tensor indices;  // i64: position along dim of the first max/min
};
// Max/min along one dim with the index of the (first) winner; the gradient goes to that index.
ValuesIndices max(const Tensor& x, int64_t dim, bool keepdim = false);
ValuesIndices min(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor argmax(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor argmin(const Tensor& x, int64_t dim, bool keepdim = false);

// Sums g over the dims that broadcasting stretched, so that the result has shape `shape`
// (the gradient of a broadcast). Returns g itself when the shapes already match.
Tensor sum_to(const Tensor& g, const Shape& shape);

}  // namespace tessel
