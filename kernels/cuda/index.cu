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
// columns: neighbouring threads read neighbouring addresses of dy, coalesced. That parallelism
// (D lines) is too low for long lines, so when the index varies along dim only (embedding,
// index_add) and there are few lines, the N positions are first sorted by index value (CUB's
// stable radix sort) and one thread per (run of equal values, line) adds its run in position
// order: N x D parallelism, and still the CPU's order of additions, so still the same bits.
// Bytes: numel(S) reads of index and dense, as many reads (and writes) of indexed.
//
// Compiled for sm_80/sm_90; not yet verified on hardware.
#include <cub/device/device_radix_sort.cuh>

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

// Sorted scatter_add, step 1: the N index values along dim as sort keys, positions as values.
__global__ void sorted_keys(const void* index, bool index_i64, int64_t li, int64_t n, int64_t* keys, int64_t* pos) {
  const int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (j >= n) return;
  keys[j] = load_index(index, index_i64, j * li);
  pos[j] = j;
}

// Step 2, after a stable sort by key: the thread at the start of each run of equal keys (one
// target slice along dim) adds that run's contributions, in increasing position order, for
// its line. Threads of a warp take neighbouring lines (columns of an embedding: coalesced).
template <class T>
__global__ void sorted_scatter_add(IndexArgs a, const int64_t* keys, const int64_t* pos) {
  const int64_t line = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t p = blockIdx.y + static_cast<int64_t>(blockIdx.z) * gridDim.y;
  if (line >= a.n || p >= a.len) return;
  const int64_t key = keys[p];
  if (p > 0 && keys[p - 1] == key) return;  // not the start of a run
  int64_t off[3];
  a.l.offsets(line, off);
  T* x = static_cast<T*>(a.indexed) + off[2] + key * a.sd;
  const T* dense = static_cast<const T*>(a.dense) + off[1];
  T cur = *x;
  for (int64_t q = p; q < a.len && keys[q] == key; ++q) store(&cur, load(&cur) + load(dense + pos[q] * a.ld));
  *x = cur;
}

// Embedding-like scatter_add (the index varies along dim only) with few lines: sort the N
// positions by index value, then one thread per (run of equal values, line). Parallelism
// N x lines instead of lines; same addition order as the line kernel, so the same bits.
template <class T>
void sorted_scatter_add_launch(const IndexArgs& a, cudaStream_t stream) {
  const int64_t n = a.len;
  size_t temp_bytes = 0;
  TESSEL_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(
      nullptr, temp_bytes, static_cast<const int64_t*>(nullptr), static_cast<int64_t*>(nullptr),
      static_cast<const int64_t*>(nullptr), static_cast<int64_t*>(nullptr), n, 0, 64, stream));
  const size_t arrays = sizeof(int64_t) * static_cast<size_t>(n);
  const size_t temp_at = (4 * arrays + 255) / 256 * 256;
  unsigned char* scratch = nullptr;
  TESSEL_CUDA_CHECK(cudaMallocAsync(reinterpret_cast<void**>(&scratch), temp_at + temp_bytes, stream));
  int64_t* keys_in = reinterpret_cast<int64_t*>(scratch);
  int64_t* keys_out = keys_in + n;
  int64_t* pos_in = keys_out + n;
  int64_t* pos_out = pos_in + n;
  cudaError_t err = cudaSuccess;
  sorted_keys<<<grid_for(n, 256, int64_t(1) << 30), 256, 0, stream>>>(a.index, a.index_i64, a.li, n, keys_in, pos_in);
  err = cudaGetLastError();
  if (err == cudaSuccess)
    err = cub::DeviceRadixSort::SortPairs(scratch + temp_at, temp_bytes, keys_in, keys_out, pos_in, pos_out, n, 0, 64,
                                          stream);
  if (err == cudaSuccess) {
    constexpr int threads = 128;
    const int64_t ys = n < 65535 ? n : 65535;
    const dim3 grid(static_cast<unsigned>((a.n + threads - 1) / threads), static_cast<unsigned>(ys),
                    static_cast<unsigned>((n + ys - 1) / ys));
    sorted_scatter_add<T><<<grid, threads, 0, stream>>>(a, keys_out, pos_out);
    err = cudaGetLastError();
  }
  TESSEL_CUDA_CHECK(cudaFreeAsync(scratch, stream));
  if (err != cudaSuccess) fail("index_cuda", "sorted scatter_add failed: ", cudaGetErrorString(err));
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
      int64_t line_size[kMaxDims] = {};
      for (int d = 0; d < nd; ++d) line_size[d] = d == p.dim ? 1 : p.index.size[d];
      const int64_t* st[3] = {p.index.stride, p.dense.stride, shared};
      a.l = make_layout<3>(nd, line_size, st);
      a.len = nd > 0 ? p.index.size[p.dim] : 1;
      a.li = nd > 0 ? p.index.stride[p.dim] : 0;
      a.ld = nd > 0 ? p.dense.stride[p.dim] : 0;
      a.n = p.index.numel() / a.len;
      bool along_dim_only = true;  // embedding / index_add: one index value per position along dim
      for (int d = 0; d < nd; ++d)
        if (d != p.dim && p.index.size[d] != 1 && p.index.stride[d] != 0) along_dim_only = false;
      // Few lines and long ones leave the line kernel with too little parallelism.
      if (along_dim_only && a.n < 16384 && a.len >= 64) {
        sorted_scatter_add_launch<T>(a, launch_stream());
        return;
      }
      scatter_add_lines<T><<<grid_for(a.n, threads), threads, 0, launch_stream()>>>(a);
    }
    TESSEL_CUDA_CHECK_LAUNCH("index_cuda");
  });
}

}  // namespace
}  // namespace cuda

void register_index_cuda(Family<IndexParams>& fam) { fam.add("cuda", DeviceType::cuda, 10, cuda::index_cuda); }

}  // namespace tessel::kernels
