// autograd/ops/shape.h — joining and splitting tensors: cat, stack, split, chunk.
//
// cat/stack allocate the result once and copy each input into its slice (a view of the
// result); their gradients are slices (views) of the incoming gradient. split/chunk return
// views (narrow) of x, so they cost nothing and are differentiable through narrow.
//
// Dtypes: cat and stack promote mixed inputs like PyTorch (promote_types: bool < integers <
// floats, a wider float wins) and each input's gradient comes back in its own dtype. Devices
// must agree. 0-d inputs cannot be concatenated (stack them instead).
#pragma once
#include <vector>

#include "core/tensor.h"

namespace tessel {

// Joins tensors along an existing dim; sizes must match in every other dim.
Tensor cat(const std::vector<Tensor>& tensors, int64_t dim = 0);
// Joins same-shaped tensors along a new dim (inserted at `dim`, in [-rank-1, rank]).
Tensor stack(const std::vector<Tensor>& tensors, int64_t dim = 0);
// Views of x in pieces of split_size along dim; the last piece is smaller when the size does
// not divide evenly. (Note: split(x, {4}) calls this overload; pass std::vector<int64_t>{4}
// for a one-piece list.)
std::vector<Tensor> split(const Tensor& x, int64_t split_size, int64_t dim = 0);
// Views of x in pieces of the given sizes along dim; they must sum to x.size(dim).
std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim = 0);
// split(x, ceil(x.size(dim) / chunks), dim): at most `chunks` views (fewer when the size does
// not allow `chunks` non-empty pieces, as in PyTorch).
std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim = 0);

}  // namespace tessel
