// kernels/registry.h — the ladder of versions of one kernel family.
//
// Each family (elementwise, reduce, matmul, ...) keeps a table of named versions ("ref",
// "cpu", later "cpu_avx512", "cuda_tiled", ...) per device. The op calls run(), which takes
// the highest-priority version that accepts the arguments; tests and benchmarks call each
// version by name. A user can force a version for every family with the API force() or the
// environment variable TESSEL_KERNEL_<FAMILY>=<version> (e.g. TESSEL_KERNEL_MATMUL=ref); a
// forced version that cannot take the arguments falls back to the ladder, it never aborts.
#pragma once
#include <algorithm>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/error.h"

namespace tessel::kernels {

template <class Params>
class Family {
 public:
  using Fn = void (*)(const Params&);
  using Accepts = bool (*)(const Params&);
  struct Version {
    std::string name;
    DeviceType device;
    int priority;  // higher wins
    Fn fn;
    Accepts accepts;  // null: takes everything
  };

  explicit Family(std::string name) : name_(std::move(name)) {
    std::string env = "TESSEL_KERNEL_";
    for (char c : name_) env += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    if (const char* v = std::getenv(env.c_str())) forced_ = v;
  }

  void add(std::string version, DeviceType device, int priority, Fn fn, Accepts accepts = nullptr) {
    versions_.push_back({std::move(version), device, priority, fn, accepts});
    std::stable_sort(versions_.begin(), versions_.end(),
                     [](const Version& a, const Version& b) { return a.priority > b.priority; });
  }

  // Runs the best version for `device` (or the forced one, if it accepts the arguments).
  void run(DeviceType device, const Params& p) const {
    if (!forced_.empty())
      for (const Version& v : versions_)
        if (v.device == device && v.name == forced_ && (!v.accepts || v.accepts(p))) return v.fn(p);
    for (const Version& v : versions_)
      if (v.device == device && (!v.accepts || v.accepts(p))) return v.fn(p);
    fail(name_.c_str(), "no kernel version for device ", device == DeviceType::cpu ? "cpu" : "cuda",
         " accepts these arguments");
  }

  // Runs one version by name (tests and benchmarks). Throws if it does not exist or declines.
  void run_version(const std::string& version, const Params& p) const {
    for (const Version& v : versions_)
      if (v.name == version) {
        check(!v.accepts || v.accepts(p), name_.c_str(), "version '", version, "' does not accept these arguments");
        return v.fn(p);
      }
    fail(name_.c_str(), "no version named '", version, "'");
  }

  // Whether run() finds a version for `device` that takes these arguments: an op with a
  // composed fallback (attention) asks before it commits to the family.
  bool can_run(DeviceType device, const Params& p) const {
    for (const Version& v : versions_)
      if (v.device == device && (!v.accepts || v.accepts(p))) return true;
    return false;
  }

  bool accepts(const std::string& version, const Params& p) const {
    for (const Version& v : versions_)
      if (v.name == version) return !v.accepts || v.accepts(p);
    return false;
  }

  std::vector<std::string> versions(DeviceType device) const {
    std::vector<std::string> out;
    for (const Version& v : versions_)
      if (v.device == device) out.push_back(v.name);
    return out;
  }

  const std::string& name() const { return name_; }
  void force(std::string version) { forced_ = std::move(version); }  // "" restores the ladder

 private:
  std::string name_;
  std::string forced_;
  std::vector<Version> versions_;
};

// The table every family starts with: the "ref" oracle (priority 0) and the "cpu" version
// (priority 10). Backends add their versions to it (CUDA: kernels/cuda/<family>.cu).
template <class Params>
Family<Params>* make_cpu_family(std::string name, typename Family<Params>::Fn ref, typename Family<Params>::Fn cpu) {
  auto* fam = new Family<Params>(std::move(name));  // never destroyed: usable during static teardown
  fam->add("ref", DeviceType::cpu, 0, ref);
  fam->add("cpu", DeviceType::cpu, 10, cpu);
  return fam;
}

}  // namespace tessel::kernels
