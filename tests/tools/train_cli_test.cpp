// tests/tools/train_cli_test.cpp — `tessel train` end to end on tiny models: the files a run
// leaves (metrics, checkpoint, curve), samples, and the errors a user meets first.
#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/helpers.h"
#include "tests/tools/run_tessel.h"

#ifdef TESSEL_CLI_PATH

namespace {

using tessel::testing::Run;
using tessel::testing::run_tessel;
using tessel::testing::TempDir;

// A tiny model, one thread, a few steps: the whole run takes well under a second of compute.
const std::string kTiny =
    " --threads 1 --set width=16 --set depth=1 --set heads=2 --set mlp_ratio=2 --set warmup=1 --set lr=0.01";

std::vector<nlohmann::json> metrics(const std::string& dir) {
  std::ifstream f(dir + "/metrics.jsonl");
  std::vector<nlohmann::json> out;
  std::string line;
  while (std::getline(f, line)) out.push_back(nlohmann::json::parse(line));
  return out;
}

bool have_gnuplot() { return std::system("command -v gnuplot >/dev/null 2>&1") == 0; }

}  // namespace

TEST_SUITE("tools") {
  TEST_CASE("train: the GPT on a text file logs, evaluates, samples, checkpoints and plots") {
    TempDir dir;
    {
      std::ofstream f(dir.file("corpus.txt"));
      for (int i = 0; i < 400; ++i) f << "the quick brown fox jumps over the lazy dog " << i << "\n";
    }
    const std::string out = dir.file("run");
    Run r = run_tessel("train --model gpt --data " + dir.file("corpus.txt") + " --steps 6 --batch 4 --set context=16" +
                       " --set eval_every=3 --out " + out + kTiny);
    INFO("output: ", r.out);
    REQUIRE(r.status == 0);
    CHECK(r.out.find("byte-level GPT") != std::string::npos);
    CHECK(r.out.find("sample") != std::string::npos);
    CHECK(r.out.find("bits_per_byte") != std::string::npos);
    std::vector<nlohmann::json> m = metrics(out);
    int train = 0, eval = 0;
    for (const auto& j : m) {
      if (j["kind"] == "train") {
        ++train;
        CHECK(std::isfinite(j["loss"].get<double>()));
      }
      if (j["kind"] == "eval") {
        ++eval;
        CHECK(j.contains("bits_per_byte"));
      }
    }
    CHECK(train == 6);
    CHECK(eval >= 2);
    CHECK(std::filesystem::exists(out + "/checkpoint.safetensors"));
    if (have_gnuplot()) {
      CHECK(r.out.find("curve in") != std::string::npos);
      CHECK(std::filesystem::file_size(out + "/curve.png") > 1000);
    } else {
      CHECK(r.out.find("gnuplot") != std::string::npos);  // says how to get the plot
    }

    // A damaged checkpoint is refused with the file named, and nothing trains.
    const std::string ckpt = out + "/checkpoint.safetensors";
    {
      std::fstream f(ckpt, std::ios::in | std::ios::out | std::ios::binary);
      f.seekp(-5, std::ios::end);
      f.put('\x7f');
    }
    Run bad = run_tessel("train --model gpt --data " + dir.file("corpus.txt") + " --steps 6 --batch 4" +
                         " --set context=16 --out " + dir.file("run2") + " --resume " + ckpt + kTiny);
    INFO("output: ", bad.out);
    CHECK(bad.status != 0);
    CHECK(bad.out.find(ckpt) != std::string::npos);
    CHECK(bad.out.find("corrupt") != std::string::npos);
  }

  TEST_CASE("train: the ViT on Fashion-MNIST for a few steps reports test accuracy") {
    if (!std::filesystem::exists(tessel::kFashionMnistDir)) {
      MESSAGE("Fashion-MNIST is not installed (tools/setup installs dataset-fashion-mnist): skipped");
      return;
    }
    TempDir dir;
    Run r = run_tessel("train --steps 4 --batch 16 --set eval_every=4 --out " + dir.file("run") + kTiny);
    INFO("output: ", r.out);
    REQUIRE(r.status == 0);
    double acc = -1;
    for (const auto& j : metrics(dir.file("run")))
      if (j["kind"] == "eval") acc = j["accuracy"].get<double>();
    CHECK(acc >= 0.0);
    CHECK(acc <= 1.0);
  }

  TEST_CASE("train: the errors a user meets first are clear") {
    TempDir dir;
    Run missing = run_tessel("train --steps 1 --data-dir " + dir.file("nowhere") + " --out " + dir.file("a") + kTiny);
    CHECK(missing.status != 0);
    CHECK(missing.out.find("dataset-fashion-mnist") != std::string::npos);
    Run typo = run_tessel("train --steps 1 --set widht=3 --out " + dir.file("b"));
    CHECK(typo.status != 0);
    CHECK(typo.out.find("widht") != std::string::npos);
    CHECK(typo.out.find("width") != std::string::npos);  // the valid keys are listed
    if (!tessel::cuda_available()) {
      Run no_gpu = run_tessel("train --device cuda --steps 1 --out " + dir.file("d"));
      CHECK(no_gpu.status != 0);
      CHECK(no_gpu.out.find("--device cuda") != std::string::npos);
    }
    Run no_text = run_tessel("train --model gpt --data " + dir.file("none.txt") + " --steps 1 --out " + dir.file("c"));
    CHECK(no_text.status != 0);
    CHECK(no_text.out.find(dir.file("none.txt")) != std::string::npos);
  }
}

#else
TEST_SUITE("tools") {
  TEST_CASE("train: skipped, the tessel program was not built (TESSEL_TOOLS=OFF)") {}
}
#endif
