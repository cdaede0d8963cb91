// autograd/ops/index.cpp — gather/scatter_add, index_select/index_add, one_hot, embedding:
// validation (shapes, dtypes and every index value), the kernel call, and the backward below.
#include "autograd/ops/index.h"

#include <algorithm>
#include <limits>

#include "autograd/engine.h"
#include "autograd/ops/copy.h"
#include "autograd/ops/view.h"
#include "kernels/index.h"

namespace tessel {

namespace {

using kernels::IndexOp;

void check_index_dtype(const Tensor& index, const char* op) {
  check(index.defined(), op, "got an undefined index tensor");
  check(is_integral(index.dtype()), op, "index must be i64 or i32, got ", dtype_name(index.dtype()), " of shape ",
        index.sizes());
}

// Smallest and largest value of an integer index tensor (any strides). One serial pass: cheap
// next to the op itself, and it runs before any kernel so that a bad index never reaches one.
std::pair<int64_t, int64_t> index_min_max(const Tensor& device_index) {
  // Device-side indices are validated on the host: a bad index must never reach a kernel.
  const Tensor index = device_index.device().is_cpu() ? device_index : to_device(device_index, Device::cpu());
  int64_t lo = std::numeric_limits<int64_t>::max(), hi = std::numeric_limits<int64_t>::min();
  Buf b = index.buf();
  const int64_t* st[1] = {b.stride};
  StridedCounter<1> it(b.ndim, b.size, st);
  const int64_t n = b.numel();
  for (int64_t i = 0; i < n; ++i, it.next()) {
    int64_t v = kernels::load_index(b, it.off[0]);
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  return {lo, hi};
}

// Throws unless every index value lies in [0, size).
void check_index_values(const Tensor& index, int64_t size, int64_t dim, const Tensor& x, const char* op) {
  if (index.numel() == 0) return;
  auto [lo, hi] = index_min_max(index);
  if (lo < 0 || hi >= size)
    fail(op, "index ", lo < 0 ? lo : hi, " is out of range for dim ", dim, " of size ", size, " (x has shape ",
         x.sizes(), ", index has shape ", index.sizes(), "); valid range is [0, ", size, ")");
}

void check_common(const Tensor& x, const Tensor& index, const char* op) {
  check(x.defined(), op, "got an undefined tensor");
  check_index_dtype(index, op);
  check(x.dim() >= 1, op, "expected x with at least 1 dim, got shape ", x.sizes());
  check(x.device() == index.device(), op, "devices differ: x on ", x.device().str(), ", index on ",
        index.device().str());
}

void check_src(const Tensor& x, const Tensor& src, const char* op) {
  check(src.defined(), op, "got an undefined src tensor");
  check(src.dtype() == x.dtype(), op, "src has dtype ", dtype_name(src.dtype()), " but x has dtype ",
        dtype_name(x.dtype()), " (src ", src.sizes(), ", x ", x.sizes(), "); convert src with to_dtype() first");
  check(src.device() == x.device(), op, "devices differ: x on ", x.device().str(), ", src on ", src.device().str());
}

// kernels::broadcast_index over a tensor's Buf.
Buf broadcast_index(const Tensor& index, const Shape& shape, int64_t dim) {
  return kernels::broadcast_index(index.buf(), shape, static_cast<int>(dim));
}

void run_index(IndexOp op, int64_t dim, const Buf& index, const Tensor& indexed, const Tensor& dense_sized) {
  kernels::IndexParams p;
  p.op = op;
  p.dim = static_cast<int>(dim);
  p.index = index;
  p.indexed = indexed.buf();
  p.dense = dense_sized.buf();
  kernels::index_family().run(indexed.device().type, p);
}

// A raw (no autograd) copy of x that the scatter ops add into.
Tensor raw_clone(const Tensor& x) {
  Tensor out = empty(x.sizes(), {.dtype = x.dtype(), .device = x.device()});
  copy_into(out, x);
  return out;
}

// Validates gather-style arguments; returns the wrapped dim.
int64_t check_gather(const Tensor& x, int64_t dim, const Tensor& index, const char* op) {
  check_common(x, index, op);
  int64_t d = wrap_dim(dim, x.dim(), op);
  check(index.dim() == x.dim(), op, "index must have as many dims as x: x is ", x.sizes(), ", index is ",
        index.sizes());
  for (int64_t k = 0; k < x.dim(); ++k)
    check(k == d || index.size(k) <= x.size(k), op, "index of shape ", index.sizes(), " is larger than x of shape ",
          x.sizes(), " at dim ", k, "; expected index.size(k) <= x.size(k) for every dim but ", d);
  check_index_values(index, x.size(d), d, x, op);
  return d;
}

// Validates scatter_add arguments; returns the wrapped dim.
int64_t check_scatter(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src, const char* op) {
  check_common(x, index, op);
  check_src(x, src, op);
  int64_t d = wrap_dim(dim, x.dim(), op);
  check(index.dim() == x.dim() && src.dim() == x.dim(), op, "x, index and src must have the same number of dims: x is ",
        x.sizes(), ", index is ", index.sizes(), ", src is ", src.sizes());
  for (int64_t k = 0; k < x.dim(); ++k) {
    check(index.size(k) <= src.size(k), op, "index of shape ", index.sizes(), " is larger than src of shape ",
          src.sizes(), " at dim ", k);
    check(k == d || index.size(k) <= x.size(k), op, "index of shape ", index.sizes(), " is larger than x of shape ",
          x.sizes(), " at dim ", k, "; expected index.size(k) <= x.size(k) for every dim but ", d);
  }
  check_index_values(index, x.size(d), d, x, op);
  return d;
}

// g padded with zeros (at the end of each dim) to `shape`: the gradient of reading only the
// leading index.sizes() block of src. Differentiable (built from slice_backward).
Tensor pad_to(Tensor g, const Shape& shape) {
  Shape cur = g.sizes();
  for (size_t k = 0; k < shape.size(); ++k)
    if (cur[k] != shape[k]) {
      cur[k] = shape[k];
      g = slice_backward(g, cur, static_cast<int64_t>(k), 0, 1);
    }
  return g;
}

// Validates index_select/index_add's 1-d index; returns the wrapped dim.
int64_t check_select(const Tensor& x, int64_t dim, const Tensor& index, const char* op) {
  check_common(x, index, op);
  int64_t d = wrap_dim(dim, x.dim(), op);
  check(index.dim() <= 1, op, "index must be 1-d, got shape ", index.sizes(), " (x is ", x.sizes(), ")");
  check_index_values(index, x.size(d), d, x, op);
  return d;
}

int64_t check_index_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src, const char* op) {
  check_src(x, src, op);
  int64_t d = check_select(x, dim, index, op);
  Shape want = x.sizes();
  want[d] = index.numel();
  check(src.sizes() == want, op, "src has shape ", src.sizes(), " but x is ", x.sizes(), " and index has ",
        index.numel(), " elements; expected src of shape ", want);
  return d;
}

}  // namespace

// ---------------------------------------------------------------- gather / scatter_add

Tensor gather(const Tensor& x, int64_t dim, const Tensor& index) {
  int64_t d = check_gather(x, dim, index, "gather");
  Tensor out = empty(index.sizes(), {.dtype = x.dtype(), .device = x.device()});
  run_index(IndexOp::gather, d, index.buf(), x, out);
  if (needs_grad({x}))
    record("gather", out, {x}, [d, xs = x.sizes(), si = Saved(index, "gather")](const Tensor& g, const Tensor&) {
      return TensorList{scatter_add(zeros(xs, {.dtype = g.dtype(), .device = g.device()}), d, si.get(), g)};
    });
  return out;
}

Tensor scatter_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src) {
  int64_t d = check_scatter(x, dim, index, src, "scatter_add");
  Tensor out = raw_clone(x);
  run_index(IndexOp::scatter_add, d, index.buf(), out, src.alias(index.sizes(), src.strides(), src.offset()));
  if (needs_grad({x, src}))
    record("scatter_add", out, {x, src},
           [d, ss = src.sizes(), si = Saved(index, "scatter_add")](const Tensor& g, const Tensor&) {
             return TensorList{g, pad_to(gather(g, d, si.get()), ss)};
           });
  return out;
}

// In-place targets must not have elements that share memory, and an index or source that
// overlaps the target is copied first (it would otherwise be read after being written).
Tensor unaliased(const Tensor& x, const Tensor& t, const char* op) {
  check(!has_internal_overlap(x), op, "the target (shape ", x.sizes(), ", strides ", x.strides(),
        ") has elements that share memory (e.g. an expanded tensor); use contiguous() first");
  return may_overlap(x, t) ? clone(t.detach()) : t;
}

Tensor& scatter_add_(Tensor& x, int64_t dim, const Tensor& index_in, const Tensor& src_in) {
  check(x.defined(), "scatter_add_", "got an undefined tensor");
  check_inplace(x, "scatter_add_");
  int64_t d = check_scatter(x, dim, index_in, src_in, "scatter_add_");
  Tensor index = unaliased(x, index_in, "scatter_add_"), src = unaliased(x, src_in, "scatter_add_");
  run_index(IndexOp::scatter_add, d, index.buf(), x, src.alias(index.sizes(), src.strides(), src.offset()));
  x.bump_version();
  return x;
}

// ---------------------------------------------------------------- index_select / index_add

Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index) {
  int64_t d = check_select(x, dim, index, "index_select");
  Shape shape = x.sizes();
  shape[d] = index.numel();
  Tensor out = empty(shape, {.dtype = x.dtype(), .device = x.device()});
  run_index(IndexOp::gather, d, broadcast_index(index, shape, d), x, out);
  if (needs_grad({x}))
    record("index_select", out, {x},
           [d, xs = x.sizes(), si = Saved(index, "index_select")](const Tensor& g, const Tensor&) {
             return TensorList{index_add(zeros(xs, {.dtype = g.dtype(), .device = g.device()}), d, si.get(), g)};
           });
  return out;
}

Tensor index_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src) {
  int64_t d = check_index_add(x, dim, index, src, "index_add");
  Tensor out = raw_clone(x);
  run_index(IndexOp::scatter_add, d, broadcast_index(index, src.sizes(), d), out, src);
  if (needs_grad({x, src}))
    record("index_add", out, {x, src}, [d, si = Saved(index, "index_add")](const Tensor& g, const Tensor&) {
      return TensorList{g, index_select(g, d, si.get())};
    });
  return out;
}

Tensor& index_add_(Tensor& x, int64_t dim, const Tensor& index_in, const Tensor& src_in) {
  check(x.defined(), "index_add_", "got an undefined tensor");
  check_inplace(x, "index_add_");
  int64_t d = check_index_add(x, dim, index_in, src_in, "index_add_");
  Tensor index = unaliased(x, index_in, "index_add_"), src = unaliased(x, src_in, "index_add_");
  run_index(IndexOp::scatter_add, d, broadcast_index(index, src.sizes(), d), x, src);
  x.bump_version();
  return x;
}

// ---------------------------------------------------------------- one_hot / embedding

Tensor one_hot(const Tensor& index, int64_t num_classes) {
  check_index_dtype(index, "one_hot");
  check(num_classes == -1 || num_classes >= 1, "one_hot", "num_classes must be positive or -1 (infer), got ",
        num_classes);
  int64_t classes = num_classes;
  if (index.numel() > 0) {
    auto [lo, hi] = index_min_max(index);
    if (classes == -1) classes = hi + 1;
    if (lo < 0 || hi >= classes)
      fail("one_hot", "index ", lo < 0 ? lo : hi, " is out of range for ", classes, " classes (index has shape ",
           index.sizes(), "); valid range is [0, ", classes, ")");
  } else {
    check(classes != -1, "one_hot", "cannot infer num_classes from an empty index of shape ", index.sizes(),
          "; pass num_classes");
  }
  Shape shape = index.sizes();
  shape.push_back(classes);
  Tensor out = zeros(shape, {.dtype = DType::i64, .device = index.device()});
  // scatter_add of ones along the class dim: iteration shape index.shape + [1].
  Shape iter = index.sizes();
  iter.push_back(1);
  Buf ib = index.buf();
  ib.ndim = static_cast<int>(iter.size());
  ib.size[ib.ndim - 1] = 1;
  ib.stride[ib.ndim - 1] = 0;
  Tensor one = ones({}, {.dtype = DType::i64, .device = index.device()});
  run_index(IndexOp::scatter_add, ib.ndim - 1, ib, out, one.alias(iter, Shape(iter.size(), 0), one.offset()));
  return out;
}

Tensor embedding(const Tensor& weight, const Tensor& indices) {
  check(weight.defined(), "embedding", "got an undefined weight");
  check_index_dtype(indices, "embedding");
  check(weight.dim() == 2, "embedding", "expected weight of shape [num_embeddings, dim], got ", weight.sizes(),
        " (indices ", indices.sizes(), ")");
  check(weight.device() == indices.device(), "embedding", "devices differ: weight on ", weight.device().str(),
        ", indices on ", indices.device().str());
  const int64_t V = weight.size(0), D = weight.size(1);
  if (indices.numel() > 0) {
    auto [lo, hi] = index_min_max(indices);
    if (lo < 0 || hi >= V)
      fail("embedding", "index ", lo < 0 ? lo : hi, " is out of range for weight of shape ", weight.sizes(),
           " (indices ", indices.sizes(), "); valid range is [0, ", V, ")");
  }
  Tensor flat = reshape(indices.detach(), {-1});
  const int64_t N = flat.size(0);
  Shape shape = indices.sizes();
  shape.push_back(D);
  Tensor out = empty(shape, {.dtype = weight.dtype(), .device = weight.device()});
  run_index(IndexOp::gather, 0, broadcast_index(flat, {N, D}, 0), weight, out.alias({N, D}, {D, 1}, 0));
  if (needs_grad({weight}))
    record("embedding", out, {weight}, [V, D, N, sf = Saved(flat, "embedding")](const Tensor& g, const Tensor&) {
      Tensor zero = zeros({V, D}, {.dtype = g.dtype(), .device = g.device()});
      return TensorList{index_add(zero, 0, sf.get(), reshape(g, {N, D}))};
    });
  return out;
}

}  // namespace tessel
