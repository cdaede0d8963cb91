// kernels/ref/index.cpp — the oracle: one pass over the iteration shape in row-major order.
#include "kernels/index.h"

namespace tessel::kernels {

void index_ref(const IndexParams& p) {
  visit_dtype(p.dense.dtype, [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    const int64_t n = p.index.numel();
    // The indexed tensor's offset for the shared coordinates (its stride along dim is applied
    // separately, through the index value).
    int64_t shared[kMaxDims] = {};
    for (int d = 0; d < p.index.ndim; ++d) shared[d] = d == p.dim ? 0 : p.indexed.stride[d];
    const int64_t* st[3] = {p.index.stride, p.dense.stride, shared};
    StridedCounter<3> it(p.index.ndim, p.index.size, st);
    const int64_t sd = p.indexed.stride[p.dim];
    T* indexed = p.indexed.ptr<T>();
    T* dense = p.dense.ptr<T>();
    for (int64_t i = 0; i < n; ++i, it.next()) {
      T& x = indexed[it.off[2] + load_index(p.index, it.off[0]) * sd];
      if (p.op == IndexOp::gather)
        dense[it.off[1]] = x;
      else
        x = static_cast<T>(static_cast<A>(x) + static_cast<A>(dense[it.off[1]]));
    }
  });
}

}  // namespace tessel::kernels
