#include "autograd/gradcheck.h"

#include <cmath>
#include <sstream>

#include "autograd/engine.h"
#include "autograd/ops/copy.h"
#include "autograd/ops/elementwise.h"
#include "autograd/ops/reduce.h"
#include "core/rng.h"

namespace tessel {

GradcheckResult gradcheck(const TensorFn& f, const TensorList& inputs, GradcheckOptions opts) {
  // Private copies: contiguous f64 leaves, so that perturbing one element is a single write.
  TensorList xs;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& in = inputs[i];
    if (!in.defined()) {
      xs.push_back(in);
      continue;
    }
    check(!in.requires_grad() || in.dtype() == DType::f64, "gradcheck", "input ", i, " has dtype ",
          dtype_name(in.dtype()), "; finite differences need f64");
    check(in.device().is_cpu(), "gradcheck", "input ", i, " must be on the CPU");
    Tensor x = clone(in.detach());
    if (in.requires_grad()) x.requires_grad_();
    xs.push_back(x);
  }
  bool any = false;
  for (const Tensor& x : xs) any |= x.defined() && x.requires_grad();
  check(any, "gradcheck", "no input requires grad: nothing would be checked");
  Tensor out = f(xs);
  check(out.defined() && is_floating(out.dtype()), "gradcheck", "f must return a floating tensor");
  Generator gen(opts.seed);
  Tensor r = randn(out.sizes(), {.dtype = DType::f64}, &gen);
  auto project = [&](const Tensor& y) { return sum(mul(to_dtype(y, DType::f64), r)).item(); };

  // Analytic: one backward of sum(f(x) * r).
  Tensor loss = sum(mul(to_dtype(out, DType::f64), r));
  GradcheckResult res;
  if (loss.requires_grad()) loss.backward();

  for (size_t i = 0; i < xs.size(); ++i) {
    if (!xs[i].defined() || !xs[i].requires_grad()) continue;
    Tensor g = xs[i].grad();
    std::vector<double> analytic = g.defined() ? g.to_vector<double>() : std::vector<double>(xs[i].numel(), 0.0);
    double* data = xs[i].data_ptr<double>();
    for (int64_t j = 0; j < xs[i].numel(); ++j) {
      double orig = data[j];
      double plus, minus;
      {
        NoGradGuard ng;
        data[j] = orig + opts.eps;
        plus = project(f(xs));
        data[j] = orig - opts.eps;
        minus = project(f(xs));
        data[j] = orig;
      }
      double numeric = (plus - minus) / (2 * opts.eps);
      double err = std::fabs(analytic[j] - numeric);
      double ratio = err / (opts.atol + opts.rtol * std::fabs(numeric));
      if (std::isnan(ratio)) ratio = INFINITY;
      if (ratio > res.worst_ratio || res.input < 0) {
        res.worst_ratio = ratio;
        res.input = static_cast<int>(i);
        res.element = j;
        res.analytic = analytic[j];
        res.numeric = numeric;
      }
    }
  }
  res.ok = res.worst_ratio <= 1.0;
  std::ostringstream os;
  os << "gradcheck " << (res.ok ? "passed" : "FAILED") << ": worst at input " << res.input << " element " << res.element
     << ": analytic " << res.analytic << ", numeric " << res.numeric << " (error ratio " << res.worst_ratio << ")";
  res.message = os.str();
  return res;
}

}  // namespace tessel
