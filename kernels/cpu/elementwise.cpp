// kernels/cpu/elementwise.cpp — elementwise ops with OpenMP threads and compiler SIMD.
//
// Elementwise ops are memory-bound: an add over n f32 moves 12n bytes and does n flops, so the
// goal is streaming memory at full bandwidth. Two things make that possible here:
//  1. Coalescing: dims that are laid out back to back in every operand merge into one, so a
//     contiguous tensor of any shape becomes one flat loop, and a broadcast bias add [N, C]+[C]
//     becomes N rows of a contiguous C-loop.
//  2. The op is a template argument (visit_ew_op), so the formula is inlined into the loop and
//     the innermost contiguous loop vectorizes (`omp simd`; libmvec supplies vector exp/log).
// Work is split over threads by rows, with a grain so tiny tensors stay on one thread.
// Vectorization by hand (AVX-512 intrinsics) is the next rung (see issue "CPU kernels at the
// machine's limit").
#include "core/parallel.h"
#include "kernels/elementwise_loop.h"

namespace tessel::kernels {
namespace {

constexpr int kOperands = 4;  // out, in0, in1, in2

// Merges adjacent dims that are contiguous with each other in every operand and drops size-1
// dims. Returns the new ndim; sizes/strides are rewritten in place (innermost last).
int coalesce(int ndim, int64_t* size, int64_t (*strides)[kMaxDims], int nops) {
  int out = 0;
  for (int d = 0; d < ndim; ++d) {
    if (size[d] == 1) continue;
    if (out > 0) {
      bool merge = true;
      for (int k = 0; k < nops; ++k)
        if (strides[k][out - 1] != strides[k][d] * size[d]) merge = false;
      if (merge) {
        size[out - 1] *= size[d];
        for (int k = 0; k < nops; ++k) strides[k][out - 1] = strides[k][d];
        continue;
      }
    }
    size[out] = size[d];
    for (int k = 0; k < nops; ++k) strides[k][out] = strides[k][d];
    ++out;
  }
  if (out == 0) {  // a single element
    size[0] = 1;
    for (int k = 0; k < nops; ++k) strides[k][0] = 0;
    out = 1;
  }
  return out;
}

template <EwOp OP, class T>
void run_typed(const ElementwiseParams& p) {
  using S = EwStep<OP, T>;
  int64_t size[kMaxDims];
  int64_t strides[kOperands][kMaxDims];
  const Buf* bufs[kOperands] = {&p.out, &p.in[0], &p.in[1], &p.in[2]};
  for (int d = 0; d < p.out.ndim; ++d) {
    size[d] = p.out.size[d];
    for (int k = 0; k < kOperands; ++k) strides[k][d] = k <= S::arity ? bufs[k]->stride[d] : 0;
  }
  const int nd = coalesce(p.out.ndim, size, strides, kOperands);
  auto* out = p.out.ptr<typename S::Out>();
  const auto* a = p.in[0].ptr<typename S::In0>();
  const T* b = p.in[1].ptr<T>();
  const T* c = p.in[2].ptr<T>();
  const double alpha = p.alpha, beta = p.beta;
  const int64_t inner = size[nd - 1];
  const int64_t rows = p.out.numel() / std::max<int64_t>(inner, 1);
  const int64_t so = strides[0][nd - 1], sa = strides[1][nd - 1], sb = strides[2][nd - 1], sc = strides[3][nd - 1];
  const bool unit = so == 1 && (sa == 1) && (S::arity < 2 || sb == 1) && (S::arity < 3 || sc == 1);

  // Rows are the outer (nd - 1) dims; each thread walks its rows with a strided counter.
  const int64_t* outer_strides[kOperands] = {strides[0], strides[1], strides[2], strides[3]};
  auto body = [&](int64_t row_begin, int64_t row_end, int64_t col_begin, int64_t col_end) {
    StridedCounter<kOperands> it(nd - 1, size, outer_strides);
    it.seek(row_begin);
    for (int64_t r = row_begin; r < row_end; ++r, it.next()) {
      const int64_t o = it.off[0], ia = it.off[1], ib = it.off[2], ic = it.off[3];
      if (unit) {
#pragma omp simd
        for (int64_t j = col_begin; j < col_end; ++j) S::run(out, o + j, a, ia + j, b, ib + j, c, ic + j, alpha, beta);
      } else {
        for (int64_t j = col_begin; j < col_end; ++j)
          S::run(out, o + j * so, a, ia + j * sa, b, ib + j * sb, c, ic + j * sc, alpha, beta);
      }
    }
  };
  constexpr int64_t kGrain = 1 << 14;  // elements per thread below which threads cost more than they save
  if (rows == 1) {                     // one long row: split the columns
    parallel_for(inner, kGrain, [&](int64_t j0, int64_t j1) { body(0, 1, j0, j1); });
  } else {
    parallel_for(rows, std::max<int64_t>(1, kGrain / std::max<int64_t>(inner, 1)),
                 [&](int64_t r0, int64_t r1) { body(r0, r1, 0, inner); });
  }
}

}  // namespace

void elementwise_cpu(const ElementwiseParams& p) {
  if (p.out.numel() == 0) return;
  visit_dtype(p.in[1].data ? p.in[1].dtype : p.in[0].dtype, [&](auto tag) {
    using T = decltype(tag);
    visit_ew_op(p.op, [&](auto op_c) {
      constexpr EwOp OP = decltype(op_c)::value;
      if constexpr (!ew_supported<OP, T>()) {
        throw std::logic_error("elementwise_cpu: op not compiled for this dtype");
      } else {
        run_typed<OP, T>(p);
      }
    });
  });
}

}  // namespace tessel::kernels
