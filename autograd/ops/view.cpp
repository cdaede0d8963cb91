// autograd/ops/view.cpp — views and their gradients.
#include "autograd/ops/view.h"

#include <algorithm>
#include <optional>

#include "autograd/engine.h"
#include "autograd/ops/copy.h"
#include "autograd/ops/reduce.h"
#include "core/shape.h"

namespace tessel {

namespace {

// Strides that let `new_sizes` view memory laid out as (sizes, strides), if any exist. Groups
// of old dims that are contiguous with each other can be re-split freely; a new dim may not
// straddle two such groups. (The same rule as PyTorch's computeStride.)
std::optional<Shape> view_strides(const Shape& sizes, const Shape& strides, const Shape& new_sizes) {
  Shape out(new_sizes.size());
  if (shape_numel(sizes) == 0 || sizes.empty()) {
    out = contiguous_strides(new_sizes);
    return out;
  }
  int64_t view_d = static_cast<int64_t>(new_sizes.size()) - 1;
  int64_t chunk_base_stride = strides.back();
  int64_t tensor_numel = 1, view_numel = 1;
  for (int64_t d = static_cast<int64_t>(sizes.size()) - 1; d >= 0; --d) {
    tensor_numel *= sizes[d];
    if (d == 0 || (sizes[d - 1] != 1 && strides[d - 1] != tensor_numel * chunk_base_stride)) {
      while (view_d >= 0 && (view_numel < tensor_numel || new_sizes[view_d] == 1)) {
        out[view_d] = view_numel * chunk_base_stride;
        view_numel *= new_sizes[view_d];
        --view_d;
      }
      if (view_numel != tensor_numel) return std::nullopt;
      if (d > 0) {
        chunk_base_stride = strides[d - 1];
        tensor_numel = 1;
        view_numel = 1;
      }
    }
  }
  if (view_d != -1) return std::nullopt;
  return out;
}

// Records the standard "reshape the gradient back to x's shape" backward.
void record_reshape_back(const char* name, const Tensor& y, const Tensor& x) {
  if (needs_grad({x}))
    record(name, y, {x}, [sz = x.sizes()](const Tensor& g, const Tensor&) { return TensorList{reshape(g, sz)}; });
}

}  // namespace

Tensor view(const Tensor& x, const Shape& shape) {
  Shape s = infer_shape(shape, x.numel(), "view");
  auto st = view_strides(x.sizes(), x.strides(), s);
  check(st.has_value(), "view", "cannot view a tensor of shape ", x.sizes(), " with strides ", x.strides(), " as ", s,
        " without a copy; use reshape() (which copies) or contiguous() first");
  Tensor y = x.alias(s, *st, x.offset());
  record_reshape_back("view", y, x);
  return y;
}

Tensor reshape(const Tensor& x, const Shape& shape) {
  Shape s = infer_shape(shape, x.numel(), "reshape");
  if (auto st = view_strides(x.sizes(), x.strides(), s)) {
    Tensor y = x.alias(s, *st, x.offset());
    record_reshape_back("reshape", y, x);
    return y;
  }
  return view(contiguous(x), s);
}

Tensor flatten(const Tensor& x, int64_t start_dim, int64_t end_dim) {
  if (x.dim() == 0) return reshape(x, {1});
  int64_t s = wrap_dim(start_dim, x.dim(), "flatten"), e = wrap_dim(end_dim, x.dim(), "flatten");
  check(s <= e, "flatten", "start_dim ", start_dim, " comes after end_dim ", end_dim, " for shape ", x.sizes());
  Shape out(x.sizes().begin(), x.sizes().begin() + s);
  int64_t n = 1;
  for (int64_t d = s; d <= e; ++d) n *= x.sizes()[d];
  out.push_back(n);
  out.insert(out.end(), x.sizes().begin() + e + 1, x.sizes().end());
  return reshape(x, out);
}

Tensor permute(const Tensor& x, const std::vector<int64_t>& dims) {
  check(static_cast<int64_t>(dims.size()) == x.dim(), "permute", "got ", dims.size(), " dims for a tensor of shape ",
        x.sizes());
  Shape sz(dims.size()), st(dims.size());
  std::vector<int64_t> inverse(dims.size(), -1);
  for (size_t i = 0; i < dims.size(); ++i) {
    int64_t d = wrap_dim(dims[i], x.dim(), "permute");
    check(inverse[d] < 0, "permute", "dim ", d, " appears twice in ", Shape(dims));
    inverse[d] = static_cast<int64_t>(i);
    sz[i] = x.sizes()[d];
    st[i] = x.strides()[d];
  }
  Tensor y = x.alias(sz, st, x.offset());
  if (needs_grad({x}))
    record("permute", y, {x}, [inverse](const Tensor& g, const Tensor&) { return TensorList{permute(g, inverse)}; });
  return y;
}

Tensor transpose(const Tensor& x, int64_t dim0, int64_t dim1) {
  int64_t a = wrap_dim(dim0, x.dim(), "transpose"), b = wrap_dim(dim1, x.dim(), "transpose");
  std::vector<int64_t> dims(static_cast<size_t>(std::max<int64_t>(x.dim(), 0)));
  for (size_t i = 0; i < dims.size(); ++i) dims[i] = static_cast<int64_t>(i);
  if (x.dim() == 0) return permute(x, {});
  std::swap(dims[a], dims[b]);
  return permute(x, dims);
}

Tensor t(const Tensor& x) {
  check(x.dim() == 2, "t", "expected a 2-d tensor, got shape ", x.sizes());
  return transpose(x, 0, 1);
}

Tensor slice(const Tensor& x, int64_t dim, int64_t start, int64_t end, int64_t step) {
  check(x.dim() > 0, "slice", "cannot slice a 0-d tensor");
  int64_t d = wrap_dim(dim, x.dim(), "slice");
  check(step >= 1, "slice", "step must be positive, got ", step);
  int64_t n = x.sizes()[d];
  auto clampi = [n](int64_t i) { return std::clamp<int64_t>(i < 0 ? i + n : i, 0, n); };
  int64_t s = clampi(start), e = std::max(clampi(end), clampi(start));
  int64_t len = (e - s + step - 1) / step;
  Shape sz = x.sizes(), st = x.strides();
  sz[d] = len;
  st[d] *= step;
  Tensor y = x.alias(sz, st, x.offset() + (len > 0 ? s * x.strides()[d] : 0));
  if (needs_grad({x}))
    record("slice", y, {x}, [sz = x.sizes(), d, s, step](const Tensor& g, const Tensor&) {
      return TensorList{slice_backward(g, sz, d, s, step)};
    });
  return y;
}

Tensor narrow(const Tensor& x, int64_t dim, int64_t start, int64_t length) {
  check(x.dim() > 0, "narrow", "cannot narrow a 0-d tensor");
  int64_t d = wrap_dim(dim, x.dim(), "narrow");
  int64_t n = x.sizes()[d];
  if (start < 0) start += n;
  check(start >= 0 && length >= 0 && start + length <= n, "narrow", "range [", start, ", ", start + length,
        ") is outside dim ", d, " of size ", n, " (shape ", x.sizes(), ")");
  return slice(x, d, start, start + length);
}

Tensor select(const Tensor& x, int64_t dim, int64_t index) {
  check(x.dim() > 0, "select", "cannot select from a 0-d tensor");
  int64_t d = wrap_dim(dim, x.dim(), "select");
  int64_t n = x.sizes()[d];
  check(index >= -n && index < n, "select", "index ", index, " is out of range for dim ", d, " of size ", n, " (shape ",
        x.sizes(), ")");
  if (index < 0) index += n;
  return squeeze(slice(x, d, index, index + 1), d);
}

Tensor slice_backward(const Tensor& g, const Shape& sizes, int64_t dim, int64_t start, int64_t step) {
  Tensor out = zeros(sizes, {.dtype = g.dtype(), .device = g.device()});
  Shape st = out.strides();
  int64_t off = start * st[dim];
  st[dim] *= step;
  Tensor window = out.alias(g.sizes(), st, g.numel() ? off : 0);
  copy_into(window, g);
  if (needs_grad({g}))
    record("slice_backward", out, {g}, [dim, start, step, n = g.sizes()[dim]](const Tensor& gg, const Tensor&) {
      return TensorList{slice(gg, dim, start, start + n * step, step)};
    });
  return out;
}

Tensor expand(const Tensor& x, const Shape& shape) {
  check(static_cast<int64_t>(shape.size()) >= x.dim(), "expand", "cannot expand shape ", x.sizes(), " to ", shape,
        " (fewer dims)");
  Shape target = shape;
  size_t lead = shape.size() - x.sizes().size();
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      check(i >= lead, "expand", "-1 is not allowed for a new leading dim, got ", shape);
      target[i] = x.sizes()[i - lead];
    }
  }
  Tensor y = x.alias(target, broadcast_strides(x.sizes(), x.strides(), target, "expand"), x.offset());
  if (needs_grad({x}))
    record("expand", y, {x}, [sz = x.sizes()](const Tensor& g, const Tensor&) { return TensorList{sum_to(g, sz)}; });
  return y;
}

Tensor broadcast_to(const Tensor& x, const Shape& shape) { return expand(x, shape); }

Tensor squeeze(const Tensor& x) {
  Shape s;
  for (int64_t v : x.sizes())
    if (v != 1) s.push_back(v);
  return reshape(x, s);
}

Tensor squeeze(const Tensor& x, int64_t dim) {
  if (x.dim() == 0) return reshape(x, {});
  int64_t d = wrap_dim(dim, x.dim(), "squeeze");
  if (x.sizes()[d] != 1) return reshape(x, x.sizes());
  Shape s = x.sizes();
  s.erase(s.begin() + d);
  return reshape(x, s);
}

Tensor unsqueeze(const Tensor& x, int64_t dim) {
  int64_t d = wrap_dim(dim, x.dim() + 1, "unsqueeze");
  Shape s = x.sizes();
  s.insert(s.begin() + d, 1);
  return reshape(x, s);
}

}  // namespace tessel
