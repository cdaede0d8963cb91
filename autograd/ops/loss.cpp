// autograd/ops/loss.cpp — losses: forward, then backward right below.
#include "autograd/ops/loss.h"

#include <cmath>
#include <sstream>

#include "autograd/engine.h"
#include "autograd/ops/copy.h"
#include "autograd/ops/elementwise.h"
#include "autograd/ops/reduce.h"
#include "autograd/ops/view.h"
#include "kernels/loss.h"

namespace tessel {

using kernels::LossOp;

namespace {

const char* reduction_name(Reduction r) {
  switch (r) {
    case Reduction::none: return "none";
    case Reduction::mean: return "mean";
    case Reduction::sum: return "sum";
  }
  return "?";
}

// "[1, 2]": the multi-index of flat position `flat` in `shape` (row-major).
std::string position_str(int64_t flat, const Shape& shape) {
  Shape idx(shape.size());
  for (size_t d = shape.size(); d-- > 0;) {
    idx[d] = flat % shape[d];
    flat /= shape[d];
  }
  return shape_str(idx);
}

struct ClassTargets {
  Tensor scores;   // [N, C] view of the scores (differentiable reshape)
  Tensor targets;  // [N] contiguous, i64 or i32, on the scores' device
  int64_t count;   // rows not ignored
};

// Validates scores [..., C] against targets [...]: dtypes, shapes, and every target's value.
ClassTargets prepare_class_targets(const Tensor& scores, const Tensor& targets, int64_t ignore_index, const char* op,
                                   const char* what) {
  check(scores.defined(), op, what, " is an undefined tensor");
  check(targets.defined(), op, "targets is an undefined tensor");
  check(is_floating(scores.dtype()), op, "expected floating ", what, " (f32, f64, bf16 or f16), got ",
        dtype_name(scores.dtype()), " of shape ", scores.sizes());
  check(targets.dtype() == DType::i64 || targets.dtype() == DType::i32, op,
        "targets must be class indices of dtype i64 or i32, got ", dtype_name(targets.dtype()), " of shape ",
        targets.sizes());
  check(scores.dim() >= 1, op, what, " must have a class dim (the last one), got a 0-dim tensor");
  Shape lead(scores.sizes().begin(), scores.sizes().end() - 1);
  check(targets.sizes() == lead, op, "targets have shape ", targets.sizes(), " but ", what, " have shape ",
        scores.sizes(), "; expected targets of shape ", lead, " (", what, "' shape without the last, class, dim)");
  check(targets.device() == scores.device(), op, "targets are on ", targets.device().str(), " but ", what, " are on ",
        scores.device().str());
  const int64_t C = scores.size(-1);
  const int64_t N = targets.numel();
  check(C > 0 || N == 0, op, what, " of shape ", scores.sizes(), " have no classes (the last dim is 0)");

  Tensor t = contiguous(targets);
  Tensor host = t.device().type == DeviceType::cpu ? t : to_device(t, Device::cpu());
  int64_t count = 0;
  auto scan = [&](auto* v) {
    for (int64_t i = 0; i < N; ++i) {
      const int64_t k = static_cast<int64_t>(v[i]);
      if (k == ignore_index) continue;
      if (k < 0 || k >= C)
        fail(op, "target ", k, " at position ", position_str(i, targets.sizes()), " is out of range for C = ", C,
             " classes (", what, " of shape ", scores.sizes(), "); expected 0 <= target < ", C,
             " or target == ignore_index (", ignore_index, ")");
      ++count;
    }
  };
  if (host.dtype() == DType::i64)
    scan(host.data_ptr<int64_t>());
  else
    scan(host.data_ptr<int32_t>());
  return {reshape(scores, {N, C}), reshape(t, {N}), count};
}

// The loss of each row [N] (acc dtype) and, for cross_entropy, the row's log-sum-exp.
struct RowLosses {
  Tensor loss, lse;
};
RowLosses run_forward(LossOp op, const ClassTargets& ct, double label_smoothing, int64_t ignore_index) {
  const int64_t N = ct.scores.size(0);
  const DType acc = kernels::loss_acc_dtype(ct.scores.dtype());
  RowLosses r{empty({N}, {.dtype = acc, .device = ct.scores.device()}), Tensor()};
  kernels::LossParams p;
  p.op = op;
  p.input = ct.scores.buf();
  p.target = ct.targets.buf();
  p.loss = r.loss.buf();
  if (op == LossOp::cross_entropy) {
    r.lse = empty({N}, {.dtype = acc, .device = ct.scores.device()});
    p.lse = r.lse.buf();
  }
  p.label_smoothing = label_smoothing;
  p.ignore_index = ignore_index;
  kernels::loss_family().run(ct.scores.device().type, p);
  return r;
}

// Reduces the per-row losses (no autograd: the caller records one node for the whole loss).
Tensor reduce_rows(const Tensor& rows, Reduction reduction, int64_t count, DType out_dtype) {
  NoGradGuard ng;
  Tensor r = rows;
  if (reduction == Reduction::sum) r = sum(rows);
  if (reduction == Reduction::mean) r = sum(rows) / static_cast<double>(count);
  return to_dtype(r, out_dtype).detach();
}

// dL/dloss_n for every row, in the acc dtype, from the gradient of the reduced loss.
Tensor row_grads(const Tensor& g, Reduction reduction, int64_t N, int64_t count) {
  const DType acc = kernels::loss_acc_dtype(g.dtype());
  Tensor ga = to_dtype(g, acc);
  if (reduction == Reduction::none) return ga;
  if (reduction == Reduction::mean) ga = count > 0 ? ga / static_cast<double>(count) : zeros_like(ga);
  return expand(reshape(ga, {1}), {N});  // stride 0: the kernel reads the one value N times
}

Tensor run_backward(LossOp op, const Tensor& scores, const Tensor& targets, const Tensor& lse, const Tensor& grow,
                    double label_smoothing, int64_t ignore_index) {
  Tensor dx = empty(scores.sizes(), {.dtype = scores.dtype(), .device = scores.device()});
  kernels::LossParams p;
  p.op = op;
  p.input = scores.buf();
  p.target = targets.buf();
  if (lse.defined()) p.lse = lse.buf();
  p.grad_row = grow.buf();
  p.dinput = dx.buf();
  p.label_smoothing = label_smoothing;
  p.ignore_index = ignore_index;
  kernels::loss_family().run(scores.device().type, p);
  return dx;
}

// The loss with the reduced output recorded as one node over the [N, C] scores.
Tensor class_loss(LossOp op, const Tensor& scores, const Tensor& targets, double label_smoothing, int64_t ignore_index,
                  Reduction reduction, const char* name, const char* what) {
  ClassTargets ct = prepare_class_targets(scores, targets, ignore_index, name, what);
  RowLosses rl = run_forward(op, ct, label_smoothing, ignore_index);
  Tensor out = reduce_rows(rl.loss, reduction, ct.count, scores.dtype());
  const int64_t N = ct.scores.size(0);
  if (needs_grad({ct.scores}))
    record(name, out, {ct.scores},
           [op, name, sx = Saved(ct.scores, name), st = Saved(ct.targets, name), lse = rl.lse, reduction, N,
            count = ct.count, label_smoothing, ignore_index](const Tensor& g, const Tensor&) {
             const Tensor& x = sx.get();
             check(!needs_grad({g, x}), name,
                   "double backward is not supported: the gradient is a fused kernel "
                   "(backward with create_graph=true reached it)");
             Tensor grow = row_grads(g, reduction, N, count);
             LossOp bop = op == LossOp::cross_entropy ? LossOp::cross_entropy_backward : LossOp::nll_backward;
             return TensorList{run_backward(bop, x, st.get(), lse, grow, label_smoothing, ignore_index)};
           });
  return reduction == Reduction::none ? reshape(out, targets.sizes()) : out;
}

}  // namespace

Tensor cross_entropy(const Tensor& logits, const Tensor& targets, const CrossEntropyOptions& options) {
  const double eps = options.label_smoothing;
  check(eps >= 0 && eps < 1, "cross_entropy", "label_smoothing must be in [0, 1), got ", eps);
  return class_loss(LossOp::cross_entropy, logits, targets, eps, options.ignore_index, options.reduction,
                    "cross_entropy", "logits");
}

Tensor nll_loss(const Tensor& log_probs, const Tensor& targets, const NllLossOptions& options) {
  return class_loss(LossOp::nll, log_probs, targets, 0.0, options.ignore_index, options.reduction, "nll_loss",
                    "log_probs");
}

Tensor mse_loss(const Tensor& input, const Tensor& target, Reduction reduction) {
  check(input.defined() && target.defined(), "mse_loss", "got an undefined tensor");
  check(is_floating(input.dtype()) && is_floating(target.dtype()), "mse_loss",
        "expected floating input and target, got ", dtype_name(input.dtype()), " of shape ", input.sizes(), " and ",
        dtype_name(target.dtype()), " of shape ", target.sizes());
  check(input.sizes() == target.sizes(), "mse_loss", "input has shape ", input.sizes(), " but target has shape ",
        target.sizes(), "; expected equal shapes (reduction ", reduction_name(reduction), ")");
  Tensor d = sub(input, target);
  Tensor sq = mul(d, d);
  switch (reduction) {
    case Reduction::none: return sq;
    case Reduction::sum: return sum(sq);
    case Reduction::mean: return mean(sq);
  }
  return sq;
}

}  // namespace tessel
