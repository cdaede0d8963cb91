#include "autograd/checkpoint.h"

#include "autograd/engine.h"
#include "core/rng.h"

namespace tessel {

Tensor checkpoint(const CheckpointFn& fn, const TensorList& inputs) {
  check(static_cast<bool>(fn), "checkpoint", "got an empty function");
  if (!GradMode::is_enabled()) return fn(inputs);
  Generator rng_before = default_generator();
  Tensor out;
  {
    NoGradGuard ng;
    out = fn(inputs);
  }
  check(out.defined(), "checkpoint", "the function returned an undefined tensor");
  // Always record (when grad mode is on): parameters fn closes over are not among `inputs`, so
  // whether anything needs a gradient is only known by running fn with recording on — which is
  // what checkpointing avoids. A node nobody backpropagates through costs nothing.
  if (!is_floating(out.dtype())) return out;
  Tensor result = out.detach();
  std::vector<Saved> saved;
  for (const Tensor& t : inputs) saved.emplace_back(t, "checkpoint");
  record("checkpoint", result, inputs, [fn, saved, rng_before](const Tensor& g, const Tensor&) {
    // The recomputed graph is backpropagated with backward(), which accumulates into .grad and
    // records nothing: right for training, wrong for grad() and for double backward.
    check(!GradMode::is_enabled(), "checkpoint",
          "double backward (create_graph=true) through a checkpointed function is not supported");
    check(!grad_api_running(), "checkpoint",
          "tessel::grad() through a checkpointed function is not supported (the gradients of its "
          "parameters would go to .grad); use backward()");
    // Recompute with recording on, replaying the random stream fn saw the first time.
    TensorList xs;
    for (const Saved& s : saved) {
      const Tensor& t = s.get();
      if (!t.defined()) {
        xs.push_back(t);
        continue;
      }
      Tensor d = t.detach();
      if (t.requires_grad()) d.requires_grad_();
      xs.push_back(d);
    }
    Generator rng_now = default_generator();
    default_generator() = rng_before;
    Tensor y;
    {
      EnableGradGuard eg;
      y = fn(xs);
    }
    default_generator() = rng_now;
    TensorList grads(xs.size());
    if (y.requires_grad()) {
      y.backward(g);  // accumulates into parameters used by fn, and into xs
      for (size_t i = 0; i < xs.size(); ++i)
        if (xs[i].defined() && xs[i].requires_grad()) grads[i] = xs[i].grad();
    }
    return grads;
  });
  return result;
}

}  // namespace tessel
