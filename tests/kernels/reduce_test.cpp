// Every reduce kernel version against ref: all ops, dim subsets, strided inputs, dtypes.
#include "kernels/reduce.h"

#include <cmath>

#include "tests/helpers.h"

using namespace tessel;
using namespace tessel::testing;
using kernels::ReduceOp;

namespace {

// Runs `version` for x reduced over `mask` dims (kept dims first, as the op layer arranges).
struct Run {
  Tensor out, idx;
};
Run run_version(const std::string& version, ReduceOp op, const Tensor& x, const std::vector<bool>& mask,
                double correction = 1) {
  Shape kept;
  for (size_t d = 0; d < mask.size(); ++d)
    if (!mask[d]) kept.push_back(x.sizes()[d]);
  DType out_t = (op == ReduceOp::sum || op == ReduceOp::mean) && !is_floating(x.dtype()) ? DType::i64 : x.dtype();
  Run r{full(kept, is_floating(out_t) ? NAN : -99, {.dtype = out_t}), full(kept, -1, {.dtype = DType::i64})};
  kernels::ReduceParams p;
  p.op = op;
  p.correction = correction;
  p.reduced = kernels::reduced_dims_last(x.buf(), mask, p.in);
  p.out = r.out.buf();
  if (op == ReduceOp::max || op == ReduceOp::min) p.idx = r.idx.buf();
  kernels::reduce_family().run_version(version, p);
  return r;
}

}  // namespace

TEST_SUITE("kernels") {
  TEST_CASE("reduce: every version equals ref") {
    manual_seed(11);
    const std::vector<Shape> shapes = {{1}, {7, 1}, {33, 65}, {2, 31, 5}, {127, 3, 1, 2}, {1000, 17}, {3, 1000}};
    int runs = 0;
    for (const std::string& version : kernels::reduce_family().versions(DeviceType::cpu)) {
      for (const Shape& s : shapes) {
        size_t nd = s.size();
        for (uint32_t bits = 1; bits < (1u << nd); ++bits) {
          std::vector<bool> mask(nd);
          for (size_t d = 0; d < nd; ++d) mask[d] = (bits >> d) & 1u;
          for (DType dt : {DType::f32, DType::f64, DType::bf16, DType::i32}) {
            for (ReduceOp op :
                 {ReduceOp::sum, ReduceOp::mean, ReduceOp::max, ReduceOp::min, ReduceOp::var, ReduceOp::sumsq}) {
              if (!is_floating(dt) && (op == ReduceOp::mean || op == ReduceOp::var || op == ReduceOp::sumsq)) continue;
              bool strided = (bits + nd) % 2 == 0;
              Tensor x = strided ? noncontig_randn(s, DType::f32) : randn(s);
              if (!is_floating(dt)) x = x * 10.0;
              x = to_dtype(x, dt);
              if (strided) {  // keep it non-contiguous after the conversion
                Tensor nc = transpose(empty(Shape(s.rbegin(), s.rend()), {.dtype = dt}), 0, -1);
                if (nd > 2)
                  nc = permute(empty(Shape(s.rbegin(), s.rend()), {.dtype = dt}), [&] {
                    std::vector<int64_t> p(nd);
                    for (size_t i = 0; i < nd; ++i) p[i] = static_cast<int64_t>(nd - 1 - i);
                    return p;
                  }());
                copy_into(nc, x);
                x = nc;
              }
              Run want = run_version("ref", op, x, mask);
              Run got = run_version(version, op, x, mask);
              INFO("version ", version, " op ", static_cast<int>(op), " dtype ", dtype_name(dt), " shape ",
                   shape_str(s), " mask ", bits);
              double rtol = dt == DType::bf16 ? 1e-2 : dt == DType::f32 ? 1e-5 : 1e-12;
              auto c = closeness(got.out, want.out, rtol, rtol);
              CHECK_MESSAGE(c.ok, c.str());
              if (op == ReduceOp::max || op == ReduceOp::min) CHECK_EQUAL_TENSOR(got.idx, want.idx);
              ++runs;
            }
          }
        }
      }
    }
    CHECK(runs > 300);
  }

  TEST_CASE("reduce: column sums split over rows are the same on 1 and 2 threads, and equal ref") {
    // A bias gradient's shape: a few hundred columns over thousands of rows, where the cpu
    // version sums chunks of rows into partials; and a reduction over two leading dims.
    ThreadsGuard guard;
    for (auto [s, mask] : {std::pair{Shape{2176, 130}, std::vector<bool>{true, false}},
                           std::pair{Shape{3, 700, 40}, std::vector<bool>{true, true, false}},
                           std::pair{Shape{5000, 600}, std::vector<bool>{true, false}}})
      for (ReduceOp op : {ReduceOp::sum, ReduceOp::mean}) {
        INFO("shape ", shape_str(s), " op ", static_cast<int>(op));
        Tensor x = randn(s);
        set_num_threads(1);
        Run one = run_version("cpu", op, x, mask);
        set_num_threads(2);
        Run two = run_version("cpu", op, x, mask);
        CHECK_EQUAL_TENSOR(two.out, one.out);
        auto c = closeness(one.out, run_version("ref", op, x, mask).out, 1e-6, 1e-6);
        CHECK_MESSAGE(c.ok, c.str());
      }
  }

  TEST_CASE("reduce: ref against values computed by hand") {
    Tensor x = from_vector({1, 5, 2, 5, -1, 0}, {2, 3}, {.dtype = DType::f64});
    Run mx = run_version("ref", ReduceOp::max, x, {false, true});
    CHECK(mx.out.to_vector<double>() == std::vector<double>{5, 5});
    CHECK(mx.idx.to_vector<int64_t>() == std::vector<int64_t>{1, 0});  // first of ties
    Run mn = run_version("ref", ReduceOp::min, x, {true, false});
    CHECK(mn.out.to_vector<double>() == std::vector<double>{1, -1, 0});
    CHECK(mn.idx.to_vector<int64_t>() == std::vector<int64_t>{0, 1, 1});
    Run v = run_version("ref", ReduceOp::var, x, {true, true});
    // mean 2, squared deviations 1+9+0+9+9+4 = 32, unbiased / 5
    CHECK(v.out.item() == doctest::Approx(32.0 / 5));
    Run v0 = run_version("ref", ReduceOp::var, x, {true, true}, 0);
    CHECK(v0.out.item() == doctest::Approx(32.0 / 6));
    Tensor withnan = from_vector({1, NAN, 3});
    CHECK(std::isnan(run_version("ref", ReduceOp::max, withnan, {true}).out.item()));
    CHECK(run_version("ref", ReduceOp::max, withnan, {true}).idx.item() == 1);
    Tensor ints = from_vector({1, 2, 3}, {3}, {.dtype = DType::i32});
    Run s = run_version("ref", ReduceOp::sum, ints, {true});
    CHECK(s.out.dtype() == DType::i64);
    CHECK(s.out.item() == 6);
  }

  TEST_CASE("reduce: max/min of contiguous rows pick the first index, propagate NaN, in every version") {
    // 37 elements per row: the cpu version's vector loop and its scalar tail both matter.
    std::vector<double> tie(37, 0.0), nan_row(37, 0.0), zeros(37, 0.0);
    for (int i = 0; i < 37; ++i) tie[i] = nan_row[i] = static_cast<double>(i % 5);
    nan_row[20] = NAN;
    nan_row[30] = NAN;
    zeros[3] = -0.0;  // -0 before +0 elsewhere: both are the max; the first index wins
    for (int i = 0; i < 3; ++i) zeros[i] = -1.0;
    std::vector<double> all;
    for (auto* v : {&tie, &nan_row, &zeros}) all.insert(all.end(), v->begin(), v->end());
    Tensor x = from_vector(all, {3, 37});
    for (const auto& v : kernels::reduce_family().versions(DeviceType::cpu)) {
      INFO("version ", v);
      Run mx = run_version(v, ReduceOp::max, x, {false, true});
      CHECK(mx.out.at({0}) == 4.0);
      CHECK(mx.idx.at({0}) == 4);
      CHECK(std::isnan(mx.out.at({1})));
      CHECK(mx.idx.at({1}) == 20);
      CHECK(mx.idx.at({2}) == 3);
      CHECK(std::signbit(mx.out.at({2})));
      Run mn = run_version(v, ReduceOp::min, x, {false, true});
      CHECK(mn.idx.at({0}) == 0);
      CHECK(mn.idx.at({1}) == 20);
      CHECK(mn.idx.at({2}) == 0);
    }
  }
}
