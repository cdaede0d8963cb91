// kernels/cuda/reduce.cu — sum, mean, max/min (with indices) and var on the GPU.
//
// Shapes as in kernels/reduce.h: in [K0.., R0..] (kept dims first, any strides), out [K0..].
// Each of the K outputs folds its R inputs:
//   sum/mean: sum_r x (/ R)     max/min: best value, first index attaining it (NaN wins)
//   var:      sum_r (x - mean)^2 / (R - correction), two passes over the row for accuracy
// Accumulation: f32 for f32/bf16/f16, f64 for f64, i64 for integers and bool (the CPU uses f64
// for every float, so f32 sums differ from it by reordering error only).
//
// Two kernels, picked by layout (both deterministic: fixed reduction trees, no atomics):
//  - row: one block per output. Threads stride through the row, so when the reduced dims are
//    the contiguous innermost ones (sum over the last dim) every warp load is coalesced; the
//    per-thread partials meet in warp shuffles, then in shared memory.
//  - columns: a block of 32 outputs x 16 lanes; each output's 16 lanes stride through its R
//    inputs and meet in shared memory. Picked when the reduced dims are strided and there are
//    at least 32 outputs (sum over dim 0 of [N, D], a bias gradient): the 32 threads of a warp
//    then read 32 neighbouring addresses, which the row kernel could not.
// Bytes: K*R input elements read once (twice for var), K outputs written.
//
// Compiled for sm_80/sm_90; not yet verified on hardware.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/register.h"
#include "kernels/reduce_common.h"

namespace tessel::kernels {
namespace cuda {
namespace {

template <class T>
using sum_acc_t = std::conditional_t<std::is_integral_v<acc_t<T>>, int64_t, float_acc_t<acc_t<T>>>;
template <class T>
using var_acc_t = std::conditional_t<std::is_same_v<acc_t<T>, float>, float, double>;

struct RowAddr {
  int ndim;  // reduced dims after merging; <= 1 is the fast case
  int64_t stride0;
  Layout<1> l;
  __device__ __forceinline__ int64_t at(int64_t r) const {
    if (ndim <= 1) return r * stride0;
    int64_t off[1];
    l.offsets(r, off);
    return off[0];
  }
};

// Best (value, index) so far; index < 0 marks "nothing seen".
template <class A>
struct Best {
  A v;
  int64_t i;
};

template <class A>
__device__ __forceinline__ bool is_nan_dev(A v) {
  return v != v;  // false for integers
}

// Whether b replaces a: NaN beats everything (the first NaN), else the better value, ties to
// the lower index — the order-independent form of the CPU's "first r attaining it".
template <class A>
__device__ __forceinline__ bool better(const Best<A>& a, const Best<A>& b, bool want_max) {
  if (b.i < 0) return false;
  if (a.i < 0) return true;
  const bool an = is_nan_dev(a.v), bn = is_nan_dev(b.v);
  if (an || bn) return an && bn ? b.i < a.i : bn;
  if (b.v == a.v) return b.i < a.i;
  return want_max ? b.v > a.v : b.v < a.v;
}

template <class A>
__device__ Best<A> block_best(Best<A> x, bool want_max, Best<A>* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  for (int o = 16; o > 0; o >>= 1) {
    Best<A> y{__shfl_xor_sync(0xffffffffu, x.v, o), __shfl_xor_sync(0xffffffffu, x.i, o)};
    if (better(x, y, want_max)) x = y;
  }
  __syncthreads();
  if (lane == 0) scratch[warp] = x;
  __syncthreads();
  x = lane < nwarps ? scratch[lane] : Best<A>{A(0), -1};
  for (int o = 16; o > 0; o >>= 1) {
    Best<A> y{__shfl_xor_sync(0xffffffffu, x.v, o), __shfl_xor_sync(0xffffffffu, x.i, o)};
    if (better(x, y, want_max)) x = y;
  }
  return x;
}

struct ReduceArgs {
  ReduceOp op;
  const void* in;
  void* out;
  int64_t* idx;
  Layout<3> kept;  // operands: in, out, idx
  RowAddr row;
  int64_t K, R;
  double correction;
};

// How the threads folding one output combine their partials.
enum class Mode { block, columns };
constexpr int kColTile = 32, kColLanes = 16;  // columns kernel: 32 outputs x 16 lanes each

// Block mode: the whole block folds one output. Columns mode: the kColLanes threads with the
// same threadIdx.x fold one output; they meet in shared memory and each adds the lanes' values
// in lane order (the same order in every thread, so all agree and the result is deterministic).
template <Mode M, class A>
__device__ A combine_sum(A v, void* scratch) {
  if constexpr (M == Mode::block) {
    return block_sum(v, static_cast<A*>(scratch));
  } else {
    A* s = static_cast<A*>(scratch);
    __syncthreads();
    s[threadIdx.y * kColTile + threadIdx.x] = v;
    __syncthreads();
    A t = 0;
    for (int j = 0; j < static_cast<int>(blockDim.y); ++j) t += s[j * kColTile + threadIdx.x];
    return t;
  }
}

template <Mode M, class A>
__device__ Best<A> combine_best(Best<A> v, bool want_max, void* scratch) {
  if constexpr (M == Mode::block) {
    return block_best(v, want_max, static_cast<Best<A>*>(scratch));
  } else {
    Best<A>* s = static_cast<Best<A>*>(scratch);
    __syncthreads();
    s[threadIdx.y * kColTile + threadIdx.x] = v;
    __syncthreads();
    Best<A> t = s[threadIdx.x];
    for (int j = 1; j < static_cast<int>(blockDim.y); ++j)
      if (better(t, s[j * kColTile + threadIdx.x], want_max)) t = s[j * kColTile + threadIdx.x];
    return t;
  }
}

// One output k, folded by `nthreads` cooperating threads, this one being number t0. Inactive
// threads (past the last output) fold nothing but take part in the combines.
template <class T, class O, Mode M>
__device__ void reduce_output(const ReduceArgs& a, int64_t k, bool active, int t0, int nthreads, void* scratch) {
  int64_t off[3] = {0, 0, 0};
  if (active) a.kept.offsets(k, off);
  const T* in = static_cast<const T*>(a.in) + off[0];
  const int64_t R = active ? a.R : 0;
  const bool writer = active && t0 == 0;
  if (a.op == ReduceOp::sum || a.op == ReduceOp::mean || a.op == ReduceOp::sumsq) {
    using A = sum_acc_t<T>;
    const bool sq = a.op == ReduceOp::sumsq;
    A acc = 0;
    for (int64_t r = t0; r < R; r += nthreads) {
      const A v = static_cast<A>(load(in + a.row.at(r)));
      acc += sq ? v * v : v;
    }
    acc = combine_sum<M>(acc, scratch);
    if (writer) {
      if constexpr (std::is_integral_v<A>) {
        if (a.op == ReduceOp::mean && R > 0) acc = acc / R;
      } else {
        if (a.op == ReduceOp::mean) acc = acc / static_cast<A>(R);  // R = 0 gives NaN, as on the CPU
      }
      store(static_cast<O*>(a.out) + off[1], acc);
    }
  } else if (a.op == ReduceOp::max || a.op == ReduceOp::min) {
    using A = acc_t<T>;
    const bool want_max = a.op == ReduceOp::max;
    Best<A> best{A(0), -1};
    for (int64_t r = t0; r < R; r += nthreads) {
      Best<A> c{static_cast<A>(load(in + a.row.at(r))), r};
      if (better(best, c, want_max)) best = c;
    }
    best = combine_best<M>(best, want_max, scratch);
    if (writer) {
      store(static_cast<O*>(a.out) + off[1], best.v);
      if (a.idx) a.idx[off[2]] = best.i < 0 ? 0 : best.i;
    }
  } else {  // var: the mean first, then the squared deviations from it
    using V = var_acc_t<T>;
    V s = 0;
    for (int64_t r = t0; r < R; r += nthreads) s += static_cast<V>(load(in + a.row.at(r)));
    s = combine_sum<M>(s, scratch);
    const V mean = R > 0 ? s / static_cast<V>(R) : V(0);
    V ss = 0;
    for (int64_t r = t0; r < R; r += nthreads) {
      const V d = static_cast<V>(load(in + a.row.at(r))) - mean;
      ss += d * d;
    }
    ss = combine_sum<M>(ss, scratch);
    if (writer) {
      const double denom = static_cast<double>(R) - a.correction;
      const double v = denom > 0 ? static_cast<double>(ss) / denom : __longlong_as_double(0x7ff8000000000000ll);
      store(static_cast<O*>(a.out) + off[1], static_cast<acc_t<O>>(v));
    }
  }
}

template <class T, class O>
__global__ void __launch_bounds__(512) reduce_rows(ReduceArgs a) {
  __shared__ __align__(16) unsigned char scratch[32 * 16];  // 32 warps x the widest partial
  for (int64_t k = blockIdx.x; k < a.K; k += gridDim.x)
    reduce_output<T, O, Mode::block>(a, k, true, threadIdx.x, blockDim.x, scratch);
}

template <class T, class O>
__global__ void __launch_bounds__(512) reduce_columns(ReduceArgs a) {
  __shared__ __align__(16) unsigned char scratch[kColLanes * kColTile * 16];
  for (int64_t k0 = static_cast<int64_t>(blockIdx.x) * kColTile; k0 < a.K;
       k0 += static_cast<int64_t>(gridDim.x) * kColTile) {
    const int64_t k = k0 + threadIdx.x;
    reduce_output<T, O, Mode::columns>(a, k, k < a.K, threadIdx.y, blockDim.y, scratch);
  }
}

void reduce_cuda(const ReduceParams& p) {
  visit_reduce_types(p, [&](auto t_tag, auto o_tag) {
    using T = decltype(t_tag);
    using O = decltype(o_tag);
    const int kept = p.in.ndim - p.reduced;
    ReduceArgs a{};
    a.op = p.op;
    a.in = p.in.data;
    a.out = p.out.data;
    a.idx = p.idx.data ? p.idx.ptr<int64_t>() : nullptr;
    a.correction = p.correction;
    a.K = 1;
    a.R = 1;
    for (int d = 0; d < kept; ++d) a.K *= p.in.size[d];
    for (int d = kept; d < p.in.ndim; ++d) a.R *= p.in.size[d];
    if (a.K == 0) return;
    const int64_t* kst[3] = {p.in.stride, p.out.stride, p.idx.data ? p.idx.stride : p.out.stride};
    a.kept = make_layout<3>(kept, p.in.size, kst);
    const int64_t* rst[1] = {p.in.stride + kept};
    a.row.l = make_layout<1>(p.reduced, p.in.size + kept, rst);
    a.row.ndim = a.row.l.ndim;
    a.row.stride0 = a.row.l.ndim >= 1 ? a.row.l.stride[0][0] : 0;
    const bool inner_contiguous = a.row.ndim == 0 || (a.row.ndim == 1 && a.row.stride0 == 1);
    if (!inner_contiguous && a.K >= kColTile) {
      reduce_columns<T, O><<<grid_for(a.K, kColTile), dim3(kColTile, kColLanes), 0, launch_stream()>>>(a);
    } else {
      const int threads = row_threads(a.R, 512);
      reduce_rows<T, O><<<grid_for(a.K, 1, 1 << 20), threads, 0, launch_stream()>>>(a);
    }
    TESSEL_CUDA_CHECK_LAUNCH("reduce_cuda");
  });
}

}  // namespace
}  // namespace cuda

void register_reduce_cuda(Family<ReduceParams>& fam) { fam.add("cuda", DeviceType::cuda, 10, cuda::reduce_cuda); }

}  // namespace tessel::kernels
