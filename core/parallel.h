// core/parallel.h — how many threads tessel uses, and the one parallel loop kernels share.
//
// The thread count defaults to every core the process may run on, can be set by the
// TESSEL_NUM_THREADS environment variable at start-up, and by set_num_threads() at any time.
// parallel_for splits [0, n) into contiguous chunks, one per thread, and stays serial when the
// work is too small to pay for waking threads (the `grain`: the least work per thread).
#pragma once
#include <algorithm>
#include <cstdint>
#include <exception>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace tessel {

int get_num_threads();
void set_num_threads(int n);  // n >= 1; throws tessel::Error otherwise
int hardware_threads();       // cores available to this process
bool in_parallel_region();

// Flush-to-zero and denormals-are-zero (x86's MXCSR FTZ and DAZ bits) on the calling thread and
// on every compute thread: f32/f64 results too small to be normal become 0 and subnormal inputs
// read as 0, as torch.set_flush_denormal does. Off by default (IEEE gradual underflow). Worth
// turning on when values underflow often: every subnormal result costs a microcode assist, ~100x
// a normal operation (an erf-GELU epilogue over inputs of scale ~10 ran 8x slower). Compute
// threads created later (a larger set_num_threads) inherit the setting from the thread that
// creates them, so call it from the thread that runs tessel's kernels. Returns false, and
// changes nothing, where the CPU has no such mode (non-x86 builds).
bool set_flush_denormal(bool on);
bool flush_denormal();  // the calling thread's setting

// Calls f(begin, end) over disjoint chunks covering [0, n). Chunks are contiguous and their
// boundaries depend only on n and the thread count, so results are deterministic.
template <class F>
void parallel_for(int64_t n, int64_t grain, F&& f) {
  if (n <= 0) return;
  const int64_t threads = std::min<int64_t>(get_num_threads(), std::max<int64_t>(1, n / std::max<int64_t>(grain, 1)));
  if (threads <= 1 || in_parallel_region()) {
    f(int64_t{0}, n);
    return;
  }
#ifdef _OPENMP
  // An exception must not leave an OpenMP region (that terminates the process): the first one
  // thrown by any thread is carried out and rethrown here.
  const int team = static_cast<int>(threads);
  std::exception_ptr error;
#pragma omp parallel num_threads(team)
  {
    int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
    int64_t chunk = (n + nt - 1) / nt;
    int64_t b = t * chunk, e = std::min(n, b + chunk);
    try {
      if (b < e) f(b, e);
    } catch (...) {
#pragma omp critical(tessel_parallel_for_error)
      if (!error) error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);
#else
  f(int64_t{0}, n);
#endif
}

}  // namespace tessel
