// tests/kernels/index_test.cpp — every registered index version against "ref".
//
// gather copies and scatter_add adds in a fixed order (dim coordinate ascending) in every
// version, so results must be bitwise equal to ref — for any dtype and thread count.
#include "kernels/index.h"

#include "tests/helpers.h"

using namespace tessel;
using namespace tessel::testing;

namespace {

Tensor values(const Shape& s, DType t, bool noncontig) {
  if (is_floating(t)) return noncontig ? noncontig_randn(s, t) : randn(s, {.dtype = t});
  Tensor v = randint(-100, 100, s, {.dtype = t});
  if (!noncontig || s.empty()) return v;
  return transpose(contiguous(transpose(v, 0, -1)), 0, -1).detach();  // same values, column-major
}

bool any_nan(const Tensor& t) {
  for (double v : t.to_vector<double>())
    if (std::isnan(v)) return true;
  return false;
}

// Runs `version` and ref and demands bitwise-equal results. For gather `dense` is the output
// (NaN-poisoned); for scatter_add `indexed` is updated in place, from the same start.
void check_version(const std::string& version, kernels::IndexOp op, int dim, const Buf& index, const Tensor& indexed,
                   const Tensor& dense) {
  auto run = [&](const std::string& v) {
    kernels::IndexParams p;
    p.op = op;
    p.dim = dim;
    p.index = index;
    if (op == kernels::IndexOp::gather) {
      Tensor out = empty(dense.sizes(), {.dtype = dense.dtype()});
      fill_raw(out, is_floating(out.dtype()) ? std::nan("") : -7777.0);
      p.indexed = indexed.buf();
      p.dense = out.buf();
      kernels::index_family().run_version(v, p);
      return out;
    }
    Tensor acc = clone(indexed).detach();
    p.indexed = acc.buf();
    p.dense = dense.buf();
    kernels::index_family().run_version(v, p);
    return acc;
  };
  Tensor want = run("ref"), got = run(version);
  INFO("version ", version, " op ", op == kernels::IndexOp::gather ? "gather" : "scatter_add", " dim ", dim,
       " indexed ", shape_str(indexed.sizes()), " dense ", shape_str(dense.sizes()), " dtype ",
       dtype_name(dense.dtype()));
  CHECK_EQUAL_TENSOR(got, want);
  if (is_floating(got.dtype())) CHECK_FALSE(any_nan(got));
}

}  // namespace

TEST_SUITE("kernels") {
  TEST_CASE("index: gather and scatter_add, every version vs ref on odd shapes") {
    ThreadsGuard guard;
    const DType dtypes[] = {DType::f32, DType::f64, DType::bf16, DType::i64, DType::i32};
    int n = 0;
    for (int threads : {1, 2}) {
      set_num_threads(threads);
      for (int64_t a : {1, 7, 33})
        for (int64_t b : {1, 31, 65})
          for (int rank = 1; rank <= 3; ++rank)
            for (int dim = 0; dim < rank; ++dim) {
              ++n;
              const DType t = dtypes[n % 5];
              const DType it = n % 2 ? DType::i64 : DType::i32;
              Shape x_shape = rank == 1 ? Shape{b} : rank == 2 ? Shape{a, b} : Shape{a, 3, b};
              Shape i_shape = x_shape;
              // index smaller than x off dim (where possible), any length along dim
              for (int k = 0; k < rank; ++k)
                if (k != dim && i_shape[k] > 1) i_shape[k] -= n % 2;
              i_shape[dim] = 1 + (n * 7) % 40;
              Tensor x = values(x_shape, t, n % 3 == 0);
              Tensor index = randint(0, x_shape[dim], i_shape, {.dtype = it});
              if (n % 4 == 0 && rank > 1) index = transpose(contiguous(transpose(index, 0, -1)), 0, -1).detach();
              Tensor src = values(i_shape, t, n % 3 == 1);
              for (const auto& v : kernels::index_family().versions(DeviceType::cpu)) {
                check_version(v, kernels::IndexOp::gather, dim, index.buf(), x, src);
                check_version(v, kernels::IndexOp::scatter_add, dim, index.buf(), x, src);
              }
            }
    }
  }

  TEST_CASE("index: broadcast (stride-0) index, the embedding-backward layout") {
    ThreadsGuard guard;
    for (int threads : {1, 2}) {
      set_num_threads(threads);
      // dense [N, D] rows added into indexed [V, D] at rows index[n]; many repeats.
      const int64_t V = 13, D = 127, N = 500;
      Tensor index = randint(0, V, {N});
      Buf ib = index.buf();
      ib.ndim = 2;
      ib.size[1] = D;
      ib.stride[1] = 0;
      for (DType t : {DType::f32, DType::bf16, DType::f64}) {
        Tensor grad = zeros({V, D}, {.dtype = t}), dy = randn({N, D}, {.dtype = t});
        for (const auto& v : kernels::index_family().versions(DeviceType::cpu)) {
          check_version(v, kernels::IndexOp::scatter_add, 0, ib, grad, dy);
          check_version(v, kernels::IndexOp::gather, 0, ib, randn({V, D}, {.dtype = t}), dy);
        }
      }
    }
  }

  TEST_CASE("index: hand-computed gather and scatter_add") {
    Tensor x = from_vector({1, 2, 3, 4, 5, 6}, {2, 3});
    Tensor index = from_vector_i64({2, 0, 1, 1}, {2, 2});
    for (const auto& v : kernels::index_family().versions(DeviceType::cpu)) {
      Tensor out = empty({2, 2});
      kernels::index_family().run_version(v, {kernels::IndexOp::gather, 1, index.buf(), x.buf(), out.buf()});
      CHECK(out.to_vector<double>() == std::vector<double>{3, 1, 5, 5});
      Tensor acc = zeros({2, 3});
      Tensor src = from_vector({10, 20, 30, 40}, {2, 2});
      kernels::index_family().run_version(v, {kernels::IndexOp::scatter_add, 1, index.buf(), acc.buf(), src.buf()});
      CHECK(acc.to_vector<double>() == std::vector<double>{20, 0, 10, 0, 70, 0});
    }
  }
}
