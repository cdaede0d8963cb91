#include "core/shape.h"

#include <algorithm>

namespace tessel {

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    if (da != db && da != 1 && db != 1)
      fail(op, "shapes ", a, " and ", b, " cannot be broadcast: dim ", i, " has sizes ", da, " and ", db,
           "; expected equal sizes or one of them 1");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

Shape broadcast_strides(const Shape& sizes, const Shape& strides, const Shape& target, const char* op) {
  check(sizes.size() <= target.size(), op, "cannot broadcast shape ", sizes, " to ", target);
  size_t lead = target.size() - sizes.size();
  Shape out(target.size(), 0);
  for (size_t i = lead; i < target.size(); ++i) {
    int64_t s = sizes[i - lead];
    check(s == target[i] || s == 1, op, "cannot broadcast shape ", sizes, " to ", target);
    out[i] = (s == 1 && target[i] != 1) ? 0 : strides[i - lead];
  }
  return out;
}

Tensor broadcast_view(const Tensor& t, const Shape& target, const char* op) {
  if (t.sizes() == target) return t.detach();
  return t.alias(target, broadcast_strides(t.sizes(), t.strides(), target, op), t.offset());
}

Shape infer_shape(const Shape& requested, int64_t numel, const char* op) {
  Shape out = requested;
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] == -1) {
      check(infer < 0, op, "only one dim can be -1, got shape ", requested);
      infer = static_cast<int64_t>(i);
    } else {
      check(out[i] >= 0, op, "invalid size ", out[i], " in shape ", requested);
      known *= out[i];
    }
  }
  if (infer >= 0) {
    check(known != 0 && numel % known == 0, op, "cannot infer the -1 in shape ", requested, " for ", numel,
          " elements");
    out[infer] = numel / known;
  }
  check(shape_numel(out) == numel, op, "shape ", requested, " has ", shape_numel(out), " elements, but the input has ",
        numel);
  return out;
}

}  // namespace tessel
