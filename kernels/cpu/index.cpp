// kernels/cpu/index.cpp — gather and scatter_add with OpenMP threads, deterministically.
//
// gather: every output element is written once, so threads simply take contiguous ranges of
// the iteration space's rows (row-major).
//
// scatter_add: two iteration positions can add into the same element of `indexed` only if
// they agree on every coordinate except `dim` — they lie on the same "line" along dim. So the
// lines are split among the threads (never two threads on one element: no atomics, no
// races). Each thread adds in the same order as ref (dim coordinate ascending) for every
// element, walking either its block of lines one dim-step at a time or each line along dim,
// whichever reads `dense` contiguously: the result is bitwise equal to ref for any thread
// count. For embedding's backward (indexed [V, D], dense [N, D], dim 0) the lines are
// the D columns: each thread owns a block of columns and streams every row's slice of it,
// contiguous in both dy and the gradient.
#include "kernels/index.h"

#include <cstdlib>

#include "core/parallel.h"
#include "kernels/cuda/register.h"

namespace tessel::kernels {
namespace {

// Rows of the iteration's last dim, each a tight loop with the index type known, instead of a
// strided counter and an index-dtype branch per element.
template <class T, class I>
void gather_rows(const IndexParams& p) {
  const int nd = p.index.ndim;
  const int64_t inner = p.index.size[nd - 1];
  const int64_t n = p.index.numel();
  if (n == 0) return;
  const int64_t rows = n / inner;
  int64_t shared[kMaxDims] = {};
  for (int d = 0; d < nd; ++d) shared[d] = d == p.dim ? 0 : p.indexed.stride[d];
  const int64_t sd = p.indexed.stride[p.dim];
  const int64_t ii = p.index.stride[nd - 1], id = p.dense.stride[nd - 1], ix = shared[nd - 1];
  const I* index = p.index.ptr<I>();
  const T* indexed = p.indexed.ptr<T>();
  T* dense = p.dense.ptr<T>();
  parallel_for(rows, std::max<int64_t>(1, (1 << 14) / inner), [&](int64_t b, int64_t e) {
    const int64_t* st[3] = {p.index.stride, p.dense.stride, shared};
    StridedCounter<3> it(nd - 1, p.index.size, st);
    it.seek(b);
    for (int64_t r = b; r < e; ++r, it.next()) {
      const I* irow = index + it.off[0];
      T* drow = dense + it.off[1];
      const T* xrow = indexed + it.off[2];
      for (int64_t j = 0; j < inner; ++j) drow[j * id] = xrow[j * ix + static_cast<int64_t>(irow[j * ii]) * sd];
    }
  });
}

template <class T>
void gather_cpu(const IndexParams& p) {
  if (p.index.dtype == DType::i64)
    gather_rows<T, int64_t>(p);
  else
    gather_rows<T, int32_t>(p);
}

template <class T>
void scatter_add_cpu(const IndexParams& p) {
  using A = acc_t<T>;
  // The line coordinates: every dim but `dim`, in order.
  int nl = 0;
  int64_t lsize[kMaxDims], lidx[kMaxDims], ldense[kMaxDims], lindexed[kMaxDims];
  int64_t lines = 1;
  for (int d = 0; d < p.index.ndim; ++d) {
    if (d == p.dim) continue;
    lsize[nl] = p.index.size[d];
    lidx[nl] = p.index.stride[d];
    ldense[nl] = p.dense.stride[d];
    lindexed[nl] = p.indexed.stride[d];
    lines *= lsize[nl++];
  }
  const int64_t steps = p.index.size[p.dim];
  if (lines == 0 || steps == 0) return;
  const int64_t si = p.index.stride[p.dim], sdn = p.dense.stride[p.dim], sd = p.indexed.stride[p.dim];
  T* indexed = p.indexed.ptr<T>();
  const T* dense = p.dense.ptr<T>();
  // Which loop goes inside: the one that walks `dense` with the smaller stride. Along the
  // lines (step outer) when the lines are the contiguous dim, as in embedding's backward; along
  // `dim` (line outer) when `dim` is, as in index_select's and gather's backward along the last
  // dim, where the step-outer order read one element per cache line per step. Either order
  // adds into each element in ascending step order, so the result does not change.
  const bool step_inner = nl == 0 || std::abs(sdn) < std::abs(ldense[nl - 1]);
  parallel_for(lines, std::max<int64_t>(1, (1 << 14) / steps), [&](int64_t b, int64_t e) {
    const int64_t* st[3] = {lidx, ldense, lindexed};
    StridedCounter<3> it(nl, lsize, st);
    if (step_inner) {
      it.seek(b);
      for (int64_t l = b; l < e; ++l, it.next()) {
        T* row = indexed + it.off[2];
        const T* src = dense + it.off[1];
        const int64_t i0 = it.off[0];
        for (int64_t s = 0; s < steps; ++s) {
          T& x = row[load_index(p.index, i0 + s * si) * sd];
          x = static_cast<T>(static_cast<A>(x) + static_cast<A>(src[s * sdn]));
        }
      }
      return;
    }
    for (int64_t s = 0; s < steps; ++s) {
      it.seek(b);
      for (int64_t l = b; l < e; ++l, it.next()) {
        T& x = indexed[it.off[2] + load_index(p.index, it.off[0] + s * si) * sd];
        x = static_cast<T>(static_cast<A>(x) + static_cast<A>(dense[it.off[1] + s * sdn]));
      }
    }
  });
}

}  // namespace

void index_cpu(const IndexParams& p) {
  visit_dtype(p.dense.dtype, [&](auto tag) {
    using T = decltype(tag);
    if (p.op == IndexOp::gather)
      gather_cpu<T>(p);
    else
      scatter_add_cpu<T>(p);
  });
}

Family<IndexParams>& index_family() {
  static Family<IndexParams>* f = [] {
    auto* fam = make_cpu_family<IndexParams>("index", index_ref, index_cpu);
#if TESSEL_HAVE_CUDA
    register_index_cuda(*fam);
#endif
    return fam;
  }();
  return *f;
}

}  // namespace tessel::kernels
