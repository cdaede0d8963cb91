// tools/cmd_info.cpp — `tessel info [--json]`: how this tessel was built and what the machine
// offers (CPU model and features, threads, allocator state).
//
// Both outputs come from one JSON document, so the text and --json never disagree; the JSON
// keys are a stable interface that scripts and bench/results records rely on.
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "core/allocator.h"
#include "core/config.h"
#include "core/cpu_features.h"
#include "core/parallel.h"
#include "tools/command.h"

namespace tessel::cli {
namespace {

using Json = nlohmann::ordered_json;

Json collect_info() {
  Json j;
  j["version"] = TESSEL_VERSION;
  j["build"] = {{"type", TESSEL_BUILD_TYPE},
                {"compiler", TESSEL_CXX_COMPILER},
                {"system", TESSEL_SYSTEM},
                {"native", bool(TESSEL_CONFIG_NATIVE)},
                {"sanitize", bool(TESSEL_CONFIG_SANITIZE)},
                {"openmp", bool(TESSEL_CONFIG_OPENMP)}};
  j["cuda"] = {{"built", bool(TESSEL_CONFIG_CUDA)},
               {"compiler", TESSEL_CUDA_COMPILER},
               {"architectures", TESSEL_CUDA_ARCHITECTURES}};

  const CpuFeatures& cpu = cpu_features();
  Json features = Json::object();
  for (auto [name, on] : cpu.list()) features[name] = on;
  j["cpu"] = {{"model", cpu.model}, {"vendor", cpu.vendor}, {"features", features}};

  const char* env = std::getenv("TESSEL_NUM_THREADS");
  j["threads"] = {{"hardware", hardware_threads()},
                  {"current", get_num_threads()},
                  {"env_TESSEL_NUM_THREADS", env ? Json(env) : Json(nullptr)}};

  AllocatorStats s = cpu_allocator::stats();
  j["allocator"] = {{"current_bytes", s.current_bytes},
                    {"peak_bytes", s.peak_bytes},
                    {"cached_bytes", s.cached_bytes},
                    {"alloc_count", s.alloc_count},
                    {"os_alloc_count", s.os_alloc_count}};
  return j;
}

std::string yes_no(const Json& b) { return b.get<bool>() ? "yes" : "no"; }

void print_text(const Json& j) {
  const Json& b = j["build"];
  const Json& cuda = j["cuda"];
  const Json& cpu = j["cpu"];
  const Json& t = j["threads"];
  const Json& a = j["allocator"];
  std::string present, absent;
  for (const auto& [name, on] : cpu["features"].items()) (on.get<bool>() ? present : absent) += " " + name;

  std::printf("tessel %s\n\n", j["version"].get<std::string>().c_str());
  std::printf("build\n");
  std::printf("  type        %s\n", b["type"].get<std::string>().c_str());
  std::printf("  compiler    %s\n", b["compiler"].get<std::string>().c_str());
  std::printf("  system      %s\n", b["system"].get<std::string>().c_str());
  std::printf("  native      %s   (-march=native)\n", yes_no(b["native"]).c_str());
  std::printf("  sanitizers  %s   (ASan + UBSan)\n", yes_no(b["sanitize"]).c_str());
  std::printf("  openmp      %s\n", yes_no(b["openmp"]).c_str());
  std::printf("  cuda        %s", yes_no(cuda["built"]).c_str());
  if (cuda["built"].get<bool>())
    std::printf("   (%s, sm %s)", cuda["compiler"].get<std::string>().c_str(),
                cuda["architectures"].get<std::string>().c_str());
  std::printf("\n\ncpu\n");
  std::printf("  model       %s\n", cpu["model"].get<std::string>().c_str());
  std::printf("  vendor      %s\n", cpu["vendor"].get<std::string>().c_str());
  std::printf("  features   %s\n", present.empty() ? " none" : present.c_str());
  std::printf("  missing    %s\n", absent.empty() ? " none" : absent.c_str());
  std::printf("\nthreads\n");
  std::printf("  hardware    %d\n", t["hardware"].get<int>());
  std::printf("  current     %d", t["current"].get<int>());
  if (!t["env_TESSEL_NUM_THREADS"].is_null())
    std::printf("   (TESSEL_NUM_THREADS=%s)", t["env_TESSEL_NUM_THREADS"].get<std::string>().c_str());
  std::printf("\n\ncpu allocator\n");
  std::printf("  current     %lld bytes\n", static_cast<long long>(a["current_bytes"].get<int64_t>()));
  std::printf("  peak        %lld bytes\n", static_cast<long long>(a["peak_bytes"].get<int64_t>()));
  std::printf("  cached      %lld bytes\n", static_cast<long long>(a["cached_bytes"].get<int64_t>()));
  std::printf("  allocations %lld (%lld from the OS)\n", static_cast<long long>(a["alloc_count"].get<int64_t>()),
              static_cast<long long>(a["os_alloc_count"].get<int64_t>()));
}

Command info{"info", "Print how tessel was built and what this machine offers", [](CLI::App& cmd) -> Action {
               auto json = std::make_shared<bool>(false);
               cmd.add_flag("--json", *json,
                            "Print one JSON object instead of text (keys: version, build, cuda, "
                            "cpu, threads, allocator)");
               return [json] {
                 Json j = collect_info();
                 if (*json)
                   std::cout << j.dump(2) << "\n";
                 else
                   print_text(j);
                 return 0;
               };
             }};

}  // namespace
}  // namespace tessel::cli
