// core/cuda/copy.cu — the device side of copy_into() and fill_raw(): strided copy with dtype
// conversion and broadcasting, and fill.
//
//   dst[i] = convert(src[i])  for every multi-index i of dst's shape (src broadcast: stride 0)
//   dst[i] = value            (fill)
//
// Algorithm: on the host, dims of size 1 are dropped and dims that are contiguous with each
// other in both operands are merged (a packed tensor becomes one dim), so the kernel decodes as
// few dims as possible. One grid-stride loop over dst's flat index then decodes the multi-index
// from the sizes (passed by value, up to 8 dims) and gathers/scatters through the strides. Both
// operands packed and of one dtype is a plain cudaMemcpyAsync (the copy engines' full rate);
// a fill whose bytes are all equal (zeros) is a cudaMemsetAsync. Bytes moved: n * (sizeof(dst)
// + sizeof(src)); no FLOPs. Fast enough for layout changes; the memory-bound op kernels in
// kernels/cuda/ are the ones tuned for bandwidth.
//
// Compiled, not yet verified on hardware: the first GPU run is tools/gpu-check's.
#include <algorithm>
#include <cstring>

#include "core/cuda/check.h"
#include "core/cuda/convert.cuh"
#include "core/cuda/hooks.h"
#include "core/cuda/runtime.h"
#include "core/cuda/stream.h"

namespace tessel::cuda {
namespace {

struct Geometry {
  int ndim = 0;
  int64_t size[kMaxDims] = {};
  int64_t dst_stride[kMaxDims] = {};
  int64_t src_stride[kMaxDims] = {};
};

// Drops size-1 dims and merges neighbours that are contiguous with each other in both
// operands (the CPU copy_loop does the same).
Geometry coalesce(const Buf& d, const int64_t* src_stride) {
  Geometry g;
  for (int i = 0; i < d.ndim; ++i) {
    if (d.size[i] == 1) continue;
    const int n = g.ndim;
    if (n > 0 && g.dst_stride[n - 1] == d.stride[i] * d.size[i] && g.src_stride[n - 1] == src_stride[i] * d.size[i]) {
      g.size[n - 1] *= d.size[i];
      g.dst_stride[n - 1] = d.stride[i];
      g.src_stride[n - 1] = src_stride[i];
      continue;
    }
    g.size[n] = d.size[i];
    g.dst_stride[n] = d.stride[i];
    g.src_stride[n] = src_stride[i];
    ++g.ndim;
  }
  return g;
}

__device__ __forceinline__ void offsets(const Geometry& g, int64_t i, int64_t& doff, int64_t& soff) {
  doff = 0;
  soff = 0;
  for (int d = g.ndim - 1; d >= 0; --d) {
    const int64_t idx = i % g.size[d];
    i /= g.size[d];
    doff += idx * g.dst_stride[d];
    soff += idx * g.src_stride[d];
  }
}

template <class D, class S>
__global__ void strided_copy_kernel(D* dst, const S* src, Geometry g, int64_t n) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    int64_t doff, soff;
    offsets(g, i, doff, soff);
    dst[doff] = convert<D, S>(src[soff]);
  }
}

template <class U>
__global__ void fill_kernel(U* dst, U value, Geometry g, int64_t n) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    int64_t doff, soff;
    offsets(g, i, doff, soff);
    dst[doff] = value;
  }
}

constexpr int kThreads = 256;
int blocks_for(int64_t n) { return static_cast<int>(std::min<int64_t>((n + kThreads - 1) / kThreads, 65535)); }

}  // namespace

void strided_copy(const Buf& dst, const Buf& src, int index) {
  const int64_t n = dst.numel();
  if (n == 0) return;
  DeviceGuard guard(index);
  cudaStream_t stream = current_stream();
  Geometry g = coalesce(dst, src.stride);
  if (dst.dtype == src.dtype && dst.data == src.data && std::equal(g.dst_stride, g.dst_stride + g.ndim, g.src_stride))
    return;  // a tensor copied onto itself
  if (dst.dtype == src.dtype && (g.ndim == 0 || (g.ndim == 1 && g.dst_stride[0] == 1 && g.src_stride[0] == 1))) {
    TESSEL_CUDA_CHECK(cudaMemcpyAsync(dst.data, src.data, static_cast<size_t>(n) * dtype_size(dst.dtype),
                                      cudaMemcpyDeviceToDevice, stream));
    return;
  }
  visit_device_dtype(dst.dtype, [&](auto dt) {
    visit_device_dtype(src.dtype, [&](auto st) {
      using D = decltype(dt);
      using S = decltype(st);
      strided_copy_kernel<D, S>
          <<<blocks_for(n), kThreads, 0, stream>>>(static_cast<D*>(dst.data), static_cast<const S*>(src.data), g, n);
    });
  });
  TESSEL_CUDA_CHECK_LAUNCH("copy_into");
}

void fill(const Buf& dst, double value, int index) {
  const int64_t n = dst.numel();
  if (n == 0) return;
  DeviceGuard guard(index);
  cudaStream_t stream = current_stream();
  // The element's bytes are made on the host by the CPU's own conversion, so a device fill
  // stores exactly what a CPU fill would.
  unsigned char bytes[8] = {};
  const size_t es = dtype_size(dst.dtype);
  visit_dtype(dst.dtype, [&](auto tag) {
    using T = decltype(tag);
    T v = convert_element<T, double>(value);
    std::memcpy(bytes, &v, sizeof(T));
  });
  int64_t zero_strides[kMaxDims] = {};
  Geometry g = coalesce(dst, zero_strides);
  const bool packed = g.ndim == 0 || (g.ndim == 1 && g.dst_stride[0] == 1);
  if (packed && std::all_of(bytes, bytes + es, [&](unsigned char b) { return b == bytes[0]; })) {
    TESSEL_CUDA_CHECK(cudaMemsetAsync(dst.data, bytes[0], static_cast<size_t>(n) * es, stream));
    return;
  }
  auto launch = [&](auto tag) {
    using U = decltype(tag);
    U v;
    std::memcpy(&v, bytes, sizeof(U));
    fill_kernel<U><<<blocks_for(n), kThreads, 0, stream>>>(static_cast<U*>(dst.data), v, g, n);
  };
  switch (es) {
    case 1: launch(uint8_t{}); break;
    case 2: launch(uint16_t{}); break;
    case 4: launch(uint32_t{}); break;
    default: launch(uint64_t{}); break;
  }
  TESSEL_CUDA_CHECK_LAUNCH("fill");
}

}  // namespace tessel::cuda
