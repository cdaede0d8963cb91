// tools/train_config.h — the settings of `tessel train`, from defaults, a JSON file and flags.
//
// Every setting has one name, used alike as the JSON key (`{"lr": 0.001}`), the generic
// override (`--set lr=0.001`) and, for the common ones, a flag (`--lr 0.001`). Unknown keys are
// errors that list the valid ones, so a typo never silently trains with a default.
#pragma once
#include <cstdint>
#include <string>
#include <variant>
#include <vector>

namespace tessel::cli {

struct TrainConfig {
  // what to train
  std::string model = "vit";  // vit (Fashion-MNIST classifier) | gpt (byte-level text)
  std::string data;           // gpt: the text file (default: the repository's docs)
  std::string data_dir;       // vit: Fashion-MNIST IDX files (default: Debian's location)
  std::string device = "cpu";
  // how long
  double minutes = 4.5;  // wall-clock budget for training (0: no limit)
  int64_t epochs = 0;    // 0: no limit
  int64_t steps = 0;     // 0: no limit
  // optimization
  std::string optimizer = "adamw";  // adamw | adam | sgd | lamb
  std::string schedule = "cosine";  // cosine | wsd | constant | step
  double lr = 2e-3;
  double min_lr = 1e-5;
  double weight_decay = 0.05;
  double momentum = 0.9;  // sgd
  int64_t warmup = 200;
  double clip = 1.0;       // global gradient norm (0: off)
  int64_t batch = 0;       // 0: the model's default, 128 images (vit) or 32 sequences (gpt)
  int64_t accumulate = 1;  // micro-batches per optimizer step
  // model shape
  int64_t width = 128;
  int64_t depth = 4;
  int64_t heads = 4;
  int64_t mlp_ratio = 4;
  int64_t patch = 7;      // vit
  int64_t context = 128;  // gpt
  bool rotary = false;    // gpt
  double dropout = 0.0;
  double label_smoothing = 0.1;
  // bookkeeping
  int64_t eval_every = 0;         // steps between evaluations (0: once per epoch and at the end)
  int64_t checkpoint_every = 0;   // steps between checkpoints (0: at the end only)
  std::string out = "runs/last";  // checkpoints, metrics.jsonl, curve.png
  std::string resume;             // a checkpoint to continue from
  uint64_t seed = 0;
  int64_t sample_every = 0;  // gpt: steps between printed samples (0: at evaluations)

  // Applies a JSON object of settings; throws tessel::Error on unknown keys or wrong types.
  void apply_json(const std::string& json_text, const std::string& source);
  // Applies one "key=value" (value as JSON, or a bare string).
  void apply_override(const std::string& assignment);
  std::string to_json() const;  // every setting, as one JSON object
  static std::vector<std::string> keys();
};

}  // namespace tessel::cli
