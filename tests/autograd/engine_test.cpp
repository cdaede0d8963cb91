// The tape: accumulation, retain_graph, no_grad, detach, hooks, version checks, grad(),
// double backward, checkpointing.
#include "tests/helpers.h"

using namespace tessel;
using namespace tessel::testing;

TEST_SUITE("autograd") {
  TEST_CASE("gradients accumulate into leaves across backward calls and paths") {
    Tensor w = from_vector({1, 2}, {2}, {.dtype = DType::f64, .requires_grad = true});
    Tensor y = sum(w * w + w);  // dy/dw = 2w + 1
    y.backward();
    CHECK(w.grad().to_vector<double>() == std::vector<double>{3, 5});
    sum(w * 3.0).backward();  // accumulates
    CHECK(w.grad().to_vector<double>() == std::vector<double>{6, 8});
    w.set_grad(Tensor());
    sum(w).backward();
    CHECK(w.grad().to_vector<double>() == std::vector<double>{1, 1});
  }

  TEST_CASE("a diamond graph sums both paths before running the shared node") {
    Tensor x = from_vector({0.5}, {1}, {.dtype = DType::f64, .requires_grad = true});
    Tensor h = exp(x);
    Tensor y = sum(h * h + sin(h));  // dy/dx = (2h + cos h) h
    y.backward();
    double hv = std::exp(0.5);
    CHECK(x.grad().item() == doctest::Approx((2 * hv + std::cos(hv)) * hv).epsilon(1e-12));
  }

  TEST_CASE("backward with an explicit gradient; implicit only for one element") {
    Tensor x = from_vector({1, 2, 3}, {3}, {.requires_grad = true});
    Tensor y = x * 2.0;
    y.backward(from_vector({1, 0, -1}));
    CHECK(x.grad().to_vector<float>() == std::vector<float>{2, 0, -2});
    Tensor z = x * 2.0;
    CHECK_THROWS_WITH_AS(z.backward(), doctest::Contains("implicit gradient needs a tensor with one element"), Error);
    CHECK_THROWS_WITH_AS(z.backward(ones({2})), doctest::Contains("does not match the tensor's shape [3]"), Error);
  }

  TEST_CASE("retain_graph allows a second backward; without it the graph is freed") {
    Tensor x = from_vector({2}, {1}, {.dtype = DType::f64, .requires_grad = true});
    Tensor y = sum(exp(x));
    y.backward(Tensor(), /*retain_graph=*/true);
    y.backward();
    CHECK(x.grad().item() == doctest::Approx(2 * std::exp(2.0)));
    CHECK_THROWS_WITH_AS(y.backward(), doctest::Contains("retain_graph=true"), Error);
  }

  TEST_CASE("no_grad records nothing; detach cuts history") {
    Tensor w = ones({3}, {.requires_grad = true});
    {
      NoGradGuard ng;
      Tensor y = w * 2.0;
      CHECK_FALSE(y.requires_grad());
      {
        EnableGradGuard eg;
        CHECK((w * 2.0).requires_grad());
      }
    }
    CHECK(GradMode::is_enabled());
    Tensor d = (w * 2.0).detach();
    CHECK_FALSE(d.requires_grad());
    CHECK(d.is_leaf());
    Tensor z = sum(d * w);
    z.backward();
    CHECK(w.grad().to_vector<float>() == std::vector<float>{2, 2, 2});
  }

  TEST_CASE("hooks see and may replace gradients; retain_grad keeps a non-leaf's") {
    Tensor w = from_vector({1, 2}, {2}, {.requires_grad = true});
    std::vector<float> seen;
    w.register_hook([&](const Tensor& g) {
      seen = g.to_vector<float>();
      return Tensor();
    });
    Tensor h = w * 3.0;
    h.retain_grad();
    h.register_hook([](const Tensor& g) { return g * 10.0; });  // scales what flows further
    sum(h).backward();
    CHECK(seen == std::vector<float>{30, 30});
    CHECK(w.grad().to_vector<float>() == std::vector<float>{30, 30});
    CHECK(h.grad().to_vector<float>() == std::vector<float>{10, 10});
  }

  TEST_CASE("modifying a tensor saved for backward is detected") {
    Tensor w = ones({3}, {.requires_grad = true});
    Tensor x = from_vector({1, 2, 3});
    Tensor y = sum(w * x);  // saves x for dw
    mul_(x, 2.0);
    CHECK_THROWS_WITH_AS(y.backward(), doctest::Contains("modified in place after it was saved"), Error);
    // The op's own saved output is checked too (exp saves its output).
    Tensor a = ones({2}, {.requires_grad = true});
    Tensor e = exp(a);
    Tensor s = sum(e);
    {
      NoGradGuard ng;
      add_(e, 1.0);
    }
    CHECK_THROWS_WITH_AS(s.backward(), doctest::Contains("exp: its output (shape [2]) was modified in place"), Error);
  }

  TEST_CASE("in-place ops on tensors that require grad are refused while recording") {
    Tensor w = ones({3}, {.requires_grad = true});
    CHECK_THROWS_WITH_AS(mul_(w, 2.0),
                         doctest::Contains("mul_: in-place op on a tensor of shape [3] that requires grad"), Error);
    Tensor v = select(w, 0, 0);
    CHECK_THROWS_WITH_AS(fill_(v, 0), doctest::Contains("fill_"), Error);
    NoGradGuard ng;
    mul_(w, 2.0);  // an optimizer step
    CHECK(w.to_vector<float>() == std::vector<float>{2, 2, 2});
  }

  TEST_CASE("grad() returns gradients without touching .grad") {
    Tensor x = from_vector({1, 2}, {2}, {.dtype = DType::f64, .requires_grad = true});
    Tensor h = x * x;
    Tensor y = sum(h * 3.0);
    TensorList g = grad({y}, {x, h});
    CHECK(g[0].to_vector<double>() == std::vector<double>{6, 12});
    CHECK(g[1].to_vector<double>() == std::vector<double>{3, 3});
    CHECK_FALSE(x.grad().defined());
  }

  TEST_CASE("double backward through composed gradients") {
    // y = x^3: dy/dx = 3x^2, d2y/dx2 = 6x
    Tensor x = from_vector({2}, {1}, {.dtype = DType::f64, .requires_grad = true});
    Tensor y = sum(pow(x, 3.0));
    TensorList g = grad({y}, {x}, {}, false, /*create_graph=*/true);
    CHECK(g[0].item() == doctest::Approx(12));
    CHECK(g[0].requires_grad());
    TensorList gg = grad({sum(g[0])}, {x});
    CHECK(gg[0].item() == doctest::Approx(12));
    // Fused activation gradients refuse, clearly.
    Tensor z = sum(gelu(x));
    CHECK_THROWS_WITH_AS(grad({z}, {x}, {}, false, true), doctest::Contains("double backward through this activation"),
                         Error);
  }

  TEST_CASE("checkpoint recomputes in backward and gives the same gradients") {
    manual_seed(2);
    Tensor w = leaf64({4, 4});
    Tensor x = leaf64({3, 4});
    auto block = [&](const TensorList& in) {
      Tensor h = tanh(sum(unsqueeze(in[0], 2) * unsqueeze(w, 0), {1}));  // x @ w, by broadcasting
      Tensor mask = bernoulli(h.sizes(), 0.7, {.dtype = DType::f64});    // random: replayed in recompute
      return sum(h * mask * h);
    };
    manual_seed(100);
    Tensor plain = block({x});
    plain.backward();
    Tensor gw = clone(w.grad()), gx = clone(x.grad());
    w.set_grad(Tensor());
    x.set_grad(Tensor());
    manual_seed(100);
    Tensor ck = checkpoint(block, {x});
    CHECK(ck.item() == plain.item());
    ck.backward();
    CHECK_CLOSE(w.grad(), gw, 1e-12, 1e-12);
    CHECK_CLOSE(x.grad(), gx, 1e-12, 1e-12);
    CHECK_GRADCHECK(
        [&](const TensorList& v) { return checkpoint([](const TensorList& in) { return exp(in[0]) * in[1]; }, v); },
        {leaf64({3}), leaf64({3})});
  }
}
