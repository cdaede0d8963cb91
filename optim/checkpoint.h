// optim/checkpoint.h — a training run's whole state in one safetensors file.
//
// Tensors: "model.<name>" for every parameter and buffer, "optim.<key>" for the optimizer's
// state. Metadata (strings): the format tag, the step, the planned total steps, the default
// generator's seed and offset, the run's configuration as JSON, and a CRC-32 of all of it
// (tensors and metadata), checked on load. Written atomically (the
// safetensors writer's temp-file-and-rename), so an interrupted save never leaves a torn file.
// Loading validates everything before changing the model or the optimizer.
#pragma once
#include <string>

#include "core/rng.h"
#include "nn/module.h"
#include "optim/optimizer.h"

namespace tessel::optim {

struct TrainingState {
  int64_t step = 0;         // optimizer steps taken
  int64_t total_steps = 0;  // the schedule's length
  Generator rng;            // the default generator at save time
  std::string config_json;  // the run's settings
};

void save_checkpoint(const std::string& path, const nn::Module& model, const Optimizer& opt, const TrainingState& st);
// Restores model and optimizer in place and returns the rest. Throws tessel::Error naming the
// file on anything missing, mismatched or corrupt; nothing is modified then.
TrainingState load_checkpoint(const std::string& path, nn::Module& model, Optimizer& opt);

}  // namespace tessel::optim
