// autograd/ops/reduce.cpp — reductions: forward, then backward right below.
#include "autograd/ops/reduce.h"

#include <algorithm>

#include "autograd/engine.h"
#include "autograd/ops/elementwise.h"
#include "autograd/ops/view.h"
#include "kernels/reduce.h"

namespace tessel {

using kernels::ReduceOp;

namespace {

// Which dims are reduced (a mask), validated and de-duplicated.
std::vector<bool> reduce_mask(const Tensor& x, const std::vector<int64_t>& dims, const char* op) {
  std::vector<bool> m(static_cast<size_t>(x.dim()), dims.empty());
  for (int64_t d : dims) {
    int64_t w = wrap_dim(d, x.dim(), op);
    if (x.dim() == 0) continue;
    check(!m[w], op, "dim ", d, " appears twice in ", Shape(dims));
    m[w] = true;
  }
  return m;
}

// The output shape with reduced dims kept as 1 (keepdim) or removed.
Shape reduced_shape(const Shape& s, const std::vector<bool>& m, bool keepdim) {
  Shape out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (!m[i])
      out.push_back(s[i]);
    else if (keepdim)
      out.push_back(1);
  }
  return out;
}

struct ReduceResult {
  Tensor out;      // keepdim shape
  Tensor indices;  // for max/min, keepdim shape
  int64_t count;   // elements reduced into each output
};

// Runs the kernel: kept dims first, reduced dims last (by permuting the Buf, not the data).
ReduceResult run_reduce(ReduceOp op, const Tensor& x, const std::vector<bool>& m, const char* name,
                        bool want_indices = false, double correction = 1) {
  check(x.defined(), name, "got an undefined tensor");
  if (op == ReduceOp::mean || op == ReduceOp::var || op == ReduceOp::sumsq)
    check(is_floating(x.dtype()), name, "expected a floating tensor, got ", dtype_name(x.dtype()), " of shape ",
          x.sizes());
  DType out_t = x.dtype();
  if ((op == ReduceOp::sum) && !is_floating(x.dtype())) out_t = DType::i64;
  Shape keep_shape = reduced_shape(x.sizes(), m, true);
  int64_t count = 1;
  for (size_t i = 0; i < m.size(); ++i)
    if (m[i]) count *= x.sizes()[i];
  if (op == ReduceOp::max || op == ReduceOp::min)
    check(count > 0, name, "cannot take the ", op == ReduceOp::max ? "max" : "min", " of an empty selection (shape ",
          x.sizes(), ")");
  ReduceResult r{empty(keep_shape, {.dtype = out_t, .device = x.device()}), Tensor(), count};
  if (want_indices) r.indices = empty(keep_shape, {.dtype = DType::i64, .device = x.device()});
  kernels::ReduceParams p;
  p.op = op;
  p.correction = correction;
  p.reduced = kernels::reduced_dims_last(x.buf(), m, p.in);
  const int kept = p.in.ndim - p.reduced;
  // out, viewed with only the kept dims
  Buf ob = r.out.buf();
  p.out = ob;
  p.out.ndim = kept;
  int k = 0;
  for (int d = 0; d < ob.ndim; ++d)
    if (!m[d]) {
      p.out.size[k] = ob.size[d];
      p.out.stride[k++] = ob.stride[d];
    }
  if (want_indices) {
    p.idx = r.indices.buf();
    p.idx.ndim = kept;
    for (int d = 0; d < kept; ++d) {
      p.idx.size[d] = p.out.size[d];
      p.idx.stride[d] = p.out.stride[d];  // same contiguous layout as out
    }
  }
  kernels::reduce_family().run(x.device().type, p);
  return r;
}

Tensor finish(const Tensor& keep, const Shape& x_sizes, const std::vector<bool>& m, bool keepdim) {
  return keepdim ? keep
                 : keep.alias(reduced_shape(x_sizes, m, false), contiguous_strides(reduced_shape(x_sizes, m, false)),
                              keep.offset());
}

// g (reduced shape) -> x's shape, broadcasting along the reduced dims.
Tensor expand_back(const Tensor& g, const Shape& x_sizes, const std::vector<bool>& m) {
  return expand(reshape(g, reduced_shape(x_sizes, m, true)), x_sizes);
}

}  // namespace

Tensor sum(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  auto m = reduce_mask(x, dims, "sum");
  Tensor y = finish(run_reduce(ReduceOp::sum, x, m, "sum").out, x.sizes(), m, keepdim);
  if (needs_grad({x}))
    record("sum", y, {x},
           [sz = x.sizes(), m](const Tensor& g, const Tensor&) { return TensorList{expand_back(g, sz, m)}; });
  return y;
}

Tensor mean(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  auto m = reduce_mask(x, dims, "mean");
  ReduceResult r = run_reduce(ReduceOp::mean, x, m, "mean");
  Tensor y = finish(r.out, x.sizes(), m, keepdim);
  if (needs_grad({x}))
    record("mean", y, {x}, [sz = x.sizes(), m, n = r.count](const Tensor& g, const Tensor&) {
      return TensorList{expand_back(g / static_cast<double>(n), sz, m)};
    });
  return y;
}

Tensor sum_squares(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  auto m = reduce_mask(x, dims, "sum_squares");
  Tensor y = finish(run_reduce(ReduceOp::sumsq, x, m, "sum_squares").out, x.sizes(), m, keepdim);
  // d/dx sum x^2 = 2 x
  if (needs_grad({x}))
    record("sum_squares", y, {x}, [sx = Saved(x, "sum_squares"), m](const Tensor& g, const Tensor&) {
      const Tensor& x = sx.get();
      return TensorList{expand_back(g, x.sizes(), m) * x * 2.0};
    });
  return y;
}

Tensor var(const Tensor& x, const std::vector<int64_t>& dims, double correction, bool keepdim) {
  auto m = reduce_mask(x, dims, "var");
  ReduceResult r = run_reduce(ReduceOp::var, x, m, "var", false, correction);
  Tensor y = finish(r.out, x.sizes(), m, keepdim);
  // d var / dx = 2 (x - mean) / (n - correction)
  if (needs_grad({x}))
    record("var", y, {x}, [sx = Saved(x, "var"), m, n = r.count, correction](const Tensor& g, const Tensor&) {
      const Tensor& x = sx.get();
      std::vector<int64_t> rd;
      for (size_t i = 0; i < m.size(); ++i)
        if (m[i]) rd.push_back(static_cast<int64_t>(i));
      Tensor centered = sub(x, mean(x, rd, true));
      double scale = 2.0 / (static_cast<double>(n) - correction);
      return TensorList{mul(expand_back(g, x.sizes(), m), centered) * scale};
    });
  return y;
}

namespace {
Tensor amax_amin(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim, bool is_max) {
  const char* name = is_max ? "amax" : "amin";
  auto m = reduce_mask(x, dims, name);
  Tensor keep = run_reduce(is_max ? ReduceOp::max : ReduceOp::min, x, m, name).out;
  Tensor y = finish(keep, x.sizes(), m, keepdim);
  if (needs_grad({x}))
    record(
        name, y, {x},
        [sx = Saved(x, name), m](const Tensor& g, const Tensor& y) {
          // The gradient is shared evenly among the elements equal to the extreme.
          const Tensor& x = sx.get();
          Tensor hit = to_dtype(eq(x, reshape(y, reduced_shape(x.sizes(), m, true))), g.dtype());
          std::vector<int64_t> rd;
          for (size_t i = 0; i < m.size(); ++i)
            if (m[i]) rd.push_back(static_cast<int64_t>(i));
          Tensor count = sum(hit, rd, true);
          return TensorList{mul(div(hit, count), expand_back(g, x.sizes(), m))};
        },
        true);
  return y;
}

ValuesIndices max_min_dim(const Tensor& x, int64_t dim, bool keepdim, bool is_max) {
  const char* name = is_max ? "max" : "min";
  int64_t d = wrap_dim(dim, x.dim(), name);
  auto m = reduce_mask(x, {d}, name);
  ReduceResult r = run_reduce(is_max ? ReduceOp::max : ReduceOp::min, x, m, name, true);
  ValuesIndices out{finish(r.out, x.sizes(), m, keepdim), finish(r.indices, x.sizes(), m, keepdim)};
  if (needs_grad({x}))
    // The indices are the ones returned to the caller: Saved notices if they are modified.
    record(name, out.values, {x}, [idx = Saved(r.indices, name), sz = x.sizes(), m, d](const Tensor& g, const Tensor&) {
      // One-hot along dim at the winning index, times the incoming gradient.
      Shape pos_shape(sz.size(), 1);
      pos_shape[d] = sz[d];
      Tensor positions = reshape(arange(sz[d], {.dtype = DType::i64, .device = g.device()}), pos_shape);
      Tensor hit = to_dtype(eq(positions, idx.get()), g.dtype());
      return TensorList{mul(hit, expand_back(g, sz, m))};
    });
  return out;
}
}  // namespace

Tensor amax(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  return amax_amin(x, dims, keepdim, true);
}
Tensor amin(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  return amax_amin(x, dims, keepdim, false);
}
ValuesIndices max(const Tensor& x, int64_t dim, bool keepdim) { return max_min_dim(x, dim, keepdim, true); }
ValuesIndices min(const Tensor& x, int64_t dim, bool keepdim) { return max_min_dim(x, dim, keepdim, false); }
Tensor argmax(const Tensor& x, int64_t dim, bool keepdim) {
  NoGradGuard ng;
  return max(x, dim, keepdim).indices;
}
Tensor argmin(const Tensor& x, int64_t dim, bool keepdim) {
  NoGradGuard ng;
  return min(x, dim, keepdim).indices;
}

Tensor sum_to(const Tensor& g, const Shape& shape) {
  if (g.sizes() == shape) return g;
  check(static_cast<int64_t>(shape.size()) <= g.dim(), "sum_to", "cannot reduce shape ", g.sizes(), " to ", shape);
  size_t lead = g.sizes().size() - shape.size();
  std::vector<int64_t> dims;
  for (size_t i = 0; i < g.sizes().size(); ++i) {
    if (i < lead) {
      dims.push_back(static_cast<int64_t>(i));
    } else if (shape[i - lead] == 1 && g.sizes()[i] != 1) {
      dims.push_back(static_cast<int64_t>(i));
    } else {
      check(shape[i - lead] == g.sizes()[i], "sum_to", "shape ", shape, " does not broadcast to ", g.sizes());
    }
  }
  Tensor s = dims.empty() ? g : sum(g, dims, true);
  return reshape(s, shape);
}

}  // namespace tessel
