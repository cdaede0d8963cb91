// tests/autograd/cuda_ops_test.cpp — every differentiable op on CUDA against the same op on the CPU.
//
// In f64, forward outputs and the gradients of every input (through a random projection of the
// output) must agree to near machine precision: the CPU backward is itself gradchecked in the
// other autograd suites, so agreement here gradchecks the CUDA backward. Ends with a 2-layer
// MLP trained for a few steps on both devices. Skipped without a CUDA device.
#include <array>
#include <functional>
#include <memory>

#include "tests/helpers.h"

using namespace tessel;
using namespace tessel::testing;
using tessel::optim::SGD;

namespace {

Tensor to_cuda(const Tensor& t) { return to_device(t, Device::cuda()); }
Tensor to_cpu(const Tensor& t) { return to_device(t, Device::cpu()); }

using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

// Runs f on CPU copies and CUDA copies of `inputs` (floating ones require grad), compares the
// outputs, then backpropagates sum(y * r) for one random r on both and compares the gradients.
void check_matches_cpu(const char* name, const Fn& f, const std::vector<Tensor>& inputs, double rtol = 1e-10,
                       double atol = 1e-12) {
  INFO("op ", std::string(name));
  std::vector<Tensor> xc, xd;
  for (const Tensor& t : inputs) {
    Tensor c = t.detach();
    Tensor d = to_cuda(c);
    if (is_floating(t.dtype())) {
      c.requires_grad_();
      d.requires_grad_();
    }
    xc.push_back(c);
    xd.push_back(d);
  }
  Tensor yc = f(xc), yd = f(xd);
  REQUIRE(yd.device().is_cuda());
  CHECK_CLOSE(to_cpu(contiguous(yd)), yc, rtol, atol);
  if (!yc.requires_grad()) return;
  Tensor r = randn(yc.sizes(), {.dtype = yc.dtype()});
  sum(mul(yc, r)).backward();
  sum(mul(yd, to_cuda(r))).backward();
  for (size_t i = 0; i < xc.size(); ++i) {
    if (!xc[i].requires_grad()) continue;
    INFO("gradient of input ", i);
    REQUIRE(xd[i].grad().defined());
    CHECK(xd[i].grad().device().is_cuda());
    CHECK_CLOSE(to_cpu(contiguous(xd[i].grad())), xc[i].grad(), rtol, atol);
  }
}

Tensor r64(const Shape& s, double scale = 1, double shift = 0) {
  NoGradGuard ng;
  return (randn(s, {.dtype = DType::f64}) * scale + shift).detach();
}

// Each tensor as a CPU leaf and a CUDA leaf ([0] cpu, [1] cuda), both requiring grad: the two
// copies of a model's parameters that a CPU-vs-CUDA training comparison steps side by side.
std::array<std::vector<Tensor>, 2> leaves_on_cpu_and_cuda(const std::vector<Tensor>& init) {
  std::array<std::vector<Tensor>, 2> out;
  for (const Tensor& t : init) {
    out[0].push_back(t.detach().requires_grad_());
    out[1].push_back(to_cuda(t).requires_grad_());
  }
  return out;
}
Tensor pos64(const Shape& s) {
  NoGradGuard ng;
  return (abs(randn(s, {.dtype = DType::f64})) + 0.5).detach();
}

}  // namespace

TEST_SUITE("autograd/cuda") {
  TEST_CASE("cuda autograd: unary elementwise ops and activations match the CPU, values and gradients") {
    TESSEL_REQUIRE_CUDA();
    using U = Tensor (*)(const Tensor&);
    const std::vector<std::pair<const char*, U>> any_sign = {
        {"neg", neg},   {"exp", exp},         {"abs", abs}, {"relu", relu}, {"silu", silu},
        {"tanh", tanh}, {"sigmoid", sigmoid}, {"sin", sin}, {"cos", cos},   {"square", square},
    };
    for (auto [name, f] : any_sign) check_matches_cpu(name, [f](const auto& x) { return f(x[0]); }, {r64({7, 33})});
    for (auto [name, f] : std::vector<std::pair<const char*, U>>{{"log", log}, {"sqrt", sqrt}, {"rsqrt", rsqrt}})
      check_matches_cpu(name, [f](const auto& x) { return f(x[0]); }, {pos64({65, 3})});
    check_matches_cpu("gelu erf", [](const auto& x) { return gelu(x[0]); }, {r64({31, 5})});
    check_matches_cpu("gelu tanh", [](const auto& x) { return gelu(x[0], GeluApprox::tanh); }, {r64({31, 5})});
    check_matches_cpu("pow scalar", [](const auto& x) { return pow(x[0], 2.5); }, {pos64({127})});
    check_matches_cpu("clamp", [](const auto& x) { return clamp(x[0], -0.5, 0.7); }, {r64({1000})});
    // a non-contiguous input: the op sees a transposed view
    check_matches_cpu("exp of a transpose", [](const auto& x) { return exp(transpose(x[0], 0, 1)); }, {r64({7, 9})});
  }

  TEST_CASE("cuda autograd: binary ops with broadcasting, where, comparisons") {
    TESSEL_REQUIRE_CUDA();
    check_matches_cpu("add broadcast", [](const auto& x) { return add(x[0], x[1]); }, {r64({33, 65}), r64({65})});
    check_matches_cpu("sub broadcast", [](const auto& x) { return sub(x[0], x[1]); }, {r64({33, 1}), r64({1, 65})});
    check_matches_cpu("mul", [](const auto& x) { return mul(x[0], x[1]); }, {r64({7, 31}), r64({7, 31})});
    check_matches_cpu("div", [](const auto& x) { return div(x[0], x[1]); }, {r64({7, 31}), pos64({31})});
    check_matches_cpu("pow", [](const auto& x) { return pow(x[0], x[1]); }, {pos64({127}), r64({127})});
    check_matches_cpu("maximum", [](const auto& x) { return maximum(x[0], x[1]); }, {r64({5, 7}), r64({5, 7})});
    check_matches_cpu("minimum", [](const auto& x) { return minimum(x[0], x[1]); }, {r64({5, 7}), r64({7})});
    check_matches_cpu("where", [](const auto& x) { return where(gt(x[0], x[1]), x[0], x[1]); }, {r64({65}), r64({65})});
    check_matches_cpu("lt as f64", [](const auto& x) { return to_dtype(lt(x[0], x[1]), DType::f64); },
                      {r64({33}), r64({33})});
  }

  TEST_CASE("cuda autograd: reductions match the CPU") {
    TESSEL_REQUIRE_CUDA();
    check_matches_cpu("sum all", [](const auto& x) { return sum(x[0]); }, {r64({7, 33, 5})});
    check_matches_cpu("sum dim 1", [](const auto& x) { return sum(x[0], {1}); }, {r64({7, 33, 5})});
    check_matches_cpu("sum dims 0, 2 keepdim",
                      [](const auto& x) {
                        return sum(x[0], {0, 2}, true);
                      },
                      {r64({7, 33, 5})});
    check_matches_cpu("mean dim 0", [](const auto& x) { return mean(x[0], {0}); }, {r64({1000, 3})});
    check_matches_cpu("var dim -1", [](const auto& x) { return var(x[0], {-1}); }, {r64({31, 127})});
    check_matches_cpu("amax dim 1", [](const auto& x) { return amax(x[0], {1}); }, {r64({31, 65})});
    check_matches_cpu("amin dim 0", [](const auto& x) { return amin(x[0], {0}); }, {r64({31, 65})});
    check_matches_cpu("argmax as f64", [](const auto& x) { return to_dtype(argmax(x[0], 1), DType::f64); },
                      {r64({31, 65})});
  }

  TEST_CASE("cuda autograd: softmax and log_softmax, short and long rows, any dim") {
    TESSEL_REQUIRE_CUDA();
    for (int64_t C : {1, 7, 1000, 3001}) {
      check_matches_cpu("softmax", [](const auto& x) { return softmax(x[0], -1); }, {r64({5, C}, 2)});
      check_matches_cpu("log_softmax", [](const auto& x) { return log_softmax(x[0], -1); }, {r64({5, C}, 2)});
    }
    check_matches_cpu("softmax dim 0", [](const auto& x) { return softmax(x[0], 0); }, {r64({33, 7}, 2)});
    check_matches_cpu("log_softmax dim 1 of 3", [](const auto& x) { return log_softmax(x[0], 1); },
                      {r64({3, 65, 4}, 2)});
  }

  TEST_CASE("cuda autograd: layer norm and RMS norm with and without affine parameters") {
    TESSEL_REQUIRE_CUDA();
    for (int64_t C : {1, 33, 1025}) {
      const int64_t R = C > 1000 ? 3 : 65;
      check_matches_cpu("layer_norm", [C](const auto& x) { return layer_norm(x[0], {C}, x[1], x[2]); },
                        {r64({R, C}, 1.5, 0.3), r64({C}), r64({C})});
      check_matches_cpu("layer_norm no affine", [C](const auto& x) { return layer_norm(x[0], {C}); },
                        {r64({R, C}, 1.5, 0.3)});
      check_matches_cpu("rms_norm", [C](const auto& x) { return rms_norm(x[0], {C}, x[1]); },
                        {r64({R, C}, 1.5), r64({C})});
    }
    check_matches_cpu("layer_norm of 2 trailing dims",
                      [](const auto& x) {
                        return layer_norm(x[0], {4, 5}, x[1]);
                      },
                      {r64({3, 4, 5}), r64({4, 5})});
  }

  TEST_CASE("cuda autograd: cross-entropy (smoothing, ignore_index, reductions) and NLL") {
    TESSEL_REQUIRE_CUDA();
    for (int64_t C : {1, 7, 1000, 5000}) {
      const int64_t N = 33;
      Tensor t = randint(0, C, {N});
      {
        NoGradGuard ng;
        fill_raw(slice(t, 0, 0, N, 4), -100);
      }
      for (double eps : {0.0, 0.1})
        for (Reduction red : {Reduction::mean, Reduction::sum, Reduction::none})
          check_matches_cpu("cross_entropy",
                            [eps, red](const auto& x) {
                              return cross_entropy(x[0], x[1],
                                                   {.label_smoothing = eps, .ignore_index = -100, .reduction = red});
                            },
                            {r64({N, C}, 3), t});
      check_matches_cpu("nll_loss of log_softmax", [](const auto& x) { return nll_loss(log_softmax(x[0], -1), x[1]); },
                        {r64({N, C}, 3), t});
    }
    check_matches_cpu("mse_loss", [](const auto& x) { return mse_loss(x[0], x[1]); }, {r64({7, 31}), r64({7, 31})});
  }

  TEST_CASE("cuda autograd: gather, scatter_add, index_select, index_add, embedding") {
    TESSEL_REQUIRE_CUDA();
    Tensor idx_g = randint(0, 9, {5, 4, 7});
    check_matches_cpu("gather", [](const auto& x) { return gather(x[0], 1, x[1]); }, {r64({5, 9, 7}), idx_g});
    check_matches_cpu("scatter_add", [](const auto& x) { return scatter_add(x[0], 1, x[1], x[2]); },
                      {r64({5, 9, 7}), idx_g, r64({5, 4, 7})});
    Tensor idx = randint(0, 65, {127});
    check_matches_cpu("index_select", [](const auto& x) { return index_select(x[0], 0, x[1]); }, {r64({65, 33}), idx});
    check_matches_cpu("index_add", [](const auto& x) { return index_add(x[0], 0, x[1], x[2]); },
                      {r64({65, 33}), idx, r64({127, 33})});
    check_matches_cpu("embedding", [](const auto& x) { return embedding(x[0], x[1]); },
                      {r64({65, 31}), randint(0, 65, {4, 33})});
    check_matches_cpu("embedding i32 indices", [](const auto& x) { return embedding(x[0], x[1]); },
                      {r64({1000, 7}), to_dtype(randint(0, 1000, {127}), DType::i32)});
  }

  TEST_CASE("cuda autograd: a 2-layer MLP trains identically on CUDA and CPU") {
    TESSEL_REQUIRE_CUDA();
    manual_seed(11);
    const int64_t n = 64, in = 10, hidden = 32, classes = 5;
    Tensor x = r64({n, in});
    Tensor label = randint(0, classes, {n});
    std::vector<Tensor> init = {r64({hidden, in}, 0.3), r64({hidden}, 0.1), r64({classes, hidden}, 0.2),
                                r64({classes}, 0.1)};
    std::array<std::vector<Tensor>, 2> params = leaves_on_cpu_and_cuda(init);
    SGD opt0(params[0], {.lr = 0.1, .momentum = 0.9});
    SGD opt1(params[1], {.lr = 0.1, .momentum = 0.9});
    SGD* opts[2] = {&opt0, &opt1};
    for (int step = 0; step < 3; ++step) {
      double losses[2];
      for (int k = 0; k < 2; ++k) {
        const std::vector<Tensor>& p = params[k];
        Tensor xk = k ? to_cuda(x) : x, lk = k ? to_cuda(label) : label;
        Tensor loss = cross_entropy(linear(gelu(linear(xk, p[0], p[1])), p[2], p[3]), lk);
        opts[k]->zero_grad();
        loss.backward();
        opts[k]->step();
        losses[k] = to_cpu(loss).item();
      }
      INFO("step ", step);
      CHECK(losses[1] == doctest::Approx(losses[0]).epsilon(1e-12));
    }
    for (size_t i = 0; i < init.size(); ++i) {
      INFO("parameter ", i);
      CHECK(params[1][i].device().is_cuda());
      CHECK_CLOSE(to_cpu(params[1][i]), params[0][i], 1e-10, 1e-12);
    }
  }

  TEST_CASE("cuda autograd: Adam, AdamW and LAMB step CUDA parameters (state on the device) like the CPU") {
    TESSEL_REQUIRE_CUDA();
    for (int which = 0; which < 3; ++which) {
      std::vector<Tensor> init = {r64({33, 7}), r64({7}), r64({1})};
      std::array<std::vector<Tensor>, 2> params = leaves_on_cpu_and_cuda(init);
      std::unique_ptr<optim::Optimizer> opt[2];
      for (int k = 0; k < 2; ++k) {
        if (which == 0) opt[k] = std::make_unique<optim::Adam>(params[k], optim::AdamOptions{.weight_decay = 0.01});
        if (which == 1) opt[k] = std::make_unique<optim::AdamW>(params[k]);
        if (which == 2) opt[k] = std::make_unique<optim::Lamb>(params[k]);
      }
      for (int step = 0; step < 3; ++step) {
        std::vector<Tensor> grads = {r64({33, 7}), r64({7}), r64({1})};
        for (int k = 0; k < 2; ++k) {
          opt[k]->zero_grad();
          Tensor loss;
          for (size_t i = 0; i < grads.size(); ++i) {
            Tensor term = sum(mul(params[k][i], k ? to_cuda(grads[i]) : grads[i]));
            loss = loss.defined() ? loss + term : term;
          }
          loss.backward();
          opt[k]->step();
        }
      }
      for (size_t i = 0; i < init.size(); ++i) {
        INFO("optimizer ", which, " parameter ", i);
        CHECK(params[1][i].device().is_cuda());
        CHECK_CLOSE(to_cpu(params[1][i]), params[0][i], 1e-10, 1e-12);
      }
    }
  }
}
