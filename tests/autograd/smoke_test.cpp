#include "tests/helpers.h"

using namespace tessel;
using namespace tessel::testing;

TEST_SUITE("autograd") {
  TEST_CASE("smoke: mul add sum backward with broadcasting") {
    Tensor a = leaf64({3, 4});
    Tensor b = leaf64({4});
    Tensor y = sum(a * b + b);
    y.backward();
    REQUIRE(a.grad().defined());
    CHECK(a.grad().sizes() == Shape{3, 4});
    CHECK(b.grad().sizes() == Shape{4});
    CHECK_GRADCHECK([](const TensorList& x) { return tanh(x[0] * x[1] + exp(x[1])); }, {a, b});
  }
}
