// tools/bench_workloads.cpp — the workload table (see bench_workloads.h). Each entry does in
// tessel exactly what the entry of the same name in bench/peers/pytorch_peer.py does in PyTorch.
#include "tools/bench_workloads.h"

#include "tessel.h"

namespace tessel::cli {
namespace {

// C = A B, [n, n] f32, a new C each time (as torch.matmul allocates its result).
Workload gemm(int64_t n) {
  const double dn = static_cast<double>(n);
  return {"gemm_" + std::to_string(n), std::to_string(n) + "x" + std::to_string(n) + "x" + std::to_string(n),
          2 * dn * dn * dn, 0, [n] {
            Tensor a = randn({n, n}), b = randn({n, n});
            return std::function<void()>([a, b] { matmul(a, b); });
          }};
}

// y = softmax(x) over the last dim; read x, write y.
Workload softmax_rows(int64_t rows, int64_t cols) {
  const std::string shape = std::to_string(rows) + "x" + std::to_string(cols);
  return {"softmax_" + shape, shape, 0, 4.0 * 2 * static_cast<double>(rows) * cols, [rows, cols] {
            Tensor x = randn({rows, cols});
            return std::function<void()>([x] { softmax(x, -1); });
          }};
}

// y = layer_norm(x) * w + b, then backward from a given dy into x, w and b (fresh gradients
// each time). Bytes: forward reads x, w, b and writes y, mean, rstd; backward reads x, dy, w,
// mean, rstd and writes dx, dw, db (bench/norm_bench.cpp counts them the same way).
Workload layernorm_fwdbwd(int64_t rows, int64_t cols) {
  const std::string shape = std::to_string(rows) + "x" + std::to_string(cols);
  const double r = static_cast<double>(rows), c = static_cast<double>(cols);
  return {"layernorm_fwdbwd_" + shape, shape, 0, 4.0 * ((2 * r * c + 2 * c + 2 * r) + (3 * r * c + 3 * c + 2 * r)),
          [rows, cols] {
            Tensor x = randn({rows, cols}), w = randn({cols}), b = randn({cols}), dy = randn({rows, cols});
            x.requires_grad_();
            w.requires_grad_();
            b.requires_grad_();
            return std::function<void()>([x, w, b, dy, cols] {
              for (Tensor t : {x, w, b}) t.set_grad(Tensor());  // handles: the copies share the grad slot
              layer_norm(x, {cols}, w, b, 1e-5).backward(dy);
            });
          }};
}

}  // namespace

const std::vector<Workload>& workloads() {
  static const std::vector<Workload> all = {
      gemm(1024),
      softmax_rows(4096, 4096),
      layernorm_fwdbwd(4096, 1024),
  };
  return all;
}

}  // namespace tessel::cli
