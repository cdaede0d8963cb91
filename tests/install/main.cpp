// tests/install/main.cpp — the README's embedding example, plus checks that make it a test.
#include <tessel/tessel.h>

#include <cmath>
#include <cstdio>

int main() {
  using namespace tessel;
  Tensor x = from_vector({1, 2, 3, 4, 5, 6}, {2, 3});          // data, 2x3
  Tensor w = from_vector({0.5, -1, 2}, {3}).requires_grad_();  // a parameter, broadcast over rows
  Tensor loss = sum(square(x * w));                            // sum_ij (x_ij w_j)^2
  loss.backward();                                             // fills w.grad()
  std::printf("loss = %g\ndloss/dw = %s\n", loss.item(), w.grad().str().c_str());

  // By hand: loss = 213.25 and dloss/dw_j = 2 w_j sum_i x_ij^2 = [17, -58, 180].
  const double expect[3] = {17, -58, 180};
  bool ok = std::fabs(loss.item() - 213.25) < 1e-3;
  for (int64_t j = 0; j < 3; ++j) ok = ok && std::fabs(w.grad().at({j}) - expect[j]) < 1e-3;
  std::printf("%s (tessel %s on %s)\n", ok ? "ok" : "WRONG", TESSEL_VERSION, cpu_features().model.c_str());
  return ok ? 0 : 1;
}
