// autograd/ops/shape.cpp — cat, stack, split, chunk: forward, then backward right below.
#include "autograd/ops/shape.h"

#include <sstream>

#include "autograd/engine.h"
#include "autograd/ops/view.h"

namespace tessel {

namespace {

// "[2, 3], [2, 4], [1, 3]": every input's shape, for error messages. Printed only when a check
// fails (check() formats its parts lazily): building the string up front cost cat O(n^2) time
// in the number of inputs on every call.
struct ShapesOf {
  const std::vector<Tensor>& ts;
};
std::ostream& operator<<(std::ostream& os, const ShapesOf& s) {
  for (size_t i = 0; i < s.ts.size(); ++i) os << (i ? ", " : "") << shape_str(s.ts[i].sizes());
  return os;
}
ShapesOf shapes_str(const std::vector<Tensor>& ts) { return {ts}; }

void check_list(const std::vector<Tensor>& ts, const char* op) {
  check(!ts.empty(), op, "expected a non-empty list of tensors");
  for (size_t i = 0; i < ts.size(); ++i) check(ts[i].defined(), op, "input ", i, " is an undefined tensor");
  for (size_t i = 1; i < ts.size(); ++i)
    check(ts[i].device() == ts[0].device(), op, "devices differ: input 0 is on ", ts[0].device().str(), ", input ", i,
          " on ", ts[i].device().str(), " (shapes ", shapes_str(ts), ")");
}

}  // namespace

Tensor cat(const std::vector<Tensor>& tensors, int64_t dim) {
  check_list(tensors, "cat");
  const Tensor& first = tensors[0];
  for (size_t i = 0; i < tensors.size(); ++i)
    check(tensors[i].dim() > 0, "cat", "input ", i, " is 0-d and cannot be concatenated (shapes ", shapes_str(tensors),
          "); use stack");
  const int64_t rank = first.dim();
  const int64_t d = wrap_dim(dim, rank, "cat");
  DType dtype = first.dtype();
  Shape out_shape = first.sizes();
  out_shape[d] = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    check(t.dim() == rank, "cat", "inputs must have the same number of dims, got shapes ", shapes_str(tensors));
    for (int64_t k = 0; k < rank; ++k)
      check(k == d || t.size(k) == first.size(k), "cat", "sizes must match except in dim ", d, ": input ", i,
            " has size ", t.size(k), " at dim ", k, " where input 0 has ", first.size(k), " (shapes ",
            shapes_str(tensors), ")");
    out_shape[d] += t.size(d);
    dtype = promote_types(dtype, t.dtype());
  }
  Tensor out = empty(out_shape, {.dtype = dtype, .device = first.device()});
  std::vector<int64_t> offsets;
  int64_t off = 0;
  for (const Tensor& t : tensors) {
    offsets.push_back(off);
    if (t.numel() > 0) copy_into(out.alias(t.sizes(), out.strides(), off * out.stride(d)), t);  // converts dtype
    off += t.size(d);
  }
  if (needs_grad(tensors)) {
    std::vector<bool> wants;
    std::vector<int64_t> lengths;
    for (const Tensor& t : tensors) {
      wants.push_back(t.requires_grad());
      lengths.push_back(t.size(d));
    }
    record("cat", out, tensors, [d, wants, offsets, lengths](const Tensor& g, const Tensor&) {
      TensorList grads(wants.size());
      for (size_t i = 0; i < wants.size(); ++i)
        if (wants[i]) grads[i] = narrow(g, d, offsets[i], lengths[i]);  // the engine casts back to each dtype
      return grads;
    });
  }
  return out;
}

Tensor stack(const std::vector<Tensor>& tensors, int64_t dim) {
  check_list(tensors, "stack");
  for (size_t i = 1; i < tensors.size(); ++i)
    check(tensors[i].sizes() == tensors[0].sizes(), "stack", "every input must have the same shape, got shapes ",
          shapes_str(tensors));
  const int64_t d = wrap_dim(dim, tensors[0].dim() + 1, "stack");
  std::vector<Tensor> parts;
  parts.reserve(tensors.size());
  for (const Tensor& t : tensors) parts.push_back(unsqueeze(t, d));
  return cat(parts, d);
}

std::vector<Tensor> split(const Tensor& x, int64_t split_size, int64_t dim) {
  check(x.defined(), "split", "got an undefined tensor");
  check(x.dim() > 0, "split", "cannot split a 0-d tensor");
  const int64_t d = wrap_dim(dim, x.dim(), "split");
  const int64_t n = x.size(d);
  check(split_size > 0 || (split_size == 0 && n == 0), "split", "split_size must be positive, got ", split_size,
        " for dim ", d, " of x with shape ", x.sizes());
  std::vector<Tensor> out;
  if (n == 0) {
    out.push_back(narrow(x, d, 0, 0));
    return out;
  }
  for (int64_t start = 0; start < n; start += split_size)
    out.push_back(narrow(x, d, start, std::min(split_size, n - start)));
  return out;
}

std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim) {
  check(x.defined(), "split", "got an undefined tensor");
  check(x.dim() > 0, "split", "cannot split a 0-d tensor");
  const int64_t d = wrap_dim(dim, x.dim(), "split");
  int64_t total = 0;
  for (int64_t s : sizes) {
    check(s >= 0, "split", "sizes must be non-negative, got ", Shape(sizes));
    total += s;
  }
  check(total == x.size(d), "split", "sizes ", Shape(sizes), " sum to ", total, " but dim ", d, " of x (shape ",
        x.sizes(), ") has size ", x.size(d));
  std::vector<Tensor> out;
  int64_t start = 0;
  for (int64_t s : sizes) {
    out.push_back(narrow(x, d, start, s));
    start += s;
  }
  return out;
}

std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim) {
  check(x.defined(), "chunk", "got an undefined tensor");
  check(chunks > 0, "chunk", "chunks must be positive, got ", chunks, " (x has shape ", x.sizes(), ")");
  check(x.dim() > 0, "chunk", "cannot chunk a 0-d tensor");
  const int64_t n = x.size(wrap_dim(dim, x.dim(), "chunk"));
  return split(x, std::max<int64_t>((n + chunks - 1) / chunks, 1), dim);
}

}  // namespace tessel
