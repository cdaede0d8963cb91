// tests/autograd/index_test.cpp — gather/scatter/index_select/index_add/one_hot/embedding:
// hand-computed values, gradients, and every index validated before a kernel runs.
#include "tests/helpers.h"

using namespace tessel;
using namespace tessel::testing;

namespace {
std::vector<double> vals(const Tensor& t) { return t.to_vector<double>(); }
}  // namespace

TEST_SUITE("autograd") {
  TEST_CASE("index: hand-computed values (PyTorch semantics)") {
    Tensor x = from_vector({1, 2, 3, 4, 5, 6}, {2, 3});
    // gather along dim 1 and dim 0
    CHECK(vals(gather(x, 1, from_vector_i64({2, 0, 1, 1}, {2, 2}))) == std::vector<double>{3, 1, 5, 5});
    CHECK(vals(gather(x, 0, from_vector_i64({1, 0, 1}, {1, 3}))) == std::vector<double>{4, 2, 6});
    CHECK(vals(gather(x, -1, from_vector_i64({0}, {1, 1}, {.dtype = DType::i32}))) == std::vector<double>{1});
    // scatter_add: out-of-place leaves x alone; repeated indices accumulate
    Tensor idx = from_vector_i64({0, 0, 2, 1, 1, 1}, {2, 3});
    Tensor src = from_vector({1, 2, 3, 4, 5, 6}, {2, 3});
    Tensor s = scatter_add(zeros({2, 3}), 1, idx, src);
    CHECK(vals(s) == std::vector<double>{3, 0, 3, 0, 15, 0});
    // src larger than index: only the leading block is read
    Tensor s2 = scatter_add(x, 0, from_vector_i64({1, 0}, {1, 2}), src);
    CHECK(vals(s2) == std::vector<double>{1, 4, 3, 5, 5, 6});
    CHECK(vals(x) == std::vector<double>{1, 2, 3, 4, 5, 6});
    Tensor y = zeros({2, 3});
    scatter_add_(y, 1, idx, src);
    CHECK(vals(y) == vals(s));
    // index_select / index_add
    CHECK(vals(index_select(x, 0, from_vector_i64({1, 1, 0}))) == std::vector<double>{4, 5, 6, 4, 5, 6, 1, 2, 3});
    CHECK(index_select(x, 1, from_vector_i64({2})).sizes() == Shape{2, 1});
    CHECK(vals(index_select(x, 1, from_vector_i64({2, 0}, {}, {.dtype = DType::i32}))) ==
          std::vector<double>{3, 1, 6, 4});
    Tensor ia = index_add(x, 0, from_vector_i64({1, 1}), from_vector({10, 20, 30, 1, 2, 3}, {2, 3}));
    CHECK(vals(ia) == std::vector<double>{1, 2, 3, 15, 27, 39});
    Tensor z = zeros({4});
    index_add_(z, 0, from_vector_i64({3, 0, 3}), from_vector({1, 2, 3}));
    CHECK(vals(z) == std::vector<double>{2, 0, 0, 4});
    // on a non-contiguous x
    Tensor xt = transpose(x, 0, 1);  // [[1, 4], [2, 5], [3, 6]]
    CHECK(vals(gather(xt, 1, from_vector_i64({1, 0, 1}, {3, 1}))) == std::vector<double>{4, 2, 6});
    CHECK(vals(index_select(xt, 0, from_vector_i64({2, 0}))) == std::vector<double>{3, 6, 1, 4});
  }

  TEST_CASE("index: one_hot and embedding values") {
    Tensor oh = one_hot(from_vector_i64({0, 2, 1}), -1);
    CHECK(oh.dtype() == DType::i64);
    CHECK(oh.sizes() == Shape{3, 3});
    CHECK(vals(oh) == std::vector<double>{1, 0, 0, 0, 0, 1, 0, 1, 0});
    Tensor oh2 = one_hot(from_vector_i64({1, 0, 3, 3}, {2, 2}), 5);
    CHECK(oh2.sizes() == Shape{2, 2, 5});
    CHECK(vals(sum(oh2, {-1})) == std::vector<double>{1, 1, 1, 1});
    CHECK(oh2.at({1, 0, 3}) == 1.0);
    CHECK(one_hot(empty({0}, {.dtype = DType::i64}), 4).sizes() == Shape{0, 4});

    Tensor w = from_vector({0, 1, 10, 11, 20, 21}, {3, 2});
    Tensor e = embedding(w, from_vector_i64({2, 0, 2, 1}, {2, 2}));
    CHECK(e.sizes() == Shape{2, 2, 2});
    CHECK(vals(e) == std::vector<double>{20, 21, 0, 1, 20, 21, 10, 11});
    // a 0-d index picks one row; i32 indices work too
    CHECK(vals(embedding(w, from_vector_i64({1}, {}, {.dtype = DType::i32}))) == std::vector<double>{10, 11});
    CHECK(embedding(w, from_vector_i64({1}, {1}, {.dtype = DType::i32})).sizes() == Shape{1, 2});
  }

  TEST_CASE("index: gradcheck") {
    Tensor gi = from_vector_i64({2, 0, 1, 1, 0, 0}, {2, 3});  // repeats: gradients must accumulate
    CHECK_GRADCHECK([gi](const TensorList& x) { return gather(x[0], 1, gi); }, {leaf64({3, 4})});
    CHECK_GRADCHECK([gi](const TensorList& x) { return gather(x[0], 0, gi); }, {leaf64({3, 4})});
    // scatter_add: x and src (src larger than index in dim 0)
    CHECK_GRADCHECK([gi](const TensorList& x) { return scatter_add(x[0], 1, gi, x[1]); },
                    {leaf64({2, 3}), leaf64({3, 3})});
    CHECK_GRADCHECK([gi](const TensorList& x) { return scatter_add(x[0], 0, gi, x[1]); },
                    {leaf64({3, 4}), leaf64({2, 3})});
    Tensor si = from_vector_i64({2, 0, 2});
    CHECK_GRADCHECK([si](const TensorList& x) { return index_select(x[0], 0, si); }, {leaf64({3, 2})});
    CHECK_GRADCHECK([si](const TensorList& x) { return index_select(x[0], 1, si); }, {leaf64({2, 3, 2})});
    CHECK_GRADCHECK([si](const TensorList& x) { return index_add(x[0], 1, si, x[1]); },
                    {leaf64({2, 4}), leaf64({2, 3})});
    Tensor ei = from_vector_i64({3, 0, 3, 1, 1, 3}, {2, 3});
    CHECK_GRADCHECK([ei](const TensorList& x) { return embedding(x[0], ei); }, {leaf64({5, 3})});
    // gradients through the gathered result of a broadcasting expression
    CHECK_GRADCHECK([gi](const TensorList& x) { return gather(x[0] * x[1], 1, gi); }, {leaf64({3, 4}), leaf64({4})});
  }

  TEST_CASE("index: embedding backward accumulates repeated rows, deterministically") {
    manual_seed(21);
    const int saved = get_num_threads();
    Tensor idx = randint(0, 7, {64, 33});
    Tensor w = randn({7, 129}).requires_grad_();
    Tensor dy = randn({64, 33, 129});
    std::vector<Tensor> grads;
    for (int threads : {1, 2}) {
      set_num_threads(threads);
      w.set_grad(Tensor());
      embedding(w, idx).backward(dy);
      grads.push_back(w.grad());
    }
    set_num_threads(saved);
    CHECK_EQUAL_TENSOR(grads[1], grads[0]);
    // Row v of the gradient is the sum of the ~300 dy rows whose index is v: exact in f64, the
    // same sums in f32 in another order (the natural error of summing in f32), and the sums of
    // |dy| (where a sum cancels, its error scales with these, not with the result).
    Tensor want = zeros({7, 129}, {.dtype = DType::f64}), want32 = zeros({7, 129}),
           magnitude = zeros({7, 129}, {.dtype = DType::f64});
    auto iv = idx.to_vector<int64_t>();
    Tensor dy2 = reshape(dy, {-1, 129}), dy64 = to_dtype(dy2, DType::f64);
    {
      NoGradGuard ng;
      for (size_t n = 0; n < iv.size(); ++n) {
        const auto r = static_cast<int64_t>(n);
        Tensor w64 = select(want, 0, iv[n]), w32 = select(want32, 0, iv[n]), mag = select(magnitude, 0, iv[n]);
        add_(w64, select(dy64, 0, r));
        add_(w32, select(dy2, 0, r));
        add_(mag, abs(select(dy64, 0, r)));
      }
    }
    auto c = natural_closeness(grads[0], want32, want, magnitude);
    CHECK_MESSAGE(c.ok, c.str());
  }

  TEST_CASE("index: bad input is rejected before any kernel runs") {
    Tensor x = randn({3, 5});
    // out-of-range and negative indices name the op, the value and the valid range
    CHECK_THROWS_WITH_AS(gather(x, 1, from_vector_i64({0, 7}, {1, 2})),
                         doctest::Contains("gather: index 7 is out of range for dim 1 of size 5"), Error);
    CHECK_THROWS_WITH_AS(gather(x, 1, from_vector_i64({0, 7}, {1, 2})), doctest::Contains("valid range is [0, 5)"),
                         Error);
    CHECK_THROWS_WITH_AS(index_select(x, 0, from_vector_i64({0, -1})),
                         doctest::Contains("index_select: index -1 is out of range for dim 0 of size 3"), Error);
    CHECK_THROWS_WITH_AS(scatter_add(x, 0, from_vector_i64({3}, {1, 1}), randn({1, 1})),
                         doctest::Contains("scatter_add: index 3 is out of range"), Error);
    CHECK_THROWS_WITH_AS(index_add(x, 1, from_vector_i64({5}), randn({3, 1})),
                         doctest::Contains("index_add: index 5 is out of range for dim 1 of size 5"), Error);
    CHECK_THROWS_WITH_AS(embedding(randn({4, 2}), from_vector_i64({1, 4})),
                         doctest::Contains("embedding: index 4 is out of range for weight of shape [4, 2]"), Error);
    CHECK_THROWS_WITH_AS(one_hot(from_vector_i64({1, 3}), 3),
                         doctest::Contains("one_hot: index 3 is out of range for 3 classes"), Error);
    CHECK_THROWS_WITH_AS(one_hot(empty({0}, {.dtype = DType::i64})),
                         doctest::Contains("one_hot: cannot infer num_classes from an empty index"), Error);
    // float indices are rejected, not truncated
    CHECK_THROWS_WITH_AS(gather(x, 0, zeros({1, 5})), doctest::Contains("gather: index must be i64 or i32, got f32"),
                         Error);
    CHECK_THROWS_WITH_AS(embedding(randn({4, 2}), from_vector({1.0})),
                         doctest::Contains("embedding: index must be i64 or i32, got f32"), Error);
    // shapes
    CHECK_THROWS_WITH_AS(gather(x, 0, from_vector_i64({0, 1}, {2})),
                         doctest::Contains("gather: index must have as many dims as x: x is [3, 5], index is [2]"),
                         Error);
    CHECK_THROWS_WITH_AS(gather(x, 0, zeros({1, 6}, {.dtype = DType::i64})),
                         doctest::Contains("index of shape [1, 6] is larger than x of shape [3, 5] at dim 1"), Error);
    CHECK_THROWS_WITH_AS(index_select(x, 0, zeros({2, 2}, {.dtype = DType::i64})),
                         doctest::Contains("index_select: index must be 1-d, got shape [2, 2]"), Error);
    CHECK_THROWS_WITH_AS(index_add(x, 0, from_vector_i64({0, 1}), randn({2, 4})),
                         doctest::Contains("index_add: src has shape [2, 4] but x is [3, 5]"), Error);
    CHECK_THROWS_WITH_AS(scatter_add(x, 0, zeros({1, 1}, {.dtype = DType::i64}), randn({1, 1}, {.dtype = DType::f64})),
                         doctest::Contains("scatter_add: src has dtype f64 but x has dtype f32"), Error);
    CHECK_THROWS_WITH_AS(embedding(randn({4}), from_vector_i64({1})),
                         doctest::Contains("embedding: expected weight of shape [num_embeddings, dim], got [4]"),
                         Error);
    CHECK_THROWS_WITH_AS(gather(x, 2, zeros({1, 1}, {.dtype = DType::i64})), doctest::Contains("gather"), Error);
    // in-place ops on a tensor that requires grad are refused
    Tensor leaf = randn({3}).requires_grad_();
    CHECK_THROWS_WITH_AS(index_add_(leaf, 0, from_vector_i64({0}), randn({1})), doctest::Contains("index_add_"), Error);
  }
}
