// nn: registration, traversal, train/eval, state_dict round trips with strict checks.
#include "nn/layers.h"
#include "tests/helpers.h"

using namespace tessel;
using namespace tessel::testing;

namespace {
struct Block : nn::Module {
  std::shared_ptr<nn::Linear> fc1, fc2;
  std::shared_ptr<nn::LayerNorm> norm;
  std::shared_ptr<nn::Dropout> drop;
  Block() : Module("Block") {
    fc1 = register_module("fc1", std::make_shared<nn::Linear>(4, 8));
    fc2 = register_module("fc2", std::make_shared<nn::Linear>(8, 4, false));
    norm = register_module("norm", std::make_shared<nn::LayerNorm>(Shape{4}));
    drop = register_module("drop", std::make_shared<nn::Dropout>(0.5));
    register_buffer("steps", zeros({}, {.dtype = DType::i64}));
  }
  Tensor forward(const Tensor& x) override {
    return norm->forward(x + fc2->forward(drop->forward(gelu(fc1->forward(x)))));
  }
};
}  // namespace

TEST_SUITE("nn") {
  TEST_CASE("parameters are registered recursively under dotted names") {
    manual_seed(1);
    Block b;
    std::vector<std::string> names;
    for (auto& [n, t] : b.named_parameters()) names.push_back(n);
    CHECK(names == std::vector<std::string>{"fc1.weight", "fc1.bias", "fc2.weight", "norm.weight", "norm.bias"});
    CHECK(b.num_parameters() == 4 * 8 + 8 + 8 * 4 + 4 + 4);
    CHECK(b.named_buffers().size() == 1);
    for (const Tensor& p : b.parameters()) {
      CHECK(p.requires_grad());
      CHECK(p.is_leaf());
    }
    // Linear's default init is U(-1/sqrt(in), 1/sqrt(in)).
    CHECK(amax(abs(b.fc1->weight)).item() <= 0.5);
    CHECK(amax(abs(b.fc1->weight)).item() > 0.3);
  }

  TEST_CASE("train/eval reaches every child; dropout is the identity in eval") {
    manual_seed(2);
    Block b;
    Tensor x = randn({16, 4});
    b.eval();
    CHECK_FALSE(b.drop->is_training());
    Tensor y1 = b.forward(x), y2 = b.forward(x);
    CHECK_EQUAL_TENSOR(y1, y2);
    b.train();
    CHECK(b.drop->is_training());
    Tensor d = nn::dropout(ones({10000}), 0.25, true);
    double kept = mean(to_dtype(gt(d, scalar_tensor(0.0)), DType::f32)).item();
    CHECK(std::fabs(kept - 0.75) < 0.02);
    CHECK(amax(d).item() == doctest::Approx(1.0 / 0.75));
  }

  TEST_CASE("state_dict round trip, strict key and shape checks, no partial loads") {
    manual_seed(3);
    Block a, b;
    CHECK_FALSE(closeness(a.fc1->weight, b.fc1->weight, 0, 0).ok);
    b.load_state_dict(a.state_dict());
    CHECK_EQUAL_TENSOR(a.fc1->weight, b.fc1->weight);
    CHECK_EQUAL_TENSOR(a.norm->bias, b.norm->bias);
    // Loading copies values: later changes to a do not leak into b.
    {
      NoGradGuard ng;
      Tensor w = a.fc1->weight;
      add_(w, 1.0);
    }
    CHECK_FALSE(closeness(a.fc1->weight, b.fc1->weight, 0, 0).ok);

    nn::StateDict sd = a.state_dict();
    sd.erase("fc2.weight");
    CHECK_THROWS_WITH_AS(b.load_state_dict(sd), doctest::Contains("missing key 'fc2.weight' (shape [4, 8])"), Error);
    b.load_state_dict(sd, /*strict=*/false);  // allowed when not strict
    sd = a.state_dict();
    sd["extra"] = zeros({1});
    CHECK_THROWS_WITH_AS(b.load_state_dict(sd), doctest::Contains("unexpected key 'extra'"), Error);
    sd = a.state_dict();
    Tensor before = clone(b.fc1->weight);
    sd["norm.weight"] = zeros({5});
    CHECK_THROWS_WITH_AS(b.load_state_dict(sd),
                         doctest::Contains("'norm.weight' has shape [5] in the state but [4] in the model"), Error);
    CHECK_EQUAL_TENSOR(b.fc1->weight, before);  // nothing was written
  }

  TEST_CASE("Sequential and the layers compute what their ops compute") {
    manual_seed(4);
    auto lin = std::make_shared<nn::Linear>(3, 2);
    nn::Sequential seq({lin, std::make_shared<nn::ActivationLayer>(nn::Activation::tanh)});
    Tensor x = randn({5, 3});
    CHECK_CLOSE(seq.forward(x), tanh(linear(x, lin->weight, lin->bias)), 1e-6, 1e-7);
    CHECK(seq.named_parameters()[0].first == "0.weight");
    nn::Embedding emb(10, 3);
    Tensor ids = from_vector_i64({1, 9, 1});
    Tensor e = emb.forward(ids);
    CHECK(e.sizes() == Shape{3, 3});
    CHECK_EQUAL_TENSOR(select(e, 0, 0), select(emb.weight, 0, 1));
    nn::RMSNorm rms({3});
    CHECK_CLOSE(rms.forward(x), rms_norm(x, {3}, rms.weight, 1e-6), 1e-6, 1e-7);
    CHECK_THROWS_WITH_AS(nn::Linear(0, 3), doctest::Contains("expected positive sizes"), Error);
    CHECK_THROWS_WITH_AS(nn::Dropout(1.0), doctest::Contains("expected 0 <= p < 1"), Error);
  }
}
