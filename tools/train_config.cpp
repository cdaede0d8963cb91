#include "tools/train_config.h"

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace tessel::cli {
namespace {

using Json = nlohmann::ordered_json;
using Field = std::variant<std::string TrainConfig::*, double TrainConfig::*, int64_t TrainConfig::*,
                           bool TrainConfig::*, uint64_t TrainConfig::*>;

const std::vector<std::pair<const char*, Field>>& fields() {
  static const std::vector<std::pair<const char*, Field>> f = {
      {"model", &TrainConfig::model},
      {"data", &TrainConfig::data},
      {"data_dir", &TrainConfig::data_dir},
      {"device", &TrainConfig::device},
      {"minutes", &TrainConfig::minutes},
      {"epochs", &TrainConfig::epochs},
      {"steps", &TrainConfig::steps},
      {"optimizer", &TrainConfig::optimizer},
      {"schedule", &TrainConfig::schedule},
      {"lr", &TrainConfig::lr},
      {"min_lr", &TrainConfig::min_lr},
      {"weight_decay", &TrainConfig::weight_decay},
      {"momentum", &TrainConfig::momentum},
      {"warmup", &TrainConfig::warmup},
      {"clip", &TrainConfig::clip},
      {"batch", &TrainConfig::batch},
      {"accumulate", &TrainConfig::accumulate},
      {"width", &TrainConfig::width},
      {"depth", &TrainConfig::depth},
      {"heads", &TrainConfig::heads},
      {"mlp_ratio", &TrainConfig::mlp_ratio},
      {"patch", &TrainConfig::patch},
      {"context", &TrainConfig::context},
      {"rotary", &TrainConfig::rotary},
      {"dropout", &TrainConfig::dropout},
      {"label_smoothing", &TrainConfig::label_smoothing},
      {"eval_every", &TrainConfig::eval_every},
      {"checkpoint_every", &TrainConfig::checkpoint_every},
      {"out", &TrainConfig::out},
      {"resume", &TrainConfig::resume},
      {"seed", &TrainConfig::seed},
      {"sample_every", &TrainConfig::sample_every},
  };
  return f;
}

std::string key_list() {
  std::string s;
  for (auto& [k, f] : fields()) s += (s.empty() ? "" : ", ") + std::string(k);
  return s;
}

void set_field(TrainConfig& c, const std::string& key, const Json& v, const std::string& source) {
  for (auto& [k, field] : fields()) {
    if (key != k) continue;
    auto bad = [&](const char* want) {
      fail("train config", source, ": '", key, "' expects ", want, ", got ", v.dump());
    };
    std::visit(
        [&](auto member) {
          using T = std::remove_reference_t<decltype(c.*member)>;
          if constexpr (std::is_same_v<T, std::string>) {
            if (!v.is_string()) bad("a string");
            c.*member = v.get<std::string>();
          } else if constexpr (std::is_same_v<T, bool>) {
            if (!v.is_boolean()) bad("true or false");
            c.*member = v.get<bool>();
          } else if constexpr (std::is_same_v<T, double>) {
            if (!v.is_number()) bad("a number");
            c.*member = v.get<double>();
          } else {
            if (!v.is_number_integer() || (std::is_unsigned_v<T> && v.get<int64_t>() < 0)) bad("an integer");
            c.*member = v.get<T>();
          }
        },
        field);
    return;
  }
  fail("train config", source, ": unknown key '", key, "'; valid keys: ", key_list());
}

}  // namespace

void TrainConfig::apply_json(const std::string& text, const std::string& source) {
  Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  check(!j.is_discarded(), "train config", source, ": not valid JSON");
  check(j.is_object(), "train config", source, ": expected a JSON object of settings");
  for (auto& [k, v] : j.items()) set_field(*this, k, v, source);
}

void TrainConfig::apply_override(const std::string& assignment) {
  size_t eq = assignment.find('=');
  check(eq != std::string::npos && eq > 0, "train config", "--set expects key=value, got '", assignment, "'");
  std::string key = assignment.substr(0, eq), value = assignment.substr(eq + 1);
  Json v = Json::parse(value, nullptr, false);
  if (v.is_discarded()) v = value;  // a bare word is a string
  // A string setting given a value that parses as a number keeps its text.
  for (auto& [k, field] : fields())
    if (key == k && std::holds_alternative<std::string TrainConfig::*>(field) && !v.is_string()) v = value;
  set_field(*this, key, v, "--set " + assignment);
}

std::string TrainConfig::to_json() const {
  Json j;
  for (auto& [k, field] : fields()) std::visit([&](auto member) { j[k] = this->*member; }, field);
  return j.dump();
}

std::vector<std::string> TrainConfig::keys() {
  std::vector<std::string> out;
  for (auto& [k, f] : fields()) out.push_back(k);
  return out;
}

}  // namespace tessel::cli
