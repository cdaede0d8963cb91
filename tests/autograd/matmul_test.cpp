// tests/autograd/matmul_test.cpp — matmul / bmm / linear / mlp: semantics, gradients, bad input.
#include "tests/helpers.h"
#include "tests/kernels/matmul_params.h"

using namespace tessel;
using namespace tessel::testing;

namespace {
// [M, K] @ [K, N] by hand, in f64.
std::vector<double> naive(const std::vector<double>& a, const std::vector<double>& b, int64_t M, int64_t K, int64_t N) {
  std::vector<double> c(static_cast<size_t>(M * N), 0.0);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j)
      for (int64_t k = 0; k < K; ++k) c[i * N + j] += a[i * K + k] * b[k * N + j];
  return c;
}
}  // namespace

TEST_SUITE("autograd") {
  TEST_CASE("matmul: hand-computed values for every rank combination") {
    Tensor a = from_vector({1, 2, 3, 4, 5, 6}, {2, 3});
    Tensor b = from_vector({7, 8, 9, 10, 11, 12}, {3, 2});
    CHECK(matmul(a, b).to_vector<double>() == std::vector<double>{58, 64, 139, 154});
    // 1-d x 1-d: a 0-d dot product
    Tensor d = matmul(from_vector({1, 2, 3}), from_vector({4, 5, 6}));
    CHECK(d.dim() == 0);
    CHECK(d.item() == 32.0);
    // 1-d x 2-d and 2-d x 1-d: the promoted dim is removed
    Tensor v = from_vector({1, 0, -1});
    CHECK(matmul(v, b).sizes() == Shape{2});
    CHECK(matmul(v, b).to_vector<double>() == std::vector<double>{-4, -4});
    CHECK(matmul(a, v).to_vector<double>() == std::vector<double>{-2, -2});
    // 1-d x 3-d: [K] @ [B, K, N] -> [B, N]
    Tensor b3 = randn({4, 3, 2});
    CHECK(matmul(v, b3).sizes() == Shape{4, 2});
    // 3-d x 1-d: [B, M, K] @ [K] -> [B, M]
    CHECK(matmul(randn({4, 2, 3}), v).sizes() == Shape{4, 2});
    // batched with broadcasting: [2, 1, 3, 4] @ [5, 4, 6] -> [2, 5, 3, 6]
    Tensor x = randn({2, 1, 3, 4}, {.dtype = DType::f64}), y = randn({5, 4, 6}, {.dtype = DType::f64});
    Tensor z = matmul(x, y);
    REQUIRE(z.sizes() == Shape{2, 5, 3, 6});
    for (int64_t i = 0; i < 2; ++i)
      for (int64_t j = 0; j < 5; ++j) {
        auto want =
            naive(select(select(x, 0, i), 0, 0).to_vector<double>(), select(y, 0, j).to_vector<double>(), 3, 4, 6);
        CHECK_CLOSE(select(select(z, 0, i), 0, j), from_vector(want, {3, 6}, {.dtype = DType::f64}), 1e-12, 1e-12);
      }
    // N-d x 2-d folds into one GEMM; the result equals the per-batch products
    Tensor w = randn({4, 6}, {.dtype = DType::f64});
    Tensor zw = matmul(x, w);
    REQUIRE(zw.sizes() == Shape{2, 1, 3, 6});
    CHECK_CLOSE(select(select(zw, 0, 1), 0, 0), matmul(select(select(x, 0, 1), 0, 0), w), 1e-12, 1e-12);
    // a transposed (strided) operand is read in place and gives the same values as a copy
    Tensor at = transpose(randn({3, 2}), 0, 1);
    CHECK(at.stride(1) != 1);
    CHECK_CLOSE(matmul(at, b), matmul(contiguous(at), b), 1e-6, 1e-6);
  }

  TEST_CASE("matmul: bmm and linear values") {
    Tensor a = randn({3, 4, 5}, {.dtype = DType::f64}), b = randn({3, 5, 2}, {.dtype = DType::f64});
    Tensor c = bmm(a, b);
    REQUIRE(c.sizes() == Shape{3, 4, 2});
    for (int64_t i = 0; i < 3; ++i) CHECK_CLOSE(select(c, 0, i), matmul(select(a, 0, i), select(b, 0, i)), 1e-12, 0);
    Tensor x = from_vector({1, 2}, {1, 2}), w = from_vector({1, 0, 0, 1, 1, 1}, {3, 2}),
           bias = from_vector({0, 10, 20});
    CHECK(linear(x, w, bias).to_vector<double>() == std::vector<double>{1, 12, 23});
    CHECK(linear(x, w).to_vector<double>() == std::vector<double>{1, 2, 3});
    CHECK(linear(from_vector({1, 2}), w).sizes() == Shape{3});
    CHECK(linear(randn({2, 3, 2}), w, bias).sizes() == Shape{2, 3, 3});
  }

  TEST_CASE("matmul: gradcheck over ranks, broadcast batches and transposed operands") {
    auto mm = [](const TensorList& x) { return matmul(x[0], x[1]); };
    CHECK_GRADCHECK(mm, {leaf64({5}), leaf64({5})});                 // 1-d x 1-d
    CHECK_GRADCHECK(mm, {leaf64({3, 4}), leaf64({4, 2})});           // 2-d x 2-d
    CHECK_GRADCHECK(mm, {leaf64({4}), leaf64({4, 3})});              // 1-d x 2-d
    CHECK_GRADCHECK(mm, {leaf64({3, 4}), leaf64({4})});              // 2-d x 1-d
    CHECK_GRADCHECK(mm, {leaf64({4}), leaf64({2, 4, 3})});           // 1-d x 3-d
    CHECK_GRADCHECK(mm, {leaf64({2, 3, 4}), leaf64({4})});           // 3-d x 1-d
    CHECK_GRADCHECK(mm, {leaf64({2, 3, 4}), leaf64({4, 2})});        // folded N-d x 2-d
    CHECK_GRADCHECK(mm, {leaf64({3, 4}), leaf64({2, 4, 2})});        // 2-d x 3-d (a broadcast)
    CHECK_GRADCHECK(mm, {leaf64({2, 1, 3, 4}), leaf64({3, 4, 2})});  // both batches broadcast
    CHECK_GRADCHECK(mm, {leaf64({1, 3, 4}), leaf64({2, 4, 5})});
    // transposed views as inputs
    CHECK_GRADCHECK([](const TensorList& x) { return matmul(transpose(x[0], 0, 1), transpose(x[1], 0, 1)); },
                    {leaf64({4, 3}), leaf64({2, 4})});
    // only one side requires grad
    Tensor fixed = randn({4, 2}, {.dtype = DType::f64});
    CHECK_GRADCHECK([fixed](const TensorList& x) { return matmul(x[0], fixed); }, {leaf64({3, 4})});
    CHECK_GRADCHECK([](const TensorList& x) { return bmm(x[0], x[1]); }, {leaf64({2, 3, 4}), leaf64({2, 4, 3})});
    CHECK_GRADCHECK([](const TensorList& x) { return linear(x[0], x[1], x[2]); },
                    {leaf64({2, 3, 4}), leaf64({5, 4}), leaf64({5})});
    CHECK_GRADCHECK([](const TensorList& x) { return linear(x[0], x[1]); }, {leaf64({4}), leaf64({5, 4})});
    // double backward: the backward is made of matmuls
    CHECK_GRADCHECK(
        [](const TensorList& x) {
          EnableGradGuard on;  // gradcheck evaluates f under no_grad for the finite differences
          Tensor y = sum(square(matmul(x[0], x[1])));
          return grad({y}, {x[0]}, {}, true, true)[0];
        },
        {leaf64({3, 4}), leaf64({4, 2})});
  }

  TEST_CASE("matmul: the gradient of a broadcast batch is summed back") {
    Tensor a = leaf64({3, 4}), b = leaf64({5, 4, 2});
    sum(matmul(a, b)).backward();
    REQUIRE(a.grad().sizes() == Shape{3, 4});
    // d sum(a @ b[i]) / da = sum_i ones @ b[i]^T
    Tensor want = zeros({3, 4}, {.dtype = DType::f64});
    for (int64_t i = 0; i < 5; ++i) want = want + matmul(ones({3, 2}, {.dtype = DType::f64}), t(select(b, 0, i)));
    CHECK_CLOSE(a.grad(), want.detach(), 1e-12, 1e-12);
  }

  TEST_CASE("matmul: bad input names the op and both shapes") {
    auto f32 = [](const Shape& s) { return randn(s); };
    CHECK_THROWS_WITH_AS(matmul(f32({2, 3}), f32({4, 5})),
                         doctest::Contains("matmul: inner dimensions differ: a is [2, 3], b is [4, 5]"), Error);
    CHECK_THROWS_WITH_AS(matmul(f32({3}), f32({4})), doctest::Contains("a is [3], b is [4]"), Error);
    CHECK_THROWS_WITH_AS(matmul(f32({2, 2, 3}), f32({3, 3, 4})),
                         doctest::Contains("matmul: batch dims do not broadcast: a is [2, 2, 3], b is [3, 3, 4]"),
                         Error);
    CHECK_THROWS_WITH_AS(matmul(scalar_tensor(2.0), f32({3})),
                         doctest::Contains("matmul: both operands need at least 1 dim, got a of shape []"), Error);
    CHECK_THROWS_WITH_AS(matmul(f32({2, 3}), randn({3, 2}, {.dtype = DType::f64})),
                         doctest::Contains("matmul: dtypes differ: a is f32 of shape [2, 3], b is f64 of shape [3, 2]"),
                         Error);
    CHECK_THROWS_WITH_AS(matmul(arange(6, {.dtype = DType::i64}), arange(6, {.dtype = DType::i64})),
                         doctest::Contains("matmul: expected floating operands"), Error);
    CHECK_THROWS_WITH_AS(bmm(f32({2, 3, 4}), f32({3, 4, 5})),
                         doctest::Contains("bmm: batch sizes differ: a is [2, 3, 4], b is [3, 4, 5]"), Error);
    CHECK_THROWS_WITH_AS(bmm(f32({3, 4}), f32({4, 5})), doctest::Contains("bmm: expected 3-d operands"), Error);
    CHECK_THROWS_WITH_AS(linear(f32({2, 3}), f32({5, 4})),
                         doctest::Contains("linear: x of shape [2, 3] does not match weight of shape [5, 4]"), Error);
    CHECK_THROWS_WITH_AS(linear(f32({2, 4}), f32({5, 4}), f32({4})),
                         doctest::Contains("linear: expected bias of shape [5]"), Error);
  }

  TEST_CASE("linear: fused bias + activation equals the unfused ops, forward and backward") {
    for (Activation act : kAllActivations) {
      INFO("act ", std::string(kernels::activation_name(act)));
      auto unfused = [act](const Tensor& z) {
        switch (act) {
          case Activation::relu: return relu(z);
          case Activation::gelu_tanh: return gelu(z, GeluApprox::tanh);
          case Activation::gelu_erf: return gelu(z, GeluApprox::none);
          case Activation::silu: return silu(z);
          default: return z;
        }
      };
      // f64 goes through cpu_packed; f32 through the best f32 version (cpu_avx512 on AVX-512 CPUs)
      for (DType dt : {DType::f64, DType::f32}) {
        Tensor x = randn({2, 33, 40}, {.dtype = dt}).requires_grad_(),
               w = randn({70, 40}, {.dtype = dt}).requires_grad_();
        Tensor b = randn({70}, {.dtype = dt}).requires_grad_();
        Tensor y = linear(x, w, b, act);
        Tensor want = unfused(add(matmul(x, t(w)), b));
        CHECK(y.sizes() == Shape{2, 33, 70});
        const double tol = dt == DType::f64 ? 1e-12 : 2e-5;
        CHECK_CLOSE(y.detach(), want.detach(), tol, tol);
        Tensor gy = randn({2, 33, 70}, {.dtype = dt});
        auto g1 = grad({y}, {x, w, b}, {gy}), g2 = grad({want}, {x, w, b}, {gy});
        for (int k = 0; k < 3; ++k) CHECK_CLOSE(g1[k], g2[k], tol * 10, tol * 10);
      }
      // In f32 the fused epilogue applies the elementwise ops' own formulas to the same GEMM
      // result, so it equals linear-then-activation bit for bit (odd sizes: edge tiles too).
      {
        NoGradGuard ng;
        Tensor x = randn({37, 70}), w = randn({45, 70}) * 0.1, b = randn({45});
        CHECK_EQUAL_TENSOR(linear(x, w, b, act), unfused(linear(x, w, b)));
      }
    }
  }

  TEST_CASE("linear: gradcheck of the fused layer for every activation") {
    for (Activation act : kAllActivations) {
      INFO("act ", std::string(kernels::activation_name(act)));
      CHECK_GRADCHECK([act](const TensorList& x) { return linear(x[0], x[1], x[2], act); },
                      {leaf64({2, 3, 4}), leaf64({5, 4}), leaf64({5})});
      CHECK_GRADCHECK([act](const TensorList& x) { return linear(x[0], x[1], Tensor(), act); },
                      {leaf64({3, 4}), leaf64({5, 4})});
    }
    // relu backward reads y, not a recomputed z: still exact away from the kink
    Tensor x = from_vector({1.0, -2.0}, {1, 2}, {.dtype = DType::f64}).requires_grad_();
    Tensor w = from_vector({1.0, 1.0, 2.0, 0.0}, {2, 2}, {.dtype = DType::f64}).requires_grad_();
    Tensor y = linear(x, w, Tensor(), Activation::relu);  // z = [-1, 2] -> y = [0, 2]
    CHECK(y.to_vector<double>() == std::vector<double>{0.0, 2.0});
    sum(y).backward();
    CHECK(x.grad().to_vector<double>() == std::vector<double>{2.0, 0.0});  // only the second unit passes
  }

  TEST_CASE("mlp: equals the two linear layers, forward and backward, and gradchecks") {
    for (Activation act : kAllActivations) {
      INFO("act ", std::string(kernels::activation_name(act)));
      for (DType dt : {DType::f64, DType::f32})
        for (bool biases : {true, false}) {
          INFO("dtype ", std::string(dtype_name(dt)), " biases ", biases);
          auto leaf = [&](const Shape& s) { return randn(s, {.dtype = dt}).requires_grad_(); };
          Tensor x = leaf({3, 13, 40}), w1 = leaf({70, 40}), w2 = leaf({9, 70});
          Tensor b1 = biases ? leaf({70}) : Tensor(), b2 = biases ? leaf({9}) : Tensor();
          Tensor y = mlp(x, w1, b1, w2, b2, act);
          Tensor want = linear(linear(x, w1, b1, act), w2, b2);
          CHECK(y.sizes() == Shape{3, 13, 9});
          TensorList in = {x, w1, w2};
          if (biases) in.insert(in.end(), {b1, b2});
          Tensor gy = randn({3, 13, 9}, {.dtype = dt});
          auto g1 = grad({y}, in, {gy}), g2 = grad({want}, in, {gy});
          if (dt == DType::f32) {
            // The same GEMMs and the same f32 formulas: bit for bit (act'(z) dy formed in the
            // epilogue is the product the elementwise backward forms).
            CHECK_EQUAL_TENSOR(y.detach(), want.detach());
            for (size_t k = 0; k < in.size(); ++k) CHECK_EQUAL_TENSOR(g1[k], g2[k]);
          } else {
            CHECK_CLOSE(y.detach(), want.detach(), 1e-12, 1e-12);
            for (size_t k = 0; k < in.size(); ++k) CHECK_CLOSE(g1[k], g2[k], 1e-11, 1e-11);
          }
        }
      CHECK_GRADCHECK([act](const TensorList& x) { return mlp(x[0], x[1], x[2], x[3], x[4], act); },
                      {leaf64({2, 3, 4}), leaf64({6, 4}), leaf64({6}), leaf64({5, 6}), leaf64({5})});
      // Only some inputs need a gradient (the weights frozen, x not).
      Tensor x = randn({7, 4}), w1 = randn({6, 4}).requires_grad_(), w2 = randn({5, 6});
      Tensor y = mlp(x, w1, Tensor(), w2, Tensor(), act);
      auto g = grad({sum(y)}, {w1});
      auto want = grad({sum(linear(linear(x, w1, Tensor(), act), w2))}, {w1});
      CHECK_EQUAL_TENSOR(g[0], want[0]);
    }
  }

  TEST_CASE("mlp: a recorded backward (create_graph) takes the unfused path") {
    // The fused GEMM epilogue is not differentiable, so a recorded backward is built from the
    // layers' own ops. The activations' gradients are fused elementwise kernels without a
    // double backward of their own: there the error says so, as it does for linear; with no
    // activation it works and equals the plain backward.
    for (Activation act :
         {Activation::relu, Activation::gelu_tanh, Activation::gelu_erf, Activation::silu, Activation::none}) {
      INFO("act ", std::string(kernels::activation_name(act)));
      TensorList x = {leaf64({3, 4}), leaf64({6, 4}), leaf64({6}), leaf64({2, 6}), leaf64({2})};
      Tensor y = mlp(x[0], x[1], x[2], x[3], x[4], act);
      TensorList plain = grad({sum(mul(y, y))}, x, {}, true, false);
      if (act != Activation::none) {
        CHECK_THROWS_WITH_AS(grad({sum(mul(y, y))}, x, {}, false, true), doctest::Contains("double backward"), Error);
        continue;
      }
      TensorList recorded = grad({sum(mul(y, y))}, x, {}, false, true);
      for (int i = 0; i < 5; ++i) CHECK_CLOSE(recorded[i], plain[i], 1e-12, 1e-12);
    }
  }

  TEST_CASE("mlp: bad input names the op and the shapes") {
    Tensor x = randn({3, 4}), w1 = randn({6, 4}), w2 = randn({5, 6});
    CHECK_THROWS_WITH_AS(mlp(x, w1, Tensor(), randn({5, 7}), Tensor(), Activation::gelu_erf),
                         doctest::Contains("mlp: expected w2 of shape [out_features, 6]"), Error);
    CHECK_THROWS_WITH_AS(mlp(x, w1, Tensor(), w2, randn({4}), Activation::gelu_erf),
                         doctest::Contains("expected b2 of shape [5]"), Error);
    CHECK_THROWS_WITH_AS(mlp(randn({3, 5}), w1, Tensor(), w2, Tensor(), Activation::gelu_erf),
                         doctest::Contains("does not match weight of shape [6, 4]"), Error);
    CHECK_THROWS_WITH_AS(mlp(x, w1, Tensor(), to_dtype(w2, DType::f64), Tensor(), Activation::gelu_erf),
                         doctest::Contains("dtypes differ"), Error);
  }
}
