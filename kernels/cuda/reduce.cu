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
//  - column: one thread per output, walking its R inputs serially. Picked when the reduced
//    dims are strided and there are many outputs (sum over dim 0 of [N, D]): neighbouring
//    threads then read neighbouring addresses, which the row kernel could not.
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

// One output, folded by `nthreads` cooperating threads (the block, or just this thread).
// `scratch` is shared memory when cooperating, unused otherwise.
template <class T, class O, bool Block>
__device__ void reduce_output(const ReduceArgs& a, int64_t k, int t0, int nthreads, void* scratch) {
  int64_t off[3];
  a.kept.offsets(k, off);
  const T* in = static_cast<const T*>(a.in) + off[0];
  const int64_t R = a.R;
  if (a.op == ReduceOp::sum || a.op == ReduceOp::mean) {
    using A = sum_acc_t<T>;
    A acc = 0;
    for (int64_t r = t0; r < R; r += nthreads) acc += static_cast<A>(load(in + a.row.at(r)));
    if constexpr (Block) acc = block_sum(acc, static_cast<A*>(scratch));
    if (t0 == 0) {
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
    if constexpr (Block) best = block_best(best, want_max, static_cast<Best<A>*>(scratch));
    if (t0 == 0) {
      store(static_cast<O*>(a.out) + off[1], best.v);
      if (a.idx) a.idx[off[2]] = best.i < 0 ? 0 : best.i;
    }
  } else {  // var
    using V = var_acc_t<T>;
    V s = 0;
    for (int64_t r = t0; r < R; r += nthreads) s += static_cast<V>(load(in + a.row.at(r)));
    if constexpr (Block) s = block_sum(s, static_cast<V*>(scratch));
    const V mean = s / static_cast<V>(R);
    V ss = 0;
    for (int64_t r = t0; r < R; r += nthreads) {
      const V d = static_cast<V>(load(in + a.row.at(r))) - mean;
      ss += d * d;
    }
    if constexpr (Block) ss = block_sum(ss, static_cast<V*>(scratch));
    if (t0 == 0) {
      const double denom = static_cast<double>(R) - a.correction;
      const double v = denom > 0 ? static_cast<double>(ss) / denom : __longlong_as_double(0x7ff8000000000000ll);
      store(static_cast<O*>(a.out) + off[1], static_cast<acc_t<O>>(v));
    }
  }
}

template <class T, class O>
__global__ void reduce_rows(ReduceArgs a) {
  __shared__ __align__(16) unsigned char scratch[32 * 16];  // 32 warps x the widest partial
  for (int64_t k = blockIdx.x; k < a.K; k += gridDim.x)
    reduce_output<T, O, true>(a, k, threadIdx.x, blockDim.x, scratch);
}

template <class T, class O>
__global__ void reduce_columns(ReduceArgs a) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t k = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < a.K; k += step)
    reduce_output<T, O, false>(a, k, 0, 1, nullptr);
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
    if (!inner_contiguous && a.K >= 128) {
      reduce_columns<T, O><<<grid_for(a.K, 128), 128, 0, launch_stream()>>>(a);
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
