// tests/kernels/cuda_ops_test.cpp — every CUDA kernel version against the CPU "ref".
//
// Each case builds its inputs on the CPU, moves them to the device (views such as transposes
// and strided slices are taken after the move, so the device kernels see the same strides as
// ref), runs ref on the CPU and "cuda" on the device into NaN-poisoned outputs, and compares
// the results moved back. Without a CUDA device every case is skipped with a visible message.
#include <cmath>
#include <functional>

#include "kernels/elementwise.h"
#include "kernels/elementwise_loop.h"
#include "kernels/index.h"
#include "kernels/loss.h"
#include "kernels/norm.h"
#include "kernels/optim.h"
#include "kernels/reduce.h"
#include "kernels/softmax.h"
#include "tests/helpers.h"

using namespace tessel;
using namespace tessel::testing;
using namespace tessel::kernels;

namespace {

Tensor to_cuda(const Tensor& t) { return to_device(t, Device::cuda()); }
std::string name_of(DType t) { return dtype_name(t); }  // INFO prints a const char* as a pointer
Tensor to_cpu(const Tensor& t) { return to_device(t, Device::cpu()); }

// A tensor and the same view of a device copy of its base: equal values, equal strides.
struct Pair {
  Tensor cpu, dev;
};
using ViewFn = std::function<Tensor(const Tensor&)>;
Pair pair_of(const Tensor& base, const ViewFn& view = nullptr) {
  NoGradGuard ng;
  Tensor dev = to_cuda(base);
  if (!view) return {base, dev};
  return {view(base).detach(), view(dev).detach()};
}

// An output filled with a value no kernel writes (NaN; a sentinel for integers), on `dev`.
Tensor poisoned(const Shape& s, DType dt, Device dev) {
  Tensor t = empty(s, {.dtype = dt});
  fill_raw(t, is_floating(dt) ? NAN : -7777);
  return dev.is_cpu() ? t : to_cuda(t);
}

// Tolerances of the CUDA versions against ref (rtol, atol).
std::pair<double, double> tol(DType t, bool reduction = false) {
  switch (t) {
    case DType::f64: return {1e-11, 1e-12};
    case DType::f32: return reduction ? std::pair{1e-4, 1e-5} : std::pair{1e-5, 1e-6};
    case DType::f16: return {4e-3, 4e-3};
    case DType::bf16: return {2e-2, 2e-2};
    default: return {0.0, 0.0};
  }
}

#define CHECK_CLOSE_TOL(got, want, dt, red)                                         \
  do {                                                                              \
    auto tol_ = tol((dt), (red));                                                   \
    auto c_ = ::tessel::testing::closeness((got), (want), tol_.first, tol_.second); \
    CHECK_MESSAGE(c_.ok, c_.str());                                                 \
  } while (0)

Tensor randn_as(const Shape& s, DType dt, double scale = 1, double shift = 0, bool positive = false) {
  NoGradGuard ng;
  Tensor x = randn(s, {.dtype = DType::f64});
  if (positive) x = abs(x);
  return to_dtype(x * scale + shift, dt).detach();
}

// ---------------------------------------------------------------- elementwise
Tensor run_ew(const std::string& version, EwOp op, const std::vector<Tensor>& ins, const Shape& shape, DType out_dt,
              double alpha, double beta) {
  Device dev = version == "ref" ? Device::cpu() : Device::cuda();
  Tensor out = poisoned(shape, out_dt, dev);
  ElementwiseParams p;
  p.op = op;
  p.out = out.buf();
  for (size_t i = 0; i < ins.size(); ++i) p.in[i] = broadcast_view(ins[i], shape, "test").buf();
  p.alpha = alpha;
  p.beta = beta;
  elementwise_family().run_version(version, p);
  return to_cpu(out);
}

// Inputs for `op` in dtype dt: positive where the op needs it, ties for comparisons.
Tensor ew_input(EwOp op, int k, const Shape& s, DType dt) {
  NoGradGuard ng;
  if ((op == EwOp::where && k == 0) || dt == DType::b8) return gt(randn(s), scalar_tensor(0.0)).detach();
  if (!is_floating(dt) || ew_is_comparison(op)) return to_dtype(randint(-3, 4, s), dt).detach();
  const bool positive = op == EwOp::log || op == EwOp::sqrt || op == EwOp::rsqrt || op == EwOp::pow_scalar ||
                        (op == EwOp::pow && k == 0) || (op == EwOp::div && k == 1);
  return positive ? randn_as(s, dt, 1, 0.5, true) : randn_as(s, dt, 1.5);
}

// ---------------------------------------------------------------- reduce
// x reduced over `mask` (kept dims first, as the op layer arranges them).
Tensor run_reduce(const std::string& version, ReduceOp op, const Tensor& x, const std::vector<bool>& mask,
                  Tensor* indices) {
  Device dev = version == "ref" ? Device::cpu() : Device::cuda();
  Shape keep;
  for (int d = 0; d < x.dim(); ++d)
    if (!mask[d]) keep.push_back(x.size(d));
  DType out_t = (op == ReduceOp::sum && !is_floating(x.dtype())) ? DType::i64 : x.dtype();
  Tensor out = poisoned(keep, out_t, dev);
  Tensor idx = (op == ReduceOp::max || op == ReduceOp::min) ? poisoned(keep, DType::i64, dev) : Tensor();
  ReduceParams p;
  p.op = op;
  p.correction = 1;
  p.reduced = kernels::reduced_dims_last(x.buf(), mask, p.in);
  p.out = out.buf();
  if (idx.defined()) p.idx = idx.buf();
  reduce_family().run_version(version, p);
  if (indices) *indices = idx.defined() ? to_cpu(idx) : Tensor();
  return to_cpu(out);
}

// ---------------------------------------------------------------- softmax
Tensor run_softmax(const std::string& version, SoftmaxOp op, const Tensor& in, const Tensor& grad) {
  Device dev = version == "ref" ? Device::cpu() : Device::cuda();
  const int64_t R = in.size(0), C = in.size(1);
  Tensor out = poisoned({R, C}, in.dtype(), dev);
  SoftmaxParams p;
  p.op = op;
  p.out = out.buf();
  p.in = in.buf();
  if (grad.defined()) p.grad = grad.buf();
  softmax_family().run_version(version, p);
  return to_cpu(out);
}

// An [R, C] pair in one of three layouts: contiguous, class dim strided, a strided slice.
Pair rc_pair(int64_t R, int64_t C, int layout, DType dt, double scale = 2) {
  if (layout == 0) return pair_of(randn_as({R, C}, dt, scale));
  if (layout == 1) return pair_of(randn_as({C, R}, dt, scale), [](const Tensor& t) { return transpose(t, 0, 1); });
  return pair_of(randn_as({R, 2 * C}, dt, scale), [C](const Tensor& t) { return slice(t, 1, 0, 2 * C, 2); });
}

}  // namespace

TEST_SUITE("kernels/cuda") {
  TEST_CASE("cuda elementwise: every op equals ref on odd, broadcast, strided and unaligned layouts") {
    TESSEL_REQUIRE_CUDA();
    const DType dtypes[] = {DType::f32, DType::f64, DType::bf16, DType::f16, DType::i32, DType::i64, DType::b8};
    // The output shape; input 0's base shape and view; input 1 (and 2) use `base1` and `view1`
    // (a smaller base1 is broadcast to the output shape).
    struct Case {
      Shape shape, base;
      ViewFn view;
      Shape base1;
      ViewFn view1;
    };
    auto tr = [](const Tensor& t) { return transpose(t, 0, 1); };
    auto skip1 = [](const Tensor& t) { return slice(t, 0, 1, t.size(0)); };
    auto every2 = [](const Tensor& t) { return slice(t, 2, 0, t.size(2), 2); };
    const std::vector<Case> cases = {
        {{1}, {1}, nullptr, {1}, nullptr},
        {{7}, {7}, nullptr, {7}, nullptr},
        {{33}, {33}, nullptr, {33}, nullptr},
        {{1000}, {1000}, nullptr, {1000}, nullptr},
        {{4099}, {4099}, nullptr, {4099}, nullptr},
        {{31, 65}, {31, 65}, nullptr, {65}, nullptr},            // broadcast over rows
        {{31, 7}, {7, 31}, tr, {7, 31}, tr},                     // transposed
        {{127}, {128}, skip1, {127}, nullptr},                   // contiguous but misaligned
        {{5, 3, 65}, {5, 3, 130}, every2, {5, 3, 130}, every2},  // strided inner dim
    };
    int runs = 0;
    for (int o = 0; o <= static_cast<int>(EwOp::where); ++o) {
      const EwOp op = static_cast<EwOp>(o);
      const int arity = ew_arity(op);
      const bool clampish = op == EwOp::clamp || op == EwOp::clamp_bwd;
      const double alpha = op == EwOp::pow_scalar ? 2.5 : (clampish ? -0.7 : 0);
      const double beta = clampish ? 1.3 : 0;
      for (DType dt : dtypes) {
        bool supported = false;
        visit_dtype(dt, [&](auto tag) {
          visit_ew_op(op, [&](auto op_c) { supported = ew_supported<decltype(op_c)::value, decltype(tag)>(); });
        });
        if (!supported) continue;
        const DType out_dt = ew_is_comparison(op) ? DType::b8 : dt;
        for (const Case& c : cases) {
          std::vector<Tensor> cpu_in, dev_in;
          for (int k = 0; k < arity; ++k) {
            const DType in_dt = k == 0 && op == EwOp::where ? DType::b8 : dt;
            Pair pr = k == 0 ? pair_of(ew_input(op, k, c.base, in_dt), c.view)
                             : pair_of(ew_input(op, k, c.base1, in_dt), c.view1);
            cpu_in.push_back(pr.cpu);
            dev_in.push_back(pr.dev);
          }
          Tensor want = run_ew("ref", op, cpu_in, c.shape, out_dt, alpha, beta);
          Tensor got = run_ew("cuda", op, dev_in, c.shape, out_dt, alpha, beta);
          INFO("op ", std::string(ew_name(op)), " dtype ", name_of(dt), " shape ", shape_str(c.shape));
          if (is_floating(out_dt)) {
            auto t = tol(dt);
            CHECK_CLOSE(got, want, t.first, t.second);
          } else {
            CHECK_EQUAL_TENSOR(got, want);
          }
          ++runs;
        }
      }
    }
    CHECK(runs > 500);
  }

  TEST_CASE("cuda reduce: sum, mean, max, min, var, sumsq equal ref over inner, outer and mixed dims") {
    TESSEL_REQUIRE_CUDA();
    const ReduceOp ops[] = {ReduceOp::sum, ReduceOp::mean, ReduceOp::max,
                            ReduceOp::min, ReduceOp::var,  ReduceOp::sumsq};
    const DType dtypes[] = {DType::f32, DType::f64, DType::bf16, DType::i32};
    const std::vector<Shape> shapes = {{1, 1, 1}, {7, 3, 31}, {33, 1, 65}, {2, 127, 7}, {3, 2, 1000}, {1, 1, 5000}};
    const std::vector<std::vector<bool>> masks = {
        {false, false, true}, {true, false, false}, {true, false, true}, {false, true, false}, {true, true, true}};
    for (ReduceOp op : ops)
      for (DType dt : dtypes) {
        if (!is_floating(dt) && (op == ReduceOp::mean || op == ReduceOp::var || op == ReduceOp::sumsq)) continue;
        for (const Shape& s : shapes)
          for (const auto& mask : masks)
            for (int layout = 0; layout < 2; ++layout) {
              const Shape bs = layout ? Shape{s[2], s[1], s[0]} : s;
              Tensor base = is_floating(dt) ? randn_as(bs, dt) : to_dtype(randint(-50, 50, bs), dt);
              Pair x = pair_of(base, layout ? ViewFn([](const Tensor& t) { return permute(t, {2, 1, 0}); }) : nullptr);
              Tensor wi, gi;
              Tensor want = run_reduce("ref", op, x.cpu, mask, &wi);
              Tensor got = run_reduce("cuda", op, x.dev, mask, &gi);
              INFO("reduce op ", static_cast<int>(op), " dtype ", name_of(dt), " shape ", shape_str(s), " layout ",
                   layout, " mask ", mask[0], mask[1], mask[2]);
              if (is_floating(dt))
                CHECK_CLOSE_TOL(got, want, dt, true);
              else
                CHECK_EQUAL_TENSOR(got, want);
              // Indices of max/min: exact where values are distinct (randn f32/f64; i32 has ties,
              // and both take the first, so also exact).
              if (wi.defined() && dt != DType::bf16) CHECK_EQUAL_TENSOR(gi, wi);
            }
      }
  }

  TEST_CASE("cuda reduce: max and min propagate NaN and return the first index") {
    TESSEL_REQUIRE_CUDA();
    Tensor x = from_vector({1, 5, 5, NAN, 2, NAN, -3, -3}, {2, 4});
    for (ReduceOp op : {ReduceOp::max, ReduceOp::min}) {
      Tensor wi, gi;
      Tensor want = run_reduce("ref", op, x, {false, true}, &wi);
      Tensor got = run_reduce("cuda", op, to_cuda(x), {false, true}, &gi);
      CHECK_EQUAL_TENSOR(got, want);
      CHECK_EQUAL_TENSOR(gi, wi);
    }
  }

  TEST_CASE("cuda softmax: forward and backward equal ref, warp rows and long block rows") {
    TESSEL_REQUIRE_CUDA();
    const SoftmaxOp ops[] = {SoftmaxOp::softmax, SoftmaxOp::log_softmax, SoftmaxOp::softmax_backward,
                             SoftmaxOp::log_softmax_backward};
    const std::vector<std::pair<int64_t, int64_t>> shapes = {{1, 1},    {7, 31},   {33, 33},  {65, 127}, {3, 1000},
                                                             {5, 1024}, {4, 1025}, {2, 3001}, {127, 7},  {1, 20000}};
    for (DType dt : {DType::f32, DType::f64, DType::bf16})
      for (SoftmaxOp op : ops)
        for (auto [R, C] : shapes)
          for (int layout = 0; layout < 3; ++layout) {
            Pair in = rc_pair(R, C, layout, dt);
            Pair grad;
            if (softmax_is_backward(op)) {
              // Backward runs on real outputs, as in use.
              SoftmaxOp fwd = op == SoftmaxOp::softmax_backward ? SoftmaxOp::softmax : SoftmaxOp::log_softmax;
              in = pair_of(run_softmax("ref", fwd, in.cpu, Tensor()));
              grad = rc_pair(R, C, (layout + 1) % 3, dt);
            }
            Tensor want = run_softmax("ref", op, in.cpu, grad.cpu);
            Tensor got = run_softmax("cuda", op, in.dev, grad.dev);
            INFO("softmax op ", static_cast<int>(op), " dtype ", name_of(dt), " R ", R, " C ", C, " layout ", layout);
            CHECK_CLOSE_TOL(got, want, dt, true);
          }
  }

  TEST_CASE("cuda softmax: rows with -inf and NaN behave like ref") {
    TESSEL_REQUIRE_CUDA();
    for (int64_t C : {5, 2000}) {
      Tensor x = randn({3, C});
      {
        NoGradGuard ng;
        fill_raw(slice(x, 1, 0, C, 2), -INFINITY);  // every other class impossible
        fill_raw(select(x, 0, 1), -INFINITY);       // row 1: all impossible
        fill_raw(narrow(select(x, 0, 2), 0, 1, 1), NAN);
      }
      for (SoftmaxOp op : {SoftmaxOp::softmax, SoftmaxOp::log_softmax}) {
        Tensor want = run_softmax("ref", op, x, Tensor());
        Tensor got = run_softmax("cuda", op, to_cuda(x), Tensor());
        CHECK_CLOSE(got, want, 1e-5, 1e-6);
      }
    }
  }
}

namespace {

// ---------------------------------------------------------------- norm
struct NormOut {
  Tensor y, mean, rstd, dx, dw, db;
};

// Forward into fresh outputs; backward from the given statistics (ref's, moved to the
// device, so the backward comparison does not inherit forward differences).
NormOut run_norm(const std::string& version, bool layer, const Tensor& x, const Tensor& w, const Tensor& b,
                 const Tensor& dy, const Tensor& mean_in, const Tensor& rstd_in) {
  Device dev = version == "ref" ? Device::cpu() : Device::cuda();
  auto move = [&](const Tensor& t) { return !t.defined() || dev.is_cpu() ? t : to_cuda(t); };
  const int64_t R = x.size(0), C = x.size(1);
  const DType st = norm_stat_dtype(x.dtype());
  NormOut o{poisoned({R, C}, x.dtype(), dev),
            layer ? poisoned({R}, st, dev) : Tensor(),
            poisoned({R}, st, dev),
            poisoned({R, C}, x.dtype(), dev),
            w.defined() ? poisoned({C}, x.dtype(), dev) : Tensor(),
            b.defined() ? poisoned({C}, x.dtype(), dev) : Tensor()};
  NormParams p;
  p.op = layer ? NormOp::layer_norm : NormOp::rms_norm;
  p.rows = R;
  p.cols = C;
  p.eps = 1e-5;
  p.x = x.buf();
  if (w.defined()) p.weight = w.buf();
  if (b.defined()) p.bias = b.buf();
  if (layer) p.mean = o.mean.buf();
  p.rstd = o.rstd.buf();
  p.y = o.y.buf();
  norm_family().run_version(version, p);
  // without given statistics, the backward uses this forward's own
  Tensor mean_b = mean_in.defined() ? move(mean_in) : o.mean, rstd_b = rstd_in.defined() ? move(rstd_in) : o.rstd;
  NormParams q;
  q.op = layer ? NormOp::layer_norm_backward : NormOp::rms_norm_backward;
  q.rows = R;
  q.cols = C;
  q.x = x.buf();
  if (w.defined()) q.weight = w.buf();
  if (layer) q.mean = mean_b.buf();
  q.rstd = rstd_b.buf();
  q.dy = dy.buf();
  q.dx = o.dx.buf();
  if (w.defined()) q.dweight = o.dw.buf();
  if (b.defined()) q.dbias = o.db.buf();
  norm_family().run_version(version, q);
  auto back = [](const Tensor& t) { return t.defined() ? to_cpu(t) : t; };
  return {back(o.y), back(o.mean), back(o.rstd), back(o.dx), back(o.dw), back(o.db)};
}

// ---------------------------------------------------------------- loss
struct LossOut {
  Tensor loss, lse, dx;
};

LossOut run_loss(const std::string& version, bool ce, const Tensor& x, const Tensor& target, const Tensor& grad_row,
                 const Tensor& lse_in, double smoothing) {
  Device dev = version == "ref" ? Device::cpu() : Device::cuda();
  const int64_t N = x.size(0), C = x.size(1);
  const DType acc = loss_acc_dtype(x.dtype());
  LossOut o{poisoned({N}, acc, dev), ce ? poisoned({N}, acc, dev) : Tensor(), poisoned({N, C}, x.dtype(), dev)};
  LossParams p;
  p.op = ce ? LossOp::cross_entropy : LossOp::nll;
  p.input = x.buf();
  p.target = target.buf();
  p.loss = o.loss.buf();
  if (ce) p.lse = o.lse.buf();
  p.label_smoothing = smoothing;
  p.ignore_index = -1;
  loss_family().run_version(version, p);
  LossParams q = p;
  q.op = ce ? LossOp::cross_entropy_backward : LossOp::nll_backward;
  // without a given lse, the backward uses this forward's own
  Tensor lse_b = !ce ? Tensor() : !lse_in.defined() ? o.lse : dev.is_cpu() ? lse_in : to_cuda(lse_in);
  if (ce) q.lse = lse_b.buf();
  q.grad_row = grad_row.buf();
  q.dinput = o.dx.buf();
  loss_family().run_version(version, q);
  return {to_cpu(o.loss), ce ? to_cpu(o.lse) : Tensor(), to_cpu(o.dx)};
}

// ---------------------------------------------------------------- index
// gather into a poisoned dense, or scatter_add into a copy of `indexed`.
Tensor run_index(const std::string& version, IndexOp op, int dim, const Buf& index, const Tensor& indexed,
                 const Shape& dense_shape, const Tensor& dense) {
  Device dev = version == "ref" ? Device::cpu() : Device::cuda();
  IndexParams p;
  p.op = op;
  p.dim = dim;
  p.index = index;
  if (op == IndexOp::gather) {
    Tensor out = poisoned(dense_shape, indexed.dtype(), dev);
    p.indexed = indexed.buf();
    p.dense = out.buf();
    index_family().run_version(version, p);
    return to_cpu(out);
  }
  Tensor acc = dev.is_cpu() ? clone(indexed).detach() : to_cuda(to_cpu(indexed));
  p.indexed = acc.buf();
  p.dense = dense.buf();
  index_family().run_version(version, p);
  return to_cpu(acc);
}

}  // namespace

TEST_SUITE("kernels/cuda") {
  TEST_CASE("cuda norm: layer and RMS norm forward and backward (dx, dw, db) equal ref") {
    TESSEL_REQUIRE_CUDA();
    const std::vector<std::pair<int64_t, int64_t>> shapes = {{1, 1},      {7, 31},   {33, 65},   {65, 7},
                                                             {127, 1000}, {3, 1025}, {1000, 33}, {2, 5000}};
    for (DType dt : {DType::f32, DType::f64, DType::bf16})
      for (bool layer : {true, false})
        for (int affine = 0; affine < 3; ++affine)  // none, weight, weight + bias
          for (auto [R, C] : shapes) {
            if (!layer && affine == 2) continue;
            Pair x = pair_of(randn_as({R, C}, dt, 1.5, 0.3));
            Pair w = affine >= 1 ? pair_of(randn_as({C}, dt)) : Pair{};
            Pair b = affine == 2 ? pair_of(randn_as({C}, dt)) : Pair{};
            Pair dy = pair_of(randn_as({R, C}, dt));
            NormOut want = run_norm("ref", layer, x.cpu, w.cpu, b.cpu, dy.cpu, Tensor(), Tensor());
            // run again with ref's statistics for the backward
            want = run_norm("ref", layer, x.cpu, w.cpu, b.cpu, dy.cpu, want.mean, want.rstd);
            NormOut got = run_norm("cuda", layer, x.dev, w.dev, b.dev, dy.dev, want.mean, want.rstd);
            INFO("norm layer ", layer, " affine ", affine, " dtype ", name_of(dt), " R ", R, " C ", C);
            CHECK_CLOSE_TOL(got.y, want.y, dt, true);
            CHECK_CLOSE_TOL(got.rstd, want.rstd, dt == DType::f64 ? dt : DType::f32, true);
            if (layer) CHECK_CLOSE_TOL(got.mean, want.mean, dt == DType::f64 ? dt : DType::f32, true);
            {
              // dx scales with rstd (1 / sqrt(eps) = 316 for a 1-column row): so does its error
              auto t = tol(dt, true);
              CHECK_CLOSE(got.dx, want.dx, t.first, t.second * std::max(1.0, amax(want.rstd).item()));
            }
            // dw, db: sums over R rows in another order — scale the tolerance with the row count
            if (w.cpu.defined()) {
              auto t = tol(dt, true);
              CHECK_CLOSE(got.dw, want.dw, t.first * 4, t.second * std::sqrt(static_cast<double>(R)) * 4);
            }
            if (b.cpu.defined()) {
              auto t = tol(dt, true);
              CHECK_CLOSE(got.db, want.db, t.first * 4, t.second * std::sqrt(static_cast<double>(R)) * 4);
            }
          }
  }

  TEST_CASE("cuda loss: cross-entropy (label smoothing, ignore_index) and NLL forward and backward equal ref") {
    TESSEL_REQUIRE_CUDA();
    const std::vector<std::pair<int64_t, int64_t>> shapes = {{1, 1},      {7, 31},   {33, 65},   {65, 7},
                                                             {127, 1000}, {3, 1025}, {5, 20000}, {1000, 3}};
    for (DType dt : {DType::f32, DType::f64, DType::bf16})
      for (DType tt : {DType::i64, DType::i32})
        for (bool ce : {true, false})
          for (double smoothing : {0.0, 0.1})
            for (auto [N, C] : shapes)
              for (int layout = 0; layout < 3; ++layout) {
                if (!ce && smoothing > 0) continue;
                if (tt == DType::i32 && layout != 0) continue;
                Pair x = rc_pair(N, C, layout, dt, 3);
                // targets in range, every third row ignored (ignore_index -1)
                Tensor t = randint(0, C, {N});
                {
                  NoGradGuard ng;
                  if (N > 1) fill_raw(slice(t, 0, 0, N, 3), -1);
                }
                Pair target = pair_of(to_dtype(t, tt));
                // grad_row: per-row values, or one value broadcast (stride 0) as for a mean
                Pair grad = layout == 2 ? pair_of(to_dtype(full({1}, 0.37), loss_acc_dtype(dt)),
                                                  [N](const Tensor& g) { return expand(g, {N}); })
                                        : pair_of(randn_as({N}, loss_acc_dtype(dt)));
                LossOut want = run_loss("ref", ce, x.cpu, target.cpu, grad.cpu, Tensor(), smoothing);
                want = run_loss("ref", ce, x.cpu, target.cpu, grad.cpu, want.lse, smoothing);
                LossOut got = run_loss("cuda", ce, x.dev, target.dev, grad.dev, want.lse, smoothing);
                INFO("loss ce ", ce, " smoothing ", smoothing, " dtype ", name_of(dt), " target ", name_of(tt), " N ",
                     N, " C ", C, " layout ", layout);
                const DType acc = loss_acc_dtype(dt);
                CHECK_CLOSE_TOL(got.loss, want.loss, acc, true);
                if (ce) CHECK_CLOSE_TOL(got.lse, want.lse, acc, true);
                CHECK_CLOSE_TOL(got.dx, want.dx, dt, true);
              }
  }

  TEST_CASE("cuda index: gather and scatter_add equal ref (embedding, index_select, full index; bitwise)") {
    TESSEL_REQUIRE_CUDA();
    for (DType dt : {DType::f32, DType::f64, DType::bf16, DType::i64})
      for (DType it : {DType::i64, DType::i32}) {
        auto values = [&](const Shape& s) {
          return is_floating(dt) ? randn_as(s, dt) : to_dtype(randint(-100, 100, s), dt);
        };
        // Embedding-like: indexed [V, D], 1-d index of N rows broadcast over D, dim 0.
        for (auto [V, D, N] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{
                 {1, 1, 1}, {7, 33, 65}, {1000, 31, 127}, {3, 1025, 1000}, {65, 7, 5}}) {
          Pair table = pair_of(values({V, D}));
          Pair index = pair_of(to_dtype(randint(0, V, {N}), it));  // repeats: accumulation order matters
          Pair dense = pair_of(values({N, D}), nullptr);
          const Shape s = {N, D};
          Buf ic = kernels::broadcast_index(index.cpu.buf(), s, 0),
              id = kernels::broadcast_index(index.dev.buf(), s, 0);
          INFO("embedding dtype ", name_of(dt), " index ", name_of(it), " V ", V, " D ", D, " N ", N);
          CHECK_EQUAL_TENSOR(run_index("cuda", IndexOp::gather, 0, id, table.dev, s, Tensor()),
                             run_index("ref", IndexOp::gather, 0, ic, table.cpu, s, Tensor()));
          CHECK_EQUAL_TENSOR(run_index("cuda", IndexOp::scatter_add, 0, id, table.dev, s, dense.dev),
                             run_index("ref", IndexOp::scatter_add, 0, ic, table.cpu, s, dense.cpu));
        }
        // A full index along dim 1 of a 3-d tensor, with a transposed (non-contiguous) source.
        for (auto [A, B, C, K] : std::vector<std::tuple<int64_t, int64_t, int64_t, int64_t>>{
                 {2, 7, 5, 9}, {3, 31, 33, 4}, {1, 1, 1, 1}, {5, 65, 3, 127}}) {
          Pair src = pair_of(values({C, B, A}), [](const Tensor& t) { return permute(t, {2, 1, 0}); });
          Pair index = pair_of(to_dtype(randint(0, B, {A, K, C}), it));
          Pair dense = pair_of(values({A, C, K}), [](const Tensor& t) { return transpose(t, 1, 2); });
          const Shape s = {A, K, C};
          INFO("gather dim 1 dtype ", name_of(dt), " index ", name_of(it), " A ", A, " B ", B, " C ", C, " K ", K);
          CHECK_EQUAL_TENSOR(run_index("cuda", IndexOp::gather, 1, index.dev.buf(), src.dev, s, Tensor()),
                             run_index("ref", IndexOp::gather, 1, index.cpu.buf(), src.cpu, s, Tensor()));
          // scatter_add accumulates into a (contiguous) copy of the source
          Pair acc = pair_of(contiguous(src.cpu).detach());
          CHECK_EQUAL_TENSOR(run_index("cuda", IndexOp::scatter_add, 1, index.dev.buf(), acc.dev, s, dense.dev),
                             run_index("ref", IndexOp::scatter_add, 1, index.cpu.buf(), acc.cpu, s, dense.cpu));
        }
      }
  }

  TEST_CASE("cuda optim: SGD, Adam, AdamW and LAMB over many tensors equal ref after three steps") {
    TESSEL_REQUIRE_CUDA();
    // 30 tensors: more than one launch's worth, sizes odd, some empty-ish (1 element).
    std::vector<int64_t> sizes;
    for (int i = 0; i < 30; ++i) sizes.push_back(i % 5 == 0 ? 1 : (i % 3 == 0 ? 4099 : 7 + 31 * i));
    struct Config {
      OptimOp op;
      double momentum, dampening;
      bool nesterov;
      double wd;
    };
    const Config configs[] = {{OptimOp::sgd, 0, 0, false, 0},      {OptimOp::sgd, 0.9, 0.1, false, 1e-2},
                              {OptimOp::sgd, 0.9, 0, true, 1e-2},  {OptimOp::adam, 0, 0, false, 1e-2},
                              {OptimOp::adamw, 0, 0, false, 1e-2}, {OptimOp::lamb, 0, 0, false, 1e-2}};
    for (DType dt : {DType::f32, DType::f64})
      for (const Config& cfg : configs) {
        std::vector<Tensor> w[2], g[2], m[2], v[2];  // [0] cpu, [1] cuda
        for (int64_t n : sizes) {
          Tensor w0 = randn_as({n}, dt), g0 = randn_as({n}, dt);
          Tensor m0 = zeros({n}, {.dtype = dt}), v0 = zeros({n}, {.dtype = dt});
          w[0].push_back(w0);
          g[0].push_back(g0);
          m[0].push_back(m0);
          v[0].push_back(v0);
          w[1].push_back(to_cuda(w0));
          g[1].push_back(to_cuda(g0));
          m[1].push_back(to_cuda(m0));
          v[1].push_back(to_cuda(v0));
        }
        for (int64_t step = 1; step <= 3; ++step)
          for (int k = 0; k < 2; ++k) {
            OptimParams p;
            p.op = cfg.op;
            p.lr = 0.01;
            p.weight_decay = cfg.wd;
            p.momentum = cfg.momentum;
            p.dampening = cfg.dampening;
            p.nesterov = cfg.nesterov;
            p.step = step;
            for (size_t i = 0; i < sizes.size(); ++i)
              p.slots.push_back({w[k][i].buf(), g[k][i].buf(), m[k][i].buf(), v[k][i].buf(), step == 1});
            optim_family().run_version(k == 0 ? "ref" : "cuda", p);
          }
        for (size_t i = 0; i < sizes.size(); ++i) {
          INFO("optim op ", static_cast<int>(cfg.op), " dtype ", name_of(dt), " tensor ", i, " size ", sizes[i]);
          CHECK_CLOSE_TOL(to_cpu(w[1][i]), w[0][i], dt, true);
          CHECK_CLOSE_TOL(to_cpu(m[1][i]), m[0][i], dt, true);
          CHECK_CLOSE_TOL(to_cpu(v[1][i]), v[0][i], dt, true);
        }
      }
  }
}
