// optim: a training checkpoint resumes bitwise; bad checkpoints are refused clearly.
#include "optim/checkpoint.h"

#include <cstdio>
#include <cstring>
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

std::vector<char> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}
void write_bytes(const std::string& path, const std::vector<char>& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// Everything a load could change: the model's state and the optimizer's.
std::vector<std::pair<std::string, Tensor>> snapshot(const Run& r) {
  std::vector<std::pair<std::string, Tensor>> out;
  for (auto& [name, t] : r.model->state_dict()) out.emplace_back("model." + name, clone(t.detach()));
  for (auto& [name, t] : r.opt->state_dict()) out.emplace_back("optim." + name, clone(t.detach()));
  return out;
}
void check_same(const std::vector<std::pair<std::string, Tensor>>& a,
                const std::vector<std::pair<std::string, Tensor>>& b) {
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    INFO(a[i].first);
    CHECK(a[i].first == b[i].first);
    CHECK_EQUAL_TENSOR(a[i].second, b[i].second);
  }
}
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

  // The corpus: every truncation of the header and of the data (in steps), and a flipped bit
  // at positions spread over the whole file. Each damaged file must be refused with an Error
  // that names the file — the checksum catches what the format checks cannot — and a refused
  // load must leave the model and the optimizer exactly as they were.
  TEST_CASE("checkpoint: truncated and bit-flipped files are refused and change nothing") {
    Run saved;
    saved.steps(0, 2);
    const std::string good = temp_path("tessel_ckpt_good.safetensors");
    const std::string bad = temp_path("tessel_ckpt_damaged.safetensors");
    optim::save_checkpoint(good, *saved.model, *saved.opt, {2, 5, default_generator(), R"({"lr": 0.01})"});
    const std::vector<char> bytes = read_bytes(good);
    uint64_t header_len = 0;
    std::memcpy(&header_len, bytes.data(), 8);
    REQUIRE(8 + header_len < bytes.size());

    Run target;  // a different state (one step), which every refused load must preserve
    target.steps(0, 1);
    const auto before = snapshot(target);
    int tried = 0, refused = 0;
    auto expect_refused = [&](const std::vector<char>& damaged, const std::string& what) {
      write_bytes(bad, damaged);
      ++tried;
      try {
        optim::load_checkpoint(bad, *target.model, *target.opt);
        FAIL("a damaged checkpoint loaded: ", what);
      } catch (const Error& e) {
        ++refused;
        CHECK_MESSAGE(std::string(e.what()).find(bad) != std::string::npos, what, ": ", e.what());
      }
    };
    for (size_t len = 0; len < bytes.size(); len += len < 8 + header_len + 16 ? 1 : 53)
      expect_refused(std::vector<char>(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(len)),
                     "truncated to " + std::to_string(len) + " bytes");
    for (size_t pos = 0; pos < bytes.size(); pos += 1 + bytes.size() / 400) {
      for (int bit : {0, 4}) {
        std::vector<char> damaged = bytes;
        damaged[pos] = static_cast<char>(damaged[pos] ^ (1 << bit));
        expect_refused(damaged, "bit " + std::to_string(bit) + " of byte " + std::to_string(pos) + " flipped");
      }
    }
    check_same(snapshot(target), before);
    MESSAGE("checkpoint corpus: ", tried, " damaged files, ", refused, " refused");

    // The undamaged file still loads, and then the state is the saved one.
    optim::TrainingState st = optim::load_checkpoint(good, *target.model, *target.opt);
    CHECK(st.step == 2);
    CHECK(st.total_steps == 5);
    CHECK(st.config_json == R"({"lr": 0.01})");
    check_same(snapshot(target), snapshot(saved));
    std::filesystem::remove(good);
    std::filesystem::remove(bad);
  }

  TEST_CASE("checkpoint: an optimizer state that does not fit rolls the model back") {
    // A well-formed checkpoint of the same model whose optimizer covered other parameters:
    // the model part loads, the optimizer part is refused, and the model must be restored.
    Run saved;
    saved.steps(0, 1);
    // Its first two parameters swapped: the state's shapes no longer match the parameters'.
    std::vector<Tensor> all = saved.model->parameters();
    REQUIRE(all[0].sizes() != all[1].sizes());
    std::vector<Tensor> some = {all[1], all[0]};
    optim::AdamW partial(some, optim::AdamOptions{.lr = 1e-2});
    for (Tensor& p : some) p.set_grad(ones_like(p));
    partial.step();
    const std::string path = temp_path("tessel_ckpt_partial.safetensors");
    optim::save_checkpoint(path, *saved.model, partial, {1, 1, default_generator(), "{}"});
    Run target;
    const auto before = snapshot(target);
    CHECK_THROWS_WITH_AS(optim::load_checkpoint(path, *target.model, *target.opt), doctest::Contains("load_checkpoint"),
                         Error);
    check_same(snapshot(target), before);
    std::filesystem::remove(path);
  }
}
