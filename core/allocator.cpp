#include "core/allocator.h"

#include <sys/mman.h>

#include <cstdlib>
#include <map>
#include <mutex>
#include <vector>

#include "core/error.h"

// Under AddressSanitizer, cached blocks are poisoned while they sit in the cache, so a
// use-after-free of tensor memory is reported even though the block never went back to malloc.
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define TESSEL_POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define TESSEL_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define TESSEL_POISON(p, n) ((void)(p), (void)(n))
#define TESSEL_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

namespace tessel::cpu_allocator {
namespace {

constexpr size_t kAlign = 64;
constexpr size_t kHugeThreshold = size_t{4} << 20;
constexpr size_t kHugeAlign = size_t{2} << 20;

struct Cache {
  std::mutex mu;
  std::map<size_t, std::vector<void*>> free_lists;  // size class -> blocks
  AllocatorStats st;
  int64_t limit = [] {
    const char* env = std::getenv("TESSEL_CPU_CACHE_LIMIT_MB");
    return env ? std::atoll(env) << 20 : int64_t{8} << 30;
  }();
};

Cache& cache() {
  static Cache* c = new Cache;  // never destroyed: tensors may be freed during static teardown
  return *c;
}

void* os_alloc(size_t size) {
  size_t align = size >= kHugeThreshold ? kHugeAlign : kAlign;
  void* p = nullptr;
  if (posix_memalign(&p, align, size) != 0 || !p) return nullptr;
#ifdef MADV_HUGEPAGE
  if (size >= kHugeThreshold) madvise(p, size, MADV_HUGEPAGE);
#endif
  return p;
}

void release_all_locked(Cache& c) {
  for (auto& [size, blocks] : c.free_lists)
    for (void* p : blocks) {
      TESSEL_UNPOISON(p, size);
      std::free(p);
    }
  c.free_lists.clear();
  c.st.cached_bytes = 0;
}

}  // namespace

size_t round_size(size_t n) {
  if (n == 0) n = 1;
  n = (n + kAlign - 1) & ~(kAlign - 1);
  if (n <= 4 * kAlign) return n;
  // Quarter steps of the power of two just below n.
  size_t p = size_t{1} << (63 - __builtin_clzll(n));
  size_t step = p / 4;
  return (n + step - 1) / step * step;
}

void* allocate(size_t nbytes) {
  size_t size = round_size(nbytes);
  Cache& c = cache();
  {
    std::lock_guard<std::mutex> lock(c.mu);
    ++c.st.alloc_count;
    c.st.current_bytes += static_cast<int64_t>(size);
    if (c.st.current_bytes > c.st.peak_bytes) c.st.peak_bytes = c.st.current_bytes;
    auto it = c.free_lists.find(size);
    if (it != c.free_lists.end() && !it->second.empty()) {
      void* p = it->second.back();
      it->second.pop_back();
      c.st.cached_bytes -= static_cast<int64_t>(size);
      TESSEL_UNPOISON(p, size);
      return p;
    }
    ++c.st.os_alloc_count;
  }
  void* p = os_alloc(size);
  if (!p) {  // give the cache back to the OS and try once more before failing
    std::lock_guard<std::mutex> lock(c.mu);
    release_all_locked(c);
    p = os_alloc(size);
    if (!p) {
      c.st.current_bytes -= static_cast<int64_t>(size);
      fail("cpu_allocator", "out of memory: requested ", nbytes, " bytes with ", c.st.current_bytes, " bytes in use");
    }
  }
  return p;
}

void deallocate(void* p, size_t nbytes) {
  if (!p) return;
  size_t size = round_size(nbytes);
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  c.st.current_bytes -= static_cast<int64_t>(size);
  if (c.st.cached_bytes + static_cast<int64_t>(size) > c.limit) {
    std::free(p);
    return;
  }
  TESSEL_POISON(p, size);
  c.free_lists[size].push_back(p);
  c.st.cached_bytes += static_cast<int64_t>(size);
}

AllocatorStats stats() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  return c.st;
}

void reset_peak() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  c.st.peak_bytes = c.st.current_bytes;
}

void empty_cache() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  release_all_locked(c);
}

void set_cache_limit(int64_t bytes) {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  c.limit = bytes;
  if (c.st.cached_bytes > c.limit) release_all_locked(c);
}

int64_t cache_limit() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  return c.limit;
}

}  // namespace tessel::cpu_allocator
