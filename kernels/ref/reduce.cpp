// kernels/ref/reduce.cpp — the oracle: for each output element, in order, fold its inputs.
#include "kernels/reduce_common.h"

namespace tessel::kernels {

void reduce_ref(const ReduceParams& p) {
  visit_reduce_types(p, [&](auto t_tag, auto o_tag) {
    using T = decltype(t_tag);
    using O = decltype(o_tag);
    const int kept = p.in.ndim - p.reduced;
    int64_t K = 1, R = 1;
    for (int d = 0; d < kept; ++d) K *= p.in.size[d];
    for (int d = kept; d < p.in.ndim; ++d) R *= p.in.size[d];
    const int64_t* st[3] = {p.in.stride, p.out.stride, p.idx.data ? p.idx.stride : p.out.stride};
    StridedCounter<3> it(kept, p.in.size, st);
    const T* in = p.in.ptr<T>();
    O* out = p.out.ptr<O>();
    int64_t* idx = p.idx.ptr<int64_t>();
    for (int64_t k = 0; k < K; ++k, it.next())
      reduce_one<T, O>(p, in, it.off[0], p.reduced, p.in.size + kept, p.in.stride + kept, R, out + it.off[1],
                       idx ? idx + it.off[2] : nullptr);
  });
}

}  // namespace tessel::kernels
