// kernels/ref/elementwise.cpp — the oracle: one element at a time, in row-major order, through
// a strided counter. No threads, no special cases; every other version is tested against it.
#include "kernels/elementwise_loop.h"

namespace tessel::kernels {

void elementwise_ref(const ElementwiseParams& p) {
  visit_dtype(p.in[1].data ? p.in[1].dtype : p.in[0].dtype, [&](auto tag) {
    using T = decltype(tag);
    visit_ew_op(p.op, [&](auto op_c) {
      constexpr EwOp OP = decltype(op_c)::value;
      if constexpr (!ew_supported<OP, T>()) {
        throw std::logic_error("elementwise_ref: op not compiled for this dtype");
      } else {
        using S = EwStep<OP, T>;
        const int64_t* strides[4] = {p.out.stride, p.in[0].stride, p.in[1].stride, p.in[2].stride};
        StridedCounter<4> it(p.out.ndim, p.out.size, strides);
        auto* out = p.out.ptr<typename S::Out>();
        auto* a = p.in[0].ptr<typename S::In0>();
        auto* b = p.in[1].ptr<T>();
        auto* c = p.in[2].ptr<T>();
        const int64_t n = p.out.numel();
        for (int64_t i = 0; i < n; ++i, it.next())
          S::run(out, it.off[0], a, it.off[1], b, it.off[2], c, it.off[3], p.alpha, p.beta);
      }
    });
  });
}

}  // namespace tessel::kernels
