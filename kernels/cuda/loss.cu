// kernels/cuda/loss.cu — cross-entropy (with label smoothing) and NLL per row, and their gradients.
//
// Formulas and layout as in kernels/loss.h: input [N, C] (any strides), target [N] (i32/i64),
// rows whose target is ignore_index give loss 0 and gradient 0.
//   forward   lse_n = log sum_c exp(x_nc),  loss_n = lse_n - (1 - eps) x_n,t - eps mean_c x_nc
//   backward  dx_nc = (exp(x_nc - lse_n) - (1 - eps) [c == t] - eps / C) g_n
// (NLL: loss_n = -x_n,t, dx_nc = -[c == t] g_n.) Compute in f32, f64 for f64 inputs.
//
// One block per row in both directions. Forward keeps a running max and a rescaled sum per
// thread ("Online normalizer calculation for softmax", Milakov & Gimelshein 2018), so the
// row of logits — the big tensor here, N x vocabulary — is read once; backward reads it once
// more and writes dx, using the saved lse instead of recomputing the row's statistics.
// Bytes: forward N*C reads; backward N*C reads and N*C writes.
//
// Compiled for sm_80/sm_90; not yet verified on hardware.
#include <cmath>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/register.h"
#include "kernels/loss.h"

namespace tessel::kernels {
namespace cuda {
namespace {

struct LossArgs {
  LossOp op;
  int64_t N, C;
  const void* input;
  int64_t s0, s1;
  const void* target;
  bool target_i64;
  int64_t st;
  void* loss;
  int64_t sl;
  void* lse;
  int64_t se;
  const void* grad_row;
  int64_t sg;
  void* dinput;
  int64_t d0, d1;
  double eps;
  int64_t ignore_index;
};

template <class T>
__global__ void __launch_bounds__(512) loss_forward(LossArgs a) {
  using A = float_acc_t<acc_t<T>>;
  __shared__ A scratch[32];
  const T* in = static_cast<const T*>(a.input);
  const bool ce = a.op == LossOp::cross_entropy;
  const A ninf = -static_cast<A>(INFINITY);
  for (int64_t n = blockIdx.x; n < a.N; n += gridDim.x) {
    const int64_t t = load_index(a.target, a.target_i64, n * a.st);
    const bool ignored = t == a.ignore_index;
    const T* row = in + n * a.s0;
    A loss = 0;
    if (ce) {
      A m = ninf, s = 0, sx = 0;
      for (int64_t c = threadIdx.x; c < a.C; c += blockDim.x) {
        const A v = static_cast<A>(load(row + c * a.s1));
        if (v != v || v > m) {  // a new running max: rescale what was summed so far
          s = s == A(0) ? A(0) : s * exp(m - v);
          m = v;
        }
        s += v == ninf ? A(0) : exp(v - m);
        sx += v;
      }
      const A mrow = block_max(m, scratch);
      const A srow = block_sum(s == A(0) ? A(0) : s * exp(m - mrow), scratch);
      const A sxrow = block_sum(sx, scratch);
      const A lse = mrow + log(srow);
      if (threadIdx.x == 0) {
        if (!ignored) {
          const A xt = static_cast<A>(load(row + t * a.s1));
          loss = lse - (A(1) - static_cast<A>(a.eps)) * xt -
                 (a.eps > 0 ? static_cast<A>(a.eps) * sxrow / static_cast<A>(a.C) : A(0));
        }
        static_cast<A*>(a.lse)[n * a.se] = lse;
      }
    } else if (threadIdx.x == 0 && !ignored) {
      loss = -static_cast<A>(load(row + t * a.s1));
    }
    if (threadIdx.x == 0) static_cast<A*>(a.loss)[n * a.sl] = loss;
    __syncthreads();
  }
}

template <class T>
__global__ void __launch_bounds__(512) loss_backward(LossArgs a) {
  using A = float_acc_t<acc_t<T>>;
  const T* in = static_cast<const T*>(a.input);
  T* dx = static_cast<T*>(a.dinput);
  const bool ce = a.op == LossOp::cross_entropy_backward;
  const A eps = static_cast<A>(a.eps), smooth = static_cast<A>(a.eps) / static_cast<A>(a.C);
  for (int64_t n = blockIdx.x; n < a.N; n += gridDim.x) {
    const int64_t t = load_index(a.target, a.target_i64, n * a.st);
    const bool ignored = t == a.ignore_index;
    const A g = static_cast<const A*>(a.grad_row)[n * a.sg];
    const A lse = ce ? static_cast<const A*>(a.lse)[n * a.se] : A(0);
    for (int64_t c = threadIdx.x; c < a.C; c += blockDim.x) {
      A v = 0;
      if (!ignored) {
        const A hit = c == t ? A(1) : A(0);
        v = ce ? (exp(static_cast<A>(load(in + n * a.s0 + c * a.s1)) - lse) - (A(1) - eps) * hit - smooth) * g
               : -hit * g;
      }
      store(dx + n * a.d0 + c * a.d1, v);
    }
  }
}

void loss_cuda(const LossParams& p) {
  visit_floating(p.input.dtype, "loss_cuda", [&](auto tag) {
    using T = decltype(tag);
    LossArgs a{};
    a.op = p.op;
    a.N = p.input.size[0];
    a.C = p.input.size[1];
    if (a.N == 0) return;
    a.input = p.input.data;
    a.s0 = p.input.stride[0];
    a.s1 = p.input.stride[1];
    a.target = p.target.data;
    a.target_i64 = p.target.dtype == DType::i64;
    a.st = p.target.stride[0];
    a.eps = p.label_smoothing;
    a.ignore_index = p.ignore_index;
    if (p.lse.data) {
      a.lse = p.lse.data;
      a.se = p.lse.stride[0];
    }
    const int threads = row_threads(a.C, 512);
    const unsigned blocks = grid_for(a.N, 1, 1 << 20);
    if (!loss_is_backward(p.op)) {
      a.loss = p.loss.data;
      a.sl = p.loss.stride[0];
      loss_forward<T><<<blocks, threads, 0, launch_stream()>>>(a);
    } else {
      if (a.C == 0) return;
      a.grad_row = p.grad_row.data;
      a.sg = p.grad_row.stride[0];
      a.dinput = p.dinput.data;
      a.d0 = p.dinput.stride[0];
      a.d1 = p.dinput.stride[1];
      loss_backward<T><<<blocks, threads, 0, launch_stream()>>>(a);
    }
    TESSEL_CUDA_CHECK_LAUNCH("loss_cuda");
  });
}

}  // namespace
}  // namespace cuda

void register_loss_cuda(Family<LossParams>& fam) { fam.add("cuda", DeviceType::cuda, 10, cuda::loss_cuda); }

}  // namespace tessel::kernels
