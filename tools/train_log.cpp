#include "tools/train_log.h"

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"

namespace tessel::cli {

using Clock = std::chrono::steady_clock;

TrainLog::TrainLog(std::string dir, std::string unit, double budget_s, int64_t total_steps, bool append)
    : dir_(std::move(dir)), unit_(std::move(unit)), budget_s_(budget_s), total_steps_(total_steps) {
  std::filesystem::create_directories(dir_);
  std::string path = dir_ + "/metrics.jsonl";
  metrics_ = std::fopen(path.c_str(), append ? "a" : "w");
  check(metrics_ != nullptr, "train", "cannot write ", path);
  tty_ = isatty(fileno(stderr));
  start_ = last_draw_ = window_start_ = Clock::now();
}

TrainLog::~TrainLog() {
  if (metrics_) std::fclose(metrics_);
}

double TrainLog::elapsed_s() const { return std::chrono::duration<double>(Clock::now() - start_).count(); }

void TrainLog::train(int64_t step, double loss, double lr, int64_t items) {
  step_ = step;
  lr_ = lr;
  loss_ema_ = loss_ema_ < 0 ? loss : 0.95 * loss_ema_ + 0.05 * loss;
  window_items_ += items;
  auto now = Clock::now();
  double window = std::chrono::duration<double>(now - window_start_).count();
  if (window >= 2.0) {
    rate_ = static_cast<double>(window_items_) / window;
    window_items_ = 0;
    window_start_ = now;
  }
  nlohmann::ordered_json j = {
      {"kind", "train"}, {"step", step}, {"loss", loss}, {"lr", lr}, {"elapsed_s", elapsed_s()}};
  if (rate_ > 0) j["per_s"] = rate_;
  std::fprintf(metrics_, "%s\n", j.dump().c_str());
  double since = std::chrono::duration<double>(now - last_draw_).count();
  if (since >= (tty_ ? 0.25 : 10.0)) {
    draw(!tty_);
    last_draw_ = now;
  }
}

void TrainLog::draw(bool final_line) {
  double t = elapsed_s();
  double frac = 0;
  if (budget_s_ > 0) frac = t / budget_s_;
  if (total_steps_ > 0) frac = std::max(frac, static_cast<double>(step_) / static_cast<double>(total_steps_));
  frac = std::min(frac, 1.0);
  double eta = frac > 0 ? t / frac - t : 0;
  const int width = 24;
  int filled = static_cast<int>(frac * width);
  std::string bar(filled, '#');
  bar += std::string(width - filled, '.');
  char line[256];
  std::snprintf(line, sizeof line, "[%s] step %lld  loss %.4f  %.0f %s/s  lr %.2e  %d:%02d elapsed  ETA %d:%02d",
                bar.c_str(), static_cast<long long>(step_), loss_ema_, rate_, unit_.c_str(), lr_,
                static_cast<int>(t) / 60, static_cast<int>(t) % 60, static_cast<int>(eta) / 60,
                static_cast<int>(eta) % 60);
  if (tty_ && !final_line) {
    std::fprintf(stderr, "\r%s\033[K", line);
    bar_visible_ = true;
  } else {
    std::fprintf(stderr, "%s\n", line);
  }
  std::fflush(stderr);
}

void TrainLog::note(const std::string& line) {
  if (bar_visible_) std::fprintf(stderr, "\r\033[K");
  bar_visible_ = false;
  std::fprintf(stderr, "%s\n", line.c_str());
  std::fflush(stderr);
}

void TrainLog::eval(int64_t step, const std::map<std::string, double>& metrics) {
  nlohmann::ordered_json j = {{"kind", "eval"}, {"step", step}, {"elapsed_s", elapsed_s()}};
  std::ostringstream os;
  os << "eval at step " << step << ":";
  for (auto& [k, v] : metrics) {
    j[k] = v;
    os << "  " << k << " " << v;
  }
  std::fprintf(metrics_, "%s\n", j.dump().c_str());
  std::fflush(metrics_);
  note(os.str());
}

std::string TrainLog::finish() {
  if (bar_visible_) draw(true);
  std::fflush(metrics_);
  // Turn the JSON lines into two tables gnuplot reads, and a script that draws them.
  std::ifstream in(dir_ + "/metrics.jsonl");
  std::ofstream tr(dir_ + "/train.tsv"), ev(dir_ + "/eval.tsv");
  std::string line, acc_key;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.contains("kind")) continue;
    if (j["kind"] == "train") tr << j["step"] << '\t' << j["loss"] << '\n';
    if (j["kind"] == "eval") {
      // The second curve: accuracy (the classifier) or bits per byte (the language model).
      if (acc_key.empty())
        for (const char* k : {"accuracy", "bits_per_byte"})
          if (j.contains(k)) {
            acc_key = k;
            break;
          }
      double second = !acc_key.empty() && j.contains(acc_key) ? j[acc_key].get<double>() : NAN;
      double loss = j.contains("loss") ? j["loss"].get<double>() : NAN;
      ev << j["step"] << '\t' << loss << '\t' << second << '\n';
    }
  }
  tr.close();
  ev.close();
  std::ofstream gp(dir_ + "/curve.gp");
  gp << "set terminal pngcairo size 900,520 noenhanced\n"
     << "set output '" << dir_ << "/curve.png'\n"
     << "set xlabel 'step'\nset ylabel 'loss'\n";
  if (!acc_key.empty()) gp << "set y2label '" << acc_key << "'\nset y2tics\nset ytics nomirror\n";
  gp << "set key top right\nset grid\n"
     << "plot '" << dir_ << "/train.tsv' using 1:2 with lines lc rgb '#9bbcd9' title 'train loss', \\\n"
     << "     '" << dir_ << "/eval.tsv' using 1:2 with linespoints lc rgb '#1f4e79' title 'eval loss'";
  if (!acc_key.empty())
    gp << ", \\\n     '" << dir_ << "/eval.tsv' using 1:3 axes x1y2 with linespoints lc rgb '#c0392b' title 'eval "
       << acc_key << "'";
  gp << "\n";
  gp.close();
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0)
    return "metrics in " + dir_ + "/metrics.jsonl; for the curve install gnuplot (apt-get install gnuplot-nox, or " +
           "tools/setup) and run: gnuplot " + dir_ + "/curve.gp";
  // gnuplot's chatter (e.g. "empty y2 range" when a short run evaluated once) goes to a log
  // beside the plot, not into the run's output; it is named only when gnuplot fails.
  std::string cmd = "gnuplot '" + dir_ + "/curve.gp' > '" + dir_ + "/curve.log' 2>&1";
  if (std::system(cmd.c_str()) != 0)
    return "metrics in " + dir_ + "/metrics.jsonl; gnuplot failed on " + dir_ + "/curve.gp (see " + dir_ +
           "/curve.log)";
  return "metrics in " + dir_ + "/metrics.jsonl, curve in " + dir_ + "/curve.png";
}

}  // namespace tessel::cli
