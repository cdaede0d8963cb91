// Every elementwise kernel version against the ref oracle, on odd shapes, broadcast and
// non-contiguous operands, every dtype the op supports. Outputs are poisoned with NaN first.
#include "kernels/elementwise.h"

#include <cmath>

#include "tests/helpers.h"

using namespace tessel;
using namespace tessel::testing;
using kernels::EwOp;

namespace {

const EwOp kAllOps[] = {EwOp::neg,          EwOp::exp,      EwOp::log,         EwOp::sqrt,
                        EwOp::rsqrt,        EwOp::abs,      EwOp::sign,        EwOp::relu,
                        EwOp::gelu_tanh,    EwOp::gelu_erf, EwOp::silu,        EwOp::sigmoid,
                        EwOp::tanh,         EwOp::sin,      EwOp::cos,         EwOp::pow_scalar,
                        EwOp::clamp,        EwOp::add,      EwOp::sub,         EwOp::mul,
                        EwOp::div,          EwOp::pow,      EwOp::maximum,     EwOp::minimum,
                        EwOp::eq,           EwOp::ne,       EwOp::lt,          EwOp::le,
                        EwOp::gt,           EwOp::ge,       EwOp::relu_bwd,    EwOp::gelu_tanh_bwd,
                        EwOp::gelu_erf_bwd, EwOp::silu_bwd, EwOp::sigmoid_bwd, EwOp::tanh_bwd,
                        EwOp::clamp_bwd,    EwOp::where};

bool positive_domain(EwOp op) { return op == EwOp::log || op == EwOp::sqrt || op == EwOp::rsqrt || op == EwOp::pow; }

// Random operand of `shape` in `dtype`, non-contiguous when asked, positive for log-like ops.
Tensor operand(const Shape& shape, DType dtype, bool noncontig, bool positive) {
  Tensor x = noncontig ? noncontig_randn(shape, DType::f64) : randn(shape, {.dtype = DType::f64});
  NoGradGuard ng;
  if (positive) x = abs(x) + 0.25;
  if (is_integral(dtype)) x = x * 5.0;
  if (dtype == DType::b8) x = gt(x, scalar_tensor(0.0, {.dtype = DType::f64}));
  Tensor out = empty(shape, {.dtype = dtype});
  if (noncontig) out = transpose(empty(Shape(shape.rbegin(), shape.rend()), {.dtype = dtype}), 0, -1);
  if (noncontig && shape.size() > 2) out = permute(empty({shape[2], shape[1], shape[0]}, {.dtype = dtype}), {2, 1, 0});
  copy_into(out, x);
  return out;
}

void run_version(const std::string& version, EwOp op, const Tensor& out, const std::vector<Tensor>& ins, double alpha,
                 double beta) {
  kernels::ElementwiseParams p;
  p.op = op;
  p.out = out.buf();
  for (size_t i = 0; i < ins.size(); ++i) p.in[i] = broadcast_view(ins[i], out.sizes(), "test").buf();
  p.alpha = alpha;
  p.beta = beta;
  kernels::elementwise_family().run_version(version, p);
}

}  // namespace

TEST_SUITE("kernels") {
  TEST_CASE("elementwise: every version equals ref on odd, broadcast and strided shapes") {
    manual_seed(3);
    const std::vector<Shape> shapes = {{1}, {7}, {33, 1}, {3, 65}, {2, 31, 5}, {127, 9}, {1, 1, 1}, {4000}};
    const DType dtypes[] = {DType::f32, DType::f64, DType::bf16, DType::f16, DType::i32, DType::i64, DType::b8};
    int runs = 0;
    for (const std::string& version : kernels::elementwise_family().versions(DeviceType::cpu)) {
      for (EwOp op : kAllOps) {
        for (DType dt : dtypes) {
          bool floating = is_floating(dt);
          if (!floating && !kernels::ew_allows_integers(op)) continue;
          if (dt == DType::b8 && !(kernels::ew_is_comparison(op) || op == EwOp::where)) continue;
          for (size_t si = 0; si < shapes.size(); ++si) {
            const Shape& s = shapes[si];
            bool noncontig = si % 2 == 1;
            int arity = kernels::ew_arity(op);
            std::vector<Tensor> ins;
            for (int k = 0; k < arity; ++k) {
              DType in_dt = (op == EwOp::where && k == 0) ? DType::b8 : dt;
              // Second operand broadcasts along the first dim on every other shape.
              Shape is = s;
              if (k == 1 && si % 3 == 2) is[0] = 1;
              ins.push_back(operand(is, in_dt, noncontig && k == 0, positive_domain(op) && k == 0));
            }
            DType out_dt = kernels::ew_is_comparison(op) ? DType::b8 : dt;
            double alpha = op == EwOp::pow_scalar ? 1.7 : -0.5, beta = 0.75;
            if (is_integral(dt) && op == EwOp::clamp) alpha = -2, beta = 3;
            // Poison: NaN for floats, 77 for integers (and true for bool) — unwritten elements show.
            auto poisoned = [&] { return full(s, is_floating(out_dt) ? NAN : 77.0, {.dtype = out_dt}); };
            Tensor want = poisoned(), got = poisoned();
            run_version("ref", op, want, ins, alpha, beta);
            run_version(version, op, got, ins, alpha, beta);
            double rtol = out_dt == DType::f32 ? 4e-6 : rtol_for(out_dt);
            INFO("version ", version, " op ", kernels::ew_name(op), " dtype ", dtype_name(dt), " shape ", shape_str(s));
            if (out_dt == DType::f32 || out_dt == DType::bf16 || out_dt == DType::f16) {
              // Low precision: judged against natural error. The exact value is ref in f64 on
              // the same (exactly converted) inputs; the kernel may be off from it by twice
              // what ref itself is off in the low precision, plus rtol (f32: 4e-6 = 34 ulp,
              // far above simd_math's <= 6 ulp; the slack covers the ops' own rounding steps).
              // A fixed rtol against ref would be dishonest here: ref's gelu_erf forms 1 + erf,
              // which loses every digit for x << 0, while cpu computes Phi(x) from erfc.
              std::vector<Tensor> ins64;
              for (const Tensor& t : ins) ins64.push_back(is_floating(t.dtype()) ? to_dtype(t, DType::f64) : t);
              Tensor exact = full(s, NAN, {.dtype = DType::f64});
              run_version("ref", op, exact, ins64, alpha, beta);
              auto g = got.to_vector<double>(), w = want.to_vector<double>(), e = exact.to_vector<double>();
              double worst = 0;
              size_t wi = 0;
              for (size_t i = 0; i < g.size(); ++i) {
                if (std::isnan(e[i]) || std::isinf(e[i])) {  // specials must match ref exactly
                  bool same = std::isnan(e[i]) ? std::isnan(g[i]) : g[i] == e[i] || g[i] == w[i];
                  if (!same) worst = INFINITY, wi = i;
                  continue;
                }
                double natural = std::fabs(w[i] - e[i]);
                double r = std::fabs(g[i] - e[i]) / (2 * natural + rtol * std::fabs(e[i]) + rtol * 1e-2);
                if (!(r <= worst)) worst = std::isnan(r) ? INFINITY : r, wi = i;
              }
              CHECK_MESSAGE(worst <= 1.0, "worst ratio ", worst, " at ", wi, ": got ", g[wi], ", ref ", w[wi],
                            ", exact ", e[wi]);
            } else {
              auto c = closeness(got, want, rtol, rtol * 1e-2);
              CHECK_MESSAGE(c.ok, c.str());
            }
            ++runs;
          }
        }
      }
    }
    CHECK(runs > 500);
  }

  TEST_CASE("elementwise: the formulas against known values in f64") {
    auto apply = [](EwOp op, double a, double b = 0, double alpha = 0, double beta = 0) {
      Tensor out = empty({}, {.dtype = DType::f64});
      run_version("ref", op, out, {scalar_tensor(a, {.dtype = DType::f64}), scalar_tensor(b, {.dtype = DType::f64})},
                  alpha, beta);
      return out.item();
    };
    CHECK(apply(EwOp::gelu_erf, 1.0) == doctest::Approx(0.8413447460685429).epsilon(1e-14));
    CHECK(apply(EwOp::gelu_tanh, 1.0) == doctest::Approx(0.8411919906082768).epsilon(1e-14));
    CHECK(apply(EwOp::silu, 1.0) == doctest::Approx(0.7310585786300049).epsilon(1e-14));
    CHECK(apply(EwOp::sigmoid, 0.0) == 0.5);
    CHECK(apply(EwOp::rsqrt, 4.0) == 0.5);
    CHECK(apply(EwOp::clamp, 5.0, 0, -1, 2) == 2.0);
    CHECK(std::isnan(apply(EwOp::clamp, NAN, 0, -1, 2)));
    CHECK(std::isnan(apply(EwOp::maximum, NAN, 1.0)));
    CHECK(std::isnan(apply(EwOp::maximum, 1.0, NAN)));
    CHECK(apply(EwOp::sign, -3.0) == -1.0);
    CHECK(apply(EwOp::sign, 0.0) == 0.0);
    // Fused gradients equal finite differences of the forward formula.
    for (EwOp pair : {EwOp::gelu_erf_bwd, EwOp::gelu_tanh_bwd, EwOp::silu_bwd}) {
      EwOp fwd = pair == EwOp::gelu_erf_bwd    ? EwOp::gelu_erf
                 : pair == EwOp::gelu_tanh_bwd ? EwOp::gelu_tanh
                                               : EwOp::silu;
      for (double x : {-3.0, -0.7, 0.0, 0.4, 2.5}) {
        double h = 1e-6;
        double fd = (apply(fwd, x + h) - apply(fwd, x - h)) / (2 * h);
        CHECK(apply(pair, 1.0, x) == doctest::Approx(fd).epsilon(1e-7));
      }
    }
  }
}
