// tools/bench_timing.h — the timing protocol every `tessel bench` number follows.
//
// For each contender (a tessel version, an in-process peer, or a sample taken in a child
// process): one untimed warm-up call (pages faulted in, threads spawned, caches and clocks
// warm), then a calibration call that sets how many repetitions make one sample last at least
// `min_sample_ms`, then `samples` samples. A sample's time is its wall time divided by its
// repetitions; the reported figure is the median sample.
//
// Before every sample the process waits until its own threads are idle: a threaded runtime
// that has just returned keeps spinning for a while (OpenBLAS's pthread workers busy-wait up
// to about 2^28 cycles, OpenMP's briefly), and a sample started then shares the cores with
// them. Measured here: interleaved with OpenBLAS and no wait, a 64^3 OpenMP GEMM took 1000x
// longer.
//
// The contenders are interleaved: sample 1 of every contender, then sample 2 of every
// contender, and so on. On a shared, noisy machine a burst of load then hits every contender
// about equally instead of ruining one contender's whole run, so the ratios stay honest even
// when the absolute numbers wobble.
#pragma once
#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <functional>
#include <string>
#include <thread>
#include <vector>

namespace tessel::cli {

struct Protocol {
  int samples = 10;           // at least 10 for the recorded numbers
  double min_sample_ms = 20;  // each sample at least this long
  bool settle = true;         // wait for this process's threads to go idle before each sample
  // Time in-process contenders by this process's CPU time instead of the wall clock. On one
  // thread this is the time the operation really ran: on a shared machine, the slices in which
  // other processes held the core do not count (caches they evicted still do).
  bool cpu_clock = false;
  static Protocol quick() { return {3, 1, true, false}; }
};

// A contender hands out one sample: it runs its operation `reps` times (reps = 0: "pick the
// repetitions yourself", which a child process that calibrates on its own side uses) and
// returns the per-operation milliseconds.
struct Contender {
  std::string name;
  std::function<void()> op;                     // one operation (in-process contenders)
  std::function<double(double min_ms)> sample;  // or: one whole sample, per-op ms (child process)
};

struct Timing {
  double median_ms = 0;
  int reps = 0;  // repetitions per sample (0 when the contender calibrated itself)
  std::vector<double> samples_ms;
};

inline double now_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// CPU time of every thread of this process, in ms.
inline double process_cpu_ms() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) * 1e-6;
}

// Returns once this process used less than 10% of one core over 5 ms (or after max_ms).
inline void wait_until_idle(double max_ms = 500) {
  const double start = now_ms();
  double last = process_cpu_ms();
  while (now_ms() - start < max_ms) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    const double cpu = process_cpu_ms();
    if (cpu - last < 0.5) return;
    last = cpu;
  }
}

inline double median(std::vector<double> v) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Times every contender by the protocol above, interleaved; results in the contenders' order.
inline std::vector<Timing> time_interleaved(const std::vector<Contender>& contenders, const Protocol& proto) {
  std::vector<Timing> out(contenders.size());
  double (*clock)() = proto.cpu_clock ? process_cpu_ms : now_ms;
  for (size_t i = 0; i < contenders.size(); ++i) {
    const Contender& c = contenders[i];
    if (!c.op) continue;
    c.op();  // untimed warm-up
    if (proto.settle) wait_until_idle();
    const double t0 = clock();
    c.op();  // calibration
    const double once = std::max(clock() - t0, 1e-4);
    // 10% margin so that a sample running a little faster than the calibration still lasts
    // min_sample_ms.
    out[i].reps = std::max(1, static_cast<int>(std::ceil(1.1 * proto.min_sample_ms / once)));
  }
  for (int s = 0; s < proto.samples; ++s) {
    for (size_t i = 0; i < contenders.size(); ++i) {
      const Contender& c = contenders[i];
      if (proto.settle) wait_until_idle();
      double ms;
      if (c.op) {
        // The calibrated repetitions, and more if the sample still falls short of min_sample_ms
        // (the calibration call can have been slowed by load that has passed since).
        const double t0 = clock();
        int done = 0;
        double elapsed = 0;
        while (done < out[i].reps || elapsed < proto.min_sample_ms) {
          c.op();
          ++done;
          elapsed = clock() - t0;
        }
        ms = elapsed / done;
      } else {
        ms = c.sample(proto.min_sample_ms);
      }
      out[i].samples_ms.push_back(ms);
    }
  }
  for (Timing& t : out) t.median_ms = median(t.samples_ms);
  return out;
}

}  // namespace tessel::cli
