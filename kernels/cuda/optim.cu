// kernels/cuda/optim.cu — fused SGD / Adam / AdamW / LAMB updates over many tensors per launch.
//
// Update rules as in kernels/optim.h (the same per-element arithmetic as kernels/optim_update.h,
// in the parameter dtype T, f32 or f64). "Multi-tensor apply" (NVIDIA Apex; PyTorch's foreach
// kernels): up to kMaxSlots tensors' pointers and sizes travel by value in the launch
// parameters, each block finds its tensor from a prefix sum of blocks per tensor, and one
// launch updates them all — a model's hundred small tensors cost a handful of launches
// instead of hundreds. Each element streams its 2-4 inputs and 1-3 outputs once.
// LAMB needs each tensor's norms of w and of the direction r before it can step: a first
// launch updates the moments and writes per-block partial norms, a second reduces each
// tensor's partials in order (deterministic, no atomics) into its trust ratio, a third steps.
//
// Compiled for sm_80/sm_90; not yet verified on hardware.
#include <cmath>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/register.h"
#include "kernels/optim.h"

namespace tessel::kernels {
namespace cuda {
namespace {

constexpr int kMaxSlots = 24;
constexpr int kThreads = 256;
constexpr int64_t kPerBlock = kThreads * 4;  // elements one block updates

template <class T>
struct SlotList {
  int count = 0;
  T* w[kMaxSlots];
  const T* g[kMaxSlots];
  T* m[kMaxSlots];
  T* v[kMaxSlots];
  int64_t n[kMaxSlots];
  bool first[kMaxSlots];
  int64_t block_start[kMaxSlots + 1];  // blocks of slot s: [block_start[s], block_start[s + 1])
};

template <class T>
struct Hyper {
  OptimOp op;
  T lr, wd, lr_wd, mu, one_minus_dampening, b1, b2, c1, c2, eps;
  bool momentum, nesterov;
};

// This block's slot and the first element it updates.
template <class T>
__device__ __forceinline__ int find_slot(const SlotList<T>& s, int64_t& begin) {
  int k = 0;
  while (k + 1 < s.count && static_cast<int64_t>(blockIdx.x) >= s.block_start[k + 1]) ++k;
  begin = (static_cast<int64_t>(blockIdx.x) - s.block_start[k]) * kPerBlock;
  return k;
}

template <class T>
__device__ __forceinline__ T adam_dir(T g, T& m, T& v, const Hyper<T>& h) {
  m = h.b1 * m + (T(1) - h.b1) * g;
  v = h.b2 * v + (T(1) - h.b2) * g * g;
  return (m / h.c1) / (sqrt(v / h.c2) + h.eps);
}

template <class T>
__global__ void optim_step(SlotList<T> s, Hyper<T> h) {
  int64_t begin;
  const int k = find_slot(s, begin);
  const int64_t end = begin + kPerBlock < s.n[k] ? begin + kPerBlock : s.n[k];
  T* w = s.w[k];
  const T* g = s.g[k];
  T* m = s.m[k];
  T* v = s.v[k];
  for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
    if (h.op == OptimOp::sgd) {
      T d = g[i] + h.wd * w[i];
      if (h.momentum) {
        m[i] = s.first[k] ? d : h.mu * m[i] + h.one_minus_dampening * d;
        d = h.nesterov ? d + h.mu * m[i] : m[i];
      }
      w[i] -= h.lr * d;
    } else {  // adam, adamw
      T grad = g[i];
      if (h.op == OptimOp::adamw)
        w[i] -= h.lr_wd * w[i];
      else
        grad += h.wd * w[i];
      w[i] -= h.lr * adam_dir(grad, m[i], v[i], h);
    }
  }
}

// LAMB, first launch: moments, and this block's sums of w^2 and r^2 (r = u + wd w).
template <class T>
__global__ void lamb_moments(SlotList<T> s, Hyper<T> h, double* partial) {
  __shared__ double scratch[32];
  int64_t begin;
  const int k = find_slot(s, begin);
  const int64_t end = begin + kPerBlock < s.n[k] ? begin + kPerBlock : s.n[k];
  double wn = 0, rn = 0;
  for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
    const T w = s.w[k][i];
    const T r = adam_dir(s.g[k][i], s.m[k][i], s.v[k][i], h) + h.wd * w;
    wn += double(w) * double(w);
    rn += double(r) * double(r);
  }
  wn = block_sum(wn, scratch);
  rn = block_sum(rn, scratch);
  if (threadIdx.x == 0) {
    partial[2 * blockIdx.x] = wn;
    partial[2 * blockIdx.x + 1] = rn;
  }
}

// LAMB, second launch: one thread per slot adds its blocks' partials in order.
template <class T>
__global__ void lamb_ratio(SlotList<T> s, const double* partial, double* ratio) {
  const int k = threadIdx.x;
  if (k >= s.count) return;
  double wn = 0, rn = 0;
  for (int64_t b = s.block_start[k]; b < s.block_start[k + 1]; ++b) {
    wn += partial[2 * b];
    rn += partial[2 * b + 1];
  }
  ratio[k] = (wn > 0 && rn > 0) ? sqrt(wn) / sqrt(rn) : 1.0;
}

template <class T>
__global__ void lamb_apply(SlotList<T> s, Hyper<T> h, double lr, const double* ratio) {
  int64_t begin;
  const int k = find_slot(s, begin);
  const int64_t end = begin + kPerBlock < s.n[k] ? begin + kPerBlock : s.n[k];
  const T step = T(lr * ratio[k]);
  for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
    T* w = s.w[k];
    const T r = (s.m[k][i] / h.c1) / (sqrt(s.v[k][i] / h.c2) + h.eps) + h.wd * w[i];
    w[i] -= step * r;
  }
}

template <class T>
void launch_list(const OptimParams& p, const Hyper<T>& h, const SlotList<T>& s) {
  const int64_t blocks = s.block_start[s.count];
  if (blocks == 0) return;
  check(blocks < (int64_t(1) << 31), "optim_cuda", "too many elements in one launch");
  const cudaStream_t stream = launch_stream();
  if (p.op != OptimOp::lamb) {
    optim_step<T><<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(s, h);
    TESSEL_CUDA_CHECK_LAUNCH("optim_cuda");
    return;
  }
  double* scratch = nullptr;
  const size_t bytes = sizeof(double) * static_cast<size_t>(2 * blocks + kMaxSlots);
  TESSEL_CUDA_CHECK(cudaMallocAsync(reinterpret_cast<void**>(&scratch), bytes, stream));
  double* ratio = scratch + 2 * blocks;
  lamb_moments<T><<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(s, h, scratch);
  cudaError_t err = cudaGetLastError();
  if (err == cudaSuccess) {
    lamb_ratio<T><<<1, 32, 0, stream>>>(s, scratch, ratio);
    err = cudaGetLastError();
  }
  if (err == cudaSuccess) {
    lamb_apply<T><<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(s, h, p.lr, ratio);
    err = cudaGetLastError();
  }
  TESSEL_CUDA_CHECK(cudaFreeAsync(scratch, stream));
  if (err != cudaSuccess) fail("optim_cuda", "kernel launch failed: ", cudaGetErrorString(err));
}

template <class T>
void optim_cuda_typed(const OptimParams& p) {
  Hyper<T> h{};
  h.op = p.op;
  h.lr = T(p.lr);
  h.wd = T(p.weight_decay);
  h.lr_wd = T(p.lr * p.weight_decay);
  h.mu = T(p.momentum);
  h.one_minus_dampening = T(1) - T(p.dampening);
  h.momentum = p.momentum != 0;
  h.nesterov = p.nesterov;
  h.b1 = T(p.beta1);
  h.b2 = T(p.beta2);
  h.c1 = T(1 - std::pow(p.beta1, static_cast<double>(p.step)));
  h.c2 = T(1 - std::pow(p.beta2, static_cast<double>(p.step)));
  h.eps = T(p.eps);
  SlotList<T> s;
  s.block_start[0] = 0;
  for (const OptimSlot& slot : p.slots) {
    const int k = s.count;
    s.w[k] = slot.param.ptr<T>();
    s.g[k] = slot.grad.ptr<const T>();
    s.m[k] = slot.m.data ? slot.m.ptr<T>() : nullptr;
    s.v[k] = slot.v.data ? slot.v.ptr<T>() : nullptr;
    s.n[k] = slot.param.numel();
    s.first[k] = slot.first;
    s.block_start[k + 1] = s.block_start[k] + (s.n[k] + kPerBlock - 1) / kPerBlock;
    if (++s.count == kMaxSlots) {
      launch_list(p, h, s);
      s.count = 0;
    }
  }
  if (s.count > 0) launch_list(p, h, s);
}

void optim_cuda(const OptimParams& p) {
  if (p.slots.empty()) return;
  if (p.slots[0].param.dtype == DType::f64)
    optim_cuda_typed<double>(p);
  else
    optim_cuda_typed<float>(p);
}

}  // namespace
}  // namespace cuda

void register_optim_cuda(Family<OptimParams>& fam) { fam.add("cuda", DeviceType::cuda, 10, cuda::optim_cuda); }

}  // namespace tessel::kernels
