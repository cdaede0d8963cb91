#include "core/parallel.h"

#include <sched.h>
#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#define TESSEL_HAVE_MXCSR 1
#endif

#include <algorithm>
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

#ifdef TESSEL_HAVE_MXCSR
namespace {
constexpr unsigned kFtzDaz = 0x8040u;  // MXCSR bit 15 (flush to zero) and bit 6 (denormals are zero)
void set_mxcsr(bool on) { _mm_setcsr(on ? (_mm_getcsr() | kFtzDaz) : (_mm_getcsr() & ~kFtzDaz)); }
}  // namespace

bool set_flush_denormal(bool on) {
  set_mxcsr(on);
#ifdef _OPENMP
  // Each thread of OpenMP's pool has its own MXCSR: a region as wide as the pool can be sets them
  // all (a thread outside this region would keep its old mode, so ask for every thread there is).
  const int team = std::max({get_num_threads(), hardware_threads(), omp_get_max_threads()});
#pragma omp parallel num_threads(team)
  set_mxcsr(on);
#endif
  return true;
}

bool flush_denormal() { return (_mm_getcsr() & kFtzDaz) == kFtzDaz; }
#else
bool set_flush_denormal(bool) { return false; }
bool flush_denormal() { return false; }
#endif

bool in_parallel_region() {
#ifdef _OPENMP
  return omp_in_parallel();
#else
  return false;
#endif
}

}  // namespace tessel
