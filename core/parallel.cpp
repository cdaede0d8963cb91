#include "core/parallel.h"

#include <sched.h>

#include <atomic>
#include <cstdlib>
#include <string>

#include "core/error.h"

namespace tessel {
namespace {

int initial_threads() {
  if (const char* env = std::getenv("TESSEL_NUM_THREADS")) {
    int n = std::atoi(env);
    if (n >= 1) return n;
  }
  return hardware_threads();
}

std::atomic<int>& thread_count() {
  static std::atomic<int> n{initial_threads()};
  return n;
}

}  // namespace

int hardware_threads() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
#ifdef _OPENMP
  return omp_get_num_procs();
#else
  return 1;
#endif
}

int get_num_threads() { return thread_count().load(std::memory_order_relaxed); }

void set_num_threads(int n) {
  check(n >= 1, "set_num_threads", "expected at least 1 thread, got ", n);
  thread_count().store(n);
}

bool in_parallel_region() {
#ifdef _OPENMP
  return omp_in_parallel();
#else
  return false;
#endif
}

}  // namespace tessel
