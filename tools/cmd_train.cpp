// tools/cmd_train.cpp — `tessel train`: the main job. Trains the ViT classifier on
// Fashion-MNIST (default) or the byte-level GPT on a text file, on the CPU.
//
// The loop, once for both models (the differences live in tools/train_task.h):
//   per step: learning rate from the schedule; `accumulate` micro-batches of forward, loss,
//   backward; global-norm clipping; the optimizer step; a progress report. Evaluation and
//   checkpoints every so many steps and at the end; metrics to <out>/metrics.jsonl and a curve.
// A time budget (--minutes) is turned into a step count after a short calibration, so that the
// cosine schedule ends when the time does and a resumed run follows the same schedule.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "autograd/engine.h"
#include "autograd/ops/elementwise.h"
#include "core/cuda.h"
#include "core/parallel.h"
#include "core/rng.h"
#include "optim/checkpoint.h"
#include "optim/optimizer.h"
#include "optim/schedule.h"
#include "tools/command.h"
#include "tools/train_log.h"
#include "tools/train_task.h"

namespace tessel::cli {
namespace {

optim::LRSchedule make_schedule(const TrainConfig& c, int64_t total) {
  optim::LRSchedule s = optim::LRSchedule::from_name(c.schedule);
  s.peak = c.lr;
  s.floor = c.min_lr;
  s.warmup = std::min(c.warmup, total / 4);
  s.total = total;
  s.decay_start = total * 8 / 10;
  s.every = std::max<int64_t>(total / 3, 1);
  return s;
}

int run(TrainConfig c) {
  check(c.device == "cpu" || c.device == "cuda", "train", "unknown device '", c.device, "'; expected cpu or cuda");
  if (c.device == "cuda")
    check(cuda_available(), "train", "--device cuda: ",
          cuda_built() ? "no CUDA device is visible to this process"
                       : "this build has no CUDA backend (configure with -DTESSEL_CUDA=ON, nvcc needed)",
          "; use --device cpu");
  if (c.batch == 0) c.batch = c.model == "gpt" ? 32 : 128;
  check(c.batch >= 1 && c.accumulate >= 1, "train", "batch and accumulate must be positive");
  manual_seed(c.seed);
  std::unique_ptr<Task> task = c.model == "vit" ? make_vit_task(c)
                               : c.model == "gpt"
                                   ? make_gpt_task(c)
                                   : (fail("train", "unknown model '", c.model, "'; expected vit or gpt"), nullptr);
  nn::Module& model = task->model();
  std::unique_ptr<optim::Optimizer> opt = make_optimizer(c, model);

  optim::TrainingState state;
  bool resumed = !c.resume.empty();
  if (resumed) {
    state = optim::load_checkpoint(c.resume, model, *opt);
    default_generator() = state.rng;
  }
  const int64_t per_epoch = task->batches_per_epoch();
  std::printf("tessel train: %s\n", task->describe().c_str());
  std::printf("%lld parameters, %s, batch %lld x %lld, %s, %d threads%s\n",
              static_cast<long long>(model.num_parameters()), c.optimizer.c_str(), static_cast<long long>(c.batch),
              static_cast<long long>(c.accumulate), c.device == "cuda" ? cuda_device_name(0).c_str() : "cpu",
              get_num_threads(), resumed ? (", resumed at step " + std::to_string(state.step)).c_str() : "");
  std::fflush(stdout);

  // The planned length: explicit steps, epochs, or what the time budget allows.
  int64_t total = state.total_steps;
  int64_t by_epochs = c.epochs > 0 ? c.epochs * per_epoch / c.accumulate : 0;
  if (total == 0) total = c.steps > 0 ? c.steps : by_epochs;
  TrainLog log(c.out, task->unit(), c.minutes * 60, total, resumed);
  int64_t step = state.step;
  auto one_step = [&](double lr) {
    opt->set_lr(lr);
    double loss_sum = 0;
    for (int64_t k = 0; k < c.accumulate; ++k) {
      Batch b = task->batch(step * c.accumulate + k);
      Tensor loss = task->loss(b);
      if (c.accumulate > 1) loss = loss * (1.0 / static_cast<double>(c.accumulate));
      loss.backward();
      loss_sum += loss.item();
    }
    if (c.clip > 0) optim::clip_grad_norm(model.parameters(), c.clip);
    opt->step();
    opt->zero_grad();
    ++step;
    log.train(step, loss_sum, lr, task->items_per_batch() * c.accumulate);
  };
  if (total == 0) {
    check(c.minutes > 0, "train", "nothing bounds the run: give --minutes, --epochs or --steps");
    // Calibrate: time a few steps at the warmup's first rates, then fix the step count.
    const int64_t probe = 16;
    optim::LRSchedule warm = make_schedule(c, 1000000);
    auto t0 = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < probe; ++i) one_step(warm.at(step));
    double per_step = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / probe;
    // 0.85: room for the evaluations and for steps slower than the first ones, so that the
    // schedule runs to its end inside the budget (the budget also stops the run outright).
    total = std::max<int64_t>(probe + 1, static_cast<int64_t>(c.minutes * 60 * 0.85 / per_step));
    log.note("planned " + std::to_string(total) + " steps (" +
             std::to_string(total * c.accumulate / std::max<int64_t>(per_epoch, 1)) + " epochs) for a " +
             std::to_string(c.minutes) + "-minute budget");
  }
  optim::LRSchedule schedule = make_schedule(c, total);
  const int64_t eval_every = c.eval_every > 0 ? c.eval_every : std::max<int64_t>(per_epoch / c.accumulate, 1);
  auto save = [&] {
    optim::TrainingState s{step, total, default_generator(), c.to_json()};
    optim::save_checkpoint(c.out + "/checkpoint.safetensors", model, *opt, s);
  };
  auto evaluate = [&] {
    NoGradGuard ng;
    model.eval();
    auto m = task->evaluate();
    model.train();
    log.eval(step, m);
    task->after_eval();
    return m;
  };
  std::map<std::string, double> last;
  while (step < total) {
    if (c.minutes > 0 && log.elapsed_s() > c.minutes * 60 * 1.05) {
      log.note("stopping: the time budget is spent");
      break;
    }
    one_step(schedule.at(step));
    if (step % eval_every == 0 && step < total) last = evaluate();
    if (c.checkpoint_every > 0 && step % c.checkpoint_every == 0) save();
  }
  last = evaluate();
  save();
  std::string where = log.finish();
  std::printf("\ndone: %lld steps in %.1f s;", static_cast<long long>(step), log.elapsed_s());
  for (auto& [k, v] : last) std::printf(" %s %.4f", k.c_str(), v);
  std::printf("\n%s\ncheckpoint: %s/checkpoint.safetensors (continue with --resume)\n", where.c_str(), c.out.c_str());
  return 0;
}

const char* kHelp = R"(Train a model with tessel and watch it learn.

By default: the ViT classifier (width 128, depth 4, 4 heads, 7x7 patches) on Fashion-MNIST
from Debian's dataset-fashion-mnist package, AdamW with a warmup + cosine schedule, for 4.5
minutes on all cores. `--model gpt` trains the byte-level GPT on text and prints samples as
it goes: by default the fortune cookies of Debian's fortunes package
(/usr/share/games/fortunes), or `--data FILE` (any text file) or `--data DIR` (its text
files, concatenated).

Settings come from defaults, then --config FILE (a JSON object), then flags and --set
key=value (any setting; `--set list` prints them). Everything the run produces goes to --out:
metrics.jsonl (one JSON object per report), curve.png (loss and accuracy; needs gnuplot),
checkpoint.safetensors (model + optimizer + schedule + random state + step; --resume PATH
continues a run exactly where it stopped).)";

Command train{
    "train", "Train the ViT on Fashion-MNIST or the GPT on text (the main job)", [](CLI::App& cmd) -> Action {
      auto c = std::make_shared<TrainConfig>();
      auto config_file = std::make_shared<std::string>();
      auto sets = std::make_shared<std::vector<std::string>>();
      cmd.footer(kHelp);
      cmd.add_option("--config", *config_file, "JSON file of settings (applied before flags)");
      cmd.add_option("--model", c->model, "vit | gpt")->capture_default_str();
      cmd.add_option("--data", c->data, "gpt: the text to learn: a file, or a directory of text files");
      cmd.add_option("--data-dir", c->data_dir, "vit: directory with the Fashion-MNIST IDX .gz files");
      cmd.add_option("--device", c->device, "cpu, or cuda (the first GPU; needs a CUDA build)")->capture_default_str();
      cmd.add_option("--minutes", c->minutes, "Wall-clock budget; sets the number of steps")->capture_default_str();
      cmd.add_option("--epochs", c->epochs, "Train this many epochs instead of a time budget");
      cmd.add_option("--steps", c->steps, "Train this many optimizer steps");
      cmd.add_option("--batch", c->batch, "Batch size (default: 128 images for vit, 32 sequences for gpt)");
      cmd.add_option("--lr", c->lr, "Peak learning rate")->capture_default_str();
      cmd.add_option("--out", c->out, "Run directory")->capture_default_str();
      cmd.add_option("--resume", c->resume, "Continue from this checkpoint");
      cmd.add_option("--seed", c->seed, "Seed for initialization, batches and dropout")->capture_default_str();
      cmd.add_option("--set", *sets, "Any setting as key=value (repeatable); --set list shows them");
      return [c, config_file, sets, &cmd] {
        TrainConfig cfg;  // defaults, then the file, then every flag the user gave
        if (!config_file->empty()) {
          std::ifstream in(*config_file);
          check(in.good(), "train", "cannot read config file ", *config_file);
          std::stringstream ss;
          ss << in.rdbuf();
          cfg.apply_json(ss.str(), *config_file);
        }
        auto given = [&](const char* flag) { return cmd.count(flag) > 0; };
        if (given("--model")) cfg.model = c->model;
        if (given("--data")) cfg.data = c->data;
        if (given("--data-dir")) cfg.data_dir = c->data_dir;
        if (given("--device")) cfg.device = c->device;
        if (given("--minutes")) cfg.minutes = c->minutes;
        if (given("--epochs")) cfg.epochs = c->epochs;
        if (given("--steps")) cfg.steps = c->steps;
        if (given("--batch")) cfg.batch = c->batch;
        if (given("--lr")) cfg.lr = c->lr;
        if (given("--out")) cfg.out = c->out;
        if (given("--resume")) cfg.resume = c->resume;
        if (given("--seed")) cfg.seed = c->seed;
        for (const std::string& s : *sets) {
          if (s == "list") {
            std::printf("%s\n", cfg.to_json().c_str());
            return 0;
          }
          cfg.apply_override(s);
        }
        if ((cfg.epochs > 0 || cfg.steps > 0) && !given("--minutes") && config_file->empty()) cfg.minutes = 0;
        return run(cfg);
      };
    }};

}  // namespace
}  // namespace tessel::cli
