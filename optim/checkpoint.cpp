#include "optim/checkpoint.h"

#include <zlib.h>

#include <algorithm>
#include <cstdio>

#include "autograd/ops/copy.h"
#include "core/safetensors.h"

namespace tessel::optim {

namespace {
constexpr const char* kFormat = "tessel-checkpoint-1";

// CRC-32 (zlib's) of the whole content: every metadata entry but the checksum itself, then
// every tensor in name order, each as its name, dtype, shape and bytes. Safetensors has no
// checksum of its own; this one turns a flipped bit or a zeroed page — in the data, where the
// format checks cannot see it, or in a metadata value such as the step — into a clear error
// instead of a resumed run that silently trains from damaged state.
std::string content_crc32(const std::vector<std::pair<std::string, Tensor>>& tensors,
                          const std::map<std::string, std::string>& metadata) {
  std::vector<const std::pair<std::string, Tensor>*> order;
  for (const auto& e : tensors) order.push_back(&e);
  std::sort(order.begin(), order.end(), [](auto* a, auto* b) { return a->first < b->first; });
  uLong crc = crc32(0L, Z_NULL, 0);
  auto feed = [&crc](const void* p, size_t n) {
    const auto* bytes = static_cast<const Bytef*>(p);
    while (n > 0) {  // zlib takes uInt lengths
      uInt chunk = static_cast<uInt>(std::min<size_t>(n, 1u << 30));
      crc = crc32(crc, bytes, chunk);
      bytes += chunk;
      n -= chunk;
    }
  };
  for (const auto& [key, value] : metadata)
    if (key != "crc32") {
      std::string entry = key + "=" + value + "\n";
      feed(entry.data(), entry.size());
    }
  for (const auto* e : order) {
    Tensor t = contiguous(to_device(e->second, Device::cpu())).detach();
    std::string head = e->first + "|" + dtype_name(t.dtype()) + "|";
    for (int64_t d : t.sizes()) head += std::to_string(d) + ",";
    feed(head.data(), head.size());
    feed(t.data(), static_cast<size_t>(t.numel()) * t.element_size());
  }
  char hex[9];
  std::snprintf(hex, sizeof hex, "%08lx", static_cast<unsigned long>(crc & 0xffffffffUL));
  return hex;
}

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
  meta["crc32"] = content_crc32(tensors, meta);
  save_safetensors(path, tensors, meta);
}

TrainingState load_checkpoint(const std::string& path, nn::Module& model, Optimizer& opt) {
  SafetensorsFile f = load_safetensors(path);
  auto fmt = f.metadata.find("format");
  check(fmt != f.metadata.end() && fmt->second == kFormat, "load_checkpoint", path,
        ": not a tessel training checkpoint (metadata 'format' is ",
        fmt == f.metadata.end() ? std::string("missing") : "'" + fmt->second + "'", ", expected '", kFormat, "')");
  auto crc = f.metadata.find("crc32");
  check(crc != f.metadata.end(), "load_checkpoint", path, ": metadata has no 'crc32'");
  const std::string actual = content_crc32(f.tensors, f.metadata);
  check(crc->second == actual, "load_checkpoint", path, ": the content is corrupt (CRC-32 ", actual,
        ", the file records ", crc->second, ")");
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
  // The model first (it validates every key and shape before writing), then the optimizer
  // (likewise). If the optimizer's state is refused, the model goes back to what it was, so a
  // failed load changes nothing.
  nn::StateDict before;
  for (auto& [name, t] : model.state_dict()) before[name] = clone(t.detach());
  try {
    model.load_state_dict(model_state, true);
  } catch (const Error& e) {
    fail("load_checkpoint", path, ": ", e.what());
  }
  try {
    opt.load_state_dict(optim_state);
  } catch (const Error& e) {
    model.load_state_dict(before, true);
    fail("load_checkpoint", path, ": ", e.what());
  }
  return st;
}

}  // namespace tessel::optim
