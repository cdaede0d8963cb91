// kernels/cuda/elementwise.cu — every elementwise op on the GPU.
//
//   out[i] = f(in0[i], in1[i], in2[i]; alpha, beta)     for every multi-index i of out
//
// f is apply_elementwise() from kernels/elementwise.h, the same scalar formula the CPU runs
// (marked TESSEL_HOST_DEVICE), computed in acc_t<T> (f32 for bf16/f16). Shapes: out and the
// inputs share out's shape; inputs may have any strides (0 along broadcast dims).
//
// Two rungs, both registered as the one version "cuda":
//  - contiguous: every operand dense and 16-byte aligned. Each thread moves one 16-byte pack
//    per operand (float4, 8 x bf16, 2 x f64) per step of a grid-stride loop: the fewest memory
//    transactions per byte, so the kernel runs at copy bandwidth. Leftover elements (n not a
//    multiple of the pack) are done one by one by the first threads.
//  - strided: any layout. Dims contiguous in every operand are merged first (a broadcast bias
//    add over [N, D] becomes 2 dims), then each thread decodes its output index into operand
//    offsets with one division per dim.
// Bytes moved: n * (sizeof(out) + arity * sizeof(in)); FLOPs: a few per element. Memory-bound.
//
// Compiled for sm_80/sm_90; not yet verified on hardware.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/register.h"
#include "kernels/elementwise_loop.h"

namespace tessel::kernels {
namespace cuda {
namespace {

// The op's compute, output and input types and its arity: the CPU loop's (elementwise_loop.h).
template <EwOp OP, class T>
using EwTypes = EwStep<OP, T>;

template <EwOp OP, class T>
struct EwArgs {
  typename EwTypes<OP, T>::Out* out;
  const typename EwTypes<OP, T>::In0* a;
  const T* b;
  const T* c;
  double alpha, beta;
};

template <EwOp OP, class T>
__device__ __forceinline__ typename EwTypes<OP, T>::C ew_compute(const typename EwTypes<OP, T>::In0& a, const T& b,
                                                                 const T& c, double alpha, double beta) {
  using Ty = EwTypes<OP, T>;
  using C = typename Ty::C;
  C va = static_cast<C>(load(&a));
  C vb = C(0), vc = C(0);
  if constexpr (Ty::arity >= 2) vb = static_cast<C>(load(&b));
  if constexpr (Ty::arity >= 3) vc = static_cast<C>(load(&c));
  return apply_elementwise<OP, C>(va, vb, vc, alpha, beta);
}

template <EwOp OP, class T>
__device__ __forceinline__ void ew_one(const EwArgs<OP, T>& g, int64_t o, int64_t ia, int64_t ib, int64_t ic) {
  constexpr int arity = EwTypes<OP, T>::arity;
  const T zero{};
  store(g.out + o,
        ew_compute<OP, T>(g.a[ia], arity >= 2 ? g.b[ib] : zero, arity >= 3 ? g.c[ic] : zero, g.alpha, g.beta));
}

template <EwOp OP, class T>
__global__ void ew_strided(EwArgs<OP, T> g, Layout<4> l, int64_t n) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    int64_t off[4];
    l.offsets(i, off);
    ew_one(g, off[0], off[1], off[2], off[3]);
  }
}

template <class E, int V>
struct alignas(sizeof(E) * V) Pack {
  E v[V];
};

// V elements per thread per step: 16 bytes of T.
template <EwOp OP, class T, int V>
__global__ void ew_contiguous(EwArgs<OP, T> g, int64_t n) {
  using Ty = EwTypes<OP, T>;
  using Out = typename Ty::Out;
  using In0 = typename Ty::In0;
  const int64_t nvec = n / V;
  const int64_t tid = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = tid; i < nvec; i += step) {
    const Pack<In0, V> pa = reinterpret_cast<const Pack<In0, V>*>(g.a)[i];
    Pack<T, V> pb{}, pc{};
    if constexpr (Ty::arity >= 2) pb = reinterpret_cast<const Pack<T, V>*>(g.b)[i];
    if constexpr (Ty::arity >= 3) pc = reinterpret_cast<const Pack<T, V>*>(g.c)[i];
    Pack<Out, V> po;
#pragma unroll
    for (int j = 0; j < V; ++j) store(&po.v[j], ew_compute<OP, T>(pa.v[j], pb.v[j], pc.v[j], g.alpha, g.beta));
    reinterpret_cast<Pack<Out, V>*>(g.out)[i] = po;
  }
  const int64_t tail = nvec * V + tid;
  if (tail < n) ew_one(g, tail, tail, tail, tail);
}

template <int V, class E>
bool aligned_to(const E* p) {
  return reinterpret_cast<uintptr_t>(p) % (sizeof(E) * V) == 0;
}

template <EwOp OP, class T>
void launch(const ElementwiseParams& p, int64_t n) {
  using Ty = EwTypes<OP, T>;
  EwArgs<OP, T> g{p.out.ptr<typename Ty::Out>(),
                  p.in[0].ptr<typename Ty::In0>(),
                  p.in[1].ptr<T>(),
                  p.in[2].ptr<T>(),
                  p.alpha,
                  p.beta};
  const int64_t* strides[4] = {p.out.stride, p.in[0].stride, Ty::arity >= 2 ? p.in[1].stride : p.out.stride,
                               Ty::arity >= 3 ? p.in[2].stride : p.out.stride};
  const Layout<4> l = make_layout<4>(p.out.ndim, p.out.size, strides);
  bool dense = l.ndim <= 1;
  for (int k = 0; k < 4 && dense && l.ndim == 1; ++k) dense = l.stride[k][0] == 1;
  constexpr int V = 16 / sizeof(T) > 0 ? static_cast<int>(16 / sizeof(T)) : 1;
  const bool packed = dense && aligned_to<V>(g.out) && aligned_to<V>(g.a) && (Ty::arity < 2 || aligned_to<V>(g.b)) &&
                      (Ty::arity < 3 || aligned_to<V>(g.c));
  constexpr int threads = 256;
  if (packed) {
    const int64_t nvec = n / V;
    // enough threads for the packs and for the tail (fewer than V elements)
    ew_contiguous<OP, T, V><<<grid_for(nvec > V ? nvec : V, threads), threads, 0, launch_stream()>>>(g, n);
  } else {
    ew_strided<OP, T><<<grid_for(n, threads), threads, 0, launch_stream()>>>(g, l, n);
  }
  TESSEL_CUDA_CHECK_LAUNCH("elementwise_cuda");
}

void elementwise_cuda(const ElementwiseParams& p) {
  const int64_t n = p.out.numel();
  if (n == 0) return;
  visit_dtype(p.in[1].data ? p.in[1].dtype : p.in[0].dtype, [&](auto tag) {
    using T = decltype(tag);
    visit_ew_op(p.op, [&](auto op_c) {
      constexpr EwOp OP = decltype(op_c)::value;
      if constexpr (!ew_supported<OP, T>())
        fail("elementwise_cuda", "op ", ew_name(OP), " is not defined for dtype ", dtype_name(dtype_of<T>()));
      else
        launch<OP, T>(p, n);
    });
  });
}

}  // namespace
}  // namespace cuda

void register_elementwise_cuda(Family<ElementwiseParams>& fam) {
  fam.add("cuda", DeviceType::cuda, 10, cuda::elementwise_cuda);
}

}  // namespace tessel::kernels
