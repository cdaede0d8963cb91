// tools/train_log.h — what `tessel train` shows and records while it runs.
//
// - a progress line (a bar redrawn in place on a terminal, one line every few seconds
//   otherwise): step, loss, throughput, learning rate, ETA;
// - metrics.jsonl in the run directory: one JSON object per training report and per
//   evaluation, appended as they happen (a crash keeps everything up to it);
// - at the end, curve.png: loss and accuracy against step, drawn by gnuplot from those metrics
//   (training never depends on gnuplot; without it the program says how to get the plot).
#pragma once
#include <chrono>
#include <cstdio>
#include <map>
#include <string>

namespace tessel::cli {

class TrainLog {
 public:
  // unit: "img" or "tok"; budget_s: the wall-clock budget (0: none); total_steps: 0 if unknown.
  TrainLog(std::string dir, std::string unit, double budget_s, int64_t total_steps, bool append);
  ~TrainLog();
  TrainLog(const TrainLog&) = delete;
  TrainLog& operator=(const TrainLog&) = delete;

  void train(int64_t step, double loss, double lr, int64_t items);  // after each optimizer step
  void eval(int64_t step, const std::map<std::string, double>& metrics);
  void note(const std::string& line);  // a message that must not be overwritten by the bar
  std::string finish();                // draws curve.png; returns a line saying where things are
  double elapsed_s() const;

 private:
  void draw(bool final_line);
  std::string dir_, unit_;
  double budget_s_;
  int64_t total_steps_;
  FILE* metrics_ = nullptr;
  bool tty_;
  std::chrono::steady_clock::time_point start_, last_draw_, window_start_;
  int64_t step_ = 0, window_items_ = 0;
  double loss_ema_ = -1, lr_ = 0, rate_ = 0;
  bool bar_visible_ = false;
};

}  // namespace tessel::cli
