// tests/kernels/cuda_matmul_test.cpp — every CUDA matmul version against the CPU "ref".
//
// Each case builds its operands on the CPU as a base tensor plus a view (row-major, transposed
// storage, or a strided slice), moves the base to the GPU and takes the same view there, so the
// kernels see the very strides the CPU ref sees. C is NaN-poisoned when beta == 0. The result
// comes back as the whole base of C and is viewed on the CPU.
//
// Small-integer operands make f32 (and f64) GEMMs exact in any summation order, so there the
// CUDA versions must equal ref bitwise (TF32 is off, the default). bf16/f16 round their outputs
// once; their results are held to one rounding of the format. Every case also checks that each
// version ran at least once, so a version that declines everything cannot pass silently.
//
// Without a CUDA device every case is skipped with a visible message (TESSEL_REQUIRE_CUDA).
#include <cmath>
#include <functional>
#include <map>

#if TESSEL_HAVE_CUDA
#include <cuda_runtime.h>
#endif

#include "kernels/cuda_options.h"
#include "kernels/matmul.h"
#include "tests/helpers.h"
#include "tests/kernels/matmul_params.h"

using namespace tessel;
using namespace tessel::testing;
using kernels::Activation;

namespace {

// A CPU base tensor and how to view it as the operand: the same view is taken on the device.
struct Operand {
  Tensor base;
  std::function<Tensor(const Tensor&)> view;
  Tensor cpu() const { return view(base); }
};

Tensor fill(const Shape& s, DType t, bool integers) {
  return integers ? to_dtype(randint(-4, 5, s), t) : randn(s, {.dtype = t});
}

// [batch..., r, c] in layout 0 row-major, 1 transposed storage, 2 a strided (non-unit) slice.
Operand operand(const Shape& shape, DType t, int layout, bool integers) {
  const size_t n = shape.size();
  if (layout == 0) return {fill(shape, t, integers), [](const Tensor& x) { return x; }};
  if (layout == 1) {
    Shape s = shape;
    std::swap(s[n - 1], s[n - 2]);
    return {fill(s, t, integers), [](const Tensor& x) { return transpose(x, -1, -2); }};
  }
  Shape s = shape;
  s[n - 1] *= 2;
  s[n - 2] += 1;
  const int64_t cols = shape[n - 1] * 2, rows = s[n - 2];
  return {fill(s, t, integers), [cols, rows](const Tensor& x) { return slice(slice(x, -1, 0, cols, 2), -2, 1, rows); }};
}

Tensor on_cuda(const Tensor& x) { return to_device(x, Device::cuda()); }
Tensor on_cpu(const Tensor& x) { return to_device(x, Device::cpu()); }

const std::vector<std::string>& cuda_versions() {
  static const std::vector<std::string> v = kernels::matmul_family().versions(DeviceType::cuda);
  return v;
}

struct Case {
  Shape batch = {};  // leading dims of C (A and B are broadcast to them when b_broadcast)
  int64_t M = 1, N = 1, K = 1;
  int la = 0, lb = 0;  // operand layouts (see operand())
  bool c_transposed = false;
  bool b_broadcast = false;  // B is [K, N] expanded over the batch (stride 0)
  double alpha = 1, beta = 0;
  int bias = 0;  // 0 none, 1 contiguous, 2 strided
  Activation act = Activation::none;
  DType dt = DType::f32;
  bool integers = true;
};

Shape with(const Shape& batch, int64_t r, int64_t c) {
  Shape s = batch;
  s.push_back(r);
  s.push_back(c);
  return s;
}

// Runs every CUDA version that accepts the case and compares it with ref; counts runs per version.
void check_case(const Case& cs, std::map<std::string, int>& ran) {
  const Operand a = operand(with(cs.batch, cs.M, cs.K), cs.dt, cs.la, cs.integers);
  const Operand b = cs.b_broadcast
                        ? Operand{fill({cs.K, cs.N}, cs.dt, cs.integers),
                                  [sh = with(cs.batch, cs.K, cs.N)](const Tensor& x) { return expand(x, sh); }}
                        : operand(with(cs.batch, cs.K, cs.N), cs.dt, cs.lb, cs.integers);
  const Shape cshape = with(cs.batch, cs.M, cs.N);
  Operand c = operand(cshape, cs.dt, cs.c_transposed ? 1 : 0, true);
  if (cs.beta == 0) fill_raw(c.base, std::nan(""));
  Operand bias;
  if (cs.bias == 1) bias = {fill({cs.N}, cs.dt, true), [](const Tensor& x) { return x; }};
  if (cs.bias == 2)
    bias = {fill({2 * cs.N}, cs.dt, true), [](const Tensor& x) { return slice(x, 0, 0, x.size(0), 2); }};

  Tensor want_base = clone(c.base);
  kernels::matmul_family().run_version("ref", matmul_params(a.cpu(), b.cpu(), c.view(want_base), cs.alpha, cs.beta,
                                                            bias.base.defined() ? bias.cpu() : Tensor(), cs.act));
  const Tensor want = c.view(want_base);

  const Tensor da = a.view(on_cuda(a.base)), db = b.view(on_cuda(b.base));
  const Tensor dbias = bias.base.defined() ? bias.view(on_cuda(bias.base)) : Tensor();
  for (const std::string& v : cuda_versions()) {
    Tensor dc_base = on_cuda(c.base);
    const auto p = matmul_params(da, db, c.view(dc_base), cs.alpha, cs.beta, dbias, cs.act);
    if (!kernels::matmul_family().accepts(v, p)) continue;
    kernels::matmul_family().run_version(v, p);
    cuda_synchronize();
    ++ran[v];
    const Tensor got = c.view(on_cpu(dc_base));
    INFO("version ", v, " dtype ", std::string(dtype_name(cs.dt)), " batch ", shape_str(cs.batch), " M ", cs.M, " N ",
         cs.N, " K ", cs.K, " layouts ", cs.la, "/", cs.lb, cs.b_broadcast ? " (B broadcast)" : "", " c_transposed ",
         cs.c_transposed, " alpha ", cs.alpha, " beta ", cs.beta, " bias ", cs.bias, " act ",
         std::string(kernels::activation_name(cs.act)));
    const bool smooth_act = cs.act != Activation::none && cs.act != Activation::relu;
    if (cs.integers && !smooth_act && (cs.dt == DType::f32 || cs.dt == DType::f64)) {
      CHECK_EQUAL_TENSOR(got, want);
    } else if (cs.integers) {
      // Exact up to the output rounding (one for the fused epilogues, two where cuBLAS rounds
      // C before a separate epilogue pass) and f32 vs f64 evaluation of the activation.
      const double u = cs.dt == DType::bf16 ? std::ldexp(1.0, -8) : cs.dt == DType::f16 ? std::ldexp(1.0, -11) : 1e-6;
      CHECK_CLOSE(got, want, 4 * u, 4 * u);
    } else {
      // Random normal inputs: f32 accumulation error ~ sqrt(K) u |A||B| is far below the output rounding.
      const double u = cs.dt == DType::bf16 ? 1e-2 : cs.dt == DType::f16 ? 2e-3 : 1e-5;
      CHECK_CLOSE(got, want, u, u * std::sqrt(static_cast<double>(cs.K)));
    }
  }
}

void require_all_ran(const std::map<std::string, int>& ran, const std::vector<std::string>& expected) {
  for (const std::string& v : expected) {
    const auto it = ran.find(v);
    CHECK_MESSAGE((it != ran.end() && it->second > 0), "version ", v, " never accepted a case");
  }
}

// M, N, K from {1, 7, 31, 33, 65, 127, 1000} in combinations that put each size in each role,
// plus shapes whose leading dimensions are multiples of 8 (what cuda_tc takes).
const std::vector<std::array<int64_t, 3>>& shapes() {
  static const std::vector<std::array<int64_t, 3>> s = {
      {1, 1, 1},      {7, 31, 33},   {33, 65, 7},  {65, 7, 127},    {127, 33, 1000}, {1000, 65, 31}, {31, 1000, 65},
      {1, 127, 1000}, {1000, 1, 33}, {33, 64, 40}, {127, 72, 1000}, {65, 128, 64},   {1000, 40, 24}, {7, 8, 8}};
  return s;
}

// Compute capability 9.0 (H100/H200): where cuda_wgmma (sm_90a code) must run.
bool device_is_sm90() {
#if TESSEL_HAVE_CUDA
  int major = 0, minor = 0;
  cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, 0);
  cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, 0);
  return major == 9 && minor == 0;
#else
  return false;
#endif
}

struct Tf32Off {
  bool saved = cuda_tf32();
  Tf32Off() { set_cuda_tf32(false); }
  ~Tf32Off() { set_cuda_tf32(saved); }
};

}  // namespace

TEST_SUITE("kernels/cuda") {
  // These two need no device: registration and the host-side layout rules of cuBLAS's accepts().
  TEST_CASE("cuda matmul: the CUDA versions are registered, best first") {
    const std::vector<std::string> want =
        cuda_built()
            ? std::vector<std::string>{"cublas", "cuda_wgmma", "cuda_tc", "cuda_regtile", "cuda_tiled", "cuda_naive"}
            : std::vector<std::string>{};
    CHECK(kernels::matmul_family().versions(DeviceType::cuda) == want);
    Tf32Off restore;
    set_cuda_tf32(true);
    CHECK(cuda_tf32());
    set_cuda_tf32(false);
    CHECK_FALSE(cuda_tf32());
  }

  TEST_CASE("cuda matmul: cublas accepts unit-stride layouts and collapsible batches only") {
    if (!cuda_built()) return;  // no cublas version to ask
    auto accepts = [](const Tensor& a, const Tensor& b, const Tensor& c) {
      kernels::MatmulParams p;
      p.a = a.buf();  // host memory: accepts() only reads the shapes and strides
      p.b = b.buf();
      p.c = c.buf();
      return kernels::matmul_family().accepts("cublas", p);
    };
    Tensor a = randn({7, 5}), b = randn({5, 3}), c = empty({7, 3});
    CHECK(accepts(a, b, c));
    CHECK(accepts(transpose(randn({5, 7}), 0, 1), transpose(randn({3, 5}), 0, 1), c));
    CHECK(accepts(a, b, transpose(empty({3, 7}), 0, 1)));
    CHECK_FALSE(accepts(slice(randn({7, 10}), 1, 0, 10, 2), b, c));  // no unit stride
    CHECK(accepts(a, randn({5, 0}), empty({7, 0})));                 // an empty C is trivially accepted
    CHECK_FALSE(accepts(randn({7, 0}), randn({0, 3}), c));           // K == 0: left to our rungs
    // [2, 3] batch: contiguous collapses; a permuted batch does not.
    Tensor ab = randn({2, 3, 7, 5}), bb = randn({2, 3, 5, 3}), cb = empty({2, 3, 7, 3});
    CHECK(accepts(ab, bb, cb));
    CHECK(accepts(ab, expand(b, {2, 3, 5, 3}), cb));  // broadcast B: batch stride 0
    CHECK_FALSE(accepts(permute(randn({3, 2, 7, 5}), {1, 0, 2, 3}), bb, cb));
  }

  TEST_CASE("cuda matmul: every version equals ref on odd shapes and all transposes (f32, exact)") {
    TESSEL_REQUIRE_CUDA();
    Tf32Off tf32;
    std::map<std::string, int> ran;
    for (const auto& [M, N, K] : shapes())
      for (int la = 0; la < 3; ++la)
        for (int lb = 0; lb < 3; ++lb) check_case({.M = M, .N = N, .K = K, .la = la, .lb = lb}, ran);
    require_all_ran(ran, {"cublas", "cuda_regtile", "cuda_tiled", "cuda_naive"});
  }

  TEST_CASE("cuda matmul: bf16 and f16 on odd shapes and all transposes, tensor cores included") {
    TESSEL_REQUIRE_CUDA();
    for (DType dt : {DType::bf16, DType::f16}) {
      std::map<std::string, int> ran;
      for (const auto& [M, N, K] : shapes())
        for (int la = 0; la < 3; ++la)
          for (int lb = 0; lb < 3; ++lb) check_case({.M = M, .N = N, .K = K, .la = la, .lb = lb, .dt = dt}, ran);
      require_all_ran(ran, {"cublas", "cuda_tc", "cuda_regtile", "cuda_tiled", "cuda_naive"});
      CHECK(ran["cuda_tc"] >= 4 * 5);  // the aligned shapes in all four unit-stride layout combinations
      if (device_is_sm90()) {
        require_all_ran(ran, {"cuda_wgmma"});
        CHECK(ran["cuda_wgmma"] >= 5);  // A row-major, B stored [N, K], K a multiple of 8
      } else {
        CHECK(ran["cuda_wgmma"] == 0);  // declines every device but compute capability 9.0
      }
    }
  }

  TEST_CASE("cuda matmul: bf16 random normal inputs within bf16 rounding of ref") {
    TESSEL_REQUIRE_CUDA();
    std::map<std::string, int> ran;
    for (const auto& [M, N, K] : std::vector<std::array<int64_t, 3>>{{127, 72, 1000}, {65, 128, 64}, {33, 65, 7}})
      for (int la = 0; la < 2; ++la)
        for (int lb = 0; lb < 2; ++lb)
          check_case({.M = M, .N = N, .K = K, .la = la, .lb = lb, .dt = DType::bf16, .integers = false}, ran);
    require_all_ran(ran, {"cublas", "cuda_tc", "cuda_naive"});
  }

  TEST_CASE("cuda matmul: f64 versions equal ref") {
    TESSEL_REQUIRE_CUDA();
    std::map<std::string, int> ran;
    for (const auto& [M, N, K] : std::vector<std::array<int64_t, 3>>{{7, 31, 33}, {65, 128, 64}, {1, 127, 1000}})
      for (int la = 0; la < 3; ++la) check_case({.M = M, .N = N, .K = K, .la = la, .lb = 1, .dt = DType::f64}, ran);
    require_all_ran(ran, {"cublas", "cuda_tiled", "cuda_naive"});
  }

  TEST_CASE("cuda matmul: batches, broadcast B, transposed C, alpha and beta") {
    TESSEL_REQUIRE_CUDA();
    Tf32Off tf32;
    for (DType dt : {DType::f32, DType::bf16}) {
      std::map<std::string, int> ran;
      for (const auto& [M, N, K] : std::vector<std::array<int64_t, 3>>{{33, 65, 7}, {65, 128, 64}, {7, 8, 8}})
        for (bool bb : {false, true})
          for (bool ct : {false, true})
            for (double beta : {0.0, -1.0}) {
              check_case({.batch = {2, 3},
                          .M = M,
                          .N = N,
                          .K = K,
                          .la = 0,
                          .lb = 1,
                          .c_transposed = ct,
                          .b_broadcast = bb,
                          .alpha = 2,
                          .beta = beta,
                          .dt = dt},
                         ran);
              check_case({.batch = {3},
                          .M = M,
                          .N = N,
                          .K = K,
                          .la = 1,
                          .lb = 0,
                          .c_transposed = ct,
                          .b_broadcast = bb,
                          .alpha = -1,
                          .beta = beta,
                          .dt = dt},
                         ran);
            }
      require_all_ran(ran, {"cublas", "cuda_regtile", "cuda_tiled", "cuda_naive"});
      if (dt == DType::bf16) require_all_ran(ran, {"cuda_tc"});
    }
  }

  TEST_CASE("cuda matmul: fused bias and activation epilogues") {
    TESSEL_REQUIRE_CUDA();
    Tf32Off tf32;
    for (DType dt : {DType::f32, DType::bf16}) {
      std::map<std::string, int> ran;
      for (Activation act :
           {Activation::none, Activation::relu, Activation::gelu_tanh, Activation::gelu_erf, Activation::silu})
        for (int bias : {0, 1, 2})
          for (bool ct : {false, true}) {
            check_case(
                {.M = 65, .N = 128, .K = 64, .la = 0, .lb = 1, .c_transposed = ct, .bias = bias, .act = act, .dt = dt},
                ran);
            check_case({.M = 33,
                        .N = 31,
                        .K = 7,
                        .la = 1,
                        .lb = 0,
                        .c_transposed = ct,
                        .beta = 0.5,
                        .bias = bias,
                        .act = act,
                        .dt = dt},
                       ran);
          }
      require_all_ran(ran, {"cublas", "cuda_regtile", "cuda_tiled", "cuda_naive"});
    }
  }

  TEST_CASE("cuda matmul: K == 0 leaves act(beta C + bias); empty C is a no-op") {
    TESSEL_REQUIRE_CUDA();
    std::map<std::string, int> ran;
    check_case({.M = 7, .N = 31, .K = 0, .beta = -1, .bias = 1, .act = Activation::relu}, ran);
    check_case({.M = 0, .N = 31, .K = 7}, ran);
    check_case({.M = 7, .N = 0, .K = 7}, ran);
    require_all_ran(ran, {"cuda_naive"});
  }

  TEST_CASE("cuda matmul: the op picks a CUDA version and matches the CPU (matmul, bmm, linear)") {
    TESSEL_REQUIRE_CUDA();
    Tf32Off tf32;
    Tensor x = to_dtype(randint(-3, 4, {5, 33, 40}), DType::f32), w = to_dtype(randint(-3, 4, {24, 40}), DType::f32);
    Tensor bias = to_dtype(randint(-3, 4, {24}), DType::f32);
    CHECK_EQUAL_TENSOR(on_cpu(matmul(on_cuda(x), on_cuda(t(w)))), matmul(x, t(w)));
    CHECK_EQUAL_TENSOR(on_cpu(bmm(on_cuda(x), on_cuda(transpose(x, 1, 2)))), bmm(x, transpose(x, 1, 2)));
    CHECK_EQUAL_TENSOR(on_cpu(linear(on_cuda(x), on_cuda(w), on_cuda(bias), Activation::relu)),
                       linear(x, w, bias, Activation::relu));
  }

  TEST_CASE("cuda matmul: TF32 switch changes only the cublas f32 path and stays close") {
    TESSEL_REQUIRE_CUDA();
    Tf32Off restore;
    Tensor a = randn({127, 256}), b = randn({256, 65});
    Tensor want = matmul(a, b);
    set_cuda_tf32(true);
    CHECK(cuda_tf32());
    CHECK_CLOSE(on_cpu(matmul(on_cuda(a), on_cuda(b))), want, 1e-2, 1e-2 * 16);
    set_cuda_tf32(false);
    CHECK_CLOSE(on_cpu(matmul(on_cuda(a), on_cuda(b))), want, 1e-5, 1e-5 * 16);
  }
}

TEST_SUITE("autograd/cuda") {
  TEST_CASE("cuda matmul backward equals the CPU backward (f32)") {
    TESSEL_REQUIRE_CUDA();
    Tf32Off tf32;
    Tensor a = to_dtype(randint(-3, 4, {2, 33, 40}), DType::f32), b = to_dtype(randint(-3, 4, {40, 17}), DType::f32);
    Tensor g = to_dtype(randint(-3, 4, {2, 33, 17}), DType::f32);
    Tensor ac = a.detach(), bc = b.detach();
    ac.requires_grad_();
    bc.requires_grad_();
    matmul(ac, bc).backward(g);
    Tensor ad = on_cuda(a).detach(), bd = on_cuda(b).detach();
    ad.requires_grad_();
    bd.requires_grad_();
    matmul(ad, bd).backward(on_cuda(g));
    REQUIRE(ad.grad().defined());
    REQUIRE(bd.grad().defined());
    CHECK(ad.grad().device() == Device::cuda());
    CHECK_EQUAL_TENSOR(on_cpu(ad.grad()), ac.grad());
    CHECK_EQUAL_TENSOR(on_cpu(bd.grad()), bc.grad());
  }
}
