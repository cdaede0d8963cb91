#include "optim/schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "core/error.h"

namespace tessel::optim {

double LRSchedule::at(int64_t step) const {
  check(step >= 0, "LRSchedule", "step must be non-negative, got ", step);
  if (kind == Kind::step) return peak * std::pow(gamma, static_cast<double>(step / std::max<int64_t>(every, 1)));
  if (kind == Kind::constant) return peak;
  if (step < warmup) return peak * static_cast<double>(step + 1) / static_cast<double>(warmup);
  if (kind == Kind::warmup_cosine) {
    double span = static_cast<double>(std::max<int64_t>(total - warmup, 1));
    double t = std::min(1.0, static_cast<double>(step - warmup) / span);
    return floor + (peak - floor) * 0.5 * (1 + std::cos(std::numbers::pi * t));
  }
  // warmup-stable-decay
  if (step < decay_start) return peak;
  double span = static_cast<double>(std::max<int64_t>(total - decay_start, 1));
  double t = std::min(1.0, static_cast<double>(step - decay_start) / span);
  return peak + (floor - peak) * t;
}

LRSchedule LRSchedule::from_name(const std::string& name) {
  LRSchedule s;
  if (name == "constant")
    s.kind = Kind::constant;
  else if (name == "cosine")
    s.kind = Kind::warmup_cosine;
  else if (name == "wsd")
    s.kind = Kind::warmup_stable_decay;
  else if (name == "step")
    s.kind = Kind::step;
  else
    fail("LRSchedule", "unknown schedule '", name, "'; expected constant, cosine, wsd or step");
  return s;
}

}  // namespace tessel::optim
