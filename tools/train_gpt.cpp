// tools/train_gpt.cpp — the text task: the byte-level GPT on any file.
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "autograd/engine.h"
#include "autograd/ops/copy.h"
#include "autograd/ops/elementwise.h"
#include "autograd/ops/index.h"
#include "autograd/ops/loss.h"
#include "autograd/ops/reduce.h"
#include "autograd/ops/shape.h"
#include "autograd/ops/softmax.h"
#include "autograd/ops/view.h"
#include "core/rng.h"
#include "nn/transformer.h"
#include "tools/train_task.h"

namespace tessel::cli {
namespace {

class GptTask : public Task {
 public:
  explicit GptTask(const TrainConfig& c) : c_(c) {
    device_ = c.device == "cuda" ? Device::cuda() : Device::cpu();
    path_ = c.data.empty() ? default_corpus() : c.data;
    Tensor bytes = load_text_bytes(path_);
    const int64_t n = bytes.size(0);
    check(n >= 4 * (c.context + 1), "train", "the text file ", path_, " has ", n, " bytes; at least ",
          4 * (c.context + 1), " are needed for a context of ", c.context);
    // The last tenth is held out for evaluation.
    int64_t cut = n - std::max<int64_t>(n / 10, c.context + 1);
    train_ = narrow(bytes, 0, 0, cut);
    val_ = narrow(bytes, 0, cut, n - cut);
    model_ = std::make_shared<nn::Gpt>(
        nn::GptConfig{.context = c.context,
                      .layers = c.depth,
                      .block = {.dim = c.width, .heads = c.heads, .mlp_ratio = c.mlp_ratio, .dropout = c.dropout},
                      .rotary = c.rotary});
    model_->to(device_);  // before the optimizer is made, so its state lives there too
  }
  nn::Module& model() override { return *model_; }
  int64_t batches_per_epoch() const override { return std::max<int64_t>(train_.size(0) / (c_.batch * c_.context), 1); }
  int64_t items_per_batch() const override { return c_.batch * c_.context; }
  const char* unit() const override { return "tok"; }
  std::string describe() const override {
    return "byte-level GPT on " + path_ + " (" + std::to_string(train_.size(0)) + " train / " +
           std::to_string(val_.size(0)) + " held-out bytes), width " + std::to_string(c_.width) + ", depth " +
           std::to_string(c_.depth) + ", " + std::to_string(c_.heads) + " heads, context " + std::to_string(c_.context);
  }

  // Batch i: random windows whose starts come from counter block i of the generator.
  Batch batch(int64_t i) override { return windows(train_, c_.seed * 1000003 + 17, i); }
  Tensor loss(const Batch& b) override {
    Tensor logits = model_->forward(to_device(b.x, device_));  // [B, T, 256]
    return cross_entropy(logits, to_device(b.y, device_));
  }
  std::map<std::string, double> evaluate() override {
    double total = 0;
    const int batches = 8;
    for (int k = 0; k < batches; ++k) total += loss(windows(val_, 99991, k)).item();
    double l = total / batches;
    return {{"loss", l}, {"bits_per_byte", l / std::log(2.0)}};
  }
  void after_eval() override {
    // A sample: continue the first bytes of the held-out text, sampling at temperature 0.8.
    Generator g(c_.seed + 7);
    std::vector<int64_t> ctx = narrow(val_, 0, 0, std::min<int64_t>(32, val_.size(0))).to_vector<int64_t>();
    std::string out;
    for (int t = 0; t < 160; ++t) {
      int64_t start = std::max<int64_t>(0, static_cast<int64_t>(ctx.size()) - c_.context);
      std::vector<int64_t> window(ctx.begin() + start, ctx.end());
      Tensor logits = model_->forward(
          to_device(reshape(from_vector_i64(window), {1, static_cast<int64_t>(window.size())}), device_));
      Tensor last = select(select(logits, 0, 0), 0, -1) * (1.0 / 0.8);
      std::vector<float> p = softmax(last, 0).to_vector<float>();
      double u = rand({1}, {}, &g).item(), acc = 0;
      int64_t next = 255;
      for (int64_t v = 0; v < 256; ++v)
        if ((acc += p[v]) > u) {
          next = v;
          break;
        }
      ctx.push_back(next);
      out += static_cast<char>(next);
    }
    for (char& ch : out)
      if (ch == '\0' || (static_cast<unsigned char>(ch) < 32 && ch != '\n')) ch = ' ';
    std::printf("--- sample ---\n%s\n--------------\n", out.c_str());
    std::fflush(stdout);
  }

 private:
  Batch windows(const Tensor& text, uint64_t seed, int64_t i) {
    Generator g(seed);
    g.offset = static_cast<uint64_t>(i) * static_cast<uint64_t>((c_.batch + 1) / 2);
    NoGradGuard ng;
    Tensor starts = randint(0, text.size(0) - c_.context - 1, {c_.batch}, {.dtype = DType::i64}, &g);
    Tensor offs = reshape(arange(c_.context + 1), {1, c_.context + 1});
    Tensor idx = reshape(starts, {c_.batch, 1}) + offs;  // [B, T + 1]
    Tensor seq = reshape(index_select(text, 0, reshape(idx, {-1})), {c_.batch, c_.context + 1});
    return {contiguous(slice(seq, 1, 0, c_.context)), contiguous(slice(seq, 1, 1, c_.context + 1))};
  }

  // Default corpus: the repository's own docs and README, if found next to the binary's source.
  // The default corpus: the fortune cookies of Debian's `fortunes` package (about 1.3 MB of
  // varied English text, installed by tools/setup), else the README of the source tree.
  static std::string default_corpus() {
    if (std::filesystem::is_directory(kFortunesDir)) return kFortunesDir;
    for (const char* p : {"README.md", "../README.md", "../../README.md"})
      if (std::filesystem::is_regular_file(p)) return p;
    fail("train", "no --data file given, ", kFortunesDir,
         " is missing (apt-get install fortunes) and README.md is not here; pass --data FILE or DIR (any text, e.g. "
         "/usr/share/common-licenses/GPL-3)");
  }
  static constexpr const char* kFortunesDir = "/usr/share/games/fortunes";

  TrainConfig c_;
  std::string path_;
  Tensor train_, val_;
  std::shared_ptr<nn::Gpt> model_;
};

}  // namespace

std::unique_ptr<Task> make_gpt_task(const TrainConfig& c) { return std::make_unique<GptTask>(c); }

}  // namespace tessel::cli
