// autograd/ops/view.h — views: new shapes over the same memory, no copies (reshape copies only
// when no view can express the result, like PyTorch's reshape). Their gradients undo the view:
// reshape back, permute back, sum over what expand stretched, scatter into a slice's place.
#pragma once
#include "core/tensor.h"

namespace tessel {

Tensor reshape(const Tensor& x, const Shape& shape);  // one -1 allowed; copies if it must
Tensor view(const Tensor& x, const Shape& shape);     // like reshape, but throws instead of copying
Tensor flatten(const Tensor& x, int64_t start_dim = 0, int64_t end_dim = -1);
Tensor permute(const Tensor& x, const std::vector<int64_t>& dims);
Tensor transpose(const Tensor& x, int64_t dim0, int64_t dim1);
Tensor t(const Tensor& x);  // transpose of a 2-d tensor
// Elements start, start+step, ... < end along dim (negative start/end count from the end,
// clamped like Python slices). narrow(x, dim, start, length) = slice(x, dim, start, start+length).
Tensor slice(const Tensor& x, int64_t dim, int64_t start, int64_t end, int64_t step = 1);
Tensor narrow(const Tensor& x, int64_t dim, int64_t start, int64_t length);
Tensor select(const Tensor& x, int64_t dim, int64_t index);  // removes dim
Tensor expand(const Tensor& x, const Shape& shape);          // -1 keeps a size; size-1 dims stretch
Tensor broadcast_to(const Tensor& x, const Shape& shape);
Tensor squeeze(const Tensor& x);               // drops every size-1 dim
Tensor squeeze(const Tensor& x, int64_t dim);  // drops dim if its size is 1
Tensor unsqueeze(const Tensor& x, int64_t dim);

// The gradient of slice(): a zero tensor of shape `sizes` with g placed at the slice.
// Differentiable (its gradient is the slice of the incoming gradient).
Tensor slice_backward(const Tensor& g, const Shape& sizes, int64_t dim, int64_t start, int64_t step);

}  // namespace tessel
