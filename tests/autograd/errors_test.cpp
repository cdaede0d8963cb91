// Misuse of the core and autograd API gives a tessel::Error naming the op, the shapes and the
// expectation — never an abort, a segfault or a silent wrong answer.
#include "tests/helpers.h"

using namespace tessel;
using namespace tessel::testing;
using doctest::Contains;

TEST_SUITE("autograd") {
  TEST_CASE("bad input: shapes") {
    CHECK_THROWS_WITH_AS(ones({2, 3}) + ones({3, 2}), Contains("add: shapes [2, 3] and [3, 2] cannot be broadcast"),
                         Error);
    CHECK_THROWS_WITH_AS(reshape(ones({2, 3}), {4, 2}),
                         Contains("reshape: shape [4, 2] has 8 elements, but the input has 6"), Error);
    CHECK_THROWS_WITH_AS(reshape(ones({2, 3}), {-1, -1}), Contains("only one dim can be -1"), Error);
    CHECK_THROWS_WITH_AS(reshape(ones({2, 3}), {4, -1}),
                         Contains("cannot infer the -1 in shape [4, -1] for 6 elements"), Error);
    CHECK_THROWS_WITH_AS(sum(ones({2, 3}), {2}), Contains("sum: dim 2 is out of range for a tensor with 2 dims"),
                         Error);
    CHECK_THROWS_WITH_AS(sum(ones({2, 3}), {1, -1}), Contains("sum: dim -1 appears twice"), Error);
    CHECK_THROWS_WITH_AS(permute(ones({2, 3}), {0}), Contains("permute: got 1 dims for a tensor of shape [2, 3]"),
                         Error);
    CHECK_THROWS_WITH_AS(t(ones({2, 3, 4})), Contains("t: expected a 2-d tensor, got shape [2, 3, 4]"), Error);
    CHECK_THROWS_WITH_AS(slice(ones({5}), 0, 0, 5, 0), Contains("slice: step must be positive"), Error);
    CHECK_THROWS_WITH_AS(unsqueeze(ones({2}), 3), Contains("unsqueeze: dim 3 is out of range"), Error);
    CHECK_THROWS_WITH_AS(empty({2, -1}), Contains("empty: negative size in shape [2, -1]"), Error);
    CHECK_THROWS_WITH_AS(empty({1, 1, 1, 1, 1, 1, 1, 1, 1}), Contains("at most 8 dims"), Error);
    CHECK_THROWS_WITH_AS(from_vector({1, 2, 3}, {2, 2}), Contains("from_vector: got 3 values for shape [2, 2]"), Error);
    CHECK_THROWS_WITH_AS(max(ones({0, 3}), 0),
                         Contains("max: cannot take the max of an empty selection (shape [0, 3])"), Error);
  }

  TEST_CASE("bad input: dtypes") {
    Tensor i = arange(4);
    CHECK_THROWS_WITH_AS(exp(i), Contains("exp: expected a floating tensor, got i64 of shape [4]"), Error);
    CHECK_THROWS_WITH_AS(mean(i), Contains("mean: expected a floating tensor, got i64"), Error);
    CHECK_THROWS_WITH_AS(where(ones({2}), ones({2}), ones({2})), Contains("where: condition must be bool, got f32"),
                         Error);
    CHECK_THROWS_WITH_AS(Tensor(i).requires_grad_(), Contains("only floating tensors can require grad, got i64"),
                         Error);
    CHECK_THROWS_WITH_AS(i.data_ptr<float>(), Contains("data_ptr: requested f32 but the tensor is i64"), Error);
    CHECK_THROWS_WITH_AS(dtype_from_name("float8"), Contains("unknown dtype 'float8'"), Error);
    Tensor f = ones({2});
    CHECK_THROWS_WITH_AS(div_(i, ones({4})),
                         Contains("div_: in-place div is not supported for a i64 target of shape [4]"), Error);
    CHECK_THROWS_WITH_AS(add_(f, ones({3})), Contains("add_: shapes [2] and [3] cannot be broadcast"), Error);
    CHECK_THROWS_WITH_AS(add_(f, ones({3, 2})),
                         Contains("add_: cannot broadcast [3, 2] into the in-place target of shape [2]"), Error);
  }

  TEST_CASE("bad input: indices, element access, devices") {
    Tensor x = zeros({2, 3});
    CHECK_THROWS_WITH_AS(x.at({2, 0}), Contains("at: index 2 is out of range for dim 0 of size 2 (shape [2, 3])"),
                         Error);
    CHECK_THROWS_WITH_AS(x.at({0}), Contains("at: index has 1 entries for a tensor of shape [2, 3]"), Error);
    CHECK_THROWS_WITH_AS(x.item(), Contains("item: expected a tensor with one element, got shape [2, 3]"), Error);
    CHECK_THROWS_WITH_AS(x.size(5), Contains("size: dim 5 is out of range"), Error);
    if (!cuda_available())
      CHECK_THROWS_WITH_AS(zeros({2}, {.device = Device::cuda(0)}),
                           Contains(cuda_built() ? "no CUDA device 0" : "tessel was built without CUDA"), Error);
    CHECK_THROWS_WITH_AS(Tensor().dim(), Contains("undefined"), Error);
  }

  TEST_CASE("bad input: autograd misuse") {
    Tensor x = ones({2});
    CHECK_THROWS_WITH_AS(sum(x).backward(), Contains("backward: the tensor of shape [] does not require grad"), Error);
    Tensor w = ones({2}, {.requires_grad = true});
    Tensor y = w * 2.0;
    CHECK_THROWS_WITH_AS(y.requires_grad_(), Contains("can only be set on a leaf tensor"), Error);
    CHECK_THROWS_WITH_AS(x.register_hook([](const Tensor& g) { return g; }),
                         Contains("register_hook: the tensor of shape [2] does not require grad"), Error);
    CHECK_THROWS_WITH_AS(gradcheck([](const TensorList& v) { return v[0]; }, {ones({2}, {.requires_grad = true})}),
                         Contains("gradcheck: input 0 has dtype f32; finite differences need f64"), Error);
    CHECK_THROWS_WITH_AS(clamp(w, 1, 0), Contains("clamp: expected lo <= hi, got lo=1, hi=0"), Error);
  }
}
