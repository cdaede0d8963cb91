// tools/cmd_train_mlp.cpp — `tessel train-mlp`: the end-to-end example of the foundation.
//
// A multilayer perceptron learns to tell apart the arms of a noisy spiral (K classes of points
// in the plane, not linearly separable). Everything — data generation, the model, the loss,
// backward and the optimizer update — is plain tessel tensor code, so this file doubles as the
// shortest complete training program a reader can study: forward with linear/gelu, loss with
// cross_entropy, loss.backward(), then an SGD-with-momentum step under NoGradGuard.
// (The nn/ and optim/ layers and the real demo — a ViT on Fashion-MNIST — come with the
// training-program issue; this command stays as the smallest end-to-end check.)
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <numbers>
#include <string>
#include <vector>

#include "tessel.h"
#include "tools/command.h"

namespace tessel::cli {
namespace {

struct Options {
  int64_t classes = 3;
  int64_t points = 1500;  // per class; one third goes to the test set
  double noise = 0.2;
  int64_t hidden = 128;
  int64_t steps = 1500;
  int64_t batch = 128;
  double lr = 0.1;
  double momentum = 0.9;
  uint64_t seed = 0;
  int64_t log_every = 100;
};

struct Dataset {
  Tensor x;  // [n, 2] f32
  Tensor y;  // [n] i64
};

// K spiral arms: point i of arm k sits at radius r = i/n and angle 4r + 2πk/K, plus noise.
Dataset make_spiral(int64_t classes, int64_t per_class, double noise) {
  NoGradGuard ng;
  Tensor r = arange(0.0, 1.0, 1.0 / static_cast<double>(per_class), {.dtype = DType::f32});  // [n]
  r = narrow(r, 0, 0, per_class);
  Tensor k = reshape(arange(classes, {.dtype = DType::f32}), {classes, 1});            // [K, 1]
  Tensor angle = r * 4.0 + k * (2 * std::numbers::pi / static_cast<double>(classes));  // [K, n]
  angle = angle + randn(angle.sizes()) * noise;
  Tensor xs = reshape(mul(r, sin(angle)), {-1, 1});
  Tensor ys = reshape(mul(r, cos(angle)), {-1, 1});
  Tensor labels = reshape(expand(reshape(arange(classes), {classes, 1}), {classes, per_class}), {-1});
  return {cat({xs, ys}, 1), contiguous(labels)};
}

// Splits a dataset by a random permutation: the first `n_train` rows train, the rest test.
std::pair<Dataset, Dataset> split(const Dataset& d, int64_t n_train) {
  NoGradGuard ng;
  int64_t n = d.x.size(0);
  // A random permutation: draw a key per row and sort the rows by key.
  Tensor keys = rand({n});
  std::vector<float> kv = keys.to_vector<float>();
  std::vector<int64_t> perm(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) perm[i] = i;
  std::sort(perm.begin(), perm.end(), [&](int64_t a, int64_t b) { return kv[a] < kv[b]; });
  Tensor p = from_vector_i64(perm);
  Tensor tr = narrow(p, 0, 0, n_train), te = narrow(p, 0, n_train, n - n_train);
  return {{index_select(d.x, 0, tr), index_select(d.y, 0, tr)}, {index_select(d.x, 0, te), index_select(d.y, 0, te)}};
}

struct Mlp {
  std::vector<Tensor> weights, biases;

  Mlp(const std::vector<int64_t>& widths) {
    for (size_t i = 0; i + 1 < widths.size(); ++i) {
      // He initialization: keeps activations' variance roughly constant through GELU layers.
      double scale = std::sqrt(2.0 / static_cast<double>(widths[i]));
      Tensor w = randn({widths[i + 1], widths[i]}) * scale;
      weights.push_back(w.detach().requires_grad_());
      biases.push_back(zeros({widths[i + 1]}, {.requires_grad = true}));
    }
  }
  Tensor operator()(Tensor h) const {
    for (size_t i = 0; i < weights.size(); ++i) {
      h = linear(h, weights[i], biases[i]);
      if (i + 1 < weights.size()) h = gelu(h);
    }
    return h;
  }
  std::vector<Tensor> parameters() const {
    std::vector<Tensor> p = weights;
    p.insert(p.end(), biases.begin(), biases.end());
    return p;
  }
};

double accuracy(const Mlp& model, const Dataset& d) {
  NoGradGuard ng;
  Tensor pred = argmax(model(d.x), 1);
  return mean(to_dtype(eq(pred, d.y), DType::f32)).item();
}

int run(const Options& o) {
  manual_seed(o.seed);
  check(o.classes >= 2 && o.points >= 3 && o.hidden >= 1 && o.steps >= 1 && o.batch >= 1, "train-mlp",
        "expected classes >= 2, points >= 3, hidden, steps and batch >= 1");
  Dataset all = make_spiral(o.classes, o.points, o.noise);
  int64_t n = all.x.size(0), n_train = n * 2 / 3;
  auto [train, test] = split(all, n_train);

  Mlp model({2, o.hidden, o.hidden, o.classes});
  std::vector<Tensor> params = model.parameters(), velocity;
  int64_t count = 0;
  for (const Tensor& p : params) {
    velocity.push_back(zeros_like(p));
    count += p.numel();
  }
  std::printf(
      "tessel train-mlp: %lld-arm spiral, %lld train / %lld test points; MLP 2-%lld-%lld-%lld (%lld parameters)\n",
      (long long)o.classes, (long long)n_train, (long long)(n - n_train), (long long)o.hidden, (long long)o.hidden,
      (long long)o.classes, (long long)count);
  std::printf("SGD momentum %.2f, lr %.3g with cosine decay, batch %lld, %d threads\n\n", o.momentum, o.lr,
              (long long)o.batch, get_num_threads());
  std::printf("%6s  %8s  %9s  %8s  %8s  %7s\n", "step", "loss", "train_acc", "test_acc", "lr", "ms/step");

  auto t0 = std::chrono::steady_clock::now();
  auto last = t0;
  double first_loss = -1, running = 0;
  int64_t running_n = 0;
  for (int64_t step = 1; step <= o.steps; ++step) {
    Tensor idx = randint(0, n_train, {o.batch});
    Tensor xb = index_select(train.x, 0, idx), yb = index_select(train.y, 0, idx);
    Tensor loss = cross_entropy(model(xb), yb);
    for (Tensor& p : params) p.set_grad(Tensor());
    loss.backward();

    double progress = static_cast<double>(step - 1) / static_cast<double>(o.steps);
    double lr = o.lr * 0.5 * (1 + std::cos(std::numbers::pi * progress));
    {
      NoGradGuard ng;  // the update is not part of the graph
      for (size_t i = 0; i < params.size(); ++i) {
        mul_(velocity[i], o.momentum);
        add_(velocity[i], params[i].grad());
        add_(params[i], velocity[i], -lr);
      }
    }
    double l = loss.item();
    if (first_loss < 0) first_loss = l;
    running += l;
    ++running_n;
    if (step % o.log_every == 0 || step == o.steps) {
      auto now = std::chrono::steady_clock::now();
      double ms = std::chrono::duration<double, std::milli>(now - last).count() / static_cast<double>(running_n);
      std::printf("%6lld  %8.4f  %8.1f%%  %7.1f%%  %8.4f  %7.2f\n", (long long)step, running / running_n,
                  100 * accuracy(model, train), 100 * accuracy(model, test), lr, ms);
      std::fflush(stdout);
      last = now;
      if (step == o.steps) {
        double secs = std::chrono::duration<double>(now - t0).count();
        double final_loss = running / running_n;
        double test_acc = accuracy(model, test);
        std::printf("\ndone in %.1f s: loss fell from %.3f to %.3f; test accuracy %.1f%%\n", secs, first_loss,
                    final_loss, 100 * test_acc);
        if (!(final_loss < 0.5 * first_loss)) {
          std::fprintf(stderr, "train-mlp: the loss did not fall by half — something is wrong\n");
          return 2;
        }
      }
      running = 0;
      running_n = 0;
    }
  }
  return 0;
}

Command train_mlp{
    "train-mlp", "Train a small MLP on a synthetic spiral task (the end-to-end example)", [](CLI::App& cmd) -> Action {
      auto o = std::make_shared<Options>();
      cmd.add_option("--classes", o->classes, "Spiral arms = classes")->capture_default_str();
      cmd.add_option("--points", o->points, "Points per class (2/3 train, 1/3 test)")->capture_default_str();
      cmd.add_option("--noise", o->noise, "Angular noise (radians, std. dev.)")->capture_default_str();
      cmd.add_option("--hidden", o->hidden, "Width of the two hidden layers")->capture_default_str();
      cmd.add_option("--steps", o->steps, "Optimizer steps")->capture_default_str();
      cmd.add_option("--batch", o->batch, "Batch size")->capture_default_str();
      cmd.add_option("--lr", o->lr, "Peak learning rate (cosine decay to 0)")->capture_default_str();
      cmd.add_option("--momentum", o->momentum, "SGD momentum")->capture_default_str();
      cmd.add_option("--seed", o->seed, "Seed for data, initialization and batches")->capture_default_str();
      cmd.add_option("--log-every", o->log_every, "Print a line every N steps")->capture_default_str();
      return [o] { return run(*o); };
    }};

}  // namespace
}  // namespace tessel::cli
