// core/shape.h — broadcasting and shape arithmetic, following NumPy's rules: shapes align at
// their last dim; two sizes are compatible when equal or when one of them is 1; missing
// leading dims count as 1.
#pragma once
#include "core/tensor.h"

namespace tessel {

// The broadcast of a and b; throws naming `op` and both shapes when they are incompatible.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);
// Strides that view a tensor of (sizes, strides) as `target` (stride 0 along stretched dims);
// the shapes must be broadcast-compatible (checked).
Shape broadcast_strides(const Shape& sizes, const Shape& strides, const Shape& target, const char* op);
// t viewed with `target`'s shape (no copy, stride 0 where stretched). Raw: no autograd.
Tensor broadcast_view(const Tensor& t, const Shape& target, const char* op);
// Resolves a single -1 in a requested shape against numel; checks the product.
Shape infer_shape(const Shape& requested, int64_t numel, const char* op);

}  // namespace tessel
