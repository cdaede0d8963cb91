// autograd/ops/index.h — indexing by integer tensors: gather/scatter, index_select/index_add,
// one_hot and embedding. PyTorch's semantics throughout.
//
// Index tensors must be i64 or i32 (a floating index is rejected, not truncated). Every index
// value is checked before any kernel runs: an out-of-range or negative value throws
// tessel::Error naming the op, the bad value and the valid range [0, size). Negative indices
// are not wrapped (as in PyTorch's gather/index_select). 0-d x is rejected by these ops; view
// it as 1-d first. Values and src must have x's dtype (no silent promotion into x).
//
// Gradients (x, src, weight: floating; the index never gets one):
//   gather(x, d, i)            dx = scatter_add(zeros_like(x), d, i, dy)
//   scatter_add(x, d, i, src)  dx = dy,  dsrc = gather(dy, d, i) (zero where src is not read)
//   index_select(x, d, i)      dx = index_add(zeros_like(x), d, i, dy)
//   index_add(x, d, i, src)    dx = dy,  dsrc = index_select(dy, d, i)
//   embedding(w, i)            dw = index_add(zeros_like(w), 0, i, dy)  (deterministic on CPU)
#pragma once
#include "core/tensor.h"

namespace tessel {

// out[i][j][k] = x[index[i][j][k]][j][k] (dim 0; likewise for other dims). index has x's rank
// and index.size(k) <= x.size(k) for k != dim; out has index's shape.
Tensor gather(const Tensor& x, int64_t dim, const Tensor& index);
// A copy of x with out[index[i][j][k]][j][k] += src[i][j][k] (dim 0). index has the rank of x
// and src, index.size(k) <= src.size(k) for every k and <= x.size(k) for k != dim. Elements of
// src beyond index's shape are ignored.
Tensor scatter_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src);
Tensor& scatter_add_(Tensor& x, int64_t dim, const Tensor& index, const Tensor& src);  // in place
// The slices x[..., index[j], ...] along dim, for a 1-d (or 0-d) index: x's shape with
// size(dim) = index.numel().
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index);
// A copy of x with out[..., index[j], ...] += src[..., j, ...]; src is x's shape with
// size(dim) = index.numel(). Repeated indices accumulate.
Tensor index_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src);
Tensor& index_add_(Tensor& x, int64_t dim, const Tensor& index, const Tensor& src);  // in place
// i64 tensor of shape index.shape + [num_classes] with a 1 at each index value; num_classes
// -1 means max(index) + 1 (an error for an empty index).
Tensor one_hot(const Tensor& index, int64_t num_classes = -1);
// Rows of weight [V, D] picked by indices (any shape, i32/i64): indices.shape + [D].
Tensor embedding(const Tensor& weight, const Tensor& indices);

}  // namespace tessel
