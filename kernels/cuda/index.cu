// kernels/cuda/index.cu — gather and scatter_add along one dim (index_select, embedding, ...).
//
// Semantics and layout as in kernels/index.h, over the iteration shape S of the index:
//   gather       dense[i] = indexed[i with i[dim] := index[i]]
//   scatter_add  indexed[i with i[dim] := index[i]] += dense[i]
//
// gather: one thread per element of S (grid-stride), merged dims decoded into the three
// operands' offsets. Every output element is written once.
// scatter_add: one thread per "line" — a position of every coordinate except `dim` — walking
// its line in increasing dim order. Two contributions can only meet in `indexed` when they lie
// on the same line, so threads never collide: no atomics, and the additions happen in exactly
// the CPU's order, so the result is bitwise equal to ref (bf16/f16 round after each add, as
// there). For embedding's backward (indexed [V, D], dense [N, D], dim 0) the lines are the D
// columns: neighbouring threads read neighbouring addresses of dy, coalesced. The parallelism
// is the number of lines (D), which is low for huge N: the price of determinism.
// Bytes: numel(S) reads of index and dense, as many reads (and writes) of indexed.
//
// Compiled for sm_80/sm_90; not yet verified on hardware.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/register.h"
#include "kernels/index.h"

namespace tessel::kernels {
namespace cuda {
namespace {

struct IndexArgs {
  const void* index;
  bool index_i64;
  void* indexed;
  void* dense;
  int64_t sd;      // indexed's stride along dim
  Layout<3> l;     // operands: index, dense, indexed (0 along dim)
  int64_t n;       // elements (gather) or lines (scatter_add)
  int64_t len;     // scatter_add: the line length, S[dim]
  int64_t li, ld;  // scatter_add: index and dense strides along dim
};

template <class T>
__global__ void gather_kernel(IndexArgs a) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const T* indexed = static_cast<const T*>(a.indexed);
  T* dense = static_cast<T*>(a.dense);
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < a.n; i += step) {
    int64_t off[3];
    a.l.offsets(i, off);
    dense[off[1]] = indexed[off[2] + load_index(a.index, a.index_i64, off[0]) * a.sd];
  }
}

template <class T>
__global__ void scatter_add_lines(IndexArgs a) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  T* indexed = static_cast<T*>(a.indexed);
  const T* dense = static_cast<const T*>(a.dense);
  for (int64_t line = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; line < a.n; line += step) {
    int64_t off[3];
    a.l.offsets(line, off);
    for (int64_t j = 0; j < a.len; ++j) {
      T* x = indexed + off[2] + load_index(a.index, a.index_i64, off[0] + j * a.li) * a.sd;
      store(x, load(x) + load(dense + off[1] + j * a.ld));
    }
  }
}

void index_cuda(const IndexParams& p) {
  visit_dtype(p.dense.dtype, [&](auto tag) {
    using T = decltype(tag);
    const int nd = p.index.ndim;
    if (p.index.numel() == 0) return;
    IndexArgs a{};
    a.index = p.index.data;
    a.index_i64 = p.index.dtype == DType::i64;
    a.indexed = p.indexed.data;
    a.dense = p.dense.data;
    a.sd = nd > 0 ? p.indexed.stride[p.dim] : 0;
    int64_t shared[kMaxDims] = {};
    for (int d = 0; d < nd; ++d) shared[d] = d == p.dim ? 0 : p.indexed.stride[d];
    constexpr int threads = 256;
    if (p.op == IndexOp::gather) {
      const int64_t* st[3] = {p.index.stride, p.dense.stride, shared};
      a.l = make_layout<3>(nd, p.index.size, st);
      a.n = p.index.numel();
      gather_kernel<T><<<grid_for(a.n, threads), threads, 0, launch_stream()>>>(a);
    } else {
      // The lines: S without dim (its size there set to 1, which make_layout drops).
      int64_t line_size[kMaxDims];
      for (int d = 0; d < nd; ++d) line_size[d] = d == p.dim ? 1 : p.index.size[d];
      const int64_t* st[3] = {p.index.stride, p.dense.stride, shared};
      a.l = make_layout<3>(nd, line_size, st);
      a.len = nd > 0 ? p.index.size[p.dim] : 1;
      a.li = nd > 0 ? p.index.stride[p.dim] : 0;
      a.ld = nd > 0 ? p.dense.stride[p.dim] : 0;
      a.n = p.index.numel() / a.len;
      scatter_add_lines<T><<<grid_for(a.n, threads), threads, 0, launch_stream()>>>(a);
    }
    TESSEL_CUDA_CHECK_LAUNCH("index_cuda");
  });
}

}  // namespace
}  // namespace cuda

void register_index_cuda(Family<IndexParams>& fam) { fam.add("cuda", DeviceType::cuda, 10, cuda::index_cuda); }

}  // namespace tessel::kernels
