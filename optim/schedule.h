// optim/schedule.h — learning-rate schedules: the rate as a pure function of the step.
//
// A schedule is a value (kind + numbers); at(step) gives the rate for step = 0, 1, ...
// Use: `opt.set_lr(schedule.at(step))` before each `opt.step()`.
//   constant            peak
//   warmup_cosine       linear 0 -> peak over `warmup`, then cosine peak -> floor at `total`
//   warmup_stable_decay linear warmup, flat at peak until `decay_start`, then linear to floor
//                       at `total` ("MiniCPM: Unveiling the Potential of Small Language Models")
//   step                peak * gamma^(step / every)
#pragma once
#include <cstdint>
#include <string>

namespace tessel::optim {

struct LRSchedule {
  enum class Kind { constant, warmup_cosine, warmup_stable_decay, step };
  Kind kind = Kind::constant;
  double peak = 1e-3;
  double floor = 0;         // final rate (cosine, WSD)
  int64_t warmup = 0;       // steps of linear warmup
  int64_t total = 1;        // last step of the schedule (cosine, WSD)
  int64_t decay_start = 0;  // WSD: first step of the decay
  int64_t every = 1;        // step: decay period
  double gamma = 0.1;       // step: factor per period

  double at(int64_t step) const;
  static LRSchedule from_name(const std::string& name);  // "constant", "cosine", "wsd", "step"
};

}  // namespace tessel::optim
