// optim: each optimizer against its published update equations, stepped by hand in double;
// the fused cpu kernel against ref; state round trips; clipping; schedules.
#include "optim/optimizer.h"

#include <cmath>

#include "optim/schedule.h"
#include "tests/helpers.h"

using namespace tessel;
using namespace tessel::testing;
using namespace tessel::optim;

namespace {

// Two steps of each optimizer on one scalar parameter with gradients g1, g2, computed here
// from the papers' equations, compared with the optimizer's result.
Tensor param(double v) { return full({1}, v, {.dtype = DType::f64, .requires_grad = true}); }
void set_grad(Tensor& p, double g) { p.set_grad(full({1}, g, {.dtype = DType::f64})); }

}  // namespace

TEST_SUITE("optim") {
  TEST_CASE("SGD: plain, weight decay, momentum, Nesterov") {
    {
      Tensor p = param(1.0);
      SGD opt({p}, {.lr = 0.1});
      set_grad(p, 0.5);
      opt.step();
      CHECK(p.item() == doctest::Approx(0.95));
    }
    {
      Tensor p = param(1.0);
      SGD opt({p}, {.lr = 0.1, .weight_decay = 0.2});
      set_grad(p, 0.5);
      opt.step();  // g' = 0.5 + 0.2 * 1
      CHECK(p.item() == doctest::Approx(1.0 - 0.1 * 0.7));
    }
    {
      Tensor p = param(1.0);
      SGD opt({p}, {.lr = 0.1, .momentum = 0.9});
      set_grad(p, 0.5);
      opt.step();  // b = 0.5
      set_grad(p, -1.0);
      opt.step();  // b = 0.9 * 0.5 - 1.0 = -0.55
      CHECK(p.item() == doctest::Approx(1.0 - 0.05 + 0.055));
    }
    {
      Tensor p = param(1.0);
      SGD opt({p}, {.lr = 0.1, .momentum = 0.9, .nesterov = true});
      set_grad(p, 0.5);
      opt.step();  // b = 0.5, d = 0.5 + 0.9 * 0.5 = 0.95
      set_grad(p, -1.0);
      opt.step();  // b = -0.55, d = -1 + 0.9 * -0.55 = -1.495
      CHECK(p.item() == doctest::Approx(1.0 - 0.095 + 0.1495));
    }
  }

  TEST_CASE("Adam, AdamW and LAMB follow their equations") {
    const double lr = 0.01, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.1;
    const double g[2] = {0.3, -0.2};
    for (int kind = 0; kind < 3; ++kind) {  // 0 Adam (L2), 1 AdamW, 2 LAMB
      INFO("kind ", kind);
      double w = 0.5, m = 0, v = 0;
      Tensor p = param(w);
      std::unique_ptr<Optimizer> opt;
      AdamOptions o{.lr = lr, .beta1 = b1, .beta2 = b2, .eps = eps, .weight_decay = wd};
      if (kind == 0) opt = std::make_unique<Adam>(std::vector<Tensor>{p}, o);
      if (kind == 1) opt = std::make_unique<AdamW>(std::vector<Tensor>{p}, o);
      if (kind == 2) opt = std::make_unique<Lamb>(std::vector<Tensor>{p}, o);
      for (int t = 1; t <= 2; ++t) {
        double grad = g[t - 1];
        if (kind == 0) grad += wd * w;
        if (kind == 1) w -= lr * wd * w;
        m = b1 * m + (1 - b1) * grad;
        v = b2 * v + (1 - b2) * grad * grad;
        double u = (m / (1 - std::pow(b1, t))) / (std::sqrt(v / (1 - std::pow(b2, t))) + eps);
        if (kind == 2) {
          double r = u + wd * w;
          w -= lr * (std::fabs(w) / std::fabs(r)) * r;
        } else {
          w -= lr * u;
        }
        set_grad(p, g[t - 1]);
        opt->step();
        CHECK(p.item() == doctest::Approx(w).epsilon(1e-12));
      }
    }
  }

  TEST_CASE("parameter groups: own learning rate and weight decay; set_lr keeps the ratio") {
    Tensor a = param(1.0), b = param(1.0);
    SGD opt(std::vector<ParamGroup>{{{a}, {}, {}}, {{b}, 0.01, 0.5}}, {.lr = 0.1});
    set_grad(a, 1.0);
    set_grad(b, 1.0);
    opt.step();
    CHECK(a.item() == doctest::Approx(0.9));
    CHECK(b.item() == doctest::Approx(1.0 - 0.01 * 1.5));
    opt.set_lr(0.2);  // doubles the base rate: group b goes to 0.02
    set_grad(a, 1.0);
    set_grad(b, 1.0);
    opt.step();
    CHECK(a.item() == doctest::Approx(0.7));
    double bb = 1.0 - 0.01 * 1.5;
    CHECK(b.item() == doctest::Approx(bb - 0.02 * (1.0 + 0.5 * bb)));
  }

  TEST_CASE("fused update kernel: cpu equals ref over many tensors of odd sizes") {
    manual_seed(7);
    for (kernels::OptimOp op :
         {kernels::OptimOp::sgd, kernels::OptimOp::adam, kernels::OptimOp::adamw, kernels::OptimOp::lamb}) {
      std::vector<int64_t> sizes = {1, 7, 33, 1000, 70001, 3};
      std::vector<Tensor> w[2], g, m[2], v[2];
      for (int64_t n : sizes) {
        Tensor w0 = randn({n}), g0 = randn({n}), m0 = randn({n}) * 0.1, v0 = abs(randn({n})) * 0.01;
        for (int k = 0; k < 2; ++k) {
          w[k].push_back(clone(w0));
          m[k].push_back(clone(m0));
          v[k].push_back(clone(v0));
        }
        g.push_back(g0);
      }
      for (int k = 0; k < 2; ++k) {
        kernels::OptimParams p;
        p.op = op;
        p.lr = 0.01;
        p.weight_decay = 0.05;
        p.momentum = 0.9;
        p.step = 3;
        for (size_t i = 0; i < sizes.size(); ++i)
          p.slots.push_back({w[k][i].buf(), g[i].buf(), m[k][i].buf(), v[k][i].buf(), i == 0});
        kernels::optim_family().run_version(k == 0 ? "ref" : "cpu", p);
      }
      for (size_t i = 0; i < sizes.size(); ++i) {
        INFO("op ", static_cast<int>(op), " tensor ", i);
        CHECK_CLOSE(w[1][i], w[0][i], 1e-6, 1e-7);
        CHECK_CLOSE(m[1][i], m[0][i], 1e-6, 1e-7);
      }
    }
  }

  TEST_CASE("optimizer state round trip resumes bitwise") {
    manual_seed(8);
    Tensor p1 = randn({10}, {.requires_grad = true});
    Tensor p2 = clone(p1).detach().requires_grad_();
    AdamW a({p1}, {.lr = 0.1}), b({p2}, {.lr = 0.1});
    Tensor g = randn({10});
    p1.set_grad(g);
    a.step();
    // b starts from a's parameters and state after one step.
    {
      NoGradGuard ng;
      copy_(p2, p1);
    }
    b.load_state_dict(a.state_dict());
    CHECK(b.steps_taken() == 1);
    for (int i = 0; i < 3; ++i) {
      Tensor gi = randn({10});
      p1.set_grad(gi);
      p2.set_grad(gi);
      a.step();
      b.step();
    }
    CHECK_EQUAL_TENSOR(p1, p2);
    OptimizerState s = a.state_dict();
    s["0.0.m"] = zeros({3});
    CHECK_THROWS_WITH_AS(b.load_state_dict(s), doctest::Contains("state '0.0.m' has shape [3], but parameter 0"),
                         Error);
    s = a.state_dict();
    s["9.9.m"] = zeros({3});
    CHECK_THROWS_WITH_AS(b.load_state_dict(s), doctest::Contains("1 entries that match no parameter"), Error);
  }

  TEST_CASE("gradient clipping by global norm") {
    Tensor a = param(0), b = param(0);
    a.set_grad(full({1}, 3.0, {.dtype = DType::f64}));
    b.set_grad(full({1}, 4.0, {.dtype = DType::f64}));
    double n = clip_grad_norm({a, b}, 1.0);
    CHECK(n == doctest::Approx(5.0));
    CHECK(a.grad().item() == doctest::Approx(0.6).epsilon(1e-5));
    CHECK(b.grad().item() == doctest::Approx(0.8).epsilon(1e-5));
    CHECK(clip_grad_norm({a, b}, 10.0) == doctest::Approx(1.0).epsilon(1e-5));  // below: unchanged
    CHECK(a.grad().item() == doctest::Approx(0.6).epsilon(1e-5));
    // f32 gradients of several shapes (one parameter without a gradient, one f64): the norm is
    // the f64 norm of all of them, and each is scaled by the same factor.
    manual_seed(3);
    std::vector<Tensor> ps = {zeros({33, 65}), zeros({7}), zeros({2, 3, 5}), zeros({4}, {.dtype = DType::f64})};
    double want = 0;
    for (size_t i = 0; i < ps.size(); ++i) {
      if (i == 1) continue;
      ps[i].set_grad(to_dtype(randn(ps[i].sizes()), ps[i].dtype()));
      for (double g : to_dtype(ps[i].grad(), DType::f64).to_vector<double>()) want += g * g;
    }
    want = std::sqrt(want);
    const Tensor before = clone(ps[0].grad());
    CHECK(clip_grad_norm(ps, 2.0) == doctest::Approx(want).epsilon(1e-6));
    CHECK_CLOSE(ps[0].grad(), before * (2.0 / (want + 1e-6)), 1e-6, 1e-6);
    CHECK(!ps[1].grad().defined());
    CHECK(clip_grad_norm(ps, 1e9) == doctest::Approx(2.0).epsilon(1e-5));
  }

  TEST_CASE("learning-rate schedules") {
    LRSchedule c{.kind = LRSchedule::Kind::warmup_cosine, .peak = 1.0, .floor = 0.1, .warmup = 10, .total = 110};
    CHECK(c.at(0) == doctest::Approx(0.1));
    CHECK(c.at(9) == doctest::Approx(1.0));
    CHECK(c.at(10) == doctest::Approx(1.0));
    CHECK(c.at(60) == doctest::Approx(0.55));
    CHECK(c.at(110) == doctest::Approx(0.1));
    CHECK(c.at(500) == doctest::Approx(0.1));
    LRSchedule w{.kind = LRSchedule::Kind::warmup_stable_decay,
                 .peak = 1.0,
                 .floor = 0.0,
                 .warmup = 2,
                 .total = 20,
                 .decay_start = 10};
    CHECK(w.at(5) == 1.0);
    CHECK(w.at(15) == doctest::Approx(0.5));
    LRSchedule s{.kind = LRSchedule::Kind::step, .peak = 1.0, .every = 10, .gamma = 0.5};
    CHECK(s.at(25) == doctest::Approx(0.25));
    CHECK_THROWS_WITH_AS(LRSchedule::from_name("linear"), doctest::Contains("unknown schedule 'linear'"), Error);
  }

  TEST_CASE("bad optimizer input") {
    Tensor i = ones({2});
    CHECK_THROWS_WITH_AS(SGD({i}), doctest::Contains("must be a leaf tensor that requires grad"), Error);
    Tensor p = ones({2}, {.requires_grad = true});
    CHECK_THROWS_WITH_AS(Adam({p}, {.beta1 = 1.0}), doctest::Contains("betas must be in [0, 1)"), Error);
    CHECK_THROWS_WITH_AS(SGD({p}, {.lr = -1}), doctest::Contains("learning rate must be non-negative"), Error);
    CHECK_THROWS_WITH_AS(SGD({p}, {.nesterov = true}), doctest::Contains("Nesterov momentum needs momentum > 0"),
                         Error);
  }
}
