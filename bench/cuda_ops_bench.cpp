// bench/cuda_ops_bench.cpp — the CUDA op kernels against the device's own copy bandwidth.
//
// Memory-bound kernels are judged by how close they come to a device-to-device cudaMemcpy,
// the fastest any kernel can stream memory: "cuda_copy/d2d" measures it (bytes read + written
// per second), and every other entry reports GB/s and pct_peak = 100 * GB/s / that rate
// (the target: >= 80% for elementwise and softmax). Bytes are each operand read or
// written once — the minimum any algorithm must move. Timing is by cudaEvents around the
// benchmark loop on the launch stream (no host synchronisation inside the loop), UseManualTime.
// Buffers are raw cudaMalloc allocations filled from the host, so the kernels are measured
// alone, without the tensor layer. Entries skip themselves where no CUDA device exists.
// Only compiled with the CUDA backend (bench/CMakeLists.txt).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "core/cuda/check.h"
#include "kernels/elementwise.h"
#include "kernels/index.h"
#include "kernels/loss.h"
#include "kernels/norm.h"
#include "kernels/optim.h"
#include "kernels/reduce.h"
#include "kernels/softmax.h"
#include "tessel.h"

namespace {

using namespace tessel;
using namespace tessel::kernels;

// A device buffer of n elements of dtype t, filled with values in [-1, 1) (or [0, hi) for
// integer index buffers), freed at scope exit.
struct DevBuf {
  void* ptr = nullptr;
  size_t bytes = 0;
  DevBuf(int64_t n, DType t, int64_t int_hi = 0) : bytes(static_cast<size_t>(n) * dtype_size(t)) {
    TESSEL_CUDA_CHECK(cudaMalloc(&ptr, std::max<size_t>(bytes, 1)));
    std::vector<unsigned char> host(bytes);
    std::mt19937_64 rng(42);
    std::uniform_real_distribution<float> u(-1.f, 1.f);
    for (int64_t i = 0; i < n; ++i) {
      unsigned char* dst = host.data() + static_cast<size_t>(i) * dtype_size(t);
      visit_dtype(t, [&](auto tag) {
        using T = decltype(tag);
        T v;
        if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>)
          v = static_cast<T>(int_hi > 0 ? static_cast<int64_t>(rng() % static_cast<uint64_t>(int_hi)) : 0);
        else if constexpr (std::is_same_v<T, bool>)
          v = (rng() & 1) != 0;
        else
          v = static_cast<T>(u(rng));
        std::memcpy(dst, &v, sizeof(T));
      });
    }
    TESSEL_CUDA_CHECK(cudaMemcpy(ptr, host.data(), bytes, cudaMemcpyHostToDevice));
  }
  ~DevBuf() { cudaFree(ptr); }
  DevBuf(const DevBuf&) = delete;
  DevBuf& operator=(const DevBuf&) = delete;
  // A contiguous Buf of `shape` over this memory.
  Buf buf(DType t, const Shape& shape) const {
    Buf b;
    b.data = ptr;
    b.dtype = t;
    b.ndim = static_cast<int>(shape.size());
    int64_t s = 1;
    for (int d = b.ndim - 1; d >= 0; --d) {
      b.size[d] = shape[d];
      b.stride[d] = s;
      s *= shape[d];
    }
    return b;
  }
};

// Times the loop with cudaEvents on the legacy default stream (where the kernels launch).
template <class F>
double cuda_timed_loop(benchmark::State& state, F&& body) {
  body();  // warm-up, untimed
  TESSEL_CUDA_CHECK(cudaDeviceSynchronize());
  cudaEvent_t start, stop;
  TESSEL_CUDA_CHECK(cudaEventCreate(&start));
  TESSEL_CUDA_CHECK(cudaEventCreate(&stop));
  double total = 0;
  for (auto _ : state) {
    TESSEL_CUDA_CHECK(cudaEventRecord(start, 0));
    body();
    TESSEL_CUDA_CHECK(cudaEventRecord(stop, 0));
    TESSEL_CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0;
    TESSEL_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    state.SetIterationTime(ms / 1e3);
    total += ms / 1e3;
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return total;
}

// Device-to-device copy rate in GB/s (bytes read + written), best of a few 256 MiB copies.
double d2d_copy_gbs() {
  static const double gbs = [] {
    const size_t bytes = size_t(256) << 20;
    void *a = nullptr, *b = nullptr;
    TESSEL_CUDA_CHECK(cudaMalloc(&a, bytes));
    TESSEL_CUDA_CHECK(cudaMalloc(&b, bytes));
    cudaEvent_t start, stop;
    TESSEL_CUDA_CHECK(cudaEventCreate(&start));
    TESSEL_CUDA_CHECK(cudaEventCreate(&stop));
    float best = 1e30f;
    for (int i = 0; i < 10; ++i) {
      TESSEL_CUDA_CHECK(cudaEventRecord(start, 0));
      TESSEL_CUDA_CHECK(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, 0));
      TESSEL_CUDA_CHECK(cudaEventRecord(stop, 0));
      TESSEL_CUDA_CHECK(cudaEventSynchronize(stop));
      float ms = 0;
      TESSEL_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
      if (i > 0) best = std::min(best, ms);  // the first copy warms up
    }
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
    cudaFree(a);
    cudaFree(b);
    return 2.0 * static_cast<double>(bytes) / (best / 1e3) / 1e9;
  }();
  return gbs;
}

void report(benchmark::State& state, double seconds, double bytes) {
  const double gbs = bytes * static_cast<double>(state.iterations()) / seconds / 1e9;
  state.counters["GB/s"] = gbs;
  state.counters["pct_peak"] = 100.0 * gbs / d2d_copy_gbs();
}

bool skip_without_cuda(benchmark::State& state) {
  if (cuda_available()) return false;
  state.SkipWithError("no CUDA device");
  return true;
}

void bm_copy(benchmark::State& state) {
  if (skip_without_cuda(state)) return;
  const int64_t n = state.range(0);
  DevBuf a(n, DType::f32), b(n, DType::f32);
  const double secs = cuda_timed_loop(
      state, [&] { TESSEL_CUDA_CHECK(cudaMemcpyAsync(b.ptr, a.ptr, a.bytes, cudaMemcpyDeviceToDevice, 0)); });
  report(state, secs, 2.0 * static_cast<double>(a.bytes));
}

// Contiguous elementwise (the 16-byte vector rung), and a broadcast bias add (strided rung).
void bm_elementwise(benchmark::State& state, EwOp op, DType t, bool broadcast) {
  if (skip_without_cuda(state)) return;
  const int64_t rows = state.range(0), cols = state.range(1), n = rows * cols;
  const int arity = ew_arity(op);
  DevBuf out(n, t), a(n, t), b(broadcast ? cols : n, t);
  ElementwiseParams p;
  p.op = op;
  p.out = out.buf(t, {rows, cols});
  p.in[0] = a.buf(t, {rows, cols});
  if (arity >= 2) {
    p.in[1] = b.buf(t, {rows, cols});
    if (broadcast) p.in[1].stride[0] = 0;
  }
  const double secs = cuda_timed_loop(state, [&] { elementwise_family().run_version("cuda", p); });
  const double elem = static_cast<double>(dtype_size(t));
  report(state, secs, elem * (static_cast<double>(n) * (arity >= 2 && !broadcast ? 3 : 2) + (broadcast ? cols : 0)));
}

void bm_reduce_rows(benchmark::State& state, ReduceOp op) {
  if (skip_without_cuda(state)) return;
  const int64_t rows = state.range(0), cols = state.range(1);
  DevBuf in(rows * cols, DType::f32), out(rows, DType::f32);
  ReduceParams p;
  p.op = op;
  p.in = in.buf(DType::f32, {rows, cols});
  p.reduced = 1;
  p.out = out.buf(DType::f32, {rows});
  const double secs = cuda_timed_loop(state, [&] { reduce_family().run_version("cuda", p); });
  report(state, secs, 4.0 * static_cast<double>(rows * (cols + 1)));
}

void bm_softmax(benchmark::State& state, SoftmaxOp op, DType t) {
  if (skip_without_cuda(state)) return;
  const int64_t rows = state.range(0), cols = state.range(1), n = rows * cols;
  DevBuf in(n, t), grad(n, t), out(n, t);
  SoftmaxParams p;
  p.op = op;
  p.in = in.buf(t, {rows, cols});
  p.out = out.buf(t, {rows, cols});
  const bool bwd = softmax_is_backward(op);
  if (bwd) p.grad = grad.buf(t, {rows, cols});
  const double secs = cuda_timed_loop(state, [&] { softmax_family().run_version("cuda", p); });
  report(state, secs, static_cast<double>(dtype_size(t)) * static_cast<double>(n) * (bwd ? 3 : 2));
}

void bm_layer_norm(benchmark::State& state, bool backward) {
  if (skip_without_cuda(state)) return;
  const int64_t rows = state.range(0), cols = state.range(1), n = rows * cols;
  DevBuf x(n, DType::f32), y(n, DType::f32), dy(n, DType::f32), dx(n, DType::f32), w(cols, DType::f32),
      b(cols, DType::f32), dw(cols, DType::f32), db(cols, DType::f32), mean(rows, DType::f32), rstd(rows, DType::f32);
  NormParams p;
  p.op = NormOp::layer_norm;
  p.rows = rows;
  p.cols = cols;
  p.eps = 1e-5;
  p.x = x.buf(DType::f32, {rows, cols});
  p.weight = w.buf(DType::f32, {cols});
  p.bias = b.buf(DType::f32, {cols});
  p.mean = mean.buf(DType::f32, {rows});
  p.rstd = rstd.buf(DType::f32, {rows});
  p.y = y.buf(DType::f32, {rows, cols});
  norm_family().run_version("cuda", p);  // real statistics for the backward
  if (backward) {
    p.op = NormOp::layer_norm_backward;
    p.bias = Buf();
    p.dy = dy.buf(DType::f32, {rows, cols});
    p.dx = dx.buf(DType::f32, {rows, cols});
    p.dweight = dw.buf(DType::f32, {cols});
    p.dbias = db.buf(DType::f32, {cols});
  }
  const double secs = cuda_timed_loop(state, [&] { norm_family().run_version("cuda", p); });
  report(state, secs, 4.0 * static_cast<double>(n) * (backward ? 3 : 2));
}

void bm_cross_entropy(benchmark::State& state, bool backward) {
  if (skip_without_cuda(state)) return;
  const int64_t rows = state.range(0), classes = state.range(1), n = rows * classes;
  DevBuf x(n, DType::f32), dx(n, DType::f32), target(rows, DType::i64, classes), loss(rows, DType::f32),
      lse(rows, DType::f32), g(rows, DType::f32);
  LossParams p;
  p.op = LossOp::cross_entropy;
  p.input = x.buf(DType::f32, {rows, classes});
  p.target = target.buf(DType::i64, {rows});
  p.loss = loss.buf(DType::f32, {rows});
  p.lse = lse.buf(DType::f32, {rows});
  loss_family().run_version("cuda", p);
  if (backward) {
    p.op = LossOp::cross_entropy_backward;
    p.grad_row = g.buf(DType::f32, {rows});
    p.dinput = dx.buf(DType::f32, {rows, classes});
  }
  const double secs = cuda_timed_loop(state, [&] { loss_family().run_version("cuda", p); });
  report(state, secs, 4.0 * static_cast<double>(n) * (backward ? 2 : 1));
}

// Embedding forward (gather rows) and backward (deterministic scatter_add by columns).
void bm_embedding(benchmark::State& state, IndexOp op) {
  if (skip_without_cuda(state)) return;
  const int64_t vocab = 32000, dim = state.range(1), tokens = state.range(0);
  DevBuf table(vocab * dim, DType::f32), dense(tokens * dim, DType::f32), index(tokens, DType::i64, vocab);
  IndexParams p;
  p.op = op;
  p.dim = 0;
  p.index = index.buf(DType::i64, {tokens, dim});
  p.index.stride[1] = 0;
  p.indexed = table.buf(DType::f32, {vocab, dim});
  p.dense = dense.buf(DType::f32, {tokens, dim});
  const double secs = cuda_timed_loop(state, [&] { index_family().run_version("cuda", p); });
  report(state, secs, 4.0 * static_cast<double>(tokens * dim) * (op == IndexOp::gather ? 2 : 3));
}

void bm_adamw(benchmark::State& state) {
  if (skip_without_cuda(state)) return;
  const int64_t n = state.range(0), tensors = state.range(1), each = n / tensors;
  std::vector<std::unique_ptr<DevBuf>> bufs;
  OptimParams p;
  p.op = OptimOp::adamw;
  p.lr = 1e-3;
  p.weight_decay = 1e-2;
  for (int64_t i = 0; i < tensors; ++i) {
    OptimSlot s;
    Buf* slots[4] = {&s.param, &s.grad, &s.m, &s.v};
    for (Buf* b : slots) {
      bufs.push_back(std::make_unique<DevBuf>(each, DType::f32));
      *b = bufs.back()->buf(DType::f32, {each});
    }
    p.slots.push_back(s);
  }
  const double secs = cuda_timed_loop(state, [&] { optim_family().run_version("cuda", p); });
  report(state, secs, 4.0 * static_cast<double>(each * tensors) * 7);  // read w g m v, write w m v
}

const bool registered = [] {
  auto reg = [](const std::string& name, auto fn, auto... args) {
    return benchmark::RegisterBenchmark(("cuda/" + name).c_str(), fn, args...)
        ->UseManualTime()
        ->Unit(benchmark::kMicrosecond);
  };
  reg("copy/d2d", bm_copy)->Arg(int64_t(64) << 20);
  reg("elementwise/add/f32", bm_elementwise, EwOp::add, DType::f32, false)->Args({8192, 8192});
  reg("elementwise/gelu_tanh/f32", bm_elementwise, EwOp::gelu_tanh, DType::f32, false)->Args({8192, 8192});
  reg("elementwise/add/bf16", bm_elementwise, EwOp::add, DType::bf16, false)->Args({8192, 8192});
  reg("elementwise/add_bias_broadcast/f32", bm_elementwise, EwOp::add, DType::f32, true)->Args({8192, 8192});
  reg("reduce/sum_last_dim/f32", bm_reduce_rows, ReduceOp::sum)->Args({8192, 8192});
  for (auto [op, name] :
       {std::pair{SoftmaxOp::softmax, "softmax"}, std::pair{SoftmaxOp::softmax_backward, "softmax_backward"}}) {
    reg(std::string("softmax/") + name + "/f32/warp_rows", bm_softmax, op, DType::f32)->Args({65536, 1024});
    reg(std::string("softmax/") + name + "/f32/block_rows", bm_softmax, op, DType::f32)->Args({2048, 32768});
    reg(std::string("softmax/") + name + "/bf16/warp_rows", bm_softmax, op, DType::bf16)->Args({65536, 1024});
  }
  reg("norm/layer_norm/f32", bm_layer_norm, false)->Args({16384, 4096});
  reg("norm/layer_norm_backward/f32", bm_layer_norm, true)->Args({16384, 4096});
  reg("loss/cross_entropy/f32", bm_cross_entropy, false)->Args({4096, 32000});
  reg("loss/cross_entropy_backward/f32", bm_cross_entropy, true)->Args({4096, 32000});
  reg("index/embedding_gather/f32", bm_embedding, IndexOp::gather)->Args({16384, 1024});
  reg("index/embedding_scatter_add/f32", bm_embedding, IndexOp::scatter_add)->Args({16384, 1024});
  reg("optim/adamw_multi_tensor/f32", bm_adamw)->Args({int64_t(64) << 20, 64});
  return true;
}();

}  // namespace
