#include "optim/checkpoint.h"

#include <nlohmann/json.hpp>

#include "core/safetensors.h"

namespace tessel::optim {

namespace {
constexpr const char* kFormat = "tessel-checkpoint-1";

int64_t meta_int(const SafetensorsFile& f, const std::string& path, const char* key) {
  auto it = f.metadata.find(key);
  check(it != f.metadata.end(), "load_checkpoint", path, ": metadata has no '", key, "'");
  try {
    size_t used = 0;
    long long v = std::stoll(it->second, &used);
    check(used == it->second.size(), "load_checkpoint", path, ": metadata '", key, "' is not an integer: '", it->second,
          "'");
    return v;
  } catch (const std::logic_error&) {
    fail("load_checkpoint", path, ": metadata '", key, "' is not an integer: '", it->second, "'");
  }
}
}  // namespace

void save_checkpoint(const std::string& path, const nn::Module& model, const Optimizer& opt, const TrainingState& st) {
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (auto& [name, t] : model.state_dict()) tensors.emplace_back("model." + name, t);
  for (auto& [name, t] : opt.state_dict()) tensors.emplace_back("optim." + name, t);
  std::map<std::string, std::string> meta = {
      {"format", kFormat},
      {"step", std::to_string(st.step)},
      {"total_steps", std::to_string(st.total_steps)},
      {"rng_seed", std::to_string(st.rng.seed)},
      {"rng_offset", std::to_string(st.rng.offset)},
      {"config", st.config_json},
  };
  save_safetensors(path, tensors, meta);
}

TrainingState load_checkpoint(const std::string& path, nn::Module& model, Optimizer& opt) {
  SafetensorsFile f = load_safetensors(path);
  auto fmt = f.metadata.find("format");
  check(fmt != f.metadata.end() && fmt->second == kFormat, "load_checkpoint", path,
        ": not a tessel training checkpoint (metadata 'format' is ",
        fmt == f.metadata.end() ? std::string("missing") : "'" + fmt->second + "'", ", expected '", kFormat, "')");
  nn::StateDict model_state;
  OptimizerState optim_state;
  for (auto& [name, t] : f.tensors) {
    if (name.rfind("model.", 0) == 0)
      model_state[name.substr(6)] = t;
    else if (name.rfind("optim.", 0) == 0)
      optim_state[name.substr(6)] = t;
    else
      fail("load_checkpoint", path, ": unexpected tensor '", name, "' (expected model.* or optim.*)");
  }
  TrainingState st;
  st.step = meta_int(f, path, "step");
  st.total_steps = meta_int(f, path, "total_steps");
  st.rng.seed = static_cast<uint64_t>(meta_int(f, path, "rng_seed"));
  st.rng.offset = static_cast<uint64_t>(meta_int(f, path, "rng_offset"));
  auto cfg = f.metadata.find("config");
  st.config_json = cfg == f.metadata.end() ? "" : cfg->second;
  check(st.step >= 0 && st.total_steps >= 0, "load_checkpoint", path, ": negative step counts");
  // The model first (it validates every key and shape before writing), then the optimizer.
  // If the optimizer's state is rejected the model has been loaded already; the caller treats
  // a failed load as fatal, so this never leaves a half-resumed run running.
  try {
    model.load_state_dict(model_state, true);
    opt.load_state_dict(optim_state);
  } catch (const Error& e) {
    fail("load_checkpoint", path, ": ", e.what());
  }
  return st;
}

}  // namespace tessel::optim
