// End to end: a small MLP trained with cross-entropy on a separable-by-curves task learns it.
// Exercises linear (matmul + broadcast bias), GELU, cross_entropy, backward through all of it,
// gradient accumulation into leaves, and in-place optimizer updates under NoGradGuard.
#include <cmath>

#include "tests/helpers.h"

using namespace tessel;
using namespace tessel::testing;

TEST_SUITE("autograd") {
  TEST_CASE("an MLP with cross-entropy learns two concentric rings") {
    manual_seed(4);
    // Class 0 inside radius 1, class 1 on a ring at radius 2: not linearly separable.
    const int64_t n = 256;
    Tensor angle = rand({n}) * (2 * 3.141592653589793);
    Tensor label = randint(0, 2, {n});
    Tensor radius = to_dtype(label, DType::f32) + 1.0 + randn({n}) * 0.1;
    Tensor x = cat({unsqueeze(radius * cos(angle), 1), unsqueeze(radius * sin(angle), 1)}, 1);

    Tensor w1 = (randn({32, 2}) * 0.7).detach().requires_grad_();
    Tensor b1 = zeros({32}, {.requires_grad = true});
    Tensor w2 = (randn({2, 32}) * 0.25).detach().requires_grad_();
    Tensor b2 = zeros({2}, {.requires_grad = true});
    std::vector<Tensor> params = {w1, b1, w2, b2};
    auto forward = [&](const Tensor& in) { return linear(gelu(linear(in, w1, b1)), w2, b2); };

    double first = 0, last = 0;
    for (int step = 0; step < 300; ++step) {
      Tensor loss = cross_entropy(forward(x), label);
      for (Tensor& p : params) p.set_grad(Tensor());
      loss.backward();
      NoGradGuard ng;
      for (Tensor& p : params) add_(p, p.grad(), -0.5);
      if (step == 0) first = loss.item();
      last = loss.item();
    }
    INFO("loss went from ", first, " to ", last);
    CHECK(first > 0.5);
    CHECK(last < 0.1 * first);
    NoGradGuard ng;
    double acc = mean(to_dtype(eq(argmax(forward(x), 1), label), DType::f32)).item();
    CHECK(acc > 0.97);
  }
}
