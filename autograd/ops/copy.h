// autograd/ops/copy.h — copies and conversions: clone, contiguous, dtype and device moves.
#pragma once
#include "core/tensor.h"

namespace tessel {

Tensor clone(const Tensor& x);                     // a new contiguous tensor with x's values; gradient passes through
Tensor contiguous(const Tensor& x);                // x itself if already contiguous, else a packed copy
Tensor to_dtype(const Tensor& x, DType dtype);     // converted copy (x itself if same dtype)
Tensor to_device(const Tensor& x, Device device);  // copy to another device (x if already there)
// dst[...] = src (broadcast), converting dtype. In place: not differentiated.
Tensor& copy_(Tensor& dst, const Tensor& src);

}  // namespace tessel
