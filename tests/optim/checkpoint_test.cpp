// optim: a training checkpoint resumes bitwise; bad checkpoints are refused clearly.
#include "optim/checkpoint.h"

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "nn/transformer.h"
#include "tests/helpers.h"

using namespace tessel;
using namespace tessel::testing;

namespace {
// A few steps of a small GPT with dropout, so that the random stream matters too.
struct Run {
  std::shared_ptr<nn::Gpt> model;
  std::unique_ptr<optim::AdamW> opt;
  Run() {
    manual_seed(11);
    model = std::make_shared<nn::Gpt>(
        nn::GptConfig{.vocab = 16, .context = 8, .layers = 1, .block = {.dim = 16, .heads = 2, .dropout = 0.1}});
    opt = std::make_unique<optim::AdamW>(model->parameters(), optim::AdamOptions{.lr = 1e-2});
  }
  void steps(int64_t from, int64_t to) {
    for (int64_t s = from; s < to; ++s) {
      Generator g(1000 + static_cast<uint64_t>(s));
      Tensor ids = randint(0, 16, {4, 9}, {.dtype = DType::i64}, &g);
      Tensor loss = cross_entropy(model->forward(contiguous(slice(ids, 1, 0, 8))), contiguous(slice(ids, 1, 1, 9)));
      opt->zero_grad();
      loss.backward();
      opt->step();
    }
  }
};
std::string temp_path(const char* name) { return (std::filesystem::temp_directory_path() / name).string(); }
}  // namespace

TEST_SUITE("optim") {
  TEST_CASE("checkpoint: resuming reproduces the uninterrupted run bitwise") {
    Run straight;
    straight.steps(0, 6);
    Run first;
    first.steps(0, 3);
    std::string path = temp_path("tessel_ckpt_test.safetensors");
    optim::save_checkpoint(path, *first.model, *first.opt, {3, 6, default_generator(), "{}"});
    Run second;  // fresh model and optimizer, different random state until the load
    manual_seed(999);
    optim::TrainingState st = optim::load_checkpoint(path, *second.model, *second.opt);
    default_generator() = st.rng;
    CHECK(st.step == 3);
    CHECK(st.total_steps == 6);
    second.steps(3, 6);
    auto a = straight.model->named_parameters(), b = second.model->named_parameters();
    REQUIRE(a.size() == b.size());
    for (size_t i = 0; i < a.size(); ++i) {
      INFO(a[i].first);
      CHECK_EQUAL_TENSOR(b[i].second, a[i].second);
    }
    std::filesystem::remove(path);
  }

  TEST_CASE("checkpoint: wrong files are refused with the file named") {
    Run r;
    std::string path = temp_path("tessel_ckpt_bad.safetensors");
    save_safetensors(path, {{"w", ones({2})}}, {{"format", "something-else"}});
    CHECK_THROWS_WITH_AS(optim::load_checkpoint(path, *r.model, *r.opt),
                         doctest::Contains("not a tessel training checkpoint"), Error);
    optim::save_checkpoint(path, *r.model, *r.opt, {1, 2, default_generator(), "{}"});
    nn::Gpt other({.vocab = 16, .context = 8, .layers = 2, .block = {.dim = 16, .heads = 2}});
    optim::AdamW other_opt(other.parameters());
    CHECK_THROWS_WITH_AS(optim::load_checkpoint(path, other, other_opt), doctest::Contains("missing key 'blocks.1"),
                         Error);
    {
      std::ofstream f(path, std::ios::binary | std::ios::trunc);
      f << "garbage";
    }
    CHECK_THROWS_WITH_AS(optim::load_checkpoint(path, *r.model, *r.opt), doctest::Contains(path.c_str()), Error);
    std::filesystem::remove(path);
  }
}
