// tests/nn/module_to_test.cpp — Module::to(device) moves parameters and buffers in place.
#include "nn/layers.h"
#include "tests/helpers.h"

using namespace tessel;
using namespace tessel::testing;

namespace {
struct Net : nn::Module {
  std::shared_ptr<nn::Linear> fc;
  Tensor steps;
  Net() : Module("Net") {
    fc = register_module("fc", std::make_shared<nn::Linear>(5, 3));
    steps = register_buffer("steps", full({}, 4.0, {.dtype = DType::i64}));
  }
};

// Moves `net` to `device` and back, checking identity, placement and values on the way.
void round_trip(Net& net, Device device) {
  std::vector<Tensor> params = net.parameters();
  std::vector<std::vector<double>> before;
  for (const Tensor& p : params) before.push_back(p.to_vector<double>());
  std::vector<const TensorImpl*> impls;
  for (const Tensor& p : params) impls.push_back(p.impl());

  net.fc->weight.set_grad(ones({3, 5}));
  CHECK(&net.to(device) == &net);
  std::vector<Tensor> moved = net.parameters();
  REQUIRE(moved.size() == params.size());
  for (size_t i = 0; i < moved.size(); ++i) {
    CHECK(moved[i].impl() == impls[i]);   // the same parameter objects
    CHECK(params[i].device() == device);  // handles taken before the move see it
    CHECK(params[i].requires_grad());
    CHECK(params[i].is_leaf());
    CHECK(params[i].to_vector<double>() == before[i]);
  }
  CHECK(net.steps.device() == device);
  CHECK(net.steps.item() == 4.0);
  CHECK(net.fc->weight.grad().device() == device);

  net.to(Device::cpu());
  for (size_t i = 0; i < params.size(); ++i) {
    CHECK(params[i].device() == Device::cpu());
    CHECK(params[i].to_vector<double>() == before[i]);
  }
  CHECK(net.fc->weight.grad().device() == Device::cpu());
  CHECK(net.steps.device() == Device::cpu());
}
}  // namespace

TEST_SUITE("nn") {
  TEST_CASE("Module::to(cpu) keeps everything in place") {
    manual_seed(11);
    Net net;
    round_trip(net, Device::cpu());
    // Still a working module afterwards.
    Tensor y = net.fc->forward(ones({2, 5}));
    CHECK(y.sizes() == Shape{2, 3});
  }

  TEST_CASE("Module::to(cuda) and back: same parameter objects, same values") {
    TESSEL_REQUIRE_CUDA();
    manual_seed(12);
    Net net;
    round_trip(net, Device::cuda());
  }

  TEST_CASE("Module::to(cuda) without a device fails clearly and leaves the module on the CPU") {
    if (cuda_available()) return;
    Net net;
    CHECK_THROWS_AS(net.to(Device::cuda()), Error);
    for (const Tensor& p : net.parameters()) CHECK(p.device() == Device::cpu());
  }
}
