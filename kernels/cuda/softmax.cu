// kernels/cuda/softmax.cu — softmax, log_softmax and their gradients along the last dim.
//
// Formulas and layout as in kernels/softmax.h: rows of C elements, [R0.., C], any strides.
//   softmax      y = exp(x - m) / s,  m = max_c x,  s = sum_c exp(x_c - m)
//   log_softmax  y = x - m - log s
//   backward     dx = y (dy - sum_c dy_c y_c)      |   dx = dy - exp(y) sum_c dy_c
// Compute in f32 (f64 for f64 inputs).
//
// Two kernels:
//  - warp per row (C <= 1024): the row sits in registers, 32 values per lane at most; the max
//    and the sums are warp shuffles, so x is read from memory once and y written once —
//    2 * C elements of traffic, the minimum.
//  - block per row (C > 1024): each thread keeps a running max and a sum rescaled whenever
//    the max grows ("Online normalizer calculation for softmax", Milakov & Gimelshein 2018),
//    so the statistics take one pass; a second pass writes y. 3 * C elements of traffic
//    (the second read mostly hits L2 for rows that fit there).
// Neither needs scratch memory or atomics; results are deterministic.
//
// Compiled for sm_80/sm_90; not yet verified on hardware.
#include <cmath>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/register.h"
#include "kernels/softmax.h"

namespace tessel::kernels {
namespace cuda {
namespace {

struct SoftmaxArgs {
  SoftmaxOp op;
  bool bwd;  // softmax_is_backward(op), which is host-only
  const void* in;
  const void* grad;
  void* out;
  Layout<3> rows;  // operands: in, out, grad
  int64_t R, C;
  int64_t si, so, sg;  // strides along the row
};

template <class A>
__device__ __forceinline__ A neg_inf() {
  return -static_cast<A>(INFINITY);
}

// One warp per row; lane l holds elements l, l + 32, ... (at most 32 of them).
template <class T>
__global__ void __launch_bounds__(128) softmax_warp(SoftmaxArgs a) {
  using A = float_acc_t<acc_t<T>>;
  const int lane = threadIdx.x & 31;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x >> 5);
  const bool bwd = a.bwd;
  for (int64_t r = static_cast<int64_t>(blockIdx.x) * (blockDim.x >> 5) + (threadIdx.x >> 5); r < a.R; r += warps) {
    int64_t off[3];
    a.rows.offsets(r, off);
    const T* x = static_cast<const T*>(a.in) + off[0];
    T* y = static_cast<T*>(a.out) + off[1];
    const T* g = bwd ? static_cast<const T*>(a.grad) + off[2] : nullptr;
    A v[32], d[32];
#pragma unroll
    for (int j = 0; j < 32; ++j) {
      const int64_t c = lane + 32 * j;
      v[j] = c < a.C ? static_cast<A>(load(x + c * a.si)) : A(0);
      d[j] = (bwd && c < a.C) ? static_cast<A>(load(g + c * a.sg)) : A(0);
    }
    if (!bwd) {
      A m = neg_inf<A>();
#pragma unroll
      for (int j = 0; j < 32; ++j)
        if (lane + 32 * j < a.C) m = nan_max(m, v[j]);
      m = warp_max(m);
      A s = 0;
#pragma unroll
      for (int j = 0; j < 32; ++j)
        if (lane + 32 * j < a.C) s += exp(v[j] - m);
      s = warp_sum(s);
      const A ls = log(s);
#pragma unroll
      for (int j = 0; j < 32; ++j) {
        const int64_t c = lane + 32 * j;
        if (c < a.C) store(y + c * a.so, a.op == SoftmaxOp::softmax ? exp(v[j] - m) / s : v[j] - m - ls);
      }
    } else {
      A s = 0;
#pragma unroll
      for (int j = 0; j < 32; ++j)
        if (lane + 32 * j < a.C) s += a.op == SoftmaxOp::softmax_backward ? d[j] * v[j] : d[j];
      s = warp_sum(s);
#pragma unroll
      for (int j = 0; j < 32; ++j) {
        const int64_t c = lane + 32 * j;
        if (c < a.C)
          store(y + c * a.so, a.op == SoftmaxOp::softmax_backward ? v[j] * (d[j] - s) : d[j] - exp(v[j]) * s);
      }
    }
  }
}

// One block per row, for long rows.
template <class T>
__global__ void __launch_bounds__(512) softmax_block(SoftmaxArgs a) {
  using A = float_acc_t<acc_t<T>>;
  __shared__ A scratch[32];
  const bool bwd = a.bwd;
  for (int64_t r = blockIdx.x; r < a.R; r += gridDim.x) {
    int64_t off[3];
    a.rows.offsets(r, off);
    const T* x = static_cast<const T*>(a.in) + off[0];
    T* y = static_cast<T*>(a.out) + off[1];
    const T* g = bwd ? static_cast<const T*>(a.grad) + off[2] : nullptr;
    if (!bwd) {
      A m = neg_inf<A>(), s = 0;
      for (int64_t c = threadIdx.x; c < a.C; c += blockDim.x) {
        const A v = static_cast<A>(load(x + c * a.si));
        if (v != v || v > m) {  // a new running max: rescale what was summed so far
          s = s == A(0) ? A(0) : s * exp(m - v);
          m = v;
        }
        s += v == neg_inf<A>() ? A(0) : exp(v - m);
      }
      const A mrow = block_max(m, scratch);
      const A srow = block_sum(s == A(0) ? A(0) : s * exp(m - mrow), scratch);
      const A ls = log(srow);
      for (int64_t c = threadIdx.x; c < a.C; c += blockDim.x) {
        const A v = static_cast<A>(load(x + c * a.si));
        store(y + c * a.so, a.op == SoftmaxOp::softmax ? exp(v - mrow) / srow : v - mrow - ls);
      }
    } else {
      A s = 0;
      for (int64_t c = threadIdx.x; c < a.C; c += blockDim.x) {
        const A d = static_cast<A>(load(g + c * a.sg));
        s += a.op == SoftmaxOp::softmax_backward ? d * static_cast<A>(load(x + c * a.si)) : d;
      }
      s = block_sum(s, scratch);
      for (int64_t c = threadIdx.x; c < a.C; c += blockDim.x) {
        const A v = static_cast<A>(load(x + c * a.si)), d = static_cast<A>(load(g + c * a.sg));
        store(y + c * a.so, a.op == SoftmaxOp::softmax_backward ? v * (d - s) : d - exp(v) * s);
      }
    }
    __syncthreads();  // scratch is reused by the next row
  }
}

void softmax_cuda(const SoftmaxParams& p) {
  visit_floating(p.in.dtype, "softmax_cuda", [&](auto tag) {
    using T = decltype(tag);
    const bool bwd = softmax_is_backward(p.op);
    const int outer = p.in.ndim - 1;
    SoftmaxArgs a{};
    a.op = p.op;
    a.bwd = bwd;
    a.in = p.in.data;
    a.grad = bwd ? p.grad.data : nullptr;
    a.out = p.out.data;
    a.C = p.in.size[outer];
    a.R = 1;
    for (int d = 0; d < outer; ++d) a.R *= p.in.size[d];
    if (a.R == 0 || a.C == 0) return;
    a.si = p.in.stride[outer];
    a.so = p.out.stride[outer];
    a.sg = bwd ? p.grad.stride[outer] : 0;
    const int64_t* st[3] = {p.in.stride, p.out.stride, bwd ? p.grad.stride : p.in.stride};
    a.rows = make_layout<3>(outer, p.in.size, st);
    if (a.C <= 1024) {
      constexpr int threads = 128;  // 4 rows per block
      softmax_warp<T><<<grid_for(a.R, threads / 32, 1 << 20), threads, 0, launch_stream()>>>(a);
    } else {
      softmax_block<T><<<grid_for(a.R, 1, 1 << 20), 512, 0, launch_stream()>>>(a);
    }
    TESSEL_CUDA_CHECK_LAUNCH("softmax_cuda");
  });
}

}  // namespace
}  // namespace cuda

void register_softmax_cuda(Family<SoftmaxParams>& fam) { fam.add("cuda", DeviceType::cuda, 10, cuda::softmax_cuda); }

}  // namespace tessel::kernels
