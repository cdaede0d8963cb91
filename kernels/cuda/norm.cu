// kernels/cuda/norm.cu — LayerNorm and RMSNorm over the last dim, forward and backward.
//
// Formulas and layout as in kernels/norm.h: x, y, dy, dx contiguous [rows, cols]; w, b, dw, db
// [cols]; mean, rstd [rows] (f32, f64 for f64). Compute in f32 (f64 for f64 inputs).
//
// Forward: one block per row. Mean, then variance around it (two passes, as accurate as the
// CPU's), then y; the row's re-reads come from L1/L2, so DRAM sees x once and y once.
// Backward, dx: one block per row reduces mean(g) and mean(g xhat), then writes dx.
// Backward, dw and db (sums over rows): a row-chunked partial pass — block (32 columns x 8
// rows) over a chunk of rows, coalesced along columns — writes per-chunk partials, and a
// second pass adds the chunks in order. No atomics: the result is deterministic. Scratch for
// the partials comes from cudaMallocAsync on the launch stream.
// Bytes: forward 2 rows*cols elements; backward 3 (x, dy, dx) plus x and dy again for dw/db.
//
// Compiled for sm_80/sm_90; not yet verified on hardware.
#include <cmath>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/register.h"
#include "kernels/norm.h"

namespace tessel::kernels {
namespace cuda {
namespace {

template <class T>
using norm_acc_t = float_acc_t<acc_t<T>>;

template <class T>
struct NormArgs {
  int64_t rows, cols;
  double eps;
  bool layer;
  const T* x;
  const T* w;
  const T* b;
  const T* dy;
  T* y;
  T* dx;
  norm_acc_t<T>* mean;  // the statistics dtype equals the compute type
  norm_acc_t<T>* rstd;
};

template <class T>
__global__ void __launch_bounds__(512) norm_forward(NormArgs<T> a) {
  using A = norm_acc_t<T>;
  __shared__ A scratch[32];
  const int64_t C = a.cols;
  for (int64_t r = blockIdx.x; r < a.rows; r += gridDim.x) {
    const T* x = a.x + r * C;
    A mu = 0;
    if (a.layer) {
      A s = 0;
      for (int64_t c = threadIdx.x; c < C; c += blockDim.x) s += static_cast<A>(load(x + c));
      mu = block_sum(s, scratch) / static_cast<A>(C);
    }
    A ss = 0;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
      const A d = static_cast<A>(load(x + c)) - mu;
      ss += d * d;
    }
    const A rstd = A(1) / sqrt(block_sum(ss, scratch) / static_cast<A>(C) + static_cast<A>(a.eps));
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
      A v = (static_cast<A>(load(x + c)) - mu) * rstd;
      if (a.w) v *= static_cast<A>(load(a.w + c));
      if (a.b) v += static_cast<A>(load(a.b + c));
      store(a.y + r * C + c, v);
    }
    if (threadIdx.x == 0) {
      if (a.layer) a.mean[r] = mu;
      a.rstd[r] = rstd;
    }
    __syncthreads();
  }
}

template <class T>
__global__ void __launch_bounds__(512) norm_backward_dx(NormArgs<T> a) {
  using A = norm_acc_t<T>;
  __shared__ A scratch[32];
  const int64_t C = a.cols;
  for (int64_t r = blockIdx.x; r < a.rows; r += gridDim.x) {
    const T* x = a.x + r * C;
    const T* dy = a.dy + r * C;
    const A mu = a.layer ? a.mean[r] : A(0), rstd = a.rstd[r];
    A sg = 0, sgx = 0;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
      const A xhat = (static_cast<A>(load(x + c)) - mu) * rstd;
      A g = static_cast<A>(load(dy + c));
      if (a.w) g *= static_cast<A>(load(a.w + c));
      sg += g;
      sgx += g * xhat;
    }
    const A mean_g = a.layer ? block_sum(sg, scratch) / static_cast<A>(C) : A(0);
    const A mean_gx = block_sum(sgx, scratch) / static_cast<A>(C);
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
      const A xhat = (static_cast<A>(load(x + c)) - mu) * rstd;
      A g = static_cast<A>(load(dy + c));
      if (a.w) g *= static_cast<A>(load(a.w + c));
      store(a.dx + r * C + c, rstd * (g - mean_g - xhat * mean_gx));
    }
    __syncthreads();
  }
}

constexpr int kColTile = 32, kRowLanes = 8;

// partial_w[chunk, c] = sum over the chunk's rows of dy xhat; partial_b likewise of dy.
template <class T>
__global__ void norm_backward_partials(NormArgs<T> a, int64_t rows_per_chunk, norm_acc_t<T>* partial_w,
                                       norm_acc_t<T>* partial_b) {
  using A = norm_acc_t<T>;
  __shared__ A sw[kRowLanes][kColTile + 1], sb[kRowLanes][kColTile + 1];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t c = static_cast<int64_t>(blockIdx.x) * kColTile + tx;
  const int64_t chunk = blockIdx.y;
  const int64_t r0 = chunk * rows_per_chunk;
  const int64_t r1 = r0 + rows_per_chunk < a.rows ? r0 + rows_per_chunk : a.rows;
  A dw = 0, db = 0;
  if (c < a.cols)
    for (int64_t r = r0 + ty; r < r1; r += kRowLanes) {
      const A mu = a.layer ? a.mean[r] : A(0);
      const A xhat = (static_cast<A>(load(a.x + r * a.cols + c)) - mu) * a.rstd[r];
      const A d = static_cast<A>(load(a.dy + r * a.cols + c));
      dw += d * xhat;
      db += d;
    }
  sw[ty][tx] = dw;
  sb[ty][tx] = db;
  __syncthreads();
  if (ty == 0 && c < a.cols) {
    for (int k = 1; k < kRowLanes; ++k) {
      dw += sw[k][tx];
      db += sb[k][tx];
    }
    partial_w[chunk * a.cols + c] = dw;
    partial_b[chunk * a.cols + c] = db;
  }
}

template <class T>
__global__ void norm_backward_finish(int64_t cols, int64_t chunks, const norm_acc_t<T>* partial_w,
                                     const norm_acc_t<T>* partial_b, T* dweight, T* dbias) {
  using A = norm_acc_t<T>;
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= cols) return;
  A dw = 0, db = 0;
  for (int64_t k = 0; k < chunks; ++k) {
    dw += partial_w[k * cols + c];
    db += partial_b[k * cols + c];
  }
  if (dweight) store(dweight + c, dw);
  if (dbias) store(dbias + c, db);
}

template <class T>
void norm_cuda_typed(const NormParams& p) {
  using A = norm_acc_t<T>;
  NormArgs<T> a{};
  a.rows = p.rows;
  a.cols = p.cols;
  a.eps = p.eps;
  a.layer = norm_is_layer(p.op);
  a.x = p.x.ptr<const T>();
  a.w = p.weight.data ? p.weight.ptr<const T>() : nullptr;
  a.b = p.bias.data ? p.bias.ptr<const T>() : nullptr;
  a.mean = a.layer ? p.mean.ptr<A>() : nullptr;
  a.rstd = p.rstd.ptr<A>();
  if (p.rows == 0 || p.cols == 0) return;
  const cudaStream_t stream = launch_stream();
  const int threads = row_threads(p.cols, 512);
  const unsigned row_blocks = grid_for(p.rows, 1, 1 << 20);
  if (!norm_is_backward(p.op)) {
    a.y = p.y.ptr<T>();
    norm_forward<T><<<row_blocks, threads, 0, stream>>>(a);
    TESSEL_CUDA_CHECK_LAUNCH("norm_cuda");
    return;
  }
  a.dy = p.dy.ptr<const T>();
  if (p.dx.data) {
    a.dx = p.dx.ptr<T>();
    norm_backward_dx<T><<<row_blocks, threads, 0, stream>>>(a);
    TESSEL_CUDA_CHECK_LAUNCH("norm_cuda");
  }
  if (!p.dweight.data && !p.dbias.data) return;
  // About 64 rows per chunk, at most 256 chunks: enough blocks to fill the GPU for narrow rows.
  int64_t chunks = (p.rows + 63) / 64;
  if (chunks > 256) chunks = 256;
  const int64_t rows_per_chunk = (p.rows + chunks - 1) / chunks;
  chunks = (p.rows + rows_per_chunk - 1) / rows_per_chunk;
  A* partial = nullptr;
  const size_t bytes = sizeof(A) * 2 * static_cast<size_t>(chunks * p.cols);
  TESSEL_CUDA_CHECK(cudaMallocAsync(reinterpret_cast<void**>(&partial), bytes, stream));
  const dim3 grid(static_cast<unsigned>((p.cols + kColTile - 1) / kColTile), static_cast<unsigned>(chunks));
  norm_backward_partials<T>
      <<<grid, dim3(kColTile, kRowLanes), 0, stream>>>(a, rows_per_chunk, partial, partial + chunks * p.cols);
  cudaError_t launch_err = cudaGetLastError();
  if (launch_err == cudaSuccess) {
    norm_backward_finish<T><<<static_cast<unsigned>((p.cols + 255) / 256), 256, 0, stream>>>(
        p.cols, chunks, partial, partial + chunks * p.cols, p.dweight.data ? p.dweight.ptr<T>() : nullptr,
        p.dbias.data ? p.dbias.ptr<T>() : nullptr);
    launch_err = cudaGetLastError();
  }
  TESSEL_CUDA_CHECK(cudaFreeAsync(partial, stream));
  if (launch_err != cudaSuccess) fail("norm_cuda", "kernel launch failed: ", cudaGetErrorString(launch_err));
}

void norm_cuda(const NormParams& p) {
  visit_floating(p.x.dtype, "norm_cuda", [&](auto tag) { norm_cuda_typed<decltype(tag)>(p); });
}

}  // namespace
}  // namespace cuda

void register_norm_cuda(Family<NormParams>& fam) { fam.add("cuda", DeviceType::cuda, 10, cuda::norm_cuda); }

}  // namespace tessel::kernels
