// tools/bench_workloads.h — the workloads `tessel bench peers` runs in tessel and in PyTorch.
//
// A workload is a stable, lower-case name for one piece of work at fixed shapes, written
// through tessel's public API (what a user would call, allocations and autograd included) and,
// under the same name, in bench/peers/pytorch_peer.py. Later issues add one entry each
// (moe_top2_fwdbwd, monarch_fwdbwd, ...): one table entry in bench_workloads.cpp and one in
// pytorch_peer.py's WORKLOADS.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "core/device.h"

namespace tessel::cli {

struct Workload {
  std::string name;   // "gemm_1024"
  std::string shape;  // "1024x1024x1024"
  // What one operation must do, for pct_peak: flops > 0 measures against the FMA peak, else
  // bytes (each operand read or written once) against the measured bandwidth.
  double flops = 0;
  double bytes = 0;
  // Builds the inputs on `device` and returns one operation (called many times). On a GPU the
  // operation ends with a device synchronization, so that a sample times finished work.
  std::function<std::function<void()>(Device)> make;
};

const std::vector<Workload>& workloads();

}  // namespace tessel::cli
